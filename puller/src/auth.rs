//! Registry credentials: `--username/--password`, else containers' `auth.json`, else docker's
//! `config.json` (with its credential helpers), the order podman and skopeo use.
//!
//! Files: `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json` (root:
//! `/run/containers/0/auth.json`), `~/.config/containers/auth.json`,
//! `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`). Keys may be `host`,
//! `host/namespace/repo` (the most specific wins) or docker's `https://index.docker.io/v1/`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use serde::Deserialize;
use thiserror::Error;

use crate::reference::{DOCKER_HUB, ImageRef};

#[derive(Debug, Error)]
pub enum AuthError {
    #[error("credentials file {}: {reason}", file.display())]
    File { file: PathBuf, reason: String },
    #[error("credential helper docker-credential-{helper}: {reason}")]
    Helper { helper: String, reason: String },
    #[error("--username and --password must be given together")]
    Incomplete,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// Where they came from, for error messages (never the secret itself).
    pub source: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({} from {})", self.username, self.source)
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct AuthFile {
    #[serde(default)]
    pub auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    pub cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    pub creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AuthEntry {
    #[serde(default)]
    pub auth: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

/// Credentials for `image`: the CLI pair, else the first file with an entry for it.
pub fn resolve(
    image: &ImageRef,
    username: Option<&str>,
    password: Option<&str>,
) -> Result<Option<Credentials>, AuthError> {
    match (username, password) {
        (Some(u), Some(p)) => {
            return Ok(Some(Credentials {
                username: u.to_string(),
                password: p.to_string(),
                source: "--username/--password".into(),
            }));
        }
        (None, None) => {}
        _ => return Err(AuthError::Incomplete),
    }
    for file in default_files() {
        if let Some(af) = AuthFile::load(&file)? {
            if let Some(c) = af.lookup(image, &file)? {
                return Ok(Some(c));
            }
        }
    }
    Ok(None)
}

/// Candidate files in lookup order (missing ones are skipped when loading).
pub fn default_files() -> Vec<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let home = env("HOME");
    let mut files = Vec::new();
    if let Some(f) = env("REGISTRY_AUTH_FILE") {
        files.push(f);
    }
    match env("XDG_RUNTIME_DIR") {
        Some(d) => files.push(d.join("containers/auth.json")),
        None => files.push(PathBuf::from(format!(
            "/run/containers/{}/auth.json",
            nix::unistd::geteuid()
        ))),
    }
    match (env("XDG_CONFIG_HOME"), &home) {
        (Some(d), _) => files.push(d.join("containers/auth.json")),
        (None, Some(h)) => files.push(h.join(".config/containers/auth.json")),
        _ => {}
    }
    match (env("DOCKER_CONFIG"), &home) {
        (Some(d), _) => files.push(d.join("config.json")),
        (None, Some(h)) => files.push(h.join(".docker/config.json")),
        _ => {}
    }
    files
}

impl AuthFile {
    /// `Ok(None)` when the file does not exist; a parse error names the file.
    pub fn load(path: &Path) -> Result<Option<Self>, AuthError> {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(AuthError::File {
                    file: path.into(),
                    reason: e.to_string(),
                });
            }
        };
        Self::parse(&data)
            .map(Some)
            .map_err(|reason| AuthError::File {
                file: path.into(),
                reason,
            })
    }

    pub fn parse(data: &[u8]) -> Result<Self, String> {
        if data.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        serde_json::from_slice(data).map_err(|e| format!("invalid JSON: {e}"))
    }

    /// The entry for `image`, most specific key first (`host/ns/repo`, `host/ns`, `host`).
    pub fn lookup(&self, image: &ImageRef, file: &Path) -> Result<Option<Credentials>, AuthError> {
        let mut scopes = vec![image.name()];
        let mut s = image.name();
        while let Some((head, _)) = s.rsplit_once('/') {
            scopes.push(head.to_string());
            s = head.to_string();
        }
        let normalized: Vec<(String, &AuthEntry)> = self
            .auths
            .iter()
            .map(|(k, v)| (normalize_key(k), v))
            .collect();
        for scope in &scopes {
            for (key, entry) in &normalized {
                if key == scope {
                    return entry.credentials(key, file).map(Some);
                }
            }
        }
        let host = &image.registry;
        let helper = self
            .cred_helpers
            .iter()
            .find(|(k, _)| normalize_key(k) == *host)
            .map(|(_, v)| v)
            .or(self.creds_store.as_ref());
        match helper {
            Some(h) if !h.is_empty() => run_helper(h, host),
            _ => Ok(None),
        }
    }
}

impl AuthEntry {
    fn credentials(&self, key: &str, file: &Path) -> Result<Credentials, AuthError> {
        let bad = |reason: String| AuthError::File {
            file: file.into(),
            reason: format!("auths.{key:?}: {reason}"),
        };
        let (username, password) = match (&self.auth, &self.username, &self.password) {
            (Some(a), _, _) if !a.is_empty() => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(a.trim())
                    .map_err(|e| bad(format!("\"auth\" is not base64: {e}")))?;
                let s =
                    String::from_utf8(raw).map_err(|_| bad("\"auth\" is not UTF-8".to_string()))?;
                let (u, p) = s
                    .split_once(':')
                    .ok_or_else(|| bad("\"auth\" must encode user:password".to_string()))?;
                (u.to_string(), p.to_string())
            }
            (_, Some(u), Some(p)) => (u.clone(), p.clone()),
            _ => return Err(bad("needs \"auth\" or \"username\" and \"password\"".into())),
        };
        Ok(Credentials {
            username,
            password,
            source: file.display().to_string(),
        })
    }
}

/// `https://index.docker.io/v1/` -> `docker.io`; `http://host:5000/` -> `host:5000`.
fn normalize_key(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let k = k.trim_end_matches('/');
    let k = k
        .strip_suffix("/v1")
        .or_else(|| k.strip_suffix("/v2"))
        .unwrap_or(k);
    let (host, rest) = match k.split_once('/') {
        Some((h, r)) => (h, Some(r)),
        None => (k, None),
    };
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB,
        h => h,
    };
    match rest {
        Some(r) => format!("{host}/{r}"),
        None => host.to_string(),
    }
}

/// docker's credential-helper protocol: server URL on stdin, `{"Username","Secret"}` out.
fn run_helper(helper: &str, registry: &str) -> Result<Option<Credentials>, AuthError> {
    let err = |reason: String| AuthError::Helper {
        helper: helper.to_string(),
        reason,
    };
    let server = if registry == DOCKER_HUB {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    };
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| err(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| err(e.to_string()))?;
    if !out.status.success() {
        // "credentials not found" is not an error: fall back to anonymous access.
        return Ok(None);
    }
    #[derive(Deserialize)]
    struct HelperOut {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let h: HelperOut =
        serde_json::from_slice(&out.stdout).map_err(|e| err(format!("bad output: {e}")))?;
    Ok(Some(Credentials {
        username: h.username,
        password: h.secret,
        source: format!("docker-credential-{helper}"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap()
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn lookup(json: &str, image: &str) -> Result<Option<(String, String)>, AuthError> {
        let af = AuthFile::parse(json.as_bytes()).unwrap();
        Ok(af
            .lookup(&img(image), Path::new("/t/auth.json"))?
            .map(|c| (c.username, c.password)))
    }

    #[test]
    fn docker_config_auth_field_and_hub_key() {
        let json = format!(
            r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},
                "127.0.0.1:5000":{{"auth":"{}"}}}}}}"#,
            b64("hub:secret"),
            b64("alice:pa:ss")
        );
        assert_eq!(
            lookup(&json, "nginx").unwrap(),
            Some(("hub".into(), "secret".into()))
        );
        // The password may contain ':'; only the first one separates.
        assert_eq!(
            lookup(&json, "127.0.0.1:5000/x/y:1").unwrap(),
            Some(("alice".into(), "pa:ss".into()))
        );
        assert_eq!(lookup(&json, "127.0.0.1:5001/x").unwrap(), None);
        assert_eq!(lookup(&json, "quay.io/x").unwrap(), None);
    }

    #[test]
    fn containers_auth_json_most_specific_key_wins() {
        let json = format!(
            r#"{{"auths":{{"reg.io":{{"auth":"{}"}},"reg.io/team":{{"auth":"{}"}},
                "reg.io/team/app":{{"username":"u3","password":"p3"}}}}}}"#,
            b64("u1:p1"),
            b64("u2:p2")
        );
        let l = |i| lookup(&json, i).unwrap().unwrap().0;
        assert_eq!(l("reg.io/team/app:1"), "u3");
        assert_eq!(l("reg.io/team/other"), "u2");
        assert_eq!(l("reg.io/solo"), "u1");
        assert_eq!(normalize_key("http://localhost:5000/v2/"), "localhost:5000");
    }

    #[test]
    fn malformed_entries_name_the_file_and_key() {
        let e = lookup(r#"{"auths":{"r.io":{"auth":"!!!"}}}"#, "r.io/x")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/t/auth.json") && e.contains("r.io") && e.contains("base64"),
            "{e}"
        );
        let e = lookup(
            &format!(r#"{{"auths":{{"r.io":{{"auth":"{}"}}}}}}"#, b64("nocolon")),
            "r.io/x",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("user:password"), "{e}");
        let e = lookup(r#"{"auths":{"r.io":{}}}"#, "r.io/x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("username"), "{e}");
        assert!(
            AuthFile::parse(b"{not json")
                .unwrap_err()
                .contains("invalid JSON")
        );
        assert!(AuthFile::parse(b"  \n").unwrap().auths.is_empty());
    }

    #[test]
    fn load_skips_missing_files_and_reports_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            AuthFile::load(&dir.path().join("none.json"))
                .unwrap()
                .is_none()
        );
        let f = dir.path().join("bad.json");
        std::fs::write(&f, "[").unwrap();
        let e = AuthFile::load(&f).unwrap_err().to_string();
        assert!(e.contains("bad.json") && e.contains("invalid JSON"), "{e}");
    }

    #[test]
    fn cli_credentials_win_and_must_be_complete() {
        let c = resolve(&img("nginx"), Some("u"), Some("p"))
            .unwrap()
            .unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p"));
        assert!(matches!(
            resolve(&img("nginx"), Some("u"), None),
            Err(AuthError::Incomplete)
        ));
        // Debug output (which may reach logs) never shows the secret.
        let c = resolve(&img("nginx"), Some("u"), Some("sekrit"))
            .unwrap()
            .unwrap();
        assert!(!format!("{c:?}").contains("sekrit"));
    }
}
