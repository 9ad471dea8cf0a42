//! Id-mapped mounts (runtime-spec 1.2), the pure part: a mount's `uidMappings`/`gidMappings`
//! and its `idmap`/`ridmap` options resolved into an [`IdMappedMount`], or one error naming
//! the field. The runtime makes the mount (`container::idmap`): only it, root in the initial
//! user namespace, may change a host filesystem's mount that way.
//!
//! A file whose on-disk owner is `n` appears, through a mount mapped with "containerID hostID
//! size", as host id `hostID + (n - containerID)`; with the container's own mappings, files
//! owned by host root appear owned by the container's root.

use oci_spec::runtime::{LinuxIdMapping, Mount};
use serde::{Deserialize, Serialize};

use super::host::HostFacts;
use super::namespaces::{Namespaces, NsKind};
use super::plan::IdMap;
use crate::error::{Error, Result};

/// How a bind mount is id-mapped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMappedMount {
    /// The mount's own uid mappings; empty: those of the container's user namespace.
    pub uid_maps: Vec<IdMap>,
    /// The mount's own gid mappings; empty with `uid_maps`.
    pub gid_maps: Vec<IdMap>,
    /// `ridmap` (or `rbind` with mappings): map the mounts beneath too.
    pub recursive: bool,
}

/// The options `idmap` and `ridmap` (not mount(2) options: removed before parsing the rest).
pub const OPTIONS: &[&str] = &["idmap", "ridmap"];

fn maps(list: &Option<Vec<LinuxIdMapping>>) -> Vec<IdMap> {
    super::plan::id_maps(list)
}

/// Ranges must be non-empty and overlap neither inside nor outside (the kernel refuses such a
/// user namespace; say which entry first).
fn check_ranges(field: &str, maps: &[IdMap]) -> Result<()> {
    let end = |start: u32, size: u32| u64::from(start) + u64::from(size);
    for (i, m) in maps.iter().enumerate() {
        if m.size == 0 {
            return Err(Error::config(format!("{field}[{i}].size"), "must not be 0"));
        }
        for (j, o) in maps.iter().enumerate().take(i) {
            let overlap =
                |a: u32, b: u32| u64::from(a) < end(b, o.size) && u64::from(b) < end(a, m.size);
            if overlap(m.container_id, o.container_id) || overlap(m.host_id, o.host_id) {
                return Err(Error::config(
                    format!("{field}[{i}]"),
                    format!("overlaps {field}[{j}]"),
                ));
            }
        }
    }
    Ok(())
}

/// Resolve mount `index`'s id mapping: `None` when it is not id-mapped. `is_bind` and
/// `rbind` describe the mount.
pub fn plan(index: usize, m: &Mount, is_bind: bool, rbind: bool) -> Result<Option<IdMappedMount>> {
    let field = |f: &str| format!("mounts[{index}].{f}");
    let opts = m.options().as_deref().unwrap_or(&[]);
    let idmap = opts.iter().any(|o| o == "idmap");
    let ridmap = opts.iter().any(|o| o == "ridmap");
    let uid_maps = maps(m.uid_mappings());
    let gid_maps = maps(m.gid_mappings());
    if !idmap && !ridmap && uid_maps.is_empty() && gid_maps.is_empty() {
        return Ok(None);
    }
    if !is_bind {
        return Err(Error::Unsupported(format!(
            "{}: id-mapped mounts of {} filesystems (only bind mounts can be id-mapped)",
            if uid_maps.is_empty() {
                field("options")
            } else {
                field("uidMappings")
            },
            m.typ().as_deref().unwrap_or("this")
        )));
    }
    if uid_maps.is_empty() != gid_maps.is_empty() {
        let missing = if uid_maps.is_empty() {
            "uidMappings"
        } else {
            "gidMappings"
        };
        return Err(Error::config(
            field(missing),
            "an id-mapped mount needs both uidMappings and gidMappings",
        ));
    }
    check_ranges(&field("uidMappings"), &uid_maps)?;
    check_ranges(&field("gidMappings"), &gid_maps)?;
    Ok(Some(IdMappedMount {
        uid_maps,
        gid_maps,
        recursive: ridmap || (rbind && !idmap),
    }))
}

/// An id-mapped mount needs a user namespace for the container (whose ids it maps to), and
/// a runtime that is root in the initial user namespace (the kernel lets only that change a
/// host filesystem's mount).
pub fn check_context(index: usize, ns: &Namespaces, host: &HostFacts) -> Result<()> {
    let field = format!("mounts[{index}].uidMappings");
    if !ns.has(NsKind::User) {
        return Err(Error::config(
            field,
            "id-mapped mounts need a user namespace (linux.namespaces has none)",
        ));
    }
    if host.rootless.is_some() || host.in_user_namespace {
        return Err(Error::Unsupported(format!(
            "{field}: id-mapped mounts need a runtime that is root in the initial user \
             namespace (the kernel lets only it id-map a host filesystem)"
        )));
    }
    Ok(())
}

/// The annotation asking for an id-mapped root filesystem. The runtime-spec has no field for
/// it (orchestrators usually id-map the rootfs themselves, as podman's `--rootfs PATH:idmap`
/// does): with `true`, the runtime mounts `root.path` id-mapped through the container's user
/// namespace, recursively, like a mount with the `ridmap` option and no mappings of its own.
pub const ROOTFS_ANNOTATION: &str = "run.sealrun.rootfs.idmap";

/// Whether the rootfs is id-mapped ([`ROOTFS_ANNOTATION`]); errors name the annotation.
pub fn rootfs(
    annotations: &std::collections::HashMap<String, String>,
    ns: &Namespaces,
    host: &HostFacts,
) -> Result<bool> {
    let field = format!("annotations[\"{ROOTFS_ANNOTATION}\"]");
    match annotations.get(ROOTFS_ANNOTATION).map(String::as_str) {
        None | Some("false") => return Ok(false),
        Some("true") => {}
        Some(other) => {
            return Err(Error::config(
                field,
                format!("{other:?}: expected \"true\" or \"false\""),
            ))
        }
    }
    if !ns.has(NsKind::User) {
        return Err(Error::config(
            field,
            "an id-mapped rootfs needs a user namespace (linux.namespaces has none)",
        ));
    }
    if host.rootless.is_some() || host.in_user_namespace {
        return Err(Error::Unsupported(format!(
            "{field}: an id-mapped rootfs needs a runtime that is root in the initial user \
             namespace (the kernel lets only it id-map a host filesystem)"
        )));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rootfs_annotation_is_checked() {
        use std::collections::HashMap;
        let host = HostFacts::for_tests("/r");
        let user: Namespaces = Namespaces::from_config(
            &serde_json::from_value::<Vec<oci_spec::runtime::LinuxNamespace>>(
                serde_json::json!([{"type": "mount"}, {"type": "user"}]),
            )
            .unwrap(),
        )
        .unwrap();
        let none = Namespaces::from_config(&[]).unwrap();
        let ann = |v: &str| HashMap::from([(ROOTFS_ANNOTATION.to_string(), v.to_string())]);
        assert!(!rootfs(&HashMap::new(), &user, &host).unwrap());
        assert!(!rootfs(&ann("false"), &user, &host).unwrap());
        assert!(rootfs(&ann("true"), &user, &host).unwrap());
        let e = rootfs(&ann("yes"), &user, &host).unwrap_err().to_string();
        assert!(
            e.contains(ROOTFS_ANNOTATION) && e.contains("\"yes\""),
            "{e}"
        );
        let e = rootfs(&ann("true"), &none, &host).unwrap_err().to_string();
        assert!(
            e.contains(ROOTFS_ANNOTATION) && e.contains("user namespace"),
            "{e}"
        );
    }

    fn mount(json: serde_json::Value) -> Mount {
        serde_json::from_value(json).unwrap()
    }

    fn planned(json: serde_json::Value) -> Result<Option<IdMappedMount>> {
        let m = mount(json);
        let opts = m.options().clone().unwrap_or_default();
        let bind = opts.iter().any(|o| o == "bind" || o == "rbind");
        plan(3, &m, bind, opts.iter().any(|o| o == "rbind"))
    }

    #[test]
    fn mappings_and_options_resolve() {
        assert_eq!(
            planned(serde_json::json!({"destination": "/d", "source": "/s", "options": ["bind"]}))
                .unwrap(),
            None
        );
        let p = planned(serde_json::json!({
            "destination": "/d", "source": "/s", "options": ["rbind", "ridmap"],
            "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
            "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]
        }))
        .unwrap()
        .unwrap();
        assert!(p.recursive);
        assert_eq!(p.uid_maps[0].host_id, 100000);
        let p = planned(serde_json::json!({
            "destination": "/d", "source": "/s", "options": ["bind", "idmap"]
        }))
        .unwrap()
        .unwrap();
        assert!(p.uid_maps.is_empty() && !p.recursive);
    }

    #[test]
    fn bad_mappings_name_the_field() {
        let e = planned(serde_json::json!({
            "destination": "/d", "source": "/s", "options": ["bind"],
            "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 10},
                            {"containerID": 5, "hostID": 200000, "size": 10}],
            "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 10}]
        }))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("mounts[3].uidMappings[1]") && e.contains("overlaps"),
            "{e}"
        );
        let e = planned(serde_json::json!({
            "destination": "/d", "source": "/s", "options": ["bind"],
            "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 10}]
        }))
        .unwrap_err()
        .to_string();
        assert!(e.contains("mounts[3].gidMappings"), "{e}");
        let e = planned(serde_json::json!({
            "destination": "/d", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]
        }))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("mounts[3].options") && e.contains("tmpfs"),
            "{e}"
        );
    }
}
