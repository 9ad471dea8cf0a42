//! Mount entries: option parsing and the resolved [`MountPlan`].

use std::path::{Component, Path, PathBuf};

use nix::mount::MsFlags;
use oci_spec::runtime::Mount;

use crate::error::{Error, Result};
use libc as m;

/// What kind of mount an entry is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MountKind {
    /// A bind mount of a host path (`recursive` for rbind).
    Bind {
        /// Absolute host path (relative sources are resolved against the bundle).
        source: PathBuf,
        /// `rbind`.
        recursive: bool,
    },
    /// A cgroup filesystem (one or several hierarchies, see `cgroups::Cgroup::container_mounts`).
    Cgroup,
    /// Any other filesystem (`proc`, `sysfs`, `tmpfs`, `devpts`, `mqueue`, ...).
    Fs {
        /// Filesystem type.
        fstype: String,
        /// Source string passed to mount(2).
        source: String,
    },
}

/// Parsed mount options.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MountOptions {
    /// Flags for mount(2) (and the bind remount).
    #[serde(with = "super::ser::ms_flags")]
    pub flags: MsFlags,
    /// Flags explicitly cleared (`rw`, `suid`, `dev`, `exec`, ...), so a bind remount does not
    /// re-add them from the source mount.
    #[serde(with = "super::ser::ms_flags")]
    pub cleared: MsFlags,
    /// Propagation changes applied after mounting, in order.
    #[serde(with = "super::ser::ms_flags_vec")]
    pub propagation: Vec<MsFlags>,
    /// `MOUNT_ATTR_*` bits to set recursively (`rro`, `rnosuid`, ...).
    pub rec_set: u64,
    /// `MOUNT_ATTR_*` bits to clear recursively (`rrw`, `rsuid`, ...).
    pub rec_clear: u64,
    /// Filesystem-specific data (`mode=755,size=65536k`).
    pub data: Vec<String>,
    /// `bind` or `rbind` appeared.
    pub bind: Option<bool>,
    /// `tmpcopyup`: copy the image's content into a fresh tmpfs.
    pub tmpcopyup: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: Vec::new(),
            rec_set: 0,
            rec_clear: 0,
            data: Vec::new(),
            bind: None,
            tmpcopyup: false,
        }
    }
}

/// One mount entry, resolved and validated.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MountPlan {
    /// Index in `mounts` (for messages: `mounts[3]`).
    pub index: usize,
    /// Absolute, lexically clean destination inside the container.
    pub destination: PathBuf,
    /// What to mount.
    pub kind: MountKind,
    /// Options.
    pub options: MountOptions,
    /// Id-mapped (`uidMappings`/`gidMappings`, `idmap`/`ridmap`), bind mounts only.
    #[serde(default)]
    pub idmap: Option<super::idmap::IdMappedMount>,
}

impl MountPlan {
    /// The data string for mount(2), or None.
    pub fn data(&self) -> Option<String> {
        if self.options.data.is_empty() {
            None
        } else {
            Some(self.options.data.join(","))
        }
    }
}

/// Parse an options list (pure).
pub fn parse_mount_options(options: &[String]) -> MountOptions {
    let mut o = MountOptions::default();
    for opt in options {
        let (set, clear): (MsFlags, MsFlags) = match opt.as_str() {
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "silent" => (MsFlags::MS_SILENT, MsFlags::empty()),
            "loud" => (MsFlags::empty(), MsFlags::MS_SILENT),
            "bind" => {
                o.bind = Some(o.bind.unwrap_or(false));
                continue;
            }
            "rbind" => {
                o.bind = Some(true);
                continue;
            }
            "tmpcopyup" => {
                o.tmpcopyup = true;
                continue;
            }
            other => {
                if let Some(p) = propagation_flag(other) {
                    o.propagation.push(p);
                } else if let Some((set, attr)) = recursive_attr(other) {
                    if set {
                        o.rec_set |= attr;
                        o.rec_clear &= !attr;
                    } else {
                        o.rec_clear |= attr;
                        o.rec_set &= !attr;
                    }
                } else {
                    o.data.push(other.to_string());
                }
                continue;
            }
        };
        o.flags = (o.flags | set) & !clear;
        o.cleared = (o.cleared | clear) & !set;
    }
    o
}

fn propagation_flag(opt: &str) -> Option<MsFlags> {
    Some(match opt {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// `rro`-style recursive options: (set?, MOUNT_ATTR bit).
fn recursive_attr(opt: &str) -> Option<(bool, u64)> {
    Some(match opt {
        "rro" => (true, m::MOUNT_ATTR_RDONLY),
        "rrw" => (false, m::MOUNT_ATTR_RDONLY),
        "rnosuid" => (true, m::MOUNT_ATTR_NOSUID),
        "rsuid" => (false, m::MOUNT_ATTR_NOSUID),
        "rnodev" => (true, m::MOUNT_ATTR_NODEV),
        "rdev" => (false, m::MOUNT_ATTR_NODEV),
        "rnoexec" => (true, m::MOUNT_ATTR_NOEXEC),
        "rexec" => (false, m::MOUNT_ATTR_NOEXEC),
        "rnoatime" => (true, m::MOUNT_ATTR_NOATIME),
        "rnodiratime" => (true, m::MOUNT_ATTR_NODIRATIME),
        "rdiratime" => (false, m::MOUNT_ATTR_NODIRATIME),
        "rnosymfollow" => (true, m::MOUNT_ATTR_NOSYMFOLLOW),
        "rsymfollow" => (false, m::MOUNT_ATTR_NOSYMFOLLOW),
        _ => return None,
    })
}

/// Every option name sealrun understands (reported by `features`).
pub const KNOWN_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "loud",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "private",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "sync",
    "tmpcopyup",
    "unbindable",
    "idmap",
    "ridmap",
];

/// Lexically clean an absolute container path (`/a/./b/../c` → `/a/c`), never above `/`.
pub fn clean_container_path(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Resolve one config mount entry (pure).
pub(super) fn plan_mount(index: usize, m: &Mount, bundle: &Path) -> Result<MountPlan> {
    let field = |f: &str| format!("mounts[{index}].{f}");
    let dest = m.destination();
    if dest.as_os_str().is_empty() {
        return Err(Error::config(field("destination"), "must not be empty"));
    }
    if !dest.is_absolute() {
        return Err(Error::config(
            field("destination"),
            format!("{} is not an absolute path", dest.display()),
        ));
    }
    let destination = clean_container_path(dest);
    let raw: Vec<String> = m
        .options()
        .iter()
        .flatten()
        .filter(|o| !super::idmap::OPTIONS.contains(&o.as_str()))
        .cloned()
        .collect();
    let options = parse_mount_options(&raw);
    let fstype = m.typ().clone().unwrap_or_default();
    let is_bind = options.bind.is_some() || fstype == "bind";
    let kind = if is_bind {
        let src = m
            .source()
            .as_ref()
            .filter(|s| !s.as_os_str().is_empty())
            .ok_or_else(|| Error::config(field("source"), "a bind mount needs a source"))?;
        let source = if src.is_absolute() {
            src.clone()
        } else {
            bundle.join(src)
        };
        MountKind::Bind {
            source,
            recursive: options.bind.unwrap_or(false),
        }
    } else if fstype == "cgroup" || fstype == "cgroup2" {
        MountKind::Cgroup
    } else {
        if fstype.is_empty() {
            return Err(Error::config(
                field("type"),
                "missing (and the options do not say bind)",
            ));
        }
        MountKind::Fs {
            fstype,
            source: m
                .source()
                .as_ref()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "none".into()),
        }
    };
    let idmap = match &kind {
        MountKind::Bind { recursive, .. } => super::idmap::plan(index, m, true, *recursive)?,
        _ => super::idmap::plan(index, m, false, false)?,
    };
    Ok(MountPlan {
        index,
        destination,
        kind,
        options,
        idmap,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[&str]) -> MountOptions {
        parse_mount_options(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_data_and_propagation_are_separated() {
        let o = opts(&[
            "nosuid",
            "strictatime",
            "mode=755",
            "size=65536k",
            "rslave",
            "ro",
        ]);
        assert!(o
            .flags
            .contains(MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME | MsFlags::MS_RDONLY));
        assert_eq!(o.data, vec!["mode=755", "size=65536k"]);
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
    }

    #[test]
    fn later_options_override_earlier_ones() {
        let o = opts(&["ro", "rw", "noexec", "exec"]);
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
        assert!(!o.flags.contains(MsFlags::MS_NOEXEC));
        assert!(o.cleared.contains(MsFlags::MS_RDONLY | MsFlags::MS_NOEXEC));
    }

    #[test]
    fn bind_and_recursive_attributes() {
        let o = opts(&["rbind", "rro", "rnosuid"]);
        assert_eq!(o.bind, Some(true));
        assert_eq!(o.rec_set, m::MOUNT_ATTR_RDONLY | m::MOUNT_ATTR_NOSUID);
        assert_eq!(opts(&["bind"]).bind, Some(false));
    }

    #[test]
    fn relative_destination_is_rejected_with_its_index() {
        let mnt: Mount = serde_json::from_str(r#"{"destination":"data","type":"tmpfs"}"#).unwrap();
        let err = plan_mount(4, &mnt, Path::new("/b")).unwrap_err();
        assert!(err.to_string().contains("mounts[4].destination"), "{err}");
    }

    #[test]
    fn bind_sources_resolve_against_the_bundle() {
        let mnt: Mount = serde_json::from_str(
            r#"{"destination":"/x/../data","source":"vol","options":["rbind"]}"#,
        )
        .unwrap();
        let p = plan_mount(0, &mnt, Path::new("/bundles/a")).unwrap();
        assert_eq!(p.destination, PathBuf::from("/data"));
        assert_eq!(
            p.kind,
            MountKind::Bind {
                source: PathBuf::from("/bundles/a/vol"),
                recursive: true
            }
        );
    }

    #[test]
    fn clean_never_climbs_above_root() {
        assert_eq!(
            clean_container_path(Path::new("/../../etc")),
            PathBuf::from("/etc")
        );
        assert_eq!(
            clean_container_path(Path::new("/a/./b//c/..")),
            PathBuf::from("/a/b")
        );
    }
}
