//! `linux.maskedPaths` and `linux.readonlyPaths`, applied after pivot_root (so `/` is the
//! container's root and no path can lead outside it). Missing paths are skipped, like runc.

use std::path::Path;

use anyhow::{Context, Result};
use nix::mount::{MsFlags, mount};
use nix::sys::statvfs::{FsFlags, statvfs};

/// Hide `path`: an empty read-only tmpfs over a directory, /dev/null over anything else.
pub fn mask(path: &str) -> Result<()> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("maskedPaths {path}")),
    };
    if meta.is_dir() {
        mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
    } else {
        mount(
            Some("/dev/null"),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    }
    .with_context(|| format!("maskedPaths {path}"))
}

/// Make `path` read-only: bind it onto itself, then remount read-only keeping its other flags.
pub fn readonly(path: &str) -> Result<()> {
    match mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    ) {
        Ok(()) => {}
        Err(nix::errno::Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("readonlyPaths {path}")),
    }
    remount_readonly(Path::new(path)).with_context(|| format!("readonlyPaths {path}"))
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
