//! `process.terminal`: a pty from the container's own devpts, its slave as the process's
//! stdio and controlling terminal, its master handed to the parent (and from there to the
//! caller's --console-socket, like runc).

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use anyhow::{Context, Result};
use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, unlockpt};
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use nix::unistd::{dup2, setsid};

use crate::linux::sys;

/// Inside the container (after pivot_root): open a pty, make its slave our stdio and
/// controlling terminal, return the master.
///
/// `/dev/ptmx` is the container's (a symlink the runtime made to its devpts); the slave is
/// taken from the master itself (`TIOCGPTPEER`), which also fails unless the master really is
/// a pty, so no path in the container's /dev/pts is trusted.
pub fn open_console(size: Option<(u16, u16)>) -> Result<OwnedFd> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .context("open /dev/ptmx")?;
    grantpt(&master).context("grantpt")?;
    unlockpt(&master).context("unlockpt")?;
    let slave = sys::open_pty_peer(master.as_fd()).context("open the pty slave (TIOCGPTPEER)")?;
    if let Some((rows, cols)) = size {
        sys::set_window_size(slave.as_raw_fd(), rows, cols).context("set console size")?;
    }
    setsid().context("setsid")?;
    sys::set_controlling_terminal(slave.as_raw_fd()).context("TIOCSCTTY")?;
    for target in 0..3 {
        dup2(slave.as_raw_fd(), target).context("dup2 pty slave to stdio")?;
    }
    Ok(sys::own_fd(master.into_raw_fd()))
}

/// In the parent: pass the pty master to the caller's console socket (SCM_RIGHTS, with the
/// name runc sends as payload).
pub fn send_to_console_socket(socket: &UnixStream, master: &OwnedFd) -> Result<()> {
    let name = b"/dev/ptmx";
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &[IoSlice::new(name)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .context("send the pty master to --console-socket")?;
    Ok(())
}
