//! The worker's side of a process's stdio: containerd's FIFOs or `file://` targets put on the
//! worker's fds 0-2 while the library creates the process (which inherits them), or a console
//! socket whose pty master comes back with the reply.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::unistd::dup2;
use serde_json::Value;

use crate::sys::spawn_with_fds;
use crate::worker::{recv_msg, Reply, Stdio};

/// Runs `f` with the process's stdio as the worker's fds 0-2 (what the library gives the
/// container) and, for a terminal, a console socket whose master is returned with the reply.
pub fn with_stdio(
    namespace: &str,
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
        let stdin = open_stdio(&stdio.stdin, true)?;
        let (stdout, stderr) = match stdio.stdout.strip_prefix("binary://") {
            Some(uri) => {
                let (out, err) = start_logger(uri, name, namespace)?;
                (Some(out), Some(err))
            }
            None => (
                open_stdio(&stdio.stdout, false)?,
                open_stdio(&stdio.stderr, false)?,
            ),
        };
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

/// Starts the logging binary of a `binary://PATH?KEY=VALUE&..` URI as containerd's runc shim
/// does: arguments `KEY VALUE ..`, environment `CONTAINER_ID` and `CONTAINER_NAMESPACE` only,
/// the read ends of the process's stdout and stderr pipes as its fds 3 and 4, and fd 5, which
/// it closes (or writes a byte to) once it is ready; returns the pipes' write ends.
fn start_logger(uri: &str, id: &str, namespace: &str) -> Result<(File, File), String> {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let mut args = Vec::new();
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        args.push(k);
        if !v.is_empty() {
            args.push(v);
        }
    }
    // Each end at 10 or above, so that placing them on 3, 4 and 5 overwrites none of them.
    let high = |fd: OwnedFd| -> Result<OwnedFd, String> {
        sealrun::worker::dup_above(fd.as_fd(), 10).map_err(|e| e.to_string())
    };
    let pipe = || -> Result<(OwnedFd, OwnedFd), String> {
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
        Ok((high(r)?, high(w)?))
    };
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (ready_r, ready_w) = pipe()?;
    let mut cmd = std::process::Command::new(path);
    cmd.args(&args)
        .env_clear()
        .env("CONTAINER_ID", id)
        .env("CONTAINER_NAMESPACE", namespace)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    spawn_with_fds(cmd, [out_r.as_fd(), err_r.as_fd(), ready_w.as_fd()])
        .map_err(|e| format!("start the logging binary {path}: {e}"))?;
    drop((out_r, err_r, ready_w));
    // Ready once it closes its end (or writes to it).
    let mut byte = [0u8; 1];
    let _ = std::io::Read::read(&mut File::from(ready_r), &mut byte);
    Ok((File::from(out_w), File::from(err_w)))
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
            "stdio {target}: only FIFOs, file:// and binary:// are supported by this shim"
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
    let saved: [Option<OwnedFd>; 3] = [
        std::io::stdin().as_fd().try_clone_to_owned().ok(),
        std::io::stdout().as_fd().try_clone_to_owned().ok(),
        std::io::stderr().as_fd().try_clone_to_owned().ok(),
    ];
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
