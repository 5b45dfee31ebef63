//! The container process: [`program`] applies a runtime-spec `process` in order (cwd,
//! [`env`] and the executable lookup, [`rlimits`], [`capabilities`] bounding set, [`fds`]
//! hygiene, seccomp, [`user`] switch with the capabilities kept across it, the other
//! capability sets, umask, no_new_privs) for both the container's init and `exec`;
//! [`exec`] is `exec`'s fork sequence into an existing container.

pub mod capabilities;
pub mod env;
pub mod exec;
pub mod fds;
pub mod program;
pub mod rlimits;
pub mod user;
