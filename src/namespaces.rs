//! Namespaces, the actions: joining by path and writing user-namespace id maps. The kinds and
//! the decision of which to create or join are pure and live in `crate::spec::namespaces`.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::error::{Context, Error, Result};
use crate::spec::rootless::IdMapWriters;
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

/// Create a time namespace for our children (and for us at our next `execve`) and set its
/// clock offsets `(clock, secs, nanosecs)`, before any process is in it (the kernel allows
/// them only then). Needs CAP_SYS_ADMIN and CAP_SYS_TIME in our user namespace, which owns it.
pub(crate) fn unshare_time(offsets: &[(String, i64, u32)]) -> Result<()> {
    sys::process::unshare(NsKind::Time.clone_flag()).op("unshare time namespace")?;
    let text: String = offsets
        .iter()
        .map(|(clock, s, ns)| format!("{clock} {s} {ns}\n"))
        .collect();
    if !text.is_empty() {
        let path = Path::new("/proc/self/timens_offsets");
        std::fs::write(path, text).op_path("write", path)?;
    }
    Ok(())
}

/// `setns` into a namespace given by path.
pub(crate) fn join(kind: NsKind, path: &Path) -> Result<()> {
    let fd = open_ns(path)?;
    sys::process::setns(
        fd.as_fd(),
        CloneFlags::from_bits_retain(kind.clone_flag() as i32),
    )
    .op_path(&format!("setns {}", kind.spec_name()), path)
}

/// Write `/proc/<pid>/uid_map` and `gid_map` (lines "inside outside count"), directly or through
/// the helpers `writers` names (rootless, more than the caller's own id). A rootless direct
/// `gid_map` write needs `setgroups` denied first.
pub(crate) fn write_id_maps(
    pid: Pid,
    uid_maps: &[crate::spec::IdMap],
    gid_maps: &[crate::spec::IdMap],
    writers: &IdMapWriters,
) -> Result<()> {
    write_map(pid, "uid_map", uid_maps, writers.newuidmap.as_deref())?;
    if writers.setgroups_denied && !gid_maps.is_empty() {
        let path = PathBuf::from(format!("/proc/{pid}/setgroups"));
        std::fs::write(&path, "deny").op_path("write", &path)?;
    }
    write_map(pid, "gid_map", gid_maps, writers.newgidmap.as_deref())
}

fn write_map(
    pid: Pid,
    name: &str,
    maps: &[crate::spec::IdMap],
    helper: Option<&Path>,
) -> Result<()> {
    if maps.is_empty() {
        return Ok(());
    }
    if let Some(helper) = helper {
        return run_helper(helper, pid, maps);
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
    f.write_all(text.as_bytes()).op_path("write", &path)
}

/// `newuidmap PID inside outside count ...` (or newgidmap): the setuid helper checks the
/// ranges against /etc/subuid (subgid) and writes the map.
fn run_helper(helper: &Path, pid: Pid, maps: &[crate::spec::IdMap]) -> Result<()> {
    let mut cmd = std::process::Command::new(helper);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([
            m.container_id.to_string(),
            m.host_id.to_string(),
            m.size.to_string(),
        ]);
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .map_err(|e| Error::Other(format!("{}: {e}", helper.display())))?;
    if out.status.success() {
        return Ok(());
    }
    let why = String::from_utf8_lossy(&out.stderr);
    Err(Error::Other(format!(
        "{} failed ({}): {}",
        helper.display(),
        out.status,
        why.lines().next().unwrap_or("no message").trim()
    )))
}
