//! TaskOOM while a container lives (cgroup v1): the memory cgroup's OOM notifier, an eventfd
//! registered through `cgroup.event_control` for `memory.oom_control`, which the serving
//! shim's main loop waits on (see `serve`); each OOM it reports is published at once. The check
//! at the init's exit (see `state`) publishes one only when none was (cgroup v2's
//! `memory.events` is left to it).

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::PathBuf;
use std::sync::Mutex;

use containerd_shim::protos::events::task::TaskOOM;
use containerd_shim::protos::topics;
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::events::pack;
use crate::state::Shared;

/// One container's OOM notifier.
pub struct Watch {
    id: String,
    dir: PathBuf,
    efd: EventFd,
    /// Open while registered (the kernel drops the registration with it).
    _control: File,
}

impl Watch {
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.efd.as_fd()
    }

    /// The notifier fired: one wake-up per OOM (before the kernel picks its victim, so the
    /// kill count may not have moved yet), and one when the cgroup goes away. Publishes the
    /// OOM; `false` once the cgroup or the container is gone (the watch ends).
    pub fn notified(&self, shared: &Shared) -> bool {
        if self.efd.read().is_err() || !self.dir.exists() {
            return false;
        }
        // Held like an exit (see `Shared::on_exit`): the init's exit, if this OOM killed it,
        // is published after this TaskOOM.
        let _order = shared.starting.lock().unwrap_or_else(|e| e.into_inner());
        match shared.lock().get_mut(&self.id) {
            Some(c) => c.oom_reported = true,
            None => return false, // deleted
        }
        shared.publish(
            topics::TASK_OOM_EVENT_TOPIC,
            pack(&TaskOOM {
                container_id: self.id.clone(),
                ..Default::default()
            }),
        );
        true
    }
}

/// Watches registered by the service threads, for the main loop to take, and the eventfd
/// that wakes it for them.
pub struct Watches {
    new: Mutex<Vec<Watch>>,
    wake: EventFd,
}

impl Watches {
    pub fn new() -> nix::Result<Watches> {
        Ok(Watches {
            new: Mutex::new(Vec::new()),
            wake: EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?,
        })
    }

    pub fn wake(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    /// The watches added since the last call.
    pub fn take_new(&self) -> Vec<Watch> {
        let _ = self.wake.read();
        std::mem::take(&mut *self.new.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn add(&self, w: Watch) {
        self.new.lock().unwrap_or_else(|e| e.into_inner()).push(w);
        if let Err(e) = self.wake.write(1) {
            log::warn!("wake the main loop: {e}");
        }
    }
}

/// Watches `oom_control` (a v1 `memory.oom_control`) for container `id` until its cgroup is
/// removed; does nothing for any other file.
pub fn watch(shared: &Shared, id: &str, oom_control: PathBuf) {
    if oom_control
        .file_name()
        .is_none_or(|n| n != "memory.oom_control")
    {
        return;
    }
    let Some(dir) = oom_control.parent().map(PathBuf::from) else {
        return;
    };
    let registered = (|| -> std::io::Result<(EventFd, File)> {
        let control = File::open(&oom_control)?;
        let efd = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC)?;
        let line = format!("{} {}", efd.as_raw_fd(), control.as_raw_fd());
        std::fs::write(dir.join("cgroup.event_control"), line)?;
        Ok((efd, control))
    })();
    match registered {
        Ok((efd, control)) => shared.oom.add(Watch {
            id: id.to_string(),
            dir,
            efd,
            _control: control,
        }),
        Err(e) => log::warn!("OOM notifier for {id}: {e}"),
    }
}
