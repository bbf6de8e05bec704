//! How the init enters its cgroup without the expensive migration.
//!
//! Moving *another* process into a cgroup (`echo PID > cgroup.procs`, what
//! `Cgroup::add_task` does) takes the kernel's global cgroup_threadgroup_rwsem for writing,
//! which waits for an RCU grace period: ~12 ms per container on this machine, the largest
//! single cost of `create`. Two paths avoid it entirely:
//! - cgroup2 hierarchies: the child is *born* in the cgroup (clone3 + CLONE_INTO_CGROUP);
//! - cgroup v1 hierarchies: the child moves *itself, as a thread* (`echo 0 > tasks`), which
//!   the kernel does without that lock (the init is single-threaded, so this moves the whole
//!   process).
//!
//! Both happen before the init does anything else, long before user code. Only the layout
//! (`Cgroup::dirs`) comes from the cgroups module. If clone3 is refused, the caller falls back
//! to a plain clone plus `Cgroup::add_task`.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, statfs};

use crate::linux::cgroups::Cgroup;

/// The container's cgroup directories, split by how the init joins them.
pub struct Join {
    /// The cgroup2 directory the child is cloned into (at most one cgroup2 hierarchy).
    v2: Option<OwnedFd>,
    /// v1 directories the child moves itself into.
    v1: Vec<PathBuf>,
}

impl Join {
    pub fn plan(cgroup: &Cgroup) -> Result<Join> {
        let mut v2 = None;
        let mut v1 = Vec::new();
        for dir in cgroup.dirs() {
            let st = statfs(&dir).with_context(|| format!("statfs {}", dir.display()))?;
            if st.filesystem_type() == CGROUP2_SUPER_MAGIC {
                if v2.is_some() {
                    bail!("more than one cgroup2 hierarchy for {}", dir.display());
                }
                v2 = Some(
                    File::open(&dir)
                        .with_context(|| format!("open {}", dir.display()))?
                        .into(),
                );
            } else {
                v1.push(dir);
            }
        }
        Ok(Join { v2, v1 })
    }

    /// The cgroup2 directory to clone into, if any.
    pub fn v2_dir(&self) -> Option<BorrowedFd<'_>> {
        self.v2.as_ref().map(|f| f.as_fd())
    }

    /// In the child: move this (single-threaded) process into every v1 directory.
    pub fn join_v1_self(&self) -> Result<()> {
        for dir in &self.v1 {
            let tasks = dir.join("tasks");
            std::fs::write(&tasks, "0")
                .with_context(|| format!("join cgroup {}", tasks.display()))?;
        }
        Ok(())
    }
}
