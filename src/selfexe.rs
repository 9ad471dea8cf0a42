//! The protected self-executable (CVE-2019-5736).
//!
//! `create`, `run` and `exec` re-execute sealrun from a file that no write can reach, so
//! whatever a container does to `/proc/<runtime>/exe` never changes the binary on the host.
//! Two ways, the cheaper first (measured in docs/selfexe-cost.md):
//! - a detached, lower-only overlayfs (`fsopen`/`fsmount`, never attached to any mount tree)
//!   holding the binary's directory: the superblock has no upper layer, so the kernel refuses
//!   every write with `EROFS` whatever the mount flags say; nothing is copied;
//! - where the kernel or the caller's privileges refuse that, a memfd filled by an in-kernel
//!   copy and sealed against every change (writes fail with `EPERM`).
//!
//! "Already protected" is a property of our own executable (`F_GET_SEALS` on a memfd, or a
//! read-only overlayfs), never an environment variable, so nothing a caller passes can make
//! sealrun skip it.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error::{Context, Error, Result};
use crate::sys::{self, fsmount as fsm, memfd as m};

/// The seals sealrun requires (and `F_SEAL_EXEC` where the kernel has it).
pub const REQUIRED_SEALS: i32 =
    m::F_SEAL_SEAL | m::F_SEAL_SHRINK | m::F_SEAL_GROW | m::F_SEAL_WRITE;

/// `OVERLAYFS_SUPER_MAGIC` (`f_type` of an overlayfs).
const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;

/// How the running binary is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SealStatus {
    /// Running from a sealed memfd copy.
    Sealed,
    /// Running from a detached, read-only, lower-only overlayfs.
    Overlay,
    /// Switched off for a test (`--unsafe-disable selfexe`).
    Disabled,
}

impl SealStatus {
    /// The word the audit record uses (`sealed`, `read-only-overlay`, `disabled`).
    pub fn as_str(self) -> &'static str {
        match self {
            SealStatus::Sealed => "sealed",
            SealStatus::Overlay => "read-only-overlay",
            SealStatus::Disabled => "disabled",
        }
    }
}

/// The non-dumpable layer, decided here only: until it execs the container's program, no
/// process of the container may open a runtime process's `/proc/<pid>/exe` (CVE-2019-5736).
/// The parent sets it before cloning (clone inherits it, so the child is never dumpable for
/// an instruction); children set it again in case they were started otherwise.
pub(crate) fn set_nondumpable(layers: &crate::spec::Layers) -> Result<()> {
    if layers.no_nondumpable {
        return Ok(());
    }
    sys::process::set_dumpable(false).op("prctl PR_SET_DUMPABLE")
}

/// What Rust's runtime start-up does that sealrun relies on, for its binary's `#![no_main]`
/// entry: fds 0–2 open (on `/dev/null` if the caller closed them) and `SIGPIPE` ignored. The
/// rest of that start-up (finding the main thread's stack in `/proc/self/maps`, an alternate
/// signal stack for the stack-overflow message) ran in every process, twice per sealed
/// command since it re-executes itself; a stack overflow is then a plain `SIGSEGV`.
///
/// # Safety
/// It changes process-wide state under everyone in the process: descriptors 0–2 (opened when
/// closed) and `SIGPIPE`'s disposition. Call it only first thing in the entry point of a
/// program that is the sealrun runtime, before any other thread or library relies on either.
#[allow(unsafe_code)]
pub unsafe fn standard_start() -> Result<()> {
    sys::fd::reopen_closed_std_fds().op("reopen closed standard fds")?;
    sys::process::ignore_sigpipe().op("ignore SIGPIPE")
}

/// Our own executable, opened once for both the check and the copy.
fn open_self() -> Result<OwnedFd> {
    let exe = Path::new("/proc/self/exe");
    sys::fd::open(exe, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).op_path("open", exe)
}

/// The seals on `exe`, or `None` when it is not a memfd.
fn seals_of(exe: BorrowedFd<'_>) -> Result<Option<i32>> {
    match m::get_seals(exe) {
        Ok(seals) => Ok(Some(seals)),
        Err(Errno::EINVAL) => Ok(None),
        Err(e) => Err(Error::os(
            "fcntl F_GET_SEALS",
            Some(Path::new("/proc/self/exe")),
            e,
        )),
    }
}

/// What [`ensure_sealed`] found protecting this process. What a process runs cannot change
/// until it execs (which clears this), so the answer of the early check in `main` serves the
/// later ones too.
static CHECKED: std::sync::OnceLock<SealStatus> = std::sync::OnceLock::new();

/// Whether this process runs from a protected executable (a sealed memfd, or a read-only
/// overlay no one can make writable), as [`ensure_sealed`] leaves it.
pub fn running_protected() -> bool {
    if CHECKED.get().is_some() {
        return true;
    }
    open_self()
        .and_then(|exe| protection_of(exe.as_fd()))
        .is_ok_and(|found| matches!(found, Found::Protected(_)))
}

/// What protects a running executable.
enum Found {
    /// It is protected (a sealed memfd, or a read-only overlay no one can make writable).
    Protected(SealStatus),
    /// A read-only overlay whose superblock cannot be checked (no `statmount`): take the memfd
    /// rather than re-executing through another overlay that could not be checked either.
    Unverified,
    /// Not protected.
    No,
}

/// How `exe` is already protected, if it is: a memfd with every required seal, or a file on a
/// read-only overlayfs mount that is either detached (in no mount namespace: the one
/// [`overlay_copy`] makes, which only the running process holds) or has a read-only superblock
/// (a lower-only overlay). A writable overlay merely mounted read-only does not count: whoever
/// holds its namespace could make the mount writable again.
fn protection_of(exe: BorrowedFd<'_>) -> Result<Found> {
    if let Some(seals) = seals_of(exe)? {
        let sealed = seals & REQUIRED_SEALS == REQUIRED_SEALS;
        return Ok(if sealed {
            Found::Protected(SealStatus::Sealed)
        } else {
            Found::No
        });
    }
    let on_overlay = sys::fd::fstatfs(exe).is_ok_and(|t| t == OVERLAYFS_SUPER_MAGIC);
    let read_only = || sys::fd::fstatvfs_flags(exe).is_ok_and(|f| f & libc::ST_RDONLY != 0);
    if !(on_overlay && read_only()) {
        return Ok(Found::No);
    }
    Ok(match fsm::mount_id(exe).and_then(fsm::statmount_sb_flags) {
        Err(Errno::ENOENT) => Found::Protected(SealStatus::Overlay),
        Ok(flags) if flags & fsm::SB_RDONLY != 0 => Found::Protected(SealStatus::Overlay),
        Ok(_) => Found::No,
        Err(_) => Found::Unverified,
    })
}

/// Make sure we run from a protected executable: return if we already do, otherwise re-execute
/// ourselves through a read-only overlay (or, failing that, a sealed memfd copy) with the same
/// arguments and environment (does not return then).
///
/// # Safety
/// Re-executing replaces the whole calling program (its `main` runs again, every other thread
/// ends, nothing is dropped). Call it only from a program that is the sealrun runtime itself
/// (the `sealrun` binary, a shim's worker), early, while it is single-threaded and holds
/// nothing that must be flushed or released. Embedders never need it: [`crate::Sandbox`] runs
/// its helper from the protected executable.
#[allow(unsafe_code)]
pub unsafe fn ensure_sealed(disabled: bool) -> Result<SealStatus> {
    if disabled {
        return Ok(SealStatus::Disabled);
    }
    if let Some(status) = CHECKED.get() {
        return Ok(*status);
    }
    let exe = open_self()?;
    let found = protection_of(exe.as_fd())?;
    if let Found::Protected(status) = found {
        return Ok(*CHECKED.get_or_init(|| status));
    }
    let target = if matches!(found, Found::Unverified) {
        memfd_copy(exe.as_fd())?
    } else {
        let path = std::fs::read_link("/proc/self/exe").unwrap_or_default();
        protect(&path, exe.as_fd())?.0
    };
    drop(exe);
    Err(reexec(target.as_fd()))
}

/// Execute `exe` in place of the calling program, with the same arguments and environment
/// (what [`ensure_sealed`] does once it has the protected file; the native shim's start-up
/// runs from its node-wide sealed copy this way). Returns only the error.
///
/// # Safety
/// As [`ensure_sealed`]: the whole calling program is replaced (every other thread ends,
/// nothing is dropped or flushed), so only a runtime process of its own calls it, early and
/// single-threaded.
#[allow(unsafe_code)]
pub unsafe fn reexec_from(exe: BorrowedFd<'_>) -> Error {
    reexec(exe)
}

fn reexec(exe: BorrowedFd<'_>) -> Error {
    // Arguments and variables from the OS hold no NUL; one that did could not be passed on.
    let args: Vec<CString> = std::env::args_os()
        .filter_map(|a| CString::new(a.as_bytes()).ok())
        .collect();
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    let argv: Vec<&std::ffi::CStr> = args.iter().map(|a| a.as_c_str()).collect();
    let envp: Vec<&std::ffi::CStr> = env.iter().map(|a| a.as_c_str()).collect();
    let errno = sys::process::fexecve(exe, &argv, &envp);
    Error::os("fexecve protected copy", None, errno)
}

/// The sealrun binary at `path` as a protected executable, for a program that starts sealrun
/// processes (the embedding API's helpers): what [`ensure_sealed`] would re-execute through,
/// made once, so that every process started from it runs protected at once, without copying
/// or re-executing itself. The calling process is not changed: the overlay is a detached
/// mount that only the returned descriptor (close-on-exec) reaches, and the memfd is a file.
pub(crate) fn protected_executable(path: &Path) -> Result<(OwnedFd, SealStatus)> {
    let path = std::fs::canonicalize(path).op_path("resolve", path)?;
    let exe = sys::fd::open(&path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .op_path("open", &path)?;
    protect(&path, exe.as_fd())
}

/// `exe` (found at `path`) through the read-only overlay, or a sealed memfd copy of it when
/// the overlay cannot be made (or the test switch asks for the memfd).
fn protect(path: &Path, exe: BorrowedFd<'_>) -> Result<(OwnedFd, SealStatus)> {
    let overlay = if memfd_forced() {
        Err(Errno::EPERM)
    } else {
        overlay_copy(path, exe)
    };
    match overlay {
        Ok(fd) => Ok((fd, SealStatus::Overlay)),
        Err(_) => Ok((memfd_copy(exe)?, SealStatus::Sealed)),
    }
}

/// The test switch `SEALRUN_UNSAFE_SELFEXE=memfd` (builds with the `unsafe-test-switches`
/// feature only): take the memfd even where the overlay works, so the attack tests reach the
/// fallback. It chooses between two protections and never skips one.
fn memfd_forced() -> bool {
    cfg!(feature = "unsafe-test-switches")
        && std::env::var_os("SEALRUN_UNSAFE_SELFEXE").is_some_and(|v| v == "memfd")
}

/// The data-only layer of the overlay: overlayfs wants two lower layers when it has no upper
/// one, and a data-only layer is never visible in the merged tree (it is reached only through
/// metacopy redirects, which this mount does not enable), so any directory that exists and
/// does not overlap the binary's will do without a mount of its own.
const DATA_LAYER: &str = "/dev";

/// Our binary seen through a new detached overlayfs whose only visible layer is the binary's
/// own directory: nothing is copied, and the superblock refuses every write. Fails (and the
/// caller falls back to the memfd) without `CAP_SYS_ADMIN`, without `lowerdir+`/`datadir+`
/// (Linux < 6.8), when the binary's directory overlaps [`DATA_LAYER`], or when `path` no
/// longer holds the file `exe` is.
fn overlay_copy(path: &Path, exe: BorrowedFd<'_>) -> nix::Result<OwnedFd> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Errno::ENOENT);
    };
    let dir_fd = sys::fd::open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let running = sys::fd::fstat(exe)?;
    let named = sys::fd::openat(
        dir_fd.as_fd(),
        Path::new(name),
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let named = sys::fd::fstat(named.as_fd())?;
    if (named.st_dev, named.st_ino) != (running.st_dev, running.st_ino) {
        return Err(Errno::ESTALE);
    }
    let ctx = fsm::fsopen(c"overlay")?;
    let layer = sys::fd::cpath(&sys::fd::proc_fd_path(dir_fd.as_fd()))?;
    fsm::fsconfig_set_string(ctx.as_fd(), c"lowerdir+", &layer)?;
    let data = sys::fd::cpath(Path::new(DATA_LAYER))?;
    fsm::fsconfig_set_string(ctx.as_fd(), c"datadir+", &data)?;
    fsm::fsconfig_create(ctx.as_fd())?;
    let mnt = fsm::fsmount(
        ctx.as_fd(),
        fsm::MOUNT_ATTR_RDONLY | fsm::MOUNT_ATTR_NOSUID | fsm::MOUNT_ATTR_NODEV,
    )?;
    sys::fd::openat(
        mnt.as_fd(),
        Path::new(name),
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// A sealed memfd holding a copy of `exe`.
fn memfd_copy(exe: BorrowedFd<'_>) -> Result<OwnedFd> {
    let size = sys::fd::fstat(exe)
        .op_path("fstat", Path::new("/proc/self/exe"))?
        .st_size as u64;
    let flags = m::MFD_CLOEXEC | m::MFD_ALLOW_SEALING;
    let memfd = match m::memfd_create(c"sealrun", flags | m::MFD_EXEC) {
        Err(Errno::EINVAL) => m::memfd_create(c"sealrun", flags),
        other => other,
    }
    .op("memfd_create")?;
    m::sendfile_all(memfd.as_fd(), exe, size).op("sendfile to memfd")?;
    match m::add_seals(memfd.as_fd(), REQUIRED_SEALS | m::F_SEAL_EXEC) {
        Err(Errno::EINVAL) => m::add_seals(memfd.as_fd(), REQUIRED_SEALS),
        other => other,
    }
    .op("fcntl F_ADD_SEALS")?;
    Ok(memfd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_binary_is_not_a_memfd() {
        assert_eq!(seals_of(open_self().unwrap().as_fd()).unwrap(), None);
    }

    #[test]
    fn test_binary_is_not_protected() {
        assert!(matches!(
            protection_of(open_self().unwrap().as_fd()).unwrap(),
            Found::No
        ));
    }

    /// The embedding API's helpers start from this: a file named by path, protected without
    /// the caller re-executing, whichever protection this host allows.
    #[test]
    fn protected_executable_of_a_named_binary() {
        let path = std::fs::read_link("/proc/self/exe").unwrap();
        let (fd, status) = protected_executable(&path).unwrap();
        assert!(matches!(status, SealStatus::Overlay | SealStatus::Sealed));
        assert!(
            matches!(protection_of(fd.as_fd()).unwrap(), Found::Protected(s) if s == status),
            "{status:?}"
        );
        assert!(matches!(
            protection_of(open_self().unwrap().as_fd()).unwrap(),
            Found::No
        ));
        let err = protected_executable(Path::new("/nonexistent/sealrun")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/sealrun"), "{err}");
    }

    #[test]
    fn overlay_copy_is_protected_and_refuses_writes() {
        let exe = open_self().unwrap();
        let path = std::fs::read_link("/proc/self/exe").unwrap();
        let copy = match overlay_copy(&path, exe.as_fd()) {
            Ok(fd) => fd,
            Err(e @ (Errno::EPERM | Errno::EINVAL | Errno::ENODEV)) => {
                eprintln!("SKIPPED: no read-only overlay here ({e}): the memfd is used");
                return;
            }
            Err(e) => panic!("overlay_copy: {e}"),
        };
        assert!(matches!(
            protection_of(copy.as_fd()).unwrap(),
            Found::Protected(SealStatus::Overlay)
        ));
        // The CVE-2019-5736 write: reopen through the magic link for writing.
        let reopen = sys::fd::open(
            &sys::fd::proc_fd_path(copy.as_fd()),
            OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        );
        assert_eq!(reopen.err(), Some(Errno::EROFS));
        // Same content as the file we run.
        let size = |fd: BorrowedFd<'_>| sys::fd::fstat(fd).unwrap().st_size;
        assert_eq!(size(copy.as_fd()), size(exe.as_fd()));
    }

    #[test]
    fn sealed_memfd_refuses_writes_and_resizes() {
        let fd = m::memfd_create(c"t", m::MFD_CLOEXEC | m::MFD_ALLOW_SEALING).unwrap();
        let mut f = std::fs::File::from(fd);
        use std::io::Write;
        f.write_all(b"payload").unwrap();
        m::add_seals(f.as_fd(), REQUIRED_SEALS).unwrap();
        assert_eq!(
            m::get_seals(f.as_fd()).unwrap() & REQUIRED_SEALS,
            REQUIRED_SEALS
        );
        assert!(f.write_all(b"x").is_err());
        assert!(f.set_len(1).is_err());
        assert!(m::add_seals(f.as_fd(), m::F_SEAL_FUTURE_WRITE).is_err());
    }
}
