//! Run a command in a hardened container from a program that keeps other threads busy.
//!
//! ```text
//! cargo build --release            # the sealrun runtime binary the helper runs
//! sudo cargo run --release --example sandbox -- [--timeout SECS] ROOTFS CMD [ARGS...]
//! ```
//!
//! The container gets the shipped `strict` seccomp profile, Landlock (sealrun's default),
//! a 256 MiB memory limit and a 64-process limit, and is killed when the wall-clock timeout
//! (default 30 s) expires. Its stdout and stderr are captured through pipes and printed, then
//! one line `audit: {json}` with what protected it; the example exits with the command's exit
//! status (128+N when killed by signal N). State goes to `$SANDBOX_STATE_ROOT` (default
//! `/run/sealrun-sandbox`); the runtime binary is found as [`sealrun::Sandbox`] documents
//! (`SEALRUN_BINARY`, next to this example, `$PATH`).

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use oci_spec::runtime::{LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder};
use sealrun::{Sandbox, Stdio};

fn main() {
    match run() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("sandbox: {e}");
            std::process::exit(125);
        }
    }
}

fn usage() -> sealrun::Error {
    sealrun::Error::InvalidArgument("usage: sandbox [--timeout SECS] ROOTFS CMD [ARGS...]".into())
}

fn run() -> sealrun::Result<i32> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut timeout = Duration::from_secs(30);
    if args.first().map(String::as_str) == Some("--timeout") {
        let secs = args
            .get(1)
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(usage)?;
        timeout = Duration::from_secs(secs);
        args.drain(..2);
    }
    if args.len() < 2 {
        return Err(usage());
    }
    let rootfs = args.remove(0);

    // Other work of the embedding program goes on meanwhile, on threads of its own.
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let mut x = 0u64;
                while !done.load(Ordering::Relaxed) {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    std::hint::black_box(x);
                }
            });
        }
        let result = sandboxed(&rootfs, &args, timeout);
        done.store(true, Ordering::Relaxed);
        result
    })
}

fn sandboxed(rootfs: &str, args: &[String], timeout: Duration) -> sealrun::Result<i32> {
    let root = std::env::var("SANDBOX_STATE_ROOT").unwrap_or("/run/sealrun-sandbox".into());
    let sandbox = Sandbox::builder().state_root(root).build()?;

    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut spec = sealrun::sandbox_spec(&argv)?;
    let mut linux = spec.linux().clone().unwrap_or_default();
    let caps = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().clone())
        .unwrap_or_default();
    linux.set_seccomp(Some(sealrun::seccomp::profile("strict", caps.iter())?));
    let other = |e: oci_spec::OciSpecError| sealrun::Error::Other(e.to_string());
    let resources = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(256 << 20)
                .build()
                .map_err(other)?,
        )
        .pids(
            LinuxPidsBuilder::default()
                .limit(64)
                .build()
                .map_err(other)?,
        )
        .build()
        .map_err(other)?;
    linux.set_resources(Some(resources));
    spec.set_linux(Some(linux));

    let id = format!("sandbox-{}", std::process::id());
    let c = sandbox
        .container(&id)
        .spec(spec)
        .rootfs(rootfs)
        .stdout(Stdio::Pipe)
        .stderr(Stdio::Pipe)
        .create()?;
    let (mut out, mut err) = (c.take_stdout(), c.take_stderr());
    let status = std::thread::scope(|s| {
        let read = |pipe: Option<Box<dyn Read + Send>>| {
            move || {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf);
                }
                buf
            }
        };
        let stdout = s.spawn(read(
            out.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
        ));
        let stderr = s.spawn(read(
            err.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
        ));
        let (tx, rx) = mpsc::channel();
        let waited = &c;
        s.spawn(move || {
            let _ = tx.send(waited.wait());
        });
        let status = match c.start() {
            Ok(()) => match rx.recv_timeout(timeout) {
                Ok(status) => status,
                Err(_) => {
                    eprintln!("sandbox: timeout after {timeout:?}: killing the container");
                    c.kill_all(libc::SIGKILL)?;
                    rx.recv()
                        .map_err(|_| sealrun::Error::Other("wait thread ended".into()))?
                }
            },
            Err(e) => {
                // The waiter is released by the delete below.
                let _ = c.force_delete();
                return Err(e);
            }
        };
        print!(
            "{}",
            String::from_utf8_lossy(&stdout.join().unwrap_or_default())
        );
        eprint!(
            "{}",
            String::from_utf8_lossy(&stderr.join().unwrap_or_default())
        );
        status
    })?;
    let audit = c.audit()?;
    println!(
        "audit: {}",
        serde_json::to_string(&audit).map_err(|e| sealrun::Error::Other(e.to_string()))?
    );
    c.delete()?;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        _ => 125,
    })
}
