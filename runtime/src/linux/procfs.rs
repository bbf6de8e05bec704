//! What the runtime reads about processes from /proc: liveness and start time (to tell our
//! init from an unrelated process that got the same pid later).

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use anyhow::{Context, Result, bail};
use nix::sys::statfs::{PROC_SUPER_MAGIC, fstatfs};
use nix::unistd::Pid;

use crate::linux::sys;

/// After pivot_root: the container's `/proc/<rel>` directory, reached from `/` without any
/// symlink and checked to be procfs, so the rootfs cannot point the runtime's writes (sysctls,
/// LSM labels) at a file of its choosing (CVE-2019-16884, CVE-2025-52881).
pub fn open_container_proc(rel: &str) -> Result<OwnedFd> {
    let shown = format!("/proc/{rel}");
    let root = File::open("/").context("open /")?;
    let dir = sys::openat2(
        root.as_fd(),
        &Path::new("proc").join(rel),
        libc::O_PATH | libc::O_DIRECTORY,
        libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
    )
    .with_context(|| format!("open {shown} (symlinks refused)"))?;
    let fs = fstatfs(&dir).with_context(|| format!("statfs {shown}"))?;
    if fs.filesystem_type() != PROC_SUPER_MAGIC {
        bail!("{shown} in the container is not procfs: mount proc at /proc");
    }
    Ok(dir)
}

/// Opens `rel` below an [`open_container_proc`] directory for writing, staying on that procfs
/// and following no link of any kind: the file written is the one named.
pub fn open_for_write(proc_dir: &OwnedFd, rel: &Path) -> std::io::Result<OwnedFd> {
    sys::openat2(
        proc_dir.as_fd(),
        rel,
        libc::O_WRONLY,
        libc::RESOLVE_BENEATH
            | libc::RESOLVE_NO_SYMLINKS
            | libc::RESOLVE_NO_MAGICLINKS
            | libc::RESOLVE_NO_XDEV,
    )
}

/// The fields of /proc/<pid>/stat the runtime needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// `R`, `S`, `Z`...
    pub state: char,
    /// Field 22: clock ticks after boot when the process started.
    pub start_time: u64,
}

impl ProcStat {
    /// A zombie or dead task is not running anything any more.
    pub fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Read /proc/<pid>/stat; `None` if the process does not exist.
pub fn stat(pid: Pid) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw())).ok()?;
    parse_stat(&text)
}

/// Parse a stat line. `comm` may contain spaces and parentheses, so fields are counted from
/// the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // After the state (field 3) comes field 4; start_time is field 22 -> 18 further on.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(ProcStat { state, start_time })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tricky_comm() {
        let line = "1234 (a) b (c) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                state: 'S',
                start_time: 987654
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn reads_our_own_process() {
        let me = stat(nix::unistd::getpid()).unwrap();
        assert!(!me.is_dead());
        assert!(me.start_time > 0);
    }
}
