//! Gather [`HostFacts`] once, in the parent, before planning: every fact comes from the host
//! (the runtime's own `/proc`, sysfs), never from a container.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use oci_spec::runtime::Spec;

use crate::cgroups::layout;
use crate::error::{Context, Result};
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
    })
}
