//! OCI lifecycle hooks (`hooks.*` in config.json), each run with the container's state
//! JSON on stdin, its `args` as the full argv (`path` alone when absent), its `env` as
//! the whole environment (the runtime's own when absent, as runc does with Go's
//! `exec.Cmd`), and its `timeout` in seconds (none: wait as long as it takes). A hook
//! that exits non-zero, is killed, or times out (it is then SIGKILLed) is an error naming
//! the hook list, index and path, with its stdout and stderr.
//!
//! When each list runs (runc's points):
//! - `prestart`, `createRuntime`: by `create`, in the runtime's namespaces, once the
//!   container's mounts are set up and before `pivot_root` (status `creating`);
//! - `createContainer`: by init, in the container's namespaces, right after them (paths
//!   still resolve in the runtime's root);
//! - `startContainer`: by init, after `start` released it and before the user program
//!   is exec'd (status `created`; paths resolve in the container);
//! - `poststart`: by `start`, once the user program runs (status `running`);
//! - `poststop`: by `delete` (and a foreground `run`'s clean-up) once the container is
//!   gone (status `stopped`); a failure is only logged.
//!
//! A failure in any but `poststop` fails the command, which then cleans up like any
//! failed `create` (or kills the container, for `poststart`).

use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Hooks, Spec};
use serde::Serialize;

/// A failed hook.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The hook could not be started.
    #[error("hook {list}[{index}] {path}: start: {source}")]
    Spawn {
        /// The list (`prestart`, ...).
        list: &'static str,
        /// Index in the list.
        index: usize,
        /// The hook's path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The hook failed.
    #[error("hook {list}[{index}] {path} failed: {status}{output}")]
    Failed {
        /// The list.
        list: &'static str,
        /// Index in the list.
        index: usize,
        /// The hook's path.
        path: PathBuf,
        /// How it ended.
        status: String,
        /// Its output, if any (with a leading separator).
        output: String,
    },
}

/// The lifecycle points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    /// `hooks.prestart` (deprecated in the spec, still used by e.g. CNI set-ups).
    Prestart,
    /// `hooks.createRuntime`.
    CreateRuntime,
    /// `hooks.createContainer`.
    CreateContainer,
    /// `hooks.startContainer`.
    StartContainer,
    /// `hooks.poststart`.
    Poststart,
    /// `hooks.poststop`.
    Poststop,
}

impl HookKind {
    /// The config.json name of the list.
    pub fn name(self) -> &'static str {
        match self {
            HookKind::Prestart => "prestart",
            HookKind::CreateRuntime => "createRuntime",
            HookKind::CreateContainer => "createContainer",
            HookKind::StartContainer => "startContainer",
            HookKind::Poststart => "poststart",
            HookKind::Poststop => "poststop",
        }
    }

    /// The hooks of this kind in `hooks`.
    pub fn list(self, hooks: &Hooks) -> &[Hook] {
        let l = match self {
            HookKind::Prestart => hooks.prestart(),
            HookKind::CreateRuntime => hooks.create_runtime(),
            HookKind::CreateContainer => hooks.create_container(),
            HookKind::StartContainer => hooks.start_container(),
            HookKind::Poststart => hooks.poststart(),
            HookKind::Poststop => hooks.poststop(),
        };
        l.as_deref().unwrap_or(&[])
    }
}

/// Whether `spec` has hooks of any of `kinds`.
pub fn has_any(spec: &Spec, kinds: &[HookKind]) -> bool {
    spec.hooks()
        .as_ref()
        .is_some_and(|h| kinds.iter().any(|k| !k.list(h).is_empty()))
}

/// The runtime-spec state given to hooks on stdin.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HookState {
    /// Runtime-spec version of the config.
    pub oci_version: String,
    /// Container id.
    pub id: String,
    /// `creating`, `created`, `running` or `stopped`.
    pub status: &'static str,
    /// Init's host pid (0 when stopped).
    pub pid: i32,
    /// Absolute bundle path.
    pub bundle: PathBuf,
    /// The config's annotations.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl HookState {
    /// The state of container `id` of `bundle`.
    pub fn for_bundle(
        id: &str,
        bundle: &crate::bundle::Bundle,
        status: &'static str,
        pid: i32,
    ) -> Self {
        Self {
            oci_version: bundle.spec.version().clone(),
            id: id.to_owned(),
            status,
            pid,
            bundle: bundle.dir.clone(),
            annotations: bundle
                .spec
                .annotations()
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// Runs every hook of `kind` in `hooks`, in order, stopping at the first failure.
pub fn run(kind: HookKind, hooks: Option<&Hooks>, state: &HookState) -> Result<(), HookError> {
    let Some(hooks) = hooks else {
        return Ok(());
    };
    let json = serde_json::to_vec(state).expect("hook state serialises");
    for (index, hook) in kind.list(hooks).iter().enumerate() {
        run_one(kind.name(), index, hook, &json)?;
    }
    Ok(())
}

/// Runs the `poststop` hooks, logging failures (they do not fail the command).
pub fn run_poststop(hooks: Option<&Hooks>, state: &HookState) {
    if let Err(e) = run(HookKind::Poststop, hooks, state) {
        tracing::warn!(error = %e, "poststop hook failed");
        eprintln!("berth-runtime: warning: {e}");
    }
}

/// An anonymous in-memory file for a hook's stdout or stderr (a pipe could fill up and
/// block a chatty hook into its timeout).
fn capture_file() -> std::io::Result<std::fs::File> {
    // SAFETY: memfd_create with a valid NUL-terminated name and flags returns a new fd
    // (owned by us from here on) or -1.
    let fd = unsafe { libc::memfd_create(c"berth-hook-output".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and nothing else owns it.
    Ok(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

fn read_back(mut f: std::fs::File) -> String {
    let mut s = String::new();
    let _ = f.rewind();
    let _ = f.take(4096).read_to_string(&mut s);
    s.trim().to_owned()
}

fn run_one(list: &'static str, index: usize, hook: &Hook, state: &[u8]) -> Result<(), HookError> {
    let path = hook.path().clone();
    let spawn_err = |source| HookError::Spawn {
        list,
        index,
        path: path.clone(),
        source,
    };
    let out = capture_file().map_err(spawn_err)?;
    let err = capture_file().map_err(spawn_err)?;
    let mut cmd = Command::new(&path);
    if let Some(args) = hook.args().as_ref().filter(|a| !a.is_empty()) {
        cmd.arg0(&args[0]).args(&args[1..]);
    }
    if let Some(env) = hook.env() {
        cmd.env_clear();
        for e in env {
            let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(out.try_clone().map_err(spawn_err)?)
        .stderr(err.try_clone().map_err(spawn_err)?);
    let mut child = cmd.spawn().map_err(spawn_err)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine (EPIPE is ignored).
        let _ = stdin.write_all(state);
    }
    let deadline = hook
        .timeout()
        .map(|t| Instant::now() + Duration::from_secs(t.max(1) as u64));
    let mut sleep = Duration::from_micros(200);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) => {}
            Err(e) => break Err(e),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HookError::Failed {
                list,
                index,
                path,
                status: format!("timed out after {}s", hook.timeout().unwrap_or_default()),
                output: String::new(),
            });
        }
        std::thread::sleep(sleep);
        sleep = (sleep * 2).min(Duration::from_millis(10));
    };
    let status = status.map_err(spawn_err)?;
    if status.success() {
        return Ok(());
    }
    let how = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => status.to_string(),
    };
    let (stdout, stderr) = (read_back(out), read_back(err));
    let mut output = String::new();
    if !stdout.is_empty() {
        output.push_str(&format!(", stdout: {stdout}"));
    }
    if !stderr.is_empty() {
        output.push_str(&format!(", stderr: {stderr}"));
    }
    Err(HookError::Failed {
        list,
        index,
        path,
        status: how,
        output,
    })
}
