//! The `cgroup` mount type: show the container its own cgroups at the destination.
//!
//! - cgroup v2 host: one cgroup2 mount (with a cgroup namespace it shows the namespace root;
//!   without one we bind the container's own cgroup directory instead).
//! - v1 or hybrid host (this machine): a tmpfs holding one mount per host hierarchy, named as
//!   on the host (`cpu`, `memory`, `systemd`, `unified`...). Inside a cgroup namespace each is a
//!   fresh mount of the same hierarchy (the kernel roots it at the namespace); without one, the
//!   container's cgroup directory of that hierarchy is bind-mounted.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::mount::{MsFlags, mount};

use super::mounts::{MountContext, remount_bind};
use super::options::MountOptions;
use super::resolve::{self, Create};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// A host cgroup hierarchy as seen in /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hierarchy {
    mountpoint: PathBuf,
    fstype: String,
    /// Super options minus rw/ro: the controllers (`cpu,cpuacct`, `name=systemd`).
    options: String,
}

pub fn mount_cgroup(ctx: &MountContext<'_>, dest: &Path, opts: &MountOptions) -> Result<()> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").context("read mountinfo")?;
    let own = std::fs::read_to_string("/proc/self/cgroup").context("read /proc/self/cgroup")?;
    let hierarchies = parse_hierarchies(&mountinfo);
    let flags = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);

    if let [only] = hierarchies.as_slice()
        && only.fstype == "cgroup2"
        && only.mountpoint == Path::new(CGROUP_ROOT)
    {
        return mount_one(ctx, dest, only, &own, flags);
    }

    // v1 / hybrid: a tmpfs to hold the hierarchies, made read-only at the end if asked.
    let target = resolve::open(ctx.root, dest, Create::Dir)?;
    mount(
        Some("tmpfs"),
        &target.proc_path(),
        Some("tmpfs"),
        flags & !MsFlags::MS_RDONLY,
        Some("mode=755"),
    )
    .context("mount tmpfs for cgroup hierarchies")?;
    for h in &hierarchies {
        let Some(name) = h.mountpoint.file_name() else {
            continue;
        };
        let sub = dest.join(name);
        mount_one(ctx, &sub, h, &own, flags)?;
        // Co-mounted controllers (`cpu,cpuacct`) get per-controller symlinks, like the host.
        let name = name.to_string_lossy();
        if name.contains(',') {
            let dir = resolve::open(ctx.root, dest, Create::Nothing)?;
            for c in name.split(',') {
                let _ = nix::unistd::symlinkat(
                    name.as_ref() as &str,
                    Some(std::os::fd::AsRawFd::as_raw_fd(&dir.fd)),
                    c,
                );
            }
        }
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        let top = resolve::open(ctx.root, dest, Create::Nothing)?;
        mount(
            None::<&str>,
            &top.proc_path(),
            None::<&str>,
            flags | MsFlags::MS_REMOUNT,
            Some("mode=755"),
        )
        .context("remount cgroup tmpfs read-only")?;
    }
    Ok(())
}

fn mount_one(
    ctx: &MountContext<'_>,
    dest: &Path,
    h: &Hierarchy,
    own: &str,
    flags: MsFlags,
) -> Result<()> {
    let target = resolve::open(ctx.root, dest, Create::Dir)?;
    if ctx.new_cgroup_ns {
        let data = if h.fstype == "cgroup2" {
            ""
        } else {
            h.options.as_str()
        };
        mount(
            Some("cgroup"),
            &target.proc_path(),
            Some(h.fstype.as_str()),
            flags,
            Some(data),
        )
        .with_context(|| format!("mount {} hierarchy {data}", h.fstype))
    } else {
        let rel = own_path(own, h).unwrap_or_else(|| "/".into());
        let source = h.mountpoint.join(rel.trim_start_matches('/'));
        mount(
            Some(&source),
            &target.proc_path(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .with_context(|| format!("bind {}", source.display()))?;
        remount_bind(ctx.root, dest, flags)
    }
}

/// Host cgroup hierarchies mounted under /sys/fs/cgroup (or the cgroup2 at it).
fn parse_hierarchies(mountinfo: &str) -> Vec<Hierarchy> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        // id parent maj:min root mountpoint opts [optional...] - fstype source superopts
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut r = right.split(' ');
        let (Some(fstype), Some(_src), Some(superopts)) = (r.next(), r.next(), r.next()) else {
            continue;
        };
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        let Some(mp) = left.split(' ').nth(4) else {
            continue;
        };
        if !Path::new(mp).starts_with(CGROUP_ROOT) {
            continue;
        }
        let options = superopts
            .split(',')
            .filter(|o| *o != "rw" && *o != "ro")
            .collect::<Vec<_>>()
            .join(",");
        out.push(Hierarchy {
            mountpoint: mp.into(),
            fstype: fstype.into(),
            options,
        });
    }
    out
}

/// Our own cgroup in hierarchy `h`, from /proc/self/cgroup (`4:memory:/mocker/id`).
fn own_path(own: &str, h: &Hierarchy) -> Option<String> {
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = if h.fstype == "cgroup2" {
            ctrls.is_empty()
        } else {
            let want: Vec<&str> = h.options.split(',').collect();
            !ctrls.is_empty() && ctrls.split(',').all(|c| want.contains(&c))
        };
        if matches {
            return Some(path.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:5 - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:40 / /other rw - cgroup cgroup rw,pids
";

    #[test]
    fn finds_hybrid_hierarchies() {
        let h = parse_hierarchies(MOUNTINFO);
        let names: Vec<_> = h
            .iter()
            .map(|h| (h.mountpoint.to_str().unwrap(), h.options.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("/sys/fs/cgroup/cpu,cpuacct", "cpu,cpuacct"),
                ("/sys/fs/cgroup/memory", "memory"),
                ("/sys/fs/cgroup/systemd", "name=systemd"),
                ("/sys/fs/cgroup/unified", ""),
            ]
        );
    }

    #[test]
    fn own_cgroup_per_hierarchy() {
        let h = parse_hierarchies(MOUNTINFO);
        let own = "9:name=systemd:/\n4:memory:/mocker/a\n2:cpu,cpuacct:/mocker/a\n0::/x\n";
        assert_eq!(own_path(own, &h[0]).as_deref(), Some("/mocker/a"));
        assert_eq!(own_path(own, &h[1]).as_deref(), Some("/mocker/a"));
        assert_eq!(own_path(own, &h[2]).as_deref(), Some("/"));
        assert_eq!(own_path(own, &h[3]).as_deref(), Some("/x"));
    }
}
