//! Unix sockets: `socketpair`, `sendmsg`/`recvmsg` with `SCM_RIGHTS` and `SCM_CREDENTIALS`,
//! `bind`/`listen`/`accept4`/`connect` on path sockets.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::socket::{
    self, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType,
    UnixAddr, UnixCredentials,
};

/// `socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC)`: message boundaries are kept.
pub fn seqpacket_pair() -> nix::Result<(OwnedFd, OwnedFd)> {
    socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
}

/// `socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC)`.
pub fn stream_pair() -> nix::Result<(OwnedFd, OwnedFd)> {
    socket::socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
}

/// `setsockopt(SO_PASSCRED)`: every received message carries its sender's credentials, with
/// the pid translated into our pid namespace.
pub fn set_passcred(fd: BorrowedFd<'_>) -> nix::Result<()> {
    socket::setsockopt(&fd, socket::sockopt::PassCred, &true)
}

/// `sendmsg(2)` one buffer with optional fds (`SCM_RIGHTS`).
pub fn send_with_fds(sock: BorrowedFd<'_>, data: &[u8], fds: &[RawFd]) -> nix::Result<()> {
    let iov = [IoSlice::new(data)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &cmsg };
    loop {
        match socket::sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(n) if n != data.len() => return Err(Errno::EMSGSIZE),
            Ok(_) => return Ok(()),
        }
    }
}

/// One received message: payload length, fds passed with it, sender pid (with `SO_PASSCRED`).
#[derive(Debug)]
pub struct Received {
    /// Bytes written into the buffer; 0 means the peer closed.
    pub len: usize,
    /// Descriptors received with `SCM_RIGHTS`, now owned by us (close-on-exec).
    pub fds: Vec<OwnedFd>,
    /// Sender's pid as seen from our pid namespace.
    pub pid: Option<i32>,
}

/// The most descriptors one message may carry (the kernel's `SCM_MAX_FD`).
pub const MAX_FDS: usize = 253;

/// `recvmsg(2)` into `buf`, collecting fds (up to `MAX_FDS`) and credentials.
pub fn recv_with_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> nix::Result<Received> {
    let mut cmsg_space = nix::cmsg_space!([RawFd; MAX_FDS], UnixCredentials);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = loop {
        match socket::recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg_space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue,
            other => break other?,
        }
    };
    let mut fds = Vec::new();
    let mut pid = None;
    for c in msg.cmsgs()? {
        match c {
            ControlMessageOwned::ScmRights(raw) => {
                for r in raw {
                    // SAFETY: SCM_RIGHTS installed these descriptors in our table for us.
                    fds.push(unsafe { OwnedFd::from_raw_fd(r) });
                }
            }
            ControlMessageOwned::ScmCredentials(cred) => pid = Some(cred.pid()),
            _ => {}
        }
    }
    if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
        return Err(Errno::EMSGSIZE);
    }
    Ok(Received {
        len: msg.bytes,
        fds,
        pid,
    })
}

/// A new, unbound `SOCK_STREAM` unix socket (close-on-exec).
fn unix_stream_socket() -> nix::Result<OwnedFd> {
    socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
}

/// Create a listening `SOCK_STREAM` unix socket bound at `path` (close-on-exec).
pub fn listen_unix(path: &Path) -> nix::Result<OwnedFd> {
    let fd = unix_stream_socket()?;
    let addr = UnixAddr::new(path)?;
    socket::bind(fd.as_raw_fd(), &addr)?;
    socket::listen(
        &fd,
        socket::Backlog::new(4).unwrap_or(socket::Backlog::MAXCONN),
    )?;
    Ok(fd)
}

/// Connect a `SOCK_STREAM` unix socket to `path` (close-on-exec).
pub fn connect_unix(path: &Path) -> nix::Result<OwnedFd> {
    let fd = unix_stream_socket()?;
    let addr = UnixAddr::new(path)?;
    loop {
        match socket::connect(fd.as_raw_fd(), &addr) {
            Err(Errno::EINTR) => continue,
            other => return other.map(|_| fd),
        }
    }
}

/// `accept4(2)` with `SOCK_CLOEXEC`.
pub fn accept(listener: BorrowedFd<'_>) -> nix::Result<OwnedFd> {
    loop {
        match socket::accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
            Err(Errno::EINTR) => continue,
            // SAFETY: accept4 returned a fresh descriptor that we now own.
            other => return other.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
        }
    }
}
