//! A container's processes, with or without a cgroup. A rootless container whose user has no
//! delegated cgroup has none: its processes are then those of its pid namespace (every process
//! whose `/proc/<pid>/ns/pid` is the init's), or the init alone when it shares the runtime's.

use std::os::unix::fs::MetadataExt;

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::state::{process_alive, StateFile};
use crate::cgroups::Init;
use crate::error::{Error, Result};
use crate::sys;

fn pid_ns(pid: &str) -> Option<(u64, u64)> {
    std::fs::metadata(format!("/proc/{pid}/ns/pid"))
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// Every process of the container: its cgroup's (see `Cgroup::container_pids`; `init` is
/// the container's init if it still runs), or (without one) its pid namespace's.
pub(super) fn pids(st: &StateFile, init: Option<&Init>) -> Result<Vec<Pid>> {
    if !st.cgroup.is_none() {
        return st.cgroup.container_pids(init);
    }
    if !process_alive(st.pid, st.pid_start_time) {
        return Ok(Vec::new());
    }
    let init = st.pid.to_string();
    let ns = pid_ns(&init);
    if ns.is_none() || ns == pid_ns("self") {
        return Ok(vec![Pid::from_raw(st.pid)]);
    }
    let mut out = Vec::new();
    let dir = std::fs::read_dir("/proc").map_err(|e| Error::Other(format!("/proc: {e}")))?;
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Ok(pid) = name.parse::<i32>() else {
            continue;
        };
        if pid_ns(name) == ns {
            out.push(Pid::from_raw(pid));
        }
    }
    Ok(out)
}

/// Signal every process of the container (`kill --all`, `delete`).
pub(super) fn kill_all(st: &StateFile, signal: Signal, init: Option<&Init>) -> Result<()> {
    if !st.cgroup.is_none() {
        return st.cgroup.kill_all(signal, init);
    }
    for pid in pids(st, init)? {
        match sys::process::kill(pid, Some(signal)) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => crate::log::warn(&format!("kill {pid}: {}", crate::error::errno_text(e))),
        }
    }
    Ok(())
}

/// The error for `pause`/`resume` of a container without a cgroup.
pub(super) fn no_freezer(id: &str) -> Error {
    Error::Unsupported(format!(
        "pause: container {id} has no cgroup (rootless, and no cgroup is delegated to this \
         user), so there is no freezer"
    ))
}
