//! Which cgroup hierarchies this host has, and where a container's cgroup lives in each.
//!
//! libcgroups answers "legacy, hybrid or unified?" but its v1 manager only knows the
//! controllers it can apply limits to and resolves every path against the hierarchy root.
//! We need the full list (named hierarchies such as `name=systemd` too, and the cgroup2 of a
//! hybrid host) to create, join and remove the cgroup everywhere, so we read the mounts here.

use std::collections::BTreeMap;
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
    /// The cgroup path in this hierarchy, absolute (`/mocker/<id>`): the same in every
    /// hierarchy unless a relative cgroupsPath met a runtime sitting at different places.
    pub path: PathBuf,
    /// `mount` + `path`.
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

    /// `path` without its leading `/` (`mocker/<id>`).
    pub fn relative_path(&self) -> &Path {
        self.path.strip_prefix("/").unwrap_or(&self.path)
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
    /// The cgroup path inside every hierarchy, absolute (`/mocker/<id>`); `None` when it
    /// differs between hierarchies (see [`Hierarchy::path`]).
    pub path: Option<PathBuf>,
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
                    path: PathBuf::from("/"),
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
                        path: PathBuf::from("/"),
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
                        path: PathBuf::from("/"),
                        dir: mount.clone(),
                        mount,
                    });
                }
            }
        }

        let paths = absolute_paths(cgroups_path, &hierarchies)?;
        for (h, path) in hierarchies.iter_mut().zip(paths) {
            h.path = path;
            h.dir = h.mount.join(h.relative_path());
        }
        let path =
            Some(hierarchies[0].path.clone()).filter(|p| hierarchies.iter().all(|h| h.path == *p));
        Ok(Layout {
            v1: !matches!(setup, CgroupSetup::Unified),
            path,
            hierarchies,
        })
    }

    /// A layout recorded by `create` whose path differs per hierarchy (label -> path).
    pub fn recorded(per_hierarchy: &BTreeMap<String, String>) -> Result<Layout, CgroupError> {
        let any = per_hierarchy
            .values()
            .next()
            .ok_or_else(|| CgroupError::Invalid("no recorded cgroup paths".into()))?;
        let mut layout = Layout::resolve(any)?;
        for h in &mut layout.hierarchies {
            let label = h.label();
            let p = per_hierarchy.get(&label).ok_or_else(|| {
                CgroupError::Invalid(format!(
                    "no recorded cgroup path for the {label} hierarchy of this host"
                ))
            })?;
            h.path = PathBuf::from(p);
            h.dir = h.mount.join(h.relative_path());
        }
        layout.path = None;
        Ok(layout)
    }

    /// label -> path of every hierarchy, when the path is not the same in all of them.
    pub fn per_hierarchy(&self) -> BTreeMap<String, String> {
        if self.path.is_some() {
            return BTreeMap::new();
        }
        self.hierarchies
            .iter()
            .map(|h| (h.label(), h.path.display().to_string()))
            .collect()
    }

    pub fn is_v1(&self) -> bool {
        self.v1
    }
}

/// Checks the path and makes it absolute in each hierarchy: an absolute one is the same
/// everywhere; a relative one is below the runtime's own cgroup *in that hierarchy* (as runc
/// does), which on a v1 or hybrid host may differ from one hierarchy to the next.
fn absolute_paths(
    cgroups_path: &str,
    hierarchies: &[Hierarchy],
) -> Result<Vec<PathBuf>, CgroupError> {
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
        return Ok(vec![clean; hierarchies.len()]);
    }
    let own = own_cgroups()?;
    let rel = clean.strip_prefix("/").unwrap_or(&clean);
    Ok(hierarchies
        .iter()
        .map(|h| {
            let base = own
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
                .map(|(_, path)| path.as_str())
                .unwrap_or("/");
            Path::new(base).join(rel)
        })
        .collect())
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
