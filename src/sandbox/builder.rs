//! [`ContainerBuilder`]: the configuration of one container, and `create`, which starts its
//! helper process.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStderr, ChildStdin, ChildStdout};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use oci_spec::runtime::Spec;

use super::container::{Container, Inner};
use super::wire::{self, Reply, Request};
use super::{Settings, Stdio};
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
    terminal: bool,
    preserved: Vec<OwnedFd>,
    no_pivot: bool,
    no_new_keyring: bool,
    landlock: Option<super::LandlockOptions>,
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
            terminal: false,
            preserved: Vec::new(),
            no_pivot: false,
            no_new_keyring: false,
            landlock: None,
        }
    }

    /// Landlock settings beyond sealrun's default, as values (they replace the config's
    /// `run.sealrun.landlock*` annotations).
    pub fn landlock(mut self, options: super::LandlockOptions) -> Self {
        self.landlock = Some(options);
        self
    }

    /// Use the bundle directory `dir` (its `config.json` and the rootfs it names). With
    /// [`rootfs`](Self::rootfs), [`terminal`](Self::terminal), [`landlock`](Self::landlock)
    /// or [`seccomp_notify`](Self::seccomp_notify) the library
    /// writes a changed copy of the config into a bundle of its own: relative paths in it
    /// other than `root.path` (mount sources, say) then resolve against that directory.
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
    /// ([`Container::seccomp_notify_fd`], [`Process::seccomp_notify_fd`](crate::Process::seccomp_notify_fd)). The config needs
    /// a seccomp profile with `SCMP_ACT_NOTIFY` rules; its `listenerPath` is set to a private
    /// socket of the library.
    pub fn seccomp_notify(mut self, on: bool) -> Self {
        self.seccomp_notify = on;
        self
    }

    /// Pass `fd` to the container's process: the first one given becomes its descriptor 3,
    /// the next 4, and so on (runc's `--preserve-fds`). It stays open in the container only;
    /// the library and the helper close their copies.
    pub fn preserve_fd(mut self, fd: OwnedFd) -> Self {
        self.preserved.push(fd);
        self
    }

    /// Give the container's process a new pseudo-terminal (sets `process.terminal`); the
    /// caller gets its master from [`Container::pty_master`]. Stdio settings are then unused.
    pub fn terminal(mut self, on: bool) -> Self {
        self.terminal = on;
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
        // Private from the start: the seccomp listener socket is bound in it.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&root)
            .op_path("mkdir", &root)?;
        let listener = match self.seccomp_notify {
            true => Some(Listener::bind(&root, "notify")?),
            false => None,
        };
        let console = match self.terminal {
            true => Some(Listener::bind(&root, "console")?),
            false => None,
        };
        let (bundle, generated) =
            self.prepare_bundle(listener.as_ref().map(|l| l.path.as_path()))?;
        let result = self.launch(&bundle, generated, listener, console);
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
            Source::Bundle(dir)
                if listener.is_none()
                    && self.rootfs.is_none()
                    && !self.terminal
                    && self.landlock.is_none() =>
            {
                return Ok((dir.clone(), false))
            }
            Source::Bundle(dir) => {
                let dir = std::fs::canonicalize(dir).op_path("bundle", dir)?;
                let (mut spec, ignored) =
                    crate::spec::load_bundle_with(&dir, &self.settings.policy.resolve()?)?;
                warn_ignored(&ignored);
                if let Some(root) = spec.root().clone() {
                    let mut root = root;
                    root.set_path(dir.join(root.path()));
                    spec.set_root(Some(root));
                }
                spec
            }
            Source::Spec(spec) => (**spec).clone(),
            Source::Json(raw) => {
                let (spec, ignored) = crate::spec::parse_with::<Spec>(
                    raw,
                    "config",
                    &["process", "capabilities"],
                    self.settings.policy.resolve()?.unknown_capabilities,
                )?;
                warn_ignored(&ignored);
                spec
            }
        };
        let mut root = spec
            .root()
            .clone()
            .or_else(|| {
                self.rootfs
                    .as_ref()
                    .map(|_| oci_spec::runtime::Root::default())
            })
            .ok_or_else(|| {
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
        if self.terminal {
            let mut process = spec.process().clone().unwrap_or_default();
            process.set_terminal(Some(true));
            spec.set_process(Some(process));
        }
        if let Some(options) = &self.landlock {
            let mut annotations = spec.annotations().clone().unwrap_or_default();
            options.apply(&mut annotations)?;
            spec.set_annotations(Some(annotations));
        }
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
        console: Option<Listener>,
    ) -> Result<Container> {
        let s = &self.settings;
        // Everything the helper gets travels in the create message: the container's stdio,
        // the helper's log, the preserved descriptors. Only the control socket is inherited,
        // as the helper's stdin, so the spawn needs no code between fork and exec and std can
        // use posix_spawn (no fork of this possibly large, multi-threaded program).
        let (mine, mut passed) = super::container::stdio_fds(self.stdio)?;
        passed.push(match &s.log {
            Some(fd) => fd.try_clone().op("dup log")?,
            None => OwnedFd::from(
                std::fs::File::options()
                    .append(true)
                    .open("/dev/null")
                    .op_path("open", Path::new("/dev/null"))?,
            ),
        });
        passed.extend(self.preserved);
        if passed.len() > sys::socket::MAX_FDS {
            return Err(Error::InvalidArgument(format!(
                "container {}: {} preserved descriptors: at most {}",
                self.id,
                passed.len() - 4,
                sys::socket::MAX_FDS - 4
            )));
        }
        let (ours, theirs) = sys::socket::seqpacket_pair().op("socketpair")?;
        // The protected executable, by its descriptor (close-on-exec: the kernel opens it
        // before closing those, and no other child of the program inherits it).
        let mut cmd = std::process::Command::new(sys::fd::proc_fd_path(s.exe.as_fd()));
        cmd.arg0("sealrun")
            .arg("--root")
            .arg(&s.root)
            .arg("--log-format")
            .arg("json");
        if s.log_debug {
            cmd.arg("--debug");
        }
        if let super::PolicySource::File(p) = &s.policy {
            cmd.arg("--policy").arg(p);
        }
        cmd.arg("__helper")
            .arg("--control-fd")
            .arg("0")
            // Its own process group: a terminal's ^C reaches the caller, which decides.
            .process_group(0)
            .stdin(std::process::Stdio::from(theirs))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = cmd.spawn().op_path("spawn", &s.binary)?;
        drop(cmd);
        let created = (|| -> Result<i32> {
            let borrowed: Vec<_> = passed.iter().map(|f| f.as_fd()).collect();
            wire::send(
                ours.as_fd(),
                &Request::Create {
                    id: self.id.clone(),
                    bundle: bundle.to_path_buf(),
                    generated,
                    no_pivot: self.no_pivot,
                    no_new_keyring: self.no_new_keyring,
                    console_socket: console.as_ref().map(|c| c.path.clone()),
                    policy: match &s.policy {
                        super::PolicySource::Value(p) => Some(p.clone()),
                        _ => None,
                    },
                },
                &borrowed,
            )?;
            drop(passed);
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
        let pty = console.as_ref().and_then(|l| l.take_fd());
        let [stdin, stdout, stderr] = mine;
        let inner = Inner {
            settings: self.settings.clone(),
            id: self.id,
            pid,
            ctl: Mutex::new(Some(ours)),
            stdin: Mutex::new(stdin.map(ChildStdin::from)),
            stdout: Mutex::new(stdout.map(ChildStdout::from)),
            stderr: Mutex::new(stderr.map(ChildStderr::from)),
            helper: Mutex::new(Some(child)),
            notify: Mutex::new(notify),
            pty: Mutex::new(pty),
            listener,
        };
        Ok(Container {
            inner: Arc::new(inner),
        })
    }
}

/// A private socket a descriptor arrives on: a seccomp listener (`listenerPath`) or a pty
/// master (the console socket).
#[derive(Debug)]
pub(super) struct Listener {
    l: UnixListener,
    pub(super) path: PathBuf,
}

impl Listener {
    /// Listen on a new socket `@<what>-<pid>-<n>.sock` in the (private) state root.
    pub(super) fn bind(root: &Path, what: &str) -> Result<Listener> {
        let path = root.join(format!(
            "@{what}-{}-{}.sock",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let l = UnixListener::bind(&path).op_path("bind", &path)?;
        Ok(Listener { l, path })
    }

    /// The descriptor the runtime sent, if it sent one (it did before replying).
    pub(super) fn take_fd(&self) -> Option<OwnedFd> {
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

/// The library rewrites such a config before its helper sees it, so the warning for a name
/// the policy lets through (unknownCapabilities "warn") is this process's to give.
fn warn_ignored(ignored: &[crate::spec::IgnoredCapability]) {
    for i in ignored {
        crate::log::warn(&i.warning());
    }
}
