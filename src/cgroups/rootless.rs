//! cgroups for a caller that may not write the whole tree (rootless). As runc: the container
//! uses the hierarchies delegated to the caller, runs without a cgroup when none is (said at
//! debug level), and fails naming the resource when the config asks for one that no delegated
//! hierarchy can limit.
//!
//! A hierarchy is delegated when the caller may create the container's directory (the nearest
//! existing one on the way down is writable) and, on cgroup2, may move its own processes there
//! (the `cgroup.procs` of the common ancestor of its own cgroup and the container's is
//! writable: the kernel's delegation containment rule).

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use nix::unistd::AccessFlags;
use oci_spec::runtime::LinuxResources;

use super::fs::Live;
use super::{resources, Cgroup, Hierarchy};
use crate::error::{Error, Result};

fn writable(path: &Path) -> bool {
    nix::unistd::access(path, AccessFlags::W_OK).is_ok()
}

/// The nearest existing directory from `h.dir` up to the mount point.
fn nearest_existing(h: &Hierarchy) -> PathBuf {
    let mut cur = h.dir.as_path();
    while !cur.is_dir() && cur != h.mount_point {
        match cur.parent() {
            Some(p) => cur = p,
            None => break,
        }
    }
    cur.to_path_buf()
}

/// Whether the caller may create and join `h`'s cgroup; `own` is the caller's own cgroup in
/// the hierarchy (as in /proc/self/cgroup).
fn delegated(h: &Hierarchy, own: Option<&Path>) -> bool {
    let dir = nearest_existing(h);
    let usable = if dir == h.dir {
        writable(&dir.join("cgroup.procs"))
    } else {
        writable(&dir) && writable(&dir.join("cgroup.procs"))
    };
    if !usable || !h.v2 {
        return usable;
    }
    let Some(own) = own else { return false };
    let target = h.dir.strip_prefix(&h.mount_point).unwrap_or(Path::new(""));
    let own = own.strip_prefix("/").unwrap_or(own);
    let common: PathBuf = target
        .components()
        .zip(own.components())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a)
        .collect();
    writable(&h.mount_point.join(common).join("cgroup.procs"))
}

impl Cgroup {
    /// The container has no cgroup at all (rootless without delegation).
    pub fn is_none(&self) -> bool {
        self.hierarchies.is_empty()
    }

    /// For a caller that is not root: keep the hierarchies delegated to it (`own`: its own
    /// cgroups, as in /proc/self/cgroup) and return the resources to apply there. Device rules
    /// are dropped: the container's user namespace cannot create device nodes, and opening a
    /// bind-mounted one is decided by the host's file permissions. Any other resource that no
    /// delegated hierarchy serves is an error naming it.
    pub fn restrict_to_delegated<'a>(
        &mut self,
        resources: &'a LinuxResources,
        own: &[(Vec<String>, PathBuf)],
        uid: u32,
    ) -> Result<Cow<'a, LinuxResources>> {
        let asked = resources::plan(resources, &Live::new(self))?;
        let before = self.hierarchies.len();
        self.hierarchies.retain(|h| {
            let mine = own
                .iter()
                .find(|(c, _)| {
                    if h.v2 {
                        c.is_empty()
                    } else {
                        !c.is_empty() && *c == h.controllers
                    }
                })
                .map(|(_, p)| p.as_path());
            delegated(h, mine)
        });
        let live = Live::new(self);
        if let Some(w) = asked.writes.iter().find(|w| live.dir(&w.ctl).is_none()) {
            return Err(Error::config(
                w.field.clone(),
                format!(
                    "running as uid {uid} (not root): no cgroup with the {} controller is \
                     delegated to this user, so the limit cannot be applied",
                    w.ctl
                ),
            ));
        }
        if self.hierarchies.is_empty() {
            crate::log::debug(&format!(
                "cgroup: uid {uid} may not write the cgroup tree and the config asks for no \
                 resources: running without a cgroup"
            ));
        } else if self.hierarchies.len() < before {
            crate::log::debug(&format!(
                "cgroup: uid {uid}: using the delegated hierarchies only ({})",
                self.hierarchies
                    .iter()
                    .map(|h| h.mount_point.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if resources.devices().as_ref().is_some_and(|d| !d.is_empty()) {
            crate::log::debug(
                "cgroup: rootless: device rules not applied (the user namespace cannot create \
                 device nodes)",
            );
            let mut r = resources.clone();
            r.set_devices(None);
            return Ok(Cow::Owned(r));
        }
        Ok(Cow::Borrowed(resources))
    }
}
