//! The engine: a single-threaded process, started for each library call, that makes it.
//!
//! The library's `create` and `exec` clone the calling process, change its working directory
//! and enter namespaces for its children: they need a single-threaded caller, and the shim
//! serves ttrpc from several threads. So for each call the shim forks and executes the node's
//! sealed copy of its binary (see `sealed`) as a worker, sends it the request over a socket
//! pair, and reads the one reply; the worker exits once it has replied. The processes it
//! started (containers' inits, exec'd processes, loggers) are then reparented to the shim, the
//! containers' child subreaper, which reaps them (see `main`). No worker idles beside the shim,
//! so a running container costs one process's memory, not two.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::File;
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::sys::signal::Signal;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use sealrun::container::{self, ExecOptions, ProcessSource, Runtime};
use sealrun::selfexe::SealStatus;
use sealrun::spec::CreateOptions;
use sealrun::worker as sp;

use crate::stdio::with_stdio;

/// Where a process's stdio goes: containerd's paths (FIFOs, or `file://` URIs), empty for none.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stdio {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}
/// One library call.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    Create {
        root: PathBuf,
        id: String,
        bundle: PathBuf,
        stdio: Stdio,
    },
    Start {
        root: PathBuf,
        id: String,
    },
    Exec {
        root: PathBuf,
        id: String,
        exec_id: String,
        process: PathBuf,
        stdio: Stdio,
    },
    Kill {
        root: PathBuf,
        id: String,
        signal: i32,
        all: bool,
    },
    Delete {
        root: PathBuf,
        id: String,
        force: bool,
    },
    Pause {
        root: PathBuf,
        id: String,
    },
    Resume {
        root: PathBuf,
        id: String,
    },
    Update {
        root: PathBuf,
        id: String,
        resources: Value,
    },
    Stats {
        root: PathBuf,
        id: String,
    },
    Pids {
        root: PathBuf,
        id: String,
    },
}

/// The answer: a pid (create, exec) or a JSON value, or the library's one-line error. A
/// terminal's master comes with it as the message's one file descriptor.
#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    Ok { pid: i32, value: Value },
    Err(String),
}

/// The shim's side: starts a worker per call, one call at a time.
pub struct Worker {
    /// The sealed copy the workers execute (the one the shim runs from).
    exe: OwnedFd,
    argv: Vec<CString>,
    /// One call at a time, as the sealrun CLI's callers make them.
    one: Mutex<()>,
    /// Workers started and not yet reaped: their exits are not containers' (see `is_worker`).
    running: Mutex<HashSet<i32>>,
}

impl Worker {
    /// A worker starter executing `exe`, which must be a sealed copy of this binary. The
    /// workers get [`WORKER_ARG`], then the shim's own arguments (so that `ps` shows whose
    /// worker it is).
    pub fn new(exe: OwnedFd) -> std::io::Result<Worker> {
        if !crate::sealed::is_sealed(&exe) {
            return Err(std::io::Error::other(
                "the worker's executable is not sealed",
            ));
        }
        // Above the worker's descriptor, which `start` places in the child before executing.
        let exe = sp::dup_above(exe.as_fd(), REQ_FD + 1)?;
        let mut args = std::env::args_os().map(|a| a.into_encoded_bytes());
        let argv = [args.next().unwrap_or_default(), WORKER_ARG.into()]
            .into_iter()
            .chain(args)
            .map(CString::new)
            .collect::<Result<_, _>>()
            .map_err(std::io::Error::other)?;
        Ok(Worker {
            exe,
            argv,
            one: Mutex::new(()),
            running: Mutex::new(HashSet::new()),
        })
    }

    /// Whether `pid` was a worker (forgotten once asked: its exit is reaped once).
    pub fn is_worker(&self, pid: i32) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&pid)
    }

    /// Starts a worker, sends it `req` and waits for its reply (and a terminal master, if one
    /// came).
    pub fn call(&self, req: &Request) -> Result<(i32, Value, Option<OwnedFd>), String> {
        let data = serde_json::to_vec(req).map_err(|e| e.to_string())?;
        let _one = self.one.lock().unwrap_or_else(|e| e.into_inner());
        let sock = self.start().map_err(|e| format!("start the worker: {e}"))?;
        send_msg(sock.as_fd(), &data, None).map_err(|e| format!("to the worker: {e}"))?;
        let (data, fd) = recv_msg(sock.as_fd()).map_err(|e| format!("from the worker: {e}"))?;
        if data.is_empty() {
            return Err("the worker is gone".into());
        }
        match serde_json::from_slice(&data).map_err(|e| format!("worker reply: {e}"))? {
            Reply::Ok { pid, value } => Ok((pid, value, fd)),
            Reply::Err(e) => Err(e),
        }
    }

    /// Forks and executes a worker with one end of a new socket pair as its [`REQ_FD`];
    /// returns the other end.
    fn start(&self) -> std::io::Result<UnixStream> {
        let (ours, theirs) = seqpacket_pair()?;
        // Above the worker's descriptor, so that placing it there never closes it first.
        let theirs = sp::dup_above(theirs.as_fd(), REQ_FD + 1)?;
        let env: Vec<CString> = std::env::vars_os()
            .filter_map(|(k, v)| {
                let mut kv = k.into_encoded_bytes();
                kv.push(b'=');
                kv.extend_from_slice(v.as_encoded_bytes());
                CString::new(kv).ok()
            })
            .collect();
        // Held until the pid is known: the shim's reaper asks `is_worker` under this lock, so
        // a worker that exits at once is still known as one.
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let pid = crate::sys::fork_exec(self.exe.as_fd(), &self.argv, &env, theirs.as_fd())?;
        running.insert(pid);
        Ok(ours)
    }
}

/// The worker's first argument (the shim's own arguments always start with a flag).
pub const WORKER_ARG: &str = "sealrun-shim-worker";
/// The worker's descriptor for its request socket.
const REQ_FD: RawFd = 3;

/// The worker process (`WORKER_ARG`): answers the one request on fd 3, then exits.
pub fn worker_main() -> ! {
    let code = match worker_setup().and_then(serve) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("containerd-shim-sealrun-v2 worker: {e}");
            1
        }
    };
    std::process::exit(code)
}

fn worker_setup() -> Result<UnixStream, String> {
    // Containers' inits and exec helpers are this process's clones: never from anything but
    // a sealed copy (the shim checked it; this holds whoever started us).
    let exe = File::open("/proc/self/exe").map_err(|e| format!("/proc/self/exe: {e}"))?;
    if !crate::sealed::is_sealed(&exe) {
        return Err("not running from a sealed copy".into());
    }
    // The shim put it there for this process (once per process; close-on-exec: the
    // library's clones must not inherit it).
    crate::sys::claim_worker_fds(REQ_FD, REQ_FD + 1)
        .map_err(|e| format!("fd {REQ_FD}: {e}"))?
        .into_iter()
        .map(UnixStream::from)
        .next()
        .ok_or_else(|| "no request socket".into())
}

fn seqpacket_pair() -> std::io::Result<(UnixStream, UnixStream)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((UnixStream::from(a), UnixStream::from(b)))
}

/// The largest message either side accepts.
const MAX_MSG: usize = 1 << 20;

fn send_msg(sock: BorrowedFd<'_>, data: &[u8], fd: Option<RawFd>) -> nix::Result<()> {
    let iov = [IoSlice::new(data)];
    let fds: Vec<RawFd> = fd.into_iter().collect();
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::empty(), None).map(drop)
}

pub(crate) fn recv_msg(sock: BorrowedFd<'_>) -> nix::Result<(Vec<u8>, Option<OwnedFd>)> {
    // The next message's length first (MSG_TRUNC: its whole length, whatever the buffer): a
    // buffer of the largest size for every message would keep a megabyte of heap touched in
    // both processes for good.
    use nix::sys::socket::recv;
    let len = loop {
        match recv(
            sock.as_raw_fd(),
            &mut [],
            MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other?,
        }
    };
    if len > MAX_MSG {
        // Consumed, so that the next message is read next.
        let _ = recv(sock.as_raw_fd(), &mut [], MsgFlags::empty());
        return Err(nix::errno::Errno::EMSGSIZE);
    }
    let mut buf = vec![0u8; len];
    let got = sp::recv_with_fds(sock, &mut buf)?;
    buf.truncate(got.len);
    // Only one descriptor is ever sent; any more are closed here.
    Ok((buf, got.fds.into_iter().next()))
}

/// The worker's one request: the reply (and a terminal's master) goes back, then the worker
/// exits, leaving what it started to the shim.
fn serve(req: UnixStream) -> Result<(), String> {
    // `worker_setup` checked it.
    let seal = SealStatus::Sealed;
    // The shim's signal handlers (signal-hook's pipe) must not run here.
    crate::sys::reset_worker_signals().map_err(|e| format!("reset signals: {e}"))?;
    let (data, _) = recv_msg(req.as_fd()).map_err(|e| format!("recv: {e}"))?;
    if data.is_empty() {
        return Ok(()); // the shim is gone
    }
    let (reply, fd) = match serde_json::from_slice::<Request>(&data) {
        Ok(r) => handle(r, seal),
        Err(e) => (Reply::Err(format!("bad request: {e}")), None),
    };
    let out = serde_json::to_vec(&reply).map_err(|e| e.to_string())?;
    send_msg(req.as_fd(), &out, fd.as_ref().map(|f| f.as_raw_fd()))
        .map_err(|e| format!("send: {e}"))
}

fn rt(root: &Path, seal: SealStatus) -> Runtime {
    crate::sys::runtime(root, seal)
}

fn ok(value: Value) -> Reply {
    Reply::Ok { pid: 0, value }
}

fn handle(req: Request, seal: SealStatus) -> (Reply, Option<OwnedFd>) {
    let done = |r: sealrun::Result<()>| match r {
        Ok(()) => ok(Value::Null),
        Err(e) => Reply::Err(e.to_string()),
    };
    match req {
        Request::Create {
            root,
            id,
            bundle,
            stdio,
        } => with_stdio(&namespace_of(&root), &id, &stdio, |console| {
            let pid_file = bundle.join("init.pid");
            let mut opts = CreateOptions::new(id.clone(), bundle.clone());
            opts.console_socket = console;
            opts.pid_file = Some(pid_file.clone());
            // As the sealrun binary: the operator policy (its default path) holds every create.
            let policy = sealrun::policy::Policy::load(None).map_err(|e| e.to_string())?;
            let rt = rt(&root, seal).with_policy(policy);
            container::create(&rt, opts).map_err(|e| e.to_string())?;
            read_pid(&pid_file)
        }),
        Request::Exec {
            root,
            id,
            exec_id,
            process,
            stdio,
        } => {
            let dir = process.parent().map(Path::to_path_buf).unwrap_or_default();
            with_stdio(&namespace_of(&root), &exec_id, &stdio, |console| {
                let pid_file = dir.join(format!("{exec_id}.pid"));
                let mut opts = ExecOptions::new(id.clone(), ProcessSource::File(process.clone()));
                opts.detach = true;
                opts.pid_file = Some(pid_file.clone());
                opts.console_socket = console;
                container::exec(&rt(&root, seal), opts).map_err(|e| e.to_string())?;
                let pid = read_pid(&pid_file);
                let _ = std::fs::remove_file(&pid_file);
                pid
            })
        }
        Request::Start { root, id } => (done(container::start(&rt(&root, seal), &id)), None),
        Request::Kill {
            root,
            id,
            signal,
            all,
        } => {
            let r = Signal::try_from(signal)
                .map_err(|_| sealrun::Error::InvalidArgument(format!("signal {signal}")))
                .and_then(|s| container::kill(&rt(&root, seal), &id, s, all));
            (done(r), None)
        }
        Request::Delete { root, id, force } => {
            (done(container::delete(&rt(&root, seal), &id, force)), None)
        }
        Request::Pause { root, id } => (done(container::pause(&rt(&root, seal), &id)), None),
        Request::Resume { root, id } => (done(container::resume(&rt(&root, seal), &id)), None),
        Request::Update {
            root,
            id,
            resources,
        } => {
            let r = serde_json::from_value(resources)
                .map_err(|e| sealrun::Error::InvalidArgument(format!("resources: {e}")))
                .and_then(|res| container::update(&rt(&root, seal), &id, res));
            (done(r), None)
        }
        // `{"data": runc's shape, "unified": cgroup2's extra counters}` (see `metrics`).
        Request::Stats { root, id } => match container::cgroup_stats(&rt(&root, seal), &id)
            .map_err(|e| e.to_string())
            .and_then(|s| serde_json::to_value(s).map_err(|e| e.to_string()))
        {
            Ok(v) => (ok(v), None),
            Err(e) => (Reply::Err(e), None),
        },
        Request::Pids { root, id } => match container::pids(&rt(&root, seal), &id) {
            Ok(p) => (ok(Value::from(p)), None),
            Err(e) => (Reply::Err(e.to_string()), None),
        },
    }
}

/// The containerd namespace a state root belongs to (`<Root>/<namespace>`, see `bundle`).
fn namespace_of(root: &Path) -> String {
    root.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn read_pid(path: &Path) -> Result<i32, String> {
    std::fs::read_to_string(path)
        .map_err(|e| format!("read {}: {e}", path.display()))?
        .trim()
        .parse()
        .map_err(|e| format!("pid file {}: {e}", path.display()))
}

/// Exit statuses of processes the shim does not know yet (an exit can overtake the reply
/// that names the pid).
pub type Pending = std::collections::HashMap<i32, (i32, std::time::SystemTime)>;

/// How long an exit waits in [`Pending`] for the reply naming its pid. The reply follows
/// within one request; exits of processes the shim never learns (a `binary://` logger, a
/// mount helper) would otherwise stay for the shim's life, and a pid reused later would pick
/// up their stale status.
pub const PENDING_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Records the exit of an unknown `pid`, first dropping the exits older than [`PENDING_TTL`].
pub fn hold_exit(pending: &mut Pending, pid: i32, status: i32, when: std::time::SystemTime) {
    // A clock stepped back (an entry dated after `when`) keeps the entry.
    pending.retain(|_, (_, at)| {
        when.duration_since(*at)
            .map_or(true, |age| age < PENDING_TTL)
    });
    pending.insert(pid, (status, when));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn unclaimed_exits_expire() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut pending = Pending::new();
        hold_exit(&mut pending, 10, 0, t0);
        hold_exit(&mut pending, 11, 1, t0 + Duration::from_secs(30));
        assert_eq!(pending.len(), 2, "both within the TTL");
        // A later exit drops what waited longer than the TTL, and keeps the rest.
        hold_exit(
            &mut pending,
            12,
            2,
            t0 + PENDING_TTL + Duration::from_secs(1),
        );
        let mut pids: Vec<_> = pending.keys().copied().collect();
        pids.sort_unstable();
        assert_eq!(pids, [11, 12]);
        // A pid reused after its stale exit expired starts clean.
        hold_exit(&mut pending, 13, 3, t0 + 3 * PENDING_TTL);
        assert_eq!(pending.keys().copied().collect::<Vec<_>>(), [13]);
    }
}
