//! TLS towards registries: the CA certificates to trust besides the system's, found where
//! docker and podman users put them, and telling a rejected certificate apart from a server
//! that does not speak TLS at all (which the plain-HTTP fallback is for).
//!
//! Lookup, as containers/image (podman, skopeo) does it: `--cert-dir DIR` if given, else the
//! first existing `ROOT/HOST[:PORT]/` among the certs.d roots. In that directory every `*.crt`
//! is a CA (docker's `ca.crt`); `*.cert`/`*.key` pairs (client certificates) are not supported
//! by the HTTP client we use and are reported once, not silently ignored.

use std::error::Error as StdError;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use base64::Engine;
use oci_client::client::{Certificate, CertificateEncoding};
use thiserror::Error;

/// Colon-separated certs.d roots replacing the defaults: for tests, and for hosts that keep
/// registry certificates elsewhere.
pub const CERTS_D_ENV: &str = "MOCKER_CERTS_D";

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("CA certificate {}: {reason}", path.display())]
    BadCa { path: PathBuf, reason: String },
    #[error("certificate directory {}: {source}", path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The extra roots for one registry, and the directory they came from.
#[derive(Debug, Default, Clone)]
pub struct Roots {
    pub certs: Vec<Certificate>,
    pub dir: Option<PathBuf>,
}

/// Where `HOST[:PORT]/` directories are looked for: `$MOCKER_CERTS_D`, else (as podman)
/// `~/.config/containers/certs.d` when not root, `/etc/containers/certs.d`,
/// `/etc/docker/certs.d`.
pub fn certs_d_roots() -> Vec<PathBuf> {
    roots_from(
        std::env::var_os(CERTS_D_ENV),
        nix::unistd::geteuid().is_root(),
        std::env::var_os("HOME"),
    )
}

fn roots_from(
    var: Option<std::ffi::OsString>,
    root: bool,
    home: Option<std::ffi::OsString>,
) -> Vec<PathBuf> {
    if let Some(v) = var {
        return std::env::split_paths(&v)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
    }
    let mut roots = Vec::new();
    if !root {
        if let Some(home) = home.filter(|h| !h.is_empty()) {
            roots.push(PathBuf::from(home).join(".config/containers/certs.d"));
        }
    }
    roots.push(PathBuf::from("/etc/containers/certs.d"));
    roots.push(PathBuf::from("/etc/docker/certs.d"));
    roots
}

/// The CA certificates to trust for `registry` (`host[:port]` as in the image reference).
/// An explicit `cert_dir` must exist; the certs.d lookup (in `roots`, see [`certs_d_roots`])
/// finds nothing silently.
pub fn load(registry: &str, cert_dir: Option<&Path>, roots: &[PathBuf]) -> Result<Roots, TlsError> {
    let dir = match cert_dir {
        Some(d) => {
            if !d.is_dir() {
                return Err(TlsError::Dir {
                    path: d.to_path_buf(),
                    source: io::Error::new(io::ErrorKind::NotFound, "not a directory"),
                });
            }
            d.to_path_buf()
        }
        None => {
            // A registry name is a host[:port]; never let it walk out of the root.
            if registry.is_empty() || registry.contains('/') || registry.starts_with('.') {
                return Ok(Roots::default());
            }
            match roots.iter().map(|r| r.join(registry)).find(|d| d.is_dir()) {
                Some(d) => d,
                None => return Ok(Roots::default()),
            }
        }
    };
    let dir_err = |source| TlsError::Dir {
        path: dir.clone(),
        source,
    };
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .map_err(dir_err)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(dir_err)?;
    files.sort();
    let mut certs = Vec::new();
    for f in &files {
        match f.extension().and_then(|e| e.to_str()) {
            Some("crt") => {
                let text = fs::read(f).map_err(|e| TlsError::BadCa {
                    path: f.clone(),
                    reason: e.to_string(),
                })?;
                let ders = pem_certificates(&String::from_utf8_lossy(&text)).map_err(|reason| {
                    TlsError::BadCa {
                        path: f.clone(),
                        reason,
                    }
                })?;
                certs.extend(ders.into_iter().map(|data| Certificate {
                    encoding: CertificateEncoding::Der,
                    data,
                }));
            }
            Some("cert") | Some("key") => tracing::warn!(
                "{}: client certificates are not supported; it is not sent",
                f.display()
            ),
            _ => {}
        }
    }
    tracing::debug!("{} CA certificates from {}", certs.len(), dir.display());
    Ok(Roots {
        certs,
        dir: Some(dir),
    })
}

/// Every `CERTIFICATE` block of a PEM file, decoded (a bundle may hold several).
fn pem_certificates(text: &str) -> Result<Vec<Vec<u8>>, String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(BEGIN) {
        let body = &rest[i + BEGIN.len()..];
        let j = body
            .find(END)
            .ok_or("a PEM certificate block has no END line")?;
        let b64: String = body[..j].chars().filter(|c| !c.is_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("bad base64 in a PEM certificate block: {e}"))?;
        // Every X.509 certificate is a DER SEQUENCE.
        if der.first() != Some(&0x30) {
            return Err("a PEM certificate block does not hold a DER certificate".into());
        }
        out.push(der);
        rest = &body[j + END.len()..];
    }
    if out.is_empty() {
        return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into());
    }
    Ok(out)
}

/// The reason a server certificate was refused (unknown issuer, wrong name, expired...), if
/// that is what `e` is about somewhere down its chain.
pub fn certificate_rejection(e: &(dyn StdError + 'static)) -> Option<String> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(r) = as_rustls(err) {
            return matches!(
                r,
                rustls::Error::InvalidCertificate(_) | rustls::Error::InvalidCertRevocationList(_)
            )
            .then(|| r.to_string());
        }
        cur = err.source();
    }
    None
}

/// rustls errors travel inside `io::Error`s (tokio-rustls, then hyper wraps that again),
/// whose `source()` skips the error they carry.
fn as_rustls<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut cur = e;
    loop {
        if let Some(r) = cur.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        cur = cur.downcast_ref::<io::Error>()?.get_ref()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n";

    /// How a refused certificate reaches us: a rustls error in an io::Error in another
    /// io::Error under the HTTP client's errors.
    #[test]
    fn certificate_rejections_are_found_deep_in_the_chain() {
        #[derive(Debug)]
        struct Outer(io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("error sending request")
            }
        }
        impl StdError for Outer {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let wrap = |e: rustls::Error| {
            Outer(io::Error::other(io::Error::new(
                io::ErrorKind::InvalidData,
                e,
            )))
        };
        let bad = wrap(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        let r = certificate_rejection(&bad).unwrap();
        assert!(r.contains("UnknownIssuer"), "{r}");
        // Not TLS on the other side: no rejection, so plain HTTP may be tried.
        let not_tls = wrap(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        ));
        assert_eq!(certificate_rejection(&not_tls), None);
        assert_eq!(
            certificate_rejection(&Outer(io::Error::other("reset"))),
            None
        );
    }

    #[test]
    fn pem_bundles_parse_and_garbage_is_named() {
        assert_eq!(pem_certificates(PEM).unwrap(), vec![vec![0x30, 3, 2, 1, 1]]);
        let two = format!("# comment\n{PEM}junk between\n{PEM}");
        assert_eq!(pem_certificates(&two).unwrap().len(), 2);
        assert!(pem_certificates("hello").unwrap_err().contains("no PEM"));
        let cut = "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n";
        assert!(pem_certificates(cut).unwrap_err().contains("END"));
        let bad = PEM.replace("MAMCAQE=", "!!!");
        assert!(pem_certificates(&bad).unwrap_err().contains("base64"));
    }

    #[test]
    fn cert_dir_is_used_and_certs_d_is_looked_up_per_registry() {
        let d = tempfile::tempdir().unwrap();
        let explicit = d.path().join("explicit");
        fs::create_dir(&explicit).unwrap();
        fs::write(explicit.join("ca.crt"), PEM).unwrap();
        fs::write(explicit.join("other.crt"), format!("{PEM}{PEM}")).unwrap();
        fs::write(explicit.join("README"), "not a cert").unwrap();
        let r = load("example.com:5000", Some(&explicit), &[]).unwrap();
        assert_eq!(r.certs.len(), 3);
        assert_eq!(r.dir.as_deref(), Some(explicit.as_path()));

        let e = load("x", Some(&d.path().join("missing")), &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("missing") && e.contains("not a directory"),
            "{e}"
        );
        fs::write(explicit.join("bad.crt"), "nope").unwrap();
        let e = load("x", Some(&explicit), &[]).unwrap_err().to_string();
        assert!(e.contains("bad.crt") && e.contains("no PEM"), "{e}");
    }

    #[test]
    fn certs_d_roots_are_looked_up_in_order() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        fs::create_dir_all(a.join("reg.local:443")).unwrap();
        fs::create_dir_all(b.join("reg.local:443")).unwrap();
        fs::create_dir_all(b.join("only-b")).unwrap();
        fs::write(a.join("reg.local:443/ca.crt"), PEM).unwrap();
        fs::write(b.join("reg.local:443/ca.crt"), format!("{PEM}{PEM}")).unwrap();
        fs::write(b.join("only-b/ca.crt"), PEM).unwrap();
        let var = std::env::join_paths([&a, &b]).unwrap();
        let roots = roots_from(Some(var), true, None);
        assert_eq!(roots, vec![a.clone(), b.clone()]);
        // The first root holding the registry wins, as in containers/image.
        let r = load("reg.local:443", None, &roots).unwrap();
        assert_eq!((r.certs.len(), r.dir), (1, Some(a.join("reg.local:443"))));
        assert_eq!(load("only-b", None, &roots).unwrap().certs.len(), 1);
        assert!(load("nothing:1", None, &roots).unwrap().dir.is_none());
        assert!(load("..", None, &roots).unwrap().dir.is_none());
        // --cert-dir replaces the lookup.
        let r = load("reg.local:443", Some(&b.join("only-b")), &roots).unwrap();
        assert_eq!(r.dir, Some(b.join("only-b")));
        // Defaults: podman's per-user root first when not root, then podman's and docker's.
        let etc = [
            PathBuf::from("/etc/containers/certs.d"),
            PathBuf::from("/etc/docker/certs.d"),
        ];
        assert_eq!(roots_from(None, true, Some("/root".into())), etc);
        let user = roots_from(None, false, Some("/home/u".into()));
        assert_eq!(user[0], PathBuf::from("/home/u/.config/containers/certs.d"));
        assert_eq!(user[1..], etc);
    }
}
