//! `berth-runtime`: an OCI runtime-spec runtime, command-line compatible with runc.
//!
//! Where things live:
//! - [`cli`]: the clap command line (runc's flags, single-dash long flags accepted).
//! - [`commands`]: one module per sub-command (`create`, `start`, `run`, `exec`, `state`,
//!   `kill`, `delete`, `list`, `spec`, `features`, `pause`/`resume`, `ps`, `update`,
//!   `events`).
//! - [`container_id`]: id validation; [`state`]: the per-container state directory and its
//!   atomic persistence; [`pid_identity`]: telling a live init from a reused pid.
//! - [`bundle`]: loading and validating `config.json`; [`cgroups`]: cgroup v2 (manager
//!   selection, cgroupsPath forms, resources, the eBPF device filter, freezer, stats).
//! - [`spawn`]: the fork sequence (parent → stage-1 → init) and the parent half of the
//!   setup protocol; [`sync`]: the parent/child socket protocol; [`namespaces`]: joining and
//!   creating namespaces, id mappings.
//! - [`init`]: the in-container setup sequence, in order, ending in `execve`;
//!   [`rootfs`]: mounts, devices, pivot_root, masked/readonly paths;
//!   [`process`]: the process spec applied (cwd, executable, environment, rlimits,
//!   capabilities, user, no_new_privs; [`process::program`]), fd hygiene, and `exec`'s
//!   fork sequence into an existing container ([`process::exec`]);
//!   [`kernel_params`]: hostname, domainname, sysctls, oom_score_adj, keyring.
//! - [`terminal`]: ptys sent over `--console-socket`; [`seccomp`]: `linux.seccomp` compiled
//!   with seccompiler; [`hooks`]: the OCI lifecycle hooks; [`sealed_exe`]: the
//!   CVE-2019-5736 re-exec from a read-only (or sealed) copy of the runtime.
//! - [`exec_fifo`]: the create → start gate; [`signals`]: signal parsing and the foreground
//!   `run`/`exec` forwarding loop; [`logging`]: tracing set-up with runc's JSON log format;
//!   [`timefmt`]: RFC 3339 timestamps.

pub mod bundle;
pub mod cgroups;
pub mod cli;
pub mod commands;
pub mod console;
pub mod container_id;
pub mod error;
pub mod exec_fifo;
pub mod hooks;
pub mod init;
pub mod kernel_params;
pub mod logging;
pub mod namespaces;
pub mod pid_identity;
pub mod process;
pub mod rootfs;
pub mod sealed_exe;
pub mod seccomp;
pub mod signals;
pub mod spawn;
pub mod state;
pub mod sync;
pub mod terminal;
pub mod timefmt;

pub use error::Error;
