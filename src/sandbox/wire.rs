//! The control protocol between the library and its helper process: one JSON message per
//! `SOCK_SEQPACKET` datagram, descriptors alongside with `SCM_RIGHTS`. Errors cross it as
//! [`WireError`], so the caller gets the same typed [`Error`] the helper saw.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result, Step};
use crate::sys;

/// Largest message either side sends (requests carry no config: the bundle is on disk).
const MAX_MSG: usize = 64 * 1024;

/// What the library asks of the helper.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Request {
    /// Create the container from a bundle on disk.
    Create {
        id: String,
        bundle: PathBuf,
        /// The library wrote this bundle: the helper removes it with the container.
        generated: bool,
        no_pivot: bool,
        no_new_keyring: bool,
        /// Where the init sends its pty master (`process.terminal`).
        console_socket: Option<PathBuf>,
        /// The operator policy, when the program gave it as a value (else the helper's own:
        /// `--policy` or the host's file).
        #[serde(default)]
        policy: Option<Box<crate::policy::Policy>>,
    },
    /// Start the created container.
    Start,
    /// Signal the init, a process `exec` started (`pid`), or with `all` every process of the
    /// container.
    Kill {
        signal: i32,
        all: bool,
        pid: Option<i32>,
    },
    /// Run a process in the container; stdin, stdout, stderr travel with the message, then
    /// the descriptors it gets as 3, 4, ... (`preserve_fds`).
    Exec {
        args: Vec<String>,
        env: Vec<String>,
        cwd: Option<PathBuf>,
        user: Option<String>,
        /// A pty for the process, its master sent to this socket.
        console_socket: Option<PathBuf>,
        /// Capabilities added to the process's (`exec --cap`).
        #[serde(default)]
        caps: Vec<String>,
        #[serde(default)]
        additional_gids: Vec<u32>,
        #[serde(default)]
        no_new_privs: bool,
    },
    /// Reply when `pid` (the init when `None`) has exited.
    Wait { pid: Option<i32> },
    /// A new connection to the helper (sent back as a descriptor), for a blocking call.
    Connect,
    /// A pidfd of `pid` (the init when `None`), sent back as a descriptor.
    Pidfd { pid: Option<i32> },
    /// Change the container's cgroup limits.
    Update {
        resources: Box<oci_spec::runtime::LinuxResources>,
    },
    /// Freeze the container.
    Pause,
    /// Thaw the container.
    Resume,
    /// Delete the container; the helper exits afterwards.
    Delete { force: bool },
}

/// The helper's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub(crate) enum Reply {
    /// Done.
    Ok,
    /// A process runs: the init after `Create`, the new process after `Exec`.
    Pid { pid: i32 },
    /// The process ended with this raw wait status.
    Exited { status: i32 },
    /// It failed.
    Error { error: WireError },
}

/// [`Error`] in a form that crosses the socket.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub(crate) enum WireError {
    InvalidConfig {
        field: String,
        reason: String,
    },
    InvalidArgument {
        message: String,
    },
    Unsupported {
        message: String,
    },
    NotFound {
        id: String,
    },
    AlreadyExists {
        id: String,
    },
    WrongState {
        id: String,
        status: String,
        reason: String,
    },
    Os {
        op: String,
        path: Option<PathBuf>,
        errno: i32,
    },
    Init {
        step: u8,
        errno: i32,
        message: String,
    },
    Hook {
        kind: String,
        path: String,
        reason: String,
    },
    Other {
        message: String,
    },
}

/// The hook kinds, as `'static` names for [`Error::Hook`].
const HOOK_KINDS: &[&str] = &[
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

impl From<&Error> for WireError {
    fn from(e: &Error) -> Self {
        match e {
            Error::InvalidConfig { field, reason } => WireError::InvalidConfig {
                field: field.clone(),
                reason: reason.clone(),
            },
            Error::InvalidArgument(m) => WireError::InvalidArgument { message: m.clone() },
            Error::Unsupported(m) => WireError::Unsupported { message: m.clone() },
            Error::NotFound(id) => WireError::NotFound { id: id.clone() },
            Error::AlreadyExists(id) => WireError::AlreadyExists { id: id.clone() },
            Error::WrongState { id, status, reason } => WireError::WrongState {
                id: id.clone(),
                status: status.clone(),
                reason: reason.clone(),
            },
            Error::Os { op, path, errno } => WireError::Os {
                op: op.clone(),
                path: path.clone(),
                errno: *errno as i32,
            },
            Error::Init {
                step,
                errno,
                message,
            } => WireError::Init {
                step: *step as u8,
                errno: *errno,
                message: message.clone(),
            },
            Error::Hook { kind, path, reason } => WireError::Hook {
                kind: kind.to_string(),
                path: path.clone(),
                reason: reason.clone(),
            },
            other => WireError::Other {
                message: other.to_string(),
            },
        }
    }
}

impl From<WireError> for Error {
    fn from(e: WireError) -> Self {
        match e {
            WireError::InvalidConfig { field, reason } => Error::InvalidConfig { field, reason },
            WireError::InvalidArgument { message } => Error::InvalidArgument(message),
            WireError::Unsupported { message } => Error::Unsupported(message),
            WireError::NotFound { id } => Error::NotFound(id),
            WireError::AlreadyExists { id } => Error::AlreadyExists(id),
            WireError::WrongState { id, status, reason } => {
                Error::WrongState { id, status, reason }
            }
            WireError::Os { op, path, errno } => Error::Os {
                op,
                path,
                errno: nix::errno::Errno::from_raw(errno),
            },
            WireError::Init {
                step,
                errno,
                message,
            } => match Step::from_u8(step) {
                Some(step) => Error::Init {
                    step,
                    errno,
                    message,
                },
                None => Error::Other(message),
            },
            WireError::Hook { kind, path, reason } => {
                match HOOK_KINDS.iter().find(|k| **k == kind) {
                    Some(kind) => Error::Hook { kind, path, reason },
                    None => Error::Other(format!("{kind} hook {path}: {reason}")),
                }
            }
            WireError::Other { message } => Error::Other(message),
        }
    }
}

/// Send one message with descriptors.
pub(crate) fn send<T: Serialize>(
    sock: BorrowedFd<'_>,
    msg: &T,
    fds: &[BorrowedFd<'_>],
) -> Result<()> {
    let data = serde_json::to_vec(msg).map_err(|e| Error::Other(format!("helper: {e}")))?;
    let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
    sys::socket::send_with_fds(sock, &data, &raw).op("send to sealrun helper")
}

/// Receive one message and its descriptors; `None` when the peer has closed.
pub(crate) fn recv<T: for<'de> Deserialize<'de>>(
    sock: BorrowedFd<'_>,
) -> Result<Option<(T, Vec<OwnedFd>)>> {
    let mut buf = vec![0u8; MAX_MSG];
    let got = sys::socket::recv_with_fds(sock, &mut buf).op("receive from sealrun helper")?;
    if got.len == 0 {
        return Ok(None);
    }
    let msg = serde_json::from_slice(&buf[..got.len])
        .map_err(|e| Error::Other(format!("helper protocol: {e}")))?;
    Ok(Some((msg, got.fds)))
}

/// The raw wait status (as `waitpid(2)` reports it) of a process that exited with `code`.
pub(crate) fn raw_exited(code: i32) -> i32 {
    (code & 0xff) << 8
}

/// The raw wait status of a process killed by `signal`.
pub(crate) fn raw_signaled(signal: i32, core: bool) -> i32 {
    (signal & 0x7f) | if core { 0x80 } else { 0 }
}
