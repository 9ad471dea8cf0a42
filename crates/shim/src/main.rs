//! `containerd-shim-sealrun-v2`: containerd's shim v2 (`runtime_type =
//! "io.containerd.sealrun.v2"`) built on the sealrun library instead of forking a runtime binary
//! per operation.
//!
//! One shim serves a pod (containers with the CRI's `io.kubernetes.cri.sandbox-id` annotation
//! join their sandbox's shim) or one container. At start-up the serving shim forks its worker
//! (see `worker`) before containerd's shim crate starts any thread; every library call runs
//! there, one at a time. The shim runs from its binary; the worker, whose clones enter
//! containers, from the node's one sealed copy of it (see `sealed`).

// Every `unsafe` is in `sys`.
#![deny(unsafe_code)]

mod bundle;
mod io;
mod metrics;
mod oom;
mod sealed;
mod service;
mod state;
mod stdio;
#[allow(unsafe_code)]
mod sys;
mod worker;

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{api, Config, DeleteResponse, ExitSignal, Flags, StartOpts};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};

use sealrun::selfexe::SealStatus;

use bundle::{unmount_rootfs, ROOT_FILE};
use service::Service;
use state::{timestamp, Shared};
use worker::Worker;

/// The CRI's annotation naming a container's pod sandbox.
const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";

struct Shim {
    id: String,
    namespace: String,
    exit: Arc<ExitSignal>,
    worker: Option<Arc<Worker>>,
    exits: Mutex<Option<UnixStream>>,
}

impl containerd_shim::Shim for Shim {
    type T = Service;

    fn new(_runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        let mut shim = Shim {
            id: args.id.clone(),
            namespace: args.namespace.clone(),
            exit: Arc::new(ExitSignal::default()),
            worker: None,
            exits: Mutex::new(None),
        };
        // Serving (no action): fork the worker now, while this process has a single thread.
        if args.action.is_empty() {
            match sealed::worker_exe().and_then(Worker::fork) {
                Ok((w, exits)) => {
                    shim.worker = Some(Arc::new(w));
                    shim.exits = Mutex::new(Some(exits));
                }
                Err(e) => {
                    eprintln!("containerd-shim-sealrun-v2: start the worker: {e}");
                    std::process::exit(1);
                }
            }
        }
        shim
    }

    fn start_shim(&mut self, opts: StartOpts) -> containerd_shim::Result<String> {
        let grouping = sandbox_of_bundle().unwrap_or_else(|| opts.id.clone());
        let (_, address) = containerd_shim::spawn(opts, &grouping, Vec::new())?;
        // From here this process only writes the address and exits. The shim crate's signal
        // handlers (SIGCHLD, SIGPIPE) write to a socket whose reading end is closed once
        // its bootstrap returns; a signal after that (the serving shim we just started exits
        // at once when its pod's shim already serves) made the handler's own EPIPE raise
        // SIGPIPE again, forever. Blocked, they stay pending until exit.
        let mut late = SigSet::empty();
        late.add(Signal::SIGCHLD);
        late.add(Signal::SIGPIPE);
        if let Err(e) = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&late), None) {
            log::warn!("block SIGCHLD and SIGPIPE: {e}");
        }
        containerd_shim::util::write_address(&address)?;
        Ok(address)
    }

    fn delete_shim(&mut self) -> containerd_shim::Result<DeleteResponse> {
        // containerd's clean-up after the shim died: the bundle is our working directory.
        let bundle = std::env::current_dir().unwrap_or_default();
        if let Ok(root) = std::fs::read_to_string(bundle.join(ROOT_FILE)) {
            let rt = crate::sys::runtime(&PathBuf::from(root), SealStatus::Disabled);
            if let Err(e) = sealrun::container::delete(&rt, &self.id, true) {
                log::warn!("delete {}: {e}", self.id);
            }
        }
        unmount_rootfs(&bundle);
        remove_dead_socket(&bundle);
        Ok(api::DeleteResponse {
            exit_status: 128 + 9,
            exited_at: Some(timestamp(std::time::SystemTime::now())).into(),
            ..Default::default()
        })
    }

    fn wait(&mut self) {
        self.exit.wait();
    }

    fn create_task_service(&self, publisher: RemotePublisher) -> Service {
        let shared = Arc::new(Shared::new(publisher, self.namespace.clone()));
        let exits = self.exits.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(exits) = exits {
            let s = Arc::clone(&shared);
            std::thread::spawn(move || worker::read_exits(exits, |e| s.on_exit(e.pid, e.status)));
        }
        let worker = match &self.worker {
            Some(w) => Arc::clone(w),
            None => {
                eprintln!("containerd-shim-sealrun-v2: no worker");
                std::process::exit(1);
            }
        };
        Service {
            shared,
            worker,
            exit: Arc::clone(&self.exit),
        }
    }
}

/// The socket of a shim that was killed stays behind (containerd keeps them outside its state
/// dir): remove it when nothing listens on it any more.
fn remove_dead_socket(bundle: &std::path::Path) {
    let Ok(address) = std::fs::read_to_string(bundle.join("address")) else {
        return;
    };
    let path = address.trim().trim_start_matches("unix://");
    if let Err(e) = UnixStream::connect(path) {
        if e.kind() == std::io::ErrorKind::ConnectionRefused {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The pod sandbox named in the bundle's config (the working directory at `start`).
fn sandbox_of_bundle() -> Option<String> {
    let raw = std::fs::read("config.json").ok()?;
    let v: serde_json::Value = serde_json::from_slice(&raw).ok()?;
    v["annotations"][SANDBOX_ID].as_str().map(str::to_string)
}

fn main() {
    // Before any thread, so that the shim's threads share one arena.
    sys::small_heap();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(worker::WORKER_ARG) {
        worker::worker_main();
    }
    containerd_shim::run::<Shim>("io.containerd.sealrun.v2", None);
}
