//! Namespaces: which ones the config creates or joins, and the stage-1 code that does it.
//!
//! Stage-1 (a child of the runtime, see [`crate::spawn`]) first enters the user namespace
//! (joining it with `setns`, or `unshare` + the parent writing `uid_map`/`gid_map`), then
//! joins every namespace that has a `path` (all paths are opened before the first
//! `setns`, since joining a mount namespace changes how later paths resolve), then
//! `unshare`s the new ones. `CLONE_NEWPID` and `CLONE_NEWTIME` only apply to children,
//! which is why stage-1 then forks init.

use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::fcntl::{OFlag, open};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid, setresgid, setresuid};
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use crate::sync::{SyncMessage, SyncSocket};

/// Errors entering namespaces, naming the namespace or path.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    /// Opening a namespace path failed.
    #[error("open namespace path {path} ({typ}): {source}")]
    OpenPath {
        /// The namespace type.
        typ: String,
        /// The path from the config.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// `setns` failed.
    #[error("join {typ} namespace {path}: {source}")]
    Join {
        /// The namespace type.
        typ: String,
        /// The path from the config.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// `unshare` failed.
    #[error("unshare namespaces ({flags:?}): {source}")]
    Unshare {
        /// The flags passed.
        flags: CloneFlags,
        /// The underlying error.
        source: io::Error,
    },
    /// Writing an id map or the time offsets failed.
    #[error("write {path}: {source}")]
    Write {
        /// The proc file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Becoming root inside the new user namespace failed.
    #[error("setresuid/setresgid(0) in the new user namespace: {source}")]
    BecomeRoot {
        /// The underlying error.
        source: io::Error,
    },
    /// The user-namespace handshake with the parent failed.
    #[error("user namespace handshake with the parent: {0}")]
    Handshake(String),
}

/// What stage-1 must do, derived from `linux.namespaces`.
#[derive(Debug, Clone)]
pub struct NamespacePlan {
    /// Namespaces to create, other than the user namespace.
    pub unshare: CloneFlags,
    /// Create a new user namespace.
    pub new_user: bool,
    /// Namespaces to join: `(type, path)`.
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
    /// `linux.timeOffsets`, rendered for `/proc/self/timens_offsets`.
    pub time_offsets: Option<String>,
}

fn clone_flag(typ: LinuxNamespaceType) -> CloneFlags {
    match typ {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

impl NamespacePlan {
    /// Builds the plan from the config.
    pub fn from_spec(spec: &Spec) -> Self {
        let mut plan = NamespacePlan {
            unshare: CloneFlags::empty(),
            new_user: false,
            join: Vec::new(),
            time_offsets: None,
        };
        let Some(linux) = spec.linux() else {
            return plan;
        };
        for ns in linux.namespaces().iter().flatten() {
            match (ns.typ(), ns.path()) {
                (typ, Some(path)) => plan.join.push((typ, path.clone())),
                (LinuxNamespaceType::User, None) => plan.new_user = true,
                (typ, None) => plan.unshare |= clone_flag(typ),
            }
        }
        // Joining the mount namespace changes path resolution: do it last.
        plan.join.sort_by_key(|(t, _)| match t {
            LinuxNamespaceType::User => 0,
            LinuxNamespaceType::Mount => 2,
            _ => 1,
        });
        if let Some(offsets) = linux.time_offsets().as_ref().filter(|o| !o.is_empty()) {
            let mut text = String::new();
            for (clock, off) in offsets {
                text.push_str(&format!(
                    "{clock} {} {}\n",
                    off.secs().unwrap_or(0),
                    off.nanosecs().unwrap_or(0)
                ));
            }
            plan.time_offsets = Some(text);
        }
        plan
    }

    /// Whether init ends up in a new pid namespace.
    pub fn new_pid_ns(&self) -> bool {
        self.unshare.contains(CloneFlags::CLONE_NEWPID)
    }

    /// Whether init gets a new cgroup namespace.
    pub fn new_cgroup_ns(&self) -> bool {
        self.unshare.contains(CloneFlags::CLONE_NEWCGROUP)
    }

    /// Whether init runs in a user namespace (new or joined).
    pub fn in_user_ns(&self) -> bool {
        self.new_user
            || self
                .join
                .iter()
                .any(|(t, _)| *t == LinuxNamespaceType::User)
    }

    /// Stage-1: enters/creates all namespaces. Runs in the forked child.
    pub fn enter(&self, sync: &SyncSocket) -> Result<(), NamespaceError> {
        let mut fds: Vec<(LinuxNamespaceType, PathBuf, OwnedFd)> = Vec::new();
        for (typ, path) in &self.join {
            let fd =
                open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).map_err(|e| {
                    NamespaceError::OpenPath {
                        typ: typ.to_string(),
                        path: path.clone(),
                        source: e.into(),
                    }
                })?;
            fds.push((*typ, path.clone(), fd));
        }
        let mut joined_user = false;
        for (typ, path, fd) in &fds {
            setns(fd, clone_flag(*typ)).map_err(|e| NamespaceError::Join {
                typ: typ.to_string(),
                path: path.clone(),
                source: e.into(),
            })?;
            joined_user |= *typ == LinuxNamespaceType::User;
        }
        if self.new_user {
            unshare(CloneFlags::CLONE_NEWUSER).map_err(|e| NamespaceError::Unshare {
                flags: CloneFlags::CLONE_NEWUSER,
                source: e.into(),
            })?;
            sync.send(&SyncMessage::UserNsCreated)
                .map_err(|e| NamespaceError::Handshake(e.to_string()))?;
            match sync
                .recv()
                .map_err(|e| NamespaceError::Handshake(e.to_string()))?
            {
                SyncMessage::MappingsWritten => {}
                other => return Err(NamespaceError::Handshake(format!("unexpected {other:?}"))),
            }
        }
        if self.new_user || joined_user {
            setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
                .and_then(|()| setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)))
                .map_err(|e| NamespaceError::BecomeRoot { source: e.into() })?;
        }
        if !self.unshare.is_empty() {
            unshare(self.unshare).map_err(|e| NamespaceError::Unshare {
                flags: self.unshare,
                source: e.into(),
            })?;
        }
        if let Some(offsets) = &self.time_offsets {
            let path = PathBuf::from("/proc/self/timens_offsets");
            std::fs::write(&path, offsets)
                .map_err(|source| NamespaceError::Write { path, source })?;
        }
        Ok(())
    }
}

/// Parent side of the user-namespace handshake: writes `uid_map` and `gid_map` of `pid`.
pub fn write_id_mappings(pid: i32, spec: &Spec) -> Result<(), NamespaceError> {
    let linux = spec.linux().as_ref();
    let render = |maps: Option<&Vec<LinuxIdMapping>>| {
        maps.into_iter()
            .flatten()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect::<String>()
    };
    let uid = render(linux.and_then(|l| l.uid_mappings().as_ref()));
    let gid = render(linux.and_then(|l| l.gid_mappings().as_ref()));
    for (file, text) in [("uid_map", uid), ("gid_map", gid)] {
        let path = PathBuf::from(format!("/proc/{pid}/{file}"));
        std::fs::write(&path, text).map_err(|source| NamespaceError::Write { path, source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_splits_new_and_joined() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "linux": {"namespaces": [
                {"type": "mount", "path": "/proc/1/ns/mnt"},
                {"type": "pid"}, {"type": "network", "path": "/proc/1/ns/net"},
                {"type": "user"}
            ]}
        }))
        .unwrap();
        let p = NamespacePlan::from_spec(&spec);
        assert!(p.new_user && p.new_pid_ns() && p.in_user_ns());
        assert_eq!(p.unshare, CloneFlags::CLONE_NEWPID);
        assert_eq!(p.join.last().unwrap().0, LinuxNamespaceType::Mount);
    }
}
