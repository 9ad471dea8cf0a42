//! sealrun: a hardened, minimal, OCI-compatible container runtime.
//!
//! The library is the product; the `sealrun` binary is a thin runc-compatible CLI over it.
//! The rule that keeps it readable: pure decisions in [`spec`], irreversible actions in
//! `init` and [`container`], `unsafe` only in `sys` (both private).
//!
//! # Embedding: quick start
//! Programs that run containers use [`Sandbox`]: a handle configured once and shared between
//! threads, a [`ContainerBuilder`] per container (a bundle directory, or a runtime-spec value
//! in memory plus a root filesystem), and a [`Container`] to start, wait for, `exec` into,
//! signal, pause, inspect ([`State`], the [`audit::AuditRecord`]) and delete.
//!
//! ```no_run
//! use std::io::Read;
//! use sealrun::{ExecBuilder, Sandbox, Stdio};
//!
//! # fn main() -> sealrun::Result<()> {
//! let sandbox = Sandbox::builder()
//!     .state_root("/run/my-service")
//!     .build()?; // finds the sealrun binary: see `sandbox` (or set SEALRUN_BINARY)
//!
//! // Run `sh -c ...` in a busybox root, with sealrun's defaults (namespaces, Landlock,
//! // the default seccomp profile, a minimal capability set).
//! let spec = sealrun::sandbox_spec(&["sh", "-c", "echo hello; sleep 5"])?;
//! let c = sandbox
//!     .container("job-1")
//!     .spec(spec)
//!     .rootfs("/srv/busybox-rootfs")
//!     .stdout(Stdio::Pipe)
//!     .create()?;
//! let mut out = c.take_stdout().expect("piped");
//! c.start()?;
//!
//! // Another process in the running container, with its own pipes and exit status.
//! let p = c.exec(ExecBuilder::new(["id", "-u"]).stdout(Stdio::Pipe))?;
//! assert!(p.wait()?.success());
//!
//! let mut text = String::new();
//! out.read_to_string(&mut text).expect("read");
//! let status = c.wait()?; // blocks this thread only; any thread may call it
//! println!("{text}exited: {status}; audit: {:?}", c.audit()?);
//! c.delete()?;
//! # Ok(())
//! # }
//! ```
//!
//! The calling program is never modified: every container is served by a helper process
//! (the sealed sealrun binary), so the caller may have any number of threads and keeps its
//! working directory, dumpable flag, signal mask, namespaces and children. See [`sandbox`]
//! for how the helper works and how the runtime binary is found, and `examples/sandbox.rs`
//! for a hardened run with a strict seccomp profile, limits, a timeout and the audit record.
//!
//! Nothing else in the safe public API changes the calling process either. The functions of
//! [`container`] are the CLI's: they act in the calling process (they fork, `setns`, change
//! the working directory and the dumpable flag), so they take a [`container::Runtime`], which
//! only the `unsafe` [`container::Runtime::new`] makes: a program reaches them only by
//! promising that it is a runtime process of its own (the `sealrun` binary, a shim's worker).
//! The same holds for re-executing through the protected executable
//! ([`selfexe::ensure_sealed`]); what confines or moves a process (Landlock, seccomp,
//! namespaces, cgroup membership) is not public at all.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod cgroups;
pub mod check;
pub mod container;
pub mod error;
pub mod features;
pub mod hooks;
pub(crate) mod init;
pub mod landlock;
pub(crate) mod log;
pub mod namespaces;
pub mod policy;
pub mod sandbox;
pub mod seccomp;
pub mod selfexe;
pub mod spec;
pub(crate) mod sync;
pub(crate) mod sys;

/// Process primitives for a dedicated runtime process built on [`container`]'s in-process
/// functions (the native containerd shim and its workers): reset signals, reap children
/// through a signalfd as a subreaper; and the descriptor primitives it shares with the
/// library (claim, copy, receive, resize).
/// The ones that change the calling process are `unsafe fn`: each says what it changes, and
/// the caller promises the process is its own (see [`container::Runtime::new`]). Embedders
/// use [`Sandbox`].
#[doc(hidden)]
#[allow(unsafe_code)]
pub mod worker {
    use std::os::fd::{OwnedFd, RawFd};

    use nix::sys::signal::Signal;

    pub use crate::sys::process::{kill, read_signalfd};
    pub use crate::sys::socket::{recv_with_fds, Received};
    pub use crate::sys::spawn::dup_above;
    pub use crate::sys::tty::set_winsize;

    /// Make the calling process the subreaper of its descendants.
    ///
    /// # Safety
    /// Orphaned descendants become the caller's children, which it must then reap: the
    /// caller must own the process.
    pub unsafe fn set_child_subreaper() -> nix::Result<()> {
        crate::sys::process::set_child_subreaper()
    }

    /// Reset every signal disposition of the calling process to its default and unblock
    /// every signal.
    ///
    /// # Safety
    /// Handlers other code in the process installed are gone: the caller must own the
    /// process.
    pub unsafe fn reset_signals() -> nix::Result<()> {
        crate::sys::process::reset_signals()
    }

    /// Block `signals` in the calling thread and return a `signalfd` reading them.
    ///
    /// # Safety
    /// The signals stay blocked (and so are inherited blocked by children until reset): the
    /// caller must own the process.
    pub unsafe fn signalfd(signals: &[Signal]) -> nix::Result<OwnedFd> {
        crate::sys::process::signalfd(signals)
    }

    /// Take ownership of descriptors `first..end` that the parent left open across `exec`.
    ///
    /// # Safety
    /// Nothing else in the process may own or use those numbers (call it first thing in the
    /// process's `main`); a second call fails with `EBUSY`.
    pub unsafe fn claim_inherited_fds(first: RawFd, end: RawFd) -> nix::Result<Vec<OwnedFd>> {
        crate::sys::spawn::claim_inherited_fds(first, end)
    }
}

// Visible skips for the unit tests, shared with the integration tests.
#[cfg(test)]
#[path = "../tests/common/skip.rs"]
pub(crate) mod test_skip;

pub use error::{Error, Result, Step};
pub use log::{Format as LogFormat, Level as LogLevel};
pub use sandbox::{
    sandbox_spec, Container, ContainerBuilder, ExecBuilder, ExitStatus, LandlockOptions, LogRecord,
    Process, Sandbox, SandboxBuilder, State, Status, Stdio,
};

/// The log of a runtime process: the `sealrun` binary's `--log FILE`, `--log-format` and
/// `--debug` (runc's flags; containerd reads the last error line of that file). It is
/// process-wide and set once, so it suits a process that is itself a runtime (the CLI, a
/// shim's worker). Embedders do not need it: their helpers log to
/// [`SandboxBuilder::log_file`] or [`SandboxBuilder::log_sink`].
#[derive(Debug)]
pub struct ProcessLog(());

impl ProcessLog {
    /// Send this process's log records to `file` (appended to; created if missing) in
    /// `format`, debug records included with `debug`. Without a file, warnings and errors go
    /// to stderr. Only the first call takes effect.
    pub fn init(
        file: Option<&std::path::Path>,
        format: LogFormat,
        debug: bool,
    ) -> std::io::Result<()> {
        log::init(file, format, debug)
    }

    /// Write an error record to the log file (not to stderr: the caller prints its error).
    pub fn error(msg: &str) {
        log::error(msg)
    }

    /// Write a debug record (only when initialised with `debug`).
    pub fn debug(msg: &str) {
        log::debug(msg)
    }

    /// Write a warning record (to stderr when no log file was given).
    pub fn warn(msg: &str) {
        log::warn(msg)
    }
}

/// The runtime-spec version sealrun implements.
pub const OCI_VERSION: &str = "1.2.0";
