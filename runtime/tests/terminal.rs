//! `process.terminal` with `--console-socket`: a receiver in the test gets the pty master
//! (runc's protocol: one message, SCM_RIGHTS), drives a shell through it, and checks the
//! terminal, its size and `/dev/console`; the same for `exec --tty`.

mod common;

use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Runtime, TestBundle, ok, stderr};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use serde_json::json;

/// Accepts one connection on `path` and receives the fd and payload sent over it.
fn receive_console(path: &Path) -> std::thread::JoinHandle<(OwnedFd, String)> {
    let listener = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 256];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .unwrap();
        let mut fd = None;
        for c in msg.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmRights(fds) = c {
                fd = fds.first().copied();
            }
        }
        let n = msg.bytes;
        let name = String::from_utf8_lossy(&buf[..n]).into_owned();
        // SAFETY: the kernel just installed this fd in our table for us (SCM_RIGHTS).
        let fd = unsafe { OwnedFd::from_raw_fd(fd.expect("no fd in the message")) };
        (fd, name)
    })
}

/// Collects everything read from the master in the background.
struct Console {
    master: std::fs::File,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Console {
    fn new(fd: OwnedFd) -> Self {
        let master = std::fs::File::from(fd);
        let mut reader = master.try_clone().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            // EIO once the last slave fd is closed.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Self { master, seen }
    }

    fn send(&mut self, line: &str) {
        self.master.write_all(line.as_bytes()).unwrap();
    }

    fn wait_for(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned();
            if text.contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} never appeared on the terminal: {text:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn resize(&self, rows: u16, cols: u16) {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from a live local.
        let rc = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        assert_eq!(rc, 0);
    }
}

#[test]
fn create_with_console_socket() {
    let rt = Runtime::new();
    let b = TestBundle::new(&["/bin/sh"]);
    b.edit(|c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["consoleSize"] = json!({"height": 24, "width": 80});
    });
    let sock = b.path().join("console.sock");
    let receiver = receive_console(&sock);
    ok(&rt.create(&b, "tty", &["--console-socket", sock.to_str().unwrap()]));
    let (master, name) = receiver.join().unwrap();
    assert_eq!(name, "/dev/ptmx");
    let mut console = Console::new(master);
    ok(&rt.run(&["start", "tty"]));
    console.send("stty size; echo A$((40+2))\n");
    console.wait_for("24 80");
    console.wait_for("A42");
    console.resize(30, 100);
    console.send("tty; stty size; stat -c %t:%T /dev/console; [ -t 0 ] && echo STDIN-TTY\n");
    console.wait_for("/dev/pts/0");
    console.wait_for("30 100");
    console.wait_for("88:0");
    console.wait_for("STDIN-TTY");
    console.send("exit 3\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while rt.state("tty").unwrap()["status"] != "stopped" {
        assert!(Instant::now() < deadline, "shell did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    ok(&rt.run(&["delete", "tty"]));
}

#[test]
fn exec_tty_with_console_socket() {
    let rt = Runtime::new();
    let b = TestBundle::new(&["/bin/sleep", "100"]);
    ok(&rt.run_detached(&b, "xtty"));
    let sock = b.path().join("exec.sock");
    let receiver = receive_console(&sock);
    let mut c = rt.cmd();
    c.args(["exec", "--tty", "--detach", "--console-socket"])
        .arg(&sock)
        .args(["xtty", "sh"]);
    ok(&rt.output_detached(c));
    let (master, _) = receiver.join().unwrap();
    let mut console = Console::new(master);
    console.send("tty; echo pid=$$\n");
    console.wait_for("/dev/pts/0");
    console.wait_for("pid=");
    console.send("exit\n");
    ok(&rt.run(&["delete", "--force", "xtty"]));
}

/// Runs `cmd` with `input` on stdin (a pipe), capturing output.
fn with_stdin(mut cmd: std::process::Command, input: &str) -> std::process::Output {
    use std::process::Stdio;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn foreground_run_and_exec_with_a_terminal() {
    let rt = Runtime::new();
    let b = TestBundle::new(&["/bin/sh"]);
    b.edit(|c| c["process"]["terminal"] = json!(true));
    // The runtime is the console: stdin goes to the pty, the pty to stdout.
    let mut c = rt.cmd();
    c.arg("run").arg("--bundle").arg(b.path()).arg("fg");
    let out = with_stdin(c, "tty; echo A$((40+2)); exit 3\n");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("/dev/pts/0") && text.contains("A42"),
        "{text}"
    );
    assert!(rt.is_empty());

    let b = TestBundle::new(&["/bin/sleep", "100"]);
    ok(&rt.run_detached(&b, "fgx"));
    let mut c = rt.cmd();
    c.args(["exec", "-t", "fgx", "sh"]);
    let out = with_stdin(c, "[ -t 0 ] && echo IS-A-TTY; exit 4\n");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("IS-A-TTY"));
    ok(&rt.run(&["delete", "--force", "fgx"]));
}

#[test]
fn console_socket_rules_match_runc() {
    let rt = Runtime::new();
    let b = TestBundle::new(&["/bin/sh"]);
    b.edit(|c| c["process"]["terminal"] = json!(true));
    let out = rt.run_detached(&b, "t1");
    assert!(!out.status.success());
    assert!(
        stderr(&out)
            .contains("cannot allocate tty if runc will detach without setting console socket"),
        "{}",
        stderr(&out)
    );
    let out = rt.create(&b, "t2", &["--console-socket", "/nonexistent/sock"]);
    assert!(
        stderr(&out).contains("/nonexistent/sock"),
        "{}",
        stderr(&out)
    );
    assert!(rt.is_empty());
}
