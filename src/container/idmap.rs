//! Id-mapped bind mounts, the runtime's part: the init cannot id-map a host filesystem (the
//! kernel asks for CAP_SYS_ADMIN over its superblock, i.e. root in the initial user
//! namespace), so the runtime makes a detached copy of the source (`open_tree`), maps it
//! through a user namespace (`mount_setattr(MOUNT_ATTR_IDMAP)`) and hands it to the init,
//! which attaches it (`move_mount`) at the resolved destination.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::unistd::Pid;

use crate::error::{Context, Error, Result};
use crate::spec::idmap::IdMappedMount;
use crate::spec::MountPlan;
use crate::sys::{self, process::Forked};

/// The container's user namespace (the init's, `who`).
pub(super) fn container_userns(who: Pid) -> Result<OwnedFd> {
    let path = format!("/proc/{who}/ns/user");
    sys::fd::open(Path::new(&path), OFlag::O_RDONLY, Mode::empty())
        .op_path("open", Path::new(&path))
}

/// The user namespace a mount maps through: the container's own (the init's, `who`) when the
/// mount has no mappings of its own, else a new one holding exactly its mappings.
pub(super) fn userns_for(idmap: &IdMappedMount, who: Pid) -> Result<OwnedFd> {
    if idmap.uid_maps.is_empty() {
        return container_userns(who);
    }
    // A child in a new user namespace holds it while we write its maps and open it.
    let child = match sys::process::clone3(libc::CLONE_NEWUSER as u64, None).op("clone")? {
        Forked::Child => sys::process::pause_forever(),
        Forked::Parent(pid) => pid,
    };
    let opened = (|| {
        crate::namespaces::write_id_maps(
            child,
            &idmap.uid_maps,
            &idmap.gid_maps,
            &Default::default(),
        )?;
        let path = format!("/proc/{child}/ns/user");
        sys::fd::open(Path::new(&path), OFlag::O_RDONLY, Mode::empty())
            .op_path("open", Path::new(&path))
    })();
    let _ = sys::process::kill(child, Some(Signal::SIGKILL));
    let _ = sys::process::waitpid(child, None);
    opened
}

/// A detached copy of `source`, id-mapped through `userns`.
pub(super) fn mapped_tree(
    m: &MountPlan,
    idmap: &IdMappedMount,
    source: &Path,
    recursive_bind: bool,
    userns: &OwnedFd,
) -> Result<OwnedFd> {
    let field = format!("mounts[{}]", m.index);
    let tree = sys::mount::open_tree_clone(source, recursive_bind).map_err(|e| {
        Error::config(
            format!("{field}.source"),
            format!("{}: {}", source.display(), crate::error::errno_text(e)),
        )
    })?;
    match sys::mount::mount_setattr_idmap(tree.as_fd(), idmap.recursive, userns.as_fd()) {
        Ok(()) => Ok(tree),
        Err(Errno::EINVAL) => Err(Error::Unsupported(format!(
            "{field}: {}: the {} filesystem does not support id-mapped mounts",
            source.display(),
            fs_name(source)
        ))),
        Err(e) => Err(Error::os(
            format!("{field}: id-map {}", source.display()),
            None,
            e,
        )),
    }
}

/// A detached, recursive copy of the rootfs, id-mapped through `userns`
/// (`run.sealrun.rootfs.idmap`).
pub(super) fn mapped_rootfs(rootfs: &Path, userns: &OwnedFd) -> Result<OwnedFd> {
    let field = format!("annotations[\"{}\"]", crate::spec::idmap::ROOTFS_ANNOTATION);
    let tree = sys::mount::open_tree_clone(rootfs, true).op_path("open_tree", rootfs)?;
    match sys::mount::mount_setattr_idmap(tree.as_fd(), true, userns.as_fd()) {
        Ok(()) => Ok(tree),
        Err(Errno::EINVAL) => Err(Error::Unsupported(format!(
            "{field}: {}: the {} filesystem (or one mounted beneath) does not support \
             id-mapped mounts",
            rootfs.display(),
            fs_name(rootfs)
        ))),
        Err(e) => Err(Error::os(
            format!("{field}: id-map {}", rootfs.display()),
            None,
            e,
        )),
    }
}

/// The filesystem type of `path`, by its magic number.
fn fs_name(path: &Path) -> String {
    let Ok(st) = nix::sys::statfs::statfs(path) else {
        return "source's".into();
    };
    let magic = st.filesystem_type().0 as u64;
    let known: &[(u64, &str)] = &[
        (0xEF53, "ext4"),
        (0x0102_1994, "tmpfs"),
        (0x5846_5342, "xfs"),
        (0x9123_683E, "btrfs"),
        (0x794C_7630, "overlay"),
        (0x6969, "nfs"),
        (0x6573_5546, "fuse"),
        (0x9FA0, "proc"),
        (0x6265_6572, "sysfs"),
        (0x6367_7270, "cgroup2"),
        (0x2702_94A5, "cgroup"),
        (0x6462_6720, "debugfs"),
        (0x1CD1, "devpts"),
        (0x4244, "hfs"),
        (0x5346_544E, "ntfs"),
        (0x4d44, "vfat"),
        (0x7363_6673, "securityfs"),
        (0xCAFE_4A11, "bpf"),
        (0x2FC1_2FC1, "zfs"),
    ];
    known
        .iter()
        .find(|(m, _)| *m == magic)
        .map(|(_, n)| n.to_string())
        .unwrap_or_else(|| format!("{magic:#x}"))
}
