//! The library's cgroup statistics as containerd's metrics, which the CRI turns into
//! ContainerStats (CPU usage, memory working set): cgroup v1's `Metrics` (runc's `events
//! --stats` shape) on v1 and hybrid hosts, cgroup v2's when cgroup2 serves the container's
//! memory (the library then adds the counters runc's shape leaves out, see
//! `sealrun::cgroups::unified`), as containerd's own shims choose.
//!
//! containerd-shim-protos 0.10 has no Rust types for the v2 metrics (0.11 added them, with a
//! ttrpc and nix this crate does not use), so [`v2`] writes that message with the protobuf
//! crate's encoder, field numbers from containerd's `cgroup2/stats/metrics.proto`
//! (`io.containerd.cgroups.v2`).

use std::collections::BTreeMap;

use containerd_shim::protos::cgroups::metrics::{
    CPUStat, CPUUsage, MemoryEntry, MemoryStat, Metrics, PidsStat, Throttle,
};
use containerd_shim::protos::protobuf::{CodedOutputStream, Message};
use sealrun::cgroups::stats::StatsData;
use sealrun::cgroups::unified::Unified;
use serde_json::Value;

/// The type URL of containerd's cgroup v1 metrics.
pub const V1_TYPE: &str = "io.containerd.cgroups.v1.Metrics";
/// The type URL of containerd's cgroup v2 metrics.
pub const V2_TYPE: &str = "io.containerd.cgroups.v2.Metrics";

/// One worker stats reply (`{"data": .., "unified": ..}`, see `worker`) as the type URL and
/// bytes of containerd's metrics: v2 when the sample has cgroup2's counters, v1 otherwise.
pub fn encode(sample: &Value) -> Result<(&'static str, Vec<u8>), String> {
    match sample.get("unified").filter(|u| !u.is_null()) {
        Some(unified) => {
            let data: StatsData = serde_json::from_value(sample["data"].clone())
                .map_err(|e| format!("stats data: {e}"))?;
            let unified: Unified =
                serde_json::from_value(unified.clone()).map_err(|e| format!("stats: {e}"))?;
            let bytes = v2(&data, &unified).map_err(|e| format!("v2 metrics: {e}"))?;
            Ok((V2_TYPE, bytes))
        }
        None => {
            let bytes = v1(&sample["data"])
                .write_to_bytes()
                .map_err(|e| format!("v1 metrics: {e}"))?;
            Ok((V1_TYPE, bytes))
        }
    }
}

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

/// One protobuf message being written. proto3 leaves numbers that are zero out; a message
/// field, once set, is written even when empty (containerd then sees it present).
struct Msg(Vec<u8>);

type Encoded = containerd_shim::protos::protobuf::Result<Msg>;

impl Msg {
    fn new() -> Msg {
        Msg(Vec::new())
    }

    fn with(
        mut self,
        write: impl FnOnce(&mut CodedOutputStream<'_>) -> containerd_shim::protos::protobuf::Result<()>,
    ) -> Encoded {
        let mut os = CodedOutputStream::vec(&mut self.0);
        write(&mut os)?;
        os.flush()?;
        drop(os);
        Ok(self)
    }

    fn num(self, field: u32, v: u64) -> Encoded {
        if v == 0 {
            return Ok(self);
        }
        self.with(|os| os.write_uint64(field, v))
    }

    fn text(self, field: u32, v: &str) -> Encoded {
        if v.is_empty() {
            return Ok(self);
        }
        self.with(|os| os.write_string(field, v))
    }

    fn msg(self, field: u32, m: Msg) -> Encoded {
        self.with(|os| os.write_bytes(field, &m.0))
    }

    /// `(field, value)` pairs, in order.
    fn nums(mut self, fields: impl IntoIterator<Item = (u32, u64)>) -> Encoded {
        for (field, v) in fields {
            self = self.num(field, v)?;
        }
        Ok(self)
    }
}

/// memory.stat keys in the order of `MemoryStat`'s fields 1 to 31.
const MEMORY_STAT: [&str; 31] = [
    "anon",
    "file",
    "kernel_stack",
    "slab",
    "sock",
    "shmem",
    "file_mapped",
    "file_dirty",
    "file_writeback",
    "anon_thp",
    "inactive_anon",
    "active_anon",
    "inactive_file",
    "active_file",
    "unevictable",
    "slab_reclaimable",
    "slab_unreclaimable",
    "pgfault",
    "pgmajfault",
    "workingset_refault",
    "workingset_activate",
    "workingset_nodereclaim",
    "pgrefill",
    "pgscan",
    "pgsteal",
    "pgactivate",
    "pgdeactivate",
    "pglazyfree",
    "pglazyfreed",
    "thp_fault_alloc",
    "thp_collapse_alloc",
];

/// A memory.stat counter; kernels from 5.9 split the workingset ones into `_anon` and
/// `_file`, reported here as their sum.
fn memory_stat(raw: &BTreeMap<String, u64>, key: &str) -> u64 {
    let get = |k: &str| raw.get(k).copied();
    get(key).unwrap_or_else(|| {
        let anon = get(&format!("{key}_anon")).unwrap_or(0);
        anon.saturating_add(get(&format!("{key}_file")).unwrap_or(0))
    })
}

/// Per device, in the order devices first appear: (major, minor, rbytes, wbytes, rios, wios),
/// from the library's io.stat lines (runc's `Read`/`Write` blkio entries).
fn io_devices(data: &StatsData) -> Vec<(u64, u64, [u64; 4])> {
    let mut out: Vec<(u64, u64, [u64; 4])> = Vec::new();
    let lists = [
        (&data.blkio.io_service_bytes_recursive, 0),
        (&data.blkio.io_serviced_recursive, 2),
    ];
    for (list, base) in lists {
        for e in list {
            let slot = match e.op.as_str() {
                "Read" => base,
                "Write" => base + 1,
                _ => continue,
            };
            let i = match out.iter().position(|d| (d.0, d.1) == (e.major, e.minor)) {
                Some(i) => i,
                None => {
                    out.push((e.major, e.minor, [0; 4]));
                    out.len() - 1
                }
            };
            out[i].2[slot] = e.value;
        }
    }
    out
}

/// containerd's `io.containerd.cgroups.v2.Metrics` (pids, cpu, memory, io, hugetlb,
/// memory_events; no rdma or network) from one cgroup2 sample.
pub fn v2(data: &StatsData, u: &Unified) -> containerd_shim::protos::protobuf::Result<Vec<u8>> {
    let pids = Msg::new().nums([(1, data.pids.current), (2, data.pids.limit)])?;
    let usec = |ns: u64| ns / 1000;
    let cpu_stat = |k: &str| u.cpu_stat.get(k).copied().unwrap_or(0);
    let cpu = Msg::new().nums([
        (1, usec(data.cpu.usage.total)),
        (2, usec(data.cpu.usage.user)),
        (3, usec(data.cpu.usage.kernel)),
        (4, data.cpu.throttling.periods),
        (5, data.cpu.throttling.throttled_periods),
        (6, usec(data.cpu.throttling.throttled_time)),
        (8, cpu_stat("nr_bursts")),
        (9, cpu_stat("burst_usec")),
    ])?;
    let mem = &data.memory;
    let memory = Msg::new()
        .nums((1..).zip(MEMORY_STAT.map(|k| memory_stat(&mem.raw, k))))?
        .nums([
            (32, mem.usage.usage),
            (33, mem.usage.limit),
            (34, u.swap_usage),
            (35, u.swap_limit),
            (36, mem.usage.max),
            (37, u.swap_max_usage),
        ])?;
    let mut io = Msg::new();
    for (major, minor, [rbytes, wbytes, rios, wios]) in io_devices(data) {
        let entry = Msg::new().nums([
            (1, major),
            (2, minor),
            (3, rbytes),
            (4, wbytes),
            (5, rios),
            (6, wios),
        ])?;
        io = io.msg(1, entry)?;
    }
    let event = |k: &str| u.memory_events.get(k).copied().unwrap_or(0);
    let events = Msg::new().nums([
        (1, event("low")),
        (2, event("high")),
        (3, event("max")),
        (4, event("oom")),
        (5, event("oom_kill")),
        (6, event("oom_group_kill")),
    ])?;
    let mut m = Msg::new()
        .msg(1, pids)?
        .msg(2, cpu)?
        .msg(4, memory)?
        .msg(6, io)?;
    for (size, h) in &data.hugetlb {
        let limit = u.hugetlb_limit.get(size).copied().unwrap_or(0);
        let entry = Msg::new()
            .nums([(1, h.usage), (2, limit)])?
            .text(3, size)?
            .num(4, h.failcnt)?;
        m = m.msg(7, entry)?;
    }
    Ok(m.msg(8, events)?.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim::protos::protobuf::CodedInputStream;
    use sealrun::cgroups::{Cgroup, Hierarchy, Mode};
    use std::path::PathBuf;

    /// One decoded protobuf field value: a varint, or length-delimited bytes.
    #[derive(Debug, Clone, PartialEq)]
    enum Wire {
        N(u64),
        B(Vec<u8>),
    }

    /// A protobuf message's fields by number, read with the protobuf crate's decoder.
    struct Fields(BTreeMap<u32, Vec<Wire>>);

    impl Fields {
        fn parse(bytes: &[u8]) -> Fields {
            let mut is = CodedInputStream::from_bytes(bytes);
            let mut out: BTreeMap<u32, Vec<Wire>> = BTreeMap::new();
            while let Some(tag) = is.read_raw_tag_or_eof().unwrap() {
                let v = match tag & 7 {
                    0 => Wire::N(is.read_uint64().unwrap()),
                    2 => Wire::B(is.read_bytes().unwrap()),
                    t => panic!("wire type {t} in field {}", tag >> 3),
                };
                out.entry(tag >> 3).or_default().push(v);
            }
            Fields(out)
        }

        /// A number field (0 when absent, as proto3 leaves zeros out).
        fn n(&self, field: u32) -> u64 {
            match self.0.get(&field).map(Vec::as_slice) {
                None => 0,
                Some([Wire::N(v)]) => *v,
                other => panic!("field {field}: {other:?}"),
            }
        }

        /// Every value of a repeated message field.
        fn msgs(&self, field: u32) -> Vec<Fields> {
            self.0
                .get(&field)
                .into_iter()
                .flatten()
                .map(|w| match w {
                    Wire::B(b) => Fields::parse(b),
                    Wire::N(_) => panic!("field {field} is not a message"),
                })
                .collect()
        }

        /// A message field, which must be present.
        fn msg(&self, field: u32) -> Fields {
            let mut all = self.msgs(field);
            assert_eq!(all.len(), 1, "message field {field}");
            all.remove(0)
        }

        fn text(&self, field: u32) -> String {
            match self.0.get(&field).map(Vec::as_slice) {
                Some([Wire::B(b)]) => String::from_utf8(b.clone()).unwrap(),
                other => panic!("field {field}: {other:?}"),
            }
        }
    }

    /// memory.stat as a 6.x kernel writes it.
    const MEMORY_STAT: &str = "anon 1101824\nfile 1581056\nkernel 421888\nkernel_stack 65536\n\
        pagetables 98304\nsec_pagetables 0\npercpu 1440\nsock 4096\nvmalloc 8192\nshmem 12288\n\
        zswap 0\nzswapped 0\nfile_mapped 704512\nfile_dirty 16384\nfile_writeback 20480\n\
        swapcached 0\nanon_thp 24576\nfile_thp 0\nshmem_thp 0\ninactive_anon 1089536\n\
        active_anon 28672\ninactive_file 1208320\nactive_file 372736\nunevictable 32768\n\
        slab_reclaimable 139264\nslab_unreclaimable 110592\nslab 249856\n\
        workingset_refault_anon 3\nworkingset_refault_file 40\nworkingset_activate_anon 5\n\
        workingset_activate_file 60\nworkingset_restore_anon 0\nworkingset_restore_file 0\n\
        workingset_nodereclaim 7\npgscan 810\npgsteal 800\npgscan_kswapd 0\npgscan_direct 810\n\
        pgsteal_kswapd 0\npgsteal_direct 800\npgfault 4233\npgmajfault 21\npgrefill 90\n\
        pgactivate 100\npgdeactivate 110\npglazyfree 120\npglazyfreed 130\nzswpin 0\n\
        zswpout 0\nthp_fault_alloc 140\nthp_collapse_alloc 150\n";

    /// A container's cgroup2 directory with real-format files, in a fresh temp dir.
    fn v2_fixture() -> (PathBuf, Cgroup) {
        let dir = std::env::temp_dir().join(format!("shim-metrics-v2-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let files = [
            (
                "cgroup.controllers",
                "cpuset cpu io memory hugetlb pids rdma misc\n",
            ),
            (
                "cpu.stat",
                "usage_usec 150473\nuser_usec 90156\nsystem_usec 60317\n\
                 core_sched.force_idle_usec 0\nnr_periods 12\nnr_throttled 3\n\
                 throttled_usec 4500\nnr_bursts 1\nburst_usec 200\n",
            ),
            ("memory.stat", MEMORY_STAT),
            ("memory.current", "2781184\n"),
            ("memory.max", "268435456\n"),
            ("memory.peak", "5632000\n"),
            (
                "memory.events",
                "low 0\nhigh 0\nmax 17\noom 2\noom_kill 1\noom_group_kill 0\n",
            ),
            ("memory.swap.current", "1048576\n"),
            ("memory.swap.max", "max\n"),
            ("memory.swap.peak", "2097152\n"),
            ("pids.current", "4\n"),
            ("pids.max", "512\n"),
            (
                "io.stat",
                "8:0 rbytes=1458176 wbytes=8192 rios=44 wios=2 dbytes=0 dios=0\n\
                 253:1 rbytes=1048576 wbytes=0 rios=16 wios=0 dbytes=0 dios=0\n",
            ),
            ("hugetlb.2MB.current", "2097152\n"),
            ("hugetlb.2MB.max", "4194304\n"),
            ("hugetlb.2MB.events", "max 1\n"),
            ("hugetlb.1GB.current", "0\n"),
            ("hugetlb.1GB.max", "max\n"),
            ("hugetlb.1GB.events", "max 0\n"),
        ];
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let cg = Cgroup {
            path: "/t".into(),
            mode: Mode::V2,
            hierarchies: vec![Hierarchy {
                controllers: Vec::new(),
                v2: true,
                mount_point: dir.clone(),
                dir: dir.clone(),
            }],
            created: Vec::new(),
        };
        (dir, cg)
    }

    #[test]
    fn cgroup2_files_become_containerds_v2_metrics() {
        let (dir, cg) = v2_fixture();
        // Through the library's reader and the worker's JSON, as Stats gets it.
        let sample = serde_json::to_value(cg.stats().unwrap()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let (type_url, bytes) = encode(&sample).unwrap();
        assert_eq!(type_url, "io.containerd.cgroups.v2.Metrics");
        let m = Fields::parse(&bytes);

        let pids = m.msg(1);
        assert_eq!((pids.n(1), pids.n(2)), (4, 512));

        let cpu = m.msg(2);
        let got: Vec<u64> = [1, 2, 3, 4, 5, 6, 8, 9].map(|f| cpu.n(f)).into();
        assert_eq!(got, [150473, 90156, 60317, 12, 3, 4500, 1, 200]);

        let mem = m.msg(4);
        let expected: [(u32, u64); 37] = [
            (1, 1101824),    // anon
            (2, 1581056),    // file
            (3, 65536),      // kernel_stack
            (4, 249856),     // slab
            (5, 4096),       // sock
            (6, 12288),      // shmem
            (7, 704512),     // file_mapped
            (8, 16384),      // file_dirty
            (9, 20480),      // file_writeback
            (10, 24576),     // anon_thp
            (11, 1089536),   // inactive_anon
            (12, 28672),     // active_anon
            (13, 1208320),   // inactive_file
            (14, 372736),    // active_file
            (15, 32768),     // unevictable
            (16, 139264),    // slab_reclaimable
            (17, 110592),    // slab_unreclaimable
            (18, 4233),      // pgfault
            (19, 21),        // pgmajfault
            (20, 43),        // workingset_refault (_anon + _file)
            (21, 65),        // workingset_activate (_anon + _file)
            (22, 7),         // workingset_nodereclaim
            (23, 90),        // pgrefill
            (24, 810),       // pgscan
            (25, 800),       // pgsteal
            (26, 100),       // pgactivate
            (27, 110),       // pgdeactivate
            (28, 120),       // pglazyfree
            (29, 130),       // pglazyfreed
            (30, 140),       // thp_fault_alloc
            (31, 150),       // thp_collapse_alloc
            (32, 2781184),   // usage
            (33, 268435456), // usage_limit
            (34, 1048576),   // swap_usage
            (35, u64::MAX),  // swap_limit: max
            (36, 5632000),   // max_usage
            (37, 2097152),   // swap_max_usage
        ];
        for (field, value) in expected {
            assert_eq!(mem.n(field), value, "MemoryStat field {field}");
        }

        let io: Vec<[u64; 6]> = m
            .msg(6)
            .msgs(1)
            .iter()
            .map(|e| [1, 2, 3, 4, 5, 6].map(|f| e.n(f)))
            .collect();
        assert_eq!(
            io,
            [[8, 0, 1458176, 8192, 44, 2], [253, 1, 1048576, 0, 16, 0]]
        );

        // Huge pages: the sizes this host's kernel has (the library lists them from sysfs).
        let huge: BTreeMap<String, [u64; 3]> = m
            .msgs(7)
            .iter()
            .map(|h| (h.text(3), [h.n(1), h.n(2), h.n(4)]))
            .collect();
        for (size, kb, want) in [
            ("2MB", 2048, [2097152, 4194304, 1]),
            ("1GB", 1048576, [0, u64::MAX, 0]),
        ] {
            let host_has =
                std::path::Path::new(&format!("/sys/kernel/mm/hugepages/hugepages-{kb}kB"))
                    .exists();
            assert_eq!(huge.get(size), host_has.then_some(&want), "hugetlb {size}");
        }

        let events = m.msg(8);
        let got: Vec<u64> = [1, 2, 3, 4, 5, 6].map(|f| events.n(f)).into();
        assert_eq!(got, [0, 0, 17, 2, 1, 0]);
    }

    #[test]
    fn an_empty_cgroup2_sample_still_has_every_section() {
        let sample =
            serde_json::json!({"data": StatsData::default(), "unified": Unified::default()});
        let (type_url, bytes) = encode(&sample).unwrap();
        assert_eq!(type_url, V2_TYPE);
        let m = Fields::parse(&bytes);
        // containerd (and the CRI) read pids, cpu, memory, io and memory_events unguarded.
        for field in [1, 2, 4, 6, 8] {
            assert_eq!(m.msgs(field).len(), 1, "field {field}");
        }
        assert!(m.msgs(7).is_empty());
    }

    #[test]
    fn a_sample_without_cgroup2_counters_stays_v1() {
        let data = serde_json::json!({
            "cpu": {"usage": {"total": 12032575, "kernel": 10000000, "user": 0}},
            "memory": {"cache": 4096, "usage": {"limit": 134217728, "usage": 397312}},
            "pids": {"current": 1},
        });
        for sample in [
            serde_json::json!({"data": data}),
            serde_json::json!({"data": data, "unified": null}),
        ] {
            let (type_url, bytes) = encode(&sample).unwrap();
            assert_eq!(type_url, "io.containerd.cgroups.v1.Metrics");
            let m = Metrics::parse_from_bytes(&bytes).unwrap();
            assert_eq!(m, v1(&data));
            assert_eq!(m.cpu.usage.total, 12032575);
            assert_eq!(m.memory.usage.usage, 397312);
            assert_eq!(m.pids.current, 1);
        }
    }
}
