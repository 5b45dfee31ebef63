//! `ps [--format table|json] ID [-- PS_ARGS]`, like runc: the pids are those of the
//! container's cgroup (and below). `json` prints them as a JSON array of host pids;
//! `table` runs `ps` (default `-ef`) and keeps its header and the lines whose `PID`
//! column is one of them.

use std::process::Command;

use crate::cli::{PsArgs, PsFormat};
use crate::container_id::ContainerId;
use crate::error::Error;

use super::{Context, cgroup_of};

/// Lists the processes.
pub fn run(ctx: &Context, args: &PsArgs) -> Result<(), Error> {
    let id = ContainerId::parse(&args.id)?;
    let st = ctx.root.load(&id)?;
    let cg = cgroup_of(&st, "ps")?;
    let pids = cg.all_pids()?;
    match args.format {
        PsFormat::Json => {
            println!("{}", serde_json::to_string(&pids).expect("pids serialise"));
            Ok(())
        }
        PsFormat::Table => {
            let ps_args: Vec<String> = if args.ps_args.is_empty() {
                vec!["-ef".into()]
            } else {
                args.ps_args.clone()
            };
            let out = Command::new("ps")
                .args(&ps_args)
                .output()
                .map_err(|source| Error::Io {
                    step: "run",
                    path: "ps".into(),
                    source,
                })?;
            if !out.status.success() {
                return Err(Error::Io {
                    step: "run",
                    path: format!("ps {}", ps_args.join(" ")).into(),
                    source: std::io::Error::other(
                        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                    ),
                });
            }
            print!(
                "{}",
                filter_table(&String::from_utf8_lossy(&out.stdout), &pids)?
            );
            Ok(())
        }
    }
}

/// The header and the lines of `ps` output whose PID column is in `pids`.
pub fn filter_table(text: &str, pids: &[i32]) -> Result<String, Error> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|f| f == "PID")
        .ok_or_else(|| Error::Usage {
            flag: "ps",
            reason: "couldn't find PID field in ps output".into(),
        })?;
    let mut out = format!("{header}\n");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_header_and_container_lines() {
        let text = "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 10:00 ? 00:00:01 init\nroot 42 1 0 10:00 ? 00:00:00 sleep 100\n";
        assert_eq!(
            filter_table(text, &[42]).unwrap(),
            "UID PID PPID C STIME TTY TIME CMD\nroot 42 1 0 10:00 ? 00:00:00 sleep 100\n"
        );
        assert!(filter_table("USER COMMAND\n", &[1]).is_err());
    }
}
