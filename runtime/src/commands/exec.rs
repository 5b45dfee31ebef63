//! `exec [flags] ID [ARGS...]`: run a new process in a running (or created) container.
//!
//! The process is `--process FILE` (a runtime-spec `process` object), or, like runc, the
//! container's `config.json` process with `ARGS`, `--cwd`, `--env` (appended; a later
//! value of a variable replaces an earlier one), `--user UID[:GID]`, `--additional-gids`,
//! `--cap` (added to the bounding, effective, permitted and ambient sets),
//! `--no-new-privs` and `--tty` applied. It joins the container's cgroup (the one its init
//! is in, when cgroups are managed) and namespaces, and gets the container's seccomp
//! filter. In the foreground the runtime forwards signals to it and exits with its
//! status (`128 + signal` if killed); with `--detach` it returns once the process has
//! started. `--pid-file` gets its host pid either way. Like runc, a failure of `exec`
//! itself exits with 255 ("exec failed: ..."), never with a status the process could have.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{Capability, Process, Spec};

use crate::bundle::Bundle;
use crate::cli::ExecArgs;
use crate::console;
use crate::container_id::ContainerId;
use crate::error::Error;
use crate::process::exec::{self as exec_spawn, ExecRequest};
use crate::seccomp;
use crate::signals;
use crate::spawn;
use crate::state::{self, Status};
use crate::terminal;

use super::Context;

/// Runs `exec`; returns the exit code to exit with.
pub fn run(ctx: &Context, args: &ExecArgs) -> Result<i32, Error> {
    let id = ContainerId::parse(&args.id)?;
    let st = ctx.root.load(&id)?;
    match ctx.root.status(&st) {
        Status::Running | Status::Created => {}
        Status::Paused if args.ignore_paused => {}
        Status::Paused => {
            return Err(refused(
                "cannot exec in a paused container (use --ignore-paused to override)",
            ));
        }
        Status::Stopped => return Err(refused("cannot exec in a stopped container")),
        Status::Creating => return Err(refused("cannot exec in a container being created")),
    }
    let spec = load_spec(&st.bundle)?;
    let process = build_process(args, &spec)?;
    validate(&process)?;
    terminal::check_flags(
        process.terminal() == Some(true),
        args.detach,
        args.console_socket.as_deref(),
    )?;
    let pid_file = args
        .pid_file
        .as_deref()
        .map(|p| {
            std::path::absolute(p).map_err(|source| Error::Io {
                step: "resolve",
                path: p.to_owned(),
                source,
            })
        })
        .transpose()?;

    // The cgroup init is in now (it may have moved into a sub-cgroup of the container's).
    let cgroup_dir = match &st.cgroup_path {
        Some(dir) => Some(current_cgroup_dir(st.init_pid).unwrap_or_else(|| dir.clone())),
        None => None,
    };
    let min_fd = 3 + args.preserve_fds as i32;
    // A foreground process with a terminal: the runtime is the console.
    let own_console = if process.terminal() == Some(true) && !args.detach {
        Some(console::pair()?)
    } else {
        None
    };
    let console = match (args.console_socket.as_deref(), own_console.as_ref()) {
        (Some(path), _) => Some(terminal::connect(path)?),
        (None, Some((_, theirs))) => Some(theirs.try_clone().map_err(|source| Error::Io {
            step: "dup the console socket",
            path: "/".into(),
            source,
        })?),
        (None, None) => None,
    }
    .map(|fd| spawn::move_above(fd, min_fd))
    .transpose()?;
    let filter = seccomp::compile_for(&spec)?;

    if !args.detach {
        nix::sys::prctl::set_child_subreaper(true).map_err(|e| Error::Io {
            step: "prctl(PR_SET_CHILD_SUBREAPER)",
            path: "/".into(),
            source: e.into(),
        })?;
        signals::block_forwardable()?;
    }
    let pid = exec_spawn::spawn(&ExecRequest {
        init_pid: st.init_pid,
        process: &process,
        cgroup_dir: cgroup_dir.as_deref(),
        preserve_fds: args.preserve_fds,
        console_socket: console.as_ref(),
        seccomp: filter.as_ref(),
    })?;
    drop(console);
    tracing::info!(id = %id, pid, "exec process started");
    if let Some(pf) = pid_file {
        state::write_atomic(&pf, pid.to_string().as_bytes())?;
    }
    if args.detach {
        return Ok(0);
    }
    if let Some((ours, theirs)) = own_console {
        drop(theirs);
        let master = console::receive_master(&ours)?;
        return Ok(console::relay(master, pid)?);
    }
    Ok(signals::forward_until_exit(pid)?)
}

fn refused(reason: &str) -> Error {
    Error::Refused {
        reason: reason.to_owned(),
    }
}

fn load_spec(bundle: &Path) -> Result<Spec, Error> {
    Ok(Bundle::load(bundle)?.spec)
}

/// `/sys/fs/cgroup/<path>` from init's `/proc/<pid>/cgroup` (`0::<path>`).
fn current_cgroup_dir(pid: i32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let rel = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'));
    dir.is_dir().then_some(dir)
}

/// The process to run: `--process FILE`, or the config's process with the flags applied.
pub fn build_process(args: &ExecArgs, spec: &Spec) -> Result<Process, Error> {
    if let Some(path) = &args.process {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            step: "read --process",
            path: path.clone(),
            source,
        })?;
        return serde_json::from_slice(&bytes).map_err(|e| Error::Usage {
            flag: "--process",
            reason: format!("{}: invalid process JSON: {e}", path.display()),
        });
    }
    let mut p = spec.process().clone().unwrap_or_default();
    let mut cmd = args.args.as_slice();
    if cmd.first().is_some_and(|a| a == "--") {
        cmd = &cmd[1..];
    }
    p.set_args(Some(cmd.to_vec()));
    if let Some(cwd) = &args.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut env = p.env().clone().unwrap_or_default();
    for e in &args.env {
        let key = e.split('=').next().unwrap_or(e);
        match env.iter_mut().find(|x| x.split('=').next() == Some(key)) {
            Some(slot) => *slot = e.clone(),
            None => env.push(e.clone()),
        }
    }
    p.set_env(Some(env));
    p.set_terminal(Some(args.tty));
    if args.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(apparmor) = &args.apparmor {
        p.set_apparmor_profile(Some(apparmor.clone()));
    }
    if let Some(label) = &args.process_label {
        p.set_selinux_label(Some(label.clone()));
    }
    let mut user = p.user().clone();
    if let Some(u) = &args.user {
        let (uid, gid) = match u.split_once(':') {
            Some((uid, gid)) => (uid, Some(gid)),
            None => (u.as_str(), None),
        };
        let num = |s: &str| {
            s.parse::<u32>().map_err(|_| Error::Usage {
                flag: "--user",
                reason: format!("{u:?}: expected UID[:GID] (numeric)"),
            })
        };
        user.set_uid(num(uid)?);
        if let Some(gid) = gid {
            user.set_gid(num(gid)?);
        }
    }
    if !args.additional_gids.is_empty() {
        let mut gids = user.additional_gids().clone().unwrap_or_default();
        gids.extend(&args.additional_gids);
        user.set_additional_gids(Some(gids));
    }
    p.set_user(user);
    if !args.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for name in &args.cap {
            let upper = name.to_ascii_uppercase();
            let full = if upper.starts_with("CAP_") {
                upper
            } else {
                format!("CAP_{upper}")
            };
            let cap: Capability =
                serde_json::from_value(serde_json::Value::String(full)).map_err(|_| {
                    Error::Usage {
                        flag: "--cap",
                        reason: format!("unknown capability {name:?}"),
                    }
                })?;
            let add = |set: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = set.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
            caps.set_ambient(add(caps.ambient()));
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

fn validate(p: &Process) -> Result<(), Error> {
    if p.args()
        .as_ref()
        .is_none_or(|a| a.is_empty() || a[0].is_empty())
    {
        return Err(Error::Usage {
            flag: "exec",
            reason: "the process has no arguments (give a command or --process FILE)".into(),
        });
    }
    if !p.cwd().is_absolute() {
        return Err(Error::Usage {
            flag: "--cwd",
            reason: format!("{:?} must be an absolute path", p.cwd()),
        });
    }
    if let Some(i) = p.env().iter().flatten().position(|e| !e.contains('=')) {
        return Err(Error::Usage {
            flag: "--env",
            reason: format!("{:?} is not KEY=VALUE", p.env().as_ref().unwrap()[i]),
        });
    }
    if p.apparmor_profile().as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(Error::NotSupported {
            what: "process.apparmorProfile (--apparmor)".into(),
        });
    }
    if p.selinux_label().as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(Error::NotSupported {
            what: "process.selinuxLabel (--process-label)".into(),
        });
    }
    for (field, set) in [
        ("process.ioPriority", p.io_priority().is_some()),
        ("process.scheduler", p.scheduler().is_some()),
        ("process.execCPUAffinity", p.exec_cpu_affinity().is_some()),
    ] {
        if set {
            return Err(Error::NotSupported { what: field.into() });
        }
    }
    Ok(())
}
