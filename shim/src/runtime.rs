//! Invoking the OCI runtime binary (`berth-runtime`, or any runc-compatible binary
//! named by containerd's runc `BinaryName` option).
//!
//! Which binary: the `BinaryName` option of the Create request; else `berth-runtime`
//! from `PATH`; else `berth-runtime` next to the shim's own executable.
//! Global flags: `--root` (the `Root` option, default `/run/containerd/berth`, plus the
//! namespace, as containerd's runc shim does), `--log <bundle>/log.json --log-format json`
//! (errors are read back from it), `--systemd-cgroup` (the `SystemdCgroup` option) and
//! `--cgroup-manager M` when the environment variable `BERTH_SHIM_CGROUP_MANAGER` is set
//! (`cgroupfs`, `systemd` or `disabled`; containerd passes its environment on to shims,
//! and tests on a host whose cgroups are not theirs set `disabled`).
//!
//! The settings are saved in the bundle (`berth-shim.json`) at Create so that the
//! `delete` action, run after the shim is gone, calls the same runtime the same way.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use serde_json::{Value, json};

use crate::reaper::Reaper;

/// The environment variable naming the runtime's `--cgroup-manager`.
pub const CGROUP_MANAGER_ENV: &str = "BERTH_SHIM_CGROUP_MANAGER";
/// The settings file in the bundle.
pub const SETTINGS_FILE: &str = "berth-shim.json";
const DEFAULT_ROOT: &str = "/run/containerd/berth";

/// A failed runtime invocation: its message (from the JSON log or stderr).
#[derive(Debug)]
pub struct RuntimeError(pub String);

impl std::fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How to call the runtime for one container.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// The binary.
    pub binary: PathBuf,
    /// `--root`.
    pub root: PathBuf,
    /// `--systemd-cgroup`.
    pub systemd_cgroup: bool,
    /// `--cgroup-manager`, if set.
    pub cgroup_manager: Option<String>,
    /// `--log` file.
    pub log: PathBuf,
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Resolves the runtime binary (see the module doc).
pub fn resolve_binary(binary_name: &str) -> PathBuf {
    if !binary_name.is_empty() {
        if binary_name.contains('/') {
            return PathBuf::from(binary_name);
        }
        return find_in_path(binary_name).unwrap_or_else(|| PathBuf::from(binary_name));
    }
    if let Some(p) = find_in_path("berth-runtime") {
        return p;
    }
    if let Some(p) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("berth-runtime")))
        .filter(|p| p.is_file())
    {
        return p;
    }
    PathBuf::from("berth-runtime")
}

impl Runtime {
    /// From the Create request's runc options.
    pub fn new(
        binary_name: &str,
        root: &str,
        systemd_cgroup: bool,
        namespace: &str,
        bundle: &Path,
    ) -> Runtime {
        let root = if root.is_empty() { DEFAULT_ROOT } else { root };
        let ns = if namespace.is_empty() {
            "default"
        } else {
            namespace
        };
        Runtime {
            binary: resolve_binary(binary_name),
            root: Path::new(root).join(ns),
            systemd_cgroup,
            cgroup_manager: std::env::var(CGROUP_MANAGER_ENV)
                .ok()
                .filter(|s| !s.is_empty()),
            log: bundle.join("log.json"),
        }
    }

    /// Saves the settings in the bundle.
    pub fn save(&self, bundle: &Path) -> std::io::Result<()> {
        let v = json!({
            "binary": self.binary,
            "root": self.root,
            "systemd_cgroup": self.systemd_cgroup,
            "cgroup_manager": self.cgroup_manager,
        });
        fs::write(bundle.join(SETTINGS_FILE), v.to_string())
    }

    /// Loads the settings saved by [`Runtime::save`].
    pub fn load(bundle: &Path) -> Option<Runtime> {
        let v: Value = serde_json::from_slice(&fs::read(bundle.join(SETTINGS_FILE)).ok()?).ok()?;
        Some(Runtime {
            binary: PathBuf::from(v["binary"].as_str()?),
            root: PathBuf::from(v["root"].as_str()?),
            systemd_cgroup: v["systemd_cgroup"].as_bool().unwrap_or(false),
            cgroup_manager: v["cgroup_manager"].as_str().map(String::from),
            log: bundle.join("log.json"),
        })
    }

    /// A command with the global flags.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.binary);
        c.arg("--root").arg(&self.root);
        c.arg("--log").arg(&self.log).args(["--log-format", "json"]);
        if self.systemd_cgroup {
            c.arg("--systemd-cgroup");
        }
        if let Some(m) = &self.cgroup_manager {
            c.args(["--cgroup-manager", m]);
        }
        c.args(args);
        c
    }

    fn log_len(&self) -> u64 {
        fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0)
    }

    /// The error lines logged since `offset` (or `fallback`).
    fn error_since(&self, offset: u64, fallback: &[u8], status: i32) -> RuntimeError {
        let mut msgs = Vec::new();
        if let Ok(mut f) = fs::File::open(&self.log) {
            use std::io::Seek;
            let mut s = String::new();
            if f.seek(std::io::SeekFrom::Start(offset)).is_ok() && f.read_to_string(&mut s).is_ok()
            {
                for line in s.lines() {
                    let Ok(v) = serde_json::from_str::<Value>(line) else {
                        continue;
                    };
                    if matches!(v["level"].as_str(), Some("error" | "fatal")) {
                        if let Some(m) = v["msg"].as_str() {
                            msgs.push(m.to_string());
                        }
                    }
                }
            }
        }
        if msgs.is_empty() {
            let t = String::from_utf8_lossy(fallback).trim().to_string();
            if !t.is_empty() {
                msgs.push(t);
            }
        }
        if msgs.is_empty() {
            msgs.push(format!("exit status {status}"));
        }
        RuntimeError(format!("{}: {}", self.binary.display(), msgs.join("; ")))
    }

    /// Runs the runtime with the given stdio (for `create` / `exec`, whose container
    /// processes inherit it) and waits for it.
    pub fn run_with_stdio(
        &self,
        reaper: Option<&Arc<Reaper>>,
        args: &[&str],
        stdio: [Stdio; 3],
    ) -> Result<(), RuntimeError> {
        let offset = self.log_len();
        let [i, o, e] = stdio;
        let mut cmd = self.command(args);
        cmd.stdin(i).stdout(o).stderr(e);
        let status = wait(reaper, &mut cmd, None)
            .map_err(|e| RuntimeError(format!("{}: {e}", self.binary.display())))?
            .0;
        if status == 0 {
            Ok(())
        } else {
            Err(self.error_since(offset, b"", status))
        }
    }

    /// Runs the runtime, feeding `input` on stdin, and returns its stdout.
    pub fn output(
        &self,
        reaper: Option<&Arc<Reaper>>,
        args: &[&str],
        input: Option<&[u8]>,
    ) -> Result<Vec<u8>, RuntimeError> {
        let offset = self.log_len();
        let mut cmd = self.command(args);
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let (status, out, err) = wait(reaper, &mut cmd, input)
            .map_err(|e| RuntimeError(format!("{}: {e}", self.binary.display())))?;
        if status == 0 {
            Ok(out)
        } else {
            Err(self.error_since(offset, &err, status))
        }
    }
}

/// Spawns, feeds stdin, collects stdout/stderr (if piped) and waits, through the reaper
/// when there is one (the long-lived shim) or directly (the `delete` action).
fn wait(
    reaper: Option<&Arc<Reaper>>,
    cmd: &mut Command,
    input: Option<&[u8]>,
) -> std::io::Result<(i32, Vec<u8>, Vec<u8>)> {
    let (mut child, rx) = match reaper {
        Some(r) => {
            let (c, rx) = r.spawn(cmd)?;
            (c, Some(rx))
        }
        None => (cmd.spawn()?, None),
    };
    if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input) {
        let _ = stdin.write_all(input);
    }
    let err_reader = child.stderr.take().map(|mut e| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = e.read_to_end(&mut v);
            v
        })
    });
    let mut out = Vec::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_end(&mut out);
    }
    let err = err_reader.and_then(|h| h.join().ok()).unwrap_or_default();
    let status = match rx {
        Some(rx) => rx
            .recv()
            .map_err(|_| std::io::Error::other("reaper gone"))?,
        None => {
            let s = child.wait()?;
            use std::os::unix::process::ExitStatusExt;
            s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
        }
    };
    Ok((status, out, err))
}
