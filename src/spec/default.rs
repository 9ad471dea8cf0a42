//! `sealrun spec`: a default config.json, hardened (read-only root, no_new_privs, the default
//! seccomp profile, masked kernel files, three capabilities).

use std::path::Path;

use serde_json::{json, Value};

use crate::error::{Context, Error, Result};

/// The capabilities the default config grants.
pub const DEFAULT_CAPS: &[&str] = &["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// The default config (as JSON), optionally for rootless use.
pub fn default_config(rootless: bool) -> Result<Value> {
    let caps = DEFAULT_CAPS;
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "network"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
        json!({"type": "cgroup"}),
    ];
    let mut linux = json!({
        "resources": {"devices": [{"allow": false, "access": "rwm"}]},
        "namespaces": [],
        "maskedPaths": [
            "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
            "/sys/firmware", "/sys/devices/virtual/powercap"
        ],
        "readonlyPaths": [
            "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
        ],
        "seccomp": crate::seccomp::default_profile_json(caps)?,
    });
    if rootless {
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        namespaces.retain(|n| n["type"] != "network");
        namespaces.push(json!({"type": "user"}));
        linux["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
        linux["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
        linux.as_object_mut().map(|o| o.remove("resources"));
        mounts.retain(|m| m["type"] != "cgroup");
        for m in mounts.iter_mut() {
            if m["type"] == "sysfs" {
                *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            }
            if m["type"] == "devpts" {
                m["options"] = json!([
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620"
                ]);
            }
        }
    }
    linux["namespaces"] = json!(namespaces);
    Ok(json!({
        "ociVersion": crate::OCI_VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "sealrun",
        "mounts": mounts,
        "linux": linux,
    }))
}

/// Write `<bundle>/config.json` (refusing to overwrite an existing one, as runc does).
pub fn write_default(bundle: &Path, rootless: bool) -> Result<()> {
    let path = bundle.join("config.json");
    let text = serde_json::to_string_pretty(&default_config(rootless)?)
        .map_err(|e| Error::Other(e.to_string()))?;
    // create_new: never overwrite, never follow a symlink planted at the name.
    let mut f = match std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::Other(format!(
                "{} already exists: remove it first",
                path.display()
            )))
        }
        Err(e) => return Err(e).op_path("create", &path),
    };
    std::io::Write::write_all(&mut f, (text + "\n").as_bytes()).op_path("write", &path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namespaces::NsKind;

    #[test]
    fn default_config_parses_and_plans() {
        let bundle = std::path::PathBuf::from("/bundle");
        // Planning is pure: the host (and the rootfs) are facts given to it.
        let host = crate::spec::HostFacts::for_tests("/bundle/rootfs");
        let want_caps: std::collections::HashSet<caps::Capability> =
            DEFAULT_CAPS.iter().map(|c| c.parse().unwrap()).collect();
        for rootless in [false, true] {
            let v = default_config(rootless).unwrap();
            let spec: oci_spec::runtime::Spec = serde_json::from_value(v).unwrap();
            let opts = crate::spec::CreateOptions {
                id: "default".into(),
                bundle: bundle.clone(),
                // `terminal: true`: as a foreground `run` that proxies the terminal.
                proxy_terminal: true,
                ..Default::default()
            };
            let plan = crate::spec::plan(&spec, opts, &host)
                .unwrap_or_else(|e| panic!("rootless {rootless}: {e}"));
            let p = &plan.process;
            assert!(p.no_new_privileges, "rootless {rootless}");
            assert_eq!(p.caps.bounding, want_caps, "rootless {rootless}");
            assert_eq!(p.caps.effective, want_caps, "rootless {rootless}");
            assert!(p.caps.inheritable.is_empty(), "rootless {rootless}");
            let seccomp = plan
                .seccomp
                .as_ref()
                .expect("the default profile is compiled");
            assert!(!seccomp.filters.is_empty(), "rootless {rootless}");
            assert!(plan.landlock.init.enabled, "rootless {rootless}");
            assert!(plan.root_readonly, "rootless {rootless}");
            assert_eq!(plan.rootfs, bundle.join("rootfs"));
            assert!(plan
                .masked_paths
                .iter()
                .any(|m| m == Path::new("/proc/kcore")));
            let ns = &plan.namespaces;
            for kind in [NsKind::Mount, NsKind::Pid, NsKind::Ipc, NsKind::Uts] {
                assert!(ns.creates(kind), "rootless {rootless}: {kind:?}");
            }
            assert_eq!(ns.creates(NsKind::User), rootless);
            assert_eq!(ns.creates(NsKind::Network), !rootless);
            assert_eq!(plan.uid_maps.len(), usize::from(rootless));
        }
    }
}
