//! Is a bundle's rootfs still used by a process (a container, or a shell inside it)?
//!
//! Runtime-independent: no runtime state is read, so it works for mocker-runtime, runc, crun
//! or podman alike. A container pivot_roots into the bundle's rootfs in its own mount
//! namespace, where our unmount does not reach: removing the bundle would only detach the
//! host's view and delete files under a running container. `stat(/proc/PID/root)` follows the
//! magic link into the process's mount namespace, and a bind mount or pivot_root keeps the
//! directory's (st_dev, st_ino), so a container's root compares equal to `DIR/rootfs` here.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// How a process uses the rootfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Its root directory is the rootfs or inside it: a container.
    Root,
    /// Its working directory is inside the rootfs.
    Cwd,
}

/// The first process (other than us) whose root or working directory is `rootfs` or inside
/// it. `own_fs` says `rootfs` is a mount with its own superblock (the overlay): then any
/// directory with its st_dev is inside, whatever mount namespace the process is in.
/// Processes we may not inspect (no ptrace access) are skipped.
pub fn process_using(rootfs: &Path, own_fs: bool) -> io::Result<Option<(i32, Use)>> {
    let target = fs::metadata(rootfs)?;
    let canonical = fs::canonicalize(rootfs)?;
    let my_root = fs::metadata("/proc/self/root")?;
    let me = std::process::id() as i32;
    let same = |a: &fs::Metadata, b: &fs::Metadata| a.dev() == b.dev() && a.ino() == b.ino();
    let inside = |m: &fs::Metadata| same(m, &target) || (own_fs && m.dev() == target.dev());
    for entry in fs::read_dir("/proc")? {
        let Some(pid) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let proc = Path::new("/proc").join(pid.to_string());
        // Gone, a zombie, or not ours to inspect: nothing to say about it.
        let Ok(root) = fs::metadata(proc.join("root")) else {
            continue;
        };
        if inside(&root) {
            return Ok(Some((pid, Use::Root)));
        }
        if let Ok(cwd) = fs::metadata(proc.join("cwd")) {
            if own_fs && cwd.dev() == target.dev() {
                return Ok(Some((pid, Use::Cwd)));
            }
        }
        // A plain directory shares its filesystem with the host: compare paths, which only
        // mean the same for processes with our root.
        if !own_fs && same(&root, &my_root) {
            if let Ok(cwd) = fs::read_link(proc.join("cwd")) {
                if cwd.starts_with(&canonical) {
                    return Ok(Some((pid, Use::Cwd)));
                }
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// A process whose working directory is inside the tree is found; the tree's sibling
    /// and the tree itself once the process is gone are not in use.
    #[test]
    fn finds_a_process_working_inside_a_plain_directory() {
        let d = tempfile::tempdir().unwrap();
        let rootfs = d.path().join("rootfs");
        fs::create_dir_all(rootfs.join("tmp")).unwrap();
        fs::create_dir(d.path().join("other")).unwrap();
        assert_eq!(process_using(&rootfs, false).unwrap(), None);
        let child = Kill(
            Command::new("sleep")
                .arg("100")
                .current_dir(rootfs.join("tmp"))
                .stdin(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let pid = child.0.id() as i32;
        assert_eq!(
            process_using(&rootfs, false).unwrap(),
            Some((pid, Use::Cwd))
        );
        assert_eq!(process_using(&d.path().join("other"), false).unwrap(), None);
        drop(child);
        assert_eq!(process_using(&rootfs, false).unwrap(), None);
    }

    /// A chrooted process (what a container is, seen from here) uses the directory.
    #[test]
    fn finds_a_process_rooted_in_the_directory() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to chroot");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let rootfs = d.path().join("rootfs");
        fs::create_dir(&rootfs).unwrap();
        let busybox = Path::new("/bin/busybox");
        if !busybox.is_file() {
            eprintln!("skipped: no /bin/busybox");
            return;
        }
        fs::copy(busybox, rootfs.join("busybox")).unwrap();
        let child = Kill(
            Command::new("chroot")
                .arg(&rootfs)
                .args(["/busybox", "sleep", "100"])
                .stdin(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let pid = child.0.id() as i32;
        // chroot(1) execs the sleep in the same pid once it has changed root.
        let t = std::time::Instant::now();
        loop {
            let r = process_using(&rootfs, false).unwrap();
            if r == Some((pid, Use::Root)) {
                break;
            }
            assert!(t.elapsed().as_secs() < 10, "never seen: {r:?}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
