//! File-level cgroup work: reading and writing control files, the live [`Host`] the planner
//! and stats read through, creating and removing directories, the freezers, and attaching the
//! device program.

use std::io::Write as _;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode as FileMode;
use nix::unistd::Pid;

use super::resources::{Host, Ver};
use super::{devices, Cgroup, Hierarchy};
use crate::error::{Context, Error, Result};
use crate::sys;

/// Read a control file.
pub(super) fn read(path: &Path) -> Result<String> {
    sys::fd::read_small_string(None, path).op_path("read cgroup", path)
}

/// Write a control file (one write call, as cgroupfs expects).
pub(super) fn write(path: &Path, value: &str) -> Result<()> {
    write_raw(path, value).op_path(&format!("write {value:?} to"), path)
}

/// [`write`] without the error context.
pub(super) fn write_raw(path: &Path, value: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(value.as_bytes())
}

/// Open a control file to [`write_to`] it more than once (each `write(2)` is one value).
pub(super) fn open_for_writing(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .op_path("open", path)
}

/// One value to a control file opened by [`open_for_writing`], with [`write`]'s context.
pub(super) fn write_to(file: &mut std::fs::File, path: &Path, value: &str) -> Result<()> {
    file.write_all(value.as_bytes())
        .op_path(&format!("write {value:?} to"), path)
}

/// Whether `e` is ENOENT (a cgroup that is already gone).
pub(super) fn is_enoent(e: &Error) -> bool {
    e.errno() == Some(Errno::ENOENT)
}

/// Huge page sizes from /sys/kernel/mm/hugepages (`hugepages-2048kB` → `2MB`).
pub(super) fn hugepage_sizes() -> Vec<String> {
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
pub(super) fn page_size_name(kb: u64) -> String {
    let units = ["KB", "MB", "GB", "TB", "PB"];
    let (mut v, mut i) = (kb, 0);
    while v >= 1024 && v % 1024 == 0 && i + 1 < units.len() {
        v /= 1024;
        i += 1;
    }
    format!("{v}{}", units[i])
}

/// The live host as the planner sees it: controllers and files of this container's cgroups.
pub(super) struct Live<'a> {
    cg: &'a Cgroup,
    /// Controllers the cgroup2 hierarchy can offer (its root's cgroup.controllers).
    v2_ctls: Vec<String>,
}

impl<'a> Live<'a> {
    pub(super) fn new(cg: &'a Cgroup) -> Live<'a> {
        let v2_ctls = cg
            .v2()
            .and_then(|h| std::fs::read_to_string(h.mount_point.join("cgroup.controllers")).ok())
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        Live { cg, v2_ctls }
    }

    pub(super) fn dir(&self, ctl: &str) -> Option<&'a Path> {
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
pub(super) fn wait_for<T>(
    limit: Duration,
    mut done: impl FnMut() -> Result<Option<T>>,
) -> Result<Option<T>> {
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

/// v1 cpuset: a new cgroup starts with empty cpus/mems and refuses tasks; copy the parent's.
pub(super) fn inherit_cpuset(parent: &Path, dir: &Path) -> Result<()> {
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
pub(super) fn enable_v2(h: &Hierarchy, ctl: &str) -> Result<()> {
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

/// Every pid in `dir`'s cgroup.procs and its sub-cgroups'.
pub(super) fn collect_pids(dir: &Path, out: &mut Vec<Pid>) -> Result<()> {
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

/// v1 freezer: FROZEN, retried while tasks keep arriving, as runc does.
pub(super) fn freeze_v1(dir: &Path) -> Result<()> {
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

/// cgroup2: set cgroup.freeze and wait until cgroup.events agrees.
pub(super) fn set_frozen_v2(dir: &Path, frozen: bool) -> Result<()> {
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
pub(super) fn rmdir_retrying(dir: &Path, limit: Duration) -> Result<()> {
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
pub(super) fn remove_tree(dir: &Path) -> Result<()> {
    // The usual case, a leaf whose processes are gone, needs one rmdir; the kernel refuses a
    // cgroup with sub-cgroups or processes (EBUSY), and only then is the folder listed.
    match std::fs::remove_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
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

/// Check that the existing cgroup `dir` may be joined: never one with sub-cgroups (they are
/// someone else's, and joining would put the container above them); one with processes is
/// joined with a warning, as runc does (pods share cgroups), and never signalled as a whole.
pub(super) fn adopt(dir: &Path) -> Result<()> {
    let has_children = std::fs::read_dir(dir)
        .op_path("read dir", dir)?
        .flatten()
        .any(|e| e.file_type().is_ok_and(|t| t.is_dir()));
    if has_children {
        return Err(Error::config(
            "linux.cgroupsPath",
            format!(
                "cgroup {} already exists and has child cgroups sealrun did not create: \
                 refusing to join it",
                dir.display()
            ),
        ));
    }
    if !read(&dir.join("cgroup.procs"))?.trim().is_empty() {
        crate::log::warn(&format!(
            "linux.cgroupsPath: container's cgroup is not empty: cgroup {} already has \
             processes; joining it (sealrun signals only the container's own processes there \
             and removes it only once it is empty)",
            dir.display()
        ));
    }
    Ok(())
}

/// Remove a container cgroup sealrun only joined, as runc's `delete` does, once the container
/// has left it empty: never recursively and never its processes; one that still holds
/// processes or sub-cgroups (a pod's shared cgroup, another manager's) stays, and so does one
/// the runtime may not remove. Never an error: it was not sealrun's.
pub(super) fn remove_joined(dir: &Path) {
    let has_children = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        })
        .unwrap_or(true);
    if has_children {
        return;
    }
    if let Err(e) = std::fs::remove_dir(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            crate::log::debug(&format!(
                "joined cgroup {} left in place: {e}",
                dir.display()
            ));
        }
    }
}

/// Remove a parent directory sealrun created, unless another cgroup still lives in it.
pub(super) fn remove_parent(dir: &Path) -> Result<()> {
    // No listing first: the kernel refuses to remove a cgroup that holds sub-cgroups or
    // processes (EBUSY), which is exactly "in use".
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        // Another container has a cgroup in it, or someone put processes there: not ours to
        // empty.
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
pub(super) fn attach_device_program(dir: &Path, state: &devices::DeviceState) -> Result<()> {
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

    #[test]
    fn page_sizes_are_named_like_the_kernel() {
        assert_eq!(page_size_name(2048), "2MB");
        assert_eq!(page_size_name(1_048_576), "1GB");
        assert_eq!(page_size_name(64), "64KB");
        assert_eq!(page_size_name(1536), "1536KB");
    }
}
