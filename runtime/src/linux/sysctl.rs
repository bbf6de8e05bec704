//! `linux.sysctl`: kernel parameters set for the container, and `process.oomScoreAdj`.
//!
//! A sysctl is only allowed when it belongs to a namespace the container has apart from the
//! host (runc's rule): IPC parameters with an IPC namespace, `net.*` with a network namespace
//! that is not the host's, `kernel.domainname` with a UTS namespace. Anything else would
//! change the whole machine. `create` checks this before making anything; the init writes the
//! values through the container's own /proc/sys after pivot_root, before the read-only paths
//! (which usually include /proc/sys) are applied.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::linux::namespaces::NamespaceEntry;

/// IPC parameters (the IPC namespace holds them) besides everything under `fs.mqueue.`.
const IPC: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// Checks every key against the container's namespaces (`create`, before any side effect).
pub fn check(sysctl: &HashMap<String, String>, namespaces: &[NamespaceEntry]) -> Result<()> {
    let has = |kind: &str| namespaces.iter().find(|n| n.kind == kind);
    let mut keys: Vec<&String> = sysctl.keys().collect();
    keys.sort();
    for key in keys {
        let field = format!("linux.sysctl: {key}");
        relative_path(key).with_context(|| field.clone())?;
        let dotted = key.replace('/', ".");
        if IPC.contains(&dotted.as_str()) || dotted.starts_with("fs.mqueue.") {
            if has("ipc").is_none() {
                bail!("{field}: needs an IPC namespace for the container");
            }
        } else if dotted.starts_with("net.") {
            match has("net") {
                None => bail!("{field}: needs a network namespace for the container"),
                Some(n) if n.path.as_deref().is_some_and(is_host_netns) => {
                    bail!("{field}: not allowed in the host's network namespace")
                }
                Some(_) => {}
            }
        } else if dotted == "kernel.hostname" {
            bail!("{field}: set the hostname with the `hostname` field instead");
        } else if dotted == "kernel.domainname" {
            if has("uts").is_none() {
                bail!("{field}: needs a UTS namespace for the container");
            }
        } else {
            bail!("{field}: not in a namespace of the container (it would change the host)");
        }
    }
    Ok(())
}

/// `net.ipv4.ip_forward` -> `net/ipv4/ip_forward`; a key with slashes (for names holding
/// dots, e.g. `net/ipv4/conf/eth0.100/forwarding`) is taken as a path. Only plain names.
fn relative_path(key: &str) -> Result<PathBuf> {
    let sep = if key.contains('/') { '/' } else { '.' };
    if !key
        .split(sep)
        .all(|s| !s.is_empty() && s != "." && s != "..")
    {
        bail!("not a sysctl name");
    }
    Ok(key.split(sep).collect())
}

/// Is `path` the network namespace we (the host side) are in?
fn is_host_netns(path: &Path) -> bool {
    match (
        std::fs::metadata(path),
        std::fs::metadata("/proc/self/ns/net"),
    ) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Init, after pivot_root: writes every value under /proc/sys, never following a symlink or
/// leaving /proc/sys.
pub fn apply(sysctl: &HashMap<String, String>) -> Result<()> {
    if sysctl.is_empty() {
        return Ok(());
    }
    let root = crate::linux::procfs::open_container_proc("sys")?;
    let mut keys: Vec<&String> = sysctl.keys().collect();
    keys.sort();
    for key in keys {
        let value = &sysctl[key];
        let what = || format!("linux.sysctl: {key}={value}");
        let rel = relative_path(key).with_context(what)?;
        let fd = crate::linux::procfs::open_for_write(&root, &rel).with_context(what)?;
        File::from(fd)
            .write_all(value.as_bytes())
            .with_context(what)?;
    }
    Ok(())
}

/// Init, early (still in the host's /proc): `process.oomScoreAdj`. Raising it needs nothing;
/// lowering it below the current value needs CAP_SYS_RESOURCE, as for runc.
pub fn set_oom_score_adj(value: Option<i32>) -> Result<()> {
    let Some(v) = value else { return Ok(()) };
    std::fs::write("/proc/self/oom_score_adj", v.to_string())
        .with_context(|| format!("process.oomScoreAdj {v}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(kinds: &[(&str, Option<&str>)]) -> Vec<NamespaceEntry> {
        kinds
            .iter()
            .map(|(k, p)| NamespaceEntry {
                kind: k.to_string(),
                path: p.map(PathBuf::from),
            })
            .collect()
    }

    fn one(key: &str) -> HashMap<String, String> {
        HashMap::from([(key.to_string(), "1".to_string())])
    }

    #[test]
    fn namespaced_keys_need_their_namespace() {
        let all = ns(&[("ipc", None), ("net", None), ("uts", None)]);
        for key in [
            "net.ipv4.ip_forward",
            "net/ipv4/conf/eth0.100/forwarding",
            "kernel.shmmax",
            "fs.mqueue.msg_max",
            "kernel.domainname",
        ] {
            check(&one(key), &all).unwrap();
            let e = format!("{:#}", check(&one(key), &[]).unwrap_err());
            assert!(e.starts_with(&format!("linux.sysctl: {key}: needs")), "{e}");
        }
    }

    #[test]
    fn host_wide_and_malformed_keys_are_refused() {
        let all = ns(&[("ipc", None), ("net", None), ("uts", None)]);
        for (key, why) in [
            ("vm.swappiness", "it would change the host"),
            ("kernel.hostname", "`hostname` field"),
            ("net/../vm/swappiness", "not a sysctl name"),
            ("/net/ipv4/ip_forward", "not a sysctl name"),
            ("net..ipv4", "not a sysctl name"),
            ("", "not a sysctl name"),
        ] {
            let e = format!("{:#}", check(&one(key), &all).unwrap_err());
            assert!(e.contains(why), "{key}: {e}");
        }
    }

    #[test]
    fn net_keys_are_refused_in_the_hosts_network_namespace() {
        let host = ns(&[("net", Some("/proc/self/ns/net"))]);
        let e = format!(
            "{:#}",
            check(&one("net.ipv4.ip_forward"), &host).unwrap_err()
        );
        assert!(e.contains("host's network namespace"), "{e}");
    }
}
