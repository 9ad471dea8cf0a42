//! Gather [`HostFacts`] once, in the parent, before planning: every fact comes from the host
//! (the runtime's own `/proc`, sysfs), never from a container.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use oci_spec::runtime::Spec;

use crate::cgroups::layout;
use crate::error::{Context, Result};
use crate::spec::rootless::{self, RootlessFacts};
use crate::spec::{HostFacts, NsId};

fn ns_id(path: &Path) -> Option<NsId> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The kernel's highest capability number, from the host's procfs.
pub fn cap_last_cap() -> u8 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        // No procfs for the runtime is a broken host; assume the caps crate's newest
        // (CAP_CHECKPOINT_RESTORE), which drops at least every capability it knows.
        .unwrap_or(40)
}

/// `root.path` against `bundle`, canonicalised and checked to be a directory.
fn rootfs(spec: &Spec, bundle: &Path) -> std::result::Result<std::path::PathBuf, String> {
    let Some(root) = spec.root().as_ref() else {
        return Err("missing".into());
    };
    if root.path().as_os_str().is_empty() {
        return Err("missing".into());
    }
    let path = bundle.join(root.path());
    let canonical = std::fs::canonicalize(&path).map_err(|e| {
        format!(
            "{}: {}",
            path.display(),
            crate::error::errno_text(nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)))
        )
    })?;
    if !canonical.is_dir() {
        return Err(format!("{} is not a directory", canonical.display()));
    }
    Ok(canonical)
}

/// Gather what planning `spec` (from `bundle`) needs to know about this host.
pub fn gather(spec: &Spec, bundle: &Path) -> Result<HostFacts> {
    let mountinfo = Path::new("/proc/self/mountinfo");
    let own = Path::new("/proc/self/cgroup");
    let joined_ns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .filter_map(|n| n.path().clone())
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| {
            let id = ns_id(&p);
            (p, id)
        })
        .collect();
    Ok(HostFacts {
        cap_last_cap: cap_last_cap(),
        landlock_abi: crate::landlock::abi(),
        net_ns: ns_id(Path::new("/proc/self/ns/net")),
        joined_ns,
        cgroup_layout: layout::parse_mountinfo(
            &std::fs::read_to_string(mountinfo).op_path("read", mountinfo)?,
        ),
        own_cgroups: layout::parse_proc_cgroup(&std::fs::read_to_string(own).op_path("read", own)?),
        rootfs: rootfs(spec, bundle),
        apparmor: std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|s| s.trim() == "Y"),
        selinux: Path::new("/sys/fs/selinux/enforce").exists(),
        rootless: rootless_facts(),
        in_user_namespace: in_user_namespace(),
    })
}

/// Whether this process runs in a user namespace other than the initial one (whose uid_map
/// maps every id to itself).
pub fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
        .unwrap_or(false)
}

/// What planning needs when the caller is not root: its ids, its subordinate id ranges and
/// the map helpers. `None` for root.
pub fn rootless_facts() -> Option<RootlessFacts> {
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        return None;
    }
    let gid = nix::unistd::getegid().as_raw();
    let name = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| rootless::user_name(&passwd, uid.as_raw()))
        .unwrap_or_default();
    let sub = |file: &str, id: u32| {
        std::fs::read_to_string(file)
            .map(|t| rootless::parse_subids(&t, &name, id))
            .unwrap_or_default()
    };
    Some(RootlessFacts {
        uid: uid.as_raw(),
        gid,
        subuid: sub("/etc/subuid", uid.as_raw()),
        subgid: sub("/etc/subgid", gid),
        newuidmap: find_helper("newuidmap"),
        newgidmap: find_helper("newgidmap"),
    })
}

/// A map helper in `$PATH` (as runc looks for it).
fn find_helper(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    let found = path
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        });
    found
}
