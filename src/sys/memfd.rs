//! Sealed memory files: `memfd_create`, `fcntl(F_ADD_SEALS/F_GET_SEALS)`, `sendfile`.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

use super::check;

/// `MFD_CLOEXEC`.
pub const MFD_CLOEXEC: u32 = 0x1;
/// `MFD_ALLOW_SEALING`.
pub const MFD_ALLOW_SEALING: u32 = 0x2;
/// `MFD_EXEC` (Linux 6.3): executable even where `vm.memfd_noexec` says otherwise.
pub const MFD_EXEC: u32 = 0x10;

/// `F_SEAL_SEAL`: no more seals can be added.
pub const F_SEAL_SEAL: i32 = 0x1;
/// `F_SEAL_SHRINK`.
pub const F_SEAL_SHRINK: i32 = 0x2;
/// `F_SEAL_GROW`.
pub const F_SEAL_GROW: i32 = 0x4;
/// `F_SEAL_WRITE`.
pub const F_SEAL_WRITE: i32 = 0x8;
#[cfg(test)]
/// `F_SEAL_FUTURE_WRITE`.
pub const F_SEAL_FUTURE_WRITE: i32 = 0x10;
/// `F_SEAL_EXEC` (Linux 6.3): the exec bits can no longer change.
pub const F_SEAL_EXEC: i32 = 0x20;

/// `memfd_create(2)`.
pub fn memfd_create(name: &CStr, flags: u32) -> nix::Result<OwnedFd> {
    // SAFETY: `name` is a valid C string; flags is a plain integer.
    let fd = check(unsafe { libc::syscall(libc::SYS_memfd_create, name.as_ptr(), flags) })?;
    // SAFETY: the kernel just returned this fd to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `fcntl(F_ADD_SEALS)`.
pub fn add_seals(fd: BorrowedFd<'_>, seals: i32) -> nix::Result<()> {
    // SAFETY: integer-only fcntl on a live fd.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } as libc::c_long)
        .map(drop)
}

/// `fcntl(F_GET_SEALS)`: `EINVAL` for files that are not memfds.
pub fn get_seals(fd: BorrowedFd<'_>) -> nix::Result<i32> {
    // SAFETY: integer-only fcntl on a live fd.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) } as libc::c_long)
        .map(|v| v as i32)
}

/// Copy `len` bytes from `src` (at offset 0) to `dst` in the kernel with `sendfile(2)`.
pub fn sendfile_all(dst: BorrowedFd<'_>, src: BorrowedFd<'_>, len: u64) -> nix::Result<()> {
    let mut offset: libc::off_t = 0;
    while (offset as u64) < len {
        let want = (len - offset as u64).min(1 << 30) as usize;
        // SAFETY: both fds are live; `offset` is a valid, writable off_t.
        let n = unsafe { libc::sendfile(dst.as_raw_fd(), src.as_raw_fd(), &mut offset, want) };
        match check(n as libc::c_long) {
            Ok(0) => return Err(Errno::EIO),
            Ok(_) => {}
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
