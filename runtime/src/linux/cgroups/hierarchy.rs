//! Which cgroup hierarchies this host has, and where a container's cgroup lives in each.
//!
//! libcgroups answers "legacy, hybrid or unified?" but its v1 manager only knows the
//! controllers it can apply limits to and resolves every path against the hierarchy root.
//! We need the full list (named hierarchies such as `name=systemd` too, and the cgroup2 of a
//! hybrid host) to create, join and remove the cgroup everywhere, so we read the mounts here.

use std::fs;
use std::path::{Component, Path, PathBuf};

use libcgroups::common::{CgroupSetup, DEFAULT_CGROUP_ROOT};

use super::CgroupError;

/// v1 controllers we join when the host mounts them (plus any `name=` hierarchy).
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    V1,
    V2,
}

/// One mounted hierarchy and the container's directory in it.
#[derive(Debug, Clone)]
pub(super) struct Hierarchy {
    pub kind: Kind,
    /// v1: the controllers bound to it (`["cpu"]`, `["name=systemd"]`); v2: empty.
    pub controllers: Vec<String>,
    pub mount: PathBuf,
    /// `mount` + the cgroup path.
    pub dir: PathBuf,
}

impl Hierarchy {
    /// A short label for messages: `memory`, `cpu,cpuacct`, `unified`.
    pub fn label(&self) -> String {
        match self.kind {
            Kind::V1 => self.controllers.join(","),
            Kind::V2 => "unified".to_string(),
        }
    }

    pub fn has(&self, controller: &str) -> bool {
        match self.kind {
            Kind::V1 => self.controllers.iter().any(|c| c == controller),
            Kind::V2 => available_v2_controllers(&self.mount)
                .iter()
                .any(|c| c == controller),
        }
    }
}

/// The host's cgroup setup and the container's place in it.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    /// Legacy or hybrid (v1 controllers) rather than pure cgroup v2.
    pub v1: bool,
    /// The cgroup path inside every hierarchy, absolute (`/mocker/<id>`).
    pub path: PathBuf,
    pub hierarchies: Vec<Hierarchy>,
}

impl Layout {
    /// Resolves `cgroups_path` on this host. A relative path is relative to the runtime's own
    /// cgroup (as runc does); an absolute one to each hierarchy's root.
    pub fn resolve(cgroups_path: &str) -> Result<Layout, CgroupError> {
        let setup = libcgroups::common::get_cgroup_setup()
            .map_err(|e| CgroupError::Invalid(format!("cannot detect the cgroup setup: {e}")))?;
        let mounts = cgroup_mounts()?;
        let mut hierarchies = Vec::new();
        match setup {
            CgroupSetup::Unified => {
                let mount = PathBuf::from(DEFAULT_CGROUP_ROOT);
                hierarchies.push(Hierarchy {
                    kind: Kind::V2,
                    controllers: Vec::new(),
                    dir: mount.clone(),
                    mount,
                });
            }
            CgroupSetup::Legacy | CgroupSetup::Hybrid => {
                for m in mounts.iter().filter(|m| m.fstype == "cgroup") {
                    let controllers: Vec<String> = m
                        .super_opts
                        .split(',')
                        .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
                        .map(str::to_string)
                        .collect();
                    // A hierarchy mounted twice (bind mounts) is joined once.
                    if controllers.is_empty()
                        || hierarchies
                            .iter()
                            .any(|h: &Hierarchy| h.controllers == controllers)
                    {
                        continue;
                    }
                    hierarchies.push(Hierarchy {
                        kind: Kind::V1,
                        controllers,
                        dir: m.point.clone(),
                        mount: m.point.clone(),
                    });
                }
                if matches!(setup, CgroupSetup::Hybrid) {
                    // The unified hierarchy of a hybrid host: joined too, so that the
                    // container's `0::` line and a cgroup namespace look right, and used for
                    // the controllers only it offers (hugetlb on this machine).
                    let mount = Path::new(DEFAULT_CGROUP_ROOT).join("unified");
                    hierarchies.push(Hierarchy {
                        kind: Kind::V2,
                        controllers: Vec::new(),
                        dir: mount.clone(),
                        mount,
                    });
                }
            }
        }

        let path = absolute_path(cgroups_path, &hierarchies)?;
        let rel = path.strip_prefix("/").unwrap_or(&path).to_path_buf();
        for h in &mut hierarchies {
            h.dir = h.mount.join(&rel);
        }
        Ok(Layout {
            v1: !matches!(setup, CgroupSetup::Unified),
            path,
            hierarchies,
        })
    }

    pub fn is_v1(&self) -> bool {
        self.v1
    }

    /// The cgroup path below each hierarchy's mount (`mocker/<id>`).
    pub fn relative_path(&self) -> &Path {
        self.path.strip_prefix("/").unwrap_or(&self.path)
    }
}

/// Checks the path and makes it absolute (relative => below the runtime's own cgroup).
fn absolute_path(cgroups_path: &str, hierarchies: &[Hierarchy]) -> Result<PathBuf, CgroupError> {
    let p = Path::new(cgroups_path);
    let mut clean = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => clean.push(n),
            // `..` would escape the hierarchy (or the runtime's cgroup); `.` is just odd.
            _ => {
                return Err(CgroupError::Invalid(format!(
                    "cgroupsPath {cgroups_path:?}: '.' and '..' are not allowed"
                )));
            }
        }
    }
    if clean == Path::new("/") {
        return Err(CgroupError::Invalid(format!(
            "cgroupsPath {cgroups_path:?} names the root cgroup"
        )));
    }
    if p.is_absolute() {
        return Ok(clean);
    }
    // Relative: below the cgroup this process is in. With one path per container, that
    // only works where the runtime sits at the same place in every hierarchy.
    let own = own_cgroups()?;
    let mut base: Option<String> = None;
    for h in hierarchies {
        let mine = own
            .iter()
            .find(|(ctrls, _)| match h.kind {
                Kind::V2 => ctrls.is_empty(),
                Kind::V1 => {
                    let mut a: Vec<&str> = ctrls.split(',').collect();
                    let mut b: Vec<&str> = h.controllers.iter().map(String::as_str).collect();
                    a.sort_unstable();
                    b.sort_unstable();
                    a == b
                }
            })
            .map(|(_, path)| path.clone())
            .unwrap_or_else(|| "/".to_string());
        match &base {
            None => base = Some(mine),
            Some(b) if *b == mine => {}
            Some(b) => {
                return Err(CgroupError::Invalid(format!(
                    "relative cgroupsPath {cgroups_path:?}: this process is in {b} on one \
                     hierarchy but in {mine} on {}; use an absolute cgroupsPath",
                    h.label()
                )));
            }
        }
    }
    let base = PathBuf::from(base.unwrap_or_else(|| "/".to_string()));
    Ok(base.join(clean.strip_prefix("/").unwrap_or(&clean)))
}

struct Mount {
    point: PathBuf,
    fstype: String,
    super_opts: String,
}

/// cgroup and cgroup2 mounts under /sys/fs/cgroup (libcgroups supports no other root).
fn cgroup_mounts() -> Result<Vec<Mount>, CgroupError> {
    let text = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| CgroupError::Invalid(format!("read /proc/self/mountinfo: {e}")))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post = post.split(' ');
        let (Some(fstype), Some(_source), Some(super_opts)) =
            (post.next(), post.next(), post.next())
        else {
            continue;
        };
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        let Some(point) = pre.split(' ').nth(4) else {
            continue;
        };
        let point = PathBuf::from(point);
        if !point.starts_with(DEFAULT_CGROUP_ROOT) {
            continue;
        }
        out.push(Mount {
            point,
            fstype: fstype.to_string(),
            super_opts: super_opts.to_string(),
        });
    }
    Ok(out)
}

/// `/proc/self/cgroup` as (controllers, path) pairs; the v2 line has empty controllers.
fn own_cgroups() -> Result<Vec<(String, String)>, CgroupError> {
    let text = fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| CgroupError::Invalid(format!("read /proc/self/cgroup: {e}")))?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let _id = parts.next()?;
            let ctrls = parts.next()?;
            let path = parts.next()?;
            Some((ctrls.to_string(), path.to_string()))
        })
        .collect())
}

/// Controllers a v2 cgroup directory offers (its `cgroup.controllers`).
pub(super) fn available_v2_controllers(dir: &Path) -> Vec<String> {
    fs::read_to_string(dir.join("cgroup.controllers"))
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}
