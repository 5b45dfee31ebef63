//! `events [--stats] [--interval D] ID`, runc's format: one JSON object per line,
//! `{"type":"stats","id":ID,"data":{...}}` ([`crate::cgroups::stats`]) every interval
//! (default 5s), and `{"type":"oom","id":ID}` when the container's cgroup records a new
//! OOM kill. `--stats` prints one stats event and exits. Without `--stats` it runs until
//! the container stops.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cgroups::stats;
use crate::cli::EventsArgs;
use crate::container_id::ContainerId;
use crate::error::Error;
use crate::state::Status;

use super::{Context, cgroup_of};

/// Parses a Go-style duration: `5s`, `500ms`, `1.5m`, `1h`, `100us`.
pub fn parse_duration(s: &str) -> Result<Duration, Error> {
    let bad = || Error::Usage {
        flag: "--interval",
        reason: format!("invalid duration {s:?} (e.g. 5s, 500ms, 1m)"),
    };
    let t = s.trim();
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (num, unit) = t.split_at(end);
    let num: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ns" => num / 1e9,
        "us" | "µs" => num / 1e6,
        "ms" => num / 1e3,
        "s" => num,
        "m" => num * 60.0,
        "h" => num * 3600.0,
        _ => return Err(bad()),
    };
    if secs <= 0.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

fn emit(v: &serde_json::Value) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{v}")
        .and_then(|()| out.flush())
        .map_err(|source| Error::Io {
            step: "write",
            path: "stdout".into(),
            source,
        })
}

/// Prints the events.
pub fn run(ctx: &Context, args: &EventsArgs) -> Result<(), Error> {
    let id = ContainerId::parse(&args.id)?;
    let interval = parse_duration(&args.interval)?;
    let st = ctx.root.load(&id)?;
    let status = ctx.root.status(&st);
    if status == Status::Stopped {
        return Err(Error::WrongStatus {
            action: "get events of",
            id: id.to_string(),
            status,
        });
    }
    let cg = cgroup_of(&st, "get events of")?;
    let stats_event = || json!({"type": "stats", "id": id.as_str(), "data": stats::collect(&cg)});
    if args.stats {
        return emit(&stats_event());
    }
    let mut ooms = stats::oom_kills(&cg);
    let mut next = Instant::now();
    while ctx.root.status(&st) != Status::Stopped {
        let now_ooms = stats::oom_kills(&cg);
        if now_ooms > ooms {
            ooms = now_ooms;
            emit(&json!({"type": "oom", "id": id.as_str()}))?;
        }
        if Instant::now() >= next {
            emit(&stats_event())?;
            next += interval;
        }
        std::thread::sleep(Duration::from_millis(100).min(interval));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5m").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("0s").is_err());
    }
}
