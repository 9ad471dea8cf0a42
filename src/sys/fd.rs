//! File descriptors and path resolution: `open`, `openat2`, `fstat`, `fstatfs`, `mkdirat`,
//! `mknodat`, `symlinkat`, `renameat`, `fchmod`, `fsync`, `fcntl`, `dup3`, `fchdir`, `flock`.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::check;

/// `RESOLVE_*` flags of `openat2(2)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolve(u64);

impl Resolve {
    /// No restriction.
    pub const NONE: Resolve = Resolve(0);
    /// Treat the directory fd as the root: `..` and absolute symlinks stay inside it.
    pub const IN_ROOT: Resolve = Resolve(libc::RESOLVE_IN_ROOT);
    /// Refuse `/proc/<pid>/fd/N`-style magic links.
    pub const NO_MAGICLINKS: Resolve = Resolve(libc::RESOLVE_NO_MAGICLINKS);
    /// Refuse every symlink.
    pub const NO_SYMLINKS: Resolve = Resolve(libc::RESOLVE_NO_SYMLINKS);
    /// Refuse to cross a mount point.
    pub const NO_XDEV: Resolve = Resolve(libc::RESOLVE_NO_XDEV);
    /// Fail if resolution would leave the directory fd's subtree.
    pub const BENEATH: Resolve = Resolve(libc::RESOLVE_BENEATH);
}

impl std::ops::BitOr for Resolve {
    type Output = Resolve;
    fn bitor(self, rhs: Resolve) -> Resolve {
        Resolve(self.0 | rhs.0)
    }
}

/// Convert a path to a C string (paths with NUL bytes are EINVAL, as the kernel would say).
pub fn cpath(path: &Path) -> nix::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

/// `open(2)`; `O_CLOEXEC` is always added.
pub fn open(path: &Path, flags: OFlag, mode: Mode) -> nix::Result<OwnedFd> {
    let c = cpath(path)?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let fd = check(unsafe {
        libc::open(
            c.as_ptr(),
            (flags | OFlag::O_CLOEXEC).bits(),
            mode.bits() as libc::c_uint,
        )
    } as libc::c_long)?;
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `openat(2)`; `O_CLOEXEC` is always added.
pub fn openat(dir: BorrowedFd<'_>, path: &Path, flags: OFlag, mode: Mode) -> nix::Result<OwnedFd> {
    let c = cpath(path)?;
    // SAFETY: `dir` is a live fd and `c` a valid C string for the duration of the call.
    let fd = check(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            (flags | OFlag::O_CLOEXEC).bits(),
            mode.bits() as libc::c_uint,
        )
    } as libc::c_long)?;
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `openat2(2)` with `RESOLVE_*` flags; `O_CLOEXEC` is always added. Retries on `EAGAIN`, which
/// the kernel returns when a concurrent rename raced the resolution.
pub fn openat2(
    dir: BorrowedFd<'_>,
    path: &Path,
    flags: OFlag,
    mode: Mode,
    resolve: Resolve,
) -> nix::Result<OwnedFd> {
    let c = cpath(path)?;
    // Our own copy of `struct open_how` (libc's is non-exhaustive).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (flags | OFlag::O_CLOEXEC).bits() as u64,
        mode: if flags.contains(OFlag::O_CREAT) {
            mode.bits() as u64
        } else {
            0
        },
        resolve: resolve.0,
    };
    for _ in 0..16 {
        // SAFETY: `dir` is live, `c` is a valid C string and `how` a properly sized open_how
        // that outlives the call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        match check(ret) {
            // SAFETY: the kernel just returned this fd to us; nobody else owns it.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Errno::EAGAIN)
}

/// Open `/dev/null` on whichever of fds 0, 1 and 2 is closed (`poll` reports `POLLNVAL`), so a
/// file opened later never becomes the process's stdin, stdout or stderr by accident.
pub fn reopen_closed_std_fds() -> nix::Result<()> {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: `fds` is a writable array of three pollfd structs; a zero timeout never blocks.
    check(unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } as libc::c_long)?;
    for p in fds {
        if p.revents & libc::POLLNVAL != 0 {
            // The lowest free descriptor is the closed one: open() returns exactly it.
            let null = open(Path::new("/dev/null"), OFlag::O_RDWR, Mode::empty())?;
            let _ = std::os::fd::IntoRawFd::into_raw_fd(null);
        }
    }
    Ok(())
}

/// `fstat(2)`.
pub fn fstat(fd: BorrowedFd<'_>) -> nix::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` points to writable memory of the right size; `fd` is live.
    check(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) } as libc::c_long)?;
    // SAFETY: fstat succeeded, so it filled the whole struct.
    Ok(unsafe { st.assume_init() })
}

/// `fstatfs(2)`: returns the filesystem magic (`f_type`).
pub fn fstatfs(fd: BorrowedFd<'_>) -> nix::Result<i64> {
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `st` points to writable memory of the right size; `fd` is live.
    check(unsafe { libc::fstatfs(fd.as_raw_fd(), st.as_mut_ptr()) } as libc::c_long)?;
    // SAFETY: fstatfs succeeded, so it filled the whole struct.
    let st = unsafe { st.assume_init() };
    // `f_type`'s C type differs between targets (i64 here, u32/i32 elsewhere).
    #[allow(clippy::unnecessary_cast)]
    Ok(st.f_type as i64)
}

/// `fstatvfs(3)` mount flags (`ST_RDONLY`, `ST_NOSUID`, ...).
pub fn fstatvfs_flags(fd: BorrowedFd<'_>) -> nix::Result<u64> {
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `st` points to writable memory of the right size; `fd` is live.
    check(unsafe { libc::fstatvfs(fd.as_raw_fd(), st.as_mut_ptr()) } as libc::c_long)?;
    // SAFETY: fstatvfs succeeded, so it filled the whole struct.
    let st = unsafe { st.assume_init() };
    // `f_flag` is an unsigned long: u64 here, u32 on 32-bit targets.
    #[allow(clippy::unnecessary_cast)]
    Ok(st.f_flag as u64)
}

/// `mkdirat(2)`.
pub fn mkdirat(dir: BorrowedFd<'_>, name: &Path, mode: Mode) -> nix::Result<()> {
    let c = cpath(name)?;
    // SAFETY: `dir` is live and `c` a valid C string.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode.bits()) } as libc::c_long)
        .map(drop)
}

/// `mknodat(2)`.
pub fn mknodat(
    dir: BorrowedFd<'_>,
    name: &Path,
    kind: libc::mode_t,
    perm: Mode,
    dev: libc::dev_t,
) -> nix::Result<()> {
    let c = cpath(name)?;
    // SAFETY: `dir` is live and `c` a valid C string.
    check(
        unsafe { libc::mknodat(dir.as_raw_fd(), c.as_ptr(), kind | perm.bits(), dev) }
            as libc::c_long,
    )
    .map(drop)
}

/// `symlinkat(2)`: create `name` in `dir` pointing at `target`.
pub fn symlinkat(target: &Path, dir: BorrowedFd<'_>, name: &Path) -> nix::Result<()> {
    let t = cpath(target)?;
    let n = cpath(name)?;
    // SAFETY: both strings are valid C strings and `dir` is live.
    check(unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), n.as_ptr()) } as libc::c_long)
        .map(drop)
}

/// `unlinkat(2)`; `dir_flag` removes a directory.
pub fn unlinkat(dir: BorrowedFd<'_>, name: &Path, remove_dir: bool) -> nix::Result<()> {
    let c = cpath(name)?;
    let flags = if remove_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: `dir` is live and `c` a valid C string.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), flags) } as libc::c_long).map(drop)
}

/// `renameat(2)`: rename `old` in `old_dir` to `new` in `new_dir`. A symlink at `new` is
/// replaced, never followed.
pub fn renameat(
    old_dir: BorrowedFd<'_>,
    old: &Path,
    new_dir: BorrowedFd<'_>,
    new: &Path,
) -> nix::Result<()> {
    let o = cpath(old)?;
    let n = cpath(new)?;
    // SAFETY: both fds are live and both strings valid C strings for the duration of the call.
    check(unsafe {
        libc::renameat(
            old_dir.as_raw_fd(),
            o.as_ptr(),
            new_dir.as_raw_fd(),
            n.as_ptr(),
        )
    } as libc::c_long)
    .map(drop)
}

/// `fchmod(2)`: set the exact permission bits (the umask does not apply).
pub fn fchmod(fd: BorrowedFd<'_>, mode: Mode) -> nix::Result<()> {
    // SAFETY: `fd` is live; fchmod takes plain integers otherwise.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode.bits()) } as libc::c_long).map(drop)
}

/// `fsync(2)`.
pub fn fsync(fd: BorrowedFd<'_>) -> nix::Result<()> {
    // SAFETY: `fd` is live.
    check(unsafe { libc::fsync(fd.as_raw_fd()) } as libc::c_long).map(drop)
}

/// `fchownat(2)` with `AT_SYMLINK_NOFOLLOW`: change the owner of `name` in `dir` itself, a
/// symlink included.
pub fn lchownat(dir: BorrowedFd<'_>, name: &Path, uid: u32, gid: u32) -> nix::Result<()> {
    let c = cpath(name)?;
    // SAFETY: `dir` is live and `c` a valid C string.
    check(unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            c.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } as libc::c_long)
    .map(drop)
}

/// A small file's contents (a state file, `/proc/<pid>/stat`, a cgroup control file), read
/// at `path` (relative to `dir` when given): open, read to the end, close. `std::fs::read`
/// first asks for the size (`statx`, `lseek`), which costs as much as the read for files this
/// small and sizes nothing useful for procfs and cgroupfs, whose files report 0 or 4096.
pub fn read_small(dir: Option<BorrowedFd<'_>>, path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let fd = match dir {
        Some(dir) => openat(dir, path, OFlag::O_RDONLY, Mode::empty()),
        None => open(path, OFlag::O_RDONLY, Mode::empty()),
    }?;
    let mut buf = Vec::with_capacity(4096);
    // Through `Take`, `read_to_end` sees no file to ask for a size, and reads straight into
    // the spare capacity.
    std::fs::File::from(fd)
        .take(u64::MAX)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

/// [`read_small`] as text (invalid UTF-8 is an `InvalidData` error).
pub fn read_small_string(dir: Option<BorrowedFd<'_>>, path: &Path) -> std::io::Result<String> {
    String::from_utf8(read_small(dir, path)?)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Whether `path` (relative to `dir`) names anything, as [`Path::exists`] says it (a
/// symlink counts by its target): one `newfstatat` with a short lookup from `dir`.
pub fn exists_at(dir: BorrowedFd<'_>, path: &Path) -> bool {
    let Ok(c) = cpath(path) else { return false };
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `dir` is a live fd, `c` a valid C string and `st` writable memory of the
    // size the kernel fills, all for the duration of the call.
    let rc = unsafe { libc::fstatat(dir.as_raw_fd(), c.as_ptr(), st.as_mut_ptr(), 0) };
    rc == 0
}

/// The names in the directory `dir` (without `.` and `..`), read through a new descriptor of
/// the same directory (never by path).
pub fn read_dir_names(dir: BorrowedFd<'_>) -> nix::Result<Vec<std::ffi::OsString>> {
    use std::os::unix::ffi::OsStringExt;
    let mut d = nix::dir::Dir::openat(
        Some(dir.as_raw_fd()),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    for entry in d.iter() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(std::ffi::OsString::from_vec(name));
        }
    }
    Ok(names)
}

/// `fchown(2)`.
pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> nix::Result<()> {
    // SAFETY: `fd` is live; fchown takes plain integers otherwise.
    check(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) } as libc::c_long).map(drop)
}

/// `fchdir(2)`.
pub fn fchdir(fd: BorrowedFd<'_>) -> nix::Result<()> {
    // SAFETY: `fd` is live.
    check(unsafe { libc::fchdir(fd.as_raw_fd()) } as libc::c_long).map(drop)
}

/// `chdir(2)`.
pub fn chdir(path: &Path) -> nix::Result<()> {
    nix::unistd::chdir(path)
}

/// `chroot(2)`.
pub fn chroot(path: &Path) -> nix::Result<()> {
    nix::unistd::chroot(path)
}

/// `close_range(first, ~0, CLOSE_RANGE_CLOEXEC)`: mark every descriptor from `first` up
/// close-on-exec in one call, without listing them (no `/proc` needed).
pub fn close_range_cloexec(first: u32) -> nix::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes descriptor flags; it closes
    // nothing and takes plain integers.
    check(unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    })
    .map(drop)
}

/// Set or clear `FD_CLOEXEC` on a descriptor number. Private: only the whole-table sweep
/// below, which owns the table, works on numbers.
fn set_cloexec(fd: RawFd, cloexec: bool) -> nix::Result<()> {
    // SAFETY: F_GETFD/F_SETFD only read and write the descriptor flags; an fd we do not own is
    // at worst EBADF.
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFD) } as libc::c_long)? as libc::c_int;
    let new = if cloexec {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    if new != flags {
        // SAFETY: as above.
        check(unsafe { libc::fcntl(fd, libc::F_SETFD, new) } as libc::c_long)?;
    }
    Ok(())
}

/// For a process about to `execve` (the container's init, which owns its whole descriptor
/// table then): every descriptor from 3 up becomes close-on-exec except `3..keep_end`, and
/// of those `ours` stay close-on-exec too. No descriptor is closed or renumbered; only what
/// survives the `exec` is decided. `close_range(CLOSE_RANGE_CLOEXEC)` marks the range in
/// the kernel; where it is missing, every number up to the descriptor limit is marked. On
/// failure, the operation and its error.
pub fn keep_only_across_exec(keep_end: RawFd, ours: &[RawFd]) -> Result<(), (&'static str, Errno)> {
    match close_range_cloexec(3) {
        Ok(()) => {}
        Err(Errno::ENOSYS | Errno::EINVAL) => {
            let (soft, _) =
                nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
                    .map_err(|e| ("getrlimit RLIMIT_NOFILE", e))?;
            let top = RawFd::try_from(soft.min(1 << 20)).unwrap_or(1 << 20);
            for fd in 3..top {
                match set_cloexec(fd, true) {
                    Ok(()) | Err(Errno::EBADF) => {}
                    Err(e) => return Err(("fcntl FD_CLOEXEC", e)),
                }
            }
        }
        Err(e) => return Err(("close_range", e)),
    }
    for fd in (3..keep_end).filter(|fd| !ours.contains(fd)) {
        match set_cloexec(fd, false) {
            Ok(()) | Err(Errno::EBADF) => {}
            Err(e) => return Err(("fcntl FD_CLOEXEC", e)),
        }
    }
    Ok(())
}

/// Make descriptors 0, 1 and 2 (the process's standard streams, which it owns by
/// convention and which stay open) refer to `file`, without `O_CLOEXEC`.
pub fn replace_stdio(file: BorrowedFd<'_>) -> nix::Result<()> {
    for n in 0..3 {
        if file.as_raw_fd() == n {
            set_cloexec(n, false)?;
            continue;
        }
        // SAFETY: dup3 atomically replaces a standard stream, which stays open (std relies on
        // that), with a copy of a live descriptor.
        check(unsafe { libc::dup3(file.as_raw_fd(), n, 0) } as libc::c_long)?;
    }
    Ok(())
}

/// `flock(2)`, exclusive, blocking.
pub fn flock_exclusive(fd: BorrowedFd<'_>) -> nix::Result<()> {
    loop {
        // SAFETY: `fd` is live.
        match check(unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX) } as libc::c_long) {
            Err(Errno::EINTR) => continue,
            other => return other.map(drop),
        }
    }
}

/// `readlinkat(2)` on an `O_PATH` fd with an empty path, or a path relative to `dir`.
pub fn readlinkat(dir: BorrowedFd<'_>, path: &Path) -> nix::Result<std::ffi::OsString> {
    nix::fcntl::readlinkat(Some(dir.as_raw_fd()), path)
}

/// `/proc/self/fd/N` for an fd, the path through which `mount(2)` reaches the exact inode an
/// fd holds without resolving a name again.
pub fn proc_fd_path(fd: BorrowedFd<'_>) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// `close(2)` for a raw descriptor we own but hold as a number (after `fork`-style clones).
pub fn close_raw(fd: RawFd) {
    // SAFETY: closing a number we own; errors (EBADF) are irrelevant here.
    unsafe { libc::close(fd) };
}

/// An empty C string, for `AT_EMPTY_PATH` calls.
pub const EMPTY: &CStr = c"";

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn read_small_reads_whole_files_by_path_or_relative_to_a_directory() {
        let dir = std::env::temp_dir().join(format!("sealrun-read-small-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Larger than the first buffer, so the read goes on past it.
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.join("f"), &data).unwrap();
        std::os::unix::fs::symlink("f", dir.join("link")).unwrap();
        std::os::unix::fs::symlink("nothing", dir.join("dangling")).unwrap();
        let at = open(&dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        let by_path = read_small(None, &dir.join("f"));
        let relative = read_small(Some(at.as_fd()), Path::new("f"));
        let missing = read_small(Some(at.as_fd()), Path::new("nothing"));
        // As `Path::exists`: a symlink counts by its target.
        let exists = (
            exists_at(at.as_fd(), Path::new("f")),
            exists_at(at.as_fd(), Path::new("nothing")),
            exists_at(at.as_fd(), Path::new("link")),
            exists_at(at.as_fd(), Path::new("dangling")),
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(by_path.unwrap(), data);
        assert_eq!(relative.unwrap(), data);
        assert_eq!(missing.unwrap_err().kind(), std::io::ErrorKind::NotFound);
        assert_eq!(exists, (true, false, true, false));
        // procfs reports no size; the whole file still arrives.
        let stat = read_small_string(None, Path::new("/proc/self/stat")).unwrap();
        assert!(stat.trim_end().split(' ').count() >= 52, "{stat}");
    }
}
