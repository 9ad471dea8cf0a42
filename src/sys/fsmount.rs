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

/// `statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID_UNIQUE)`: the unique id of the mount `fd` is on.
pub fn mount_id(fd: BorrowedFd<'_>) -> nix::Result<u64> {
    const STATX_MNT_ID_UNIQUE: libc::c_uint = 0x4000;
    let mut st = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: `fd` is live, the path is an empty C string, and `st` is writable memory of the
    // struct's size; the kernel fills what it knows and sets the rest to zero.
    check(unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            STATX_MNT_ID_UNIQUE,
            st.as_mut_ptr(),
        )
    } as libc::c_long)?;
    // SAFETY: statx succeeded; the struct was zeroed before, so every field is initialised.
    let st = unsafe { st.assume_init() };
    if st.stx_mask & STATX_MNT_ID_UNIQUE == 0 {
        return Err(nix::errno::Errno::ENOSYS);
    }
    Ok(st.stx_mnt_id)
}

/// `SB_RDONLY` in [`statmount_sb_flags`].
pub const SB_RDONLY: u32 = 0x1;

/// `statmount(2)` with `STATMOUNT_SB_BASIC` (Linux 6.8): the superblock flags of the mount with
/// unique id `mnt_id` in the caller's mount namespace; `ENOENT` when that namespace has no such
/// mount (a detached one, or another namespace's).
pub fn statmount_sb_flags(mnt_id: u64) -> nix::Result<u32> {
    const SYS_STATMOUNT: libc::c_long = 457;
    const STATMOUNT_SB_BASIC: u64 = 0x1;
    #[repr(C)]
    struct Request {
        size: u32,
        spare: u32,
        mnt_id: u64,
        param: u64,
    }
    /// The head of `struct statmount`, up to `sb_flags`, then room for what follows.
    #[repr(C)]
    struct Reply {
        size: u32,
        spare1: u32,
        mask: u64,
        sb_dev_major: u32,
        sb_dev_minor: u32,
        sb_magic: u64,
        sb_flags: u32,
        rest: [u8; 512],
    }
    let req = Request {
        size: std::mem::size_of::<Request>() as u32,
        spare: 0,
        mnt_id,
        param: STATMOUNT_SB_BASIC,
    };
    let mut reply = std::mem::MaybeUninit::<Reply>::zeroed();
    // SAFETY: `req` is a valid version-0 request and `reply` writable memory of the given size,
    // both live for the call.
    check(unsafe {
        libc::syscall(
            SYS_STATMOUNT,
            &req as *const Request,
            reply.as_mut_ptr(),
            std::mem::size_of::<Reply>(),
            0,
        )
    })?;
    // SAFETY: zeroed before the call, so initialised whatever the kernel wrote.
    let reply = unsafe { reply.assume_init() };
    if reply.mask & STATMOUNT_SB_BASIC == 0 {
        return Err(nix::errno::Errno::ENOSYS);
    }
    Ok(reply.sb_flags)
}
