//! The engine: a single-threaded child of the shim that makes every sealrun library call.
//!
//! The library's `create` and `exec` clone the calling process, change its working directory
//! and enter namespaces for its children: they need a single-threaded caller. The shim serves
//! ttrpc from several threads, so it forks this worker once, at start-up, before it has any
//! other thread, and sends it one request at a time over a socket pair. Containers' processes
//! are the worker's children: it reaps them (and, as a child subreaper, whatever the containers
//! orphan) and reports each exit to the shim over a second socket pair.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, IoSlice, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::fcntl::{fcntl, FcntlArg};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{dup2, Pid};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use sealrun::container::{self, ExecOptions, ProcessSource, Runtime};
use sealrun::selfexe::SealStatus;
use sealrun::spec::CreateOptions;
use sealrun::worker::{self as sp, Forked};

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

/// An exit the worker reaped: pid and status as a shell reports it (128+N for signal N).
#[derive(Debug, Serialize, Deserialize)]
pub struct Exit {
    pub pid: i32,
    pub status: i32,
}

/// The shim's side: requests (one at a time) and the stream of exits.
pub struct Worker {
    requests: std::sync::Mutex<UnixStream>,
}

impl Worker {
    /// Forks the worker, which executes `exe` (the node's sealed copy of this binary) with
    /// [`WORKER_ARG`]. Call before the process has other threads. Returns the shim's handle and
    /// the stream the worker writes exits to.
    pub fn fork(exe: OwnedFd) -> std::io::Result<(Worker, UnixStream)> {
        let (req_shim, req_worker) = seqpacket_pair()?;
        let (exits_shim, exits_worker) = UnixStream::pair()?;
        match crate::sys::fork_for_worker().map_err(std::io::Error::from)? {
            Forked::Child => {
                drop(req_shim);
                drop(exits_shim);
                let e = exec_worker(&exe, req_worker.as_fd(), exits_worker.as_fd());
                eprintln!("containerd-shim-sealrun-v2: execute the worker: {e}");
                sp::exit_now(1)
            }
            Forked::Parent(_) => Ok((
                Worker {
                    requests: std::sync::Mutex::new(req_shim),
                },
                exits_shim,
            )),
        }
    }

    /// Sends `req` and waits for its reply (and a terminal master, if one came).
    pub fn call(&self, req: &Request) -> Result<(i32, Value, Option<OwnedFd>), String> {
        let sock = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let data = serde_json::to_vec(req).map_err(|e| e.to_string())?;
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
}

/// The worker's first argument (the shim's own arguments always start with a flag).
pub const WORKER_ARG: &str = "sealrun-shim-worker";
/// The worker's descriptors: requests, then exits.
const REQ_FD: RawFd = 3;
const EXITS_FD: RawFd = 4;

/// In the forked child: the sockets on fds 3 and 4, stdout off the pipe `start` reads the
/// shim's address from until EOF, then `exe` with the shim's own arguments after
/// [`WORKER_ARG`] (so that `ps` shows whose worker it is). Returns only on failure.
fn exec_worker(exe: &OwnedFd, req: BorrowedFd<'_>, exits: BorrowedFd<'_>) -> nix::Error {
    use std::ffi::CString;
    let run = || -> nix::Result<std::convert::Infallible> {
        // Out of the way first, so that neither lands on the other's target.
        let r = fcntl(req.as_raw_fd(), FcntlArg::F_DUPFD_CLOEXEC(10))?;
        let x = fcntl(exits.as_raw_fd(), FcntlArg::F_DUPFD_CLOEXEC(10))?;
        dup2(r, REQ_FD)?;
        dup2(x, EXITS_FD)?;
        dup2(2, 1)?;
        let cstring = |b: Vec<u8>| CString::new(b).map_err(|_| nix::errno::Errno::EINVAL);
        let mut argv = std::env::args_os().map(|a| a.into_encoded_bytes());
        let argv: Vec<CString> = [argv.next().unwrap_or_default(), WORKER_ARG.into()]
            .into_iter()
            .chain(argv)
            .map(cstring)
            .collect::<nix::Result<_>>()?;
        let env: Vec<CString> = std::env::vars_os()
            .filter_map(|(k, v)| {
                let mut kv = k.into_encoded_bytes();
                kv.push(b'=');
                kv.extend_from_slice(v.as_encoded_bytes());
                CString::new(kv).ok()
            })
            .collect();
        nix::unistd::fexecve(exe.as_raw_fd(), &argv, &env)
    };
    match run() {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

/// The worker process (`WORKER_ARG`): serves the shim on fds 3 and 4 until it goes away.
pub fn worker_main() -> ! {
    let code = match worker_setup().and_then(|(req, exits)| serve(req, exits)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("containerd-shim-sealrun-v2 worker: {e}");
            1
        }
    };
    std::process::exit(code)
}

fn worker_setup() -> Result<(UnixStream, UnixStream), String> {
    // Containers' inits and exec helpers are this process's clones: never from anything but
    // a sealed copy (the shim checked it; this holds whoever started us).
    let exe = File::open("/proc/self/exe").map_err(|e| format!("/proc/self/exe: {e}"))?;
    if !crate::sealed::is_sealed(&exe) {
        return Err("not running from a sealed copy".into());
    }
    // The shim put them there for this process (once per process; close-on-exec: the
    // library's clones must not inherit them).
    let mut own = crate::sys::claim_worker_fds(REQ_FD, EXITS_FD + 1)
        .map_err(|e| format!("fds {REQ_FD}-{EXITS_FD}: {e}"))?
        .into_iter()
        .map(UnixStream::from);
    let req = own.next().ok_or("no request socket")?;
    let exits = own.next().ok_or("no exits socket")?;
    Ok((req, exits))
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

/// The worker's loop: requests in order; exits reported as they are reaped.
fn serve(req: UnixStream, mut exits: UnixStream) -> Result<(), String> {
    // `worker_setup` checked it.
    let seal = SealStatus::Sealed;
    // The shim's signal handlers (signal-hook's pipe) must not run here; SIGCHLD comes through
    // a signalfd instead.
    let sigfd = crate::sys::become_worker().map_err(|e| format!("worker set-up: {e}"))?;
    // `exec` enters a container's pid namespace for its children; each call starts from ours.
    let own_ns: Vec<(File, CloneFlags)> = [
        ("pid", CloneFlags::CLONE_NEWPID),
        ("time", CloneFlags::from_bits_retain(0x80)),
    ]
    .into_iter()
    .filter_map(|(n, f)| {
        Some((
            File::open(format!("/proc/self/ns/{n}_for_children")).ok()?,
            f,
        ))
    })
    .collect();
    loop {
        let mut fds = [
            PollFd::new(req.as_fd(), PollFlags::POLLIN),
            PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("poll: {e}")),
            Ok(_) => {}
        }
        let sig_ready = fds[1].any().unwrap_or(false);
        let req_ready = fds[0].any().unwrap_or(false);
        if sig_ready {
            let _ = sp::read_signalfd(sigfd.as_fd());
        }
        reap(&mut exits)?;
        if !req_ready {
            continue;
        }
        let (data, _) = recv_msg(req.as_fd()).map_err(|e| format!("recv: {e}"))?;
        if data.is_empty() {
            return Ok(()); // the shim is gone
        }
        let (reply, fd) = match serde_json::from_slice::<Request>(&data) {
            Ok(r) => handle(r, seal),
            Err(e) => (Reply::Err(format!("bad request: {e}")), None),
        };
        for (f, flag) in &own_ns {
            let _ = crate::sys::setns_back(f.as_fd(), *flag);
        }
        let _ = std::env::set_current_dir("/");
        let out = serde_json::to_vec(&reply).map_err(|e| e.to_string())?;
        send_msg(req.as_fd(), &out, fd.as_ref().map(|f| f.as_raw_fd()))
            .map_err(|e| format!("send: {e}"))?;
        drop((out, fd, data));
        // The library's work (configs, seccomp programs) leaves free heap behind: give it
        // back, the worker idles for the container's lifetime.
        crate::sys::malloc_trim();
        reap(&mut exits)?;
    }
}

/// Reaps every exited child and reports it.
fn reap(exits: &mut UnixStream) -> Result<(), String> {
    loop {
        let (pid, status) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid, code),
            Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, 128 + sig as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return Ok(()),
            Ok(_) => continue,
        };
        let mut line = serde_json::to_vec(&Exit {
            pid: pid.as_raw(),
            status,
        })
        .map_err(|e| e.to_string())?;
        line.push(b'\n');
        exits
            .write_all(&line)
            .map_err(|e| format!("report exit: {e}"))?;
    }
}

/// Reads exits the worker reports; `f` gets each one.
pub fn read_exits(exits: UnixStream, mut f: impl FnMut(Exit)) {
    for line in BufReader::new(exits).lines() {
        let Ok(line) = line else { return };
        if let Ok(e) = serde_json::from_str::<Exit>(&line) {
            f(e);
        }
    }
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
pub type Pending = HashMap<i32, (i32, std::time::SystemTime)>;
