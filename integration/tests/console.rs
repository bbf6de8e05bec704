//! `create --console-socket`: with `process.terminal`, the runtime hands the pty master to the
//! socket over SCM_RIGHTS (what conmon and containerd's shim expect), and the container's
//! stdio is that terminal.

use std::io::{IoSliceMut, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::sync::mpsc;
use std::time::Duration;

use integration::busybox::Bundle;
use integration::runtime::Container;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};

/// Accept one connection and take the descriptor it carries.
fn receive_fd(listener: &UnixListener) -> OwnedFd {
    let (stream, _) = listener.accept().expect("accept on the console socket");
    let mut buf = [0u8; 512];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .expect("recvmsg");
    for cmsg in msg.cmsgs().expect("control messages") {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            // SAFETY: the kernel just installed this descriptor for us; nobody else owns it.
            return unsafe { OwnedFd::from_raw_fd(fds[0]) };
        }
    }
    panic!("the console socket got a message without a descriptor");
}

#[test]
fn console_socket_receives_the_pty_master() {
    let mut b = Bundle::new().expect("bundle");
    b.sh("tty; echo hello-from-the-tty").terminal(true);
    let mut c = Container::new("console", &b);
    let sock = c.scratch().join("console.sock");
    let listener = UnixListener::bind(&sock).expect("bind the console socket");
    let receiver = std::thread::spawn(move || receive_fd(&listener));
    c.create_with(&["--console-socket", sock.to_str().unwrap()])
        .ok();
    let master = receiver.join().expect("console receiver");
    assert_eq!(c.status(), "created");

    // Read the terminal until the container's side closes (EIO), bounded in time.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut f = std::fs::File::from(master);
        let (mut out, mut buf) = (Vec::new(), [0u8; 4096]);
        while let Ok(n @ 1..) = f.read(&mut buf) {
            out.extend_from_slice(&buf[..n]);
        }
        let _ = tx.send(String::from_utf8_lossy(&out).into_owned());
    });
    c.start().ok();
    let text = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the terminal never closed");
    assert!(text.contains("/dev/pts/"), "stdin is not a pty: {text:?}");
    assert!(text.contains("hello-from-the-tty"), "{text:?}");
    c.wait_stopped();
    c.delete().ok();
    c.assert_no_leftovers();
}
