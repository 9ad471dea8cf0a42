//! Typed parent↔child messages over a `SOCK_SEQPACKET` socketpair: a fixed binary layout (one
//! message per packet), fds passed with `SCM_RIGHTS`, and the sender's pid from
//! `SCM_CREDENTIALS` on the parent's end.
//!
//! Layout: `tag:u8 step:u8 reserved:u16 errno:i32 value:i64 text:[u8]`.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use crate::error::{Error, Result, Step};
use crate::sys::socket;

/// Largest message (the text of a failure is truncated to fit).
const MAX: usize = 4096;
const HEADER: usize = 16;

/// A message between the runtime (parent) and the container's init (child).
#[derive(Debug, PartialEq, Eq)]
pub enum Msg {
    /// Parent → child: id maps written and cgroups joined; `pid` is the child's host pid.
    Go {
        /// The child's pid as the runtime sees it.
        pid: i32,
    },
    /// Second-stage child → parent: "I exist" (the parent learns the pid from credentials).
    Hello,
    /// First-stage child → parent: I made a user namespace, write my id maps.
    MapsPlease,
    /// Parent → child: maps written.
    MapsDone,
    /// Child → parent: run the prestart and createRuntime hooks now.
    RunHooks,
    /// Parent → child: hooks done.
    HooksDone,
    /// Child → parent: the seccomp user-notification listener (fd attached).
    SeccompListener,
    /// Parent → child: the listener was handed to `listenerPath`.
    SeccompListenerSent,
    /// Child → parent: set up and blocked, waiting for start.
    Ready,
    /// Parent → child: state is written; the init may outlive the runtime now.
    Committed,
    /// Child in a user namespace → parent: open my bind-mount sources for me.
    MountSourcesPlease,
    /// Parent → child: the source of `mounts[index]`, opened `O_PATH` in the child's mount
    /// namespace (fd attached).
    MountSource {
        /// Index in the config's `mounts`.
        index: i32,
    },
    /// Parent → child: no more mount sources.
    MountSourcesDone,
    /// Child → parent: what it enforced on itself, read back (JSON of
    /// [`crate::audit::Enforced`]), sent once it is confined.
    Enforced {
        /// The report.
        report: String,
    },
    /// Child → parent: setup failed.
    Failed {
        /// Where.
        step: Step,
        /// errno (0 if none).
        errno: i32,
        /// Why.
        message: String,
    },
}

impl Msg {
    fn tag(&self) -> u8 {
        match self {
            Msg::Go { .. } => 1,
            Msg::Hello => 2,
            Msg::MapsPlease => 3,
            Msg::MapsDone => 4,
            Msg::RunHooks => 5,
            Msg::HooksDone => 6,
            Msg::SeccompListener => 7,
            Msg::SeccompListenerSent => 8,
            Msg::Ready => 9,
            Msg::Committed => 10,
            Msg::Failed { .. } => 11,
            Msg::MountSourcesPlease => 12,
            Msg::MountSource { .. } => 13,
            Msg::MountSourcesDone => 14,
            Msg::Enforced { .. } => 15,
        }
    }

    /// Encode into the fixed layout.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = vec![0u8; HEADER];
        buf[0] = self.tag();
        match self {
            Msg::Go { pid } => buf[8..16].copy_from_slice(&(*pid as i64).to_le_bytes()),
            Msg::MountSource { index } => {
                buf[8..16].copy_from_slice(&(*index as i64).to_le_bytes())
            }
            Msg::Failed {
                step,
                errno,
                message,
            } => {
                buf[1] = *step as u8;
                buf[4..8].copy_from_slice(&errno.to_le_bytes());
                push_text(&mut buf, message);
            }
            Msg::Enforced { report } => push_text(&mut buf, report),
            _ => {}
        }
        buf
    }

    /// Decode one packet.
    pub fn decode(buf: &[u8]) -> Result<Msg> {
        if buf.len() < HEADER {
            return Err(Error::Other(format!(
                "sync: short message ({} bytes)",
                buf.len()
            )));
        }
        let errno = i32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let mut v = [0u8; 8];
        v.copy_from_slice(&buf[8..16]);
        let value = i64::from_le_bytes(v);
        Ok(match buf[0] {
            1 => Msg::Go { pid: value as i32 },
            2 => Msg::Hello,
            3 => Msg::MapsPlease,
            4 => Msg::MapsDone,
            5 => Msg::RunHooks,
            6 => Msg::HooksDone,
            7 => Msg::SeccompListener,
            8 => Msg::SeccompListenerSent,
            9 => Msg::Ready,
            10 => Msg::Committed,
            11 => Msg::Failed {
                step: Step::from_u8(buf[1])
                    .ok_or_else(|| Error::Other(format!("sync: bad step {}", buf[1])))?,
                errno,
                message: String::from_utf8_lossy(&buf[HEADER..]).into_owned(),
            },
            12 => Msg::MountSourcesPlease,
            13 => Msg::MountSource {
                index: value as i32,
            },
            14 => Msg::MountSourcesDone,
            15 => Msg::Enforced {
                report: String::from_utf8_lossy(&buf[HEADER..]).into_owned(),
            },
            t => return Err(Error::Other(format!("sync: unknown message tag {t}"))),
        })
    }
}

/// Append `text`, truncated on a character boundary to fit one packet.
fn push_text(buf: &mut Vec<u8>, text: &str) {
    let mut n = text.len().min(MAX - HEADER);
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    buf.extend_from_slice(&text.as_bytes()[..n]);
}

/// A received message with what came along with it.
#[derive(Debug)]
pub struct Incoming {
    /// The message; `None` when the peer closed the channel.
    pub msg: Option<Msg>,
    /// Passed descriptors.
    pub fds: Vec<OwnedFd>,
    /// Sender pid in our pid namespace (parent end only).
    pub pid: Option<i32>,
}

/// One end of the channel.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

impl Channel {
    /// A connected pair: `(parent end, child end)`. The parent end receives credentials.
    pub fn pair() -> Result<(Channel, Channel)> {
        use crate::error::Context;
        let (a, b) = socket::seqpacket_pair().op("socketpair")?;
        socket::set_passcred(a.as_fd()).op("setsockopt SO_PASSCRED")?;
        Ok((Channel { fd: a }, Channel { fd: b }))
    }

    /// Send a message, with optional fds.
    pub fn send_with(&self, msg: &Msg, fds: &[BorrowedFd<'_>]) -> Result<()> {
        let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
        socket::send_with_fds(self.fd.as_fd(), &msg.encode(), &raw)
            .map_err(|e| Error::os("sync: send", None, e))
    }

    /// Send a message.
    pub fn send(&self, msg: &Msg) -> Result<()> {
        self.send_with(msg, &[])
    }

    /// Receive one message (blocking).
    pub fn recv(&self) -> Result<Incoming> {
        let mut buf = [0u8; MAX];
        let r = socket::recv_with_fds(self.fd.as_fd(), &mut buf)
            .map_err(|e| Error::os("sync: receive", None, e))?;
        let msg = if r.len == 0 {
            None
        } else {
            Some(Msg::decode(&buf[..r.len])?)
        };
        Ok(Incoming {
            msg,
            fds: r.fds,
            pid: r.pid,
        })
    }

    /// Receive and insist on one specific message.
    pub fn expect(&self, want: &Msg) -> Result<()> {
        match self.recv()?.msg {
            Some(ref m) if m == want => Ok(()),
            Some(m) => Err(Error::Other(format!("sync: expected {want:?}, got {m:?}"))),
            None => Err(Error::Other(format!(
                "sync: channel closed, expected {want:?}"
            ))),
        }
    }

    /// The raw descriptor (to keep it out of the close-on-exec sweep's preserved range).
    pub fn raw(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// Borrow the descriptor (for `poll`).
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let msgs = [
            Msg::Go { pid: 4242 },
            Msg::Ready,
            Msg::MountSourcesPlease,
            Msg::MountSource { index: 17 },
            Msg::MountSourcesDone,
            Msg::Enforced {
                report: "{\"seccomp_filters\":1}".into(),
            },
            Msg::Failed {
                step: Step::PivotRoot,
                errno: 22,
                message: "pivot_root: invalid argument".into(),
            },
        ];
        for m in msgs {
            assert_eq!(Msg::decode(&m.encode()).unwrap(), m);
        }
    }

    #[test]
    fn long_failure_text_is_truncated_on_a_char_boundary() {
        let m = Msg::Failed {
            step: Step::Rootfs,
            errno: 0,
            message: "é".repeat(5000),
        };
        let enc = m.encode();
        assert!(enc.len() <= MAX);
        assert!(matches!(Msg::decode(&enc).unwrap(), Msg::Failed { .. }));
    }

    #[test]
    fn channel_carries_messages_and_sender_pid() {
        let (parent, child) = Channel::pair().unwrap();
        child.send(&Msg::Hello).unwrap();
        let got = parent.recv().unwrap();
        assert_eq!(got.msg, Some(Msg::Hello));
        assert_eq!(got.pid, Some(std::process::id() as i32));
        drop(child);
        assert!(parent.recv().unwrap().msg.is_none());
    }
}
