//! `start`, `state`, `kill`, `delete`, `list`.

use std::os::fd::AsFd;
use std::str::FromStr;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

use super::state::{ContainerDir, StateFile, Status, AUDIT_FILE, PLAN_FILE, START_SOCKET};
use super::Runtime;
use crate::cgroups::Init;
use crate::error::{Context, Error, Result};
use crate::hooks::{self, HookKind};
use crate::sys;

fn wrong_state(dir: &ContainerDir, status: Status, reason: &str) -> Error {
    Error::WrongState {
        id: dir.id().to_string(),
        status: status.as_str().to_string(),
        reason: reason.to_string(),
    }
}

/// `start`: release a created container's init to execve its process.
pub fn start(rt: &Runtime, id: &str) -> Result<()> {
    start_container(rt, id)
}

pub(super) fn start_container(rt: &Runtime, id: &str) -> Result<()> {
    let dir = rt.root.open(id)?;
    let st = dir.load()?;
    let status = dir.status(&st);
    if status != Status::Created {
        return Err(wrong_state(
            &dir,
            status,
            "cannot start a container that is not created",
        ));
    }
    let conn = sys::socket::connect_unix(&dir.short_path(START_SOCKET))
        .op_path("connect", &dir.path().join(START_SOCKET))?;
    let reply = super::create::read_start_reply(conn)?;
    let _ = std::fs::remove_file(dir.path().join(START_SOCKET));
    if !reply.is_empty() {
        return Err(Error::Other(reply));
    }
    let hooks = load_hooks(&dir);
    let state = hooks::state_json(id, "running", st.pid, &st.bundle, &st.annotations);
    hooks::run_warn(HookKind::Poststart, &hooks, &state);
    Ok(())
}

/// The audit record of a container: what its process enforced, as it read it back at create
/// (`sealrun audit ID`).
pub fn audit(rt: &Runtime, id: &str) -> Result<crate::audit::AuditRecord> {
    rt.root.peek(id)?.load_json(AUDIT_FILE)
}

/// The `hooks` of the Plan `create` kept. Only that field is decoded: serde
/// skips the rest of the text (the seccomp profile alone is most of it) without building it.
fn load_hooks(dir: &ContainerDir) -> oci_spec::runtime::Hooks {
    #[derive(serde::Deserialize)]
    struct OnlyHooks {
        #[serde(default)]
        hooks: Option<oci_spec::runtime::Hooks>,
    }
    dir.load_json::<OnlyHooks>(PLAN_FILE)
        .ok()
        .and_then(|s| s.hooks)
        .unwrap_or_default()
}

/// The runtime-spec state object (runc's shape: also rootfs, created, owner).
fn state_object(st: &StateFile, status: Status) -> Value {
    let mut v = json!({
        "ociVersion": crate::OCI_VERSION,
        "id": st.id,
        "pid": if status == Status::Stopped { 0 } else { st.pid },
        "status": status.as_str(),
        "bundle": st.bundle,
        "rootfs": st.rootfs,
        "created": st.created,
        "owner": st.owner,
    });
    if !st.annotations.is_empty() {
        v["annotations"] = json!(st.annotations);
    }
    v
}

/// `state`: the runtime-spec state JSON.
pub fn state(rt: &Runtime, id: &str) -> Result<Value> {
    let dir = rt.root.peek(id)?;
    let st = dir.load()?;
    Ok(state_object(&st, dir.status(&st)))
}

/// One row of `list`.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct ListEntry {
    /// The state object.
    pub state: Value,
}

/// `list`: every container under `--root`.
pub fn list(rt: &Runtime) -> Result<Vec<ListEntry>> {
    Ok(rt
        .root
        .scan()?
        .into_iter()
        .map(|c| ListEntry {
            state: state_object(&c.state, c.status),
        })
        .collect())
}

/// Parse a signal: `TERM`, `SIGTERM`, `sigterm` or `15`.
pub fn parse_signal(s: &str) -> Result<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n)
            .map_err(|_| Error::InvalidArgument(format!("unknown signal {s:?}")));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| Error::InvalidArgument(format!("unknown signal {s:?}")))
}

/// `kill`: signal the container's process (or, with `all`, every process in its cgroup, even
/// when the container is stopped).
pub fn kill(rt: &Runtime, id: &str, signal: Signal, all: bool) -> Result<()> {
    let dir = rt.root.open(id)?;
    let st = dir.load()?;
    let status = dir.status(&st);
    if all {
        // As runc, also once the init has exited: what it left in a cgroup sealrun created (a
        // container sharing another's pid namespace) is still reached; containerd's shim
        // relies on it. In a joined cgroup only the container's own processes are; without a
        // cgroup (rootless), those of its pid namespace.
        return super::nocgroup::kill_all(&st, signal, container_init(&st).as_ref());
    }
    if status == Status::Stopped {
        return Err(wrong_state(&dir, status, "container not running"));
    }
    signal_pid(&st, signal)
}

/// `kill ID 0`: signal 0 sends nothing and only asks whether the container's process is
/// alive (runc accepts it; scripts use it as a liveness check). With `all`, as `kill --all`
/// reaches whatever is in the cgroup, it succeeds for a stopped container too.
pub fn kill_check(rt: &Runtime, id: &str, all: bool) -> Result<()> {
    let dir = rt.root.open(id)?;
    let st = dir.load()?;
    if all {
        return Ok(());
    }
    let status = dir.status(&st);
    if status == Status::Stopped {
        return Err(wrong_state(&dir, status, "container not running"));
    }
    live_pidfd(&st).map(drop)
}

/// The container's init held by a pidfd, if it still runs (same pid and start time).
pub(super) fn container_init(st: &StateFile) -> Option<Init> {
    // Open first, check after: the pidfd then holds the process that was checked.
    let init = Init::open(super::state::pid_of(st))?;
    super::state::process_alive(st.pid, st.pid_start_time).then_some(init)
}

/// Signal the init through a pidfd, after checking it is still the same process.
fn signal_pid(st: &StateFile, signal: Signal) -> Result<()> {
    let pidfd = live_pidfd(st)?;
    sys::process::pidfd_send_signal(pidfd.as_fd(), signal).op("kill")
}

/// A pidfd of the init, once it is known to be the same process the state recorded.
fn live_pidfd(st: &StateFile) -> Result<std::os::fd::OwnedFd> {
    let pid = super::state::pid_of(st);
    let pidfd = match sys::process::pidfd_open(pid) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ESRCH) => {
            return Err(Error::Other(
                "container not running: no such process".into(),
            ))
        }
        Err(e) => return Err(Error::os("pidfd_open", None, e)),
    };
    if !super::state::process_alive(st.pid, st.pid_start_time) {
        return Err(Error::Other(
            "container not running: no such process".into(),
        ));
    }
    Ok(pidfd)
}

/// `delete`: remove a stopped container (with `force`, kill it first).
pub fn delete(rt: &Runtime, id: &str, force: bool) -> Result<()> {
    match destroy(rt, id, force) {
        Err(Error::NotFound(_)) if force => {
            // Nothing (or only an unfinished directory) to remove.
            let leftover = rt.root.path().join(id);
            if super::state::validate_id(id).is_ok() && leftover.is_dir() {
                let _ = std::fs::remove_dir_all(leftover);
            }
            Ok(())
        }
        other => other,
    }
}

/// Stop what remains (if allowed), run poststop hooks, remove cgroup and state.
pub(super) fn destroy(rt: &Runtime, id: &str, force: bool) -> Result<()> {
    let mut dir = rt.root.open(id)?;
    let st = dir.load()?;
    let status = dir.status(&st);
    match status {
        Status::Stopped | Status::Created => {}
        Status::Running | Status::Paused if force => {}
        _ => {
            return Err(Error::WrongState {
                id: id.to_string(),
                status: status.as_str().to_string(),
                reason: format!("cannot delete container {id} that is not stopped (use --force)"),
            })
        }
    }
    let init = container_init(&st);
    if status != Status::Stopped {
        let _ = signal_pid(&st, Signal::SIGKILL);
    }
    super::nocgroup::kill_all(&st, Signal::SIGKILL, init.as_ref())?;
    if status == Status::Paused {
        let _ = st.cgroup.thaw();
    }
    wait_gone(&st, Duration::from_secs(10));
    st.cgroup.remove()?;
    let hooks = load_hooks(&dir);
    let state = hooks::state_json(id, "stopped", 0, &st.bundle, &st.annotations);
    hooks::run_warn(HookKind::Poststop, &hooks, &state);
    dir.remove()
}

/// Wait until the init has exited (it may not be our child: poll its pidfd) and the cgroup
/// is empty (a joined cgroup may keep others' processes: there only the init is waited for,
/// whose pid namespace dies with it).
fn wait_gone(st: &StateFile, limit: Duration) {
    let deadline = Instant::now() + limit;
    if let Ok(pidfd) = sys::process::pidfd_open(super::state::pid_of(st)) {
        if super::state::process_alive(st.pid, st.pid_start_time) {
            let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
            let ms = limit.as_millis().min(i32::MAX as u128) as i32;
            let _ = poll(
                &mut fds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
            );
        }
    }
    if !st.cgroup.owned() {
        return;
    }
    while Instant::now() < deadline {
        match st.cgroup.pids() {
            Ok(p) if p.is_empty() => return,
            Err(_) => return,
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_in_every_form() {
        assert_eq!(parse_signal("TERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("SIGKILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("sigusr1").unwrap(), Signal::SIGUSR1);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("99").is_err());
    }
}
