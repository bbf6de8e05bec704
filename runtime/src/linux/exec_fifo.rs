//! runc's exec fifo, the init's side: `create` leaves the init blocked opening
//! `<root>/<id>/exec.fifo` for writing; `start` opens it for reading, and the init answers
//! "0" (going) or why it gives up, then execs. The init holds the fifo as an `O_PATH`
//! descriptor and reopens it through the container's /proc after pivot_root, so every
//! reopen is checked to yield that very fifo.

use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use nix::fcntl::{OFlag, open};
use nix::sys::stat::{Mode, fstat};

use crate::linux::sys;

fn fifo_path(fd: RawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{fd}"))
}

/// The fifo is reopened through /proc after pivot_root; fail in `create` if that cannot work,
/// or if the container's /proc would hand back something else than our fifo.
pub fn check_reachable(fd: RawFd) -> Result<()> {
    let reopened = open(
        &fifo_path(fd),
        OFlag::O_PATH | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(sys::own_fd)
    .map_err(|_| {
        anyhow::anyhow!(
            "the exec fifo is reopened via /proc/self/fd: the container needs a proc mount at /proc"
        )
    })?;
    same_file(fd, reopened.as_raw_fd())
}

fn same_file(want: RawFd, got: RawFd) -> Result<()> {
    let (a, b) = (fstat(want)?, fstat(got)?);
    if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino) {
        bail!(
            "/proc/self/fd/{want} in the container is not the exec fifo: /proc is not the container's procfs"
        );
    }
    Ok(())
}

/// Block until `start` opens the fifo for reading (runc's protocol). The reopen goes through
/// the container's /proc: it must yield our fifo and nothing else the rootfs could have put
/// at that path.
pub fn open_for_start(fd: RawFd) -> Result<std::fs::File> {
    let w = open(
        &fifo_path(fd),
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .context("open exec fifo")?;
    let w = sys::own_fd(w);
    same_file(fd, w.as_raw_fd())?;
    Ok(std::fs::File::from(w))
}

/// Tell `start` we are going ("0"), or why not (the text of `outcome`'s error).
pub fn report(mut fifo: std::fs::File, outcome: Result<()>) -> Result<()> {
    let mut message = match &outcome {
        Ok(()) => "0".to_string(),
        Err(e) => format!("{e:#}"),
    };
    // One write below PIPE_BUF arrives whole.
    let mut end = message.len().min(3072);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message.truncate(end);
    fifo.write_all(message.as_bytes())
        .context("write exec fifo")?;
    outcome
}
