//! `berth-fixtures`: builds (or reuses) the test fixtures and prints where
//! they are, or makes a fresh runtime bundle.
//!
//! ```text
//! berth-fixtures [--cache-dir DIR] [--json]
//! berth-fixtures [--cache-dir DIR] bundle DEST -- ARGS...
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use berth_rootfs_fixtures::{FIXTURES_JSON, Fixtures};

const USAGE: &str = "usage: berth-fixtures [--cache-dir DIR] [--json]\n       \
                     berth-fixtures [--cache-dir DIR] bundle DEST -- ARGS...";

enum Command {
    Show { json: bool },
    Bundle { dest: PathBuf, args: Vec<String> },
}

struct Options {
    cache_dir: Option<PathBuf>,
    command: Command,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut cache_dir = None;
    let mut json = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--cache-dir" => {
                let dir = args.next().ok_or("--cache-dir needs a directory")?;
                cache_dir = Some(PathBuf::from(dir));
            }
            "--json" => json = true,
            "-h" | "--help" => return Err(String::new()),
            "bundle" => {
                let dest = args.next().ok_or("bundle needs DEST")?;
                if args.next().as_deref() != Some("--") {
                    return Err("bundle DEST must be followed by -- ARGS...".to_owned());
                }
                let rest: Vec<String> = args.collect();
                if rest.is_empty() {
                    return Err("bundle needs at least one process argument after --".to_owned());
                }
                return Ok(Options {
                    cache_dir,
                    command: Command::Bundle {
                        dest: PathBuf::from(dest),
                        args: rest,
                    },
                });
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    Ok(Options {
        cache_dir,
        command: Command::Show { json },
    })
}

fn run(options: Options) -> Result<(), Box<dyn std::error::Error>> {
    let fixtures = match &options.cache_dir {
        Some(dir) => Fixtures::at(dir)?,
        None => Fixtures::get()?,
    };
    let mut stdout = std::io::stdout().lock();
    match options.command {
        Command::Show { json: false } => writeln!(stdout, "{}", fixtures.dir().display())?,
        Command::Show { json: true } => {
            let path = fixtures.dir().join(FIXTURES_JSON);
            let text =
                std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            stdout.write_all(&text)?;
        }
        Command::Bundle { dest, args } => {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let bundle = fixtures.make_bundle(&dest, &args)?;
            writeln!(stdout, "{}", bundle.display())?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("berth-fixtures: {message}");
            }
            eprintln!("{USAGE}");
            return if message.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    match run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth-fixtures: {e}");
            ExitCode::FAILURE
        }
    }
}
