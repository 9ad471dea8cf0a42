//! The one error type of sealrun, the setup steps that name where an error happened, and the
//! small extension trait that attaches context to OS errors.
//!
//! Variants are chosen by what a caller can act on, not by where the error came from. Their
//! messages use the words containerd and podman match on: "does not exist", "container not
//! running", "executable file not found in $PATH", "permission denied",
//! "no such file or directory".

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in sealrun, grouped by what the caller can do about it.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bundle's config.json (or a process.json, or a resources file) is wrong; `field` is the
    /// JSON path of the offending value, e.g. `process.args` or `mounts[2].destination`.
    #[error("invalid configuration: {field}: {reason}")]
    InvalidConfig {
        /// JSON path of the offending field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A command-line argument is wrong.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The request is valid but sealrun (or this kernel) does not support it.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// No container with this id.
    #[error("container {0} does not exist")]
    NotFound(String),
    /// A container with this id already exists.
    #[error("container with id {0} already exists")]
    AlreadyExists(String),
    /// The container is in the wrong state for the operation.
    #[error("container {id} is {status}: {reason}")]
    WrongState {
        /// Container id.
        id: String,
        /// Its current status.
        status: String,
        /// What could not be done and why.
        reason: String,
    },
    /// A system call failed.
    #[error("{op}{}: {}", fmt_path(.path), errno_text(*.errno))]
    Os {
        /// The operation, named after the syscall or the action (`mount`, `open`, `write cgroup`).
        op: String,
        /// The path it acted on, if any.
        path: Option<PathBuf>,
        /// The errno.
        errno: Errno,
    },
    /// The container's init process failed at a setup step.
    #[error("init failed at {step}: {message}")]
    Init {
        /// Where the init story stopped.
        step: Step,
        /// errno of the failure (0 when it was not a system call).
        errno: i32,
        /// The init's own description of the failure.
        message: String,
    },
    /// The helper process of `exec` failed at a setup step (same steps as the init).
    #[error("exec failed at {step}: {message}")]
    Exec {
        /// Where the exec story stopped.
        step: Step,
        /// errno of the failure (0 when it was not a system call).
        errno: i32,
        /// The helper's own description of the failure.
        message: String,
    },
    /// A lifecycle hook failed.
    #[error("error running hook: {kind} hook {path}: {reason}")]
    Hook {
        /// Which hook list (`prestart`, `createRuntime`, ...).
        kind: &'static str,
        /// The hook's path.
        path: String,
        /// Exit status, timeout or spawn error.
        reason: String,
    },
    /// Anything else that has no better home; kept rare on purpose.
    #[error("{0}")]
    Other(String),
}

fn fmt_path(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => format!(" {}", p.display()),
        None => String::new(),
    }
}

/// Lower-case errno text, the way Go (and therefore runc) prints errors, so clients that match
/// on "no such file or directory" or "permission denied" recognise ours.
pub fn errno_text(errno: Errno) -> String {
    let text = errno.desc();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl Error {
    /// An OS error for `op` on `path`.
    pub fn os(op: impl Into<String>, path: Option<&Path>, errno: Errno) -> Self {
        Error::Os {
            op: op.into(),
            path: path.map(Path::to_path_buf),
            errno,
        }
    }

    /// An invalid-config error naming `field`.
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidConfig {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The errno behind this error, when there is one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Os { errno, .. } => Some(*errno),
            Error::Init { errno, .. } | Error::Exec { errno, .. } if *errno != 0 => {
                Some(Errno::from_raw(*errno))
            }
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        match e.raw_os_error() {
            Some(raw) => Error::os("io", None, Errno::from_raw(raw)),
            None => Error::Other(e.to_string()),
        }
    }
}

/// Attach an operation name (and optionally a path) to an OS error.
pub trait Context<T> {
    /// Name the operation that failed.
    fn op(self, op: &str) -> Result<T>;
    /// Name the operation and the path it acted on.
    fn op_path(self, op: &str, path: &Path) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, Errno> {
    fn op(self, op: &str) -> Result<T> {
        self.map_err(|e| Error::os(op, None, e))
    }
    fn op_path(self, op: &str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::os(op, Some(path), e))
    }
}

impl<T> Context<T> for io::Result<T> {
    fn op(self, op: &str) -> Result<T> {
        self.map_err(|e| io_to_error(op, None, e))
    }
    fn op_path(self, op: &str, path: &Path) -> Result<T> {
        self.map_err(|e| io_to_error(op, Some(path), e))
    }
}

fn io_to_error(op: &str, path: Option<&Path>, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(raw) => Error::os(op, path, Errno::from_raw(raw)),
        None => Error::Other(match path {
            Some(p) => format!("{op} {}: {e}", p.display()),
            None => format!("{op}: {e}"),
        }),
    }
}

macro_rules! steps {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// The container setup story, in order. Each variant names one step in code, in error
        /// messages ("init failed at pivot-root: ...") and in the docs.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Step {
            $($(#[$doc])* $variant,)*
        }

        impl Step {
            /// Every step, in story order.
            pub const ALL: &'static [Step] = &[$(Step::$variant,)*];

            /// The step's name as used in messages.
            pub fn name(self) -> &'static str {
                match self { $(Step::$variant => $name,)* }
            }

            /// Decode a step sent over the sync channel.
            pub fn from_u8(v: u8) -> Option<Step> {
                Step::ALL.get(v as usize).copied()
            }
        }
    };
}

steps! {
    /// Wait for id maps and cgroups, join namespaces given by path, unshare the rest.
    Namespaces = "namespaces",
    /// Set hostname and domainname.
    Hostname = "hostname",
    /// Propagation, rootfs bind, mounts resolved inside the root, devices, console.
    Rootfs = "rootfs",
    /// createContainer hooks, in the container's mount namespace before pivot_root.
    CreateContainerHooks = "create-container-hooks",
    /// pivot_root (or chroot with --no-pivot) and detach the old root.
    PivotRoot = "pivot-root",
    /// Read-only root, masked paths, read-only paths, sysctl.
    Finalize = "finalize-rootfs",
    /// rlimits, personality, umask, oom score, scheduler, I/O priority.
    Limits = "limits",
    /// setsid and the controlling terminal.
    Terminal = "terminal",
    /// Resolve the executable and change directory.
    Executable = "executable",
    /// Close-on-exec every fd the container must not inherit.
    Fds = "fds",
    /// Landlock ruleset.
    Landlock = "landlock",
    /// seccomp before the capability drop (no_new_privs off).
    SeccompEarly = "seccomp-early",
    /// Supplementary groups, uid/gid and the five capability sets.
    Identity = "identity",
    /// no_new_privs.
    NoNewPrivileges = "no-new-privileges",
    /// seccomp after no_new_privs.
    Seccomp = "seccomp",
    /// Ready, wait for start, startContainer hooks, execve.
    Exec = "exec",
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_round_trip_through_u8() {
        for (i, step) in Step::ALL.iter().enumerate() {
            assert_eq!(Step::from_u8(i as u8), Some(*step));
        }
        assert_eq!(Step::from_u8(Step::ALL.len() as u8), None);
    }

    #[test]
    fn step_names_are_distinct() {
        let mut names: Vec<&str> = Step::ALL.iter().map(|s| s.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Step::ALL.len(), "{names:?}");
    }

    #[test]
    fn exec_and_init_failures_say_which() {
        let init = Error::Init {
            step: Step::Identity,
            errno: 1,
            message: "x".into(),
        };
        let exec = Error::Exec {
            step: Step::Identity,
            errno: 1,
            message: "x".into(),
        };
        assert_eq!(init.to_string(), "init failed at identity: x");
        assert_eq!(exec.to_string(), "exec failed at identity: x");
        assert_eq!(exec.errno(), Some(Errno::EPERM));
    }

    #[test]
    fn os_errors_read_like_runc() {
        let e = Error::os("open", Some(Path::new("/x")), Errno::ENOENT);
        assert_eq!(e.to_string(), "open /x: no such file or directory");
        let e = Error::os("mount", None, Errno::EACCES);
        assert_eq!(e.to_string(), "mount: permission denied");
    }
}
