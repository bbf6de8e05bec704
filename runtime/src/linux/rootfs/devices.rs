//! /dev contents: the default devices every container gets, `linux.devices`, and the standard
//! symlinks (`/dev/fd`, `/dev/stdin`..., `/dev/ptmx -> pts/ptmx`).

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, open, openat};
use nix::sys::stat::{Mode, SFlag, fstatat, makedev, mknodat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchownat, symlinkat, unlinkat};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::resolve;

/// A device node to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub path: PathBuf,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The runtime-spec's default devices (config-linux.md "Default Devices").
pub fn default_nodes() -> Vec<Node> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .into_iter()
    .map(|(name, major, minor)| Node {
        path: PathBuf::from("/dev").join(name),
        kind: SFlag::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

/// One `linux.devices` entry as a node (index for the error message).
pub fn node_from_spec(i: usize, d: &LinuxDevice) -> Result<Node> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            bail!("linux.devices[{i}].type: \"a\" is only valid in device cgroup rules")
        }
    };
    if !d.path().is_absolute() {
        bail!("linux.devices[{i}].path: must be absolute");
    }
    Ok(Node {
        path: d.path().clone(),
        kind,
        major: d.major() as u64,
        minor: d.minor() as u64,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

/// Default devices unless the config lists the same path, then the configured ones.
pub fn plan(devices: &[LinuxDevice]) -> Result<Vec<Node>> {
    let configured: Vec<Node> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| node_from_spec(i, d))
        .collect::<Result<_>>()?;
    let mut all: Vec<Node> = default_nodes()
        .into_iter()
        .filter(|n| !configured.iter().any(|c| c.path == n.path))
        .collect();
    all.extend(configured);
    Ok(all)
}

/// Create `node` inside the rootfs (umask is 0 during rootfs setup, so `mode` is exact).
///
/// Its directory must be reached without symlinks, and whatever the image left at its name
/// that is not this very device (a symlink to a /proc file, a regular file) is replaced:
/// processes in the container and the runtime itself (masked paths bind /dev/null) must get
/// the device the config names (CVE-2025-31133).
pub fn create_node(root: BorrowedFd<'_>, node: &Node) -> Result<()> {
    let what = || format!("device {}", node.path.display());
    let (parent, name) = split(&node.path).with_context(what)?;
    let dir = resolve::open_plain_dir(root, parent, "linux.devices").with_context(what)?;
    let dirfd = dir.fd.as_raw_fd();
    let make = || {
        mknodat(
            Some(dirfd),
            name,
            node.kind,
            Mode::from_bits_truncate(node.mode),
            makedev(node.major, node.minor),
        )
    };
    match make() {
        Ok(()) => {}
        Err(Errno::EEXIST) if is_node(dirfd, name, node) => return Ok(()),
        Err(Errno::EEXIST) => {
            unlinkat(Some(dirfd), name, UnlinkatFlags::NoRemoveDir)
                .with_context(|| format!("{}: replace what the image has there", what()))?;
            make().with_context(|| format!("{}: mknod", what()))?;
        }
        Err(e) => return Err(e).with_context(|| format!("{}: mknod", what())),
    }
    fchownat(
        Some(dirfd),
        name,
        Some(Uid::from_raw(node.uid)),
        Some(Gid::from_raw(node.gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .with_context(|| format!("{}: chown", what()))
}

/// In a user namespace: bind the host's device at the same path onto an empty file made in
/// the rootfs (runc does the same). Whatever the image had at that name is replaced first,
/// and the bind lands on that new file by descriptor.
pub fn bind_node(root: BorrowedFd<'_>, node: &Node) -> Result<()> {
    let what = || format!("device {}", node.path.display());
    let host = open(&node.path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .map(crate::linux::sys::own_fd)
        .with_context(|| format!("{}: the host's {} to bind", what(), node.path.display()))?;
    let (parent, name) = split(&node.path).with_context(what)?;
    let dir = resolve::open_plain_dir(root, parent, "linux.devices").with_context(what)?;
    let dirfd = dir.fd.as_raw_fd();
    match unlinkat(Some(dirfd), name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => {
            return Err(e).with_context(|| format!("{}: replace what the image has there", what()));
        }
    }
    let file = openat(
        Some(dirfd),
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    )
    .map(crate::linux::sys::own_fd)
    .with_context(|| format!("{}: create the mount point", what()))?;
    let at = |fd: RawFd| format!("/proc/self/fd/{fd}");
    nix::mount::mount(
        Some(at(host.as_raw_fd()).as_str()),
        at(file.as_raw_fd()).as_str(),
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .with_context(|| format!("{}: bind the host's node", what()))
}

/// Is `name` in `dir` already the device `node` (not following a symlink)?
fn is_node(dir: RawFd, name: &Path, node: &Node) -> bool {
    fstatat(Some(dir), name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok_and(|st| {
        st.st_mode & libc::S_IFMT == node.kind.bits()
            && st.st_rdev == makedev(node.major, node.minor)
    })
}

/// The standard /dev symlinks.
pub fn create_symlinks(root: BorrowedFd<'_>) -> Result<()> {
    let dev = resolve::open_plain_dir(root, Path::new("/dev"), "/dev symlinks")?;
    let fd = dev.fd.as_raw_fd();
    let links = [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ];
    for (name, target) in links {
        match symlinkat(target, Some(fd), name) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(e).with_context(|| format!("symlink /dev/{name}")),
        }
    }
    if Path::new("/proc/kcore").exists() {
        let _ = symlinkat("/proc/kcore", Some(fd), "core");
    }
    // The container's devpts instance owns its ptys: /dev/ptmx must point at it.
    match unlinkat(Some(fd), "ptmx", UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(e).context("remove /dev/ptmx"),
    }
    symlinkat("pts/ptmx", Some(fd), "ptmx").context("symlink /dev/ptmx")
}

fn split(path: &Path) -> Result<(&Path, &Path)> {
    let parent = path.parent().context("no parent directory")?;
    let name = path.file_name().context("no file name")?;
    Ok((parent, Path::new(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_devices_replace_defaults() {
        let d: LinuxDevice = serde_json::from_str(
            r#"{"path":"/dev/null","type":"c","major":1,"minor":3,"fileMode":384}"#,
        )
        .unwrap();
        let fuse: LinuxDevice =
            serde_json::from_str(r#"{"path":"/dev/fuse","type":"c","major":10,"minor":229}"#)
                .unwrap();
        let nodes = plan(&[d, fuse]).unwrap();
        assert_eq!(
            nodes
                .iter()
                .filter(|n| n.path == Path::new("/dev/null"))
                .count(),
            1
        );
        let null = nodes
            .iter()
            .find(|n| n.path == Path::new("/dev/null"))
            .unwrap();
        assert_eq!(null.mode, 0o600);
        assert!(
            nodes
                .iter()
                .any(|n| n.path == Path::new("/dev/fuse") && n.major == 10)
        );
        assert_eq!(nodes.len(), 7);
    }

    #[test]
    fn bad_device_type_is_named() {
        let d: LinuxDevice = serde_json::from_str(r#"{"path":"/dev/x","type":"a"}"#).unwrap();
        assert!(
            plan(&[d])
                .unwrap_err()
                .to_string()
                .contains("linux.devices[0].type")
        );
    }
}
