//! seccomp: `seccomp(SECCOMP_SET_MODE_FILTER)` and the user-notification ioctls on a listener
//! fd (`SECCOMP_IOCTL_NOTIF_RECV`, `_SEND`, `_ID_VALID`).
//!
//! The BPF programs themselves are built by `crate::seccomp` (pure); this file only hands them
//! to the kernel.

use std::ops::{BitOr, BitOrAssign};
#[cfg(test)]
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::fd::{FromRawFd, OwnedFd};

use nix::errno::Errno;

use super::check;

/// One classic-BPF instruction, laid out exactly as the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SockFilter {
    /// Opcode (class | size | mode, or class | op | source).
    pub code: u16,
    /// Jump offset when the condition holds.
    pub jt: u8,
    /// Jump offset when it does not.
    pub jf: u8,
    /// Immediate operand.
    pub k: u32,
}

/// Flags of `seccomp(SECCOMP_SET_MODE_FILTER)` (`SECCOMP_FILTER_FLAG_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct FilterFlags(u32);

impl FilterFlags {
    /// No flag.
    pub const EMPTY: FilterFlags = FilterFlags(0);
    /// `SECCOMP_FILTER_FLAG_TSYNC`: install on every thread of the process.
    pub const TSYNC: FilterFlags = FilterFlags(libc::SECCOMP_FILTER_FLAG_TSYNC as u32);
    /// `SECCOMP_FILTER_FLAG_LOG`: log every action except `ALLOW`.
    pub const LOG: FilterFlags = FilterFlags(libc::SECCOMP_FILTER_FLAG_LOG as u32);
    /// `SECCOMP_FILTER_FLAG_SPEC_ALLOW`: do not force the Speculative Store Bypass mitigation.
    pub const SPEC_ALLOW: FilterFlags = FilterFlags(libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as u32);
    /// `SECCOMP_FILTER_FLAG_NEW_LISTENER`: return a user-notification listener fd.
    pub const NEW_LISTENER: FilterFlags =
        FilterFlags(libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u32);
    /// `SECCOMP_FILTER_FLAG_TSYNC_ESRCH`: report a TSYNC failure as `ESRCH` (required by the
    /// kernel to combine `TSYNC` with `NEW_LISTENER`).
    pub const TSYNC_ESRCH: FilterFlags = FilterFlags(libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH as u32);
    /// `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`: a notified task waits killably (with
    /// `NEW_LISTENER` only).
    pub const WAIT_KILLABLE_RECV: FilterFlags =
        FilterFlags(libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV as u32);

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: FilterFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// `self` without the flags of `other`.
    pub const fn without(self, other: FilterFlags) -> FilterFlags {
        FilterFlags(self.0 & !other.0)
    }
}

impl BitOr for FilterFlags {
    type Output = FilterFlags;
    fn bitor(self, rhs: FilterFlags) -> FilterFlags {
        FilterFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for FilterFlags {
    fn bitor_assign(&mut self, rhs: FilterFlags) {
        self.0 |= rhs.0;
    }
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, program)`: attach `program` to the calling thread
/// (every thread with `TSYNC`). Returns the listener fd when `flags` has `NEW_LISTENER`.
///
/// The kernel requires no_new_privs or `CAP_SYS_ADMIN` in the caller's user namespace; this
/// wrapper does not set no_new_privs. A `TSYNC` failure without `TSYNC_ESRCH` (the kernel then
/// returns the id of the thread that could not be synchronised) is reported as `ESRCH`.
pub fn seccomp_set_mode_filter(
    program: &[SockFilter],
    flags: FilterFlags,
) -> nix::Result<Option<OwnedFd>> {
    let len = u16::try_from(program.len()).map_err(|_| Errno::EINVAL)?;
    if len == 0 {
        return Err(Errno::EINVAL);
    }
    let prog = libc::sock_fprog {
        len,
        // The kernel only reads the program; the cast is to the identical libc layout.
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `len` initialised instructions of `SockFilter`, which is
    // `repr(C)` with the same fields as `struct sock_filter`; the kernel copies the program
    // (copy_from_user) before returning and keeps no pointer into our memory.
    let ret = check(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
            flags.bits() as libc::c_ulong,
            &prog as *const libc::sock_fprog,
        )
    })?;
    if flags.contains(FilterFlags::NEW_LISTENER) {
        let fd = i32::try_from(ret).map_err(|_| Errno::EBADF)?;
        // SAFETY: with NEW_LISTENER a successful call returns a new listener descriptor that
        // nobody else owns.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
    }
    if ret != 0 {
        // TSYNC without TSYNC_ESRCH: `ret` is the thread that could not be synchronised.
        return Err(Errno::ESRCH);
    }
    Ok(None)
}

#[cfg(test)]
/// One user notification read from a listener fd (`struct seccomp_notif`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notification {
    /// Cookie identifying the notification (pass it back in the response).
    pub id: u64,
    /// Pid of the notifying task, in the listener's pid namespace (0 if not visible).
    pub pid: u32,
    /// Syscall number.
    pub nr: i32,
    /// `AUDIT_ARCH_*` of the call.
    pub arch: u32,
    /// Instruction pointer at the call.
    pub instruction_pointer: u64,
    /// The six raw arguments.
    pub args: [u64; 6],
}

#[cfg(test)]
/// `ioctl(SECCOMP_IOCTL_NOTIF_RECV)`: wait for the next notification on `listener`.
pub fn ioctl_notif_recv(listener: BorrowedFd<'_>) -> nix::Result<Notification> {
    // SAFETY: seccomp_notif is plain old data; the kernel requires it zeroed on input.
    let mut notif: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: NOTIF_RECV writes one `struct seccomp_notif` into `notif`, which is valid,
        // writable and of exactly that size.
        let ret = unsafe {
            libc::ioctl(
                listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_RECV as _,
                &mut notif as *mut libc::seccomp_notif,
            )
        };
        match check(ret as libc::c_long) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(_) => break,
        }
    }
    Ok(Notification {
        id: notif.id,
        pid: notif.pid,
        nr: notif.data.nr,
        arch: notif.data.arch,
        instruction_pointer: notif.data.instruction_pointer,
        args: notif.data.args,
    })
}

#[cfg(test)]
/// `ioctl(SECCOMP_IOCTL_NOTIF_SEND)`: answer notification `id`. The notified call returns
/// `val` when `error` is 0, else fails with `-error`; with `continue_syscall` the kernel
/// runs the call as if it had been allowed (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`).
pub fn ioctl_notif_send(
    listener: BorrowedFd<'_>,
    id: u64,
    val: i64,
    error: i32,
    continue_syscall: bool,
) -> nix::Result<()> {
    let resp = libc::seccomp_notif_resp {
        id,
        val,
        error,
        flags: if continue_syscall {
            libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32
        } else {
            0
        },
    };
    // SAFETY: NOTIF_SEND reads one `struct seccomp_notif_resp` from a valid pointer.
    let ret = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND as _,
            &resp as *const libc::seccomp_notif_resp,
        )
    };
    check(ret as libc::c_long).map(drop)
}

/// Test probes: raw system calls through the other syscall tables, and a SIGSYS recorder.
#[cfg(test)]
pub(crate) mod probe {
    use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

    use nix::errno::Errno;

    /// `getpid` through the x32 ABI (`__X32_SYSCALL_BIT | 39`).
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn x32_getpid() -> nix::Result<i64> {
        // SAFETY: getpid has no arguments and no side effects, whatever table serves it.
        let ret = unsafe { libc::syscall(0x4000_0000 | libc::SYS_getpid) };
        super::check(ret)
    }

    /// `getpid` through the i386 table (`int $0x80`, eax = 20).
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn int80_getpid() -> nix::Result<i64> {
        let mut ret: i64 = 20;
        // SAFETY: i386 getpid takes no arguments, touches no memory and returns in eax; the
        // 64-bit kernel entry for int 0x80 clobbers r8–r11, declared here.
        unsafe {
            std::arch::asm!(
                "int 0x80",
                inout("rax") ret,
                lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _,
                options(nostack),
            );
        }
        // The i386 ABI returns -errno in eax (32 bits).
        let ret = ret as i32;
        if (-4095..0).contains(&ret) {
            Err(Errno::from_raw(-ret))
        } else {
            Ok(ret as i64)
        }
    }

    /// `getppid` with six arbitrary 64-bit arguments (the kernel ignores them; a filter sees
    /// them).
    pub(crate) fn getppid_with_args(args: [u64; 6]) -> nix::Result<i64> {
        let [a, b, c, d, e, f] = args;
        // SAFETY: getppid reads no argument and touches no memory, whatever their values.
        let ret = unsafe { libc::syscall(libc::SYS_getppid, a, b, c, d, e, f) };
        super::check(ret)
    }

    static SIGSYS_COUNT: AtomicU32 = AtomicU32::new(0);
    static SIGSYS_SYSCALL: AtomicI32 = AtomicI32::new(-1);
    static SIGSYS_CODE: AtomicI32 = AtomicI32::new(-1);

    extern "C" fn on_sigsys(
        _sig: libc::c_int,
        info: *mut libc::siginfo_t,
        _ctx: *mut libc::c_void,
    ) {
        // SAFETY: the kernel passes a valid siginfo_t (128 bytes). For SIGSYS the union holds
        // `_sigsys { void *_call_addr; int _syscall; unsigned _arch; }` starting at byte 16 on
        // 64-bit targets, so `_syscall` is the i32 at byte 24.
        let (code, nr) = unsafe {
            let code = (*info).si_code;
            let nr = *((info as *const u8).add(24) as *const i32);
            (code, nr)
        };
        SIGSYS_CODE.store(code, Ordering::SeqCst);
        SIGSYS_SYSCALL.store(nr, Ordering::SeqCst);
        SIGSYS_COUNT.fetch_add(1, Ordering::SeqCst);
    }

    /// Install a SIGSYS handler that records the trapped syscall; returns nothing, read the
    /// record with [`sigsys_record`].
    pub(crate) fn install_sigsys_recorder() -> nix::Result<()> {
        // SAFETY: sigaction is plain data; zeroed is a valid initial value.
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        act.sa_sigaction = on_sigsys as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO;
        // SAFETY: the handler only stores into atomics (async-signal-safe); `act` is valid.
        let ret = unsafe { libc::sigaction(libc::SIGSYS, &act, std::ptr::null_mut()) };
        super::check(ret as libc::c_long).map(drop)
    }

    /// (number of SIGSYS received, si_code of the last, syscall number of the last).
    pub(crate) fn sigsys_record() -> (u32, i32, i32) {
        (
            SIGSYS_COUNT.load(Ordering::SeqCst),
            SIGSYS_CODE.load(Ordering::SeqCst),
            SIGSYS_SYSCALL.load(Ordering::SeqCst),
        )
    }
}
