//! Whiteouts and opaque directories: they hide only what *lower* layers put there. In
//! [`WhiteoutMode::Apply`] they delete from the rootfs; in [`WhiteoutMode::Overlay`] they
//! become overlayfs whiteouts (a 0:0 char device, the opaque xattr).

use super::*;

impl Applier<'_> {
    pub(super) fn whiteout(
        &mut self,
        raw: &Path,
        rel: &Path,
        base: &str,
    ) -> Result<(), LayerError> {
        // Whiteouts remove things: a cached parent may be gone afterwards.
        self.cache = None;
        let dir = rel.parent().unwrap_or(Path::new(""));
        if base == OPAQUE {
            return self.opaque(raw, dir);
        }
        if base.starts_with(".wh..wh.") {
            return Ok(()); // aufs bookkeeping (.wh..wh.plnk, ...): nothing to apply
        }
        let target = &base[WHITEOUT_PREFIX.len()..];
        if matches!(target, "" | "." | "..") {
            return Err(refused(raw, format!("whiteout of `{target}`")));
        }
        let path = dir.join(target);
        match self.opts.whiteouts {
            WhiteoutMode::Apply => {
                let Some(dfd) = self.lower_dir(raw, dir, "whiteout")? else {
                    return Ok(());
                };
                let d = dfd.as_raw_fd();
                dir_id(d)
                    .and_then(|id| self.remove_lower(d, id, OsStr::new(target)))
                    .map_err(at(raw, "whiteout"))
            }
            WhiteoutMode::Overlay => {
                let (pfd, name, _) = self.parent(raw, &path)?;
                let p = pfd.as_raw_fd();
                // The layer dir started empty: whatever is there, this layer made.
                if let Some(st) = lstat_at(p, &name).map_err(at(raw, "whiteout"))? {
                    // Our own `target` already hides a lower file; a lower directory's
                    // contents are hidden by making ours opaque.
                    if is_dir(&st) {
                        let fd = open_at(p, &name, OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0)
                            .map_err(at(raw, "whiteout"))?;
                        sys::set_xattr(
                            &sys::XattrTarget::Fd(fd.as_raw_fd()),
                            OVERLAY_OPAQUE_XATTR,
                            b"y",
                        )
                        .map_err(at(raw, "set opaque xattr"))?;
                    }
                    return Ok(());
                }
                nix::sys::stat::mknodat(
                    Some(p),
                    name.as_os_str(),
                    SFlag::S_IFCHR,
                    Mode::empty(),
                    0,
                )
                .map_err(errno)
                .map_err(at(raw, "mknod whiteout"))?;
                Ok(())
            }
        }
    }

    /// The directory a whiteout (`what`) acts in, or `None` when it does not exist: then
    /// there is nothing below to hide. A path the resolver refuses (an escape) is refused.
    pub(super) fn lower_dir(
        &self,
        raw: &Path,
        dir: &Path,
        what: &'static str,
    ) -> Result<Option<OwnedFd>, LayerError> {
        match self.root.open_dir(dir) {
            Ok(fd) => Ok(Some(fd)),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                Err(refused(raw, e.to_string()))
            }
            Err(e) => Err(at(raw, what)(e)),
        }
    }

    pub(super) fn opaque(&mut self, raw: &Path, dir: &Path) -> Result<(), LayerError> {
        match self.opts.whiteouts {
            WhiteoutMode::Apply => {
                let Some(dfd) = self.lower_dir(raw, dir, "opaque whiteout")? else {
                    return Ok(());
                };
                let d = dfd.as_raw_fd();
                let id = dir_id(d).map_err(at(raw, "opaque whiteout"))?;
                for child in list_dir(d).map_err(at(raw, "opaque whiteout"))? {
                    self.remove_lower(d, id, &child)
                        .map_err(at(raw, "opaque whiteout"))?;
                }
                Ok(())
            }
            WhiteoutMode::Overlay => {
                let fd = self
                    .root
                    .mkdir_all(dir)
                    .map_err(at(raw, "opaque directory"))?;
                sys::set_xattr(
                    &sys::XattrTarget::Fd(fd.as_fd().as_raw_fd()),
                    OVERLAY_OPAQUE_XATTR,
                    b"y",
                )
                .map_err(at(raw, "set opaque xattr"))?;
                Ok(())
            }
        }
    }

    /// Remove what lower layers put at `dir/name` (`dir` identified by `id`), sparing what
    /// this layer created: its entries stay, and so do the directories holding them.
    pub(super) fn remove_lower(&self, dir: RawFd, id: DirId, name: &OsStr) -> io::Result<()> {
        let Some(st) = lstat_at(dir, name)? else {
            return Ok(());
        };
        let ours = self.upper.contains(&(id.0, id.1, name.to_os_string()));
        if !is_dir(&st) {
            return match ours {
                true => Ok(()),
                false => {
                    nix::unistd::unlinkat(Some(dir), name, nix::unistd::UnlinkatFlags::NoRemoveDir)
                        .map_err(errno)
                }
            };
        }
        let fd = open_at(dir, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0)?;
        let child_id = (st.st_dev, st.st_ino);
        for child in list_dir(fd.as_raw_fd())? {
            self.remove_lower(fd.as_raw_fd(), child_id, &child)?;
        }
        if ours {
            return Ok(());
        }
        match nix::unistd::unlinkat(Some(dir), name, nix::unistd::UnlinkatFlags::RemoveDir) {
            // Still holds entries of this layer: it stays, as their parent.
            Ok(()) | Err(Errno::ENOTEMPTY) | Err(Errno::EEXIST) => Ok(()),
            Err(e) => Err(errno(e)),
        }
    }
}
