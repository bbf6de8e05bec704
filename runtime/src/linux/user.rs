//! `process.user`: supplementary groups, gid, uid (keeping capabilities across the switch so
//! `linux::capabilities::apply` can set them afterwards), and HOME from the container's passwd.

use anyhow::{Context, Result};
use nix::unistd::{Gid, Uid, setgroups, setresgid, setresuid};
use oci_spec::runtime::User;

/// Switch to the configured identity. Call after the bounding set is dropped and before the
/// capability sets are applied.
pub fn switch(user: &User) -> Result<()> {
    let gids: Vec<Gid> = user
        .additional_gids()
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    setgroups(&gids).context("setgroups (process.user.additionalGids)")?;
    // Keep the permitted set across setuid(non-zero); the effective set is cleared by the
    // kernel and set again from the config right after.
    nix::sys::prctl::set_keepcaps(true).context("prctl PR_SET_KEEPCAPS")?;
    let gid = Gid::from_raw(user.gid());
    setresgid(gid, gid, gid)
        .with_context(|| format!("setresgid {} (process.user.gid)", user.gid()))?;
    let uid = Uid::from_raw(user.uid());
    setresuid(uid, uid, uid)
        .with_context(|| format!("setresuid {} (process.user.uid)", user.uid()))?;
    nix::sys::prctl::set_keepcaps(false).context("prctl PR_SET_KEEPCAPS off")?;
    Ok(())
}

/// In a new user namespace, once the parent wrote the maps: become its root. The init still
/// runs with the host ids it was cloned with, which the namespace does not map, and files it
/// creates (on mounts made inside the namespace) need mapped ids.
pub fn become_namespace_root() -> Result<()> {
    let (uid, gid) = (Uid::from_raw(0), Gid::from_raw(0));
    setresgid(gid, gid, gid).context("setresgid 0 in the user namespace (linux.gidMappings)")?;
    setresuid(uid, uid, uid).context("setresuid 0 in the user namespace (linux.uidMappings)")?;
    Ok(())
}

/// The home directory of `uid` in an /etc/passwd text; `/` when not listed (runc's default).
pub fn home_of(passwd: &str, uid: u32) -> String {
    passwd
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 7 && f[2].parse::<u32>().ok() == Some(uid))
        .map(|f| f[5].to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_lookup() {
        let p =
            "root:x:0:0:root:/root:/bin/sh\n# c\nnobody:x:65534:65534::/nonexistent:/bin/false\n";
        assert_eq!(home_of(p, 0), "/root");
        assert_eq!(home_of(p, 65534), "/nonexistent");
        assert_eq!(home_of(p, 1000), "/");
    }
}
