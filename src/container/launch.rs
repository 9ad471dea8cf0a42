//! The parent side of container creation: cgroup, sockets, clone, id maps, and the sync
//! conversation with the init until it is Ready.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::unistd::Pid;

use super::state::{ContainerDir, START_SOCKET};
use crate::cgroups::{Cgroup, Init};
use crate::error::{Context, Error, Result};
use crate::hooks::{self, HookKind};
use crate::init::{self, Channels};
use crate::namespaces::{self, NsKind};
use crate::spec::Plan;
use crate::sync::{Channel, Msg};
use crate::sys::{self, process::Forked};

/// A container whose init is set up and waiting for `start`.
#[derive(Debug)]
pub struct Launched {
    /// Host pid of the init.
    pub pid: Pid,
    /// The runtime's end of the sync channel (to send `Committed`).
    pub channel: Channel,
    /// The created cgroup.
    pub cgroup: Cgroup,
    /// What the init enforced on itself, as it read it back.
    pub enforced: crate::audit::Enforced,
}

/// Undoes a half-made container when dropped armed: kills what sealrun started (everything in
/// a cgroup it created; in a joined cgroup only the init and its pid namespace) and removes the
/// cgroup directories it created.
#[derive(Debug)]
pub struct Undo {
    pid: Option<Pid>,
    cgroup: Option<Cgroup>,
    armed: bool,
}

impl Undo {
    /// A new, armed guard.
    pub fn new() -> Undo {
        Undo {
            pid: None,
            cgroup: None,
            armed: true,
        }
    }

    /// Keep everything.
    pub fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Our own unreaped child: the pid cannot have been reused.
        let init = self.pid.and_then(Init::open);
        if let Some(cg) = &self.cgroup {
            let _ = cg.kill_all(Signal::SIGKILL, init.as_ref());
        }
        if let Some(pid) = self.pid {
            let _ = sys::process::kill(pid, Some(Signal::SIGKILL));
            let _ = sys::process::waitpid(pid, None);
        }
        if let Some(cg) = &self.cgroup {
            if let Err(e) = cg.destroy() {
                crate::log::warn(&format!("cleanup: {e}"));
            }
        }
    }
}

/// Joins a "for children" namespace (pid, time) for the duration of the clone, then goes
/// back, so hooks the runtime runs later stay in the runtime's namespaces.
pub(super) struct ForChildren {
    saved: Vec<(NsKind, OwnedFd)>,
}

/// Open our own `<kind>_for_children` namespace, to go back to it.
fn own_for_children(kind: NsKind) -> Result<(NsKind, OwnedFd)> {
    let own = Path::new("/proc/self/ns").join(format!("{}_for_children", kind.proc_name()));
    let fd = sys::fd::open(&own, OFlag::O_RDONLY, Mode::empty()).op_path("open", &own)?;
    Ok((kind, fd))
}

impl ForChildren {
    /// Join the pid and time namespaces in `flags` of the process `pidfd` refers to, for the
    /// duration of a clone (`exec`); dropping the guard goes back, so the caller's later
    /// children are born where they were before.
    pub(super) fn join_of(pidfd: BorrowedFd<'_>, flags: u64) -> Result<ForChildren> {
        let mut guard = ForChildren { saved: Vec::new() };
        for kind in [NsKind::Pid, NsKind::Time] {
            if flags & kind.clone_flag() != 0 {
                guard.saved.push(own_for_children(kind)?);
            }
        }
        if flags != 0 {
            sys::process::setns(pidfd, CloneFlags::from_bits_retain(flags as i32))
                .op("setns pid/time")?;
        }
        Ok(guard)
    }

    fn enter(plan: &Plan) -> Result<ForChildren> {
        let mut saved = Vec::new();
        let mut save = |kind: NsKind| -> Result<()> {
            saved.push(own_for_children(kind)?);
            Ok(())
        };
        for kind in [NsKind::Pid, NsKind::Time] {
            if let Some(path) = plan.namespaces.joins(kind) {
                save(kind)?;
                namespaces::join(kind, path)?;
            }
        }
        // Without privilege the init makes it, in the container's user namespace.
        if plan.namespaces.creates(NsKind::Time) && !plan.time_ns_in_userns {
            save(NsKind::Time)?;
            namespaces::unshare_time(&plan.time_offsets)?;
        }
        Ok(ForChildren { saved })
    }

    /// Close the saved descriptors without going back (the cloned child stays where it is).
    pub(super) fn stay(mut self) {
        self.saved.clear();
    }
}

impl Drop for ForChildren {
    fn drop(&mut self) {
        for (kind, fd) in self.saved.drain(..).rev() {
            let _ = sys::process::setns(
                fd.as_fd(),
                CloneFlags::from_bits_retain(kind.clone_flag() as i32),
            );
        }
    }
}

/// Create the cgroup, clone the init and drive it to Ready.
pub fn launch(
    plan: &Plan,
    dir: &ContainerDir,
    console: Option<OwnedFd>,
    undo: &mut Undo,
) -> Result<Launched> {
    let mut cgroup = plan.cgroup.clone();
    if !cgroup.is_none() {
        cgroup.create()?;
        undo.cgroup = Some(cgroup.clone());
        for ignored in cgroup.ignored_settings(&plan.resources) {
            crate::log::warn(&format!("{ignored} (ignored)"));
        }
        cgroup.apply(&plan.resources)?;
    }
    let (parent, child) = Channel::pair()?;
    let start = sys::socket::listen_unix(&dir.short_path(START_SOCKET))
        .op_path("listen", &dir.path().join(START_SOCKET))?;
    let cgroup_fd = cgroup.clone_into_fd()?;
    let two_stage = plan.namespaces.needs_two_stages();
    let flags = if two_stage {
        0
    } else {
        plan.namespaces.clone_flags()
    };
    // The init may be born in a pid namespace others can see (a joined one).
    crate::selfexe::set_nondumpable(&plan.opts.layers)?;
    let ns = ForChildren::enter(plan)?;
    let forked = sys::process::clone3(flags, cgroup_fd.as_ref().map(|f| f.as_fd())).op("clone3")?;
    let first = match forked {
        Forked::Child => {
            // Only the runtime goes back: setns to a time namespace moves the caller itself,
            // so the guard's restore would pull the init out of the container's namespace.
            ns.stay();
            drop(parent);
            init::main(
                plan,
                Channels {
                    sync: child,
                    start,
                    console,
                    close: vec![dir.raw_fd()],
                },
                two_stage,
            )
        }
        Forked::Parent(pid) => {
            drop(ns);
            pid
        }
    };
    undo.pid = Some(first);
    drop((child, start, console));
    // An unprivileged runtime writes them when the init asks (MapsPlease), dumpable.
    if !two_stage && plan.namespaces.creates(NsKind::User) && !plan.id_map_writers.unprivileged {
        namespaces::write_id_maps(first, &plan.uid_maps, &plan.gid_maps, &plan.id_map_writers)?;
    }
    if !init::cgroup::joins_itself(plan) {
        cgroup.add_process(first, cgroup_fd.is_some())?;
    }
    parent.send(&Msg::Go {
        pid: first.as_raw(),
    })?;
    let (pid, enforced) = converse(plan, &parent, first, two_stage, undo)?;
    Ok(Launched {
        pid,
        channel: parent,
        cgroup,
        enforced,
    })
}

/// Rootless: keep the cgroup hierarchies delegated to the caller and the resources they can
/// apply (see `cgroups::rootless`), before the init (which may join them itself) is cloned.
pub(super) fn restrict_cgroup(plan: &mut Plan) -> Result<()> {
    if !plan.rootless {
        return Ok(());
    }
    let path = Path::new("/proc/self/cgroup");
    let own = std::fs::read_to_string(path).op_path("read", path)?;
    let own = crate::cgroups::layout::parse_proc_cgroup(&own);
    let resources = plan.cgroup.restrict_to_delegated(
        &plan.resources,
        &own,
        nix::unistd::geteuid().as_raw(),
    )?;
    if let std::borrow::Cow::Owned(r) = resources {
        plan.resources = r;
    }
    Ok(())
}

/// The container's state as hooks and the seccomp agent see it while `create` runs: `status`
/// is `creating` for the agent (the process is being set up) and `created` for the prestart
/// and createRuntime hooks (the runtime-spec's lifecycle runs them after step 2, the
/// environment's creation, which is what `created` means; runc 1.1 says `creating`).
fn creating_state(plan: &Plan, pid: Pid, status: &str) -> serde_json::Value {
    hooks::state_json(
        &plan.id,
        status,
        pid.as_raw(),
        &plan.opts.bundle,
        &plan.annotations,
    )
}

/// Serve the init's requests until it is Ready; returns the init's pid and what it enforced.
fn converse(
    plan: &Plan,
    ch: &Channel,
    first: Pid,
    two_stage: bool,
    undo: &mut Undo,
) -> Result<(Pid, crate::audit::Enforced)> {
    let mut pid = first;
    let mut enforced = None;
    loop {
        let incoming = ch.recv()?;
        let Some(msg) = incoming.msg else {
            return Err(died(pid));
        };
        match msg {
            Msg::MapsPlease => {
                let who = Pid::from_raw(incoming.pid.unwrap_or(first.as_raw()));
                namespaces::write_id_maps(
                    who,
                    &plan.uid_maps,
                    &plan.gid_maps,
                    &plan.id_map_writers,
                )?;
                ch.send(&Msg::MapsDone)?;
            }
            Msg::Hello => {
                pid = Pid::from_raw(
                    incoming
                        .pid
                        .ok_or_else(|| Error::Other("sync: no credentials with Hello".into()))?,
                );
                undo.pid = Some(pid);
                // The first stage has forked the init and exits; reap it.
                if two_stage {
                    let _ = sys::process::waitpid(first, None);
                }
                ch.send(&Msg::Go { pid: pid.as_raw() })?;
            }
            Msg::RunHooks => {
                let state = creating_state(plan, pid, "created");
                hooks::run(HookKind::Prestart, &plan.hooks, &state)?;
                hooks::run(HookKind::CreateRuntime, &plan.hooks, &state)?;
                ch.send(&Msg::HooksDone)?;
            }
            Msg::SeccompListener => {
                let fd = incoming
                    .fds
                    .first()
                    .ok_or_else(|| Error::Other("sync: seccomp listener without fd".into()))?;
                let compiled = plan
                    .seccomp
                    .as_ref()
                    .ok_or_else(|| Error::Other("sync: unexpected seccomp listener".into()))?;
                let state = creating_state(plan, pid, "creating");
                crate::seccomp::forward_listener(compiled, &state, fd.as_fd())?;
                ch.send(&Msg::SeccompListenerSent)?;
            }
            // A runtime without privilege cannot enter the init's mount namespace, and reaches
            // no more than the init's root does: the init opens the sources itself.
            Msg::MountSourcesPlease if !nix::unistd::geteuid().is_root() => {
                ch.send(&Msg::MountSourcesDone)?;
            }
            Msg::MountSourcesPlease => {
                let who = Pid::from_raw(incoming.pid.unwrap_or(pid.as_raw()));
                send_mount_sources(plan, ch, who)?;
            }
            Msg::Enforced { report } => enforced = Some(parse_enforced(&report)?),
            Msg::Ready => {
                let enforced = enforced.ok_or_else(|| {
                    Error::Other("sync: Ready before the enforcement report".into())
                })?;
                return Ok((pid, enforced));
            }
            Msg::Failed {
                step,
                errno,
                message,
            } => {
                return Err(Error::Init {
                    step,
                    errno,
                    message,
                })
            }
            other => return Err(Error::Other(format!("sync: unexpected {other:?}"))),
        }
    }
}

/// Decode the child's enforcement report.
pub(super) fn parse_enforced(report: &str) -> Result<crate::audit::Enforced> {
    serde_json::from_str(report)
        .map_err(|e| Error::Other(format!("sync: bad enforcement report: {e}")))
}

/// Open the bind-mount sources in the init's mount namespace with the runtime's privileges and
/// pass them over, as runc does: in a user namespace the init's root has no access to host paths
/// owned by unmapped ids (podman's per-container files under a 0700 run root, for one). A source
/// that cannot be opened here is left to the init, which reports it.
fn send_mount_sources(plan: &Plan, ch: &Channel, who: Pid) -> Result<()> {
    use crate::spec::MountKind;
    let dir = OFlag::O_PATH | OFlag::O_DIRECTORY;
    let cwd = sys::fd::open(Path::new("."), dir, Mode::empty()).op("open cwd")?;
    let ours = sys::fd::open(
        Path::new("/proc/self/ns/mnt"),
        OFlag::O_RDONLY,
        Mode::empty(),
    )
    .op("open /proc/self/ns/mnt")?;
    let theirs_path = format!("/proc/{who}/ns/mnt");
    let theirs = sys::fd::open(Path::new(&theirs_path), OFlag::O_RDONLY, Mode::empty())
        .op_path("open", Path::new(&theirs_path))?;
    // The user namespaces of id-mapped mounts, made or opened from our own namespaces.
    let userns = plan
        .mounts
        .iter()
        .filter_map(|m| m.idmap.as_ref().map(|i| (m.index, i)))
        .map(|(index, i)| Ok((index, super::idmap::userns_for(i, who)?)))
        .collect::<Result<Vec<_>>>()?;
    let rootfs_userns = match plan.rootfs_idmap {
        true => Some(super::idmap::container_userns(who)?),
        false => None,
    };
    // Opened in the init's mount namespace, so that the init may bind-mount them there.
    sys::process::setns(theirs.as_fd(), CloneFlags::CLONE_NEWNS).op("setns init mount ns")?;
    let rootfs = rootfs_userns
        .map(|ns| super::idmap::mapped_rootfs(&plan.rootfs, &ns))
        .transpose();
    let opened: Result<Vec<(usize, OwnedFd)>> = plan
        .mounts
        .iter()
        .filter_map(|m| match (&m.kind, &m.idmap) {
            (MountKind::Bind { source, recursive }, Some(idmap)) => {
                let ns = userns
                    .iter()
                    .find(|(i, _)| *i == m.index)
                    .map(|(_, fd)| fd)?;
                Some(
                    super::idmap::mapped_tree(m, idmap, source, *recursive, ns)
                        .map(|fd| (m.index, fd)),
                )
            }
            (MountKind::Bind { source, .. }, None) => {
                sys::fd::open(source, OFlag::O_PATH, Mode::empty())
                    .ok()
                    .map(|fd| Ok((m.index, fd)))
            }
            _ => None,
        })
        .collect();
    // setns resets the working directory: back to the bundle (hooks and relative paths).
    sys::process::setns(ours.as_fd(), CloneFlags::CLONE_NEWNS).op("setns back")?;
    sys::fd::fchdir(cwd.as_fd()).op("fchdir back")?;
    if let Some(tree) = rootfs? {
        ch.send_with(&Msg::MountSource { index: -1 }, &[tree.as_fd()])?;
    }
    for (index, fd) in &opened? {
        let index = i32::try_from(*index).map_err(|_| Error::Other("too many mounts".into()))?;
        ch.send_with(&Msg::MountSource { index }, &[fd.as_fd()])?;
    }
    ch.send(&Msg::MountSourcesDone)
}

/// The init vanished without a word: say how it ended.
fn died(pid: Pid) -> Error {
    use sys::process::WaitStatus;
    let how = match sys::process::waitpid(pid, None) {
        Ok(WaitStatus::Exited(_, code)) => format!("exited with status {code}"),
        Ok(WaitStatus::Signaled(_, sig, _)) => format!("was killed by {sig}"),
        _ => "disappeared".to_string(),
    };
    Error::Other(format!("container init {how} before it was ready"))
}
