//! The command line, runc-compatible: global flags (accepted before or after the
//! sub-command), the sub-commands of this release, and hidden placeholders for runc
//! sub-commands that are not implemented yet (they fail with "not supported yet").
//!
//! runc (urfave/cli) also accepts long flags with a single dash (`-root`); clap does not,
//! so [`normalize_args`] rewrites them before parsing.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::cgroups::CgroupManager;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// runc's JSON lines.
    Json,
}

/// `--rootless`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Rootless {
    /// Rootless mode.
    True,
    /// Not rootless.
    False,
    /// Rootless when not running as root.
    Auto,
}

/// berth-runtime: an OCI container runtime (runc-compatible command line).
#[derive(Debug, Parser)]
#[command(name = "berth-runtime", disable_version_flag = true)]
pub struct Cli {
    /// Directory for container state.
    #[arg(long, global = true, default_value = "/run/berth-runtime")]
    pub root: PathBuf,
    /// Log file (default: stderr).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Debug logging.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd for cgroups (same as --cgroup-manager systemd; not supported yet).
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// Rootless mode (only `false`, or `auto` as root, is supported). A bare `--rootless`
    /// means `true`, which is also how `spec --rootless` (a plain switch in runc) parses.
    #[arg(long, global = true, value_enum, default_value_t = Rootless::Auto,
          num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Rootless,
    /// Cgroup manager: `cgroupfs` (cgroup v2 only), `systemd` (not supported yet) or
    /// `disabled` (no cgroups; resource limits are then refused).
    #[arg(long, global = true, value_enum, default_value_t = CgroupManager::Cgroupfs)]
    pub cgroup_manager: CgroupManager,
    /// Print the version.
    #[arg(short = 'v', long)]
    pub version: bool,
    /// The sub-command.
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// The effective cgroup manager (`--systemd-cgroup` wins).
    pub fn effective_cgroup_manager(&self) -> CgroupManager {
        if self.systemd_cgroup {
            CgroupManager::Systemd
        } else {
            self.cgroup_manager
        }
    }
}

/// Sub-commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container (init waits for `start`).
    Create(CreateArgs),
    /// Start a created container.
    Start(IdArg),
    /// Create and start a container; in the foreground, wait for it and exit with its status.
    Run(RunArgs),
    /// Print the container's state as JSON.
    State(IdArg),
    /// Send a signal to the container's init (or all its processes).
    Kill(KillArgs),
    /// Delete a container's state (and kill it with --force).
    Delete(DeleteArgs),
    /// List containers.
    List(ListArgs),
    /// Write a default config.json.
    Spec(SpecArgs),
    /// Freeze every process of the container (cgroup.freeze).
    Pause(IdArg),
    /// Thaw a paused container.
    Resume(IdArg),
    /// List the container's processes.
    Ps(PsArgs),
    /// Change the container's resource limits.
    Update(UpdateArgs),
    /// Print the container's resource usage as JSON events.
    Events(EventsArgs),
    /// Run a new process inside a running container.
    Exec(ExecArgs),
    /// Print what this runtime implements (JSON, runc's features schema).
    Features,
    /// Not supported yet.
    #[command(hide = true)]
    Checkpoint(Unsupported),
    /// Not supported yet.
    #[command(hide = true)]
    Restore(Unsupported),
}

impl Command {
    /// The name of a placeholder sub-command, if this is one.
    pub fn unsupported_name(&self) -> Option<&'static str> {
        Some(match self {
            Command::Checkpoint(_) => "checkpoint",
            Command::Restore(_) => "restore",
            _ => return None,
        })
    }
}

/// Arguments of a placeholder sub-command (accepted and ignored before the error).
#[derive(Debug, Args)]
pub struct Unsupported {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// A bare container id.
#[derive(Debug, Args)]
pub struct IdArg {
    /// Container id.
    pub id: String,
}

/// `create` flags.
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// Bundle directory.
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// File to write init's pid to.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to send the pty master to (not supported yet).
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root.
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not create a new session keyring.
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass fds 3..3+N to the container.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// Container id.
    pub id: String,
}

/// `run` flags.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Return after starting instead of waiting for the container.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep the container's state after it exits (foreground only).
    #[arg(long)]
    pub keep: bool,
    /// The create flags.
    #[command(flatten)]
    pub create: CreateArgs,
}

/// `exec` flags (runc's).
#[derive(Debug, Default, Args)]
pub struct ExecArgs {
    /// A runtime-spec `process` JSON file to run (the other process flags are ignored).
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    /// Allocate a pseudo-terminal (needs --console-socket and --detach).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Return after starting the process instead of waiting for it.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// File to write the process's pid to.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to send the pty master to.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Working directory in the container.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Extra environment variables (KEY=VALUE, repeatable).
    #[arg(short = 'e', long)]
    pub env: Vec<String>,
    /// UID or UID:GID to run as (numeric).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Extra supplementary group (repeatable).
    #[arg(short = 'g', long)]
    pub additional_gids: Vec<u32>,
    /// Extra capability (repeatable).
    #[arg(short = 'c', long)]
    pub cap: Vec<String>,
    /// Set no_new_privs for the process.
    #[arg(long)]
    pub no_new_privs: bool,
    /// Pass fds 3..3+N to the process.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// Exec even when the container is paused.
    #[arg(long)]
    pub ignore_paused: bool,
    /// AppArmor profile (not supported yet).
    #[arg(long)]
    pub apparmor: Option<String>,
    /// SELinux label (not supported yet).
    #[arg(long)]
    pub process_label: Option<String>,
    /// Container id.
    pub id: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// `kill` flags.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal every process of the container.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Container id.
    pub id: String,
    /// Signal (name with or without SIG, or number).
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

/// `delete` flags.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Kill a running container first.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Container id.
    pub id: String,
}

/// `list` output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// Aligned columns.
    Table,
    /// A JSON array.
    Json,
}

/// `list` flags.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format.
    #[arg(short = 'f', long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
    /// Only print ids.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// `spec` flags.
#[derive(Debug, Args)]
pub struct SpecArgs {
    /// Directory to write config.json into. (`--rootless`, the global flag, asks for a
    /// rootless spec.)
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
}

/// `ps` output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PsFormat {
    /// `ps` output filtered to the container's processes.
    Table,
    /// A JSON array of host pids.
    Json,
}

/// `ps` flags.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Output format.
    #[arg(short = 'f', long, value_enum, default_value_t = PsFormat::Table)]
    pub format: PsFormat,
    /// Container id.
    pub id: String,
    /// Arguments for ps(1) (default `-ef`).
    #[arg(last = true)]
    pub ps_args: Vec<String>,
}

/// `update` flags (runc's).
#[derive(Debug, Default, Args)]
pub struct UpdateArgs {
    /// A JSON `linux.resources` object to apply (`-`: stdin).
    #[arg(short = 'r', long)]
    pub resources: Option<String>,
    /// Block IO weight (10-1000).
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period (µs).
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota (µs; -1: none).
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight).
    #[arg(long, alias = "cpu-share")]
    pub cpu_shares: Option<u64>,
    /// CPUs to use (cpuset).
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use (cpuset).
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Memory limit (bytes, or with a k/m/g suffix; -1: none).
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory reservation (soft limit).
    #[arg(long, allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory + swap limit (-1: unlimited swap).
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Maximum number of pids (-1: none).
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Container id.
    pub id: String,
}

/// `events` flags.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Print the stats once and exit.
    #[arg(long)]
    pub stats: bool,
    /// Stats interval (e.g. `5s`, `500ms`, `1m`).
    #[arg(long, default_value = "5s")]
    pub interval: String,
    /// Container id.
    pub id: String,
}

const LONG_FLAGS: &[&str] = &[
    "root",
    "log",
    "log-format",
    "debug",
    "systemd-cgroup",
    "rootless",
    "cgroup-manager",
    "bundle",
    "pid-file",
    "console-socket",
    "no-pivot",
    "no-new-keyring",
    "preserve-fds",
    "detach",
    "keep",
    "all",
    "force",
    "format",
    "quiet",
    "resources",
    "blkio-weight",
    "cpu-period",
    "cpu-quota",
    "cpu-share",
    "cpu-shares",
    "cpuset-cpus",
    "cpuset-mems",
    "memory",
    "memory-reservation",
    "memory-swap",
    "pids-limit",
    "stats",
    "interval",
    "version",
    "help",
    "process",
    "tty",
    "cwd",
    "env",
    "user",
    "additional-gids",
    "cap",
    "no-new-privs",
    "ignore-paused",
    "apparmor",
    "process-label",
];

/// Flags that take a value as the next argument (for finding `exec`'s container id).
const VALUE_FLAGS: &[&str] = &[
    "--root",
    "--log",
    "--log-format",
    "--cgroup-manager",
    "--process",
    "-p",
    "--pid-file",
    "--console-socket",
    "--cwd",
    "--env",
    "-e",
    "--user",
    "-u",
    "--additional-gids",
    "-g",
    "--cap",
    "-c",
    "--preserve-fds",
    "--apparmor",
    "--process-label",
];

/// Rewrites runc-style single-dash long flags (`-root x`, `-log-format=json`) to the
/// double-dash form. Stops at `--`, and after `exec`'s container id (what follows is the
/// container's command line, e.g. `find / -user 0`).
pub fn normalize_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut passthrough = false;
    // None: before the sub-command; Some(false): in `exec` before its id.
    let mut exec_state: Option<bool> = None;
    let mut takes_value = false;
    for (i, arg) in args.into_iter().enumerate() {
        if passthrough {
            out.push(arg);
            continue;
        }
        if arg == "--" {
            passthrough = true;
            out.push(arg);
            continue;
        }
        let rewritten = arg.to_str().and_then(|s| {
            let rest = s.strip_prefix('-').filter(|r| !r.starts_with('-'))?;
            let name = rest.split('=').next()?;
            LONG_FLAGS
                .contains(&name)
                .then(|| OsString::from(format!("-{s}")))
        });
        let arg = rewritten.unwrap_or(arg);
        let s = arg.to_str().unwrap_or("");
        let flag_value = std::mem::take(&mut takes_value);
        if i > 0 && !s.starts_with('-') && !flag_value {
            match exec_state {
                None if s == "exec" => exec_state = Some(false),
                Some(false) => {
                    // The container id: everything after it is the command line.
                    out.push(arg);
                    passthrough = true;
                    continue;
                }
                _ => {}
            }
        } else if !s.contains('=') && VALUE_FLAGS.contains(&s) {
            takes_value = true;
        }
        out.push(arg);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::parse_from(normalize_args(args.iter().map(OsString::from)))
    }

    #[test]
    fn accepts_single_dash_long_flags() {
        let cli = parse(&[
            "berth-runtime",
            "-root",
            "/x",
            "-log-format=json",
            "state",
            "c1",
        ]);
        assert_eq!(cli.root, PathBuf::from("/x"));
        assert_eq!(cli.log_format, LogFormat::Json);
    }

    #[test]
    fn global_flags_after_subcommand_and_short_flags() {
        let cli = parse(&["berth-runtime", "kill", "--root", "/r", "-a", "c1", "KILL"]);
        assert_eq!(cli.root, PathBuf::from("/r"));
        match cli.command.unwrap() {
            Command::Kill(k) => assert!(k.all && k.id == "c1" && k.signal == "KILL"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn spec_rootless_switch() {
        let cli = parse(&["berth-runtime", "spec", "--rootless"]);
        assert_eq!(cli.rootless, Rootless::True);
        let cli = parse(&["berth-runtime", "--rootless", "false", "state", "x"]);
        assert_eq!(cli.rootless, Rootless::False);
    }

    #[test]
    fn cgroupfs_is_the_default_and_update_flags_parse() {
        let cli = parse(&["berth-runtime", "state", "c"]);
        assert_eq!(cli.effective_cgroup_manager(), CgroupManager::Cgroupfs);
        let cli = parse(&["berth-runtime", "--systemd-cgroup", "state", "c"]);
        assert_eq!(cli.effective_cgroup_manager(), CgroupManager::Systemd);
        let cli = parse(&[
            "berth-runtime",
            "update",
            "-memory",
            "64m",
            "--cpu-share",
            "512",
            "--cpu-quota",
            "-1",
            "--pids-limit",
            "20",
            "c",
        ]);
        match cli.command.unwrap() {
            Command::Update(u) => {
                assert_eq!(u.memory.as_deref(), Some("64m"));
                assert_eq!(u.cpu_shares, Some(512));
                assert_eq!(u.cpu_quota, Some(-1));
                assert_eq!(u.pids_limit, Some(20));
            }
            other => panic!("{other:?}"),
        }
        let cli = parse(&["berth-runtime", "ps", "-f", "json", "c", "--", "-o", "pid"]);
        match cli.command.unwrap() {
            Command::Ps(p) => {
                assert_eq!(p.format, PsFormat::Json);
                assert_eq!(p.ps_args, ["-o", "pid"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn exec_flags_and_command_line() {
        let cli = parse(&[
            "berth-runtime",
            "--root",
            "/r",
            "exec",
            "-e",
            "A=1",
            "--cwd",
            "/tmp",
            "-user",
            "1000:10",
            "--detach",
            "c1",
            "find",
            "/",
            "-user",
            "0",
        ]);
        match cli.command.unwrap() {
            Command::Exec(e) => {
                assert_eq!(e.id, "c1");
                assert_eq!(e.env, ["A=1"]);
                assert_eq!(e.user.as_deref(), Some("1000:10"));
                assert!(e.detach);
                assert_eq!(e.args, ["find", "/", "-user", "0"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn run_flags() {
        let cli = parse(&[
            "berth-runtime",
            "run",
            "-d",
            "-b",
            "/b",
            "--preserve-fds",
            "2",
            "c",
        ]);
        match cli.command.unwrap() {
            Command::Run(r) => {
                assert!(r.detach);
                assert_eq!(r.create.bundle, PathBuf::from("/b"));
                assert_eq!(r.create.preserve_fds, 2);
            }
            other => panic!("{other:?}"),
        }
    }
}
