//! Reads a process's cgroup files from the host, on v1, hybrid and pure v2 hosts alike.

use std::fs;
use std::path::PathBuf;

use crate::leftovers::cgroup_hierarchies;

/// The cgroup directory holding `pid`'s `v1_controller` files: the v1 hierarchy with that
/// controller if one is mounted, else the cgroup2 hierarchy.
pub fn cgroup_dir(pid: i32, v1_controller: &str) -> Option<PathBuf> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let hier = cgroup_hierarchies();
    // "N:ctrl,ctrl:/path" for v1, "0::/path" for v2
    let mut v2_path = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let rel = path.trim_start_matches('/');
        if ctrls.is_empty() {
            v2_path = Some(rel.to_string());
        } else if ctrls.split(',').any(|c| c == v1_controller)
            && let Some(h) = hier
                .iter()
                .find(|h| !h.v2 && h.controllers.iter().any(|c| c == v1_controller))
        {
            return Some(h.mount_point.join(rel));
        }
    }
    let h = hier.iter().find(|h| h.v2)?;
    let dir = h.mount_point.join(v2_path?);
    // v2 freezes through the core file cgroup.freeze: there is no "freezer" controller.
    if v1_controller == "freezer" {
        return dir.join("cgroup.freeze").exists().then_some(dir);
    }
    // On a hybrid host the cgroup2 may lack the controller (here it only has hugetlb).
    let enabled = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let v2_name = match v1_controller {
        "blkio" => "io",
        "cpuacct" => "cpu",
        other => other,
    };
    enabled
        .split_whitespace()
        .any(|c| c == v2_name)
        .then_some(dir)
}

/// Reads the first of `names` that exists in `pid`'s cgroup dir for `v1_controller`
/// (e.g. `["memory.limit_in_bytes", "memory.max"]`), trimmed.
pub fn read(pid: i32, v1_controller: &str, names: &[&str]) -> Option<(PathBuf, String)> {
    let dir = cgroup_dir(pid, v1_controller)?;
    names.iter().find_map(|n| {
        let p = dir.join(n);
        fs::read_to_string(&p)
            .ok()
            .map(|s| (p, s.trim().to_string()))
    })
}
