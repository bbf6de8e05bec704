//! `<root>/<id>/state.json`: what later commands need to find and judge a container.
//!
//! Written atomically (temp file + rename in the same directory), so a reader sees the old or
//! the new document, never half of one. The format is versioned and additive: later features
//! (exec, pause, hooks, user namespaces, networking) add fields with serde defaults.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::linux::namespaces::NamespaceEntry;

pub const STATE_FILE: &str = "state.json";
pub const STATE_VERSION: u32 = 1;

/// The lifecycle phase the runtime itself records. `created`/`running`/`stopped` are then
/// derived from the process (see `container::status`): the file never claims a process is
/// alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// `create` is still setting the container up.
    Creating,
    /// The init reported ready; it waits on the exec fifo until `start`.
    Created,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// Format version of this file.
    pub version: u32,
    pub id: String,
    /// Absolute bundle directory.
    pub bundle: PathBuf,
    /// Absolute rootfs directory.
    pub rootfs: PathBuf,
    pub phase: Phase,
    /// The init's pid as seen from the runtime (0 before clone).
    pub pid: i32,
    /// The init's start time (clock ticks after boot, /proc/<pid>/stat field 22): with the
    /// pid it identifies the process even after the pid is reused.
    pub pid_start_time: u64,
    /// RFC 3339 creation time, as `state` prints it.
    pub created: String,
    /// The absolute cgroup path (`Cgroup::open` takes it back).
    pub cgroup_path: String,
    /// Hierarchy label -> path, where a relative cgroupsPath resolved to different places
    /// (the runtime sat in different cgroups per v1 hierarchy); empty otherwise.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub cgroup_paths: std::collections::BTreeMap<String, String>,
    /// The container's namespaces as configured (`path` set when joined).
    pub namespaces: Vec<NamespaceEntry>,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// Frozen by `pause` (until `resume`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// The config's hooks, for `start` (poststart) and `delete` (poststop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<oci_spec::runtime::Hooks>,
}

impl State {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    /// Read `dir/state.json`; `Ok(None)` if it does not exist (yet or any more).
    pub fn load(dir: &Path) -> Result<Option<State>> {
        let path = State::path(dir);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
        };
        let state =
            serde_json::from_slice(&bytes).with_context(|| format!("parse {}", path.display()))?;
        Ok(Some(state))
    }

    /// Write `dir/state.json` atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let body = serde_json::to_vec(self).expect("state always serializes");
        write_atomic(&State::path(dir), &body)
    }

    /// Does the container have its own PID namespace (killing the init then ends everything)?
    pub fn has_own_pid_namespace(&self) -> bool {
        self.namespaces
            .iter()
            .any(|n| n.kind == "pid" && n.path.is_none())
    }
}

/// Write `path` via a temp file in the same directory and rename(2), so readers never see a
/// partial file. Used for state.json and --pid-file.
pub fn write_atomic(path: &Path, body: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().context("file name")?.to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f =
            std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
        f.write_all(body)
            .with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        State {
            version: STATE_VERSION,
            id: "c1".into(),
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            phase: Phase::Created,
            pid: 42,
            pid_start_time: 7,
            created: "2024-01-01T00:00:00Z".into(),
            cgroup_path: "/mocker/c1".into(),
            cgroup_paths: Default::default(),
            namespaces: vec![NamespaceEntry {
                kind: "pid".into(),
                path: None,
            }],
            annotations: HashMap::new(),
            hooks: None,
            paused: false,
        }
    }

    #[test]
    fn save_and_load_roundtrip_atomically() {
        let d = tempfile::tempdir().unwrap();
        assert!(State::load(d.path()).unwrap().is_none());
        let s = sample();
        s.save(d.path()).unwrap();
        assert_eq!(State::load(d.path()).unwrap().unwrap(), s);
        // No temp file left behind.
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
        assert!(s.has_own_pid_namespace());
    }

    #[test]
    fn field_names_are_stable() {
        let v = serde_json::to_value(sample()).unwrap();
        for k in [
            "version",
            "id",
            "bundle",
            "rootfs",
            "phase",
            "pid",
            "pidStartTime",
            "created",
            "cgroupPath",
            "namespaces",
            "annotations",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert_eq!(v["phase"], "created");
    }
}
