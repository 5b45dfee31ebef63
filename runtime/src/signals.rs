//! Signals: parsing `kill`'s argument (names with or without `SIG`, `RTMIN+n`, numbers),
//! and the foreground `run` loop that forwards every signal it receives to the
//! container's init and reaps it (the runtime is init's subreaper there), turning its
//! wait status into the exit code (`128 + signal` when killed, like a shell).
//!
//! The loop uses `sigwait` on a blocked set rather than handlers: no async-signal-safety
//! concerns, and signals that arrive while the container is still being created stay
//! pending instead of killing the half-created container's parent.

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// Signal errors.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// The argument is not a known signal.
    #[error("invalid signal {0:?}")]
    Invalid(String),
    /// A syscall failed.
    #[error("{step}: {source}")]
    Sys {
        /// The step.
        step: &'static str,
        /// The underlying error.
        source: Errno,
    },
}

/// Parses `SIGTERM`, `TERM`, `term`, `15`, `RTMIN+2`, `SIGRTMAX-1`.
pub fn parse(s: &str) -> Result<i32, SignalError> {
    let invalid = || SignalError::Invalid(s.to_owned());
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=libc::SIGRTMAX()).contains(&n) {
            Ok(n)
        } else {
            Err(invalid())
        };
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let rt = |base: i32, rest: &str, sign: i32| -> Result<i32, SignalError> {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.parse().map_err(|_| invalid())?
        };
        let n = base + sign * off;
        if (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&n) {
            Ok(n)
        } else {
            Err(invalid())
        }
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return rt(libc::SIGRTMIN(), rest.trim_start_matches('+'), 1);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return rt(libc::SIGRTMAX(), rest.trim_start_matches('-'), -1);
    }
    format!("SIG{name}")
        .parse::<Signal>()
        .map(|s| s as i32)
        .map_err(|_| invalid())
}

/// Sends raw signal number `sig` to `pid`.
pub fn send(pid: i32, sig: i32) -> Result<(), Errno> {
    // SAFETY: kill(2) with a plain pid and signal number has no memory-safety
    // requirements; a raw number is needed for real-time signals nix's enum lacks.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc == 0 { Ok(()) } else { Err(Errno::last()) }
}

/// The asynchronous signals the foreground `run` blocks and forwards (synchronous fault
/// signals stay unblocked so a crash is still a crash).
pub fn forwardable() -> SigSet {
    let mut set = SigSet::all();
    for s in [
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGFPE,
        Signal::SIGILL,
        Signal::SIGTRAP,
        Signal::SIGSYS,
    ] {
        set.remove(s);
    }
    set
}

/// Blocks [`forwardable`]; call before spawning so nothing is lost or acted on early.
pub fn block_forwardable() -> Result<(), SignalError> {
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwardable()), None).map_err(|source| {
        SignalError::Sys {
            step: "sigprocmask",
            source,
        }
    })
}

/// Forwards signals to `init` until it exits; returns its exit code. Other children
/// (orphans re-parented to this subreaper) are reaped along the way.
pub fn forward_until_exit(init: i32) -> Result<i32, SignalError> {
    let set = forwardable();
    loop {
        if let Some(code) = reap(init)? {
            return Ok(code);
        }
        let mut sig: libc::c_int = 0;
        // SAFETY: `set` is a valid sigset_t for the duration of the call and `sig` is a
        // valid out-pointer; sigwait only writes the received signal number there.
        let rc = unsafe { libc::sigwait(set.as_ref(), &mut sig) };
        if rc != 0 {
            return Err(SignalError::Sys {
                step: "sigwait",
                source: Errno::from_raw(rc),
            });
        }
        if sig == libc::SIGCHLD || sig == libc::SIGWINCH || sig == libc::SIGURG {
            continue;
        }
        tracing::debug!(
            signal = sig,
            pid = init,
            "forwarding signal to container init"
        );
        match send(init, sig) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(source) => {
                return Err(SignalError::Sys {
                    step: "forward signal",
                    source,
                });
            }
        }
    }
}

/// Reaps every exited child; `Some(code)` once `init` is among them.
fn reap(init: i32) -> Result<Option<i32>, SignalError> {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid.as_raw() == init => return Ok(Some(code)),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid.as_raw() == init => {
                return Ok(Some(128 + sig as i32));
            }
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return Ok(None),
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            Err(source) => {
                return Err(SignalError::Sys {
                    step: "waitpid",
                    source,
                });
            }
        }
    }
}

/// Sends `sig` to `pid` unless it is gone; used by kill/delete.
pub fn kill_signal(pid: i32, sig: Signal) -> Result<(), Errno> {
    match kill(Pid::from_raw(pid), sig) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_numbers() {
        assert_eq!(parse("SIGTERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse("term").unwrap(), libc::SIGTERM);
        assert_eq!(parse("KILL").unwrap(), libc::SIGKILL);
        assert_eq!(parse("9").unwrap(), 9);
        assert_eq!(parse("RTMIN+1").unwrap(), libc::SIGRTMIN() + 1);
        assert!(parse("SIGNOPE").is_err());
        assert!(parse("0").is_err());
        assert!(parse("99").is_err());
    }
}
