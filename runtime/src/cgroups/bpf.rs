//! Loading a device program and attaching it to a cgroup, with `bpf(2)` directly
//! (`libc::syscall(SYS_bpf, ...)`). Two commands with small, stable attribute layouts are
//! all that is needed, so no BPF crate is pulled in (the maintained ones, aya and
//! libbpf-rs, bring an ELF loader or a C library for what is 60 lines here).
//!
//! The program is attached with `BPF_F_ALLOW_MULTI`, like runc: programs attached to
//! ancestor cgroups still run, and each must allow an access. Once attached, the
//! program lives as long as the cgroup; the fd can be closed.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::CgroupError;
use super::device_filter::Insn;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The `BPF_PROG_LOAD` part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The `BPF_PROG_ATTACH` part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, initialised `#[repr(C)]` prefix of `union bpf_attr` for
    // `cmd`, and its size is passed, so the kernel reads (and writes) only within it. Any
    // pointers inside it point to buffers that outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn load(prog: &[Insn], log: Option<&mut Vec<u8>>) -> std::io::Result<OwnedFd> {
    let license = c"Apache";
    let mut name = [0u8; 16];
    name[..10].copy_from_slice(b"berth_devs");
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
    if let Some(buf) = log {
        attr.log_level = 1;
        attr.log_size = buf.len() as u32;
        attr.log_buf = buf.as_mut_ptr() as u64;
    }
    let fd = bpf(BPF_PROG_LOAD, &mut attr)?;
    // SAFETY: BPF_PROG_LOAD returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Loads `prog` and attaches it to the cgroup directory `cgroup_dir`.
pub fn attach_device_filter(cgroup_dir: &Path, prog: &[Insn]) -> Result<(), CgroupError> {
    let fd = match load(prog, None) {
        Ok(fd) => fd,
        Err(source) => {
            // Load again with the verifier log, for the error message.
            let mut buf = vec![0u8; 64 * 1024];
            let _ = load(prog, Some(&mut buf));
            let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
            let text = String::from_utf8_lossy(&buf[..end]).trim().to_owned();
            return Err(CgroupError::Bpf {
                step: "load the device filter (BPF_PROG_LOAD)",
                source,
                log: if text.is_empty() {
                    String::new()
                } else {
                    format!("\nverifier log:\n{text}")
                },
            });
        }
    };
    let dir = std::fs::File::open(cgroup_dir).map_err(|source| CgroupError::Io {
        step: "open cgroup",
        path: cgroup_dir.to_owned(),
        source,
    })?;
    let mut attr = ProgAttachAttr {
        target_fd: dir.as_raw_fd() as u32,
        attach_bpf_fd: fd.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(|source| CgroupError::Bpf {
        step: "attach the device filter to the cgroup (BPF_PROG_ATTACH)",
        source,
        log: format!(" ({})", cgroup_dir.display()),
    })?;
    Ok(())
}
