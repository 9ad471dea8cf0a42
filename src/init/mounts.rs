//! One `mounts[]` entry: bind mounts, filesystems and cgroup mounts, each resolved inside the
//! rootfs and mounted onto the resolved fd.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::Mode;

use super::paths::{is_fs, Resolver, PROC_MAGIC, SYSFS_MAGIC};
use super::rootfs::current_flags;
use crate::error::{Context, Error, Result};
use crate::namespaces::NsKind;
use crate::spec::{IdMap, MountKind, MountPlan, Plan};
use crate::sync::{Channel, Msg};
use crate::sys::fd::{self as sfd, proc_fd_path, Resolve};
use crate::sys::mount::{mount, mount_setattr};

/// Flags a bind remount can change.
const REMOUNT_FLAGS: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NOSUID)
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC)
    .union(MsFlags::MS_NOATIME)
    .union(MsFlags::MS_NODIRATIME)
    .union(MsFlags::MS_RELATIME)
    .union(MsFlags::MS_STRICTATIME);

/// Bind-mount sources opened by the runtime, by `mounts[]` index (the id-mapped rootfs under
/// [`ROOTFS`]).
pub type MountSources = BTreeMap<usize, OwnedFd>;

/// The key of the id-mapped rootfs in [`MountSources`] (sent as index -1).
pub const ROOTFS: usize = usize::MAX;

/// In a user namespace, ask the runtime for the bind-mount sources: it opens them in our mount
/// namespace with its own privileges (our root may not reach them, as runc's init may not).
pub fn receive_sources(plan: &Plan, sync: &Channel) -> Result<MountSources> {
    let mut sources = MountSources::new();
    let binds = plan
        .mounts
        .iter()
        .any(|m| matches!(m.kind, MountKind::Bind { .. }));
    if !plan.in_user_namespace() || !(binds || plan.rootfs_idmap) {
        return Ok(sources);
    }
    sync.send(&Msg::MountSourcesPlease)?;
    loop {
        let mut incoming = sync.recv()?;
        match incoming.msg {
            Some(Msg::MountSource { index }) => {
                let fd = incoming
                    .fds
                    .pop()
                    .ok_or_else(|| Error::Other("sync: mount source without an fd".into()))?;
                let index = match index {
                    -1 => ROOTFS,
                    i => usize::try_from(i)
                        .map_err(|_| Error::Other(format!("sync: bad mount index {i}")))?,
                };
                sources.insert(index, fd);
            }
            Some(Msg::MountSourcesDone) => return Ok(sources),
            other => {
                return Err(Error::Other(format!(
                    "sync: expected mount sources, got {other:?}"
                )))
            }
        }
    }
}

/// Mount one entry (`source`: the bind source opened by the runtime, if it did).
pub fn mount_one(
    plan: &Plan,
    r: &Resolver,
    root: BorrowedFd<'_>,
    m: &MountPlan,
    source: Option<BorrowedFd<'_>>,
) -> Result<()> {
    match &m.kind {
        MountKind::Bind {
            source: path,
            recursive,
        } => bind(plan, r, root, m, path, source, *recursive)?,
        MountKind::Cgroup => cgroup(plan, r, root, m)?,
        MountKind::Fs { fstype, source } if is_ro_dev(m) => {
            // /dev gets its submounts, nodes and symlinks first: read-only comes at the end
            // (rootfs::finalize), as with runc.
            let mut rw = m.clone();
            rw.options.flags.remove(MsFlags::MS_RDONLY);
            filesystem(plan, r, root, &rw, fstype, source)?
        }
        MountKind::Fs { fstype, source } => filesystem(plan, r, root, m, fstype, source)?,
    }
    after_mount(r, root, m)
}

/// A filesystem mounted on /dev with `ro`.
pub fn is_ro_dev(m: &MountPlan) -> bool {
    matches!(m.kind, MountKind::Fs { .. })
        && m.destination == Path::new("/dev")
        && m.options.flags.contains(MsFlags::MS_RDONLY)
}

/// Propagation and recursive attributes, applied to the new mount.
fn after_mount(r: &Resolver, root: BorrowedFd<'_>, m: &MountPlan) -> Result<()> {
    if m.options.propagation.is_empty() && m.options.rec_set == 0 && m.options.rec_clear == 0 {
        return Ok(());
    }
    let fd = r
        .open(root, &m.destination, OFlag::O_PATH)
        .op("reopen mount")?;
    for p in &m.options.propagation {
        mount(None, &proc_fd_path(fd.as_fd()), None, *p, None).op("mount propagation")?;
    }
    if m.options.rec_set != 0 || m.options.rec_clear != 0 {
        mount_setattr(fd.as_fd(), true, m.options.rec_set, m.options.rec_clear)
            .op("mount_setattr")?;
    }
    Ok(())
}

fn bind(
    plan: &Plan,
    r: &Resolver,
    root: BorrowedFd<'_>,
    m: &MountPlan,
    source: &Path,
    opened: Option<BorrowedFd<'_>>,
    recursive: bool,
) -> Result<()> {
    let own;
    let src = match opened {
        Some(fd) => fd,
        None => {
            own = sfd::open(source, OFlag::O_PATH, Mode::empty()).map_err(|e| {
                Error::config(
                    format!("mounts[{}].source", m.index),
                    format!("{}: {}", source.display(), crate::error::errno_text(e)),
                )
            })?;
            own.as_fd()
        }
    };
    let is_dir = sfd::fstat(src.as_fd()).op("fstat")?.st_mode & libc::S_IFMT == libc::S_IFDIR;
    let target = r.ensure(root, &m.destination, !is_dir)?;
    if m.idmap.is_some() {
        // The runtime made the id-mapped copy (only it may): attach it.
        if opened.is_none() {
            return Err(Error::Other(format!(
                "mounts[{}]: the runtime sent no id-mapped mount",
                m.index
            )));
        }
        crate::sys::mount::move_mount(src, target.as_fd()).op("move_mount id-mapped mount")?;
    } else {
        let mut flags = MsFlags::MS_BIND;
        if recursive {
            flags |= MsFlags::MS_REC;
        }
        mount(
            Some(&proc_fd_path(src.as_fd())),
            &proc_fd_path(target.as_fd()),
            None,
            flags,
            None,
        )
        .op("bind mount")?;
    }
    let want = m.options.flags & REMOUNT_FLAGS;
    if want.is_empty() {
        return Ok(());
    }
    let mounted = r
        .open(root, &m.destination, OFlag::O_PATH)
        .op("reopen bind mount")?;
    let remount = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | want;
    let target = proc_fd_path(mounted.as_fd());
    match mount(None, &target, None, remount, None) {
        // In a user namespace the source's nosuid/nodev/noexec/atime flags are locked: keep
        // them unless the config cleared them (then the kernel's EPERM is the right answer).
        Err(Errno::EPERM) if plan.in_user_namespace() => {
            let locked = current_flags(mounted.as_fd())? & !m.options.cleared;
            mount(None, &target, None, remount | locked, None).op("remount bind")
        }
        other => other.op("remount bind"),
    }
}

fn filesystem(
    plan: &Plan,
    r: &Resolver,
    root: BorrowedFd<'_>,
    m: &MountPlan,
    fstype: &str,
    source: &str,
) -> Result<()> {
    // /proc and /sys must not be symlinks in the image (CVE-2023-28642): a symlink could move
    // the mount somewhere the masking and read-only rules do not cover.
    let pseudo = matches!(fstype, "proc" | "sysfs");
    let extra = if pseudo {
        Resolve::NO_SYMLINKS
    } else {
        Resolve::NONE
    };
    let target = match r.open_with(root, &m.destination, OFlag::O_PATH, extra) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => {
            r.ensure(root, &m.destination, false)?;
            r.open_with(root, &m.destination, OFlag::O_PATH, extra)
                .op("open mount point")?
        }
        Err(Errno::ELOOP) => {
            return Err(Error::Other(format!(
                "{} is a symlink in the rootfs: {fstype} must be mounted on ordinary directory",
                m.destination.display()
            )))
        }
        Err(e) => return Err(Error::os("open mount point", Some(&m.destination), e)),
    };
    let flags = m.options.flags & !MsFlags::MS_REMOUNT;
    let data = fs_data(plan, m, fstype);
    let copy_from = if m.options.tmpcopyup && fstype == "tmpfs" {
        Some(
            r.open(root, &m.destination, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
                .op("open tmpcopyup source")?,
        )
    } else {
        None
    };
    let tpath = proc_fd_path(target.as_fd());
    match mount(
        Some(Path::new(source)),
        &tpath,
        Some(fstype),
        flags,
        data.as_deref(),
    ) {
        Ok(()) => {}
        // A user namespace without its own network namespace may not mount sysfs; bind the
        // host's instead (read-only when asked), as runc does.
        Err(Errno::EPERM) if fstype == "sysfs" && plan.in_user_namespace() => {
            mount(
                Some(Path::new("/sys")),
                &tpath,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )
            .op("bind /sys")?;
        }
        Err(e) => {
            return Err(Error::os(
                format!("mount {fstype}"),
                Some(&m.destination),
                e,
            ))
        }
    }
    let mounted = r
        .open_with(root, &m.destination, OFlag::O_PATH, extra)
        .op("reopen mount")?;
    if r.is_safe() && fstype == "proc" && !is_fs(mounted.as_fd(), PROC_MAGIC)? {
        return Err(Error::Other("the new /proc is not procfs".into()));
    }
    if r.is_safe() && fstype == "sysfs" && !is_fs(mounted.as_fd(), SYSFS_MAGIC)? {
        return Err(Error::Other("the new /sys is not sysfs".into()));
    }
    if let Some(src) = copy_from {
        let dst = r
            .open_with(
                root,
                &m.destination,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY,
                extra,
            )
            .op("open tmpcopyup target")?;
        copy_tree(src.as_fd(), dst.as_fd())?;
    }
    Ok(())
}

/// Mount data, with devpts' `gid=` dropped when that gid is not mapped in the container's user
/// namespace (the kernel would refuse the mount).
fn fs_data(plan: &Plan, m: &MountPlan, fstype: &str) -> Option<String> {
    let data = m.data()?;
    if fstype != "devpts" || !plan.namespaces.creates(NsKind::User) {
        return Some(data);
    }
    let kept: Vec<&str> = data
        .split(',')
        .filter(
            |o| match o.strip_prefix("gid=").and_then(|g| g.parse::<u32>().ok()) {
                Some(gid) => IdMap::to_host(&plan.gid_maps, gid).is_some(),
                None => true,
            },
        )
        .collect();
    Some(kept.join(","))
}

/// Copy a directory tree (tmpcopyup): files, directories and symlinks with modes and owners.
/// Everything goes through descriptors opened `O_NOFOLLOW` relative to their parent, so an
/// entry of the container's image that is (or is swapped for) a symlink is copied as a symlink,
/// never followed out of the rootfs into the host.
fn copy_tree(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> Result<()> {
    let st = sfd::fstat(from).op("stat tmpcopyup source")?;
    copy_owner_and_mode(to, &st)?;
    let dir_flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
    for name in sfd::read_dir_names(from).op("read tmpcopyup source")? {
        let name = Path::new(&name);
        // O_PATH|O_NOFOLLOW: the entry itself, whatever it is; everything below goes through
        // this fd or checks against it, so swapping the name meanwhile gains nothing.
        let entry = sfd::openat(from, name, OFlag::O_PATH | OFlag::O_NOFOLLOW, Mode::empty())
            .op_path("open", name)?;
        let est = sfd::fstat(entry.as_fd()).op_path("stat", name)?;
        match est.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                // "." of the O_PATH fd: the very directory just looked at, whatever the name
                // points to by now.
                let src = sfd::openat(entry.as_fd(), Path::new("."), dir_flags, Mode::empty())
                    .op_path("open", name)?;
                sfd::mkdirat(to, name, Mode::from_bits_truncate(0o700)).op_path("mkdir", name)?;
                let dst = sfd::openat(to, name, dir_flags, Mode::empty()).op_path("open", name)?;
                copy_tree(src.as_fd(), dst.as_fd())?;
            }
            libc::S_IFLNK => {
                // The link itself, read through its own fd.
                let target =
                    sfd::readlinkat(entry.as_fd(), Path::new("")).op_path("readlink", name)?;
                sfd::symlinkat(Path::new(&target), to, name).op_path("symlink", name)?;
                sfd::lchownat(to, name, est.st_uid, est.st_gid).op_path("chown", name)?;
            }
            libc::S_IFREG => {
                // A regular file cannot be reopened through an O_PATH fd without /proc: open
                // the name again (never following, never blocking on a FIFO) and insist that
                // it is still the same file.
                let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK;
                let src = sfd::openat(from, name, flags, Mode::empty()).op_path("open", name)?;
                let sst = sfd::fstat(src.as_fd()).op_path("stat", name)?;
                if (sst.st_dev, sst.st_ino) != (est.st_dev, est.st_ino) {
                    return Err(Error::Other(format!(
                        "tmpcopyup: {} changed while being copied",
                        name.display()
                    )));
                }
                let create = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW;
                let dst = sfd::openat(to, name, create, Mode::from_bits_truncate(0o600))
                    .op_path("create", name)?;
                let mut r = std::fs::File::from(src);
                let mut w = std::fs::File::from(dst);
                std::io::copy(&mut r, &mut w).op_path("copy", name)?;
                copy_owner_and_mode(w.as_fd(), &sst)?;
            }
            // Devices, FIFOs and sockets are not copied (as before, and as runc).
            _ => {}
        }
    }
    Ok(())
}

/// Owner first, then mode: chown clears set-id bits, which the mode then restores.
fn copy_owner_and_mode(fd: BorrowedFd<'_>, st: &libc::stat) -> Result<()> {
    sfd::fchown(fd, st.st_uid, st.st_gid).op("chown")?;
    sfd::fchmod(fd, Mode::from_bits_truncate(st.st_mode & 0o7777)).op("chmod")
}

/// A `type: cgroup` mount: the container's own cgroups, as a fresh cgroup filesystem when it
/// has a cgroup namespace, else bind mounts of its cgroup directories (never the host's whole
/// hierarchy). v1 and hybrid hosts get a tmpfs with one mount per hierarchy and symlinks for
/// co-mounted controllers (`cpu -> cpu,cpuacct`), as runc lays it out.
fn cgroup(plan: &Plan, r: &Resolver, root: BorrowedFd<'_>, m: &MountPlan) -> Result<()> {
    let own_ns = plan.namespaces.has(NsKind::Cgroup);
    let entries = plan.cgroup.container_mounts();
    let flags = (m.options.flags & !MsFlags::MS_REMOUNT)
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV
        | MsFlags::MS_NOEXEC;
    let dest = r.ensure(root, &m.destination, false)?;
    let single = entries.len() == 1 && entries[0].subdir.is_empty();
    if !single {
        mount(
            Some(Path::new("tmpfs")),
            &proc_fd_path(dest.as_fd()),
            Some("tmpfs"),
            flags & !MsFlags::MS_RDONLY,
            Some("mode=755"),
        )
        .op("mount tmpfs for cgroups")?;
    }
    for e in &entries {
        let path: PathBuf = m.destination.join(&e.subdir);
        let target = r.ensure(root, &path, false)?;
        let tpath = proc_fd_path(target.as_fd());
        let fresh = if own_ns {
            let data = (!e.data.is_empty()).then_some(e.data.as_str());
            match mount(
                Some(Path::new("cgroup")),
                &tpath,
                Some(e.fstype),
                flags,
                data,
            ) {
                Ok(()) => true,
                // Not allowed to mount this hierarchy here (a user namespace that does not
                // own it): fall back to the bind mount, as runc does for cgroup2.
                Err(Errno::EPERM) | Err(Errno::EBUSY) => false,
                Err(err) => return Err(Error::os(format!("mount {}", e.fstype), Some(&path), err)),
            }
        } else {
            false
        };
        if !fresh {
            let host = sfd::open(
                &e.host_dir,
                OFlag::O_PATH | OFlag::O_DIRECTORY,
                Mode::empty(),
            )
            .op_path("open", &e.host_dir)?;
            mount(
                Some(&proc_fd_path(host.as_fd())),
                &tpath,
                None,
                MsFlags::MS_BIND,
                None,
            )
            .op_path("bind cgroup", &path)?;
            let top = r
                .open(root, &path, OFlag::O_PATH)
                .op("reopen cgroup mount")?;
            // Keep what the bind already has (locked in a user namespace), add ours.
            let want = (flags & REMOUNT_FLAGS) | current_flags(top.as_fd())?;
            mount(
                None,
                &proc_fd_path(top.as_fd()),
                None,
                MsFlags::MS_REMOUNT | MsFlags::MS_BIND | want,
                None,
            )
            .op_path("remount bind cgroup", &path)?;
        }
    }
    if single {
        return Ok(());
    }
    let top: OwnedFd = r
        .open(root, &m.destination, OFlag::O_PATH | OFlag::O_DIRECTORY)
        .op("reopen cgroup tmpfs")?;
    for e in &entries {
        for link in &e.symlinks {
            match sfd::symlinkat(Path::new(&e.subdir), top.as_fd(), Path::new(link)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(err) => return Err(Error::os("symlink", Some(&m.destination.join(link)), err)),
            }
        }
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        super::rootfs::remount_readonly(top.as_fd(), &m.destination)?;
    }
    Ok(())
}
