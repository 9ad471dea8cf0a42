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

/// Two fake v1 "hierarchies" (plain directories) in a fresh temp dir, with the container's
/// cgroup at `inner` in each; removed on drop.
struct FakeHost {
    root: PathBuf,
}

impl FakeHost {
    fn new(tag: &str) -> FakeHost {
        let root =
            std::env::temp_dir().join(format!("sealrun-cgroup-unit-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for h in ["cpu", "memory"] {
            std::fs::create_dir_all(root.join(h)).unwrap();
        }
        FakeHost { root }
    }

    fn cgroup(&self, inner: &str) -> Cgroup {
        let hierarchies = ["cpu", "memory"]
            .iter()
            .map(|c| Hierarchy {
                controllers: vec![c.to_string()],
                v2: false,
                mount_point: self.root.join(c),
                dir: self.root.join(c).join(inner.trim_start_matches('/')),
            })
            .collect();
        Cgroup {
            path: inner.to_string(),
            mode: Mode::V1,
            hierarchies,
            created: Vec::new(),
        }
    }

    /// Make `rel` in every hierarchy as someone else would (with an empty `cgroup.procs`).
    fn premake(&self, rel: &str, procs: &str) {
        for h in ["cpu", "memory"] {
            let d = self.root.join(h).join(rel);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("cgroup.procs"), procs).unwrap();
        }
    }

    fn dir(&self, h: &str, rel: &str) -> PathBuf {
        self.root.join(h).join(rel)
    }
}

impl Drop for FakeHost {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[test]
fn created_dirs_are_recorded_parents_first_and_joined_ones_are_not() {
    let host = FakeHost::new("record");
    host.premake("a", "");
    let mut cg = host.cgroup("/a/b/c");
    cg.create().unwrap();
    assert_eq!(
        cg.created,
        [
            host.dir("cpu", "a/b"),
            host.dir("cpu", "a/b/c"),
            host.dir("memory", "a/b"),
            host.dir("memory", "a/b/c"),
        ]
    );
    assert!(cg.hierarchies.iter().all(|h| cg.created_in(h)));
    assert!(cg.owned());
    // The record survives state.json.
    let back: Cgroup = serde_json::from_str(&serde_json::to_string(&cg).unwrap()).unwrap();
    assert!(back.owned());
    cg.destroy().unwrap();
    assert!(!host.dir("cpu", "a/b").exists());
    assert!(!host.dir("memory", "a/b").exists());
    assert!(host.dir("cpu", "a").is_dir(), "a joined parent stays");
}

#[test]
fn a_joined_cgroup_with_processes_stays_and_is_not_owned() {
    let host = FakeHost::new("joined");
    host.premake("a/b", "4242\n");
    let mut cg = host.cgroup("/a/b");
    cg.create().unwrap();
    assert!(cg.created.is_empty());
    assert!(!cg.owned());
    assert!(cg.hierarchies.iter().all(|h| !cg.created_in(h)));
    cg.destroy().unwrap();
    assert!(host.dir("cpu", "a/b").is_dir());
    assert!(host.dir("memory", "a/b").is_dir());
    // Joined in one hierarchy and created in the other: not owned.
    std::fs::remove_dir_all(host.dir("memory", "a/b")).unwrap();
    let mut cg = host.cgroup("/a/b");
    cg.create().unwrap();
    assert_eq!(cg.created, [host.dir("memory", "a/b")]);
    assert!(!cg.owned());
    cg.destroy().unwrap();
    assert!(!host.dir("memory", "a/b").exists());
    assert!(host.dir("cpu", "a/b").is_dir());
}

#[test]
fn a_created_parent_another_cgroup_lives_in_stays() {
    let host = FakeHost::new("parent");
    let mut first = host.cgroup("/p/one");
    first.create().unwrap();
    let mut second = host.cgroup("/p/two");
    second.create().unwrap();
    assert_eq!(
        second.created,
        [host.dir("cpu", "p/two"), host.dir("memory", "p/two")]
    );
    first.destroy().unwrap();
    assert!(!host.dir("cpu", "p/one").exists());
    assert!(
        host.dir("cpu", "p/two").is_dir(),
        "only deepest-first and empty"
    );
    second.destroy().unwrap();
    assert!(
        host.dir("cpu", "p").is_dir(),
        "created by the first, not by the second"
    );
}

#[test]
fn a_cgroup_with_foreign_children_is_refused_and_nothing_is_left() {
    let host = FakeHost::new("children");
    host.premake("x/theirs", "");
    let mut cg = host.cgroup("/x");
    let e = cg.create().unwrap_err().to_string();
    assert!(e.contains("linux.cgroupsPath"), "{e}");
    assert!(e.contains("child cgroups"), "{e}");
    assert!(cg.created.is_empty());
    assert!(host.dir("cpu", "x/theirs").is_dir());
    // Refused in the second hierarchy after the first was made: the first is removed again.
    let host = FakeHost::new("children2");
    host.premake("y/theirs", "");
    std::fs::remove_dir_all(host.dir("cpu", "y")).unwrap();
    let mut cg = host.cgroup("/y");
    assert!(cg.create().is_err());
    assert!(
        !host.dir("cpu", "y").exists(),
        "what this create made is gone"
    );
    assert!(host.dir("memory", "y/theirs").is_dir());
}
