//! `linux.seccomp` → seccomp BPF, built with `seccompiler` before forking and installed by
//! the container process as late as possible ([`crate::process::program`]).
//!
//! seccompiler's filters have one action for every matching rule, while a runtime-spec
//! profile gives each rule its own. The profile is therefore compiled to a small stack of
//! filters, which the kernel evaluates together, taking the most restrictive result
//! (`KILL_PROCESS` > `KILL_THREAD` > `TRAP` > `ERRNO` > `TRACE` > `LOG` > `ALLOW`):
//!
//! - a base filter: every syscall named by any rule (with that rule's argument
//!   conditions) → `ALLOW`, anything else → `defaultAction` (left out when the default is
//!   `SCMP_ACT_ALLOW`);
//! - one filter per other action (each distinct errno is its own action): its rules →
//!   that action, anything else → `ALLOW`.
//!
//! So a syscall gets the action of the rules that match it, or the default. Rules with
//! the default action are skipped, as runc does; syscall names this architecture does not
//! have are skipped (debug log), as libseccomp does for runc; conditions on the same
//! argument index in one rule are OR-ed (one rule each), otherwise AND-ed (runc's rule).
//! `SCMP_ACT_ERRNO`/`SCMP_ACT_TRACE` without `errnoRet` use `EPERM`; the default action
//! uses `defaultErrnoRet`. `SCMP_ACT_NOTIFY` (and `listenerPath`) is not supported yet.
//!
//! Only the native architecture is filtered (x86_64); a syscall made through another ABI
//! (i386 `int 0x80`, x32) kills the process, which is seccompiler's architecture check.

mod syscalls_x86_64;

use std::collections::{BTreeMap, HashMap};

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator, Spec,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule,
    TargetArch,
};

/// A seccomp error, naming the field.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// Something in the profile is not implemented.
    #[error("linux.seccomp: {0} is not supported yet")]
    NotSupported(String),
    /// The profile is invalid.
    #[error("linux.seccomp: {field}: {reason}")]
    Invalid {
        /// The JSON path.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// Installing the filter failed.
    #[error("linux.seccomp: install the filter: {0}")]
    Install(std::io::Error),
}

/// A compiled profile: the filters to install, in order, and the flags.
#[derive(Debug, Clone)]
pub struct SeccompFilter {
    programs: Vec<BpfProgram>,
    flags: libc::c_ulong,
}

impl SeccompFilter {
    /// Installs the filters on the calling thread. Needs `no_new_privs` or
    /// `CAP_SYS_ADMIN`; unlike `seccompiler::apply_filter`, it does not set
    /// `no_new_privs` itself (the spec's `noNewPrivileges` decides that).
    pub fn install(&self) -> Result<(), SeccompError> {
        for program in &self.programs {
            let prog = libc::sock_fprog {
                len: program.len() as u16,
                // seccompiler's sock_filter is #[repr(C)] with the same fields as the
                // kernel's (u16 code, u8 jt, u8 jf, u32 k).
                filter: program.as_ptr().cast::<libc::sock_filter>().cast_mut(),
            };
            // SAFETY: `prog` points to `program`, which outlives the call; the kernel
            // copies the instructions and does not keep the pointer.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    self.flags,
                    &prog as *const libc::sock_fprog,
                )
            };
            if rc < 0 {
                return Err(SeccompError::Install(std::io::Error::last_os_error()));
            }
        }
        Ok(())
    }

    /// How many filters the profile compiled to.
    pub fn filter_count(&self) -> usize {
        self.programs.len()
    }
}

/// Compiles the spec's `linux.seccomp`, if any.
pub fn compile_for(spec: &Spec) -> Result<Option<SeccompFilter>, SeccompError> {
    match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        None => Ok(None),
        Some(profile) => compile(profile).map(Some),
    }
}

fn syscall_number(name: &str) -> Option<i64> {
    let table = syscalls_x86_64::SYSCALLS;
    table
        .binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .map(|i| table[i].1)
}

fn native_arch() -> Result<(TargetArch, Arch), SeccompError> {
    if cfg!(target_arch = "x86_64") {
        Ok((TargetArch::x86_64, Arch::ScmpArchX86_64))
    } else {
        Err(SeccompError::NotSupported(format!(
            "seccomp on {}",
            std::env::consts::ARCH
        )))
    }
}

/// The action as seccompiler's, or `NotSupported`.
fn action(
    a: LinuxSeccompAction,
    errno: Option<u32>,
    field: &str,
) -> Result<SeccompAction, SeccompError> {
    let errno = errno.unwrap_or(libc::EPERM as u32);
    Ok(match a {
        LinuxSeccompAction::ScmpActAllow => SeccompAction::Allow,
        LinuxSeccompAction::ScmpActErrno => SeccompAction::Errno(errno),
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            SeccompAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => SeccompAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => SeccompAction::Trap,
        LinuxSeccompAction::ScmpActLog => SeccompAction::Log,
        LinuxSeccompAction::ScmpActTrace => SeccompAction::Trace(errno),
        LinuxSeccompAction::ScmpActNotify => {
            return Err(SeccompError::NotSupported(format!(
                "{field}: SCMP_ACT_NOTIFY"
            )));
        }
    })
}

fn op(o: LinuxSeccompOperator, value_two: Option<u64>) -> SeccompCmpOp {
    match o {
        LinuxSeccompOperator::ScmpCmpEq => SeccompCmpOp::Eq,
        LinuxSeccompOperator::ScmpCmpNe => SeccompCmpOp::Ne,
        LinuxSeccompOperator::ScmpCmpLt => SeccompCmpOp::Lt,
        LinuxSeccompOperator::ScmpCmpLe => SeccompCmpOp::Le,
        LinuxSeccompOperator::ScmpCmpGt => SeccompCmpOp::Gt,
        LinuxSeccompOperator::ScmpCmpGe => SeccompCmpOp::Ge,
        // libseccomp: (arg & value) == valueTwo; seccompiler: (arg & mask) == value.
        LinuxSeccompOperator::ScmpCmpMaskedEq => SeccompCmpOp::MaskedEq(value_two.unwrap_or(0)),
    }
}

/// Rules of one action: syscall → `None` (unconditional) or the alternative rules.
type RuleSet = HashMap<i64, Option<Vec<SeccompRule>>>;

fn add(set: &mut RuleSet, nr: i64, rules: Option<Vec<SeccompRule>>) {
    match (set.get_mut(&nr), rules) {
        (Some(None), _) => {}
        (Some(slot), None) => *slot = None,
        (Some(Some(existing)), Some(more)) => existing.extend(more),
        (None, r) => {
            set.insert(nr, r);
        }
    }
}

fn to_map(set: &RuleSet) -> BTreeMap<i64, Vec<SeccompRule>> {
    set.iter()
        .map(|(nr, rules)| (*nr, rules.clone().unwrap_or_default()))
        .collect()
}

fn flag_bits(flags: &[LinuxSeccompFilterFlag]) -> Result<libc::c_ulong, SeccompError> {
    let mut bits = 0;
    for f in flags {
        bits |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            other => {
                return Err(SeccompError::NotSupported(format!("flags: {other:?}")));
            }
        };
    }
    Ok(bits)
}

/// Compiles a profile (see the module docs).
pub fn compile(profile: &LinuxSeccomp) -> Result<SeccompFilter, SeccompError> {
    let (target, native) = native_arch()?;
    if let Some(archs) = profile.architectures().as_ref().filter(|a| !a.is_empty()) {
        if !archs.contains(&native) {
            tracing::debug!(
                ?archs,
                "seccomp profile does not list the native architecture; it is filtered anyway (libseccomp does the same)"
            );
        }
    }
    if profile.listener_path().is_some() {
        return Err(SeccompError::NotSupported("listenerPath".into()));
    }
    let default = action(
        profile.default_action(),
        profile.default_errno_ret(),
        "defaultAction",
    )?;
    let flags = flag_bits(profile.flags().as_deref().unwrap_or(&[]))?;

    // Every non-default action in first-seen order, with its rules.
    let mut groups: Vec<(SeccompAction, RuleSet)> = Vec::new();
    let mut all = RuleSet::new();
    for (i, call) in profile.syscalls().iter().flatten().enumerate() {
        let field = format!("syscalls[{i}]");
        let act = action(call.action(), call.errno_ret(), &format!("{field}.action"))?;
        if act == default {
            continue;
        }
        let rules = rules_of(call.args().as_deref().unwrap_or(&[]), &field)?;
        let group = match groups.iter().position(|(a, _)| *a == act) {
            Some(g) => g,
            None => {
                groups.push((act.clone(), RuleSet::new()));
                groups.len() - 1
            }
        };
        for name in call.names() {
            let Some(nr) = syscall_number(name) else {
                tracing::debug!(syscall = %name, "seccomp: syscall unknown on this architecture; skipped");
                continue;
            };
            add(&mut groups[group].1, nr, rules.clone());
            add(&mut all, nr, rules.clone());
        }
    }

    let build =
        |rules: BTreeMap<i64, Vec<SeccompRule>>,
         mismatch: SeccompAction,
         matched: SeccompAction|
         -> Result<BpfProgram, SeccompError> {
            let filter = seccompiler::SeccompFilter::new(rules, mismatch, matched, target)
                .map_err(|e| SeccompError::Invalid {
                    field: "syscalls".into(),
                    reason: e.to_string(),
                })?;
            filter
                .try_into()
                .map_err(|e: seccompiler::BackendError| SeccompError::Invalid {
                    field: "syscalls".into(),
                    reason: e.to_string(),
                })
        };
    let mut programs = Vec::new();
    if default != SeccompAction::Allow {
        programs.push(build(to_map(&all), default.clone(), SeccompAction::Allow)?);
    }
    for (act, rules) in &groups {
        if *act != SeccompAction::Allow {
            programs.push(build(to_map(rules), SeccompAction::Allow, act.clone())?);
        }
    }
    if programs.is_empty() {
        // Default ALLOW and no other rule: still a filter (the architecture check).
        programs.push(build(
            BTreeMap::new(),
            SeccompAction::Allow,
            SeccompAction::Trap,
        )?);
    }
    Ok(SeccompFilter { programs, flags })
}

/// A rule's argument conditions: `None` when it has none (matches the syscall
/// unconditionally); several rules when an argument index repeats (runc's OR rule).
fn rules_of(
    args: &[oci_spec::runtime::LinuxSeccompArg],
    field: &str,
) -> Result<Option<Vec<SeccompRule>>, SeccompError> {
    if args.is_empty() {
        return Ok(None);
    }
    let mut conditions = Vec::new();
    for (j, a) in args.iter().enumerate() {
        let index = u8::try_from(a.index())
            .ok()
            .filter(|i| *i < 6)
            .ok_or_else(|| SeccompError::Invalid {
                field: format!("{field}.args[{j}].index"),
                reason: format!("{} is not an argument index (0-5)", a.index()),
            })?;
        let cond = SeccompCondition::new(
            index,
            SeccompCmpArgLen::Qword,
            op(a.op(), a.value_two()),
            a.value(),
        )
        .map_err(|e| SeccompError::Invalid {
            field: format!("{field}.args[{j}]"),
            reason: e.to_string(),
        })?;
        conditions.push((index, cond));
    }
    let mut seen = [0u8; 6];
    for (i, _) in &conditions {
        seen[*i as usize] += 1;
    }
    let rule = |c: Vec<SeccompCondition>| {
        SeccompRule::new(c).map_err(|e| SeccompError::Invalid {
            field: format!("{field}.args"),
            reason: e.to_string(),
        })
    };
    if seen.iter().any(|n| *n > 1) {
        conditions
            .into_iter()
            .map(|(_, c)| rule(vec![c]))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    } else {
        Ok(Some(vec![rule(
            conditions.into_iter().map(|(_, c)| c).collect(),
        )?]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn syscall_table_lookup() {
        assert_eq!(syscall_number("read"), Some(0));
        assert_eq!(syscall_number("mkdir"), Some(83));
        assert_eq!(syscall_number("no_such_call"), None);
    }

    #[test]
    fn compiles_to_a_stack_of_filters() {
        let p = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [
                {"names": ["read", "write", "not_a_syscall"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
            ]
        }));
        // base (default ENOSYS) + EPERM group; the ENOSYS rule equals the default.
        assert_eq!(compile(&p).unwrap().filter_count(), 2);
    }

    #[test]
    fn notify_is_not_supported() {
        let p = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        }));
        let e = compile(&p).unwrap_err().to_string();
        assert!(e.contains("SCMP_ACT_NOTIFY is not supported yet"), "{e}");
    }
}
