//! Device nodes, /dev symlinks and the console, created inside the rootfs.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::Mode;

use super::paths::{check_char_device, is_fs, Resolver, DEVPTS_MAGIC};
use crate::error::{Context, Error, Result};
use crate::spec::{Plan, DEFAULT_SYMLINKS};
use crate::sys::fd::{self as sfd, proc_fd_path, Resolve};
use crate::sys::mount::mount;
use crate::sys::{socket, tty};

/// Create the device nodes and the /dev symlinks.
pub fn create(plan: &Plan, r: &Resolver, root: BorrowedFd<'_>) -> Result<()> {
    if plan.devices.is_empty() {
        return Ok(());
    }
    for d in &plan.devices {
        let parent = d.path.parent().unwrap_or(Path::new("/dev"));
        let name = Path::new(d.path.file_name().unwrap_or_default());
        let dir = r.ensure(root, parent, false)?;
        if plan.in_user_namespace() {
            // mknod is not allowed in a user namespace: bind the host's node instead, after
            // checking it is the device the config asked for.
            let host = sfd::open(&d.path, OFlag::O_PATH, Mode::empty()).op_path("open", &d.path)?;
            if d.kind == libc::S_IFCHR {
                check_char_device(host.as_fd(), d.major, d.minor, &d.path)?;
            }
            let target = r.ensure(root, &d.path, true)?;
            mount(
                Some(&proc_fd_path(host.as_fd())),
                &proc_fd_path(target.as_fd()),
                None,
                MsFlags::MS_BIND,
                None,
            )
            .op_path("bind device", &d.path)?;
            continue;
        }
        match sfd::unlinkat(dir.as_fd(), name, false) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(Error::os("remove", Some(&d.path), e)),
        }
        let dev = libc::makedev(d.major as u32, d.minor as u32);
        sfd::mknodat(
            dir.as_fd(),
            name,
            d.kind,
            Mode::from_bits_truncate(d.mode),
            dev,
        )
        .op_path("mknod", &d.path)?;
        if d.uid != 0 || d.gid != 0 {
            let node = sfd::openat(
                dir.as_fd(),
                name,
                OFlag::O_PATH | OFlag::O_NOFOLLOW,
                Mode::empty(),
            )
            .op_path("open", &d.path)?;
            fchown_path(node.as_fd(), d.uid, d.gid, &d.path)?;
        }
    }
    let dev = r
        .open_with(
            root,
            Path::new("/dev"),
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            Resolve::NO_SYMLINKS,
        )
        .op("open /dev")?;
    for (link, target) in DEFAULT_SYMLINKS {
        let name = Path::new(link).file_name().unwrap_or_default();
        match sfd::symlinkat(Path::new(target), dev.as_fd(), Path::new(name)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(Error::os("symlink", Some(Path::new(link)), e)),
        }
    }
    if Path::new("/proc/kcore").exists() {
        let _ = sfd::symlinkat(Path::new("/proc/kcore"), dev.as_fd(), Path::new("core"));
    }
    Ok(())
}

/// chown an `O_PATH` fd (through its /proc/self/fd link, which chown does not follow further).
fn fchown_path(fd: BorrowedFd<'_>, uid: u32, gid: u32, what: &Path) -> Result<()> {
    std::os::unix::fs::chown(proc_fd_path(fd), Some(uid), Some(gid)).op_path("chown", what)
}

/// A pty allocated from the container's own devpts: `(master, peer, index)`. The peer belongs
/// to the process's user (`owner`) and keeps the group devpts gave it (its `gid=` option, the
/// tty group), as with runc: a process that is not root can then use its own terminal.
pub fn open_pty(
    r: &Resolver,
    root: BorrowedFd<'_>,
    size: Option<tty::WinSize>,
    owner: u32,
) -> Result<(OwnedFd, OwnedFd, u32)> {
    let pts = r
        .open_with(
            root,
            Path::new("/dev/pts"),
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            Resolve::NO_SYMLINKS,
        )
        .op("open /dev/pts (a terminal needs a devpts mount there)")?;
    if !is_fs(pts.as_fd(), DEVPTS_MAGIC)? {
        return Err(Error::Other("/dev/pts is not a devpts filesystem".into()));
    }
    let master = sfd::openat(
        pts.as_fd(),
        Path::new("ptmx"),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
    .op("open /dev/pts/ptmx")?;
    check_char_device(master.as_fd(), 5, 2, Path::new("/dev/pts/ptmx"))?;
    tty::unlockpt(master.as_fd()).op("unlockpt")?;
    let peer = tty::open_peer(master.as_fd()).op("open pty peer")?;
    // u32::MAX (-1): the group stays as it is.
    sfd::fchown(peer.as_fd(), owner, u32::MAX).op("chown pty peer")?;
    if let Some(size) = size {
        tty::set_winsize(peer.as_fd(), size).op("set console size")?;
    }
    let n = tty::pty_number(master.as_fd()).op("pty number")?;
    Ok((master, peer, n))
}

/// Send the pty master to the console socket: one fd in one message, the pty's name as data.
pub fn send_master(sock: BorrowedFd<'_>, master: &OwnedFd, n: u32) -> Result<()> {
    let name = format!("/dev/pts/{n}");
    socket::send_with_fds(sock, name.as_bytes(), &[master.as_raw_fd()])
        .op("send pty master to console socket")
}

/// Allocate the container's pty from its own devpts, bind the peer over /dev/console, and send
/// the master to the console socket. Returns the peer (the process's stdio).
pub fn console(
    plan: &Plan,
    r: &Resolver,
    root: BorrowedFd<'_>,
    sock: BorrowedFd<'_>,
) -> Result<OwnedFd> {
    let (master, peer, n) = open_pty(r, root, plan.process.console_size, plan.process.uid)?;
    // /dev/console must be a plain file we bind over, never a symlink or an existing device
    // node that could be swapped for something else (CVE-2025-52565).
    let console = Path::new("/dev/console");
    let target = match r.open_with(root, console, OFlag::O_PATH, Resolve::NO_SYMLINKS) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => r.ensure(root, console, true)?,
        Err(e) => return Err(Error::os("open", Some(console), e)),
    };
    let st = sfd::fstat(target.as_fd()).op_path("fstat", console)?;
    let kind = st.st_mode & libc::S_IFMT;
    if kind != libc::S_IFREG && kind != libc::S_IFCHR {
        return Err(Error::Other(
            "/dev/console is neither a file nor a device".into(),
        ));
    }
    mount(
        Some(&proc_fd_path(peer.as_fd())),
        &proc_fd_path(target.as_fd()),
        None,
        MsFlags::MS_BIND,
        None,
    )
    .op("bind /dev/console")?;
    send_master(sock, &master, n)?;
    Ok(peer)
}
