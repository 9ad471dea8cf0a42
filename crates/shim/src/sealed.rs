//! One sealed copy of the shim binary per node, for the processes that enter containers.
//!
//! CVE-2019-5736 is a container reaching the runtime's binary through `/proc/<pid>/exe` of a
//! runtime process it can see (its init before `execve`, an exec helper, or the runtime
//! re-executed through a `#!/proc/self/exe` interpreter) and writing to it. Only the workers'
//! clones enter containers (the init and exec helpers), but every process of the serving shim
//! runs from a copy no one can write: a memfd sealed against writes, growth, shrinking,
//! exec-bit changes and further seals. The serving shim executes itself again from it at
//! start-up, and starts each worker from it (see `worker`), so whatever a container can reach
//! of the shim is the sealed copy. (A container sharing the host's PID namespace with
//! CAP_SYS_PTRACE can ptrace the shim: the Go shim is in the same place.)
//!
//! Every shim on the node shares one copy (its pages are mapped by all of them): a new shim
//! looks for a running process whose executable is such a copy and uses it only when it is,
//! checked on the very descriptor that is executed afterwards, a tmpfs (memfd) file carrying
//! every seal, exec bits included, with content byte for byte its own binary. A sealed file can
//! never change, so who made it does not matter (setuid bits and file capabilities are never
//! honoured on the kernel's internal memfd mount); only when no such copy runs does the shim
//! make one.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
use nix::sys::statfs::{fstatfs, TMPFS_MAGIC};

use sealrun::selfexe::REQUIRED_SEALS;

/// The memfd's name, as `/proc/<pid>/exe` shows it (`/memfd:NAME (deleted)`).
pub const NAME: &str = "containerd-shim-sealrun-v2-sealed";
/// `F_SEAL_EXEC` (Linux 6.3): the mode's exec bits can no longer change.
const F_SEAL_EXEC: i32 = 0x20;
/// `MFD_EXEC` (Linux 6.3): executable even where `vm.memfd_noexec` defaults otherwise.
const MFD_EXEC: u32 = 0x10;
/// Candidates of our length compared before making a copy of our own (bounds the cost of
/// look-alikes).
const MAX_CANDIDATES: usize = 8;

/// The serving shim's executable: the node's sealed copy of our own binary, found or made.
pub fn worker_exe() -> std::io::Result<OwnedFd> {
    let own = File::open("/proc/self/exe")?;
    if let Some(found) = find_shared(&own, NAME) {
        return Ok(found);
    }
    make_copy(&own)
}

/// Whether `fd` is a memfd carrying every required seal (its content can never change).
pub fn is_sealed(fd: &impl AsFd) -> bool {
    seals(fd).is_some_and(|s| s & REQUIRED_SEALS == REQUIRED_SEALS)
}

fn seals(fd: &impl AsFd) -> Option<i32> {
    fcntl(fd.as_fd().as_raw_fd(), FcntlArg::F_GET_SEALS).ok()
}

/// A running process's copy named `name` that [`shareable`] accepts against `own`.
fn find_shared(own: &File, name: &str) -> Option<OwnedFd> {
    let want = format!("/memfd:{name} (deleted)");
    let own_len = own.metadata().ok()?.len();
    let mut compared = 0;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = entry.file_name();
        if !pid.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        let exe = Path::new("/proc").join(&pid).join("exe");
        if std::fs::read_link(&exe).ok().as_deref() != Some(Path::new(&want)) {
            continue;
        }
        // Copies of another version (the shims of before an upgrade) differ in length: only
        // the comparisons of whole contents are bounded.
        let Some(f) =
            open_candidate(&exe).filter(|f| f.metadata().is_ok_and(|m| m.len() == own_len))
        else {
            continue;
        };
        if shareable(own, &f, true) {
            return Some(f.into());
        }
        compared += 1;
        if compared >= MAX_CANDIDATES {
            break;
        }
    }
    None
}

/// Opens `exe` (a `/proc/<pid>/exe` link) for reading, but only once it is known to be a
/// regular file on tmpfs: opened by path only first (which runs no file system's `open`, so a
/// look-alike on FUSE cannot stall us), then reopened through our own descriptor, which names
/// the same file whatever happens to the process or the link meanwhile.
fn open_candidate(exe: &Path) -> Option<File> {
    let path_only = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(exe)
        .ok()?;
    let on_tmpfs = fstatfs(&path_only).is_ok_and(|s| s.filesystem_type() == TMPFS_MAGIC);
    if !on_tmpfs || !path_only.metadata().is_ok_and(|m| m.is_file()) {
        return None;
    }
    File::open(format!("/proc/self/fd/{}", path_only.as_raw_fd())).ok()
}

/// Whether `copy` may be executed in place of `own`: a regular tmpfs file sealed against
/// writes, growth, shrinking and further seals (and exec-bit changes, `need_exec_seal`; a copy
/// someone else made must have it, or its maker could take the exec bits away), executable,
/// and byte for byte `own`. Sealed is checked first, so the content compared is the content
/// executed.
fn shareable(own: &File, copy: &File, need_exec_seal: bool) -> bool {
    let Some(s) = seals(copy) else {
        return false;
    };
    if s & REQUIRED_SEALS != REQUIRED_SEALS || (need_exec_seal && s & F_SEAL_EXEC == 0) {
        return false;
    }
    let on_tmpfs = fstatfs(copy).is_ok_and(|s| s.filesystem_type() == TMPFS_MAGIC);
    let executable = copy
        .metadata()
        .is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0);
    on_tmpfs && executable && same_content(own, copy).unwrap_or(false)
}

/// Byte-for-byte equality of two files, read from their starts.
fn same_content(a: &File, b: &File) -> std::io::Result<bool> {
    let (len, len_b) = (a.metadata()?.len(), b.metadata()?.len());
    if len != len_b {
        return Ok(false);
    }
    // Positioned reads: `a` is read again for the next candidate and by `make_copy`.
    let mut off = 0u64;
    let (mut ba, mut bb) = (vec![0u8; 64 << 10], vec![0u8; 64 << 10]);
    while off < len {
        let n = a.read_at(&mut ba, off)?;
        if n == 0 {
            return Ok(false);
        }
        b.read_exact_at(&mut bb[..n], off)?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
        off += n as u64;
    }
    Ok(true)
}

/// Copies `own` into a new memfd, seals it and checks the result as a found copy is checked
/// (where the kernel has no `F_SEAL_EXEC`, the copy is ours alone and other shims will not
/// take it).
fn make_copy(own: &File) -> std::io::Result<OwnedFd> {
    let flags = MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING;
    let name = std::ffi::CString::new(NAME).map_err(std::io::Error::other)?;
    let fd = match memfd_create(&name, flags | MemFdCreateFlag::from_bits_retain(MFD_EXEC)) {
        Err(nix::errno::Errno::EINVAL) => memfd_create(&name, flags),
        other => other,
    }?;
    let mut dst = File::from(fd);
    let mut src = own.try_clone()?;
    // std copies file to file in the kernel (copy_file_range or sendfile).
    std::io::copy(&mut src, &mut dst)?;
    let required = SealFlag::from_bits_retain(REQUIRED_SEALS);
    let with_exec = required | SealFlag::from_bits_retain(F_SEAL_EXEC);
    match fcntl(dst.as_raw_fd(), FcntlArg::F_ADD_SEALS(with_exec)) {
        Err(nix::errno::Errno::EINVAL) => fcntl(dst.as_raw_fd(), FcntlArg::F_ADD_SEALS(required)),
        other => other,
    }?;
    if !shareable(own, &dst, false) {
        return Err(std::io::Error::other(
            "the sealed copy is not sealed, executable or identical to the binary",
        ));
    }
    Ok(dst.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Child, Command};

    /// A memfd named `name` holding `content` with `seals` added (0: none).
    fn memfd(name: &str, content: &[u8], seals: i32) -> File {
        let flags = MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING;
        let name = std::ffi::CString::new(name).unwrap();
        let mut f = File::from(memfd_create(&name, flags).unwrap());
        f.write_all(content).unwrap();
        nix::sys::stat::fchmod(
            f.as_raw_fd(),
            nix::sys::stat::Mode::from_bits_truncate(0o755),
        )
        .unwrap();
        if seals != 0 {
            fcntl(
                f.as_raw_fd(),
                FcntlArg::F_ADD_SEALS(SealFlag::from_bits_retain(seals)),
            )
            .unwrap();
        }
        f
    }

    /// `sleep 600` executed from `f`, so that `/proc/<pid>/exe` names it.
    fn run_from(f: &File) -> Child {
        Command::new(format!("/proc/self/fd/{}", f.as_raw_fd()))
            .arg("600")
            .spawn()
            .unwrap()
    }

    fn sleep_binary() -> (File, Vec<u8>) {
        let path = ["/bin/sleep", "/usr/bin/sleep"]
            .into_iter()
            .find(|p| Path::new(p).is_file())
            .expect("no sleep binary");
        (File::open(path).unwrap(), std::fs::read(path).unwrap())
    }

    fn same_file(a: &OwnedFd, b: &File) -> bool {
        let (a, b) = (
            nix::sys::stat::fstat(a.as_raw_fd()).unwrap(),
            b.metadata().unwrap(),
        );
        a.st_dev == b.dev() && a.st_ino == b.ino()
    }

    /// Only a copy that is sealed (exec bits too) and identical is shared; a look-alike that
    /// runs under the same name but is writable, lacks the exec seal, or differs by one byte
    /// is passed over, and a good one is found and shared (the same file, not a new copy).
    #[test]
    fn only_a_sealed_identical_copy_is_shared() {
        let name = format!("sealrun-shim-test-{}", std::process::id());
        let (own, content) = sleep_binary();
        let all = REQUIRED_SEALS | F_SEAL_EXEC;
        let mut other = content.clone();
        let last = other.len() - 1;
        other[last] ^= 1;
        let bad = [
            memfd(&name, &content, 0),
            memfd(&name, &content, REQUIRED_SEALS),
            memfd(&name, &other, all),
        ];
        // `spawn` returns once the child has executed its memfd.
        let mut children: Vec<Child> = bad.iter().map(run_from).collect();
        assert!(
            find_shared(&own, &name).is_none(),
            "a look-alike was shared"
        );

        let good = memfd(&name, &content, all);
        children.push(run_from(&good));
        let found = find_shared(&own, &name);
        for mut c in children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let found = found.expect("the sealed identical copy was not found");
        assert!(
            same_file(&found, &good),
            "found another file than the good copy"
        );
    }

    /// Our own copy carries every seal and is our binary.
    #[test]
    fn made_copy_is_sealed_and_identical() {
        let (own, _) = sleep_binary();
        let copy = File::from(make_copy(&own).unwrap());
        assert!(is_sealed(&copy));
        assert!(shareable(&own, &copy, true), "not shareable (F_SEAL_EXEC?)");
        assert!(
            (&copy).write_all(b"x").is_err(),
            "a sealed copy took a write"
        );
    }
}
