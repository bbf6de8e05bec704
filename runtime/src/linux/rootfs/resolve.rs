//! Resolving config paths inside the container rootfs before pivot_root.
//!
//! Never a plain join: a symlink in the rootfs (`/proc -> /host/etc`) must not redirect a mount
//! to the host. `openat2(RESOLVE_IN_ROOT)` makes the kernel treat the rootfs as `/` for `..` and
//! absolute symlinks, and the result is an `O_PATH` descriptor, so the object we mount on is the
//! one we resolved (no check-then-use race): mounts target `/proc/self/fd/N`.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::fcntl::{OFlag, openat, readlinkat};
use nix::sys::stat::{Mode, mkdirat};

use crate::linux::sys;

const RESOLVE: u64 = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;

/// What to create when the path does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    Nothing,
    Dir,
    /// A regular file as the last component (bind mounts of files, /dev/null over masked files).
    File,
}

/// An object inside the rootfs, held open by an `O_PATH` descriptor.
pub struct Resolved {
    pub fd: OwnedFd,
}

impl Resolved {
    /// The magic-link path that names exactly this object, for mount(2).
    pub fn proc_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }
}

/// Open `path` (interpreted relative to `root`, absolute or not) inside `root`.
pub fn open(root: BorrowedFd<'_>, path: &Path, create: Create) -> Result<Resolved> {
    open_depth(root, &relative(path), create, 0)
        .with_context(|| format!("resolving {} in the rootfs", path.display()))
}

/// Open `path` inside `root` if it exists (`None` when it does not).
pub fn find(root: BorrowedFd<'_>, path: &Path) -> Result<Option<Resolved>> {
    match sys::openat2(root, &relative(path), libc::O_PATH, RESOLVE) {
        Ok(fd) => Ok(Some(Resolved { fd })),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("resolving {} in the rootfs", path.display())),
    }
}

/// Open `path` inside `root` with no symlink on the way, not even one that stays inside: for
/// what the runtime must find exactly where it expects it (/dev/null, the directories procfs
/// and sysfs go on). `ELOOP` means a symlink was met.
pub fn open_no_symlinks(root: BorrowedFd<'_>, path: &Path) -> std::io::Result<OwnedFd> {
    sys::openat2(
        root,
        &relative(path),
        libc::O_PATH,
        RESOLVE | libc::RESOLVE_NO_SYMLINKS,
    )
}

/// A directory at `path` (created if missing) that is an ordinary directory reached without
/// any symlink: `what` names it in the error.
pub fn open_plain_dir(root: BorrowedFd<'_>, path: &Path, what: &str) -> Result<Resolved> {
    open(root, path, Create::Dir)?;
    let fd = open_no_symlinks(root, path).map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => anyhow::anyhow!(
            "{what}: {} in the rootfs is a symlink; it must be an ordinary directory",
            path.display()
        ),
        _ => anyhow::Error::new(e).context(format!("{what}: {}", path.display())),
    })?;
    let st = nix::sys::stat::fstat(fd.as_raw_fd())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        bail!(
            "{what}: {} in the rootfs is not a directory",
            path.display()
        );
    }
    Ok(Resolved { fd })
}

/// Symlinks followed by hand while creating (the kernel's limit).
const MAX_LINKS: u32 = 40;

fn open_depth(root: BorrowedFd<'_>, rel: &Path, create: Create, depth: u32) -> Result<Resolved> {
    match sys::openat2(root, rel, libc::O_PATH, RESOLVE) {
        Ok(fd) => return Ok(Resolved { fd }),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create != Create::Nothing => {}
        Err(e) => return Err(e.into()),
    }
    if depth > MAX_LINKS {
        bail!("too many levels of symbolic links");
    }
    // Create missing components one by one, each parent resolved inside the root again.
    let parts: Vec<_> = rel.components().collect();
    let mut prefix = PathBuf::new();
    for (i, part) in parts.iter().enumerate() {
        let parent = open_dir(root, &prefix)?;
        let parent_prefix = prefix.clone();
        prefix.push(part);
        match sys::openat2(root, &prefix, libc::O_PATH, RESOLVE) {
            Ok(_) => continue,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e).with_context(|| prefix.display().to_string()),
        }
        let name = Path::new(part.as_os_str());
        // A dangling symlink: create its target (inside the root) instead, like runc.
        if let Ok(target) = readlinkat(Some(parent.as_raw_fd()), name) {
            let target = PathBuf::from(target);
            let mut next = if target.is_absolute() {
                relative(&target)
            } else {
                parent_prefix.join(target)
            };
            for rest in &parts[i + 1..] {
                next.push(rest);
            }
            return open_depth(root, &next, create, depth + 1);
        }
        let made = if i + 1 == parts.len() && create == Create::File {
            openat(
                Some(parent.as_raw_fd()),
                name,
                OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
                Mode::from_bits_truncate(0o644),
            )
            .map(|fd| drop(sys::own_fd(fd)))
        } else {
            mkdirat(
                Some(parent.as_raw_fd()),
                name,
                Mode::from_bits_truncate(0o755),
            )
        };
        match made {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => bail!("creating {}: {e}", prefix.display()),
        }
    }
    let fd = sys::openat2(root, rel, libc::O_PATH, RESOLVE).context("after creating it")?;
    Ok(Resolved { fd })
}

fn open_dir(root: BorrowedFd<'_>, rel: &Path) -> Result<OwnedFd> {
    let p = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    sys::openat2(root, p, libc::O_PATH | libc::O_DIRECTORY, RESOLVE)
        .with_context(|| format!("{} in the rootfs is not a directory", p.display()))
}

/// `/a/./b/` -> `a/b`; `..` is kept and clamped by RESOLVE_IN_ROOT.
fn relative(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::ParentDir => out.push(".."),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_cannot_escape_the_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir(&root).unwrap();
        symlink("/etc", root.join("evil")).unwrap();
        symlink("../../../../tmp", root.join("up")).unwrap();
        let rootfd: OwnedFd = std::fs::File::open(&root).unwrap().into();
        let r = open(
            rootfd.as_fd(),
            Path::new("/evil/passwd-target"),
            Create::Dir,
        )
        .unwrap();
        // Created inside the root (root/etc/passwd-target), not on the host's /etc.
        assert!(root.join("etc/passwd-target").is_dir());
        assert!(!Path::new("/etc/passwd-target").exists());
        drop(r);
        open(rootfd.as_fd(), Path::new("/up/x"), Create::File).unwrap();
        assert!(root.join("tmp/x").is_file());
        assert!(open(rootfd.as_fd(), Path::new("/missing"), Create::Nothing).is_err());
    }

    #[test]
    fn relative_paths_are_normalised() {
        assert_eq!(relative(Path::new("/a/./b/")), PathBuf::from("a/b"));
        assert_eq!(relative(Path::new("/")), PathBuf::from("."));
    }
}
