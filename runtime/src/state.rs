//! The state directory: `<root>/<id>/state.json` (+ `exec.fifo` while the container is
//! created but not started). `state.json` is written atomically (temp file, fsync,
//! rename, fsync of the directory), so a reader never sees a torn file and a crash leaves
//! either the old or the new version.
//!
//! The status is not stored: it is derived from the recorded init pid (+ its start time,
//! see [`crate::pid_identity`]) and the presence of the exec fifo, so it cannot go stale.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::container_id::ContainerId;
use crate::pid_identity;

/// File name of the persisted state inside a container's directory.
pub const STATE_FILE: &str = "state.json";
/// File name of the create → start gate inside a container's directory.
pub const EXEC_FIFO: &str = "exec.fifo";

/// Errors about the state directory, each naming the container or path involved.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// No directory for this id.
    #[error("container does not exist: {id}")]
    NotFound {
        /// The container id.
        id: String,
    },
    /// The id is taken.
    #[error("container with id {id} already exists")]
    AlreadyExists {
        /// The container id.
        id: String,
    },
    /// An I/O error on a state path.
    #[error("state {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// `state.json` could not be parsed.
    #[error("state {path}: invalid JSON: {source}")]
    Corrupt {
        /// The state file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The container's status, as the runtime spec names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// `create` is still setting the container up.
    Creating,
    /// Set up, init waiting on the exec fifo.
    Created,
    /// The user program has been started and is alive.
    Running,
    /// Alive, but its cgroup is frozen (`pause`).
    Paused,
    /// Init has exited (or was never started).
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What is persisted about a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerState {
    /// The runtime-spec version of the bundle's config.
    pub oci_version: String,
    /// The container id.
    pub id: String,
    /// Host pid of the container's init; 0 while creating.
    pub init_pid: i32,
    /// Start time of `init_pid` (clock ticks since boot).
    pub init_start_time: u64,
    /// Pid of the `create` process, for telling a crashed creation from one in progress.
    pub creator_pid: i32,
    /// Start time of `creator_pid`.
    pub creator_start_time: u64,
    /// Absolute bundle path.
    pub bundle: PathBuf,
    /// Absolute rootfs path.
    pub rootfs: PathBuf,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Uid that created the container.
    pub owner_uid: u32,
    /// The config's annotations.
    pub annotations: BTreeMap<String, String>,
    /// The container's cgroup directory (absolute), if cgroups are managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_path: Option<PathBuf>,
    /// The config's hooks (`start` runs poststart, `delete` poststop, even if the bundle
    /// is gone by then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<oci_spec::runtime::Hooks>,
}

impl ContainerState {
    /// The state given to hooks, with `status` and init's `pid`.
    pub fn hook_state(&self, status: &'static str, pid: i32) -> crate::hooks::HookState {
        crate::hooks::HookState {
            oci_version: self.oci_version.clone(),
            id: self.id.clone(),
            status,
            pid,
            bundle: self.bundle.clone(),
            annotations: self.annotations.clone(),
        }
    }

    /// The container's cgroup, if it has one.
    pub fn cgroup(&self) -> Option<crate::cgroups::Cgroup> {
        self.cgroup_path
            .clone()
            .map(crate::cgroups::Cgroup::from_dir)
    }
}

/// The `--root` directory holding one sub-directory per container.
#[derive(Debug, Clone)]
pub struct StateRoot {
    root: PathBuf,
}

impl StateRoot {
    /// Wraps the `--root` path (created lazily).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The `--root` path.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The directory of container `id`.
    pub fn container_dir(&self, id: &ContainerId) -> PathBuf {
        self.root.join(id.as_str())
    }

    /// Creates `<root>/<id>` (mode 0711, like runc), failing if the id is taken.
    pub fn create_container_dir(&self, id: &ContainerId) -> Result<PathBuf, StateError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&self.root)
            .map_err(io_err(&self.root))?;
        let dir = self.container_dir(id);
        match fs::DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(StateError::AlreadyExists { id: id.to_string() })
            }
            Err(e) => Err(StateError::Io {
                path: dir,
                source: e,
            }),
        }
    }

    /// Loads the state of `id`.
    pub fn load(&self, id: &ContainerId) -> Result<ContainerState, StateError> {
        let dir = self.container_dir(id);
        let path = dir.join(STATE_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StateError::NotFound { id: id.to_string() });
            }
            Err(e) => return Err(StateError::Io { path, source: e }),
        };
        serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt { path, source })
    }

    /// Persists `state` atomically.
    pub fn save(&self, state: &ContainerState) -> Result<(), StateError> {
        let id = ContainerId::parse(&state.id).map_err(|e| StateError::Io {
            path: self.root.clone(),
            source: io::Error::new(io::ErrorKind::InvalidInput, e.to_string()),
        })?;
        let dir = self.container_dir(&id);
        let json = serde_json::to_vec_pretty(state).map_err(|source| StateError::Corrupt {
            path: dir.join(STATE_FILE),
            source,
        })?;
        write_atomic(&dir.join(STATE_FILE), &json)
    }

    /// Removes the directory of `id` and everything in it.
    pub fn remove(&self, id: &ContainerId) -> Result<(), StateError> {
        let dir = self.container_dir(id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StateError::Io {
                path: dir,
                source: e,
            }),
        }
    }

    /// The ids of all containers with a state directory, sorted.
    pub fn list_ids(&self) -> Result<Vec<ContainerId>, StateError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(StateError::Io {
                    path: self.root.clone(),
                    source: e,
                });
            }
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(&self.root))?;
            if !entry.file_type().map_err(io_err(&self.root))?.is_dir() {
                continue;
            }
            if let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| ContainerId::parse(n).ok())
            {
                ids.push(id);
            }
        }
        ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Ok(ids)
    }

    /// The current status of a container, derived from its state and the live system.
    pub fn status(&self, state: &ContainerState) -> Status {
        if state.init_pid == 0 {
            return if pid_identity::is_same_live_process(
                state.creator_pid,
                state.creator_start_time,
            ) {
                Status::Creating
            } else {
                Status::Stopped
            };
        }
        if !pid_identity::is_same_live_process(state.init_pid, state.init_start_time) {
            return Status::Stopped;
        }
        if state
            .cgroup()
            .is_some_and(|cg| crate::cgroups::freezer::is_frozen(&cg))
        {
            return Status::Paused;
        }
        let fifo = self.root.join(&state.id).join(EXEC_FIFO);
        if fifo.symlink_metadata().is_ok() {
            Status::Created
        } else {
            Status::Running
        }
    }
}

/// Writes `data` to `path` atomically: a temp file in the same directory, fsync, rename,
/// then fsync of the directory so the rename itself is durable.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StateError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        f.write_all(data).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        fs::rename(&tmp, path).map_err(io_err(path))?;
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(id: &str) -> ContainerState {
        ContainerState {
            oci_version: "1.0.2".into(),
            id: id.into(),
            init_pid: 0,
            init_start_time: 0,
            creator_pid: 0,
            creator_start_time: 0,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "now".into(),
            owner_uid: 0,
            annotations: BTreeMap::new(),
            cgroup_path: None,
            hooks: None,
        }
    }

    #[test]
    fn save_load_remove_roundtrip() {
        let tmp = tempfile::tempdir().unwrap();
        let root = StateRoot::new(tmp.path().join("r"));
        let id = ContainerId::parse("c1").unwrap();
        root.create_container_dir(&id).unwrap();
        assert!(matches!(
            root.create_container_dir(&id),
            Err(StateError::AlreadyExists { .. })
        ));
        root.save(&sample("c1")).unwrap();
        assert_eq!(root.load(&id).unwrap().bundle, PathBuf::from("/b"));
        assert_eq!(root.status(&root.load(&id).unwrap()), Status::Stopped);
        assert_eq!(root.list_ids().unwrap(), vec![id.clone()]);
        root.remove(&id).unwrap();
        let err = root.load(&id).unwrap_err().to_string();
        assert!(err.contains("container does not exist"), "{err}");
    }
}
