//! Rootless containers, the pure part: what planning needs to know about a caller that is not
//! root ([`RootlessFacts`], gathered by `container::host`), and the checks that turn a config
//! into [`IdMapWriters`] or one clear error before anything is created.
//!
//! The kernel lets an unprivileged process write one line to a child's `uid_map` (its own uid,
//! size 1) and one to `gid_map` (its own gid, once `setgroups` is denied). Anything more goes
//! through the setuid helpers `newuidmap`/`newgidmap` (Debian's `uidmap`), which allow the
//! ranges `/etc/subuid` and `/etc/subgid` delegate to the user. runc writes directly and calls
//! the helpers on EPERM; sealrun decides up front, so a mapping the user may not use is refused
//! naming the field instead of failing half-way.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::namespaces::{Namespaces, NsKind};
use super::plan::IdMap;
use crate::error::{Error, Result};

/// A range of subordinate ids (`/etc/subuid`, `/etc/subgid`): `start`, `start+count-1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubIds {
    /// First id.
    pub start: u32,
    /// How many.
    pub count: u32,
}

/// Facts about a caller whose effective uid is not 0, gathered once at create.
#[derive(Debug, Clone, Default)]
pub struct RootlessFacts {
    /// The caller's effective uid.
    pub uid: u32,
    /// The caller's effective gid.
    pub gid: u32,
    /// Its `/etc/subuid` ranges.
    pub subuid: Vec<SubIds>,
    /// Its `/etc/subgid` ranges.
    pub subgid: Vec<SubIds>,
    /// `newuidmap`, when installed.
    pub newuidmap: Option<PathBuf>,
    /// `newgidmap`, when installed.
    pub newgidmap: Option<PathBuf>,
}

/// How the runtime writes the container's id maps: itself (`None`) or through a helper.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMapWriters {
    /// `newuidmap` writes `uid_map`.
    pub newuidmap: Option<PathBuf>,
    /// `newgidmap` writes `gid_map`.
    pub newgidmap: Option<PathBuf>,
    /// The runtime writes `gid_map` itself without privilege, which needs `setgroups` denied
    /// in the container's user namespace: the container cannot change its groups.
    pub setgroups_denied: bool,
    /// The runtime has no privilege: it can open the init's `/proc` files only while the init
    /// is dumpable, so the init asks for its maps (dumpable for that moment) instead.
    pub unprivileged: bool,
}

/// Parse `/etc/subuid` or `/etc/subgid` text: the ranges of the user named `name` or numbered
/// `id` (both forms are valid, as in shadow's own parser).
pub fn parse_subids(text: &str, name: &str, id: u32) -> Vec<SubIds> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.trim().split(':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            if who.is_empty() || (who != name && who.parse::<u32>().ok() != Some(id)) {
                return None;
            }
            Some(SubIds {
                start: start.trim().parse().ok()?,
                count: count.trim().parse().ok()?,
            })
        })
        .filter(|r| r.count > 0)
        .collect()
}

/// The name `/etc/passwd` text gives user `uid` (its first entry for that uid), which
/// `/etc/subuid` and `/etc/subgid` may use instead of the number. Read from the file, as
/// runc does, rather than through NSS: sealrun is linked statically, and a static glibc can
/// reach NSS only by loading the host's own modules at run time.
pub fn user_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        let (name, _password, id) = (f.next()?, f.next()?, f.next()?);
        (!name.is_empty() && id.trim().parse::<u32>().ok() == Some(uid)).then(|| name.to_owned())
    })
}

/// Check a rootless config and decide how its maps are written.
pub fn check(
    ns: &Namespaces,
    uid_maps: &[IdMap],
    gid_maps: &[IdMap],
    additional_gids: &[u32],
    facts: &RootlessFacts,
) -> Result<IdMapWriters> {
    if !ns.has(NsKind::User) {
        return Err(Error::config(
            "linux.namespaces",
            format!(
                "running as uid {} (not root): the container needs a user namespace \
                 (`sealrun spec --rootless` writes one)",
                facts.uid
            ),
        ));
    }
    if !ns.creates(NsKind::User) {
        // A joined namespace already has its maps.
        return Ok(IdMapWriters::default());
    }
    let newuidmap = writer(
        "linux.uidMappings",
        uid_maps,
        facts.uid,
        &facts.subuid,
        "/etc/subuid",
        &facts.newuidmap,
        "newuidmap",
    )?;
    let newgidmap = writer(
        "linux.gidMappings",
        gid_maps,
        facts.gid,
        &facts.subgid,
        "/etc/subgid",
        &facts.newgidmap,
        "newgidmap",
    )?;
    let setgroups_denied = newgidmap.is_none();
    if setgroups_denied && !additional_gids.is_empty() {
        return Err(Error::config(
            "process.user.additionalGids",
            format!(
                "a rootless container mapping only gid {} cannot set groups \
                 (map /etc/subgid ranges through newgidmap)",
                facts.gid
            ),
        ));
    }
    Ok(IdMapWriters {
        newuidmap,
        newgidmap,
        setgroups_denied,
        unprivileged: true,
    })
}

/// `None` when the caller may write `maps` itself (its own id, once); else the helper to use.
fn writer(
    field: &str,
    maps: &[IdMap],
    own: u32,
    sub: &[SubIds],
    file: &str,
    helper: &Option<PathBuf>,
    helper_name: &str,
) -> Result<Option<PathBuf>> {
    if let [m] = maps {
        if m.host_id == own && m.size == 1 {
            return Ok(None);
        }
    }
    for (i, m) in maps.iter().enumerate() {
        let end = u64::from(m.host_id) + u64::from(m.size);
        let own_id = m.host_id == own && m.size == 1;
        let delegated = sub
            .iter()
            .any(|r| m.host_id >= r.start && end <= u64::from(r.start) + u64::from(r.count));
        if m.size == 0 || !(own_id || delegated) {
            return Err(Error::config(
                format!("{field}[{i}]"),
                format!(
                    "host ids {}-{} are neither the caller's own ({own}) nor delegated to it in {file}",
                    m.host_id,
                    end.saturating_sub(1)
                ),
            ));
        }
    }
    match helper {
        Some(path) => Ok(Some(path.clone())),
        None => Err(Error::config(
            field,
            format!(
                "mapping more than the caller's own id ({own}) needs {helper_name} \
                 (Debian package uidmap), which is not installed"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_name_from_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      # a comment\n\
                      broken line\n\
                      alice:x:1000:1000::/home/alice:/bin/sh\n\
                      alias:x:1000:1000::/home/alice:/bin/sh\n\
                      :x:1001:1001::/:/bin/sh\n";
        assert_eq!(user_name(passwd, 0).as_deref(), Some("root"));
        assert_eq!(user_name(passwd, 1000).as_deref(), Some("alice"));
        assert_eq!(user_name(passwd, 1001), None);
        assert_eq!(user_name(passwd, 1002), None);
    }

    fn map(c: u32, h: u32, s: u32) -> IdMap {
        IdMap {
            container_id: c,
            host_id: h,
            size: s,
        }
    }

    fn facts() -> RootlessFacts {
        RootlessFacts {
            uid: 1001,
            gid: 1001,
            subuid: vec![SubIds {
                start: 100000,
                count: 65536,
            }],
            subgid: vec![SubIds {
                start: 100000,
                count: 65536,
            }],
            newuidmap: Some("/usr/bin/newuidmap".into()),
            newgidmap: Some("/usr/bin/newgidmap".into()),
        }
    }

    fn userns() -> Namespaces {
        let ns: Vec<oci_spec::runtime::LinuxNamespace> =
            serde_json::from_value(serde_json::json!([{"type": "user"}, {"type": "mount"}]))
                .unwrap();
        Namespaces::from_config(&ns).unwrap()
    }

    #[test]
    fn subid_files_parse_by_name_or_number() {
        let text = "other:1:2\nsealrun-rl:100000:65536\n1001:300000:10\nbad\nx:y:z\n";
        assert_eq!(
            parse_subids(text, "sealrun-rl", 1001),
            [
                SubIds {
                    start: 100000,
                    count: 65536
                },
                SubIds {
                    start: 300000,
                    count: 10
                }
            ]
        );
        assert!(parse_subids(text, "nobody", 7).is_empty());
    }

    #[test]
    fn a_self_mapping_needs_no_helper_and_denies_setgroups() {
        let w = check(
            &userns(),
            &[map(0, 1001, 1)],
            &[map(0, 1001, 1)],
            &[],
            &facts(),
        )
        .unwrap();
        assert_eq!(w.newuidmap, None);
        assert_eq!(w.newgidmap, None);
        assert!(w.setgroups_denied);
        let e = check(
            &userns(),
            &[map(0, 1001, 1)],
            &[map(0, 1001, 1)],
            &[5],
            &facts(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("additionalGids"), "{e}");
    }

    #[test]
    fn ranges_go_through_the_helpers() {
        let maps = [map(0, 1001, 1), map(1, 100000, 65536)];
        let w = check(&userns(), &maps, &maps, &[5], &facts()).unwrap();
        assert_eq!(w.newuidmap.as_deref(), Some("/usr/bin/newuidmap".as_ref()));
        assert!(!w.setgroups_denied);
    }

    #[test]
    fn ids_not_delegated_or_no_helper_are_refused_naming_the_field() {
        let e = check(
            &userns(),
            &[map(0, 100000, 65537)],
            &[map(0, 1001, 1)],
            &[],
            &facts(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("linux.uidMappings[0]") && e.contains("/etc/subuid"),
            "{e}"
        );
        let e = check(
            &userns(),
            &[map(0, 1001, 1)],
            &[map(0, 0, 1)],
            &[],
            &facts(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("linux.gidMappings[0]"), "{e}");
        let mut f = facts();
        f.newuidmap = None;
        let e = check(
            &userns(),
            &[map(0, 100000, 10)],
            &[map(0, 1001, 1)],
            &[],
            &f,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("newuidmap") && e.contains("uidmap"), "{e}");
    }

    #[test]
    fn no_user_namespace_is_refused() {
        let ns: Vec<oci_spec::runtime::LinuxNamespace> =
            serde_json::from_value(serde_json::json!([{"type": "mount"}])).unwrap();
        let ns = Namespaces::from_config(&ns).unwrap();
        let e = check(&ns, &[], &[], &[], &facts()).unwrap_err().to_string();
        assert!(
            e.contains("linux.namespaces") && e.contains("user namespace"),
            "{e}"
        );
    }
}
