//! What the embedding API needs to start its helper process and to talk to it: claiming the
//! inherited control socket in the helper, placing descriptors at fixed numbers in a forked
//! child, pipes.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;

use super::check;

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
/// helper's `exec` child, the helper itself): make `fds[i]` its descriptor `i` (without
/// `FD_CLOEXEC`), for every `i`. Returns the descriptors now at 3 and above, owned (they stay
/// open while the result lives), and `keep` moved above the range. Whatever held
/// `0..fds.len()` before is replaced: the standard streams, free numbers, or copies a fork
/// child inherited whose owners never run in it (the caller moves anything it still uses
/// above the range first, as the helper does with its log). Every source is first copied
/// above the range, so a source that sits where another one goes survives until it is copied.
pub fn install_fds(
    fds: Vec<OwnedFd>,
    keep: Vec<OwnedFd>,
) -> nix::Result<(Vec<OwnedFd>, Vec<OwnedFd>)> {
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
    let mut installed = Vec::new();
    for (i, t) in (0..).zip(&temps) {
        // SAFETY: dup2 replaces descriptor `i`, which the caller gave up (see above); `t` is
        // open.
        check(unsafe { libc::dup2(t.as_raw_fd(), i) } as libc::c_long)?;
        if i >= 3 {
            // SAFETY: `i` was just made a copy of `t`, and the caller gave the number up.
            installed.push(unsafe { OwnedFd::from_raw_fd(i) });
        }
    }
    Ok((installed, kept))
}

static CLAIMED: AtomicBool = AtomicBool::new(false);

/// Take ownership of the descriptors `first..end` a parent passed to this process (left
/// open across its exec) and mark them close-on-exec. Succeeds once per process, so two owners
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
