//! The worker's side of a process's stdio: containerd's FIFOs or `file://` targets put on the
//! worker's fds 0-2 while the library creates the process (which inherits them), or a console
//! socket whose pty master comes back with the reply.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::unistd::{dup, dup2};
use serde_json::Value;

use crate::worker::{recv_msg, Reply, Stdio};

/// Runs `f` with the process's stdio as the worker's fds 0-2 (what the library gives the
/// container) and, for a terminal, a console socket whose master is returned with the reply.
pub fn with_stdio(
    dir: &Path,
    name: &str,
    stdio: &Stdio,
    f: impl FnOnce(Option<PathBuf>) -> Result<i32, String>,
) -> (Reply, Option<OwnedFd>) {
    let result = (|| -> Result<(i32, Option<OwnedFd>), String> {
        if stdio.terminal {
            // A short path: sun_path holds 108 bytes; the bundle may be deep.
            let sock = std::env::temp_dir().join(format!(
                "sealrun-shim-{}-{}.sock",
                std::process::id(),
                name.chars().take(32).collect::<String>()
            ));
            let _ = std::fs::remove_file(&sock);
            let listener = UnixListener::bind(&sock).map_err(|e| format!("console socket: {e}"))?;
            let null = File::open("/dev/null").map_err(|e| e.to_string())?;
            let r = swap_stdio([Some(null.as_fd()), None, None], || f(Some(sock.clone())));
            let _ = std::fs::remove_file(&sock);
            let pid = r?;
            listener.set_nonblocking(true).map_err(|e| e.to_string())?;
            let (conn, _) = listener
                .accept()
                .map_err(|e| format!("no terminal from the container: {e}"))?;
            let (_, master) = recv_msg(conn.as_fd()).map_err(|e| format!("console: {e}"))?;
            let master = master.ok_or("the console socket carried no terminal")?;
            return Ok((pid, Some(master)));
        }
        let _ = dir;
        let stdin = open_stdio(&stdio.stdin, true)?;
        let stdout = open_stdio(&stdio.stdout, false)?;
        let stderr = open_stdio(&stdio.stderr, false)?;
        let null = File::open("/dev/null").map_err(|e| e.to_string())?;
        let fds = [
            Some(stdin.as_ref().map_or(null.as_fd(), |f| f.as_fd())),
            Some(stdout.as_ref().map_or(null.as_fd(), |f| f.as_fd())),
            Some(stderr.as_ref().map_or(null.as_fd(), |f| f.as_fd())),
        ];
        let pid = swap_stdio(fds, || f(None))?;
        Ok((pid, None))
    })();
    match result {
        Ok((pid, fd)) => (
            Reply::Ok {
                pid,
                value: Value::Null,
            },
            fd,
        ),
        Err(e) => (Reply::Err(e), None),
    }
}

/// Opens one stdio target: a FIFO path, `file://PATH` (appended to), or nothing.
fn open_stdio(target: &str, input: bool) -> Result<Option<File>, String> {
    if target.is_empty() {
        return Ok(None);
    }
    if let Some(path) = target.strip_prefix("file://") {
        if let Some(dir) = Path::new(path).parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("open {path}: {e}"))?;
        return Ok(Some(f));
    }
    if target.contains("://") {
        return Err(format!(
            "stdio {target}: only FIFOs and file:// are supported by this shim"
        ));
    }
    // Neither side of a FIFO may block here: input is opened non-blocking (then made
    // blocking for the container), output read-write (containerd may open its reader later).
    let f = if input {
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(target)
            .map_err(|e| format!("open {target}: {e}"))?;
        let flags = fcntl(f.as_raw_fd(), FcntlArg::F_GETFL).map_err(|e| e.to_string())?;
        let flags = OFlag::from_bits_retain(flags) & !OFlag::O_NONBLOCK;
        fcntl(f.as_raw_fd(), FcntlArg::F_SETFL(flags)).map_err(|e| e.to_string())?;
        f
    } else {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(target)
            .map_err(|e| format!("open {target}: {e}"))?
    };
    Ok(Some(f))
}

/// Puts `fds` on 0-2 (None keeps the current one) for the duration of `f`, then restores.
fn swap_stdio<T>(fds: [Option<BorrowedFd<'_>>; 3], f: impl FnOnce() -> T) -> T {
    let saved: Vec<Option<OwnedFd>> = (0..3)
        .map(|n| {
            let d = dup(n).ok()?;
            // SAFETY: `dup` returned a new descriptor that nothing else owns.
            Some(unsafe { OwnedFd::from_raw_fd(d) })
        })
        .collect();
    for (n, fd) in fds.iter().enumerate() {
        if let Some(fd) = fd {
            let _ = dup2(fd.as_raw_fd(), n as RawFd);
        }
    }
    let out = f();
    for (n, fd) in saved.iter().enumerate() {
        if let Some(fd) = fd {
            let _ = dup2(fd.as_raw_fd(), n as RawFd);
        }
    }
    out
}
