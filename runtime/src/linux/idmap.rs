//! A new user namespace's id maps (`linux.uidMappings`, `linux.gidMappings`).
//!
//! The init cannot map itself: a process may only write its own maps for its own single id.
//! So the parent writes `/proc/<init>/uid_map` and `gid_map` right after the clone, while the
//! init still waits on the channel, before anything in it depends on its ids. The maps are
//! checked in `create` first (present, non-empty ranges, no overlap on either side), so the
//! kernel's bare EINVAL never reaches the user. As root the runtime leaves `setgroups`
//! allowed (runc denies it only for rootless containers, which are not supported yet).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxIdMapping, Spec};

/// Lines the kernel accepts in one map (since Linux 4.15).
const MAX_LINES: usize = 340;

/// The maps of a container with a new user namespace, as the kernel's text format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMaps {
    uid: String,
    gid: String,
}

/// In `create`: the maps for a new user namespace (`new_userns`), or a refusal of maps given
/// without one.
pub fn plan(spec: &Spec, new_userns: bool) -> Result<Option<IdMaps>> {
    let linux = spec.linux().as_ref();
    let uids = linux
        .and_then(|l| l.uid_mappings().as_deref())
        .unwrap_or(&[]);
    let gids = linux
        .and_then(|l| l.gid_mappings().as_deref())
        .unwrap_or(&[]);
    if !new_userns {
        if !uids.is_empty() || !gids.is_empty() {
            bail!("linux.uidMappings: id mappings need a new user namespace in linux.namespaces");
        }
        return Ok(None);
    }
    Ok(Some(IdMaps {
        uid: text("linux.uidMappings", uids)?,
        gid: text("linux.gidMappings", gids)?,
    }))
}

/// Maps from explicit lists (an ID-mapped mount's `uidMappings`/`gidMappings`); `field` is
/// the prefix for messages (`mounts[2]`).
pub fn from_lists(field: &str, uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> Result<IdMaps> {
    Ok(IdMaps {
        uid: text(&format!("{field}.uidMappings"), uids)?,
        gid: text(&format!("{field}.gidMappings"), gids)?,
    })
}

fn text(field: &str, maps: &[LinuxIdMapping]) -> Result<String> {
    if maps.is_empty() {
        bail!("{field}: a new user namespace needs at least one mapping");
    }
    if maps.len() > MAX_LINES {
        bail!(
            "{field}: {} mappings, the kernel takes at most {MAX_LINES}",
            maps.len()
        );
    }
    let range = |start: u32, size: u32| (start as u64, start as u64 + size as u64);
    for (i, m) in maps.iter().enumerate() {
        if m.size() == 0 {
            bail!("{field}[{i}].size: must be positive");
        }
        for (j, other) in maps.iter().enumerate().take(i) {
            for (side, a, b) in [
                ("containerID", m.container_id(), other.container_id()),
                ("hostID", m.host_id(), other.host_id()),
            ] {
                let (a0, a1) = range(a, m.size());
                let (b0, b1) = range(b, other.size());
                if a0 < b1 && b0 < a1 {
                    bail!("{field}[{i}]: its {side} range overlaps {field}[{j}]");
                }
            }
        }
    }
    Ok(maps
        .iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect())
}

impl IdMaps {
    /// In the parent, right after the clone: write the init's maps.
    pub fn write(&self, pid: Pid) -> Result<()> {
        for (file, text, field) in [
            ("uid_map", &self.uid, "linux.uidMappings"),
            ("gid_map", &self.gid, "linux.gidMappings"),
        ] {
            let path = PathBuf::from(format!("/proc/{pid}/{file}"));
            std::fs::write(&path, text)
                .with_context(|| format!("{field}: write {}", path.display()))?;
        }
        Ok(())
    }

    /// The host uid container root maps to (the owner the rootfs needs), if mapped.
    pub fn host_root(&self) -> Option<u32> {
        self.uid.lines().find_map(|l| {
            let mut f = l.split(' ').map(|n| n.parse::<u32>().ok());
            let (c, h, s) = (f.next()??, f.next()??, f.next()??);
            (c == 0 && s > 0).then_some(h)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(linux: &str) -> Spec {
        serde_json::from_str(&format!(
            r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},"linux":{linux}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn maps_become_the_kernels_text() {
        let s = spec(
            r#"{"uidMappings":[{"containerID":0,"hostID":100000,"size":65536}],
                "gidMappings":[{"containerID":0,"hostID":100000,"size":10},{"containerID":10,"hostID":200000,"size":5}]}"#,
        );
        let m = plan(&s, true).unwrap().unwrap();
        assert_eq!(m.uid, "0 100000 65536\n");
        assert_eq!(m.gid, "0 100000 10\n10 200000 5\n");
        assert_eq!(m.host_root(), Some(100000));
    }

    #[test]
    fn bad_maps_are_named() {
        for (linux, new, want) in [
            (
                r#"{"uidMappings":[]}"#,
                true,
                "linux.uidMappings: a new user namespace",
            ),
            (
                r#"{"uidMappings":[{"containerID":0,"hostID":1000,"size":10},{"containerID":5,"hostID":5000,"size":10}],"gidMappings":[{"containerID":0,"hostID":0,"size":1}]}"#,
                true,
                "linux.uidMappings[1]: its containerID range overlaps linux.uidMappings[0]",
            ),
            (
                r#"{"uidMappings":[{"containerID":0,"hostID":1000,"size":10}],"gidMappings":[{"containerID":0,"hostID":1000,"size":10},{"containerID":10,"hostID":1005,"size":1}]}"#,
                true,
                "linux.gidMappings[1]: its hostID range overlaps",
            ),
            (
                r#"{"uidMappings":[{"containerID":0,"hostID":1000,"size":0}],"gidMappings":[]}"#,
                true,
                "linux.uidMappings[0].size",
            ),
            (
                r#"{"uidMappings":[{"containerID":0,"hostID":1000,"size":1}]}"#,
                false,
                "linux.uidMappings: id mappings need a new user namespace",
            ),
        ] {
            let e = plan(&spec(linux), new).unwrap_err().to_string();
            assert!(e.starts_with(want), "{e}");
        }
    }
}
