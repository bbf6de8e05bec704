//! A container without a mount namespace of its own inherits the runtime's (the runtime spec's
//! rule for any namespace type not listed). Its rootfs mounts are then made in the host's
//! mount namespace, where nothing removes them when the container ends (runc leaves them
//! there). Here they have one owner: the container's state directory.
//!
//! All of them sit under one bind mount of the rootfs onto itself, made private so that
//! nothing mounted under it propagates elsewhere; detaching that bind removes them all. Before
//! the init is cloned, `note` records which mount the rootfs directory is on (its mount id);
//! `release` (in `delete`, and when `create` fails) detaches whatever is stacked on it since.
//! The record is written before any mount exists, so a runtime killed at any point still
//! leaves `delete --force` everything it needs. Two live containers of this kind on one rootfs
//! directory would stack their binds: deleting the first detaches the second's too (runc
//! forbids sharing a rootfs anyway).

use std::fs::File;
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{Context, Result, bail};
use nix::mount::{MntFlags, umount2};

/// In the state directory: the mount id the rootfs directory was on before the container.
const RECORD: &str = "host-mount-base";

/// Bound on the mounts stacked on the rootfs (ours is one; the container may add some).
const MAX_STACKED: usize = 64;

/// The id of the mount `path` is on (the topmost one when mounts are stacked there), from
/// /proc/self/fdinfo: no statx needed.
fn mount_id(path: &Path) -> std::io::Result<u64> {
    let f = File::open(path)?;
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", f.as_raw_fd()))?;
    info.lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| std::io::Error::other("no mnt_id in fdinfo"))
}

/// Parent, before clone: remember which mount `rootfs` is on now.
pub fn note(state_dir: &Path, rootfs: &Path) -> Result<()> {
    let id = mount_id(rootfs).with_context(|| format!("root.path {}", rootfs.display()))?;
    let record = state_dir.join(RECORD);
    std::fs::write(&record, id.to_string()).with_context(|| format!("write {}", record.display()))
}

/// Detach every mount stacked on `rootfs` since [`note`] (with everything under them).
/// Nothing to do for a container with a mount namespace of its own (no record).
pub fn release(state_dir: &Path, rootfs: &Path) -> Result<()> {
    let record = state_dir.join(RECORD);
    let base: u64 = match std::fs::read_to_string(&record) {
        Ok(text) => text
            .trim()
            .parse()
            .with_context(|| format!("{}: not a mount id", record.display()))?,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("read {}", record.display())),
    };
    for _ in 0..MAX_STACKED {
        match mount_id(rootfs) {
            Ok(id) if id == base => return Ok(()),
            Ok(_) => umount2(rootfs, MntFlags::MNT_DETACH)
                .with_context(|| format!("detach the rootfs mounts at {}", rootfs.display()))?,
            // The rootfs is gone: so is anything that was mounted on it.
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("root.path {}", rootfs.display())),
        }
    }
    bail!(
        "more than {MAX_STACKED} mounts stacked on the rootfs {}",
        rootfs.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::mount::{MsFlags, mount};

    /// Needs root (mounts a tmpfs and stacks binds on a temporary directory).
    #[test]
    fn release_detaches_exactly_what_was_stacked_since_note() {
        let state = tempfile::tempdir().unwrap();
        let base = tempfile::tempdir().unwrap();
        // The rootfs is itself a mount point (like an overlay from mocker-pull): it stays.
        mount(
            Some("tmpfs"),
            base.path(),
            Some("tmpfs"),
            MsFlags::empty(),
            Some("size=1m"),
        )
        .unwrap();
        let rootfs = base.path();
        std::fs::create_dir(rootfs.join("proc")).unwrap();
        release(state.path(), rootfs).unwrap(); // no record: nothing to do
        note(state.path(), rootfs).unwrap();
        let before = mount_id(rootfs).unwrap();
        for _ in 0..2 {
            mount(
                Some(rootfs),
                rootfs,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .unwrap();
        }
        mount(
            Some("proc"),
            &rootfs.join("proc"),
            Some("proc"),
            MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        assert_ne!(mount_id(rootfs).unwrap(), before);
        release(state.path(), rootfs).unwrap();
        assert_eq!(mount_id(rootfs).unwrap(), before);
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let here = info
            .lines()
            .filter(|l| l.contains(rootfs.to_str().unwrap()))
            .count();
        assert_eq!(here, 1, "{info}");
        umount2(rootfs, MntFlags::MNT_DETACH).unwrap();
    }
}
