//! Supervise a container's `mkdir` calls from this program through the seccomp notify
//! descriptor the embedding API hands over: allowed under `/tmp`, refused (EPERM) elsewhere.
//!
//! ```text
//! cargo build --release
//! sudo cargo run --release --example supervise -- ROOTFS CMD [ARGS...]
//! # e.g. ROOTFS sh -c 'mkdir /tmp/ok && echo made; mkdir /srv/no || echo refused'
//! ```
//!
//! Each decision is printed to stderr. A demonstration, not a policy to copy: letting the call
//! continue after checking its argument in the target's memory (`SECCOMP_USER_NOTIF_FLAG_
//! CONTINUE`) is open to a race with another thread of the target rewriting that memory; a
//! real supervisor emulates the call (or opens the directory itself and injects a descriptor).

use std::ffi::CStr;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;

use oci_spec::runtime::{LinuxSeccomp, MountBuilder};
use sealrun::{Sandbox, Stdio};

fn main() {
    match run() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("supervise: {e}");
            std::process::exit(125);
        }
    }
}

fn run() -> sealrun::Result<i32> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        return Err(sealrun::Error::InvalidArgument(
            "usage: supervise ROOTFS CMD [ARGS...]".into(),
        ));
    }
    let rootfs = args.remove(0);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut spec = sealrun::sandbox_spec(&argv)?;
    let bad = |e: String| sealrun::Error::Other(e);
    let seccomp: LinuxSeccomp = serde_json::from_value(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    }))
    .map_err(|e| bad(e.to_string()))?;
    let mut linux = spec.linux().clone().unwrap_or_default();
    linux.set_seccomp(Some(seccomp));
    spec.set_linux(Some(linux));
    // A writable /tmp on the read-only root.
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(
        MountBuilder::default()
            .destination("/tmp")
            .typ("tmpfs")
            .source("tmpfs")
            .options(vec!["nosuid".into(), "nodev".into(), "mode=1777".into()])
            .build()
            .map_err(|e| bad(e.to_string()))?,
    );
    spec.set_mounts(Some(mounts));

    let root = std::env::var("SANDBOX_STATE_ROOT").unwrap_or("/run/sealrun-sandbox".into());
    let sandbox = Sandbox::builder().state_root(root).build()?;
    let c = sandbox
        .container(format!("supervise-{}", std::process::id()))
        .spec(spec)
        .rootfs(rootfs)
        .stdout(Stdio::Inherit)
        .stderr(Stdio::Inherit)
        .seccomp_notify(true)
        .create()?;
    let listener = c
        .seccomp_notify_fd()
        .ok_or_else(|| bad("no seccomp listener arrived".into()))?;
    // The supervisor thread ends when the listener hangs up: no filtered process is left.
    let supervisor = std::thread::spawn(move || supervise(&listener));
    c.start()?;
    let status = c.wait()?;
    let _ = supervisor.join();
    c.delete()?;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// Answer notifications until the listener hangs up (every filtered process has exited).
fn supervise(listener: &OwnedFd) {
    loop {
        let mut pfd = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no timeout.
        if unsafe { libc::poll(&mut pfd, 1, -1) } < 0 {
            continue;
        }
        if pfd.revents & libc::POLLIN == 0 {
            return;
        }
        // SAFETY: seccomp_notif is plain data, zeroed as NOTIF_RECV requires; the ioctl
        // writes one into it.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: `req` is a valid, writable seccomp_notif.
        let rc = unsafe {
            libc::ioctl(
                listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_RECV as _,
                &mut req as *mut libc::seccomp_notif,
            )
        };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        // mkdir(path, mode) or mkdirat(dirfd, path, mode).
        let addr = if req.data.nr == libc::SYS_mkdir as i32 {
            req.data.args[0]
        } else {
            req.data.args[1]
        };
        let path = read_path(req.pid, addr);
        let allowed = path
            .as_deref()
            .is_some_and(|p| p.starts_with("/tmp/") && !p.contains("/../"));
        eprintln!(
            "supervise: mkdir {:?}: {}",
            path.as_deref().unwrap_or("?"),
            if allowed { "allowed" } else { "refused" }
        );
        let resp = libc::seccomp_notif_resp {
            id: req.id,
            val: 0,
            error: if allowed { 0 } else { -libc::EPERM },
            flags: if allowed {
                libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32
            } else {
                0
            },
        };
        // SAFETY: NOTIF_SEND reads one seccomp_notif_resp from a valid pointer. A failure
        // (the target was killed meanwhile) needs no handling.
        unsafe {
            libc::ioctl(
                listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SEND as _,
                &resp as *const libc::seccomp_notif_resp,
            )
        };
    }
}

/// The NUL-terminated string at `addr` in process `pid`'s memory.
fn read_path(pid: u32, addr: u64) -> Option<String> {
    let mem = File::open(format!("/proc/{pid}/mem")).ok()?;
    let mut buf = vec![0u8; 4096];
    let n = mem.read_at(&mut buf, addr).ok()?;
    let s = CStr::from_bytes_until_nul(&buf[..n]).ok()?;
    Some(s.to_string_lossy().into_owned())
}
