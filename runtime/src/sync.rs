//! The parent ↔ child setup protocol over one `SOCK_SEQPACKET` socketpair (message
//! boundaries for free, EOF when every child end is closed). Messages are small JSON
//! objects. Sequence:
//!
//! ```text
//! stage-1 → parent   UserNsCreated        (only with a new user namespace)
//! parent  → stage-1  MappingsWritten
//! stage-1 → parent   InitPid { pid }      (then stage-1 exits)
//! parent  → init     Proceed { pid }      (init's host pid, for the hooks' state)
//! init    → parent   RunHooks             (only with prestart/createRuntime hooks:
//! parent  → init     HooksDone             the parent runs them, mounts done)
//! init    → parent   Ready                (init then blocks on the exec fifo)
//! any     → parent   Error { message }    (then the sender exits non-zero)
//! ```
//!
//! EOF before `Ready` means a child died without saying why.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};

/// A protocol message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncMessage {
    /// Stage-1 has unshared its user namespace; the parent must write the id maps.
    UserNsCreated,
    /// The parent has written the id maps.
    MappingsWritten,
    /// Stage-1 forked init; `pid` is its pid in the parent's pid namespace.
    InitPid {
        /// Init's host pid.
        pid: i32,
    },
    /// The parent has recorded init; init may set the container up.
    Proceed {
        /// Init's host pid.
        pid: i32,
    },
    /// Init's mounts are done: the parent runs the prestart and createRuntime hooks.
    RunHooks,
    /// The parent's hooks succeeded.
    HooksDone,
    /// Init is set up and about to wait on the exec fifo.
    Ready,
    /// A child failed; `message` names the step and path.
    Error {
        /// The error, rendered.
        message: String,
    },
}

/// Errors on the sync socket.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// socketpair/send/recv failed.
    #[error("sync socket {op}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// The peer closed its end.
    #[error("sync socket: peer closed the connection")]
    Closed,
    /// A message could not be decoded.
    #[error("sync socket: malformed message: {0}")]
    Malformed(serde_json::Error),
    /// A message arrived out of order.
    #[error("sync socket: expected {expected}, got {got:?}")]
    Unexpected {
        /// What the protocol expected.
        expected: &'static str,
        /// What arrived.
        got: SyncMessage,
    },
}

/// One end of the sync socketpair.
#[derive(Debug)]
pub struct SyncSocket(OwnedFd);

/// Creates the socketpair: `(parent end, child end)`, both close-on-exec.
pub fn pair() -> Result<(SyncSocket, SyncSocket), SyncError> {
    let (a, b) = socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| SyncError::Io {
        op: "socketpair",
        source: e.into(),
    })?;
    Ok((SyncSocket(a), SyncSocket(b)))
}

impl SyncSocket {
    /// Sends one message.
    pub fn send(&self, msg: &SyncMessage) -> Result<(), SyncError> {
        let bytes = serde_json::to_vec(msg).map_err(SyncError::Malformed)?;
        loop {
            match socket::send(self.0.as_raw_fd(), &bytes, MsgFlags::MSG_NOSIGNAL) {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    return Err(SyncError::Io {
                        op: "send",
                        source: e.into(),
                    });
                }
            }
        }
    }

    /// Receives one message; [`SyncError::Closed`] on EOF.
    pub fn recv(&self) -> Result<SyncMessage, SyncError> {
        let mut buf = vec![0u8; 64 * 1024];
        let n = loop {
            match socket::recv(self.0.as_raw_fd(), &mut buf, MsgFlags::MSG_CMSG_CLOEXEC) {
                Ok(n) => break n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    return Err(SyncError::Io {
                        op: "recv",
                        source: e.into(),
                    });
                }
            }
        };
        if n == 0 {
            return Err(SyncError::Closed);
        }
        serde_json::from_slice(&buf[..n]).map_err(SyncError::Malformed)
    }

    /// Receives a message and checks it is `expected` (an `Error` message is returned as
    /// `Ok` so the caller can surface the child's own words).
    pub fn expect(
        &self,
        expected: &SyncMessage,
        name: &'static str,
    ) -> Result<SyncMessage, SyncError> {
        let got = self.recv()?;
        if &got == expected || matches!(got, SyncMessage::Error { .. }) {
            Ok(got)
        } else {
            Err(SyncError::Unexpected {
                expected: name,
                got,
            })
        }
    }

    /// Wraps an fd that is one end of a sync socketpair.
    pub fn from_fd(fd: OwnedFd) -> Self {
        Self(fd)
    }

    /// Unwraps the fd.
    pub fn into_fd(self) -> OwnedFd {
        self.0
    }

    /// The raw fd (for logging and fd bookkeeping).
    pub fn as_raw_fd(&self) -> i32 {
        self.0.as_raw_fd()
    }
}

impl AsFd for SyncSocket {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_roundtrip_and_eof() {
        let (a, b) = pair().unwrap();
        b.send(&SyncMessage::InitPid { pid: 42 }).unwrap();
        b.send(&SyncMessage::Error {
            message: "mount /proc: EPERM".into(),
        })
        .unwrap();
        assert_eq!(a.recv().unwrap(), SyncMessage::InitPid { pid: 42 });
        assert!(matches!(
            a.expect(&SyncMessage::Ready, "Ready").unwrap(),
            SyncMessage::Error { .. }
        ));
        drop(b);
        assert!(matches!(a.recv(), Err(SyncError::Closed)));
    }
}
