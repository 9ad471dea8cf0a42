//! The embedding API, used only through its public items (`sealrun::Sandbox` and friends):
//! from a multi-threaded program, with the caller's process checked unchanged afterwards.
//!
//! Tests here share one process; the one that compares the caller's children and namespaces
//! before and after takes [`EXCLUSIVE`] for writing, the others for reading, so no other test's
//! helper is a child of the process while it looks.

mod common;
mod embed_support;

use std::os::fd::AsRawFd;
use std::sync::RwLock;

use common::bundle::Bundle;
use common::Test;
use sealrun::{Error, ExecBuilder, Sandbox, Status, Stdio};
use serde_json::json;

static EXCLUSIVE: RwLock<()> = RwLock::new(());

fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    EXCLUSIVE.read().unwrap_or_else(|e| e.into_inner())
}

use embed_support::{create, read_all, sandbox, sh_bundle};

#[test]
fn run_one_and_read_its_output() {
    let _g = shared();
    let t = Test::new();
    let sb = sandbox(&t);
    let b = sh_bundle(&t, t.id(), "echo hello; echo oops >&2; exit 3");
    let c = create(&sb, &b, [Stdio::Null, Stdio::Pipe, Stdio::Pipe]);
    assert!(c.pid() > 0);
    assert_eq!(c.id(), t.id());
    let st = c.state().unwrap();
    assert_eq!(st.status, Status::Created);
    assert_eq!(st.pid, Some(c.pid()));
    let out = c.take_stdout().unwrap();
    let err = c.take_stderr().unwrap();
    assert!(c.take_stdout().is_none(), "handed out once");
    c.start().unwrap();
    assert_eq!(read_all(out), b"hello\n");
    assert_eq!(read_all(err), b"oops\n");
    let status = c.wait().unwrap();
    assert_eq!(status.code(), Some(3));
    assert_eq!(c.wait().unwrap().code(), Some(3), "wait twice");
    assert_eq!(c.state().unwrap().status, Status::Stopped);
    assert_eq!(c.state().unwrap().pid, None);
    let audit = serde_json::to_value(c.audit().unwrap()).unwrap();
    assert_eq!(audit["id"], t.id());
    assert!(
        audit["sealed_exe"] == "read-only-overlay" || audit["sealed_exe"] == "sealed",
        "the helper runs protected: {audit}"
    );
    c.delete().unwrap();
    assert!(matches!(c.start(), Err(Error::NotFound(ref id)) if id == t.id()));
    t.assert_nothing_left();
}

#[test]
fn handles_are_send_and_sync() {
    fn shareable<T: Send + Sync + Clone>() {}
    fn movable<T: Send + Sync>() {}
    shareable::<Sandbox>();
    movable::<sealrun::Container>();
    movable::<sealrun::Process>();
    movable::<sealrun::ContainerBuilder>();
    movable::<sealrun::Error>();
}

#[test]
fn the_operator_policy_holds_embedded_containers() {
    let _g = shared();
    let t = Test::new();
    let policy = t.path("policy.json");
    std::fs::write(&policy, r#"{"requireSeccomp": true}"#).unwrap();
    let sb = Sandbox::builder()
        .state_root(&t.root)
        .runtime_binary(env!("CARGO_BIN_EXE_sealrun"))
        .policy_file(&policy)
        .build()
        .unwrap();
    let b = sh_bundle(&t, t.id(), "true");
    let err = sb
        .container(t.id())
        .spec_json(serde_json::to_vec(&b.config).unwrap())
        .rootfs(b.rootfs())
        .create()
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig { field, .. } if field == "linux.seccomp"),
        "{err}"
    );
    t.assert_nothing_left();

    std::fs::write(&policy, r#"{"requireSecomp": true}"#).unwrap();
    let err = Sandbox::builder()
        .runtime_binary(env!("CARGO_BIN_EXE_sealrun"))
        .policy_file(&policy)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("requireSecomp"), "{err}");
}

/// `SandboxBuilder::policy`: the operator policy as a value, checked when the sandbox is built
/// and held to by every container, the message saying where it came from.
#[test]
fn the_operator_policy_as_a_value() {
    let _g = shared();
    let t = Test::new();
    let policy = sealrun::policy::Policy::parse(br#"{"requireSeccomp": true}"#).unwrap();
    let sb = Sandbox::builder()
        .state_root(&t.root)
        .runtime_binary(env!("CARGO_BIN_EXE_sealrun"))
        .policy(policy)
        .build()
        .unwrap();
    let b = sh_bundle(&t, t.id(), "true");
    let err = sb
        .container(t.id())
        .spec_json(serde_json::to_vec(&b.config).unwrap())
        .rootfs(b.rootfs())
        .create()
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig { field, reason }
            if field == "linux.seccomp" && reason.contains("given by the embedding program")),
        "{err}"
    );
    t.assert_nothing_left();

    let bad = sealrun::policy::Policy {
        forbidden_syscalls: vec!["no_such_syscall".into()],
        ..Default::default()
    };
    let err = Sandbox::builder()
        .runtime_binary(env!("CARGO_BIN_EXE_sealrun"))
        .policy(bad)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("forbiddenSyscalls[0]"), "{err}");
}

#[test]
fn run_from_a_bundle_directory() {
    let _g = shared();
    let t = Test::new();
    let sb = sandbox(&t);
    let b = sh_bundle(&t, t.id(), "exit 7");
    b.write();
    let status = sb.run(sb.container(t.id()).bundle(&b.dir)).expect("run");
    assert_eq!(status.code(), Some(7));
    t.assert_nothing_left();
}

/// What must not change in the caller.
#[derive(Debug, PartialEq, Eq)]
struct Caller {
    cwd: std::path::PathBuf,
    dumpable: i32,
    sigmask: Vec<i32>,
    pid_for_children: std::path::PathBuf,
    pid_ns: std::path::PathBuf,
    children: Vec<String>,
}

fn caller() -> Caller {
    // SAFETY: PR_GET_DUMPABLE only reads a flag.
    let dumpable = unsafe { libc::prctl(libc::PR_GET_DUMPABLE) };
    // SAFETY: a zeroed sigset_t is a valid (empty) set; SIG_SETMASK with a null new set only
    // reads the calling thread's mask into `old`.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), &mut old) };
    assert_eq!(rc, 0);
    // SAFETY: sigismember reads the set initialised above.
    let sigmask = (1..65)
        .filter(|s| unsafe { libc::sigismember(&old, *s) } == 1)
        .collect();
    let mut children: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .flat_map(|t| {
            std::fs::read_to_string(t.path().join("children"))
                .unwrap_or_default()
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    children.sort();
    Caller {
        cwd: std::env::current_dir().unwrap(),
        dumpable,
        sigmask,
        pid_for_children: std::fs::read_link("/proc/self/ns/pid_for_children").unwrap(),
        pid_ns: std::fs::read_link("/proc/self/ns/pid").unwrap(),
        children,
    }
}

/// One container of the concurrent test: `read` from stdin, then exit with `code`; an exec
/// into it exits with `code + 100` while it runs.
fn lifecycle(sb: &Sandbox, b: &Bundle, code: i32) {
    let c = create(sb, b, [Stdio::Pipe, Stdio::Null, Stdio::Null]);
    c.start().unwrap();
    let p = c
        .exec(ExecBuilder::new([
            "sh",
            "-c",
            &format!("exit {}", code + 100),
        ]))
        .unwrap_or_else(|e| panic!("exec in {}: {e}", b.id));
    assert!(p.pid() > 0);
    assert_eq!(
        p.wait().unwrap().code(),
        Some(code + 100),
        "exec in {}",
        b.id
    );
    assert_eq!(c.state().unwrap().status, Status::Running);
    drop(c.take_stdin());
    assert_eq!(c.wait().unwrap().code(), Some(code), "container {}", b.id);
    c.delete().unwrap();
}

#[test]
fn twenty_containers_from_four_threads_leave_the_caller_as_it_was() {
    let _g = EXCLUSIVE.write().unwrap_or_else(|e| e.into_inner());
    let t = Test::new();
    let sb = sandbox(&t);
    let before = caller();
    let bundles: Vec<(Bundle, i32)> = (0..20)
        .map(|i| {
            let id = t.new_id("c");
            (
                sh_bundle(&t, &id, &format!("read x; exit {}", i + 1)),
                i + 1,
            )
        })
        .collect();
    std::thread::scope(|s| {
        for chunk in bundles.chunks(5) {
            let sb = sb.clone();
            s.spawn(move || {
                for (b, code) in chunk {
                    lifecycle(&sb, b, *code);
                }
            });
        }
    });
    let after = caller();
    assert_eq!(before, after);
    assert!(
        after.children.is_empty(),
        "no child left: {:?}",
        after.children
    );
    assert_eq!(after.pid_for_children, after.pid_ns);
    // A command started now runs on the host, in our pid namespace.
    let out = std::process::Command::new("readlink")
        .arg("/proc/self/ns/pid")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        after.pid_ns.to_string_lossy()
    );
    assert!(std::process::Command::new("true")
        .status()
        .unwrap()
        .success());
    t.assert_nothing_left();
}

#[test]
fn kill_wait_delete_without_reaping_by_the_caller() {
    let _g = shared();
    let t = Test::new();
    let sb = sandbox(&t);
    let b = sh_bundle(&t, t.id(), "sleep 1000");
    let c = create(&sb, &b, [Stdio::Null, Stdio::Null, Stdio::Null]);
    c.start().unwrap();
    assert_eq!(c.state().unwrap().status, Status::Running);
    let err = c.delete().unwrap_err();
    assert!(
        matches!(&err, Error::WrongState { id, .. } if id == t.id()),
        "delete of a running container: {err}"
    );
    let pidfd = c.pidfd().unwrap();
    // wait from another thread while this one kills.
    std::thread::scope(|s| {
        let waiter = s.spawn(|| c.wait().unwrap());
        c.kill(libc::SIGKILL).unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&waiter.join().unwrap()),
            Some(libc::SIGKILL)
        );
    });
    assert_eq!(c.state().unwrap().status, Status::Stopped);
    // The pidfd the helper handed out reports the exit too (poll returns it readable).
    let mut pfd = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; no timeout (the process has exited: wait said so).
    assert_eq!(unsafe { libc::poll(&mut pfd, 1, -1) }, 1);
    assert!(matches!(c.pidfd(), Err(Error::WrongState { .. })));
    c.delete().unwrap();
    t.assert_nothing_left();
}

#[test]
fn a_container_whose_init_dies_is_stopped() {
    let _g = shared();
    let t = Test::new();
    let sb = sandbox(&t);
    let b = sh_bundle(&t, t.id(), "sleep 1000");
    let c = create(&sb, &b, [Stdio::Null, Stdio::Null, Stdio::Null]);
    c.start().unwrap();
    // Killed from outside, not through the API (the init of a pid namespace ignores SIGKILL
    // from inside it).
    // SAFETY: kill(2) on the container's init pid, which the helper has not reaped yet.
    assert_eq!(unsafe { libc::kill(c.pid(), libc::SIGKILL) }, 0);
    let status = c.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    assert_eq!(c.state().unwrap().status, Status::Stopped);
    c.delete().unwrap();
    t.assert_nothing_left();
}

#[test]
fn pause_resume_and_a_dropped_container_is_deleted() {
    let _g = shared();
    let t = Test::new();
    let sb = sandbox(&t);
    let b = sh_bundle(&t, t.id(), "sleep 1000");
    let c = create(&sb, &b, [Stdio::Null, Stdio::Null, Stdio::Null]);
    c.start().unwrap();
    c.pause().unwrap();
    assert_eq!(c.state().unwrap().status, Status::Paused);
    c.resume().unwrap();
    assert_eq!(c.state().unwrap().status, Status::Running);
    let limits: oci_spec::runtime::LinuxResources =
        serde_json::from_value(json!({"pids": {"limit": 77}})).unwrap();
    c.update(limits).unwrap();
    assert_eq!(c.stats().unwrap().pids.limit, 77);
    assert!(c.pids().unwrap().contains(&c.pid()));
    drop(c);
    assert!(matches!(sb.state(t.id()), Err(Error::NotFound(_))));
    t.assert_nothing_left();
}

#[test]
fn bad_input_gets_typed_errors_and_leaves_nothing() {
    let _g = shared();
    let t = Test::new();
    let sb = sandbox(&t);
    let b = sh_bundle(&t, t.id(), "true");

    let err = sb
        .container("../escape")
        .spec_json("{}")
        .create()
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("../escape")),
        "{err}"
    );

    let err = sb.container(t.id()).create().unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains(t.id())),
        "{err}"
    );

    let err = sb
        .container(t.id())
        .spec_json(serde_json::to_vec(&b.config).unwrap())
        .rootfs(t.path("no-such-rootfs"))
        .create()
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig { field, .. } if field == "root.path"),
        "{err}"
    );

    let mut bad = b.config.clone();
    bad["process"]["args"] = json!([]);
    let err = sb
        .container(t.id())
        .spec_json(serde_json::to_vec(&bad).unwrap())
        .rootfs(b.rootfs())
        .create()
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig { field, .. } if field.starts_with("process.args")),
        "{err}"
    );

    let mut bad = b.config.clone();
    bad["process"]["rlimits"] = json!([{"type": "RLIMIT_NOPE", "hard": 1, "soft": 1}]);
    let err = sb
        .container(t.id())
        .spec_json(serde_json::to_vec(&bad).unwrap())
        .rootfs(b.rootfs())
        .create()
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig { field, .. } if field.contains("rlimits")),
        "{err}"
    );

    let err = sb
        .container(t.id())
        .spec_json(serde_json::to_vec(&b.config).unwrap())
        .rootfs(b.rootfs())
        .seccomp_notify(true)
        .create()
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig { field, .. } if field == "linux.seccomp"),
        "{err}"
    );

    // A second container with a live one's id.
    let c = create(&sb, &b, [Stdio::Null, Stdio::Null, Stdio::Null]);
    let err = sb
        .container(t.id())
        .spec_json(serde_json::to_vec(&b.config).unwrap())
        .rootfs(b.rootfs())
        .create()
        .unwrap_err();
    assert!(
        matches!(&err, Error::AlreadyExists(id) if id == t.id()),
        "{err}"
    );
    assert_eq!(
        c.state().unwrap().status,
        Status::Created,
        "the first one is untouched"
    );
    c.start().unwrap();
    assert!(c.wait().unwrap().success());
    let err = c.exec(ExecBuilder::new(["true"])).unwrap_err();
    assert!(
        matches!(&err, Error::WrongState { id, status, .. } if id == t.id() && status == "stopped"),
        "exec in a stopped container: {err:?}"
    );
    let err = c.kill(1000).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("1000")),
        "{err}"
    );
    c.delete().unwrap();

    let err = Sandbox::builder()
        .runtime_binary(t.path("no-such-binary"))
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("no-such-binary")),
        "{err}"
    );
    t.assert_nothing_left();
    // No generated bundle, listener socket or anything else under the state root.
    let left: Vec<_> = std::fs::read_dir(&t.root)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left under the state root: {left:?}");
}

/// `SandboxBuilder::log_sink`: the helpers' records reach a function of this program, the
/// audit record among them with its fields.
#[test]
fn a_log_sink_receives_the_audit_record() {
    let _g = shared();
    let t = Test::new();
    let (tx, rx) = std::sync::mpsc::channel::<sealrun::LogRecord>();
    let tx = std::sync::Mutex::new(tx);
    let sb = Sandbox::builder()
        .state_root(&t.root)
        .runtime_binary(env!("CARGO_BIN_EXE_sealrun"))
        .log_sink(move |r| {
            let _ = tx.lock().unwrap().send(r.clone());
        })
        .build()
        .unwrap();
    let b = sh_bundle(&t, t.id(), "exit 0");
    let c = create(&sb, &b, [Stdio::Null, Stdio::Null, Stdio::Null]);
    // Written by the helper before create returned; the wait only bounds a broken sink.
    let audit = loop {
        let r = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("a record");
        if r.message == "container protections" {
            break r;
        }
    };
    assert_eq!(audit.level, sealrun::LogLevel::Info);
    assert_eq!(audit.fields.get("id"), Some(&json!(t.id())), "{audit:?}");
    assert!(!audit.time.is_empty());
    c.start().unwrap();
    assert!(c.wait().unwrap().success());
    c.delete().unwrap();
    assert!(
        !std::fs::read_to_string(&t.log)
            .unwrap_or_default()
            .contains(t.id()),
        "the records went to the sink only"
    );
    t.assert_nothing_left();
}

/// The helper's entry point is public (the sealrun binary calls it) but does nothing in any
/// other program: it would take the descriptor it is given and replace the stdio.
#[test]
fn the_helper_entry_point_refuses_to_run_in_the_caller() {
    let _g = shared();
    let t = Test::new();
    // SAFETY: `Runtime::new`'s promise does not hold for this multi-threaded test process;
    // the token reaches only `helper_main`, which the test shows returns at once, changing
    // nothing.
    let rt = unsafe {
        sealrun::container::Runtime::new(
            sealrun::container::StateRoot::new(&t.root),
            sealrun::selfexe::SealStatus::Disabled,
        )
    };
    // A descriptor of ours it would claim, at a number it would accept.
    let ours = std::fs::File::open("/dev/null").unwrap();
    let fd = ours.as_raw_fd();
    assert_eq!(sealrun::sandbox::helper_main(rt, fd), 2);
    // SAFETY: F_GETFD only reads the flags of a descriptor we own.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    assert_eq!(flags, libc::FD_CLOEXEC, "still ours, unchanged");
    drop(ours);
    t.assert_nothing_left();
}
