//! Applying one uncompressed layer tar to a rootfs with OCI image-spec semantics.
//!
//! Every entry is resolved through [`Root`] (never a plain join): its parent directory is
//! opened inside the root (symlinks followed *inside* it, missing directories created) and
//! the entry itself is made with `*at` calls that never follow its final component. One
//! function per entry kind. Directory mtimes are set at the end, after their contents
//! stopped changing.
//!
//! Whiteouts (`.wh.NAME`, `.wh..wh..opq`) only hide what *lower* layers put there: entries of
//! the same layer survive them, in whatever order the tar lists them. Two modes:
//! - [`WhiteoutMode::Apply`]: `rootfs` holds the lower layers; whiteouts delete.
//! - [`WhiteoutMode::Overlay`]: `rootfs` is this layer's own (empty) dir, to be used as an
//!   overlayfs lower dir; whiteouts become overlay whiteouts (char device 0:0, and the
//!   `trusted.overlay.opaque=y` xattr on opaque dirs).
//!
//! Modules: `meta` (header and PAX metadata), `at` (the raw `*at` calls), `links`
//! (hardlinks, and overlay-mode copies from lower layers), `whiteout`; this file dispatches
//! entries and makes directories, files, symlinks and devices.
//!
//! Refused with an error naming the entry: names climbing out with `..`; writing through a
//! relative symlink that climbs above the root, or through a symlink leading to nothing in
//! the root (`evil -> /home/victim`); hardlinks whose target climbs out or does not exist in
//! the root; a non-directory replacing the root; whiteouts of `.`/`..`. Layer-supplied
//! `trusted.overlay.*` xattrs are dropped (they would steer overlayfs).

use std::collections::HashSet;
use std::ffi::{CStr, OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};

use crate::secure_path::{self, Root};
use crate::sys;

mod at;
mod links;
mod meta;
mod whiteout;

use at::{dir_id, errno, is_dir, list_dir, lstat_at, open_at, remove_all_at, xattr_path};
use meta::{Meta, read_meta};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";
const OVERLAY_OPAQUE_XATTR: &CStr = c"trusted.overlay.opaque";

/// overlayfs' own xattrs (redirects, opaque dirs) would steer it: neither a layer's tar nor a
/// copied-up lower file may bring them; only whiteout handling sets them.
fn is_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.")
}

/// What to do with whiteout entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// Delete what they hide from `rootfs`, which holds the lower layers.
    #[default]
    Apply,
    /// Extract the layer alone as an overlayfs lower dir.
    Overlay,
}

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub whiteouts: WhiteoutMode,
    /// Give entries the tar's uid/gid (needs CAP_CHOWN). Default true.
    pub chown: bool,
    /// Overlay mode only: the lower layers' dirs, topmost first, searched for hardlink targets
    /// that an earlier layer holds (the file is copied, as overlayfs would on copy-up).
    pub lowers: Vec<PathBuf>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            whiteouts: WhiteoutMode::Apply,
            chown: true,
            lowers: Vec::new(),
        }
    }
}

/// What one layer put on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerStats {
    /// Tar entries processed (whiteouts included, PAX global headers excluded).
    pub entries: u64,
    /// Bytes of regular file content written.
    pub bytes: u64,
    /// The directories the tar listed itself, relative (`""` for the root), in tar order.
    /// Any other directory in the result was made as a parent of an entry: an overlay must
    /// show the lower layers' attributes there, not this layer's defaults.
    pub listed_dirs: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    // Causes are part of the message, not `source()`: `{:#}` would print them twice.
    #[error("rootfs {path}: {err}")]
    Root { path: PathBuf, err: io::Error },
    #[error("layer tar: {0}")]
    Tar(io::Error),
    #[error("layer entry `{entry}`: refused: {reason}")]
    Refused { entry: String, reason: String },
    #[error("layer entry `{entry}`: {op}: {err}")]
    Entry {
        entry: String,
        op: &'static str,
        err: io::Error,
    },
}

/// Apply one uncompressed layer tar stream to `rootfs` (see the module docs).
pub fn apply_layer<R: Read>(
    rootfs: &Path,
    tar: R,
    opts: &ApplyOptions,
) -> Result<LayerStats, LayerError> {
    let root = Root::open(rootfs).map_err(|err| LayerError::Root {
        path: rootfs.to_path_buf(),
        err,
    })?;
    let mut applier = Applier {
        root,
        opts,
        upper: HashSet::new(),
        dir_times: Vec::new(),
        stats: LayerStats::default(),
        buf: vec![0; 256 * 1024],
        cache: None,
        euid: nix::unistd::geteuid().as_raw(),
        egid: nix::unistd::getegid().as_raw(),
        umask: read_umask(),
    };
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().map_err(LayerError::Tar)? {
        let mut entry = entry.map_err(LayerError::Tar)?;
        applier.entry(&mut entry)?;
    }
    applier.finish()?;
    Ok(applier.stats)
}

struct Applier<'a> {
    root: Root,
    opts: &'a ApplyOptions,
    /// What this layer created, as (parent dir's dev, ino, name): what whiteouts spare.
    /// Keyed by directory identity, not path, so a whiteout reached through a symlinked
    /// directory still recognises the entries this layer put there.
    upper: HashSet<(u64, u64, OsString)>,
    /// Directory mtimes, applied once the layer is done.
    dir_times: Vec<(PathBuf, TimeSpec)>,
    stats: LayerStats,
    buf: Vec<u8>,
    /// The last parent directory used: tars list a directory's entries together, so this
    /// saves a lookup per entry. Dropped whenever anything is removed.
    cache: Option<(PathBuf, Rc<OwnedFd>, bool, DirId)>,
    euid: u32,
    egid: u32,
    umask: Option<u32>,
}

/// A directory's (dev, ino).
type DirId = (u64, u64);

/// How a new inode came to be, to skip chown/chmod calls that would change nothing.
#[derive(Clone, Copy)]
struct Created {
    /// Made just now by us (not an existing directory kept).
    fresh: bool,
    /// In a setgid directory: new inodes inherit its group (and dirs its setgid bit).
    setgid_parent: bool,
}

const KEPT: Created = Created {
    fresh: false,
    setgid_parent: false,
};

/// The process umask, without changing it (other threads may be creating files).
fn read_umask() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Umask:"))?;
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
}

/// Text fit for a one-line message: control characters (newlines, NULs) escaped.
fn one_line(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let e: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            e
        })
        .collect()
}

fn show(p: &Path) -> String {
    one_line(&p.display().to_string())
}

/// Build an error naming the entry.
fn at<'a>(entry: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> LayerError + 'a {
    move |err: io::Error| LayerError::Entry {
        entry: show(entry),
        op,
        // Messages of our own (secure_path's) may quote names from the tar.
        err: if err.get_ref().is_some() {
            io::Error::new(err.kind(), one_line(&err.to_string()))
        } else {
            err
        },
    }
}

fn refused(entry: &Path, reason: impl Into<String>) -> LayerError {
    LayerError::Refused {
        entry: show(entry),
        reason: one_line(&reason.into()),
    }
}

impl Applier<'_> {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), LayerError> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        let raw = entry.path().map_err(LayerError::Tar)?.into_owned();
        self.stats.entries += 1;
        let rel = secure_path::clean_within(&raw)
            .ok_or_else(|| refused(&raw, "its `..` climbs out of the root"))?;

        if let Some(base) = rel.file_name().and_then(OsStr::to_str) {
            if base.starts_with(WHITEOUT_PREFIX) {
                return self.whiteout(&raw, &rel, base);
            }
        }
        if rel.as_os_str().is_empty() && !kind.is_dir() {
            return Err(refused(&raw, "a non-directory would replace the root"));
        }
        let meta = read_meta(entry).map_err(LayerError::Tar)?;
        // Old tars mark directories with a trailing slash only.
        let trailing_slash = raw.as_os_str().as_bytes().ends_with(b"/");

        use tar::EntryType as T;
        match kind {
            T::Directory => self.dir(&raw, &rel, &meta)?,
            T::Regular | T::Continuous | T::GNUSparse if trailing_slash => {
                self.dir(&raw, &rel, &meta)?
            }
            T::Regular | T::Continuous | T::GNUSparse => self.file(&raw, &rel, &meta, entry)?,
            T::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(LayerError::Tar)?
                    .ok_or_else(|| refused(&raw, "symlink without a target"))?
                    .into_owned();
                self.symlink(&raw, &rel, &meta, &target)?
            }
            T::Link => {
                let target = entry
                    .link_name()
                    .map_err(LayerError::Tar)?
                    .ok_or_else(|| refused(&raw, "hardlink without a target"))?
                    .into_owned();
                self.hardlink(&raw, &rel, &target)?
            }
            T::Char | T::Block | T::Fifo => {
                let h = entry.header();
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                let sflag = match kind {
                    T::Char => SFlag::S_IFCHR,
                    T::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                self.node(&raw, &rel, &meta, sflag, major, minor)?
            }
            other => {
                return Err(refused(
                    &raw,
                    format!("unsupported entry type {:?}", other.as_byte() as char),
                ));
            }
        }
        Ok(())
    }

    /// Open the parent dir of `rel` inside the root, creating it (`mkdir -p`) when missing,
    /// and record `rel` as created by this layer. Returns the dir, the entry's name in it,
    /// and whether the dir is setgid.
    fn parent(
        &mut self,
        raw: &Path,
        rel: &Path,
    ) -> Result<(Rc<OwnedFd>, OsString, bool), LayerError> {
        let (Some(dir), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Err(refused(raw, "names the root itself"));
        };
        let name = name.to_os_string();
        if let Some((path, fd, setgid, id)) = &self.cache {
            if path == dir {
                self.upper.insert((id.0, id.1, name.clone()));
                return Ok((fd.clone(), name, *setgid));
            }
        }
        let fd = self.root.mkdir_all(dir).map_err(|e| {
            if e.kind() == io::ErrorKind::PermissionDenied {
                refused(raw, e.to_string())
            } else {
                at(raw, "parent directory")(e)
            }
        })?;
        let st = nix::sys::stat::fstat(fd.as_raw_fd())
            .map_err(errno)
            .map_err(at(raw, "parent directory"))?;
        let setgid = st.st_mode & libc::S_ISGID != 0;
        let id = (st.st_dev, st.st_ino);
        let fd = Rc::new(fd);
        self.cache = Some((dir.to_path_buf(), fd.clone(), setgid, id));
        self.upper.insert((id.0, id.1, name.clone()));
        Ok((fd, name, setgid))
    }

    /// Clear the way for a new entry at `dir/name` after a create failed with `EEXIST`.
    /// An existing directory is kept when a directory is wanted (layers merge into it);
    /// anything else is removed.
    fn make_room(&mut self, dir: RawFd, name: &OsStr, want_dir: bool) -> io::Result<bool> {
        match lstat_at(dir, name)? {
            None => Ok(false),
            Some(st) if is_dir(&st) && want_dir => Ok(true),
            Some(_) => {
                self.cache = None;
                remove_all_at(dir, name).map(|()| false)
            }
        }
    }

    /// Create with `make`; if the name is taken, clear it (keeping a directory when
    /// `want_dir`) and create again. Returns false when an existing directory was kept.
    fn create(
        &mut self,
        dir: RawFd,
        name: &OsStr,
        want_dir: bool,
        mut make: impl FnMut() -> io::Result<()>,
    ) -> io::Result<bool> {
        match make() {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                if self.make_room(dir, name, want_dir)? {
                    return Ok(false);
                }
                make().map(|()| true)
            }
            r => r.map(|()| true),
        }
    }

    fn need_chown(&self, meta: &Meta, how: Created) -> bool {
        self.opts.chown
            && !(how.fresh && !how.setgid_parent && meta.uid == self.euid && meta.gid == self.egid)
    }

    /// Created with `mode & 0o777` minus the umask: is that already the tar's mode?
    fn need_chmod(&self, meta: &Meta, how: Created) -> bool {
        !(how.fresh
            && !how.setgid_parent
            && meta.mode & 0o7000 == 0
            && self.umask.is_some_and(|u| meta.mode & u == 0))
    }

    /// Owner, then mode (chown clears setuid), then xattrs (chown clears security.capability).
    fn set_owner_mode_xattrs(
        &self,
        raw: &Path,
        fd: RawFd,
        meta: &Meta,
        how: Created,
    ) -> Result<(), LayerError> {
        let chowned = self.need_chown(meta, how);
        if chowned {
            nix::unistd::fchown(
                fd,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
            )
            .map_err(errno)
            .map_err(at(raw, "chown"))?;
        }
        // chown cleared any setuid bit, so chmod again after it.
        if chowned || self.need_chmod(meta, how) {
            nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(meta.mode))
                .map_err(errno)
                .map_err(at(raw, "chmod"))?;
        }
        self.xattrs(raw, &sys::XattrTarget::Fd(fd), meta, true)
    }

    fn xattrs(
        &self,
        raw: &Path,
        target: &sys::XattrTarget<'_>,
        meta: &Meta,
        regular: bool,
    ) -> Result<(), LayerError> {
        for (name, value) in &meta.xattrs {
            if let Err(e) = sys::set_xattr(target, name, value) {
                let n = name.to_bytes();
                // security.* depends on the host's LSM (selinux labels on a non-selinux
                // host...); user.* is not allowed on links and devices.
                let optional = n.starts_with(b"security.") || (!regular && n.starts_with(b"user."));
                if !optional {
                    return Err(at(raw, "setxattr")(io::Error::new(
                        e.kind(),
                        format!("{}: {e}", name.to_string_lossy()),
                    )));
                }
            }
        }
        Ok(())
    }

    fn dir(&mut self, raw: &Path, rel: &Path, meta: &Meta) -> Result<(), LayerError> {
        self.stats.listed_dirs.push(rel.to_path_buf());
        let (fd, how) = if rel.as_os_str().is_empty() {
            (self.root.dir().map_err(at(raw, "open"))?, KEPT)
        } else {
            let (pfd, name, setgid_parent) = self.parent(raw, rel)?;
            let p = pfd.as_raw_fd();
            let mode = Mode::from_bits_truncate(meta.mode & 0o777);
            let fresh = self
                .create(p, &name, true, || {
                    nix::sys::stat::mkdirat(Some(p), name.as_os_str(), mode).map_err(errno)
                })
                .map_err(at(raw, "mkdir"))?;
            let fd = open_at(p, &name, OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0)
                .map_err(at(raw, "open"))?;
            (
                fd,
                Created {
                    fresh,
                    setgid_parent,
                },
            )
        };
        self.set_owner_mode_xattrs(raw, fd.as_raw_fd(), meta, how)?;
        self.dir_times.push((rel.to_path_buf(), meta.mtime));
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        raw: &Path,
        rel: &Path,
        meta: &Meta,
        data: &mut R,
    ) -> Result<(), LayerError> {
        let (pfd, name, setgid_parent) = self.parent(raw, rel)?;
        let p = pfd.as_raw_fd();
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL;
        let mut fd = None;
        self.create(p, &name, false, || {
            fd = Some(open_at(p, &name, flags, meta.mode & 0o777)?);
            Ok(())
        })
        .map_err(at(raw, "create"))?;
        let mut f = File::from(fd.expect("created"));
        let how = Created {
            fresh: true,
            setgid_parent,
        };
        loop {
            let n = match data.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(LayerError::Tar(e)),
            };
            f.write_all(&self.buf[..n]).map_err(at(raw, "write"))?;
            self.stats.bytes += n as u64;
        }
        self.set_owner_mode_xattrs(raw, f.as_raw_fd(), meta, how)?;
        nix::sys::stat::futimens(f.as_raw_fd(), &meta.mtime, &meta.mtime)
            .map_err(errno)
            .map_err(at(raw, "set mtime"))
    }

    /// Owner, xattrs and mtime of something that cannot be opened safely (link, device, fifo).
    fn set_meta_at(
        &self,
        raw: &Path,
        dir: RawFd,
        name: &OsStr,
        meta: &Meta,
        mode: bool,
        how: Created,
    ) -> Result<(), LayerError> {
        let chowned = self.need_chown(meta, how);
        if chowned {
            nix::unistd::fchownat(
                Some(dir),
                name,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(errno)
            .map_err(at(raw, "chown"))?;
        }
        if mode && (chowned || self.need_chmod(meta, how)) {
            // We just created this node (not a symlink), so following is harmless.
            nix::sys::stat::fchmodat(
                Some(dir),
                name,
                Mode::from_bits_truncate(meta.mode),
                FchmodatFlags::FollowSymlink,
            )
            .map_err(errno)
            .map_err(at(raw, "chmod"))?;
        }
        if !meta.xattrs.is_empty() {
            let p = xattr_path(dir, name).map_err(at(raw, "setxattr"))?;
            self.xattrs(raw, &sys::XattrTarget::Path(&p), meta, false)?;
        }
        nix::sys::stat::utimensat(
            Some(dir),
            name,
            &meta.mtime,
            &meta.mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(errno)
        .map_err(at(raw, "set mtime"))
    }

    fn symlink(
        &mut self,
        raw: &Path,
        rel: &Path,
        meta: &Meta,
        target: &Path,
    ) -> Result<(), LayerError> {
        let (pfd, name, setgid_parent) = self.parent(raw, rel)?;
        let p = pfd.as_raw_fd();
        // The target is stored verbatim: it is only ever resolved inside the root.
        self.create(p, &name, false, || {
            nix::unistd::symlinkat(target, Some(p), name.as_os_str()).map_err(errno)
        })
        .map_err(at(raw, "symlink"))?;
        let how = Created {
            fresh: true,
            setgid_parent,
        };
        self.set_meta_at(raw, p, &name, meta, false, how)
    }

    fn node(
        &mut self,
        raw: &Path,
        rel: &Path,
        meta: &Meta,
        kind: SFlag,
        major: u32,
        minor: u32,
    ) -> Result<(), LayerError> {
        let (pfd, name, setgid_parent) = self.parent(raw, rel)?;
        let p = pfd.as_raw_fd();
        let dev = nix::sys::stat::makedev(major.into(), minor.into());
        let mode = Mode::from_bits_truncate(meta.mode & 0o777);
        self.create(p, &name, false, || {
            nix::sys::stat::mknodat(Some(p), name.as_os_str(), kind, mode, dev).map_err(errno)
        })
        .map_err(at(raw, "mknod"))?;
        let how = Created {
            fresh: true,
            setgid_parent,
        };
        self.set_meta_at(raw, p, &name, meta, true, how)
    }

    /// Directory mtimes, now that their contents are final.
    fn finish(&mut self) -> Result<(), LayerError> {
        for (rel, ts) in &self.dir_times {
            let (dir, name) = if rel.as_os_str().is_empty() {
                (
                    self.root.dir().map_err(at(rel, "set mtime"))?,
                    OsString::from("."),
                )
            } else {
                match self.root.parent_of(rel, false) {
                    Ok(x) => x,
                    Err(_) => continue, // removed or replaced later in the layer
                }
            };
            match lstat_at(dir.as_raw_fd(), &name) {
                Ok(Some(st)) if is_dir(&st) => {}
                _ => continue,
            }
            nix::sys::stat::utimensat(
                Some(dir.as_raw_fd()),
                name.as_os_str(),
                ts,
                ts,
                UtimensatFlags::NoFollowSymlink,
            )
            .map_err(errno)
            .map_err(at(rel, "set mtime"))?;
        }
        Ok(())
    }
}
