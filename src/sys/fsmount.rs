//! The new mount API for a detached, lower-only overlayfs: `fsopen`, `fsconfig`, `fsmount`.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::check;

const FSOPEN_CLOEXEC: libc::c_uint = 0x1;
const FSMOUNT_CLOEXEC: libc::c_uint = 0x1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;

/// `MOUNT_ATTR_RDONLY`.
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
/// `MOUNT_ATTR_NOSUID`.
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
/// `MOUNT_ATTR_NODEV`.
pub const MOUNT_ATTR_NODEV: u64 = 0x4;

/// `fsopen(2)` with `FSOPEN_CLOEXEC`: a filesystem context for `fstype`.
pub fn fsopen(fstype: &CStr) -> nix::Result<OwnedFd> {
    // SAFETY: `fstype` is a valid C string; the kernel returns a new fd nothing else owns.
    let fd = check(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) })?;
    // SAFETY: `fd` was just returned by fsopen and is owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `fsconfig(FSCONFIG_SET_STRING)`: set the option `key` to `value`.
pub fn fsconfig_set_string(ctx: BorrowedFd<'_>, key: &CStr, value: &CStr) -> nix::Result<()> {
    // SAFETY: `ctx` is live and both strings are valid C strings that outlive the call.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            ctx.as_raw_fd(),
            FSCONFIG_SET_STRING,
            key.as_ptr(),
            value.as_ptr(),
            0,
        )
    })
    .map(drop)
}

/// `fsconfig(FSCONFIG_CMD_CREATE)`: create the superblock.
pub fn fsconfig_create(ctx: BorrowedFd<'_>) -> nix::Result<()> {
    // SAFETY: `ctx` is live; key and value are null as the command requires.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            ctx.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    })
    .map(drop)
}

/// `fsmount(2)` with `FSMOUNT_CLOEXEC`: a detached mount of the context's superblock with the
/// `MOUNT_ATTR_*` flags `attrs`.
pub fn fsmount(ctx: BorrowedFd<'_>, attrs: u64) -> nix::Result<OwnedFd> {
    // SAFETY: `ctx` is live; flags are plain integers; the kernel returns a new fd.
    let fd = check(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            ctx.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            attrs as libc::c_uint,
        )
    })?;
    // SAFETY: `fd` was just returned by fsmount and is owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}
