//! The receiving end of SCM_RIGHTS, as a console socket or a seccomp agent has it.

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};

/// Accept one connection and take the message and the descriptor it carries.
pub fn receive(listener: &UnixListener) -> (Vec<u8>, OwnedFd) {
    let (stream, _) = listener.accept().expect("accept");
    let mut buf = vec![0u8; 64 * 1024];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .expect("recvmsg");
    let len = msg.bytes;
    let mut fd = None;
    for cmsg in msg.cmsgs().expect("control messages") {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            // SAFETY: the kernel just installed this descriptor for us; nobody else owns it.
            fd = Some(unsafe { OwnedFd::from_raw_fd(fds[0]) });
        }
    }
    let fd = fd.expect("a message without a descriptor");
    buf.truncate(len);
    (buf, fd)
}
