//! Tier 2: compiled profiles loaded into the real kernel, each in a child process — the test
//! binary re-run for one test with `SEALRUN_SECCOMP_CHILD` set. The child sets no_new_privs
//! and RLIMIT_CORE=0, loads, probes, prints `RESULT key=value` lines on fd 1 and leaves with
//! `_exit`; the parent asserts on its output and exit status.

use std::collections::HashMap;
use std::fmt::Display;
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Output};

use oci_spec::runtime::LinuxSeccomp;
use serde_json::json;

use super::{compile, load, profile, send_listener};
use crate::sys;

const CHILD_ENV: &str = "SEALRUN_SECCOMP_CHILD";

/// Calls the test children themselves make after loading (allowlist profiles name them).
const CHILD_NEEDS: &[&str] = &[
    "write",
    "close",
    "exit",
    "exit_group",
    "brk",
    "mmap",
    "munmap",
    "mremap",
    "madvise",
    "mprotect",
    "rt_sigreturn",
    "rt_sigprocmask",
    "futex",
    "sigaltstack",
    "sched_yield",
];

/// In the child (`CHILD_ENV` = `name`): run `body` and exit with its status. In the parent:
/// run the child and return its output.
fn child(name: &str, body: fn() -> i32) -> Output {
    if std::env::var(CHILD_ENV).as_deref() == Ok(name) {
        let setup = sys::process::setrlimit(libc::RLIMIT_CORE, 0, 0)
            .and_then(|()| sys::process::set_no_new_privs());
        let code = match setup {
            Ok(()) => body(),
            Err(e) => {
                report("setup", format!("{e:?}"));
                99
            }
        };
        sys::process::exit_now(code);
    }
    let exe = std::env::current_exe().expect("test binary path");
    Command::new(exe)
        .args([
            &format!("seccomp::tests_kernel::{name}"),
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, name)
        .output()
        .expect("run test child")
}

/// One result line on fd 1 (unbuffered; captured by the parent).
fn report(key: &str, value: impl Display) {
    // libtest may have written "test name ... " without a newline: start a fresh line.
    let line = format!("\nRESULT {key}={value}\n");
    let _ = nix::unistd::write(std::io::stdout().as_fd(), line.as_bytes());
}

fn results(out: &Output) -> HashMap<String, String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once("RESULT ").map(|(_, rest)| rest))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn describe(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn spec(v: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(v).expect("valid seccomp object")
}

fn load_or_report(s: &LinuxSeccomp) -> Option<Option<std::os::fd::OwnedFd>> {
    let compiled = match compile(s) {
        Ok(c) => c,
        Err(e) => {
            report("compile", e);
            return None;
        }
    };
    match load(&compiled) {
        Ok(fd) => {
            report("loaded", "yes");
            Some(fd)
        }
        Err(e) => {
            report("load", e);
            None
        }
    }
}

fn errno_of<T>(r: nix::Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("{e:?}"),
    }
}

#[test]
fn errno_default_custom_and_newer() {
    fn body() -> i32 {
        // Several actions and no `seccomp` in the allowlist: still one load.
        let s = spec(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": CHILD_NEEDS, "action": "SCMP_ACT_ALLOW"},
                {"names": ["dup"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EXDEV},
                {"names": ["getpid"], "action": "SCMP_ACT_KILL_PROCESS",
                 "args": [{"index": 0, "value": 12345, "op": "SCMP_CMP_EQ"}]}
            ]
        }));
        if load_or_report(&s).is_none() {
            return 1;
        }
        report("dup", errno_of(nix::unistd::dup(1)));
        report("fsync", errno_of(nix::unistd::fsync(1)));
        report(
            "pipe2",
            errno_of(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)),
        );
        0
    }
    let out = child("errno_default_custom_and_newer", body);
    let r = results(&out);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        r.get("loaded").map(String::as_str),
        Some("yes"),
        "{}",
        describe(&out)
    );
    assert_eq!(r["dup"], "EXDEV", "custom errnoRet");
    assert_eq!(r["fsync"], "EPERM", "default action");
    assert_eq!(r["pipe2"], "ENOSYS", "newer than the profile");
}

#[test]
fn kill_process_dies_of_sigsys() {
    fn body() -> i32 {
        let s = spec(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["dup"], "action": "SCMP_ACT_KILL_PROCESS"}]
        }));
        if load_or_report(&s).is_none() {
            return 1;
        }
        let _ = nix::unistd::dup(1);
        report("survived", "yes");
        0
    }
    let out = child("kill_process_dies_of_sigsys", body);
    let r = results(&out);
    assert_eq!(
        r.get("loaded").map(String::as_str),
        Some("yes"),
        "{}",
        describe(&out)
    );
    assert!(!r.contains_key("survived"), "{}", describe(&out));
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGSYS),
        "{}",
        describe(&out)
    );
}

#[test]
fn trap_sends_sigsys_with_the_syscall() {
    fn body() -> i32 {
        let s = spec(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_TRAP"}]
        }));
        if let Err(e) = sys::seccomp::probe::install_sigsys_recorder() {
            report("sigaction", format!("{e:?}"));
            return 1;
        }
        if load_or_report(&s).is_none() {
            return 1;
        }
        let _ = nix::unistd::getppid();
        let (count, code, nr) = sys::seccomp::probe::sigsys_record();
        report("count", count);
        report("code", code);
        report("nr", nr);
        0
    }
    let out = child("trap_sends_sigsys_with_the_syscall", body);
    let r = results(&out);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(r["count"], "1");
    assert_eq!(r["code"], "1", "si_code SYS_SECCOMP");
    assert_eq!(r["nr"], libc::SYS_getppid.to_string());
}

#[test]
fn log_allows_the_call() {
    fn body() -> i32 {
        let s = spec(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": CHILD_NEEDS, "action": "SCMP_ACT_ALLOW"},
                {"names": ["dup"], "action": "SCMP_ACT_LOG"}
            ]
        }));
        if load_or_report(&s).is_none() {
            return 1;
        }
        report("dup", errno_of(nix::unistd::dup(1)));
        report("fsync", errno_of(nix::unistd::fsync(1)));
        0
    }
    let out = child("log_allows_the_call", body);
    let r = results(&out);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(r["dup"], "ok");
    assert_eq!(r["fsync"], "EPERM");
}

#[test]
fn notify_hands_the_listener_to_an_agent() {
    fn body() -> i32 {
        let path =
            std::env::temp_dir().join(format!("sealrun-seccomp-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = match sys::socket::listen_unix(&path) {
            Ok(l) => l,
            Err(e) => {
                report("listen", format!("{e:?}"));
                return 1;
            }
        };
        // The agent: an unfiltered thread started before the load.
        let agent = std::thread::spawn(move || -> Result<(String, usize), String> {
            let conn = sys::socket::accept(listener.as_fd()).map_err(|e| format!("{e:?}"))?;
            let mut buf = vec![0u8; 64 * 1024];
            let msg =
                sys::socket::recv_with_fds(conn.as_fd(), &mut buf).map_err(|e| format!("{e:?}"))?;
            let state = String::from_utf8_lossy(&buf[..msg.len]).into_owned();
            let fds = msg.fds.len();
            let fd = msg.fds.into_iter().next().ok_or("no fd")?;
            let n = sys::seccomp::ioctl_notif_recv(fd.as_fd()).map_err(|e| format!("{e:?}"))?;
            if i64::from(n.nr) != libc::SYS_getppid {
                return Err(format!("notified for syscall {}", n.nr));
            }
            sys::seccomp::ioctl_notif_send(fd.as_fd(), n.id, 4242, 0, false)
                .map_err(|e| format!("{e:?}"))?;
            Ok((state, fds))
        });
        let s = spec(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": path,
            "listenerMetadata": "probe-meta",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]
        }));
        let Some(Some(fd)) = load_or_report(&s) else {
            report("listener", "missing");
            return 1;
        };
        let state = json!({"ociVersion": "1.2.0", "id": "probe", "status": "creating",
                           "pid": std::process::id(), "bundle": "/b"});
        if let Err(e) = send_listener(&path, Some("probe-meta"), &state, fd.as_fd()) {
            report("send", e);
            return 1;
        }
        drop(fd);
        report("getppid", nix::unistd::getppid());
        let _ = std::fs::remove_file(&path);
        match agent.join() {
            Ok(Ok((state, fds))) => {
                report("fds", fds);
                report("state", state);
                0
            }
            Ok(Err(e)) => {
                report("agent", e);
                1
            }
            Err(_) => 1,
        }
    }
    let out = child("notify_hands_the_listener_to_an_agent", body);
    let r = results(&out);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(r["getppid"], "4242", "answered by the agent");
    assert_eq!(r["fds"], "1");
    let state: serde_json::Value = serde_json::from_str(&r["state"]).expect("state JSON");
    assert_eq!(state["fds"], json!(["seccompFd"]));
    assert_eq!(state["metadata"], "probe-meta");
    assert_eq!(state["ociVersion"], crate::OCI_VERSION);
    assert_eq!(state["state"]["id"], "probe");
    assert_eq!(state["pid"], state["state"]["pid"]);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn foreign_tables_get_enosys() {
    fn body() -> i32 {
        use sys::seccomp::probe::{int80_getpid, x32_getpid};
        report("int80_before", errno_of(int80_getpid()));
        let s = spec(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO"}]
        }));
        if load_or_report(&s).is_none() {
            return 1;
        }
        report("getpid", nix::unistd::getpid());
        report("int80_after", errno_of(int80_getpid()));
        report("x32", errno_of(x32_getpid()));
        0
    }
    let out = child("foreign_tables_get_enosys", body);
    let r = results(&out);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(r["getpid"], "-1", "the native call is denied");
    // On a kernel with IA32 emulation the i386 getpid works without the filter: the guard is
    // what stops it (a generator's plain architecture check would kill the process).
    if r["int80_before"] == "ok" {
        assert_eq!(r["int80_after"], "ENOSYS");
    }
    assert_eq!(r["x32"], "ENOSYS");
}

/// With `SCMP_ARCH_X86` named, an i386 call gets the rule its name has in the i386 table.
#[cfg(target_arch = "x86_64")]
#[test]
fn i386_table_follows_the_profile_when_named() {
    fn body() -> i32 {
        use sys::seccomp::probe::int80_getpid;
        report("int80_before", errno_of(int80_getpid()));
        let s = spec(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5}]
        }));
        if load_or_report(&s).is_none() {
            return 1;
        }
        report("int80_after", errno_of(int80_getpid()));
        0
    }
    let out = child("i386_table_follows_the_profile_when_named", body);
    let r = results(&out);
    assert!(out.status.success(), "{}", describe(&out));
    if r["int80_before"] != "ok" {
        return crate::test_skip::skip("the kernel runs no i386 calls (no IA32 emulation)");
    }
    assert_eq!(r["int80_after"], "EIO");
}

fn run_busybox(profile_name: &'static str) {
    if !std::path::Path::new("/bin/busybox").exists() {
        return crate::test_skip::skip("/bin/busybox missing (Debian busybox-static)");
    }
    fn body_for(name: &str) -> i32 {
        let s = match profile(name, &super::interp::DOCKER_CAPS) {
            Ok(s) => s,
            Err(e) => {
                report("profile", e);
                return 1;
            }
        };
        if load_or_report(&s).is_none() {
            return 1;
        }
        let err = Command::new("/bin/busybox")
            .args([
                "sh",
                "-c",
                "echo hi; ls /; grep Seccomp /proc/self/status; busybox true | cat; \
                 (sleep 0; echo sub) ; echo done",
            ])
            .exec();
        report("exec", err);
        1
    }
    fn default_body() -> i32 {
        body_for("default")
    }
    fn strict_body() -> i32 {
        body_for("strict")
    }
    let body = if profile_name == "default" {
        default_body as fn() -> i32
    } else {
        strict_body
    };
    let out = child(&format!("{profile_name}_profile_runs_busybox"), body);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", describe(&out));
    for want in [
        "hi\n",
        "proc\n",
        "Seccomp:\t2",
        "Seccomp_filters:\t1",
        "sub\n",
        "done\n",
    ] {
        assert!(
            stdout.contains(want),
            "missing {want:?}: {}",
            describe(&out)
        );
    }
}

#[test]
fn default_profile_runs_busybox() {
    run_busybox("default");
}

#[test]
fn strict_profile_runs_busybox() {
    run_busybox("strict");
}

/// The default profile with the cost-curve benchmark's 1000 generated rules (too long before
/// sealrun had its own generator) and rules on `getppid` using every operator on 64-bit
/// values: the kernel loads it and decides each probe call as the reference meaning says.
fn large_profile() -> LinuxSeccomp {
    let mut v = super::tests_bpf::with_generated_rules(1000);
    let extra = [
        json!({"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EIO,
               "args": [{"index": 0, "value": 0x1_0000_0007u64, "op": "SCMP_CMP_EQ"}]}),
        json!({"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENXIO,
               "args": [{"index": 1, "value": 0xffff_ffff_0000_0000u64, "op": "SCMP_CMP_GT"}]}),
        json!({"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::E2BIG,
               "args": [{"index": 2, "value": 0xff00_0000_0000_00ffu64,
                         "valueTwo": 0x1200_0000_0000_0034u64, "op": "SCMP_CMP_MASKED_EQ"}]}),
        json!({"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOEXEC,
               "args": [{"index": 3, "value": 5, "op": "SCMP_CMP_LT"},
                        {"index": 4, "value": 0x1_0000_0000u64, "op": "SCMP_CMP_GE"}]}),
        json!({"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EBADF,
               "args": [{"index": 5, "value": 1, "op": "SCMP_CMP_EQ"},
                        {"index": 5, "value": 0x2_0000_0001u64, "op": "SCMP_CMP_EQ"}]}),
        json!({"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ECHILD,
               "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_NE"},
                        {"index": 1, "value": 0x1_0000_0000u64, "op": "SCMP_CMP_LE"}]}),
    ];
    if let Some(rules) = v["syscalls"].as_array_mut() {
        rules.extend(extra);
    }
    spec(v)
}

/// Argument vectors for `getppid`: each rule's boundary, its high-half twin, both sides.
const LARGE_CASES: [[u64; 6]; 14] = [
    [3, 0, 0, 9, 0, 0],
    [0x1_0000_0007, 0, 0, 9, 0, 0],
    [0x7, 0, 0, 9, 0, 0],
    [3, 0xffff_ffff_0000_0001, 0, 9, 0, 0],
    [3, 0xffff_fffe_ffff_ffff, 0, 9, 0, 0],
    [3, 0x1_0000_0001, 0x1234_5678_0000_1234, 9, 0, 0],
    [3, 0x1_0000_0001, 0x1334_5678_0000_1234, 9, 0, 0],
    [3, 0x1_0000_0001, 0, 4, 0x1_0000_0000, 0],
    [3, 0x1_0000_0001, 0, 4, 0xffff_ffff, 0],
    [3, 0x1_0000_0001, 0, 9, 0, 0x2_0000_0001],
    [3, 0x1_0000_0001, 0, 9, 0, 0x1_0000_0001],
    [3, 0x1_0000_0001, 0, 9, 0, 1],
    [4, 0x1_0000_0000, 0, 9, 0, 0],
    [4, 0x1_0000_0001, 0, 9, 0, 0],
];

#[test]
fn large_profile_loads_and_decides_as_the_reference() {
    fn body() -> i32 {
        if load_or_report(&large_profile()).is_none() {
            return 1;
        }
        for (i, args) in LARGE_CASES.iter().enumerate() {
            let code = match sys::seccomp::probe::getppid_with_args(*args) {
                Ok(_) => 0,
                Err(e) => e as i32,
            };
            report(&format!("case{i}"), code);
        }
        0
    }
    let out = child("large_profile_loads_and_decides_as_the_reference", body);
    let r = results(&out);
    assert!(out.status.success(), "{}", describe(&out));
    let arch = super::interp::arch();
    let mut errnos = std::collections::BTreeSet::new();
    for (i, args) in LARGE_CASES.iter().enumerate() {
        let data = super::interp::Data::call(arch, super::interp::nr("getppid"), *args);
        let want = super::interp::expected(&large_profile(), arch, &data);
        let want = match want {
            libc::SECCOMP_RET_ALLOW => 0,
            w => (w & libc::SECCOMP_RET_DATA) as i32,
        };
        errnos.insert(want);
        assert_eq!(
            r[&format!("case{i}")],
            want.to_string(),
            "case {i}: {args:x?}"
        );
    }
    // The cases reach every rule and the allowed path.
    assert_eq!(errnos.len(), 7, "{errnos:?}");
}
