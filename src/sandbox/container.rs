//! [`ContainerBuilder`], [`Container`], [`ExecBuilder`] and [`Process`]: the library side of
//! the helper protocol.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{ChildStderr, ChildStdin, ChildStdout, ExitStatus};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use oci_spec::runtime::Spec;

use super::helper::CONTROL_FD;
use super::wire::{self, Reply, Request};
use super::{Settings, State, Stdio};
use crate::audit::AuditRecord;
use crate::error::{Context, Error, Result};
use crate::sys;

/// Where the container's configuration comes from.
#[derive(Debug)]
enum Source {
    None,
    Bundle(PathBuf),
    Spec(Box<Spec>),
    Json(Vec<u8>),
}

/// Configures one container; made by [`Sandbox::container`](super::Sandbox::container).
///
/// The configuration is a bundle directory ([`bundle`](Self::bundle)) or a runtime-spec
/// value in memory ([`spec`](Self::spec), [`spec_json`](Self::spec_json)) with a root
/// filesystem path ([`rootfs`](Self::rootfs)).
#[derive(Debug)]
pub struct ContainerBuilder {
    settings: Arc<Settings>,
    id: String,
    source: Source,
    rootfs: Option<PathBuf>,
    stdio: [Stdio; 3],
    seccomp_notify: bool,
    no_pivot: bool,
    no_new_keyring: bool,
}

/// The directory under the state root for bundles the library writes (`@` is never in an id).
const BUNDLES: &str = "@bundles";

/// Numbers the private sockets of one process.
static SEQ: AtomicU64 = AtomicU64::new(0);

impl ContainerBuilder {
    pub(crate) fn new(settings: Arc<Settings>, id: String) -> Self {
        ContainerBuilder {
            settings,
            id,
            source: Source::None,
            rootfs: None,
            stdio: [Stdio::Null, Stdio::Null, Stdio::Null],
            seccomp_notify: false,
            no_pivot: false,
            no_new_keyring: false,
        }
    }

    /// Use the bundle directory `dir` (its `config.json` and the rootfs it names).
    pub fn bundle(mut self, dir: impl Into<PathBuf>) -> Self {
        self.source = Source::Bundle(dir.into());
        self
    }

    /// Use this runtime-spec config (with [`rootfs`](Self::rootfs) unless its `root.path` is
    /// absolute).
    pub fn spec(mut self, spec: Spec) -> Self {
        self.source = Source::Spec(Box::new(spec));
        self
    }

    /// Use this runtime-spec config as JSON text (with [`rootfs`](Self::rootfs) unless its
    /// `root.path` is absolute).
    pub fn spec_json(mut self, json: impl Into<Vec<u8>>) -> Self {
        self.source = Source::Json(json.into());
        self
    }

    /// The root filesystem directory (replaces the config's `root.path`).
    pub fn rootfs(mut self, dir: impl Into<PathBuf>) -> Self {
        self.rootfs = Some(dir.into());
        self
    }

    /// The container process's stdin (default [`Stdio::Null`]).
    pub fn stdin(mut self, s: Stdio) -> Self {
        self.stdio[0] = s;
        self
    }

    /// The container process's stdout (default [`Stdio::Null`]).
    pub fn stdout(mut self, s: Stdio) -> Self {
        self.stdio[1] = s;
        self
    }

    /// The container process's stderr (default [`Stdio::Null`]).
    pub fn stderr(mut self, s: Stdio) -> Self {
        self.stdio[2] = s;
        self
    }

    /// Receive the seccomp notify descriptor of the container's processes in this program
    /// ([`Container::seccomp_notify_fd`], [`Process::seccomp_notify_fd`]). The config needs
    /// a seccomp profile with `SCMP_ACT_NOTIFY` rules; its `listenerPath` is set to a private
    /// socket of the library.
    pub fn seccomp_notify(mut self, on: bool) -> Self {
        self.seccomp_notify = on;
        self
    }

    /// Use `MS_MOVE` and `chroot` instead of `pivot_root` (a root on a ramfs).
    pub fn no_pivot(mut self, on: bool) -> Self {
        self.no_pivot = on;
        self
    }

    /// Do not create a session keyring for the container.
    pub fn no_new_keyring(mut self, on: bool) -> Self {
        self.no_new_keyring = on;
        self
    }

    /// Create the container: its process is set up and waits for [`Container::start`].
    ///
    /// Errors name what is wrong: [`Error::InvalidConfig`] with the field,
    /// [`Error::InvalidArgument`] for a bad id, [`Error::AlreadyExists`] with the id. A failed
    /// create leaves nothing behind.
    pub fn create(self) -> Result<Container> {
        crate::container::state::validate_id(&self.id)?;
        let root = self.settings.root.clone();
        std::fs::create_dir_all(&root).op_path("mkdir", &root)?;
        let listener = if self.seccomp_notify {
            let path = root.join(format!(
                "@notify-{}-{}.sock",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_file(&path);
            let l = UnixListener::bind(&path).op_path("bind", &path)?;
            Some(Listener { l, path })
        } else {
            None
        };
        let (bundle, generated) =
            self.prepare_bundle(listener.as_ref().map(|l| l.path.as_path()))?;
        let result = self.launch(&bundle, generated, listener);
        if result.is_err() && generated {
            let _ = std::fs::remove_dir_all(&bundle);
        }
        result
    }

    /// The bundle to create from, and whether the library wrote it.
    fn prepare_bundle(&self, listener: Option<&Path>) -> Result<(PathBuf, bool)> {
        let mut spec = match &self.source {
            Source::None => {
                return Err(Error::InvalidArgument(format!(
                    "container {}: no config (use bundle, spec or spec_json)",
                    self.id
                )))
            }
            Source::Bundle(dir) if listener.is_none() && self.rootfs.is_none() => {
                return Ok((dir.clone(), false))
            }
            Source::Bundle(dir) => {
                let dir = std::fs::canonicalize(dir).op_path("bundle", dir)?;
                let (mut spec, _) = crate::spec::load_bundle(&dir)?;
                if let Some(root) = spec.root().clone() {
                    let mut root = root;
                    root.set_path(dir.join(root.path()));
                    spec.set_root(Some(root));
                }
                spec
            }
            Source::Spec(spec) => (**spec).clone(),
            Source::Json(raw) => crate::spec::parse_json::<Spec>(raw, "config")?,
        };
        let mut root = spec.root().clone().ok_or_else(|| {
            Error::config("root", "the config has no root (set root.path or rootfs)")
        })?;
        if let Some(rootfs) = &self.rootfs {
            if !rootfs.is_dir() {
                return Err(Error::config(
                    "root.path",
                    format!("{}: not a directory", rootfs.display()),
                ));
            }
            let abs = std::fs::canonicalize(rootfs).op_path("rootfs", rootfs)?;
            root.set_path(abs);
        } else if !root.path().is_absolute() {
            return Err(Error::config(
                "root.path",
                "relative without a bundle: give ContainerBuilder::rootfs",
            ));
        }
        spec.set_root(Some(root));
        if let Some(path) = listener {
            let mut linux = spec.linux().clone().unwrap_or_default();
            let mut seccomp = linux.seccomp().clone().ok_or_else(|| {
                Error::config(
                    "linux.seccomp",
                    "seccomp_notify needs a seccomp profile with SCMP_ACT_NOTIFY rules",
                )
            })?;
            seccomp.set_listener_path(Some(path.to_path_buf()));
            linux.set_seccomp(Some(seccomp));
            spec.set_linux(Some(linux));
        }
        let parent = self.settings.root.join(BUNDLES);
        let dir = parent.join(&self.id);
        // Twice: a helper removes the parent when its last bundle goes, maybe in between.
        let mut made = Err(std::io::ErrorKind::NotFound.into());
        for _ in 0..2 {
            std::fs::create_dir_all(&parent).op_path("mkdir", &parent)?;
            made = std::fs::create_dir(&dir);
            if !matches!(&made, Err(e) if e.kind() == std::io::ErrorKind::NotFound) {
                break;
            }
        }
        match made {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists(self.id.clone()))
            }
            other => other.op_path("mkdir", &dir)?,
        }
        let json = serde_json::to_vec_pretty(&spec)
            .map_err(|e| Error::Other(format!("serialise config: {e}")));
        let written = json.and_then(|j| {
            let path = dir.join("config.json");
            std::fs::write(&path, j).op_path("write", &path)
        });
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        Ok((dir, true))
    }

    fn launch(
        self,
        bundle: &Path,
        generated: bool,
        listener: Option<Listener>,
    ) -> Result<Container> {
        let (ours, theirs) = sys::socket::seqpacket_pair().op("socketpair")?;
        let s = &self.settings;
        let mut cmd = std::process::Command::new(&s.binary);
        cmd.arg("--root")
            .arg(&s.root)
            .arg("--log")
            .arg(s.log.as_deref().unwrap_or(Path::new("/dev/null")))
            .arg("--log-format")
            .arg("json")
            .arg("__helper")
            // Its own process group: a terminal's ^C reaches the caller, which decides.
            .process_group(0);
        let [stdin, stdout, stderr] = self.stdio;
        cmd.stdin(std_stdio(stdin))
            .stdout(std_stdio(stdout))
            .stderr(std_stdio(stderr));
        sys::spawn::pass_fd(&mut cmd, theirs, CONTROL_FD);
        let mut child = cmd.spawn().op_path("spawn", &s.binary)?;
        drop(cmd);
        let created = (|| -> Result<i32> {
            wire::send(
                ours.as_fd(),
                &Request::Create {
                    id: self.id.clone(),
                    bundle: bundle.to_path_buf(),
                    generated,
                    no_pivot: self.no_pivot,
                    no_new_keyring: self.no_new_keyring,
                },
                &[],
            )?;
            match wire::recv::<Reply>(ours.as_fd())? {
                Some((Reply::Pid { pid }, _)) => Ok(pid),
                Some((Reply::Error { error }, _)) => Err(error.into()),
                Some((other, _)) => Err(Error::Other(format!("helper: unexpected {other:?}"))),
                None => Err(Error::Other(format!(
                    "sealrun helper {} exited during create",
                    s.binary.display()
                ))),
            }
        })();
        let pid = match created {
            Ok(pid) => pid,
            Err(e) => {
                drop(ours);
                let _ = child.wait();
                if let Some(l) = listener {
                    let _ = std::fs::remove_file(&l.path);
                }
                return Err(e);
            }
        };
        let notify = listener.as_ref().and_then(|l| l.take_fd());
        let inner = Inner {
            settings: self.settings.clone(),
            id: self.id,
            pid,
            ctl: Mutex::new(Some(ours)),
            stdin: Mutex::new(child.stdin.take()),
            stdout: Mutex::new(child.stdout.take()),
            stderr: Mutex::new(child.stderr.take()),
            helper: Mutex::new(Some(child)),
            notify: Mutex::new(notify),
            listener,
        };
        Ok(Container {
            inner: Arc::new(inner),
        })
    }
}

fn std_stdio(s: Stdio) -> std::process::Stdio {
    match s {
        Stdio::Inherit => std::process::Stdio::inherit(),
        Stdio::Null => std::process::Stdio::null(),
        Stdio::Pipe => std::process::Stdio::piped(),
        Stdio::Fd(fd) => std::process::Stdio::from(fd),
    }
}

/// The private socket seccomp listener descriptors arrive on.
#[derive(Debug)]
struct Listener {
    l: UnixListener,
    path: PathBuf,
}

impl Listener {
    /// The descriptor the runtime sent, if it sent one (it did before replying).
    fn take_fd(&self) -> Option<OwnedFd> {
        self.l.set_nonblocking(true).ok()?;
        let (conn, _) = self.l.accept().ok()?;
        let mut buf = vec![0u8; 64 * 1024];
        let got = sys::socket::recv_with_fds(conn.as_fd(), &mut buf).ok()?;
        got.fds.into_iter().next()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[derive(Debug)]
struct Inner {
    settings: Arc<Settings>,
    id: String,
    pid: i32,
    /// The control connection; `None` once deleted.
    ctl: Mutex<Option<OwnedFd>>,
    helper: Mutex<Option<std::process::Child>>,
    stdin: Mutex<Option<ChildStdin>>,
    stdout: Mutex<Option<ChildStdout>>,
    stderr: Mutex<Option<ChildStderr>>,
    notify: Mutex<Option<OwnedFd>>,
    listener: Option<Listener>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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
    fn wait(&self, pid: Option<i32>) -> Result<ExitStatus> {
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
    fn pidfd(&self, pid: Option<i32>) -> Result<OwnedFd> {
        match self.request(&Request::Pidfd { pid }, &[])? {
            (Reply::Ok, mut fds) if !fds.is_empty() => Ok(fds.remove(0)),
            (Reply::Error { error }, _) => Err(error.into()),
            (other, _) => Err(Error::Other(format!("helper: unexpected {other:?}"))),
        }
    }

    fn kill(&self, signal: i32, all: bool, pid: Option<i32>) -> Result<()> {
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
    inner: Arc<Inner>,
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

    /// The caller's end of the stdin pipe ([`Stdio::Pipe`]), once.
    pub fn take_stdin(&self) -> Option<ChildStdin> {
        lock(&self.inner.stdin).take()
    }

    /// The caller's end of the stdout pipe ([`Stdio::Pipe`]), once.
    pub fn take_stdout(&self) -> Option<ChildStdout> {
        lock(&self.inner.stdout).take()
    }

    /// The caller's end of the stderr pipe ([`Stdio::Pipe`]), once.
    pub fn take_stderr(&self) -> Option<ChildStderr> {
        lock(&self.inner.stderr).take()
    }

    /// The seccomp notify descriptor of the container's process
    /// ([`ContainerBuilder::seccomp_notify`]), once; `None` when its profile has no
    /// `SCMP_ACT_NOTIFY` rule.
    pub fn seccomp_notify_fd(&self) -> Option<OwnedFd> {
        lock(&self.inner.notify).take()
    }

    /// Run another process in the container.
    pub fn exec(&self, process: ExecBuilder) -> Result<Process> {
        let mut ours: [Option<OwnedFd>; 3] = [None, None, None];
        let mut theirs = Vec::with_capacity(3);
        for (i, s) in process.stdio.into_iter().enumerate() {
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
        let req = Request::Exec {
            args: process.args,
            env: process.env,
            cwd: process.cwd,
            user: process.user,
        };
        let borrowed: Vec<BorrowedFd<'_>> = theirs.iter().map(|f| f.as_fd()).collect();
        let (reply, _) = self.inner.request(&req, &borrowed)?;
        drop(theirs);
        let pid = match reply {
            Reply::Pid { pid } => pid,
            Reply::Error { error } => return Err(error.into()),
            other => return Err(Error::Other(format!("helper: unexpected {other:?}"))),
        };
        let notify = self.inner.listener.as_ref().and_then(|l| l.take_fd());
        let [stdin, stdout, stderr] = ours;
        Ok(Process {
            inner: self.inner.clone(),
            pid,
            stdin: Mutex::new(stdin.map(ChildStdin::from)),
            stdout: Mutex::new(stdout.map(ChildStdout::from)),
            stderr: Mutex::new(stderr.map(ChildStderr::from)),
            notify: Mutex::new(notify),
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

/// A process to run in a container with [`Container::exec`]; it inherits the container
/// process's settings (user, capabilities, seccomp, Landlock, environment) unless changed here.
#[derive(Debug)]
pub struct ExecBuilder {
    args: Vec<String>,
    env: Vec<String>,
    cwd: Option<PathBuf>,
    user: Option<String>,
    stdio: [Stdio; 3],
}

impl ExecBuilder {
    /// Run `args` (`args[0]` is looked up in the container's `PATH`).
    pub fn new<S: AsRef<str>>(args: impl IntoIterator<Item = S>) -> Self {
        ExecBuilder {
            args: args.into_iter().map(|a| a.as_ref().to_string()).collect(),
            env: Vec::new(),
            cwd: None,
            user: None,
            stdio: [Stdio::Null, Stdio::Null, Stdio::Null],
        }
    }

    /// Add (or replace) `KEY=value` in the environment.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push(format!("{key}={value}"));
        self
    }

    /// The working directory inside the container.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// The user, as `uid[:gid]`.
    pub fn user(mut self, user: &str) -> Self {
        self.user = Some(user.to_string());
        self
    }

    /// The process's stdin (default [`Stdio::Null`]).
    pub fn stdin(mut self, s: Stdio) -> Self {
        self.stdio[0] = s;
        self
    }

    /// The process's stdout (default [`Stdio::Null`]).
    pub fn stdout(mut self, s: Stdio) -> Self {
        self.stdio[1] = s;
        self
    }

    /// The process's stderr (default [`Stdio::Null`]).
    pub fn stderr(mut self, s: Stdio) -> Self {
        self.stdio[2] = s;
        self
    }
}

/// A process started by [`Container::exec`].
#[derive(Debug)]
pub struct Process {
    inner: Arc<Inner>,
    pid: i32,
    stdin: Mutex<Option<ChildStdin>>,
    stdout: Mutex<Option<ChildStdout>>,
    stderr: Mutex<Option<ChildStderr>>,
    notify: Mutex<Option<OwnedFd>>,
}

impl Process {
    /// Its host pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Block until it has exited; its exit status.
    pub fn wait(&self) -> Result<ExitStatus> {
        self.inner.wait(Some(self.pid))
    }

    /// Send it `signal`.
    pub fn kill(&self, signal: i32) -> Result<()> {
        self.inner.kill(signal, false, Some(self.pid))
    }

    /// A pidfd of it (readable once it has exited); see [`Container::pidfd`].
    pub fn pidfd(&self) -> Result<OwnedFd> {
        self.inner.pidfd(Some(self.pid))
    }

    /// The caller's end of its stdin pipe, once.
    pub fn take_stdin(&self) -> Option<ChildStdin> {
        lock(&self.stdin).take()
    }

    /// The caller's end of its stdout pipe, once.
    pub fn take_stdout(&self) -> Option<ChildStdout> {
        lock(&self.stdout).take()
    }

    /// The caller's end of its stderr pipe, once.
    pub fn take_stderr(&self) -> Option<ChildStderr> {
        lock(&self.stderr).take()
    }

    /// Its seccomp notify descriptor, once (see [`ContainerBuilder::seccomp_notify`]).
    pub fn seccomp_notify_fd(&self) -> Option<OwnedFd> {
        lock(&self.notify).take()
    }
}
