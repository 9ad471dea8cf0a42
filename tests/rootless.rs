//! Rootless containers: the runtime run by a real unprivileged user (`sealrun-rl`, created by
//! scripts/test with its /etc/subuid and /etc/subgid lines) through `setpriv`, on a bundle the
//! user owns, with `XDG_RUNTIME_DIR` a 0700 directory of its own. Every layer stays on: the
//! probe reads seccomp mode 2, no_new_privs 1 and the uid map; a host directory fd handed to
//! the container is useless with Landlock on and works with it off; bad mappings and resources
//! that need a cgroup are one error naming the field, with nothing left behind.

#[path = "common/attack.rs"]
mod attack;
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::{json, Value};

/// The test user scripts/test creates.
const USER: &str = "sealrun-rl";

/// The user's uid and gid, or why rootless tests cannot run here.
fn user() -> Result<(u32, u32), String> {
    let out = Command::new("getent")
        .args(["passwd", USER])
        .output()
        .map_err(|e| format!("getent: {e}"))?;
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    let f: Vec<&str> = line.trim().split(':').collect();
    match (f.get(2), f.get(3)) {
        (Some(u), Some(g)) => Ok((
            u.parse().map_err(|_| "bad uid".to_string())?,
            g.parse().map_err(|_| "bad gid".to_string())?,
        )),
        _ => Err(format!(
            "no user {USER} (scripts/test creates it: useradd -m {USER})"
        )),
    }
}

/// A test whose runtime calls run as the unprivileged user.
struct Rootless {
    t: Test,
    uid: u32,
    gid: u32,
    xdg: PathBuf,
}

impl Rootless {
    /// `None` (skipped, with the reason) when rootless tests cannot run here.
    fn new() -> Option<Rootless> {
        if !is_sealrun() {
            skip(&sealrun_only("rootless tests use sealrun's audit record"));
            return None;
        }
        let (uid, gid) = match user() {
            Ok(ids) => ids,
            Err(why) => {
                skip(&why);
                return None;
            }
        };
        if which("setpriv").is_none() {
            skip("setpriv (util-linux) is not installed");
            return None;
        }
        let t = Test::new();
        let xdg = t.path("xdg");
        std::fs::create_dir_all(&xdg).expect("mkdir xdg");
        // The runtime where the user can run it: the build tree may be closed to others (a
        // clone under /root).
        std::fs::create_dir_all(t.path("bin")).expect("mkdir bin");
        std::fs::copy(runtime(), t.path("bin/sealrun")).expect("copy the runtime");
        Some(Rootless { t, uid, gid, xdg })
    }

    /// Hand the test directory (bundles, log, xdg) to the user, after the bundles are made.
    fn chown(&self) {
        let st = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", self.uid, self.gid))
            .arg(&self.t.dir)
            .status()
            .expect("chown");
        assert!(st.success(), "chown -R {}", self.t.dir.display());
        std::fs::set_permissions(
            &self.xdg,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("chmod xdg");
    }

    /// `cmd` (a runtime command from [`Test::command`]) as the user, running the user's copy
    /// of the runtime.
    fn as_user(&self, cmd: &Command) -> Command {
        let program = Path::new(cmd.get_program());
        let program = if program == runtime() || program == Path::new(env!("CARGO_BIN_EXE_sealrun"))
        {
            self.t.path("bin/sealrun")
        } else {
            program.to_path_buf()
        };
        let mut c = Command::new(which("setpriv").expect("setpriv"));
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .arg("--")
            .arg(program)
            .args(cmd.get_args())
            .env("XDG_RUNTIME_DIR", &self.xdg)
            .env("HOME", &self.t.dir)
            .stdin(std::process::Stdio::null());
        for (k, v) in cmd.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        c
    }

    /// The runtime with `global` flags and `args`, as the user.
    fn rt_global(&self, global: &[&str], args: &[&str]) -> Out {
        self.t.exec(self.as_user(&self.t.command(global, args))).0
    }

    fn rt(&self, args: &[&str]) -> Out {
        self.rt_global(&[], args)
    }

    /// A bundle for a rootless container, configured by `sealrun spec --rootless` run as the
    /// user (its own ids mapped to 0, the default seccomp profile, /sys bind-mounted, no
    /// cgroup mount or resources), made non-interactive: terminal off, args `["/probe"]`.
    fn bundle(&self, id: &str) -> Bundle {
        let mut b = self.t.bundle_for(id);
        self.chown();
        let dir = b.dir.to_string_lossy().into_owned();
        let mut spec = Command::new(env!("CARGO_BIN_EXE_sealrun"));
        spec.args(["spec", "--rootless", "--bundle", &dir]);
        self.t.exec(self.as_user(&spec)).0.ok();
        let text = std::fs::read_to_string(b.dir.join("config.json")).expect("read spec");
        b.config = serde_json::from_str(&text).expect("spec is JSON");
        b.config["process"]["terminal"] = json!(false);
        b.config["process"]["args"] = json!(["/probe"]);
        b
    }

    /// `run` in the foreground as the user (config written, everything chowned first).
    fn run_with(&self, global: &[&str], b: &Bundle, extra: &[&str]) -> Out {
        b.write();
        self.chown();
        let dir = b.dir.to_string_lossy().into_owned();
        let mut args = vec!["run", "--bundle", &dir];
        args.extend_from_slice(extra);
        args.push(&b.id);
        self.rt_global(global, &args)
    }
}

fn map_lines(text: &str) -> Vec<Vec<u64>> {
    text.lines()
        .map(|l| {
            l.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .collect()
}

#[test]
fn rootless_container_keeps_every_layer() {
    let Some(r) = Rootless::new() else { return };
    let mut b = r.bundle(r.t.id());
    b.probe_args(&["read=/proc/self/uid_map", "read=/proc/self/gid_map"]);
    let out = r.run_with(&[], &b, &[]);
    out.ok();
    let facts = out.probe_facts();
    assert_eq!(facts["seccomp"], 2, "{facts}");
    assert_eq!(facts["no_new_privs"], 1, "{facts}");
    assert_eq!(facts["uid"], json!([0, 0, 0, 0]), "{facts}");
    assert_ne!(facts["ns"]["user"], host_ns("user"), "{facts}");
    let uid_map = facts["read"]["/proc/self/uid_map"].as_str().unwrap_or("");
    assert_eq!(map_lines(uid_map), [[0, u64::from(r.uid), 1]], "{facts}");
    let gid_map = facts["read"]["/proc/self/gid_map"].as_str().unwrap_or("");
    assert_eq!(map_lines(gid_map), [[0, u64::from(r.gid), 1]], "{facts}");
    // The audit record (from the log the user wrote) says rootless, with every layer on.
    let report = Report::read(&r.t.log);
    let rec = report.protections(r.t.id()).expect("audit record logged");
    assert_eq!(rec["rootless"], true, "{rec}");
    assert_eq!(rec["sealed_exe"], "sealed", "{rec}");
    assert_eq!(rec["seccomp"]["mode"], 2, "{rec}");
    assert_eq!(rec["landlock"]["enforced"], true, "{rec}");
    assert_eq!(rec["disabled_layers"], json!([]), "{rec}");
    // The state root defaults to $XDG_RUNTIME_DIR/sealrun, 0700, the user's.
    let default_root = r.xdg.join("sealrun");
    let id2 = r.t.new_id("xdg");
    let b2 = r.bundle(&id2);
    b2.write();
    r.chown();
    let mut c = Command::new(runtime());
    c.arg("run")
        .arg("--bundle")
        .arg(&b2.dir)
        .arg(&id2)
        .env("SEALRUN_TEST_MARK", &r.t.mark);
    r.t.exec(r.as_user(&c)).0.ok();
    let meta = std::fs::metadata(&default_root).expect("default root created");
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    assert_eq!(meta.uid(), r.uid);
    assert!(!default_root.join(&id2).exists(), "run removed its state");
    r.t.assert_nothing_left();
}

#[test]
fn rootless_lifecycle_commands() {
    let Some(r) = Rootless::new() else { return };
    let id = r.t.id().to_string();
    let mut b = r.bundle(&id);
    b.args(&["sleep", "1000"]);
    b.write();
    r.chown();
    let dir = b.dir.to_string_lossy().into_owned();
    r.rt(&["create", "--bundle", &dir, &id]).ok();
    assert_eq!(r.rt(&["state", &id]).ok().json()["status"], "created");
    r.rt(&["start", &id]).ok();
    let st = r.rt(&["state", &id]).ok().json();
    assert_eq!(st["status"], "running", "{st}");
    let pid = st["pid"].as_i64().expect("pid") as i32;
    r.t.track_pid(pid);
    let listed = r.rt(&["list", "--format", "json"]).ok().json();
    assert_eq!(listed[0]["id"], id.as_str(), "{listed}");
    let ps: Value = r.rt(&["ps", "--format", "json", &id]).ok().json();
    assert_eq!(
        ps,
        json!([pid]),
        "ps without a cgroup: the pid namespace's processes"
    );
    // exec joins every namespace, the pid namespace through a fork in the helper.
    let ex = r.rt(&[
        "exec",
        &id,
        "sh",
        "-c",
        "echo $$; id -u; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status",
    ]);
    ex.ok();
    let lines: Vec<&str> = ex.stdout.lines().collect();
    assert!(lines[0].parse::<i32>().is_ok_and(|p| p > 1), "{ex}");
    assert_eq!(lines[1], "0", "{ex}");
    assert!(
        ex.stdout.contains("Seccomp:\t2") && ex.stdout.contains("NoNewPrivs:\t1"),
        "{ex}"
    );
    // No delegated cgroup: no freezer, said once.
    r.rt(&["pause", &id])
        .error_line(&["pause", &id, "no cgroup"]);
    r.rt(&["events", "--stats", &id]).ok();
    r.rt(&["kill", &id, "KILL"]).ok();
    r.t.wait_status(&id, "stopped");
    r.rt(&["delete", &id]).ok();
    assert_eq!(r.rt(&["list", "-q"]).ok().stdout.trim(), "");
    r.t.assert_nothing_left();
}

#[test]
fn rootless_multi_range_maps_use_newuidmap() {
    let Some(r) = Rootless::new() else { return };
    if which("newuidmap").is_none() || which("newgidmap").is_none() {
        return skip("newuidmap/newgidmap (Debian package uidmap) are not installed");
    }
    let sub = std::fs::read_to_string("/etc/subuid").unwrap_or_default();
    let Some(start) = sub
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{USER}:")))
        .and_then(|rest| rest.split(':').next())
        .and_then(|s| s.parse::<u32>().ok())
    else {
        return skip("no /etc/subuid line for the test user");
    };
    let mut b = r.bundle(r.t.id());
    let maps = |own: u32| {
        json!([{"containerID": 0, "hostID": own, "size": 1},
               {"containerID": 1, "hostID": start, "size": 1000}])
    };
    b.set("/linux/uidMappings", maps(r.uid));
    b.set("/linux/gidMappings", maps(r.gid));
    b.set("/process/user/additionalGids", json!([5]));
    b.probe_args(&["read=/proc/self/uid_map"]);
    let out = r.run_with(&[], &b, &[]);
    out.ok();
    let facts = out.probe_facts();
    let uid_map = facts["read"]["/proc/self/uid_map"].as_str().unwrap_or("");
    assert_eq!(
        map_lines(uid_map),
        [
            vec![0, u64::from(r.uid), 1],
            vec![1, u64::from(start), 1000]
        ],
        "{facts}"
    );
    assert_eq!(
        facts["groups"],
        json!([5]),
        "setgroups works through newgidmap: {facts}"
    );
    r.t.assert_nothing_left();
}

#[test]
fn rootless_mapping_the_user_may_not_use_is_one_error() {
    let Some(r) = Rootless::new() else { return };
    let mut b = r.bundle(r.t.id());
    // Host root is never delegated to the user.
    b.set(
        "/linux/uidMappings",
        json!([{"containerID": 0, "hostID": r.uid, "size": 1},
               {"containerID": 1, "hostID": 0, "size": 1}]),
    );
    r.run_with(&[], &b, &[])
        .error_line(&["linux.uidMappings[1]", "/etc/subuid"]);
    r.t.assert_nothing_left();
}

#[test]
fn rootless_ranges_without_newuidmap_are_one_error() {
    let Some(r) = Rootless::new() else { return };
    let mut b = r.bundle(r.t.id());
    b.set(
        "/linux/uidMappings",
        json!([{"containerID": 0, "hostID": r.uid, "size": 1},
               {"containerID": 1, "hostID": 100000, "size": 10}]),
    );
    b.write();
    r.chown();
    let dir = b.dir.to_string_lossy().into_owned();
    let mut c = r.as_user(&r.t.command(&[], &["run", "--bundle", &dir, r.t.id()]));
    // A PATH without the helpers (the runtime looks for them in $PATH, as runc).
    c.env("PATH", "/nonexistent");
    let out = r.t.exec(c).0;
    out.error_line(&["linux.uidMappings", "newuidmap"]);
    r.t.assert_nothing_left();
}

#[test]
fn rootless_resources_need_a_delegated_cgroup() {
    let Some(r) = Rootless::new() else { return };
    let mut b = r.bundle(r.t.id());
    b.set("/linux/resources/pids", json!({"limit": 64}));
    r.run_with(&[], &b, &[])
        .error_line(&["linux.resources.pids.limit", "delegated"]);
    r.t.assert_nothing_left();
}

#[test]
fn rootless_idmapped_mounts_are_refused_naming_the_field() {
    let Some(r) = Rootless::new() else { return };
    let shared = r.t.path("shared");
    std::fs::create_dir_all(&shared).expect("mkdir shared");
    let mut b = r.bundle(r.t.id());
    let n = b.config["mounts"].as_array().map(Vec::len).unwrap_or(0);
    b.add_mount(
        json!({"destination": "/shared", "type": "bind", "source": shared,
                       "options": ["bind", "idmap"]}),
    );
    r.run_with(&[], &b, &[]).error_line(&[
        &format!("mounts[{n}].uidMappings"),
        "root in the initial user namespace",
    ]);
    r.t.assert_nothing_left();
}

#[test]
fn rootless_idmapped_rootfs_is_refused_naming_the_annotation() {
    let Some(r) = Rootless::new() else { return };
    let mut b = r.bundle(r.t.id());
    b.set("/annotations/run.sealrun.rootfs.idmap", json!("true"));
    r.run_with(&[], &b, &[]).error_line(&[
        "run.sealrun.rootfs.idmap",
        "root in the initial user namespace",
    ]);
    r.t.assert_nothing_left();
}

/// A host directory handed to the container as fd 3 (`--preserve-fds 1`): with Landlock on,
/// reading through it fails; `global` switches layers off.
fn preserved_dir_fd(r: &Rootless, global: &[&str]) -> String {
    let dir = r.t.path("host-dir");
    std::fs::create_dir_all(&dir).expect("mkdir host dir");
    std::fs::write(dir.join("secret"), "host-secret\n").expect("write secret");
    let mut b = r.bundle(r.t.id());
    attack::install(&b);
    b.sh("/attack readat 3 secret; echo via-proc; /attack read /proc/self/fd/3/secret");
    b.write();
    r.chown();
    let dirs = b.dir.to_string_lossy().into_owned();
    let args = ["run", "--bundle", &dirs, "--preserve-fds", "1", r.t.id()];
    let cmd = r.as_user(&r.t.command(global, &args));
    let out =
        r.t.exec(attack::with_fds(&cmd, &format!("3<{}", dir.display())))
            .0;
    out.ok();
    r.t.assert_nothing_left();
    out.stdout
}

fn both_reads(out: &str) -> (String, String) {
    let (before, after) = out.split_once("via-proc").expect("both attempts ran");
    (attack::get(before, "read"), attack::get(after, "read"))
}

#[test]
fn rootless_host_dir_fd_is_useless_inside() {
    let Some(r) = Rootless::new() else { return };
    let out = preserved_dir_fd(&r, &[]);
    let eacces = "errno:13".to_string();
    assert_eq!(both_reads(&out), (eacces.clone(), eacces), "{out}");
}

#[test]
fn rootless_host_dir_fd_works_without_landlock() {
    let Some(r) = Rootless::new() else { return };
    let g = attack::off(&["landlock"]);
    let out = preserved_dir_fd(&r, &attack::strs(&g));
    let (a, b) = both_reads(&out);
    assert!(
        a.contains("host-secret") && b.contains("host-secret"),
        "{out}"
    );
}

/// The cgroup2 hierarchy's mount point, if one is mounted.
fn cgroup2_mount() -> Option<PathBuf> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mi.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        (post.split_whitespace().next()? == "cgroup2")
            .then(|| PathBuf::from(pre.split_whitespace().nth(4).unwrap_or("")))
    })
}

/// Remove a cgroup tree (deepest first).
fn remove_cgroup_tree(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

#[test]
fn rootless_delegated_cgroup2_subtree_is_used_and_pause_works() {
    let Some(r) = Rootless::new() else { return };
    let Some(mount) = cgroup2_mount() else {
        return skip("no cgroup2 hierarchy mounted");
    };
    // A subtree delegated to the user, as systemd's Delegate=yes does: the directory and its
    // cgroup.procs, cgroup.subtree_control and cgroup.threads belong to the user; the runtime
    // runs inside it (in `runner`), so moving its children stays inside the delegation.
    let name = format!("sealrun-rl-{}", r.t.mark);
    let deleg = mount.join(&name);
    std::fs::create_dir(&deleg).expect("mkdir delegated cgroup");
    let _cleanup = CgroupTree(deleg.clone());
    let runner = deleg.join("runner");
    std::fs::create_dir(&runner).expect("mkdir runner cgroup");
    for p in [
        deleg.clone(),
        deleg.join("cgroup.procs"),
        deleg.join("cgroup.subtree_control"),
        deleg.join("cgroup.threads"),
        runner.clone(),
        runner.join("cgroup.procs"),
    ] {
        std::os::unix::fs::chown(&p, Some(r.uid), Some(r.gid)).expect("chown delegated cgroup");
    }
    let id = r.t.id().to_string();
    let mut b = r.bundle(&id);
    b.args(&["sleep", "1000"]);
    b.set("/linux/cgroupsPath", json!(format!("/{name}/{id}")));
    b.write();
    r.chown();
    let dirs = b.dir.to_string_lossy().into_owned();
    let in_runner = |args: &[&str]| {
        let cmd = r.as_user(&r.t.command(&[], args));
        let mut c = Command::new("/bin/sh");
        c.arg("-c")
            .arg(format!(
                "echo $$ > {}/cgroup.procs && exec \"$0\" \"$@\"",
                runner.display()
            ))
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        r.t.exec(c).0
    };
    in_runner(&["run", "--detach", "--bundle", &dirs, &id]).ok();
    r.t.wait_status(&id, "running");
    let pid = r.rt(&["state", &id]).ok().json()["pid"]
        .as_i64()
        .unwrap_or(0) as i32;
    r.t.track_pid(pid);
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    assert!(
        cgroup.lines().any(|l| l == format!("0::/{name}/{id}")),
        "the container is in the delegated cgroup2 subtree:\n{cgroup}"
    );
    r.rt(&["pause", &id]).ok();
    assert_eq!(r.rt(&["state", &id]).ok().json()["status"], "paused");
    r.rt(&["resume", &id]).ok();
    assert_eq!(r.rt(&["state", &id]).ok().json()["status"], "running");
    r.rt(&["delete", "--force", &id]).ok();
    assert!(
        !deleg.join(&id).exists(),
        "delete removes the container's cgroup"
    );
    r.t.assert_nothing_left();
}

/// Removes a cgroup tree the test made when dropped.
struct CgroupTree(PathBuf);

impl Drop for CgroupTree {
    fn drop(&mut self) {
        remove_cgroup_tree(&self.0);
    }
}

/// The uptime (first field of `/proc/uptime`) a probe read.
fn probe_uptime(facts: &serde_json::Value) -> f64 {
    facts["read"]["/proc/uptime"]
        .as_str()
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no /proc/uptime: {facts}"))
}

/// A time namespace with offsets works rootless: the runtime cannot create one in the
/// initial user namespace, so it is made in the container's own.
#[test]
fn rootless_time_namespace_with_offsets() {
    let Some(r) = Rootless::new() else { return };
    let mut b = r.bundle(r.t.id());
    b.namespace("time", None);
    let year = 365 * 86400;
    b.set(
        "/linux/timeOffsets",
        json!({"boottime": {"secs": year, "nanosecs": 0},
               "monotonic": {"secs": year, "nanosecs": 0}}),
    );
    b.probe_args(&["read=/proc/uptime"]);
    let out = r.run_with(&[], &b, &[]);
    out.ok();
    let facts = out.probe_facts();
    assert_ne!(facts["ns"]["time"], host_ns("time"), "{facts}");
    let host_up: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        probe_uptime(&facts) >= host_up + year as f64 - 1.0,
        "the boottime offset applies: {facts}"
    );
    assert_eq!(facts["seccomp"], 2, "{facts}");

    // A process exec'd into a running one joins its time namespace (owned by the container's
    // user namespace).
    let id = r.t.new_id("exec");
    let mut b = r.bundle(&id);
    b.namespace("time", None);
    b.set(
        "/linux/timeOffsets",
        json!({"boottime": {"secs": year, "nanosecs": 0}}),
    );
    b.args(&["sleep", "1000"]);
    b.write();
    r.chown();
    let dir = b.dir.to_string_lossy().into_owned();
    r.rt(&["run", "--detach", "--bundle", &dir, &id]).ok();
    let st = r.rt(&["state", &id]).ok().json();
    r.t.track_pid(st["pid"].as_i64().expect("pid") as i32);
    let ex = r.rt(&["exec", &id, "cat", "/proc/uptime"]);
    ex.ok();
    let up: f64 = ex
        .stdout
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{ex}"));
    assert!(up >= year as f64, "exec sees the offset: {ex}");
    r.rt(&["kill", &id, "KILL"]).ok();
    r.t.wait_status(&id, "stopped");
    r.rt(&["delete", &id]).ok();
    r.t.assert_nothing_left();
}
