//! Processes and credentials: `clone3`, `setns`, `unshare`, `prctl`, ids, rlimits, `execve`,
//! `waitpid`, `kill`, `pidfd_open`, scheduling.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::{Gid, Pid, Uid};

use super::check;

/// `CLONE_INTO_CGROUP` (`clone3` only).
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Number of threads in this process, from `/proc/self/stat`.
fn thread_count() -> nix::Result<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").map_err(|_| Errno::EIO)?;
    // Field 20 (num_threads); the command name (field 2) may contain spaces, so count from ')'.
    let after = stat.rsplit_once(')').ok_or(Errno::EIO)?.1;
    after
        .split_whitespace()
        .nth(17)
        .and_then(|s| s.parse().ok())
        .ok_or(Errno::EIO)
}

/// Which side of a `clone3` we are on.
#[derive(Debug)]
pub enum Forked {
    /// In the parent: the child's pid.
    Parent(Pid),
    /// In the child.
    Child,
}

/// `clone3(2)` with fork semantics (no `CLONE_VM`): namespace flags, optional `CLONE_PARENT`,
/// and `CLONE_INTO_CGROUP` when `cgroup` is given. The child gets `SIGCHLD` as exit signal
/// (with `CLONE_PARENT`: the caller's own exit signal, as the kernel requires).
///
/// Forking is sound only in a single-threaded process (another thread could hold a lock the
/// child then waits on forever). sealrun never starts threads, and this wrapper checks it:
/// it returns `EDEADLK` instead of forking a multi-threaded process.
pub fn clone3(flags: u64, cgroup: Option<BorrowedFd<'_>>) -> nix::Result<Forked> {
    if thread_count()? != 1 {
        return Err(Errno::EDEADLK);
    }
    // clone3 refuses an exit signal with CLONE_PARENT (the child inherits ours instead).
    let exit_signal = if flags & libc::CLONE_PARENT as u64 != 0 {
        0
    } else {
        libc::SIGCHLD as u64
    };
    let mut args = CloneArgs {
        flags,
        exit_signal,
        ..CloneArgs::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: fork-like clone3 (no CLONE_VM, no new stack): the child continues on a copy of
    // our address space, exactly as after fork(2). The process is single-threaded (checked
    // above), so no lock can be held by a thread that does not exist in the child.
    let ret = check(unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    })?;
    Ok(if ret == 0 {
        Forked::Child
    } else {
        Forked::Parent(Pid::from_raw(ret as i32))
    })
}

/// `setns(2)`.
pub fn setns(fd: BorrowedFd<'_>, nstype: CloneFlags) -> nix::Result<()> {
    nix::sched::setns(fd, nstype)
}

/// `unshare(2)` with raw flag bits (so `CLONE_NEWTIME` can be passed).
pub fn unshare(flags: u64) -> nix::Result<()> {
    // SAFETY: unshare takes a plain integer; it affects only the calling process.
    check(unsafe { libc::unshare(flags as libc::c_int) } as libc::c_long).map(drop)
}

fn prctl(option: libc::c_int, arg2: libc::c_ulong) -> nix::Result<libc::c_int> {
    // SAFETY: every option used through this helper takes an integer argument and no pointers.
    check(
        unsafe { libc::prctl(option, arg2, 0 as libc::c_ulong, 0 as libc::c_ulong, 0) }
            as libc::c_long,
    )
    .map(|r| r as libc::c_int)
}

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)`.
pub fn set_no_new_privs() -> nix::Result<()> {
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1).map(drop)
}

/// `prctl(PR_GET_NO_NEW_PRIVS)`.
pub fn get_no_new_privs() -> nix::Result<bool> {
    prctl(libc::PR_GET_NO_NEW_PRIVS, 0).map(|v| v == 1)
}

/// `prctl(PR_SET_DUMPABLE)`.
pub fn set_dumpable(dumpable: bool) -> nix::Result<()> {
    prctl(libc::PR_SET_DUMPABLE, dumpable as libc::c_ulong).map(drop)
}

/// `prctl(PR_SET_KEEPCAPS)`.
pub fn set_keepcaps(keep: bool) -> nix::Result<()> {
    prctl(libc::PR_SET_KEEPCAPS, keep as libc::c_ulong).map(drop)
}

/// `prctl(PR_CAPBSET_DROP)`: drop capability number `cap` from the bounding set. A number the
/// kernel does not know is `EINVAL`.
pub fn capbset_drop(cap: u8) -> nix::Result<()> {
    prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong).map(drop)
}

/// `signal(SIGPIPE, SIG_IGN)`: a write to a closed pipe then fails with `EPIPE` instead of
/// killing the process.
pub fn ignore_sigpipe() -> nix::Result<()> {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: installing SIG_IGN runs no handler code, so it cannot break any invariant.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) }.map(drop)
}

/// `prctl(PR_CAPBSET_READ)`: whether `cap` is in the bounding set.
pub fn capbset_read(cap: u8) -> nix::Result<bool> {
    prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong).map(|r| r == 1)
}

/// `prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET)`: whether `cap` is in the ambient set.
pub fn cap_ambient_is_set(cap: u8) -> nix::Result<bool> {
    // SAFETY: integer-only prctl.
    check(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_IS_SET as libc::c_ulong,
            cap as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    } as libc::c_long)
    .map(|r| r == 1)
}

/// `prctl(PR_SET_CHILD_SUBREAPER)`.
pub fn set_child_subreaper() -> nix::Result<()> {
    prctl(libc::PR_SET_CHILD_SUBREAPER, 1).map(drop)
}

/// `setsid(2)`.
pub fn setsid() -> nix::Result<()> {
    nix::unistd::setsid().map(drop)
}

/// `setgroups(2)`.
pub fn setgroups(groups: &[u32]) -> nix::Result<()> {
    let gids: Vec<Gid> = groups.iter().map(|g| Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&gids)
}

/// `setresgid(2)` with one gid for all three.
pub fn setresgid(gid: u32) -> nix::Result<()> {
    let g = Gid::from_raw(gid);
    nix::unistd::setresgid(g, g, g)
}

/// `setresuid(2)` with one uid for all three.
pub fn setresuid(uid: u32) -> nix::Result<()> {
    let u = Uid::from_raw(uid);
    nix::unistd::setresuid(u, u, u)
}

/// `setrlimit(2)` through `prlimit(2)` on ourselves.
pub fn setrlimit(resource: u32, soft: u64, hard: u64) -> nix::Result<()> {
    let lim = libc::rlimit64 {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `lim` is a valid rlimit64 for the call; pid 0 means ourselves; old limit not read.
    check(unsafe {
        libc::prlimit64(
            0,
            resource as libc::__rlimit_resource_t,
            &lim,
            std::ptr::null_mut(),
        )
    } as libc::c_long)
    .map(drop)
}

/// `personality(2)`.
pub fn personality(persona: libc::c_ulong) -> nix::Result<()> {
    // SAFETY: takes a plain integer.
    check(unsafe { libc::personality(persona) } as libc::c_long).map(drop)
}

/// `umask(2)`.
pub fn umask(mask: u32) {
    // SAFETY: takes a plain integer and cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) };
}

/// `sethostname(2)`.
pub fn sethostname(name: &str) -> nix::Result<()> {
    nix::unistd::sethostname(name)
}

/// `setdomainname(2)`.
pub fn setdomainname(name: &str) -> nix::Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes for the duration of the call.
    check(unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) } as libc::c_long)
        .map(drop)
}

/// `sched_setattr(2)` with a raw `sched_attr` (policy, flags, nice, priority, deadline params).
#[derive(Debug, Default, Clone, Copy)]
#[repr(C)]
pub struct SchedAttr {
    /// Size of this struct.
    pub size: u32,
    /// `SCHED_*` policy.
    pub sched_policy: u32,
    /// `SCHED_FLAG_*`.
    pub sched_flags: u64,
    /// Nice value (SCHED_OTHER/BATCH).
    pub sched_nice: i32,
    /// Static priority (SCHED_FIFO/RR).
    pub sched_priority: u32,
    /// SCHED_DEADLINE runtime.
    pub sched_runtime: u64,
    /// SCHED_DEADLINE deadline.
    pub sched_deadline: u64,
    /// SCHED_DEADLINE period.
    pub sched_period: u64,
}

/// `sched_setattr(2)` on ourselves.
pub fn sched_setattr(mut attr: SchedAttr) -> nix::Result<()> {
    attr.size = std::mem::size_of::<SchedAttr>() as u32;
    // SAFETY: `attr` is a correctly sized sched_attr (VER0 layout) alive for the call.
    check(unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) })
        .map(drop)
}

/// `ioprio_set(IOPRIO_WHO_PROCESS, 0, prio)`.
pub fn ioprio_set(class: u32, level: u32) -> nix::Result<()> {
    let prio = (class << 13) | level;
    // SAFETY: integer-only system call on ourselves.
    check(unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, prio) }).map(drop)
}

/// `keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)`: join a new anonymous session keyring, so the
/// process neither shares the caller's keys nor one another container could pre-create by name.
pub fn join_session_keyring() -> nix::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: a null name asks for a new anonymous keyring; no pointer is dereferenced.
    check(unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    })
    .map(drop)
}

/// `prctl(PR_GET_SECCOMP)`: 0 (none), 1 (strict) or 2 (filter).
pub fn get_seccomp() -> nix::Result<u32> {
    prctl(libc::PR_GET_SECCOMP, 0).map(|v| v as u32)
}

/// `execve(2)`; returns only on failure.
pub fn execve(path: &CStr, args: &[&CStr], env: &[&CStr]) -> Errno {
    match nix::unistd::execve(path, args, env) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

/// `execveat(fd, "", argv, envp, AT_EMPTY_PATH)`, i.e. `fexecve(3)`; returns only on failure.
pub fn fexecve(fd: BorrowedFd<'_>, args: &[&CStr], env: &[&CStr]) -> Errno {
    match nix::unistd::fexecve(fd.as_raw_fd(), args, env) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

/// `_exit(2)`: leave immediately without running destructors or atexit handlers (the child
/// side of a clone must not flush the parent's buffers twice).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

/// `pause(2)` until killed: the body of a child that only holds a namespace open.
pub fn pause_forever() -> ! {
    loop {
        nix::unistd::pause();
    }
}

/// `kill(2)`.
pub fn kill(pid: Pid, sig: Option<Signal>) -> nix::Result<()> {
    nix::sys::signal::kill(pid, sig)
}

/// `pidfd_open(2)`.
pub fn pidfd_open(pid: Pid) -> nix::Result<OwnedFd> {
    // SAFETY: integer-only system call.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) })?;
    // SAFETY: the kernel just returned this fd to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `pidfd_send_signal(2)`: signal a process through a pidfd, immune to pid reuse.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: Signal) -> nix::Result<()> {
    // SAFETY: `pidfd` is live; no siginfo is passed.
    check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })
    .map(drop)
}

/// Whether the process a pidfd refers to still exists (not yet reaped): `pidfd_send_signal`
/// with signal 0. While it exists its pid cannot be reused, so what `/proc/<pid>` showed
/// before this returned `true` was that process.
pub fn pidfd_is_alive(pidfd: BorrowedFd<'_>) -> nix::Result<bool> {
    // SAFETY: `pidfd` is live; signal 0 only checks; no siginfo is passed.
    match check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    }) {
        Ok(_) => Ok(true),
        Err(Errno::ESRCH) => Ok(false),
        Err(e) => Err(e),
    }
}

pub use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

/// `getpid(2)`.
pub fn getpid() -> Pid {
    nix::unistd::getpid()
}

/// Reset every signal disposition to default and unblock all signals, so the container process
/// starts clean whatever the runtime or its caller did. Every number up to 64 is reset,
/// including the two real-time signals glibc reserves (32, 33), which its `sigaction` refuses:
/// hence the raw `rt_sigaction`.
pub fn reset_signals() -> nix::Result<()> {
    /// The kernel's `struct sigaction` on x86_64 and aarch64.
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: libc::c_ulong,
        restorer: usize,
        mask: u64,
    }
    let dfl = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: `dfl` is a valid kernel sigaction that installs SIG_DFL (no handler code
        // runs, so no restorer is needed); the old action is not asked for; the size is the
        // kernel's 8-byte signal set.
        let _ = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &dfl as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            )
        };
    }
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    )
}

/// Block `signals` in this process and return an fd that reads them (`signalfd(2)`).
pub fn signalfd(signals: &[Signal]) -> nix::Result<OwnedFd> {
    use nix::sys::signal::{SigSet, SigmaskHow};
    let mut set = SigSet::empty();
    for s in signals {
        set.add(*s);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
    let sfd =
        nix::sys::signalfd::SignalFd::with_flags(&set, nix::sys::signalfd::SfdFlags::SFD_CLOEXEC)?;
    // SignalFd owns its fd; hand it over as a plain OwnedFd.
    let raw = sfd.as_raw_fd();
    std::mem::forget(sfd);
    // SAFETY: `raw` was owned by `sfd`, which we forgot, so ownership moves here exactly once.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Read one signal number from a `signalfd`.
pub fn read_signalfd(fd: BorrowedFd<'_>) -> nix::Result<Signal> {
    let mut info = std::mem::MaybeUninit::<libc::signalfd_siginfo>::uninit();
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: `info` is a writable buffer of exactly `size` bytes.
    let n = check(
        unsafe { libc::read(fd.as_raw_fd(), info.as_mut_ptr().cast(), size) } as libc::c_long,
    )?;
    if n as usize != size {
        return Err(Errno::EIO);
    }
    // SAFETY: the kernel filled the whole struct.
    let info = unsafe { info.assume_init() };
    Signal::try_from(info.ssi_signo as i32)
}

/// `capget(2)` (version 3) of the calling thread: its (effective, permitted, inheritable)
/// sets as 64-bit masks, in one call.
pub fn capget() -> nix::Result<(u64, u64, u64)> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: header and data are correctly laid out v3 capability structs (two data words)
    // that live for the duration of the call and are writable; pid 0 is the calling thread.
    check(unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut Header,
            data.as_mut_ptr(),
        )
    })?;
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok((
        join(data[0].effective, data[1].effective),
        join(data[0].permitted, data[1].permitted),
        join(data[0].inheritable, data[1].inheritable),
    ))
}

/// `capset(2)` (version 3): set the effective, permitted and inheritable sets in one call, so
/// no intermediate state violates "effective ⊆ permitted".
pub fn capset(effective: u64, permitted: u64, inheritable: u64) -> nix::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let split = |v: u64| (v as u32, (v >> 32) as u32);
    let (e0, e1) = split(effective);
    let (p0, p1) = split(permitted);
    let (i0, i1) = split(inheritable);
    let data = [
        Data {
            effective: e0,
            permitted: p0,
            inheritable: i0,
        },
        Data {
            effective: e1,
            permitted: p1,
            inheritable: i1,
        },
    ];
    // SAFETY: header and data are correctly laid out v3 capability structs (two data words)
    // that live for the duration of the call; pid 0 means the calling thread.
    check(unsafe { libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()) })
        .map(drop)
}
