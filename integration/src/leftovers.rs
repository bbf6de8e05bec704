//! Finds (and sweeps) whatever a container left on the host: mounts, cgroups on any
//! hierarchy, its state dir, processes still living in its rootfs.
//!
//! The checks work from the host's point of view, so they hold for any runtime: a process is
//! "in" the container when its root directory (`/proc/PID/root`, followed) is the rootfs
//! directory itself (same device and inode) or its cgroup line names the container id.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Everything that identifies one container's traces on the host.
#[derive(Debug, Clone)]
pub struct Traces {
    pub id: String,
    /// `<root>/<id>`.
    pub state_dir: PathBuf,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// cgroup paths (absolute, relative to each hierarchy's root) the container may have used.
    pub cgroup_paths: Vec<String>,
}

/// A mounted cgroup hierarchy on this host: its mount point and whether it is cgroup2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub mount_point: PathBuf,
    pub v2: bool,
    /// v1 controllers (from the super options), empty for v2.
    pub controllers: Vec<String>,
}

/// The cgroup hierarchies mounted in this mount namespace (from /proc/self/mountinfo).
pub fn cgroup_hierarchies() -> Vec<Hierarchy> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        let (Some(mp), Some(fstype)) = (pre.get(4), post.first()) else {
            continue;
        };
        // Only the hierarchy root: a bind of a sub-cgroup (root != "/") would double count.
        if pre.get(3) != Some(&"/") || !(*fstype == "cgroup" || *fstype == "cgroup2") {
            continue;
        }
        let controllers = if *fstype == "cgroup" {
            post.get(2)
                .map(|o| {
                    o.split(',')
                        .filter(|o| {
                            !matches!(*o, "rw" | "ro" | "relatime")
                                && (!o.contains('=') || o.starts_with("name="))
                        })
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let h = Hierarchy {
            mount_point: PathBuf::from(unescape(mp)),
            v2: *fstype == "cgroup2",
            controllers,
        };
        if !out.iter().any(|o| o.mount_point == h.mount_point) {
            out.push(h);
        }
    }
    out
}

/// True when the only cgroup hierarchy is a cgroup2 (no v1 controller mounted).
pub fn is_pure_v2() -> bool {
    let h = cgroup_hierarchies();
    !h.is_empty() && h.iter().all(|h| h.v2)
}

/// Octal escapes of mountinfo (`\040` for space...).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            if let Ok(n) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(n);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// This process's own cgroup path on hierarchy `h` (from /proc/self/cgroup).
pub fn own_cgroup(h: &Hierarchy) -> Option<String> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = if h.v2 {
            ctrls.is_empty()
        } else {
            let mut a: Vec<&str> = ctrls.split(',').collect();
            let mut b: Vec<&str> = h.controllers.iter().map(String::as_str).collect();
            a.sort();
            b.sort();
            !a.is_empty() && a == b
        };
        matches.then(|| path.to_string())
    })
}

/// The existing cgroup directories of `path` on every hierarchy. An absolute path is taken
/// from each hierarchy's root; a relative one from this process's own cgroup there (where
/// runc puts a container without cgroupsPath on v1).
pub fn cgroup_dirs(path: &str) -> Vec<PathBuf> {
    if path.trim_start_matches('/').is_empty() || path.contains(':') {
        return Vec::new();
    }
    cgroup_hierarchies()
        .into_iter()
        .filter_map(|h| {
            let full = if path.starts_with('/') {
                path.to_string()
            } else {
                format!("{}/{path}", own_cgroup(&h)?)
            };
            let p = h.mount_point.join(full.trim_start_matches('/'));
            p.is_dir().then_some(p)
        })
        .collect()
}

/// Lines of /proc/self/mountinfo whose mount point is under `dir`, or that mention `needle`.
pub fn mounts_mentioning(dirs: &[&Path], needle: &str) -> Vec<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter(|line| {
            let mp = line.split(' ').nth(4).map(unescape).unwrap_or_default();
            dirs.iter().any(|d| Path::new(&mp).starts_with(d))
                || (!needle.is_empty() && line.contains(needle))
        })
        .map(str::to_string)
        .collect()
}

/// Pids whose root directory is `rootfs` or whose cgroup names `id`.
pub fn processes_in(rootfs: &Path, id: &str) -> Vec<i32> {
    let target = fs::metadata(rootfs).ok().map(|m| (m.dev(), m.ino()));
    let me = std::process::id() as i32;
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let root_match = target.is_some()
            && fs::metadata(format!("/proc/{pid}/root/"))
                .map(|m| Some((m.dev(), m.ino())) == target)
                .unwrap_or(false);
        let cgroup_match = !id.is_empty()
            && fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .map(|c| c.lines().any(|l| l.split('/').any(|part| part == id)))
                .unwrap_or(false);
        // A zombie has no root link any more but still counts until reaped.
        if root_match || cgroup_match {
            pids.push(pid);
        }
    }
    pids
}

impl Traces {
    /// Human-readable list of what remains; empty when the container is fully gone.
    pub fn scan(&self) -> Vec<String> {
        let mut found = Vec::new();
        if self.state_dir.exists() {
            found.push(format!("state dir {}", self.state_dir.display()));
        }
        for line in mounts_mentioning(&[&self.bundle, &self.rootfs], &self.id) {
            found.push(format!("mount: {line}"));
        }
        for path in &self.cgroup_paths {
            for d in cgroup_dirs(path) {
                found.push(format!("cgroup dir {}", d.display()));
            }
        }
        for pid in processes_in(&self.rootfs, &self.id) {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            found.push(format!("process {pid} ({})", comm.trim()));
        }
        found
    }

    /// Panics with the list of leftovers, if any.
    pub fn assert_clean(&self) {
        let found = self.scan();
        assert!(
            found.is_empty(),
            "container {} left traces:\n  {}",
            self.id,
            found.join("\n  ")
        );
    }

    /// Best effort removal of every trace (for Drop after a failed test): kills the
    /// processes, detaches the mounts, removes cgroup dirs and the state dir.
    pub fn sweep(&self) {
        for _ in 0..50 {
            let pids = processes_in(&self.rootfs, &self.id);
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let mut mps: Vec<String> = mounts_mentioning(&[&self.bundle, &self.rootfs], "")
            .iter()
            .filter_map(|l| l.split(' ').nth(4).map(unescape))
            .collect();
        mps.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for mp in mps {
            let _ = nix::mount::umount2(mp.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        for path in &self.cgroup_paths {
            for d in cgroup_dirs(path) {
                remove_cgroup_tree(&d);
            }
        }
        let _ = fs::remove_dir_all(&self.state_dir);
    }
}

/// rmdir a cgroup and its children, deepest first (cgroup dirs only allow rmdir).
fn remove_cgroup_tree(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

/// Mount count of this mount namespace.
pub fn mount_count() -> usize {
    fs::read_to_string("/proc/self/mountinfo")
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// Open fd count of this process.
pub fn fd_count() -> usize {
    fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_mountinfo() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
    }

    #[test]
    fn finds_hierarchies() {
        let h = cgroup_hierarchies();
        assert!(!h.is_empty(), "no cgroup hierarchy mounted");
    }
}
