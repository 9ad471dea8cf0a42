//! Id-mapped bind mounts (runtime-spec 1.2: a mount's `uidMappings`/`gidMappings`, the `idmap`
//! and `ridmap` options) and the pod pattern (a container joining another's user namespace by
//! path). Files owned by host root in a bind-mounted directory appear owned by the container's
//! root (user namespace 0 → 100000) and it can write them; on the host they stay root's.
//! Without the mapping the same mount shows them as nobody's and refuses the write, so the
//! tests can fail. Bad input is one error naming the field, with nothing left behind.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use common::*;
use serde_json::{json, Value};

const BASE: u32 = 100_000;

/// A host directory owned by root holding `f` (root's, 0644).
fn shared_dir(t: &Test) -> PathBuf {
    let dir = t.path("shared");
    std::fs::create_dir_all(&dir).expect("mkdir shared");
    std::fs::write(dir.join("f"), "host\n").expect("write f");
    dir
}

fn idmapped_bundle(t: &Test, id: &str, mount: Value) -> Bundle {
    let mut b = t.bundle_for(id);
    b.user_namespace(BASE, BASE, 65536);
    b.add_mount(mount);
    b.probe_args(&["stat=/shared/f", "write=/shared/f", "write=/shared/new"]);
    mount_point(&b);
    b
}

/// The mount point, made in the rootfs (the container's root may not create it there).
fn mount_point(b: &Bundle) {
    std::fs::create_dir_all(b.rootfs().join("shared")).expect("mkdir mount point");
}

fn idmap_supported() -> bool {
    let out = std::process::Command::new(runtime())
        .arg("features")
        .output()
        .expect("features");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v["linux"]["mountExtensions"]["idmap"]["enabled"] == true
}

/// Run the probe with `/shared` mounted as `mount` describes; returns its facts.
fn probe_shared(t: &Test, options: &[&str], mappings: bool) -> Value {
    let dir = shared_dir(t);
    let mut m = json!({"destination": "/shared", "type": "bind",
                       "source": dir, "options": options});
    if mappings {
        m["uidMappings"] = json!([{"containerID": 0, "hostID": BASE, "size": 65536}]);
        m["gidMappings"] = json!([{"containerID": 0, "hostID": BASE, "size": 65536}]);
    }
    let b = idmapped_bundle(t, t.id(), m);
    t.probe(&b)
}

fn assert_mapped(t: &Test, facts: &Value) {
    assert_eq!(facts["stat"]["/shared/f"]["uid"], 0, "{facts}");
    assert_eq!(facts["stat"]["/shared/f"]["gid"], 0, "{facts}");
    assert_eq!(facts["write"]["/shared/f"], "ok", "{facts}");
    assert_eq!(facts["write"]["/shared/new"], "ok", "{facts}");
    // On the host both stay (or are made) root's.
    for f in ["f", "new"] {
        let meta = std::fs::metadata(t.path("shared").join(f)).expect("stat on host");
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "host owner of {f}");
    }
}

#[test]
fn idmap_option_maps_host_root_to_the_containers_root() {
    if !idmap_supported() {
        return skip("no id-mapped mounts on this kernel or runtime");
    }
    let t = Test::new();
    let facts = probe_shared(&t, &["bind", "idmap"], false);
    assert_mapped(&t, &facts);
    t.assert_nothing_left();
}

#[test]
fn mount_mappings_with_ridmap_map_the_tree() {
    if !idmap_supported() {
        return skip("no id-mapped mounts on this kernel or runtime");
    }
    let t = Test::new();
    let facts = probe_shared(&t, &["rbind", "ridmap"], true);
    assert_mapped(&t, &facts);
    t.assert_nothing_left();
}

/// The twin: the same bind mount without a mapping shows root's files as nobody's and the
/// container's root cannot write them.
#[test]
fn without_idmap_host_root_files_are_nobodys() {
    let t = Test::new();
    let facts = probe_shared(&t, &["bind"], false);
    assert_eq!(facts["stat"]["/shared/f"]["uid"], 65534, "{facts}");
    assert_eq!(facts["write"]["/shared/f"]["errno"], 13, "{facts}");
    assert_eq!(facts["write"]["/shared/new"]["errno"], 13, "{facts}");
    t.assert_nothing_left();
}

/// The Kubernetes pod pattern: the sandbox creates the user namespace, a container joins it by
/// path and id-maps its volume through it.
#[test]
fn a_container_joining_the_pods_user_namespace_gets_idmapped_mounts() {
    if !idmap_supported() {
        return skip("no id-mapped mounts on this kernel or runtime");
    }
    let t = Test::new();
    let sandbox = t.new_id("sandbox");
    let mut sb = t.sleeper(&sandbox);
    sb.user_namespace(BASE, BASE, 65536);
    t.run_detached(&sb).ok();
    t.wait_status(&sandbox, "running");
    let pid = t.pid_of(&sandbox);
    let dir = shared_dir(&t);
    let mut b = t.bundle();
    let userns = PathBuf::from(format!("/proc/{pid}/ns/user"));
    b.namespace("user", Some(&userns));
    b.set(
        "/linux/uidMappings",
        json!([{"containerID": 0, "hostID": BASE, "size": 65536}]),
    );
    b.set(
        "/linux/gidMappings",
        json!([{"containerID": 0, "hostID": BASE, "size": 65536}]),
    );
    b.add_mount(json!({"destination": "/shared", "type": "bind",
                       "source": dir, "options": ["bind", "idmap"]}));
    b.probe_args(&["stat=/shared/f", "write=/shared/f", "write=/shared/new"]);
    mount_point(&b);
    let facts = t.probe(&b);
    let sb_facts_ns = std::fs::read_link(&userns).expect("sandbox userns");
    assert_eq!(
        facts["ns"]["user"].as_u64().map(|n| format!("user:[{n}]")),
        Some(sb_facts_ns.to_string_lossy().into_owned()),
        "joined the sandbox's user namespace: {facts}"
    );
    assert_mapped(&t, &facts);
    t.delete_force(&sandbox);
    t.assert_nothing_left();
}

fn bad(mount: Value, userns: bool, needles: &[&str]) {
    let t = Test::new();
    let mut b = t.bundle();
    if userns {
        b.user_namespace(BASE, BASE, 65536);
    }
    b.add_mount(mount);
    t.run(&b).error_line(needles);
    t.assert_nothing_left();
}

#[test]
fn idmap_without_a_user_namespace_is_one_error() {
    if !is_sealrun() {
        return skip(&sealrun_only("the error names the field"));
    }
    let t = Test::new();
    let dir = shared_dir(&t);
    let n = Bundle::new("x", &t.path("tmp-b"), "/x").config["mounts"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    bad(
        json!({"destination": "/shared", "type": "bind", "source": dir,
               "options": ["bind", "idmap"]}),
        false,
        &[&format!("mounts[{n}].uidMappings"), "user namespace"],
    );
}

#[test]
fn overlapping_mount_mappings_are_one_error() {
    if !is_sealrun() {
        return skip(&sealrun_only("the error names the field"));
    }
    let t = Test::new();
    let dir = shared_dir(&t);
    bad(
        json!({"destination": "/shared", "type": "bind", "source": dir, "options": ["bind"],
               "uidMappings": [{"containerID": 0, "hostID": BASE, "size": 100},
                               {"containerID": 50, "hostID": 300000, "size": 100}],
               "gidMappings": [{"containerID": 0, "hostID": BASE, "size": 100}]}),
        true,
        &["uidMappings[1]", "overlaps"],
    );
}

#[test]
fn a_filesystem_without_idmap_support_is_named() {
    if !is_sealrun() {
        return skip(&sealrun_only("the error names the filesystem"));
    }
    if !idmap_supported() {
        return skip("no id-mapped mounts on this kernel or runtime");
    }
    // procfs cannot be id-mapped.
    bad(
        json!({"destination": "/hostproc", "type": "bind", "source": "/proc/sys/kernel",
               "options": ["bind", "idmap"]}),
        true,
        &[
            "/proc/sys/kernel",
            "proc filesystem does not support id-mapped mounts",
        ],
    );
}

#[test]
fn features_report_idmap_truthfully() {
    if !is_sealrun() {
        return skip(&sealrun_only("features"));
    }
    // mount_setattr (and MOUNT_ATTR_IDMAP) arrived in Linux 5.12.
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release.trim().split(['.', '-']);
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    assert_eq!(idmap_supported(), (major, minor) >= (5, 12), "{release}");
}

/// A user-namespaced bundle whose root is writable, probing ownership and writes at its root.
fn rootfs_bundle(t: &Test, idmap: Option<&str>) -> Bundle {
    let mut b = t.bundle();
    b.user_namespace(BASE, BASE, 65536);
    b.writable_root();
    if let Some(v) = idmap {
        b.set("/annotations/run.sealrun.rootfs.idmap", json!(v));
    }
    b.probe_args(&["stat=/", "stat=/probe", "write=/idmapped-new"]);
    b
}

/// `run.sealrun.rootfs.idmap=true`: the rootfs, owned by host root, is mounted id-mapped
/// through the container's user namespace: its root owns it and writes to it; on the host
/// everything stays (or is made) root's.
#[test]
fn an_idmapped_rootfs_belongs_to_the_containers_root() {
    if !is_sealrun() {
        return skip(&sealrun_only("run.sealrun.rootfs.idmap"));
    }
    if !idmap_supported() {
        return skip("no id-mapped mounts on this kernel or runtime");
    }
    let t = Test::new();
    let b = rootfs_bundle(&t, Some("true"));
    let facts = t.probe(&b);
    assert_eq!(facts["stat"]["/"]["uid"], 0, "{facts}");
    assert_eq!(facts["stat"]["/probe"]["gid"], 0, "{facts}");
    assert_eq!(facts["write"]["/idmapped-new"], "ok", "{facts}");
    let meta = std::fs::metadata(b.rootfs().join("idmapped-new")).expect("stat on host");
    assert_eq!(
        (meta.uid(), meta.gid()),
        (0, 0),
        "host owner of the new file"
    );
    let root = std::fs::metadata(b.rootfs()).expect("stat rootfs");
    assert_eq!((root.uid(), root.gid()), (0, 0), "host owner of the rootfs");
    t.assert_nothing_left();
}

/// The twin: without the annotation the same rootfs is nobody's inside and its root cannot
/// write to it.
#[test]
fn without_the_annotation_the_rootfs_is_nobodys() {
    let t = Test::new();
    let b = rootfs_bundle(&t, None);
    let facts = t.probe(&b);
    assert_eq!(facts["stat"]["/"]["uid"], 65534, "{facts}");
    assert_eq!(facts["write"]["/idmapped-new"]["errno"], 13, "{facts}");
    assert!(!b.rootfs().join("idmapped-new").exists());
    t.assert_nothing_left();
}

#[test]
fn an_idmapped_rootfs_without_a_user_namespace_is_one_error() {
    if !is_sealrun() {
        return skip(&sealrun_only("the error names the annotation"));
    }
    let t = Test::new();
    let mut b = t.bundle();
    b.set("/annotations/run.sealrun.rootfs.idmap", json!("true"));
    t.run(&b)
        .error_line(&["run.sealrun.rootfs.idmap", "user namespace"]);
    t.assert_nothing_left();
}

/// The pod pattern with a time namespace: a container joining the sandbox's user namespace by
/// path gets a new time namespace with its offsets.
#[test]
fn a_container_joining_the_pods_user_namespace_gets_a_time_namespace() {
    if !is_sealrun() {
        return skip(&sealrun_only("the time namespace"));
    }
    let t = Test::new();
    let sandbox = t.new_id("sandbox");
    let mut sb = t.sleeper(&sandbox);
    sb.user_namespace(BASE, BASE, 65536);
    t.run_detached(&sb).ok();
    t.wait_status(&sandbox, "running");
    let pid = t.pid_of(&sandbox);
    let userns = PathBuf::from(format!("/proc/{pid}/ns/user"));
    let mut b = t.bundle();
    b.namespace("user", Some(&userns));
    b.set(
        "/linux/uidMappings",
        json!([{"containerID": 0, "hostID": BASE, "size": 65536}]),
    );
    b.set(
        "/linux/gidMappings",
        json!([{"containerID": 0, "hostID": BASE, "size": 65536}]),
    );
    b.namespace("time", None);
    let year = 365 * 86400;
    b.set(
        "/linux/timeOffsets",
        json!({"boottime": {"secs": year, "nanosecs": 0}}),
    );
    b.probe_args(&["read=/proc/uptime"]);
    let facts = t.probe(&b);
    let up: f64 = facts["read"]["/proc/uptime"]
        .as_str()
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no uptime: {facts}"));
    assert!(up >= year as f64, "the boottime offset applies: {facts}");
    assert_ne!(facts["ns"]["time"], host_ns("time"), "{facts}");
    let joined = std::fs::read_link(&userns).expect("sandbox userns");
    assert_eq!(
        facts["ns"]["user"].as_u64().map(|n| format!("user:[{n}]")),
        Some(joined.to_string_lossy().into_owned()),
        "{facts}"
    );
    t.delete_force(&sandbox);
    t.assert_nothing_left();
}
