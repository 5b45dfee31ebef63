//! `berth-runtime events --stats` (runc's `types.Stats` JSON) → containerd's cgroup v2
//! `io.containerd.cgroups.v2.Metrics`, the type containerd's CRI and `ctr task metrics`
//! decode for a cgroup v2 host. runc's JSON is v1-shaped (ns, memsw), so the fields are
//! converted back (ns → µs, swap = memsw − memory) and the v2 `memory.stat` keys come
//! from `memory.raw`.

use containerd_shim_protos::cgroups_v2::metrics::{CPUStat, MemoryStat, Metrics, PidsStat};
use containerd_shim_protos::protobuf::MessageField;
use serde_json::Value;

/// Converts the first `stats` event in `out`.
pub fn from_runtime_events(out: &[u8]) -> Result<Metrics, String> {
    let text = String::from_utf8_lossy(out);
    let ev: Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["type"] == "stats")
        .ok_or("the runtime printed no stats event")?;
    let d = &ev["data"];
    let u = |v: &Value| v.as_u64().unwrap_or(0);
    let cpu = &d["cpu"];
    let mem = &d["memory"];
    let raw = &mem["raw"];
    let usage = u(&mem["usage"]["usage"]);
    let memsw = u(&mem["swap"]["usage"]);
    let memsw_limit = u(&mem["swap"]["limit"]);
    let limit = u(&mem["usage"]["limit"]);
    Ok(Metrics {
        pids: MessageField::some(PidsStat {
            current: u(&d["pids"]["current"]),
            limit: u(&d["pids"]["limit"]),
            ..Default::default()
        }),
        cpu: MessageField::some(CPUStat {
            usage_usec: u(&cpu["usage"]["total"]) / 1000,
            user_usec: u(&cpu["usage"]["user"]) / 1000,
            system_usec: u(&cpu["usage"]["kernel"]) / 1000,
            nr_periods: u(&cpu["throttling"]["periods"]),
            nr_throttled: u(&cpu["throttling"]["throttledPeriods"]),
            throttled_usec: u(&cpu["throttling"]["throttledTime"]) / 1000,
            ..Default::default()
        }),
        memory: MessageField::some(MemoryStat {
            anon: u(&raw["anon"]),
            file: u(&raw["file"]),
            kernel_stack: u(&raw["kernel_stack"]),
            slab: u(&raw["slab"]),
            sock: u(&raw["sock"]),
            shmem: u(&raw["shmem"]),
            file_mapped: u(&raw["file_mapped"]),
            file_dirty: u(&raw["file_dirty"]),
            file_writeback: u(&raw["file_writeback"]),
            inactive_anon: u(&raw["inactive_anon"]),
            active_anon: u(&raw["active_anon"]),
            inactive_file: u(&raw["inactive_file"]),
            active_file: u(&raw["active_file"]),
            unevictable: u(&raw["unevictable"]),
            pgfault: u(&raw["pgfault"]),
            pgmajfault: u(&raw["pgmajfault"]),
            usage,
            usage_limit: limit,
            swap_usage: memsw.saturating_sub(usage),
            swap_limit: memsw_limit.saturating_sub(limit),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_runc_stats() {
        let out = br#"{"type":"stats","id":"c","data":{"cpu":{"usage":{"total":5000,"user":3000,"kernel":2000},"throttling":{}},"memory":{"usage":{"usage":4096,"limit":8192},"swap":{"usage":5096,"limit":9192},"raw":{"anon":100,"file":200}},"pids":{"current":3,"limit":10}}}"#;
        let m = from_runtime_events(out).unwrap();
        assert_eq!(m.pids.current, 3);
        assert_eq!(m.cpu.usage_usec, 5);
        assert_eq!(m.memory.usage, 4096);
        assert_eq!(m.memory.swap_usage, 1000);
        assert_eq!(m.memory.anon, 100);
        assert!(from_runtime_events(b"garbage").is_err());
    }
}
