//! `containerd-shim-sealrun-v2`: containerd's shim v2 (`runtime_type =
//! "io.containerd.sealrun.v2"`) built on the sealrun library instead of forking a runtime binary
//! per operation.
//!
//! One shim serves a pod (containers with the CRI's `io.kubernetes.cri.sandbox-id` annotation
//! join their sandbox's shim) or one container. containerd's shim crate runs the `start` and
//! `delete` actions; serving is `serve`'s. At start-up, before it has any thread, the serving
//! shim executes itself again from the node's one sealed copy of its binary (see `sealed`);
//! every library call runs in a worker process started from that copy for the call (see
//! `worker`). The containers' processes are reparented to the shim when their worker exits:
//! it reaps them and publishes their exits.

// Every `unsafe` is in `sys`.
#![deny(unsafe_code)]

mod bundle;
mod events;
mod io;
mod metrics;
mod oom;
mod sealed;
mod serve;
mod service;
mod state;
mod stdio;
#[allow(unsafe_code)]
mod sys;
mod worker;

use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{api, Config, DeleteResponse, Flags, StartOpts};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};

use sealrun::selfexe::SealStatus;

use bundle::{unmount_rootfs, ROOT_FILE};
use service::Service;
use state::timestamp;
use worker::Worker;

const RUNTIME_ID: &str = "io.containerd.sealrun.v2";

/// The CRI's annotation naming a container's pod sandbox.
const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";

/// containerd's shim crate's view of this shim, for `start` and `delete` (serving is `serve`'s).
struct Shim {
    id: String,
}

impl containerd_shim::Shim for Shim {
    type T = Service;

    fn new(_runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        Shim {
            id: args.id.clone(),
        }
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

    fn wait(&mut self) {}

    fn create_task_service(&self, _publisher: RemotePublisher) -> Service {
        // Only serving asks for it, and `main` serves through `serve`.
        eprintln!("containerd-shim-sealrun-v2: the shim crate asked to serve");
        std::process::exit(1);
    }
}

/// The serving shim's worker starter. Run from a binary, the shim first executes itself again
/// from the node's sealed copy (found or made; returns only on failure); run from the copy,
/// the copy is the workers' executable too.
pub(crate) fn serving_worker() -> std::io::Result<Worker> {
    let own = std::fs::File::open("/proc/self/exe")?;
    if sealed::is_sealed(&own) {
        return Worker::new(own.into());
    }
    let copy = sealed::worker_exe()?;
    if !sealed::is_sealed(&copy) {
        return Err(std::io::Error::other("the copy to run from is not sealed"));
    }
    Err(sys::reexec(copy.as_fd()))
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
    let os_args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Ok(flags) = containerd_shim::parse(&os_args[1..]) {
        if flags.action.is_empty() && !flags.version && !flags.info {
            let code = match serve::run(&flags) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("{RUNTIME_ID}: {e}");
                    1
                }
            };
            std::process::exit(code);
        }
    }
    // start, delete, and flags the crate reports as wrong.
    containerd_shim::run::<Shim>(RUNTIME_ID, None);
}
