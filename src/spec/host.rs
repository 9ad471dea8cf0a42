//! [`HostFacts`]: what [`super::plan`] needs to know about the host, gathered once by the
//! caller (`container::host::gather`) so that planning itself reads no file and makes no
//! syscall, and can be unit-tested against made-up hosts.

use std::path::PathBuf;

use crate::cgroups::layout::Layout;

/// The identity of a namespace file: device and inode of its `nsfs` entry.
pub type NsId = (u64, u64);

/// Facts about the host and the bundle, gathered before planning.
#[derive(Debug, Clone)]
pub struct HostFacts {
    /// The highest capability number the kernel knows (`/proc/sys/kernel/cap_last_cap` of the
    /// host, read by the runtime, never from a container's `/proc`).
    pub cap_last_cap: u8,
    /// The Landlock ABI of the kernel (0: none).
    pub landlock_abi: i32,
    /// The runtime's own network namespace.
    pub net_ns: Option<NsId>,
    /// The namespace files the config joins by path, with their identity (`None`: could not
    /// be read; planning treats it as not the runtime's own).
    pub joined_ns: Vec<(PathBuf, Option<NsId>)>,
    /// The mounted cgroup hierarchies.
    pub cgroup_layout: Layout,
    /// The runtime's own cgroups (`/proc/self/cgroup`, parsed), for relative `cgroupsPath`.
    pub own_cgroups: Vec<(Vec<String>, PathBuf)>,
    /// `root.path`, resolved against the bundle and canonicalised, or why it cannot be used.
    pub rootfs: std::result::Result<PathBuf, String>,
    /// AppArmor is enabled on this host.
    pub apparmor: bool,
    /// SELinux is enabled on this host (selinuxfs mounted).
    pub selinux: bool,
    /// The caller's effective uid is not 0: what rootless planning needs.
    pub rootless: Option<super::rootless::RootlessFacts>,
    /// The caller runs in a user namespace other than the initial one (rootless podman runs
    /// the runtime as root of its own namespace).
    pub in_user_namespace: bool,
}

impl HostFacts {
    /// A plausible host for unit tests: cap_last_cap 40, Landlock ABI 6, a cgroup2-only layout
    /// and the given rootfs.
    pub fn for_tests(rootfs: &str) -> HostFacts {
        HostFacts {
            cap_last_cap: 40,
            landlock_abi: 6,
            net_ns: Some((4, 4026531840)),
            joined_ns: Vec::new(),
            cgroup_layout: crate::cgroups::layout::parse_mountinfo(
                "30 1 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw\n",
            ),
            own_cgroups: vec![(Vec::new(), PathBuf::from("/"))],
            rootfs: Ok(PathBuf::from(rootfs)),
            apparmor: false,
            selinux: false,
            rootless: None,
            in_user_namespace: false,
        }
    }

    /// Whether the namespace file at `path` is the runtime's own network namespace.
    pub(crate) fn is_own_net_ns(&self, path: &std::path::Path) -> bool {
        let id = self
            .joined_ns
            .iter()
            .find(|(p, _)| p == path)
            .and_then(|(_, id)| *id);
        id.is_some() && id == self.net_ns
    }
}
