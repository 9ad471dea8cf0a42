//! [`ExecBuilder`] and [`Process`]: another process in a running container.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{ChildStderr, ChildStdin, ChildStdout, ExitStatus};
use std::sync::{Arc, Mutex};

use super::container::{lock, Inner};
use super::Stdio;
use crate::error::Result;

/// A process to run in a container with [`Container::exec`](crate::Container::exec); it inherits the container
/// process's settings (user, capabilities, seccomp, Landlock, environment) unless changed here.
#[derive(Debug)]
pub struct ExecBuilder {
    pub(super) args: Vec<String>,
    pub(super) env: Vec<String>,
    pub(super) cwd: Option<PathBuf>,
    pub(super) user: Option<String>,
    pub(super) stdio: [Stdio; 3],
    pub(super) terminal: bool,
    pub(super) caps: Vec<String>,
    pub(super) additional_gids: Vec<u32>,
    pub(super) no_new_privs: bool,
    pub(super) preserved: Vec<OwnedFd>,
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
            terminal: false,
            caps: Vec::new(),
            additional_gids: Vec::new(),
            no_new_privs: false,
            preserved: Vec::new(),
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

    /// Add capability `name` (`"CAP_NET_RAW"`, or without the `CAP_` prefix) to the ones
    /// the container's process has (runc's `exec --cap`); the operator policy still applies.
    pub fn capability(mut self, name: &str) -> Self {
        self.caps.push(name.to_string());
        self
    }

    /// Supplementary groups of the process (runc's `exec --additional-gids`).
    pub fn additional_gids(mut self, gids: impl IntoIterator<Item = u32>) -> Self {
        self.additional_gids.extend(gids);
        self
    }

    /// Set `no_new_privs` for the process even if the container's process has it off.
    pub fn no_new_privileges(mut self, on: bool) -> Self {
        self.no_new_privs = on;
        self
    }

    /// Pass `fd` to the process: the first one given becomes its descriptor 3, the next 4,
    /// and so on (runc's `exec --preserve-fds`, as typed values). It stays open in the
    /// process only; the library and the helper close their copies.
    pub fn preserve_fd(mut self, fd: OwnedFd) -> Self {
        self.preserved.push(fd);
        self
    }

    /// Give the process a new pseudo-terminal; its master comes from
    /// [`Process::pty_master`]. Stdio settings are then unused.
    pub fn terminal(mut self, on: bool) -> Self {
        self.terminal = on;
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

/// A process started by [`Container::exec`](crate::Container::exec).
#[derive(Debug)]
pub struct Process {
    pub(super) inner: Arc<Inner>,
    pub(super) pid: i32,
    pub(super) stdin: Mutex<Option<ChildStdin>>,
    pub(super) stdout: Mutex<Option<ChildStdout>>,
    pub(super) stderr: Mutex<Option<ChildStderr>>,
    pub(super) notify: Mutex<Option<OwnedFd>>,
    pub(super) pty: Mutex<Option<OwnedFd>>,
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

    /// A pidfd of it (readable once it has exited); see [`Container::pidfd`](crate::Container::pidfd).
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

    /// The master of its pseudo-terminal ([`ExecBuilder::terminal`]), once.
    pub fn pty_master(&self) -> Option<OwnedFd> {
        lock(&self.pty).take()
    }

    /// Its seccomp notify descriptor, once (see [`ContainerBuilder::seccomp_notify`](crate::ContainerBuilder::seccomp_notify)).
    pub fn seccomp_notify_fd(&self) -> Option<OwnedFd> {
        lock(&self.notify).take()
    }
}
