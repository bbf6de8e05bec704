//! Finding the container's program and building execve's arguments.
//! The lookup runs inside the container (after pivot_root) with the container's PATH, like
//! runc, so a missing binary fails `create`, not `start`.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use anyhow::{Result, anyhow, bail};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The value of `key` in a `KEY=value` list.
pub fn env_value<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// Resolve `program` like execvp: names with a `/` are used as-is, others searched in PATH.
pub fn lookup(
    program: &str,
    env: &[String],
    is_executable: impl Fn(&PathBuf) -> bool,
) -> Result<PathBuf> {
    if program.is_empty() {
        bail!("process.args[0] is empty");
    }
    if program.contains('/') {
        let p = PathBuf::from(program);
        if !is_executable(&p) {
            bail!("exec: {program:?}: no such executable file");
        }
        return Ok(p);
    }
    let path = env_value(env, "PATH").unwrap_or(DEFAULT_PATH);
    path.split(':')
        .map(|dir| PathBuf::from(if dir.is_empty() { "." } else { dir }).join(program))
        .find(|p| is_executable(p))
        .ok_or_else(|| anyhow!("exec: {program:?}: executable file not found in $PATH"))
}

/// A regular file with some execute bit.
pub fn is_executable(p: &PathBuf) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

pub fn cstrings(items: &[String], what: &str) -> Result<Vec<CString>> {
    items
        .iter()
        .enumerate()
        .map(|(i, s)| {
            CString::new(s.as_bytes()).map_err(|_| anyhow!("{what}[{i}] contains a NUL byte"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_lookup() {
        let env = vec!["PATH=/a:/b".to_string(), "X=1".to_string()];
        let exists = |p: &PathBuf| p == &PathBuf::from("/b/sh");
        assert_eq!(lookup("sh", &env, exists).unwrap(), PathBuf::from("/b/sh"));
        let e = lookup("nope", &env, exists).unwrap_err().to_string();
        assert_eq!(e, "exec: \"nope\": executable file not found in $PATH");
        assert_eq!(
            lookup("/b/sh", &env, exists).unwrap(),
            PathBuf::from("/b/sh")
        );
        assert!(lookup("/a/sh", &env, exists).is_err());
        // Without PATH the default one is searched.
        assert_eq!(
            lookup("sh", &[], |p: &PathBuf| p == &PathBuf::from("/bin/sh")).unwrap(),
            PathBuf::from("/bin/sh")
        );
    }

    #[test]
    fn env_lookup_takes_the_last_value() {
        let env = vec![
            "HOME=/a".to_string(),
            "HOMEX=1".to_string(),
            "HOME=/b".to_string(),
        ];
        assert_eq!(env_value(&env, "HOME"), Some("/b"));
        assert_eq!(env_value(&env, "NOPE"), None);
    }
}
