//! The sealed memfd self-copy (CVE-2019-5736).
//!
//! `create`, `run` and `exec` re-execute sealrun from a memfd filled by an in-kernel copy and
//! sealed against every change. Whatever a container does to `/proc/<runtime>/exe` then reaches
//! only that sealed, anonymous copy, never the binary on the host. "Already sealed" is detected
//! with `F_GET_SEALS` on our own executable, not with an environment variable, so nothing a
//! caller passes can make sealrun skip the copy.

use std::ffi::CString;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error::{Context, Error, Result};
use crate::sys::{self, memfd as m};

/// The seals sealrun requires (and `F_SEAL_EXEC` where the kernel has it).
pub const REQUIRED_SEALS: i32 =
    m::F_SEAL_SEAL | m::F_SEAL_SHRINK | m::F_SEAL_GROW | m::F_SEAL_WRITE;

/// How the running binary is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SealStatus {
    /// Running from a sealed memfd.
    Sealed,
    /// Switched off for a test (`--unsafe-disable selfexe`).
    Disabled,
}

impl SealStatus {
    /// The word the audit record uses (`sealed`, `disabled`).
    pub fn as_str(self) -> &'static str {
        match self {
            SealStatus::Sealed => "sealed",
            SealStatus::Disabled => "disabled",
        }
    }
}

/// The non-dumpable layer, decided here only: until it execs the container's program, no
/// process of the container may open a runtime process's `/proc/<pid>/exe` (CVE-2019-5736).
/// The parent sets it before cloning (clone inherits it, so the child is never dumpable for
/// an instruction); children set it again in case they were started otherwise.
pub fn set_nondumpable(layers: &crate::spec::Layers) -> Result<()> {
    if layers.no_nondumpable {
        return Ok(());
    }
    sys::process::set_dumpable(false).op("prctl PR_SET_DUMPABLE")
}

/// The seals on our own executable, or `None` when it is not a memfd.
pub fn current_seals() -> Result<Option<i32>> {
    let exe = sys::fd::open(Path::new("/proc/self/exe"), OFlag::O_RDONLY, Mode::empty())
        .op_path("open", Path::new("/proc/self/exe"))?;
    match m::get_seals(exe.as_fd()) {
        Ok(seals) => Ok(Some(seals)),
        Err(nix::errno::Errno::EINVAL) => Ok(None),
        Err(e) => Err(Error::os(
            "fcntl F_GET_SEALS",
            Some(Path::new("/proc/self/exe")),
            e,
        )),
    }
}

/// Make sure we run from a sealed copy: return if we already do, otherwise copy, seal and
/// re-execute ourselves with the same arguments and environment (does not return then).
pub fn ensure_sealed(disabled: bool) -> Result<SealStatus> {
    if disabled {
        return Ok(SealStatus::Disabled);
    }
    if let Some(seals) = current_seals()? {
        if seals & REQUIRED_SEALS == REQUIRED_SEALS {
            return Ok(SealStatus::Sealed);
        }
    }
    let exe_path = Path::new("/proc/self/exe");
    let exe = sys::fd::open(exe_path, OFlag::O_RDONLY, Mode::empty()).op_path("open", exe_path)?;
    let size = sys::fd::fstat(exe.as_fd())
        .op_path("fstat", exe_path)?
        .st_size as u64;
    let flags = m::MFD_CLOEXEC | m::MFD_ALLOW_SEALING;
    let memfd = match m::memfd_create(c"sealrun", flags | m::MFD_EXEC) {
        Err(nix::errno::Errno::EINVAL) => m::memfd_create(c"sealrun", flags),
        other => other,
    }
    .op("memfd_create")?;
    m::sendfile_all(memfd.as_fd(), exe.as_fd(), size).op("sendfile to memfd")?;
    match m::add_seals(memfd.as_fd(), REQUIRED_SEALS | m::F_SEAL_EXEC) {
        Err(nix::errno::Errno::EINVAL) => m::add_seals(memfd.as_fd(), REQUIRED_SEALS),
        other => other,
    }
    .op("fcntl F_ADD_SEALS")?;
    drop(exe);
    let args: Vec<CString> = std::env::args_os()
        .map(|a| {
            CString::new(a.as_bytes()).map_err(|_| Error::InvalidArgument("NUL in argument".into()))
        })
        .collect::<Result<_>>()?;
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
    let errno = sys::process::fexecve(memfd.as_fd(), &argv, &envp);
    Err(Error::os("fexecve sealed copy", None, errno))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_binary_is_not_a_memfd() {
        assert_eq!(current_seals().unwrap(), None);
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
