//! The serving shim (no action): containerd's task service on the shim's socket until
//! Shutdown. containerd's shim crate keeps `start` and `delete`; serving is set up here, from
//! the same crate's parts (flags, logger, the generated task service, ttrpc's server), so that
//! its threads stay few: the crate's `run` gives every connection three method threads and adds
//! a signal thread, and the exits and each container's OOM notifier would need one more each.
//! Here the main thread does all the waiting (signals through a signalfd, the OOM notifiers'
//! eventfds, Shutdown), and ttrpc serves each connection with two method threads.

use std::os::fd::{AsFd, BorrowedFd, IntoRawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;

use containerd_shim::protos::ttrpc::Server;
use containerd_shim::protos::{create_task, Task};
use containerd_shim::synchronous::monitor::monitor_notify_by_pid;
use containerd_shim::Flags;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use sealrun::worker as sp;

use crate::events::Publisher;
use crate::oom;
use crate::service::Service;
use crate::state::Shared;
use crate::worker::Worker;

/// Serves until Shutdown; `Err` is the one line to report.
pub fn run(flags: &Flags) -> Result<(), String> {
    if flags.namespace.is_empty() {
        return Err("Shim namespace cannot be empty".into());
    }
    if flags.socket.is_empty() {
        return Err("Shim socket cannot be empty".into());
    }
    // Still a single thread, which executing the sealed copy needs (may not return).
    let worker = Arc::new(crate::serving_worker().map_err(|e| format!("start the worker: {e}"))?);
    // Blocked before any thread starts, so in every thread: only the main loop reads them.
    // (SIGTERM and SIGINT are containerd's business, through Shutdown; SIGPIPE is EPIPE.)
    // The containers' processes come to us (subreaper) when their worker exits.
    let signals = crate::sys::become_serving_shim(&[
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGPIPE,
    ])
    .map_err(|e| format!("signals and subreaper: {e}"))?;
    containerd_shim::logger::init(flags.debug, "info", &flags.namespace, &flags.id)
        .map_err(|e| format!("logger: {e}"))?;
    let Some(listener) = listen(&flags.socket)? else {
        // The pod's shim serves already: containerd is told its address.
        server_started();
        return Ok(());
    };
    let publisher = Publisher::connect(flags.namespace.clone())?;
    let shared = Arc::new(Shared::new(publisher, flags.namespace.clone())?);
    let exit = Arc::new(
        EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC)
            .map_err(|e| format!("eventfd: {e}"))?,
    );
    let task: Arc<dyn Task + Send + Sync> = Arc::new(Service {
        shared: Arc::clone(&shared),
        worker: Arc::clone(&worker),
        exit: Arc::clone(&exit),
    });
    // ttrpc's minimum: two idle method threads per connection (two more start when none is
    // idle, e.g. while containerd's Wait calls block until their exits).
    let mut server = Server::new()
        .set_thread_count_min(1)
        .set_thread_count_default(2)
        .set_thread_count_max(3)
        .add_listener(listener.into_raw_fd())
        .map_err(|e| format!("listen: {e}"))?
        .register_service(create_task(task));
    server.start().map_err(|e| format!("serve: {e}"))?;
    server_started();
    log::info!("serving");
    wait_loop(&shared, &worker, signals.as_fd(), exit.as_fd());
    server.shutdown();
    remove_socket(&flags.socket);
    Ok(())
}

/// The main thread's wait: reaps children (reporting the containers' processes' exits),
/// publishes OOM notifications, and returns at Shutdown.
fn wait_loop(shared: &Shared, worker: &Worker, signals: BorrowedFd<'_>, exit: BorrowedFd<'_>) {
    let mut watches: Vec<oom::Watch> = Vec::new();
    loop {
        let mut fds = vec![
            PollFd::new(signals, PollFlags::POLLIN),
            PollFd::new(exit, PollFlags::POLLIN),
            PollFd::new(shared.oom.wake(), PollFlags::POLLIN),
        ];
        fds.extend(
            watches
                .iter()
                .map(|w| PollFd::new(w.fd(), PollFlags::POLLIN)),
        );
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                log::error!("poll: {e}");
                return;
            }
        }
        let ready: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(false)).collect();
        drop(fds);
        if ready[1] {
            return;
        }
        if ready[0] {
            if let Ok(sig) = sp::read_signalfd(signals) {
                log::debug!("received {sig}");
            }
            reap(shared, worker);
        }
        if ready[2] {
            watches.extend(shared.oom.take_new());
        }
        let mut i = 0;
        watches.retain(|w| {
            let keep = !ready.get(3 + i).copied().unwrap_or(false) || w.notified(shared);
            i += 1;
            keep
        });
    }
}

/// Reaps every exited child: workers are forgotten, the rest reported. Every exit also goes to
/// the shim crate's monitor, which its helpers wait on (the rootfs mount's child).
fn reap(shared: &Shared, worker: &Worker) {
    loop {
        let (pid, status) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid.as_raw(), code),
            Ok(WaitStatus::Signaled(pid, sig, _)) => (pid.as_raw(), 128 + sig as i32),
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => return,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                log::warn!("waitpid: {e}");
                return;
            }
        };
        if let Err(e) = monitor_notify_by_pid(pid, status) {
            log::warn!("exit of {pid} to the monitor: {e}");
        }
        if !worker.is_worker(pid) {
            shared.on_exit(pid, status);
        }
    }
}

/// Binds the shim's socket. `None`: a shim serves on it already (the pod's), whose address
/// containerd is given, as the shim crate does.
fn listen(socket: &str) -> Result<Option<UnixListener>, String> {
    let path = socket.strip_prefix("unix://").unwrap_or(socket);
    if let Some(dir) = Path::new(path).parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    match UnixListener::bind(path) {
        Ok(l) => return Ok(Some(l)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {}
        Err(e) => return Err(format!("{path}: {e}")),
    }
    // Up to a second for a shim that is still starting, as the crate waits.
    for _ in 0..200 {
        if UnixStream::connect(path).is_ok() {
            containerd_shim::util::write_address(socket).map_err(|e| format!("address: {e}"))?;
            return Ok(None);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    remove_socket(socket);
    UnixListener::bind(path)
        .map(Some)
        .map_err(|e| format!("{path}: {e}"))
}

fn remove_socket(socket: &str) {
    use std::os::unix::fs::FileTypeExt;
    let path = socket.strip_prefix("unix://").unwrap_or(socket);
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        if let Err(e) = std::fs::remove_file(path) {
            log::warn!("remove {path}: {e}");
        }
    }
}

/// The `start` process copies our stdout to containerd until its end: serving now, we close
/// it (stdout becomes stderr), as the shim crate does.
fn server_started() {
    if let Err(e) = nix::unistd::dup2(2, 1) {
        log::warn!("close stdout: {e}");
    }
}
