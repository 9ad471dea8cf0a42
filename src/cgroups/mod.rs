//! cgroups v1 and v2. A [`Cgroup`] records where a container's cgroup lives in every hierarchy
//! of the host (resolved once, at create, from `/proc/self/mountinfo`) and which directories
//! sealrun made; every operation works from those recorded directories, so the same code
//! serves a pure v2 host, a v1 host and the hybrid layout (v1 controllers plus a cgroup2
//! hierarchy at `/sys/fs/cgroup/unified`).
//!
//! What follows runc 1.1 and where sealrun differs:
//! - The container joins every hierarchy, the unified one too on hybrid hosts (runc's ""
//!   subsystem). Its processes enter the cgroup2 hierarchy at birth through
//!   `CLONE_INTO_CGROUP`, and v1 hierarchies through `cgroup.procs`.
//! - Resources go to whichever version serves each controller: on this hybrid host memory,
//!   cpu, pids, ... are v1 and hugetlb is v2 (enabled on the unified path on demand).
//! - Devices: v1 `devices.deny a` then the rules in order; without a v1 devices controller, an
//!   eBPF program on the cgroup2 directory. Like runc, no program on hybrid hosts that have the
//!   v1 controller (it already enforces the same rules).
//! - `destroy` removes exactly the directories sealrun created (runc leaves parents behind).
//! - A cgroup that already exists is only joined: sealrun never empties it, never writes its
//!   `cgroup.kill`, and signals only the container's own processes in it (see `members.rs`);
//!   `destroy` removes it only when nothing is left in it (as runc's `delete` does).
//!   One with sub-cgroups sealrun did not create is refused; one with processes is joined
//!   with a warning (runc joins both).

pub mod devices;
mod dirs;
mod fs;
pub mod layout;
mod members;
pub mod resources;
mod rootless;
pub mod stats;
pub mod unified;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::Signal;
use nix::sys::stat::Mode as FileMode;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxResources};
use serde::{Deserialize, Serialize};

pub use layout::Mode;
pub use members::Init;
use resources::{Host, Ver};

use crate::error::{Context, Error, Result};
use crate::sys;
use fs::{
    attach_device_program, collect_pids, enable_v2, freeze_v1, is_enoent, open_for_writing, read,
    set_frozen_v2, wait_for, write, write_raw, write_to, Live,
};

/// The parent of containers whose config has no `cgroupsPath`.
pub const DEFAULT_PARENT: &str = "/sealrun";

/// The container's cgroup in one hierarchy.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Hierarchy {
    /// v1: the controllers of this hierarchy (`cpu`, `name=systemd`); empty for cgroup2.
    #[serde(default)]
    pub controllers: Vec<String>,
    /// `true` for the cgroup2 hierarchy.
    #[serde(default)]
    pub v2: bool,
    /// Where the hierarchy is mounted.
    pub mount_point: PathBuf,
    /// The container's cgroup directory.
    pub dir: PathBuf,
}

/// Where a container's cgroup lives in every hierarchy of this host (stored in state.json).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Cgroup {
    /// The cleaned cgroupsPath (`/sealrun/<id>` when the config has none).
    pub path: String,
    /// The host's layout when the container was created.
    #[serde(default)]
    pub mode: Mode,
    /// One entry per hierarchy the container joins.
    #[serde(default)]
    pub hierarchies: Vec<Hierarchy>,
    /// Directories sealrun created, parents before children, in every hierarchy (each path is
    /// under its hierarchy's mount point). Every other directory from a mount point down to
    /// the container's cgroup, the container's own when it is not listed, was only joined.
    /// `destroy` removes these only; see [`Cgroup::owned`] for what `kill_all` may reach.
    #[serde(default)]
    pub created: Vec<PathBuf>,
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
    pub host_dir: PathBuf,
    /// Names to create as symlinks to `subdir` next to it (each controller of a co-mounted
    /// hierarchy such as `cpu,cpuacct`).
    pub symlinks: Vec<String>,
}

/// Resource usage sample for `events --stats`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stats {
    /// runc-shaped stats object (the `data` of `events --stats`).
    pub data: stats::StatsData,
    /// The cgroup2 counters runc's shape leaves out, when cgroup2 serves the container's memory
    /// (or, without a memory controller, on a pure cgroup2 host): containerd then reports its
    /// v2 metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unified: Option<unified::Unified>,
}

impl Cgroup {
    /// Resolve `cgroupsPath` for container `id` on this host.
    ///
    /// - Absolute (`/a/b`): that path under the root of every hierarchy, as runc.
    /// - Relative (`a/b`): below the calling process's own cgroup in each hierarchy (on a pure
    ///   v2 host below its parent, since the caller's own cgroup holds processes), as runc
    ///   1.1. Note that the caller's cgroup is then written into; give absolute paths when the
    ///   caller's cgroup belongs to someone else.
    /// - Absent or empty: `/sealrun/<id>`, an absolute path. runc uses `<id>` relative to the
    ///   caller's cgroup here; sealrun deliberately does not, so that a bare `sealrun run`
    ///   never writes into whatever cgroup the calling shell happens to be in (crun and youki
    ///   also default to a fixed absolute parent).
    ///
    /// The path is cleaned like runc's `CleanPath` (`..` cannot climb out) and must name a
    /// cgroup below the hierarchy root.
    pub fn resolve(cgroups_path: Option<&str>, id: &str) -> Result<Cgroup> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .op_path("read", Path::new("/proc/self/mountinfo"))?;
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .op_path("read", Path::new("/proc/self/cgroup"))?;
        Cgroup::resolve_in(
            &layout::parse_mountinfo(&mountinfo),
            &layout::parse_proc_cgroup(&own),
            cgroups_path,
            id,
        )
    }

    /// [`Cgroup::resolve`] with the host's files already parsed.
    pub fn resolve_in(
        host: &layout::Layout,
        own: &[(Vec<String>, PathBuf)],
        cgroups_path: Option<&str>,
        id: &str,
    ) -> Result<Cgroup> {
        if id.is_empty() || id.contains('/') || id == "." || id == ".." {
            return Err(Error::InvalidArgument(format!(
                "invalid container id {id:?}"
            )));
        }
        let inner = match cgroups_path.filter(|p| !p.is_empty()) {
            Some(p) => layout::clean_path(p),
            None => format!("{DEFAULT_PARENT}/{id}"),
        };
        if inner.is_empty() || inner == "/" {
            return Err(Error::config(
                "linux.cgroupsPath",
                format!(
                    "{:?} does not name a cgroup below the hierarchy root",
                    cgroups_path.unwrap_or_default()
                ),
            ));
        }
        let hierarchies = host
            .hierarchies
            .iter()
            .map(|m| {
                Ok(Hierarchy {
                    controllers: m.controllers.clone(),
                    v2: m.v2,
                    mount_point: m.mount_point.clone(),
                    dir: layout::dir_in(m, host.mode, &inner, own)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Cgroup {
            path: inner,
            mode: host.mode,
            hierarchies,
            created: Vec::new(),
        })
    }

    /// The v1 hierarchy serving `ctl`.
    fn v1(&self, ctl: &str) -> Option<&Hierarchy> {
        self.hierarchies
            .iter()
            .find(|h| !h.v2 && h.controllers.iter().any(|c| c == ctl))
    }

    /// The cgroup2 hierarchy, when the container joins one.
    fn v2(&self) -> Option<&Hierarchy> {
        self.hierarchies.iter().find(|h| h.v2)
    }

    /// Whether sealrun created the container's directory in hierarchy `h` (else it joined an
    /// existing one).
    pub fn created_in(&self, h: &Hierarchy) -> bool {
        self.created.contains(&h.dir)
    }

    /// Whether sealrun created the container's cgroup in every hierarchy: then everything in it
    /// is the container's and may be signalled as a whole. Otherwise only the container's own
    /// processes are (see `members.rs`).
    pub fn owned(&self) -> bool {
        !self.hierarchies.is_empty() && self.hierarchies.iter().all(|h| self.created_in(h))
    }

    /// Apply (or update) resource limits. Device rules are applied when present (create);
    /// `update` passes none.
    pub(crate) fn apply(&self, resources: &LinuxResources) -> Result<()> {
        resources::validate(resources)?;
        if let Some(rules) = resources.devices() {
            self.apply_devices(rules)?;
        }
        let live = Live::new(self);
        let planned = resources::plan(resources, &live)?;
        let mut deferred: Option<&resources::Write> = None;
        for w in &planned.writes {
            match self.write_setting(&live, w) {
                Err(e) if w.retry_after_next && e.errno() == Some(Errno::EINVAL) => {
                    deferred = Some(w);
                    continue;
                }
                Err(e) => return Err(e),
                Ok(()) => {}
            }
            if let Some(d) = deferred.take() {
                self.write_setting(&live, d)?;
            }
        }
        if let Some(d) = deferred {
            self.write_setting(&live, d)?;
        }
        Ok(())
    }

    fn write_setting(&self, live: &Live<'_>, w: &resources::Write) -> Result<()> {
        let dir = live
            .dir(&w.ctl)
            .ok_or_else(|| Error::Unsupported(format!("{}: no {} controller", w.field, w.ctl)))?;
        if live.version(&w.ctl) == Some(Ver::V2) && w.ctl != "cgroup" {
            if let Some(h) = self.v2() {
                enable_v2(h, &w.ctl)?;
            }
        }
        let path = dir.join(&w.file);
        if let Err(e) = write_raw(&path, &w.value) {
            let errno = Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
            let hint = match errno {
                Errno::EBUSY if w.file.starts_with("memory.") => {
                    " (the limit is below the current usage)"
                }
                _ => "",
            };
            return Err(Error::os(
                format!("{}={}{hint}: write", w.field, w.value),
                Some(&path),
                errno,
            ));
        }
        if w.verify {
            let got = read(&path)?;
            if got.trim() != w.value {
                return Err(Error::config(
                    w.field.clone(),
                    format!(
                        "the kernel set {} to {} instead of {}",
                        w.file,
                        got.trim(),
                        w.value
                    ),
                ));
            }
        }
        Ok(())
    }

    fn apply_devices(&self, rules: &[LinuxDeviceCgroup]) -> Result<()> {
        let parsed = devices::parse_rules(rules)?;
        let state = devices::DeviceState::from_rules(&parsed);
        if let Some(h) = self.v1("devices") {
            // Each write(2) is one rule to the kernel: one open of each file serves them all.
            let deny_path = h.dir.join("devices.deny");
            let mut deny = open_for_writing(&deny_path)?;
            write_to(&mut deny, &deny_path, "a")?;
            let allow_path = h.dir.join("devices.allow");
            let mut allow = None;
            for r in &parsed {
                let line = r.v1_line();
                if r.allow {
                    let file = match &mut allow {
                        Some(f) => f,
                        None => allow.insert(open_for_writing(&allow_path)?),
                    };
                    write_to(file, &allow_path, &line)?;
                } else {
                    write_to(&mut deny, &deny_path, &line)?;
                }
            }
            // Check the kernel ended where our model of it did (the v2 program is built from
            // the same model).
            let mut got: Vec<String> = read(&h.dir.join("devices.list"))?
                .lines()
                .map(str::to_string)
                .collect();
            let mut want = state.v1_list();
            got.sort();
            want.sort();
            if got != want {
                return Err(Error::Other(format!(
                    "device cgroup of {} is {got:?}, expected {want:?}",
                    h.dir.display()
                )));
            }
            return Ok(());
        }
        let Some(h) = self.v2() else {
            return Err(Error::Unsupported(
                "no device controller (v1 devices or cgroup2): refusing to run without device \
                 access control"
                    .into(),
            ));
        };
        attach_device_program(&h.dir, &state)
    }

    /// Directory fd for `CLONE_INTO_CGROUP`: the cgroup2 directory, whenever the container
    /// joins a cgroup2 hierarchy (pure v2, and the unified hierarchy on hybrid hosts).
    pub fn clone_into_fd(&self) -> Result<Option<OwnedFd>> {
        let Some(h) = self.v2() else { return Ok(None) };
        sys::fd::open(
            &h.dir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            FileMode::empty(),
        )
        .op_path("open cgroup", &h.dir)
        .map(Some)
    }

    /// Move `pid` into the cgroup in every hierarchy (`into_v2_done`: `CLONE_INTO_CGROUP`
    /// already placed it in the cgroup2 one).
    pub(crate) fn add_process(&self, pid: Pid, into_v2_done: bool) -> Result<()> {
        for h in &self.hierarchies {
            if h.v2 && into_v2_done {
                continue;
            }
            let path = h.dir.join("cgroup.procs");
            write_raw(&path, &pid.as_raw().to_string()).op_path("join cgroup", &path)?;
        }
        Ok(())
    }

    /// The hierarchy whose `cgroup.procs` lists the container's processes: the freezer's (what
    /// kill_all freezes), else another v1 one, else cgroup2.
    fn procs_hierarchy(&self) -> Option<&Hierarchy> {
        if self.mode == Mode::V2 {
            return self.v2();
        }
        ["freezer", "devices", "pids", "memory"]
            .iter()
            .find_map(|c| self.v1(c))
            .or_else(|| self.hierarchies.iter().find(|h| !h.v2))
            .or_else(|| self.v2())
    }

    /// Pids in the cgroup and its descendants (empty when the cgroup is gone).
    pub fn pids(&self) -> Result<Vec<Pid>> {
        let Some(h) = self.procs_hierarchy() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        match collect_pids(&h.dir, &mut out) {
            Err(e) if is_enoent(&e) && !h.dir.exists() => Ok(Vec::new()),
            Err(e) => Err(e),
            Ok(()) => Ok(out),
        }
    }

    /// Freeze every process (v1 freezer where there is one, else cgroup2's cgroup.freeze).
    pub(crate) fn freeze(&self) -> Result<()> {
        if let Some(h) = self.v1("freezer") {
            return freeze_v1(&h.dir);
        }
        if let Some(h) = self.v2() {
            return set_frozen_v2(&h.dir, true);
        }
        Err(Error::Unsupported("no freezer cgroup on this host".into()))
    }

    /// Thaw.
    pub(crate) fn thaw(&self) -> Result<()> {
        if let Some(h) = self.v1("freezer") {
            let state = h.dir.join("freezer.state");
            write(&state, "THAWED")?;
            let done = wait_for(Duration::from_secs(5), || {
                Ok((read(&state)?.trim() == "THAWED").then_some(()))
            })?;
            return done.ok_or_else(|| Error::Other(format!("{} did not thaw", h.dir.display())));
        }
        if let Some(h) = self.v2() {
            return set_frozen_v2(&h.dir, false);
        }
        Err(Error::Unsupported("no freezer cgroup on this host".into()))
    }

    /// Whether the cgroup is frozen.
    pub fn is_frozen(&self) -> Result<bool> {
        if let Some(h) = self.v1("freezer") {
            return Ok(read(&h.dir.join("freezer.state"))?.trim() == "FROZEN");
        }
        if let Some(h) = self.v2() {
            return Ok(read(&h.dir.join("cgroup.freeze"))?.trim() == "1");
        }
        Ok(false)
    }

    /// How many processes the OOM killer ended in the container's memory cgroup so far
    /// (`oom_kill` of v1's memory.oom_control or cgroup2's memory.events); `None` without a
    /// memory controller or the counter.
    pub fn oom_kills(&self) -> Option<u64> {
        let file = match self.v1("memory") {
            Some(h) => h.dir.join("memory.oom_control"),
            None => self.v2()?.dir.join("memory.events"),
        };
        read(&file).ok()?.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == "oom_kill").then(|| v.trim().parse().ok())?
        })
    }

    /// Resource usage sample.
    pub fn stats(&self) -> Result<Stats> {
        if let Some(h) = self.hierarchies.iter().find(|h| !h.dir.is_dir()) {
            return Err(Error::os("stat cgroup", Some(&h.dir), Errno::ENOENT));
        }
        let live = Live::new(self);
        let v2 = match live.version("memory") {
            Some(ver) => ver == Ver::V2,
            None => self.mode == Mode::V2,
        };
        Ok(Stats {
            data: stats::collect(&live),
            unified: v2.then(|| unified::collect(&live)),
        })
    }

    /// Peak memory use in bytes (v1 `memory.max_usage_in_bytes`, v2 `memory.peak`), when the
    /// host records it.
    pub fn memory_peak(&self) -> Result<Option<u64>> {
        let live = Live::new(self);
        let file = match live.version("memory") {
            Some(Ver::V1) => "memory.max_usage_in_bytes",
            Some(Ver::V2) => "memory.peak",
            None => return Ok(None),
        };
        Ok(live
            .read("memory", file)
            .and_then(|s| s.trim().parse().ok()))
    }

    /// Settings in `resources` this host cannot honour, one line each
    /// (`linux.resources.memory.kernel: ...`), for warnings at create and update.
    pub fn ignored_settings(&self, resources: &LinuxResources) -> Vec<String> {
        resources::plan(resources, &Live::new(self))
            .map(|p| p.ignored)
            .unwrap_or_default()
    }

    /// The container's processes: every pid in the cgroup and its descendants when sealrun
    /// created it ([`Cgroup::owned`]); in a joined cgroup only the container's own (see
    /// `members.rs`; `init` is the container's init if it still runs).
    pub fn container_pids(&self, init: Option<&Init>) -> Result<Vec<Pid>> {
        if self.owned() {
            return self.pids();
        }
        match self.procs_hierarchy() {
            Some(h) => members::pids_joined(&h.dir, init),
            None => Ok(Vec::new()),
        }
    }

    /// Send `signal` to the container's processes. In a cgroup sealrun created, every process
    /// in it, as runc's signalAllProcesses: freeze, signal each pid, thaw (a paused container
    /// stays paused unless the signal is SIGKILL); SIGKILL uses cgroup2's `cgroup.kill` when
    /// the kernel has it. In a joined cgroup, only the container's own processes, without
    /// freezing (the freeze would stop others' processes too); `init` is the container's init
    /// if it still runs.
    pub(crate) fn kill_all(&self, signal: Signal, init: Option<&Init>) -> Result<()> {
        if !self.owned() {
            return match self.procs_hierarchy() {
                Some(h) => members::kill_joined(&h.dir, init, signal),
                None => Ok(()),
            };
        }
        if signal == Signal::SIGKILL {
            if let Some(h) = self.v2() {
                let kill = h.dir.join("cgroup.kill");
                if kill.exists() {
                    match write_raw(&kill, "1") {
                        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
                        other => other.op_path("write", &kill)?,
                    }
                    // Tasks frozen by a v1 freezer only die once thawed (cgroup2's freezer
                    // lets fatal signals through).
                    if self.v1("freezer").is_some() && self.is_frozen()? {
                        self.thaw()?;
                    }
                    return Ok(());
                }
            }
        }
        // Nothing to signal (the usual `delete`: the init has exited and its pid namespace
        // took every other process along): skip the freeze and thaw round trip.
        if self.pids().is_ok_and(|p| p.is_empty()) {
            return Ok(());
        }
        let was_frozen = match self.is_frozen() {
            Ok(f) => f,
            Err(e) if is_enoent(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        let froze = match self.freeze() {
            Ok(()) => true,
            Err(e) => {
                crate::log::warn(&format!("kill: freeze: {e}"));
                false
            }
        };
        let pids = self.pids();
        if let Ok(pids) = &pids {
            for pid in pids {
                match sys::process::kill(*pid, Some(signal)) {
                    Ok(()) | Err(Errno::ESRCH) => {}
                    Err(e) => {
                        crate::log::warn(&format!("kill {pid}: {}", crate::error::errno_text(e)))
                    }
                }
            }
        }
        if froze && (!was_frozen || signal == Signal::SIGKILL) {
            self.thaw()?;
        }
        pids.map(drop)
    }

    /// What to mount for a `type: cgroup` mount: on a pure v2 host one cgroup2 filesystem;
    /// otherwise one filesystem per hierarchy under a tmpfs (including the unified hierarchy of
    /// a hybrid host, as `unified`), with symlinks for co-mounted controllers.
    pub fn container_mounts(&self) -> Vec<CgroupMount> {
        if self.mode == Mode::V2 {
            return self
                .v2()
                .map(|h| CgroupMount {
                    subdir: String::new(),
                    fstype: "cgroup2",
                    data: String::new(),
                    host_dir: h.dir.clone(),
                    symlinks: Vec::new(),
                })
                .into_iter()
                .collect();
        }
        self.hierarchies
            .iter()
            .map(|h| {
                let subdir = h
                    .mount_point
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let symlinks = h
                    .controllers
                    .iter()
                    .filter(|c| !c.starts_with("name=") && **c != subdir)
                    .cloned()
                    .collect();
                CgroupMount {
                    fstype: if h.v2 { "cgroup2" } else { "cgroup" },
                    data: h.controllers.join(","),
                    host_dir: h.dir.clone(),
                    symlinks,
                    subdir,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
