//! Assembling the bundle directory atomically, and removing it again.
//!
//! The bundle is built in a temp directory next to DIR (same filesystem) and renamed onto DIR
//! only when complete, so on any failure DIR does not exist or is untouched. Layout:
//!
//! ```text
//! DIR/                      mode 0700
//! DIR/config.json           runtime spec from the image config (bundle-tools)
//! DIR/rootfs/               overlay mount of cached layers (or plain files, --no-overlay)
//! DIR/.overlay/{upper,work} this bundle's private writable layer
//! DIR/.mocker-pull.json     what `mocker-pull rm-bundle DIR` needs to clean up
//! ```

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::in_use::{self, Use};
use crate::overlay;

pub const MARKER: &str = ".mocker-pull.json";

#[derive(Debug, Error)]
pub enum BundleError {
    #[error("bundle {}: {what}", path.display())]
    Io {
        path: PathBuf,
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("bundle {}: already exists and is not an empty directory", .0.display())]
    Exists(PathBuf),
    #[error("bundle {}: parent directory does not exist", .0.display())]
    NoParent(PathBuf),
    #[error("{}: not a bundle made by mocker-pull (no {MARKER})", .0.display())]
    NotOurs(PathBuf),
    #[error("bundle {}: rootfs is busy (is a container still running from it?)", .0.display())]
    Busy(PathBuf),
    #[error("bundle {} is in use by a running container (pid {pid}): stop it first", dir.display())]
    InUseByContainer { dir: PathBuf, pid: i32 },
    #[error(
        "bundle {} is in use: a process (pid {pid}) works inside its rootfs; stop it (or leave the directory) first",
        dir.display()
    )]
    InUseByProcess { dir: PathBuf, pid: i32 },
}

fn io_at(path: &Path, what: &str) -> impl FnOnce(io::Error) -> BundleError {
    let path = path.to_path_buf();
    let what = what.to_string();
    move |source| BundleError::Io { path, what, source }
}

/// Written into the bundle so it can be removed cleanly later.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Marker {
    pub image: String,
    pub digest: String,
    pub overlay: bool,
    pub cache_dir: PathBuf,
}

/// A bundle under construction; dropped without [`TmpBundle::commit`], it leaves nothing.
pub struct TmpBundle {
    path: PathBuf,
    dest: PathBuf,
    mounted: bool,
    done: bool,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// `dir` made absolute without resolving its last component (which may not exist yet).
pub fn absolute(dir: &Path) -> Result<PathBuf, BundleError> {
    let abs = std::path::absolute(dir).map_err(io_at(dir, "resolve path"))?;
    let name = abs
        .file_name()
        .ok_or_else(|| BundleError::Exists(abs.clone()))?
        .to_owned();
    let parent = abs.parent().unwrap_or(Path::new("/"));
    let parent = fs::canonicalize(parent).map_err(|_| BundleError::NoParent(abs.clone()))?;
    Ok(parent.join(name))
}

impl TmpBundle {
    pub fn begin(dir: &Path) -> Result<Self, BundleError> {
        let dest = absolute(dir)?;
        match fs::symlink_metadata(&dest) {
            Ok(m) if m.is_dir() => {
                let empty = fs::read_dir(&dest)
                    .map_err(io_at(&dest, "read"))?
                    .next()
                    .is_none();
                if !empty {
                    return Err(BundleError::Exists(dest));
                }
            }
            Ok(_) => return Err(BundleError::Exists(dest)),
            Err(_) => {}
        }
        let parent = dest.parent().expect("absolute");
        let name = dest.file_name().expect("has a name").to_string_lossy();
        remove_stale_siblings(parent, &name);
        let path = parent.join(format!(
            ".{name}.mocker-pull-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(io_at(&path, "create temp dir"))?;
        // Independent of the umask: the bundle holds a rootfs with setuid files.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700))
            .map_err(io_at(&path, "chmod"))?;
        let b = TmpBundle {
            path,
            dest,
            mounted: false,
            done: false,
        };
        fs::DirBuilder::new()
            .mode(0o755)
            .create(b.rootfs())
            .map_err(io_at(&b.rootfs(), "create rootfs"))?;
        Ok(b)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn rootfs(&self) -> PathBuf {
        self.path.join("rootfs")
    }

    /// Mount `layers` (bottom first) with a private upper layer at `rootfs/`.
    pub fn mount_overlay(&mut self, layers: &[overlay::LayerDirs]) -> Result<(), BundleError> {
        let lowers: Vec<PathBuf> = layers.iter().map(|l| l.root.clone()).collect();
        let upper = self.path.join(".overlay/upper");
        let work = self.path.join(".overlay/work");
        for d in [&upper, &work] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(d)
                .map_err(io_at(d, "create"))?;
        }
        // The merged root takes the upper root's attributes: give it the image's (the root
        // is always in the list, then corrected if a lower layer lists it explicitly).
        if let Some(top) = lowers.last() {
            if let Ok(m) = fs::metadata(top) {
                let _ = nix::unistd::chown(
                    &upper,
                    Some(nix::unistd::Uid::from_raw(m.uid())),
                    Some(nix::unistd::Gid::from_raw(m.gid())),
                );
                let _ = fs::set_permissions(&upper, fs::Permissions::from_mode(m.mode() & 0o7777));
            }
        }
        overlay::copy_up_implicit_dirs(layers, &upper)
            .map_err(io_at(&upper, "copy up implicit directories"))?;
        let rootfs = self.rootfs();
        if lowers.is_empty() {
            return Ok(());
        }
        overlay::mount(&lowers, &upper, &work, &rootfs).map_err(io_at(&rootfs, "mount overlay"))?;
        self.mounted = true;
        Ok(())
    }

    pub fn write_file(&self, name: &str, data: &[u8]) -> Result<(), BundleError> {
        let p = self.path.join(name);
        fs::write(&p, data).map_err(io_at(&p, "write"))
    }

    /// Rename into place; replaces DIR only if it is an empty directory.
    pub fn commit(mut self) -> Result<PathBuf, BundleError> {
        fs::rename(&self.path, &self.dest).map_err(|e| {
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOTEMPTY | libc::EEXIST | libc::ENOTDIR)
            ) {
                BundleError::Exists(self.dest.clone())
            } else {
                io_at(&self.dest, "rename into place")(e)
            }
        })?;
        self.done = true;
        Ok(self.dest.clone())
    }
}

impl Drop for TmpBundle {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let rootfs = self.rootfs();
        if self.mounted {
            let _ = overlay::unmount(&rootfs, true);
        }
        // Never recurse into a mount we failed to remove: it could reach the cache.
        if !overlay::is_mounted(&rootfs) {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Temp bundles of pulls that were SIGKILLed (their pid is gone) are removed.
fn remove_stale_siblings(parent: &Path, name: &str) {
    let prefix = format!(".{name}.mocker-pull-");
    let Ok(rd) = fs::read_dir(parent) else { return };
    for e in rd.flatten() {
        let fname = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = fname.strip_prefix(&prefix) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let dead = pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists());
        if dead && !overlay::is_mounted(&e.path().join("rootfs")) {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// Remove a bundle made by mocker-pull: unmount its rootfs, delete the directory.
/// Refused, with nothing changed, while a process (a container) has its root or working
/// directory in the rootfs. Returns its marker so the caller can release cache references.
pub fn remove(dir: &Path) -> Result<Marker, BundleError> {
    let dir = absolute(dir)?;
    let marker_path = dir.join(MARKER);
    let marker: Marker = fs::read(&marker_path)
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .ok_or_else(|| BundleError::NotOurs(dir.clone()))?;
    let rootfs = dir.join("rootfs");
    let mounted = overlay::is_mounted(&rootfs);
    if fs::symlink_metadata(&rootfs).is_ok_and(|m| m.is_dir()) {
        match in_use::process_using(&rootfs, mounted)
            .map_err(io_at(&rootfs, "look for processes using it"))?
        {
            Some((pid, Use::Root)) => return Err(BundleError::InUseByContainer { dir, pid }),
            Some((pid, Use::Cwd)) => return Err(BundleError::InUseByProcess { dir, pid }),
            None => {}
        }
    }
    if mounted {
        match overlay::unmount(&rootfs, false) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                return Err(BundleError::Busy(dir));
            }
            Err(e) => return Err(io_at(&rootfs, "unmount")(e)),
        }
        if overlay::is_mounted(&rootfs) {
            return Err(BundleError::Busy(dir));
        }
    }
    fs::remove_dir_all(&dir).map_err(io_at(&dir, "remove"))?;
    Ok(marker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmp_bundle_is_0700_and_vanishes_unless_committed() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("b");
        {
            let b = TmpBundle::begin(&dest).unwrap();
            assert_eq!(
                fs::metadata(b.path()).unwrap().permissions().mode() & 0o777,
                0o700
            );
            b.write_file("config.json", b"{}").unwrap();
        }
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0, "nothing left");
        let b = TmpBundle::begin(&dest).unwrap();
        b.write_file("config.json", b"{}").unwrap();
        let out = b.commit().unwrap();
        assert_eq!(out, fs::canonicalize(&dest).unwrap());
        assert_eq!(
            fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert!(dest.join("rootfs").is_dir());
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn existing_non_empty_dir_is_refused_and_untouched() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("b");
        fs::create_dir(&dest).unwrap();
        fs::write(dest.join("keep"), "x").unwrap();
        let e = TmpBundle::begin(&dest).err().unwrap().to_string();
        assert!(e.contains("already exists"), "{e}");
        assert_eq!(fs::read_to_string(dest.join("keep")).unwrap(), "x");
        // An empty directory is replaced.
        let empty = d.path().join("e");
        fs::create_dir(&empty).unwrap();
        TmpBundle::begin(&empty).unwrap().commit().unwrap();
        assert!(empty.join("rootfs").is_dir());
        // A missing parent is named.
        let e = TmpBundle::begin(&d.path().join("no/such"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("parent directory does not exist"), "{e}");
    }

    #[test]
    fn temp_bundles_of_dead_pulls_are_swept() {
        let d = tempfile::tempdir().unwrap();
        let stale = d.path().join(".b.mocker-pull-999999999-0");
        let live = d
            .path()
            .join(format!(".b.mocker-pull-{}-77", std::process::id()));
        fs::create_dir_all(stale.join("rootfs")).unwrap();
        fs::create_dir_all(&live).unwrap();
        let b = TmpBundle::begin(&d.path().join("b")).unwrap();
        assert!(!stale.exists());
        assert!(live.exists(), "a running pull's temp dir is left alone");
        drop(b);
    }

    #[test]
    fn remove_refuses_foreign_directories() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("x")).unwrap();
        let e = remove(&d.path().join("x")).unwrap_err().to_string();
        assert!(e.contains("not a bundle made by mocker-pull"), "{e}");
        assert!(d.path().join("x").exists());
    }
}
