//! Symlink-safe paths inside the container's root (CVE-2021-30465, CVE-2019-19921).
//!
//! Every container path is resolved with `openat2(RESOLVE_IN_ROOT)` against an fd of the root:
//! `..` and absolute symlinks stay inside it, whatever the image contains. Missing components
//! are created one at a time with `mkdirat` relative to an fd of their (already resolved)
//! parent, so a symlink swapped in between cannot redirect the creation. Mounts then target the
//! resolved fd through `/proc/self/fd/N`, never the path again.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error::{Context, Error, Result};
use crate::sys::fd::{self as sfd, proc_fd_path, Resolve};

/// `PROC_SUPER_MAGIC`.
pub const PROC_MAGIC: i64 = 0x9fa0;
/// `DEVPTS_SUPER_MAGIC`.
pub const DEVPTS_MAGIC: i64 = 0x1cd1;
/// `SYSFS_MAGIC`.
pub const SYSFS_MAGIC: i64 = 0x6265_6572;

/// How strictly to resolve (the `path-safety` layer can be switched off for tests only).
#[derive(Debug, Clone, Copy)]
pub struct Resolver {
    safe: bool,
}

impl Resolver {
    /// A resolver; `safe == false` resolves like a plain `open` under the root path, which is
    /// what runtimes did before these CVEs (used only to prove the attack tests can fail).
    pub fn new(safe: bool) -> Resolver {
        Resolver { safe }
    }

    /// Whether paths are resolved strictly (and /proc, /dev/null, /dev/console are checked).
    pub fn is_safe(&self) -> bool {
        self.safe
    }

    fn resolve(&self, extra: Resolve) -> Resolve {
        if self.safe {
            Resolve::IN_ROOT | Resolve::NO_MAGICLINKS | extra
        } else {
            Resolve::NONE
        }
    }

    /// Open `path` (a container path) relative to `root` with `O_PATH`.
    pub fn open(&self, root: BorrowedFd<'_>, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
        self.open_with(root, path, flags, Resolve::NONE)
    }

    /// Open with extra `RESOLVE_*` flags (e.g. `NO_SYMLINKS` for /proc targets).
    pub fn open_with(
        &self,
        root: BorrowedFd<'_>,
        path: &Path,
        flags: OFlag,
        extra: Resolve,
    ) -> nix::Result<OwnedFd> {
        sfd::openat2(
            root,
            &relative(path),
            flags,
            Mode::empty(),
            self.resolve(extra),
        )
    }

    /// Resolve `path`, creating missing directories (and, if `file` is true, the last component
    /// as an empty regular file). Symlinks met on the way are followed *inside* the root, and
    /// what they point to is created if missing. Returns an `O_PATH` fd of the final object.
    pub fn ensure(&self, root: BorrowedFd<'_>, path: &Path, file: bool) -> Result<OwnedFd> {
        match self.open(root, path, OFlag::O_PATH) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(Error::os("open in rootfs", Some(path), e)),
        }
        if !self.safe {
            // What runtimes did before in-root resolution: plain path walking from the host's
            // view of the rootfs, following symlinks wherever they point.
            let host = proc_fd_path(root).join(relative(path));
            if file {
                if let Some(parent) = host.parent() {
                    std::fs::create_dir_all(parent).op_path("mkdir", path)?;
                }
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&host)
                    .op_path("create", path)?;
            } else {
                std::fs::create_dir_all(&host).op_path("mkdir", path)?;
            }
            return self.open(root, path, OFlag::O_PATH).op_path("open", path);
        }
        let mut todo: VecDeque<OsString> = components(path);
        let mut done = PathBuf::new();
        let mut links = 0;
        while let Some(name) = todo.pop_front() {
            if name == ".." {
                done.pop();
                continue;
            }
            let last = todo.is_empty();
            let dir = self
                .open(root, &done, OFlag::O_PATH | OFlag::O_DIRECTORY)
                .op_path("open", &done)?;
            let name_path = Path::new(&name);
            match sfd::openat(
                dir.as_fd(),
                name_path,
                OFlag::O_PATH | OFlag::O_NOFOLLOW,
                Mode::empty(),
            ) {
                Ok(fd) => {
                    let st = sfd::fstat(fd.as_fd()).op_path("fstat", &done.join(&name))?;
                    if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                        links += 1;
                        if links > 40 {
                            return Err(Error::os("resolve", Some(path), Errno::ELOOP));
                        }
                        let target = sfd::readlinkat(dir.as_fd(), name_path)
                            .op_path("readlink", &done.join(&name))?;
                        let target = PathBuf::from(target);
                        if target.is_absolute() {
                            done = PathBuf::new();
                        }
                        for c in components(&target).into_iter().rev() {
                            todo.push_front(c);
                        }
                        continue;
                    }
                }
                Err(Errno::ENOENT) => {
                    let made = if last && file {
                        sfd::openat(
                            dir.as_fd(),
                            name_path,
                            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW,
                            Mode::from_bits_truncate(0o644),
                        )
                        .map(drop)
                    } else {
                        sfd::mkdirat(dir.as_fd(), name_path, Mode::from_bits_truncate(0o755))
                    };
                    match made {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(Error::os("create", Some(&done.join(&name)), e)),
                    }
                }
                Err(e) => return Err(Error::os("open in rootfs", Some(&done.join(&name)), e)),
            }
            done.push(&name);
        }
        self.open(root, &done, OFlag::O_PATH)
            .op_path("open in rootfs", &done)
    }
}

/// The normal components of a path (and `..`, kept for in-root resolution).
fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

/// Strip the leading `/` so the path is relative to the root fd ("" becomes ".").
pub fn relative(path: &Path) -> PathBuf {
    let rel: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::CurDir))
        .collect();
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}

/// Whether an fd is on a filesystem with the given magic.
pub fn is_fs(fd: BorrowedFd<'_>, magic: i64) -> Result<bool> {
    Ok(sfd::fstatfs(fd).op("fstatfs")? == magic)
}

/// Open `rel` (`self/oom_score_adj`, `self/fd`) in the `/proc` of the current root, checked
/// (CVE-2025-52881): `/proc` is not a symlink and is procfs, the path stays beneath it without
/// magic links or crossing a mount (a bind mount over the file cannot redirect the access),
/// and what is opened is on procfs. `safe == false` (tests only) opens the path as it is.
pub fn open_proc(rel: &Path, flags: OFlag, safe: bool) -> Result<OwnedFd> {
    let full = Path::new("/proc").join(rel);
    if !safe {
        return sfd::open(&full, flags, Mode::empty()).op_path("open", &full);
    }
    let proc = sfd::open(
        Path::new("/proc"),
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
    .op_path("open", Path::new("/proc"))?;
    if !is_fs(proc.as_fd(), PROC_MAGIC)? {
        return Err(Error::Other(format!(
            "/proc is not procfs: refusing to use {}",
            full.display()
        )));
    }
    let fd = sfd::openat2(
        proc.as_fd(),
        rel,
        flags,
        Mode::empty(),
        Resolve::BENEATH | Resolve::NO_MAGICLINKS | Resolve::NO_XDEV,
    )
    .op_path("open", &full)?;
    if !is_fs(fd.as_fd(), PROC_MAGIC)? {
        return Err(Error::Other(format!(
            "{} is not on procfs: refusing to use it",
            full.display()
        )));
    }
    Ok(fd)
}

/// Fail unless `fd` is the character device `major:minor` (used for /dev/null before it masks
/// a path or becomes stdio, CVE-2025-31133, and for /dev/console, CVE-2025-52565).
pub fn check_char_device(fd: BorrowedFd<'_>, major: u64, minor: u64, what: &Path) -> Result<()> {
    let st = sfd::fstat(fd).op_path("fstat", what)?;
    let is_chr = st.st_mode & libc::S_IFMT == libc::S_IFCHR;
    if !is_chr || libc::major(st.st_rdev) as u64 != major || libc::minor(st.st_rdev) as u64 != minor
    {
        return Err(Error::Other(format!(
            "{} is not the character device {major}:{minor}: refusing to use it",
            what.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sealrun-paths-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn absolute_symlink_stays_inside_root() {
        let root = tmp("abs");
        let outside = tmp("abs-outside");
        symlink(&outside, root.join("escape")).unwrap();
        let rfd = sfd::open(&root, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        let made = Resolver::new(true)
            .ensure(rfd.as_fd(), Path::new("/escape/sub"), false)
            .unwrap();
        drop(made);
        // The symlink target is re-read as a path *inside* the root.
        let inside = root.join(outside.strip_prefix("/").unwrap()).join("sub");
        assert!(inside.is_dir(), "{}", inside.display());
        assert!(!outside.join("sub").exists());
        let _ = std::fs::remove_dir_all(root);
        let _ = std::fs::remove_dir_all(outside);
    }

    #[test]
    fn unsafe_resolver_follows_the_symlink_out() {
        let root = tmp("unsafe");
        let outside = tmp("unsafe-outside");
        symlink(&outside, root.join("escape")).unwrap();
        let rfd = sfd::open(&root, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        Resolver::new(false)
            .ensure(rfd.as_fd(), Path::new("/escape/sub"), false)
            .unwrap();
        assert!(outside.join("sub").is_dir());
        let _ = std::fs::remove_dir_all(root);
        let _ = std::fs::remove_dir_all(outside);
    }

    #[test]
    fn ensure_creates_files_and_dotdot_cannot_escape() {
        let root = tmp("file");
        let rfd = sfd::open(&root, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        Resolver::new(true)
            .ensure(rfd.as_fd(), Path::new("/a/b/file"), true)
            .unwrap();
        assert!(root.join("a/b/file").is_file());
        let fd = Resolver::new(true)
            .open(rfd.as_fd(), Path::new("/../../.."), OFlag::O_PATH)
            .unwrap();
        let st = sfd::fstat(fd.as_fd()).unwrap();
        let rst = sfd::fstat(rfd.as_fd()).unwrap();
        assert_eq!((st.st_dev, st.st_ino), (rst.st_dev, rst.st_ino));
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn dev_null_check() {
        let null = sfd::open(Path::new("/dev/null"), OFlag::O_PATH, Mode::empty()).unwrap();
        check_char_device(null.as_fd(), 1, 3, Path::new("/dev/null")).unwrap();
        assert!(check_char_device(null.as_fd(), 1, 5, Path::new("/dev/null")).is_err());
    }
}
