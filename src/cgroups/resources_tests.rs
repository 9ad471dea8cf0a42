//! Unit tests of the resource planner: runc conversions, write orders, ignored settings.
use super::*;
use std::collections::HashMap;

/// A [`Host`] for tests: controllers with their versions, files that exist, file contents.
#[derive(Default)]
pub struct FakeHost {
    pub ctls: HashMap<String, Ver>,
    pub files: HashMap<String, String>,
    pub sizes: Vec<String>,
}

impl Host for FakeHost {
    fn version(&self, ctl: &str) -> Option<Ver> {
        self.ctls.get(ctl).copied()
    }
    fn exists(&self, _ctl: &str, file: &str) -> bool {
        self.files.contains_key(file)
    }
    fn read(&self, _ctl: &str, file: &str) -> Option<String> {
        self.files.get(file).cloned()
    }
    fn hugepage_sizes(&self) -> Vec<String> {
        self.sizes.clone()
    }
}

fn res(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap()
}

/// This machine: v1 controllers alone, hugetlb only on the unified hierarchy.
fn hybrid() -> FakeHost {
    let mut h = FakeHost::default();
    for c in [
        "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
    ] {
        h.ctls.insert(c.into(), Ver::V1);
    }
    h.ctls.insert("hugetlb".into(), Ver::V2);
    for f in [
        "memory.memsw.limit_in_bytes",
        "blkio.bfq.weight",
        "blkio.bfq.weight_device",
        "cpu.rt_runtime_us",
        "cpu.rt_period_us",
    ] {
        h.files.insert(f.into(), String::new());
    }
    h.files.insert(
        "memory.limit_in_bytes".into(),
        "9223372036854771712\n".into(),
    );
    h.sizes = vec!["2MB".into(), "1GB".into()];
    h
}

fn v2() -> FakeHost {
    let mut h = FakeHost::default();
    for c in ["cpu", "cpuset", "memory", "io", "pids", "hugetlb"] {
        h.ctls.insert(c.into(), Ver::V2);
    }
    for f in ["memory.swap.max", "io.weight"] {
        h.files.insert(f.into(), String::new());
    }
    h.sizes = vec!["2MB".into()];
    h
}

fn files(p: &Planned) -> Vec<(String, String)> {
    p.writes
        .iter()
        .map(|w| (w.file.clone(), w.value.clone()))
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn conversions_match_runc() {
    assert_eq!(shares_to_weight(0), 0);
    assert_eq!(shares_to_weight(2), 1);
    assert_eq!(shares_to_weight(1024), 39);
    assert_eq!(shares_to_weight(262_144), 10_000);
    assert_eq!(shares_to_weight(1), 1);
    assert_eq!(blkio_weight_to_io_weight(10), 1);
    assert_eq!(blkio_weight_to_io_weight(500), 4950);
    assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
    assert_eq!(swap_to_v2(0, -1).unwrap(), -1);
    assert_eq!(swap_to_v2(-1, 100).unwrap(), -1);
    assert_eq!(swap_to_v2(0, 100).unwrap(), 0);
    assert_eq!(swap_to_v2(300, 100).unwrap(), 200);
    assert!(swap_to_v2(50, 100).is_err());
    assert!(swap_to_v2(50, 0).is_err());
}

#[test]
fn v1_memory_raises_swap_before_the_limit() {
    let mut h = hybrid();
    h.files
        .insert("memory.limit_in_bytes".into(), "67108864\n".into());
    let p = plan(
        &res(r#"{"memory":{"limit":134217728,"swap":268435456,"reservation":1024,"swappiness":10,"disableOOMKiller":true}}"#),
        &h,
    )
    .unwrap();
    assert_eq!(
        files(&p),
        pairs(&[
            ("memory.memsw.limit_in_bytes", "268435456"),
            ("memory.limit_in_bytes", "134217728"),
            ("memory.soft_limit_in_bytes", "1024"),
            ("memory.swappiness", "10"),
            ("memory.oom_control", "1"),
        ])
    );
    assert!(p.ignored.is_empty(), "{:?}", p.ignored);
}

#[test]
fn v1_memory_lowers_the_limit_before_swap() {
    let mut h = hybrid();
    h.files
        .insert("memory.limit_in_bytes".into(), "536870912\n".into());
    let p = plan(
        &res(r#"{"memory":{"limit":67108864,"swap":134217728}}"#),
        &h,
    )
    .unwrap();
    assert_eq!(
        files(&p),
        pairs(&[
            ("memory.limit_in_bytes", "67108864"),
            ("memory.memsw.limit_in_bytes", "134217728"),
        ])
    );
    // Unlimited memory with swap unspecified: swap unlimited too, first.
    let p = plan(&res(r#"{"memory":{"limit":-1}}"#), &h).unwrap();
    assert_eq!(
        files(&p),
        pairs(&[
            ("memory.memsw.limit_in_bytes", "-1"),
            ("memory.limit_in_bytes", "-1"),
        ])
    );
}

#[test]
fn v2_memory_converts_swap_and_uses_max() {
    let p = plan(
        &res(r#"{"memory":{"limit":100,"swap":300,"reservation":50,"swappiness":5}}"#),
        &v2(),
    )
    .unwrap();
    assert_eq!(
        files(&p),
        pairs(&[
            ("memory.swap.max", "200"),
            ("memory.max", "100"),
            ("memory.low", "50")
        ])
    );
    assert_eq!(p.ignored.len(), 1);
    assert!(p.ignored[0].starts_with("linux.resources.memory.swappiness"));
    let p = plan(&res(r#"{"memory":{"limit":-1}}"#), &v2()).unwrap();
    assert_eq!(
        files(&p),
        pairs(&[("memory.swap.max", "max"), ("memory.max", "max")])
    );
}

#[test]
fn cpu_v1_and_v2() {
    let r = res(r#"{"cpu":{"shares":1024,"quota":50000,"period":100000,"cpus":"0","mems":"0"}}"#);
    let p = plan(&r, &hybrid()).unwrap();
    assert_eq!(
        files(&p),
        pairs(&[
            ("cpuset.cpus", "0"),
            ("cpuset.mems", "0"),
            ("cpu.shares", "1024"),
            ("cpu.cfs_period_us", "100000"),
            ("cpu.cfs_quota_us", "50000"),
        ])
    );
    assert!(p.writes[2].verify);
    assert!(p.writes[3].retry_after_next);
    let p = plan(&r, &v2()).unwrap();
    assert_eq!(
        files(&p),
        pairs(&[
            ("cpuset.cpus", "0"),
            ("cpuset.mems", "0"),
            ("cpu.weight", "39"),
            ("cpu.max", "50000 100000"),
        ])
    );
    let p = plan(&res(r#"{"cpu":{"quota":-1}}"#), &v2()).unwrap();
    assert_eq!(files(&p), pairs(&[("cpu.max", "max")]));
    let p = plan(&res(r#"{"cpu":{"realtimeRuntime":1000}}"#), &v2()).unwrap();
    assert!(p.writes.is_empty());
    assert_eq!(p.ignored.len(), 1);
}

#[test]
fn pids_blkio_and_hugetlb_on_the_hybrid_host() {
    let r = res(r#"{"pids":{"limit":-1},
            "blockIO":{"weight":500,"leafWeight":300,
                       "throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1048576}]},
            "hugepageLimits":[{"pageSize":"2MB","limit":4194304},{"pageSize":"16GB","limit":1}]}"#);
    let p = plan(&r, &hybrid()).unwrap();
    assert_eq!(
        files(&p),
        pairs(&[
            ("pids.max", "max"),
            ("blkio.bfq.weight", "500"),
            ("blkio.throttle.read_bps_device", "8:0 1048576"),
            ("hugetlb.2MB.max", "4194304"),
        ])
    );
    assert_eq!(p.writes[3].ctl, "hugetlb");
    assert_eq!(p.ignored.len(), 2, "{:?}", p.ignored);
    assert!(p.ignored[0].contains("blockIO.leafWeight"));
    assert!(p.ignored[1].contains("hugepageLimits[1]"));
}

#[test]
fn io_v2_converts_weight_and_uses_io_max() {
    let r = res(r#"{"blockIO":{"weight":500,
            "throttleWriteIOPSDevice":[{"major":8,"minor":16,"rate":100}],
            "throttleReadBpsDevice":[{"major":8,"minor":0,"rate":0}]}}"#);
    let p = plan(&r, &v2()).unwrap();
    assert_eq!(
        files(&p),
        pairs(&[
            ("io.weight", "4950"),
            ("io.max", "8:0 rbps=max"),
            ("io.max", "8:16 wiops=100"),
        ])
    );
}

#[test]
fn missing_controllers_and_kernel_memory_are_reported() {
    let mut h = FakeHost::default();
    h.ctls.insert("memory".into(), Ver::V1);
    let r = res(
        r#"{"memory":{"limit":1048576,"kernel":1,"kernelTCP":2,"swap":2097152},
            "pids":{"limit":10},"cpu":{"shares":2},"network":{"classID":1},
            "rdma":{"mlx":{"hcaHandles":1}}}"#,
    );
    let p = plan(&r, &h).unwrap();
    let fields: Vec<&str> = p
        .ignored
        .iter()
        .map(|s| s.split(':').next().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "linux.resources.memory.kernel",
            "linux.resources.memory.kernelTCP",
            "linux.resources.memory.swap",
            "linux.resources.cpu",
            "linux.resources.pids",
            "linux.resources.network.classID",
            "linux.resources.rdma",
        ]
    );
    assert_eq!(files(&p), pairs(&[("memory.limit_in_bytes", "1048576")]));
}

#[test]
fn unified_keys_are_written_as_is_on_v2_and_refused_elsewhere() {
    let r = res(r#"{"unified":{"memory.high":"1000000","pids.max":"5"}}"#);
    let p = plan(&r, &v2()).unwrap();
    assert_eq!(
        files(&p),
        pairs(&[("memory.high", "1000000"), ("pids.max", "5")])
    );
    let e = plan(&r, &hybrid()).unwrap_err().to_string();
    assert!(e.contains("unified[\"memory.high\"]"), "{e}");
    let r = res(r#"{"unified":{"hugetlb.2MB.max":"0"}}"#);
    assert_eq!(files(&plan(&r, &hybrid()).unwrap()).len(), 1);
}

#[test]
fn validation_names_the_field() {
    let bad = [
        (r#"{"unified":{"../memory.max":"1"}}"#, "unified"),
        (r#"{"unified":{"memory":"1"}}"#, "unified"),
        (r#"{"unified":{"cgroup.procs":"1"}}"#, "cgroup.procs"),
        (r#"{"memory":{"swappiness":101}}"#, "memory.swappiness"),
        (r#"{"memory":{"limit":100,"swap":50}}"#, "memory.swap"),
        (
            r#"{"hugepageLimits":[{"pageSize":"2M/../x","limit":1}]}"#,
            "hugepageLimits[0]",
        ),
        (
            r#"{"devices":[{"allow":true,"access":"q"}]}"#,
            "devices[0].access",
        ),
    ];
    for (json, field) in bad {
        let e = validate(&res(json)).unwrap_err().to_string();
        assert!(e.contains(field), "{json}: {e}");
    }
    validate(&res(
        r#"{"unified":{"memory.high":"1","cgroup.max.depth":"3"},
            "hugepageLimits":[{"pageSize":"2MB","limit":1}],
            "memory":{"limit":100,"swap":-1,"swappiness":100}}"#,
    ))
    .unwrap();
}
