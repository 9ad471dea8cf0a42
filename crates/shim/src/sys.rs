//! The shim's only `unsafe`: the few calls the sealrun library has no wrapper for (the
//! allocator's tunables, placing descriptors in a spawned child, starting a worker from the
//! multi-threaded shim), and the library's functions that change the calling process
//! (`sealrun::worker`'s, [`Runtime::new`]), each called where the process is the shim's own:
//! its single-threaded start-up, a worker, or the shim's `delete`.

use std::ffi::{c_char, CString};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};

use nix::sys::signal::Signal;
use sealrun::container::{Runtime, StateRoot};
use sealrun::selfexe::SealStatus;

/// The serving shim's set-up, before it starts any thread: `signals` blocked (so in every
/// thread it starts) and read through the returned signalfd, and the shim as subreaper of the
/// containers' processes (reparented to it when their worker exits).
pub fn become_serving_shim(signals: &[Signal]) -> nix::Result<OwnedFd> {
    // SAFETY: the shim's own process, still single-threaded (`serve::run`); it reaps every
    // child in its main loop, and its workers reset the blocked signals (`reset_worker_signals`).
    unsafe {
        let sigfd = sealrun::worker::signalfd(signals)?;
        sealrun::worker::set_child_subreaper()?;
        Ok(sigfd)
    }
}

/// A worker's first step: default signal dispositions, nothing blocked (the shim's blocked
/// signals and handlers must not reach the containers' processes).
pub fn reset_worker_signals() -> nix::Result<()> {
    // SAFETY: the worker is a process of its own, executed by the shim for one request.
    unsafe { sealrun::worker::reset_signals() }
}

/// The worker's descriptors `first..end`, which the shim left open across its `exec`.
pub fn claim_worker_fds(first: RawFd, end: RawFd) -> nix::Result<Vec<OwnedFd>> {
    // SAFETY: called first thing in the worker's set-up, before anything in the process opens
    // a descriptor that could take these numbers; the shim placed them there for us.
    unsafe { sealrun::worker::claim_inherited_fds(first, end) }
}

/// The library's runtime settings for the worker's requests and the shim's `delete`.
pub fn runtime(root: &Path, seal: SealStatus) -> Runtime {
    // SAFETY: two callers. A worker is a single-threaded process of its own, made to run
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

/// Forks and executes `exe` (`fexecve`) with `argv` and `env`, `fd` becoming the child's
/// descriptor 3 (without close-on-exec); returns the child's pid. Neither `exe` nor `fd` may
/// be 3 itself (`InvalidInput`): placing `fd` would close `exe`, or leave `fd` close-on-exec.
/// The shim has threads: between fork and exec the child makes only async-signal-safe calls
/// on memory prepared before the fork. A child that cannot execute exits with status 127 at
/// once.
pub fn fork_exec(
    exe: BorrowedFd<'_>,
    argv: &[CString],
    env: &[CString],
    fd: BorrowedFd<'_>,
) -> std::io::Result<i32> {
    if fd.as_raw_fd() == 3 || exe.as_raw_fd() == 3 {
        return Err(std::io::ErrorKind::InvalidInput.into());
    }
    let nul = std::ptr::null::<c_char>();
    let argv: Vec<*const c_char> = argv.iter().map(|a| a.as_ptr()).chain([nul]).collect();
    let env: Vec<*const c_char> = env.iter().map(|e| e.as_ptr()).chain([nul]).collect();
    let (exe, fd) = (exe.as_raw_fd(), fd.as_raw_fd());
    // SAFETY: glibc's fork, whose atfork handlers keep the allocator usable in the child
    // (which does not allocate anyway); the parent's state is untouched.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: the child of a multi-threaded process: only dup2, fexecve (execveat with
        // AT_EMPTY_PATH) and _exit, all async-signal-safe, on descriptors the borrows keep
        // open and NUL-terminated arrays of pointers into `argv` and `env`, prepared before the
        // fork.
        unsafe {
            if libc::dup2(fd, 3) == 3 {
                libc::fexecve(exe, argv.as_ptr(), env.as_ptr());
            }
            libc::_exit(127)
        }
    }
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(pid)
}

/// Executes `exe` in place of this process with its own arguments and environment; returns
/// only on failure. For a process that has no other thread yet.
pub fn reexec(exe: BorrowedFd<'_>) -> std::io::Error {
    // SAFETY: the shim's start-up, single-threaded, holding nothing to flush or release
    // (`serving_worker` runs before serving starts).
    let e = unsafe { sealrun::selfexe::reexec_from(exe) };
    std::io::Error::other(e.to_string())
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

    /// The child executes the file behind `exe` and finds `fd` as its descriptor 3.
    #[test]
    fn fork_exec_places_the_descriptor() {
        let sh = std::fs::File::open("/bin/sh").expect("/bin/sh");
        let sh = sealrun::worker::dup_above(sh.as_fd(), 10).expect("dup");
        let (r, low) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        let w = sealrun::worker::dup_above(low.as_fd(), 10).expect("dup");
        drop(low);
        let argv = ["sh", "-c", "echo placed >&3"].map(|a| CString::new(a).unwrap());
        let pid = fork_exec(sh.as_fd(), &argv, &[], w.as_fd()).expect("fork_exec");
        drop(w);
        let mut out = String::new();
        std::fs::File::from(r)
            .read_to_string(&mut out)
            .expect("read");
        let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).expect("wait");
        assert_eq!(
            status,
            nix::sys::wait::WaitStatus::Exited(status.pid().unwrap(), 0)
        );
        assert_eq!(out, "placed\n");
    }

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
