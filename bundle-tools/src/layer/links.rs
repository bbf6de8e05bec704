//! Hardlinks: to an entry already in the root, or (overlay mode, each layer in its own dir)
//! to a file an earlier layer holds, which becomes a copy of it.

use super::*;

impl Applier<'_> {
    pub(super) fn hardlink(
        &mut self,
        raw: &Path,
        rel: &Path,
        target: &Path,
    ) -> Result<(), LayerError> {
        let trel = secure_path::clean_within(target).ok_or_else(|| {
            refused(
                raw,
                format!(
                    "hardlink target `{}` climbs out of the root",
                    target.display()
                ),
            )
        })?;
        if trel.as_os_str().is_empty() {
            return Err(refused(raw, "hardlink to the root directory"));
        }
        let (pfd, name, _) = self.parent(raw, rel)?;
        let p = pfd.as_raw_fd();
        let (tfd, tname) = match self.root.parent_of(&trel, false) {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(refused(raw, e.to_string()));
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                return self.hardlink_from_lower(raw, &trel, p, &name);
            }
            Err(e) => return Err(at(raw, "hardlink target")(e)),
        };
        let t = tfd.as_raw_fd();
        let Some(tst) = lstat_at(t, &tname).map_err(at(raw, "hardlink target"))? else {
            return self.hardlink_from_lower(raw, &trel, p, &name);
        };
        if is_dir(&tst) {
            return Err(refused(raw, "hardlink to a directory"));
        }
        if let Some(st) = lstat_at(p, &name).map_err(at(raw, "hardlink"))? {
            if st.st_dev == tst.st_dev && st.st_ino == tst.st_ino {
                return Ok(()); // already the same file
            }
        }
        self.make_room(p, &name, false)
            .map_err(at(raw, "replace"))?;
        nix::unistd::linkat(
            Some(t),
            tname.as_os_str(),
            Some(p),
            name.as_os_str(),
            AtFlags::empty(),
        )
        .map_err(errno)
        .map_err(at(raw, "hardlink"))
    }

    /// Overlay mode: a hardlink to a file an earlier layer holds becomes a copy of it.
    pub(super) fn hardlink_from_lower(
        &mut self,
        raw: &Path,
        trel: &Path,
        dir: RawFd,
        name: &OsStr,
    ) -> Result<(), LayerError> {
        let missing = || {
            at(raw, "hardlink target")(io::Error::new(
                io::ErrorKind::NotFound,
                format!("`{}` does not exist", trel.display()),
            ))
        };
        if self.opts.whiteouts != WhiteoutMode::Overlay {
            return Err(missing());
        }
        for lower in &self.opts.lowers {
            let lroot = Root::open(lower).map_err(at(raw, "open lower layer"))?;
            let src = match lroot.open_path(trel, OFlag::O_PATH | OFlag::O_NOFOLLOW) {
                Ok(fd) => fd,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                    continue;
                }
                Err(e) => return Err(at(raw, "hardlink target in lower layer")(e)),
            };
            let st = nix::sys::stat::fstat(src.as_raw_fd())
                .map_err(errno)
                .map_err(at(raw, "hardlink target"))?;
            match st.st_mode & libc::S_IFMT {
                libc::S_IFREG => {}
                libc::S_IFCHR if st.st_rdev == 0 => return Err(missing()), // whited out
                _ => {
                    return Err(refused(
                        raw,
                        "hardlink target in a lower layer is not a file",
                    ));
                }
            }
            let mut input = File::from(
                lroot
                    .open_path(trel, OFlag::O_RDONLY | OFlag::O_NOFOLLOW)
                    .map_err(at(raw, "hardlink target"))?,
            );
            self.make_room(dir, name, false)
                .map_err(at(raw, "replace"))?;
            let mut out = File::from(
                open_at(
                    dir,
                    name,
                    OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
                    0o600,
                )
                .map_err(at(raw, "create"))?,
            );
            let n = io::copy(&mut input, &mut out).map_err(at(raw, "copy from lower layer"))?;
            self.stats.bytes += n;
            let meta = Meta {
                uid: st.st_uid,
                gid: st.st_gid,
                mode: st.st_mode & 0o7777,
                mtime: TimeSpec::new(st.st_mtime, st.st_mtime_nsec),
                xattrs: sys::read_xattrs(input.as_raw_fd(), is_overlay_xattr)
                    .map_err(at(raw, "read lower xattrs"))?,
            };
            self.set_owner_mode_xattrs(raw, out.as_raw_fd(), &meta, KEPT)?;
            return nix::sys::stat::futimens(out.as_raw_fd(), &meta.mtime, &meta.mtime)
                .map_err(errno)
                .map_err(at(raw, "set mtime"));
        }
        Err(missing())
    }
}
