//! `sealrun features`: what this runtime supports, in the runtime-spec features.md shape.
//! containerd and the kubelet read it; every value here is backed by code.

use serde_json::{json, Value};

use crate::hooks::HookKind;
use crate::namespaces::NsKind;

/// The features document.
pub fn features() -> Value {
    let mut options: Vec<&str> = crate::spec::KNOWN_MOUNT_OPTIONS.to_vec();
    options.sort();
    let mut caps: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    caps.sort();
    let mut namespaces: Vec<&str> = NsKind::ALL.iter().map(|k| k.spec_name()).collect();
    namespaces.sort();
    let hooks: Vec<&str> = [
        HookKind::Prestart,
        HookKind::CreateRuntime,
        HookKind::CreateContainer,
        HookKind::StartContainer,
        HookKind::Poststart,
        HookKind::Poststop,
    ]
    .iter()
    .map(|h| h.name())
    .collect();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": crate::OCI_VERSION,
        "hooks": hooks,
        "mountOptions": options,
        "linux": {
            "namespaces": namespaces,
            "capabilities": caps,
            // features.md: what the runtime implements, "unrelated to whether the host uses"
            // it. sealrun drives v1 and v2 hierarchies (and the hybrid mix) itself, has no
            // systemd cgroup driver (`--systemd-cgroup` is refused) and ignores rdma limits.
            // What this host mounts is the `run.sealrun.cgroup.host` annotation.
            "cgroup": {
                "v1": true,
                "v2": true,
                "systemd": false,
                "systemdUser": false,
                "rdma": false
            },
            "seccomp": crate::seccomp::features_json(),
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            // Id-mapped bind mounts, where the kernel has mount_setattr (5.12).
            "mountExtensions": {"idmap": {"enabled": crate::sys::mount::has_mount_setattr()}}
        },
        "annotations": {
            "run.sealrun.version": env!("CARGO_PKG_VERSION"),
            "run.sealrun.landlock.abi": crate::landlock::abi().to_string(),
            "run.sealrun.sealed-exe": "read-only-overlay,memfd",
            "run.sealrun.cgroup.host": host_cgroups(&mountinfo),
        }
    })
}

/// Which cgroup versions the host mounts, from `/proc/self/mountinfo` text: `v1` when a v1
/// hierarchy with a controller is mounted (a named one such as `name=systemd` holds none),
/// `v2` when a cgroup2 hierarchy is; `v1,v2` on a hybrid host, `none` without either.
pub fn host_cgroups(mountinfo: &str) -> String {
    let layout = crate::cgroups::layout::parse_mountinfo(mountinfo);
    let v1 = layout
        .hierarchies
        .iter()
        .any(|h| !h.v2 && h.controllers.iter().any(|c| !c.starts_with("name=")));
    let v2 = layout.hierarchies.iter().any(|h| h.v2);
    let kinds: Vec<&str> = [(v1, "v1"), (v2, "v2")]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, k)| *k)
        .collect();
    if kinds.is_empty() {
        "none".to_string()
    } else {
        kinds.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_host_annotation_matches_mountinfo() {
        // Read independently of the cgroups module: the filesystem types in mountinfo, and
        // the kernel's list of controllers bound to a v1 hierarchy (non-zero hierarchy id).
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let fstypes: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split_once(" - ")?.1.split(' ').next())
            .collect();
        let bound = std::fs::read_to_string("/proc/cgroups").unwrap();
        let v1_controllers = bound
            .lines()
            .filter(|l| !l.starts_with('#'))
            .any(|l| l.split_whitespace().nth(1).is_some_and(|h| h != "0"));
        let v1 = v1_controllers && fstypes.contains(&"cgroup");
        let v2 = fstypes.contains(&"cgroup2");
        let want = match (v1, v2) {
            (true, true) => "v1,v2",
            (true, false) => "v1",
            (false, true) => "v2",
            (false, false) => "none",
        };
        let f = features();
        assert_eq!(f["annotations"]["run.sealrun.cgroup.host"], want, "{text}");
        // What sealrun implements, whatever this host mounts (features.md).
        assert_eq!(f["linux"]["cgroup"]["v1"], true);
        assert_eq!(f["linux"]["cgroup"]["v2"], true);
        assert_eq!(f["linux"]["cgroup"]["systemd"], false);
    }

    #[test]
    fn cgroup_host_kinds() {
        let v1 = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n";
        let named = "40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n";
        let v2 = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(host_cgroups(""), "none");
        assert_eq!(host_cgroups(named), "none");
        assert_eq!(host_cgroups(&format!("{named}{v2}")), "v2");
        assert_eq!(host_cgroups(v1), "v1");
        assert_eq!(host_cgroups(&format!("{v1}{named}{v2}")), "v1,v2");
    }
}
