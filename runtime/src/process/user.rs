//! Switching to `process.user`: supplementary groups, gid, uid (all three ids of each, so
//! nothing privileged is left saved), then the umask.

use nix::sys::stat::{Mode, umask};
use nix::unistd::{Gid, Uid, setgroups, setresgid, setresuid};
use oci_spec::runtime::User;

/// A failed credential change.
#[derive(Debug, thiserror::Error)]
#[error("process.user: {step} {value}: {source}")]
pub struct UserError {
    /// The call.
    pub step: &'static str,
    /// The value it was given.
    pub value: String,
    /// The underlying error.
    pub source: nix::errno::Errno,
}

/// Sets groups, gid and uid. `setgroups_allowed` is false in a user namespace whose
/// `setgroups` file says `deny`.
pub fn switch(user: &User, setgroups_allowed: bool) -> Result<(), UserError> {
    let groups: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    if setgroups_allowed {
        setgroups(&groups).map_err(|source| UserError {
            step: "setgroups",
            value: format!("{:?}", user.additional_gids().as_deref().unwrap_or(&[])),
            source,
        })?;
    }
    let gid = Gid::from_raw(user.gid());
    setresgid(gid, gid, gid).map_err(|source| UserError {
        step: "setgid",
        value: gid.to_string(),
        source,
    })?;
    let uid = Uid::from_raw(user.uid());
    setresuid(uid, uid, uid).map_err(|source| UserError {
        step: "setuid",
        value: uid.to_string(),
        source,
    })
}

/// Sets the umask (`process.user.umask`, default 0022 like runc).
pub fn apply_umask(user: &User) {
    umask(Mode::from_bits_truncate(user.umask().unwrap_or(0o022)));
}

/// Whether `setgroups(2)` is allowed (false when `/proc/self/setgroups` says `deny`).
pub fn setgroups_allowed() -> bool {
    std::fs::read_to_string("/proc/self/setgroups")
        .map(|s| s.trim() != "deny")
        .unwrap_or(true)
}
