//! The container's own processes in a cgroup sealrun only joined.
//!
//! A cgroup sealrun created for a container holds nothing but the container's processes, so
//! `kill --all`, `delete --force` and a failed create may signal all of it (runc's semantics).
//! A cgroup it only joined (the config named an existing one) may hold anyone's processes:
//! there sealrun reaches only the container's init and, when the init is pid 1 of a pid
//! namespace of its own, the processes of that namespace found in the cgroup itself (never in
//! its sub-cgroups). Every process is held by a pidfd while it is checked and signalled, so a
//! recycled pid is never hit.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::fs::read;
use crate::error::{Error, Result};
use crate::sys;

/// The container's init, held by a pidfd.
#[derive(Debug)]
pub struct Init {
    pid: Pid,
    pidfd: OwnedFd,
}

impl Init {
    /// Hold `pid` by a pidfd; `None` when there is no such process. The caller checks that it
    /// is the right process (its start time) after this, so the pidfd holds that one.
    pub fn open(pid: Pid) -> Option<Init> {
        let pidfd = sys::process::pidfd_open(pid).ok()?;
        Some(Init { pid, pidfd })
    }

    /// Its host pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }
}

/// `(device, inode)` of a process's pid namespace.
fn pid_ns(pid: Pid) -> Option<(u64, u64)> {
    let m = std::fs::metadata(format!("/proc/{pid}/ns/pid")).ok()?;
    Some((m.dev(), m.ino()))
}

/// Whether `NSpid` of `/proc/<pid>/status` says the process is pid 1 of a namespace below
/// ours: then the namespace is its own (sealrun created it for the container; a joined one
/// already had its pid 1).
fn is_namespace_init(status: &str) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|v| {
            let ids: Vec<&str> = v.split_whitespace().collect();
            ids.len() >= 2 && ids.last() == Some(&"1")
        })
        .unwrap_or(false)
}

/// The pid namespace that is the container's own: the init's, if the init is its pid 1.
/// Checked while the pidfd says the init is still there, so /proc showed the init.
fn own_pid_ns(init: &Init) -> Result<Option<(u64, u64)>> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", init.pid));
    let ns = pid_ns(init.pid);
    if !alive(init.pidfd.as_fd())? {
        return Ok(None);
    }
    Ok(match status {
        Ok(s) if is_namespace_init(&s) => ns,
        _ => None,
    })
}

fn alive(fd: std::os::fd::BorrowedFd<'_>) -> Result<bool> {
    sys::process::pidfd_is_alive(fd).map_err(|e| Error::os("pidfd_send_signal 0", None, e))
}

fn signal(fd: std::os::fd::BorrowedFd<'_>, pid: Pid, sig: Signal) {
    match sys::process::pidfd_send_signal(fd, sig) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => crate::log::warn(&format!("kill {pid}: {}", crate::error::errno_text(e))),
    }
}

/// The container's processes in the joined cgroup `dir` other than the init, each held by a
/// pidfd: those in the init's own pid namespace; none when the init has no namespace of its
/// own.
fn members(dir: &Path, init: &Init) -> Result<Vec<(Pid, OwnedFd)>> {
    let Some(ns) = own_pid_ns(init)? else {
        return Ok(Vec::new());
    };
    let procs = match read(&dir.join("cgroup.procs")) {
        Ok(text) => text,
        Err(e) if e.errno() == Some(Errno::ENOENT) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        let pid = Pid::from_raw(pid);
        if pid == init.pid {
            continue;
        }
        let Ok(fd) = sys::process::pidfd_open(pid) else {
            continue;
        };
        if pid_ns(pid) == Some(ns) && alive(fd.as_fd())? {
            out.push((pid, fd));
        }
    }
    Ok(out)
}

/// Signal the container's own processes in the joined cgroup `dir` (see the module doc); with
/// no live init there is nothing of the container's left to reach (a pid namespace dies with
/// its init).
pub(super) fn kill_joined(dir: &Path, init: Option<&Init>, sig: Signal) -> Result<()> {
    let Some(init) = init else { return Ok(()) };
    for (pid, fd) in members(dir, init)? {
        signal(fd.as_fd(), pid, sig);
    }
    signal(init.pidfd.as_fd(), init.pid, sig);
    Ok(())
}

/// The container's processes in the joined cgroup `dir`, the init first.
pub(super) fn pids_joined(dir: &Path, init: Option<&Init>) -> Result<Vec<Pid>> {
    let Some(init) = init else {
        return Ok(Vec::new());
    };
    if !alive(init.pidfd.as_fd())? {
        return Ok(Vec::new());
    }
    let mut out = vec![init.pid];
    out.extend(members(dir, init)?.into_iter().map(|(p, _)| p));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pid_one_of_a_nested_namespace_has_its_own() {
        assert!(is_namespace_init("Name:\tsleep\nNSpid:\t4242\t1\n"));
        assert!(is_namespace_init("NSpid:\t4242\t17\t1\n"));
        // In the runtime's own namespace (the host's init, or a process sharing it).
        assert!(!is_namespace_init("NSpid:\t1\n"));
        assert!(!is_namespace_init("NSpid:\t4242\n"));
        // In a joined namespace whose pid 1 is someone else.
        assert!(!is_namespace_init("NSpid:\t4242\t7\n"));
        assert!(!is_namespace_init("Name:\tx\n"));
    }

    #[test]
    fn a_process_outside_any_namespace_of_its_own_has_no_members() {
        // This test process: pid 1 of nothing, so only the init itself would be reached.
        let me = Init::open(sys::process::getpid()).expect("pidfd of ourselves");
        assert_eq!(own_pid_ns(&me).unwrap(), None);
        assert!(members(Path::new("/nonexistent"), &me).unwrap().is_empty());
    }
}
