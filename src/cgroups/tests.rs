//! Unit tests of path resolution, state round trips and container mounts.
use super::*;

const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
const OWN: &str = "4:memory:/process_api/x\n9:name=systemd:/\n2:cpuacct:/\n1:cpu:/\n0::/\n";

fn resolve(mountinfo: &str, path: Option<&str>, id: &str) -> Result<Cgroup> {
    Cgroup::resolve_in(
        &layout::parse_mountinfo(mountinfo),
        &layout::parse_proc_cgroup(OWN),
        path,
        id,
    )
}

#[test]
fn absent_path_defaults_to_an_absolute_sealrun_parent() {
    let cg = resolve(HYBRID, None, "c1").unwrap();
    assert_eq!(cg.path, "/sealrun/c1");
    assert_eq!(cg.mode, Mode::Hybrid);
    let dirs: Vec<&Path> = cg.hierarchies.iter().map(|h| h.dir.as_path()).collect();
    assert_eq!(
        dirs,
        [
            Path::new("/sys/fs/cgroup/cpu/sealrun/c1"),
            Path::new("/sys/fs/cgroup/cpuacct/sealrun/c1"),
            Path::new("/sys/fs/cgroup/memory/sealrun/c1"),
            Path::new("/sys/fs/cgroup/systemd/sealrun/c1"),
            Path::new("/sys/fs/cgroup/unified/sealrun/c1"),
        ]
    );
    assert_eq!(resolve(HYBRID, Some(""), "c1").unwrap().path, "/sealrun/c1");
}

#[test]
fn bad_paths_and_ids_are_refused() {
    for p in ["/", "..", "/..", "."] {
        let e = resolve(HYBRID, Some(p), "c1").unwrap_err().to_string();
        assert!(e.contains("linux.cgroupsPath"), "{p}: {e}");
    }
    assert!(resolve(HYBRID, None, "../x").is_err());
    assert_eq!(
        resolve(HYBRID, Some("/a/../../b/c"), "c1").unwrap().path,
        "/b/c"
    );
}

#[test]
fn relative_path_follows_runc_under_the_callers_cgroup() {
    let cg = resolve(HYBRID, Some("x/c1"), "c1").unwrap();
    assert_eq!(
        cg.hierarchies[2].dir,
        Path::new("/sys/fs/cgroup/memory/process_api/x/x/c1")
    );
    assert_eq!(cg.hierarchies[0].dir, Path::new("/sys/fs/cgroup/cpu/x/c1"));
}

#[test]
fn state_json_round_trips() {
    let mut cg = resolve(HYBRID, Some("/t/c1"), "c1").unwrap();
    cg.created = vec![PathBuf::from("/sys/fs/cgroup/cpu/t")];
    let json = serde_json::to_string(&cg).unwrap();
    assert!(json.contains("\"mode\":\"hybrid\""), "{json}");
    let back: Cgroup = serde_json::from_str(&json).unwrap();
    assert_eq!(back, cg);
    // An older state.json with only the path still loads.
    let old: Cgroup = serde_json::from_str(r#"{"path":"/x"}"#).unwrap();
    assert!(old.hierarchies.is_empty());
}

#[test]
fn container_mounts_on_hybrid_and_v2() {
    let mut text = HYBRID.replace(
        "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n",
        "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n",
    );
    text.push('\n');
    let cg = resolve(&text, Some("/t/c1"), "c1").unwrap();
    let m = cg.container_mounts();
    let short: Vec<(&str, &str, &str, Vec<String>)> = m
        .iter()
        .map(|m| {
            (
                m.subdir.as_str(),
                m.fstype,
                m.data.as_str(),
                m.symlinks.clone(),
            )
        })
        .collect();
    assert_eq!(
        short,
        [
            (
                "cpu,cpuacct",
                "cgroup",
                "cpu,cpuacct",
                vec!["cpu".to_string(), "cpuacct".to_string()]
            ),
            ("memory", "cgroup", "memory", vec![]),
            ("systemd", "cgroup", "name=systemd", vec![]),
            ("unified", "cgroup2", "", vec![]),
        ]
    );
    assert_eq!(m[1].host_dir, Path::new("/sys/fs/cgroup/memory/t/c1"));
    let v2 = "26 25 0:23 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
    let cg = Cgroup::resolve_in(
        &layout::parse_mountinfo(v2),
        &layout::parse_proc_cgroup("0::/a/b\n"),
        Some("/t/c1"),
        "c1",
    )
    .unwrap();
    let m = cg.container_mounts();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].subdir, "");
    assert_eq!(m[0].fstype, "cgroup2");
    assert_eq!(m[0].host_dir, Path::new("/sys/fs/cgroup/t/c1"));
}
