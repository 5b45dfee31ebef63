//! `berth-runtime`: an OCI runtime-spec runtime, command-line compatible with runc.
//!
//! Where things live:
//! - [`cli`]: the clap command line (runc's flags, single-dash long flags accepted).
//! - [`commands`]: one module per sub-command (`create`, `start`, `run`, `state`, `kill`,
//!   `delete`, `list`, `spec`, `pause`/`resume`, `ps`, `update`, `events`).
//! - [`container_id`]: id validation; [`state`]: the per-container state directory and its
//!   atomic persistence; [`pid_identity`]: telling a live init from a reused pid.
//! - [`bundle`]: loading and validating `config.json`; [`cgroups`]: cgroup v2 (manager
//!   selection, cgroupsPath forms, resources, the eBPF device filter, freezer, stats).
//! - [`spawn`]: the fork sequence (parent → stage-1 → init) and the parent half of the
//!   setup protocol; [`sync`]: the parent/child socket protocol; [`namespaces`]: joining and
//!   creating namespaces, id mappings.
//! - [`init`]: the in-container setup sequence, in order, ending in `execve`;
//!   [`rootfs`]: mounts, devices, pivot_root, masked/readonly paths;
//!   [`process`]: capabilities, rlimits, user switch, environment and executable lookup,
//!   fd hygiene; [`kernel_params`]: hostname, domainname, sysctls, oom_score_adj, keyring.
//! - [`exec_fifo`]: the create → start gate; [`signals`]: signal parsing and the foreground
//!   `run` forwarding loop; [`logging`]: tracing set-up with runc's JSON log format;
//!   [`timefmt`]: RFC 3339 timestamps.

pub mod bundle;
pub mod cgroups;
pub mod cli;
pub mod commands;
pub mod container_id;
pub mod error;
pub mod exec_fifo;
pub mod init;
pub mod kernel_params;
pub mod logging;
pub mod namespaces;
pub mod pid_identity;
pub mod process;
pub mod rootfs;
pub mod signals;
pub mod spawn;
pub mod state;
pub mod sync;
pub mod timefmt;

pub use error::Error;
