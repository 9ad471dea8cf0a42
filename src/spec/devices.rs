//! Device nodes the container gets, and the cgroup device rules that go with them.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Error, Result};

/// One device node to create in the container's /dev.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeviceNode {
    /// Absolute container path (`/dev/null`).
    pub path: PathBuf,
    /// `S_IFCHR`, `S_IFBLK` or `S_IFIFO`.
    pub kind: libc::mode_t,
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Permission bits.
    pub mode: u32,
    /// Owner uid (container view).
    pub uid: u32,
    /// Owner gid (container view).
    pub gid: u32,
}

/// The devices every container gets (runtime-spec "Default Devices").
pub const DEFAULT_DEVICES: &[(&str, u64, u64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// The /dev symlinks every container gets (runtime-spec "Dev symbolic links").
pub const DEFAULT_SYMLINKS: &[(&str, &str)] = &[
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
    ("/dev/ptmx", "pts/ptmx"),
];

/// Default devices plus `linux.devices` (a config entry replaces a default at the same path).
pub(super) fn plan_devices(config: &[LinuxDevice]) -> Result<Vec<DeviceNode>> {
    let mut nodes: Vec<DeviceNode> = DEFAULT_DEVICES
        .iter()
        .map(|(p, major, minor)| DeviceNode {
            path: PathBuf::from(p),
            kind: libc::S_IFCHR,
            major: *major,
            minor: *minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        })
        .collect();
    for (i, d) in config.iter().enumerate() {
        let field = |f: &str| format!("linux.devices[{i}].{f}");
        let path = d.path();
        if !path.is_absolute() || !path.starts_with("/dev") {
            return Err(Error::config(
                field("path"),
                format!("{} must be an absolute path under /dev", path.display()),
            ));
        }
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(Error::config(field("type"), "must be c, b, u or p"));
            }
        };
        if d.major() < 0 || d.minor() < 0 {
            return Err(Error::config(field("major"), "must not be negative"));
        }
        let node = DeviceNode {
            path: super::mounts::clean_container_path(path),
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        };
        nodes.retain(|n| n.path != node.path);
        nodes.push(node);
    }
    Ok(nodes)
}

fn allow(typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>) -> LinuxDeviceCgroup {
    let mut rule = LinuxDeviceCgroup::default();
    rule.set_allow(true);
    rule.set_typ(Some(typ));
    rule.set_major(major);
    rule.set_minor(minor);
    rule.set_access(Some("rwm".into()));
    rule
}

/// The effective cgroup device rules: deny everything unless the config's own rules say
/// otherwise, then the config's rules in order, then allow every device the container has, plus
/// the pty devices a terminal needs. Secure by default: a config without device rules gets
/// deny-all plus its own devices, not the host's.
pub(super) fn cgroup_device_rules(
    config: &[LinuxDeviceCgroup],
    nodes: &[DeviceNode],
) -> Vec<LinuxDeviceCgroup> {
    let mut rules = Vec::new();
    if config.is_empty() {
        let mut deny_all = LinuxDeviceCgroup::default();
        deny_all.set_allow(false);
        deny_all.set_access(Some("rwm".into()));
        rules.push(deny_all);
    }
    rules.extend(config.iter().cloned());
    for n in nodes {
        let typ = match n.kind {
            libc::S_IFBLK => LinuxDeviceType::B,
            libc::S_IFIFO => continue,
            _ => LinuxDeviceType::C,
        };
        rules.push(allow(typ, Some(n.major as i64), Some(n.minor as i64)));
    }
    // /dev/console (5:1), /dev/ptmx (5:2) and the devpts slaves (136-143:*).
    rules.push(allow(LinuxDeviceType::C, Some(5), Some(1)));
    rules.push(allow(LinuxDeviceType::C, Some(5), Some(2)));
    for major in 136..=143 {
        rules.push(allow(LinuxDeviceType::C, Some(major), None));
    }
    rules
}

/// Whether `path` (a container path) is /dev itself bind-mounted from the host, in which case
/// sealrun does not create device nodes.
pub(super) fn is_dev(path: &Path) -> bool {
    path == Path::new("/dev")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_device_replaces_default_at_same_path() {
        let dev: LinuxDevice = serde_json::from_str(
            r#"{"path":"/dev/null","type":"c","major":1,"minor":3,"fileMode":384}"#,
        )
        .unwrap();
        let nodes = plan_devices(&[dev]).unwrap();
        let null: Vec<_> = nodes
            .iter()
            .filter(|n| n.path == Path::new("/dev/null"))
            .collect();
        assert_eq!(null.len(), 1);
        assert_eq!(null[0].mode, 0o600);
    }

    #[test]
    fn device_outside_dev_is_rejected() {
        let dev: LinuxDevice =
            serde_json::from_str(r#"{"path":"/etc/x","type":"c","major":1,"minor":3}"#).unwrap();
        let err = plan_devices(&[dev]).unwrap_err();
        assert!(err.to_string().contains("linux.devices[0].path"), "{err}");
    }

    #[test]
    fn empty_config_rules_start_with_deny_all() {
        let nodes = plan_devices(&[]).unwrap();
        let rules = cgroup_device_rules(&[], &nodes);
        assert!(!rules[0].allow());
        assert!(rules.iter().skip(1).all(|r| r.allow()));
    }
}
