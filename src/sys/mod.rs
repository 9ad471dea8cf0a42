//! The only place with `unsafe`: thin, typed wrappers named after the system call they make.
//!
//! Wrappers take `BorrowedFd`/`OwnedFd`, `&CStr`/`&Path` and bitflags, return `nix::Result`, and
//! do nothing beyond the call itself. Anything that is sound only in a single-threaded process
//! is an `unsafe fn` that says so. sealrun never starts a thread before it forks.
#![allow(unsafe_code)]

pub mod bpf;
pub mod fd;
pub mod fsmount;
pub mod memfd;
pub mod mount;
pub mod process;
pub mod seccomp;
pub mod socket;
pub mod spawn;
pub mod tty;

pub use nix::errno::Errno;

/// Turn a `-1`-on-error libc return value into a `nix::Result`.
fn check(ret: libc::c_long) -> nix::Result<libc::c_long> {
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}
