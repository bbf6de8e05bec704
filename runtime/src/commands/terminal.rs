//! A foreground `run` or `exec` with `process.terminal` and no `--console-socket`: like runc,
//! this terminal becomes the container's. The pty master comes over an internal socket pair
//! (the same path a console socket takes), this terminal is put in raw mode, bytes are copied
//! both ways, its window size follows SIGWINCH, the other forwarded signals go to the
//! process, and the terminal is restored however the wait ends (a guard's drop).

use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use anyhow::{Context, Result, bail};
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, isatty};

use crate::linux::sys;

/// An internal console socket: (ours, the one handed to create/exec as the console socket).
pub fn console_pair() -> Result<(UnixStream, UnixStream)> {
    UnixStream::pair().context("socketpair for the console")
}

/// The pty master the runtime sent over `ours`.
pub fn receive_master(ours: &UnixStream) -> Result<OwnedFd> {
    let mut buf = [0u8; 256];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        ours.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .context("receive the pty master")?;
    for c in msg.cmsgs().context("console message")? {
        if let ControlMessageOwned::ScmRights(fds) = c
            && let Some(fd) = fds.first()
        {
            return Ok(sys::own_fd(*fd));
        }
    }
    bail!("the container sent no pty master")
}

/// This terminal, raw while the container has it.
struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    fn enter() -> Result<RawMode> {
        let stdin = std::io::stdin();
        if !isatty(stdin.as_raw_fd()).unwrap_or(false) {
            return Ok(RawMode { saved: None });
        }
        let saved = tcgetattr(stdin.as_fd()).context("tcgetattr")?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).context("tcsetattr raw")?;
        Ok(RawMode { saved: Some(saved) })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, saved);
        }
    }
}

/// The pty gets this terminal's size.
fn copy_window_size(master: BorrowedFd<'_>) {
    if let Some((rows, cols)) = sys::window_size(std::io::stdin().as_raw_fd()) {
        let _ = sys::set_window_size(master.as_raw_fd(), rows, cols);
    }
}

/// Copy between this terminal and `master` until `pid` exits; its exit code (128+N for
/// signal N). `set` is the blocked set of `foreground::block_signals`.
pub fn bridge(master: OwnedFd, pid: Pid, set: &SigSet) -> Result<i32> {
    let _raw = RawMode::enter()?;
    copy_window_size(master.as_fd());
    let flags = OFlag::from_bits_truncate(fcntl(master.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(
        master.as_raw_fd(),
        FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK),
    )?;
    let signals = SignalFd::new(set).context("signalfd")?;
    let mut master_file = std::fs::File::from(master);
    let mut stdin_open = true;
    let mut master_open = true;
    let mut exit: Option<i32> = None;
    let mut buf = [0u8; 8192];
    loop {
        if let Some(code) = exit
            && !master_open
        {
            return Ok(code);
        }
        let stdin = std::io::stdin();
        let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        if master_open {
            fds.push(PollFd::new(master_file.as_fd(), PollFlags::POLLIN));
        }
        if stdin_open && exit.is_none() {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        // Once the process is gone, what is left in the pty is drained briefly.
        let timeout = if exit.is_some() {
            PollTimeout::from(100u16)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Ok(0) => master_open = false,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context("poll"),
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty())
        };
        let (sig_ready, master_ready) = (ready(0), master_open && ready(1));
        let stdin_ready = stdin_open && exit.is_none() && ready(if master_open { 2 } else { 1 });
        drop(fds);
        if sig_ready && let Some(info) = signals.read_signal().context("read signalfd")? {
            let signo = info.ssi_signo as i32;
            if signo == Signal::SIGCHLD as i32 {
                match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(_, code)) => exit = Some(code),
                    Ok(WaitStatus::Signaled(_, s, _)) => exit = Some(128 + s as i32),
                    _ => {}
                }
            } else if signo == Signal::SIGWINCH as i32 {
                copy_window_size(master_file.as_fd());
            } else {
                let _ = sys::send_signal(pid, signo);
            }
        }
        if master_ready {
            match master_file.read(&mut buf) {
                Ok(0) => master_open = false,
                Ok(n) => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&buf[..n])?;
                    out.flush()?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                // EIO: every holder of the slave closed it.
                Err(_) => master_open = false,
            }
        }
        if stdin_ready {
            match std::io::stdin().lock().read(&mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => master_file.write_all(&buf[..n])?,
            }
        }
    }
}
