//! TaskOOM while a container lives (cgroup v1): the memory cgroup's OOM notifier, an eventfd
//! registered through `cgroup.event_control` for `memory.oom_control`, read by one thread per
//! container; each OOM it reports is published at once. The check at the init's exit (see
//! `state`) publishes one only when none was (cgroup v2's `memory.events` is left to it).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;

use containerd_shim::protos::events::task::TaskOOM;
use containerd_shim::protos::topics;
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::state::Shared;

/// Watches `oom_control` (a v1 `memory.oom_control`) for container `id` until its cgroup is
/// removed; does nothing for any other file.
pub fn watch(shared: &Arc<Shared>, id: &str, oom_control: PathBuf) {
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
    let (efd, control) = match registered {
        Ok(r) => r,
        Err(e) => {
            log::warn!("OOM notifier for {id}: {e}");
            return;
        }
    };
    let (shared, id) = (Arc::clone(shared), id.to_string());
    std::thread::spawn(move || {
        let _control = control;
        // One wake-up per OOM (before the kernel picks its victim, so the kill count may not
        // have moved yet), and one when the cgroup goes away.
        while efd.read().is_ok() && dir.exists() {
            // Held like an exit (see `Shared::on_exit`): the init's exit, if this OOM killed
            // it, is published after this TaskOOM.
            let _order = shared.starting.lock().unwrap_or_else(|e| e.into_inner());
            match shared.lock().get_mut(&id) {
                Some(c) => c.oom_reported = true,
                None => break, // deleted
            }
            shared.publish(
                topics::TASK_OOM_EVENT_TOPIC,
                crate::events::pack(&TaskOOM {
                    container_id: id.clone(),
                    ..Default::default()
                }),
            );
        }
    });
}
