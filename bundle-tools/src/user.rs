//! `/etc/passwd` and `/etc/group` lookups inside a rootfs.
//!
//! Resolves an image's `User` (`user`, `uid`, `user:group`, `uid:gid`, `user:gid`, `uid:group`)
//! the way docker and runc do: names must exist in the image's files, numbers need not
//! (a uid without a passwd entry runs with gid 0), and the groups listing the user as a member
//! become additional gids only when no group was given explicitly. The files are read through
//! [`Root`], so a symlinked `/etc/passwd` cannot point at the host's.

use std::io;
use std::path::{Path, PathBuf};

use crate::secure_path::Root;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("user `{user}`: no such user in {file}")]
    UnknownUser { user: String, file: PathBuf },
    #[error("group `{group}`: no such group in {file}")]
    UnknownGroup { group: String, file: PathBuf },
    #[error("user `{0}`: empty user or group name")]
    Malformed(String),
    // The cause is in the message, not `source()`: `{:#}` would print it twice.
    #[error("{file}: {err}")]
    Read { file: PathBuf, err: io::Error },
}

/// The ids a process runs with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Groups the user is a member of (implicit form only), primary gid excluded.
    pub additional_gids: Vec<u32>,
    /// The passwd entry's name, when there is one.
    pub name: Option<String>,
    /// The passwd entry's home directory, when there is one.
    pub home: Option<String>,
}

/// One `/etc/passwd` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// One `/etc/group` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// Parse passwd lines; malformed lines and comments are skipped like libc does.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 || f[0].is_empty() {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].trim().parse().ok()?,
                gid: f[3].trim().parse().ok()?,
                home: f.get(5).map_or_else(String::new, |h| h.to_string()),
            })
        })
        .collect()
}

/// Parse group lines; malformed lines and comments are skipped.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 || f[0].is_empty() {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].trim().parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Read `rel` inside the root; a missing file is an empty database.
fn read_db(root: &Root, rel: &str) -> Result<String, UserError> {
    match root.read(Path::new(rel)) {
        Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
            Ok(String::new())
        }
        Err(err) => Err(UserError::Read {
            file: root.path().join(rel),
            err,
        }),
    }
}

/// Resolve `spec` (the image's `User`, or an override) against `rootfs`'s passwd and group.
/// An empty spec means root.
pub fn resolve(rootfs: &Path, spec: &str) -> Result<ResolvedUser, UserError> {
    let root = Root::open(rootfs).map_err(|err| UserError::Read {
        file: rootfs.to_path_buf(),
        err,
    })?;
    let passwd = parse_passwd(&read_db(&root, "etc/passwd")?);
    let group = parse_group(&read_db(&root, "etc/group")?);
    resolve_in(&passwd, &group, spec).map_err(|e| match e {
        UserError::UnknownUser { user, .. } => UserError::UnknownUser {
            user,
            file: rootfs.join("etc/passwd"),
        },
        UserError::UnknownGroup { group, .. } => UserError::UnknownGroup {
            group,
            file: rootfs.join("etc/group"),
        },
        e => e,
    })
}

/// [`resolve`] on already parsed databases (the `file` in errors is a placeholder).
pub fn resolve_in(
    passwd: &[PasswdEntry],
    group: &[GroupEntry],
    spec: &str,
) -> Result<ResolvedUser, UserError> {
    let spec = spec.trim();
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() && group_part.is_none() {
        "0"
    } else {
        user_part
    };
    if user_part.is_empty() || group_part.is_some_and(str::is_empty) {
        return Err(UserError::Malformed(spec.escape_debug().to_string()));
    }

    let entry = match user_part.parse::<u32>() {
        Ok(uid) => passwd.iter().find(|p| p.uid == uid),
        Err(_) => Some(passwd.iter().find(|p| p.name == user_part).ok_or_else(|| {
            UserError::UnknownUser {
                user: user_part.escape_debug().to_string(),
                file: PathBuf::from("/etc/passwd"),
            }
        })?),
    };
    let mut out = ResolvedUser {
        uid: entry.map_or_else(|| user_part.parse().unwrap_or(0), |p| p.uid),
        gid: entry.map_or(0, |p| p.gid),
        additional_gids: Vec::new(),
        name: entry.map(|p| p.name.clone()),
        home: entry.map(|p| p.home.clone()).filter(|h| !h.is_empty()),
    };

    match group_part {
        Some(g) => {
            out.gid = match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => {
                    group
                        .iter()
                        .find(|e| e.name == g)
                        .ok_or_else(|| UserError::UnknownGroup {
                            group: g.escape_debug().to_string(),
                            file: PathBuf::from("/etc/group"),
                        })?
                        .gid
                }
            };
        }
        None => {
            // Supplementary groups only make sense in the implicit form (runc's rule).
            if let Some(name) = &out.name {
                for g in group.iter().filter(|g| g.members.iter().any(|m| m == name)) {
                    if g.gid != out.gid && !out.additional_gids.contains(&g.gid) {
                        out.additional_gids.push(g.gid);
                    }
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        # comment\n\
        daemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n\
        broken line\n\
        www:x:33:33:www:/var/www:/bin/false\n\
        app:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\n\
        daemon:x:1:\n\
        www:x:33:\n\
        audio:x:29:app,www\n\
        video:x:44:app\n\
        app:x:1000:\n\
        staff:x:50:\n";

    fn r(spec: &str) -> Result<ResolvedUser, UserError> {
        resolve_in(&parse_passwd(PASSWD), &parse_group(GROUP), spec)
    }

    #[test]
    fn name_gives_uid_gid_and_member_groups() {
        let u = r("app").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        assert_eq!(u.additional_gids, vec![29, 44]);
        assert_eq!(u.home.as_deref(), Some("/home/app"));
    }

    #[test]
    fn numeric_uid_with_and_without_entry() {
        let u = r("33").unwrap();
        assert_eq!((u.uid, u.gid), (33, 33));
        assert_eq!(u.additional_gids, vec![29]);
        let u = r("4242").unwrap();
        assert_eq!((u.uid, u.gid), (4242, 0));
        assert!(u.additional_gids.is_empty() && u.name.is_none());
    }

    #[test]
    fn explicit_groups() {
        assert_eq!(r("app:staff").unwrap().gid, 50);
        assert_eq!(r("app:7").unwrap().gid, 7);
        assert_eq!(r("1000:50").unwrap().gid, 50);
        assert_eq!(r("4242:4343").unwrap().gid, 4343);
        assert_eq!(r("33:video").unwrap().gid, 44);
        // Explicit group: no supplementary groups.
        assert!(r("app:staff").unwrap().additional_gids.is_empty());
    }

    #[test]
    fn empty_is_root() {
        let u = r("").unwrap();
        assert_eq!((u.uid, u.gid, u.name.as_deref()), (0, 0, Some("root")));
    }

    #[test]
    fn unknown_names_are_errors() {
        let e = r("nobody").unwrap_err().to_string();
        assert!(e.contains("`nobody`"), "{e}");
        let e = r("app:wheel").unwrap_err().to_string();
        assert!(e.contains("`wheel`"), "{e}");
        assert!(r("app:").is_err());
        assert!(r(":0").is_err());
    }

    #[test]
    fn reads_files_inside_the_rootfs_only() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("rootfs");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/group"), GROUP).unwrap();
        // passwd is a symlink to the host's: resolved inside the rootfs, where it is missing.
        std::os::unix::fs::symlink("/etc/../../etc/hostpasswd", root.join("etc/passwd")).unwrap();
        std::fs::write(t.path().join("hostpasswd"), PASSWD).unwrap();
        let e = resolve(&root, "app").unwrap_err().to_string();
        assert!(
            e.contains("no such user") && e.contains("rootfs/etc/passwd"),
            "{e}"
        );
        std::fs::remove_file(root.join("etc/passwd")).unwrap();
        std::fs::write(root.join("etc/passwd"), PASSWD).unwrap();
        let u = resolve(&root, "app").unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids),
            (1000, 1000, vec![29, 44])
        );
        // Numeric users work without any database at all.
        let empty = t.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert_eq!(resolve(&empty, "5:6").unwrap().gid, 6);
    }
}
