//! sealrun under the real containerd (Debian's 1.6), through the runc v2 shim.
//!
//! Each test starts its own containerd (private config, root, state, sockets, CRI off), imports a
//! busybox image built locally as an OCI layout, and runs containers with
//! `ctr run --runtime io.containerd.runc.v2 --runc-binary <runtime>`: the shim then drives the
//! runtime exactly as it drives runc in production (`--root … --log <bundle>/log.json
//! --log-format json` before every subcommand, console sockets, pid files, `kill` with signal
//! numbers, `update --resources -`, `pause`, `ps --format json`, `delete`).
//!
//! The runtime is sealrun unless `SEALRUN_TEST_RUNTIME` names another one (e.g. `runc`): the same
//! tests must pass against runc, which shows they measure the runtime and not the harness.
//!
//! Needs root and the Debian packages containerd, busybox-static and bsdutils (`script`).

#[path = "containerd/grpc.rs"]
mod grpc;
#[path = "containerd/harness.rs"]
mod harness;
#[path = "containerd/host.rs"]
mod host;
#[path = "containerd/image.rs"]
mod image;
#[path = "common/run.rs"]
mod run;
#[path = "common/skip.rs"]
mod skip;

use std::fs;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use harness::{run, run_in_pty, runtime_is_sealrun, Containerd};

fn read_trimmed(path: &std::path::Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

#[test]
fn run_captures_stdout_and_stderr() {
    let ctd = Containerd::start();
    let script = "echo \"$GREETING from the container\"; echo to-stderr >&2";
    let r = run(ctd.ctr_run(
        "output",
        false,
        &["--env", "GREETING=hello"],
        &["sh", "-c", script],
    ));
    assert!(r.ok(), "{r}\n{}", ctd.log_tail());
    assert_eq!(r.stdout.trim(), "hello from the container", "{r}");
    assert!(r.stderr.contains("to-stderr"), "{r}");
}

#[test]
fn exit_status_is_propagated() {
    let ctd = Containerd::start();
    let r = run(ctd.ctr_run("exit3", false, &[], &["sh", "-c", "exit 3"]));
    assert_eq!(r.code, Some(3), "{r}\n{}", ctd.log_tail());
}

#[test]
fn the_runtime_under_test_holds_the_container() {
    let ctd = Containerd::start();
    let pid = ctd.run_detached("held", &[], &["sleep", "3600"]);
    let mut cmd = ctd.runtime_cmd();
    cmd.args(["state", "held"]);
    let r = run(cmd);
    assert!(r.ok(), "{r}");
    let state: serde_json::Value =
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r}"));
    assert_eq!(state["status"], "running", "{r}");
    assert_eq!(state["pid"], pid, "{r}");
    assert_eq!(state["bundle"], ctd.bundle("held").to_str().unwrap(), "{r}");
    if runtime_is_sealrun() {
        // The shim ran sealrun with `--log <bundle>/log.json --log-format json`: its audit
        // record of the protections is there as a JSON line.
        let log = fs::read_to_string(ctd.bundle("held").join("log.json")).unwrap();
        let audit = log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["msg"] == "container protections");
        assert!(audit.is_some(), "no audit record in log.json:\n{log}");
    }
}

#[test]
fn exec_without_tty() {
    let ctd = Containerd::start();
    let init = ctd.run_detached("exec", &[], &["sleep", "3600"]);

    let r = run(ctd.ctr_exec("exec", "e1", &[], &["sh", "-c", "echo exec-ok; exit 5"]));
    assert_eq!(r.code, Some(5), "{r}\n{}", ctd.log_tail());
    assert_eq!(r.stdout.trim(), "exec-ok", "{r}");

    let r = run(ctd.ctr_exec(
        "exec",
        "e2",
        &["--user", "nobody", "--cwd", "/etc"],
        &["sh", "-c", "id -u; id -g; pwd"],
    ));
    assert!(r.ok(), "{r}\n{}", ctd.log_tail());
    assert_eq!(
        r.stdout.split_whitespace().collect::<Vec<_>>(),
        ["65534", "65534", "/etc"],
        "{r}"
    );

    // A detached exec stays in the container: `ctr task ps` (the runtime's `ps`) lists it.
    ctd.expect_ok(ctd.ctr_exec("exec", "e3", &["--detach"], &["sleep", "3600"]));
    let ps = ctd.task(&["ps", "exec"]);
    let pids: Vec<&str> = ps
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(pids.len(), 2, "{ps}");
    assert!(pids.contains(&init.to_string().as_str()), "{ps}");
    assert!(ps.stdout.contains("ExecID:e3"), "{ps}");
}

#[test]
fn exec_with_tty() {
    let ctd = Containerd::start();
    ctd.run_detached("exectty", &[], &["sleep", "3600"]);
    let script = "test -t 0 && test -t 1 && echo on-a-tty; tty; exit 4";
    let r = run_in_pty(ctd.ctr_exec("exectty", "t1", &["--tty"], &["sh", "-c", script]));
    assert_eq!(r.code, Some(4), "{r}\n{}", ctd.log_tail());
    assert!(r.stdout.contains("on-a-tty"), "{r}");
    assert!(r.stdout.contains("/dev/pts/"), "{r}");
}

#[test]
fn run_with_tty() {
    let ctd = Containerd::start();
    let script = "test -t 0 && test -t 1 && echo on-a-tty; tty; exit 6";
    let r = run_in_pty(ctd.ctr_run("runtty", false, &["--tty"], &["sh", "-c", script]));
    assert_eq!(r.code, Some(6), "{r}\n{}", ctd.log_tail());
    assert!(r.stdout.contains("on-a-tty"), "{r}");
    assert!(r.stdout.contains("/dev/pts/0"), "{r}");
}

#[test]
fn kill_signals_reach_the_container() {
    let ctd = Containerd::start();
    // The init (pid 1 of its namespace, no handler) ignores SIGTERM; an exec'd `sleep` does not.
    ctd.run_detached("kill", &[], &["sleep", "3600"]);
    // The exec'd shell leaves a mark in the rootfs, then becomes `sleep`.
    let mark = ctd.bundle("kill").join("rootfs/tmp/victim-ready");
    let script = "touch /tmp/victim-ready; exec sleep 3600";
    let mut exec = ctd.ctr_exec("kill", "victim", &[], &["sh", "-c", script]);
    let mut victim = exec
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut ready = false;
    for _ in 0..3000 {
        if mark.exists() {
            ready = true;
            break;
        }
        if victim.try_wait().unwrap().is_some() {
            break;
        }
        sleep(Duration::from_millis(20));
    }
    if !ready {
        let _ = victim.kill();
        let _ = victim.wait();
        panic!("the exec'd process never started\n{}", ctd.log_tail());
    }

    // `kill --all 15`: every process of the container gets it.
    ctd.task(&["kill", "--all", "--signal", "SIGTERM", "kill"]);
    let mut status = None;
    for _ in 0..3000 {
        status = victim.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        sleep(Duration::from_millis(20));
    }
    let Some(status) = status else {
        let _ = victim.kill();
        let _ = victim.wait();
        panic!(
            "kill --all SIGTERM did not reach the exec'd process\n{}",
            ctd.log_tail()
        );
    };
    assert_eq!(status.code(), Some(143), "exec'd sleep after SIGTERM");
    assert_eq!(
        ctd.task_status("kill").map(|s| s.1).as_deref(),
        Some("RUNNING")
    );

    // `kill 9` to the init: the task stops with 128+9.
    ctd.task(&["kill", "--signal", "SIGKILL", "kill"]);
    ctd.wait_status("kill", "STOPPED");
    let r = ctd.task(&["delete", "kill"]);
    assert!(r.stderr.contains("exit code 137"), "{r}");
}

#[test]
fn processes_left_by_an_init_sharing_a_pid_namespace_are_killed() {
    // A container that joins another's pid namespace (a Kubernetes pod with a shared process
    // namespace) has no init to take its children down: when its process exits, the shim runs
    // `<runtime> kill --all <id> 9` on the now stopped container, as runc allows.
    let ctd = Containerd::start();
    let owner = ctd.run_detached("pidns-owner", &[], &["sleep", "3600"]);
    let with_ns = format!("pid:/proc/{owner}/ns/pid");
    let script = "sleep 3600 & touch /tmp/child-started; exit 0";
    ctd.expect_ok(ctd.ctr_run(
        "pidns-guest",
        true,
        &["--with-ns", &with_ns],
        &["sh", "-c", script],
    ));
    ctd.wait_status("pidns-guest", "STOPPED");
    assert!(ctd
        .bundle("pidns-guest")
        .join("rootfs/tmp/child-started")
        .exists());
    let procs = ctd.cgroup_file("pidns-guest", "pids", "cgroup.procs", "cgroup.procs");
    let mut left = String::from("?");
    for _ in 0..500 {
        left = fs::read_to_string(&procs).unwrap_or_default();
        if left.trim().is_empty() {
            break;
        }
        sleep(Duration::from_millis(20));
    }
    assert_eq!(
        left.trim(),
        "",
        "processes left in {}\n{}",
        procs.display(),
        ctd.log_tail()
    );
    let r = ctd.task(&["delete", "pidns-guest"]);
    assert!(!r.stderr.contains("exit code"), "{r}");
}

#[test]
fn pause_and_resume() {
    let ctd = Containerd::start();
    ctd.run_detached("pause", &[], &["sleep", "3600"]);
    let freezer = ctd.cgroup_file("pause", "freezer", "freezer.state", "cgroup.freeze");
    let (frozen, thawed) = if freezer.ends_with("freezer.state") {
        ("FROZEN", "THAWED")
    } else {
        ("1", "0")
    };

    ctd.task(&["pause", "pause"]);
    assert_eq!(
        ctd.task_status("pause").map(|s| s.1).as_deref(),
        Some("PAUSED")
    );
    assert_eq!(read_trimmed(&freezer), frozen);

    ctd.task(&["resume", "pause"]);
    assert_eq!(
        ctd.task_status("pause").map(|s| s.1).as_deref(),
        Some("RUNNING")
    );
    assert_eq!(read_trimmed(&freezer), thawed);
    let r = ctd.expect_ok(ctd.ctr_exec("pause", "after", &[], &["echo", "awake"]));
    assert_eq!(r.stdout.trim(), "awake");
}

#[test]
fn resource_limits_are_applied_and_updated() {
    let ctd = Containerd::start();
    let pid = ctd.run_detached(
        "limits",
        &["--memory-limit", "67108864", "--cpus", "0.5"],
        &["sleep", "3600"],
    );
    let memory = ctd.cgroup_file("limits", "memory", "memory.limit_in_bytes", "memory.max");
    let cpu = ctd.cgroup_file("limits", "cpu", "cpu.cfs_quota_us", "cpu.max");
    let procs = memory.with_file_name("cgroup.procs");
    assert!(
        read_trimmed(&procs).lines().any(|p| p == pid.to_string()),
        "init {pid} not in {}",
        procs.display()
    );
    assert_eq!(read_trimmed(&memory), "67108864");
    let quota = read_trimmed(&cpu);
    assert!(
        quota == "50000" || quota == "50000 100000",
        "cpu quota {quota}"
    );

    // containerd's Tasks.Update → shim → `<runtime> update --resources -`.
    ctd.update_resources("limits", r#"{"memory":{"limit":134217728}}"#)
        .unwrap_or_else(|e| panic!("update: {e}\n{}", ctd.log_tail()));
    assert_eq!(read_trimmed(&memory), "134217728");
    // The client tells a refused call from an accepted one.
    assert!(ctd
        .update_resources("no-such-task", r#"{"memory":{"limit":134217728}}"#)
        .is_err());
    assert_eq!(
        ctd.task_status("limits").map(|s| s.1).as_deref(),
        Some("RUNNING")
    );
}

#[test]
fn memory_limit_is_enforced_and_oom_reported() {
    let swaps = fs::read_to_string("/proc/swaps").unwrap_or_default();
    if swaps.lines().count() > 1 {
        // With swap, a memory limit alone does not force an OOM kill (ctr sets no swap limit).
        return skip::skip("swap is enabled on this host: a memory limit alone forces no OOM kill");
    }
    let ctd = Containerd::start();
    let events = ctd.events();
    // `tail -n 1` holds its whole newline-free input: 256 MiB against a 32 MiB limit.
    let hog = "head -c 268435456 /dev/zero | tail -n 1 >/dev/null";
    let r = run(ctd.ctr_run(
        "oom",
        false,
        &["--memory-limit", "33554432"],
        &["sh", "-c", hog],
    ));
    assert_eq!(r.code, Some(137), "{r}\n{}", ctd.log_tail());
    // The shim watches the memory cgroup the runtime put the container in, and tells
    // containerd (Kubernetes reports OOMKilled from this event).
    let oom = |t: &str| {
        t.lines()
            .any(|l| l.contains("/tasks/oom") && l.contains("\"oom\""))
    };
    let mut text = events.text();
    for _ in 0..500 {
        if oom(&text) {
            break;
        }
        sleep(Duration::from_millis(20));
        text = events.text();
    }
    assert!(oom(&text), "no /tasks/oom event:\n{text}");
}

#[test]
fn default_cgroups_path_is_namespace_and_id() {
    let ctd = Containerd::start();
    let pid = ctd.run_detached_with("defcg", &[], &["sleep", "3600"]);
    let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let want = format!("/{}/defcg", ctd.namespace);
    assert!(cgroup.lines().all(|l| l.ends_with(&want)), "{cgroup}");
    ctd.task(&["delete", "--force", "defcg"]);
    let pure_v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.procs").exists();
    for line in cgroup.lines() {
        let mut f = line.splitn(3, ':');
        let (_, controllers, path) = (f.next(), f.next().unwrap(), f.next().unwrap());
        let hierarchy = match controllers {
            _ if pure_v2 => String::new(),
            "" => "unified".to_string(),
            c => c.trim_start_matches("name=").to_string(),
        };
        let dir = std::path::Path::new("/sys/fs/cgroup")
            .join(hierarchy)
            .join(path.trim_start_matches('/'));
        assert!(!dir.exists(), "{} left after delete", dir.display());
    }
}

#[test]
fn seccomp_profile_from_containerd_is_loaded() {
    let ctd = Containerd::start();
    let r = run(ctd.ctr_run(
        "seccomp",
        false,
        &["--seccomp"],
        &["grep", "^Seccomp:", "/proc/self/status"],
    ));
    assert!(r.ok(), "{r}\n{}", ctd.log_tail());
    assert_eq!(
        r.stdout.split_whitespace().collect::<Vec<_>>(),
        ["Seccomp:", "2"],
        "{r}"
    );
    // containerd's default profile denies unshare without CAP_SYS_ADMIN.
    let r = run(ctd.ctr_run(
        "seccomp2",
        false,
        &["--seccomp"],
        &["unshare", "-U", "true"],
    ));
    assert!(!r.ok(), "{r}");
    let r = run(ctd.ctr_run("seccomp3", false, &[], &["unshare", "-U", "true"]));
    assert!(r.ok(), "{r}");
}

#[test]
fn read_only_rootfs_and_bind_mount() {
    let ctd = Containerd::start();
    let shared = ctd.dir.join("shared");
    fs::create_dir_all(&shared).unwrap();
    fs::write(shared.join("hello"), "from the host\n").unwrap();
    let mount = format!(
        "type=bind,src={},dst=/shared,options=rbind:ro",
        shared.display()
    );
    let script = "cat /shared/hello; touch /x 2>/dev/null && echo rootfs-writable; touch /shared/y 2>/dev/null && echo bind-writable; echo done";
    let r = run(ctd.ctr_run(
        "ro",
        false,
        &["--read-only", "--mount", &mount],
        &["sh", "-c", script],
    ));
    assert!(r.ok(), "{r}\n{}", ctd.log_tail());
    assert_eq!(
        r.stdout.lines().collect::<Vec<_>>(),
        ["from the host", "done"],
        "{r}"
    );
    assert!(!shared.join("y").exists());
}

#[test]
fn host_network_namespace() {
    let ctd = Containerd::start();
    let host = fs::read_link("/proc/self/ns/net").unwrap();
    let r = run(ctd.ctr_run(
        "nethost",
        false,
        &["--net-host"],
        &["readlink", "/proc/self/ns/net"],
    ));
    assert!(r.ok(), "{r}\n{}", ctd.log_tail());
    assert_eq!(r.stdout.trim(), host.to_str().unwrap(), "{r}");
    let r = run(ctd.ctr_run("netpriv", false, &[], &["readlink", "/proc/self/ns/net"]));
    assert!(r.ok() && r.stdout.trim() != host.to_str().unwrap(), "{r}");
}

#[test]
fn user_namespace_from_uid_and_gid_maps() {
    // ctr chowns a copy of the snapshot for the map; the runtime creates the user namespace
    // and writes the maps, and `exec` joins it.
    let ctd = Containerd::start();
    let maps = ["--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"];
    let pid = ctd.run_detached("userns", &maps, &["sleep", "3600"]);
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(uid.split_whitespace().nth(1), Some("100000"), "{uid}");
    let r = ctd.expect_ok(ctd.ctr_exec(
        "userns",
        "maps",
        &[],
        &[
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map /proc/self/gid_map",
        ],
    ));
    let words: Vec<&str> = r.stdout.split_whitespace().collect();
    assert_eq!(
        words,
        ["0", "0", "100000", "65536", "0", "100000", "65536"],
        "{r}"
    );
}

#[test]
fn delete_removes_everything() {
    let ctd = Containerd::start();
    ctd.run_detached("gone", &[], &["sleep", "3600"]);
    assert!(
        !ctd.cgroup_dirs("gone").is_empty(),
        "no cgroup for the container"
    );

    // `delete --force` on a running task: the shim kills it, then deletes it.
    ctd.task(&["delete", "--force", "gone"]);
    ctd.expect_ok({
        let mut c = ctd.ctr();
        c.args(["containers", "delete", "gone"]);
        c
    });
    assert_eq!(ctd.task_status("gone"), None);
    let mut cmd = ctd.runtime_cmd();
    cmd.args(["state", "gone"]);
    let r = run(cmd);
    assert!(!r.ok() && r.stderr.contains("does not exist"), "{r}");
    assert!(!ctd.runc_root.join(&ctd.namespace).join("gone").exists());
    assert_eq!(ctd.cgroup_dirs("gone"), Vec::<std::path::PathBuf>::new());
}

#[test]
fn failed_start_shows_the_runtime_error() {
    let ctd = Containerd::start();
    let r = run(ctd.ctr_run("broken", false, &[], &["/no-such-binary"]));
    assert!(!r.ok(), "{r}");
    // containerd shows the `msg` of the runtime's last error line in <bundle>/log.json.
    for needle in [
        "OCI runtime create failed",
        "/no-such-binary",
        "no such file or directory",
    ] {
        assert!(r.stderr.contains(needle), "missing {needle:?}: {r}");
    }
    // Nothing left behind: no container, no runtime state, no cgroup.
    let listed = ctd.expect_ok({
        let mut c = ctd.ctr();
        c.args(["containers", "ls", "-q"]);
        c
    });
    assert_eq!(listed.stdout.trim(), "", "{listed}");
    assert!(!ctd.runc_root.join(&ctd.namespace).join("broken").exists());
    assert_eq!(ctd.cgroup_dirs("broken"), Vec::<std::path::PathBuf>::new());
}

#[test]
fn tools_are_installed() {
    for (tool, package) in [
        ("containerd", "containerd"),
        ("ctr", "containerd"),
        ("script", "bsdutils"),
        ("tar", "tar"),
    ] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        assert!(found, "{tool} missing: apt-get install {package}");
    }
    assert!(
        std::path::Path::new(image::BUSYBOX).exists(),
        "apt-get install busybox-static"
    );
}
