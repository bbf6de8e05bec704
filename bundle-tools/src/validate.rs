//! Loading and checking an OCI bundle: `DIR/config.json` plus the root filesystem it names.
//!
//! Errors name the file and, for JSON problems, the exact field path
//! (`process.args[0]`), so a user can fix a config from one line.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle {0}: no such directory")]
    MissingBundle(PathBuf),
    #[error("{0}: cannot open: {1}")]
    // The cause is in the message, not `source()`: `{:#}` would print it twice.
    Open(PathBuf, std::io::Error),
    #[error("{file}: field `{field}`: {message}")]
    Field {
        file: PathBuf,
        field: String,
        message: String,
    },
    #[error("{file}: {message}")]
    Invalid { file: PathBuf, message: String },
    #[error("{file}: root.path {root}: {reason}")]
    Root {
        file: PathBuf,
        root: PathBuf,
        reason: String,
    },
}

/// A bundle whose config parsed and whose rootfs exists.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Absolute, canonical bundle directory.
    pub dir: PathBuf,
    pub spec: Spec,
    /// Absolute rootfs path (`root.path` resolved against `dir`).
    pub rootfs: PathBuf,
}

/// Parse a config.json, reporting the JSON path of the offending field.
pub fn parse_config(file: &Path) -> Result<Spec, BundleError> {
    let f = File::open(file).map_err(|e| BundleError::Open(file.to_path_buf(), e))?;
    let mut de = serde_json::Deserializer::from_reader(BufReader::new(f));
    let spec: Spec = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        if field.is_empty() || field == "." {
            BundleError::Invalid {
                file: file.to_path_buf(),
                message: inner.to_string(),
            }
        } else {
            BundleError::Field {
                file: file.to_path_buf(),
                field,
                message: inner.to_string(),
            }
        }
    })?;
    check_spec(file, &spec)?;
    Ok(spec)
}

/// Semantic checks serde cannot express.
fn check_spec(file: &Path, spec: &Spec) -> Result<(), BundleError> {
    let field = |field: &str, message: &str| BundleError::Field {
        file: file.to_path_buf(),
        field: field.to_string(),
        message: message.to_string(),
    };
    if spec.version().is_empty() {
        return Err(field("ociVersion", "must not be empty"));
    }
    if spec.root().is_none() {
        return Err(field("root", "is required"));
    }
    if let Some(process) = spec.process() {
        if process.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(field(
                "process.args",
                "must name at least the program to run",
            ));
        }
        if !process.cwd().is_absolute() {
            return Err(field("process.cwd", "must be an absolute path"));
        }
    }
    if let Some(process) = spec.process() {
        let mut seen = Vec::new();
        for (i, r) in process.rlimits().iter().flatten().enumerate() {
            if seen.contains(&r.typ()) {
                return Err(field(
                    &format!("process.rlimits[{i}].type"),
                    &format!("duplicate rlimit {:?}", r.typ()),
                ));
            }
            seen.push(r.typ());
        }
    }
    let namespaces = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref());
    let mut seen = Vec::new();
    for (i, ns) in namespaces.iter().copied().flatten().enumerate() {
        if seen.contains(&ns.typ()) {
            return Err(field(
                &format!("linux.namespaces[{i}].type"),
                &format!(
                    "duplicate namespace `{}`",
                    format!("{:?}", ns.typ()).to_lowercase()
                ),
            ));
        }
        seen.push(ns.typ());
        if ns.path().as_ref().is_some_and(|p| !p.is_absolute()) {
            return Err(field(
                &format!("linux.namespaces[{i}].path"),
                "must be an absolute path",
            ));
        }
    }
    // runc's rule: setting a hostname needs a UTS namespace of the container's own.
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty())
        && !seen.contains(&oci_spec::runtime::LinuxNamespaceType::Uts)
    {
        return Err(field(
            "hostname",
            "cannot be set without a `uts` entry in linux.namespaces",
        ));
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            return Err(field(
                &format!("mounts[{i}].destination"),
                "must be an absolute path",
            ));
        }
    }
    Ok(())
}

/// Load the bundle at `dir`: parse `config.json` and check that `root.path` is a directory.
pub fn load(dir: &Path) -> Result<Bundle, BundleError> {
    let dir = dir
        .canonicalize()
        .map_err(|_| BundleError::MissingBundle(dir.to_path_buf()))?;
    if !dir.is_dir() {
        return Err(BundleError::MissingBundle(dir));
    }
    let file = dir.join("config.json");
    let spec = parse_config(&file)?;
    let root = spec
        .root()
        .as_ref()
        .expect("checked by parse_config")
        .path();
    let rootfs = if root.is_absolute() {
        root.clone()
    } else {
        dir.join(root)
    };
    match std::fs::metadata(&rootfs) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(BundleError::Root {
                file,
                root: rootfs,
                reason: "not a directory".into(),
            });
        }
        Err(e) => {
            return Err(BundleError::Root {
                file,
                root: rootfs,
                reason: e.to_string(),
            });
        }
    }
    Ok(Bundle { dir, spec, rootfs })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle_with(config: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("rootfs")).unwrap();
        std::fs::write(d.path().join("config.json"), config).unwrap();
        d
    }

    const GOOD: &str = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
        "process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0}}}"#;

    #[test]
    fn loads_a_minimal_bundle() {
        let d = bundle_with(GOOD);
        let b = load(d.path()).unwrap();
        assert_eq!(b.rootfs, d.path().canonicalize().unwrap().join("rootfs"));
        assert_eq!(
            b.spec.process().as_ref().unwrap().args().as_ref().unwrap()[0],
            "sh"
        );
    }

    #[test]
    fn names_the_bad_field() {
        let d = bundle_with(
            r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"cwd":"/","args":"sh","user":{"uid":0,"gid":0}}}"#,
        );
        let e = load(d.path()).unwrap_err().to_string();
        assert!(e.contains("process.args"), "{e}");
        assert!(e.contains("config.json"), "{e}");
    }

    #[test]
    fn relative_cwd_is_refused() {
        let d = bundle_with(&GOOD.replace(r#""cwd":"/""#, r#""cwd":"tmp""#));
        let e = load(d.path()).unwrap_err().to_string();
        assert!(e.contains("process.cwd"), "{e}");
    }

    #[test]
    fn missing_rootfs_is_named() {
        let d = bundle_with(GOOD);
        std::fs::remove_dir(d.path().join("rootfs")).unwrap();
        let e = load(d.path()).unwrap_err().to_string();
        assert!(e.contains("root.path") && e.contains("rootfs"), "{e}");
    }

    #[test]
    fn missing_config_and_bundle() {
        let d = tempfile::tempdir().unwrap();
        let e = load(d.path()).unwrap_err().to_string();
        assert!(e.contains("config.json"), "{e}");
        let e = load(&d.path().join("nope")).unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
    }

    #[test]
    fn duplicates_and_hostname_without_uts_are_refused() {
        let base = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
            "process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0}"#;
        let d = bundle_with(&format!(
            r#"{base},"rlimits":[{{"type":"RLIMIT_NOFILE","soft":1,"hard":1}},{{"type":"RLIMIT_NOFILE","soft":2,"hard":2}}]}}}}"#
        ));
        let e = load(d.path()).unwrap_err().to_string();
        assert!(e.contains("process.rlimits[1].type"), "{e}");
        let d = bundle_with(&format!(
            r#"{base}}},"linux":{{"namespaces":[{{"type":"pid"}},{{"type":"pid"}}]}}}}"#
        ));
        let e = load(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("linux.namespaces[1].type") && e.contains("`pid`"),
            "{e}"
        );
        let d = bundle_with(&format!(
            r#"{base}}},"linux":{{"namespaces":[{{"type":"network","path":"proc/1/ns/net"}}]}}}}"#
        ));
        let e = load(d.path()).unwrap_err().to_string();
        assert!(e.contains("linux.namespaces[0].path"), "{e}");
        let d = bundle_with(&format!(
            r#"{base}}},"hostname":"h","linux":{{"namespaces":[{{"type":"pid"}}]}}}}"#
        ));
        let e = load(d.path()).unwrap_err().to_string();
        assert!(e.contains("`hostname`"), "{e}");
        let d = bundle_with(&format!(
            r#"{base}}},"hostname":"h","linux":{{"namespaces":[{{"type":"uts"}}]}}}}"#
        ));
        load(d.path()).unwrap();
    }

    #[test]
    fn invalid_json_is_reported() {
        let d = bundle_with("{not json");
        let e = load(d.path()).unwrap_err().to_string();
        assert!(e.contains("config.json"), "{e}");
    }
}
