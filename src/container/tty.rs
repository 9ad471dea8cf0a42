//! Foreground `run`: receive the pty master, proxy it to our own terminal, forward signals to
//! the container process, and wait for it.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::error::{Context, Error, Result};
use crate::sys::{self, process::WaitStatus};

/// Receive the pty master the init sends over the console socket.
pub fn receive_master(sock: BorrowedFd<'_>) -> Result<OwnedFd> {
    let mut buf = [0u8; 256];
    let mut r = sys::socket::recv_with_fds(sock, &mut buf).op("receive pty master")?;
    r.fds
        .pop()
        .ok_or_else(|| Error::Other("console socket: no pty master received".into()))
}

/// Signals the runtime forwards to the container (everything catchable except SIGCHLD, which
/// tells us the container ended, and SIGWINCH, which resizes the pty).
fn forwarded() -> Vec<Signal> {
    Signal::iterator()
        .filter(|s| !matches!(s, Signal::SIGKILL | Signal::SIGSTOP))
        .collect()
}

/// Restores the terminal mode when dropped.
struct RawMode {
    saved: Option<nix::sys::termios::Termios>,
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = sys::tty::restore(std::io::stdin().as_fd(), saved);
        }
    }
}

/// Wait for the container process `pid` (our child), forwarding signals and proxying the pty;
/// returns its exit code, 128+N when killed by signal N.
pub fn wait_forwarding(pid: Pid, master: Option<&OwnedFd>) -> Result<i32> {
    let sigfd = sys::process::signalfd(&forwarded()).op("signalfd")?;
    let stdin = std::io::stdin();
    let _raw = RawMode {
        saved: match master {
            Some(m) if sys::tty::isatty(stdin.as_fd()) => {
                if let Ok(size) = sys::tty::get_winsize(stdin.as_fd()) {
                    let _ = sys::tty::set_winsize(m.as_fd(), size);
                }
                sys::tty::make_raw(stdin.as_fd()).ok()
            }
            _ => None,
        },
    };
    let stdin_is_tty = sys::tty::isatty(stdin.as_fd());
    let mut stdin_open = master.is_some();
    // The last byte forwarded from stdin, to end a pending line before the end of input.
    let mut last = b'\n';
    // After the end of a non-terminal stdin: the pty's mode when its EOF was last sent.
    let mut eof_mode: Option<u64> = None;
    let mut master_open = master.is_some();
    loop {
        if let Some(code) = reap(pid)? {
            if let Some(m) = master.filter(|_| master_open) {
                drain(m.as_fd());
            }
            return Ok(code);
        }
        let mut fds = vec![PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
        if let Some(m) = master {
            if master_open {
                fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
            }
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
        }
        // A program that changes the pty's mode may flush its input, the EOF with it: look
        // again now and then while the end of input has to stay visible.
        let timeout = match eof_mode {
            Some(_) => PollTimeout::from(100u16),
            None => PollTimeout::NONE,
        };
        if let (Some(m), Some(sent)) = (master.filter(|_| master_open), eof_mode) {
            if let Ok((_, mode)) = sys::tty::eof_char_and_mode(m.as_fd()) {
                if mode != sent {
                    eof_mode = Some(send_eof(m.as_fd(), b'\n'));
                }
            }
        }
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(Error::os("poll", None, e)),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        if ready[0] {
            let sig = sys::process::read_signalfd(sigfd.as_fd()).op("read signalfd")?;
            match sig {
                Signal::SIGCHLD => {}
                Signal::SIGWINCH => {
                    if let (Some(m), Ok(size)) = (master, sys::tty::get_winsize(stdin.as_fd())) {
                        let _ = sys::tty::set_winsize(m.as_fd(), size);
                    }
                }
                other => {
                    let _ = sys::process::kill(pid, Some(other));
                }
            }
        }
        if let Some(m) = master {
            let mut i = 1;
            if master_open {
                if ready[i] && copy(m.as_fd(), &mut std::io::stdout()).is_none() {
                    master_open = false;
                }
                i += 1;
            }
            if stdin_open && ready.get(i).copied().unwrap_or(false) {
                let mut out = std::fs::File::from(m.try_clone().op("dup pty master")?);
                match copy(stdin.as_fd(), &mut out) {
                    Some(byte) => last = byte,
                    None => {
                        stdin_open = false;
                        if !stdin_is_tty {
                            eof_mode = Some(send_eof(m.as_fd(), last));
                        }
                    }
                }
            }
        }
    }
}

/// Copy what is available from `from` to `to`; the last byte copied, `None` at end of input.
fn copy(from: BorrowedFd<'_>, to: &mut impl Write) -> Option<u8> {
    let mut buf = [0u8; 8192];
    let mut f = std::fs::File::from(from.try_clone_to_owned().ok()?);
    match f.read(&mut buf) {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            let _ = to.write_all(&buf[..n]);
            let _ = to.flush();
            Some(buf[n - 1])
        }
    }
}

/// stdin (a file, a pipe, /dev/null: not a terminal) has ended: pass the end of input on to
/// the pty as the terminal's EOF character, so a shell reading it exits instead of waiting
/// forever (runc's suite runs terminals with stdin from /dev/null). A pending partial line
/// needs one EOF to end it and another to be an end of input. Returns the pty's mode then.
fn send_eof(master: BorrowedFd<'_>, last: u8) -> u64 {
    let (eof, mode) = sys::tty::eof_char_and_mode(master).unwrap_or((4, 0));
    let n = if last == b'\n' { 1 } else { 2 };
    if let Ok(fd) = master.try_clone_to_owned() {
        let mut out = std::fs::File::from(fd);
        let _ = out.write_all(&vec![eof; n]);
    }
    mode
}

/// After the process exits, print what is still buffered in the pty.
fn drain(master: BorrowedFd<'_>) {
    loop {
        let mut fds = [PollFd::new(master, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(n) if n > 0 => {
                if copy(master, &mut std::io::stdout()).is_none() {
                    return;
                }
            }
            _ => return,
        }
    }
}

/// Reap `pid` if it has exited.
fn reap(pid: Pid) -> Result<Option<i32>> {
    match sys::process::waitpid(pid, Some(sys::process::WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => Ok(Some(code)),
        Ok(WaitStatus::Signaled(_, sig, _)) => Ok(Some(128 + sig as i32)),
        Ok(_) => Ok(None),
        Err(nix::errno::Errno::EINTR) => Ok(None),
        Err(e) => Err(Error::os("waitpid", None, e)),
    }
}
