//! Device nodes the container gets, and the cgroup device rules that go with them.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Error, Result};

/// One device node to create in the container (in its /dev, or where the config says).
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
        // Anywhere in the rootfs, as runc (the runtime-spec only asks for an absolute path):
        // the node is created through the same safe resolution as /dev's.
        let clean = super::mounts::clean_container_path(path);
        if !path.is_absolute() || clean == Path::new("/") {
            return Err(Error::config(
                field("path"),
                format!("{} must be an absolute path below /", path.display()),
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
            path: clean,
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

fn allow(
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut rule = LinuxDeviceCgroup::default();
    rule.set_allow(true);
    rule.set_typ(Some(typ));
    rule.set_major(major);
    rule.set_minor(minor);
    rule.set_access(Some(access.into()));
    rule
}

/// The char devices every container may use unless its own rules deny them: the runtime-spec
/// default devices, `/dev/ptmx` and the devpts slaves (majors 136-143), as `(path, major,
/// minor)`; `minor` `None` is any. This is runc 1.1's `AllowedDevices` less three entries
/// sealrun leaves to the config: mknod of any char or block device, and `/dev/net/tun`.
pub const DEFAULT_ALLOWED: &[(Option<&str>, i64, Option<i64>)] = &[
    (Some("/dev/null"), 1, Some(3)),
    (Some("/dev/random"), 1, Some(8)),
    (Some("/dev/full"), 1, Some(7)),
    (Some("/dev/tty"), 5, Some(0)),
    (Some("/dev/zero"), 1, Some(5)),
    (Some("/dev/urandom"), 1, Some(9)),
    (None, 5, Some(2)),
    (None, 136, None),
    (None, 137, None),
    (None, 138, None),
    (None, 139, None),
    (None, 140, None),
    (None, 141, None),
    (None, 142, None),
    (None, 143, None),
];

/// A rule about every device (type `a` or absent, any major and minor).
fn is_catch_all(r: &LinuxDeviceCgroup) -> bool {
    matches!(r.typ(), None | Some(LinuxDeviceType::A))
        && matches!(r.major(), None | Some(-1))
        && matches!(r.minor(), None | Some(-1))
}

/// The effective cgroup device rules. The config's rules decide: a device listed in
/// `linux.devices` is created, not opened (as runc); the runtime allows only mknod (`m`) of
/// each listed device, which the init needs to create the node, and [`DEFAULT_ALLOWED`].
/// These go after the config's leading catch-all rules (the usual
/// `{"allow": false, "access": "rwm"}`) and before the rest, so that a later deny in the config
/// wins; runc appends its list after every rule instead, so a config cannot take those devices
/// away (and it allows mknod of every device instead of the listed ones). A default whose path
/// `linux.devices` lists is dropped, as in runc: the config's rules decide for that node too.
/// A config without rules gets deny-all plus the defaults.
pub(super) fn cgroup_device_rules(
    config: &[LinuxDeviceCgroup],
    listed: &[LinuxDevice],
) -> Vec<LinuxDeviceCgroup> {
    let mut rules = Vec::new();
    if config.is_empty() {
        let mut deny_all = LinuxDeviceCgroup::default();
        deny_all.set_allow(false);
        deny_all.set_access(Some("rwm".into()));
        rules.push(deny_all);
    }
    let lead = config.iter().take_while(|r| is_catch_all(r)).count();
    rules.extend(config[..lead].iter().cloned());
    for (path, major, minor) in DEFAULT_ALLOWED {
        let replaced = path.is_some_and(|p| {
            listed
                .iter()
                .any(|d| super::mounts::clean_container_path(d.path()) == Path::new(p))
        });
        if !replaced {
            rules.push(allow(LinuxDeviceType::C, Some(*major), *minor, "rwm"));
        }
    }
    // The init creates the listed nodes with mknod inside the cgroup: that, and only that.
    for d in listed {
        let typ = match d.typ() {
            LinuxDeviceType::B => LinuxDeviceType::B,
            LinuxDeviceType::C | LinuxDeviceType::U => LinuxDeviceType::C,
            _ => continue,
        };
        rules.push(allow(typ, Some(d.major()), Some(d.minor()), "m"));
    }
    rules.extend(config[lead..].iter().cloned());
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
    fn device_paths_must_be_absolute_and_below_the_root() {
        let dev = |p: &str| -> LinuxDevice {
            serde_json::from_str(&format!(
                r#"{{"path":"{p}","type":"c","major":1,"minor":3}}"#
            ))
            .unwrap()
        };
        for bad in ["dev/x", "/", "/.."] {
            let err = plan_devices(&[dev(bad)]).unwrap_err();
            assert!(
                err.to_string().contains("linux.devices[0].path"),
                "{bad}: {err}"
            );
        }
        let nodes = plan_devices(&[dev("/etc/../mydev/x")]).unwrap();
        assert!(nodes.iter().any(|n| n.path == Path::new("/mydev/x")));
    }

    fn rules(json: &str) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_str(json).unwrap()
    }

    fn devices(json: &str) -> Vec<LinuxDevice> {
        serde_json::from_str(json).unwrap()
    }

    /// The kernel's decision for `c major:minor` with `access` after `rules`.
    fn decides(rules: &[LinuxDeviceCgroup], major: u32, minor: u32, access: u8) -> bool {
        use crate::cgroups::devices::{parse_rules, DeviceState, Kind};
        DeviceState::from_rules(&parse_rules(rules).unwrap()).allows(
            Kind::Char,
            major,
            minor,
            access,
        )
    }

    #[test]
    fn empty_config_rules_start_with_deny_all() {
        let rules = cgroup_device_rules(&[], &[]);
        assert!(!rules[0].allow());
        assert!(rules.iter().skip(1).all(|r| r.allow()));
        assert!(decides(&rules, 1, 3, 6));
        assert!(!decides(&rules, 1, 11, 2));
    }

    #[test]
    fn listed_devices_are_not_allowed_by_the_runtime() {
        let listed = devices(r#"[{"path":"/dev/kmsg","type":"c","major":1,"minor":11}]"#);
        let config = rules(r#"[{"allow":false,"access":"rwm"}]"#);
        let out = cgroup_device_rules(&config, &listed);
        assert!(!decides(&out, 1, 11, 2), "{out:?}");
        assert!(!decides(&out, 1, 11, 4), "{out:?}");
        assert!(decides(&out, 1, 3, 6), "the defaults stay usable: {out:?}");
        assert!(decides(&out, 136, 4, 6), "pty slaves: {out:?}");
        assert!(
            !decides(&out, 5, 1, 6),
            "not the host's /dev/console: {out:?}"
        );
        assert!(
            decides(&out, 1, 11, 1),
            "mknod, to create the node: {out:?}"
        );
    }

    #[test]
    fn defaults_come_after_a_leading_deny_all_and_before_the_rest() {
        let config = rules(
            r#"[{"allow":false,"access":"rwm"},
                {"allow":false,"type":"c","major":1,"minor":3,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":11,"access":"w"}]"#,
        );
        let out = cgroup_device_rules(&config, &[]);
        assert_eq!(out[0], config[0]);
        assert_eq!(out[out.len() - 2..], config[1..]);
        assert!(!decides(&out, 1, 3, 2), "a later deny wins: {out:?}");
        assert!(decides(&out, 1, 5, 2), "{out:?}");
        assert!(decides(&out, 1, 11, 4), "{out:?}");
        assert!(!decides(&out, 1, 11, 2), "{out:?}");
    }

    #[test]
    fn a_listed_device_at_a_default_path_drops_that_default() {
        let listed = devices(r#"[{"path":"/dev/null","type":"c","major":1,"minor":3}]"#);
        let config = rules(r#"[{"allow":false,"access":"rwm"}]"#);
        assert!(!decides(&cgroup_device_rules(&config, &listed), 1, 3, 2));
        assert!(decides(&cgroup_device_rules(&config, &[]), 1, 3, 2));
    }
}
