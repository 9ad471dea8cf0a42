//! Resource usage in the shape of runc's `events --stats` `data` object (runc's
//! `types.Stats`: zero values of `omitempty` fields are left out as Go does, and read back as
//! zero), read from v1 or v2 files through the same [`Host`] the resource planner uses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::resources::{Host, Ver};

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// `cpu.usage`, in nanoseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct CpuUsage {
    /// Total CPU time.
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    /// Per CPU (v1 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    /// Per CPU in kernel mode (v1 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    /// Per CPU in user mode (v1 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    /// Time in kernel mode.
    pub kernel: u64,
    /// Time in user mode.
    pub user: u64,
}

/// `cpu.throttling`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Throttling {
    /// Enforcement periods.
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    /// Periods in which the group was throttled.
    #[serde(rename = "throttledPeriods", skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Time throttled, in nanoseconds.
    #[serde(rename = "throttledTime", skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

/// `cpu`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Cpu {
    /// Usage.
    pub usage: CpuUsage,
    /// CFS throttling.
    pub throttling: Throttling,
}

/// `cpuset`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct CpuSet {
    /// CPUs allowed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    /// cpuset.cpu_exclusive.
    pub cpu_exclusive: u64,
    /// Memory nodes allowed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    /// cpuset.mem_hardwall.
    pub mem_hardwall: u64,
    /// cpuset.mem_exclusive.
    pub mem_exclusive: u64,
    /// cpuset.memory_migrate.
    pub memory_migrate: u64,
    /// cpuset.memory_spread_page.
    pub memory_spread_page: u64,
    /// cpuset.memory_spread_slab.
    pub memory_spread_slab: u64,
    /// cpuset.memory_pressure.
    pub memory_pressure: u64,
    /// cpuset.sched_load_balance.
    pub sched_load_balance: u64,
    /// cpuset.sched_relax_domain_level.
    pub sched_relax_domain_level: i64,
}

/// One memory counter set (`usage`, `swap`, `kernel`, `kernelTCP`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct MemoryEntry {
    /// Limit in bytes (u64::MAX-ish when unlimited, as the kernel reports).
    pub limit: u64,
    /// Current usage.
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    /// Peak usage.
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    /// Times the limit was hit.
    pub failcnt: u64,
}

/// `memory`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Memory {
    /// Page cache.
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    /// Memory.
    pub usage: MemoryEntry,
    /// Memory plus swap.
    pub swap: MemoryEntry,
    /// Kernel memory (v1).
    pub kernel: MemoryEntry,
    /// Kernel TCP buffers (v1).
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    /// memory.stat as is.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

/// `pids`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Pids {
    /// Processes now.
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// Limit (0: none).
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

/// One block I/O counter.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct BlkioEntry {
    /// Device major.
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    /// Device minor.
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    /// `Read`, `Write`, `Sync`, `Async`, `Discard`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    /// Value.
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

/// `blkio`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Blkio {
    /// Bytes transferred.
    #[serde(
        rename = "ioServiceBytesRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    /// I/O operations.
    #[serde(rename = "ioServicedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

/// One huge page size's counters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Hugetlb {
    /// Usage in bytes.
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    /// Peak usage (v1).
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    /// Allocations that failed because of the limit.
    pub failcnt: u64,
}

/// The `data` object of `events --stats`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct StatsData {
    /// CPU.
    pub cpu: Cpu,
    /// cpuset.
    pub cpuset: CpuSet,
    /// Memory.
    pub memory: Memory,
    /// Pids.
    pub pids: Pids,
    /// Block I/O.
    pub blkio: Blkio,
    /// Huge pages, by page size.
    pub hugetlb: BTreeMap<String, Hugetlb>,
    /// Intel RDT (not supported: always empty).
    pub intel_rdt: serde_json::Map<String, serde_json::Value>,
    /// Network interfaces (not collected: always null, as runc without a network probe).
    pub network_interfaces: Option<Vec<serde_json::Value>>,
}

fn num(s: &str) -> u64 {
    let s = s.trim();
    if s == "max" {
        return u64::MAX;
    }
    s.parse().unwrap_or(0)
}

fn read_num(host: &dyn Host, ctl: &str, file: &str) -> u64 {
    host.read(ctl, file).map(|s| num(&s)).unwrap_or(0)
}

/// `key value` lines (memory.stat, cpu.stat, cpuacct.stat, *.events).
pub fn key_values(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// A cpuset list (`0-3,5`) as numbers.
pub fn cpu_list(text: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<u16>().ok()),
        }
    }
    out
}

/// Clock ticks per second of cpuacct.stat (USER_HZ, 100 on every Linux ABI).
const USER_HZ: u64 = 100;

fn cpu(host: &dyn Host) -> Cpu {
    let mut c = Cpu::default();
    if host.version("cpuacct") == Some(Ver::V1) {
        c.usage.total = read_num(host, "cpuacct", "cpuacct.usage");
        let per = |file: &str| -> Vec<u64> {
            host.read("cpuacct", file)
                .map(|s| s.split_whitespace().map(num).collect())
                .unwrap_or_default()
        };
        c.usage.percpu = per("cpuacct.usage_percpu");
        c.usage.percpu_kernel = per("cpuacct.usage_percpu_sys");
        c.usage.percpu_user = per("cpuacct.usage_percpu_user");
        let st = key_values(&host.read("cpuacct", "cpuacct.stat").unwrap_or_default());
        let ns = |ticks: u64| ticks.saturating_mul(1_000_000_000) / USER_HZ;
        c.usage.user = ns(st.get("user").copied().unwrap_or(0));
        c.usage.kernel = ns(st.get("system").copied().unwrap_or(0));
    } else if let Some(st) = host.read("cgroup", "cpu.stat") {
        // cpu.stat's usage lines exist on v2 even without the cpu controller.
        let st = key_values(&st);
        let us = |k: &str| st.get(k).copied().unwrap_or(0).saturating_mul(1000);
        c.usage.total = us("usage_usec");
        c.usage.user = us("user_usec");
        c.usage.kernel = us("system_usec");
    }
    match host.version("cpu") {
        Some(Ver::V1) => {
            let st = key_values(&host.read("cpu", "cpu.stat").unwrap_or_default());
            let g = |k: &str| st.get(k).copied().unwrap_or(0);
            c.throttling = Throttling {
                periods: g("nr_periods"),
                throttled_periods: g("nr_throttled"),
                throttled_time: g("throttled_time"),
            };
        }
        Some(Ver::V2) => {
            let st = key_values(&host.read("cpu", "cpu.stat").unwrap_or_default());
            let g = |k: &str| st.get(k).copied().unwrap_or(0);
            c.throttling = Throttling {
                periods: g("nr_periods"),
                throttled_periods: g("nr_throttled"),
                throttled_time: g("throttled_usec").saturating_mul(1000),
            };
        }
        None => {}
    }
    c
}

fn cpuset(host: &dyn Host) -> CpuSet {
    if host.version("cpuset") != Some(Ver::V1) {
        return CpuSet::default();
    }
    let n = |f: &str| read_num(host, "cpuset", f);
    CpuSet {
        cpus: cpu_list(&host.read("cpuset", "cpuset.cpus").unwrap_or_default()),
        cpu_exclusive: n("cpuset.cpu_exclusive"),
        mems: cpu_list(&host.read("cpuset", "cpuset.mems").unwrap_or_default()),
        mem_hardwall: n("cpuset.mem_hardwall"),
        mem_exclusive: n("cpuset.mem_exclusive"),
        memory_migrate: n("cpuset.memory_migrate"),
        memory_spread_page: n("cpuset.memory_spread_page"),
        memory_spread_slab: n("cpuset.memory_spread_slab"),
        memory_pressure: n("cpuset.memory_pressure"),
        sched_load_balance: n("cpuset.sched_load_balance"),
        sched_relax_domain_level: host
            .read("cpuset", "cpuset.sched_relax_domain_level")
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0),
    }
}

fn memory(host: &dyn Host) -> Memory {
    let mut m = Memory::default();
    match host.version("memory") {
        Some(Ver::V1) => {
            m.raw = key_values(&host.read("memory", "memory.stat").unwrap_or_default());
            m.cache = m.raw.get("cache").copied().unwrap_or(0);
            let entry = |prefix: &str| MemoryEntry {
                limit: read_num(host, "memory", &format!("{prefix}limit_in_bytes")),
                usage: read_num(host, "memory", &format!("{prefix}usage_in_bytes")),
                max: read_num(host, "memory", &format!("{prefix}max_usage_in_bytes")),
                failcnt: read_num(host, "memory", &format!("{prefix}failcnt")),
            };
            m.usage = entry("memory.");
            if host.exists("memory", "memory.memsw.limit_in_bytes") {
                m.swap = entry("memory.memsw.");
            }
            if host.exists("memory", "memory.kmem.limit_in_bytes") {
                m.kernel = entry("memory.kmem.");
            }
            if host.exists("memory", "memory.kmem.tcp.limit_in_bytes") {
                m.kernel_tcp = entry("memory.kmem.tcp.");
            }
        }
        Some(Ver::V2) => {
            m.raw = key_values(&host.read("memory", "memory.stat").unwrap_or_default());
            m.cache = m.raw.get("file").copied().unwrap_or(0);
            let events = key_values(&host.read("memory", "memory.events").unwrap_or_default());
            m.usage = MemoryEntry {
                limit: read_num(host, "memory", "memory.max"),
                usage: read_num(host, "memory", "memory.current"),
                max: read_num(host, "memory", "memory.peak"),
                failcnt: events.get("max").copied().unwrap_or(0),
            };
            if host.exists("memory", "memory.swap.max") {
                // Reported as memory+swap, like v1's memsw counters.
                let swap_max = read_num(host, "memory", "memory.swap.max");
                m.swap = MemoryEntry {
                    limit: swap_max.saturating_add(m.usage.limit),
                    usage: read_num(host, "memory", "memory.swap.current")
                        .saturating_add(m.usage.usage),
                    max: 0,
                    failcnt: 0,
                };
            }
        }
        None => {}
    }
    m
}

fn pids(host: &dyn Host) -> Pids {
    if host.version("pids").is_none() {
        return Pids::default();
    }
    let limit = read_num(host, "pids", "pids.max");
    Pids {
        current: read_num(host, "pids", "pids.current"),
        limit: if limit == u64::MAX { 0 } else { limit },
    }
}

/// v1 blkio lines: `8:0 Read 123` (and `Total 123`, skipped).
fn blkio_v1_entries(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [dev, op, value] = f.as_slice() else {
                return None;
            };
            let (major, minor) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                op: op.to_string(),
                value: value.parse().ok()?,
            })
        })
        .collect()
}

fn blkio(host: &dyn Host) -> Blkio {
    let mut b = Blkio::default();
    match host.version("blkio") {
        Some(Ver::V1) => {
            let first = |files: &[&str]| -> Vec<BlkioEntry> {
                files
                    .iter()
                    .find_map(|f| host.read("blkio", f))
                    .map(|t| blkio_v1_entries(&t))
                    .unwrap_or_default()
            };
            b.io_service_bytes_recursive = first(&[
                "blkio.io_service_bytes_recursive",
                "blkio.bfq.io_service_bytes_recursive",
                "blkio.throttle.io_service_bytes_recursive",
                "blkio.throttle.io_service_bytes",
            ]);
            b.io_serviced_recursive = first(&[
                "blkio.io_serviced_recursive",
                "blkio.bfq.io_serviced_recursive",
                "blkio.throttle.io_serviced_recursive",
                "blkio.throttle.io_serviced",
            ]);
        }
        _ => {
            let Some(text) = host.read("io", "io.stat") else {
                return b;
            };
            for line in text.lines() {
                let mut f = line.split_whitespace();
                let Some((major, minor)) = f.next().and_then(|d| d.split_once(':')) else {
                    continue;
                };
                let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
                    continue;
                };
                for kv in f {
                    let Some((k, v)) = kv.split_once('=') else {
                        continue;
                    };
                    let (list, op) = match k {
                        "rbytes" => (&mut b.io_service_bytes_recursive, "Read"),
                        "wbytes" => (&mut b.io_service_bytes_recursive, "Write"),
                        "rios" => (&mut b.io_serviced_recursive, "Read"),
                        "wios" => (&mut b.io_serviced_recursive, "Write"),
                        _ => continue,
                    };
                    list.push(BlkioEntry {
                        major,
                        minor,
                        op: op.into(),
                        value: v.parse().unwrap_or(0),
                    });
                }
            }
        }
    }
    b
}

fn hugetlb(host: &dyn Host) -> BTreeMap<String, Hugetlb> {
    let mut out = BTreeMap::new();
    let Some(ver) = host.version("hugetlb") else {
        return out;
    };
    for size in host.hugepage_sizes() {
        let f = |suffix: &str| format!("hugetlb.{size}.{suffix}");
        let h = match ver {
            Ver::V1 => Hugetlb {
                usage: read_num(host, "hugetlb", &f("usage_in_bytes")),
                max: read_num(host, "hugetlb", &f("max_usage_in_bytes")),
                failcnt: read_num(host, "hugetlb", &f("failcnt")),
            },
            Ver::V2 => Hugetlb {
                usage: read_num(host, "hugetlb", &f("current")),
                max: 0,
                failcnt: key_values(&host.read("hugetlb", &f("events")).unwrap_or_default())
                    .get("max")
                    .copied()
                    .unwrap_or(0),
            },
        };
        out.insert(size, h);
    }
    out
}

/// Collect everything.
pub fn collect(host: &dyn Host) -> StatsData {
    StatsData {
        cpu: cpu(host),
        cpuset: cpuset(host),
        memory: memory(host),
        pids: pids(host),
        blkio: blkio(host),
        hugetlb: hugetlb(host),
        intel_rdt: serde_json::Map::new(),
        network_interfaces: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Files {
        ver: HashMap<&'static str, Ver>,
        files: HashMap<&'static str, &'static str>,
    }

    impl Host for Files {
        fn version(&self, ctl: &str) -> Option<Ver> {
            self.ver.get(ctl).copied()
        }
        fn exists(&self, _: &str, file: &str) -> bool {
            self.files.contains_key(file)
        }
        fn read(&self, _: &str, file: &str) -> Option<String> {
            self.files.get(file).map(|s| s.to_string())
        }
        fn hugepage_sizes(&self) -> Vec<String> {
            vec!["2MB".into()]
        }
    }

    #[test]
    fn v1_stats_have_runc_shape() {
        let host = Files {
            ver: [
                ("cpu", Ver::V1),
                ("cpuacct", Ver::V1),
                ("memory", Ver::V1),
                ("pids", Ver::V1),
                ("cpuset", Ver::V1),
                ("blkio", Ver::V1),
                ("hugetlb", Ver::V2),
            ]
            .into(),
            files: [
                ("cpuacct.usage", "12032575\n"),
                ("cpuacct.usage_percpu", "12032575 0 \n"),
                ("cpuacct.stat", "user 0\nsystem 1\n"),
                (
                    "cpu.stat",
                    "nr_periods 4\nnr_throttled 0\nthrottled_time 0\n",
                ),
                ("cpuset.cpus", "0-2,5\n"),
                ("cpuset.sched_relax_domain_level", "-1\n"),
                ("memory.stat", "cache 4096\nrss 53248\n"),
                ("memory.limit_in_bytes", "134217728\n"),
                ("memory.usage_in_bytes", "397312\n"),
                ("memory.max_usage_in_bytes", "2002944\n"),
                ("memory.failcnt", "0\n"),
                ("memory.memsw.limit_in_bytes", "268435456\n"),
                ("pids.current", "1\n"),
                ("pids.max", "max\n"),
                (
                    "blkio.throttle.io_service_bytes",
                    "8:0 Read 10\n8:0 Write 0\nTotal 10\n",
                ),
                ("hugetlb.2MB.current", "0\n"),
                ("hugetlb.2MB.events", "max 3\n"),
            ]
            .into(),
        };
        let v = serde_json::to_value(collect(&host)).unwrap();
        assert_eq!(v["cpu"]["usage"]["total"], 12032575);
        assert_eq!(
            v["cpu"]["usage"]["percpu"],
            serde_json::json!([12032575, 0])
        );
        assert_eq!(v["cpu"]["usage"]["kernel"], 10_000_000);
        assert_eq!(v["cpu"]["usage"]["user"], 0);
        assert_eq!(v["cpu"]["throttling"], serde_json::json!({"periods": 4}));
        assert_eq!(v["cpuset"]["cpus"], serde_json::json!([0, 1, 2, 5]));
        assert_eq!(v["cpuset"]["sched_relax_domain_level"], -1);
        assert_eq!(v["memory"]["cache"], 4096);
        assert_eq!(
            v["memory"]["usage"],
            serde_json::json!({"limit": 134217728, "usage": 397312, "max": 2002944, "failcnt": 0})
        );
        assert_eq!(v["memory"]["swap"]["limit"], 268435456);
        assert_eq!(v["memory"]["raw"]["rss"], 53248);
        assert_eq!(v["pids"], serde_json::json!({"current": 1}));
        assert_eq!(
            v["blkio"]["ioServiceBytesRecursive"],
            serde_json::json!([{"major": 8, "op": "Read", "value": 10}, {"major": 8, "op": "Write"}])
        );
        assert_eq!(v["hugetlb"]["2MB"], serde_json::json!({"failcnt": 3}));
        assert_eq!(v["network_interfaces"], serde_json::Value::Null);
    }

    #[test]
    fn v2_stats_convert_microseconds_and_io_stat() {
        let host = Files {
            ver: [("cpu", Ver::V2), ("memory", Ver::V2), ("io", Ver::V2), ("pids", Ver::V2)].into(),
            files: [
                ("cpu.stat", "usage_usec 20\nuser_usec 5\nsystem_usec 15\nnr_periods 2\nnr_throttled 1\nthrottled_usec 7\n"),
                ("memory.current", "1000\n"),
                ("memory.max", "max\n"),
                ("memory.peak", "5000\n"),
                ("memory.events", "low 0\nhigh 0\nmax 2\noom 0\n"),
                ("memory.swap.max", "100\n"),
                ("memory.swap.current", "10\n"),
                ("memory.stat", "anon 1\nfile 9\n"),
                ("pids.current", "3\n"),
                ("pids.max", "50\n"),
                ("io.stat", "8:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n"),
            ]
            .into(),
        };
        let d = collect(&host);
        assert_eq!(d.cpu.usage.total, 20_000);
        assert_eq!(d.cpu.usage.kernel, 15_000);
        assert_eq!(d.cpu.throttling.throttled_time, 7_000);
        assert_eq!(d.memory.usage.max, 5000);
        assert_eq!(d.memory.usage.failcnt, 2);
        assert_eq!(d.memory.cache, 9);
        assert_eq!(d.memory.swap.usage, 1010);
        assert_eq!(d.pids.limit, 50);
        assert_eq!(d.blkio.io_service_bytes_recursive.len(), 2);
        assert_eq!(d.blkio.io_serviced_recursive[0].value, 1);
    }

    #[test]
    fn cpu_lists_expand() {
        assert_eq!(cpu_list("0-3,5\n"), vec![0, 1, 2, 3, 5]);
        assert_eq!(cpu_list(""), Vec::<u16>::new());
    }
}
