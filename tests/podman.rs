//! sealrun under the real podman (Debian's 4.3, with conmon), through `podman --runtime`.
//!
//! Each test gets a podman of its own: `--root`, `--runroot`, `--tmpdir`, containers.conf,
//! storage.conf, registries and policy under a temp dir; cgroupfs manager, file events, vfs
//! storage, file locks, no network; containers run from a busybox root filesystem built by the
//! test (`--rootfs`) or from an image made of it with `podman import`. conmon then drives the
//! runtime as it drives runc in production: `create --bundle … --pid-file …`, `start`, `exec
//! --process … --detach --pid-file …`, console sockets for terminals, `kill`, `pause`,
//! `resume`, `delete`, the `checkpoint --help` probe, errors read from stderr or (with
//! `runtime_supports_json`) from a `--log` JSON file.
//!
//! The runtime is sealrun unless `SEALRUN_TEST_RUNTIME` names another one (e.g. `runc`): the same
//! tests must pass against runc, which shows they measure the runtime and not the harness.
//!
//! Needs root and the Debian packages podman (with conmon), busybox-static and util-linux
//! (`script`, `unshare`).

#[path = "podman/harness.rs"]
mod harness;
#[path = "common/run.rs"]
mod run;
#[path = "common/skip.rs"]
mod skip;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use harness::{runtime_is_sealrun, runtime_state_dir, wait_for, Options, Podman, Run};

/// The container's frozen state as the host's cgroup filesystem shows it (v1 freezer, else
/// cgroup2's cgroup.freeze).
fn frozen(pm: &Podman, id: &str) -> bool {
    let dirs = pm.container_cgroups(id);
    if let Some(d) = dirs
        .iter()
        .find(|d| d.starts_with("/sys/fs/cgroup/freezer"))
    {
        return fs::read_to_string(d.join("freezer.state")).unwrap().trim() == "FROZEN";
    }
    let d = dirs
        .iter()
        .find(|d| d.join("cgroup.freeze").exists())
        .unwrap_or_else(|| panic!("no freezer cgroup for {id} in {dirs:?}"));
    fs::read_to_string(d.join("cgroup.freeze")).unwrap().trim() == "1"
}

/// Waits until the container's log contains `text`.
fn wait_log(pm: &Podman, name: &str, text: &str) -> String {
    wait_for(&format!("{text:?} in the log of {name}"), || {
        let r = pm.run(&["logs", name]);
        (r.stdout.contains(text) || r.stderr.contains(text)).then_some(r.stdout)
    })
}

/// Asserts what a removed container must not leave: runtime state, cgroups.
fn assert_gone(pm: &Podman, id: &str) {
    let state = runtime_state_dir(id);
    assert!(!state.exists(), "runtime state left: {}", state.display());
    let cgroups = pm.container_cgroups(id);
    assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
}

#[test]
fn run_prints_output_and_returns_the_exit_status() {
    let pm = Podman::new("run");
    let r = pm.run(&pm.with_rootfs(
        "run",
        &["--rm"],
        &["sh", "-c", "echo to-stdout; echo to-stderr >&2"],
    ));
    assert!(r.ok(), "{r}");
    assert_eq!(r.out(), "to-stdout", "{r}");
    assert!(r.stderr.contains("to-stderr"), "{r}");

    let r = pm.run(&pm.with_rootfs("run", &["--rm"], &["sh", "-c", "exit 3"]));
    assert_eq!(r.code, Some(3), "{r}");

    let r = pm.run(&pm.with_rootfs(
        "run",
        &[
            "--rm",
            "-e",
            "GREETING=hello",
            "-w",
            "/tmp",
            "--hostname",
            "box",
            "-u",
            "65534:65534",
        ],
        &[
            "sh",
            "-c",
            "echo $GREETING $(pwd) $(hostname) $(id -u) $(id -g)",
        ],
    ));
    assert!(r.ok(), "{r}");
    assert_eq!(r.out(), "hello /tmp box 65534 65534", "{r}");

    // stdin reaches the container (-i).
    let r = pm.run_input(
        &pm.with_rootfs("run", &["--rm", "-i"], &["sh", "-c", "cat; echo end"]),
        b"piped in\n",
    );
    assert!(r.ok(), "{r}");
    assert_eq!(r.out(), "piped in\nend", "{r}");

    let r = pm.ok(&["ps", "-a", "--format", "{{.ID}}"]);
    assert_eq!(r.out(), "", "--rm containers left behind: {r}");
}

#[test]
fn run_from_an_imported_image() {
    let pm = Podman::new("image");
    let image = pm.import_image("sealrun-busybox");
    let r = pm.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(r.stdout.contains(&image), "{r}");
    let mut args = vec!["run".to_string(), "--rm".into()];
    args.extend(pm.container_flags());
    args.extend([
        image,
        "sh".into(),
        "-c".into(),
        "echo from-image; exit 4".into(),
    ]);
    let r = pm.run(&args);
    assert_eq!(r.code, Some(4), "{r}");
    assert_eq!(r.out(), "from-image", "{r}");
}

#[test]
fn lifecycle_states_through_create_init_start_wait_rm() {
    let pm = Podman::new("lifecycle");
    let script = "echo started; while [ ! -e /tmp/go ]; do sleep 0.1; done; exit 7";
    let r = pm.ok(&pm.with_rootfs("create", &["--name", "c"], &["sh", "-c", script]));
    let id = r.out();
    assert_eq!(pm.inspect("c", "{{.State.Status}}"), "created");

    // `podman init` runs the runtime's `create`: the runtime holds a created container.
    pm.ok(&["init", "c"]);
    let mut state = std::process::Command::new(&pm.runtime);
    state.args(["state", &id]);
    let st = harness::run(state);
    assert!(st.ok(), "{st}");
    let v: serde_json::Value = serde_json::from_str(&st.stdout).unwrap();
    assert_eq!(v["status"], "created", "{st}");
    assert!(v["pid"].as_i64().unwrap_or(0) > 0, "{st}");

    pm.ok(&["start", "c"]);
    assert_eq!(pm.inspect("c", "{{.State.Status}}"), "running");
    let pid: i64 = pm.inspect("c", "{{.State.Pid}}").parse().unwrap();
    let mut state = std::process::Command::new(&pm.runtime);
    state.args(["state", &id]);
    let st = harness::run(state);
    let v: serde_json::Value = serde_json::from_str(&st.stdout).unwrap();
    assert_eq!(v["status"], "running", "{st}");
    assert_eq!(v["pid"].as_i64(), Some(pid), "{st}");
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    let r = pm.ok(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(r.out().starts_with("c Up"), "{r}");
    wait_log(&pm, "c", "started");

    pm.ok(&["exec", "c", "touch", "/tmp/go"]);
    let r = pm.ok(&["wait", "c"]);
    assert_eq!(r.out(), "7", "{r}");
    assert_eq!(
        pm.inspect("c", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 7"
    );
    let r = pm.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(r.out().starts_with("c Exited (7)"), "{r}");

    // Starting it again re-creates it in the runtime under the same id (the old one was
    // deleted); attached, podman returns its exit status.
    let r = pm.run(&["start", "-a", "c"]);
    assert_eq!(r.code, Some(7), "{r}");
    assert!(r.stdout.contains("started"), "{r}");

    // The log holds what the container printed and nothing else: conmon gives the runtime's
    // `create` the container's stdio, so anything the runtime writes to stderr would be there.
    let r = pm.ok(&["logs", "c"]);
    assert_eq!(r.out(), "started\nstarted", "{r}");
    assert_eq!(r.stderr, "", "{r}");

    pm.ok(&["rm", "c"]);
    assert_gone(&pm, &id);
    let r = pm.ok(&["ps", "-a", "--format", "{{.ID}}"]);
    assert_eq!(r.out(), "", "{r}");
}

#[test]
fn exec_runs_in_the_container() {
    let pm = Podman::new("exec");
    pm.run_detached("c", &["-e", "FROM_RUN=yes"], &["sleep", "1000"]);

    let r = pm.run(&["exec", "c", "sh", "-c", "echo exec-ok; exit 5"]);
    assert_eq!(r.code, Some(5), "{r}");
    assert_eq!(r.out(), "exec-ok", "{r}");

    // The exec'd process sees the container's pid namespace (pid 1 is its sleep).
    let r = pm.ok(&["exec", "c", "cat", "/proc/1/cmdline"]);
    assert_eq!(r.stdout.replace('\0', " ").trim(), "sleep 1000", "{r}");

    let r = pm.ok(&[
        "exec",
        "-u",
        "65534:65534",
        "-w",
        "/tmp",
        "-e",
        "EXTRA=1",
        "c",
        "sh",
        "-c",
        "echo $(id -u) $(id -g) $(pwd) $EXTRA $FROM_RUN",
    ]);
    assert_eq!(r.out(), "65534 65534 /tmp 1 yes", "{r}");

    let r = pm.run_input(
        &["exec", "-i", "c", "sh", "-c", "cat; echo end"],
        b"to exec\n",
    );
    assert!(r.ok(), "{r}");
    assert_eq!(r.out(), "to exec\nend", "{r}");

    // A detached exec keeps running inside the container.
    pm.ok(&["exec", "-d", "c", "sleep", "999"]);
    wait_for("the detached exec in the container", || {
        pm.ok(&["exec", "c", "ps", "-o", "args"])
            .stdout
            .contains("sleep 999")
            .then_some(())
    });

    let r = pm.run(&["exec", "c", "/nonexistent"]);
    assert_eq!(r.code, Some(127), "{r}");
    let r = pm.run(&["exec", "c", "/etc/passwd"]);
    assert_eq!(r.code, Some(126), "{r}");
}

#[test]
fn terminals_for_run_and_exec() {
    let pm = Podman::new("tty");
    let probe = "tty; [ -t 0 ] && [ -t 1 ] && echo stdio-is-a-tty; echo TERM=$TERM";
    let r = pm.run_pty(&pm.with_rootfs("run", &["--rm", "-t"], &["sh", "-c", probe]));
    assert!(r.ok(), "{r}");
    let out = r.out();
    assert!(out.contains("/dev/pts/"), "{r}");
    assert!(out.contains("stdio-is-a-tty"), "{r}");
    assert!(out.contains("TERM=xterm"), "{r}");

    pm.run_detached("c", &[], &["sleep", "1000"]);
    let r = pm.run_pty(&["exec", "-t", "c", "sh", "-c", probe]);
    assert!(r.ok(), "{r}");
    assert!(r.out().contains("/dev/pts/"), "{r}");
    assert!(r.out().contains("stdio-is-a-tty"), "{r}");

    // Interactive: what is typed reaches the shell, the window size is the terminal's, and
    // the exit status comes back.
    let typed = b"echo typed-$((6*7))\nstty size\nexit 3\n";
    let r = pm.run_pty_typing(
        &pm.with_rootfs("run", &["--rm", "-it"], &["sh"]),
        "stty cols 100 rows 30",
        typed,
    );
    assert_eq!(r.code, Some(3), "{r}");
    let lines: Vec<&str> = r.stdout.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert!(lines.contains(&"typed-42"), "{r}");
    assert!(lines.contains(&"30 100"), "{r}");
    let r = pm.run_pty_typing(
        &["exec", "-it", "c", "sh"],
        "stty cols 90 rows 20",
        b"echo exec-typed\nstty size\nexit 4\n",
    );
    assert_eq!(r.code, Some(4), "{r}");
    let lines: Vec<&str> = r.stdout.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert!(lines.contains(&"exec-typed"), "{r}");
    assert!(lines.contains(&"20 90"), "{r}");

    // A terminal for the process also when podman's own stdin is not one.
    let r = pm.run(&["exec", "-t", "c", "sh", "-c", "tty; exit 6"]);
    assert_eq!(r.code, Some(6), "{r}");
    assert!(r.out().starts_with("/dev/pts/"), "{r}");
}

#[test]
fn stop_sends_sigterm_then_sigkill() {
    let pm = Podman::new("stop");
    let graceful = "trap 'echo got-TERM; exit 0' TERM; echo ready; while :; do sleep 0.1; done";
    pm.run_detached("graceful", &[], &["sh", "-c", graceful]);
    wait_log(&pm, "graceful", "ready");
    pm.ok(&["stop", "-t", "30", "graceful"]);
    assert_eq!(
        pm.inspect("graceful", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 0"
    );
    wait_log(&pm, "graceful", "got-TERM");

    // pid 1 without a handler ignores SIGTERM: podman falls back to SIGKILL.
    pm.run_detached("stubborn", &[], &["sleep", "1000"]);
    pm.ok(&["stop", "-t", "1", "stubborn"]);
    assert_eq!(
        pm.inspect("stubborn", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 137"
    );

    let r = pm.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(r.stdout.contains("graceful Exited (0)"), "{r}");
    assert!(r.stdout.contains("stubborn Exited (137)"), "{r}");
}

#[test]
fn kill_delivers_signals() {
    let pm = Podman::new("kill");
    let script = "trap 'echo got-USR1' USR1; echo ready; while :; do sleep 0.1; done";
    pm.run_detached("c", &[], &["sh", "-c", script]);
    wait_log(&pm, "c", "ready");
    pm.ok(&["kill", "-s", "USR1", "c"]);
    wait_log(&pm, "c", "got-USR1");
    assert_eq!(pm.inspect("c", "{{.State.Status}}"), "running");

    pm.ok(&["kill", "c"]);
    pm.wait_status("c", "exited");
    assert_eq!(pm.inspect("c", "{{.State.ExitCode}}"), "137");

    let r = pm.run(&["kill", "c"]);
    assert!(!r.ok(), "kill of a stopped container succeeded: {r}");
}

#[test]
fn pause_and_unpause_freeze_the_cgroup() {
    let pm = Podman::new("pause");
    let id = pm.run_detached("c", &[], &["sleep", "1000"]);
    assert!(!frozen(&pm, &id));

    pm.ok(&["pause", "c"]);
    assert_eq!(pm.inspect("c", "{{.State.Status}}"), "paused");
    assert!(
        frozen(&pm, &id),
        "podman says paused, the cgroup is not frozen"
    );
    let r = pm.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert_eq!(r.out(), "c Paused", "{r}");
    let r = pm.run(&["exec", "c", "true"]);
    assert!(!r.ok(), "exec into a paused container succeeded: {r}");

    pm.ok(&["unpause", "c"]);
    assert_eq!(pm.inspect("c", "{{.State.Status}}"), "running");
    assert!(!frozen(&pm, &id));
    let r = pm.ok(&["exec", "c", "echo", "thawed"]);
    assert_eq!(r.out(), "thawed", "{r}");

    // A paused container can be removed with force.
    pm.ok(&["pause", "c"]);
    pm.ok(&["rm", "-f", "-t", "0", "c"]);
    assert_gone(&pm, &id);
}

/// Start failures: podman derives 127 and 126 from the runtime's message and shows it.
fn check_failing_start(pm: &Podman) {
    let notexec = pm.rootfs.join("not-executable");
    fs::write(&notexec, "#!/bin/sh\n").unwrap();
    fs::set_permissions(&notexec, fs::Permissions::from_mode(0o644)).unwrap();
    let cases: [(&str, i32, &str); 4] = [
        ("/nonexistent", 127, "no such file or directory"),
        ("nonexistent-command", 127, "executable file not found in"),
        ("/not-executable", 126, "permission denied"),
        ("/tmp", 126, "permission denied"),
    ];
    for (i, (cmd, code, text)) in cases.into_iter().enumerate() {
        let name = format!("bad{i}");
        let r = pm.run(&pm.with_rootfs("run", &["--name", &name], &[cmd]));
        assert_eq!(r.code, Some(code), "{r}");
        assert!(r.stderr.contains(text), "{r}");
        if runtime_is_sealrun() {
            assert!(r.stderr.contains("init failed at executable"), "{r}");
        }
        // The failed create left nothing in the runtime.
        let id = pm.inspect(&name, "{{.Id}}");
        assert_gone(pm, &id);
        pm.ok(&["rm", &name]);
    }
    let r = pm.run(&pm.with_rootfs("run", &["--rm"], &["sh", "-c", "echo still-works"]));
    assert_eq!(r.out(), "still-works", "{r}");
}

#[test]
fn failing_start_reports_the_runtime_error_from_stderr() {
    check_failing_start(&Podman::new("fail"));
}

#[test]
fn failing_start_reports_the_runtime_error_from_the_json_log() {
    check_failing_start(&Podman::with("failjson", Options { json_log: true }));
}

#[test]
fn runtime_flags_in_both_forms() {
    // With runtime_supports_json, conmon passes `--log-format=json` and `--log <file>`; the
    // user's `--runtime-flag log=…` adds `--log=…` before them and `--runtime-flag debug` a bare
    // `--debug`. The last `--log` wins, as in runc.
    let pm = Podman::with("flags", Options { json_log: true });
    let user_log = pm.dir.join("user-log.json");
    pm.add_global(&format!("--runtime-flag=log={}", user_log.display()));
    pm.add_global("--runtime-flag");
    pm.add_global("debug");
    let id = pm.run_detached("c", &[], &["sleep", "1000"]);
    let r = pm.ok(&["exec", "c", "echo", "exec-ok"]);
    assert_eq!(r.out(), "exec-ok", "{r}");
    if runtime_is_sealrun() {
        let oci_log = pm
            .dir
            .join("runroot/vfs-containers")
            .join(&id)
            .join("userdata/oci-log");
        let log =
            fs::read_to_string(&oci_log).unwrap_or_else(|e| panic!("{}: {e}", oci_log.display()));
        let audit = log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|v| v["msg"] == "container protections");
        assert!(audit, "no audit record in {}:\n{log}", oci_log.display());
    }
    pm.ok(&["rm", "-f", "-t", "0", "c"]);
    assert_gone(&pm, &id);
    let r = pm.run(&pm.with_rootfs("run", &["--rm"], &["/nonexistent"]));
    assert_eq!(r.code, Some(127), "{r}");
}

#[test]
fn checkpoint_is_refused_while_the_runtime_cannot_do_it() {
    let pm = Podman::new("checkpoint");
    // podman asks `<runtime> checkpoint --help`: success means "checkpoint supported".
    let mut probe = std::process::Command::new(&pm.runtime);
    probe.args(["checkpoint", "--help"]);
    let probe: Run = harness::run(probe);
    if runtime_is_sealrun() {
        assert!(!probe.ok(), "sealrun claims checkpoint support: {probe}");
    }
    if probe.ok() {
        // runc: checkpointing is criu's business, and criu fails on this kernel.
        return skip::skip(
            "the runtime under test supports checkpoint: the refusal is not checked",
        );
    }
    pm.run_detached("c", &[], &["sleep", "1000"]);
    let r = pm.run(&["container", "checkpoint", "c"]);
    assert!(!r.ok(), "{r}");
    assert!(r.stderr.contains("does not support checkpoint"), "{r}");
    assert_eq!(pm.inspect("c", "{{.State.Status}}"), "running");
}

#[test]
fn rm_leaves_nothing_behind() {
    let pm = Podman::new("rm");
    let id = pm.run_detached("c", &[], &["sleep", "1000"]);
    pm.ok(&["exec", "-d", "c", "sleep", "999"]);
    assert!(!pm.container_cgroups(&id).is_empty());
    assert!(runtime_state_dir(&id).exists());
    assert!(
        !pm.mounts().is_empty(),
        "podman mounted nothing for the container"
    );

    pm.ok(&["rm", "-f", "-t", "0", "c"]);
    assert_gone(&pm, &id);
    wait_for("the test's processes to end", || {
        pm.processes().is_empty().then_some(())
    });
    let mounts = pm.mounts();
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    let r = pm.ok(&["ps", "-a", "--format", "{{.ID}}"]);
    assert_eq!(r.out(), "", "{r}");
}

/// A host directory `vol` holding `f` ("from-the-host"), below a 0700 directory; returns the
/// `-v` argument that mounts it at /vol.
fn private_volume(pm: &Podman) -> String {
    let private = pm.dir.join("private");
    fs::create_dir_all(private.join("vol")).unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(private.join("vol/f"), "from-the-host\n").unwrap();
    pm.make_mount_points(&["vol"]);
    format!("{}:/vol", private.join("vol").display())
}

/// The lines of `r`'s stdout, runs of white space squeezed to one space.
fn squeezed_lines(r: &Run) -> Vec<String> {
    r.out()
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn user_namespace_with_a_private_rootfs_and_volume() {
    // With --rootfs and --uidmap podman leaves its per-container files (hosts, hostname,
    // .containerenv) root-owned under a private run root, and the volume below is in a 0700
    // directory: the container's root (host uid 100000) cannot reach them. The runtime opens
    // bind sources with its own privileges, as runc does.
    let pm = Podman::new("userns");
    let volume = private_volume(&pm);
    let maps = [
        "--uidmap",
        "0:100000:65536",
        "--gidmap",
        "0:100000:65536",
        "-v",
        &volume,
    ];
    let script = "cat /proc/self/uid_map; id -u; cat /vol/f; grep -c localhost /etc/hosts";
    let mut flags = vec!["--rm"];
    flags.extend_from_slice(&maps);
    let r = pm.run(&pm.with_rootfs("run", &flags, &["sh", "-c", script]));
    assert!(r.ok(), "{r}");
    let out = squeezed_lines(&r);
    assert_eq!(out, ["0 100000 65536", "0", "from-the-host", "1"], "{r}");

    let id = pm.run_detached("c", &maps, &["sleep", "1000"]);
    let r = pm.ok(&[
        "exec",
        "c",
        "sh",
        "-c",
        "cat /proc/self/uid_map; cat /vol/f",
    ]);
    assert!(r.out().ends_with("from-the-host"), "{r}");
    assert!(r.out().contains("100000"), "{r}");
    pm.ok(&["rm", "-f", "-t", "0", "c"]);
    assert_gone(&pm, &id);
}

#[test]
fn pod_with_a_user_namespace() {
    // The containers of a pod join the infra container's user, network, ipc and uts
    // namespaces by path, with the pod's id mappings in their config.
    let pm = Podman::new("pod");
    let volume = private_volume(&pm);
    let r = pm.run_without_host_cache(&[
        "pod",
        "create",
        "--name",
        "p",
        "--network",
        "none",
        "--cgroup-parent",
        &pm.cgroup_parent,
        "--uidmap",
        "0:100000:65536",
        "--gidmap",
        "0:100000:65536",
    ]);
    assert!(r.ok(), "{r}");
    let rootfs = pm.rootfs.display().to_string();
    let in_pod = |extra: &[&str], command: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = ["run", "--pod", "p", "-v", &volume, "--rootfs", &rootfs]
            .map(String::from)
            .to_vec();
        args.splice(1..1, extra.iter().map(|s| s.to_string()));
        args.extend(command.iter().map(|s| s.to_string()));
        args
    };
    let r = pm.run(&in_pod(
        &["--rm"],
        &["sh", "-c", "cat /proc/self/uid_map; cat /vol/f; hostname"],
    ));
    assert!(r.ok(), "{r}");
    let out = squeezed_lines(&r);
    assert_eq!(out, ["0 100000 65536", "from-the-host", "p"], "{r}");

    let r = pm.ok(&in_pod(&["-d", "--name", "c"], &["sleep", "1000"]));
    let id = r.out();
    let infra = pm
        .ok(&["pod", "inspect", "--format", "{{.InfraContainerID}}", "p"])
        .out();
    let ns = |container: &str| {
        let pid = pm.inspect(container, "{{.State.Pid}}");
        fs::read_link(format!("/proc/{pid}/ns/user")).unwrap()
    };
    assert_eq!(ns("c"), ns(&infra), "not in the pod's user namespace");
    let r = pm.ok(&["exec", "c", "cat", "/vol/f"]);
    assert_eq!(r.out(), "from-the-host", "{r}");

    pm.ok(&["pod", "rm", "-f", "-t", "0", "p"]);
    assert_gone(&pm, &id);
    assert_gone(&pm, &infra);
    wait_for("the pod's processes to end", || {
        pm.processes().is_empty().then_some(())
    });
}

#[test]
fn update_changes_the_memory_limit() {
    let pm = Podman::new("update");
    let id = pm.run_detached("c", &["--memory", "64m"], &["sleep", "1000"]);
    let limit = || {
        let dirs = pm.container_cgroups(&id);
        // The v1 memory controller where it is mounted, else cgroup2.
        let file = dirs
            .iter()
            .find(|d| d.starts_with("/sys/fs/cgroup/memory"))
            .map(|d| d.join("memory.limit_in_bytes"))
            .or_else(|| {
                dirs.iter()
                    .map(|d| d.join("memory.max"))
                    .find(|f| f.exists())
            })
            .unwrap_or_else(|| panic!("no memory cgroup for {id} in {dirs:?}"));
        fs::read_to_string(file).unwrap().trim().to_string()
    };
    assert_eq!(limit(), (64u64 << 20).to_string());
    pm.ok(&["update", "--memory", "100m", "c"]);
    assert_eq!(limit(), (100u64 << 20).to_string());
    assert_eq!(pm.inspect("c", "{{.State.Status}}"), "running");
}
