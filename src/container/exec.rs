//! `exec`: run another process in a container, with the same hardening as its own process.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::unistd::Pid;

use super::state::{write_atomic, Status, PLAN_FILE};
use super::Runtime;
use crate::error::{Context, Error, Result};
use crate::hooks;
use crate::init::exec::ExecChannels;
use crate::namespaces::NsKind;
use crate::spec::{self, ExecOverrides, Layers, Plan};
use crate::sync::{Channel, Msg};
use crate::sys::{self, process::Forked};

/// Where the process comes from.
#[derive(Debug, Clone)]
pub enum ProcessSource {
    /// `--process FILE`: a runtime-spec process JSON.
    File(PathBuf),
    /// The argument form, over the container's own process.
    Args(ExecOverrides),
}

/// Options of `exec`. Start from [`ExecOptions::new`] and set fields: new fields may be added.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Container id.
    pub id: String,
    /// The process.
    pub process: ProcessSource,
    /// `--cap`.
    pub caps: Vec<String>,
    /// `--detach`.
    pub detach: bool,
    /// `--pid-file`.
    pub pid_file: Option<PathBuf>,
    /// `--console-socket`.
    pub console_socket: Option<PathBuf>,
    /// `--preserve-fds`.
    pub preserve_fds: u32,
    /// `--ignore-paused`.
    pub ignore_paused: bool,
    /// `--cgroup`: sub-cgroups of the container's to run in (`PATH` or `CTL[,CTL]:PATH`).
    pub cgroup: Vec<String>,
    /// Layers switched off (tests only).
    pub layers: Layers,
}

impl ExecOptions {
    /// Run `process` in container `id`, in the foreground, with nothing else set.
    pub fn new(id: impl Into<String>, process: ProcessSource) -> ExecOptions {
        ExecOptions {
            id: id.into(),
            process,
            caps: Vec::new(),
            detach: false,
            pid_file: None,
            console_socket: None,
            preserve_fds: 0,
            ignore_paused: false,
            cgroup: Vec::new(),
            layers: Layers::default(),
        }
    }
}

/// The namespaces of `pid` that differ from ours, as `CLONE_NEW*` flags.
fn differing_namespaces(pid: i32) -> u64 {
    NsKind::ALL
        .iter()
        .filter(|k| {
            let theirs = std::fs::metadata(format!("/proc/{pid}/ns/{}", k.proc_name()));
            let ours = std::fs::metadata(format!("/proc/self/ns/{}", k.proc_name()));
            match (theirs, ours) {
                (Ok(t), Ok(o)) => (t.dev(), t.ino()) != (o.dev(), o.ino()),
                _ => false,
            }
        })
        .fold(0, |acc, k| acc | k.clone_flag())
}

/// Run the process; returns its exit code (or 0 when detached).
pub fn exec(rt: &Runtime, opts: ExecOptions) -> Result<i32> {
    let dir = rt.root.open(&opts.id)?;
    let st = dir.load()?;
    match dir.status(&st) {
        Status::Running | Status::Created => {}
        Status::Paused if opts.ignore_paused => {}
        status => {
            return Err(Error::WrongState {
                id: opts.id.clone(),
                status: status.as_str().into(),
                reason: if status == Status::Stopped {
                    "container not running: cannot exec in a stopped container".into()
                } else {
                    "cannot exec in a paused container (use --ignore-paused)".into()
                },
            })
        }
    }
    // The container's Plan, as create decided it: nothing is re-derived from the config.
    let container: Plan = dir.load_json(PLAN_FILE)?;
    drop(dir);
    let process = match &opts.process {
        ProcessSource::File(path) => {
            let raw = std::fs::read(path).op_path("read process", path)?;
            let (process, ignored) = spec::process_from_json(&raw, &container)?;
            for i in &ignored {
                crate::log::warn(&format!("process.json: {}", i.warning()));
            }
            process
        }
        ProcessSource::Args(o) => spec::process_from_overrides(&container.process, o)?,
    };
    let plan = spec::exec_plan(
        &container,
        process,
        &opts.caps,
        opts.preserve_fds,
        opts.layers,
    )?;
    if plan.process.terminal && opts.console_socket.is_none() && opts.detach {
        return Err(Error::InvalidArgument(
            "a terminal with --detach needs --console-socket".into(),
        ));
    }
    let pidfd = sys::process::pidfd_open(Pid::from_raw(st.pid)).op("pidfd_open")?;
    if !super::state::process_alive(st.pid, st.pid_start_time) {
        return Err(Error::Other(
            "container not running: no such process".into(),
        ));
    }
    let flags = differing_namespaces(st.pid);
    // pid and time namespaces apply to children: enter them here, so the helper is born in them.
    // A runtime without privilege cannot (entering a pid namespace needs CAP_SYS_ADMIN in its
    // own user namespace too): the helper joins them with the user namespace, then forks.
    let for_children = if nix::unistd::geteuid().is_root() {
        flags & (NsKind::Pid.clone_flag() | NsKind::Time.clone_flag())
    } else {
        0
    };
    let ns = super::launch::ForChildren::join_of(pidfd.as_fd(), for_children)?;
    let (console, proxy) = match (&opts.console_socket, plan.process.terminal) {
        (Some(path), true) => (
            Some(sys::socket::connect_unix(path).op_path("connect console socket", path)?),
            None,
        ),
        (None, true) => {
            let (ours, theirs) = sys::socket::stream_pair().op("socketpair")?;
            (Some(theirs), Some(ours))
        }
        _ => (None, None),
    };
    let (parent, child) = Channel::pair()?;
    let (cgroup_tasks, cgroup_fd) = if opts.cgroup.is_empty() {
        (
            crate::init::cgroup::tasks_files(&st.cgroup),
            st.cgroup.clone_into_fd()?,
        )
    } else {
        let (tasks, v2) = crate::init::cgroup::exec_targets(&st.cgroup, &opts.cgroup)?;
        let fd = match v2 {
            Some(dir) => Some(
                sys::fd::open(&dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty())
                    .op_path("open cgroup", &dir)?,
            ),
            None => None,
        };
        (tasks, fd)
    };
    // The helper is born in the container's pid namespace: not dumpable for one instruction.
    crate::selfexe::set_nondumpable(&plan.layers)?;
    let first = match sys::process::clone3(0, cgroup_fd.as_ref().map(|f| f.as_fd())).op("clone3")? {
        Forked::Child => {
            ns.stay();
            drop(parent);
            crate::init::exec::main(
                &plan,
                ExecChannels {
                    sync: child,
                    console,
                    pidfd,
                    join: flags & !for_children,
                    cgroup_tasks,
                },
            )
        }
        Forked::Parent(pid) => pid,
    };
    // Back to our own pid/time namespaces for children: a later clone of the caller is not born
    // in this container.
    drop(ns);
    drop((child, console));
    let mut pid = first;
    let started = (|| -> Result<()> {
        parent.send(&Msg::Go {
            pid: first.as_raw(),
        })?;
        loop {
            let incoming = parent.recv()?;
            match incoming.msg {
                // The channel closes on execve: the process runs.
                None => return Ok(()),
                // The helper forked the process into the pid namespace it joined, and exits.
                Some(Msg::Hello) => {
                    pid =
                        Pid::from_raw(incoming.pid.ok_or_else(|| {
                            Error::Other("sync: no credentials with Hello".into())
                        })?);
                    let _ = sys::process::waitpid(first, None);
                }
                Some(Msg::SeccompListener) => {
                    let fd: &OwnedFd = incoming
                        .fds
                        .first()
                        .ok_or_else(|| Error::Other("sync: listener without fd".into()))?;
                    if let Some(c) = &plan.seccomp {
                        let state = hooks::state_json(
                            &opts.id,
                            "running",
                            st.pid,
                            &st.bundle,
                            &st.annotations,
                        );
                        crate::seccomp::forward_listener(c, &state, fd.as_fd())?;
                    }
                    parent.send(&Msg::SeccompListenerSent)?;
                }
                Some(Msg::Enforced { report }) => {
                    let enforced = super::launch::parse_enforced(&report)?;
                    let record = crate::audit::AuditRecord::for_exec(
                        &container,
                        &plan,
                        pid.as_raw(),
                        rt.seal.as_str(),
                        enforced,
                    );
                    super::create::log_audit("exec protections", &record);
                }
                Some(Msg::Failed {
                    step,
                    errno,
                    message,
                }) => {
                    return Err(Error::Exec {
                        step,
                        errno,
                        message,
                    })
                }
                Some(other) => return Err(Error::Other(format!("sync: unexpected {other:?}"))),
            }
        }
    })();
    if let Err(e) = started {
        let _ = sys::process::kill(pid, Some(nix::sys::signal::Signal::SIGKILL));
        let _ = sys::process::waitpid(pid, None);
        return Err(e);
    }
    if let Some(path) = &opts.pid_file {
        write_atomic(path, pid.as_raw().to_string().as_bytes())?;
    }
    if opts.detach {
        return Ok(0);
    }
    let master = match proxy {
        Some(sock) => Some(super::tty::receive_master(sock.as_fd())?),
        None => None,
    };
    super::tty::wait_forwarding(pid, master.as_ref())
}
