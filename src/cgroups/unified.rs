//! The cgroup2 counters that containerd's v2 metrics (`io.containerd.cgroups.v2.Metrics`)
//! carry and the runc-shaped [`StatsData`](super::stats::StatsData) leaves out: runc's shape
//! keeps v1's view (memory plus swap, failures as one count), so memory.events, the swap
//! files on their own and the huge page limits are read here, through the same [`Host`] as
//! the rest of the sample. Pure: tested with files given as text.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::resources::{Host, Ver};
use super::stats::key_values;

/// The extra cgroup2 counters of one sample (see the module comment).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Unified {
    /// memory.events as is (`low`, `high`, `max`, `oom`, `oom_kill`, `oom_group_kill`).
    #[serde(default)]
    pub memory_events: BTreeMap<String, u64>,
    /// memory.swap.current.
    #[serde(default)]
    pub swap_usage: u64,
    /// memory.swap.max (`max` is u64::MAX).
    #[serde(default)]
    pub swap_limit: u64,
    /// memory.swap.peak (kernels from 6.5).
    #[serde(default)]
    pub swap_max_usage: u64,
    /// cpu.stat as is (the burst counters the runc shape has no place for).
    #[serde(default)]
    pub cpu_stat: BTreeMap<String, u64>,
    /// `hugetlb.<size>.max` by page size (`max` is u64::MAX).
    #[serde(default)]
    pub hugetlb_limit: BTreeMap<String, u64>,
}

/// A single-value control file: a number, or `max` as u64::MAX; 0 when absent or unreadable.
fn value(host: &dyn Host, ctl: &str, file: &str) -> u64 {
    let Some(text) = host.read(ctl, file) else {
        return 0;
    };
    match text.trim() {
        "max" => u64::MAX,
        n => n.parse().unwrap_or(0),
    }
}

/// The extra counters, read from wherever each controller is served by cgroup2 (nothing from
/// a controller v1 serves).
pub fn collect(host: &dyn Host) -> Unified {
    let mut u = Unified::default();
    if host.version("memory") == Some(Ver::V2) {
        u.memory_events = key_values(&host.read("memory", "memory.events").unwrap_or_default());
        u.swap_usage = value(host, "memory", "memory.swap.current");
        u.swap_limit = value(host, "memory", "memory.swap.max");
        u.swap_max_usage = value(host, "memory", "memory.swap.peak");
    }
    // cpu.stat's usage lines exist without the cpu controller (as in `stats`).
    let cpu = match host.version("cpu") {
        Some(Ver::V1) => None,
        Some(Ver::V2) => host.read("cpu", "cpu.stat"),
        None => host.read("cgroup", "cpu.stat"),
    };
    u.cpu_stat = key_values(&cpu.unwrap_or_default());
    if host.version("hugetlb") == Some(Ver::V2) {
        for size in host.hugepage_sizes() {
            let limit = value(host, "hugetlb", &format!("hugetlb.{size}.max"));
            u.hugetlb_limit.insert(size, limit);
        }
    }
    u
}

#[cfg(test)]
mod tests {
    use super::super::{Cgroup, Hierarchy};
    use super::*;
    use std::collections::HashMap;

    struct Files(
        HashMap<&'static str, Ver>,
        HashMap<&'static str, &'static str>,
    );

    impl Host for Files {
        fn version(&self, ctl: &str) -> Option<Ver> {
            self.0.get(ctl).copied()
        }
        fn exists(&self, _: &str, file: &str) -> bool {
            self.1.contains_key(file)
        }
        fn read(&self, _: &str, file: &str) -> Option<String> {
            self.1.get(file).map(|s| s.to_string())
        }
        fn hugepage_sizes(&self) -> Vec<String> {
            vec!["1GB".into(), "2MB".into()]
        }
    }

    #[test]
    fn reads_events_swap_bursts_and_hugetlb_limits() {
        let host = Files(
            [("memory", Ver::V2), ("cpu", Ver::V2), ("hugetlb", Ver::V2)].into(),
            [
                (
                    "memory.events",
                    "low 0\nhigh 4\nmax 9\noom 2\noom_kill 1\noom_group_kill 0\n",
                ),
                ("memory.swap.current", "4096\n"),
                ("memory.swap.max", "max\n"),
                ("memory.swap.peak", "8192\n"),
                (
                    "cpu.stat",
                    "usage_usec 10\nuser_usec 4\nsystem_usec 6\nnr_bursts 3\nburst_usec 70\n",
                ),
                ("hugetlb.2MB.max", "4194304\n"),
                ("hugetlb.1GB.max", "max\n"),
            ]
            .into(),
        );
        let u = collect(&host);
        assert_eq!(u.memory_events["oom_kill"], 1);
        assert_eq!(u.memory_events["oom"], 2);
        assert_eq!(u.memory_events["high"], 4);
        assert_eq!(u.swap_usage, 4096);
        assert_eq!(u.swap_limit, u64::MAX);
        assert_eq!(u.swap_max_usage, 8192);
        assert_eq!(u.cpu_stat["nr_bursts"], 3);
        assert_eq!(u.cpu_stat["burst_usec"], 70);
        assert_eq!(u.hugetlb_limit["2MB"], 4 << 20);
        assert_eq!(u.hugetlb_limit["1GB"], u64::MAX);
    }

    #[test]
    fn reads_nothing_from_v1_controllers() {
        // The hybrid layout of this host: memory and cpu on v1, hugetlb on cgroup2.
        let host = Files(
            [("memory", Ver::V1), ("cpu", Ver::V1), ("hugetlb", Ver::V2)].into(),
            [
                ("memory.events", "oom_kill 5\n"),
                ("memory.swap.max", "100\n"),
                ("cpu.stat", "nr_periods 4\n"),
                ("hugetlb.2MB.max", "max\n"),
            ]
            .into(),
        );
        let u = collect(&host);
        assert!(u.memory_events.is_empty());
        assert_eq!(u.swap_limit, 0);
        assert!(u.cpu_stat.is_empty());
        assert_eq!(u.hugetlb_limit["2MB"], u64::MAX);
    }

    #[test]
    fn a_sample_reads_back_from_its_json_without_the_zeros() {
        // The shim gets samples from its worker as JSON, whose runc shape leaves zeros out.
        use super::super::stats::{BlkioEntry, StatsData};
        let mut d = StatsData::default();
        d.pids.current = 3;
        d.blkio.io_service_bytes_recursive.push(BlkioEntry {
            major: 8,
            op: "Read".into(),
            ..Default::default()
        });
        let back: StatsData = serde_json::from_value(serde_json::to_value(&d).unwrap()).unwrap();
        assert_eq!(back, d);
    }

    /// A cgroup whose hierarchies are plain directories in a fresh temp dir: `v1` memory
    /// (if given) and a cgroup2 one whose root offers `v2_controllers`.
    fn fake(tag: &str, mode: super::super::Mode, v1: bool, v2_controllers: &str) -> Cgroup {
        let base =
            std::env::temp_dir().join(format!("sealrun-unified-unit-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let mut hierarchies = Vec::new();
        if v1 {
            let dir = base.join("memory");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("memory.usage_in_bytes"), "4096\n").unwrap();
            hierarchies.push(Hierarchy {
                controllers: vec!["memory".into()],
                v2: false,
                mount_point: dir.clone(),
                dir,
            });
        }
        let dir = base.join("unified");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cgroup.controllers"), v2_controllers).unwrap();
        std::fs::write(dir.join("memory.events"), "oom 1\noom_kill 1\n").unwrap();
        std::fs::write(dir.join("memory.current"), "8192\n").unwrap();
        hierarchies.push(Hierarchy {
            controllers: Vec::new(),
            v2: true,
            mount_point: dir.clone(),
            dir,
        });
        Cgroup {
            path: "/t".into(),
            mode,
            hierarchies,
            created: Vec::new(),
        }
    }

    fn remove(cg: &Cgroup) {
        if let Some(base) = cg.hierarchies[0].dir.parent() {
            std::fs::remove_dir_all(base).unwrap();
        }
    }

    #[test]
    fn a_sample_has_cgroup2_counters_only_when_cgroup2_serves_memory() {
        use super::super::Mode;
        // This host's layout: memory on v1, hugetlb alone on cgroup2.
        let hybrid = fake("hybrid", Mode::Hybrid, true, "hugetlb\n");
        let s = hybrid.stats().unwrap();
        assert_eq!(s.unified, None);
        assert_eq!(s.data.memory.usage.usage, 4096);
        remove(&hybrid);
        // A hybrid host whose memory controller is on cgroup2.
        let hybrid2 = fake("hybrid2", Mode::Hybrid, false, "memory hugetlb\n");
        let s = hybrid2.stats().unwrap();
        assert_eq!(s.unified.unwrap().memory_events["oom_kill"], 1);
        assert_eq!(s.data.memory.usage.usage, 8192);
        remove(&hybrid2);
        // Pure cgroup2, even without the memory controller delegated.
        let v2 = fake("v2", Mode::V2, false, "cpu\n");
        assert!(v2.stats().unwrap().unified.is_some());
        remove(&v2);
    }
}
