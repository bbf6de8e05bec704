//! `linux.maskedPaths` and `linux.readonlyPaths`, applied after pivot_root. Missing paths are
//! skipped, like runc.
//!
//! Nothing here trusts a path twice or goes through the container's /proc: each target is
//! resolved inside the root to an `O_PATH` descriptor (no magic links), and the mount that
//! covers it is built detached (`open_tree` / `fsmount`) and attached to that descriptor
//! (`move_mount`). A read-only bind is made read-only *before* it is attached, so it is never
//! visible writable.
//!
//! The `/dev/null` bound over masked files comes from the rootfs, which is hostile: with
//! `/dev/null -> /proc/sys/kernel/core_pattern` a path-based bind would make that file
//! writable at the masked path (CVE-2025-31133). It is opened without following any symlink
//! and must be the null device (character 1:3), else the container is refused.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use anyhow::{Context, Result, bail};
use nix::mount::{MsFlags, mount};
use nix::sys::stat::{fstat, major, minor};
use nix::sys::statvfs::{FsFlags, statvfs};

use super::resolve;
use crate::linux::sys;

/// The container's root after pivot_root, and its verified null device once needed.
pub struct Masker {
    root: OwnedFd,
    null: Option<OwnedFd>,
}

impl Masker {
    pub fn new() -> Result<Masker> {
        let root = File::open("/").context("open the container's root")?.into();
        Ok(Masker { root, null: None })
    }

    /// Hide `path`: an empty read-only tmpfs over a directory, /dev/null over anything else.
    pub fn mask(&mut self, path: &str) -> Result<()> {
        let what = || format!("linux.maskedPaths: {path}");
        let Some(target) = resolve::find(self.root.as_fd(), Path::new(path)).with_context(what)?
        else {
            return Ok(());
        };
        let is_dir = fstat(target.fd.as_raw_fd()).with_context(what)?.st_mode & libc::S_IFMT
            == libc::S_IFDIR;
        let cover = if is_dir {
            sys::new_readonly_tmpfs().context("tmpfs")
        } else {
            let null = self.null_device().with_context(what)?;
            sys::clone_mount(null, false).context("bind /dev/null")
        }
        .with_context(what)?;
        sys::attach_mount(cover.as_fd(), target.fd.as_fd())
            .context("mount")
            .with_context(what)
    }

    /// Make `path` read-only: a recursive bind of it, made read-only while still detached,
    /// attached onto itself.
    pub fn readonly(&self, path: &str) -> Result<()> {
        let what = || format!("linux.readonlyPaths: {path}");
        let Some(target) = resolve::find(self.root.as_fd(), Path::new(path)).with_context(what)?
        else {
            return Ok(());
        };
        let copy = sys::clone_mount(target.fd.as_fd(), true)
            .context("bind")
            .with_context(what)?;
        sys::set_mount_readonly(copy.as_fd(), true)
            .context("make read-only")
            .with_context(what)?;
        sys::attach_mount(copy.as_fd(), target.fd.as_fd())
            .context("mount")
            .with_context(what)
    }

    fn null_device(&mut self) -> Result<BorrowedFd<'_>> {
        if self.null.is_none() {
            self.null = Some(open_null_device(self.root.as_fd())?);
        }
        Ok(self.null.as_ref().expect("set above").as_fd())
    }
}

const NOT_NULL: &str = "/dev/null in the container must be the null device (character 1:3), not a symlink or another file";

fn open_null_device(root: BorrowedFd<'_>) -> Result<OwnedFd> {
    let fd = resolve::open_no_symlinks(root, Path::new("/dev/null")).context(NOT_NULL)?;
    let st = fstat(fd.as_raw_fd()).context(NOT_NULL)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR
        || (major(st.st_rdev), minor(st.st_rdev)) != (1, 3)
    {
        bail!(NOT_NULL);
    }
    Ok(fd)
}

/// Remount the bind mount at `path` read-only, preserving nosuid/nodev/noexec (a remount that
/// drops a locked flag is refused by the kernel).
pub fn remount_readonly(path: &Path) -> Result<()> {
    let st = statvfs(path)?;
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
    ] {
        if st.flags().contains(fs) {
            flags |= ms;
        }
    }
    mount(None::<&str>, path, None::<&str>, flags, None::<&str>)?;
    Ok(())
}
