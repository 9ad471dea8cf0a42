//! PURE: namespace kinds, clone flags, and which namespaces a container creates or joins, as
//! the config asks. Joining and id-map writing live in `crate::namespaces`.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `CLONE_NEWTIME` (only usable through `clone3` or `unshare`).
pub const CLONE_NEWTIME: u64 = 0x80;

/// A namespace kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NsKind {
    /// User namespace.
    User,
    /// Mount namespace.
    Mount,
    /// PID namespace.
    Pid,
    /// Network namespace.
    Network,
    /// IPC namespace.
    Ipc,
    /// UTS namespace.
    Uts,
    /// cgroup namespace.
    Cgroup,
    /// Time namespace.
    Time,
}

impl NsKind {
    /// All kinds, in the order sealrun joins them (the user namespace last).
    pub const ALL: [NsKind; 8] = [
        NsKind::Pid,
        NsKind::Time,
        NsKind::Ipc,
        NsKind::Uts,
        NsKind::Network,
        NsKind::Cgroup,
        NsKind::Mount,
        NsKind::User,
    ];

    /// `CLONE_NEW*` flag bits.
    pub fn clone_flag(self) -> u64 {
        match self {
            NsKind::User => libc::CLONE_NEWUSER as u64,
            NsKind::Mount => libc::CLONE_NEWNS as u64,
            NsKind::Pid => libc::CLONE_NEWPID as u64,
            NsKind::Network => libc::CLONE_NEWNET as u64,
            NsKind::Ipc => libc::CLONE_NEWIPC as u64,
            NsKind::Uts => libc::CLONE_NEWUTS as u64,
            NsKind::Cgroup => libc::CLONE_NEWCGROUP as u64,
            NsKind::Time => CLONE_NEWTIME,
        }
    }

    /// Name under `/proc/<pid>/ns/`.
    pub fn proc_name(self) -> &'static str {
        match self {
            NsKind::User => "user",
            NsKind::Mount => "mnt",
            NsKind::Pid => "pid",
            NsKind::Network => "net",
            NsKind::Ipc => "ipc",
            NsKind::Uts => "uts",
            NsKind::Cgroup => "cgroup",
            NsKind::Time => "time",
        }
    }

    /// The runtime-spec name (`network`, `mount`, ...).
    pub fn spec_name(self) -> &'static str {
        match self {
            NsKind::User => "user",
            NsKind::Mount => "mount",
            NsKind::Pid => "pid",
            NsKind::Network => "network",
            NsKind::Ipc => "ipc",
            NsKind::Uts => "uts",
            NsKind::Cgroup => "cgroup",
            NsKind::Time => "time",
        }
    }

    fn from_oci(t: LinuxNamespaceType) -> NsKind {
        match t {
            LinuxNamespaceType::User => NsKind::User,
            LinuxNamespaceType::Mount => NsKind::Mount,
            LinuxNamespaceType::Pid => NsKind::Pid,
            LinuxNamespaceType::Network => NsKind::Network,
            LinuxNamespaceType::Ipc => NsKind::Ipc,
            LinuxNamespaceType::Uts => NsKind::Uts,
            LinuxNamespaceType::Cgroup => NsKind::Cgroup,
            LinuxNamespaceType::Time => NsKind::Time,
        }
    }
}

/// The namespaces a container creates and joins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespaces {
    /// Namespaces created fresh.
    pub new: Vec<NsKind>,
    /// Namespaces joined by path.
    pub join: Vec<(NsKind, PathBuf)>,
}

impl Namespaces {
    /// Resolve `linux.namespaces` (pure).
    pub fn from_config(list: &[LinuxNamespace]) -> Result<Namespaces> {
        let mut ns = Namespaces::default();
        for (i, n) in list.iter().enumerate() {
            let kind = NsKind::from_oci(n.typ());
            if ns.has(kind) {
                return Err(Error::config(
                    format!("linux.namespaces[{i}].type"),
                    format!("{} namespace given twice", kind.spec_name()),
                ));
            }
            match n.path() {
                Some(p) if !p.as_os_str().is_empty() => {
                    if !p.is_absolute() {
                        return Err(Error::config(
                            format!("linux.namespaces[{i}].path"),
                            format!("{} is not an absolute path", p.display()),
                        ));
                    }
                    ns.join.push((kind, p.clone()));
                }
                _ => ns.new.push(kind),
            }
        }
        Ok(ns)
    }

    /// Created fresh.
    pub fn creates(&self, kind: NsKind) -> bool {
        self.new.contains(&kind)
    }

    /// Joined by path.
    pub fn joins(&self, kind: NsKind) -> Option<&Path> {
        self.join
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, p)| p.as_path())
    }

    /// Created or joined (i.e. not shared with the runtime).
    pub fn has(&self, kind: NsKind) -> bool {
        self.creates(kind) || self.joins(kind).is_some()
    }

    /// Whether setup needs an intermediate process: joining a user namespace, or creating one
    /// while joining others (those must be joined with the runtime's privileges first, and the
    /// new pid namespace must be owned by the new user namespace).
    pub fn needs_two_stages(&self) -> bool {
        let joins_other = self
            .join
            .iter()
            .any(|(k, _)| !matches!(k, NsKind::Pid | NsKind::Time));
        self.joins(NsKind::User).is_some() || (self.creates(NsKind::User) && joins_other)
    }

    /// Flags for the (single-stage) clone: every new namespace except cgroup (unshared by the
    /// init once the parent has placed it in its cgroup) and time (unshared by the parent, so
    /// offsets can be written before any process enters).
    pub fn clone_flags(&self) -> u64 {
        self.new
            .iter()
            .filter(|k| !matches!(k, NsKind::Cgroup | NsKind::Time))
            .fold(0, |acc, k| acc | k.clone_flag())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(json: &str) -> Result<Namespaces> {
        let list: Vec<LinuxNamespace> = serde_json::from_str(json).unwrap();
        Namespaces::from_config(&list)
    }

    #[test]
    fn default_set_is_single_stage() {
        let n = ns(
            r#"[{"type":"pid"},{"type":"network"},{"type":"ipc"},{"type":"uts"},
                       {"type":"mount"},{"type":"cgroup"},{"type":"user"}]"#,
        )
        .unwrap();
        assert!(!n.needs_two_stages());
        let flags = n.clone_flags();
        assert_ne!(flags & libc::CLONE_NEWUSER as u64, 0);
        assert_eq!(flags & libc::CLONE_NEWCGROUP as u64, 0);
    }

    #[test]
    fn new_user_with_joined_net_needs_two_stages() {
        let n =
            ns(r#"[{"type":"user"},{"type":"network","path":"/run/netns/x"},{"type":"mount"}]"#)
                .unwrap();
        assert!(n.needs_two_stages());
        let n = ns(r#"[{"type":"network","path":"/run/netns/x"},{"type":"mount"}]"#).unwrap();
        assert!(!n.needs_two_stages());
        let n = ns(r#"[{"type":"user","path":"/proc/1/ns/user"},{"type":"mount"}]"#).unwrap();
        assert!(n.needs_two_stages());
    }

    #[test]
    fn duplicates_and_relative_paths_are_rejected() {
        assert!(ns(r#"[{"type":"pid"},{"type":"pid"}]"#)
            .unwrap_err()
            .to_string()
            .contains("linux.namespaces[1].type"));
        assert!(ns(r#"[{"type":"network","path":"netns"}]"#)
            .unwrap_err()
            .to_string()
            .contains("linux.namespaces[0].path"));
    }
}
