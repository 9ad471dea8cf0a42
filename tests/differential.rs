//! Differential: the same busybox bundle (runc-spec-style config) under sealrun and under runc,
//! section by section, comparing what the probe sees. Always runs both binaries, whatever
//! `SEALRUN_TEST_RUNTIME` says; runc missing is a failure, not a skip.
//!
//! Known, intended differences are normalised explicitly (and nowhere else):
//! - runc adds `HOME` to the environment when the config has none; sealrun uses exactly
//!   `process.env`.
//! - runc 1.1.5 ignores `domainname` (not set in these configs).

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::*;
use serde_json::{json, Value};

fn sealrun() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sealrun"))
}

fn runc() -> PathBuf {
    which("runc").expect("runc is required for the differential tests (Debian package runc)")
}

/// Run the same config under both runtimes (two bundles, two ids); returns (sealrun, runc).
fn both(t: &Test, tweak: impl Fn(&mut Bundle)) -> (Value, Value) {
    let mut facts = Vec::new();
    for (rt, tag) in [(sealrun(), "sealrun"), (runc(), "runc")] {
        let mut b = t.bundle_for(&t.new_id(tag));
        tweak(&mut b);
        facts.push(t.probe_with(&rt, &b));
    }
    let r = facts.pop().unwrap();
    let s = facts.pop().unwrap();
    (s, r)
}

/// Collects mismatches and fails with all of them at once.
#[derive(Default)]
struct Diff(Vec<String>);

impl Diff {
    fn eq(&mut self, what: &str, s: &Value, r: &Value) {
        if s != r {
            self.0
                .push(format!("{what}:\n  sealrun: {s}\n  runc:    {r}"));
        }
    }

    /// Compare the capability `sets` (as sorted lists of names).
    fn caps(&mut self, s: &Value, r: &Value, sets: &[&str]) {
        for set in sets {
            self.eq(
                &format!("caps.{set}"),
                &sorted_strings(&s["caps"][set]),
                &sorted_strings(&r["caps"][set]),
            );
        }
    }

    #[track_caller]
    fn check(self) {
        assert!(
            self.0.is_empty(),
            "sealrun and runc differ:\n{}",
            self.0.join("\n")
        );
    }
}

fn sorted_strings(v: &Value) -> Value {
    let mut a: Vec<String> = v
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .map(|x| match x {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    a.sort();
    json!(a)
}

/// Mounts as comparable facts: mount point -> (fstype, per-mount flags sorted, propagation
/// kind, and the filesystem options that carry meaning).
fn mount_facts(f: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for m in f["mounts"].as_array().unwrap() {
        let mp = m["mount_point"].as_str().unwrap().to_string();
        let mut opts: Vec<&str> = m["options"].as_str().unwrap().split(',').collect();
        opts.sort();
        let keep = ["mode=", "size=", "gid=", "ptmxmode=", "uid="];
        let mut sup: Vec<&str> = m["super_options"]
            .as_str()
            .unwrap()
            .split(',')
            .filter(|o| keep.iter().any(|k| o.starts_with(k)) || *o == "ro")
            .collect();
        sup.sort();
        let prop: Vec<String> = m["optional"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let o = o.as_str().unwrap();
                o.split(':').next().unwrap().to_string()
            })
            .collect();
        // The last entry for a mount point is the visible one.
        out.insert(
            mp,
            json!({"fstype": m["fstype"], "options": opts, "fs": sup, "propagation": prop}),
        );
    }
    Value::Object(out)
}

fn ns_new(f: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for kind in ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"] {
        out.insert(kind.into(), json!(f["ns"][kind] != host_ns(kind)));
    }
    Value::Object(out)
}

#[test]
fn runc_is_installed() {
    let out = std::process::Command::new(runc())
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("runc version"));
}

#[test]
fn process_section_matches() {
    let t = Test::new();
    let (s, r) = both(&t, |b| {
        b.set(
            "/process/user",
            json!({"uid": 1000, "gid": 1000, "additionalGids": [100, 5], "umask": 0o027}),
        );
        b.set(
            "/process/env",
            json!(["PATH=/bin:/usr/bin", "LANG=C", "X=with spaces"]),
        );
        b.set("/process/cwd", json!("/tmp"));
        b.args(&["/probe", "a b", "c"]);
        b.set(
            "/process/rlimits",
            json!([{"type": "RLIMIT_NOFILE", "soft": 256, "hard": 512},
                   {"type": "RLIMIT_NPROC", "soft": 100, "hard": 200},
                   {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]),
        );
        b.set("/process/oomScoreAdj", json!(123));
        b.set("/process/noNewPrivileges", json!(true));
        b.set(
            "/process/capabilities",
            json!({"bounding": ["CAP_KILL", "CAP_CHOWN", "CAP_NET_RAW"],
                   "effective": ["CAP_KILL", "CAP_CHOWN"],
                   "permitted": ["CAP_KILL", "CAP_CHOWN"],
                   "inheritable": ["CAP_KILL"],
                   "ambient": ["CAP_KILL"]}),
        );
    });
    let mut d = Diff::default();
    for k in [
        "uid",
        "gid",
        "umask",
        "cwd",
        "args",
        "rlimits",
        "oom_score_adj",
        "no_new_privs",
        "seccomp",
        "pid",
        "ppid",
    ] {
        d.eq(k, &s[k], &r[k]);
    }
    d.eq(
        "groups",
        &sorted_strings(&s["groups"]),
        &sorted_strings(&r["groups"]),
    );
    d.caps(&s, &r, &CAP_SETS);
    // Both add HOME from the container's /etc/passwd when process.env lacks it.
    d.eq(
        "env",
        &sorted_strings(&s["env"]),
        &sorted_strings(&r["env"]),
    );
    let keys = |f: &Value| json!(f["fds"].as_object().unwrap().keys().collect::<Vec<_>>());
    d.eq("open fds", &keys(&s), &keys(&r));
    d.check();
    t.assert_nothing_left();
}

#[test]
fn root_user_process_matches() {
    let t = Test::new();
    let (s, r) = both(&t, |_| {});
    let mut d = Diff::default();
    for k in [
        "uid",
        "gid",
        "groups",
        "umask",
        "cwd",
        "args",
        "no_new_privs",
        "seccomp",
    ] {
        d.eq(k, &s[k], &r[k]);
    }
    d.caps(&s, &r, &CAP_SETS);
    d.eq("rlimits", &s["rlimits"], &r["rlimits"]);
    d.eq("hostname", &s["hostname"], &r["hostname"]);
    d.check();
    t.assert_nothing_left();
}

#[test]
fn namespaces_match() {
    let t = Test::new();
    let (s, r) = both(&t, |b| {
        b.namespace("cgroup", None);
    });
    let mut d = Diff::default();
    d.eq("new namespaces", &ns_new(&s), &ns_new(&r));
    d.check();
    t.assert_nothing_left();
}

#[test]
fn user_namespace_matches() {
    let t = Test::new();
    let (s, r) = both(&t, |b| {
        b.user_namespace(100000, 100000, 65536);
        b.probe_args(&[
            "read=/proc/self/uid_map",
            "read=/proc/self/gid_map",
            "read=/proc/self/setgroups",
            "stat=/etc/passwd",
            "stat=/dev/null",
        ]);
    });
    let mut d = Diff::default();
    d.eq("new namespaces", &ns_new(&s), &ns_new(&r));
    for k in ["uid", "gid", "groups"] {
        d.eq(k, &s[k], &r[k]);
    }
    let norm = |v: &Value| {
        json!(v
            .as_str()
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>())
    };
    for p in [
        "/proc/self/uid_map",
        "/proc/self/gid_map",
        "/proc/self/setgroups",
    ] {
        d.eq(p, &norm(&s["read"][p]), &norm(&r["read"][p]));
    }
    for p in ["/etc/passwd", "/dev/null"] {
        d.eq(p, &s["stat"][p], &r["stat"][p]);
    }
    d.caps(&s, &r, &["bounding", "effective", "permitted"]);
    d.check();
    t.assert_nothing_left();
}

#[test]
fn mounts_match() {
    let t = Test::new();
    let host = t.path("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("f"), "x").unwrap();
    let (s, r) = both(&t, |b| {
        b.add_mount(
            json!({"destination": "/mnt/tmp", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "nodev", "noexec", "size=2m", "mode=750"]}),
        );
        b.bind("/mnt/ro", &host, &["rbind", "ro", "nosuid"]);
        b.bind("/mnt/shared", &host, &["rbind", "rshared"]);
    });
    let (sm, rm) = (mount_facts(&s), mount_facts(&r));
    let mut d = Diff::default();
    let points =
        |m: &Value| -> BTreeSet<String> { m.as_object().unwrap().keys().cloned().collect() };
    // /sys/fs/cgroup and below belong to the cgroup mount: compared in tests/cgroups.rs.
    let not_cgroup = |p: &String| !p.starts_with("/sys/fs/cgroup");
    let sp: BTreeSet<String> = points(&sm).into_iter().filter(not_cgroup).collect();
    let rp: BTreeSet<String> = points(&rm).into_iter().filter(not_cgroup).collect();
    d.eq("mount points", &json!(sp), &json!(rp));
    for p in sp.intersection(&rp) {
        d.eq(&format!("mount {p}"), &sm[p], &rm[p]);
    }
    d.check();
    t.assert_nothing_left();
}

#[test]
fn dev_matches() {
    let t = Test::new();
    let devs = [
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
        "/dev/ptmx",
        "/dev/fd",
        "/dev/stdin",
        "/dev/stdout",
        "/dev/stderr",
        "/dev/console",
        "/dev/pts/ptmx",
        "/dev/shm",
        "/dev/mqueue",
        "/dev/mynull",
    ];
    let (s, r) = both(&t, |b| {
        b.set(
            "/linux/devices",
            json!([{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3,
                    "fileMode": 0o600, "uid": 0, "gid": 0}]),
        );
        let mut req: Vec<String> = devs.iter().map(|p| format!("stat={p}")).collect();
        req.push("ls=/dev".into());
        req.push("ls=/dev/pts".into());
        let req: Vec<&str> = req.iter().map(String::as_str).collect();
        b.probe_args(&req);
    });
    let mut d = Diff::default();
    d.eq("ls /dev", &s["ls"]["/dev"], &r["ls"]["/dev"]);
    d.eq("ls /dev/pts", &s["ls"]["/dev/pts"], &r["ls"]["/dev/pts"]);
    for p in devs {
        d.eq(p, &s["stat"][p], &r["stat"][p]);
    }
    d.check();
    t.assert_nothing_left();
}

#[test]
fn masked_and_readonly_paths_match() {
    let t = Test::new();
    let paths = [
        "/proc/acpi",
        "/proc/keys",
        "/proc/timer_list",
        "/sys/firmware",
        "/proc/sys",
        "/proc/sysrq-trigger",
        "/proc/bus",
        "/proc/irq",
    ];
    let (s, r) = both(&t, |b| {
        let mut req = Vec::new();
        for p in paths {
            req.push(format!("stat={p}"));
            req.push(format!("read={p}"));
            req.push(format!("ls={p}"));
        }
        req.push("write=/proc/sys/kernel/hostname".into());
        req.push("write=/proc/sysrq-trigger".into());
        let req: Vec<&str> = req.iter().map(String::as_str).collect();
        b.probe_args(&req);
    });
    let mut d = Diff::default();
    for p in paths {
        let strip = |v: &Value| {
            // Timestamps of masking tmpfs dirs are not facts; type, mode, ids and rdev are.
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                o.remove("link");
            }
            v
        };
        d.eq(
            &format!("stat {p}"),
            &strip(&s["stat"][p]),
            &strip(&r["stat"][p]),
        );
        d.eq(&format!("read {p}"), &s["read"][p], &r["read"][p]);
        d.eq(&format!("ls {p}"), &s["ls"][p], &r["ls"][p]);
    }
    for p in ["/proc/sys/kernel/hostname", "/proc/sysrq-trigger"] {
        d.eq(&format!("write {p}"), &s["write"][p], &r["write"][p]);
    }
    d.check();
    t.assert_nothing_left();
}

#[test]
fn uts_and_sysctl_match() {
    let t = Test::new();
    let (s, r) = both(&t, |b| {
        b.set("/hostname", json!("diff-host"));
        b.set(
            "/linux/sysctl",
            json!({"net.ipv4.ip_forward": "1", "kernel.shmmni": "1000",
                   "net.ipv4.conf.all.rp_filter": "2"}),
        );
        b.probe_args(&[
            "sysctl=net.ipv4.ip_forward",
            "sysctl=kernel.shmmni",
            "sysctl=net.ipv4.conf.all.rp_filter",
        ]);
    });
    let mut d = Diff::default();
    d.eq("hostname", &s["hostname"], &r["hostname"]);
    d.eq("sysctl", &s["sysctl"], &r["sysctl"]);
    d.check();
    t.assert_nothing_left();
}

#[test]
fn root_filesystem_matches() {
    let t = Test::new();
    for readonly in [true, false] {
        let (s, r) = both(&t, |b| {
            b.set("/root/readonly", json!(readonly));
            b.probe_args(&["write=/newfile", "stat=/", "ls=/"]);
        });
        let mut d = Diff::default();
        d.eq(
            "write /newfile",
            &s["write"]["/newfile"],
            &r["write"]["/newfile"],
        );
        d.eq("ls /", &s["ls"]["/"], &r["ls"]["/"]);
        let root = |f: &Value| mount_facts(f)["/"].clone();
        d.eq("mount /", &root(&s), &root(&r));
        d.check();
    }
    t.assert_nothing_left();
}

#[test]
fn exit_codes_match() {
    let t = Test::new();
    for script in ["exit 0", "exit 7", "kill -9 $$", "kill -15 $$"] {
        let mut codes = Vec::new();
        for rt in [sealrun(), runc()] {
            let id = t.new_id("x");
            let mut b = t.bundle_for(&id);
            b.remove_namespace("pid");
            b.sh(script);
            b.write();
            let dir = b.dir.to_string_lossy().into_owned();
            let (out, _, _) = t.exec(t.command_with(&rt, &[], &["run", "--bundle", &dir, &id]));
            codes.push(out.code());
        }
        assert_eq!(codes[0], codes[1], "{script}: sealrun vs runc");
    }
    t.assert_nothing_left();
}
