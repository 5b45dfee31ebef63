//! Shared helpers for the integration tests: a busybox bundle in a temp dir (config from
//! `berth-runtime spec`, patched per test), and a runtime handle with a private `--root`
//! and `--cgroup-manager disabled` (host tests) or the default `cgroupfs` manager
//! ([`Runtime::with_cgroups`], guest tests only: see [`require_guest`]).
//!
//! These tests create namespaces and mounts and need root; without it they fail with a
//! clear message instead of being skipped.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

/// Fails the test unless running as root.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this integration test creates namespaces and mounts and must run as root \
         (run `cargo test -p berth-runtime` as root)"
    );
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// A bundle: `<dir>/config.json` + `<dir>/rootfs` with busybox.
pub struct TestBundle {
    pub dir: tempfile::TempDir,
}

impl TestBundle {
    /// A bundle running `args`, with runc's default spec minus the terminal.
    pub fn new(args: &[&str]) -> Self {
        require_root();
        let dir = tempfile::Builder::new()
            .prefix("berth-bundle-")
            .tempdir()
            .unwrap();
        // The busybox rootfs from the shared fixtures, plus an unprivileged user the
        // process.user tests switch to; config.json comes from our own `spec` below.
        let fixtures = berth_rootfs_fixtures::Fixtures::get().expect("building the fixtures");
        fixtures
            .make_bundle(dir.path(), args)
            .expect("making a bundle");
        std::fs::remove_file(dir.path().join("config.json")).unwrap();
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("home/user")).unwrap();
        append(
            &rootfs.join("etc/passwd"),
            "user:x:1000:1000:user:/home/user:/bin/sh\n",
        );
        append(&rootfs.join("etc/group"), "wheel:x:10:\nuser:x:1000:\n");
        let out = Command::new(BIN)
            .args(["spec", "--bundle"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "spec failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let b = Self { dir };
        b.edit(|c| {
            c["process"]["terminal"] = json!(false);
            c["process"]["args"] = json!(args);
        });
        b
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Edits config.json.
    pub fn edit(&self, f: impl FnOnce(&mut Value)) {
        let p = self.dir.path().join("config.json");
        let mut v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }
}

/// Fails the calling test unless it runs inside berth's cgroup-v2 test VM (the runner
/// sets `BERTH_IN_VM=1`, and `/sys/fs/cgroup` must be a cgroup2 mount with the memory
/// controller). Guest tests create and write cgroups, which must never happen on the
/// build host: every guest test calls this first.
pub fn require_guest() {
    assert_eq!(
        std::env::var("BERTH_IN_VM").as_deref(),
        Ok("1"),
        "this is a guest test: it creates cgroups and must only run inside the cgroup-v2 VM \
         (`cargo run -p berth-tests --bin berth-vm-tests`)"
    );
    let controllers = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
        .expect("no cgroup2 mount at /sys/fs/cgroup: not berth's test VM");
    assert!(
        controllers.split_whitespace().any(|c| c == "memory"),
        "/sys/fs/cgroup has no memory controller ({controllers:?}): not berth's test VM"
    );
    require_root();
}

/// A runtime with its own state root.
pub struct Runtime {
    pub root: tempfile::TempDir,
    /// Use the default cgroup manager (cgroupfs) instead of `--cgroup-manager disabled`.
    pub cgroups: bool,
}

impl Runtime {
    pub fn new() -> Self {
        require_root();
        Self {
            root: tempfile::Builder::new()
                .prefix("berth-root-")
                .tempdir()
                .unwrap(),
            cgroups: false,
        }
    }

    /// A runtime with the default cgroupfs manager: guest tests only.
    pub fn with_cgroups() -> Self {
        require_guest();
        Self {
            cgroups: true,
            ..Self::new()
        }
    }

    /// A command with `--root` (and `--cgroup-manager disabled` unless cgroups are on).
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--root").arg(self.root.path());
        if !self.cgroups {
            c.args(["--cgroup-manager", "disabled"]);
        }
        c.stdin(Stdio::null());
        c
    }

    /// Runs with `args`, capturing output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// `run --bundle <b> <id>`, capturing output.
    pub fn run_bundle(&self, b: &TestBundle, id: &str) -> Output {
        self.cmd()
            .arg("run")
            .arg("--bundle")
            .arg(b.path())
            .arg(id)
            .output()
            .unwrap()
    }

    /// Runs `cmd` (a `create` or `run --detach`) whose container init outlives it. init
    /// inherits the command's stdio, so pipes would not reach EOF until the container
    /// exits: stdout and stderr go to temp files instead.
    pub fn output_detached(&self, mut cmd: Command) -> Output {
        let out = tempfile::tempfile().unwrap();
        let err = tempfile::tempfile().unwrap();
        cmd.stdout(out.try_clone().unwrap())
            .stderr(err.try_clone().unwrap());
        let status = cmd.status().unwrap();
        let read = |mut f: std::fs::File| {
            use std::io::{Read, Seek};
            let mut v = Vec::new();
            f.seek(std::io::SeekFrom::Start(0)).unwrap();
            f.read_to_end(&mut v).unwrap();
            v
        };
        Output {
            status,
            stdout: read(out),
            stderr: read(err),
        }
    }

    /// `create [extra...] --bundle <b> <id>`.
    pub fn create(&self, b: &TestBundle, id: &str, extra: &[&str]) -> Output {
        let mut c = self.cmd();
        c.arg("create")
            .args(extra)
            .arg("--bundle")
            .arg(b.path())
            .arg(id);
        self.output_detached(c)
    }

    /// `run --detach --bundle <b> <id>`.
    pub fn run_detached(&self, b: &TestBundle, id: &str) -> Output {
        let mut c = self.cmd();
        c.args(["run", "--detach"])
            .arg("--bundle")
            .arg(b.path())
            .arg(id);
        self.output_detached(c)
    }

    /// `state <id>` parsed, or the failing output.
    pub fn state(&self, id: &str) -> Result<Value, Output> {
        let out = self.run(&["state", id]);
        if out.status.success() {
            Ok(serde_json::from_slice(&out.stdout).unwrap())
        } else {
            Err(out)
        }
    }

    /// Whether the state root has no container directories left.
    pub fn is_empty(&self) -> bool {
        std::fs::read_dir(self.root.path())
            .map(|mut d| d.next().is_none())
            .unwrap_or(true)
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed ({:?}): stdout={} stderr={}",
        o.status,
        stdout(o),
        stderr(o)
    );
    stdout(o)
}
