//! `process.terminal`: a pty from the container's own devpts, its slave as the process's
//! stdio and controlling terminal, its master handed to the parent (and from there to the
//! caller's --console-socket, like runc).

use std::io::IoSlice;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use anyhow::{Context, Result};
use nix::fcntl::{OFlag, open};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use nix::sys::stat::Mode;
use nix::unistd::{dup2, setsid};

use crate::linux::sys;

/// Inside the container (after pivot_root): open a pty, make its slave our stdio and
/// controlling terminal, return the master.
pub fn open_console(size: Option<(u16, u16)>) -> Result<OwnedFd> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .context("open /dev/ptmx")?;
    grantpt(&master).context("grantpt")?;
    unlockpt(&master).context("unlockpt")?;
    let name = ptsname_r(&master).context("ptsname")?;
    let slave = open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("open {name}"))?;
    let slave = sys::own_fd(slave);
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
