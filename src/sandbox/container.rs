//! [`Container`]: the library side of the helper protocol for one container.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ChildStderr, ChildStdin, ChildStdout, ExitStatus};
use std::sync::{Arc, Mutex, MutexGuard};

use super::builder::Listener;
use super::process::{ExecBuilder, Process};
use super::wire::{self, Reply, Request};
use super::{Settings, State};
use crate::audit::AuditRecord;
use crate::error::{Context, Error, Result};
use crate::sys;

/// What a [`Container`] and its [`Process`]es share: the helper and its connection.
#[derive(Debug)]
pub(super) struct Inner {
    pub(super) settings: Arc<Settings>,
    pub(super) id: String,
    pub(super) pid: i32,
    /// The control connection; `None` once deleted.
    pub(super) ctl: Mutex<Option<OwnedFd>>,
    pub(super) helper: Mutex<Option<std::process::Child>>,
    pub(super) stdin: Mutex<Option<ChildStdin>>,
    pub(super) stdout: Mutex<Option<ChildStdout>>,
    pub(super) stderr: Mutex<Option<ChildStderr>>,
    pub(super) notify: Mutex<Option<OwnedFd>>,
    pub(super) pty: Mutex<Option<OwnedFd>>,
    pub(super) listener: Option<Listener>,
}

/// Lock, whatever a panicking thread left behind.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    /// One request on the control connection, under its lock.
    fn request(&self, req: &Request, fds: &[BorrowedFd<'_>]) -> Result<(Reply, Vec<OwnedFd>)> {
        let ctl = lock(&self.ctl);
        let ctl = ctl
            .as_ref()
            .ok_or_else(|| Error::NotFound(self.id.clone()))?;
        exchange(ctl.as_fd(), req, fds, &self.id)
    }

    fn ok(&self, req: &Request) -> Result<()> {
        match self.request(req, &[])?.0 {
            Reply::Ok => Ok(()),
            Reply::Error { error } => Err(error.into()),
            other => Err(Error::Other(format!("helper: unexpected {other:?}"))),
        }
    }

    /// Block until `pid` (the init when `None`) has exited, on a connection of its own so
    /// other threads keep using the container meanwhile.
    pub(super) fn wait(&self, pid: Option<i32>) -> Result<ExitStatus> {
        let (reply, mut fds) = self.request(&Request::Connect, &[])?;
        let conn = match reply {
            Reply::Ok if !fds.is_empty() => fds.remove(0),
            Reply::Error { error } => return Err(error.into()),
            other => return Err(Error::Other(format!("helper: unexpected {other:?}"))),
        };
        match exchange(conn.as_fd(), &Request::Wait { pid }, &[], &self.id)?.0 {
            Reply::Exited { status } => Ok(ExitStatus::from_raw(status)),
            Reply::Error { error } => Err(error.into()),
            other => Err(Error::Other(format!("helper: unexpected {other:?}"))),
        }
    }

    /// A pidfd of `pid` (the init when `None`) from the helper, which holds one for every
    /// live process it tracks, so it cannot name a recycled pid.
    pub(super) fn pidfd(&self, pid: Option<i32>) -> Result<OwnedFd> {
        match self.request(&Request::Pidfd { pid }, &[])? {
            (Reply::Ok, mut fds) if !fds.is_empty() => Ok(fds.remove(0)),
            (Reply::Error { error }, _) => Err(error.into()),
            (other, _) => Err(Error::Other(format!("helper: unexpected {other:?}"))),
        }
    }

    pub(super) fn kill(&self, signal: i32, all: bool, pid: Option<i32>) -> Result<()> {
        self.ok(&Request::Kill { signal, all, pid })
    }

    /// Close the control connection and reap the helper (which then cleans up).
    fn close(&self) {
        drop(lock(&self.ctl).take());
        if let Some(mut child) = lock(&self.helper).take() {
            let _ = child.wait();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.close();
    }
}

/// The descriptors a process's stdin, stdout and stderr are (theirs, in order), and the
/// caller's ends of the pipes among them (ours).
pub(super) fn stdio_fds(stdio: [super::Stdio; 3]) -> Result<([Option<OwnedFd>; 3], Vec<OwnedFd>)> {
    let mut ours: [Option<OwnedFd>; 3] = [None, None, None];
    let mut theirs = Vec::with_capacity(3);
    for (i, s) in stdio.into_iter().enumerate() {
        theirs.push(match s {
            super::Stdio::Inherit => {
                let fd = match i {
                    0 => std::io::stdin().as_fd().try_clone_to_owned(),
                    1 => std::io::stdout().as_fd().try_clone_to_owned(),
                    _ => std::io::stderr().as_fd().try_clone_to_owned(),
                };
                fd.op("dup")?
            }
            super::Stdio::Null => OwnedFd::from(
                File::options()
                    .read(true)
                    .write(true)
                    .open("/dev/null")
                    .op_path("open", Path::new("/dev/null"))?,
            ),
            super::Stdio::Pipe => {
                let (r, w) = sys::spawn::pipe().op("pipe")?;
                let (mine, container) = if i == 0 { (w, r) } else { (r, w) };
                ours[i] = Some(mine);
                container
            }
            super::Stdio::Fd(fd) => fd,
        });
    }
    Ok((ours, theirs))
}

fn exchange(
    conn: BorrowedFd<'_>,
    req: &Request,
    fds: &[BorrowedFd<'_>],
    id: &str,
) -> Result<(Reply, Vec<OwnedFd>)> {
    wire::send(conn, req, fds)?;
    wire::recv::<Reply>(conn)?
        .ok_or_else(|| Error::Other(format!("container {id}: the sealrun helper has exited")))
}

/// A created container, served by its helper process. Share it between threads (`&Container`
/// or `Arc<Container>`): every method takes `&self`, and [`wait`](Self::wait) blocks only its
/// own thread.
///
/// A `Container` that was not deleted is force-deleted when it and every [`Process`] exec'd
/// into it have been dropped (the helper sees its last connection close).
#[derive(Debug)]
pub struct Container {
    pub(super) inner: Arc<Inner>,
}

impl Container {
    /// The container id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The host pid of the container's process.
    pub fn pid(&self) -> i32 {
        self.inner.pid
    }

    /// A pidfd of the container's process (readable once it has exited): for event loops
    /// that poll rather than block in [`wait`](Self::wait). The exit status still comes from
    /// `wait` (the helper reaps the process).
    pub fn pidfd(&self) -> Result<OwnedFd> {
        self.inner.pidfd(None)
    }

    /// Run the container's process (it waits after `create` until this call).
    pub fn start(&self) -> Result<()> {
        self.inner.ok(&Request::Start)
    }

    /// Send `signal` (e.g. `libc::SIGTERM`) to the container's process.
    pub fn kill(&self, signal: i32) -> Result<()> {
        self.inner.kill(signal, false, None)
    }

    /// Send `signal` to every process of the container (its cgroup).
    pub fn kill_all(&self, signal: i32) -> Result<()> {
        self.inner.kill(signal, true, None)
    }

    /// Block until the container's process has exited; its exit status. May be called from
    /// any thread, any number of times.
    pub fn wait(&self) -> Result<ExitStatus> {
        self.inner.wait(None)
    }

    /// Freeze every process of the container.
    pub fn pause(&self) -> Result<()> {
        self.inner.ok(&Request::Pause)
    }

    /// Thaw a paused container.
    pub fn resume(&self) -> Result<()> {
        self.inner.ok(&Request::Resume)
    }

    /// Change the container's cgroup limits (as `sealrun update`; devices are not changed).
    pub fn update(&self, resources: oci_spec::runtime::LinuxResources) -> Result<()> {
        self.inner.ok(&Request::Update {
            resources: Box::new(resources),
        })
    }

    /// One sample of the container's cgroup statistics (CPU, memory, pids, block I/O).
    pub fn stats(&self) -> Result<crate::cgroups::stats::StatsData> {
        crate::container::stats_data(&super::runtime(&self.inner.settings), &self.inner.id)
    }

    /// The host pids of every process in the container.
    pub fn pids(&self) -> Result<Vec<i32>> {
        crate::container::pids(&super::runtime(&self.inner.settings), &self.inner.id)
    }

    /// The container's state.
    pub fn state(&self) -> Result<State> {
        super::state_of(&self.inner.settings, &self.inner.id)
    }

    /// What protects the container's process, as it read it back before it started.
    pub fn audit(&self) -> Result<AuditRecord> {
        crate::container::audit(&super::runtime(&self.inner.settings), &self.inner.id)
    }

    /// The caller's end of the stdin pipe ([`Stdio::Pipe`](crate::Stdio::Pipe)), once.
    pub fn take_stdin(&self) -> Option<ChildStdin> {
        lock(&self.inner.stdin).take()
    }

    /// The caller's end of the stdout pipe ([`Stdio::Pipe`](crate::Stdio::Pipe)), once.
    pub fn take_stdout(&self) -> Option<ChildStdout> {
        lock(&self.inner.stdout).take()
    }

    /// The caller's end of the stderr pipe ([`Stdio::Pipe`](crate::Stdio::Pipe)), once.
    pub fn take_stderr(&self) -> Option<ChildStderr> {
        lock(&self.inner.stderr).take()
    }

    /// The seccomp notify descriptor of the container's process
    /// ([`ContainerBuilder::seccomp_notify`](crate::ContainerBuilder::seccomp_notify)), once; `None` when its profile has no
    /// `SCMP_ACT_NOTIFY` rule.
    pub fn seccomp_notify_fd(&self) -> Option<OwnedFd> {
        lock(&self.inner.notify).take()
    }

    /// The master of the container process's pseudo-terminal
    /// ([`ContainerBuilder::terminal`](super::ContainerBuilder::terminal)), once.
    pub fn pty_master(&self) -> Option<OwnedFd> {
        lock(&self.inner.pty).take()
    }

    /// Run another process in the container.
    pub fn exec(&self, process: ExecBuilder) -> Result<Process> {
        let (ours, mut theirs) = stdio_fds(process.stdio)?;
        let console = match process.terminal {
            true => Some(Listener::bind(&self.inner.settings.root, "console")?),
            false => None,
        };
        let req = Request::Exec {
            args: process.args,
            env: process.env,
            cwd: process.cwd,
            user: process.user,
            console_socket: console.as_ref().map(|c| c.path.clone()),
            caps: process.caps,
            additional_gids: process.additional_gids,
            no_new_privs: process.no_new_privs,
        };
        theirs.extend(process.preserved);
        if theirs.len() > sys::socket::MAX_FDS {
            return Err(Error::InvalidArgument(format!(
                "exec: {} preserved descriptors: at most {}",
                theirs.len() - 3,
                sys::socket::MAX_FDS - 3
            )));
        }
        let borrowed: Vec<BorrowedFd<'_>> = theirs.iter().map(|f| f.as_fd()).collect();
        let (reply, _) = self.inner.request(&req, &borrowed)?;
        drop(theirs);
        let pid = match reply {
            Reply::Pid { pid } => pid,
            Reply::Error { error } => return Err(error.into()),
            other => return Err(Error::Other(format!("helper: unexpected {other:?}"))),
        };
        let notify = self.inner.listener.as_ref().and_then(|l| l.take_fd());
        let pty = console.as_ref().and_then(|l| l.take_fd());
        let [stdin, stdout, stderr] = ours;
        Ok(Process {
            inner: self.inner.clone(),
            pid,
            stdin: Mutex::new(stdin.map(ChildStdin::from)),
            stdout: Mutex::new(stdout.map(ChildStdout::from)),
            stderr: Mutex::new(stderr.map(ChildStderr::from)),
            notify: Mutex::new(notify),
            pty: Mutex::new(pty),
        })
    }

    /// Delete a stopped (or never started) container and end its helper.
    pub fn delete(&self) -> Result<()> {
        self.delete_with(false)
    }

    /// Kill whatever still runs in the container, then delete it.
    pub fn force_delete(&self) -> Result<()> {
        self.delete_with(true)
    }

    fn delete_with(&self, force: bool) -> Result<()> {
        self.inner.ok(&Request::Delete { force })?;
        self.inner.close();
        Ok(())
    }
}
