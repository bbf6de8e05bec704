//! The one typed channel between the runtime (parent) and the container init (child).
//!
//! A `SOCK_SEQPACKET` socketpair: every `send` is one message (no framing needed), each a small
//! serde_json document, optionally carrying file descriptors via `SCM_RIGHTS`. A closed peer
//! reads as end-of-file, which is how the parent notices an init that died without a word.
//!
//! The conversation today:
//! ```text
//! parent                                   child (init)
//!   clone3 into the cgroup ------------->  joins its v1 cgroups itself, waits
//!   state.json "creating" (pid recorded)
//!   Continue ---------------------------->  namespaces, hostname, rootfs mounts
//!            <----------------------------  RunHooks (only with prestart/createRuntime hooks)
//!   runs them, Continue ----------------->  createContainer hooks, pivot_root, ...
//!            <----------------------------  ConsoleMaster + fd  (only with --console-socket)
//!            <----------------------------  Ready | Error{step,message}
//!   returns                                 blocks opening exec.fifo, then execve
//! ```
//! Later phases slot in as new variants without changing the shape: the child asks the parent
//! to write uid/gid maps (`MapIds` -> `Continue`), to run createRuntime hooks, or hands over a
//! seccomp notify fd, exactly like `ConsoleMaster` hands over the pty.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use anyhow::{Context, Result, bail};
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, socketpair,
};
use serde::{Deserialize, Serialize};

/// Every message either side may send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// Parent -> child: the child is in its cgroup (and, later, its id maps are written): go on.
    Continue,
    /// Intermediate -> parent: the init it cloned into the user namespace given by path.
    InitPid { pid: i32 },
    /// Child -> parent: the rootfs is mounted; run the prestart and createRuntime hooks, then
    /// answer `Continue`.
    RunHooks,
    /// Child -> parent: the seccomp notification descriptor; the parent passes it to
    /// `linux.seccomp.listenerPath`.
    SeccompListener,
    /// Child -> parent: the pty master is attached; the parent passes it to --console-socket.
    ConsoleMaster,
    /// Child -> parent: every init step succeeded; the child now blocks on the exec fifo.
    Ready,
    /// Child -> parent: the named init step failed; the parent reports it and cleans up.
    Error { step: String, message: String },
}

const MAX_MESSAGE: usize = 8 * 1024;
const MAX_FDS: usize = 4;

/// One end of the channel.
pub struct Channel {
    fd: OwnedFd,
}

/// Create both ends (close-on-exec: neither may leak into the container process).
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context("socketpair for the init channel")?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn send(&self, msg: &Message) -> Result<()> {
        self.send_with_fds(msg, &[])
    }

    pub fn send_with_fds(&self, msg: &Message, fds: &[RawFd]) -> Result<()> {
        let body = serde_json::to_vec(msg).expect("messages always serialize");
        let iov = [IoSlice::new(&body)];
        let cmsgs = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsgs };
        sendmsg::<()>(
            self.fd.as_raw_fd(),
            &iov,
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .context("sending on the init channel")?;
        Ok(())
    }

    /// Receive one message and the descriptors attached to it; `None` when the peer is gone.
    pub fn recv(&self) -> Result<Option<(Message, Vec<OwnedFd>)>> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let mut cmsg_buf = nix::cmsg_space!([RawFd; MAX_FDS]);
        let (len, fds) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = loop {
                match recvmsg::<()>(
                    self.fd.as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg_buf),
                    MsgFlags::MSG_CMSG_CLOEXEC,
                ) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    other => break other.context("receiving on the init channel")?,
                }
            };
            let mut fds = Vec::new();
            for c in msg.cmsgs().context("init channel control message")? {
                if let ControlMessageOwned::ScmRights(raw) = c {
                    fds.extend(raw.into_iter().map(owned));
                }
            }
            (msg.bytes, fds)
        };
        if len == 0 {
            return Ok(None);
        }
        let msg: Message = serde_json::from_slice(&buf[..len]).with_context(|| {
            format!(
                "malformed init channel message: {:?}",
                String::from_utf8_lossy(&buf[..len])
            )
        })?;
        Ok(Some((msg, fds)))
    }

    /// Receive and insist on one specific message (used where the protocol allows nothing else).
    pub fn expect(&self, want: &Message) -> Result<()> {
        match self.recv()? {
            Some((m, _)) if &m == want => Ok(()),
            Some((m, _)) => bail!("init channel: expected {want:?}, got {m:?}"),
            None => bail!("init channel: peer closed before {want:?}"),
        }
    }
}

/// The kernel installed `fd` in our table during recvmsg; nothing else refers to it.
fn owned(fd: RawFd) -> OwnedFd {
    crate::linux::sys::own_fd(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_roundtrip_with_fds() {
        let (a, b) = pair().unwrap();
        a.send(&Message::Continue).unwrap();
        let (m, fds) = b.recv().unwrap().unwrap();
        assert_eq!(m, Message::Continue);
        assert!(fds.is_empty());

        let file = std::fs::File::open("/proc/self/status").unwrap();
        b.send_with_fds(&Message::ConsoleMaster, &[file.as_raw_fd()])
            .unwrap();
        let (m, fds) = a.recv().unwrap().unwrap();
        assert_eq!(m, Message::ConsoleMaster);
        assert_eq!(fds.len(), 1);

        let err = Message::Error {
            step: "mount".into(),
            message: "boom".into(),
        };
        b.send(&err).unwrap();
        assert_eq!(a.recv().unwrap().unwrap().0, err);
        drop(b);
        assert!(a.recv().unwrap().is_none());
    }

    #[test]
    fn wire_format_is_tagged_json() {
        let s = serde_json::to_string(&Message::Error {
            step: "s".into(),
            message: "m".into(),
        })
        .unwrap();
        assert_eq!(s, r#"{"type":"error","step":"s","message":"m"}"#);
    }
}
