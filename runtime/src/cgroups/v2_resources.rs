//! `linux.resources` → cgroup v2 interface files, with runc's (1.1) conversions:
//!
//! | field | file | value |
//! |---|---|---|
//! | memory.limit / reservation | `memory.max` / `memory.low` | bytes, `-1` → `max` |
//! | memory.swap (memory+swap, v1 style) | `memory.swap.max` | `swap - limit` |
//! | cpu.shares | `cpu.weight` | `1 + (shares - 2) * 9999 / 262142` |
//! | cpu.quota / period | `cpu.max` | `"<quota|max> [period]"` |
//! | cpu.burst / idle | `cpu.max.burst` / `cpu.idle` | verbatim |
//! | cpu.cpus / mems | `cpuset.cpus` / `cpuset.mems` | verbatim |
//! | pids.limit | `pids.max` | `> 0` verbatim, `< 0` → `max` |
//! | blockIO.weight | `io.bfq.weight` if present, else `io.weight` | `1 + (w - 10) * 9999 / 990` for io.weight |
//! | blockIO.weightDevice | `io.bfq.weight` / `io.weight` | `maj:min weight` |
//! | blockIO.throttle* | `io.max` | `maj:min rbps=/wbps=/riops=/wiops=N` |
//! | hugepageLimits | `hugetlb.<size>.max` (+ `.rsvd.max` if present) | bytes |
//! | rdma | `rdma.max` | `dev hca_handle=N hca_object=M` |
//! | unified | the key, verbatim | the value, verbatim |
//!
//! What cgroup v2 cannot do is refused with the field named (`disableOOMKiller`,
//! `swappiness`, realtime cpu, `network`); kernel memory limits are ignored with a
//! warning, as runc and crun do. Settings are computed ([`plan`]) before the cgroup is
//! created, so a bad value leaves nothing behind; [`apply`] writes them in order.

use oci_spec::runtime::{LinuxResources, LinuxThrottleDevice};

use super::CgroupError;
use super::v2::{Cgroup, Need};

/// How a setting is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Written verbatim.
    Plain(String),
    /// A blkio weight (10-1000): `io.bfq.weight` verbatim when the file exists, else
    /// `io.weight` converted. `device` is `Some("maj:min")` for a per-device weight.
    IoWeight {
        /// `maj:min` for weightDevice entries.
        device: Option<String>,
        /// The blkio weight.
        weight: u16,
    },
    /// Written if the file exists, skipped otherwise (`hugetlb.*.rsvd.max`).
    IfPresent(String),
    /// `memory.swap.max`: a missing file (no swap accounting) is only fine for `max`.
    Swap(String),
}

/// One file write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The controller the file belongs to (`None`: core `cgroup.*` files).
    pub controller: Option<String>,
    /// The config field, for error messages.
    pub field: String,
    /// The interface file.
    pub file: String,
    /// What to write.
    pub value: Value,
}

impl Setting {
    fn plain(controller: &str, field: &str, file: &str, value: impl Into<String>) -> Self {
        Self {
            controller: Some(controller.to_owned()),
            field: format!("linux.resources.{field}"),
            file: file.to_owned(),
            value: Value::Plain(value.into()),
        }
    }
}

/// The controllers `settings` need, with the first field needing each.
pub fn needs(settings: &[Setting]) -> Vec<Need> {
    let mut out: Vec<Need> = Vec::new();
    for s in settings {
        if let Some(c) = &s.controller {
            if !out.iter().any(|n| &n.controller == c) {
                out.push(Need {
                    controller: c.clone(),
                    field: s.field.clone(),
                });
            }
        }
    }
    out
}

fn invalid(field: &str, reason: impl Into<String>) -> CgroupError {
    CgroupError::Invalid {
        field: format!("linux.resources.{field}"),
        reason: reason.into(),
    }
}

/// `-1` → `max`, `0` → unset, positive verbatim.
fn num_to_str(field: &str, v: i64) -> Result<Option<String>, CgroupError> {
    match v {
        -1 => Ok(Some("max".into())),
        0 => Ok(None),
        v if v > 0 => Ok(Some(v.to_string())),
        v => Err(invalid(
            field,
            format!("invalid value {v} (use -1 for no limit)"),
        )),
    }
}

/// runc's `ConvertCPUSharesToCgroupV2Value` (the 1.1 linear mapping of [2, 262144] onto
/// [1, 10000]; crun 1.8 uses the same).
pub fn cpu_shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// runc's `ConvertBlkIOToIOWeightValue`: [10, 1000] onto [1, 10000].
pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    let w = u64::from(weight.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

/// runc's `ConvertMemorySwapToCgroupV2Value`: the spec's swap is memory+swap (v1);
/// `memory.swap.max` is swap alone.
pub fn swap_to_v2(swap: i64, memory: i64) -> Result<i64, String> {
    if memory == -1 && swap == 0 {
        return Ok(-1);
    }
    if swap == -1 || swap == 0 {
        return Ok(swap);
    }
    if memory == 0 || memory == -1 {
        return Err("unable to set a swap limit without a memory limit".into());
    }
    if memory < 0 {
        return Err(format!("invalid memory value {memory}"));
    }
    if swap < memory {
        return Err(format!(
            "memory+swap limit ({swap}) must be >= the memory limit ({memory})"
        ));
    }
    Ok(swap - memory)
}

/// Computes every write `res` asks for, refusing what cgroup v2 cannot do.
pub fn plan(res: &LinuxResources) -> Result<Vec<Setting>, CgroupError> {
    let mut out = Vec::new();
    if let Some(m) = res.memory() {
        if m.disable_oom_killer() == Some(true) {
            return Err(invalid(
                "memory.disableOOMKiller",
                "not supported on cgroup v2 (there is no way to disable the OOM killer)",
            ));
        }
        if let Some(s) = m.swappiness() {
            return Err(invalid(
                "memory.swappiness",
                format!("{s}: not supported on cgroup v2 (there is no memory.swappiness)"),
            ));
        }
        if m.kernel().is_some() || m.kernel_tcp().is_some() {
            tracing::warn!(
                "linux.resources.memory.kernel/kernelTCP ignored: not supported on cgroup v2"
            );
        }
        let limit = m.limit().unwrap_or(0);
        if let Some(swap) = m.swap() {
            let v = swap_to_v2(swap, limit).map_err(|r| invalid("memory.swap", r))?;
            if let Some(s) = num_to_str("memory.swap", v)? {
                out.push(Setting {
                    controller: Some("memory".into()),
                    field: "linux.resources.memory.swap".into(),
                    file: "memory.swap.max".into(),
                    value: Value::Swap(s),
                });
            }
        } else if limit == -1 {
            // Unlimited memory and unset swap: both unlimited (runc).
            out.push(Setting {
                controller: Some("memory".into()),
                field: "linux.resources.memory.swap".into(),
                file: "memory.swap.max".into(),
                value: Value::Swap("max".into()),
            });
        }
        if let Some(s) = num_to_str("memory.limit", limit)? {
            out.push(Setting::plain("memory", "memory.limit", "memory.max", s));
        }
        if let Some(r) = m.reservation() {
            if let Some(s) = num_to_str("memory.reservation", r)? {
                out.push(Setting::plain(
                    "memory",
                    "memory.reservation",
                    "memory.low",
                    s,
                ));
            }
        }
    }
    if let Some(c) = res.cpu() {
        if c.realtime_runtime().is_some_and(|v| v != 0)
            || c.realtime_period().is_some_and(|v| v != 0)
        {
            return Err(invalid(
                "cpu.realtimeRuntime",
                "realtime scheduling limits are not supported on cgroup v2",
            ));
        }
        if let Some(shares) = c.shares().filter(|s| *s != 0) {
            out.push(Setting::plain(
                "cpu",
                "cpu.shares",
                "cpu.weight",
                cpu_shares_to_weight(shares).to_string(),
            ));
        }
        let quota = c.quota().unwrap_or(0);
        let period = c.period().unwrap_or(0);
        if quota != 0 || period != 0 {
            let mut s = if quota > 0 {
                quota.to_string()
            } else {
                "max".to_owned()
            };
            if period != 0 {
                s.push_str(&format!(" {period}"));
            }
            out.push(Setting::plain("cpu", "cpu.quota", "cpu.max", s));
        }
        if let Some(b) = c.burst() {
            out.push(Setting::plain(
                "cpu",
                "cpu.burst",
                "cpu.max.burst",
                b.to_string(),
            ));
        }
        if let Some(i) = c.idle() {
            out.push(Setting::plain("cpu", "cpu.idle", "cpu.idle", i.to_string()));
        }
        if let Some(cpus) = c.cpus().as_ref().filter(|s| !s.is_empty()) {
            out.push(Setting::plain(
                "cpuset",
                "cpu.cpus",
                "cpuset.cpus",
                cpus.clone(),
            ));
        }
        if let Some(mems) = c.mems().as_ref().filter(|s| !s.is_empty()) {
            out.push(Setting::plain(
                "cpuset",
                "cpu.mems",
                "cpuset.mems",
                mems.clone(),
            ));
        }
    }
    if let Some(p) = res.pids() {
        let limit = p.limit();
        if limit != 0 {
            let v = if limit > 0 {
                limit.to_string()
            } else {
                "max".to_owned()
            };
            out.push(Setting::plain("pids", "pids.limit", "pids.max", v));
        }
    }
    if let Some(b) = res.block_io() {
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            out.push(Setting {
                controller: Some("io".into()),
                field: "linux.resources.blockIO.weight".into(),
                file: "io.weight".into(),
                value: Value::IoWeight {
                    device: None,
                    weight: w,
                },
            });
        }
        for wd in b.weight_device().iter().flatten() {
            if let Some(w) = wd.weight().filter(|w| *w != 0) {
                out.push(Setting {
                    controller: Some("io".into()),
                    field: "linux.resources.blockIO.weightDevice".into(),
                    file: "io.weight".into(),
                    value: Value::IoWeight {
                        device: Some(format!("{}:{}", wd.major(), wd.minor())),
                        weight: w,
                    },
                });
            }
        }
        let throttles: [(&str, &str, &Option<Vec<LinuxThrottleDevice>>); 4] = [
            (
                "blockIO.throttleReadBpsDevice",
                "rbps",
                b.throttle_read_bps_device(),
            ),
            (
                "blockIO.throttleWriteBpsDevice",
                "wbps",
                b.throttle_write_bps_device(),
            ),
            (
                "blockIO.throttleReadIOPSDevice",
                "riops",
                b.throttle_read_iops_device(),
            ),
            (
                "blockIO.throttleWriteIOPSDevice",
                "wiops",
                b.throttle_write_iops_device(),
            ),
        ];
        for (field, key, list) in throttles {
            for td in list.iter().flatten() {
                let rate = if td.rate() == 0 {
                    "max".to_owned()
                } else {
                    td.rate().to_string()
                };
                out.push(Setting::plain(
                    "io",
                    field,
                    "io.max",
                    format!("{}:{} {key}={rate}", td.major(), td.minor()),
                ));
            }
        }
    }
    for h in res.hugepage_limits().iter().flatten() {
        let size = h.page_size();
        if size.is_empty() || !size.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(invalid(
                "hugepageLimits",
                format!("invalid pageSize {size:?}"),
            ));
        }
        let v = if h.limit() < 0 {
            "max".to_owned()
        } else {
            h.limit().to_string()
        };
        out.push(Setting::plain(
            "hugetlb",
            "hugepageLimits",
            &format!("hugetlb.{size}.max"),
            v.clone(),
        ));
        out.push(Setting {
            controller: Some("hugetlb".into()),
            field: "linux.resources.hugepageLimits".into(),
            file: format!("hugetlb.{size}.rsvd.max"),
            value: Value::IfPresent(v),
        });
    }
    if let Some(n) = res.network() {
        if n.class_id().is_some() || n.priorities().as_ref().is_some_and(|v| !v.is_empty()) {
            return Err(invalid(
                "network",
                "classID/priorities are not supported on cgroup v2 (net_cls and net_prio are cgroup v1 controllers)",
            ));
        }
    }
    let mut rdma: Vec<_> = res.rdma().iter().flatten().collect();
    rdma.sort_by(|a, b| a.0.cmp(b.0));
    for (dev, r) in rdma {
        let mut v = dev.clone();
        if let Some(h) = r.hca_handles() {
            v.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = r.hca_objects() {
            v.push_str(&format!(" hca_object={o}"));
        }
        out.push(Setting::plain("rdma", "rdma", "rdma.max", v));
    }
    let mut unified: Vec<_> = res.unified().iter().flatten().collect();
    unified.sort_by(|a, b| a.0.cmp(b.0));
    for (key, value) in unified {
        out.push(unified_setting(key, value)?);
    }
    Ok(out)
}

fn unified_setting(key: &str, value: &str) -> Result<Setting, CgroupError> {
    let field = format!("unified[{key:?}]");
    if key.is_empty() || key.contains('/') || key.contains('\0') || !key.contains('.') {
        return Err(invalid(
            &field,
            "not a cgroup interface file name (must be \"<controller>.<file>\", no path separators)",
        ));
    }
    let prefix = key.split('.').next().unwrap_or_default();
    if prefix.is_empty() {
        return Err(invalid(&field, "not a cgroup interface file name"));
    }
    Ok(Setting {
        controller: (prefix != "cgroup").then(|| prefix.to_owned()),
        field: format!("linux.resources.{field}"),
        file: key.to_owned(),
        value: Value::Plain(value.to_owned()),
    })
}

/// Writes `settings` into `cg`, in order. A missing file is reported with the field
/// that asked for it.
pub fn apply(cg: &Cgroup, settings: &[Setting]) -> Result<(), CgroupError> {
    for s in settings {
        match &s.value {
            Value::Plain(v) => {
                if !cg.has_file(&s.file) {
                    return Err(CgroupError::Invalid {
                        field: s.field.clone(),
                        reason: format!(
                            "{} does not exist (controller not enabled, or not supported by this kernel)",
                            cg.dir().join(&s.file).display()
                        ),
                    });
                }
                cg.write(&s.file, v)?;
            }
            Value::IfPresent(v) => {
                if cg.has_file(&s.file) {
                    cg.write(&s.file, v)?;
                }
            }
            Value::Swap(v) => {
                if cg.has_file(&s.file) {
                    cg.write(&s.file, v)?;
                } else if v != "max" {
                    return Err(CgroupError::Invalid {
                        field: s.field.clone(),
                        reason: format!(
                            "{} does not exist: this kernel has no swap accounting",
                            cg.dir().join(&s.file).display()
                        ),
                    });
                }
            }
            Value::IoWeight { device, weight } => {
                let prefix = device.as_ref().map(|d| format!("{d} ")).unwrap_or_default();
                if cg.has_file("io.bfq.weight") {
                    cg.write("io.bfq.weight", &format!("{prefix}{weight}"))?;
                } else if cg.has_file("io.weight") {
                    let w = blkio_weight_to_io_weight(*weight);
                    let value = if device.is_some() {
                        format!("{prefix}{w}")
                    } else {
                        format!("default {w}")
                    };
                    cg.write("io.weight", &value)?;
                } else {
                    return Err(CgroupError::Invalid {
                        field: s.field.clone(),
                        reason: format!(
                            "neither io.bfq.weight nor io.weight exists in {} (no io scheduler with weights)",
                            cg.dir().display()
                        ),
                    });
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(v: serde_json::Value) -> LinuxResources {
        serde_json::from_value(v).unwrap()
    }

    fn files(s: &[Setting]) -> Vec<(String, String)> {
        s.iter()
            .map(|s| {
                let v = match &s.value {
                    Value::Plain(v) | Value::IfPresent(v) | Value::Swap(v) => v.clone(),
                    Value::IoWeight { device, weight } => format!("{device:?}/{weight}"),
                };
                (s.file.clone(), v)
            })
            .collect()
    }

    #[test]
    fn conversions_match_runc() {
        assert_eq!(cpu_shares_to_weight(1024), 39);
        assert_eq!(cpu_shares_to_weight(2), 1);
        assert_eq!(cpu_shares_to_weight(262_144), 10_000);
        assert_eq!(cpu_shares_to_weight(512), 20);
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert_eq!(swap_to_v2(0, -1), Ok(-1));
        assert_eq!(swap_to_v2(-1, 100), Ok(-1));
        assert_eq!(swap_to_v2(300, 100), Ok(200));
        assert!(swap_to_v2(50, 100).is_err());
        assert!(swap_to_v2(50, 0).is_err());
    }

    #[test]
    fn plan_writes_the_converted_values() {
        let s = plan(&res(serde_json::json!({
            "memory": {"limit": 104857600, "reservation": 52428800, "swap": 209715200},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
            "pids": {"limit": 32},
            "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
            "unified": {"memory.high": "90000000"}
        })))
        .unwrap();
        let f = files(&s);
        let expected = [
            ("memory.swap.max", "104857600"),
            ("memory.max", "104857600"),
            ("memory.low", "52428800"),
            ("cpu.weight", "20"),
            ("cpu.max", "50000 100000"),
            ("cpuset.cpus", "0"),
            ("cpuset.mems", "0"),
            ("pids.max", "32"),
            ("io.weight", "None/500"),
            ("io.max", "8:0 rbps=1048576"),
            ("hugetlb.2MB.max", "0"),
            ("hugetlb.2MB.rsvd.max", "0"),
            ("memory.high", "90000000"),
        ];
        assert_eq!(
            f,
            expected
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        );
        let n: Vec<String> = needs(&s).into_iter().map(|n| n.controller).collect();
        assert_eq!(n, ["memory", "cpu", "cpuset", "pids", "io", "hugetlb"]);
    }

    #[test]
    fn quota_only_and_unlimited() {
        let s = plan(&res(serde_json::json!({
            "cpu": {"quota": -1}, "memory": {"limit": -1}, "pids": {"limit": -1}
        })))
        .unwrap();
        assert_eq!(
            files(&s),
            [
                ("memory.swap.max".to_string(), "max".to_string()),
                ("memory.max".into(), "max".into()),
                ("cpu.max".into(), "max".into()),
                ("pids.max".into(), "max".into())
            ]
        );
    }

    #[test]
    fn refusals_name_the_field() {
        for (v, field) in [
            (
                serde_json::json!({"memory": {"disableOOMKiller": true}}),
                "memory.disableOOMKiller",
            ),
            (
                serde_json::json!({"memory": {"swappiness": 10}}),
                "memory.swappiness",
            ),
            (
                serde_json::json!({"memory": {"limit": 10, "swap": 5}}),
                "memory.swap",
            ),
            (
                serde_json::json!({"cpu": {"realtimeRuntime": 10}}),
                "cpu.realtimeRuntime",
            ),
            (serde_json::json!({"network": {"classID": 1}}), "network"),
            (
                serde_json::json!({"unified": {"../memory.max": "1"}}),
                "unified",
            ),
            (serde_json::json!({"unified": {"nodot": "1"}}), "unified"),
            (serde_json::json!({"memory": {"limit": -5}}), "memory.limit"),
        ] {
            let e = plan(&res(v)).unwrap_err().to_string();
            assert!(e.contains(&format!("linux.resources.{field}")), "{e}");
        }
    }
}
