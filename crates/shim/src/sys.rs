//! The shim's only `unsafe`: the few calls the sealrun library has no wrapper for (the
//! allocator's tunables, placing descriptors in a spawned child), and the library's functions
//! that change the calling process (`sealrun::worker`'s, [`Runtime::new`]), each called where
//! the process is the shim's own single-threaded worker or the shim's `delete`.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};

use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use sealrun::container::{Runtime, StateRoot};
use sealrun::selfexe::SealStatus;
use sealrun::worker::Forked;

/// Forks the process that becomes the worker. Only `Worker::fork` calls it, before the shim
/// starts any thread; the child only executes the sealed copy or leaves with `exit_now`.
pub fn fork_for_worker() -> nix::Result<Forked> {
    // SAFETY: single-threaded at this point (the library checks it too: EDEADLK otherwise),
    // and the child execs or `_exit`s without returning into the shim's code.
    unsafe { sealrun::worker::clone3(0, None) }
}

/// The worker's process set-up: default signal dispositions, `SIGCHLD` through the returned
/// signalfd, and the worker as subreaper of the containers' processes.
pub fn become_worker() -> nix::Result<OwnedFd> {
    // SAFETY: the worker is a process of its own (executed by the shim for this purpose),
    // single-threaded, whose only children are the containers' processes it reaps.
    unsafe {
        sealrun::worker::reset_signals()?;
        let sigfd = sealrun::worker::signalfd(&[Signal::SIGCHLD])?;
        sealrun::worker::set_child_subreaper()?;
        Ok(sigfd)
    }
}

/// The worker's descriptors `first..end`, which the shim left open across its `exec`.
pub fn claim_worker_fds(first: RawFd, end: RawFd) -> nix::Result<Vec<OwnedFd>> {
    // SAFETY: called first thing in the worker's set-up, before anything in the process opens
    // a descriptor that could take these numbers; the shim placed them there for us.
    unsafe { sealrun::worker::claim_inherited_fds(first, end) }
}

/// Returns the worker to one of its own namespaces after a request entered a container's.
pub fn setns_back(ns: BorrowedFd<'_>, kind: CloneFlags) -> nix::Result<()> {
    // SAFETY: the single-threaded worker returning to the namespace it started in.
    unsafe { sealrun::worker::setns(ns, kind) }
}

/// The library's runtime settings for the worker's requests and the shim's `delete`.
pub fn runtime(root: &Path, seal: SealStatus) -> Runtime {
    // SAFETY: two callers. The worker is a single-threaded process of its own, made to run
    // the library's in-process functions. The shim's `delete` (containerd's clean-up after a
    // shim died) runs before the shim serves anything, and `container::delete` forks nothing
    // and enters no namespace (its hooks run through std's `Command`).
    unsafe { Runtime::new(StateRoot::new(root), seal) }
}

/// Keeps the allocator's free memory small (in the shim and its worker): one arena (the shim's ttrpc and IO threads
/// allocate little; an arena per thread keeps free memory in each), and fixed mmap and trim
/// thresholds (glibc otherwise raises them after the first large free, and a large temporary
/// buffer then stays in the heap, touched, for the process's lifetime). Call it before the
/// process starts a thread, so that every thread shares the one arena.
pub fn small_heap() {
    for (param, value) in [
        (libc::M_ARENA_MAX, 1),
        (libc::M_MMAP_THRESHOLD, 64 << 10),
        (libc::M_TRIM_THRESHOLD, 128 << 10),
    ] {
        // SAFETY: mallopt only sets an allocator parameter (no pointers; glibc takes its own
        // lock); an unknown parameter or value is refused, not undefined.
        unsafe { libc::mallopt(param, value) };
    }
}

/// Gives the heap's free memory back to the kernel (`malloc_trim(0)`).
pub fn malloc_trim() {
    // SAFETY: malloc_trim only releases memory the allocator holds free (under its own locks);
    // it takes no pointers and touches no live allocation.
    unsafe { libc::malloc_trim(0) };
}

/// Spawns `cmd` with `fds[i]` as the child's descriptor `3 + i` (without close-on-exec).
/// Every source must be numbered `3 + N` or above, so that placing one overwrites none of the
/// others (`InvalidInput` otherwise). Consumes `cmd`: it cannot be spawned again once the
/// borrowed descriptors are closed.
pub fn spawn_with_fds<const N: usize>(
    mut cmd: Command,
    fds: [BorrowedFd<'_>; N],
) -> std::io::Result<Child> {
    let raw: [RawFd; N] = fds.map(|f| f.as_raw_fd());
    if raw.iter().any(|&fd| fd < 3 + N as RawFd) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a descriptor for the child sits where another one goes",
        ));
    }
    // SAFETY: between fork and exec the closure only calls dup2, which is async-signal-safe
    // and allocates nothing, on descriptors `fds` keeps open until `spawn` returns; `cmd` is
    // dropped with this function, so the closure never runs after they may have been closed.
    unsafe {
        cmd.pre_exec(move || {
            for (target, fd) in (3..).zip(raw) {
                nix::unistd::dup2(fd, target)?;
            }
            Ok(())
        });
    }
    cmd.spawn()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsFd;

    #[test]
    fn spawn_with_fds_places_the_descriptors() {
        // Close-on-exec, so that only the placed copy reaches the child (and EOF follows it).
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        let high = sealrun::worker::dup_above(w.as_fd(), 10).expect("dup");
        drop(w);
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "echo placed >&3"]);
        let mut child = spawn_with_fds(cmd, [high.as_fd()]).expect("spawn");
        drop(high);
        let mut out = String::new();
        std::fs::File::from(r)
            .read_to_string(&mut out)
            .expect("read");
        assert!(child.wait().expect("wait").success());
        assert_eq!(out, "placed\n");
    }

    #[test]
    fn spawn_with_fds_refuses_a_source_in_the_target_range() {
        let (_r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        let low = std::io::stderr();
        let err = spawn_with_fds(Command::new("/bin/true"), [w.as_fd(), low.as_fd()])
            .expect_err("fd 2 is below 5");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    }
}
