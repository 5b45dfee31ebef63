//! A cgroup's statistics in runc's `events` JSON shape (`types.Stats`, as
//! `runc events --stats` prints them and containerd's shim parses them): cpu (ns),
//! cpuset, memory (swap as memory+swap, like runc on v2), pids, blkio, hugetlb. Files a
//! controller does not have (not enabled) leave their section at its defaults, as runc's
//! stats do.

use serde_json::{Map, Value, json};

use super::Cgroup;
use super::v2::parse_flat_keyed;

fn flat(cg: &Cgroup, file: &str) -> Vec<(String, u64)> {
    cg.read(file)
        .map(|t| parse_flat_keyed(&t))
        .unwrap_or_default()
}

fn key(v: &[(String, u64)], k: &str) -> u64 {
    v.iter().find(|(n, _)| n == k).map_or(0, |(_, v)| *v)
}

/// A single-value file; `max` → `u64::MAX` (runc's convention), missing → `None`.
fn single(cg: &Cgroup, file: &str) -> Option<u64> {
    let t = cg.read(file).ok()?;
    let t = t.trim();
    if t == "max" {
        Some(u64::MAX)
    } else {
        t.parse().ok()
    }
}

fn cpu(cg: &Cgroup) -> Value {
    let s = flat(cg, "cpu.stat");
    json!({
        "usage": {
            "total": key(&s, "usage_usec") * 1000,
            "kernel": key(&s, "system_usec") * 1000,
            "user": key(&s, "user_usec") * 1000,
        },
        "throttling": {
            "periods": key(&s, "nr_periods"),
            "throttledPeriods": key(&s, "nr_throttled"),
            "throttledTime": key(&s, "throttled_usec") * 1000,
        }
    })
}

fn memory(cg: &Cgroup) -> Value {
    let stat = flat(cg, "memory.stat");
    let events = flat(cg, "memory.events");
    let raw: Map<String, Value> = stat.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let usage = single(cg, "memory.current").unwrap_or(0);
    json!({
        "cache": key(&stat, "file"),
        "usage": {
            "limit": single(cg, "memory.max").unwrap_or(u64::MAX),
            "usage": usage,
            "max": single(cg, "memory.peak").unwrap_or(0),
            "failcnt": key(&events, "max"),
        },
        // v1's memsw semantics, as runc reports them on v2: memory + swap.
        "swap": {
            "limit": match (single(cg, "memory.swap.max"), single(cg, "memory.max")) {
                (Some(s), Some(m)) => s.saturating_add(m),
                _ => 0,
            },
            "usage": single(cg, "memory.swap.current").unwrap_or(0) + usage,
            "failcnt": 0,
        },
        "kernel": { "limit": 0, "failcnt": 0 },
        "kernelTCP": { "limit": 0, "failcnt": 0 },
        "raw": raw,
    })
}

/// `0-2,5` → `[0, 1, 2, 5]`.
pub fn parse_cpu_list(text: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u64>(), b.parse::<u64>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<u64>().ok()),
        }
    }
    out
}

fn cpuset(cg: &Cgroup) -> Value {
    let list = |f: &str| parse_cpu_list(&cg.read(f).unwrap_or_default());
    json!({
        "cpus": list("cpuset.cpus.effective"),
        "mems": list("cpuset.mems.effective"),
    })
}

fn pids(cg: &Cgroup) -> Value {
    let limit = match single(cg, "pids.max") {
        Some(u64::MAX) | None => 0,
        Some(n) => n,
    };
    json!({ "current": single(cg, "pids.current").unwrap_or(0), "limit": limit })
}

/// `io.stat` → runc's `ioServiceBytesRecursive` / `ioServicedRecursive` entries.
fn blkio(cg: &Cgroup) -> Value {
    let mut bytes = Vec::new();
    let mut ios = Vec::new();
    for line in cg.read("io.stat").unwrap_or_default().lines() {
        let mut it = line.split_whitespace();
        let Some((major, minor)) = it.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse::<u64>(), minor.parse::<u64>()) else {
            continue;
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(v) = v.parse::<u64>() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut bytes, "Read"),
                "wbytes" => (&mut bytes, "Write"),
                "rios" => (&mut ios, "Read"),
                "wios" => (&mut ios, "Write"),
                _ => continue,
            };
            list.push(json!({"major": major, "minor": minor, "op": op, "value": v}));
        }
    }
    let mut out = Map::new();
    if !bytes.is_empty() {
        out.insert("ioServiceBytesRecursive".into(), Value::Array(bytes));
    }
    if !ios.is_empty() {
        out.insert("ioServicedRecursive".into(), Value::Array(ios));
    }
    Value::Object(out)
}

fn hugetlb(cg: &Cgroup) -> Value {
    let mut out = Map::new();
    let Ok(entries) = std::fs::read_dir(cg.dir()) else {
        return Value::Object(out);
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(size) = name
            .strip_prefix("hugetlb.")
            .and_then(|r| r.strip_suffix(".current"))
            .filter(|s| !s.contains('.'))
        else {
            continue;
        };
        let events = flat(cg, &format!("hugetlb.{size}.events"));
        out.insert(
            size.to_owned(),
            json!({
                "usage": single(cg, &name).unwrap_or(0),
                "failcnt": key(&events, "max"),
            }),
        );
    }
    Value::Object(out)
}

/// The stats of `cg` (runc's `types.Stats`).
pub fn collect(cg: &Cgroup) -> Value {
    json!({
        "cpu": cpu(cg),
        "cpuset": cpuset(cg),
        "memory": memory(cg),
        "pids": pids(cg),
        "blkio": blkio(cg),
        "hugetlb": hugetlb(cg),
        "intel_rdt": {},
        "network_interfaces": null,
    })
}

/// The number of OOM kills so far (`memory.events` `oom_kill`).
pub fn oom_kills(cg: &Cgroup) -> u64 {
    key(&flat(cg, "memory.events"), "oom_kill")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-2,5\n"), [0, 1, 2, 5]);
        assert_eq!(parse_cpu_list(""), Vec::<u64>::new());
    }
}
