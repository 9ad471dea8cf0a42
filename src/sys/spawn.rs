//! What the embedding API needs to start its helper process and to talk to it: an fd placed at
//! a fixed number in a `std::process::Command` child, claiming that fd in the helper, pipes.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;

use super::check;

/// Make `fd` appear as descriptor `target` (without `FD_CLOEXEC`) in the process `cmd` spawns.
/// The descriptor is owned by the command until it is dropped, so it stays open for every
/// spawn. Safe from multi-threaded callers: only `dup2`/`fcntl` run between fork and exec.
pub fn pass_fd(cmd: &mut Command, fd: OwnedFd, target: RawFd) {
    let f = move || -> std::io::Result<()> {
        let raw = fd.as_raw_fd();
        if raw == target {
            // SAFETY: F_GETFD/F_SETFD on a descriptor we own (kept alive by the closure).
            let flags = unsafe { libc::fcntl(raw, libc::F_GETFD) };
            // SAFETY: as above.
            if flags < 0
                || unsafe { libc::fcntl(raw, libc::F_SETFD, flags & !libc::FD_CLOEXEC) } < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            return Ok(());
        }
        // SAFETY: dup2 only replaces `target` in the freshly forked child, which owns its
        // whole descriptor table; it is async-signal-safe, as the pre-exec context requires.
        if unsafe { libc::dup2(raw, target) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the closure calls only async-signal-safe functions (dup2, fcntl) and allocates
    // nothing, so it is sound between fork and exec even in a multi-threaded parent.
    unsafe {
        cmd.pre_exec(f);
    }
}

static CLAIMED: AtomicBool = AtomicBool::new(false);

/// Take ownership of the descriptor `fd` a parent passed to this process (with [`pass_fd`])
/// and mark it close-on-exec. Succeeds once per process, so two owners cannot arise from
/// it; `EBADF` when the descriptor is not open, `EBUSY` on a second call.
pub fn claim_inherited_fd(fd: RawFd) -> nix::Result<OwnedFd> {
    if CLAIMED.swap(true, Ordering::SeqCst) {
        return Err(Errno::EBUSY);
    }
    // SAFETY: F_GETFD only reads the descriptor flags (EBADF when not open).
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFD) } as libc::c_long)? as libc::c_int;
    // SAFETY: as above; F_SETFD only changes the close-on-exec flag.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } as libc::c_long)?;
    // SAFETY: the descriptor is open, was handed to this process for this purpose by its
    // parent, and the once-guard above keeps a second owner from being made here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `pipe2(O_CLOEXEC)`: (read end, write end).
pub fn pipe() -> nix::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
}

/// Whether `pid` is a child of ours (alive or a zombie), asked without reaping it:
/// `waitid(P_PID, WEXITED | WNOHANG | WNOWAIT)`, which fails with `ECHILD` otherwise.
pub fn is_child(pid: nix::unistd::Pid) -> bool {
    use nix::sys::wait::{waitid, Id, WaitPidFlag};
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    !matches!(waitid(Id::Pid(pid), flags), Err(Errno::ECHILD))
}
