//! Escape tests: each replays a real container-escape technique against the runtime, as root,
//! on a real busybox bundle. With every layer on the attack fails; with only the layer that
//! stops it switched off (`--unsafe-disable LAYER`, sealrun's hidden test flag) it succeeds, so
//! each test can fail. Where two or three layers each stop a technique on their own, the test
//! shows each of them alone holding, and the attack working only with all of them off.
//!
//! Attack targets are copies and scratch files in the test's temp dir: a copy of the runtime
//! binary, scratch directories and files "on the host" — never the host's own binaries or
//! /proc/sys settings.

#[path = "common/attack.rs"]
mod attack;
mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use attack::{get, off, strs, Agent, RuntimeCopy};
use common::*;
use serde_json::json;

/// The default capabilities (CAP_KILL 5, CAP_NET_BIND_SERVICE 10, CAP_AUDIT_WRITE 29) as a mask.
const DEFAULT_CAPS_MASK: &str = "0x20000420";

/// connect(2)'s number, as /proc/<pid>/syscall shows it.
const SYS_CONNECT: i64 = if cfg!(target_arch = "x86_64") {
    42
} else {
    203
};

// ---------------------------------------------------------------------------------------------
// CVE-2019-5736, route (a): the container's init is the runtime until `start`.
//
// A process in the container's pid and mount namespaces, with the container's capabilities
// (the attack program joins them from the host, like `nsenter`), opens /proc/1/exe while the
// init still runs the runtime, waits for `start` (after which nothing executes the file, so
// it is no longer "text busy"), then reopens the fd through /proc/self/fd for writing and
// writes. Two layers each stop it on their own:
// - nondumpable: the init is not dumpable until execve, so without CAP_SYS_PTRACE the open
//   of /proc/1/exe fails (EACCES);
// - selfexe: the init runs from a protected copy, so the fd names that copy: a read-only,
//   lower-only overlay refuses the reopen for writing (EROFS), a sealed memfd copy refuses
//   the write (F_SEAL_WRITE, EPERM) and is not the binary on disk anyway.
// Landlock plays no part here: the attacker comes from the host side, outside the domain.

/// Run route (a) with `layers` off; returns the attack's output and whether the runtime copy
/// is unchanged.
fn init_route(layers: &[&str]) -> (String, bool) {
    init_route_with(layers, false)
}

/// The test switch that makes the runtime protect itself with the sealed memfd even where the
/// read-only overlay works (the overlay's fallback).
fn force_memfd(copy: &mut RuntimeCopy) {
    copy.env
        .push(("SEALRUN_UNSAFE_SELFEXE".into(), "memfd".into()));
}

/// [`init_route`], with the memfd forced when `memfd`.
fn init_route_with(layers: &[&str], memfd: bool) -> (String, bool) {
    let t = Test::new();
    let mut copy = RuntimeCopy::new(&t, "sealrun-copy");
    if memfd {
        force_memfd(&mut copy);
    }
    let mut b = t.bundle();
    attack::attack_args(&mut b, &["sleep"]);
    let global = off(layers);
    let (out, _) = attack::create(&t, Some(&copy), &strs(&global), &b, &[]);
    out.ok();
    let pid = t.pid_of(&b.id);
    let mut attacker = Command::new(attack::attack_binary())
        .args(["exe-init", &pid.to_string(), DEFAULT_CAPS_MASK])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the attacker");
    t.track_pid(attacker.id() as i32);
    let mut lines = BufReader::new(attacker.stdout.take().expect("stdout")).lines();
    let mut text = format!("sealed_exe={}\n", sealed_exe(&t, &b.id));
    for line in lines.by_ref() {
        let line = line.expect("read attacker");
        text.push_str(&line);
        text.push('\n');
        if line.starts_with("open=") || line.starts_with("setns=") {
            break;
        }
    }
    // `start` with the same copy: it too runs from (and stops running) the file.
    t.exec(copy.command(&t, &[], &["start", &b.id])).0.ok();
    let mut stdin = attacker.stdin.take().expect("stdin");
    let _ = writeln!(stdin, "started");
    drop(stdin);
    for line in lines {
        let line = line.expect("read attacker");
        text.push_str(&line);
        text.push('\n');
    }
    attack::wait_child(&mut attacker);
    let unchanged = copy.unchanged();
    t.delete_force(&b.id).ok();
    t.assert_nothing_left();
    (text, unchanged)
}

/// How the runtime protected its executable when it created container `id` (`sealed`,
/// `read-only-overlay`, `disabled`), from its audit record; `none` for runtimes without one.
fn sealed_exe(t: &Test, id: &str) -> String {
    let report = t.report();
    let record = report
        .with_msg("container protections")
        .into_iter()
        .find(|r| r["id"] == json!(id));
    match record.and_then(|r| r["sealed_exe"].as_str()) {
        Some(s) => s.to_string(),
        None => "none".to_string(),
    }
}

/// The write through `/proc/self/fd` failed the way the protection in use makes it fail: the
/// read-only overlay refuses to open the file for writing (EROFS), the sealed memfd opens but
/// refuses the write (EPERM).
#[track_caller]
fn assert_write_refused(out: &str) {
    match get(out, "sealed_exe").as_str() {
        "read-only-overlay" => assert_eq!(get(out, "reopen"), "errno:30", "{out}"),
        "sealed" => {
            assert_eq!(get(out, "reopen"), "ok", "{out}");
            assert_eq!(get(out, "write"), "errno:1", "{out}");
        }
        other => panic!("the runtime ran unprotected ({other}):\n{out}"),
    }
}

#[test]
fn cve_2019_5736_init_route_is_blocked() {
    let (out, unchanged) = init_route(&[]);
    assert_eq!(get(&out, "capset"), "ok", "{out}");
    assert_eq!(get(&out, "open"), "errno:13", "{out}");
    assert!(unchanged, "the runtime copy was modified:\n{out}");
}

#[test]
fn cve_2019_5736_init_route_nondumpable_alone_blocks() {
    if !attack::can_disable() {
        return skip(&attack::no_disable());
    }
    // selfexe off: the init runs the copy itself, but cannot be opened.
    let (out, unchanged) = init_route(&["selfexe"]);
    assert_eq!(get(&out, "open"), "errno:13", "{out}");
    assert!(unchanged, "{out}");
}

#[test]
fn cve_2019_5736_init_route_selfexe_alone_blocks() {
    if !attack::can_disable() {
        return skip(&attack::no_disable());
    }
    // nondumpable off: the open works, but it names the protected copy: EROFS on the reopen
    // for writing (read-only overlay) or EPERM on the write (sealed memfd).
    let (out, unchanged) = init_route(&["nondumpable"]);
    assert_eq!(get(&out, "open"), "ok", "{out}");
    assert_write_refused(&out);
    assert!(unchanged, "{out}");
}

#[test]
fn cve_2019_5736_init_route_selfexe_memfd_alone_blocks() {
    if !attack::can_disable() {
        return skip(&attack::no_disable());
    }
    // The overlay's fallback: the sealed memfd refuses the write itself (EPERM).
    let (out, unchanged) = init_route_with(&["nondumpable"], true);
    assert_eq!(get(&out, "sealed_exe"), "sealed", "{out}");
    assert_eq!(get(&out, "open"), "ok", "{out}");
    assert_write_refused(&out);
    assert!(unchanged, "{out}");
}

#[test]
fn cve_2019_5736_init_route_works_with_both_layers_off() {
    if !attack::can_disable() {
        return skip(&attack::no_disable());
    }
    let (out, unchanged) = init_route(&["selfexe", "nondumpable"]);
    assert_eq!(get(&out, "open"), "ok", "{out}");
    assert_eq!(get(&out, "write"), "ok", "{out}");
    assert!(
        !unchanged,
        "the attack should have rewritten the copy:\n{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// CVE-2019-5736, route (b): `exec` sends a helper into the running container.
//
// The helper is the runtime until its execve, and it is born in the container's pid
// namespace. The container's own process (the attack program as the container's init: in
// its Landlock domain, with its capabilities) opens /proc/<helper>/exe, waits for the exec to
// finish, then writes through the fd. To make the race deterministic the test holds the
// helper just before its execve: the container's seccomp profile has a NOTIFY rule (on
// `acct`, which nothing here calls), so the helper hands its listener fd to the runtime,
// which connects to the agent socket — and the test's agent socket has a backlog of 0 with
// the `create` connection still waiting, so that connect blocks until the test accepts.
// The test then tells the attacker (through a FIFO) to scan /proc and open every other
// process's exe — the helper is the only other process.
// Three layers each stop it on their own:
// - nondumpable: the helper is not dumpable (open fails, EACCES);
// - selfexe: the helper runs from a protected copy (open works; the reopen for writing fails
//   with EROFS on the read-only overlay, the write with EPERM on a sealed memfd);
// - Landlock: the runtime binary on disk is outside the container's root (open fails, EACCES;
//   a memfd is refused too).

fn exec_route(layers: &[&str]) -> (String, bool) {
    exec_route_with(layers, false)
}

/// [`exec_route`], with the memfd forced when `memfd`.
fn exec_route_with(layers: &[&str], memfd: bool) -> (String, bool) {
    let t = Test::new();
    let mut copy = RuntimeCopy::new(&t, "sealrun-copy");
    if memfd {
        force_memfd(&mut copy);
    }
    let agent = Agent::new(&t.path("agent.sock"));
    let mut b = t.bundle();
    attack::attack_args(&mut b, &["exe-helper", "/gate"]);
    let fifo = b.rootfs().join("gate");
    attack::mkfifo(&fifo);
    b.set(
        "/linux/seccomp",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": agent.path,
            "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_NOTIFY"}]
        }),
    );
    let global = off(layers);
    let (out, stdout) = attack::create(&t, Some(&copy), &strs(&global), &b, &[]);
    out.ok();
    // `exec` runs the same copy on the same host, so it protects itself as `create` did.
    let seal = sealed_exe(&t, &b.id);
    t.exec(copy.command(&t, &[], &["start", &b.id])).0.ok();
    let (mut exec, _, exec_err) = attack::spawn(
        &t,
        copy.command(&t, &strs(&global), &["exec", &b.id, "/bin/true"]),
        "exec",
    );
    let epid = exec.id() as i32;
    // Wait for the runtime to block in connect(2): its helper is then waiting, set up, just
    // before execve.
    let held = wait_until(TIMEOUT, || {
        if exec.try_wait().ok().flatten().is_some() {
            return true;
        }
        attack::blocked_in(epid) == Some(SYS_CONNECT)
    });
    assert!(held, "exec never reached the agent");
    if let Some(status) = exec.try_wait().expect("try_wait") {
        panic!(
            "exec ended early ({status}): {}",
            std::fs::read_to_string(&exec_err).unwrap_or_default()
        );
    }
    let helper = attack::children(epid);
    assert_eq!(helper.len(), 1, "one exec helper expected: {helper:?}");
    assert!(
        attack::inner_pid(helper[0]).is_some(),
        "the helper is in the container's pid namespace"
    );
    attack::gate(&fifo, "scan");
    let text = attack::wait_file(&stdout, "open=");
    assert_eq!(get(&text, "candidates"), "1", "only the helper: {text}");
    // Release the runtime: accept create's connection and exec's.
    let _ = agent.accept();
    let _ = agent.accept();
    let status = attack::wait_child(&mut exec);
    assert!(
        status.success(),
        "exec failed: {}",
        std::fs::read_to_string(&exec_err).unwrap_or_default()
    );
    attack::gate(&fifo, "go");
    let text = attack::wait_file(&stdout, "done=1");
    let text = format!("sealed_exe={seal}\n{text}");
    let unchanged = copy.unchanged();
    t.delete_force(&b.id).ok();
    t.assert_nothing_left();
    (text, unchanged)
}

#[test]
fn cve_2019_5736_exec_route_is_blocked() {
    let (out, unchanged) = exec_route(&[]);
    assert_eq!(get(&out, "open"), "errno:13", "{out}");
    assert!(unchanged, "{out}");
}

#[test]
fn cve_2019_5736_exec_route_nondumpable_alone_blocks() {
    if !attack::can_disable() {
        return skip(&attack::no_disable());
    }
    let (out, unchanged) = exec_route(&["selfexe", "landlock"]);
    assert_eq!(get(&out, "open"), "errno:13", "{out}");
    assert!(unchanged, "{out}");
}

#[test]
fn cve_2019_5736_exec_route_selfexe_alone_blocks() {
    if !attack::can_disable() {
        return skip(&attack::no_disable());
    }
    let (out, unchanged) = exec_route(&["nondumpable", "landlock"]);
    assert_eq!(get(&out, "open"), "ok", "{out}");
    assert_write_refused(&out);
    assert!(unchanged, "{out}");
}

#[test]
fn cve_2019_5736_exec_route_selfexe_memfd_alone_blocks() {
    if !attack::can_disable() {
        return skip(&attack::no_disable());
    }
    let (out, unchanged) = exec_route_with(&["nondumpable", "landlock"], true);
    assert_eq!(get(&out, "sealed_exe"), "sealed", "{out}");
    assert_eq!(get(&out, "open"), "ok", "{out}");
    assert_write_refused(&out);
    assert!(unchanged, "{out}");
}

#[test]
fn cve_2019_5736_exec_route_landlock_alone_blocks() {
    if !attack::can_disable() {
        return skip(&attack::no_disable());
    }
    let (out, unchanged) = exec_route(&["nondumpable", "selfexe"]);
    assert_eq!(get(&out, "open"), "errno:13", "{out}");
    assert!(unchanged, "{out}");
}

#[test]
fn cve_2019_5736_exec_route_works_with_the_three_layers_off() {
    if !attack::can_disable() {
        return skip(&attack::no_disable());
    }
    let (out, unchanged) = exec_route(&["nondumpable", "selfexe", "landlock"]);
    assert_eq!(get(&out, "open"), "ok", "{out}");
    assert_eq!(get(&out, "write"), "ok", "{out}");
    assert!(
        !unchanged,
        "the attack should have rewritten the copy:\n{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// fd hygiene (CVE-2024-21626): only 0-2 and `--preserve-fds` reach the container.
//
// The test's shell leaks a read-write fd of a host scratch file (fd 7, no close-on-exec) into
// the runtime, and passes fd 3 on purpose with `--preserve-fds 1`. Landlock does not check
// reads and writes on descriptors that are already open, so only the fd sweep stops a leaked
// one: with fd-hygiene off the container writes to the host file.

fn leaked_fd(layers: &[&str]) -> (String, String) {
    let t = Test::new();
    let scratch = t.path("host-scratch.txt");
    std::fs::write(&scratch, "untouched\n").expect("write scratch");
    let mut b = t.bundle();
    attack::install(&b);
    b.sh("/attack fds; /attack write-fd 7 pwned");
    let redir = format!("7<>{} 3</dev/null", scratch.display());
    let global = off(layers);
    let out = attack::run_with_fds(&t, &strs(&global), &b, &["--preserve-fds", "1"], &redir);
    out.ok();
    t.assert_nothing_left();
    let host = std::fs::read_to_string(&scratch).expect("read scratch");
    (out.stdout, host)
}

#[test]
fn leaked_fd_does_not_reach_the_container() {
    let (out, host) = leaked_fd(&[]);
    assert_eq!(get(&out, "fds"), "0,1,2,3", "{out}");
    assert_eq!(get(&out, "write"), "errno:9", "{out}");
    assert_eq!(host, "untouched\n");
}

#[test]
fn leaked_fd_reaches_the_container_without_fd_hygiene() {
    if !attack::can_disable() {
        return skip(&attack::no_disable());
    }
    let (out, host) = leaked_fd(&["fd-hygiene"]);
    assert!(get(&out, "fds").split(',').any(|f| f == "7"), "{out}");
    assert_eq!(get(&out, "write"), "ok", "{out}");
    assert!(host.starts_with("pwned"), "host file: {host:?}");
}

// The same leak, with the image faking /proc: the config's last mount puts a directory over
// /proc whose self/fd lists only 0-2. A sweep that trusts the container's /proc to list the
// open fds would miss fd 7 and leak it.
#[test]
fn leaked_fd_sweep_does_not_trust_the_containers_proc() {
    let t = Test::new();
    let scratch = t.path("host-scratch.txt");
    std::fs::write(&scratch, "untouched\n").expect("write scratch");
    let fake = t.path("fake-proc");
    std::fs::create_dir_all(fake.join("self/fd")).expect("mkdir fake proc");
    for fd in ["0", "1", "2"] {
        std::os::unix::fs::symlink("/dev/null", fake.join("self/fd").join(fd)).expect("symlink");
    }
    let mut b = t.bundle();
    attack::install(&b);
    b.add_mount(
        json!({"destination": "/proc", "type": "bind", "source": fake, "options": ["rbind"]}),
    );
    b.set("/linux/maskedPaths", json!([]));
    b.set("/linux/readonlyPaths", json!([]));
    b.writable_root();
    b.sh("/attack write-fd 7 pwned");
    let redir = format!("7<>{}", scratch.display());
    let out = attack::run_with_fds(&t, &[], &b, &[], &redir);
    t.assert_nothing_left();
    let host = std::fs::read_to_string(&scratch).expect("read scratch");
    assert_eq!(host, "untouched\n", "{out}");
}

// ---------------------------------------------------------------------------------------------
// CVE-2024-21626 proper: `process.cwd` = /proc/self/fd/N of a leaked host directory fd.
//
// Two layers each stop it: path-safety resolves the cwd inside the root without magic links
// (the create fails, naming the cwd), and Landlock leaves nothing readable outside the root
// even when the cwd lands there. fd-hygiene is not the layer here: the fds are swept after
// the chdir (step 9 before step 10), and the sweep only marks them close-on-exec.

fn cwd_trick(layers: &[&str]) -> Out {
    let t = Test::new();
    let host_dir = t.path("host-dir");
    std::fs::create_dir_all(&host_dir).expect("mkdir host dir");
    std::fs::write(host_dir.join("secret"), "host-secret\n").expect("write secret");
    let mut b = t.bundle();
    attack::attack_args(&mut b, &["cwd-read", "secret"]);
    b.set("/process/cwd", json!("/proc/self/fd/7"));
    let redir = format!("7<{}", host_dir.display());
    let global = off(layers);
    let out = attack::run_with_fds(&t, &strs(&global), &b, &[], &redir);
    t.assert_nothing_left();
    out
}

#[test]
fn cwd_through_leaked_fd_is_refused() {
    let out = cwd_trick(&[]);
    out.error_line(&["/proc/self/fd/7"]);
}

#[test]
fn cwd_through_leaked_fd_fd_hygiene_is_not_what_stops_it() {
    if !attack::can_disable() {
        return skip(&attack::no_disable());
    }
    cwd_trick(&["fd-hygiene"]).error_line(&["/proc/self/fd/7"]);
}

#[test]
fn cwd_through_leaked_fd_landlock_alone_blocks() {
    if !attack::can_disable() {
        return skip(&attack::no_disable());
    }
    // path-safety off: the cwd is the host directory, but Landlock denies the read.
    let out = cwd_trick(&["path-safety"]);
    out.ok();
    assert_eq!(get(&out.stdout, "read"), "errno:13", "{out}");
}

#[test]
fn cwd_through_leaked_fd_works_with_both_layers_off() {
    if !attack::can_disable() {
        return skip(&attack::no_disable());
    }
    let out = cwd_trick(&["path-safety", "landlock"]);
    out.ok();
    assert_eq!(get(&out.stdout, "read"), "ok:host-secret", "{out}");
}

// ---------------------------------------------------------------------------------------------
// Symlinked mount destinations (CVE-2021-30465, CVE-2019-19921): the image has
// `/evil -> <absolute path of a host scratch directory>` and the config mounts on /evil/sub.
// path-safety resolves the destination inside the rootfs (the directory is created under
// rootfs/<that path>); without it the runtime follows the link out and creates `sub` on the
// host.

fn symlinked_destination(layers: &[&str]) -> (bool, bool) {
    let t = Test::new();
    let host_dir = t.path("host-scratch-dir");
    std::fs::create_dir_all(&host_dir).expect("mkdir host scratch");
    let mut b = t.bundle();
    attack::attack_args(&mut b, &["sleep"]);
    std::os::unix::fs::symlink(&host_dir, b.rootfs().join("evil")).expect("symlink");
    b.add_mount(json!({"destination": "/evil/sub", "type": "tmpfs", "source": "tmpfs"}));
    let global = off(layers);
    let (out, _) = attack::create(&t, None, &strs(&global), &b, &[]);
    out.ok();
    let on_host = host_dir.join("sub").exists();
    let inside = b
        .rootfs()
        .join(host_dir.strip_prefix("/").expect("absolute"))
        .join("sub")
        .exists();
    t.delete_force(&b.id).ok();
    t.assert_nothing_left();
    (on_host, inside)
}

#[test]
fn symlinked_mount_destination_stays_in_the_rootfs() {
    let (on_host, inside) = symlinked_destination(&[]);
    assert!(!on_host, "the mount destination was created on the host");
    assert!(
        inside,
        "the destination should be resolved inside the rootfs"
    );
}

#[test]
fn symlinked_mount_destination_escapes_without_path_safety() {
    if !attack::can_disable() {
        return skip(&attack::no_disable());
    }
    let (on_host, _) = symlinked_destination(&["path-safety"]);
    assert!(
        on_host,
        "with path-safety off the link should have been followed out"
    );
}

// ---------------------------------------------------------------------------------------------
// /proc must be the kernel's procfs (CVE-2023-28642, CVE-2025-52881).

/// The image's /proc is a symlink: the proc mount would land wherever it points.
fn proc_symlink(layers: &[&str]) -> Out {
    let t = Test::new();
    let mut b = t.bundle();
    attack::install(&b);
    std::fs::remove_dir(b.rootfs().join("proc")).expect("rmdir proc");
    std::fs::create_dir(b.rootfs().join("elsewhere")).expect("mkdir elsewhere");
    std::os::unix::fs::symlink("elsewhere", b.rootfs().join("proc")).expect("symlink");
    b.sh("grep ' proc ' /elsewhere/self/mountinfo || true");
    let global = off(layers);
    let out = t.run_with(&strs(&global), &b, &[]);
    t.assert_nothing_left();
    out
}

#[test]
fn proc_symlink_in_the_image_is_refused() {
    proc_symlink(&[]).error_line(&["/proc", "symlink"]);
}

#[test]
fn proc_symlink_is_followed_without_path_safety() {
    if !attack::can_disable() {
        return skip(&attack::no_disable());
    }
    let out = proc_symlink(&["path-safety"]);
    out.ok();
    assert!(
        out.stdout.contains(" /elsewhere "),
        "procfs should have been mounted at the link's target:\n{out}"
    );
}

/// A mount puts a directory over /proc (after the real one): the runtime's own write to
/// /proc/self/oom_score_adj must not land in that directory's file on the host.
fn fake_proc_write(layers: &[&str]) -> (Out, String) {
    let t = Test::new();
    let fake = t.path("fake-proc");
    std::fs::create_dir_all(fake.join("self")).expect("mkdir fake proc");
    std::fs::write(fake.join("self/oom_score_adj"), "0\n").expect("write fake file");
    let mut b = t.bundle();
    attack::attack_args(&mut b, &["ids"]);
    b.add_mount(
        json!({"destination": "/proc", "type": "bind", "source": fake, "options": ["rbind"]}),
    );
    b.set("/process/oomScoreAdj", json!(123));
    b.set("/linux/maskedPaths", json!([]));
    b.set("/linux/readonlyPaths", json!([]));
    let global = off(layers);
    let out = t.run_with(&strs(&global), &b, &[]);
    t.assert_nothing_left();
    let host = std::fs::read_to_string(fake.join("self/oom_score_adj")).expect("read");
    (out, host)
}

#[test]
fn proc_writes_do_not_land_in_a_fake_proc() {
    let (out, host) = fake_proc_write(&[]);
    out.error_line(&["/proc"]);
    assert_eq!(host, "0\n");
}

#[test]
fn proc_writes_land_in_a_fake_proc_without_path_safety() {
    if !attack::can_disable() {
        return skip(&attack::no_disable());
    }
    let (out, host) = fake_proc_write(&["path-safety"]);
    out.ok();
    assert_eq!(host.trim(), "123", "{out}");
}

/// A bind mount over a sysctl file: the runtime's sysctl write must not go to the bound file.
fn sysctl_redirect(layers: &[&str]) -> (Out, String) {
    let t = Test::new();
    let scratch = t.path("scratch-sysctl");
    std::fs::write(&scratch, "0\n").expect("write scratch");
    let mut b = t.bundle();
    attack::attack_args(&mut b, &["ids"]);
    b.add_mount(
        json!({"destination": "/proc/sys/net/ipv4/ip_forward", "type": "bind",
                       "source": scratch, "options": ["bind"]}),
    );
    b.set("/linux/sysctl", json!({"net.ipv4.ip_forward": "1"}));
    let global = off(layers);
    let out = t.run_with(&strs(&global), &b, &[]);
    t.assert_nothing_left();
    let host = std::fs::read_to_string(&scratch).expect("read scratch");
    (out, host)
}

#[test]
fn sysctl_write_is_not_redirected_by_a_mount() {
    let (out, host) = sysctl_redirect(&[]);
    out.error_line(&["ip_forward"]);
    assert_eq!(host, "0\n");
}

#[test]
fn sysctl_write_is_redirected_without_path_safety() {
    if !attack::can_disable() {
        return skip(&attack::no_disable());
    }
    let (out, host) = sysctl_redirect(&["path-safety"]);
    out.ok();
    assert_eq!(host.trim(), "1", "{out}");
}

// ---------------------------------------------------------------------------------------------
// /dev/null and /dev/console must be the real devices (CVE-2025-31133, CVE-2025-52565).
//
// /dev is a bind mount of a scratch directory (so the runtime creates no device nodes) in
// which `null` or `console` is a symlink to /scratch-target, a file of the image. Masking
// binds /dev/null over the masked paths; with path-safety off the bind uses the symlink's
// target instead, and the container reads that file at /proc/keys.

fn dev_bundle(t: &Test, link: &str) -> (Bundle, std::path::PathBuf) {
    let devdir = t.path("scratch-dev");
    std::fs::create_dir_all(&devdir).expect("mkdir scratch dev");
    std::os::unix::fs::symlink("/scratch-target", devdir.join(link)).expect("symlink");
    let mut b = t.bundle();
    attack::install(&b);
    std::fs::write(b.rootfs().join("scratch-target"), "scratch-target\n").expect("write");
    b.remove_mount("/dev");
    let mounts = b.config["mounts"].as_array_mut().expect("mounts");
    mounts.insert(
        1,
        json!({"destination": "/dev", "type": "bind", "source": devdir, "options": ["rbind"]}),
    );
    (b, devdir)
}

fn dev_null_swap(layers: &[&str]) -> Out {
    let t = Test::new();
    let (mut b, _) = dev_bundle(&t, "null");
    b.set("/linux/maskedPaths", json!(["/proc/keys"]));
    b.sh("cat /proc/keys");
    let global = off(layers);
    let out = t.run_with(&strs(&global), &b, &[]);
    t.assert_nothing_left();
    out
}

#[test]
fn dev_null_symlink_is_refused() {
    dev_null_swap(&[]).error_line(&["/dev/null"]);
}

#[test]
fn dev_null_symlink_redirects_masking_without_path_safety() {
    if !attack::can_disable() {
        return skip(&attack::no_disable());
    }
    let out = dev_null_swap(&["path-safety"]);
    out.ok();
    assert_eq!(out.stdout.trim(), "scratch-target", "{out}");
}

/// The console is set up before `pivot_root`: an absolute link is resolved from the host's
/// root without path-safety. Its target is a host scratch path that does not exist yet.
fn dev_console_swap(layers: &[&str]) -> (Out, bool) {
    let t = Test::new();
    let target = t.path("host-console-target");
    let devdir = t.path("scratch-dev");
    std::fs::create_dir_all(&devdir).expect("mkdir scratch dev");
    std::os::unix::fs::symlink(&target, devdir.join("console")).expect("symlink");
    let mut b = t.bundle();
    b.remove_mount("/dev");
    let mounts = b.config["mounts"].as_array_mut().expect("mounts");
    mounts.insert(
        1,
        json!({"destination": "/dev", "type": "bind", "source": devdir, "options": ["rbind"]}),
    );
    let console = attack::ConsoleSocket::new(&t.path("console.sock"));
    b.set("/process/terminal", json!(true));
    b.set("/linux/maskedPaths", json!([]));
    b.sh("true");
    let global = off(layers);
    let sock = console.path.to_string_lossy().into_owned();
    let out = t.run_with(&strs(&global), &b, &["--console-socket", &sock]);
    t.assert_nothing_left();
    (out, target.exists())
}

#[test]
fn dev_console_symlink_is_refused() {
    let (out, created) = dev_console_swap(&[]);
    out.error_line(&["/dev/console"]);
    assert!(!created, "the host path was created");
}

#[test]
fn dev_console_symlink_reaches_the_host_without_path_safety() {
    if !attack::can_disable() {
        return skip(&attack::no_disable());
    }
    let (out, created) = dev_console_swap(&["path-safety"]);
    out.ok();
    assert!(
        created,
        "the console bind should have followed the link to the host:\n{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// Capabilities (CVE-2022-29162): the five sets are exactly the config's, the bounding set is
// dropped, and a binary with file capabilities cannot gain one the config did not grant.
// There is no layer to switch off: the attack is shown working with a config that grants
// the capability (in the bounding set) and failing with one that does not.

/// CapInh, CapPrm, CapEff, CapBnd, CapAmb as numbers.
fn cap_sets(out: &str) -> [u64; 5] {
    ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]
        .map(|k| u64::from_str_radix(&get(out, k), 16).expect("hex capability set"))
}

const CAP_KILL: u64 = 1 << 5;
const CAP_NET_BIND_SERVICE: u64 = 1 << 10;
const CAP_NET_RAW: u64 = 1 << 13;
const CAP_SYS_ADMIN: u64 = 1 << 21;

/// A non-root container process (uid 1000, no_new_privs off so file capabilities count) with
/// `bounding`, running `script`; `/fcap` is the attack program with file capabilities
/// `cap_net_raw,cap_sys_admin+ip` (no effective bit: the kernel refuses to execute a
/// "capability-dumb" +e binary that does not get all of its capabilities, which would hide
/// what was gained).
fn caps_run(bounding: &[&str], script: &str) -> String {
    caps_run_inh(bounding, &["CAP_NET_BIND_SERVICE"], script)
}

fn caps_run_inh(bounding: &[&str], inheritable: &[&str], script: &str) -> String {
    let t = Test::new();
    let mut b = t.bundle();
    attack::install(&b);
    let fcap = b.rootfs().join("fcap");
    std::fs::copy(attack::attack_binary(), &fcap).expect("copy fcap");
    let setcap = Command::new("setcap")
        .arg("cap_net_raw,cap_sys_admin+ip")
        .arg(&fcap)
        .output()
        .expect("run setcap (Debian's libcap2-bin; ./scripts/test installs it)");
    assert!(setcap.status.success(), "setcap: {setcap:?}");
    // `/icap`: inheritable file capabilities only; they count only where the process's own
    // inheritable set has them (the CVE-2022-29162 route when a runtime fills that set).
    let icap = b.rootfs().join("icap");
    std::fs::copy(attack::attack_binary(), &icap).expect("copy icap");
    let setcap = Command::new("setcap")
        .arg("cap_kill,cap_net_raw+i")
        .arg(&icap)
        .output()
        .expect("run setcap");
    assert!(setcap.status.success(), "setcap: {setcap:?}");
    b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
    b.set("/process/noNewPrivileges", json!(false));
    b.set(
        "/process/capabilities",
        json!({
            "bounding": bounding,
            "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "inheritable": inheritable,
            "ambient": ["CAP_NET_BIND_SERVICE"]
        }),
    );
    b.sh(script);
    let out = t.run(&b);
    out.ok();
    t.assert_nothing_left();
    out.stdout
}

#[test]
fn capability_sets_are_exactly_the_configs() {
    let out = caps_run(&["CAP_KILL", "CAP_NET_BIND_SERVICE"], "/attack ids");
    let [inh, prm, eff, bnd, amb] = cap_sets(&out);
    // After execve as uid 1000 without file capabilities only the ambient set survives in
    // permitted and effective; inheritable and bounding are as configured.
    assert_eq!(inh, CAP_NET_BIND_SERVICE, "{out}");
    assert_eq!(amb, CAP_NET_BIND_SERVICE, "{out}");
    assert_eq!(prm, CAP_NET_BIND_SERVICE, "{out}");
    assert_eq!(eff, CAP_NET_BIND_SERVICE, "{out}");
    assert_eq!(bnd, CAP_KILL | CAP_NET_BIND_SERVICE, "{out}");
}

#[test]
fn file_capabilities_cannot_gain_what_the_config_did_not_grant() {
    let out = caps_run(&["CAP_KILL", "CAP_NET_BIND_SERVICE"], "/fcap ids");
    let [_, prm, _, _, _] = cap_sets(&out);
    assert_eq!(prm & (CAP_NET_RAW | CAP_SYS_ADMIN), 0, "{out}");
}

#[test]
fn inheritable_file_capabilities_need_the_configs_inheritable_set() {
    // CAP_KILL is in the bounding and permitted sets but not in the inheritable set: an
    // inheritable-only file capability must not bring it back.
    let out = caps_run(&["CAP_KILL", "CAP_NET_BIND_SERVICE"], "/icap ids");
    let [_, prm, _, _, _] = cap_sets(&out);
    assert_eq!(prm & (CAP_KILL | CAP_NET_RAW), 0, "{out}");
    // Granted in the inheritable set, the same file gains it (so the check can fail).
    let out = caps_run_inh(
        &["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        &["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "/icap ids",
    );
    let [_, prm, _, _, _] = cap_sets(&out);
    assert_eq!(prm & (CAP_KILL | CAP_NET_RAW), CAP_KILL, "{out}");
}

#[test]
fn file_capabilities_gain_only_what_the_bounding_set_grants() {
    // The same attack with CAP_NET_RAW granted in the bounding set: the binary gains it (so
    // the previous test can fail), and still not CAP_SYS_ADMIN.
    let out = caps_run(
        &["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"],
        "/fcap ids",
    );
    let [_, prm, _, _, _] = cap_sets(&out);
    assert_eq!(prm & (CAP_NET_RAW | CAP_SYS_ADMIN), CAP_NET_RAW, "{out}");
}

// ---------------------------------------------------------------------------------------------
// no_new_privs: a setuid-root copy of the attack program, run by a non-root container user,
// gains euid 0 only when noNewPrivileges is false.

fn setuid_run(no_new_privileges: bool) -> String {
    let t = Test::new();
    let mut b = t.bundle();
    attack::install(&b);
    let suid = b.rootfs().join("suid");
    std::fs::copy(attack::attack_binary(), &suid).expect("copy");
    std::fs::set_permissions(
        &suid,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o4755),
    )
    .expect("chmod 4755");
    b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
    b.set("/process/noNewPrivileges", json!(no_new_privileges));
    b.args(&["/suid", "ids"]);
    let out = t.run(&b);
    out.ok();
    t.assert_nothing_left();
    out.stdout
}

#[test]
fn no_new_privs_stops_setuid() {
    let out = setuid_run(true);
    assert_eq!(get(&out, "uid"), "1000", "{out}");
    assert_eq!(get(&out, "euid"), "1000", "{out}");
    assert_eq!(get(&out, "NoNewPrivs"), "1", "{out}");
}

#[test]
fn setuid_works_without_no_new_privs() {
    let out = setuid_run(false);
    assert_eq!(get(&out, "uid"), "1000", "{out}");
    assert_eq!(get(&out, "euid"), "0", "{out}");
    assert_eq!(get(&out, "NoNewPrivs"), "0", "{out}");
}

// ---------------------------------------------------------------------------------------------
// The audit line: `create --log FILE --log-format json` writes exactly one "container
// protections" record saying what protects the container, and which layers a test switched
// off.

fn audit_profile() -> serde_json::Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["getppid", "umask"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            {"names": ["acct"], "action": "SCMP_ACT_KILL"}
        ]
    })
}

fn audit_record(layers: &[&str]) -> (serde_json::Value, String) {
    let t = Test::new();
    let mut b = t.bundle();
    attack::attack_args(&mut b, &["sleep"]);
    b.set("/linux/seccomp", audit_profile());
    b.set(
        "/process/capabilities",
        json!({"bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE"], "effective": ["CAP_KILL"],
               "permitted": ["CAP_KILL"], "inheritable": [], "ambient": []}),
    );
    let global = off(layers);
    let (out, _) = attack::create(&t, None, &strs(&global), &b, &[]);
    out.ok();
    let report = t.report();
    let records: Vec<&serde_json::Value> = report
        .with_msg("container protections")
        .into_iter()
        .filter(|r| r["id"] == json!(b.id))
        .collect();
    assert_eq!(records.len(), 1, "exactly one audit record: {records:?}");
    let record = records[0].clone();
    assert_eq!(record["level"], "info", "{record}");
    assert_eq!(record["pid"], json!(t.pid_of(&b.id)), "{record}");
    t.delete_force(&b.id).ok();
    t.assert_nothing_left();
    (record, b.id.clone())
}

/// The kernel's Landlock ABI, asked by the attack program.
fn kernel_landlock_abi() -> i64 {
    let out = Command::new(attack::attack_binary())
        .arg("landlock-abi")
        .output()
        .expect("run attack landlock-abi");
    get(&String::from_utf8_lossy(&out.stdout), "abi")
        .parse()
        .unwrap_or(0)
}

#[test]
fn audit_record_says_what_protects_the_container() {
    if !is_sealrun() {
        return skip(&sealrun_only("the audit record"));
    }
    let (r, _) = audit_record(&[]);
    assert_eq!(
        r["capabilities"],
        json!({"bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE"], "effective": ["CAP_KILL"],
               "permitted": ["CAP_KILL"], "inheritable": [], "ambient": []}),
        "{r}"
    );
    assert_eq!(r["no_new_privileges"], true, "{r}");
    let profile: oci_spec::runtime::LinuxSeccomp =
        serde_json::from_value(audit_profile()).expect("profile parses");
    let canonical = serde_json::to_vec(&profile).expect("serialise");
    let digest: String = <sha2::Sha256 as sha2::Digest>::digest(&canonical)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(r["seccomp"]["digest"], json!(digest), "{r}");
    assert_eq!(
        r["seccomp"]["rules"],
        json!({"SCMP_ACT_ERRNO": 2, "SCMP_ACT_KILL": 1}),
        "{r}"
    );
    assert_eq!(r["seccomp"]["default_action"], "SCMP_ACT_ALLOW", "{r}");
    assert!(
        r["seccomp"]["instructions"].as_u64().unwrap_or(0) > 0,
        "{r}"
    );
    let abi = kernel_landlock_abi();
    assert!(abi >= 1, "this machine has Landlock");
    let reported = r["landlock"]["abi"].as_i64().expect("landlock.abi");
    assert!(reported >= 1 && reported <= abi, "{r} (kernel ABI {abi})");
    assert_eq!(r["landlock"]["policy"]["enabled"], true, "{r}");
    assert_eq!(r["landlock"]["policy"]["fs"], true, "{r}");
    assert!(
        r["sealed_exe"] == "read-only-overlay" || r["sealed_exe"] == "sealed",
        "{r}"
    );
    assert_eq!(r["disabled_layers"], json!([]), "{r}");
}

#[test]
fn audit_record_lists_the_layers_switched_off() {
    if !attack::can_disable() {
        return skip(&attack::no_disable());
    }
    let (r, _) = audit_record(&["selfexe", "seccomp", "landlock"]);
    assert_eq!(
        r["disabled_layers"],
        json!(["selfexe", "landlock", "seccomp"]),
        "{r}"
    );
    assert_eq!(r["sealed_exe"], "disabled", "{r}");
    assert_eq!(r["seccomp"], serde_json::Value::Null, "{r}");
    assert_eq!(r["landlock"]["policy"]["enabled"], false, "{r}");
}

// ---------------------------------------------------------------------------------------------
// `features` tells the truth about this kernel.

#[test]
fn features_match_the_kernel() {
    if !is_sealrun() {
        return skip(&sealrun_only(
            "features of sealrun's own seccomp and Landlock",
        ));
    }
    let t = Test::new();
    let f = t.rt(&["features"]);
    f.ok();
    let f = f.json();
    let seccomp = &f["linux"]["seccomp"];
    assert_eq!(seccomp["enabled"], true, "{seccomp}");
    let avail = std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail")
        .expect("read actions_avail");
    let avail: Vec<&str> = avail.split_whitespace().collect();
    let actions: Vec<&str> = seccomp["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    for a in [
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_LOG",
        "SCMP_ACT_NOTIFY",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_TRAP",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    for a in &actions {
        let kernel = match *a {
            "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => "kill_thread",
            "SCMP_ACT_KILL_PROCESS" => "kill_process",
            "SCMP_ACT_TRAP" => "trap",
            "SCMP_ACT_ERRNO" => "errno",
            "SCMP_ACT_NOTIFY" => "user_notif",
            "SCMP_ACT_TRACE" => "trace",
            "SCMP_ACT_LOG" => "log",
            "SCMP_ACT_ALLOW" => "allow",
            other => panic!("unknown action {other} in features"),
        };
        assert!(avail.contains(&kernel), "{a}: kernel has {avail:?}");
    }
    let ops = seccomp["operators"].as_array().expect("operators");
    for op in [
        "SCMP_CMP_EQ",
        "SCMP_CMP_NE",
        "SCMP_CMP_LT",
        "SCMP_CMP_LE",
        "SCMP_CMP_GT",
        "SCMP_CMP_GE",
        "SCMP_CMP_MASKED_EQ",
    ] {
        assert!(ops.contains(&json!(op)), "{op} missing: {ops:?}");
    }
    let native = if cfg!(target_arch = "x86_64") {
        "SCMP_ARCH_X86_64"
    } else {
        "SCMP_ARCH_AARCH64"
    };
    assert!(
        seccomp["archs"]
            .as_array()
            .expect("archs")
            .contains(&json!(native)),
        "{seccomp}"
    );
    let known = seccomp["knownFlags"].as_array().expect("knownFlags");
    for flag in seccomp["supportedFlags"]
        .as_array()
        .expect("supportedFlags")
    {
        assert!(known.contains(flag), "{flag} supported but not known");
    }
    let abi: i64 = f["annotations"]["run.sealrun.landlock.abi"]
        .as_str()
        .expect("landlock abi annotation")
        .parse()
        .expect("a number");
    let kernel = kernel_landlock_abi();
    assert!(abi >= 1 && abi <= kernel, "features {abi}, kernel {kernel}");
    for ns in f["linux"]["namespaces"].as_array().expect("namespaces") {
        let proc_name = match ns.as_str().expect("name") {
            "network" => "net",
            "mount" => "mnt",
            other => other,
        };
        assert!(
            std::path::Path::new("/proc/self/ns")
                .join(proc_name)
                .exists(),
            "features lists {ns}, the kernel has no such namespace"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The same two tricks through `exec`: a descriptor leaked into `sealrun exec`, and
// `--cwd /proc/self/fd/N` pointing at it.

fn exec_with_leak(layers: &[&str], args: &[&str]) -> Out {
    let t = Test::new();
    let host_dir = t.path("host-dir");
    std::fs::create_dir_all(&host_dir).expect("mkdir host dir");
    std::fs::write(host_dir.join("secret"), "host-secret\n").expect("write secret");
    let mut b = t.bundle();
    attack::attack_args(&mut b, &["sleep"]);
    let global = off(layers);
    let (out, _) = attack::create(&t, None, &strs(&global), &b, &[]);
    out.ok();
    t.start(&b.id).ok();
    let mut exec_args = vec!["exec"];
    exec_args.extend_from_slice(args);
    exec_args.push(&b.id);
    exec_args.extend_from_slice(&["/attack", "cwd-read", "secret"]);
    let cmd = t.command(&strs(&global), &exec_args);
    let redir = format!("7<{}", host_dir.display());
    let (out, _, _) = t.exec(attack::with_fds(&cmd, &redir));
    t.delete_force(&b.id).ok();
    t.assert_nothing_left();
    out
}

#[test]
fn exec_cwd_through_leaked_fd_is_refused() {
    let out = exec_with_leak(&[], &["--cwd", "/proc/self/fd/7"]);
    out.error_line(&["/proc/self/fd/7"]);
}

#[test]
fn exec_cwd_through_leaked_fd_works_without_path_safety_and_landlock() {
    if !attack::can_disable() {
        return skip(&attack::no_disable());
    }
    let out = exec_with_leak(&["path-safety"], &["--cwd", "/proc/self/fd/7"]);
    out.ok();
    assert_eq!(
        get(&out.stdout, "read"),
        "errno:13",
        "Landlock still holds:\n{out}"
    );
    let out = exec_with_leak(&["path-safety", "landlock"], &["--cwd", "/proc/self/fd/7"]);
    out.ok();
    assert_eq!(get(&out.stdout, "read"), "ok:host-secret", "{out}");
}

#[test]
fn exec_leaked_fd_does_not_reach_the_process() {
    let t = Test::new();
    let scratch = t.path("host-scratch.txt");
    std::fs::write(&scratch, "untouched\n").expect("write scratch");
    let run = |t: &Test, layers: &[&str]| -> Out {
        let mut b = t.bundle_for(&t.new_id("x"));
        attack::attack_args(&mut b, &["sleep"]);
        let global = off(layers);
        let (out, _) = attack::create(t, None, &strs(&global), &b, &[]);
        out.ok();
        t.start(&b.id).ok();
        let cmd = t.command(
            &strs(&global),
            &[
                "exec",
                &b.id,
                "/bin/sh",
                "-c",
                "/attack fds; /attack write-fd 7 pwned",
            ],
        );
        let redir = format!("7<>{}", scratch.display());
        let (out, _, _) = t.exec(attack::with_fds(&cmd, &redir));
        t.delete_force(&b.id).ok();
        out
    };
    let out = run(&t, &[]);
    out.ok();
    assert_eq!(get(&out.stdout, "fds"), "0,1,2", "{out}");
    assert_eq!(get(&out.stdout, "write"), "errno:9", "{out}");
    assert_eq!(
        std::fs::read_to_string(&scratch).expect("read"),
        "untouched\n"
    );
    if attack::can_disable() {
        let out = run(&t, &["fd-hygiene"]);
        out.ok();
        assert_eq!(get(&out.stdout, "write"), "ok", "{out}");
        assert!(std::fs::read_to_string(&scratch)
            .expect("read")
            .starts_with("pwned"));
    } else {
        skip_part(&attack::no_disable());
    }
    t.assert_nothing_left();
}

// ---------------------------------------------------------------------------------------------
// The pid file as a host write primitive (issue 9, defect 6).
//
// `--pid-file` (of create, run and exec) may point into a directory the container can write,
// a volume. The runtime, as host root, writes the file atomically through a temp file next to
// it. Were that temp file created at a predictable name, following symlinks, the container
// could plant symlinks at every name it might use and have the runtime truncate and write any
// host file. Here the test plants them itself, in the volume, as the container would: at every
// name the earlier `write_atomic` used (`.<name>.tmp-<runtime pid>`, for a window of pids
// around the next one) and at the final name. The victim must stay untouched and the pid file
// must be a regular file holding the pid. No layer switch stops this: it is a plain fix, so
// there is no layer-off twin.

/// Plant symlinks to `victim` at `vol/<name>` and at `vol/.<name>.tmp-<pid>` for `pids`.
fn plant_pid_file_links(vol: &std::path::Path, name: &str, victim: &std::path::Path, pids: u32) {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .expect("ns_last_pid")
        .trim()
        .parse()
        .expect("pid");
    for pid in last + 1..=last + pids {
        let _ = std::os::unix::fs::symlink(victim, vol.join(format!(".{name}.tmp-{pid}")));
    }
    std::os::unix::fs::symlink(victim, vol.join(name)).expect("plant final-name symlink");
}

/// The pid file is a regular file holding a live pid; the victim is untouched; no temp file of
/// the runtime is left in the volume.
#[track_caller]
fn assert_pid_file_safe(vol: &std::path::Path, name: &str, victim: &std::path::Path) {
    assert_eq!(
        std::fs::read_to_string(victim).unwrap(),
        "precious host data\n",
        "the runtime wrote through a planted symlink into the host file"
    );
    let p = vol.join(name);
    let meta = std::fs::symlink_metadata(&p).expect("pid file exists");
    assert!(
        meta.file_type().is_file(),
        "{} is not a regular file: {meta:?}",
        p.display()
    );
    let pid: i32 = std::fs::read_to_string(&p)
        .unwrap()
        .trim()
        .parse()
        .expect("pid file holds a pid");
    assert!(pid > 0);
    let left: Vec<String> = std::fs::read_dir(vol)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".sealrun-"))
        .collect();
    assert!(left.is_empty(), "temp files left: {left:?}");
}

#[test]
fn pid_file_in_a_container_volume_cannot_be_turned_on_the_host() {
    let t = Test::new();
    let vol = t.path("volume");
    std::fs::create_dir_all(&vol).unwrap();
    let victim = t.path("host-victim");
    std::fs::write(&victim, "precious host data\n").unwrap();
    let mut b = t.sleeper(t.id());
    b.bind("/vol", &vol, &["rbind", "rw"]);
    b.write();

    // create --pid-file <volume>/create.pid
    plant_pid_file_links(&vol, "create.pid", &victim, 20000);
    let dir = b.dir.to_string_lossy().into_owned();
    let create_pid = vol.join("create.pid").to_string_lossy().into_owned();
    let out = t.rt(&["create", "--bundle", &dir, "--pid-file", &create_pid, &b.id]);
    out.ok();
    assert_pid_file_safe(&vol, "create.pid", &victim);
    t.start(&b.id).ok();

    // exec --pid-file <volume>/exec.pid, the container running (and able to plant).
    plant_pid_file_links(&vol, "exec.pid", &victim, 20000);
    let exec_pid = vol.join("exec.pid").to_string_lossy().into_owned();
    let out = t.rt(&["exec", "--detach", "--pid-file", &exec_pid, &b.id, "true"]);
    out.ok();
    assert_pid_file_safe(&vol, "exec.pid", &victim);

    t.delete_force(&b.id).ok();
    t.assert_nothing_left();
}

// ---------------------------------------------------------------------------------------------
// tmpcopyup copies the image's content of the mount point into the new tmpfs, as host root
// (issue 9, defect 13). An entry that is a symlink must be copied as a symlink: followed, it
// would copy a host file (or a host directory's tree) into the container.

#[test]
fn tmpcopyup_copies_symlinks_as_symlinks() {
    let t = Test::new();
    let secret = t.path("host-secret");
    std::fs::write(&secret, "host secret\n").unwrap();
    let secret_dir = t.path("host-secret-dir");
    std::fs::create_dir_all(&secret_dir).unwrap();
    std::fs::write(secret_dir.join("inner"), "host inner secret\n").unwrap();
    let mut b = t.bundle();
    let data = b.rootfs().join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("plain"), "image file\n").unwrap();
    std::fs::write(data.join("sub/nested"), "nested file\n").unwrap();
    std::os::unix::fs::symlink(&secret, data.join("file-link")).unwrap();
    std::os::unix::fs::symlink(&secret_dir, data.join("dir-link")).unwrap();
    std::os::unix::fs::symlink(&secret, data.join("sub/nested-link")).unwrap();
    b.add_mount(
        json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs",
                       "options": ["tmpcopyup", "nosuid", "nodev"]}),
    );
    let s = secret.display();
    let d = secret_dir.display();
    b.sh(
        "cat /data/plain /data/sub/nested; \
         readlink /data/file-link; readlink /data/dir-link; readlink /data/sub/nested-link; \
         [ -L /data/file-link ] && echo file-link-is-link; [ -L /data/dir-link ] && echo dir-link-is-link; \
         cat /data/file-link 2>/dev/null; ls /data/dir-link/ 2>/dev/null; echo done",
    );
    let out = t.run(&b);
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines.contains(&"image file"), "{out}");
    assert!(lines.contains(&"nested file"), "{out}");
    assert!(lines.contains(&"file-link-is-link"), "{out}");
    assert!(lines.contains(&"dir-link-is-link"), "{out}");
    assert!(
        lines.iter().filter(|l| **l == s.to_string()).count() == 2,
        "both file links keep their target:\n{out}"
    );
    assert!(lines.contains(&d.to_string().as_str()), "{out}");
    assert!(
        !out.stdout.contains("host secret") && !out.stdout.contains("inner"),
        "host content was copied into the container:\n{out}"
    );
    assert!(lines.contains(&"done"), "{out}");
    t.assert_nothing_left();
}

/// The same copy, raced: a process on the host (another container sharing the image directory
/// would do) keeps exchanging a directory of the image with a symlink to a host directory while
/// the runtime copies. A copy that looks a name up again after deciding what it is follows the
/// symlink into the host directory; one that works on the descriptor it looked at cannot.
#[test]
fn tmpcopyup_does_not_follow_a_racing_swap() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let t = Test::new();
    let secret_dir = t.path("host-secret-dir");
    std::fs::create_dir_all(&secret_dir).unwrap();
    std::fs::write(secret_dir.join("host-secret-file"), "host secret\n").unwrap();
    let mut b = t.bundle();
    let data = b.rootfs().join("data");
    let mut pairs = Vec::new();
    for i in 0..16 {
        let dir = data.join(format!("dir{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("image-file"), "image\n").unwrap();
        let link = data.join(format!("link{i}"));
        std::os::unix::fs::symlink(&secret_dir, &link).unwrap();
        pairs.push((dir, link));
    }
    b.add_mount(
        json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs",
                       "options": ["tmpcopyup", "nosuid", "nodev"]}),
    );
    b.sh("ls -R /data");
    let stop = AtomicBool::new(false);
    let outs = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                for (a, l) in &pairs {
                    let _ = nix::fcntl::renameat2(
                        None,
                        a.as_path(),
                        None,
                        l.as_path(),
                        nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                    );
                }
            }
        });
        // The swapper stops however this closure ends (a harness timeout panics).
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop = StopOnDrop(&stop);
        let mut outs = Vec::new();
        for _ in 0..24 {
            let out = t.run(&b);
            let leaked = out.stdout.contains("host-secret-file");
            outs.push(out);
            if leaked {
                break;
            }
        }
        outs
    });
    for out in &outs {
        assert!(
            !out.stdout.contains("host-secret-file"),
            "the host directory's content was copied into the container:\n{out}"
        );
    }
    for out in &outs {
        // A copy may also refuse a file that changed under it; it must never leak.
        assert!(
            out.success() || out.stderr.contains("changed while being copied"),
            "{out}"
        );
    }
    t.assert_nothing_left();
}

// ---------------------------------------------------------------------------------------------
// `--no-pivot`: a nested user namespace mounts a fresh procfs.
//
// The kernel lets a user namespace mount procfs (or sysfs) only when its mount namespace
// already shows a full, uncovered one ("mount too revealing"); the container's own /proc has
// masked paths over it, so that check fails inside a container. Without pivot_root, though,
// the root is a chroot and the host's full /proc stays mounted in the container's mount
// namespace, hidden below it: the check passes, and `unshare -Urmpf` followed by
// `mount -t proc` gives the process an unmasked procfs. As runc, sealrun detaches (or covers)
// every full procfs and sysfs outside the rootfs before the chroot. Landlock stops the mount
// on its own too (a sandboxed process may not mount), so the test holds with Landlock off as
// well, and only the twin on the unfixed runtime shows the mount working.

/// Run a `--no-pivot` container that tries the nested procfs mount; returns its output.
fn no_pivot_proc_mount(layers: &[&str]) -> Out {
    let t = Test::new();
    let mut b = t.bundle();
    // An unprivileged user: mapping it to root in the new user namespace needs no capability
    // (mapping uid 0 would need CAP_SETFCAP).
    b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
    b.sh(
        "unshare -Urmpf sh -c 'if mount -t proc proc /dev/shm 2>/dev/null; \
         then echo mount=ok; else echo mount=refused; fi' 2>&1 || echo unshare=failed; echo done=1",
    );
    let out = t.run_with(&strs(&off(layers)), &b, &["--no-pivot"]);
    t.assert_nothing_left();
    out
}

#[test]
fn no_pivot_nested_userns_cannot_mount_proc() {
    let out = no_pivot_proc_mount(&[]);
    out.ok();
    assert_eq!(get(&out.stdout, "done"), "1", "{out}");
    // With Landlock on, already the new mount namespace's propagation change is refused
    // (`unshare=failed`); either way no procfs gets mounted.
    assert_ne!(
        attack::kv(&out.stdout, "mount").as_deref(),
        Some("ok"),
        "{out}"
    );
}

#[test]
fn no_pivot_nested_userns_cannot_mount_proc_without_landlock() {
    if !attack::can_disable() {
        return skip(&attack::no_disable());
    }
    // Landlock off: only the masking of the host's procfs and sysfs refuses the mount (the
    // unfixed runtime printed mount=ok here).
    let out = no_pivot_proc_mount(&["landlock"]);
    out.ok();
    assert_eq!(get(&out.stdout, "mount"), "refused", "{out}");
}
