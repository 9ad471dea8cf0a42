//! Making and removing a container's cgroup directories, recording which ones sealrun created
//! (see [`Cgroup::created`]): those are removed with what is in them; an existing cgroup is
//! checked before it is joined ([`adopt`]) and removed only if the container leaves it empty.

use std::path::Path;

use nix::errno::Errno;

use super::fs::{adopt, enable_v2, inherit_cpuset, remove_joined, remove_parent, remove_tree};
use super::{Cgroup, Hierarchy, Mode, DEFAULT_PARENT};
use crate::error::{Context, Error, Result};

impl Cgroup {
    /// Create the cgroup directories (recording the ones sealrun made). On failure, whatever
    /// was made is removed again.
    pub(crate) fn create(&mut self) -> Result<()> {
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
            if !self.created_in(&h) {
                adopt(&h.dir)?;
            }
        }
        // A process moved into a frozen cgroup stops at once, and the create would wait for
        // it forever: refuse with runc's words (the bats suite and callers grep them).
        if self.is_frozen().unwrap_or(false) {
            return Err(Error::config(
                "linux.cgroupsPath",
                "container's cgroup unexpectedly frozen",
            ));
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

    /// `delete`'s removal: [`Cgroup::destroy`], then the container cgroup in each hierarchy
    /// where it was only joined, once the container has left it empty (runc's `delete` removes
    /// it; a test or a manager that made it for this container alone would otherwise keep it
    /// forever). A failed `create` only destroys: the joined cgroup stays as the caller made it.
    pub(crate) fn remove(&self) -> Result<()> {
        let r = self.destroy();
        for h in &self.hierarchies {
            if !self.created.contains(&h.dir) {
                remove_joined(&h.dir);
            }
        }
        r
    }

    /// Remove the cgroup directories sealrun created, deepest first. The container's own
    /// directories (with any sub-cgroups its processes made) must go: one that cannot be
    /// removed after retries is an error. A created parent that another container still uses
    /// is left alone.
    pub(crate) fn destroy(&self) -> Result<()> {
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
