//! `start ID`: release a created container's init by opening its exec fifo (runc's protocol).

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;

use anyhow::{Context, Result, bail};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::cli::{Global, IdArg};
use crate::container::Container;
use crate::container::status::Status;
use crate::linux::hooks::{self, Phase};

pub fn run(g: &Global, a: &IdArg) -> Result<()> {
    super::naming(
        &a.id,
        Container::lock(&g.root, &a.id).and_then(|c| start(&c)),
    )
}

pub fn start(c: &Container) -> Result<()> {
    match c.status() {
        Status::Created => {}
        Status::Stopped => bail!("cannot start a container that has stopped"),
        Status::Running => bail!("cannot start an already running container"),
        Status::Paused => bail!("cannot start a container in the paused state"),
        Status::Creating => bail!("cannot start a container that is still being created"),
    }
    let path = c.exec_fifo();
    // Non-blocking open: a blocking one would hang forever if the init died meanwhile.
    let mut fifo = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    // Gone from now on: the container counts as running even before the init's byte arrives.
    std::fs::remove_file(&path).with_context(|| format!("remove {}", path.display()))?;
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => {}
            Ok(_) => {
                // "0", or the reason the init gives up (a failed startContainer hook).
                let mut b = [0u8; 4096];
                match fifo.read(&mut b) {
                    Ok(1) if b[0] == b'0' => {
                        crate::log::debug(format_args!("container {} started", c.state.id));
                        if hooks::any(c.state.hooks.as_ref(), Phase::Poststart) {
                            // poststart follows the program's execve: the init's end of the
                            // fifo is close-on-exec, so end-of-file says it happened.
                            wait_for_eof(&fifo)?;
                            hooks::run_recorded(Phase::Poststart, &c.state);
                        }
                        return Ok(());
                    }
                    Ok(0) => bail!("the container init exited before it could start"),
                    Ok(n) => bail!("{}", String::from_utf8_lossy(&b[..n])),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e).context("read exec fifo"),
                }
            }
            Err(e) => return Err(e).context("poll exec fifo"),
        }
        if c.status() == Status::Stopped {
            bail!("the container init exited before it could start");
        }
    }
}

/// Block until every writer of the fifo is gone.
fn wait_for_eof(mut fifo: &std::fs::File) -> Result<()> {
    let mut b = [0u8; 64];
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("poll exec fifo"),
        }
        match fifo.read(&mut b) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e).context("read exec fifo"),
        }
    }
}
