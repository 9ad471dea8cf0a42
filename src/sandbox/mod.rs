//! The embedding API: run containers from any program, including a multi-threaded one,
//! without the program itself being changed.
//!
//! A [`Sandbox`] is configured once (state root, runtime binary, log file) and shared freely
//! between threads. [`Sandbox::container`] returns a [`ContainerBuilder`]; its
//! [`create`](ContainerBuilder::create) gives a [`Container`] with `start`, `kill`, `wait`,
//! `exec`, `pause`, `resume`, `state`, `audit` and `delete`.
//!
//! # The caller is never modified
//! Every container has a *helper process*: the sealrun runtime binary itself, started with
//! [`std::process::Command`] (safe from multi-threaded programs) with a hidden `__helper`
//! command. Only its control socket is inherited (as its stdin): the container's stdio, the
//! log and preserved descriptors follow in the first message, so the spawn runs no code
//! between fork and exec and std uses `posix_spawn` (the caller is never forked). The helper
//! runs protected from its first instruction: [`SandboxBuilder::build`] makes the runtime
//! binary a protected executable once (the detached read-only overlay the CLI re-executes
//! through, or a sealed memfd copy where no overlay can be made), holds it by a
//! close-on-exec descriptor, and starts every helper from it, so no helper copies or
//! re-executes itself. The helper creates the container, stays its parent and child
//! subreaper, reaps its processes and
//! answers the library over a private socket. Forking, `setns`, `chdir`, the non-dumpable flag
//! and signal handling all happen there: the calling program keeps its working directory,
//! dumpable flag, signal mask, namespaces and children. Exit statuses come from the helper,
//! never from the caller's `SIGCHLD`. The helper is the caller's only child, and it is reaped
//! by [`Container::delete`] (or when the `Container` is dropped).
//!
//! # Finding the runtime binary
//! In this order: [`SandboxBuilder::runtime_binary`]; the environment variable
//! `SEALRUN_BINARY`; a `sealrun` file next to [`std::env::current_exe`] or in its parent
//! directory (cargo's `target/*/examples/` and `target/*/deps/` layout); then each directory
//! of `$PATH`.

mod builder;
mod container;
pub(crate) mod helper;
mod options;
mod process;
mod sink;
mod wire;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::audit::AuditRecord;
use crate::container::{Runtime, StateRoot};
use crate::error::{Context, Error, Result};

pub use builder::ContainerBuilder;
pub use container::Container;
#[doc(hidden)]
pub use helper::helper_main;
pub use options::LandlockOptions;
pub use process::{ExecBuilder, Process};
pub use sink::LogRecord;
pub use std::process::ExitStatus;

/// The environment variable naming the runtime binary (see the [module docs](self)).
pub const BINARY_ENV: &str = "SEALRUN_BINARY";

/// Where a container process's stdin, stdout or stderr goes.
#[derive(Debug, Default)]
pub enum Stdio {
    /// The calling program's own descriptor.
    Inherit,
    /// `/dev/null` (the default).
    #[default]
    Null,
    /// A new pipe; the caller's end is returned by `take_stdin`/`take_stdout`/`take_stderr`.
    Pipe,
    /// This descriptor (a file, a socket, one end of the caller's own pipe).
    Fd(OwnedFd),
}

/// Settings every container of a [`Sandbox`] shares.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) root: PathBuf,
    pub(crate) binary: PathBuf,
    /// The runtime binary as a protected executable (a detached read-only overlay, or a
    /// sealed memfd copy), made once: every helper is started from it, so none copies or
    /// re-executes itself.
    pub(crate) exe: OwnedFd,
    /// Where the helpers log (a copy of it is each helper's log): the log file, or the pipe
    /// to the log thread; `None`: nowhere.
    pub(crate) log: Option<OwnedFd>,
    /// The helpers log debug records too.
    pub(crate) log_debug: bool,
    pub(crate) policy: PolicySource,
}

/// Where the helpers' operator policy comes from.
#[derive(Debug, Clone, Default)]
pub(crate) enum PolicySource {
    /// `/etc/sealrun/policy.json` when it exists, as for the CLI.
    #[default]
    Host,
    /// This file (`--policy`).
    File(PathBuf),
    /// This value, sent with each container's create.
    Value(Box<crate::policy::Policy>),
}

impl PolicySource {
    /// The policy itself (a file is read again: the helper reads it at each create too).
    pub(crate) fn resolve(&self) -> Result<crate::policy::Policy> {
        match self {
            PolicySource::Host => crate::policy::Policy::load(None),
            PolicySource::File(p) => crate::policy::Policy::load(Some(p)),
            PolicySource::Value(p) => Ok((**p).clone()),
        }
    }
}

/// A handle on sealrun configured once: where container state lives, which runtime binary
/// runs the helpers, where they log (a file or a function of the program's: a log sink), the
/// operator policy. Cheap to clone and safe to share between threads.
///
/// ```no_run
/// # fn main() -> sealrun::Result<()> {
/// let sandbox = sealrun::Sandbox::builder().state_root("/run/my-sandbox").build()?;
/// let status = sandbox.run(
///     sandbox
///         .container("job-1")
///         .spec(sealrun::sandbox_spec(&["/bin/echo", "hello"])?)
///         .rootfs("/srv/rootfs"),
/// )?;
/// assert!(status.success());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Sandbox {
    settings: Arc<Settings>,
}

/// Builds a [`Sandbox`]; see [`Sandbox::builder`].
#[derive(Default)]
pub struct SandboxBuilder {
    root: Option<PathBuf>,
    binary: Option<PathBuf>,
    log: Option<PathBuf>,
    sink: Option<sink::SinkFn>,
    log_debug: bool,
    policy: PolicySource,
}

impl std::fmt::Debug for SandboxBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxBuilder")
            .field("root", &self.root)
            .field("binary", &self.binary)
            .field("log", &self.log)
            .field("sink", &self.sink.as_ref().map(|_| "fn"))
            .field("log_debug", &self.log_debug)
            .field("policy", &self.policy)
            .finish()
    }
}

impl SandboxBuilder {
    /// The state directory (`--root` of the CLI); default `/run/sealrun`.
    pub fn state_root(mut self, path: impl Into<PathBuf>) -> Self {
        self.root = Some(path.into());
        self
    }

    /// The sealrun runtime binary the helper processes run (see the [module docs](self)).
    pub fn runtime_binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// A log file the helpers append to (JSON lines, audit records included), opened once
    /// by [`build`](Self::build); by default they log nothing. Replaces a
    /// [`log_sink`](Self::log_sink).
    pub fn log_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.log = Some(path.into());
        self.sink = None;
        self
    }

    /// Hand every log record of the helpers to `sink`, in this program: warnings, errors,
    /// and each container's audit record (message `"container protections"`, the record's
    /// fields as [`LogRecord::fields`]). `sink` runs on a thread of the library's, one record
    /// at a time, in the order the helpers wrote them; it should return quickly. Replaces a
    /// [`log_file`](Self::log_file).
    ///
    /// ```no_run
    /// # fn main() -> sealrun::Result<()> {
    /// let sandbox = sealrun::Sandbox::builder()
    ///     .log_sink(|r: &sealrun::LogRecord| eprintln!("sealrun {:?}: {}", r.level, r.message))
    ///     .build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn log_sink(mut self, sink: impl Fn(&LogRecord) + Send + Sync + 'static) -> Self {
        self.sink = Some(std::sync::Arc::new(sink));
        self.log = None;
        self
    }

    /// Log debug records too (the CLI's `--debug`); default off.
    pub fn log_debug(mut self, on: bool) -> Self {
        self.log_debug = on;
        self
    }

    /// The operator policy file every container is held to (as `sealrun --policy`); by
    /// default the helpers read `/etc/sealrun/policy.json` when it exists, as the CLI does.
    /// Replaces a [`policy`](Self::policy).
    pub fn policy_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.policy = PolicySource::File(path.into());
        self
    }

    /// The operator policy every container is held to, as a value (checked by
    /// [`build`](Self::build)), instead of a policy file. Replaces a
    /// [`policy_file`](Self::policy_file).
    ///
    /// ```no_run
    /// # fn main() -> sealrun::Result<()> {
    /// let policy = sealrun::policy::Policy::parse(br#"{"requireSeccomp": true}"#)?;
    /// let sandbox = sealrun::Sandbox::builder().policy(policy).build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn policy(mut self, policy: crate::policy::Policy) -> Self {
        self.policy = PolicySource::Value(Box::new(policy));
        self
    }

    /// Resolve the runtime binary and make the handle (a policy file given is checked now,
    /// a log file opened).
    pub fn build(self) -> Result<Sandbox> {
        let binary = find_binary(self.binary)?;
        let (exe, _) = crate::selfexe::protected_executable(&binary)?;
        match &self.policy {
            PolicySource::File(p) => drop(crate::policy::Policy::load(Some(p))?),
            PolicySource::Value(p) => p.validate()?,
            PolicySource::Host => {}
        }
        let root = self.root.unwrap_or_else(|| PathBuf::from("/run/sealrun"));
        if !root.is_absolute() {
            return Err(Error::InvalidArgument(format!(
                "state root {}: must be an absolute path",
                root.display()
            )));
        }
        let log = match (self.log, self.sink) {
            (Some(path), _) => Some(OwnedFd::from(
                std::fs::File::options()
                    .append(true)
                    .create(true)
                    .open(&path)
                    .op_path("open log file", &path)?,
            )),
            (None, Some(f)) => Some(sink::spawn_reader(f)?),
            (None, None) => None,
        };
        Ok(Sandbox {
            settings: Arc::new(Settings {
                root,
                binary,
                exe,
                log,
                log_debug: self.log_debug,
                policy: self.policy,
            }),
        })
    }
}

fn find_binary(explicit: Option<PathBuf>) -> Result<PathBuf> {
    let is_file = |p: &Path| p.is_file();
    if let Some(p) = explicit {
        return if is_file(&p) {
            Ok(p)
        } else {
            Err(Error::InvalidArgument(format!(
                "runtime binary {}: no such file",
                p.display()
            )))
        };
    }
    if let Some(p) = std::env::var_os(BINARY_ENV) {
        let p = PathBuf::from(p);
        return if is_file(&p) {
            Ok(p)
        } else {
            Err(Error::InvalidArgument(format!(
                "{BINARY_ENV}={}: no such file",
                p.display()
            )))
        };
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            candidates.push(dir.join("sealrun"));
            if let Some(up) = dir.parent() {
                candidates.push(up.join("sealrun"));
            }
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("sealrun")));
    }
    candidates.into_iter().find(|p| is_file(p)).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "runtime binary: no sealrun found (set {BINARY_ENV} or SandboxBuilder::runtime_binary)"
        ))
    })
}

impl Sandbox {
    /// Start configuring a sandbox.
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder::default()
    }

    /// Configure a new container `id` (create it with [`ContainerBuilder::create`]).
    pub fn container(&self, id: impl Into<String>) -> ContainerBuilder {
        ContainerBuilder::new(self.settings.clone(), id.into())
    }

    /// Create, start and wait for a container, then delete it; its process's exit status.
    /// Nobody reads [`Stdio::Pipe`] here: those pipes are closed at once (writes to them
    /// fail), so give `run` [`Stdio::Inherit`], [`Stdio::Null`] or [`Stdio::Fd`].
    pub fn run(&self, builder: ContainerBuilder) -> Result<ExitStatus> {
        let c = builder.create()?;
        drop((c.take_stdin(), c.take_stdout(), c.take_stderr()));
        let status = c.start().and_then(|_| c.wait());
        let deleted = c.force_delete();
        let status = status?;
        deleted?;
        Ok(status)
    }

    /// The state of container `id` (read from the state directory; no helper involved).
    pub fn state(&self, id: &str) -> Result<State> {
        state_of(&self.settings, id)
    }

    /// The audit record of container `id`: what its process enforced, as it read it back.
    pub fn audit(&self, id: &str) -> Result<AuditRecord> {
        crate::container::audit(&runtime(&self.settings), id)
    }
}

/// The lifecycle status of a container (runtime-spec words).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Created, waiting for `start`.
    Created,
    /// Its process runs.
    Running,
    /// Frozen by `pause`.
    Paused,
    /// Its process has exited.
    Stopped,
}

/// The runtime-spec state of a container, typed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// The container id.
    pub id: String,
    /// Its status.
    pub status: Status,
    /// The host pid of its process; `None` once it has stopped.
    pub pid: Option<i32>,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// The root filesystem.
    pub rootfs: PathBuf,
    /// When it was created (RFC 3339).
    pub created: String,
    /// Its annotations.
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// The settings' state root for the read-only queries answered in the caller's process.
pub(crate) fn runtime(settings: &Settings) -> Runtime {
    Runtime::for_queries(StateRoot::new(&settings.root))
}

pub(crate) fn state_of(settings: &Settings, id: &str) -> Result<State> {
    let v = crate::container::state(&runtime(settings), id)?;
    let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    let status = match v["status"].as_str() {
        Some("created") => Status::Created,
        Some("running") => Status::Running,
        Some("paused") => Status::Paused,
        _ => Status::Stopped,
    };
    Ok(State {
        id: text("id"),
        status,
        pid: v["pid"].as_i64().filter(|p| *p > 0).map(|p| p as i32),
        bundle: text("bundle").into(),
        rootfs: text("rootfs").into(),
        created: text("created"),
        annotations: v["annotations"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// A minimal runtime-spec config running `args` with sealrun's defaults (namespaces, mounts,
/// capabilities of `sealrun spec`), for [`ContainerBuilder::spec`]. Edit the returned value
/// to add limits, a seccomp profile, a network namespace path and so on.
pub fn sandbox_spec(args: &[&str]) -> Result<oci_spec::runtime::Spec> {
    let mut spec: oci_spec::runtime::Spec =
        serde_json::from_value(crate::spec::default_config(false)?)
            .map_err(|e| Error::Other(format!("default config: {e}")))?;
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(args.iter().map(|s| s.to_string()).collect()));
    process.set_terminal(Some(false));
    spec.set_process(Some(process));
    Ok(spec)
}
