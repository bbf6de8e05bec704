//! Resolving untrusted paths inside a root directory without ever escaping it.
//!
//! A [`Root`] holds an `O_PATH` fd on the root directory, opened once without following a
//! symlink; every lookup starts from that fd, so replacing the root directory (or one of its
//! parents) by a symlink after opening changes nothing (CVE-2021-29136).
//!
//! Resolution treats the root as `/`: absolute symlinks restart at the root, `..` stops at the
//! root. The fast path is one `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`. When the
//! kernel says the path leaves the root (`EXDEV`: an absolute symlink or a `..` above the
//! root), a userspace walk (component by component, `O_NOFOLLOW` opens) classifies it: a
//! *relative* symlink climbing above the root is refused (no image needs one, it is the
//! classic tar escape, so the user gets an error instead of a silent clamp), while absolute
//! symlinks (`/var/run -> /run`, the image's own view of its tree) are then opened by the
//! kernel with `RESOLVE_IN_ROOT`. Without `openat2` (`ENOSYS`, or `MOCKER_NO_OPENAT2` set)
//! the walk's own result is used.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::sys;
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{Mode, SFlag};

/// Symlinks followed in one resolution before giving up with `ELOOP` (the kernel's limit).
const MAX_SYMLINKS: u32 = 40;

/// A directory every lookup is confined to.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
    openat2: AtomicBool,
}

/// The lexical form of `path` relative to a root: `.`, empty and leading `/` components are
/// dropped and `..` above the root is mapped to the root (`../../etc` -> `etc`).
pub fn clean(path: &Path) -> PathBuf {
    let mut out: Vec<&OsStr> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out.iter().collect()
}

/// Like [`clean`], but `None` when a `..` would climb above the root (a traversal attempt).
pub fn clean_within(path: &Path) -> Option<PathBuf> {
    let mut out: Vec<&OsStr> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop()?;
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Some(out.iter().collect())
}

fn errno(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

fn open_at(dir: BorrowedFd<'_>, name: &OsStr, flags: OFlag) -> io::Result<OwnedFd> {
    nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        flags | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(sys::own)
    .map_err(errno)
}

impl Root {
    /// Open `path` as a root. `path` itself must be a directory, not a symlink to one.
    pub fn open(path: &Path) -> io::Result<Root> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::ELOOP | Errno::ENOTDIR if is_symlink(path) => io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a symlink; refusing to use it as a root",
            ),
            e => errno(e),
        })?;
        let root = Root {
            fd: sys::own(fd),
            path: path.to_path_buf(),
            openat2: AtomicBool::new(true),
        };
        // `MOCKER_NO_OPENAT2` forces the userspace walk (to test it, or to dodge a kernel bug).
        if std::env::var_os("MOCKER_NO_OPENAT2").is_some() {
            root.openat2.store(false, Ordering::Relaxed);
        // Probe once: kernels before 5.6 (or seccomp filters) answer ENOSYS.
        } else if let Err(e) =
            root.openat2(Path::new("."), OFlag::O_PATH, ResolveFlag::RESOLVE_BENEATH)
        {
            if e.raw_os_error() == Some(libc::ENOSYS) {
                root.openat2.store(false, Ordering::Relaxed);
            }
        }
        Ok(root)
    }

    /// Force the userspace walk (tests exercise both resolvers).
    #[doc(hidden)]
    pub fn without_openat2(self) -> Root {
        self.openat2.store(false, Ordering::Relaxed);
        self
    }

    /// The path the root was opened at (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An `O_RDONLY` fd on the root directory itself (readable, unlike the `O_PATH` one).
    pub fn dir(&self) -> io::Result<OwnedFd> {
        open_at(
            self.fd.as_fd(),
            OsStr::new("."),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        )
    }

    fn openat2(&self, rel: &Path, flags: OFlag, scope: ResolveFlag) -> io::Result<OwnedFd> {
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .resolve(scope | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let rel: &Path = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        nix::fcntl::openat2(self.fd.as_raw_fd(), rel, how)
            .map(sys::own)
            .map_err(errno)
    }

    /// Open `rel` (relative to the root; it is cleaned lexically first) with `flags`,
    /// following symlinks inside the root. With `O_NOFOLLOW` in `flags` a final symlink is not
    /// followed (combine with `O_PATH` to get an fd on the link itself).
    pub fn open_path(&self, rel: &Path, flags: OFlag) -> io::Result<OwnedFd> {
        let rel = clean(rel);
        if self.openat2.load(Ordering::Relaxed) {
            match self.openat2(&rel, flags, ResolveFlag::RESOLVE_BENEATH) {
                Ok(fd) => return Ok(fd),
                // EXDEV: resolution left the root; EAGAIN: a concurrent rename. The walk
                // tells an absolute symlink (fine) from an escape (refused); the kernel then
                // opens it with RESOLVE_IN_ROOT, immune to renames racing the walk.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EXDEV | libc::EAGAIN)) => {
                    drop(self.walk(&rel, flags | OFlag::O_PATH)?);
                    let mut tries = 0;
                    loop {
                        match self.openat2(&rel, flags, ResolveFlag::RESOLVE_IN_ROOT) {
                            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && tries < 8 => {
                                tries += 1;
                            }
                            r => return r,
                        }
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                    self.openat2.store(false, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        self.walk(&rel, flags)
    }

    /// Userspace resolution: one `O_NOFOLLOW` open per component, symlinks expanded by hand.
    fn walk(&self, rel: &Path, flags: OFlag) -> io::Result<OwnedFd> {
        let follow_final = !flags.contains(OFlag::O_NOFOLLOW);
        // (component, came from a relative symlink)
        let mut todo: VecDeque<(OsString, bool)> = rel
            .components()
            .map(|c| (c.as_os_str().to_os_string(), false))
            .collect();
        let mut stack: Vec<OwnedFd> = Vec::new();
        let mut links = 0;
        while let Some((comp, from_relative_link)) = todo.pop_front() {
            let cur = stack.last().map_or(self.fd.as_fd(), |f| f.as_fd());
            match comp.as_bytes() {
                b"." | b"/" | b"" => continue,
                b".." => {
                    if stack.pop().is_none() && from_relative_link {
                        return Err(io::Error::new(
                            io::ErrorKind::PermissionDenied,
                            format!(
                                "{}: a relative symlink climbs above the root",
                                rel.display()
                            ),
                        ));
                    }
                    continue;
                }
                _ => {}
            }
            let last = todo.is_empty();
            let fd = open_at(cur, &comp, OFlag::O_PATH | OFlag::O_NOFOLLOW)?;
            let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(errno)?;
            let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
            if kind == SFlag::S_IFLNK && (!last || follow_final) {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(errno(Errno::ELOOP));
                }
                let target = nix::fcntl::readlinkat(Some(fd.as_raw_fd()), "").map_err(errno)?;
                let target = PathBuf::from(target);
                let relative = !target.is_absolute();
                if !relative {
                    stack.clear();
                }
                for c in target.components().rev() {
                    todo.push_front((c.as_os_str().to_os_string(), relative));
                }
                continue;
            }
            if last {
                return if flags.contains(OFlag::O_PATH) && flags.contains(OFlag::O_NOFOLLOW) {
                    Ok(fd)
                } else {
                    open_at(cur, &comp, flags | OFlag::O_NOFOLLOW)
                };
            }
            if kind != SFlag::S_IFDIR {
                return Err(errno(Errno::ENOTDIR));
            }
            stack.push(fd);
        }
        let cur = stack.last().map_or(self.fd.as_fd(), |f| f.as_fd());
        open_at(cur, OsStr::new("."), flags & !OFlag::O_NOFOLLOW)
    }

    /// Open the directory `rel` for reading, following symlinks inside the root.
    pub fn open_dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        self.open_path(rel, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
    }

    /// `mkdir -p rel` inside the root (new directories 0755, owned by the caller); returns the
    /// directory open for reading. Symlinks on the way are followed inside the root. A
    /// dangling one is refused (`PermissionDenied`) rather than given a target: a link to a
    /// path the image does not have (`evil -> /home/victim`) is how a layer aims outside,
    /// while the links real images write through (`var/run -> /run`) lead to directories
    /// they ship. Iterative over the components: a hostile layer can nest thousands.
    pub fn mkdir_all(&self, rel: &Path) -> io::Result<OwnedFd> {
        let rel = clean(rel);
        match self.open_dir(&rel) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            r => return r,
        }
        let mut cur = self.dir()?;
        let mut done = PathBuf::new();
        for comp in rel.components() {
            let name = comp.as_os_str();
            done.push(name);
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
            let err = match open_at(cur.as_fd(), name, flags) {
                Ok(fd) => {
                    cur = fd;
                    continue;
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    let made = match nix::sys::stat::mkdirat(
                        Some(cur.as_raw_fd()),
                        name,
                        Mode::from_bits_truncate(0o755),
                    ) {
                        Ok(()) => true,
                        Err(Errno::EEXIST) => false,
                        Err(e) => return Err(errno(e)),
                    };
                    match open_at(cur.as_fd(), name, flags) {
                        Ok(fd) => {
                            if made {
                                // 0755 whatever the umask: implicit parents must stay
                                // traversable for the container's users.
                                nix::sys::stat::fchmod(
                                    fd.as_raw_fd(),
                                    Mode::from_bits_truncate(0o755),
                                )
                                .map_err(errno)?;
                            }
                            cur = fd;
                            continue;
                        }
                        Err(e) => e,
                    }
                }
                Err(e) => e,
            };
            // Not a plain directory: a symlink (followed inside the root) or something else
            // (the error stands).
            let Ok(target) = nix::fcntl::readlinkat(Some(cur.as_raw_fd()), name) else {
                return Err(err);
            };
            cur = match self.open_dir(&done) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        format!(
                            "symlink `{}` -> `{}` leads to nothing inside the root",
                            done.display(),
                            Path::new(&target).display()
                        ),
                    ));
                }
                Err(e) => return Err(e),
            };
        }
        Ok(cur)
    }

    /// The directory holding `rel` (created with [`Root::mkdir_all`] when `create`) and the
    /// final name, which is never followed: operate on it with `*at` calls and `NOFOLLOW`.
    /// `rel` must name something below the root (not the root itself).
    pub fn parent_of(&self, rel: &Path, create: bool) -> io::Result<(OwnedFd, OsString)> {
        let rel = clean(rel);
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "names the root itself",
            ));
        };
        let fd = if create {
            self.mkdir_all(parent)?
        } else {
            self.open_dir(parent)?
        };
        Ok((fd, name.to_os_string()))
    }

    /// Read a whole file inside the root (following symlinks inside it).
    pub fn read(&self, rel: &Path) -> io::Result<Vec<u8>> {
        use std::io::Read;
        let fd = self.open_path(rel, OFlag::O_RDONLY)?;
        let mut buf = Vec::new();
        std::fs::File::from(fd).read_to_end(&mut buf)?;
        Ok(buf)
    }
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

impl AsFd for Root {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    /// A root inside a temp dir, with a sentinel file next to it that must never be reached.
    fn setup() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("etc/passwd"), "inside").unwrap();
        fs::create_dir_all(t.path().join("outside")).unwrap();
        fs::write(t.path().join("outside/secret"), "outside").unwrap();
        (t, root)
    }

    fn both(root: &Path) -> [Root; 2] {
        [
            Root::open(root).unwrap(),
            Root::open(root).unwrap().without_openat2(),
        ]
    }

    fn read(r: &Root, p: &str) -> io::Result<String> {
        r.read(Path::new(p)).map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn clean_maps_dotdot_to_root() {
        assert_eq!(
            clean(Path::new("../../etc/passwd")),
            Path::new("etc/passwd")
        );
        assert_eq!(clean(Path::new("/a/./b/../c")), Path::new("a/c"));
        assert_eq!(clean(Path::new("./")), Path::new(""));
        assert_eq!(clean_within(Path::new("a/../../b")), None);
        assert_eq!(clean_within(Path::new("a/../b")), Some(PathBuf::from("b")));
        assert_eq!(clean_within(Path::new("/")), Some(PathBuf::new()));
    }

    #[test]
    fn absolute_symlink_stays_inside() {
        let (t, root) = setup();
        symlink("/etc", root.join("abs")).unwrap();
        symlink(t.path().join("outside"), root.join("host")).unwrap();
        for r in both(&root) {
            assert_eq!(read(&r, "abs/passwd").unwrap(), "inside");
            // A host path in a link is read as a path inside the root: not found there.
            assert_eq!(
                read(&r, "host/secret").unwrap_err().raw_os_error(),
                Some(libc::ENOENT)
            );
        }
    }

    #[test]
    fn relative_escape_is_refused() {
        let (_t, root) = setup();
        symlink("../../../../outside", root.join("up")).unwrap();
        fs::create_dir(root.join("d")).unwrap();
        symlink("../..", root.join("d/up2")).unwrap();
        for r in both(&root) {
            let e = read(&r, "up/secret").unwrap_err();
            assert!(e.to_string().contains("climbs above the root"), "{e}");
            let e = read(&r, "d/up2/outside/secret").unwrap_err();
            assert!(e.to_string().contains("climbs above the root"), "{e}");
        }
    }

    #[test]
    fn relative_links_inside_work() {
        let (_t, root) = setup();
        fs::create_dir_all(root.join("usr/lib")).unwrap();
        fs::write(root.join("usr/lib/x"), "x").unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        fs::create_dir_all(root.join("a/b")).unwrap();
        symlink("../../usr/lib/x", root.join("a/b/x")).unwrap();
        for r in both(&root) {
            assert_eq!(read(&r, "lib/x").unwrap(), "x");
            assert_eq!(read(&r, "a/b/x").unwrap(), "x");
        }
    }

    #[test]
    fn loops_end_with_eloop() {
        let (_t, root) = setup();
        symlink("b", root.join("a")).unwrap();
        symlink("a", root.join("b")).unwrap();
        symlink("self/x", root.join("self")).unwrap();
        for r in both(&root) {
            assert_eq!(read(&r, "a").unwrap_err().raw_os_error(), Some(libc::ELOOP));
            assert_eq!(
                read(&r, "self/x").unwrap_err().raw_os_error(),
                Some(libc::ELOOP)
            );
        }
    }

    #[test]
    fn nofollow_opens_the_link_itself() {
        let (_t, root) = setup();
        symlink("/etc/passwd", root.join("l")).unwrap();
        for r in both(&root) {
            let fd = r
                .open_path(Path::new("l"), OFlag::O_PATH | OFlag::O_NOFOLLOW)
                .unwrap();
            let st = nix::sys::stat::fstat(fd.as_raw_fd()).unwrap();
            assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFLNK);
        }
    }

    #[test]
    fn mkdir_all_through_symlinks_stays_inside() {
        let (t, root) = setup();
        symlink("/", root.join("slash")).unwrap();
        symlink("../../..", root.join("dots")).unwrap();
        symlink("/nowhere/deep", root.join("dangling")).unwrap();
        for r in both(&root) {
            r.mkdir_all(Path::new("slash/new/dir")).unwrap();
            assert!(root.join("new/dir").is_dir());
            assert!(r.mkdir_all(Path::new("dots/evil")).is_err());
            let e = r.mkdir_all(Path::new("dangling/x")).unwrap_err();
            assert!(
                e.to_string().contains("`dangling` -> `/nowhere/deep`"),
                "{e}"
            );
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
            assert!(!root.join("nowhere").exists());
            let (_fd, name) = r.parent_of(Path::new("../../a/b/c"), true).unwrap();
            assert_eq!(name, "c");
            assert!(root.join("a/b").is_dir());
            fs::remove_dir_all(root.join("new")).unwrap();
        }
        assert!(!t.path().join("evil").exists());
        assert!(!t.path().join("new").exists());
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 2);
    }

    #[test]
    fn mkdir_all_handles_deep_paths_and_symlink_loops() {
        let (_t, root) = setup();
        let deep: PathBuf = std::iter::repeat_n("d", 600).collect();
        symlink("l2", root.join("l1")).unwrap();
        symlink("l1", root.join("l2")).unwrap();
        symlink("/b/x", root.join("a")).unwrap();
        symlink("/a/y", root.join("b")).unwrap();
        fs::create_dir(root.join("run")).unwrap();
        symlink("/run", root.join("var-run")).unwrap();
        for r in both(&root) {
            r.mkdir_all(&deep).unwrap();
            assert_eq!(
                r.mkdir_all(Path::new("l1/x")).unwrap_err().raw_os_error(),
                Some(libc::ELOOP)
            );
            assert!(r.mkdir_all(Path::new("a/z")).is_err());
            r.mkdir_all(Path::new("var-run/x/y")).unwrap();
            assert!(root.join("run/x/y").is_dir());
        }
        assert!(root.join(&deep).is_dir());
    }

    #[test]
    fn symlinked_root_is_refused() {
        let (t, root) = setup();
        symlink(&root, t.path().join("link")).unwrap();
        let e = Root::open(&t.path().join("link")).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
    }

    #[test]
    fn root_swapped_after_open_is_not_followed() {
        let (t, root) = setup();
        let r = Root::open(&root).unwrap();
        fs::rename(&root, t.path().join("moved")).unwrap();
        symlink(t.path().join("outside"), &root).unwrap();
        assert_eq!(read(&r, "etc/passwd").unwrap(), "inside");
        assert!(read(&r, "secret").is_err());
    }

    #[test]
    fn file_in_the_middle_is_enotdir() {
        let (_t, root) = setup();
        for r in both(&root) {
            assert_eq!(
                read(&r, "etc/passwd/x").unwrap_err().raw_os_error(),
                Some(libc::ENOTDIR)
            );
        }
    }
}
