//! Terminals: pty master/peer ioctls, controlling terminal, window size, raw mode.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::termios;

use super::check;

/// `ioctl(TIOCSPTLCK, 0)`: unlock the pty so its peer can be opened.
pub fn unlockpt(master: BorrowedFd<'_>) -> nix::Result<()> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from the pointer we pass.
    check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } as libc::c_long)
        .map(drop)
}

/// `ioctl(TIOCGPTPEER)`: open the pty's peer through the master, without resolving a path
/// (so a container cannot swap `/dev/pts/N` for something else).
pub fn open_peer(master: BorrowedFd<'_>) -> nix::Result<OwnedFd> {
    const TIOCGPTPEER: libc::c_ulong = 0x5441;
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes the open flags as an integer and returns a new fd.
    let fd = check(unsafe { libc::ioctl(master.as_raw_fd(), TIOCGPTPEER, flags) } as libc::c_long)?;
    // SAFETY: the kernel just returned this descriptor to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `ioctl(TIOCGPTN)`: the pty's index (`/dev/pts/N`).
pub fn pty_number(master: BorrowedFd<'_>) -> nix::Result<u32> {
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int through the pointer.
    check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) } as libc::c_long)?;
    Ok(n)
}

/// `ioctl(TIOCSCTTY)`: make `fd` our controlling terminal.
pub fn set_controlling_terminal(fd: BorrowedFd<'_>) -> nix::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal).
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) } as libc::c_long).map(drop)
}

pub use crate::spec::WinSize;

/// `ioctl(TIOCSWINSZ)`.
pub fn set_winsize(fd: BorrowedFd<'_>, size: WinSize) -> nix::Result<()> {
    let ws = libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct through the pointer.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) } as libc::c_long).map(drop)
}

/// `ioctl(TIOCGWINSZ)`.
pub fn get_winsize(fd: BorrowedFd<'_>) -> nix::Result<WinSize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize struct through the pointer.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } as libc::c_long)?;
    Ok(WinSize {
        rows: ws.ws_row,
        cols: ws.ws_col,
    })
}

/// `isatty(3)`.
pub fn isatty(fd: BorrowedFd<'_>) -> bool {
    termios::tcgetattr(fd).is_ok()
}

/// The end-of-file character (`VEOF`, normally ^D) and the local mode bits (`c_lflag`) of
/// the terminal `fd` refers to (a pty master answers for its peer's settings).
pub fn eof_char_and_mode(fd: BorrowedFd<'_>) -> nix::Result<(u8, u64)> {
    let t = termios::tcgetattr(fd)?;
    let eof = t.control_chars[termios::SpecialCharacterIndices::VEOF as usize];
    Ok((eof, t.local_flags.bits() as u64))
}

/// Put a terminal in raw mode; returns the previous settings for [`restore`].
pub fn make_raw(fd: BorrowedFd<'_>) -> nix::Result<termios::Termios> {
    let old = termios::tcgetattr(fd)?;
    let mut raw = old.clone();
    termios::cfmakeraw(&mut raw);
    termios::tcsetattr(fd, termios::SetArg::TCSANOW, &raw)?;
    Ok(old)
}

/// Restore terminal settings saved by [`make_raw`].
pub fn restore(fd: BorrowedFd<'_>, saved: &termios::Termios) -> nix::Result<()> {
    termios::tcsetattr(fd, termios::SetArg::TCSANOW, saved)
}
