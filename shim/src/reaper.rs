//! The shim is the child subreaper of everything it starts: `berth-runtime` invocations
//! (its children) and container processes (re-parented to it when the runtime exits).
//! One thread reaps them all with `waitpid(-1)`, so nobody else may call `wait`:
//! runtime invocations are spawned through [`Reaper::spawn`], which registers the pid
//! under the same lock the reaper thread takes before handing out a status (no exit can
//! be lost between `fork` and registration). Every other exit goes to the exit callback
//! (the task service), with its time.

use std::collections::HashMap;
use std::io;
use std::process::{Child, Command};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

/// A callback for exits of processes nobody spawned through [`Reaper::spawn`].
pub type ExitHandler = Box<dyn Fn(i32, i32, SystemTime) + Send + Sync>;

/// Exit status as a shell reports it: the code, or 128 + the signal.
pub fn exit_code(ws: WaitStatus) -> Option<i32> {
    match ws {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

#[derive(Default)]
struct State {
    waiters: HashMap<i32, Sender<i32>>,
}

/// The reaper (see the module doc).
pub struct Reaper {
    state: Mutex<State>,
    wake: Condvar,
    on_exit: OnceLock<ExitHandler>,
}

impl Reaper {
    /// Becomes the child subreaper and starts the reaping thread.
    pub fn start() -> io::Result<Arc<Reaper>> {
        nix::sys::prctl::set_child_subreaper(true).map_err(io::Error::from)?;
        let reaper = Arc::new(Reaper {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            on_exit: OnceLock::new(),
        });
        let r = reaper.clone();
        std::thread::Builder::new()
            .name("reaper".into())
            .stack_size(64 * 1024)
            .spawn(move || r.run())?;
        Ok(reaper)
    }

    /// Sets the exit callback (once).
    pub fn set_exit_handler(&self, h: ExitHandler) {
        let _ = self.on_exit.set(h);
    }

    fn run(&self) {
        loop {
            match waitpid(Pid::from_raw(-1), None) {
                Ok(ws) => {
                    let (Some(pid), Some(code)) = (ws.pid(), exit_code(ws)) else {
                        continue;
                    };
                    let now = SystemTime::now();
                    let waiter = self.state.lock().unwrap().waiters.remove(&pid.as_raw());
                    match waiter {
                        Some(tx) => {
                            let _ = tx.send(code);
                        }
                        None => {
                            if let Some(h) = self.on_exit.get() {
                                h(pid.as_raw(), code, now);
                            }
                        }
                    }
                }
                Err(Errno::ECHILD) => {
                    // No children: sleep until a spawn (or, at worst, a second passes).
                    let st = self.state.lock().unwrap();
                    let _ = self.wake.wait_timeout(st, Duration::from_secs(1));
                }
                Err(Errno::EINTR) => {}
                Err(e) => {
                    eprintln!("shim: waitpid: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    /// Spawns `cmd`; its exit status arrives on the returned channel.
    pub fn spawn(&self, cmd: &mut Command) -> io::Result<(Child, Receiver<i32>)> {
        let mut st = self.state.lock().unwrap();
        let child = cmd.spawn()?;
        let (tx, rx) = channel();
        st.waiters.insert(child.id() as i32, tx);
        drop(st);
        self.wake.notify_all();
        Ok((child, rx))
    }
}
