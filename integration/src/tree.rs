//! Snapshots of a directory tree for comparing unpacked root filesystems: every path with its
//! type, mode, owner, link target, device number, content digest, xattrs and hardlink group.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use sha2::{Digest, Sha256};

/// What one path is, as far as a rootfs comparison cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// `file`, `dir`, `symlink`, `char`, `block`, `fifo`, `socket`.
    pub kind: &'static str,
    /// Permission bits including setuid/setgid/sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Symlink target.
    pub link: Option<String>,
    /// `major:minor` of device nodes.
    pub rdev: Option<String>,
    /// sha256 of a regular file's content.
    pub content: Option<String>,
    /// Extended attributes (all namespaces readable by root), sorted.
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// mtime in seconds (not compared for directories by [`diff`]).
    pub mtime: i64,
    /// The first path (sorted) sharing this inode, for regular files with nlink > 1.
    pub hardlink_of: Option<String>,
}

/// path (relative, `/`-separated) -> node. The root itself is `""`.
pub type Tree = BTreeMap<String, Node>;

fn list_xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(names) = xattr_names(path) else {
        return Vec::new();
    };
    let mut v: Vec<(String, Vec<u8>)> = names
        .into_iter()
        // Kernel-maintained attributes differ between any two copies.
        .filter(|n| !n.starts_with("security.selinux"))
        .filter_map(|n| xattr_get(path, &n).ok().map(|val| (n, val)))
        .collect();
    v.sort();
    v
}

fn cpath(path: &Path) -> std::ffi::CString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes()).expect("no NUL in path")
}

fn xattr_names(path: &Path) -> io::Result<Vec<String>> {
    let c = cpath(path);
    let mut buf = vec![0u8; 4096];
    let n = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(buf[..n as usize]
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect())
}

/// One extended attribute of `path` (not following a final symlink).
pub fn xattr_get(path: &Path, name: &str) -> io::Result<Vec<u8>> {
    let c = cpath(path);
    let n = std::ffi::CString::new(name).expect("no NUL");
    let mut buf = vec![0u8; 65536];
    let r = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(r as usize);
    Ok(buf)
}

/// Snapshots everything under `root` (not following symlinks).
pub fn snapshot(root: &Path) -> io::Result<Tree> {
    let mut tree = Tree::new();
    let mut inodes: HashMap<(u64, u64), String> = HashMap::new();
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let path = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&rel)
        };
        let md = fs::symlink_metadata(&path)?;
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_file() {
            "file"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else if ft.is_fifo() {
            "fifo"
        } else {
            "socket"
        };
        let rdev = (kind == "char" || kind == "block").then(|| {
            let d = md.rdev();
            format!("{}:{}", libc::major(d), libc::minor(d))
        });
        let content = if kind == "file" {
            Some(hex::encode(Sha256::digest(fs::read(&path)?)))
        } else {
            None
        };
        let link = if kind == "symlink" {
            Some(fs::read_link(&path)?.to_string_lossy().into_owned())
        } else {
            None
        };
        let hardlink_of = if kind == "file" && md.nlink() > 1 {
            let first = inodes
                .entry((md.dev(), md.ino()))
                .or_insert_with(|| rel.clone());
            Some(first.clone())
        } else {
            None
        };
        if kind == "dir" {
            for e in fs::read_dir(&path)? {
                let name = e?.file_name().to_string_lossy().into_owned();
                stack.push(if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                });
            }
        }
        tree.insert(
            rel,
            Node {
                kind,
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                link,
                rdev,
                content,
                xattrs: list_xattrs(&path),
                mtime: md.mtime(),
                hardlink_of,
            },
        );
    }
    // Hardlink groups were named by visiting order; rename each to its smallest member.
    let mut smallest: HashMap<String, String> = HashMap::new();
    for (p, n) in &tree {
        if let Some(first) = &n.hardlink_of {
            let e = smallest.entry(first.clone()).or_insert_with(|| p.clone());
            if p < e {
                *e = p.clone();
            }
        }
    }
    for n in tree.values_mut() {
        if let Some(first) = &n.hardlink_of {
            n.hardlink_of = Some(smallest[first].clone());
        }
    }
    Ok(tree)
}

/// Human-readable differences between two trees (empty when equal). The root's own
/// metadata and directory mtimes are not compared; `with_mtime` compares other mtimes.
pub fn diff(a: &Tree, b: &Tree, with_mtime: bool) -> Vec<String> {
    let mut out = Vec::new();
    for (p, na) in a {
        match b.get(p) {
            None => out.push(format!("only in first: {p:?} ({})", na.kind)),
            Some(_) if p.is_empty() => {}
            Some(nb) => {
                let mut na = na.clone();
                let mut nb = nb.clone();
                if !with_mtime || na.kind == "dir" {
                    na.mtime = 0;
                    nb.mtime = 0;
                }
                if na != nb {
                    out.push(format!("{p:?} differs:\n   {na:?}\n   {nb:?}"));
                }
            }
        }
    }
    for (p, nb) in b {
        if !a.contains_key(p) {
            out.push(format!("only in second: {p:?} ({})", nb.kind));
        }
    }
    out
}
