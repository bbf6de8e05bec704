//! The overlay mount that turns cached layers into a private, writable rootfs.
//!
//! Layers are passed one by one with the new mount API (`fsconfig(lowerdir+)`, Linux 6.8+), so
//! the number of layers is not limited by the one-page option string of mount(2); older
//! kernels get the classic `lowerdir=a:b:c` string when it fits. `index=off` as docker does:
//! the same lower layers are shared by many mounts with different upper dirs.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use rustix::mount;

/// Is overlayfs usable here (listed in /proc/filesystems or loadable on first use)?
pub fn available() -> bool {
    std::fs::read_to_string("/proc/filesystems").is_ok_and(|s| s.contains("\toverlay\n"))
        || Path::new("/sys/module/overlay").exists()
        || fsopen().is_ok()
}

fn fsopen() -> io::Result<OwnedFd> {
    Ok(mount::fsopen(
        "overlay",
        mount::FsOpenFlags::FSOPEN_CLOEXEC,
    )?)
}

fn set_string(fs: &OwnedFd, key: &str, value: &[u8]) -> io::Result<()> {
    mount::fsconfig_set_string(fs, key, OsStr::from_bytes(value))
        .map_err(|e| with_log(fs, e.into(), key))
}

/// The fs context keeps a log of why a parameter was refused; put it in the error.
fn with_log(fs: &OwnedFd, e: io::Error, what: &str) -> io::Error {
    let mut buf = [0u8; 512];
    let mut msgs = Vec::new();
    while let Ok(n @ 1..) = rustix::io::read(fs, &mut buf) {
        msgs.push(String::from_utf8_lossy(&buf[..n]).trim().to_string());
    }
    if msgs.is_empty() {
        io::Error::new(e.kind(), format!("overlay {what}: {e}"))
    } else {
        io::Error::new(
            e.kind(),
            format!("overlay {what}: {e} ({})", msgs.join("; ")),
        )
    }
}

/// Mount an overlay at `target`: `lowers` bottom layer first (image order), `upper` and `work`
/// private to this mount, on the same filesystem.
pub fn mount(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> io::Result<()> {
    match mount_new_api(lowers, upper, work, target) {
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            mount_legacy(lowers, upper, work, target)
        }
        r => r,
    }
}

fn mount_new_api(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> io::Result<()> {
    let fs = fsopen()?;
    set_string(&fs, "source", b"mocker-pull")?;
    // index=off is unknown to old kernels, where it is off anyway.
    let _ = set_string(&fs, "index", b"off");
    // overlayfs takes the first lower as the top-most: image order reversed.
    for l in lowers.iter().rev() {
        match set_string(&fs, "lowerdir+", l.as_os_str().as_bytes()) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && l == lowers.last().unwrap() => {
                // The first lowerdir+ refused: a kernel without it (before 6.8).
                return mount_legacy(lowers, upper, work, target);
            }
            r => r?,
        }
    }
    set_string(&fs, "upperdir", upper.as_os_str().as_bytes())?;
    set_string(&fs, "workdir", work.as_os_str().as_bytes())?;
    mount::fsconfig_create(&fs).map_err(|e| with_log(&fs, e.into(), "create"))?;
    // A detached mount, attached at `target` only once complete.
    let mnt = mount::fsmount(
        &fs,
        mount::FsMountFlags::FSMOUNT_CLOEXEC,
        mount::MountAttrFlags::empty(),
    )?;
    mount::move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        target,
        mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?;
    Ok(())
}

fn mount_legacy(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> io::Result<()> {
    let esc = |p: &Path| -> io::Result<String> {
        let s = p.to_str().filter(|s| !s.contains([':', ',']));
        s.map(str::to_string).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("overlay path {} has ':' or ','", p.display()),
            )
        })
    };
    let mut l = Vec::new();
    for p in lowers.iter().rev() {
        l.push(esc(p)?);
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={},index=off",
        l.join(":"),
        esc(upper)?,
        esc(work)?
    );
    if opts.len() >= 4096 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many layers for a mount(2) option page on this kernel",
        ));
    }
    nix::mount::mount(
        Some("mocker-pull"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(opts.as_str()),
    )
    .map_err(io::Error::from)
}

/// Unmount `target`; `Ok(false)` if nothing was mounted there.
pub fn unmount(target: &Path, detach: bool) -> io::Result<bool> {
    let flags = if detach {
        MntFlags::MNT_DETACH
    } else {
        MntFlags::empty()
    };
    match nix::mount::umount2(target, flags) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether `path` is a mount point distinct from its parent (overlay has its own st_dev).
pub fn is_mounted(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let parent = path.parent().unwrap_or(Path::new("/"));
    match (std::fs::symlink_metadata(path), std::fs::metadata(parent)) {
        (Ok(a), Ok(b)) => a.dev() != b.dev(),
        _ => false,
    }
}

/// The first directory of a layer that stands where a lower layer has a symlink, if any.
///
/// Each layer is extracted alone, so a tar entry `lib/x` over a lower `lib -> usr/lib` makes a
/// real `lib/` that would *hide* the symlink in the overlay, where applying the layers in
/// order writes *through* it (and must refuse it when it points out of the root). Such images
/// are rare (docker's own diffs never contain them); the caller assembles them the exact,
/// sequential way instead. `layers` is in image order, bottom first.
pub fn find_dir_over_symlink(layers: &[PathBuf]) -> io::Result<Option<PathBuf>> {
    for n in 1..layers.len() {
        let lowers: Vec<OwnedFd> = layers[..n]
            .iter()
            .rev()
            .map(|p| open_dir_beneath(None, p))
            .collect::<io::Result<_>>()?;
        if let Some(p) = walk_dirs(&layers[n], Path::new(""), &lowers)? {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

fn walk_dirs(layer: &Path, rel: &Path, lowers: &[OwnedFd]) -> io::Result<Option<PathBuf>> {
    for e in std::fs::read_dir(layer.join(rel))? {
        let e = e?;
        if !e.file_type()?.is_dir() {
            continue;
        }
        let p = rel.join(e.file_name());
        // The topmost lower holding the path decides what the overlay would show there.
        let mut in_lower = false;
        for l in lowers {
            match lstat_beneath(l, &p) {
                None => continue,
                Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => return Ok(Some(p)),
                Some(st) => {
                    in_lower = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
                    break;
                }
            }
        }
        // A directory new in this layer cannot sit over anything deeper down.
        if in_lower {
            if let Some(hit) = walk_dirs(layer, &p, lowers)? {
                return Ok(Some(hit));
            }
        }
    }
    Ok(None)
}

fn open_dir_beneath(dir: Option<&OwnedFd>, path: &Path) -> io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags, ResolveFlags, openat2};
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    Ok(match dir {
        Some(d) => openat2(
            d,
            path,
            flags,
            Mode::empty(),
            ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH,
        )?,
        // The layer root itself is a path we chose: only forbid symlinks.
        None => openat2(
            rustix::fs::CWD,
            path,
            flags,
            Mode::empty(),
            ResolveFlags::NO_SYMLINKS,
        )?,
    })
}

/// lstat of `rel` under `root` without following any symlink on the way (None if absent or
/// if a component is not a directory).
fn lstat_beneath(root: &OwnedFd, rel: &Path) -> Option<libc::stat> {
    let parent = match rel.parent() {
        Some(p) if !p.as_os_str().is_empty() => open_dir_beneath(Some(root), p).ok()?,
        _ => root.try_clone().ok()?,
    };
    nix::sys::stat::fstatat(
        Some(parent.as_raw_fd()),
        rel.file_name()?,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .ok()
}

/// Directories under `root` (and `""` for root itself) that the layer's tar did not list
/// (`listed`, as layer application reports it): made as parents of its entries.
pub fn implicit_dirs(root: &Path, listed: &[PathBuf]) -> Vec<String> {
    fn walk(root: &Path, rel: &Path, listed: &HashSet<&Path>, out: &mut Vec<String>) {
        let p = root.join(rel);
        if !std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            return;
        }
        if !listed.contains(rel) {
            out.push(rel.to_string_lossy().into_owned());
        }
        if let Ok(rd) = std::fs::read_dir(&p) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(root, &rel.join(e.file_name()), listed, out);
                }
            }
        }
    }
    let listed: HashSet<&Path> = listed.iter().map(PathBuf::as_path).collect();
    let mut out = Vec::new();
    walk(root, Path::new(""), &listed, &mut out);
    out
}

/// A layer for [`copy_up_implicit_dirs`]: its dir and the directories its tar did not list.
pub struct LayerDirs {
    pub root: PathBuf,
    pub implicit: Vec<String>,
}

/// Give `upper` a copy of every implicit directory of the layers, with the attributes (mode,
/// owner, mtime) of the topmost layer that lists it explicitly, so the overlay shows what
/// applying the layers in order would: a parent dir made by a later layer's extraction must
/// not hide an earlier layer's `/tmp 1777` behind a default 0755. `layers` bottom first.
pub fn copy_up_implicit_dirs(layers: &[LayerDirs], upper: &Path) -> io::Result<()> {
    use std::collections::BTreeSet;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut wanted: BTreeSet<PathBuf> = BTreeSet::new();
    for l in layers.iter().skip(1) {
        for d in &l.implicit {
            let p = PathBuf::from(d);
            // Each ancestor is made in the upper dir too, so each needs its right attributes.
            for a in p.ancestors() {
                wanted.insert(a.to_path_buf());
            }
        }
    }
    let roots: Vec<OwnedFd> = layers
        .iter()
        .map(|l| open_dir_beneath(None, &l.root))
        .collect::<io::Result<_>>()?;
    // Shallow first, so parents exist before their children.
    let mut wanted: Vec<PathBuf> = wanted.into_iter().collect();
    wanted.sort_by_key(|p| p.components().count());
    let mut times = Vec::new();
    let mut skipped: Vec<PathBuf> = Vec::new();
    for rel in wanted {
        if skipped.iter().any(|s| rel.starts_with(s)) {
            continue;
        }
        let rel_s = rel.to_string_lossy();
        // The topmost layer holding the path decides: a non-directory (or whiteout) there
        // means the overlay shows no directory; an implicit one defers to the layers below.
        let mut source = None;
        for i in (0..layers.len()).rev() {
            let st = if rel.as_os_str().is_empty() {
                nix::sys::stat::fstat(roots[i].as_raw_fd()).ok()
            } else {
                lstat_beneath(&roots[i], &rel)
            };
            let Some(st) = st else { continue };
            if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                break;
            }
            if layers[i].implicit.iter().any(|d| *d == rel_s) {
                continue;
            }
            source = Some(st);
            break;
        }
        let Some(st) = source else {
            if !rel.as_os_str().is_empty() {
                skipped.push(rel);
            }
            continue;
        };
        let dst = upper.join(&rel);
        match std::fs::symlink_metadata(&dst) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => continue,
            Err(_) => std::fs::create_dir(&dst)?,
        }
        let m = std::fs::symlink_metadata(&dst)?;
        if m.uid() != st.st_uid || m.gid() != st.st_gid {
            nix::unistd::chown(
                &dst,
                Some(nix::unistd::Uid::from_raw(st.st_uid)),
                Some(nix::unistd::Gid::from_raw(st.st_gid)),
            )?;
        }
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(st.st_mode & 0o7777))?;
        times.push((dst, st.st_mtime, st.st_mtime_nsec));
    }
    // Deepest first: setting a child's mtime does not touch its parent's.
    for (p, s, ns) in times.into_iter().rev() {
        let t = nix::sys::time::TimeSpec::new(s, ns);
        nix::sys::stat::utimensat(
            None,
            &p,
            &t,
            &t,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    /// 150 layers with 64-hex names overflow mount(2)'s one-page option string; lowerdir+
    /// does not care. Writes go to the upper dir only.
    #[test]
    fn many_long_layer_paths_mount_and_stay_read_only() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to mount");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let lowers: Vec<PathBuf> = (0..150)
            .map(|i| {
                let p = d.path().join(format!("{i:064x}")).join("rootfs");
                fs::create_dir_all(&p).unwrap();
                fs::write(p.join(format!("f{i}")), format!("{i}")).unwrap();
                fs::write(p.join("top"), format!("{i}")).unwrap();
                p
            })
            .collect();
        let opts_len: usize = lowers.iter().map(|p| p.as_os_str().len() + 1).sum();
        assert!(opts_len > 4096, "the test must exceed a page: {opts_len}");
        let (upper, work, target) = (d.path().join("u"), d.path().join("w"), d.path().join("m"));
        for p in [&upper, &work, &target] {
            fs::create_dir(p).unwrap();
        }
        mount(&lowers, &upper, &work, &target).unwrap();
        assert!(is_mounted(&target));
        let r = std::panic::catch_unwind(|| {
            assert_eq!(fs::read_to_string(target.join("f0")).unwrap(), "0");
            assert_eq!(fs::read_to_string(target.join("f149")).unwrap(), "149");
            // The last layer in image order is on top.
            assert_eq!(fs::read_to_string(target.join("top")).unwrap(), "149");
            fs::write(target.join("f3"), "changed").unwrap();
            assert_eq!(fs::read_to_string(lowers[3].join("f3")).unwrap(), "3");
            assert_eq!(fs::read_to_string(upper.join("f3")).unwrap(), "changed");
        });
        assert!(unmount(&target, false).unwrap());
        assert!(!is_mounted(&target));
        assert!(
            !unmount(&target, false).unwrap(),
            "nothing mounted any more"
        );
        r.unwrap();
    }

    #[test]
    fn implicit_dirs_show_the_lower_layers_attributes() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let d = tempfile::tempdir().unwrap();
        let (l0, l1, up) = (
            d.path().join("l0"),
            d.path().join("l1"),
            d.path().join("up"),
        );
        // Layer 0 lists /tmp (1777, old mtime) and a file where layer 1 has nothing.
        fs::create_dir_all(l0.join("tmp")).unwrap();
        fs::create_dir_all(l0.join("gone")).unwrap();
        fs::set_permissions(l0.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
        let old = nix::sys::time::TimeSpec::new(1_000_000, 0);
        nix::sys::stat::utimensat(
            None,
            &l0.join("tmp"),
            &old,
            &old,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
        // Layer 1 adds tmp/x without listing tmp/ (or anything), and replaces gone/ by a file.
        fs::create_dir_all(l1.join("tmp/x")).unwrap();
        fs::write(l1.join("gone"), "file").unwrap();
        let imp = implicit_dirs(&l1, &[]);
        assert!(imp.contains(&"tmp".to_string()) && imp.contains(&"tmp/x".to_string()));
        assert!(imp.contains(&String::new()), "{imp:?}");
        fs::create_dir(&up).unwrap();
        let layers = vec![
            LayerDirs {
                root: l0.clone(),
                implicit: vec![],
            },
            LayerDirs {
                root: l1.clone(),
                implicit: imp,
            },
        ];
        copy_up_implicit_dirs(&layers, &up).unwrap();
        let m = fs::metadata(up.join("tmp")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o1777);
        assert_eq!(m.mtime(), 1_000_000);
        // Nothing explicit below tmp/x: left to the layer; nothing made over the file.
        assert!(!up.join("tmp/x").exists());
        assert!(!up.join("gone").exists());
    }

    #[test]
    fn finds_a_layer_dir_standing_over_a_lower_symlink() {
        let d = tempfile::tempdir().unwrap();
        let l: Vec<PathBuf> = (0..3).map(|i| d.path().join(format!("l{i}"))).collect();
        for p in &l {
            fs::create_dir(p).unwrap();
        }
        fs::create_dir_all(l[0].join("usr/lib")).unwrap();
        symlink("usr/lib", l[0].join("lib")).unwrap();
        symlink("/etc", l[0].join("evil")).unwrap();
        fs::create_dir_all(l[1].join("usr/lib/x")).unwrap();
        fs::create_dir_all(l[2].join("opt/new")).unwrap();
        assert_eq!(find_dir_over_symlink(&l).unwrap(), None);
        // A deeper layer's real dir over the symlink is found, whichever layer it is in.
        fs::create_dir_all(l[2].join("lib/sub")).unwrap();
        assert_eq!(
            find_dir_over_symlink(&l).unwrap(),
            Some(PathBuf::from("lib"))
        );
        fs::remove_dir_all(l[2].join("lib")).unwrap();
        fs::create_dir(l[1].join("evil")).unwrap();
        assert_eq!(
            find_dir_over_symlink(&l).unwrap(),
            Some(PathBuf::from("evil"))
        );
        // A middle layer's dir hides the symlink for the layers above: the overlay agrees.
        fs::remove_dir(l[1].join("evil")).unwrap();
        fs::create_dir_all(l[1].join("usr/lib/y")).unwrap();
        assert_eq!(find_dir_over_symlink(&l[..2]).unwrap(), None);
    }
}
