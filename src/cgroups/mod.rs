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

pub mod devices;
pub mod layout;
pub mod resources;
pub mod stats;

use std::io::Write as _;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::Signal;
use nix::sys::stat::Mode as FileMode;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxResources};
use serde::{Deserialize, Serialize};

pub use layout::Mode;
use resources::{Host, Ver};

use crate::error::{Context, Error, Result};
use crate::sys;

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
    /// Directories sealrun created, parents before children; `destroy` removes these only.
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
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).op_path("read cgroup", path)
}

fn write(path: &Path, value: &str) -> Result<()> {
    write_raw(path, value).op_path(&format!("write {value:?} to"), path)
}

fn write_raw(path: &Path, value: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(value.as_bytes())
}

fn is_enoent(e: &Error) -> bool {
    e.errno() == Some(Errno::ENOENT)
}

/// Huge page sizes from /sys/kernel/mm/hugepages (`hugepages-2048kB` → `2MB`).
fn hugepage_sizes() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
        return Vec::new();
    };
    let mut out: Vec<String> = dir
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let kb: u64 = name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            Some(page_size_name(kb))
        })
        .collect();
    out.sort();
    out
}

/// `2048` (kB) → `2MB`, as the kernel names hugetlb files.
fn page_size_name(kb: u64) -> String {
    let units = ["KB", "MB", "GB", "TB", "PB"];
    let (mut v, mut i) = (kb, 0);
    while v >= 1024 && v % 1024 == 0 && i + 1 < units.len() {
        v /= 1024;
        i += 1;
    }
    format!("{v}{}", units[i])
}

/// The live host as the planner sees it: controllers and files of this container's cgroups.
struct Live<'a> {
    cg: &'a Cgroup,
    /// Controllers the cgroup2 hierarchy can offer (its root's cgroup.controllers).
    v2_ctls: Vec<String>,
}

impl<'a> Live<'a> {
    fn new(cg: &'a Cgroup) -> Live<'a> {
        let v2_ctls = cg
            .v2()
            .and_then(|h| std::fs::read_to_string(h.mount_point.join("cgroup.controllers")).ok())
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        Live { cg, v2_ctls }
    }

    fn dir(&self, ctl: &str) -> Option<&'a Path> {
        match self.version(ctl)? {
            Ver::V1 => self.cg.v1(ctl).map(|h| h.dir.as_path()),
            Ver::V2 => self.cg.v2().map(|h| h.dir.as_path()),
        }
    }
}

impl Host for Live<'_> {
    fn version(&self, ctl: &str) -> Option<Ver> {
        if self.cg.v1(ctl).is_some() {
            Some(Ver::V1)
        } else if self.cg.v2().is_some()
            && (ctl == "cgroup" || self.v2_ctls.iter().any(|c| c == ctl))
        {
            Some(Ver::V2)
        } else {
            None
        }
    }
    fn exists(&self, ctl: &str, file: &str) -> bool {
        self.dir(ctl).is_some_and(|d| d.join(file).exists())
    }
    fn read(&self, ctl: &str, file: &str) -> Option<String> {
        std::fs::read_to_string(self.dir(ctl)?.join(file)).ok()
    }
    fn hugepage_sizes(&self) -> Vec<String> {
        hugepage_sizes()
    }
}

/// Poll `done` every few milliseconds until it returns `Some`, or until `limit`.
fn wait_for<T>(limit: Duration, mut done: impl FnMut() -> Result<Option<T>>) -> Result<Option<T>> {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(v) = done()? {
            return Ok(Some(v));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
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

    /// Create the cgroup directories (recording the ones sealrun made). On failure, whatever
    /// was made is removed again.
    pub fn create(&mut self) -> Result<()> {
        if self.hierarchies.is_empty() {
            return Err(Error::Unsupported(
                "no cgroup filesystem is mounted on this host".into(),
            ));
        }
        let r = self.create_dirs();
        if r.is_err() {
            if let Err(e) = self.destroy() {
                crate::log::warn(&format!("cleanup: {e}"));
            }
            self.created.clear();
        }
        r
    }

    fn create_dirs(&mut self) -> Result<()> {
        for h in self.hierarchies.clone() {
            // A parent another container made may vanish under us when that container is
            // deleted at the same moment: start the walk again.
            let mut attempts = 0;
            while !self.make_path(&h)? {
                attempts += 1;
                if attempts == 5 {
                    return Err(Error::os("mkdir", Some(&h.dir), Errno::ENOENT));
                }
            }
            if !self.created.contains(&h.dir) {
                // Joining a cgroup someone else uses would let kill --all and delete reach
                // their processes.
                let busy = read(&h.dir.join("cgroup.procs"))?;
                if !busy.trim().is_empty() {
                    return Err(Error::config(
                        "linux.cgroupsPath",
                        format!("cgroup {} is in use (it has processes)", h.dir.display()),
                    ));
                }
            }
        }
        if self.mode == Mode::V2 {
            // As runc: offer every available controller down to the container's cgroup.
            if let Some(h) = self.v2() {
                let all = std::fs::read_to_string(h.mount_point.join("cgroup.controllers"))
                    .unwrap_or_default();
                for ctl in all.split_whitespace() {
                    if let Err(e) = enable_v2(h, ctl) {
                        crate::log::debug(&format!("cgroup: {e}"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Create the directories from `h`'s mount point down to its cgroup; `false` when a
    /// parent disappeared on the way.
    fn make_path(&mut self, h: &Hierarchy) -> Result<bool> {
        let rel = h.dir.strip_prefix(&h.mount_point).unwrap_or(Path::new(""));
        let mut cur = h.mount_point.clone();
        for part in rel.components() {
            let parent = cur.clone();
            cur.push(part);
            match std::fs::create_dir(&cur) {
                Ok(()) => self.created.push(cur.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if !cur.is_dir() {
                        return Err(Error::Other(format!(
                            "{} exists and is not a cgroup directory",
                            cur.display()
                        )));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(e).op_path("mkdir", &cur),
            }
            if h.controllers.iter().any(|c| c == "cpuset") {
                inherit_cpuset(&parent, &cur)?;
            }
        }
        Ok(true)
    }

    /// Apply (or update) resource limits. Device rules are applied when present (create);
    /// `update` passes none.
    pub fn apply(&self, resources: &LinuxResources) -> Result<()> {
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
            write(&h.dir.join("devices.deny"), "a")?;
            for r in &parsed {
                let file = if r.allow {
                    "devices.allow"
                } else {
                    "devices.deny"
                };
                write(&h.dir.join(file), &r.v1_line())?;
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
    pub fn add_process(&self, pid: Pid, into_v2_done: bool) -> Result<()> {
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
    pub fn freeze(&self) -> Result<()> {
        if let Some(h) = self.v1("freezer") {
            return freeze_v1(&h.dir);
        }
        if let Some(h) = self.v2() {
            return set_frozen_v2(&h.dir, true);
        }
        Err(Error::Unsupported("no freezer cgroup on this host".into()))
    }

    /// Thaw.
    pub fn thaw(&self) -> Result<()> {
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

    /// Resource usage sample.
    pub fn stats(&self) -> Result<Stats> {
        if let Some(h) = self.hierarchies.iter().find(|h| !h.dir.is_dir()) {
            return Err(Error::os("stat cgroup", Some(&h.dir), Errno::ENOENT));
        }
        Ok(Stats {
            data: stats::collect(&Live::new(self)),
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

    /// Send `signal` to every process in the cgroup, as runc's signalAllProcesses: freeze,
    /// signal each pid, thaw (a paused container stays paused unless the signal is SIGKILL).
    /// SIGKILL uses cgroup2's `cgroup.kill` when the kernel has it.
    pub fn kill_all(&self, signal: Signal) -> Result<()> {
        if signal == Signal::SIGKILL {
            if let Some(h) = self.v2() {
                let kill = h.dir.join("cgroup.kill");
                if kill.exists() {
                    return match write_raw(&kill, "1") {
                        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
                        other => other.op_path("write", &kill),
                    };
                }
            }
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

    /// Remove the cgroup directories sealrun created, deepest first. The container's own
    /// directories (with any sub-cgroups its processes made) must go: one that cannot be
    /// removed after retries is an error. A created parent that another container still uses
    /// is left alone.
    pub fn destroy(&self) -> Result<()> {
        let mut first_err = None;
        for dir in self.created.iter().rev() {
            let leaf = self.hierarchies.iter().any(|h| &h.dir == dir);
            let r = if leaf {
                remove_tree(dir)
            } else {
                remove_parent(dir)
            };
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        }
        // The default parent is sealrun's own: whoever leaves it empty removes it, even if
        // another container created it (else concurrent deletes leave it behind).
        if self.path.starts_with(&format!("{DEFAULT_PARENT}/")) {
            for h in &self.hierarchies {
                let parent = h.mount_point.join(DEFAULT_PARENT.trim_start_matches('/'));
                if let Err(e) = remove_parent(&parent) {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// v1 cpuset: a new cgroup starts with empty cpus/mems and refuses tasks; copy the parent's.
fn inherit_cpuset(parent: &Path, dir: &Path) -> Result<()> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let mine = read(&dir.join(file))?;
        if mine.trim().is_empty() {
            let theirs = read(&parent.join(file))?;
            write(&dir.join(file), theirs.trim())?;
        }
    }
    Ok(())
}

/// Make `ctl` available in `h.dir` by enabling it in every ancestor's subtree_control.
fn enable_v2(h: &Hierarchy, ctl: &str) -> Result<()> {
    let has = |dir: &Path| -> bool {
        std::fs::read_to_string(dir.join("cgroup.controllers"))
            .map(|s| s.split_whitespace().any(|c| c == ctl))
            .unwrap_or(false)
    };
    if has(&h.dir) {
        return Ok(());
    }
    let rel = h.dir.strip_prefix(&h.mount_point).unwrap_or(Path::new(""));
    let mut cur = h.mount_point.clone();
    for part in rel.components() {
        let control = cur.join("cgroup.subtree_control");
        let enabled = read(&control)?;
        if !enabled.split_whitespace().any(|c| c == ctl) {
            write(&control, &format!("+{ctl}"))?;
        }
        cur.push(part);
    }
    Ok(())
}

fn collect_pids(dir: &Path, out: &mut Vec<Pid>) -> Result<()> {
    for line in read(&dir.join("cgroup.procs"))?.lines() {
        if let Ok(n) = line.trim().parse::<i32>() {
            out.push(Pid::from_raw(n));
        }
    }
    for entry in std::fs::read_dir(dir).op_path("read dir", dir)?.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            match collect_pids(&entry.path(), out) {
                // A sub-cgroup removed while we walk.
                Err(e) if is_enoent(&e) => {}
                other => other?,
            }
        }
    }
    Ok(())
}

fn freeze_v1(dir: &Path) -> Result<()> {
    let state = dir.join("freezer.state");
    for i in 0..1000 {
        if i % 50 == 49 {
            // New processes keep arriving: let the cgroup settle and try again.
            write(&state, "THAWED")?;
            std::thread::sleep(Duration::from_millis(10));
        }
        write(&state, "FROZEN")?;
        if i % 25 == 24 {
            std::thread::sleep(Duration::from_micros(10));
        }
        match read(&state)?.trim() {
            "FROZEN" => return Ok(()),
            "FREEZING" => continue,
            other => {
                return Err(Error::Other(format!(
                    "{}: unexpected freezer state {other} after FROZEN",
                    dir.display()
                )))
            }
        }
    }
    write(&state, "THAWED")?;
    Err(Error::Other(format!("{}: unable to freeze", dir.display())))
}

fn set_frozen_v2(dir: &Path, frozen: bool) -> Result<()> {
    let want = if frozen { "1" } else { "0" };
    write(&dir.join("cgroup.freeze"), want)?;
    let events = dir.join("cgroup.events");
    let done = wait_for(Duration::from_secs(10), || {
        let text = read(&events)?;
        Ok(text
            .lines()
            .any(|l| l.trim() == format!("frozen {want}"))
            .then_some(()))
    })?;
    if done.is_none() {
        if frozen {
            let _ = write(&dir.join("cgroup.freeze"), "0");
        }
        return Err(Error::Other(format!(
            "{}: cgroup.events never reported frozen {want}",
            dir.display()
        )));
    }
    Ok(())
}

/// rmdir with retries while the kernel finishes detaching exiting tasks.
fn rmdir_retrying(dir: &Path, limit: Duration) -> Result<()> {
    let r = wait_for(limit, || match std::fs::remove_dir(dir) {
        Ok(()) => Ok(Some(())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Some(())),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Ok(None),
        Err(e) => Err(e).op_path("rmdir", dir),
    })?;
    r.ok_or_else(|| {
        Error::os(
            "rmdir (cgroup still has processes)",
            Some(dir),
            Errno::EBUSY,
        )
    })
}

/// Remove a container cgroup and the sub-cgroups its processes created, deepest first.
fn remove_tree(dir: &Path) -> Result<()> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    remove_tree(&e.path())?;
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).op_path("read dir", dir),
    }
    rmdir_retrying(dir, Duration::from_secs(5))
}

/// Remove a parent directory sealrun created, unless another cgroup still lives in it.
fn remove_parent(dir: &Path) -> Result<()> {
    let in_use = |dir: &Path| match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            entries.any(|e| e.is_ok_and(|e| e.file_type().is_ok_and(|t| t.is_dir())))
        }
        Err(_) => false,
    };
    if in_use(dir) {
        crate::log::debug(&format!(
            "cgroup {} is still in use: left in place",
            dir.display()
        ));
        return Ok(());
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        // Another container made a cgroup in it since we looked, or someone put processes
        // there: not ours to empty.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::ENOTEMPTY)) => {
            crate::log::debug(&format!(
                "cgroup {} is in use: left in place",
                dir.display()
            ));
            Ok(())
        }
        Err(e) => Err(e).op_path("rmdir", dir),
    }
}

/// Load the device program for `state` and make it the only one on `dir`: attach the new one
/// (ALLOW_MULTI, so both are in force for a moment and the stricter wins), then detach the
/// programs that were there before.
fn attach_device_program(dir: &Path, state: &devices::DeviceState) -> Result<()> {
    use sys::bpf;
    let insns = devices::program(state);
    let prog = bpf::prog_load_cgroup_device(&insns, c"Apache-2.0").map_err(|(errno, log)| {
        crate::log::debug(&format!("bpf verifier: {log}"));
        Error::os("bpf(BPF_PROG_LOAD) device filter", None, errno)
    })?;
    let cg = sys::fd::open(dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY, FileMode::empty())
        .op_path("open cgroup", dir)?;
    let old = bpf::prog_query(cg.as_fd(), bpf::ATTACH_CGROUP_DEVICE)
        .op_path("bpf(BPF_PROG_QUERY)", dir)?;
    bpf::prog_attach(
        cg.as_fd(),
        prog.as_fd(),
        bpf::ATTACH_CGROUP_DEVICE,
        bpf::F_ALLOW_MULTI,
    )
    .op_path("bpf(BPF_PROG_ATTACH)", dir)?;
    for id in old {
        match bpf::prog_get_fd_by_id(id) {
            Ok(fd) => bpf::prog_detach(cg.as_fd(), fd.as_fd(), bpf::ATTACH_CGROUP_DEVICE)
                .op_path("bpf(BPF_PROG_DETACH)", dir)?,
            // Already gone.
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(Error::os("bpf(BPF_PROG_GET_FD_BY_ID)", Some(dir), e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const OWN: &str = "4:memory:/process_api/x\n9:name=systemd:/\n2:cpuacct:/\n1:cpu:/\n0::/\n";

    fn resolve(mountinfo: &str, path: Option<&str>, id: &str) -> Result<Cgroup> {
        Cgroup::resolve_in(
            &layout::parse_mountinfo(mountinfo),
            &layout::parse_proc_cgroup(OWN),
            path,
            id,
        )
    }

    #[test]
    fn absent_path_defaults_to_an_absolute_sealrun_parent() {
        let cg = resolve(HYBRID, None, "c1").unwrap();
        assert_eq!(cg.path, "/sealrun/c1");
        assert_eq!(cg.mode, Mode::Hybrid);
        let dirs: Vec<&Path> = cg.hierarchies.iter().map(|h| h.dir.as_path()).collect();
        assert_eq!(
            dirs,
            [
                Path::new("/sys/fs/cgroup/cpu/sealrun/c1"),
                Path::new("/sys/fs/cgroup/cpuacct/sealrun/c1"),
                Path::new("/sys/fs/cgroup/memory/sealrun/c1"),
                Path::new("/sys/fs/cgroup/systemd/sealrun/c1"),
                Path::new("/sys/fs/cgroup/unified/sealrun/c1"),
            ]
        );
        assert_eq!(resolve(HYBRID, Some(""), "c1").unwrap().path, "/sealrun/c1");
    }

    #[test]
    fn bad_paths_and_ids_are_refused() {
        for p in ["/", "..", "/..", "."] {
            let e = resolve(HYBRID, Some(p), "c1").unwrap_err().to_string();
            assert!(e.contains("linux.cgroupsPath"), "{p}: {e}");
        }
        assert!(resolve(HYBRID, None, "../x").is_err());
        assert_eq!(
            resolve(HYBRID, Some("/a/../../b/c"), "c1").unwrap().path,
            "/b/c"
        );
    }

    #[test]
    fn relative_path_follows_runc_under_the_callers_cgroup() {
        let cg = resolve(HYBRID, Some("x/c1"), "c1").unwrap();
        assert_eq!(
            cg.hierarchies[2].dir,
            Path::new("/sys/fs/cgroup/memory/process_api/x/x/c1")
        );
        assert_eq!(cg.hierarchies[0].dir, Path::new("/sys/fs/cgroup/cpu/x/c1"));
    }

    #[test]
    fn state_json_round_trips() {
        let mut cg = resolve(HYBRID, Some("/t/c1"), "c1").unwrap();
        cg.created = vec![PathBuf::from("/sys/fs/cgroup/cpu/t")];
        let json = serde_json::to_string(&cg).unwrap();
        assert!(json.contains("\"mode\":\"hybrid\""), "{json}");
        let back: Cgroup = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cg);
        // An older state.json with only the path still loads.
        let old: Cgroup = serde_json::from_str(r#"{"path":"/x"}"#).unwrap();
        assert!(old.hierarchies.is_empty());
    }

    #[test]
    fn container_mounts_on_hybrid_and_v2() {
        let mut text = HYBRID.replace(
            "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n",
            "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n",
        );
        text.push('\n');
        let cg = resolve(&text, Some("/t/c1"), "c1").unwrap();
        let m = cg.container_mounts();
        let short: Vec<(&str, &str, &str, Vec<String>)> = m
            .iter()
            .map(|m| {
                (
                    m.subdir.as_str(),
                    m.fstype,
                    m.data.as_str(),
                    m.symlinks.clone(),
                )
            })
            .collect();
        assert_eq!(
            short,
            [
                (
                    "cpu,cpuacct",
                    "cgroup",
                    "cpu,cpuacct",
                    vec!["cpu".to_string(), "cpuacct".to_string()]
                ),
                ("memory", "cgroup", "memory", vec![]),
                ("systemd", "cgroup", "name=systemd", vec![]),
                ("unified", "cgroup2", "", vec![]),
            ]
        );
        assert_eq!(m[1].host_dir, Path::new("/sys/fs/cgroup/memory/t/c1"));
        let v2 = "26 25 0:23 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let cg = Cgroup::resolve_in(
            &layout::parse_mountinfo(v2),
            &layout::parse_proc_cgroup("0::/a/b\n"),
            Some("/t/c1"),
            "c1",
        )
        .unwrap();
        let m = cg.container_mounts();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].subdir, "");
        assert_eq!(m[0].fstype, "cgroup2");
        assert_eq!(m[0].host_dir, Path::new("/sys/fs/cgroup/t/c1"));
    }

    #[test]
    fn page_sizes_are_named_like_the_kernel() {
        assert_eq!(page_size_name(2048), "2MB");
        assert_eq!(page_size_name(1_048_576), "1GB");
        assert_eq!(page_size_name(64), "64KB");
        assert_eq!(page_size_name(1536), "1536KB");
    }
}
