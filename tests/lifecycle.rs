//! Lifecycle: create blocks until start, pid files, state, run (foreground exit codes,
//! --detach), kill (signal forms, --all), delete, list, subreaper and stdio inheritance.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;

use common::*;
use serde_json::{json, Value};

/// A container that says "ready" and then waits for signals; traps TERM and USR1.
const WAITER: &str = "trap 'echo got-term; exit 0' TERM; trap 'echo got-usr1' USR1; \
                      echo ready; while true; do sleep 0.05; done";

/// Run the [`WAITER`] as container `id` (detached) and wait until it is ready for signals.
#[track_caller]
fn run_waiter(t: &Test, id: &str) {
    let mut b = t.bundle_for(id);
    b.sh(WAITER);
    t.run_detached(&b).ok();
    t.wait_output(id, "ready");
}

#[test]
fn create_blocks_until_start_and_start_releases() {
    let t = Test::new();
    let id = t.id();
    let b = t.bundle();
    let out = t.create(&b);
    out.ok();
    assert!(
        out.stdout.is_empty(),
        "create prints nothing on stdout:\n{out}"
    );
    let pid = t.pid_of(id);
    assert_eq!(t.status(id), "created");
    // The init waits before execve: it is not the probe yet, and printed nothing.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("init is alive");
    assert!(
        !String::from_utf8_lossy(&cmdline).starts_with("/probe"),
        "the process must not exec before start"
    );
    assert_eq!(t.output(id).0, "", "nothing runs before start");
    let out = t.start(id);
    out.ok();
    assert!(
        out.stdout.is_empty(),
        "start prints nothing on stdout:\n{out}"
    );
    let stdout = t.wait_output(id, "\n");
    let facts: Value = serde_json::from_str(stdout.trim()).expect("probe JSON");
    assert_eq!(facts["pid"], 1, "the process is pid 1 of its pid namespace");
    assert_eq!(facts["args"], serde_json::json!(["/probe"]));
    t.wait_status(id, "stopped");
    t.delete(id).ok();
    t.assert_nothing_left();
}

#[test]
fn pid_file_holds_the_host_pid_without_newline() {
    let t = Test::new();
    t.create_sleeper(t.id());
    let raw = std::fs::read_to_string(t.pid_file(t.id())).expect("pid file");
    assert!(
        !raw.is_empty() && raw.bytes().all(|c| c.is_ascii_digit()),
        "{raw:?}"
    );
    let pid: i64 = raw.parse().unwrap();
    assert_eq!(t.state_json(t.id())["pid"], pid);
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    t.delete_force(t.id()).ok();
    t.assert_nothing_left();
}

#[test]
fn state_reports_created_running_stopped() {
    let t = Test::new();
    let id = t.id();
    let b = t.create_sleeper(id);
    let pid = t.pid_of(id);
    let s = t.state_json(id);
    assert!(
        s["ociVersion"].as_str().unwrap_or("").starts_with("1."),
        "{s}"
    );
    assert_eq!(s["id"], id);
    assert_eq!(s["status"], "created");
    assert_eq!(s["pid"], pid);
    let bundle = std::fs::canonicalize(&b.dir).unwrap();
    assert_eq!(s["bundle"], bundle.to_string_lossy().as_ref());
    t.start(id).ok();
    let s = t.state_json(id);
    assert_eq!(s["status"], "running");
    assert_eq!(s["pid"], pid, "start keeps the same process");
    t.kill(id, "KILL").ok();
    t.wait_status(id, "stopped");
    let s = t.state_json(id);
    assert_eq!(s["id"], id);
    t.delete(id).ok();
    let out = t.state(id);
    out.error_line(&[id]);
    t.assert_nothing_left();
}

#[test]
fn run_returns_the_exit_code() {
    let t = Test::new();
    for code in [0, 3, 42] {
        let id = t.new_id("c");
        let mut b = t.bundle_for(&id);
        b.sh(&format!(
            "echo out-{code}; echo err-{code} >&2; exit {code}"
        ));
        let out = t.run(&b);
        assert_eq!(out.code(), Some(code), "{out}");
        assert!(out.stdout.contains(&format!("out-{code}")), "{out}");
        assert!(out.stderr.contains(&format!("err-{code}")), "{out}");
    }
    t.assert_nothing_left();
}

#[test]
fn run_returns_128_plus_signal() {
    let t = Test::new();
    for (sig, n) in [("KILL", 9), ("TERM", 15), ("USR1", 10)] {
        let id = t.new_id("s");
        let mut b = t.bundle_for(&id);
        // Not pid 1: the kernel protects a pid namespace's init from its own signals.
        b.remove_namespace("pid");
        b.sh(&format!("kill -{sig} $$; sleep 10"));
        let out = t.run(&b);
        assert_eq!(out.code(), Some(128 + n), "SIG{sig}: {out}");
    }
    t.assert_nothing_left();
}

#[test]
fn run_killed_from_outside_returns_137() {
    let t = Test::new();
    let id = t.id().to_string();
    let mut b = t.bundle();
    b.sh("echo ready; exec sleep 1000");
    let out = std::thread::scope(|s| {
        let runner = s.spawn(|| t.run(&b));
        let ok = wait_until(TIMEOUT, || {
            t.state(&id).success() && t.status(&id) == "running"
        });
        assert!(ok, "container never ran");
        t.kill(&id, "KILL").ok();
        runner.join().expect("run thread")
    });
    assert_eq!(out.code(), Some(137), "{out}");
    t.assert_nothing_left();
}

#[test]
fn run_detach_returns_while_the_container_runs() {
    let t = Test::new();
    let id = t.id();
    run_waiter(&t, id);
    let s = t.state_json(id);
    assert_eq!(s["status"], "running");
    assert_eq!(s["pid"], t.pid_of(id));
    t.kill(id, "TERM").ok();
    t.wait_output(id, "got-term");
    t.wait_status(id, "stopped");
    t.delete(id).ok();
    t.assert_nothing_left();
}

#[test]
fn kill_accepts_signal_names_and_numbers() {
    let t = Test::new();
    for sig in ["SIGTERM", "TERM", "15", "sigterm"] {
        if sig == "sigterm" && !is_sealrun() {
            continue; // lower case is a sealrun nicety
        }
        let id = t.new_id("k");
        run_waiter(&t, &id);
        t.kill(&id, sig).ok();
        t.wait_output(&id, "got-term");
        t.wait_status(&id, "stopped");
        t.delete(&id).ok();
    }
    t.assert_nothing_left();
}

#[test]
fn kill_defaults_to_sigterm_and_delivers_other_signals() {
    let t = Test::new();
    let id = t.id();
    run_waiter(&t, id);
    t.kill(id, "USR1").ok();
    t.wait_output(id, "got-usr1");
    assert_eq!(t.status(id), "running", "USR1 is trapped");
    t.rt(&["kill", id]).ok();
    t.wait_output(id, "got-term");
    t.wait_status(id, "stopped");
    t.delete(id).ok();
    t.assert_nothing_left();
}

#[test]
fn kill_all_reaches_every_process() {
    let t = Test::new();
    let id = t.id();
    let mut b = t.bundle();
    // Without a pid namespace, killing the first process leaves its children: only --all
    // (through the cgroup) reaches them.
    b.remove_namespace("pid");
    b.sh("sleep 1000 & echo child=$!; echo ready; wait");
    t.run_detached(&b).ok();
    let out = t.wait_output(id, "ready");
    let child: i32 = out
        .lines()
        .find_map(|l| l.strip_prefix("child="))
        .and_then(|p| p.trim().parse().ok())
        .expect("child pid");
    t.track_pid(child);
    t.rt(&["kill", "--all", id, "KILL"]).ok();
    let gone = wait_until(TIMEOUT, || {
        !Path::new(&format!("/proc/{child}")).exists()
            || std::fs::read_to_string(format!("/proc/{child}/stat"))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true)
    });
    assert!(gone, "kill --all must reach the container's child {child}");
    t.wait_status(id, "stopped");
    t.delete(id).ok();
    t.assert_nothing_left();
}

#[test]
fn delete_removes_a_stopped_container() {
    let t = Test::new();
    let id = t.id();
    t.run_stopped(id);
    let out = t.delete(id);
    out.ok();
    assert!(out.stdout.is_empty(), "{out}");
    t.state(id).error_line(&[id]);
    let list = t.rt(&["list", "-q"]);
    list.ok();
    assert!(!list.stdout.contains(id), "{list}");
    t.assert_nothing_left();
}

#[test]
fn delete_force_kills_created_and_running_containers() {
    let t = Test::new();
    let created = t.new_id("c");
    t.create_sleeper(&created);
    let running = t.new_id("r");
    t.run_sleeper(&running);
    t.delete_force(&created).ok();
    t.delete_force(&running).ok();
    t.assert_nothing_left();
}

#[test]
fn list_prints_table_json_and_quiet() {
    let t = Test::new();
    let a = t.new_id("a");
    t.create_sleeper(&a);
    let r = t.new_id("b");
    let b2 = t.run_sleeper(&r);

    let table = t.rt(&["list"]);
    table.ok();
    let mut lines = table.stdout.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
        "{table}"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    let row = |id: &str| {
        rows.iter()
            .find(|r| r.first() == Some(&id))
            .unwrap_or_else(|| panic!("no row for {id}:\n{table}"))
            .clone()
    };
    assert_eq!(row(&a)[1], t.pid_of(&a).to_string());
    assert_eq!(row(&a)[2], "created");
    assert_eq!(row(&r)[2], "running");
    assert_eq!(
        row(&r)[3],
        std::fs::canonicalize(&b2.dir).unwrap().to_str().unwrap()
    );

    let json = t.rt(&["list", "--format", "json"]);
    json.ok();
    let v = json.json();
    let arr = v.as_array().expect("list json is an array");
    assert_eq!(arr.len(), 2, "{json}");
    for e in arr {
        for k in ["id", "pid", "status", "bundle", "created"] {
            assert!(e.get(k).is_some(), "{k} missing in {e}");
        }
    }
    let st = |id: &str| arr.iter().find(|e| e["id"] == id).expect("entry")["status"].clone();
    assert_eq!(st(&a), "created");
    assert_eq!(st(&r), "running");

    let q = t.rt(&["list", "-q"]);
    q.ok();
    let mut ids: Vec<&str> = q.stdout.lines().collect();
    ids.sort();
    let mut want = vec![a.as_str(), r.as_str()];
    want.sort();
    assert_eq!(ids, want, "{q}");

    t.delete_force(&a).ok();
    t.delete_force(&r).ok();
    let empty = t.rt(&["list", "--format", "json"]);
    empty.ok();
    let v: Value = serde_json::from_str(empty.stdout.trim()).unwrap_or(Value::Null);
    assert!(
        v.as_array().is_none_or(|a| a.is_empty()),
        "no containers left: {empty}"
    );
    t.assert_nothing_left();
}

#[test]
fn init_is_reparented_to_the_callers_subreaper_and_keeps_its_stdio() {
    let t = Test::new();
    let id = t.id();
    let b = t.bundle();
    b.write();
    let out_file = t.path("reaper.out");
    let err_file = t.path("reaper.err");
    let pid_file = t.pid_file(id);
    let rt = t.command(
        &[],
        &[
            "create",
            "--bundle",
            b.dir.to_str().unwrap(),
            "--pid-file",
            pid_file.to_str().unwrap(),
            id,
        ],
    );
    // The reaper: a shell that is a child subreaper, runs `create`, then reports (in
    // $REPORT, so the container's stdio stay the files) the init's parent and fds 0-2.
    let script = r#"
        "$@" || exit 1
        pid=$(cat "$PIDFILE")
        {
            echo "reaper=$$"
            echo "ppid=$(awk '/^PPid:/ {print $2}' /proc/$pid/status)"
            echo "fd0=$(readlink /proc/$pid/fd/0)"
            echo "fd1=$(readlink /proc/$pid/fd/1)"
            echo "fd2=$(readlink /proc/$pid/fd/2)"
        } > "$REPORT"
    "#;
    let report = t.path("reaper.report");
    let mut sh = std::process::Command::new("/bin/sh");
    sh.arg("-c")
        .arg(script)
        .arg("sh")
        .arg(rt.get_program())
        .args(rt.get_args())
        .env("PIDFILE", &pid_file)
        .env("REPORT", &report)
        .env("SEALRUN_TEST_MARK", &t.mark)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(std::fs::File::create(&err_file).unwrap());
    // SAFETY: between fork and exec the closure only calls prctl, which is
    // async-signal-safe, and touches no memory of the parent.
    unsafe {
        sh.pre_exec(|| {
            if libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status = sh.status().expect("run reaper shell");
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    assert!(
        status.success(),
        "reaper failed: {text}\n{}",
        std::fs::read_to_string(&err_file).unwrap_or_default()
    );
    t.track_pid(t.pid_of(id));
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} missing in {text}"))
            .to_string()
    };
    assert_eq!(
        get("ppid"),
        get("reaper"),
        "init reparented to the subreaper"
    );
    assert_eq!(get("fd0"), "/dev/null");
    assert_eq!(get("fd1"), out_file.to_str().unwrap());
    assert_eq!(get("fd2"), err_file.to_str().unwrap());
    t.start(id).ok();
    let got = wait_until(TIMEOUT, || {
        std::fs::read_to_string(&out_file).is_ok_and(|s| s.contains("\"pid\":1"))
    });
    assert!(got, "the probe writes to the caller's stdout");
    t.wait_status(id, "stopped");
    t.delete(id).ok();
    t.assert_nothing_left();
}

#[test]
fn run_foreground_leaves_nothing() {
    let t = Test::new();
    let mut b = t.bundle();
    b.args(&["true"]);
    t.run(&b).ok();
    t.state(t.id()).error_line(&[t.id()]);
    t.assert_nothing_left();
}

#[test]
fn start_does_not_wait_for_the_process() {
    let t = Test::new();
    let id = t.id();
    let mut b = t.bundle();
    b.sh("echo started; exec sleep 1000");
    t.create(&b).ok();
    t.start(id).ok();
    t.wait_output(id, "started");
    assert_eq!(t.status(id), "running");
    t.delete_force(id).ok();
    t.assert_nothing_left();
}

/// Run `cmd` with `files` as its fds 3, 4, ... (inherited across exec).
fn with_fds(cmd: &mut std::process::Command, files: Vec<std::fs::File>) {
    use std::os::fd::AsRawFd;
    let raw: Vec<i32> = files.iter().map(|f| f.as_raw_fd()).collect();
    // Keep the files open until the command is spawned (they are dropped with the closure).
    let keep = files;
    // SAFETY: between fork and exec the closure only calls dup/dup2/fcntl (async-signal-safe)
    // on descriptor numbers captured by copy; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            let _ = &keep;
            // Move the sources out of the way first, then dup2 onto 3, 4, ... (dup2 clears
            // FD_CLOEXEC on the new descriptor).
            let mut high = [0i32; 8];
            for (i, fd) in raw.iter().enumerate() {
                high[i] = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 100);
                if high[i] < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, fd) in high.iter().take(raw.len()).enumerate() {
                if libc::dup2(*fd, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

#[test]
fn preserve_fds_passes_extra_descriptors() {
    let t = Test::new();
    let mut opened = Vec::new();
    for preserve in [0, 2] {
        let id = t.new_id("p");
        let b = t.bundle_for(&id);
        b.write();
        let files: Vec<std::fs::File> = ["extra-a", "extra-b"]
            .iter()
            .map(|n| std::fs::File::create(t.path(n)).unwrap())
            .collect();
        let n = preserve.to_string();
        let dir = b.dir.to_string_lossy().into_owned();
        let mut c = t.command(&[], &["run", "--preserve-fds", &n, "--bundle", &dir, &id]);
        with_fds(&mut c, files);
        let (out, _, _) = t.exec(c);
        out.ok();
        opened.push(out.probe_facts()["fds"].clone());
    }
    let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(
        keys(&opened[0]),
        ["0", "1", "2"],
        "nothing leaks without --preserve-fds"
    );
    assert_eq!(keys(&opened[1]), ["0", "1", "2", "3", "4"]);
    assert!(
        opened[1]["3"].as_str().unwrap().ends_with("extra-a"),
        "{}",
        opened[1]
    );
    assert!(
        opened[1]["4"].as_str().unwrap().ends_with("extra-b"),
        "{}",
        opened[1]
    );
    t.assert_nothing_left();
}

#[test]
fn no_pivot_runs_the_container() {
    let t = Test::new();
    let mut b = t.bundle();
    b.probe_args(&["ls=/", "write=/x"]);
    let out = t.run_with(&[], &b, &["--no-pivot"]);
    out.ok();
    let f = out.probe_facts();
    assert!(f["ls"]["/"].as_array().unwrap().contains(&json!("probe")));
    assert_eq!(f["write"]["/x"]["errno"], 30, "still a read-only root");
    assert_eq!(f["cwd"], "/");
    t.assert_nothing_left();
}

/// Receive one fd sent with SCM_RIGHTS on a connected unix socket.
fn receive_fd(conn: &std::os::unix::net::UnixStream) -> std::os::fd::OwnedFd {
    let mut buf = [0u8; 512];
    host::recv_with_fd(conn, &mut buf)
        .expect("recvmsg on the console socket")
        .1
        .expect("no fd received on the console socket")
}

#[test]
fn console_socket_receives_the_pty_master() {
    let t = Test::new();
    let id = t.id();
    let mut b = t.bundle();
    b.set("/process/terminal", json!(true));
    b.sh("/probe; sleep 1000");
    let sock_path = t.path("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let sock = sock_path.to_str().unwrap().to_string();
    let master = std::thread::scope(|s| {
        let accept = s.spawn(|| {
            let (conn, _) = listener.accept().expect("the runtime connects");
            receive_fd(&conn)
        });
        t.create_with(&[], &b, &["--console-socket", &sock]).ok();
        accept.join().expect("console thread")
    });
    t.start(id).ok();
    // Read the probe's report from the pty master.
    let mut master = std::fs::File::from(master);
    let mut text = String::new();
    let got = wait_until(TIMEOUT, || {
        let mut buf = [0u8; 65536];
        if let Ok(n) = std::io::Read::read(&mut master, &mut buf) {
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        text.contains("\"mounts\"") && text.trim_end().ends_with('}')
    });
    assert!(got, "probe report through the pty: {text}");
    let line = text.lines().find(|l| l.starts_with('{')).unwrap();
    let f: Value = serde_json::from_str(line.trim()).expect("probe JSON");
    assert_ne!(f["tty_nr"], 0, "the process has a controlling terminal");
    assert_eq!(f["sid"], 1, "the container process leads the session");
    for fd in ["0", "1", "2"] {
        assert!(
            f["fds"][fd].as_str().unwrap().starts_with("/dev/pts/"),
            "{}",
            f["fds"]
        );
    }
    t.delete_force(id).ok();
    t.assert_nothing_left();
}

/// `cmd` as one shell line (for `sh -c` and `script -c`); the test's paths need no quoting
/// beyond single quotes.
fn shell_line(cmd: &std::process::Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `cmd` run by `sh -c "<setup>; exec <cmd>"` (its environment and cwd kept).
fn through_sh(cmd: &std::process::Command, setup: &str) -> std::process::Command {
    let mut sh = std::process::Command::new("/bin/sh");
    sh.args(["-c", &format!("{setup}; exec {}", shell_line(cmd))]);
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            sh.env(k, v);
        }
    }
    if let Some(dir) = cmd.get_current_dir() {
        sh.current_dir(dir);
    }
    sh.stdin(std::process::Stdio::null());
    sh
}

#[test]
fn run_with_a_terminal_proxies_it() {
    if !is_sealrun() {
        // runc 1.1.5 needs a terminal on its own stdin for `run` with terminal: true.
        return skip(&sealrun_only(
            "run proxies the pty without a console socket",
        ));
    }
    let Some(script) = which("script") else {
        return skip(&sealrun_only(
            "util-linux `script` is not installed (it gives the runtime a tty)",
        ));
    };
    let t = Test::new();
    let mut b = t.bundle();
    b.set("/process/terminal", json!(true));
    b.write();
    let dir = b.dir.to_string_lossy().into_owned();
    // The runtime's own stdin must be a terminal to proxy to: `script` gives it one.
    let run = t.command(&[], &["run", "--bundle", &dir, &b.id]);
    let mut cmd = std::process::Command::new(script);
    cmd.args(["-q", "-e", "-c", &shell_line(&run), "/dev/null"])
        .env("SEALRUN_TEST_MARK", &t.mark)
        .stdin(std::process::Stdio::null());
    let out = t.exec(cmd).0;
    out.ok();
    // `script` may echo a control character (its stdin's end, ^D or ^@) ahead of the JSON.
    let line = out
        .stdout
        .lines()
        .find_map(|l| l.find("{\"").map(|i| &l[i..]))
        .expect("probe output");
    let f: Value = serde_json::from_str(line.trim()).unwrap();
    assert_ne!(f["tty_nr"], 0);
    assert!(f["fds"]["1"].as_str().unwrap().starts_with("/dev/pts/"));
    t.assert_nothing_left();
}

#[test]
fn state_files_are_private_whatever_the_umask() {
    if !is_sealrun() {
        return skip(&sealrun_only("the layout of the state directory"));
    }
    let t = Test::new();
    let b = t.sleeper(t.id());
    b.write();
    let dir = b.dir.to_string_lossy().into_owned();
    let pid_file = t.pid_file(&b.id).to_string_lossy().into_owned();
    let create = t.command(
        &[],
        &["create", "--bundle", &dir, "--pid-file", &pid_file, &b.id],
    );
    let out = t.exec(through_sh(&create, "umask 0")).0;
    out.ok();
    t.track_pid(t.pid_of(&b.id));
    let mode = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    };
    assert_eq!(mode(&t.root), 0o700, "--root");
    let state_dir = t.root.join(&b.id);
    assert_eq!(mode(&state_dir), 0o700, "{}", state_dir.display());
    let mut files = 0;
    for e in std::fs::read_dir(&state_dir).unwrap().flatten() {
        if e.file_type().unwrap().is_file() {
            assert_eq!(mode(&e.path()), 0o600, "{}", e.path().display());
            files += 1;
        }
    }
    assert!(files >= 2, "state.json and config.json at least");
    t.delete_force(&b.id).ok();
    t.assert_nothing_left();
}

#[test]
fn relative_pid_file_is_the_callers_and_hooks_run_in_the_bundle() {
    let t = Test::new();
    let mut b = t.sleeper(t.id());
    let hook_out = t.path("hook-cwd");
    let record = format!("pwd > {}", hook_out.display());
    b.set(
        "/hooks",
        json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", record]}]}),
    );
    b.write();
    let caller = t.path("caller-cwd");
    std::fs::create_dir_all(&caller).unwrap();
    let dir = b.dir.to_string_lossy().into_owned();
    let mut create = t.command(
        &[],
        &["create", "--bundle", &dir, "--pid-file", "rel.pid", &b.id],
    );
    create.current_dir(&caller);
    let out = t.exec(create).0;
    out.ok();
    let pid_file = caller.join("rel.pid");
    let in_bundle = b.dir.join("rel.pid");
    if let Ok(text) = std::fs::read_to_string(&pid_file) {
        t.track_pid(text.trim().parse().expect("pid"));
    }
    if let Ok(text) = std::fs::read_to_string(&in_bundle) {
        t.track_pid(text.trim().parse().expect("pid"));
    }
    assert!(
        pid_file.exists(),
        "the relative --pid-file resolves against the caller's cwd"
    );
    assert!(!in_bundle.exists(), "the pid file landed in the bundle");
    let bundle = std::fs::canonicalize(&b.dir).unwrap();
    assert_eq!(
        std::fs::read_to_string(&hook_out).unwrap().trim(),
        bundle.to_str().unwrap(),
        "hooks run with the bundle as cwd"
    );
    t.delete_force(&b.id).ok();
    t.assert_nothing_left();
}
