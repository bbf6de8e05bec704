//! Which descriptors a process in the container may hold (CVE-2024-21626 and its family).
//!
//! The init is a clone of the runtime, so it starts with every descriptor the runtime had:
//! the cgroup directory it was cloned into, namespace files, the log file, whatever the
//! caller passed without `CLOEXEC`. Any of them that names a directory is a way out of the
//! rootfs once the container's own paths are looked up (`/proc/self/fd/N/../..` as
//! `process.args[0]` or `process.cwd`), and `CLOEXEC` does not help there: the lookups happen
//! in this process, before `execve`. So the init *closes* everything it does not need before
//! the first lookup inside the rootfs, and again right before resolving the cwd and the
//! program (dropping anything setup opened in between).

use std::os::fd::RawFd;

use anyhow::{Context, Result};
use nix::fcntl::{FcntlArg, FdFlag, fcntl};

use crate::linux::sys;

/// Descriptors the init keeps: stdio, the caller's `--preserve-fds`, and its own `extra`
/// (the channel to the parent, the exec fifo).
pub struct Keep {
    fds: Vec<RawFd>,
}

impl Keep {
    pub fn new(preserve_fds: u32, extra: &[RawFd]) -> Keep {
        let mut fds: Vec<RawFd> = (0..3 + preserve_fds as RawFd).collect();
        fds.extend_from_slice(extra);
        fds.sort_unstable();
        fds.dedup();
        Keep { fds }
    }

    /// Close every descriptor not in the set (one `close_range` per gap).
    pub fn close_others(&self) -> Result<()> {
        let mut next = 0;
        for &fd in &self.fds {
            sys::close_range(next, fd - 1).context("close_range")?;
            next = fd + 1;
        }
        sys::close_range(next, RawFd::MAX).context("close_range")
    }
}

/// Right before `execve`: the preserved descriptors must survive it (clear `CLOEXEC` on them),
/// everything above them must not (the channel, the exec fifo).
pub fn cloexec_beyond_preserved(preserve: u32) -> Result<()> {
    let first = 3 + preserve as RawFd;
    for fd in 3..first {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty()))
            .with_context(|| format!("--preserve-fds: descriptor {fd}"))?;
    }
    sys::cloexec_from(first).context("close_range")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_set_is_stdio_preserved_and_extra_sorted() {
        let k = Keep::new(2, &[9, 5, 4]);
        assert_eq!(k.fds, vec![0, 1, 2, 3, 4, 5, 9]);
    }
}
