//! Containers on disk: `<root>/<id>/` holds `state.json` and `exec.fifo`; the directory itself
//! is the lock (flock), so concurrent commands on one container are serialised. Also the OCI
//! state document that `state` and `list` print.

pub mod state;
pub mod status;

use std::collections::HashMap;
use std::fs::{DirBuilder, File};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::fcntl::{Flock, FlockArg};
use nix::unistd::Pid;
use serde::Serialize;

use crate::linux::procfs;
use state::State;
use status::Status;

/// The runtime-spec version whose state format we print.
pub const OCI_VERSION: &str = "1.2.0";
pub const EXEC_FIFO: &str = "exec.fifo";

/// runc's rule for ids: letters, digits, `_ + - .`, not `.`/`..`.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if !ok {
        bail!("invalid container id format: {id:?}");
    }
    Ok(())
}

/// A container directory held under an exclusive lock for the life of this value.
pub struct Locked {
    pub dir: PathBuf,
    lock: Flock<File>,
}

impl Locked {
    /// The raw lock descriptor (the init must close its inherited copy, see linux::process).
    pub fn lock_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&*self.lock)
    }
}

fn lock_dir(dir: &Path) -> Result<Flock<File>> {
    let f = File::open(dir).with_context(|| format!("open {}", dir.display()))?;
    Flock::lock(f, FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow::anyhow!("lock {}: {e}", dir.display()))
}

fn not_found() -> anyhow::Error {
    anyhow::anyhow!("container does not exist")
}

pub fn container_dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// For `create`: make `<root>/<id>` (refusing an existing id) and lock it.
pub fn create_dir(root: &Path, id: &str) -> Result<Locked> {
    validate_id(id)?;
    DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(root)
        .with_context(|| format!("create state root {}", root.display()))?;
    let dir = container_dir(root, id);
    match DirBuilder::new().mode(0o711).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!("container with given ID already exists: {id}")
        }
        Err(e) => return Err(e).with_context(|| format!("create {}", dir.display())),
    }
    let lock = lock_dir(&dir)?;
    Ok(Locked { dir, lock })
}

/// An existing container, loaded (and, for commands that change it, locked).
pub struct Container {
    pub dir: PathBuf,
    pub state: State,
    _lock: Option<Flock<File>>,
}

impl Container {
    /// Load under the container lock (start, kill, delete).
    pub fn lock(root: &Path, id: &str) -> Result<Container> {
        Self::open(root, id, true)?.ok_or_else(not_found)
    }

    /// Like [`Container::lock`], `None` when the container does not exist.
    pub fn try_lock(root: &Path, id: &str) -> Result<Option<Container>> {
        Self::open(root, id, true)
    }

    /// Load without locking (state, list: readers never block behind a slow create).
    pub fn load(root: &Path, id: &str) -> Result<Container> {
        Self::open(root, id, false)?.ok_or_else(not_found)
    }

    fn open(root: &Path, id: &str, lock: bool) -> Result<Option<Container>> {
        validate_id(id)?;
        let dir = container_dir(root, id);
        if !dir.is_dir() {
            return Ok(None);
        }
        let lock = if lock {
            // Another command may have removed the container while we waited for the lock:
            // the state file tells (it is gone then).
            match lock_dir(&dir) {
                Ok(l) => Some(l),
                Err(_) => return Ok(None),
            }
        } else {
            None
        };
        let Some(state) = State::load(&dir)? else {
            return Ok(None);
        };
        Ok(Some(Container {
            dir,
            state,
            _lock: lock,
        }))
    }

    /// Open the directory of a container whose state.json is missing (a create killed
    /// before writing it), locked, for `delete --force`.
    pub fn lock_dir_only(root: &Path, id: &str) -> Result<Option<Locked>> {
        validate_id(id)?;
        let dir = container_dir(root, id);
        if !dir.is_dir() {
            return Ok(None);
        }
        let lock = lock_dir(&dir)?;
        Ok(Some(Locked { dir, lock }))
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.state.pid)
    }

    pub fn exec_fifo(&self) -> PathBuf {
        self.dir.join(EXEC_FIFO)
    }

    pub fn status(&self) -> Status {
        let live = if self.state.pid > 0 {
            procfs::stat(self.pid())
        } else {
            None
        };
        status::derive(
            self.state.phase,
            self.state.pid_start_time,
            live,
            self.exec_fifo().exists(),
            self.state.paused,
        )
    }

    /// The container's cgroup, as `create` recorded it.
    pub fn cgroup(&self) -> Result<crate::linux::cgroups::Cgroup> {
        Ok(crate::linux::cgroups::Cgroup::open_recorded(
            &self.state.cgroup_path,
            &self.state.cgroup_paths,
        )?)
    }

    /// The OCI state document (`owner` empty, as `runc state` prints it).
    pub fn oci_state(&self) -> OciState {
        let status = self.status();
        OciState {
            oci_version: OCI_VERSION.to_string(),
            id: self.state.id.clone(),
            pid: if status == Status::Stopped {
                0
            } else {
                self.state.pid
            },
            status: status.to_string(),
            bundle: self.state.bundle.clone(),
            rootfs: self.state.rootfs.clone(),
            created: self.state.created.clone(),
            owner: String::new(),
            annotations: self.state.annotations.clone(),
        }
    }
}

/// Remove a container directory and everything in it.
pub fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("remove {}", dir.display())),
    }
}

/// What `state` prints and `list --format json` lists, field for field like runc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_runc_rules() {
        for ok in ["a", "abc-1_2.3+x", "C0"] {
            validate_id(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a b", "../x", "é"] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn duplicate_ids_are_refused_and_unknown_ids_reported() {
        let root = tempfile::tempdir().unwrap();
        let l = create_dir(root.path(), "x").unwrap();
        drop(l);
        let e = create_dir(root.path(), "x").err().unwrap().to_string();
        assert!(e.contains("already exists"), "{e}");
        // A directory without state.json (create still running or killed) is not a container.
        let e = Container::load(root.path(), "x").err().unwrap().to_string();
        assert_eq!(e, "container does not exist");
        let e = Container::lock(root.path(), "nope")
            .err()
            .unwrap()
            .to_string();
        assert_eq!(e, "container does not exist");
    }
}
