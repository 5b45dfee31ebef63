//! The container process's credentials and execution environment, applied by init in
//! this order (see [`crate::init`]): [`rlimits`], [`fds`] (close-on-exec everything not
//! meant for the container), [`capabilities`] bounding set, [`user`] switch (caps kept
//! across it with `PR_SET_KEEPCAPS`), the remaining capability sets, then [`env`] for the
//! environment and the executable lookup in the container's `PATH`.

pub mod capabilities;
pub mod env;
pub mod fds;
pub mod rlimits;
pub mod user;
