//! Mounts: `mount`, `umount2`, `pivot_root`, `mount_setattr`.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::mount::{MntFlags, MsFlags};

use super::check;
use super::fd::{cpath, EMPTY};

/// `mount(2)`.
pub fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> nix::Result<()> {
    nix::mount::mount(source, target, fstype, flags, data)
}

/// `umount2(2)`.
pub fn umount2(target: &Path, flags: MntFlags) -> nix::Result<()> {
    nix::mount::umount2(target, flags)
}

/// `pivot_root(2)`.
pub fn pivot_root(new_root: &Path, put_old: &Path) -> nix::Result<()> {
    nix::unistd::pivot_root(new_root, put_old)
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(2)` on the mount an fd refers to (`AT_EMPTY_PATH`), optionally recursive.
/// Used for the recursive mount options (`rro`, `rnosuid`, ...).
pub fn mount_setattr(
    fd: BorrowedFd<'_>,
    recursive: bool,
    attr_set: u64,
    attr_clr: u64,
) -> nix::Result<()> {
    let attr = MountAttr {
        attr_set,
        attr_clr,
        propagation: 0,
        userns_fd: 0,
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: `fd` is live, EMPTY is a valid C string, and `attr` is a correctly laid out
    // mount_attr that outlives the call.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            EMPTY.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

/// `MOUNT_ATTR_IDMAP`: the mount maps ids through a user namespace (kernel 5.12).
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

/// `open_tree(2)` with `OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC`: a detached copy of the mount at
/// `path` (with the mounts beneath it when `recursive`), to be changed and then attached with
/// [`move_mount`].
pub fn open_tree_clone(path: &Path, recursive: bool) -> nix::Result<OwnedFd> {
    let c = cpath(path)?;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: `c` is a valid C string that outlives the call; on success the kernel returns a
    // new descriptor that nothing else owns.
    let fd =
        check(unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) })?;
    // SAFETY: `fd` was just returned by open_tree and is owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `mount_setattr(2)` with `MOUNT_ATTR_IDMAP`: make the detached mount `fd` map ids through
/// the user namespace `userns` (the whole tree when `recursive`).
pub fn mount_setattr_idmap(
    fd: BorrowedFd<'_>,
    recursive: bool,
    userns: BorrowedFd<'_>,
) -> nix::Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: both fds are live, EMPTY is a valid C string, and `attr` is a correctly laid out
    // mount_attr that outlives the call.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            EMPTY.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

/// Whether this kernel has `mount_setattr(2)` (and so id-mapped mounts): an empty call is
/// refused with something other than ENOSYS.
pub fn has_mount_setattr() -> bool {
    // SAFETY: a null attr with size 0 and an invalid fd: the kernel only validates arguments.
    let r = check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            -1,
            EMPTY.as_ptr(),
            0,
            std::ptr::null::<MountAttr>(),
            0usize,
        )
    });
    r != Err(nix::errno::Errno::ENOSYS)
}

/// `move_mount(2)`: attach the detached mount `from` on top of the file `to` refers to.
pub fn move_mount(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> nix::Result<()> {
    // SAFETY: both fds are live and EMPTY is a valid C string for both paths.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            EMPTY.as_ptr(),
            to.as_raw_fd(),
            EMPTY.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    })
    .map(drop)
}
