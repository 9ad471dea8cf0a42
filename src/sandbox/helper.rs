//! The helper process: the sealed sealrun binary started by the library (`sealrun __helper`)
//! with its control socket as its stdin; the first message (create) brings the container's
//! stdio, the helper's log and the preserved descriptors. It creates one container, stays its
//! parent (and child subreaper, so processes `exec` starts are reparented to it), reaps every
//! child, and serves the library's requests until `Delete`, or until the library's
//! connections are all closed (then it force-deletes the container). Forking, `setns` and
//! sealing happen here, never in the library's caller.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::wire::{self, Reply, Request, WireError};
use crate::container::{self, ExecOptions, ProcessSource, Runtime};
use crate::error::{Context, Error, Result};
use crate::spec::{CreateOptions, ExecOverrides, Layers};
use crate::sys::{self, process::Forked, process::WaitStatus};

/// Run the helper; returns its exit code. Called only by the `sealrun` binary for its hidden
/// `__helper --control-fd N` command (the library passes 0): it claims descriptor N as its
/// control socket and replaces its stdio. It does nothing (returns 2) unless the process runs
/// from sealrun's protected executable (the read-only overlay or the sealed copy), so no other
/// program can hand it its descriptors by mistake.
#[doc(hidden)]
pub fn helper_main(rt: Runtime, control_fd: i32) -> i32 {
    if control_fd < 0 || !crate::selfexe::running_protected() {
        return 2;
    }
    let Ok(mut fds) = sys::spawn::claim_inherited_fds(control_fd, control_fd + 1) else {
        return 2;
    };
    let Some(ctl) = fds.pop() else {
        return 2;
    };
    // Processes `exec` starts outlive their short-lived parent: they come to us.
    if sys::process::set_child_subreaper().is_err() {
        return 2;
    }
    let (ctl, first) = match receive_create(ctl) {
        Ok(got) => got,
        Err((ctl, e)) => {
            if let Some(ctl) = ctl {
                let _ = reply(&ctl, &Reply::Error { error: (&e).into() });
            }
            return 1;
        }
    };
    let mut helper = match Helper::create(rt, &ctl, first) {
        Ok(h) => h,
        Err(e) => {
            let _ = reply(&ctl, &Reply::Error { error: (&e).into() });
            return 1;
        }
    };
    helper.conns.push(ctl);
    helper.serve()
}

/// The create request and how many descriptors it preserves (now 3, 4, ...).
struct First {
    req: Request,
    /// The preserved descriptors, at 3, 4, ... (open until the init has its copies).
    preserved: Vec<OwnedFd>,
}

/// Receive the create request with its descriptors (stdin, stdout, stderr, the log, then the
/// preserved ones): the log becomes ours, the others our 0, 1, 2, 3, ... for the init to
/// inherit; the control socket moves above them. On failure, the control socket if it is
/// still ours, and the error.
fn receive_create(ctl: OwnedFd) -> std::result::Result<(OwnedFd, First), (Option<OwnedFd>, Error)> {
    let (req, mut fds) = match wire::recv::<Request>(ctl.as_fd()) {
        Ok(Some(got)) => got,
        Ok(None) => return Err((None, Error::Other("helper: no request".into()))),
        Err(e) => return Err((Some(ctl), e)),
    };
    if fds.len() < 4 {
        let e = Error::Other("helper: create needs stdio and log descriptors".into());
        return Err((Some(ctl), e));
    }
    crate::log::set_file(std::fs::File::from(fds.remove(3)));
    let count = i32::try_from(fds.len()).unwrap_or(i32::MAX);
    let placed =
        crate::log::move_above(count).and_then(|()| sys::spawn::install_fds(fds, vec![ctl]));
    match placed {
        Ok((preserved, mut kept)) => match kept.pop() {
            Some(ctl) => Ok((ctl, First { req, preserved })),
            None => Err((None, Error::Other("helper: lost the control socket".into()))),
        },
        Err(e) => Err((None, Error::os("install descriptors", None, e))),
    }
}

fn reply(conn: &OwnedFd, r: &Reply) -> Result<()> {
    wire::send(conn.as_fd(), r, &[])
}

struct Helper {
    rt: Runtime,
    id: String,
    /// A bundle the library generated, removed with the container.
    generated: Option<PathBuf>,
    init: i32,
    /// Live processes we report on (the init and exec'd ones), by pid.
    tracked: HashMap<i32, OwnedFd>,
    /// Raw wait statuses of tracked processes that have ended.
    statuses: HashMap<i32, i32>,
    conns: Vec<OwnedFd>,
    waiters: Vec<(i32, OwnedFd)>,
    execs: u64,
}

impl Helper {
    /// Create the container; `preserved` (descriptors 3..) become its process's 3.. and are
    /// closed here once it has them.
    fn create(rt: Runtime, ctl: &OwnedFd, first: First) -> Result<Helper> {
        let First { req, preserved } = first;
        let Request::Create {
            id,
            bundle,
            generated,
            no_pivot,
            no_new_keyring,
            console_socket,
            policy,
        } = req
        else {
            return Err(Error::Other(
                "helper: the first request must be create".into(),
            ));
        };
        let generated = generated.then(|| bundle.clone());
        // The operator policy is the program's value, or the helper's `--policy`
        // (Runtime::policy), as for `create`.
        let mut rt = rt;
        if let Some(p) = policy {
            rt.policy = *p;
        }
        let mut opts = CreateOptions::new(id.clone(), bundle);
        opts.console_socket = console_socket;
        opts.no_pivot = no_pivot;
        opts.no_new_keyring = no_new_keyring;
        opts.preserve_fds = u32::try_from(preserved.len()).unwrap_or(u32::MAX);
        let created = container::create(&rt, opts);
        // The init has its copies (cloned with our table); ours go.
        drop(preserved);
        if let Err(e) = created {
            remove_bundle(generated.as_deref());
            return Err(e);
        }
        let created = (|| -> Result<(i32, OwnedFd)> {
            let pid = container::state(&rt, &id)?["pid"].as_i64().unwrap_or(0) as i32;
            let pidfd = sys::process::pidfd_open(Pid::from_raw(pid)).op("pidfd_open init")?;
            // The init has its stdio now; ours must not keep the caller's pipes open.
            release_stdio()?;
            reply(ctl, &Reply::Pid { pid })?;
            Ok((pid, pidfd))
        })();
        let (pid, pidfd) = match created {
            Ok(p) => p,
            Err(e) => {
                let _ = container::delete(&rt, &id, true);
                remove_bundle(generated.as_deref());
                return Err(e);
            }
        };
        Ok(Helper {
            rt,
            id,
            generated,
            init: pid,
            tracked: HashMap::from([(pid, pidfd)]),
            statuses: HashMap::new(),
            conns: Vec::new(),
            waiters: Vec::new(),
            execs: 0,
        })
    }

    fn serve(mut self) -> i32 {
        loop {
            self.reap();
            if self.conns.is_empty() {
                // The library dropped the container (or its process died): clean up.
                let _ = container::delete(&self.rt, &self.id, true);
                remove_bundle(self.generated.as_deref());
                self.reap();
                return 0;
            }
            let ready = match self.poll() {
                Ok(r) => r,
                Err(_) => continue,
            };
            for i in ready.into_iter().rev() {
                let conn = self.conns.remove(i);
                match wire::recv::<Request>(conn.as_fd()) {
                    Ok(Some((req, fds))) => {
                        if let Some(code) = self.handle(req, fds, conn) {
                            return code;
                        }
                    }
                    // A closed connection is forgotten.
                    Ok(None) => {}
                    // A message we could not take (too many descriptors, say) is refused;
                    // a connection we cannot answer is forgotten.
                    Err(e) => {
                        if reply(&conn, &Reply::Error { error: (&e).into() }).is_ok() {
                            self.conns.push(conn);
                        }
                    }
                }
            }
        }
    }

    /// Wait until a connection is readable or a tracked process ends; the readable
    /// connections' indices, ascending.
    fn poll(&self) -> Result<Vec<usize>> {
        let mut fds: Vec<PollFd<'_>> = self
            .conns
            .iter()
            .map(|c| PollFd::new(c.as_fd(), PollFlags::POLLIN))
            .collect();
        fds.extend(
            self.tracked
                .values()
                .map(|p| PollFd::new(p.as_fd(), PollFlags::POLLIN)),
        );
        // Orphans of the container's processes are reaped on the next wake-up at the latest.
        poll(&mut fds, PollTimeout::from(1000u16)).op("poll")?;
        Ok(fds[..self.conns.len()]
            .iter()
            .enumerate()
            .filter(|(_, f)| f.revents().is_some_and(|r| !r.is_empty()))
            .map(|(i, _)| i)
            .collect())
    }

    /// Reap every child that has ended; answer the waiters of tracked ones.
    fn reap(&mut self) {
        loop {
            let (pid, status) = match sys::process::waitpid(
                Pid::from_raw(-1),
                Some(sys::process::WaitPidFlag::WNOHANG),
            ) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, wire::raw_exited(code)),
                Ok(WaitStatus::Signaled(pid, sig, core)) => {
                    (pid, wire::raw_signaled(sig as i32, core))
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            };
            if self.tracked.remove(&pid.as_raw()).is_some() {
                self.statuses.insert(pid.as_raw(), status);
            }
        }
        // A tracked process that is not our child can never be reaped here: stop polling its
        // pidfd (it would stay readable) and tell its waiters.
        let lost: Vec<i32> = self
            .tracked
            .keys()
            .copied()
            .filter(|pid| !sys::spawn::is_child(Pid::from_raw(*pid)))
            .collect();
        for pid in lost {
            self.tracked.remove(&pid);
            for (_, conn) in self.waiters.iter().filter(|(p, _)| *p == pid) {
                let e = Error::Other(format!("process {pid} is not the helper's child"));
                let _ = reply(conn, &Reply::Error { error: (&e).into() });
            }
            self.waiters.retain(|(p, _)| *p != pid);
        }
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|(pid, _)| self.statuses.contains_key(pid));
        self.waiters = waiting;
        for (pid, conn) in done {
            let _ = reply(
                &conn,
                &Reply::Exited {
                    status: self.statuses[&pid],
                },
            );
        }
    }

    /// Serve one request; `Some(code)` when the helper is done.
    fn handle(&mut self, req: Request, fds: Vec<OwnedFd>, conn: OwnedFd) -> Option<i32> {
        let answer = match req {
            Request::Wait { pid } => {
                let pid = pid.unwrap_or(self.init);
                if let Some(status) = self.statuses.get(&pid) {
                    Ok(Reply::Exited { status: *status })
                } else if self.tracked.contains_key(&pid) {
                    self.waiters.push((pid, conn));
                    return None;
                } else {
                    Err(Error::InvalidArgument(format!(
                        "process {pid} is not a process of container {}",
                        self.id
                    )))
                }
            }
            Request::Connect => match sys::socket::seqpacket_pair() {
                Ok((ours, theirs)) => {
                    let sent = wire::send(conn.as_fd(), &Reply::Ok, &[theirs.as_fd()]);
                    if sent.is_ok() {
                        self.conns.push(ours);
                    }
                    self.conns.push(conn);
                    return None;
                }
                Err(e) => Err(Error::os("socketpair", None, e)),
            },
            Request::Create { .. } => Err(Error::InvalidArgument(format!(
                "container {} is already created",
                self.id
            ))),
            Request::Start => container::start(&self.rt, &self.id).map(|_| Reply::Ok),
            Request::Kill { signal, all, pid } => self.kill(signal, all, pid).map(|_| Reply::Ok),
            Request::Exec {
                args,
                env,
                cwd,
                user,
                console_socket,
                caps,
                additional_gids,
                no_new_privs,
            } => {
                let process = ExecOverrides {
                    args,
                    tty: console_socket.is_some(),
                    cwd,
                    env,
                    user,
                    additional_gids,
                    no_new_privs,
                };
                self.exec(process, caps, console_socket, fds)
                    .map(|pid| Reply::Pid { pid })
            }
            Request::Pidfd { pid } => {
                let pid = pid.unwrap_or(self.init);
                match self.tracked.get(&pid) {
                    Some(fd) => {
                        let _ = wire::send(conn.as_fd(), &Reply::Ok, &[fd.as_fd()]);
                        self.conns.push(conn);
                        return None;
                    }
                    None if self.statuses.contains_key(&pid) => Err(Error::WrongState {
                        id: self.id.clone(),
                        status: "stopped".into(),
                        reason: format!("process {pid} has exited"),
                    }),
                    None => Err(Error::InvalidArgument(format!(
                        "process {pid} is not a process of container {}",
                        self.id
                    ))),
                }
            }
            Request::Update { resources } => {
                container::update(&self.rt, &self.id, *resources).map(|_| Reply::Ok)
            }
            Request::Pause => container::pause(&self.rt, &self.id).map(|_| Reply::Ok),
            Request::Resume => container::resume(&self.rt, &self.id).map(|_| Reply::Ok),
            Request::Delete { force } => match container::delete(&self.rt, &self.id, force) {
                Ok(()) => {
                    remove_bundle(self.generated.as_deref());
                    self.reap();
                    let _ = reply(&conn, &Reply::Ok);
                    return Some(0);
                }
                Err(e) => Err(e),
            },
        };
        let r = match answer {
            Ok(r) => r,
            Err(e) => Reply::Error { error: (&e).into() },
        };
        let _ = reply(&conn, &r);
        self.conns.push(conn);
        None
    }

    fn kill(&self, signal: i32, all: bool, pid: Option<i32>) -> Result<()> {
        let sig = Signal::try_from(signal)
            .map_err(|_| Error::InvalidArgument(format!("unknown signal {signal}")))?;
        match pid {
            None => container::kill(&self.rt, &self.id, sig, all),
            Some(pid) => {
                let fd = self.tracked.get(&pid).ok_or_else(|| {
                    Error::InvalidArgument(format!("process {pid} is not running"))
                })?;
                sys::process::pidfd_send_signal(fd.as_fd(), sig).op("pidfd_send_signal")
            }
        }
    }

    /// Run `exec` in a child of ours, so the `setns` it makes never touches the helper: the
    /// child starts the process detached and exits, and the process is reparented to us.
    /// `fds`: the process's stdin, stdout, stderr, then its descriptors 3, 4, ...
    fn exec(
        &mut self,
        process: ExecOverrides,
        caps: Vec<String>,
        console_socket: Option<PathBuf>,
        fds: Vec<OwnedFd>,
    ) -> Result<i32> {
        let preserve_fds = fds
            .len()
            .checked_sub(3)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| Error::Other("helper: exec needs three stdio descriptors".into()))?;
        self.execs += 1;
        let pid_file = self.rt.root.path().join(format!(
            "@helper-{}-{}.pid",
            sys::process::getpid(),
            self.execs
        ));
        let (errors, w) = sys::spawn::pipe().op("pipe")?;
        let opts = ExecOptions {
            id: self.id.clone(),
            process: ProcessSource::Args(process),
            caps,
            cgroup: Vec::new(),
            detach: true,
            pid_file: Some(pid_file.clone()),
            console_socket,
            preserve_fds,
            ignore_paused: false,
            layers: Layers::default(),
        };
        let child = match sys::process::clone3(0, None).op("clone3")? {
            Forked::Child => {
                drop(errors);
                // Only this child's table changes: 0..=2 and the preserved range after them
                // take the process's descriptors; what the child still writes to (the error
                // pipe, the log) moves above them first.
                let count = i32::try_from(fds.len()).unwrap_or(i32::MAX);
                let installed = crate::log::move_above(count)
                    .and_then(|()| sys::spawn::install_fds(fds, vec![w]))
                    .op("install descriptors");
                let (w, res) = match installed {
                    // `_placed` keeps the process's descriptors open until `exec` hands them on.
                    Ok((_placed, mut kept)) => {
                        (kept.pop(), container::exec(&self.rt, opts).map(drop))
                    }
                    Err(e) => (None, Err(e)),
                };
                if let Err(e) = res {
                    let text = serde_json::to_vec(&WireError::from(&e)).unwrap_or_default();
                    if let Some(w) = w {
                        let _ = std::fs::File::from(w).write_all(&text);
                    }
                    sys::process::exit_now(1);
                }
                sys::process::exit_now(0);
            }
            Forked::Parent(pid) => pid,
        };
        drop((w, fds));
        let mut text = Vec::new();
        // The pipe reaches end-of-file when the child (and the process it started) are done
        // with it: the write end is close-on-exec.
        let _ = std::fs::File::from(errors).read_to_end(&mut text);
        let status = sys::process::waitpid(child, None).op("waitpid exec")?;
        let read_pid = std::fs::read_to_string(&pid_file);
        let _ = std::fs::remove_file(&pid_file);
        if status != WaitStatus::Exited(child, 0) {
            return Err(match serde_json::from_slice::<WireError>(&text) {
                Ok(w) => w.into(),
                Err(_) => Error::Other(format!("exec: helper child ended with {status:?}")),
            });
        }
        let pid: i32 = read_pid
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| Error::Other("exec: no pid of the new process".into()))?;
        let pidfd = sys::process::pidfd_open(Pid::from_raw(pid)).op("pidfd_open exec")?;
        self.tracked.insert(pid, pidfd);
        Ok(pid)
    }
}

/// Point our stdin, stdout and stderr at `/dev/null`.
fn release_stdio() -> Result<()> {
    let null = Path::new("/dev/null");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(null)
        .op_path("open", null)?;
    sys::fd::replace_stdio(f.as_fd()).op("dup3")
}

/// Remove a generated bundle, and its parent directory once no other bundle is in it.
fn remove_bundle(dir: Option<&Path>) {
    if let Some(dir) = dir {
        let _ = std::fs::remove_dir_all(dir);
        if let Some(parent) = dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}
