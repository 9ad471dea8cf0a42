//! The embedding API's I/O, through its public items only: 10 MiB through pipes, stdin EOF,
//! terminals, preserved descriptors, the seccomp notify descriptor answered in this process.

mod common;
mod embed_support;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use common::Test;
use embed_support::{create, read_all, sandbox, sh_bundle};
use sealrun::{ExecBuilder, Stdio};
use serde_json::json;

#[test]
fn preserved_descriptors_reach_the_container_in_order() {
    let t = Test::new();
    let sb = sandbox(&t);
    let b = sh_bundle(
        &t,
        t.id(),
        "echo three >&3; echo four >&4; ls /proc/self/fd",
    );
    let pipe = || {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two new descriptors into `fds`, which we then own.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both were just created for us.
        unsafe {
            (
                std::fs::File::from_raw_fd(fds[0]),
                OwnedFd::from_raw_fd(fds[1]),
            )
        }
    };
    let (r3, w3) = pipe();
    let (r4, w4) = pipe();
    let c = sb
        .container(t.id())
        .spec_json(serde_json::to_vec(&b.config).unwrap())
        .rootfs(b.rootfs())
        .preserve_fd(w3)
        .preserve_fd(w4)
        .stdout(Stdio::Pipe)
        .create()
        .unwrap();
    let out = c.take_stdout().unwrap();
    c.start().unwrap();
    // EOF on both pipes: nobody but the container held the write ends.
    assert_eq!(read_all(r3), b"three\n");
    assert_eq!(read_all(r4), b"four\n");
    let fds = String::from_utf8(read_all(out)).unwrap();
    let fds: Vec<&str> = fds.split_whitespace().collect();
    assert_eq!(
        fds,
        ["0", "1", "2", "3", "4", "5"],
        "only stdio, 3, 4 and ls's own"
    );
    assert!(c.wait().unwrap().success());
    c.delete().unwrap();
    t.assert_nothing_left();

    // More than one message carries is refused before anything starts.
    let mut too_many = sb
        .container(t.new_id("many"))
        .spec_json(serde_json::to_vec(&b.config).unwrap())
        .rootfs(b.rootfs());
    for _ in 0..250 {
        too_many = too_many.preserve_fd(OwnedFd::from(std::fs::File::open("/dev/null").unwrap()));
    }
    let e = too_many.create().expect_err("too many descriptors");
    assert!(
        matches!(e, sealrun::Error::InvalidArgument(ref m) if m.contains("at most 249")),
        "{e}"
    );
    t.assert_nothing_left();
}

/// Everything the pty's other side wrote, until it closed (EIO on the master).
fn read_pty(master: OwnedFd) -> String {
    let mut f = std::fs::File::from(master);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("read pty: {e}"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn terminals_hand_their_master_to_the_caller() {
    let t = Test::new();
    let sb = sandbox(&t);
    let b = sh_bundle(&t, t.id(), "tty; read x; echo got $x");
    let c = sb
        .container(t.id())
        .spec_json(serde_json::to_vec(&b.config).unwrap())
        .rootfs(b.rootfs())
        .terminal(true)
        .create()
        .unwrap();
    let master = c.pty_master().expect("the pty master reached the caller");
    c.start().unwrap();

    let p = c
        .exec(ExecBuilder::new(["sh", "-c", "tty; exit 4"]).terminal(true))
        .unwrap();
    let text = read_pty(p.pty_master().expect("the exec's pty master"));
    assert!(
        text.contains("/dev/") && !text.contains("not a tty"),
        "{text}"
    );
    assert_eq!(p.wait().unwrap().code(), Some(4));

    let mut f = std::fs::File::from(master);
    f.write_all(b"hello\n").unwrap();
    let text = read_pty(f.into());
    assert!(!text.contains("not a tty"), "{text}");
    assert!(text.contains("got hello"), "{text}");
    assert!(c.wait().unwrap().success());
    c.delete().unwrap();
    t.assert_nothing_left();
}

const TEN_MIB: usize = 10 * 1024 * 1024;

#[test]
fn ten_mib_through_stdout_and_stdin_eof_reaches_the_container() {
    let t = Test::new();
    let sb = sandbox(&t);
    let b = sh_bundle(&t, t.id(), &format!("head -c {TEN_MIB} /dev/zero; cat"));
    let c = create(&sb, &b, [Stdio::Pipe, Stdio::Pipe, Stdio::Null]);
    let mut stdin = c.take_stdin().unwrap();
    let stdout = c.take_stdout().unwrap();
    c.start().unwrap();
    std::thread::scope(|s| {
        let reader = s.spawn(|| read_all(stdout));
        stdin.write_all(b"the end").unwrap();
        drop(stdin);
        let out = reader.join().unwrap();
        assert_eq!(out.len(), TEN_MIB + 7);
        assert!(out[..TEN_MIB].iter().all(|b| *b == 0));
        assert_eq!(&out[TEN_MIB..], b"the end");
    });
    assert!(c.wait().unwrap().success(), "cat saw EOF and exited");

    // The same through an exec'd process's own pipes.
    let b2 = sh_bundle(&t, &t.new_id("x"), "sleep 1000");
    let c2 = create(&sb, &b2, [Stdio::Null, Stdio::Null, Stdio::Null]);
    c2.start().unwrap();
    let p = c2
        .exec(
            ExecBuilder::new(["sh", "-c", &format!("head -c {TEN_MIB} /dev/zero; cat")])
                .stdin(Stdio::Pipe)
                .stdout(Stdio::Pipe),
        )
        .unwrap();
    let mut stdin = p.take_stdin().unwrap();
    let stdout = p.take_stdout().unwrap();
    std::thread::scope(|s| {
        let reader = s.spawn(|| read_all(stdout));
        stdin.write_all(b"!").unwrap();
        drop(stdin);
        assert_eq!(reader.join().unwrap().len(), TEN_MIB + 1);
    });
    assert!(p.wait().unwrap().success());
    c2.force_delete().unwrap();
    c.delete().unwrap();
    t.assert_nothing_left();
}

/// Answer one notification on `listener` with `-errno`; the syscall number it was for.
fn answer_one(listener: &OwnedFd, errno: i32) -> i32 {
    // SAFETY: seccomp_notif is plain data, zeroed as the kernel requires; the ioctl writes one
    // into it.
    let mut notif: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV as _,
            &mut notif as *mut libc::seccomp_notif,
        )
    };
    assert_eq!(rc, 0, "NOTIF_RECV: {}", std::io::Error::last_os_error());
    let resp = libc::seccomp_notif_resp {
        id: notif.id,
        val: 0,
        error: -errno,
        flags: 0,
    };
    // SAFETY: NOTIF_SEND reads one seccomp_notif_resp from a valid pointer.
    let rc = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND as _,
            &resp as *const libc::seccomp_notif_resp,
        )
    };
    assert_eq!(rc, 0, "NOTIF_SEND: {}", std::io::Error::last_os_error());
    notif.data.nr
}

#[test]
fn the_seccomp_notify_fd_reaches_the_caller() {
    let t = Test::new();
    let sb = sandbox(&t);
    let mut b = sh_bundle(
        &t,
        t.id(),
        "mkdir /supervised 2>&1; echo rc=$?; read x; exit 0",
    );
    b.set(
        "/linux/seccomp",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        }),
    );
    let c = sb
        .container(t.id())
        .spec_json(serde_json::to_vec(&b.config).unwrap())
        .rootfs(b.rootfs())
        .stdin(Stdio::Pipe)
        .stdout(Stdio::Pipe)
        .seccomp_notify(true)
        .create()
        .unwrap();
    let listener = c
        .seccomp_notify_fd()
        .expect("the listener reached the caller");
    assert!(c.seccomp_notify_fd().is_none(), "handed out once");
    let out = c.take_stdout().unwrap();
    c.start().unwrap();
    let nr = answer_one(&listener, libc::ENOSPC);
    assert!(
        nr == libc::SYS_mkdir as i32 || nr == libc::SYS_mkdirat as i32,
        "{nr}"
    );
    let mut out = std::io::BufReader::new(out);
    let mut text = String::new();
    while !text.contains("rc=") {
        assert!(
            std::io::BufRead::read_line(&mut out, &mut text).unwrap() > 0,
            "{text}"
        );
    }
    assert!(
        text.contains("No space left on device") && text.contains("rc=1"),
        "the answer reached the container: {text}"
    );

    // An exec'd process loads the profile with a listener of its own: it reaches the caller too.
    let p = c
        .exec(ExecBuilder::new(["sh", "-c", "mkdir /again 2>&1"]).stdout(Stdio::Pipe))
        .unwrap();
    let listener = p
        .seccomp_notify_fd()
        .expect("the exec listener reached the caller");
    let nr = answer_one(&listener, libc::EXDEV);
    assert!(
        nr == libc::SYS_mkdir as i32 || nr == libc::SYS_mkdirat as i32,
        "{nr}"
    );
    let text = String::from_utf8(read_all(p.take_stdout().unwrap())).unwrap();
    assert!(text.contains("Invalid cross-device link"), "{text}");
    assert_eq!(p.wait().unwrap().code(), Some(1));

    drop(c.take_stdin());
    assert!(c.wait().unwrap().success());
    c.delete().unwrap();
    t.assert_nothing_left();
}

/// A pipe: (read end as a file, write end).
fn pipe() -> (std::fs::File, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new descriptors into `fds`, which we then own.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both were just created for us.
    unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            OwnedFd::from_raw_fd(fds[1]),
        )
    }
}

fn dev_null() -> OwnedFd {
    OwnedFd::from(std::fs::File::open("/dev/null").unwrap())
}

/// `ExecBuilder::preserve_fd`: descriptors reach an exec'd process as 3, 4, ... in order, and
/// nothing else does. Forty of them cover the numbers of the helper's own descriptors (its
/// log, the error pipe of its exec child): those move out of the way, so a failing exec with
/// as many still gets its own error back.
#[test]
fn exec_passes_preserved_descriptors_in_order() {
    let t = Test::new();
    let sb = sandbox(&t);
    let b = sh_bundle(&t, t.id(), "read x; exit 0");
    let c = create(&sb, &b, [Stdio::Pipe, Stdio::Null, Stdio::Null]);
    let stdin = c.take_stdin().unwrap();
    c.start().unwrap();
    let (r3, w3) = pipe();
    let (r4, mut w4) = {
        let (r, w) = pipe();
        (OwnedFd::from(r), std::fs::File::from(w))
    };
    w4.write_all(b"four\n").unwrap();
    drop(w4);
    let mut exec = ExecBuilder::new([
        "sh",
        "-c",
        "echo three >&3; cat <&4 >&3; ls /proc/self/fd >&3",
    ])
    .preserve_fd(w3)
    .preserve_fd(r4);
    for _ in 0..6 {
        exec = exec.preserve_fd(dev_null());
    }
    let p = c.exec(exec).unwrap();
    let out = String::from_utf8(read_all(r3)).unwrap();
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("three"), "{out}");
    assert_eq!(lines.next(), Some("four"), "{out}");
    let mut fds: Vec<u32> = lines.map(|l| l.parse().unwrap()).collect();
    fds.sort_unstable();
    assert_eq!(
        fds,
        (0..=11).collect::<Vec<_>>(),
        "stdio, 3..=10 and ls's own: {out}"
    );
    assert!(p.wait().unwrap().success());

    let mut bad = ExecBuilder::new(["/no/such/program"]);
    for _ in 0..40 {
        bad = bad.preserve_fd(dev_null());
    }
    let e = c.exec(bad).expect_err("no such program").to_string();
    assert!(
        e.contains("/no/such/program") || e.contains("not found"),
        "the exec child's own error came back: {e}"
    );
    let mut too_many = ExecBuilder::new(["true"]);
    for _ in 0..251 {
        too_many = too_many.preserve_fd(dev_null());
    }
    let e = c.exec(too_many).expect_err("more than one message carries");
    assert!(
        matches!(e, sealrun::Error::InvalidArgument(ref m) if m.contains("at most 250")),
        "{e}"
    );
    drop(stdin);
    assert!(c.wait().unwrap().success(), "the container lived on");
    c.delete().unwrap();
    t.assert_nothing_left();
}

/// The effective capability set of `sh` exec'd with `exec`, from /proc/self/status.
fn cap_eff(c: &sealrun::Container, exec: ExecBuilder) -> u64 {
    let p = c
        .exec(exec.stdout(Stdio::Pipe))
        .unwrap_or_else(|e| panic!("exec: {e}"));
    let text = String::from_utf8(read_all(p.take_stdout().unwrap())).unwrap();
    assert!(p.wait().unwrap().success(), "{text}");
    let hex = text
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap_or_else(|| panic!("no CapEff: {text}"));
    u64::from_str_radix(hex.trim(), 16).unwrap()
}

/// `ExecBuilder::capability` adds to the container process's capabilities (runc's
/// `exec --cap`), for that process only; an unknown name is an error naming it.
#[test]
fn exec_capabilities_are_typed_values() {
    let t = Test::new();
    let sb = sandbox(&t);
    let b = sh_bundle(&t, t.id(), "read x; exit 0");
    let c = create(&sb, &b, [Stdio::Pipe, Stdio::Null, Stdio::Null]);
    let stdin = c.take_stdin().unwrap();
    c.start().unwrap();
    let status = || ExecBuilder::new(["grep", "CapEff", "/proc/self/status"]);
    let net_raw = 1u64 << 13;
    let before = cap_eff(&c, status());
    assert_eq!(before & net_raw, 0, "CAP_NET_RAW is not in the default set");
    let with = cap_eff(&c, status().capability("CAP_NET_RAW"));
    assert_eq!(with, before | net_raw, "{with:#x} over {before:#x}");
    assert_eq!(cap_eff(&c, status()), before, "for that process only");
    let e = c
        .exec(status().capability("CAP_NO_SUCH_THING"))
        .expect_err("unknown capability")
        .to_string();
    assert!(e.contains("CAP_NO_SUCH_THING"), "{e}");
    drop(stdin);
    assert!(c.wait().unwrap().success());
    c.delete().unwrap();
    t.assert_nothing_left();
}

/// `ContainerBuilder::landlock`: Landlock settings as typed values reach the container: a
/// read-only path refuses the write that succeeds without them.
#[test]
fn landlock_options_are_typed_values() {
    let t = Test::new();
    let sb = sandbox(&t);
    let run = |id: &str, landlock: Option<sealrun::LandlockOptions>| -> String {
        let mut b = sh_bundle(&t, id, "echo x > /data/f; echo rc=$?");
        b.writable_root();
        std::fs::create_dir(b.rootfs().join("data")).unwrap();
        std::os::unix::fs::chown(b.rootfs().join("data"), Some(0), Some(0)).unwrap();
        let mut builder = sb
            .container(id)
            .spec_json(serde_json::to_vec(&b.config).unwrap())
            .rootfs(b.rootfs())
            .stdout(Stdio::Pipe);
        if let Some(l) = landlock {
            builder = builder.landlock(l);
        }
        let c = builder
            .create()
            .unwrap_or_else(|e| panic!("create {id}: {e}"));
        let out = c.take_stdout().unwrap();
        c.start().unwrap();
        let text = String::from_utf8(read_all(out)).unwrap();
        assert!(c.wait().unwrap().success());
        c.delete().unwrap();
        text
    };
    assert_eq!(run(&t.new_id("open"), None), "rc=0\n");
    let ro = sealrun::LandlockOptions::new().read_only("/data");
    assert_eq!(run(&t.new_id("ro"), Some(ro)), "rc=1\n");
    t.assert_nothing_left();
}
