//! `linux.resources.devices` → a cgroup v2 device program (`BPF_PROG_TYPE_CGROUP_DEVICE`),
//! hand-assembled the way runc's `libcontainer/cgroups/devices/devicefilter` generates it:
//!
//! ```text
//! prelude:  r2 = ctx->access_type & 0xffff   (device type: 1 block, 2 char)
//!           r3 = ctx->access_type >> 16      (access: 1 mknod, 2 read, 4 write)
//!           r4 = ctx->major; r5 = ctx->minor
//! per rule: if r2 != type            goto next   (omitted for type 'a')
//!           if (r3 & access) != r3   goto next   (omitted for "rwm")
//!           if r4 != major           goto next   (omitted for a wildcard)
//!           if r5 != minor           goto next   (omitted for a wildcard)
//!           r0 = allow; exit
//! default:  r0 = 0; exit                          (deny)
//! ```
//!
//! Rules are emitted last first, so the last matching rule wins, as the kernel's cgroup
//! v1 device list and runc behave for the usual "deny all, then allow a few" configs.
//! Emission stops after a rule that matches everything (the verifier rejects
//! unreachable instructions). The rule list is the spec's rules followed by runc's
//! default allowed devices ([`default_rules`]) and an `rwm` allow rule per
//! `linux.devices` entry, as runc's specconv does.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, Spec};

use super::CgroupError;

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Opcode.
    pub code: u8,
    /// `dst_reg` (low nibble) and `src_reg` (high nibble).
    pub regs: u8,
    /// Jump / memory offset.
    pub off: i16,
    /// Immediate.
    pub imm: i32,
}

const BPF_LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const BPF_ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const BPF_ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const BPF_ALU32_MOV_K: u8 = 0xb4; // BPF_ALU | BPF_MOV | BPF_K
const BPF_ALU32_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const BPF_JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const BPF_JNE_X: u8 = 0x5d; // BPF_JMP | BPF_JNE | BPF_X
const BPF_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

/// `BPF_DEVCG_DEV_BLOCK` / `BPF_DEVCG_DEV_CHAR`.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
/// `BPF_DEVCG_ACC_MKNOD` / `_READ` / `_WRITE`.
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

/// A device rule in the form the program checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `None`: any type.
    pub typ: Option<i32>,
    /// `None`: any major.
    pub major: Option<u32>,
    /// `None`: any minor.
    pub minor: Option<u32>,
    /// `BPF_DEVCG_ACC_*` bits.
    pub access: i32,
    /// Allow or deny.
    pub allow: bool,
}

fn parse_access(field: &str, access: Option<&str>) -> Result<i32, CgroupError> {
    let access = access.filter(|a| !a.is_empty()).unwrap_or("rwm");
    let mut bits = 0;
    for c in access.chars() {
        bits |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            other => {
                return Err(CgroupError::Invalid {
                    field: field.to_owned(),
                    reason: format!("invalid access {access:?} (character {other:?}; use r, w, m)"),
                });
            }
        };
    }
    Ok(bits)
}

fn num(field: &str, what: &str, v: Option<i64>) -> Result<Option<u32>, CgroupError> {
    match v {
        None | Some(-1) => Ok(None),
        Some(n) => u32::try_from(n)
            .map(Some)
            .map_err(|_| CgroupError::Invalid {
                field: field.to_owned(),
                reason: format!("invalid {what} {n}"),
            }),
    }
}

impl Rule {
    /// Converts a spec rule (`None` for a FIFO rule, which a device program never sees).
    pub fn from_spec(index: usize, d: &LinuxDeviceCgroup) -> Result<Option<Self>, CgroupError> {
        let field = format!("linux.resources.devices[{index}]");
        let typ = match d.typ().unwrap_or_default() {
            LinuxDeviceType::A => None,
            LinuxDeviceType::B => Some(DEV_BLOCK),
            LinuxDeviceType::C | LinuxDeviceType::U => Some(DEV_CHAR),
            LinuxDeviceType::P => return Ok(None),
        };
        Ok(Some(Self {
            typ,
            major: num(&field, "major", d.major())?,
            minor: num(&field, "minor", d.minor())?,
            access: parse_access(&field, d.access().as_deref())?,
            allow: d.allow(),
        }))
    }

    fn matches_everything(&self) -> bool {
        self.typ.is_none()
            && self.major.is_none()
            && self.minor.is_none()
            && self.access == ACC_READ | ACC_WRITE | ACC_MKNOD
    }

    fn char(major: Option<u32>, minor: Option<u32>, access: i32) -> Self {
        Self {
            typ: Some(DEV_CHAR),
            major,
            minor,
            access,
            allow: true,
        }
    }
}

/// runc's `specconv.AllowedDevices`: mknod of anything, and the devices every container
/// gets in its `/dev` (null, zero, full, random, urandom, tty, ptmx, pts/*).
pub fn default_rules() -> Vec<Rule> {
    let rwm = ACC_READ | ACC_WRITE | ACC_MKNOD;
    vec![
        Rule::char(None, None, ACC_MKNOD),
        Rule {
            typ: Some(DEV_BLOCK),
            major: None,
            minor: None,
            access: ACC_MKNOD,
            allow: true,
        },
        Rule::char(Some(1), Some(3), rwm),
        Rule::char(Some(1), Some(8), rwm),
        Rule::char(Some(1), Some(7), rwm),
        Rule::char(Some(5), Some(0), rwm),
        Rule::char(Some(1), Some(5), rwm),
        Rule::char(Some(1), Some(9), rwm),
        Rule::char(Some(136), None, rwm),
        Rule::char(Some(5), Some(2), rwm),
    ]
}

/// The full rule list for a container: the spec's rules, runc's defaults, then an allow
/// rule for each `linux.devices` entry.
pub fn rules_for_spec(spec: &Spec) -> Result<Vec<Rule>, CgroupError> {
    let linux = spec.linux().as_ref();
    let mut rules = Vec::new();
    let spec_rules = linux
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().as_ref());
    for (i, d) in spec_rules.iter().copied().flatten().enumerate() {
        if let Some(r) = Rule::from_spec(i, d)? {
            rules.push(r);
        }
    }
    rules.extend(default_rules());
    for (i, d) in linux
        .and_then(|l| l.devices().as_ref())
        .iter()
        .copied()
        .flatten()
        .enumerate()
    {
        let field = format!("linux.devices[{i}]");
        let typ = match d.typ() {
            LinuxDeviceType::B => DEV_BLOCK,
            LinuxDeviceType::C | LinuxDeviceType::U => DEV_CHAR,
            _ => continue,
        };
        rules.push(Rule {
            typ: Some(typ),
            major: num(&field, "major", Some(d.major()))?,
            minor: num(&field, "minor", Some(d.minor()))?,
            access: ACC_READ | ACC_WRITE | ACC_MKNOD,
            allow: true,
        });
    }
    Ok(rules)
}

fn rule_block(rule: &Rule) -> Vec<Insn> {
    // Conditions jump to the end of this block; their offsets are patched below.
    let mut block = Vec::new();
    let mut jumps = Vec::new();
    if let Some(t) = rule.typ {
        jumps.push(block.len());
        block.push(insn(BPF_JNE_K, R2, 0, 0, t));
    }
    if rule.access != ACC_READ | ACC_WRITE | ACC_MKNOD {
        block.push(insn(BPF_ALU32_MOV_X, R1, R3, 0, 0));
        block.push(insn(BPF_ALU32_AND_K, R1, 0, 0, rule.access));
        jumps.push(block.len());
        block.push(insn(BPF_JNE_X, R1, R3, 0, 0));
    }
    if let Some(m) = rule.major {
        jumps.push(block.len());
        block.push(insn(BPF_JNE_K, R4, 0, 0, m as i32));
    }
    if let Some(m) = rule.minor {
        jumps.push(block.len());
        block.push(insn(BPF_JNE_K, R5, 0, 0, m as i32));
    }
    block.push(insn(BPF_ALU32_MOV_K, R0, 0, 0, i32::from(rule.allow)));
    block.push(insn(BPF_EXIT, 0, 0, 0, 0));
    let len = block.len();
    for j in jumps {
        // Offsets are relative to the next instruction: land just past this block.
        block[j].off = (len - j - 1) as i16;
    }
    block
}

/// Assembles the program for `rules`.
pub fn assemble(rules: &[Rule]) -> Vec<Insn> {
    let mut prog = vec![
        insn(BPF_LDX_MEM_W, R2, R1, 0, 0),
        insn(BPF_ALU32_AND_K, R2, 0, 0, 0xffff),
        insn(BPF_LDX_MEM_W, R3, R1, 0, 0),
        insn(BPF_ALU32_RSH_K, R3, 0, 0, 16),
        insn(BPF_LDX_MEM_W, R4, R1, 4, 0),
        insn(BPF_LDX_MEM_W, R5, R1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        prog.extend(rule_block(rule));
        if rule.matches_everything() {
            return prog;
        }
    }
    prog.push(insn(BPF_ALU32_MOV_K, R0, 0, 0, 0));
    prog.push(insn(BPF_EXIT, 0, 0, 0, 0));
    prog
}

/// A tiny interpreter of the programs [`assemble`] emits, for the unit tests.
#[cfg(test)]
fn run(prog: &[Insn], typ: i32, access: i32, major: u32, minor: u32) -> i32 {
    let ctx = [((access << 16) | typ) as u32, major, minor];
    let mut r = [0u32; 11];
    let mut pc = 0usize;
    loop {
        let i = prog[pc];
        let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
        pc += 1;
        match i.code {
            BPF_LDX_MEM_W => r[dst] = ctx[i.off as usize / 4],
            BPF_ALU32_AND_K => r[dst] &= i.imm as u32,
            BPF_ALU32_RSH_K => r[dst] >>= i.imm,
            BPF_ALU32_MOV_K => r[dst] = i.imm as u32,
            BPF_ALU32_MOV_X => r[dst] = r[src],
            BPF_JNE_K if r[dst] != i.imm as u32 => pc += i.off as usize,
            BPF_JNE_X if r[dst] != r[src] => pc += i.off as usize,
            BPF_JNE_K | BPF_JNE_X => {}
            BPF_EXIT => return r[0] as i32,
            other => panic!("unknown opcode {other:#x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(devices: serde_json::Value) -> Spec {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "linux": {"resources": {"devices": devices}}
        }))
        .unwrap()
    }

    #[test]
    fn runc_default_config() {
        let rules = rules_for_spec(&spec(
            serde_json::json!([{"allow": false, "access": "rwm"}]),
        ))
        .unwrap();
        let p = assemble(&rules);
        let rw = ACC_READ | ACC_WRITE;
        assert_eq!(run(&p, DEV_CHAR, rw, 1, 3), 1, "/dev/null");
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 136, 7), 1, "/dev/pts/7");
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 8, 0), 0, "/dev/sda read");
        assert_eq!(run(&p, DEV_BLOCK, ACC_MKNOD, 8, 0), 1, "mknod sda");
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 10, 200), 0, "tun");
        assert_eq!(run(&p, DEV_CHAR, ACC_READ | ACC_MKNOD, 1, 3), 1);
    }

    #[test]
    fn last_match_wins() {
        let rules = rules_for_spec(&spec(serde_json::json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "r"},
            {"allow": true, "type": "b", "major": 8, "access": "rw"},
            {"allow": false, "type": "b", "major": 8, "minor": 1, "access": "w"}
        ])))
        .unwrap();
        let p = assemble(&rules);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 10, 200), 1);
        assert_eq!(run(&p, DEV_CHAR, ACC_WRITE, 10, 200), 0);
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ | ACC_WRITE, 8, 3), 1);
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 8, 1), 1);
        assert_eq!(run(&p, DEV_BLOCK, ACC_WRITE, 8, 1), 0);
    }

    #[test]
    fn allow_all_last_stops_emission() {
        let rules = rules_for_spec(&spec(serde_json::json!([
            {"allow": false, "type": "b", "access": "rwm"}
        ])))
        .unwrap();
        let mut rules = rules;
        rules.push(Rule {
            typ: None,
            major: None,
            minor: None,
            access: ACC_READ | ACC_WRITE | ACC_MKNOD,
            allow: true,
        });
        let p = assemble(&rules);
        assert_eq!(p.len(), 6 + 2, "only the prelude and the allow-all block");
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 8, 0), 1);
    }

    #[test]
    fn bad_access_is_named() {
        let e = rules_for_spec(&spec(serde_json::json!([{"allow": true, "access": "rx"}])))
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux.resources.devices[0]"), "{e}");
    }
}
