//! Steps 3, 5 and 6 of the story: prepare the root filesystem, pivot into it, finalize it.

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::Mode;

use super::devices;
use super::mounts::{mount_one, MountSources};
use super::paths::{check_char_device, is_fs, Resolver, PROC_MAGIC};
use crate::error::{Context, Error, Result};
use crate::namespaces::NsKind;
use crate::spec::Plan;
use crate::sys::fd::{self as sfd, proc_fd_path, Resolve};
use crate::sys::mount::{mount, pivot_root, umount2};

/// What the rootfs step hands to later steps.
#[derive(Debug)]
pub struct Prepared {
    /// The pty's peer, when the process has a terminal.
    pub console: Option<OwnedFd>,
}

/// The resolver for this plan (strict unless a test switched path safety off).
pub fn resolver(plan: &Plan) -> Resolver {
    Resolver::new(!plan.opts.layers.no_path_safety)
}

/// Step 3: propagation, bind the rootfs, mounts resolved inside it, devices, /dev symlinks,
/// console, cwd.
pub fn prepare(
    plan: &Plan,
    console_socket: Option<BorrowedFd<'_>>,
    sources: &MountSources,
) -> Result<Prepared> {
    let r = resolver(plan);
    // Everything below targets fds through /proc/self/fd: /proc must really be procfs.
    let proc = sfd::open(
        Path::new("/proc"),
        OFlag::O_PATH | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
    .op_path("open", Path::new("/proc"))?;
    if !is_fs(proc.as_fd(), PROC_MAGIC)? {
        return Err(Error::Other(
            "/proc is not procfs: refusing to set up".into(),
        ));
    }
    // An unbindable "/" now would make the rootfs's own bind fail (EINVAL): it is applied to
    // the new root after pivot_root, like shared (which would leak mounts to the host here).
    let before = if after_pivot(plan.rootfs_propagation) {
        MsFlags::MS_SLAVE | MsFlags::MS_REC
    } else {
        plan.rootfs_propagation
    };
    mount(None, Path::new("/"), None, before, None).op_path("mount propagation", Path::new("/"))?;
    make_parent_private(&plan.rootfs)?;
    match sources.get(&super::mounts::ROOTFS) {
        // The runtime made the id-mapped copy of the rootfs (only it may): attach it.
        Some(tree) => {
            let target = sfd::open(&plan.rootfs, OFlag::O_PATH, Mode::empty())
                .op_path("open", &plan.rootfs)?;
            crate::sys::mount::move_mount(tree.as_fd(), target.as_fd())
                .op_path("move_mount id-mapped rootfs", &plan.rootfs)?;
        }
        None if plan.rootfs_idmap => {
            return Err(Error::Other("the runtime sent no id-mapped rootfs".into()))
        }
        None => mount(
            Some(&plan.rootfs),
            &plan.rootfs,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )
        .op_path("bind rootfs", &plan.rootfs)?,
    }
    let root = sfd::open(
        &plan.rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
    .op_path("open", &plan.rootfs)?;
    for m in &plan.mounts {
        let source = sources.get(&m.index).map(|fd| fd.as_fd());
        mount_one(plan, &r, root.as_fd(), m, source).map_err(|e| {
            Error::Other(format!(
                "mounts[{}] ({}): {e}",
                m.index,
                m.destination.display()
            ))
        })?;
    }
    devices::create(plan, &r, root.as_fd())?;
    let console = match console_socket {
        Some(sock) if plan.process.terminal => {
            Some(devices::console(plan, &r, root.as_fd(), sock)?)
        }
        _ => None,
    };
    match r.open(root.as_fd(), &plan.process.cwd, OFlag::O_PATH) {
        Ok(_) => {}
        Err(Errno::ENOENT) => {
            r.ensure(root.as_fd(), &plan.process.cwd, false)?;
        }
        Err(e) => return Err(Error::os("open cwd", Some(&plan.process.cwd), e)),
    }
    Ok(Prepared { console })
}

/// pivot_root needs the new root's parent mount not to be shared.
fn make_parent_private(rootfs: &Path) -> Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").op("read mountinfo")?;
    let mut best: Option<(PathBuf, bool)> = None;
    for line in info.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() < 7 {
            continue;
        }
        let mp = PathBuf::from(unescape(f[4]));
        if rootfs.starts_with(&mp)
            && best
                .as_ref()
                .is_none_or(|(b, _)| mp.as_os_str().len() >= b.as_os_str().len())
        {
            let shared = f[6..]
                .iter()
                .take_while(|x| **x != "-")
                .any(|x| x.starts_with("shared:"));
            best = Some((mp, shared));
        }
    }
    if let Some((mp, true)) = best {
        mount(None, &mp, None, MsFlags::MS_PRIVATE, None).op_path("make private", &mp)?;
    }
    Ok(())
}

/// Propagation modes set on the container's root once it is "/" rather than on the host's
/// "/" before the rootfs is bound: shared (after pivot_root, as runc) and unbindable (after
/// the last bind mount from the root, in `finalize`).
fn after_pivot(flags: MsFlags) -> bool {
    flags.intersects(MsFlags::MS_SHARED | MsFlags::MS_UNBINDABLE)
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Step 5: make the rootfs `/` (pivot_root, or move+chroot with `--no-pivot`) and detach the
/// old root.
pub fn pivot(plan: &Plan) -> Result<()> {
    let rootfs = &plan.rootfs;
    if plan.opts.no_pivot {
        hide_host_proc_and_sys(plan)?;
        sfd::chdir(rootfs).op_path("chdir", rootfs)?;
        mount(Some(rootfs), Path::new("/"), None, MsFlags::MS_MOVE, None)
            .op_path("mount --move", rootfs)?;
        sfd::chroot(Path::new(".")).op_path("chroot", rootfs)?;
    } else {
        let old = sfd::open(
            Path::new("/"),
            OFlag::O_DIRECTORY | OFlag::O_RDONLY,
            Mode::empty(),
        )
        .op_path("open", Path::new("/"))?;
        let new = sfd::open(rootfs, OFlag::O_DIRECTORY | OFlag::O_RDONLY, Mode::empty())
            .op_path("open", rootfs)?;
        sfd::fchdir(new.as_fd()).op_path("fchdir", rootfs)?;
        pivot_root(Path::new("."), Path::new(".")).op_path("pivot_root", rootfs)?;
        // The old root is now stacked under "/": make it slave so the detach does not
        // propagate back to the host, then detach it.
        sfd::fchdir(old.as_fd()).op("fchdir old root")?;
        mount(
            None,
            Path::new("."),
            None,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None,
        )
        .op("make old root slave")?;
        umount2(Path::new("."), MntFlags::MNT_DETACH).op("detach old root")?;
    }
    sfd::chdir(Path::new("/")).op("chdir /")?;
    if plan.rootfs_propagation.contains(MsFlags::MS_SHARED) {
        mount(None, Path::new("/"), None, plan.rootfs_propagation, None)
            .op("mount propagation /")?;
    }
    Ok(())
}

/// `--no-pivot` only: detach every full procfs and sysfs mounted outside the rootfs before
/// the chroot, as runc does. Without pivot_root they stay in the container's mount namespace,
/// below its root, and the kernel's "mount too revealing" check counts them: a process that
/// makes a user namespace could then mount a fresh, unmasked procfs. Each mount is made a
/// slave first so the detach cannot propagate to the host; where it cannot be detached it is
/// covered with an empty tmpfs instead. Only in a mount namespace sealrun made: one joined by
/// path belongs to someone else.
fn hide_host_proc_and_sys(plan: &Plan) -> Result<()> {
    if !plan.namespaces.creates(NsKind::Mount) {
        return Err(Error::config(
            "linux.namespaces",
            "--no-pivot needs a new mount namespace (the host's procfs and sysfs are detached \
             in it)",
        ));
    }
    let info = std::fs::read_to_string("/proc/self/mountinfo").op("read mountinfo")?;
    for p in full_proc_and_sys_mounts(&info, &plan.rootfs) {
        match mount(None, &p, None, MsFlags::MS_SLAVE | MsFlags::MS_REC, None) {
            // Gone with a parent detached earlier.
            Err(Errno::ENOENT) | Err(Errno::EINVAL) => continue,
            r => r.op_path("make slave", &p)?,
        }
        match umount2(&p, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            Err(Errno::EINVAL) | Err(Errno::EPERM) => mount(
                Some(Path::new("tmpfs")),
                &p,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                None,
            )
            .op_path("cover", &p)?,
            Err(e) => return Err(Error::os("detach", Some(&p), e)),
        }
    }
    Ok(())
}

/// Mount points of full (root `/`) procfs and sysfs mounts outside `rootfs`, from mountinfo.
fn full_proc_and_sys_mounts(mountinfo: &str, rootfs: &Path) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let fstype = right.split(' ').next()?;
            if f.len() < 5 || f[3] != "/" || !matches!(fstype, "proc" | "sysfs") {
                return None;
            }
            let mp = PathBuf::from(unescape(f[4]));
            (!mp.starts_with(rootfs)).then_some(mp)
        })
        .collect()
}

/// Step 6: sysctl, masked paths, read-only paths, read-only root.
pub fn finalize(plan: &Plan) -> Result<()> {
    let r = resolver(plan);
    let root = sfd::open(
        Path::new("/"),
        OFlag::O_PATH | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
    .op("open /")?;
    write_sysctls(plan, &r, root.as_fd())?;
    mask_paths(plan, &r, root.as_fd())?;
    readonly_paths(plan, &r, root.as_fd())?;
    if plan.mounts.iter().any(super::mounts::is_ro_dev) {
        let dev = r
            .open(
                root.as_fd(),
                Path::new("/dev"),
                OFlag::O_PATH | OFlag::O_DIRECTORY,
            )
            .op("open /dev")?;
        remount_readonly(dev.as_fd(), Path::new("/dev"))?;
    }
    if plan.root_readonly {
        // By path, not through /proc/self/fd: after pivot_root "/" is the root mount itself.
        let flags = MsFlags::MS_REMOUNT
            | MsFlags::MS_BIND
            | MsFlags::MS_RDONLY
            | current_flags(root.as_fd())?;
        mount(None, Path::new("/"), None, flags, None).op("remount read-only /")?;
    }
    // Last: masks, read-only paths and device nodes on the root are bind mounts from it.
    if plan.rootfs_propagation.contains(MsFlags::MS_UNBINDABLE) {
        mount(None, Path::new("/"), None, plan.rootfs_propagation, None)
            .op("mount propagation /")?;
    }
    Ok(())
}

/// After `pivot_root`, mounts target fds through `/proc/self/fd/N` of the *container's* /proc:
/// make sure that is the kernel's procfs and not a directory the image or a mount put there,
/// whose `self/fd/N` symlinks would send the mount elsewhere (CVE-2025-31133, CVE-2025-52881).
fn check_proc_fd_paths(r: &Resolver) -> Result<()> {
    if r.is_safe() {
        super::paths::open_proc(
            Path::new("self/fd"),
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            true,
        )?;
    }
    Ok(())
}

fn write_sysctls(plan: &Plan, r: &Resolver, root: BorrowedFd<'_>) -> Result<()> {
    if plan.sysctl.is_empty() {
        return Ok(());
    }
    let sys = r
        .open_with(
            root,
            Path::new("/proc/sys"),
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            Resolve::NO_SYMLINKS,
        )
        .op("open /proc/sys")?;
    if r.is_safe() && !is_fs(sys.as_fd(), PROC_MAGIC)? {
        return Err(Error::Other(
            "/proc/sys is not procfs: refusing to write sysctls".into(),
        ));
    }
    for (key, value) in &plan.sysctl {
        let rel = PathBuf::from(key.replace('.', "/"));
        // No symlink, no magic link and no mount crossing: a bind mount over a sysctl file
        // cannot redirect the write to another procfs file (CVE-2025-52881).
        let strict = if r.is_safe() {
            Resolve::BENEATH | Resolve::NO_SYMLINKS | Resolve::NO_MAGICLINKS | Resolve::NO_XDEV
        } else {
            Resolve::NONE
        };
        let fd = sfd::openat2(sys.as_fd(), &rel, OFlag::O_WRONLY, Mode::empty(), strict).op_path(
            &format!("linux.sysctl {key}: open"),
            &Path::new("/proc/sys").join(&rel),
        )?;
        if r.is_safe() && !is_fs(fd.as_fd(), PROC_MAGIC)? {
            return Err(Error::Other(format!("sysctl {key}: not a procfs file")));
        }
        std::fs::File::from(fd)
            .write_all(value.as_bytes())
            .op_path(
                &format!("linux.sysctl {key}: write"),
                &Path::new("/proc/sys").join(&rel),
            )?;
    }
    Ok(())
}

/// The real /dev/null of the container, checked to be char 1:3.
fn dev_null(plan: &Plan, r: &Resolver, root: BorrowedFd<'_>) -> Result<OwnedFd> {
    let path = Path::new("/dev/null");
    let fd = r
        .open_with(root, path, OFlag::O_PATH, Resolve::NO_SYMLINKS)
        .op_path("open", path)?;
    if !plan.opts.layers.no_path_safety {
        check_char_device(fd.as_fd(), 1, 3, path)?;
    }
    Ok(fd)
}

fn mask_paths(plan: &Plan, r: &Resolver, root: BorrowedFd<'_>) -> Result<()> {
    if plan.masked_paths.is_empty() {
        return Ok(());
    }
    let null = dev_null(plan, r, root)?;
    for p in &plan.masked_paths {
        let fd = match r.open(root, p, OFlag::O_PATH) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(Error::os("open masked path", Some(p), e)),
        };
        let st = sfd::fstat(fd.as_fd()).op_path("fstat", p)?;
        check_proc_fd_paths(r)?;
        let target = proc_fd_path(fd.as_fd());
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            mount(
                Some(Path::new("tmpfs")),
                &target,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None,
            )
        } else {
            mount(
                Some(&proc_fd_path(null.as_fd())),
                &target,
                None,
                MsFlags::MS_BIND,
                None,
            )
        }
        .op_path("mask", p)?;
    }
    Ok(())
}

fn readonly_paths(plan: &Plan, r: &Resolver, root: BorrowedFd<'_>) -> Result<()> {
    for p in &plan.readonly_paths {
        let fd = match r.open(root, p, OFlag::O_PATH) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(Error::os("open readonly path", Some(p), e)),
        };
        check_proc_fd_paths(r)?;
        let target = proc_fd_path(fd.as_fd());
        mount(
            Some(&target),
            &target,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )
        .op_path("bind readonly path", p)?;
        let top = r.open(root, p, OFlag::O_PATH).op_path("open", p)?;
        remount_readonly(top.as_fd(), p)?;
    }
    Ok(())
}

/// Remount the mount `fd` is the root of read-only, keeping the flags it already has (in a
/// user namespace nosuid/nodev/noexec are locked and a remount that drops them fails).
pub fn remount_readonly(fd: BorrowedFd<'_>, what: &Path) -> Result<()> {
    let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | current_flags(fd)?;
    mount(None, &proc_fd_path(fd), None, flags, None).op_path("remount read-only", what)
}

/// The mount flags of the mount holding `fd`, as `MS_*` bits.
pub fn current_flags(fd: BorrowedFd<'_>) -> Result<MsFlags> {
    let st = sfd::fstatvfs_flags(fd).op("statvfs")?;
    let map = [
        (libc::ST_RDONLY, MsFlags::MS_RDONLY),
        (libc::ST_NOSUID, MsFlags::MS_NOSUID),
        (libc::ST_NODEV, MsFlags::MS_NODEV),
        (libc::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (libc::ST_NOATIME, MsFlags::MS_NOATIME),
        (libc::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (libc::ST_RELATIME, MsFlags::MS_RELATIME),
    ];
    Ok(map
        .iter()
        .filter(|(st_bit, _)| st & *st_bit != 0)
        .fold(MsFlags::empty(), |acc, (_, ms)| acc | *ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_proc_and_sys_outside_the_rootfs_are_found() {
        let info = "\
22 1 0:21 / /sys rw,nosuid shared:7 - sysfs sysfs rw
23 1 0:22 / /proc rw,nosuid shared:12 - proc proc rw
24 23 0:40 / /proc/sys/fs/binfmt_misc rw - binfmt_misc binfmt_misc rw
25 1 0:22 /sys /mnt/proc\\040sys rw - proc proc rw
26 1 0:50 / /run/b/rootfs rw - overlay overlay rw
27 26 0:51 / /run/b/rootfs/proc rw - proc proc rw
28 1 0:52 / /run/b/rootfs2/sys rw - sysfs sysfs rw
29 1 0:22 / /srv/proc\\040copy rw - proc proc rw
";
        assert_eq!(
            full_proc_and_sys_mounts(info, Path::new("/run/b/rootfs")),
            [
                PathBuf::from("/sys"),
                PathBuf::from("/proc"),
                PathBuf::from("/run/b/rootfs2/sys"),
                PathBuf::from("/srv/proc copy"),
            ]
        );
    }

    #[test]
    fn mountinfo_unescape() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/x\134y"), r"/x\y");
    }
}
