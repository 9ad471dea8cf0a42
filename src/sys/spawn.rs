//! What the embedding API needs to start its helper process and to talk to it: an fd placed at
//! a fixed number in a `std::process::Command` child, claiming that fd in the helper, pipes.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;

use super::check;

/// Make `fds[i]` appear as descriptor `first + i` (without `FD_CLOEXEC`) in the process `cmd`
/// spawns. The descriptors are owned by the command until it is dropped, so they stay open for
/// every spawn. Safe from multi-threaded callers: only `fcntl` and `dup2` run between fork and
/// exec, and nothing is allocated there.
pub fn pass_fds(cmd: &mut Command, fds: Vec<OwnedFd>, first: RawFd) {
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let mut temps = vec![0 as RawFd; raw.len()];
    let Ok(count) = RawFd::try_from(raw.len()) else {
        return;
    };
    let above = first + count;
    let f = move || -> std::io::Result<()> {
        let _keep = &fds;
        // First out of the way (close-on-exec copies above the target range), so a source
        // that sits where another one goes is not overwritten before it is copied.
        for (t, r) in temps.iter_mut().zip(&raw) {
            // SAFETY: F_DUPFD_CLOEXEC duplicates a descriptor the closure keeps open.
            *t = unsafe { libc::fcntl(*r, libc::F_DUPFD_CLOEXEC, above) };
            if *t < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        for (i, t) in (first..).zip(temps.iter()) {
            // SAFETY: dup2 only replaces descriptor `i` in the freshly forked child, which owns
            // its whole descriptor table; it is async-signal-safe, as pre-exec code must be.
            if unsafe { libc::dup2(*t, i) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    };
    // SAFETY: the closure calls only async-signal-safe functions (fcntl, dup2) and writes
    // only into a buffer allocated before the fork, so it is sound between fork and exec even
    // in a multi-threaded parent.
    unsafe {
        cmd.pre_exec(f);
    }
}

/// `fcntl(F_DUPFD_CLOEXEC)`: a close-on-exec copy of `fd` numbered `min` or above.
pub fn dup_above(fd: BorrowedFd<'_>, min: RawFd) -> nix::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor of one the borrow keeps open.
    let raw =
        check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) } as libc::c_long)?
            as RawFd;
    // SAFETY: `raw` was just returned by fcntl and has no other owner.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// In a forked, single-threaded child that is about to hand its descriptors on (the
/// helper's `exec` child): make `fds[i]` its descriptor `i` (without `FD_CLOEXEC`), for every
/// `i`, and return `keep` moved above that range. Whatever held `0..fds.len()` before is
/// replaced, so the caller must not use those numbers again except through the result (the
/// child's own descriptors it still needs go in `keep`). Every source is first copied above
/// the range, so a source that sits where another one goes survives until it is copied.
pub fn install_fds(fds: Vec<OwnedFd>, keep: Vec<OwnedFd>) -> nix::Result<Vec<OwnedFd>> {
    let count = RawFd::try_from(fds.len()).map_err(|_| Errno::EMFILE)?;
    let temps = fds
        .iter()
        .map(|f| dup_above(f.as_fd(), count))
        .collect::<nix::Result<Vec<_>>>()?;
    let kept = keep
        .iter()
        .map(|f| dup_above(f.as_fd(), count))
        .collect::<nix::Result<Vec<_>>>()?;
    for fd in fds.into_iter().chain(keep) {
        if fd.as_raw_fd() < count {
            // Its number is replaced below: closing it later would close the new file.
            std::mem::forget(fd);
        }
    }
    for (i, t) in (0..).zip(&temps) {
        // SAFETY: dup2 replaces descriptor `i`, which the caller gave up (see above); `t` is
        // open.
        check(unsafe { libc::dup2(t.as_raw_fd(), i) } as libc::c_long)?;
    }
    Ok(kept)
}

static CLAIMED: AtomicBool = AtomicBool::new(false);

/// Take ownership of the descriptors `first..end` a parent passed to this process (with
/// [`pass_fds`]) and mark them close-on-exec. Succeeds once per process, so two owners
/// cannot arise from it; `EBADF` when one is not open, `EBUSY` on a second call.
pub fn claim_inherited_fds(first: RawFd, end: RawFd) -> nix::Result<Vec<OwnedFd>> {
    if CLAIMED.swap(true, Ordering::SeqCst) {
        return Err(Errno::EBUSY);
    }
    for fd in first..end {
        // SAFETY: F_GETFD only reads the descriptor flags (EBADF when not open).
        let flags =
            check(unsafe { libc::fcntl(fd, libc::F_GETFD) } as libc::c_long)? as libc::c_int;
        // SAFETY: as above; F_SETFD only changes the close-on-exec flag.
        check(unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } as libc::c_long)?;
    }
    // SAFETY: every descriptor is open (checked above), was handed to this process for this
    // purpose by its parent, and the once-guard above keeps a second owner from being made.
    Ok((first..end)
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect())
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
