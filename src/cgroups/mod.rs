//! cgroups v1 and v2. Every function takes the cgroup location as a parameter (a [`Cgroup`]),
//! so the same code serves a pure v2 host, a v1 host and this hybrid layout.
//!
//! INTERFACE STUB: the cgroups helper replaces the bodies; the signatures are the contract
//! used by `container/` and `init/`.

use std::os::fd::OwnedFd;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Where a container's cgroup lives in every hierarchy of this host.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Cgroup {
    /// The cgroupsPath this was resolved from (absolute, as stored in state.json).
    pub path: String,
}

/// One filesystem to mount for a `type: cgroup` mount inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// Sub-directory under the mount destination ("" for the destination itself).
    pub subdir: String,
    /// `cgroup` (v1) or `cgroup2`.
    pub fstype: &'static str,
    /// Mount data: the v1 controller list (e.g. `cpu`, `name=systemd`), empty for v2.
    pub data: String,
    /// Host directory of the container's cgroup in this hierarchy, for a bind mount when the
    /// container has no cgroup namespace.
    pub host_dir: std::path::PathBuf,
}

/// Resource usage sample for `events --stats`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Raw runc-shaped stats object.
    pub data: serde_json::Value,
}

impl Cgroup {
    /// Resolve `cgroupsPath` (absolute, relative, or absent) for container `id`.
    pub fn resolve(cgroups_path: Option<&str>, id: &str) -> Result<Cgroup> {
        let _ = id;
        Ok(Cgroup {
            path: cgroups_path.unwrap_or_default().to_string(),
        })
    }
    /// Create the cgroup directories.
    pub fn create(&mut self) -> Result<()> {
        Ok(())
    }
    /// Apply (or update) resource limits.
    pub fn apply(&self, resources: &LinuxResources) -> Result<()> {
        let _ = resources;
        Ok(())
    }
    /// Directory fd for `CLONE_INTO_CGROUP`, when the v2 hierarchy is used.
    pub fn clone_into_fd(&self) -> Result<Option<OwnedFd>> {
        Ok(None)
    }
    /// Move `pid` into the cgroup (`into_v2_done`: CLONE_INTO_CGROUP already placed it in v2).
    pub fn add_process(&self, pid: Pid, into_v2_done: bool) -> Result<()> {
        let _ = (pid, into_v2_done);
        Ok(())
    }
    /// Pids in the cgroup.
    pub fn pids(&self) -> Result<Vec<Pid>> {
        Ok(Vec::new())
    }
    /// Freeze every process.
    pub fn freeze(&self) -> Result<()> {
        Ok(())
    }
    /// Thaw.
    pub fn thaw(&self) -> Result<()> {
        Ok(())
    }
    /// Whether the cgroup is frozen.
    pub fn is_frozen(&self) -> Result<bool> {
        Ok(false)
    }
    /// Resource usage sample.
    pub fn stats(&self) -> Result<Stats> {
        Ok(Stats::default())
    }
    /// Send `signal` to every process in the cgroup.
    pub fn kill_all(&self, signal: Signal) -> Result<()> {
        let _ = signal;
        Ok(())
    }
    /// What to mount for a `type: cgroup` mount.
    pub fn container_mounts(&self) -> Vec<CgroupMount> {
        Vec::new()
    }
    /// Remove the cgroup directories sealrun created; an emptied cgroup that cannot be removed
    /// is an error.
    pub fn destroy(&self) -> Result<()> {
        Ok(())
    }
}
