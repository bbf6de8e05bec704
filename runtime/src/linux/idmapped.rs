//! ID-mapped bind mounts: `idmap` / `ridmap` in a mount's options, with the mount's own
//! `uidMappings`/`gidMappings` (or, without them, the container's).
//!
//! The mapping comes from a user namespace, and only the host's root can make one with
//! arbitrary host ids, so `create` prepares these mounts before the clone: a short-lived
//! process is put in a new user namespace with the maps, its namespace is opened, then the
//! source is cloned as a detached mount (`open_tree`), made ID-mapped (`mount_setattr`
//! MOUNT_ATTR_IDMAP, recursively for `ridmap`), and handed to the init as a descriptor. The
//! init attaches it at the destination like any bind (a detached mount can be attached in
//! another mount namespace). The kernel refuses filesystems that cannot be ID-mapped, with
//! one line naming the mount.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use anyhow::{Context, Result, bail};
use nix::fcntl::{OFlag, open};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::{pipe, read};
use oci_spec::runtime::Spec;

use crate::linux::idmap::{self, IdMaps};
use crate::linux::rootfs::options;
use crate::linux::sys::{self, Cloned};

/// One prepared mount: `mounts[index]`, ready to attach.
pub struct Prepared {
    pub index: usize,
    pub mount: OwnedFd,
}

/// In `create`: every `idmap`/`ridmap` mount of the config, as a detached ID-mapped mount.
pub fn prepare(spec: &Spec, bundle: &Path) -> Result<Vec<Prepared>> {
    let mut out = Vec::new();
    let linux = spec.linux().as_ref();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let opts = options::parse(m.options().as_deref().unwrap_or(&[]));
        let Some(recursive) = opts.idmap else {
            continue;
        };
        let field = format!("mounts[{i}]");
        if !(m.typ().as_deref() == Some("bind") || opts.is_bind()) {
            bail!("{field}: idmap and ridmap are only for bind mounts");
        }
        let maps = match (m.uid_mappings(), m.gid_mappings()) {
            (Some(u), Some(g)) => idmap::from_lists(&field, u, g)?,
            (None, None) => {
                let (u, g) = (
                    linux.and_then(|l| l.uid_mappings().as_deref()),
                    linux.and_then(|l| l.gid_mappings().as_deref()),
                );
                match (u, g) {
                    (Some(u), Some(g)) => idmap::from_lists("linux", u, g)?,
                    _ => bail!(
                        "{field}: idmap needs uidMappings and gidMappings, on the mount or the container"
                    ),
                }
            }
            _ => bail!("{field}: uidMappings and gidMappings go together"),
        };
        let source = m
            .source()
            .as_ref()
            .with_context(|| format!("{field}: a bind mount needs a source"))?;
        let source = if source.is_absolute() {
            source.clone()
        } else {
            bundle.join(source)
        };
        let userns = user_namespace(&maps).with_context(|| format!("{field}: id maps"))?;
        let src = open(&source, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .map(sys::own_fd)
            .with_context(|| format!("{field}: source {}", source.display()))?;
        // rbind or ridmap: the whole tree; the kernel maps each mount of it with ridmap.
        let tree = sys::clone_mount(
            src.as_fd(),
            recursive || opts.flags.contains(nix::mount::MsFlags::MS_REC),
        )
        .with_context(|| format!("{field}: clone {}", source.display()))?;
        sys::set_mount_idmap(tree.as_fd(), userns.as_fd(), recursive).with_context(|| {
            format!(
                "{field}: {} cannot be ID-mapped (the filesystem or kernel does not support it)",
                source.display()
            )
        })?;
        out.push(Prepared {
            index: i,
            mount: tree,
        });
    }
    Ok(out)
}

/// A user namespace with `maps`: a process is cloned into a new one, mapped, its namespace
/// opened, and let go.
fn user_namespace(maps: &IdMaps) -> Result<OwnedFd> {
    let (wait_r, wait_w) = pipe().context("pipe")?;
    match sys::clone_process(CloneFlags::CLONE_NEWUSER).context("clone into a user namespace")? {
        Cloned::Child => {
            drop(wait_w);
            // Until the parent has what it needs (end of file when it closes its end).
            let mut b = [0u8; 1];
            let _ = read(std::os::fd::AsRawFd::as_raw_fd(&wait_r), &mut b);
            sys::exit_now(0)
        }
        Cloned::Parent(pid) => {
            drop(wait_r);
            let ns = maps.write(pid).and_then(|()| {
                File::open(format!("/proc/{pid}/ns/user"))
                    .map(OwnedFd::from)
                    .context("open its user namespace")
            });
            drop(wait_w);
            let _ = waitpid(pid, None);
            ns
        }
    }
}
