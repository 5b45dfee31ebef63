//! `update [--resources FILE|-] [--memory N] [--cpu-quota N] ... ID`, like runc's: the
//! resources JSON (a `linux.resources` object) is read first, then each flag overrides
//! its field; the result is written to the container's cgroup with the same conversions
//! as `create` ([`crate::cgroups::v2_resources`]). Device rules in the JSON are ignored,
//! as runc's `update` ignores them.

use std::io::Read;

use oci_spec::runtime::{LinuxCpu, LinuxPids, LinuxResources};

use crate::cgroups::v2_resources;
use crate::cli::UpdateArgs;
use crate::container_id::ContainerId;
use crate::error::Error;
use crate::state::Status;

use super::{Context, cgroup_of};

/// Parses a byte count like runc's (`units.RAMInBytes`): `123`, `64k`, `512m`, `1g`,
/// `2GiB`, `-1`.
pub fn parse_bytes(flag: &'static str, s: &str) -> Result<i64, Error> {
    let bad = || Error::Usage {
        flag,
        reason: format!("invalid size {s:?}"),
    };
    let t = s.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let lower = t.to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(digits_end);
    let num: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.trim();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(bad()),
    };
    Ok((num * mult) as i64)
}

fn read_resources(src: &str) -> Result<LinuxResources, Error> {
    let text = if src == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|source| Error::Io {
                step: "read",
                path: "stdin".into(),
                source,
            })?;
        s
    } else {
        std::fs::read_to_string(src).map_err(|source| Error::Io {
            step: "read",
            path: src.into(),
            source,
        })?
    };
    serde_json::from_str(&text).map_err(|e| Error::Usage {
        flag: "--resources",
        reason: format!("invalid linux.resources JSON: {e}"),
    })
}

/// Builds the resources to apply from the JSON and the flags.
pub fn resources_from_args(args: &UpdateArgs) -> Result<LinuxResources, Error> {
    let mut r = match &args.resources {
        Some(src) => read_resources(src)?,
        None => LinuxResources::default(),
    };
    if r.devices().as_ref().is_some_and(|d| !d.is_empty()) {
        tracing::info!("update: linux.resources.devices ignored (as runc does)");
    }
    r.set_devices(None);
    let mut mem = (*r.memory()).unwrap_or_default();
    let mut mem_set = r.memory().is_some();
    for (flag, val, set) in [
        ("--memory", &args.memory, 0),
        ("--memory-reservation", &args.memory_reservation, 1),
        ("--memory-swap", &args.memory_swap, 2),
    ] {
        if let Some(v) = val {
            let n = parse_bytes(flag, v)?;
            match set {
                0 => mem.set_limit(Some(n)),
                1 => mem.set_reservation(Some(n)),
                _ => mem.set_swap(Some(n)),
            };
            mem_set = true;
        }
    }
    if mem_set {
        r.set_memory(Some(mem));
    }
    let mut cpu: LinuxCpu = r.cpu().clone().unwrap_or_default();
    let mut cpu_set = r.cpu().is_some();
    if let Some(v) = args.cpu_shares {
        cpu.set_shares(Some(v));
        cpu_set = true;
    }
    if let Some(v) = args.cpu_quota {
        cpu.set_quota(Some(v));
        cpu_set = true;
    }
    if let Some(v) = args.cpu_period {
        cpu.set_period(Some(v));
        cpu_set = true;
    }
    if let Some(v) = &args.cpuset_cpus {
        cpu.set_cpus(Some(v.clone()));
        cpu_set = true;
    }
    if let Some(v) = &args.cpuset_mems {
        cpu.set_mems(Some(v.clone()));
        cpu_set = true;
    }
    if cpu_set {
        r.set_cpu(Some(cpu));
    }
    if let Some(v) = args.pids_limit {
        let mut p = LinuxPids::default();
        p.set_limit(v);
        r.set_pids(Some(p));
    }
    if let Some(w) = args.blkio_weight {
        let mut b = r.block_io().clone().unwrap_or_default();
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    Ok(r)
}

/// Applies the new limits.
pub fn run(ctx: &Context, args: &UpdateArgs) -> Result<(), Error> {
    let id = ContainerId::parse(&args.id)?;
    let st = ctx.root.load(&id)?;
    let status = ctx.root.status(&st);
    if matches!(status, Status::Stopped | Status::Creating) {
        return Err(Error::WrongStatus {
            action: "update",
            id: id.to_string(),
            status,
        });
    }
    let cg = cgroup_of(&st, "update")?;
    let res = resources_from_args(args)?;
    let settings = v2_resources::plan(&res)?;
    v2_resources::apply(&cg, &settings)?;
    tracing::info!(id = %id, writes = settings.len(), "container updated");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("x", "123").unwrap(), 123);
        assert_eq!(parse_bytes("x", "64k").unwrap(), 65536);
        assert_eq!(parse_bytes("x", "64m").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("x", "1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("x", "2MB").unwrap(), 2 << 20);
        assert_eq!(parse_bytes("x", "-1").unwrap(), -1);
        assert!(parse_bytes("x", "12q").is_err());
    }

    #[test]
    fn flags_override_json_fields() {
        let args = UpdateArgs {
            memory: Some("32m".into()),
            pids_limit: Some(7),
            cpu_quota: Some(20000),
            id: "c".into(),
            ..Default::default()
        };
        let r = resources_from_args(&args).unwrap();
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(32 << 20));
        assert_eq!(r.pids().as_ref().unwrap().limit(), 7);
        assert_eq!(r.cpu().as_ref().unwrap().quota(), Some(20000));
    }
}
