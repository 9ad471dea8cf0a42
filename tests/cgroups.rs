//! cgroups: resources written and enforced (memory, pids, cpu, cpuset, devices), update,
//! pause/resume, ps, events --stats, the container's membership in every hierarchy, the
//! cgroup mount inside the container, and removal at delete.
//!
//! File names are the v1 ones where the host serves the controller with v1 (this hybrid
//! host), the v2 ones on a pure cgroup2 host.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::{json, Value};

/// A pure cgroup2 host (no v1 controller hierarchies)?
fn pure_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The container's directory for a controller: `/sys/fs/cgroup/<ctl>/<path>` (v1) or
/// `/sys/fs/cgroup/<path>` (v2).
fn dir(t: &Test, id: &str, ctl: &str) -> PathBuf {
    let path = t.cgroups_path(id);
    let rel = path.trim_start_matches('/');
    if pure_v2() {
        Path::new("/sys/fs/cgroup").join(rel)
    } else {
        Path::new("/sys/fs/cgroup").join(ctl).join(rel)
    }
}

/// Read a cgroup file, by its v1 or v2 name depending on the host.
#[track_caller]
fn read(t: &Test, id: &str, ctl: &str, v1: &str, v2: &str) -> String {
    let p = dir(t, id, ctl).join(if pure_v2() { v2 } else { v1 });
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

/// The probe's mounts whose mount point starts with `prefix`.
fn mounts_starting_with<'a>(f: &'a Value, prefix: &str) -> Vec<&'a Value> {
    f["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["mount_point"].as_str().unwrap().starts_with(prefix))
        .collect()
}

fn running(t: &Test, b: &mut Bundle) {
    if b.config["process"]["args"] == json!(["/probe"]) {
        b.args(&["sleep", "1000"]);
    }
    t.run_detached(b).ok();
    t.wait_status(&b.id, "running");
}

#[test]
fn memory_limit_is_written_and_enforced() {
    let t = Test::new();
    let id = t.id();
    let mut b = t.bundle();
    let limit = 32 * 1024 * 1024;
    b.set(
        "/linux/resources/memory",
        json!({"limit": limit, "swap": limit, "reservation": limit / 2}),
    );
    b.add_mount(
        json!({"destination": "/big", "type": "tmpfs", "source": "tmpfs",
        "options": ["size=256m"]}),
    );
    // tmpfs pages are charged to the cgroup and cannot be reclaimed without swap: writing
    // 128 MiB past a 32 MiB limit makes the OOM killer kill something in the container.
    b.sh(
        "echo started; dd if=/dev/zero of=/big/fill bs=1M count=128 2>/dev/null; \
          echo size=$(wc -c < /big/fill)",
    );
    t.create(&b).ok();
    assert_eq!(
        read(&t, id, "memory", "memory.limit_in_bytes", "memory.max"),
        limit.to_string()
    );
    if !pure_v2() {
        assert_eq!(
            read(&t, id, "memory", "memory.soft_limit_in_bytes", "memory.low"),
            (limit / 2).to_string()
        );
    } else {
        skip_part("memory.soft_limit_in_bytes is v1-only (a pure cgroup2 host)");
    }
    t.start(id).ok();
    t.wait_status(id, "stopped");
    let (out, _) = t.output(id);
    assert!(out.contains("started"), "{out}");
    assert!(
        !out.contains("size=134217728"),
        "the memory limit must stop dd: {out}"
    );
    if !pure_v2() {
        let max: u64 = read(&t, id, "memory", "memory.max_usage_in_bytes", "")
            .parse()
            .unwrap();
        assert!(max <= limit, "usage peaked at {max} > {limit}");
        let oom = read(&t, id, "memory", "memory.oom_control", "");
        let kills: u64 = oom
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(
            kills > 0,
            "the OOM killer acted in the container: {oom}\n{out}"
        );
    } else {
        skip_part("max usage and the OOM count are read from v1 memory files: a pure cgroup2 host");
    }
    t.delete(id).ok();
    t.assert_nothing_left();
}

#[test]
fn pids_limit_is_written_and_enforced() {
    let t = Test::new();
    let id = t.id();
    let mut b = t.bundle();
    b.set("/linux/resources/pids", json!({"limit": 8}));
    // The subshell dies at the first failed fork; the outer shell goes on.
    b.sh(
        "(n=0; while [ $n -lt 20 ]; do sleep 1000 & n=$((n+1)); done) 2>/dev/null; \
         echo forked; exec sleep 1000",
    );
    running(&t, &mut b);
    t.wait_output(id, "forked");
    assert_eq!(read(&t, id, "pids", "pids.max", "pids.max"), "8");
    let current: u64 = read(&t, id, "pids", "pids.current", "pids.current")
        .parse()
        .unwrap();
    assert!(
        current <= 8,
        "pids.current {current} stays within the limit"
    );
    let ps = t.rt(&["ps", "--format", "json", id]);
    ps.ok();
    let n = ps.json().as_array().unwrap().len();
    assert!((2..=8).contains(&n), "{n} processes, not 21: {ps}");
    t.delete_force(id).ok();
    t.assert_nothing_left();
}

#[test]
fn cpu_quota_period_and_shares_are_written() {
    let t = Test::new();
    let id = t.id();
    let mut b = t.bundle();
    b.set(
        "/linux/resources/cpu",
        json!({"quota": 50000, "period": 100000, "shares": 512}),
    );
    running(&t, &mut b);
    if pure_v2() {
        assert_eq!(read(&t, id, "cpu", "", "cpu.max"), "50000 100000");
    } else {
        assert_eq!(read(&t, id, "cpu", "cpu.cfs_quota_us", ""), "50000");
        assert_eq!(read(&t, id, "cpu", "cpu.cfs_period_us", ""), "100000");
        assert_eq!(read(&t, id, "cpu", "cpu.shares", ""), "512");
    }
    t.delete_force(id).ok();
    t.assert_nothing_left();
}

#[test]
fn cpuset_is_written_and_applies() {
    let t = Test::new();
    let id = t.id();
    let mut b = t.bundle();
    b.set("/linux/resources/cpu", json!({"cpus": "0", "mems": "0"}));
    b.probe_args(&["read=/proc/self/status"]);
    t.create(&b).ok();
    assert_eq!(read(&t, id, "cpuset", "cpuset.cpus", "cpuset.cpus"), "0");
    assert_eq!(read(&t, id, "cpuset", "cpuset.mems", "cpuset.mems"), "0");
    let f = t.start_probe(id);
    let status = f["read"]["/proc/self/status"].as_str().unwrap();
    let allowed = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim();
    assert_eq!(allowed, "0");
    t.delete(id).ok();
    t.assert_nothing_left();
}

#[test]
fn device_rules_are_written_and_enforced() {
    let t = Test::new();
    let id = t.id();
    let mut b = t.bundle();
    // The host's /dev/kmsg, bind-mounted: the rules allow only mknod (m) on it, so opening it
    // must fail with EPERM from the device controller (the node itself is readable by root).
    b.bind("/dev/kmsg", "/dev/kmsg", &["bind"]);
    b.set(
        "/linux/resources/devices",
        json!([{"allow": false, "access": "rwm"},
               {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "m"}]),
    );
    b.probe_args(&[
        "read=/dev/kmsg",
        "stat=/dev/kmsg",
        "write=/dev/null",
        "read=/dev/zero",
    ]);
    t.create(&b).ok();
    if !pure_v2() {
        let list = read(&t, id, "devices", "devices.list", "");
        let rules: Vec<&str> = list.lines().collect();
        assert!(!rules.contains(&"a *:* rwm"), "deny-all first: {list}");
        assert!(rules.contains(&"c 1:11 m"), "{list}");
        // The default devices stay usable.
        for dev in ["c 1:3 rwm", "c 1:5 rwm", "c 1:9 rwm"] {
            assert!(rules.contains(&dev), "{dev} in {list}");
        }
    } else {
        skip_part("the device rules are read from v1 devices.list: a pure cgroup2 host");
    }
    let f = t.start_probe(id);
    assert_eq!(f["stat"]["/dev/kmsg"]["type"], "char");
    assert_eq!(
        f["read"]["/dev/kmsg"]["errno"], 1,
        "EPERM from the device cgroup"
    );
    assert_eq!(f["write"]["/dev/null"], "ok");
    assert_eq!(f["read"]["/dev/zero"].as_str().unwrap().len(), 4096);
    t.delete(id).ok();
    t.assert_nothing_left();
}

/// Probe `/dev/kmsg` from an `exec` in container `id`: (read, write) results.
fn kmsg_access(t: &Test, id: &str) -> (Value, Value) {
    let out = t.rt(&["exec", id, "/probe", "read=/dev/kmsg", "write=/dev/kmsg"]);
    out.ok();
    let f = out.probe_facts();
    (
        f["read"]["/dev/kmsg"].clone(),
        f["write"]["/dev/kmsg"].clone(),
    )
}

/// A device listed in `linux.devices` is created, but the config's device rules decide whether
/// it may be opened, as in runc: a deny-all config keeps `/dev/kmsg` closed even to a process
/// with CAP_SYSLOG, before and after `update` (sealrun used to append an allow rule for every
/// listed device, after the config's own rules).
#[test]
fn listed_devices_follow_the_configs_device_rules() {
    let t = Test::new();
    let id = t.id();
    let mut b = t.sleeper(id);
    b.set(
        "/linux/devices",
        json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o644}]),
    );
    b.set(
        "/linux/resources/devices",
        json!([{"allow": false, "access": "rwm"}]),
    );
    // CAP_SYSLOG: reading /dev/kmsg is then refused by nothing but the device cgroup.
    let caps = json!([
        "CAP_AUDIT_WRITE",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYSLOG"
    ]);
    for set in ["bounding", "effective", "permitted"] {
        b.set(&format!("/process/capabilities/{set}"), caps.clone());
    }
    running(&t, &mut b);
    if !pure_v2() {
        let list = read(&t, id, "devices", "devices.list", "");
        let opens_kmsg = |l: &str| {
            l.starts_with("c 1:11 ") && l.rsplit(' ').next().unwrap().contains(['r', 'w'])
        };
        assert!(!list.lines().any(opens_kmsg), "{list}");
    } else {
        skip_part("the device rules are read from v1 devices.list: a pure cgroup2 host");
    }
    let (r, w) = kmsg_access(&t, id);
    assert_eq!(
        r["errno"], 1,
        "read /dev/kmsg: EPERM from the device cgroup"
    );
    assert_eq!(
        w["errno"], 1,
        "write /dev/kmsg: EPERM from the device cgroup"
    );
    t.rt(&["update", "--pids-limit", "40", id]).ok();
    let (r, w) = kmsg_access(&t, id);
    assert_eq!(r["errno"], 1, "after update: {r}");
    assert_eq!(w["errno"], 1, "after update: {w}");
    t.delete_force(id).ok();
    t.assert_nothing_left();
}

/// The same listed device opens when the config's rules allow it.
#[test]
fn listed_devices_are_usable_when_the_config_allows_them() {
    let t = Test::new();
    let mut b = t.bundle();
    b.set(
        "/linux/devices",
        json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o644}]),
    );
    b.set(
        "/linux/resources/devices",
        json!([{"allow": false, "access": "rwm"},
               {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "w"}]),
    );
    b.probe_args(&["write=/dev/kmsg", "write=/dev/null"]);
    let f = t.probe(&b);
    assert_eq!(f["write"]["/dev/kmsg"], "ok", "{f}");
    assert_eq!(f["write"]["/dev/null"], "ok", "{f}");
    t.assert_nothing_left();
}

#[test]
fn update_changes_the_limits() {
    let t = Test::new();
    let id = t.id();
    let mut b = t.bundle();
    b.set(
        "/linux/resources",
        json!({"devices": [{"allow": false, "access": "rwm"}],
               "memory": {"limit": 64 * 1024 * 1024},
               "pids": {"limit": 50},
               "cpu": {"quota": 10000, "period": 100000}}),
    );
    running(&t, &mut b);
    t.rt(&[
        "update",
        "--memory",
        "128M",
        "--pids-limit",
        "60",
        "--cpu-quota",
        "20000",
        id,
    ])
    .ok();
    assert_eq!(
        read(&t, id, "memory", "memory.limit_in_bytes", "memory.max"),
        (128 * 1024 * 1024).to_string()
    );
    assert_eq!(read(&t, id, "pids", "pids.max", "pids.max"), "60");
    if !pure_v2() {
        assert_eq!(read(&t, id, "cpu", "cpu.cfs_quota_us", ""), "20000");
    } else {
        skip_part("the v1 cpu quota: a pure cgroup2 host");
    }
    let file = t.path("resources.json");
    fs::write(
        &file,
        json!({"pids": {"limit": 70}, "memory": {"limit": 96 * 1024 * 1024}}).to_string(),
    )
    .unwrap();
    t.rt(&["update", "--resources", file.to_str().unwrap(), id])
        .ok();
    assert_eq!(read(&t, id, "pids", "pids.max", "pids.max"), "70");
    assert_eq!(
        read(&t, id, "memory", "memory.limit_in_bytes", "memory.max"),
        (96 * 1024 * 1024).to_string()
    );
    assert_eq!(t.status(id), "running");
    t.delete_force(id).ok();
    t.assert_nothing_left();
}

#[test]
fn update_with_a_bad_value_changes_nothing() {
    let t = Test::new();
    let id = t.id();
    let mut b = t.bundle();
    b.set("/linux/resources/pids", json!({"limit": 50}));
    running(&t, &mut b);
    let out = t.rt(&["update", "--cpuset-cpus", "99", id]);
    out.failed();
    assert_eq!(read(&t, id, "pids", "pids.max", "pids.max"), "50");
    assert_eq!(t.status(id), "running");
    t.delete_force(id).ok();
    t.assert_nothing_left();
}

#[test]
fn pause_and_resume() {
    let t = Test::new();
    let id = t.id();
    let mut b = t.bundle();
    b.sh("sleep 1000 & echo ready; wait");
    running(&t, &mut b);
    t.wait_output(id, "ready");
    t.rt(&["pause", id]).ok();
    assert_eq!(t.status(id), "paused");
    if !pure_v2() {
        assert_eq!(
            read(&t, id, "freezer", "freezer.state", ""),
            "FROZEN",
            "frozen through the v1 freezer"
        );
    } else {
        skip_part("the v1 freezer state: a pure cgroup2 host");
    }
    let pid = t.pid_of(id);
    let state = host::proc_stat(pid).map(|(s, _)| s).unwrap();
    assert!(
        matches!(state, 'D' | 'S' | 'T'),
        "a frozen process is not running: {state}"
    );
    // A paused container cannot be paused again or deleted without --force.
    t.rt(&["pause", id]).error_line(&[id]);
    t.delete(id).error_line(&[id]);
    t.rt(&["resume", id]).ok();
    assert_eq!(t.status(id), "running");
    if !pure_v2() {
        assert_eq!(read(&t, id, "freezer", "freezer.state", ""), "THAWED");
    } else {
        skip_part("the v1 freezer state: a pure cgroup2 host");
    }
    t.rt(&["resume", id]).error_line(&[id]);
    t.delete_force(id).ok();
    t.assert_nothing_left();
}

#[test]
fn delete_force_of_a_paused_container() {
    let t = Test::new();
    let id = t.id();
    let mut b = t.bundle();
    running(&t, &mut b);
    t.rt(&["pause", id]).ok();
    t.delete_force(id).ok();
    t.assert_nothing_left();
}

#[test]
fn ps_lists_the_containers_processes() {
    let t = Test::new();
    let id = t.id();
    let mut b = t.bundle();
    b.sh("sleep 1000 & sleep 1001 & echo ready; wait");
    running(&t, &mut b);
    t.wait_output(id, "ready");
    let pid = t.pid_of(id);
    let out = t.rt(&["ps", "--format", "json", id]);
    out.ok();
    let mut pids: Vec<i64> = out
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_i64().unwrap())
        .collect();
    pids.sort();
    assert_eq!(pids.len(), 3, "sh and two sleeps: {out}");
    assert!(pids.contains(&(pid as i64)), "{out}");
    for p in &pids {
        let cmd = fs::read_to_string(format!("/proc/{p}/cmdline")).unwrap();
        let argv0 = cmd.split('\0').next().unwrap();
        assert!(argv0.ends_with("sh") || argv0 == "sleep", "{cmd:?}");
    }
    let table = t.rt(&["ps", id]);
    table.ok();
    let mut lines = table.stdout.lines();
    assert!(lines.next().unwrap().contains("PID"), "{table}");
    assert_eq!(lines.count(), 3, "{table}");
    t.delete_force(id).ok();
    t.assert_nothing_left();
}

#[test]
fn events_stats_reports_usage() {
    let t = Test::new();
    let id = t.id();
    let mut b = t.bundle();
    b.set("/linux/resources/pids", json!({"limit": 100}));
    b.sh("sleep 1000 & echo ready; wait");
    running(&t, &mut b);
    t.wait_output(id, "ready");
    let out = t.rt(&["events", "--stats", id]);
    out.ok();
    let v: Value = serde_json::from_str(out.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(v["type"], "stats", "{v}");
    assert_eq!(v["id"], id, "{v}");
    let d = &v["data"];
    assert_eq!(d["pids"]["current"], 2, "{d}");
    assert_eq!(d["pids"]["limit"], 100, "{d}");
    assert!(d["memory"]["usage"]["usage"].as_u64().unwrap() > 0, "{d}");
    assert!(d["cpu"]["usage"]["total"].as_u64().is_some(), "{d}");
    t.delete_force(id).ok();
    t.assert_nothing_left();
}

#[test]
fn the_container_joins_its_cgroup_in_every_hierarchy() {
    let t = Test::new();
    let id = t.id();
    let mut b = t.bundle();
    running(&t, &mut b);
    let pid = t.pid_of(id);
    let lines = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let want = t.cgroups_path(id);
    for l in lines.lines() {
        let path = l.splitn(3, ':').nth(2).unwrap();
        assert_eq!(path, want, "every hierarchy: {lines}");
    }
    for h in host::cgroup_hierarchies() {
        let d = h.join(want.trim_start_matches('/'));
        let procs = fs::read_to_string(d.join("cgroup.procs"))
            .unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        assert!(
            procs.lines().any(|p| p.trim() == pid.to_string()),
            "{pid} in {}",
            d.display()
        );
    }
    t.delete_force(id).ok();
    t.assert_nothing_left();
}

#[test]
fn delete_removes_the_cgroup_directories() {
    let t = Test::new();
    let id = t.id();
    let mut b = t.bundle();
    b.set("/linux/resources/pids", json!({"limit": 10}));
    running(&t, &mut b);
    let dirs: Vec<PathBuf> = host::cgroup_hierarchies()
        .iter()
        .map(|h| h.join(t.cgroups_path(id).trim_start_matches('/')))
        .collect();
    assert!(dirs.iter().all(|d| d.is_dir()), "{dirs:?}");
    t.delete_force(id).ok();
    for d in &dirs {
        assert!(!d.exists(), "{} removed", d.display());
    }
    if is_sealrun() {
        // sealrun also removes the parents it created (runc leaves them).
        assert!(host::cgroup_dirs(&t.cgroup_parent).is_empty());
    }
    t.assert_nothing_left();
}

#[test]
fn a_failed_create_removes_the_cgroup() {
    let t = Test::new();
    let mut b = t.bundle();
    b.set("/linux/resources/cpu", json!({"cpus": "99"}));
    let out = t.create(&b);
    out.error_line(&["cpus"]);
    t.assert_nothing_left();
    assert!(
        host::cgroup_dirs(&t.cgroups_path(t.id())).is_empty(),
        "no cgroup directory left"
    );
}

#[test]
fn cgroup_mount_shows_the_containers_cgroups_read_only() {
    let t = Test::new();
    let mut b = t.bundle();
    b.probe_args(&["ls=/sys/fs/cgroup", "write=/sys/fs/cgroup/x"]);
    let f = t.probe(&b);
    let mounts = mounts_starting_with(&f, "/sys/fs/cgroup/");
    assert!(
        !mounts.is_empty(),
        "cgroup hierarchies under /sys/fs/cgroup"
    );
    for m in &mounts {
        assert!(m["fstype"] == "cgroup" || m["fstype"] == "cgroup2", "{m}");
        assert!(
            m["options"].as_str().unwrap().split(',').any(|o| o == "ro"),
            "{m}"
        );
    }
    if !pure_v2() {
        let ls = f["ls"]["/sys/fs/cgroup"].as_array().unwrap();
        for ctl in ["memory", "pids", "cpu", "devices", "freezer"] {
            assert!(ls.contains(&json!(ctl)), "{ctl} in {ls:?}");
        }
    } else {
        skip_part("the v1 controller mounts inside the container: a pure cgroup2 host");
    }
    t.assert_nothing_left();
}

#[test]
fn cgroup_mount_matches_runc() {
    let t = Test::new();
    let sealrun = PathBuf::from(env!("CARGO_BIN_EXE_sealrun"));
    let runc = which("runc").expect("runc is required");
    let mut seen = Vec::new();
    for rt in [sealrun, runc] {
        let mut b = t.bundle_for(&t.new_id("m"));
        b.probe_args(&["ls=/sys/fs/cgroup"]);
        let f = t.probe_with(&rt, &b);
        let mut points: Vec<(String, String)> = mounts_starting_with(&f, "/sys/fs/cgroup")
            .into_iter()
            .map(|m| {
                (
                    m["mount_point"].as_str().unwrap().to_string(),
                    m["fstype"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        points.sort();
        points.dedup();
        let mut ls = f["ls"]["/sys/fs/cgroup"].as_array().unwrap().clone();
        // sealrun also mounts the host's cgroup2 hierarchy (hybrid hosts); runc 1.1.5 does
        // not.
        points.retain(|(p, _)| p != "/sys/fs/cgroup/unified");
        ls.retain(|e| e != "unified");
        seen.push((points, ls));
    }
    assert_eq!(seen[0], seen[1], "sealrun (left) vs runc (right)");
    t.assert_nothing_left();
}

/// A block device of this host as `major:minor` (throttles need a real device).
fn some_block_device() -> (i64, i64) {
    let mut names: Vec<_> = fs::read_dir("/sys/block")
        .expect("/sys/block")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("loop") && !n.starts_with("ram"))
        .collect();
    names.sort();
    let name = names.first().expect("no block device on this host");
    let dev = fs::read_to_string(format!("/sys/block/{name}/dev")).expect("dev");
    let (major, minor) = dev.trim().split_once(':').expect("major:minor");
    (major.parse().expect("major"), minor.parse().expect("minor"))
}

#[test]
fn blkio_weight_and_throttles_are_written() {
    let t = Test::new();
    let id = t.id();
    let (major, minor) = some_block_device();
    let mut b = t.bundle();
    b.set(
        "/linux/resources/blockIO",
        json!({"weight": 500,
               "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
               "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 120}]}),
    );
    running(&t, &mut b);
    if pure_v2() {
        let max = read(&t, id, "io", "", "io.max");
        assert!(
            max.contains(&format!(
                "{major}:{minor} rbps=1048576 wbps=max riops=max wiops=120"
            )),
            "{max}"
        );
    } else {
        let weight = ["blkio.bfq.weight", "blkio.weight"]
            .iter()
            .map(|f| dir(&t, id, "blkio").join(f))
            .find(|p| p.exists())
            .expect("a blkio weight file");
        let weight = fs::read_to_string(&weight).unwrap_or_default();
        assert!(
            weight.lines().any(|l| l.trim().ends_with("500")),
            "{weight}"
        );
        assert_eq!(
            read(&t, id, "blkio", "blkio.throttle.read_bps_device", ""),
            format!("{major}:{minor} 1048576")
        );
        assert_eq!(
            read(&t, id, "blkio", "blkio.throttle.write_iops_device", ""),
            format!("{major}:{minor} 120")
        );
    }
    t.delete_force(id).ok();
    t.assert_nothing_left();
}

/// hugetlb lives only in the cgroup2 hierarchy on a hybrid host; enabling it there writes the
/// root's `cgroup.subtree_control`, a host setting this test checks before and restores after.
#[test]
fn hugetlb_limit_is_written() {
    if !is_sealrun() && !pure_v2() {
        // runc 1.1.5 looks for a v1 hugetlb hierarchy, which this hybrid host does not mount.
        return skip(&sealrun_only(
            "hugetlb limits on a hybrid host (runc wants v1 hugetlb)",
        ));
    }
    let root = if pure_v2() {
        "/sys/fs/cgroup"
    } else {
        "/sys/fs/cgroup/unified"
    };
    let controllers = fs::read_to_string(format!("{root}/cgroup.controllers")).unwrap_or_default();
    assert!(
        controllers.split_whitespace().any(|c| c == "hugetlb"),
        "this host's cgroup2 has no hugetlb controller: {controllers:?}"
    );
    let control = format!("{root}/cgroup.subtree_control");
    let before = fs::read_to_string(&control).expect("subtree_control");
    // Restores the host setting even when an assertion below fails.
    struct Restore<'a>(&'a str, bool);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            if !self.1 {
                let _ = fs::write(self.0, "-hugetlb");
            }
        }
    }
    let restore = Restore(&control, before.split_whitespace().any(|c| c == "hugetlb"));
    {
        let t = Test::new();
        let id = t.id();
        let mut b = t.bundle();
        b.set(
            "/linux/resources/hugepageLimits",
            json!([{"pageSize": "2MB", "limit": 4194304}]),
        );
        running(&t, &mut b);
        let file = Path::new(root)
            .join(t.cgroups_path(id).trim_start_matches('/'))
            .join("hugetlb.2MB.max");
        let value = fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(value.trim(), "4194304");
        t.delete_force(id).ok();
        t.assert_nothing_left();
    }
    drop(restore);
    assert_eq!(
        fs::read_to_string(&control).expect("subtree_control"),
        before
    );
}
