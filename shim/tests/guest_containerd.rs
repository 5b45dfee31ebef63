//! The shim under a real containerd 1.6 (Debian's), inside the cgroup-v2 VM: `ctr run
//! --runtime io.containerd.berth.v2` in the foreground and detached, `ctr task
//! exec/ps/pause/resume/metrics/kill/rm`. containerd finds `containerd-shim-berth-v2`
//! and the shim finds `berth-runtime` through `PATH` (the cargo target dir).
//!
//! Run with `cargo run -p berth-tests --bin berth-vm-tests -- --test guest_containerd`; the
//! runner brings the host's containerd and ctr into the guest.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SHIM: &str = env!("CARGO_BIN_EXE_containerd-shim-berth-v2");
const RUNTIME: &str = "io.containerd.berth.v2";
const IMAGE: &str = "berth.test/busybox:latest";

struct Containerd {
    dir: PathBuf,
    sock: PathBuf,
    child: Child,
    path_env: String,
}

impl Containerd {
    fn start(name: &str) -> Containerd {
        berth_tests::require_guest();
        for bin in ["/usr/bin/containerd", "/usr/bin/ctr"] {
            assert!(
                Path::new(bin).exists(),
                "{bin} missing in the guest: install Debian's containerd on the host \
                 (scripts/install-deps); berth-vm-tests brings it in"
            );
        }
        // containerd's overlayfs snapshotter: load the module once up front, so that
        // the tests' parallel first mounts do not race its autoloading (ENODEV).
        static OVERLAY: std::sync::Once = std::sync::Once::new();
        OVERLAY.call_once(|| {
            let _ = Command::new("modprobe").arg("overlay").status();
        });
        let bin_dir = Path::new(SHIM).parent().unwrap().to_path_buf();
        assert!(
            bin_dir.join("berth-runtime").exists(),
            "{} missing: build it (cargo build -p berth-runtime)",
            bin_dir.join("berth-runtime").display()
        );
        let dir = PathBuf::from(format!("/tmp/berth-containerd-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("containerd.sock");
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{s}\"\n",
            d = dir.display(),
            s = sock.display()
        );
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let path_env = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let child = spawn_containerd(&dir, &path_env);
        let c = Containerd {
            dir,
            sock,
            child,
            path_env,
        };
        c.wait_up();
        c
    }

    fn wait_up(&self) {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(60) {
            if self.sock.exists() && self.ctr(&["version"]).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("containerd did not come up\n{}", self.logs());
    }

    /// SIGKILLs containerd and starts it again (its shims live on).
    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn_containerd(&self.dir, &self.path_env);
        self.wait_up();
    }

    fn wait_status(&self, id: &str, want: &str) {
        let t = Instant::now();
        while self.task_status(id) != want && t.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(self.task_status(id), want, "{}", self.logs());
    }

    fn import_busybox(&self) {
        let archive = berth_rootfs_fixtures::Fixtures::get()
            .unwrap()
            .docker_archive("busybox");
        self.ok(&["images", "import", archive.to_str().unwrap()]);
    }

    fn logs(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.join(n)).unwrap_or_default();
        format!(
            "--- containerd.log (tail) ---\n{}\n--- shim.log ---\n{}",
            read("containerd.log")
                .lines()
                .rev()
                .take(60)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n"),
            read("shim.log")
        )
    }

    fn ctr(&self, args: &[&str]) -> Output {
        Command::new("/usr/bin/ctr")
            .arg("--address")
            .arg(&self.sock)
            .args(args)
            .env("PATH", &self.path_env)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?} failed: {}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn task_status(&self, id: &str) -> String {
        let ls = self.ok(&["task", "ls"]);
        ls.lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap_or("")
            .to_string()
    }
}

fn spawn_containerd(dir: &Path, path_env: &str) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("containerd.log"))
        .unwrap();
    Command::new("/usr/bin/containerd")
        .arg("--config")
        .arg(dir.join("config.toml"))
        .arg("--log-level")
        .arg("debug")
        .env("PATH", path_env)
        .env("BERTH_SHIM_LOG", dir.join("shim.log"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ctr_runs_tasks_through_the_berth_shim() {
    let c = Containerd::start("ctr");
    c.import_busybox();

    // Foreground: output through the fifos, exit status, --rm deletes.
    let out = c.ok(&[
        "run",
        "--runtime",
        RUNTIME,
        "--rm",
        IMAGE,
        "fg",
        "echo",
        "hi",
    ]);
    assert_eq!(out, "hi\n", "{}", c.logs());

    // Detached, then the task API.
    c.ok(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        IMAGE,
        "bg",
        "sleep",
        "1000",
    ]);
    assert_eq!(c.task_status("bg"), "RUNNING", "{}", c.logs());
    let out = c.ok(&["task", "exec", "--exec-id", "e1", "bg", "echo", "from-exec"]);
    assert_eq!(out, "from-exec\n");
    let ps = c.ok(&["task", "ps", "bg"]);
    assert!(ps.lines().count() >= 2, "{ps}");
    c.ok(&["task", "pause", "bg"]);
    assert_eq!(c.task_status("bg"), "PAUSED");
    c.ok(&["task", "resume", "bg"]);
    assert_eq!(c.task_status("bg"), "RUNNING");
    let metrics = c.ok(&["task", "metrics", "bg"]);
    assert!(metrics.contains("pids.current"), "{metrics}");
    c.ok(&["task", "kill", "-s", "SIGKILL", "bg"]);
    c.wait_status("bg", "STOPPED");
    c.ok(&["task", "rm", "bg"]);
    c.ok(&["container", "rm", "bg"]);
    assert!(!c.ok(&["task", "ls"]).contains("bg"));
}

#[test]
fn a_task_survives_a_containerd_restart() {
    let mut c = Containerd::start("restart");
    c.import_busybox();
    c.ok(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        IMAGE,
        "keep",
        "sleep",
        "1000",
    ]);
    c.wait_status("keep", "RUNNING");
    c.restart();
    c.wait_status("keep", "RUNNING");
    let out = c.ok(&[
        "task",
        "exec",
        "--exec-id",
        "after",
        "keep",
        "echo",
        "still-here",
    ]);
    assert_eq!(out, "still-here\n");
    c.ok(&["task", "kill", "-s", "SIGKILL", "keep"]);
    c.wait_status("keep", "STOPPED");
    c.ok(&["task", "rm", "keep"]);
    c.ok(&["container", "rm", "keep"]);
}

#[test]
fn an_oom_kill_is_published_as_task_oom() {
    let c = Containerd::start("oom");
    c.import_busybox();
    let events_log = c.dir.join("events.log");
    let mut events = Command::new("/usr/bin/ctr")
        .arg("--address")
        .arg(&c.sock)
        .arg("events")
        .stdout(std::fs::File::create(&events_log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    c.ok(&[
        "run",
        "-d",
        "--memory-limit",
        "16777216",
        "--runtime",
        RUNTIME,
        IMAGE,
        "hog",
        "sh",
        "-c",
        "sleep 1; x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done",
    ]);
    c.wait_status("hog", "STOPPED");
    let t = Instant::now();
    let mut seen = String::new();
    while t.elapsed() < Duration::from_secs(15) {
        seen = std::fs::read_to_string(&events_log).unwrap_or_default();
        if seen.contains("/tasks/oom") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = events.kill();
    let _ = events.wait();
    assert!(seen.contains("/tasks/oom"), "events:\n{seen}\n{}", c.logs());
    assert!(seen.contains("/tasks/exit"), "{seen}");
    c.ok(&["task", "rm", "hog"]);
    c.ok(&["container", "rm", "hog"]);
}
