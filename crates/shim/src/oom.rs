//! TaskOOM while a container lives.
//!
//! - cgroup v1: the memory cgroup's OOM notifier, an eventfd registered through
//!   `cgroup.event_control` for `memory.oom_control`, which the serving shim's main loop waits
//!   on (see `serve`); each OOM it reports is published at once.
//! - cgroup v2: `memory.events`, whose changes the kernel announces to inotify (IN_MODIFY, as
//!   for every cgroup2 event file); a TaskOOM is published each time its `oom_kill` count
//!   rises, as containerd's Go shim does. One inotify instance and one thread, started with
//!   the first such container, serve every container of the shim (see [`Counters`]). The
//!   kernel says nothing to a watch when its cgroup is removed (the watched file's inode
//!   lives on), so Delete ends the container's watch ([`forget`]).
//!
//! The check at the init's exit (see `state`) publishes one only when none was.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use containerd_shim::protos::events::task::TaskOOM;
use containerd_shim::protos::topics;
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use crate::events::pack;
use crate::state::Shared;

/// Watches `file` for container `id`: a v1 `memory.oom_control` until its cgroup is removed,
/// a v2 `memory.events` until the container is deleted ([`forget`]); does nothing for any
/// other file.
pub fn watch(shared: &Arc<Shared>, id: &str, file: PathBuf) {
    match file.file_name().and_then(|n| n.to_str()) {
        Some("memory.oom_control") => watch_v1(shared, id, file),
        Some("memory.events") => watch_v2(shared, id, &file),
        _ => {}
    }
}

fn watch_v1(shared: &Shared, id: &str, oom_control: PathBuf) {
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

/// The shim's one `memory.events` watcher (`None` when inotify failed to start).
static V2: OnceLock<Option<Arc<Counters>>> = OnceLock::new();

fn watch_v2(shared: &Arc<Shared>, id: &str, events: &Path) {
    let counters = V2.get_or_init(|| {
        let counters = match Counters::new("oom_kill") {
            Ok(c) => Arc::new(c),
            Err(e) => {
                log::warn!("OOM watcher: {e}");
                return None;
            }
        };
        let (c, shared) = (Arc::clone(&counters), Arc::clone(shared));
        std::thread::spawn(move || loop {
            match c.next() {
                Ok(seen) => seen.iter().for_each(|s| on_v2(&c, &shared, s)),
                Err(e) => {
                    log::warn!("OOM watcher: {e}");
                    break;
                }
            }
        });
        Some(counters)
    });
    let Some(counters) = counters else {
        return;
    };
    // The count at create (see `service`): an OOM between then and now is still reported.
    let baseline = shared
        .lock()
        .get(id)
        .and_then(|c| c.oom.as_ref().map(|o| o.1));
    let baseline = baseline.unwrap_or_else(|| crate::state::oom_kills(events));
    if let Err(e) = counters.add(id, events, baseline) {
        log::warn!("OOM watcher for {id}: {e}");
    }
}

/// Ends the `memory.events` watch of container `id` (deleted), if it has one.
pub fn forget(id: &str) {
    if let Some(Some(counters)) = V2.get() {
        counters.remove(id);
    }
}

fn on_v2(counters: &Counters, shared: &Shared, seen: &Seen) {
    let Seen::Rose { id, .. } = seen else {
        return;
    };
    // Held like an exit (see `Shared::on_exit`): the init's exit, if this OOM killed it, is
    // published after this TaskOOM.
    let _order = shared.starting.lock().unwrap_or_else(|e| e.into_inner());
    match shared.lock().get_mut(id) {
        // The exit check has looked at the count already (and reported what it saw).
        Some(c) if c.init.exit.is_some() => return,
        Some(c) => c.oom_reported = true,
        None => {
            counters.remove(id); // deleted
            return;
        }
    }
    shared.publish(
        topics::TASK_OOM_EVENT_TOPIC,
        pack(&TaskOOM {
            container_id: id.clone(),
            ..Default::default()
        }),
    );
}

/// One counter (`key`) of `key value` files, such as `oom_kill` of cgroup2's memory.events,
/// watched with one inotify instance for many containers: [`Counters::next`] says whose
/// count rose.
pub struct Counters {
    inotify: Inotify,
    key: &'static str,
    /// By watch; one file (one watch) may serve containers that share a cgroup.
    watched: Mutex<HashMap<WatchDescriptor, Vec<Watched>>>,
}

struct Watched {
    id: String,
    file: PathBuf,
    /// The highest count seen (counts only rise; a read in the middle of a rewrite of a
    /// regular file may see less).
    last: u64,
}

impl Watched {
    /// Reads the count: `Rose` when it is above the last one seen.
    fn rose(&mut self, key: &str) -> Option<Seen> {
        let count = count(&self.file, key);
        if count <= self.last {
            return None;
        }
        self.last = count;
        Some(Seen::Rose {
            id: self.id.clone(),
            count,
        })
    }
}

/// What [`Counters::next`] saw.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// The count of container `id` rose to `count`.
    Rose { id: String, count: u64 },
    /// The file of container `id` is gone (a regular file deleted; a cgroup's stays while
    /// watched): no longer watched.
    Gone { id: String },
}

impl Counters {
    pub fn new(key: &'static str) -> nix::Result<Counters> {
        Ok(Counters {
            inotify: Inotify::init(InitFlags::IN_CLOEXEC)?,
            key,
            watched: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<WatchDescriptor, Vec<Watched>>> {
        self.watched.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Watches `file` for `id`; counts above `baseline` are reported.
    pub fn add(&self, id: &str, file: &Path, baseline: u64) -> nix::Result<()> {
        // Locked across the watch's creation, so that `next` finds the entry of any event.
        let mut watched = self.lock();
        let wd = self.inotify.add_watch(file, AddWatchFlags::IN_MODIFY)?;
        watched.entry(wd).or_default().push(Watched {
            id: id.to_string(),
            file: file.to_path_buf(),
            last: baseline,
        });
        Ok(())
    }

    /// Stops watching the file of container `id`; whether it was watched.
    pub fn remove(&self, id: &str) -> bool {
        let mut watched = self.lock();
        let Some((&wd, all)) = watched
            .iter_mut()
            .find(|(_, all)| all.iter().any(|w| w.id == id))
        else {
            return false;
        };
        all.retain(|w| w.id != id);
        if !all.is_empty() {
            return true;
        }
        watched.remove(&wd);
        match self.inotify.rm_watch(wd) {
            // EINVAL: the watch ended already (the file went away meanwhile).
            Ok(()) | Err(nix::errno::Errno::EINVAL) => {}
            Err(e) => log::warn!("OOM watcher: end the watch of {id}: {e}"),
        }
        true
    }

    /// Waits for changes, then says whose count rose and which files are gone.
    pub fn next(&self) -> nix::Result<Vec<Seen>> {
        let events = self.inotify.read_events()?;
        let mut watched = self.lock();
        let mut seen = Vec::new();
        for e in events {
            if e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                // Events were dropped: look at every file.
                let all = watched.values_mut().flatten();
                seen.extend(all.filter_map(|w| w.rose(self.key)));
            } else if e.mask.contains(AddWatchFlags::IN_IGNORED) {
                let gone = watched.remove(&e.wd).unwrap_or_default();
                seen.extend(gone.into_iter().map(|w| Seen::Gone { id: w.id }));
            } else if let Some(all) = watched.get_mut(&e.wd) {
                seen.extend(all.iter_mut().filter_map(|w| w.rose(self.key)));
            }
        }
        Ok(seen)
    }
}

/// The value of `key` in a `key value` file (0 when absent or unreadable).
fn count(file: &Path, key: &str) -> u64 {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    sealrun::cgroups::stats::key_values(&text)
        .get(key)
        .copied()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;

    /// `next` once changes are pending: a test waits on the kernel, but not forever.
    fn next(c: &Counters) -> Vec<Seen> {
        let mut fds = [PollFd::new(c.inotify.as_fd(), PollFlags::POLLIN)];
        let ready = poll(&mut fds, PollTimeout::from(60_000u16)).expect("poll");
        assert_eq!(ready, 1, "no inotify event within a minute");
        c.next().expect("read inotify")
    }

    /// Container and count of each `Rose`, and each `Gone`.
    fn rose(seen: &[Seen]) -> Vec<(String, Option<u64>)> {
        seen.iter()
            .map(|s| match s {
                Seen::Rose { id, count, .. } => (id.clone(), Some(*count)),
                Seen::Gone { id } => (id.clone(), None),
            })
            .collect()
    }

    /// The kernel's count of the instance's watches (`inotify wd:` lines of its fdinfo).
    fn watches(c: &Counters) -> usize {
        let fd = c.inotify.as_fd().as_raw_fd();
        std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("inotify wd:"))
            .count()
    }

    fn events(oom: u64, oom_kill: u64) -> String {
        format!("low 0\nhigh 0\nmax {oom}\noom {oom}\noom_kill {oom_kill}\noom_group_kill 0\n")
    }

    #[test]
    fn each_rise_of_oom_kill_is_reported_once() {
        // Regular files stand in for memory.events (this host's memory controller is v1):
        // inotify reports their writes as it reports the kernel's changes to cgroup files.
        let dir = std::env::temp_dir().join(format!("shim-oom-v2-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.events"), dir.join("b.events"));
        std::fs::write(&a, events(1, 1)).unwrap();
        std::fs::write(&b, events(0, 0)).unwrap();
        let c = Counters::new("oom_kill").unwrap();
        c.add("a", &a, 1).unwrap();
        c.add("b", &b, 0).unwrap();

        std::fs::write(&a, events(2, 2)).unwrap();
        assert_eq!(rose(&next(&c)), [("a".to_string(), Some(2))]);
        // A change that is no new kill (another OOM that killed nothing) reports nothing.
        std::fs::write(&a, events(3, 2)).unwrap();
        assert_eq!(next(&c), Vec::<Seen>::new());
        std::fs::write(&b, events(1, 1)).unwrap();
        assert_eq!(rose(&next(&c)), [("b".to_string(), Some(1))]);
        std::fs::write(&a, events(5, 4)).unwrap();
        assert_eq!(rose(&next(&c)), [("a".to_string(), Some(4))]);

        // Two containers in one cgroup share its watch.
        c.add("b2", &b, 1).unwrap();
        assert_eq!(watches(&c), 2);
        std::fs::write(&b, events(2, 2)).unwrap();
        let mut seen = rose(&next(&c));
        seen.sort();
        assert_eq!(
            seen,
            [("b".to_string(), Some(2)), ("b2".to_string(), Some(2))]
        );
        assert!(c.remove("b2"));
        assert_eq!(watches(&c), 2);

        // A deleted container is no longer watched.
        assert!(c.remove("b"));
        assert!(!c.remove("b"));
        assert_eq!(watches(&c), 1);
        std::fs::write(&b, events(3, 3)).unwrap();
        std::fs::write(&a, events(6, 5)).unwrap();
        assert_eq!(rose(&next(&c)), [("a".to_string(), Some(5))]);

        // The file gone (its cgroup removed): the watch ends.
        std::fs::remove_file(&a).unwrap();
        assert_eq!(rose(&next(&c)), [("a".to_string(), None)]);
        assert!(c.lock().is_empty());
        assert_eq!(watches(&c), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The cgroup2 hierarchy (`/sys/fs/cgroup/unified` on hybrid hosts).
    fn cgroup2_root() -> PathBuf {
        ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.join("cgroup.controllers").exists())
            .expect("a cgroup2 hierarchy")
    }

    /// A scratch cgroup `<parent>/c` on the cgroup2 hierarchy, removed (thawed, children
    /// first) when dropped, also when the test fails.
    struct Scratch {
        parent: PathBuf,
        cg: PathBuf,
    }

    impl Scratch {
        fn new(root: &Path) -> Scratch {
            let parent = root.join(format!("shim-oom-unit-{}", std::process::id()));
            let cg = parent.join("c");
            std::fs::create_dir_all(&cg).unwrap();
            Scratch { parent, cg }
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::write(self.cg.join("cgroup.freeze"), "0");
            let _ = std::fs::remove_dir(&self.cg);
            let _ = std::fs::remove_dir(&self.parent);
        }
    }

    #[test]
    fn cgroup2_event_files_are_heard_and_their_watch_ends_at_delete() {
        // memory.events cannot exist on this host's cgroup2 (memory is bound to v1), but every
        // cgroup2 event file is announced the same way (kernfs's notification): cgroup.events,
        // whose `frozen` goes to 1 when the cgroup is frozen, is watched here instead.
        let scratch = Scratch::new(&cgroup2_root());
        let cg = scratch.cg.clone();
        let c = Counters::new("frozen").unwrap();
        c.add("c", &cg.join("cgroup.events"), 0).unwrap();
        std::fs::write(cg.join("cgroup.freeze"), "1").unwrap();
        let mut seen = next(&c);
        while seen.is_empty() {
            seen = next(&c); // an event whose count did not rise (none is expected)
        }
        assert_eq!(rose(&seen), [("c".to_string(), Some(1))]);
        drop(scratch);
        assert!(!cg.exists());
        // The cgroup is gone but the kernel keeps the watched file's inode and says nothing
        // (no IN_IGNORED, seen on this kernel): the shim ends the watch at Delete.
        assert_eq!(watches(&c), 1);
        assert!(c.remove("c"));
        assert_eq!(watches(&c), 0);
    }

    #[test]
    #[ignore = "needs the memory controller on cgroup2; this host binds it to v1 (hybrid), \
                so no cgroup2 memory.events exists here"]
    fn a_real_oom_kill_in_a_cgroup2_memory_cgroup_is_reported() {
        let root = cgroup2_root();
        let ctls = std::fs::read_to_string(root.join("cgroup.subtree_control")).unwrap();
        assert!(
            ctls.split_whitespace().any(|c| c == "memory"),
            "the memory controller is not enabled below {}",
            root.display()
        );
        let scratch = Scratch::new(&root);
        let cg = &scratch.cg;
        std::fs::write(scratch.parent.join("cgroup.subtree_control"), "+memory").unwrap();
        std::fs::write(cg.join("memory.max"), "16777216").unwrap();
        std::fs::write(cg.join("memory.swap.max"), "0").unwrap();
        let events = cg.join("memory.events");
        let c = Counters::new("oom_kill").unwrap();
        c.add("c", &events, crate::state::oom_kills(&events))
            .unwrap();
        // A child that moves itself into the cgroup, then holds 64 MiB in one line.
        let status = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!(
                "echo $$ > {} && head -c 67108864 /dev/zero | tail -n 1 >/dev/null",
                cg.join("cgroup.procs").display()
            ))
            .status()
            .unwrap();
        assert!(!status.success(), "the memory hog was not killed");
        let mut seen = next(&c);
        while seen.is_empty() {
            seen = next(&c);
        }
        assert!(matches!(&seen[0], Seen::Rose { id, count } if id == "c" && *count >= 1));
        assert!(c.remove("c"));
    }
}
