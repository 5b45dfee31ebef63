//! `berth-runtime` entry point: parse the command line, set up logging, dispatch, and
//! turn errors into runc-style output (message on stderr, also logged) and exit code 1.

use std::process::ExitCode;

use anyhow::Context as _;
use berth_runtime::cli::{self, Cli, Command};
use berth_runtime::{commands, logging, sealed_exe};
use clap::{CommandFactory, Parser};

fn main() -> ExitCode {
    let cli = Cli::parse_from(cli::normalize_args(std::env::args_os()));
    match real_main(&cli) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(255)),
        // runc: `exec` fails with 255 ("exec failed: ..."), so a caller can tell the
        // runtime's failure from the process's own exit status.
        Err(e) if matches!(cli.command, Some(Command::Exec(_))) => {
            if cli.log.is_some() {
                tracing::error!("exec failed: {e:#}");
            }
            eprintln!("berth-runtime: exec failed: {e:#}");
            ExitCode::from(255)
        }
        Err(e) => {
            if cli.log.is_some() {
                tracing::error!("{e:#}");
            }
            eprintln!("berth-runtime: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn real_main(cli: &Cli) -> anyhow::Result<i32> {
    if matches!(
        cli.command,
        Some(Command::Create(_) | Command::Run(_) | Command::Exec(_))
    ) {
        // Before anything is opened: the re-exec keeps only inherited fds.
        sealed_exe::ensure_sealed()?;
    }
    if cli.version {
        println!("berth-runtime version {}", env!("CARGO_PKG_VERSION"));
        println!("spec: {}", oci_spec::runtime::VERSION);
        return Ok(0);
    }
    logging::init(cli.log.as_deref(), cli.log_format, cli.debug)
        .with_context(|| format!("open log {:?}", cli.log))?;
    let Some(command) = &cli.command else {
        Cli::command().print_help().context("print help")?;
        return Ok(0);
    };
    Ok(commands::dispatch(cli, command)?)
}
