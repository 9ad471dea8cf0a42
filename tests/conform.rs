//! Conformance with runc's behaviour where clients and runc's own integration suite depend on
//! it (issue 13): each test pins one gap that `scripts/runc-suite` found, so CI (which cannot
//! fetch runc's suite) keeps it closed.

#[path = "common/attack.rs"]
mod attack;
mod common;

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::*;
use serde_json::json;

/// A pre-frozen cgroup: `run` and `create` refuse at once with runc's words instead of
/// waiting forever for an init that froze on arrival; nothing is left behind.
#[test]
fn create_into_a_frozen_cgroup_is_refused() {
    let t = Test::new();
    let b = t.sleeper(t.id());
    let rel = t.cgroups_path(t.id());
    let freezer = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        (
            Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/')),
            "cgroup.freeze",
            "1",
        )
    } else if Path::new("/sys/fs/cgroup/freezer").is_dir() {
        (
            Path::new("/sys/fs/cgroup/freezer").join(rel.trim_start_matches('/')),
            "freezer.state",
            "FROZEN",
        )
    } else {
        return skip("no freezer cgroup on this host");
    };
    let (dir, file, value) = freezer;
    fs::create_dir_all(&dir).expect("mkdir freezer cgroup");
    fs::write(dir.join(file), value).expect("freeze");
    let out = t.create(&b);
    out.error_line(&["container's cgroup unexpectedly frozen"]);
    let out = t.run_detached(&b);
    out.error_line(&["container's cgroup unexpectedly frozen"]);
    assert!(
        host::cgroup_pids(&rel).is_empty(),
        "no process in the cgroup"
    );
    // The frozen directory was the test's; sealrun removed what it made.
    let _ = fs::remove_dir(&dir);
    t.assert_nothing_left();
}

/// `kill ID 0` is a liveness check (runc's `kill` passes 0 to kill(2)): success while the
/// container runs, an error once it has stopped, and the process is untouched.
#[test]
fn kill_with_signal_zero_checks_liveness() {
    let t = Test::new();
    let id = t.id().to_string();
    t.run_sleeper(&id);
    t.kill(&id, "0").ok();
    assert_eq!(t.status(&id), "running");
    t.kill(&id, "KILL").ok();
    t.wait_status(&id, "stopped");
    t.kill(&id, "0").error_line(&["not running"]);
    t.rt(&["kill", "--all", &id, "0"]).ok();
    t.delete(&id).ok();
    t.assert_nothing_left();
}

/// exec's own failures exit 255 (runc's code), so callers can tell them from the exit status
/// of a process that ran: no such container, no such binary, a paused container.
#[test]
fn exec_failures_exit_255() {
    let t = Test::new();
    let id = t.id().to_string();
    t.run_sleeper(&id);
    let out = t.rt(&["exec", &id, "sh", "-c", "exit 42"]);
    assert_eq!(out.code(), Some(42), "{out}");
    let out = t.rt(&["exec", &id, "no-such-binary"]);
    assert_eq!(out.code(), Some(255), "{out}");
    let out = t.rt(&["exec", "no-such-container", "true"]);
    assert_eq!(out.code(), Some(255), "{out}");
    t.rt(&["pause", &id]).ok();
    let out = t.rt(&["exec", &id, "true"]);
    assert_eq!(out.code(), Some(255), "{out}");
    assert!(out.stderr.contains("paused"), "{out}");
    t.rt(&["resume", &id]).ok();
    t.delete_force(&id).ok();
    t.assert_nothing_left();
}

/// A console socket that keeps every pty master it receives open.
struct ConsoleSocket {
    path: PathBuf,
    masters: Arc<Mutex<Vec<OwnedFd>>>,
}

impl ConsoleSocket {
    fn new(path: PathBuf) -> ConsoleSocket {
        let listener = UnixListener::bind(&path).expect("bind console socket");
        let masters = Arc::new(Mutex::new(Vec::new()));
        let keep = masters.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let mut buf = [0u8; 512];
                if let Ok((_, Some(fd))) = host::recv_with_fd(&conn, &mut buf) {
                    keep.lock().unwrap_or_else(|e| e.into_inner()).push(fd);
                }
            }
        });
        ConsoleSocket { path, masters }
    }

    fn arg(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    fn received(&self) -> usize {
        self.masters.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// The pty of a process that is not root belongs to its user, with the tty group devpts gives
/// it (runc: uid:5 with the default config), for the container's process and for `exec -t`.
#[test]
fn the_console_belongs_to_the_process_user() {
    let t = Test::new();
    let id = t.id().to_string();
    let mut b = t.sleeper(&id);
    b.set("/process/terminal", json!(true));
    b.set("/process/user", json!({"uid": 1000, "gid": 100}));
    let console = ConsoleSocket::new(t.path("console.sock"));
    t.create_with(&[], &b, &["--console-socket", &console.arg()])
        .ok();
    t.start(&id).ok();
    let probe = |path: &str| {
        let out = t.rt(&[
            "exec",
            "--user",
            "0:0",
            &id,
            "/probe",
            &format!("stat={path}"),
        ]);
        out.ok();
        out.probe_facts()["stat"][path].clone()
    };
    let st = probe("/dev/pts/0");
    assert_eq!(
        (st["uid"].clone(), st["gid"].clone()),
        (json!(1000), json!(5))
    );
    // exec -t: the next pty of the container's devpts.
    t.rt(&[
        "exec",
        "-t",
        "-d",
        "--console-socket",
        &console.arg(),
        "--user",
        "1000:100",
        &id,
        "sleep",
        "1000",
    ])
    .ok();
    assert!(wait_until(TIMEOUT, || console.received() == 2));
    let st = probe("/dev/pts/1");
    assert_eq!(
        (st["uid"].clone(), st["gid"].clone()),
        (json!(1000), json!(5))
    );
    t.delete_force(&id).ok();
    t.assert_nothing_left();
}

/// `state`, `list --format json` and `events --stats` print runc's field order (clients and
/// runc's suite match the text).
#[test]
fn json_fields_come_in_runcs_order() {
    let t = Test::new();
    let id = t.id().to_string();
    t.run_sleeper(&id);
    let state = t.state(&id);
    state.ok();
    assert!(
        state
            .stdout
            .trim_start()
            .starts_with("{\n  \"ociVersion\": \"")
            && state
                .stdout
                .contains(&format!("\"id\": \"{id}\",\n  \"pid\": ")),
        "{state}"
    );
    let list = t.rt(&["list", "--format", "json"]);
    list.ok();
    assert!(
        list.stdout
            .starts_with(&format!("[{{\"ociVersion\":\"{}", sealrun_oci(&state))),
        "{list}"
    );
    assert!(
        list.stdout.contains(&format!("\"id\":\"{id}\",\"pid\":")),
        "{list}"
    );
    let events = t.rt(&["events", "--stats", &id]);
    events.ok();
    assert!(
        events
            .stdout
            .starts_with(&format!("{{\"type\":\"stats\",\"id\":\"{id}\",\"data\":")),
        "{events}"
    );
    t.delete_force(&id).ok();
    t.assert_nothing_left();
}

/// The `ociVersion` a `state` output names.
fn sealrun_oci(state: &Out) -> String {
    state.json()["ociVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// `events` reports the OOM killer acting in the container's cgroup, with runc's text
/// `{"type":"oom","id":ID}`, and ends when the container is deleted.
#[test]
fn events_reports_oom() {
    let swap = Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
        || Path::new("/sys/fs/cgroup/memory.swap.max").exists()
        || Path::new("/sys/fs/cgroup/unified/memory.swap.max").exists();
    if !swap {
        return skip("no swap accounting: the memory hog would swap instead of meeting OOM");
    }
    let t = Test::new();
    let id = t.id().to_string();
    let mut b = t.sleeper(&id);
    b.set(
        "/linux/resources/memory",
        json!({"limit": 33554432, "swap": 33554432}),
    );
    t.run_detached(&b).ok();
    t.wait_status(&id, "running");
    let log = t.path("events.out");
    let mut events = t.command(&[], &["events", "--interval", "1s", &id]);
    events.stdout(fs::File::create(&log).unwrap());
    let mut events = events.spawn().expect("spawn events");
    let text = || fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_until(TIMEOUT, || text().contains("\"stats\"")),
        "{}",
        text()
    );
    t.rt(&[
        "exec",
        "-d",
        &id,
        "sh",
        "-c",
        "x=$(dd if=/dev/zero bs=64M count=1)",
    ])
    .ok();
    let oom = format!("{{\"type\":\"oom\",\"id\":\"{id}\"}}");
    let seen = wait_until(TIMEOUT, || text().contains(&oom));
    t.delete_force(&id).ok();
    let ended = wait_until(TIMEOUT, || matches!(events.try_wait(), Ok(Some(_))));
    if !ended {
        let _ = events.kill();
    }
    let _ = events.wait();
    assert!(seen, "no oom event:\n{}", text());
    assert!(ended, "events did not end after delete");
    t.assert_nothing_left();
}

/// A process whose environment lacks HOME gets its user's home from the container's
/// /etc/passwd (`/` for a user it does not list), in the container and in `exec`; a HOME the
/// config sets is kept.
#[test]
fn home_comes_from_the_containers_passwd() {
    let t = Test::new();
    let id = t.id().to_string();
    let mut b = t.sleeper(&id);
    b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
    t.run_detached(&b).ok();
    t.wait_status(&id, "running");
    let env_of = |args: &[&str]| {
        let mut a = vec!["exec"];
        a.extend_from_slice(args);
        let out = t.rt(&a);
        out.ok();
        out.probe_facts()["env"].clone()
    };
    let env = env_of(&[&id, "/probe"]);
    assert!(env.to_string().contains("\"HOME=/home/user\""), "{env}");
    let env = env_of(&["--user", "0", &id, "/probe"]);
    assert!(env.to_string().contains("\"HOME=/root\""), "{env}");
    let env = env_of(&["--user", "4242", &id, "/probe"]);
    assert!(env.to_string().contains("\"HOME=/\""), "{env}");
    let env = env_of(&["--env", "HOME=/x", &id, "/probe"]);
    assert!(env.to_string().contains("\"HOME=/x\""), "{env}");
    t.delete_force(&id).ok();
    // The container's own process.
    let mut b = t.bundle_for(&t.new_id("r"));
    b.set("/process/user", json!({"uid": 0, "gid": 0}));
    let f = t.probe(&b);
    assert!(
        f["env"].to_string().contains("\"HOME=/root\""),
        "{}",
        f["env"]
    );
    t.assert_nothing_left();
}

/// `run --keep`: the container that exited stays, stopped, with its cgroup, until `delete`.
#[test]
fn run_keep_leaves_the_stopped_container() {
    let t = Test::new();
    let id = t.id().to_string();
    let mut b = t.bundle_for(&id);
    b.args(&["true"]);
    t.run_with(&[], &b, &["--keep"]).ok();
    assert_eq!(t.status(&id), "stopped");
    assert!(
        !host::cgroup_dirs(&t.cgroups_path(&id)).is_empty(),
        "the cgroup is kept"
    );
    t.delete(&id).ok();
    t.state(&id).failed();
    t.assert_nothing_left();
}

/// `SCMP_ACT_NOTIFY` on `write` is refused up front with runc's words: the runtime's own writes
/// after loading the filter would wait for the agent forever.
#[test]
fn notify_on_write_is_refused() {
    let t = Test::new();
    let mut b = t.bundle();
    b.set(
        "/linux/seccomp",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": t.path("agent.sock"),
               "syscalls": [{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]}),
    );
    let out = t.run(&b);
    out.error_line(&["SCMP_ACT_NOTIFY cannot be used for the write syscall"]);
    t.assert_nothing_left();
}

/// createContainer hooks run in the container's root (relative paths name its files), as
/// runc runs them; a hook without `env` inherits an environment (PATH: hook scripts rely on
/// it), one with `env` gets exactly that.
#[test]
fn create_container_hooks_run_in_the_rootfs_with_the_runtimes_env() {
    let t = Test::new();
    let mut b = t.bundle();
    b.writable_root();
    let envs = t.path("hook-env");
    fs::create_dir_all(&envs).unwrap();
    let e = envs.display();
    b.set(
        "/hooks",
        json!({
            "createContainer": [
                {"path": "/bin/sh", "args": ["sh", "-c", "touch ./made-by-hook"]},
                {"path": "/bin/sh", "args": ["sh", "-c", format!("env > {e}/inherit")]},
                {"path": "/bin/sh", "args": ["sh", "-c", format!("env > {e}/own")],
                 "env": ["ONLY=this"]}
            ]
        }),
    );
    t.probe(&b);
    assert!(
        b.rootfs().join("made-by-hook").exists(),
        "cwd was not the rootfs"
    );
    let inherit = fs::read_to_string(envs.join("inherit")).unwrap();
    // runc gives a createContainer hook without env the environment of its init (the
    // container process's); sealrun the runtime's. Both carry a PATH.
    assert!(inherit.lines().any(|l| l.starts_with("PATH=")), "{inherit}");
    let own = fs::read_to_string(envs.join("own")).unwrap();
    assert!(
        own.contains("ONLY=this") && !own.contains("SEALRUN_TEST_MARK"),
        "{own}"
    );
    t.assert_nothing_left();
}

/// `ro` on the /dev tmpfs is applied after its submounts, device nodes and symlinks (runc
/// issue 3248): the container starts, /dev is read-only and /dev/pts is mounted.
#[test]
fn read_only_dev_comes_after_its_submounts() {
    let t = Test::new();
    let mut b = t.bundle();
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    for m in mounts.iter_mut() {
        if m["destination"] == "/dev" {
            m["options"].as_array_mut().unwrap().push(json!("ro"));
        }
    }
    let f = t.probe(&b);
    let mounts = f["mounts"].as_array().unwrap();
    let at = |p: &str| {
        mounts
            .iter()
            .rev()
            .find(|m| m["mount_point"] == p)
            .unwrap_or_else(|| panic!("no mount at {p}: {mounts:?}"))
    };
    let dev = at("/dev");
    assert!(
        dev["options"]
            .as_str()
            .unwrap()
            .split(',')
            .any(|o| o == "ro"),
        "{dev}"
    );
    at("/dev/pts");
    t.assert_nothing_left();
}

/// An exec process.json without `user` runs as 0:0 (runc reads the missing struct as zero).
#[test]
fn exec_process_json_without_user_runs_as_root() {
    let t = Test::new();
    let id = t.id().to_string();
    let mut b = t.sleeper(&id);
    b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
    t.run_detached(&b).ok();
    t.wait_status(&id, "running");
    let process = t.path("process.json");
    fs::write(
        &process,
        json!({"args": ["/probe"], "cwd": "/", "env": DEFAULT_ENV}).to_string(),
    )
    .unwrap();
    let out = t.rt(&["exec", "--process", process.to_str().unwrap(), &id]);
    out.ok();
    let f = out.probe_facts();
    assert_eq!(f["uid"][0], 0, "{}", f["uid"]);
    assert_eq!(f["gid"][0], 0, "{}", f["gid"]);
    t.delete_force(&id).ok();
    t.assert_nothing_left();
}

/// Error texts that runc's suite and clients match: a failed hook says "error running", a
/// missing seccomp agent "failed to connect with seccomp agent".
#[test]
fn hook_and_seccomp_agent_errors_use_runcs_words() {
    let t = Test::new();
    let mut b = t.bundle();
    b.set(
        "/hooks",
        json!({"startContainer": [{"path": "/bin/false", "args": ["false"]}]}),
    );
    t.run(&b)
        .error_line(&["error running hook", "startContainer"]);
    t.assert_nothing_left();
    let mut b = t.bundle_for(&t.new_id("agent"));
    b.set(
        "/linux/seccomp",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": t.path("no-agent.sock"),
               "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
    );
    t.run(&b)
        .error_line(&["failed to connect with seccomp agent"]);
    t.assert_nothing_left();
}

/// /proc or /sys as a symlink in the image is refused in runc's words.
#[test]
fn proc_and_sys_symlinks_are_refused_in_runcs_words() {
    for dir in ["proc", "sys"] {
        let t = Test::new();
        let b = t.bundle();
        fs::remove_dir(b.rootfs().join(dir)).expect("rmdir");
        std::os::unix::fs::symlink("/elsewhere", b.rootfs().join(dir)).expect("symlink");
        t.run(&b)
            .error_line(&[&format!("/{dir}"), "must be mounted on ordinary directory"]);
        t.assert_nothing_left();
    }
}

/// `exec --cgroup`: the process runs in a sub-cgroup of the container's (`PATH` for every
/// controller, `CTL:PATH` for one); a path leaving the container's cgroup, an unknown
/// controller or a missing directory is refused in runc's words.
#[test]
fn exec_cgroup_joins_a_sub_cgroup() {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
        || !Path::new("/sys/fs/cgroup/memory").is_dir()
    {
        return skip("v1 memory hierarchy needed (the v2 form is the same code with one path)");
    }
    let t = Test::new();
    let id = t.id().to_string();
    t.run_sleeper(&id);
    let rel = t.cgroups_path(&id);
    t.rt(&["exec", "--cgroup", "..", &id, "true"])
        .error_line(&[".. is not a sub cgroup path"]);
    t.rt(&["exec", "--cgroup", "whaaat:/", &id, "true"])
        .error_line(&["unknown controller"]);
    t.rt(&["exec", "--cgroup", "nonexistent", &id, "true"])
        .error_line(&["adding pid", "/nonexistent/cgroup.procs: no such file"]);
    let sub = Path::new("/sys/fs/cgroup/memory")
        .join(rel.trim_start_matches('/'))
        .join("submem");
    fs::create_dir(&sub).expect("mkdir sub-cgroup");
    let out = t.rt(&[
        "exec",
        "--cgroup",
        "memory:submem",
        &id,
        "cat",
        "/proc/self/cgroup",
    ]);
    let _ = fs::remove_dir(&sub);
    out.ok();
    assert!(
        out.stdout.contains(&format!(":memory:{rel}/submem\n")),
        "{out}"
    );
    assert!(out.stdout.contains(&format!(":pids:{rel}\n")), "{out}");
    let out = t.rt(&["exec", "--cgroup", "/", &id, "cat", "/proc/self/cgroup"]);
    out.ok();
    assert!(out.stdout.contains(&format!(":memory:{rel}\n")), "{out}");
    t.delete_force(&id).ok();
    t.assert_nothing_left();
}

/// `exec` into a container made from `sealrun spec`'s own config (its seccomp allowlist adds no
/// runtime refusal): the Plan written at create reads back (regression: a summary field left
/// out when empty was then required on read, and every such exec failed).
#[test]
fn exec_into_a_container_from_the_default_spec() {
    let t = Test::new();
    let id = t.id().to_string();
    let mut b = t.bundle_for(&id);
    b.use_sealrun_spec();
    b.set("/process/terminal", json!(false));
    b.args(&["sleep", "1000"]);
    t.run_detached(&b).ok();
    t.wait_status(&id, "running");
    t.rt(&["exec", &id, "true"]).ok();
    t.delete_force(&id).ok();
    t.assert_nothing_left();
}

/// Help for a command that does not exist: runc's words, non-zero exit.
#[test]
fn help_for_an_unknown_command() {
    let t = Test::new();
    t.rt(&["foo", "-h"])
        .error_line(&["No help topic for 'foo'"]);
}

/// A startContainer hook killed by the container's seccomp profile (it runs after the filter
/// is loaded) is reported with runc's words: "error running hook" and "bad system call".
#[test]
fn hook_killed_by_seccomp_says_bad_system_call() {
    let t = Test::new();
    let mut b = t.bundle();
    b.args(&["true"]);
    b.set(
        "/linux/seccomp",
        json!({"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_KILL_PROCESS"}]}),
    );
    b.set(
        "/hooks",
        json!({"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "mkdir /tmp/x"]}]}),
    );
    t.run(&b)
        .error_line(&["error running hook", "bad system call"]);
    t.assert_nothing_left();
}

/// Device access letters runc tolerates (it keeps r, w and m) are accepted with a warning;
/// an access string with none of r, w, m is still refused.
#[test]
fn device_access_letters_runc_tolerates() {
    let t = Test::new();
    let mut b = t.bundle();
    b.set(
        "/linux/resources/devices",
        json!([{"allow": false, "access": "rwm"},
               {"allow": false, "type": "c", "major": 1, "minor": 11, "access": "rwa"}]),
    );
    t.probe(&b);
    if is_sealrun() {
        let warned = t.report().messages("warning").join("\n");
        assert!(warned.contains("devices[1].access"), "{warned}");
    }
    t.assert_nothing_left();
    if !is_sealrun() {
        // runc runs even a rule whose access has no meaningful letter.
        return skip_part(&sealrun_only("a device rule without r, w or m is refused"));
    }
    let mut b = t.bundle_for(&t.new_id("bad"));
    b.set(
        "/linux/resources/devices",
        json!([{"allow": false, "type": "c", "major": 1, "minor": 11, "access": "xyz"}]),
    );
    t.run(&b).error_line(&["devices[0].access"]);
    t.assert_nothing_left();
}

#[path = "conform/gaps.rs"]
mod gaps;

#[path = "conform/fixes.rs"]
mod fixes;

#[path = "conform/caps.rs"]
mod caps;
