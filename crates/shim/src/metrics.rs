//! The library's cgroup statistics (runc's `events --stats` shape) as containerd's cgroup v1
//! `Metrics`, which the CRI turns into ContainerStats (CPU usage, memory working set).

use containerd_shim::protos::cgroups::metrics::{
    CPUStat, CPUUsage, MemoryEntry, MemoryStat, Metrics, PidsStat, Throttle,
};
use serde_json::Value;

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn entry(v: &Value) -> MemoryEntry {
    MemoryEntry {
        limit: u(&v["limit"]),
        usage: u(&v["usage"]),
        max: u(&v["max"]),
        failcnt: u(&v["failcnt"]),
        ..Default::default()
    }
}

/// `data` is the `data` object of one stats sample.
pub fn v1(data: &Value) -> Metrics {
    let cpu = &data["cpu"];
    let mem = &data["memory"];
    let raw = &mem["raw"];
    let mut m = Metrics::new();
    m.pids = Some(PidsStat {
        current: u(&data["pids"]["current"]),
        limit: u(&data["pids"]["limit"]),
        ..Default::default()
    })
    .into();
    m.cpu = Some(CPUStat {
        usage: Some(CPUUsage {
            total: u(&cpu["usage"]["total"]),
            kernel: u(&cpu["usage"]["kernel"]),
            user: u(&cpu["usage"]["user"]),
            per_cpu: cpu["usage"]["percpu"]
                .as_array()
                .map(|a| a.iter().map(u).collect())
                .unwrap_or_default(),
            ..Default::default()
        })
        .into(),
        throttling: Some(Throttle {
            periods: u(&cpu["throttling"]["periods"]),
            throttled_periods: u(&cpu["throttling"]["throttled_periods"]),
            throttled_time: u(&cpu["throttling"]["throttled_time"]),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    })
    .into();
    m.memory = Some(MemoryStat {
        cache: u(&mem["cache"]),
        rss: u(&raw["rss"]),
        mapped_file: u(&raw["mapped_file"]),
        inactive_anon: u(&raw["inactive_anon"]),
        active_anon: u(&raw["active_anon"]),
        inactive_file: u(&raw["inactive_file"]),
        active_file: u(&raw["active_file"]),
        pg_fault: u(&raw["pgfault"]),
        pg_maj_fault: u(&raw["pgmajfault"]),
        total_cache: u(&raw["total_cache"]),
        total_rss: u(&raw["total_rss"]),
        total_inactive_file: u(&raw["total_inactive_file"]),
        total_active_file: u(&raw["total_active_file"]),
        total_pg_fault: u(&raw["total_pgfault"]),
        total_pg_maj_fault: u(&raw["total_pgmajfault"]),
        usage: Some(entry(&mem["usage"])).into(),
        swap: Some(entry(&mem["swap"])).into(),
        kernel: Some(entry(&mem["kernel"])).into(),
        ..Default::default()
    })
    .into();
    m
}
