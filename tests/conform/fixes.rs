//! Issue 13's remaining gaps: socket activation handed on, relative cgroupsPath inside a
//! cgroup namespace, device nodes outside /dev.

use std::fs;
use std::process::Command;

use crate::common::*;
use serde_json::{json, Value};

/// The probe's facts from a foreground `run` of `b` started by `sh` with `prelude`.
fn probe_through_sh(t: &Test, b: &Bundle, prelude: &str, extra: &[&str]) -> Value {
    let out = t
        .exec(crate::attack::through_sh(
            &t.run_command(&[], b, extra),
            prelude,
        ))
        .0;
    out.ok();
    out.probe_facts()
}

/// systemd socket activation (`LISTEN_FDS` with `LISTEN_PID` naming the runtime) is handed on
/// as runc does: the descriptors from 3 on reach the process, before any `--preserve-fds`
/// ones, with `LISTEN_FDS=N` and `LISTEN_PID=1` in its environment; activation meant for
/// another process, or counting descriptors that are not open, is ignored.
#[test]
fn socket_activation_fds_reach_the_container() {
    let t = Test::new();
    let listen = t.path("listen");
    let extra = t.path("extra");
    fs::write(&listen, "l").unwrap();
    fs::write(&extra, "e").unwrap();
    let (l, e) = (listen.display(), extra.display());
    let b = t.bundle();
    let f = probe_through_sh(
        &t,
        &b,
        &format!("export LISTEN_PID=$$ LISTEN_FDS=1; exec 3<{l} 4<{e};"),
        &["--preserve-fds", "1"],
    );
    let env = f["env"].to_string();
    assert!(
        env.contains("\"LISTEN_FDS=1\"") && env.contains("\"LISTEN_PID=1\""),
        "{env}"
    );
    assert_eq!(f["fds"]["3"], json!(l.to_string()), "{}", f["fds"]);
    assert_eq!(f["fds"]["4"], json!(e.to_string()), "{}", f["fds"]);
    t.assert_nothing_left();
    // LISTEN_PID of another process: nothing is handed on.
    let b = t.bundle_for(&t.new_id("other"));
    let f = probe_through_sh(
        &t,
        &b,
        &format!("export LISTEN_PID=1 LISTEN_FDS=1; exec 3<{l};"),
        &[],
    );
    assert!(!f["env"].to_string().contains("LISTEN_FDS"), "{}", f["env"]);
    assert!(f["fds"].get("3").is_none(), "{}", f["fds"]);
    t.assert_nothing_left();
    // A count past the open descriptors: ignored with a warning (the runtime's own would
    // follow).
    let b = t.bundle_for(&t.new_id("short"));
    let f = probe_through_sh(
        &t,
        &b,
        &format!("export LISTEN_PID=$$ LISTEN_FDS=3; exec 3<{l};"),
        &[],
    );
    assert!(!f["env"].to_string().contains("LISTEN_FDS"), "{}", f["env"]);
    assert!(f["fds"].get("3").is_none(), "{}", f["fds"]);
    if is_sealrun() {
        let warned = t.report().messages("warning").join("\n");
        assert!(warned.contains("LISTEN_FDS=3"), "{warned}");
    }
    t.assert_nothing_left();
}

/// `rootfsPropagation: unbindable` makes the container's root unbindable (set once it is the
/// root: set on the host's "/" first, the rootfs's own bind mount failed with EINVAL).
#[test]
fn unbindable_rootfs_propagation() {
    for mode in ["unbindable", "runbindable"] {
        let t = Test::new();
        let mut b = t.bundle();
        b.set("/linux/rootfsPropagation", json!(mode));
        let f = t.probe(&b);
        let root = f["mounts"]
            .as_array()
            .and_then(|m| m.iter().rev().find(|m| m["mount_point"] == "/"))
            .cloned()
            .unwrap_or_else(|| panic!("no / in {}", f["mounts"]));
        assert_eq!(root["optional"], json!(["unbindable"]), "{mode}: {root}");
        t.assert_nothing_left();
    }
}

/// A relative `cgroupsPath` given by a caller inside a cgroup namespace whose hierarchies were
/// mounted outside it (mountinfo shows their root as `/..`): it resolves against the caller's
/// cgroup as the caller sees it, from the mount point, as runc does (it was refused: "outside
/// the hierarchy").
#[test]
fn relative_cgroups_path_inside_a_cgroup_namespace() {
    let Some(unshare) = which("unshare") else {
        return skip("needs unshare(1) to enter a cgroup namespace");
    };
    let t = Test::new();
    let id = t.id().to_string();
    let mut b = t.sleeper(&id);
    // The test's own cgroup, relative: from the namespace's root it is the same directory.
    let rel = t.cgroups_path(&id);
    b.set("/linux/cgroupsPath", json!(rel.trim_start_matches('/')));
    b.write();
    let dir = b.dir.to_string_lossy().into_owned();
    let pid_file = t.pid_file(&id).to_string_lossy().into_owned();
    let cmd = t.command(
        &[],
        &[
            "run",
            "--detach",
            "--bundle",
            &dir,
            "--pid-file",
            &pid_file,
            &id,
        ],
    );
    let mut ns = Command::new(unshare);
    ns.arg("-C").arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            ns.env(k, v);
        }
    }
    ns.stdin(std::process::Stdio::null());
    t.exec(ns).0.ok();
    t.wait_status(&id, "running");
    let pid = t.pid_of(&id);
    assert!(
        host::cgroup_pids(&rel).contains(&pid),
        "{pid} not in {rel}: {:?}",
        host::cgroup_pids(&rel)
    );
    t.delete_force(&id).ok();
    t.assert_nothing_left();
}

/// A device node outside /dev is created where the config says (runc does; the runtime-spec
/// only asks for an absolute path), parent directories included.
#[test]
fn device_nodes_outside_dev() {
    let t = Test::new();
    let mut b = t.bundle();
    b.set(
        "/linux/devices",
        json!([{"path": "/mydev/sub/null", "type": "c", "major": 1, "minor": 3,
                "fileMode": 0o640, "uid": 0, "gid": 0}]),
    );
    b.probe_args(&["stat=/mydev/sub/null"]);
    let f = t.probe(&b);
    let st = &f["stat"]["/mydev/sub/null"];
    assert_eq!(
        (st["type"].clone(), st["major"].clone(), st["minor"].clone()),
        (json!("char"), json!(1), json!(3)),
        "{st}"
    );
    t.assert_nothing_left();
}

/// `SCMP_ARCH_X86` in `architectures`: i386 calls (`int 0x80`) get the profile's rules from
/// the i386 table, as libseccomp compiles them, instead of ENOSYS: a denied call gets the
/// rule's errno, an allowed one runs. Without `SCMP_ARCH_X86` they still get ENOSYS.
#[cfg(target_arch = "x86_64")]
#[test]
fn i386_calls_follow_the_profile_when_it_names_x86() {
    let run_abi = |profile: Value| {
        let t = Test::new();
        let mut b = t.bundle();
        crate::attack::attack_args(&mut b, &["abi"]);
        b.set("/linux/seccomp", profile);
        let out = t.run(&b);
        out.ok();
        t.assert_nothing_left();
        out.stdout
    };
    let get = crate::attack::get;
    let both = json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
    // A denylist: getppid refused with errno 1 on both tables.
    let out = run_abi(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": both,
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}),
    );
    assert_eq!(get(&out, "native"), "errno:1", "{out}");
    assert_eq!(get(&out, "i386"), "errno:1", "{out}");
    assert_eq!(get(&out, "x32"), "errno:38", "x32 is still refused: {out}");
    // A rule on another call: i386 getppid runs (it used to get ENOSYS whatever the rules).
    let out = run_abi(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": both,
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}),
    );
    let ppid = get(&out, "native");
    assert!(ppid.parse::<i32>().is_ok(), "{out}");
    assert_eq!(get(&out, "i386"), ppid, "{out}");
    // Without SCMP_ARCH_X86 the i386 table stays refused.
    let out = run_abi(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}));
    assert_eq!(get(&out, "i386"), "errno:38", "{out}");
}

/// The value of cgroup file `v1` under controller `ctl` (cgroup v1) or `v2` (cgroup2) for the
/// container's cgroup `rel`, trimmed; `None` when neither exists.
fn cgroup_value(rel: &str, ctl: &str, v1: &str, v2: &str) -> Option<String> {
    let rel = rel.trim_start_matches('/');
    [
        format!("/sys/fs/cgroup/{ctl}/{rel}/{v1}"),
        format!("/sys/fs/cgroup/{rel}/{v2}"),
    ]
    .iter()
    .find_map(|p| fs::read_to_string(p).ok())
    .map(|s| s.trim().to_string())
}

/// `update` takes -1 as a value ("unlimited") for `--memory-swap` and `--cpu-quota`, as runc's
/// suite passes it, instead of reading it as a flag.
#[test]
fn update_takes_minus_one_as_unlimited() {
    let t = Test::new();
    let id = t.id().to_string();
    t.run_sleeper(&id);
    let rel = t.cgroups_path(&id);
    t.rt(&["update", "--cpu-quota", "20000", &id]).ok();
    t.rt(&["update", "--cpu-quota", "-1", &id]).ok();
    match cgroup_value(&rel, "cpu", "cpu.cfs_quota_us", "cpu.max") {
        Some(v) => assert!(v == "-1" || v.starts_with("max "), "cpu quota {v}"),
        None => skip_part("no cpu controller here"),
    }
    t.rt(&["update", "--memory", "64M", "--memory-swap", "128M", &id])
        .ok();
    t.rt(&["update", "--memory-swap", "-1", &id]).ok();
    match cgroup_value(
        &rel,
        "memory",
        "memory.memsw.limit_in_bytes",
        "memory.swap.max",
    ) {
        Some(v) => assert!(
            v == "max" || v.parse::<u64>().is_ok_and(|n| n > 1 << 60),
            "swap limit {v}"
        ),
        None => skip_part("no swap accounting here"),
    }
    t.delete_force(&id).ok();
    t.assert_nothing_left();
}

/// The substrings containerd's shim and podman's conmon match in kill, delete and exec errors
/// (containerd: "does not exist", "container not running"; podman: "executable file not found
/// in $PATH" and "no such file or directory" mean exit 127, "permission denied" 126).
#[test]
fn errors_carry_the_substrings_clients_match() {
    let t = Test::new();
    let gone = t.new_id("gone");
    for args in [
        vec!["kill", gone.as_str(), "KILL"],
        vec!["delete", gone.as_str()],
        vec!["exec", gone.as_str(), "true"],
        vec!["state", gone.as_str()],
    ] {
        t.rt(&args).error_line(&["does not exist"]);
    }
    let id = t.id().to_string();
    t.run_sleeper(&id);
    t.rt(&["exec", &id, "no-such-binary"])
        .error_line(&["executable file not found in $PATH"]);
    t.rt(&["exec", &id, "/no/such/file"])
        .error_line(&["no such file or directory"]);
    t.rt(&["exec", &id, "/etc/passwd"])
        .error_line(&["permission denied"]);
    t.kill(&id, "KILL").ok();
    t.wait_status(&id, "stopped");
    t.kill(&id, "KILL").error_line(&["container not running"]);
    t.delete(&id).ok();
    t.assert_nothing_left();
}

/// The hooks `create` runs (prestart, createRuntime, createContainer) get the state with
/// status `created`: the runtime-spec runs them after the environment is created (lifecycle
/// step 2), which is what `created` names (runc 1.1.5 says `creating`).
#[test]
fn create_hooks_see_status_created() {
    if !is_sealrun() {
        return skip(&sealrun_only(
            "runc 1.1.5 gives create's hooks status creating",
        ));
    }
    let t = Test::new();
    let dir = t.path("hook-states");
    fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    let mut b = t.bundle();
    let hook = |name: &str| json!([{"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {d}/{name}")]}]);
    b.set(
        "/hooks",
        json!({"prestart": hook("prestart"), "createRuntime": hook("createRuntime"),
               "createContainer": hook("createContainer")}),
    );
    t.probe(&b);
    for name in ["prestart", "createRuntime", "createContainer"] {
        let text = fs::read_to_string(dir.join(name)).unwrap_or_default();
        let state: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{name}: state is not JSON ({e}): {text:?}"));
        assert_eq!(state["status"], "created", "{name}: {state}");
    }
    t.assert_nothing_left();
}

/// A container cgroup that existed before `run` (runc's suite makes the cpu one itself for its
/// rt test) is removed by `delete` once the container left it empty, as runc removes it, also
/// after `update`; it used to stay forever, and a real-time budget left in it made the next
/// run's rt test fail. One that still holds a process of someone else's stays.
#[test]
fn delete_removes_a_joined_cgroup_it_left_empty() {
    let t = Test::new();
    let id = t.id().to_string();
    let rel = t.cgroups_path(&id);
    let joined: Vec<_> = ["pids", "memory"]
        .iter()
        .map(|c| std::path::Path::new("/sys/fs/cgroup").join(c))
        .filter(|h| h.is_dir())
        .map(|h| h.join(rel.trim_start_matches('/')))
        .collect();
    if joined.is_empty() {
        return skip("needs the v1 pids or memory hierarchy");
    }
    for d in &joined {
        fs::create_dir_all(d).expect("make the cgroup beforehand");
    }
    t.run_sleeper(&id);
    t.rt(&["update", "--pids-limit", "100", &id]).ok();
    t.delete_force(&id).ok();
    for d in &joined {
        assert!(!d.exists(), "{} left behind", d.display());
    }
    t.assert_nothing_left();
    // With a bystander in it the directory stays (and the bystander lives).
    let id = t.new_id("shared");
    let rel = t.cgroups_path(&id);
    let dir = joined[0]
        .parent()
        .unwrap()
        .join(rel.rsplit('/').next().unwrap());
    fs::create_dir_all(&dir).unwrap();
    let mut bystander = Command::new("sleep").arg("1000").spawn().unwrap();
    fs::write(dir.join("cgroup.procs"), bystander.id().to_string()).unwrap();
    t.run_sleeper(&id);
    t.delete_force(&id).ok();
    let stayed = dir.is_dir();
    let alive = matches!(bystander.try_wait(), Ok(None));
    let _ = bystander.kill();
    let _ = bystander.wait();
    let _ = fs::remove_dir(&dir);
    assert!(stayed && alive, "stayed {stayed}, bystander alive {alive}");
    t.assert_nothing_left();
}
