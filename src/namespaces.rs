//! Namespaces, the actions: joining by path and writing user-namespace id maps. The kinds and
//! the decision of which to create or join are pure and live in `crate::spec::namespaces`.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::error::{Context, Result};
use crate::sys;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::unistd::Pid;

pub use crate::spec::namespaces::{Namespaces, NsKind};

/// Open a namespace file (`setns` then checks it is of the kind asked for).
pub fn open_ns(path: &Path) -> Result<std::os::fd::OwnedFd> {
    let fd = sys::fd::open(path, OFlag::O_RDONLY, Mode::empty()).op_path("open namespace", path)?;
    Ok(fd)
}

/// `setns` into a namespace given by path.
pub fn join(kind: NsKind, path: &Path) -> Result<()> {
    let fd = open_ns(path)?;
    sys::process::setns(
        fd.as_fd(),
        CloneFlags::from_bits_retain(kind.clone_flag() as i32),
    )
    .op_path(&format!("setns {}", kind.spec_name()), path)
}

/// Write `/proc/<pid>/uid_map` and `gid_map` (lines "inside outside count").
pub fn write_id_maps(
    pid: Pid,
    uid_maps: &[crate::spec::IdMap],
    gid_maps: &[crate::spec::IdMap],
) -> Result<()> {
    for (name, maps) in [("uid_map", uid_maps), ("gid_map", gid_maps)] {
        if maps.is_empty() {
            continue;
        }
        let text: String = maps
            .iter()
            .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
            .collect();
        let path = PathBuf::from(format!("/proc/{pid}/{name}"));
        let mut f = File::options()
            .write(true)
            .open(&path)
            .op_path("open", &path)?;
        f.write_all(text.as_bytes()).op_path("write", &path)?;
    }
    Ok(())
}
