//! Every section of the bundle config, checked through what the probe sees in the container:
//! root, mounts, namespaces (new, joined, user with id maps), devices, masked and read-only
//! paths, hostname/domainname, sysctl, rlimits, user, env, cwd, args, oomScoreAdj,
//! noNewPrivileges, rootfsPropagation, capabilities, annotations.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use serde_json::{json, Value};

const EROFS: i64 = 30;
const EACCES: i64 = 13;
const EPERM: i64 = 1;

/// The mountinfo entry (the last one: the visible one) for `mount_point`.
#[track_caller]
fn mount<'a>(facts: &'a Value, mount_point: &str) -> &'a Value {
    facts["mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .rev()
        .find(|m| m["mount_point"] == mount_point)
        .unwrap_or_else(|| panic!("no mount at {mount_point} in {:#}", facts["mounts"]))
}

fn has_mount(facts: &Value, mount_point: &str) -> bool {
    facts["mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .any(|m| m["mount_point"] == mount_point)
}

/// A comma-separated mountinfo field as a list (missing: `[""]`).
fn comma_list(v: &Value) -> Vec<String> {
    v.as_str()
        .unwrap_or("")
        .split(',')
        .map(String::from)
        .collect()
}

fn opts(m: &Value) -> Vec<String> {
    comma_list(&m["options"])
}

fn super_opts(m: &Value) -> Vec<String> {
    comma_list(&m["super_options"])
}

/// A string fact split on white space (an id map line, a sysctl with several values).
#[track_caller]
fn words(v: &Value) -> Vec<String> {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .split_whitespace()
        .map(String::from)
        .collect()
}

fn optional(m: &Value) -> Vec<String> {
    m["optional"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn names(v: &Value) -> Vec<String> {
    let mut n: Vec<String> = v
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .map(|x| x.as_str().unwrap_or("").to_string())
        .collect();
    n.sort();
    n
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut n: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    n.sort();
    n
}

/// A host directory with `hello.txt` ("from-host") for bind mounts.
fn host_dir(t: &Test, name: &str) -> std::path::PathBuf {
    let d = t.path(name);
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("hello.txt"), "from-host").unwrap();
    d
}

// ---------------------------------------------------------------- root

#[test]
fn root_readonly_true_makes_slash_read_only() {
    let t = Test::new();
    let mut b = t.bundle();
    b.probe_args(&["write=/newfile", "write=/dev/shm/ok"]);
    let f = t.probe(&b);
    assert_eq!(f["write"]["/newfile"]["errno"], EROFS);
    assert_eq!(
        f["write"]["/dev/shm/ok"], "ok",
        "mounts on top stay writable"
    );
    assert!(opts(mount(&f, "/")).contains(&"ro".to_string()));
    t.assert_nothing_left();
}

#[test]
fn root_readonly_false_makes_slash_writable() {
    let t = Test::new();
    let mut b = t.bundle();
    b.writable_root().probe_args(&["write=/newfile"]);
    let f = t.probe(&b);
    assert_eq!(f["write"]["/newfile"], "ok");
    assert!(opts(mount(&f, "/")).contains(&"rw".to_string()));
    assert!(
        b.rootfs().join("newfile").exists(),
        "written to the bundle's rootfs"
    );
    t.assert_nothing_left();
}

#[test]
fn root_path_may_be_absolute() {
    let t = Test::new();
    let mut b = t.bundle();
    b.set("/root/path", json!(b.rootfs()));
    b.probe_args(&["read=/etc/passwd"]);
    let f = t.probe(&b);
    assert!(f["read"]["/etc/passwd"]
        .as_str()
        .unwrap()
        .starts_with("root:"));
    t.assert_nothing_left();
}

// ---------------------------------------------------------------- mounts

#[test]
fn default_mounts_have_their_types_and_options() {
    let t = Test::new();
    let mut b = t.bundle();
    b.probe_args(&["stat=/dev/shm"]);
    let f = t.probe(&b);
    let proc_ = mount(&f, "/proc");
    assert_eq!(proc_["fstype"], "proc");
    let dev = mount(&f, "/dev");
    assert_eq!(dev["fstype"], "tmpfs");
    assert!(opts(dev).contains(&"nosuid".into()));
    assert!(super_opts(dev).contains(&"mode=755".into()), "{dev}");
    assert!(super_opts(dev).contains(&"size=65536k".into()), "{dev}");
    let pts = mount(&f, "/dev/pts");
    assert_eq!(pts["fstype"], "devpts");
    for o in ["nosuid", "noexec"] {
        assert!(opts(pts).contains(&o.into()), "{pts}");
    }
    for o in ["gid=5", "mode=620", "ptmxmode=666"] {
        assert!(super_opts(pts).contains(&o.into()), "{o}: {pts}");
    }
    let shm = mount(&f, "/dev/shm");
    assert_eq!(shm["fstype"], "tmpfs");
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(opts(shm).contains(&o.into()), "{shm}");
    }
    assert_eq!(f["stat"]["/dev/shm"]["mode"], "1777");
    let mq = mount(&f, "/dev/mqueue");
    assert_eq!(mq["fstype"], "mqueue");
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(opts(mq).contains(&o.into()), "{mq}");
    }
    let sys = mount(&f, "/sys");
    assert_eq!(sys["fstype"], "sysfs");
    for o in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(opts(sys).contains(&o.into()), "{sys}");
    }
    t.assert_nothing_left();
}

#[test]
fn tmpfs_mount_options_are_applied() {
    let t = Test::new();
    let mut b = t.bundle();
    b.add_mount(
        json!({"destination": "/mnt/t", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "noexec", "noatime", "size=1m", "mode=700", "uid=1000"]}),
    );
    b.add_mount(
        json!({"destination": "/mnt/ro", "type": "tmpfs", "source": "tmpfs",
        "options": ["ro", "relatime"]}),
    );
    b.probe_args(&["stat=/mnt/t", "write=/mnt/ro/f"]);
    let f = t.probe(&b);
    let m = mount(&f, "/mnt/t");
    assert_eq!(m["fstype"], "tmpfs");
    for o in ["rw", "nosuid", "nodev", "noexec", "noatime"] {
        assert!(opts(m).contains(&o.into()), "{o}: {m}");
    }
    for o in ["size=1024k", "mode=700", "uid=1000"] {
        assert!(super_opts(m).contains(&o.into()), "{o}: {m}");
    }
    assert_eq!(f["stat"]["/mnt/t"]["mode"], "0700");
    assert_eq!(f["stat"]["/mnt/t"]["uid"], 1000);
    let ro = mount(&f, "/mnt/ro");
    assert!(opts(ro).contains(&"ro".into()), "{ro}");
    assert!(opts(ro).contains(&"relatime".into()), "{ro}");
    assert_eq!(f["write"]["/mnt/ro/f"]["errno"], EROFS);
    t.assert_nothing_left();
}

#[test]
fn bind_mounts_show_host_files_and_honour_ro() {
    let t = Test::new();
    let d = host_dir(&t, "hostdir");
    let mut b = t.bundle();
    b.bind("/mnt/rw", &d, &["rbind", "rw"]);
    b.bind("/mnt/ro", &d, &["bind", "ro", "nosuid"]);
    b.bind("/mnt/file.txt", d.join("hello.txt"), &["bind", "ro"]);
    b.probe_args(&[
        "read=/mnt/rw/hello.txt",
        "write=/mnt/rw/from-container",
        "read=/mnt/ro/hello.txt",
        "write=/mnt/ro/nope",
        "read=/mnt/file.txt",
        "stat=/mnt/file.txt",
    ]);
    let f = t.probe(&b);
    assert_eq!(f["read"]["/mnt/rw/hello.txt"], "from-host");
    assert_eq!(f["write"]["/mnt/rw/from-container"], "ok");
    assert!(
        d.join("from-container").exists(),
        "writes reach the host directory"
    );
    assert_eq!(f["read"]["/mnt/ro/hello.txt"], "from-host");
    assert_eq!(f["write"]["/mnt/ro/nope"]["errno"], EROFS);
    let ro = mount(&f, "/mnt/ro");
    assert!(
        opts(ro).contains(&"ro".into()) && opts(ro).contains(&"nosuid".into()),
        "{ro}"
    );
    assert_eq!(f["read"]["/mnt/file.txt"], "from-host");
    assert_eq!(f["stat"]["/mnt/file.txt"]["type"], "file");
    t.assert_nothing_left();
}

#[test]
fn rbind_carries_submounts_and_bind_does_not() {
    let t = Test::new();
    let d = host_dir(&t, "hostdir");
    let sub = d.join("sub");
    fs::create_dir(&sub).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &sub,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=1m"),
    )
    .expect("mount tmpfs on the host dir (unmounted when the test ends)");
    t.own_mount(&sub);
    fs::write(sub.join("in-sub"), "x").unwrap();
    let mut b = t.bundle();
    b.bind("/mnt/r", &d, &["rbind"]);
    b.bind("/mnt/b", &d, &["bind"]);
    b.probe_args(&["ls=/mnt/r/sub", "ls=/mnt/b/sub"]);
    let f = t.probe(&b);
    assert_eq!(f["ls"]["/mnt/r/sub"], json!(["in-sub"]));
    assert_eq!(f["ls"]["/mnt/b/sub"], json!([]));
    assert!(has_mount(&f, "/mnt/r/sub"));
    assert!(!has_mount(&f, "/mnt/b/sub"));
    host::unmount_under(&sub);
    t.assert_nothing_left();
}

#[test]
fn mounts_are_made_in_order() {
    let t = Test::new();
    let d = host_dir(&t, "hostdir");
    let mut b = t.bundle();
    // The tmpfs first, then a bind inside it: reversed, the tmpfs would hide the bind.
    b.add_mount(json!({"destination": "/mnt/outer", "type": "tmpfs", "source": "tmpfs"}));
    b.bind("/mnt/outer/inner", &d, &["rbind"]);
    // The same destination twice: the second one wins.
    b.add_mount(
        json!({"destination": "/mnt/twice", "type": "tmpfs", "source": "first",
        "options": ["size=1m"]}),
    );
    b.add_mount(
        json!({"destination": "/mnt/twice", "type": "tmpfs", "source": "second",
        "options": ["size=2m"]}),
    );
    b.probe_args(&["read=/mnt/outer/inner/hello.txt"]);
    let f = t.probe(&b);
    assert_eq!(f["read"]["/mnt/outer/inner/hello.txt"], "from-host");
    let outer = mount(&f, "/mnt/outer");
    let inner = mount(&f, "/mnt/outer/inner");
    assert_eq!(inner["parent"], outer["id"]);
    let twice = mount(&f, "/mnt/twice");
    assert_eq!(twice["source"], "second");
    // The order of our mounts in mountinfo follows the config.
    let order: Vec<String> = f["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mount_point"].as_str().unwrap().to_string())
        .filter(|p| p.starts_with("/mnt/") || p == "/proc" || p == "/dev" || p == "/sys")
        .collect();
    let pos = |p: &str| order.iter().position(|x| x == p).unwrap();
    assert!(
        pos("/proc") < pos("/dev") && pos("/dev") < pos("/sys"),
        "{order:?}"
    );
    assert!(pos("/sys") < pos("/mnt/outer"), "{order:?}");
    assert!(pos("/mnt/outer") < pos("/mnt/outer/inner"), "{order:?}");
    t.assert_nothing_left();
}

#[test]
fn mount_propagation_options_are_applied() {
    let t = Test::new();
    let d = host_dir(&t, "hostdir");
    let mut b = t.bundle();
    b.bind("/mnt/shared", &d, &["rbind", "rshared"]);
    b.bind("/mnt/private", &d, &["rbind", "rprivate"]);
    b.bind("/mnt/unbindable", &d, &["rbind", "runbindable"]);
    let f = t.probe(&b);
    let shared = optional(mount(&f, "/mnt/shared"));
    assert!(
        shared.iter().any(|o| o.starts_with("shared:")),
        "{shared:?}"
    );
    let private = optional(mount(&f, "/mnt/private"));
    assert!(private.is_empty(), "{private:?}");
    let unb = optional(mount(&f, "/mnt/unbindable"));
    assert_eq!(unb, ["unbindable"]);
    t.assert_nothing_left();
}

// ---------------------------------------------------------------- namespaces

const NS_KINDS: [(&str, &str); 8] = [
    ("pid", "pid"),
    ("network", "net"),
    ("ipc", "ipc"),
    ("uts", "uts"),
    ("mount", "mnt"),
    ("cgroup", "cgroup"),
    ("user", "user"),
    ("time", "time"),
];

#[test]
fn listed_namespaces_are_new_and_others_shared() {
    let t = Test::new();
    let b = t.bundle(); // pid, network, ipc, uts, mount
    let f = t.probe(&b);
    for (spec, proc_) in NS_KINDS {
        let new = ["pid", "network", "ipc", "uts", "mount"].contains(&spec);
        let same = f["ns"][proc_] == host_ns(proc_);
        assert_eq!(same, !new, "{spec} namespace new={new}: {}", f["ns"]);
    }
    t.assert_nothing_left();
}

#[test]
fn only_a_mount_namespace_shares_everything_else() {
    let t = Test::new();
    let mut b = t.bundle();
    b.set("/linux/namespaces", json!([{"type": "mount"}]));
    b.set("/hostname", Value::Null);
    let f = t.probe(&b);
    for (_, proc_) in NS_KINDS {
        if proc_ == "mnt" {
            assert_ne!(f["ns"][proc_], host_ns(proc_));
        } else {
            assert_eq!(f["ns"][proc_], host_ns(proc_), "{proc_}: {}", f["ns"]);
        }
    }
    assert_ne!(f["pid"], 1, "the host's pid namespace");
    t.assert_nothing_left();
}

#[test]
fn no_mount_namespace_is_refused() {
    if !is_sealrun() {
        // runc 1.1.5 runs it, mounting in the host's namespace (and leaves its rootfs bind
        // mount behind): sealrun refuses by design.
        return skip(&sealrun_only("refusing a config without a mount namespace"));
    }
    let t = Test::new();
    let mut b = t.bundle();
    b.set("/linux/namespaces", json!([{"type": "pid"}]));
    b.set("/hostname", Value::Null);
    t.run(&b)
        .error_line(&["linux.namespaces", "mount namespace"]);
    t.assert_nothing_left();
}

#[test]
fn cgroup_namespace_is_created() {
    let t = Test::new();
    let mut b = t.bundle();
    b.namespace("cgroup", None);
    let f = t.probe(&b);
    assert_ne!(f["ns"]["cgroup"], host_ns("cgroup"));
    // Inside its own cgroup namespace the container sees its cgroup as the root.
    let lines = names(&f["cgroup"]);
    assert!(lines.iter().any(|l| l.ends_with(":/")), "{lines:?}");
    t.assert_nothing_left();
}

#[test]
fn time_namespace_with_offsets() {
    if !is_sealrun() {
        return skip(&sealrun_only("the time namespace"));
    }
    let t = Test::new();
    let mut b = t.bundle();
    b.namespace("time", None);
    let year = 365 * 86400;
    b.set(
        "/linux/timeOffsets",
        json!({"boottime": {"secs": year, "nanosecs": 0},
               "monotonic": {"secs": year, "nanosecs": 0}}),
    );
    b.probe_args(&["read=/proc/uptime"]);
    let f = t.probe(&b);
    assert_ne!(f["ns"]["time"], host_ns("time"));
    let up: f64 = f["read"]["/proc/uptime"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let host_up: f64 = fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        up >= host_up + year as f64 - 1.0,
        "uptime {up} vs host {host_up}"
    );
    t.assert_nothing_left();
}

#[test]
fn user_namespace_with_id_mappings() {
    let t = Test::new();
    let mut b = t.bundle();
    b.user_namespace(100000, 200000, 65536);
    b.probe_args(&[
        "read=/proc/self/uid_map",
        "read=/proc/self/gid_map",
        "stat=/etc/passwd",
        "stat=/dev/null",
    ]);
    let id = t.id();
    t.create(&b).ok();
    let pid = t.pid_of(id);
    let st = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let host_uid = st.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        host_uid.split_whitespace().skip(1).all(|u| u == "100000"),
        "the init is host uid 100000: {host_uid}"
    );
    let f = t.start_probe(id);
    assert_ne!(f["ns"]["user"], host_ns("user"));
    assert_eq!(f["uid"], json!([0, 0, 0, 0]));
    assert_eq!(f["gid"], json!([0, 0, 0, 0]));
    let uid_map = words(&f["read"]["/proc/self/uid_map"]);
    assert_eq!(uid_map, ["0", "100000", "65536"]);
    let gid_map = words(&f["read"]["/proc/self/gid_map"]);
    assert_eq!(gid_map, ["0", "200000", "65536"]);
    // Host root's files are unmapped: they show as the overflow id.
    assert_eq!(f["stat"]["/etc/passwd"]["uid"], 65534);
    assert_eq!(f["stat"]["/dev/null"]["type"], "char");
    t.delete(id).ok();
    t.assert_nothing_left();
}

#[test]
fn namespaces_are_joined_by_path() {
    let t = Test::new();
    let net = t.persistent_ns("net");
    let ipc = t.persistent_ns("ipc");
    let uts = t.persistent_ns("uts");
    let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap());
    let mut b = t.bundle();
    b.namespace("network", Some(&net));
    b.namespace("ipc", Some(&ipc));
    b.namespace("uts", Some(&uts));
    b.set("/hostname", json!("joined"));
    let f = t.probe(&b);
    assert_eq!(f["ns"]["net"], ino(&net));
    assert_eq!(f["ns"]["ipc"], ino(&ipc));
    assert_eq!(f["ns"]["uts"], ino(&uts));
    assert_ne!(f["ns"]["pid"], host_ns("pid"));
    // The hostname was set in the joined uts namespace, which outlives the container.
    let out = std::process::Command::new("nsenter")
        .arg(format!("--uts={}", uts.display()))
        .arg("hostname")
        .output()
        .expect("nsenter");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "joined");
    t.assert_nothing_left();
}

#[test]
fn a_second_container_joins_the_first_ones_namespaces() {
    let t = Test::new();
    let first = t.new_id("pod");
    t.run_sleeper(&first);
    let pid = t.pid_of(&first);
    let mut b2 = t.bundle_for(&t.new_id("member"));
    for (spec, proc_) in [
        ("pid", "pid"),
        ("network", "net"),
        ("ipc", "ipc"),
        ("uts", "uts"),
    ] {
        b2.namespace(spec, Some(Path::new(&format!("/proc/{pid}/ns/{proc_}"))));
    }
    b2.set("/hostname", Value::Null);
    // The probe as a child of the shell: processes the container forks land in the joined
    // pid namespace too.
    b2.sh("/probe; exit 0");
    let f = t.probe(&b2);
    for proc_ in ["pid", "net", "ipc", "uts"] {
        let want = fs::read_link(format!("/proc/{pid}/ns/{proc_}")).unwrap();
        let want = want.to_string_lossy();
        let inode: u64 = want[want.find('[').unwrap() + 1..want.len() - 1]
            .parse()
            .unwrap();
        assert_eq!(f["ns"][proc_], inode, "{proc_}");
    }
    assert_ne!(f["pid"], 1, "a joined pid namespace already has its pid 1");
    assert_eq!(
        f["hostname"], "sealrun-test",
        "the first container's hostname"
    );
    t.delete_force(&first).ok();
    t.assert_nothing_left();
}

// ---------------------------------------------------------------- devices

#[test]
fn default_devices_and_dev_symlinks_exist() {
    let t = Test::new();
    let mut b = t.bundle();
    let devs = [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ];
    let mut req: Vec<String> = devs.iter().map(|(p, _, _)| format!("stat={p}")).collect();
    for l in [
        "/dev/ptmx",
        "/dev/fd",
        "/dev/stdin",
        "/dev/stdout",
        "/dev/stderr",
        "/dev/pts/ptmx",
    ] {
        req.push(format!("stat={l}"));
    }
    req.push("read=/dev/zero".into());
    req.push("write=/dev/null".into());
    let req: Vec<&str> = req.iter().map(String::as_str).collect();
    b.probe_args(&req);
    let f = t.probe(&b);
    for (p, major, minor) in devs {
        let s = &f["stat"][p];
        assert_eq!(s["type"], "char", "{p}: {s}");
        assert_eq!(
            (s["major"].as_i64(), s["minor"].as_i64()),
            (Some(major), Some(minor)),
            "{p}"
        );
        assert_eq!(s["mode"], "0666", "{p}: {s}");
    }
    for (l, target) in [
        ("/dev/ptmx", "pts/ptmx"),
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        assert_eq!(f["stat"][l]["type"], "symlink", "{l}");
        assert_eq!(f["stat"][l]["link"], target, "{l}");
    }
    assert_eq!(f["stat"]["/dev/pts/ptmx"]["type"], "char");
    assert_eq!(f["read"]["/dev/zero"].as_str().unwrap().len(), 4096);
    assert_eq!(f["write"]["/dev/null"], "ok");
    t.assert_nothing_left();
}

#[test]
fn linux_devices_are_created_with_mode_and_owner() {
    let t = Test::new();
    let mut b = t.bundle();
    b.set(
        "/linux/devices",
        json!([
            {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3,
             "fileMode": 0o640, "uid": 1000, "gid": 100},
            {"path": "/dev/sub/myzero", "type": "c", "major": 1, "minor": 5},
            {"path": "/dev/myloop", "type": "b", "major": 7, "minor": 0, "fileMode": 0o600}
        ]),
    );
    b.set(
        "/linux/resources/devices",
        json!([{"allow": false, "access": "rwm"},
               {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
               {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"}]),
    );
    b.probe_args(&[
        "stat=/dev/mynull",
        "stat=/dev/sub/myzero",
        "stat=/dev/myloop",
        "write=/dev/mynull",
        "write=/dev/sub/myzero",
        "read=/dev/sub/myzero",
    ]);
    let f = t.probe(&b);
    let n = &f["stat"]["/dev/mynull"];
    assert_eq!(n["type"], "char");
    assert_eq!(
        (n["major"].as_i64(), n["minor"].as_i64()),
        (Some(1), Some(3))
    );
    assert_eq!(n["mode"], "0640");
    assert_eq!(
        (n["uid"].as_i64(), n["gid"].as_i64()),
        (Some(1000), Some(100))
    );
    assert_eq!(f["stat"]["/dev/sub/myzero"]["type"], "char");
    let l = &f["stat"]["/dev/myloop"];
    assert_eq!(l["type"], "block");
    assert_eq!(
        (l["major"].as_i64(), l["minor"].as_i64()),
        (Some(7), Some(0))
    );
    assert_eq!(l["mode"], "0600");
    // 0640 and owned by 1000: root without CAP_DAC_OVERRIDE may not write it.
    assert_eq!(f["write"]["/dev/mynull"]["errno"], EACCES);
    assert_eq!(f["write"]["/dev/sub/myzero"], "ok");
    assert_eq!(f["read"]["/dev/sub/myzero"].as_str().unwrap().len(), 4096);
    t.assert_nothing_left();
}

// ---------------------------------------------------------------- masked / readonly paths

#[test]
fn masked_paths_hide_files_and_directories() {
    let t = Test::new();
    let mut b = t.bundle();
    fs::write(b.rootfs().join("secret.txt"), "top secret").unwrap();
    fs::create_dir(b.rootfs().join("secretdir")).unwrap();
    fs::write(b.rootfs().join("secretdir/inside"), "hidden").unwrap();
    let mut masked = b.config["linux"]["maskedPaths"].as_array().unwrap().clone();
    masked.extend([
        json!("/secret.txt"),
        json!("/secretdir"),
        json!("/does/not/exist"),
    ]);
    b.set("/linux/maskedPaths", Value::Array(masked));
    b.probe_args(&[
        "read=/secret.txt",
        "ls=/secretdir",
        "read=/proc/timer_list",
        "stat=/proc/timer_list",
        "ls=/sys/firmware",
        "write=/secretdir/x",
        "ls=/does",
    ]);
    let f = t.probe(&b);
    assert_eq!(f["read"]["/secret.txt"], "");
    assert_eq!(f["ls"]["/secretdir"], json!([]));
    assert_eq!(f["write"]["/secretdir/x"]["errno"], EROFS);
    assert_eq!(f["read"]["/proc/timer_list"], "");
    let k = &f["stat"]["/proc/timer_list"];
    assert_eq!(
        (k["major"].as_i64(), k["minor"].as_i64()),
        (Some(1), Some(3))
    );
    assert_eq!(f["ls"]["/sys/firmware"], json!([]));
    assert_eq!(
        f["ls"]["/does"]["errno"], 2,
        "missing masked paths are skipped"
    );
    t.assert_nothing_left();
}

#[test]
fn readonly_paths_are_read_only() {
    let t = Test::new();
    let mut b = t.bundle();
    b.writable_root();
    fs::create_dir(b.rootfs().join("data")).unwrap();
    let mut ro = b.config["linux"]["readonlyPaths"]
        .as_array()
        .unwrap()
        .clone();
    ro.extend([json!("/data"), json!("/not/there")]);
    b.set("/linux/readonlyPaths", Value::Array(ro));
    b.probe_args(&[
        "write=/data/x",
        "write=/elsewhere",
        "write=/proc/sys/kernel/hostname",
        "read=/proc/sys/kernel/hostname",
    ]);
    let f = t.probe(&b);
    assert_eq!(f["write"]["/data/x"]["errno"], EROFS);
    assert_eq!(f["write"]["/elsewhere"], "ok");
    assert_eq!(f["write"]["/proc/sys/kernel/hostname"]["errno"], EROFS);
    assert_eq!(f["read"]["/proc/sys/kernel/hostname"], "sealrun-test\n");
    assert!(opts(mount(&f, "/proc/sys")).contains(&"ro".into()));
    t.assert_nothing_left();
}

// ---------------------------------------------------------------- uts, sysctl

#[test]
fn hostname_and_domainname_are_set() {
    let t = Test::new();
    let mut b = t.bundle();
    b.set("/hostname", json!("box-1"));
    b.set("/domainname", json!("example.test"));
    let f = t.probe(&b);
    assert_eq!(f["hostname"], "box-1");
    if is_sealrun() {
        assert_eq!(f["domainname"], "example.test");
    } else {
        skip_part(&sealrun_only("domainname"));
    }
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_ne!(host.trim(), "box-1", "the host's hostname is untouched");
    t.assert_nothing_left();
}

#[test]
fn sysctls_are_set_in_the_containers_namespaces() {
    let t = Test::new();
    let host_fwd = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let host_msgmax = fs::read_to_string("/proc/sys/kernel/msgmax").unwrap();
    let fwd = if host_fwd.trim() == "1" { "0" } else { "1" };
    let mut b = t.bundle();
    b.set(
        "/linux/sysctl",
        json!({"net.ipv4.ip_forward": fwd, "kernel.msgmax": "12345",
               "net.ipv4.ping_group_range": "0 2147483647"}),
    );
    b.probe_args(&[
        "sysctl=net.ipv4.ip_forward",
        "sysctl=kernel.msgmax",
        "sysctl=net.ipv4.ping_group_range",
    ]);
    let f = t.probe(&b);
    assert_eq!(f["sysctl"]["net.ipv4.ip_forward"], fwd);
    assert_eq!(f["sysctl"]["kernel.msgmax"], "12345");
    let pgr = words(&f["sysctl"]["net.ipv4.ping_group_range"]);
    assert_eq!(pgr, ["0", "2147483647"]);
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_fwd,
        "host untouched"
    );
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/msgmax").unwrap(),
        host_msgmax
    );
    t.assert_nothing_left();
}

// ---------------------------------------------------------------- process

#[test]
fn rlimits_are_set() {
    let t = Test::new();
    let mut b = t.bundle();
    b.set(
        "/process/rlimits",
        json!([
            {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000},
            {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096},
            {"type": "RLIMIT_MSGQUEUE", "soft": 1000, "hard": 2000},
            {"type": "RLIMIT_STACK", "soft": 4194304, "hard": 8388608}
        ]),
    );
    let f = t.probe(&b);
    let r = &f["rlimits"];
    assert_eq!(r["RLIMIT_NOFILE"], json!([512, 1000]));
    assert_eq!(r["RLIMIT_NPROC"], json!([300, 400]));
    assert_eq!(r["RLIMIT_CORE"], json!([0, 4096]));
    assert_eq!(r["RLIMIT_MSGQUEUE"], json!([1000, 2000]));
    assert_eq!(r["RLIMIT_STACK"], json!([4194304, 8388608]));
    t.assert_nothing_left();
}

#[test]
fn user_ids_groups_and_umask() {
    let t = Test::new();
    let mut b = t.bundle();
    b.writable_root();
    b.set(
        "/process/user",
        json!({"uid": 1000, "gid": 1000, "additionalGids": [100, 65534], "umask": 0o027}),
    );
    b.probe_args(&["write=/tmp/f", "stat=/tmp/f"]);
    let f = t.probe(&b);
    assert_eq!(f["uid"], json!([1000, 1000, 1000, 1000]));
    assert_eq!(f["gid"], json!([1000, 1000, 1000, 1000]));
    let mut groups: Vec<i64> = f["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_i64().unwrap())
        .collect();
    groups.sort();
    assert_eq!(groups, [100, 65534]);
    assert_eq!(f["umask"], "0027");
    assert_eq!(
        f["stat"]["/tmp/f"]["mode"], "0640",
        "created with umask 027"
    );
    assert_eq!(f["stat"]["/tmp/f"]["uid"], 1000);
    t.assert_nothing_left();
}

#[test]
fn root_user_gets_no_extra_groups() {
    let t = Test::new();
    let b = t.bundle();
    let f = t.probe(&b);
    assert_eq!(f["uid"], json!([0, 0, 0, 0]));
    assert_eq!(f["gid"], json!([0, 0, 0, 0]));
    assert_eq!(f["groups"], json!([]));
    t.assert_nothing_left();
}

#[test]
fn env_is_exactly_process_env() {
    let t = Test::new();
    let mut b = t.bundle();
    let env = [
        "PATH=/bin",
        "A=1",
        "WITH_SPACES=two words",
        "EMPTY=",
        "UNICODE=héllo",
    ];
    b.set("/process/env", json!(env));
    let f = t.probe(&b);
    let mut got = names(&f["env"]);
    // Both runtimes add HOME (from the container's /etc/passwd) when the config has none.
    assert!(got.iter().any(|e| e == "HOME=/root"), "{got:?}");
    got.retain(|e| !e.starts_with("HOME="));
    assert_eq!(got, sorted(&env));
    assert!(
        !f["env"].to_string().contains("SEALRUN_TEST_MARK"),
        "nothing of the runtime's environment leaks"
    );
    t.assert_nothing_left();
}

#[test]
fn cwd_and_args_are_used_verbatim() {
    let t = Test::new();
    let mut b = t.bundle();
    b.set("/process/cwd", json!("/etc"));
    b.args(&["/probe", "two words", "", "ünï", "--flag=x"]);
    let f = t.probe(&b);
    assert_eq!(f["cwd"], "/etc");
    assert_eq!(
        f["args"],
        json!(["/probe", "two words", "", "ünï", "--flag=x"])
    );
    t.assert_nothing_left();
}

#[test]
fn args_are_resolved_in_the_containers_path() {
    let t = Test::new();
    let mut b = t.bundle();
    fs::rename(
        b.rootfs().join("probe"),
        b.rootfs().join("bin/probe-in-path"),
    )
    .unwrap();
    b.args(&["probe-in-path", "x"]);
    b.set("/process/env", json!(["PATH=/nonexistent:/bin"]));
    let f = t.probe(&b);
    assert_eq!(f["args"], json!(["probe-in-path", "x"]));
    t.assert_nothing_left();
}

#[test]
fn oom_score_adj_is_set() {
    let t = Test::new();
    // Raising is always allowed; lowering needs CAP_SYS_RESOURCE, which this host's bounding
    // set lacks (see bad_input.rs for that failure).
    for adj in [500, 1000] {
        let mut b = t.bundle_for(&t.new_id("o"));
        b.set("/process/oomScoreAdj", json!(adj));
        let f = t.probe(&b);
        assert_eq!(f["oom_score_adj"], adj);
    }
    t.assert_nothing_left();
}

#[test]
fn no_new_privileges_follows_the_config() {
    let t = Test::new();
    for nnp in [true, false] {
        let mut b = t.bundle_for(&t.new_id("n"));
        b.set("/process/noNewPrivileges", json!(nnp));
        let f = t.probe(&b);
        assert_eq!(f["no_new_privs"], i64::from(nnp));
    }
    t.assert_nothing_left();
}

#[test]
fn rootfs_propagation_shared_and_private() {
    let t = Test::new();
    for (prop, shared) in [("shared", true), ("private", false), ("slave", false)] {
        let mut b = t.bundle_for(&t.new_id(prop));
        b.set("/linux/rootfsPropagation", json!(prop));
        let f = t.probe(&b);
        let opt = optional(mount(&f, "/"));
        if shared && !is_sealrun() {
            // runc 1.1.5 applies rootfsPropagation before the rootfs bind only; its "/"
            // ends up private.
            skip_part(&sealrun_only(&format!("{prop} of / ({opt:?})")));
            continue;
        }
        assert_eq!(
            opt.iter().any(|o| o.starts_with("shared:")),
            shared,
            "{prop}: {opt:?}"
        );
    }
    t.assert_nothing_left();
}

#[test]
fn capability_sets_are_exactly_the_config() {
    let t = Test::new();
    let mut b = t.bundle();
    b.set(
        "/process/capabilities",
        json!({
            "bounding": ["CAP_KILL", "CAP_CHOWN", "CAP_NET_RAW", "CAP_SETUID"],
            "effective": ["CAP_KILL", "CAP_CHOWN"],
            "permitted": ["CAP_KILL", "CAP_CHOWN", "CAP_SETUID"],
            "inheritable": ["CAP_KILL", "CAP_SETUID"],
            "ambient": ["CAP_KILL"]
        }),
    );
    let f = t.probe(&b);
    let c = &f["caps"];
    assert_eq!(
        names(&c["bounding"]),
        sorted(&["CAP_KILL", "CAP_CHOWN", "CAP_NET_RAW", "CAP_SETUID"])
    );
    // Root's execve makes the effective set equal to the permitted set (the kernel's rule for
    // uid 0 without SECBIT_NOROOT); the runtime cannot keep a smaller one across exec.
    assert_eq!(names(&c["effective"]), names(&c["permitted"]));
    assert_eq!(
        names(&c["permitted"]),
        sorted(&["CAP_KILL", "CAP_CHOWN", "CAP_SETUID"])
    );
    assert_eq!(
        names(&c["inheritable"]),
        sorted(&["CAP_KILL", "CAP_SETUID"])
    );
    assert_eq!(names(&c["ambient"]), sorted(&["CAP_KILL"]));
    t.assert_nothing_left();
}

#[test]
fn no_capabilities_means_none() {
    let t = Test::new();
    let mut b = t.bundle();
    b.set("/process/capabilities", Value::Null);
    let f = t.probe(&b);
    for set in CAP_SETS {
        assert_eq!(f["caps"][set], json!([]), "{set}");
    }
    t.assert_nothing_left();
}

#[test]
fn non_root_user_keeps_only_ambient_capabilities() {
    let t = Test::new();
    let mut b = t.bundle();
    b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
    b.set(
        "/process/capabilities",
        json!({"bounding": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL", "CAP_CHOWN"],
               "permitted": ["CAP_KILL", "CAP_CHOWN"], "inheritable": ["CAP_KILL"],
               "ambient": ["CAP_KILL"]}),
    );
    b.probe_args(&["write=/etc/passwd"]);
    let f = t.probe(&b);
    assert_eq!(names(&f["caps"]["effective"]), ["CAP_KILL"]);
    assert_eq!(names(&f["caps"]["ambient"]), ["CAP_KILL"]);
    let w = &f["write"]["/etc/passwd"]["errno"];
    assert!(*w == EACCES || *w == EROFS || *w == EPERM, "{w}");
    t.assert_nothing_left();
}

#[test]
fn annotations_appear_in_state() {
    let t = Test::new();
    let id = t.id();
    let mut b = t.sleeper(id);
    let ann = json!({"org.example/key": "value", "a": "1", "empty": ""});
    b.set("/annotations", ann.clone());
    t.create(&b).ok();
    assert_eq!(t.state_json(id)["annotations"], ann);
    t.start(id).ok();
    assert_eq!(t.state_json(id)["annotations"], ann);
    t.delete_force(id).ok();
    t.assert_nothing_left();
}

#[test]
fn a_user_namespace_is_joined_by_path() {
    let t = Test::new();
    let first = t.new_id("userns");
    let mut b = t.sleeper(&first);
    b.user_namespace(300000, 300000, 65536);
    t.run_detached(&b).ok();
    t.wait_status(&first, "running");
    let pid = t.pid_of(&first);
    let mut b2 = t.bundle_for(&t.new_id("joiner"));
    b2.namespace("user", Some(Path::new(&format!("/proc/{pid}/ns/user"))));
    b2.namespace("network", Some(Path::new(&format!("/proc/{pid}/ns/net"))));
    // The joined namespace's maps, repeated in the config (runc requires them; podman writes
    // them).
    for m in ["/linux/uidMappings", "/linux/gidMappings"] {
        b2.set(m, b.config.pointer(m).unwrap().clone());
    }
    b2.probe_args(&["read=/proc/self/uid_map"]);
    let f = t.probe(&b2);
    let want = fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    assert_eq!(
        format!("user:[{}]", f["ns"]["user"]),
        want.to_string_lossy()
    );
    let map = words(&f["read"]["/proc/self/uid_map"]);
    assert_eq!(map, ["0", "300000", "65536"]);
    assert_eq!(f["uid"], json!([0, 0, 0, 0]));
    t.delete_force(&first).ok();
    t.assert_nothing_left();
}
