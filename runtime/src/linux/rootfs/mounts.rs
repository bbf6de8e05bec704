//! One entry of `mounts`: resolve its destination inside the rootfs, mount it with its flags
//! and data, re-mount binds with their flags (the kernel ignores them on the first bind), then
//! apply propagation.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::fcntl::{OFlag, open};
use nix::mount::{MsFlags, mount};
use nix::sys::stat::{Mode, fstat};
use oci_spec::runtime::Mount;

use super::cgroupfs;
use super::options::{self, MountOptions};
use super::resolve::{self, Create};
use crate::linux::idmapped::Prepared;
use crate::linux::sys;

/// What a mount needs to know about its container beyond the entry itself.
pub struct MountContext<'a> {
    pub root: BorrowedFd<'a>,
    pub bundle: &'a Path,
    pub new_cgroup_ns: bool,
    /// ID-mapped mounts prepared by `create` (by mounts[] index).
    pub idmapped: &'a [Prepared],
}

pub fn mount_entry(ctx: &MountContext<'_>, index: usize, m: &Mount) -> Result<()> {
    let dest = m.destination();
    let opts = options::parse(m.options().as_deref().unwrap_or(&[]));
    let typ = m.typ().as_deref().unwrap_or("");
    let what = || {
        format!(
            "mounts[{index}] ({} on {})",
            if typ.is_empty() { "bind" } else { typ },
            dest.display()
        )
    };
    if typ == "cgroup" {
        return cgroupfs::mount_cgroup(ctx, dest, &opts).with_context(what);
    }
    if typ == "bind" || opts.is_bind() {
        match ctx.idmapped.iter().find(|p| p.index == index) {
            Some(p) => attach_prepared(ctx, p, dest, &opts).with_context(what),
            None => bind(ctx, m, dest, &opts).with_context(what),
        }
    } else {
        let source = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
        // procfs and sysfs go exactly where the config says: through a symlink in the image
        // (`/proc -> /some/dir`) the container's /proc would be something else, and the
        // runtime itself relies on /proc after pivot_root (runc refuses this too).
        let target = if typ == "proc" || typ == "sysfs" {
            resolve::open_plain_dir(ctx.root, dest, &what())?
        } else {
            resolve::open(ctx.root, dest, Create::Dir).with_context(what)?
        };
        mount(
            Some(&source),
            &target.proc_path(),
            Some(typ),
            opts.flags & !MsFlags::MS_REMOUNT,
            Some(opts.data.as_str()),
        )
        .with_context(|| format!("{}: mount", what()))?;
        apply_propagation(ctx.root, dest, &opts).with_context(what)
    }
}

fn bind(ctx: &MountContext<'_>, m: &Mount, dest: &Path, opts: &MountOptions) -> Result<()> {
    let source = m.source().as_ref().context("a bind mount needs a source")?;
    // Relative sources are relative to the bundle (runtime-spec config.md).
    let path = if source.is_absolute() {
        source.clone()
    } else {
        ctx.bundle.join(source)
    };
    // Checked and mounted through one descriptor: the path is looked up once.
    let source = resolve::Resolved {
        fd: open(&path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .map(sys::own_fd)
            .with_context(|| format!("source {}", path.display()))?,
    };
    let kind = if fstat(source.fd.as_raw_fd())?.st_mode & libc::S_IFMT == libc::S_IFDIR {
        Create::Dir
    } else {
        Create::File
    };
    let target = resolve::open(ctx.root, dest, kind)?;
    let rec = opts.flags & MsFlags::MS_REC;
    mount(
        Some(&source.proc_path()),
        &target.proc_path(),
        None::<&str>,
        MsFlags::MS_BIND | rec,
        None::<&str>,
    )
    .with_context(|| format!("bind {}", path.display()))?;
    remount_bind(ctx.root, dest, opts.flags)?;
    apply_propagation(ctx.root, dest, opts)
}

/// An ID-mapped bind `create` prepared: attached to the destination by descriptor, then the
/// same flags and propagation as any bind.
fn attach_prepared(
    ctx: &MountContext<'_>,
    p: &Prepared,
    dest: &Path,
    opts: &MountOptions,
) -> Result<()> {
    let kind = if fstat(p.mount.as_raw_fd())?.st_mode & libc::S_IFMT == libc::S_IFDIR {
        Create::Dir
    } else {
        Create::File
    };
    let target = resolve::open(ctx.root, dest, kind)?;
    sys::attach_mount(p.mount.as_fd(), target.fd.as_fd()).context("attach the ID-mapped mount")?;
    remount_bind(ctx.root, dest, opts.flags)?;
    apply_propagation(ctx.root, dest, opts)
}

/// Bind mounts ignore flags like `ro`/`nosuid` on creation; a remount applies them.
pub fn remount_bind(root: BorrowedFd<'_>, dest: &Path, flags: MsFlags) -> Result<()> {
    let extra = flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if extra.is_empty() {
        return Ok(());
    }
    // Re-resolve: the new descriptor names the mount now on top of the destination.
    let top = resolve::open(root, dest, Create::Nothing)?;
    mount(
        None::<&str>,
        &top.proc_path(),
        None::<&str>,
        extra | MsFlags::MS_BIND | MsFlags::MS_REMOUNT,
        None::<&str>,
    )
    .context("remount with the bind's flags")
}

fn apply_propagation(root: BorrowedFd<'_>, dest: &Path, opts: &MountOptions) -> Result<()> {
    if opts.propagation.is_empty() {
        return Ok(());
    }
    let top = resolve::open(root, dest, Create::Nothing)?;
    for p in &opts.propagation {
        mount(
            None::<&str>,
            &top.proc_path(),
            None::<&str>,
            *p,
            None::<&str>,
        )
        .with_context(|| format!("set propagation {p:?}"))?;
    }
    Ok(())
}
