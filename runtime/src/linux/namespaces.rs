//! Namespaces from `linux.namespaces`: which to create with clone, which to join by path.
//!
//! Order matters and is encoded here rather than scattered:
//! - a PID namespace given by path is joined by the *parent* before clone (setns on a PID
//!   namespace only affects children);
//! - new namespaces are created by the clone itself, except the cgroup namespace, which the
//!   child unshares only after the parent has put it in its cgroup (so the namespace root is
//!   the container's cgroup, not the runtime's);
//! - other namespaces given by path are joined by the child first thing (the user namespace,
//!   when it comes, must be joined/created before all others and is kept separate for that).

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use nix::sched::{CloneFlags, setns, unshare};
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType, Spec};
use serde::{Deserialize, Serialize};

/// One namespace of the container as recorded in state.json (a future `exec` joins these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceEntry {
    #[serde(rename = "type")]
    pub kind: String,
    /// `None`: created for the container; `Some(path)`: joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

/// The namespace plan of one container.
#[derive(Debug)]
pub struct Namespaces {
    /// Created by clone (everything new except cgroup and user).
    clone_flags: CloneFlags,
    new_cgroup: bool,
    new_pid: bool,
    own_uts: bool,
    /// Opened in the parent (so paths resolve on the host), joined by the child.
    join: Vec<(CloneFlags, PathBuf, OwnedFd)>,
    /// A PID namespace to join before clone.
    join_pid: Option<(PathBuf, OwnedFd)>,
    pub entries: Vec<NamespaceEntry>,
}

fn flag(kind: LinuxNamespaceType) -> CloneFlags {
    match kind {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

impl Namespaces {
    /// Build the plan from the spec, opening every namespace path now (host view).
    pub fn from_spec(spec: &Spec) -> Result<Self> {
        let list: &[LinuxNamespace] = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_deref())
            .unwrap_or(&[]);
        let mut plan = Namespaces {
            clone_flags: CloneFlags::empty(),
            new_cgroup: false,
            new_pid: false,
            own_uts: false,
            join: Vec::new(),
            join_pid: None,
            entries: Vec::new(),
        };
        let mut seen = CloneFlags::empty();
        for (i, ns) in list.iter().enumerate() {
            let kind = ns.typ();
            let f = flag(kind);
            if seen.contains(f) {
                bail!("linux.namespaces[{i}]: namespace {kind} listed twice");
            }
            seen |= f;
            match kind {
                LinuxNamespaceType::User => {
                    bail!("linux.namespaces[{i}]: user namespaces are not supported yet")
                }
                LinuxNamespaceType::Time => {
                    bail!("linux.namespaces[{i}]: time namespaces are not supported yet")
                }
                LinuxNamespaceType::Mount if ns.path().is_some() => {
                    bail!(
                        "linux.namespaces[{i}]: joining a mount namespace by path is not supported (the rootfs is set up in a new one)"
                    )
                }
                _ => {}
            }
            // Like runc, a hostname may be set in a UTS namespace the container creates or
            // joins: either way it is not the host's.
            plan.own_uts |= kind == LinuxNamespaceType::Uts;
            plan.entries.push(NamespaceEntry {
                kind: kind.to_string(),
                path: ns.path().clone(),
            });
            match ns.path() {
                None => match kind {
                    LinuxNamespaceType::Cgroup => plan.new_cgroup = true,
                    other => {
                        plan.clone_flags |= f;
                        plan.new_pid |= other == LinuxNamespaceType::Pid;
                    }
                },
                Some(path) => {
                    let file = File::open(path).with_context(|| {
                        format!("linux.namespaces[{i}].path {}: cannot open", path.display())
                    })?;
                    let fd = OwnedFd::from(file);
                    if kind == LinuxNamespaceType::Pid {
                        plan.join_pid = Some((path.clone(), fd));
                    } else {
                        plan.join.push((f, path.clone(), fd));
                    }
                }
            }
        }
        if !plan.clone_flags.contains(CloneFlags::CLONE_NEWNS) {
            bail!(
                "linux.namespaces: a new mount namespace is required (the rootfs is mounted and pivot_root'ed in it)"
            );
        }
        Ok(plan)
    }

    /// Flags for clone.
    pub fn clone_flags(&self) -> CloneFlags {
        self.clone_flags
    }

    /// Does the container get its own PID namespace (then killing init kills everything)?
    pub fn new_pid(&self) -> bool {
        self.new_pid
    }

    /// Does the container have a UTS namespace of its own, new or joined (required to set a
    /// hostname)?
    pub fn own_uts(&self) -> bool {
        self.own_uts
    }

    /// Parent, before clone: enter the PID namespace given by path, if any.
    pub fn join_pid_for_children(&self) -> Result<()> {
        if let Some((path, fd)) = &self.join_pid {
            setns(fd, CloneFlags::CLONE_NEWPID)
                .with_context(|| format!("setns pid namespace {}", path.display()))?;
        }
        Ok(())
    }

    /// Child: join every namespace given by path.
    pub fn join_paths(&self) -> Result<()> {
        for (f, path, fd) in &self.join {
            setns(fd, *f).with_context(|| format!("setns {}", path.display()))?;
        }
        Ok(())
    }

    /// Child, once in its cgroup: create the cgroup namespace if asked.
    pub fn unshare_cgroup(&self) -> Result<()> {
        if self.new_cgroup {
            unshare(CloneFlags::CLONE_NEWCGROUP).context("unshare cgroup namespace")?;
        }
        Ok(())
    }

    /// Does the container have its own cgroup namespace?
    pub fn new_cgroup(&self) -> bool {
        self.new_cgroup
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(namespaces: &str) -> Spec {
        serde_json::from_str(&format!(
            r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},"linux":{{"namespaces":{namespaces}}}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn new_namespaces_become_clone_flags_except_cgroup() {
        let p = Namespaces::from_spec(&spec(
            r#"[{"type":"pid"},{"type":"mount"},{"type":"uts"},{"type":"cgroup"},{"type":"network"}]"#,
        ))
        .unwrap();
        let want = CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWNET;
        assert_eq!(p.clone_flags(), want);
        assert!(p.new_cgroup() && p.new_pid() && p.own_uts());
        let kinds: Vec<_> = p.entries.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["pid", "mnt", "uts", "cgroup", "net"]);
    }

    #[test]
    fn joined_namespaces_are_opened_and_recorded() {
        let p = Namespaces::from_spec(&spec(
            r#"[{"type":"mount"},{"type":"network","path":"/proc/self/ns/net"}]"#,
        ))
        .unwrap();
        assert_eq!(p.clone_flags(), CloneFlags::CLONE_NEWNS);
        assert_eq!(
            p.entries[1].path.as_deref(),
            Some(std::path::Path::new("/proc/self/ns/net"))
        );
        let e = Namespaces::from_spec(&spec(
            r#"[{"type":"mount"},{"type":"ipc","path":"/nonexistent"}]"#,
        ))
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("linux.namespaces[1].path"),
            "{e:#}"
        );
    }

    #[test]
    fn refusals_name_the_field() {
        for (ns, want) in [
            (r#"[{"type":"pid"}]"#, "a new mount namespace is required"),
            (
                r#"[{"type":"mount"},{"type":"user"}]"#,
                "linux.namespaces[1]: user namespaces",
            ),
            (r#"[{"type":"mount"},{"type":"mount"}]"#, "listed twice"),
        ] {
            let e = Namespaces::from_spec(&spec(ns)).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
