//! The container's root filesystem, in the order the init needs it:
//! 0. with a mount namespace joined by path, [`Identity`] finds the rootfs again in it;
//! 1. [`prepare`]: propagation of `/`, the rootfs bind-mounted onto itself, `mounts` in order,
//!    devices and /dev symlinks (all paths resolved inside the rootfs);
//! 2. [`pivot`]: `pivot_root` into it and detach the old root; only a container that shares
//!    the host's mount namespace is [`chroot`]ed instead (see [`host_ns`]);
//! 3. [`finalize`]: masked and read-only paths, then `root.readonly`.

pub mod cgroupfs;
pub mod devices;
pub mod host_ns;
pub mod masked;
pub mod mounts;
pub mod options;
pub mod resolve;

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::unistd::{chdir, chroot as chroot_dot, fchdir, pivot_root};
use oci_spec::runtime::Spec;

use mounts::MountContext;

use crate::linux::idmapped::Prepared;
use crate::linux::namespaces::Namespaces;

/// The rootfs directory as the runtime found it in its own mount namespace.
///
/// In a mount namespace joined by path the rootfs must be set up *there*: the kernel refuses to
/// mount on, or bind from, a mount of another namespace, so a descriptor opened before setns
/// is of no use and the rootfs (like bind sources and the bundle) is looked up again by path,
/// as runc does. The path may name something else in that namespace (another mount, or
/// nothing): comparing device and inode makes that a clear error instead of a container
/// started on the wrong tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    dev: u64,
    ino: u64,
}

impl Identity {
    /// Before joining: what `rootfs` is in the runtime's mount namespace.
    pub fn of(rootfs: &Path) -> Result<Identity> {
        let m =
            std::fs::metadata(rootfs).with_context(|| format!("root.path {}", rootfs.display()))?;
        Ok(Identity {
            dev: m.dev(),
            ino: m.ino(),
        })
    }

    /// After joining: `rootfs` must be the same directory, and /proc must show this process
    /// (every mount goes through /proc/self/fd).
    pub fn check_joined(self, rootfs: &Path) -> Result<()> {
        let seen = Identity::of(rootfs)
            .context("in the mount namespace joined by path (linux.namespaces)")?;
        if seen != self {
            bail!(
                "root.path {}: names another directory in the mount namespace joined by path (linux.namespaces); the rootfs must be visible there at the same path",
                rootfs.display()
            );
        }
        if !Path::new("/proc/self/fd").is_dir() {
            bail!(
                "the mount namespace joined by path (linux.namespaces) has no /proc of this process's PID namespace at /proc (mounts are made through /proc/self/fd)"
            );
        }
        Ok(())
    }
}

/// Steps 1: everything mounted and created under `rootfs`, still seen from the host's root.
pub fn prepare(
    spec: &Spec,
    rootfs: &Path,
    bundle: &Path,
    ns: &Namespaces,
    idmapped: &[Prepared],
) -> Result<()> {
    let linux = spec.linux().as_ref();
    let private_mount = ns.private_mount();
    if private_mount {
        let mut propagation =
            options::rootfs_propagation(linux.and_then(|l| l.rootfs_propagation().as_deref()))
                .map_err(anyhow::Error::msg)?;
        if propagation.contains(MsFlags::MS_UNBINDABLE) {
            // The rootfs must still be bound onto itself: unbindable only after pivot_root.
            propagation = MsFlags::MS_PRIVATE | MsFlags::MS_REC;
        }
        mount(None::<&str>, "/", None::<&str>, propagation, None::<&str>)
            .context("set propagation of / (linux.rootfsPropagation)")?;
        if propagation.contains(MsFlags::MS_SHARED) {
            // pivot_root refuses a shared parent mount; keep it private in our namespace only.
            make_parent_private(rootfs)?;
        }
    }
    // pivot_root needs the new root to be a mount point; in the host's namespace this bind is
    // the one owner of every mount below (see host_ns).
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .with_context(|| format!("bind mount rootfs {}", rootfs.display()))?;
    if !private_mount {
        // Our bind (and the copies of submounts it made) only: the host's mounts are untouched,
        // and what we mount below reaches no other mount namespace.
        mount(
            None::<&str>,
            rootfs,
            None::<&str>,
            MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            None::<&str>,
        )
        .with_context(|| format!("make the rootfs bind {} private", rootfs.display()))?;
    }
    let root: OwnedFd = File::open(rootfs)
        .with_context(|| format!("open rootfs {}", rootfs.display()))?
        .into();

    let ctx = MountContext {
        root: root.as_fd(),
        bundle,
        new_cgroup_ns: ns.new_cgroup(),
        idmapped,
    };
    let mount_list = spec.mounts().as_deref().unwrap_or(&[]);
    for (i, m) in mount_list.iter().enumerate() {
        mounts::mount_entry(&ctx, i, m)?;
    }

    // Like runc, a missing process.cwd is created (inside the rootfs, before any read-only
    // remount); `linux::init` then chdirs to it after pivot_root.
    if let Some(p) = spec.process() {
        resolve::open(root.as_fd(), p.cwd(), resolve::Create::Dir).context("process.cwd")?;
    }

    // A /dev bound from the host already has its devices (privileged setups).
    let dev_is_bind = mount_list.iter().any(|m| {
        m.destination() == Path::new("/dev")
            && (m.typ().as_deref() == Some("bind")
                || options::parse(m.options().as_deref().unwrap_or(&[])).is_bind())
    });
    if !dev_is_bind {
        let configured = linux.and_then(|l| l.devices().as_deref()).unwrap_or(&[]);
        for node in devices::plan(configured)? {
            if ns.in_user_namespace() {
                // mknod is not allowed in a user namespace: the host's node is bound instead.
                devices::bind_node(root.as_fd(), &node)?;
            } else {
                devices::create_node(root.as_fd(), &node)?;
            }
        }
        devices::create_symlinks(root.as_fd())?;
    }
    Ok(())
}

/// Step 2: make `rootfs` the root and drop every reference to the host's root.
///
/// `pivot_root(".", ".")` stacks the old root on top of the new one at the same place; it is
/// then made a slave (so unmounting it does not propagate to the host) and lazily detached.
pub fn pivot(rootfs: &Path) -> Result<()> {
    let old = File::open("/").context("open old root")?;
    let new = File::open(rootfs).with_context(|| format!("open rootfs {}", rootfs.display()))?;
    fchdir(new.as_raw_fd()).context("chdir into rootfs")?;
    pivot_root(".", ".").context("pivot_root")?;
    fchdir(old.as_raw_fd()).context("chdir to the old root")?;
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .context("make old root rslave")?;
    umount2(".", MntFlags::MNT_DETACH).context("detach old root")?;
    chdir("/").context("chdir /")?;
    Ok(())
}

/// After pivot_root and the masks: `linux.rootfsPropagation` on the container's own `/`, so
/// that mounts made under it propagate as asked (shared, slave, private, unbindable). Only
/// `/` itself: the mounts below were made with the same propagation (see [`prepare`]) or
/// with their own `mounts[].options`, which must stay.
pub fn apply_root_propagation(spec: &Spec) -> Result<()> {
    let Some(value) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
    else {
        return Ok(());
    };
    let flags =
        options::rootfs_propagation(Some(value)).map_err(anyhow::Error::msg)? - MsFlags::MS_REC;
    mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
        .with_context(|| format!("linux.rootfsPropagation {value}: on the container's /"))
}

/// Step 2 without a mount namespace of the container's own: pivot_root would swap the root of
/// every host process, so the init only changes its own root, as runc does.
pub fn chroot(rootfs: &Path) -> Result<()> {
    let new = File::open(rootfs).with_context(|| format!("open rootfs {}", rootfs.display()))?;
    fchdir(new.as_raw_fd()).context("chdir into rootfs")?;
    chroot_dot(".").context("chroot")?;
    chdir("/").context("chdir /")?;
    Ok(())
}

/// Step 3 (after pivot_root): maskedPaths, readonlyPaths, root.readonly.
pub fn finalize(spec: &Spec) -> Result<()> {
    if let Some(linux) = spec.linux() {
        let masked_paths = linux.masked_paths().as_deref().unwrap_or(&[]);
        let readonly_paths = linux.readonly_paths().as_deref().unwrap_or(&[]);
        if !masked_paths.is_empty() || !readonly_paths.is_empty() {
            let mut masker = masked::Masker::new()?;
            for p in masked_paths {
                masker.mask(p)?;
            }
            for p in readonly_paths {
                masker.readonly(p)?;
            }
        }
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        masked::remount_readonly(Path::new("/")).context("root.readonly: remount / read-only")?;
    }
    Ok(())
}

/// Make the mount containing `path` private (in our mount namespace).
fn make_parent_private(path: &Path) -> Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").context("read mountinfo")?;
    let best = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| path.starts_with(mp))
        .max_by_key(|mp| mp.len())
        .unwrap_or("/");
    mount(
        None::<&str>,
        best,
        None::<&str>,
        MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .with_context(|| format!("make {best} private"))
}
