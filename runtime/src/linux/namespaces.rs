//! Namespaces from `linux.namespaces`: which to create with clone, which to join by path.
//!
//! Order matters and is encoded here rather than scattered:
//! - every namespace path is opened (and its type checked) by the parent before clone, in the
//!   host's view: once the child has joined a mount namespace, paths resolve in *that*
//!   namespace, so nothing may be looked up by path afterwards;
//! - a PID namespace given by path is joined by the *parent* before clone (setns on a PID
//!   namespace only affects children);
//! - new namespaces are created by the clone itself, except the cgroup namespace, which the
//!   child unshares only after the parent has put it in its cgroup (so the namespace root is
//!   the container's cgroup, not the runtime's);
//! - other namespaces given by path are joined by the child first thing, the mount namespace
//!   last (setns(CLONE_NEWNS) also moves the caller's root and cwd to that namespace's root);
//! - a new user namespace is created by the same clone (so every other new namespace is
//!   owned by it) and mapped by the parent (linux::idmap); one given by path is entered by
//!   an intermediate process that then clones the init (linux::process), for the same
//!   reason;
//! - a new time namespace is prepared by the parent for its child (linux::timens);
//! - a type not listed is inherited from the runtime, the mount namespace included (then the
//!   rootfs mounts are the host's and `rootfs::host_ns` owns them).

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use nix::sched::{CloneFlags, setns, unshare};
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType, Spec};
use serde::{Deserialize, Serialize};

use crate::linux::sys;

/// One namespace of the container as recorded in state.json (a future `exec` joins these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceEntry {
    #[serde(rename = "type")]
    pub kind: String,
    /// `None`: created for the container; `Some(path)`: joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

/// A namespace given by path, opened in the parent.
#[derive(Debug)]
struct Joined {
    flag: CloneFlags,
    /// `linux.namespaces[i].path /the/path`, for messages.
    what: String,
    fd: OwnedFd,
}

impl Joined {
    fn enter(&self) -> Result<()> {
        setns(&self.fd, self.flag).with_context(|| format!("{}: setns", self.what))
    }
}

/// The namespace plan of one container.
#[derive(Debug)]
pub struct Namespaces {
    /// Created by clone (everything new except cgroup and user).
    clone_flags: CloneFlags,
    new_cgroup: bool,
    new_time: bool,
    new_pid: bool,
    own_uts: bool,
    /// Joined by the child, in this order (a mount namespace is kept apart: it goes last).
    join: Vec<Joined>,
    /// A mount namespace to join.
    join_mount: Option<Joined>,
    /// A PID namespace to join before clone.
    join_pid: Option<Joined>,
    /// A user namespace to join: entered by an intermediate process that then clones the
    /// init, so the namespaces the init creates are owned by it (see linux::process).
    join_user: Option<Joined>,
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

/// The config's name of a namespace type given as its clone flag (NS_GET_NSTYPE's answer).
fn type_name(bits: i32) -> String {
    [
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::User,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Time,
    ]
    .into_iter()
    .find(|k| flag(*k).bits() == bits)
    .map(|k| config_name(k).to_string())
    .unwrap_or_else(|| format!("unknown ({bits:#x})"))
}

/// The spelling of `linux.namespaces[].type` (oci-spec's Display gives /proc's `mnt`, `net`).
fn config_name(kind: LinuxNamespaceType) -> &'static str {
    match kind {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

/// Open a namespace path and check that it is a namespace file of the listed type, so that a
/// wrong path fails here, in one line naming the field, rather than in the child's setns.
fn open_namespace(i: usize, kind: LinuxNamespaceType, path: &PathBuf) -> Result<Joined> {
    let what = format!("linux.namespaces[{i}].path {}", path.display());
    let fd = OwnedFd::from(File::open(path).with_context(|| format!("{what}: cannot open"))?);
    match sys::namespace_type(fd.as_fd()) {
        Ok(t) if t == flag(kind).bits() => {}
        Ok(t) => bail!(
            "{what}: is a {} namespace, not {}",
            type_name(t),
            config_name(kind)
        ),
        Err(e) if e.raw_os_error() == Some(libc::ENOTTY) => {
            bail!("{what}: not a namespace file (like /proc/PID/ns/{kind})")
        }
        Err(e) => return Err(e).with_context(|| format!("{what}: NS_GET_NSTYPE")),
    }
    Ok(Joined {
        flag: flag(kind),
        what,
        fd,
    })
}

/// Without a mount namespace of its own the container inherits the runtime's (the host's),
/// as the runtime spec requires and runc does; its rootfs is then chroot'ed, not pivot_root'ed.
/// Like runc, refuse what cannot be confined to the container there: masked and read-only
/// paths (runc: "unable to restrict sys entries without a private MNT namespace"). Unlike
/// runc, refuse rootfsPropagation too: runc applies it to the host's own `/`.
fn refuse_without_mount_namespace(spec: &Spec) -> Result<()> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    let nonempty = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|v| !v.is_empty());
    for (field, set) in [
        ("linux.maskedPaths", nonempty(linux.masked_paths())),
        ("linux.readonlyPaths", nonempty(linux.readonly_paths())),
        (
            "linux.rootfsPropagation",
            linux.rootfs_propagation().is_some(),
        ),
    ] {
        if set {
            bail!(
                "{field}: needs a mount namespace of the container's own, and linux.namespaces has no mount entry"
            );
        }
    }
    Ok(())
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
            new_time: false,
            new_pid: false,
            own_uts: false,
            join: Vec::new(),
            join_mount: None,
            join_pid: None,
            join_user: None,
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
                    // clone(2) cannot take CLONE_NEWTIME: see linux::timens.
                    LinuxNamespaceType::Time => plan.new_time = true,
                    other => {
                        plan.clone_flags |= f;
                        plan.new_pid |= other == LinuxNamespaceType::Pid;
                    }
                },
                Some(path) => {
                    let joined = open_namespace(i, kind, path)?;
                    match kind {
                        LinuxNamespaceType::Pid => plan.join_pid = Some(joined),
                        LinuxNamespaceType::User => plan.join_user = Some(joined),
                        LinuxNamespaceType::Mount => plan.join_mount = Some(joined),
                        _ => plan.join.push(joined),
                    }
                }
            }
        }
        if !plan.private_mount() {
            refuse_without_mount_namespace(spec)?;
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

    /// Does the container have a mount namespace other than the runtime's (new or joined)?
    /// Without one it inherits ours, as the runtime spec requires: see `rootfs::host_ns`.
    pub fn private_mount(&self) -> bool {
        self.clone_flags.contains(CloneFlags::CLONE_NEWNS) || self.join_mount.is_some()
    }

    /// Does the container join an existing mount namespace (then the rootfs is set up there)?
    pub fn joins_mount(&self) -> bool {
        self.join_mount.is_some()
    }

    /// Parent, before clone: enter the PID namespace given by path, if any. Our own PID does
    /// not change; the next child (the init) is born in that namespace.
    pub fn join_pid_for_children(&self) -> Result<()> {
        self.join_pid.as_ref().map_or(Ok(()), Joined::enter)
    }

    /// The error of cloning the init. ENOMEM from a joined PID namespace means its init has
    /// exited (the kernel lets no new process in), which deserves saying.
    pub fn clone_error(&self, e: std::io::Error) -> anyhow::Error {
        match &self.join_pid {
            Some(j) if e.raw_os_error() == Some(libc::ENOMEM) => anyhow::anyhow!(
                "{}: the PID namespace has no init process any more (clone: {e})",
                j.what
            ),
            _ => anyhow::Error::new(e).context("clone the container init"),
        }
    }

    /// Child: join every namespace given by path, the mount namespace last. Only descriptors
    /// opened by the parent are used: after setns(CLONE_NEWNS) our root and cwd are that
    /// namespace's, and a path would resolve there. setns(CLONE_NEWNS) also needs a process
    /// that shares no fs_struct with another: the init is a fork-like clone, never a thread.
    pub fn join_paths(&self) -> Result<()> {
        for j in self.join.iter().chain(&self.join_mount) {
            j.enter()?;
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

    /// Does the container get a new user namespace (its id maps written by the parent)?
    pub fn new_user(&self) -> bool {
        self.clone_flags.contains(CloneFlags::CLONE_NEWUSER)
    }

    /// Does the container run in a user namespace other than the runtime's (new or joined)?
    pub fn in_user_namespace(&self) -> bool {
        self.new_user() || self.joins_user()
    }

    /// Is a user namespace given by path (then an intermediate process clones the init)?
    pub fn joins_user(&self) -> bool {
        self.join_user.is_some()
    }

    /// Intermediate process, before it clones the init: enter the user namespace by path.
    pub fn enter_user(&self) -> Result<()> {
        self.join_user.as_ref().map_or(Ok(()), Joined::enter)
    }

    /// Does the container get a new time namespace (see linux::timens)?
    pub fn new_time(&self) -> bool {
        self.new_time
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
    fn without_a_mount_namespace_the_runtimes_is_inherited() {
        let p = Namespaces::from_spec(&spec(r#"[{"type":"pid"}]"#)).unwrap();
        assert!(!p.private_mount());
        let with = |field: &str| -> Spec {
            serde_json::from_str(&format!(
                r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},"linux":{{"namespaces":[{{"type":"pid"}}],{field}}}}}"#
            ))
            .unwrap()
        };
        for (field, want) in [
            (
                r#""maskedPaths":["/proc/kcore"]"#,
                "linux.maskedPaths: needs",
            ),
            (
                r#""readonlyPaths":["/proc/sys"]"#,
                "linux.readonlyPaths: needs",
            ),
            (
                r#""rootfsPropagation":"slave""#,
                "linux.rootfsPropagation: needs",
            ),
        ] {
            let e = Namespaces::from_spec(&with(field)).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        assert!(Namespaces::from_spec(&with(r#""maskedPaths":[]"#)).is_ok());
    }

    #[test]
    fn a_mount_namespace_may_be_joined_by_path() {
        let p = Namespaces::from_spec(&spec(
            r#"[{"type":"pid"},{"type":"mount","path":"/proc/self/ns/mnt"}]"#,
        ))
        .unwrap();
        assert!(p.joins_mount());
        assert_eq!(p.clone_flags(), CloneFlags::CLONE_NEWPID);
    }

    #[test]
    fn namespace_paths_must_be_namespaces_of_the_listed_type() {
        for (ns, want) in [
            (
                r#"[{"type":"mount"},{"type":"ipc","path":"/proc/self/ns/net"}]"#,
                "linux.namespaces[1].path /proc/self/ns/net: is a network namespace, not ipc",
            ),
            (
                r#"[{"type":"mount","path":"/proc/self/ns/uts"}]"#,
                "linux.namespaces[0].path /proc/self/ns/uts: is a uts namespace, not mount",
            ),
            (
                r#"[{"type":"mount"},{"type":"pid","path":"/proc/self/status"}]"#,
                "linux.namespaces[1].path /proc/self/status: not a namespace file",
            ),
        ] {
            let e = format!("{:#}", Namespaces::from_spec(&spec(ns)).unwrap_err());
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn refusals_name_the_field() {
        for (ns, want) in [
            (
                r#"[{"type":"mount"},{"type":"user","path":"/proc/self/ns/net"}]"#,
                "linux.namespaces[1].path /proc/self/ns/net: is a network namespace, not user",
            ),
            (r#"[{"type":"mount"},{"type":"mount"}]"#, "listed twice"),
        ] {
            let e = Namespaces::from_spec(&spec(ns)).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
