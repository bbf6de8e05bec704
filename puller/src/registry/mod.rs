//! Talking to a registry through `oci-client`: the connection (transport and TLS probing,
//! authentication), requests under the one retry policy, config blobs and layer streams.
//! What a reference resolves to is in [`manifest`]; errors in the user's terms in [`error`].

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};

use crate::auth::Credentials;
use crate::reference::ImageRef;
use crate::retry;
use crate::tls;

mod error;
mod manifest;

pub use error::RegistryError;
use error::{is_transient, one_line};
pub use manifest::{Descriptor, resolve_cached};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_V1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_V1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// What we ask for; schema1 is accepted only to refuse it with a clear message.
const ACCEPT: &[&str] = &[
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_LIST,
    DOCKER_V1_SIGNED,
    DOCKER_V1,
];

/// Manifests and configs are small; anything bigger is refused rather than buffered.
const MAX_SMALL_BLOB: u64 = 8 << 20;

pub struct Registry {
    client: Client,
    auth: RegistryAuth,
    image: ImageRef,
    oref: oci_client::Reference,
    /// What to tell the user when the registry's certificate is refused.
    tls_hint: String,
}

/// Connects on first use: a pull served entirely from the cache never talks to the registry.
pub struct LazyRegistry {
    image: ImageRef,
    opts: Options,
    cell: tokio::sync::OnceCell<Registry>,
}

impl LazyRegistry {
    pub fn new(image: ImageRef, opts: Options) -> Self {
        LazyRegistry {
            image,
            opts,
            cell: tokio::sync::OnceCell::new(),
        }
    }

    pub async fn get(&self) -> Result<&Registry, RegistryError> {
        self.cell
            .get_or_try_init(|| Registry::connect(&self.image, self.opts.clone()))
            .await
    }
}

#[derive(Clone, Default)]
pub struct Options {
    /// Plain HTTP only (`--plain-http`).
    pub plain_http: bool,
    /// Accept a certificate that does not verify, and fall back to plain HTTP when the
    /// registry does not speak TLS (`--insecure`, docker's "insecure registry").
    pub insecure: bool,
    /// CA certificates for this registry (`--cert-dir`), instead of the certs.d lookup.
    pub cert_dir: Option<std::path::PathBuf>,
    /// The certs.d roots (see [`tls::certs_d_roots`]).
    pub certs_d: Vec<std::path::PathBuf>,
    pub credentials: Option<Credentials>,
}

/// How to reach a registry, from the options and its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Http,
    Https,
    /// HTTPS, and plain HTTP if the server does not speak TLS: docker's rule for loopback
    /// and insecure registries. A certificate refusal is never a reason to drop to HTTP.
    HttpsThenHttp,
}

impl Transport {
    pub fn choose(image: &ImageRef, opts: &Options) -> Transport {
        if opts.plain_http {
            Transport::Http
        } else if opts.insecure || image.is_loopback() {
            Transport::HttpsThenHttp
        } else {
            Transport::Https
        }
    }
}

impl Registry {
    /// A client for `image`'s registry; with credentials, they are checked right away so a
    /// wrong password is reported as such, not as a missing image.
    pub async fn connect(image: &ImageRef, opts: Options) -> Result<Self, RegistryError> {
        let transport = Transport::choose(image, &opts);
        let roots = if transport == Transport::Http {
            tls::Roots::default()
        } else {
            tls::load(&image.registry, opts.cert_dir.as_deref(), &opts.certs_d).map_err(|e| {
                RegistryError::TlsSetup {
                    registry: image.registry.clone(),
                    reason: e.to_string(),
                }
            })?
        };
        let tls_hint = match &roots.dir {
            Some(d) if !roots.certs.is_empty() => format!(
                "it is not signed by a CA in {}; or skip verification with --insecure",
                d.display()
            ),
            _ => format!(
                "trust its CA with --cert-dir DIR or {}, or skip verification with --insecure",
                opts.certs_d
                    .first()
                    .map(|r| r.join(&image.registry).join("ca.crt"))
                    .unwrap_or_else(|| {
                        std::path::Path::new("/etc/containers/certs.d")
                            .join(&image.registry)
                            .join("ca.crt")
                    })
                    .display()
            ),
        };
        // `verify` off: no verifier, so no root store of the system's CAs for this client
        // (a plain-HTTP client or a mere "is this TLS?" probe needs none).
        let make = |https: bool, verify: bool, auth: RegistryAuth| {
            let config = ClientConfig {
                protocol: if https {
                    ClientProtocol::Https
                } else {
                    ClientProtocol::Http
                },
                accept_invalid_certificates: !verify,
                extra_root_certificates: if verify {
                    roots.certs.clone()
                } else {
                    Vec::new()
                },
                connect_timeout: Some(Duration::from_secs(10)),
                read_timeout: Some(Duration::from_secs(60)),
                platform_resolver: None,
                user_agent: concat!("mocker-pull/", env!("CARGO_PKG_VERSION")),
                ..Default::default()
            };
            // try_from, not new(): new() would drop our certificates on error and go on.
            let client = Client::try_from(config).map_err(|e| RegistryError::TlsSetup {
                registry: image.registry.clone(),
                reason: format!(
                    "{}{}",
                    one_line(&e.to_string()),
                    roots
                        .dir
                        .as_ref()
                        .map(|d| format!(" (certificates from {})", d.display()))
                        .unwrap_or_default()
                ),
            })?;
            Ok::<_, RegistryError>(Registry {
                client,
                auth,
                image: image.clone(),
                oref: image.to_oci(),
                tls_hint: tls_hint.clone(),
            })
        };
        let auth = match &opts.credentials {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        };
        let reg = match transport {
            Transport::Http => make(false, false, auth)?,
            Transport::Https => make(true, !opts.insecure, auth)?,
            Transport::HttpsThenHttp => {
                // Does it speak TLS at all? Asked once (a plain-HTTP server answers a TLS
                // hello at once with something else; retries would cost a warm pull 0.2 s),
                // anonymously and with a throwaway unverified client: no credentials go
                // anywhere before the certificate is checked.
                let probe = make(true, false, RegistryAuth::Anonymous)?;
                let prefix = format!("https://{}/", image.registry);
                let tls = match probe.auth_once().await {
                    Err(OciDistributionError::RequestError(r))
                        if (r.is_connect() || r.is_timeout())
                            && r.url().is_some_and(|u| u.as_str().starts_with(&prefix)) =>
                    {
                        tracing::debug!("{}: no HTTPS ({r}); trying plain HTTP", image.registry);
                        false
                    }
                    _ => true,
                };
                make(tls, tls && !opts.insecure, auth)?
            }
        };
        let r = reg.retry(|| reg.auth_once()).await;
        reg.checked(r, opts.credentials.is_some())
    }

    fn auth_once(&self) -> impl Future<Output = Result<Option<String>, OciDistributionError>> + '_ {
        self.client
            .auth(&self.oref, &self.auth, RegistryOperation::Pull)
    }

    /// The registry, unless the first exchange (the `/v2/` challenge, and the token or the
    /// credentials check) says it cannot be used.
    fn checked<T>(
        self,
        r: Result<T, RegistryError>,
        with_creds: bool,
    ) -> Result<Self, RegistryError> {
        match r {
            Ok(_) => Ok(self),
            Err(
                e @ (RegistryError::Unreachable { .. }
                | RegistryError::Certificate { .. }
                | RegistryError::TlsSetup { .. }),
            ) => Err(e),
            // Anonymous token endpoints may refuse; the manifest request then says why.
            Err(e) if with_creds => Err(e),
            Err(_) => Ok(self),
        }
    }

    /// Run `f` under the one retry policy, then say what failed in the registry's terms.
    async fn retry<T, F, Fut>(&self, f: F) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, OciDistributionError>>,
    {
        retry::retry(f, is_transient, |attempt, e| {
            tracing::debug!("attempt {attempt} failed, retrying: {e}")
        })
        .await
        .map_err(|e| self.map_err(e))
    }

    async fn manifest_raw(
        &self,
        oref: &oci_client::Reference,
    ) -> Result<(Bytes, String), RegistryError> {
        self.retry(|| self.client.pull_manifest_raw(oref, &self.auth, ACCEPT))
            .await
    }

    /// A small blob (config) in memory, verified against `desc`.
    pub async fn small_blob(&self, desc: &Descriptor) -> Result<Vec<u8>, RegistryError> {
        if desc.size > MAX_SMALL_BLOB {
            return Err(RegistryError::Blob {
                digest: desc.digest.clone(),
                reason: format!("{} bytes is too large for a config", desc.size),
            });
        }
        let data = self
            .retry(|| async {
                let mut out = Vec::with_capacity(desc.size as usize);
                self.client
                    .pull_blob(&self.oref, desc.digest.as_str(), &mut out)
                    .await?;
                Ok(out)
            })
            .await?;
        let actual = crate::digest::sha256_digest(&data);
        if desc.digest.starts_with("sha256:") && actual != desc.digest {
            return Err(RegistryError::Blob {
                digest: desc.digest.clone(),
                reason: format!("digest mismatch: content is {actual}"),
            });
        }
        Ok(data)
    }

    /// Start streaming a blob (the request itself is retried; the body is the caller's).
    pub async fn blob_stream(
        &self,
        digest: &str,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>, RegistryError> {
        let s = self
            .retry(|| self.client.pull_blob_stream(&self.oref, digest))
            .await?;
        // oci-client checks the digest at the end of the stream too, and says so as an I/O
        // error, which would read as a (retried) network failure. The fetcher verifies count
        // and digest itself and names the fault precisely, so that last item is dropped.
        Ok(s.stream
            .take_while(|item| std::future::ready(!is_digest_verdict(item)))
            .boxed())
    }
}

fn is_digest_verdict(item: &std::io::Result<Bytes>) -> bool {
    item.as_ref()
        .is_err_and(|e| e.get_ref().is_some_and(|inner| inner.is::<DigestError>()))
}

#[cfg(test)]
mod tests {
    use super::error::*;
    use super::manifest::*;
    use super::*;
    use crate::platform::Platform;

    #[test]
    fn manifest_kinds_and_schema1_refusal() {
        let k = |s: &str| classify(s.as_bytes());
        assert!(matches!(
            k(
                r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#
            ),
            Ok(Kind::Index)
        ));
        assert!(matches!(
            k(
                r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}"#
            ),
            Ok(Kind::Index)
        ));
        assert!(matches!(
            k(r#"{"schemaVersion":2,"manifests":[]}"#),
            Ok(Kind::Index)
        ));
        assert!(matches!(
            k(r#"{"schemaVersion":2,"config":{},"layers":[]}"#),
            Ok(Kind::Manifest)
        ));
        assert!(matches!(
            k(r#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#),
            Err(ClassifyError::Schema1(_))
        ));
        assert!(matches!(
            k(
                r#"{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v1+prettyjws"}"#
            ),
            Err(ClassifyError::Schema1(_))
        ));
        assert!(matches!(
            k(r#"{"schemaVersion":2,"mediaType":"text/plain"}"#),
            Err(ClassifyError::Unsupported(_))
        ));
        assert!(matches!(k("{"), Err(ClassifyError::Json(_))));
    }

    /// Docker's rule: loopback and --insecure try HTTPS then plain HTTP; --plain-http is
    /// HTTP only; anything else is HTTPS only.
    #[test]
    fn transport_follows_the_registry_and_the_flags() {
        let t = |image: &str, plain_http: bool, insecure: bool| {
            let opts = Options {
                plain_http,
                insecure,
                ..Default::default()
            };
            Transport::choose(&ImageRef::parse(image).unwrap(), &opts)
        };
        use Transport::*;
        for loopback in [
            "127.0.0.1:5000/a",
            "localhost/a",
            "127.1.2.3:80/a",
            "[::1]:5000/a",
        ] {
            assert_eq!(t(loopback, false, false), HttpsThenHttp, "{loopback}");
            assert_eq!(t(loopback, true, false), Http, "{loopback}");
        }
        assert_eq!(t("registry.example:5000/a", false, false), Https);
        assert_eq!(t("registry.example:5000/a", false, true), HttpsThenHttp);
        assert_eq!(t("registry.example:5000/a", true, false), Http);
        assert_eq!(t("busybox", false, false), Https);
    }

    #[test]
    fn schema1_error_message_is_clear() {
        let e = RegistryError::Schema1 {
            image: "r/x:1".into(),
            media_type: DOCKER_V1_SIGNED.into(),
        }
        .to_string();
        assert!(e.contains("schema1") && e.contains("not supported"), "{e}");
    }

    /// A registry that fails the first `fail` manifest requests with `status`, then serves a
    /// one-layer image manifest; it counts manifest requests.
    fn flaky_registry(
        status: u16,
        fail: usize,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = count.clone();
        std::thread::spawn(move || {
            let manifest = format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:{z}"}},"layers":[]}}"#,
                z = "0".repeat(64)
            );
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { return };
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&req)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                let (code, body, extra) = if line.contains("/manifests/") {
                    let n = c.fetch_add(1, Ordering::SeqCst);
                    if n < fail {
                        (status, "{}".to_string(), String::new())
                    } else {
                        let d = crate::digest::sha256_digest(manifest.as_bytes());
                        (
                            200,
                            manifest.clone(),
                            format!(
                                "Content-Type: {OCI_MANIFEST}\r\nDocker-Content-Digest: {d}\r\n"
                            ),
                        )
                    }
                } else {
                    (200, "{}".to_string(), String::new())
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 {code} X\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (addr, count)
    }

    async fn resolve(addr: &str) -> Result<Resolved, RegistryError> {
        let image = ImageRef::parse(&format!("{addr}/flaky/img:1")).unwrap();
        // Plain HTTP only: this hand-made server does not answer a TLS hello.
        let reg = Registry::connect(
            &image,
            Options {
                plain_http: true,
                ..Default::default()
            },
        )
        .await?;
        reg.resolve(&Platform::host()).await
    }

    #[tokio::test]
    async fn transient_5xx_and_429_are_retried() {
        for status in [503, 429, 500] {
            let (addr, count) = flaky_registry(status, 2);
            let r = resolve(&addr).await;
            assert!(r.is_ok(), "{status}: {:?}", r.err());
            assert_eq!(
                count.load(std::sync::atomic::Ordering::SeqCst),
                3,
                "{status}"
            );
        }
    }

    #[tokio::test]
    async fn persistent_errors_give_up_and_404_is_not_retried() {
        let (addr, count) = flaky_registry(502, 100);
        let e = resolve(&addr).await.unwrap_err().to_string();
        assert!(e.contains("502") && e.contains(&addr), "{e}");
        assert_eq!(
            count.load(std::sync::atomic::Ordering::SeqCst),
            crate::retry::ATTEMPTS as usize
        );
        let (addr, count) = flaky_registry(404, 100);
        let e = resolve(&addr).await.unwrap_err().to_string();
        assert!(e.contains("not found") && e.contains("flaky/img:1"), "{e}");
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn digest_references_resolve_from_cached_blobs() {
        use crate::digest::sha256_digest;
        let z = format!("sha256:{}", "1".repeat(64));
        let m = |arch: &str| {
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"size":1,"digest":"{z}"}},"layers":[{{"mediaType":"x","size":3,"digest":"{z}","annotations":{{"a":"{arch}"}}}}]}}"#
            )
        };
        let (amd, arm) = (m("amd64"), m("arm64"));
        let (da, dr) = (sha256_digest(amd.as_bytes()), sha256_digest(arm.as_bytes()));
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
            {{"mediaType":"{OCI_MANIFEST}","size":1,"digest":"{da}","platform":{{"os":"linux","architecture":"amd64"}}}},
            {{"mediaType":"{OCI_MANIFEST}","size":1,"digest":"{dr}","platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}]}}"#
        );
        let di = sha256_digest(index.as_bytes());
        let blobs: std::collections::HashMap<String, Vec<u8>> = [
            (da.clone(), amd.into_bytes()),
            (dr.clone(), arm.into_bytes()),
            (di.clone(), index.into_bytes()),
        ]
        .into();
        let get = |d: &str| blobs.get(d).cloned();
        let arm64 = Platform::parse("linux/arm64").unwrap();
        let r = resolve_cached(&di, &arm64, get).unwrap();
        assert_eq!(r.digest, dr);
        assert_eq!(r.index.as_ref().unwrap().1, di);
        assert_eq!(r.manifest.layers.len(), 1);
        let r = resolve_cached(&da, &arm64, get).unwrap();
        assert_eq!((r.digest.as_str(), r.index.is_none()), (da.as_str(), true));
        // Nothing for the platform, or a missing blob: ask the registry instead.
        assert!(resolve_cached(&di, &Platform::parse("linux/s390x").unwrap(), get).is_none());
        let without_arm = |d: &str| if d == dr { None } else { blobs.get(d).cloned() };
        assert!(resolve_cached(&di, &arm64, without_arm).is_none());
    }

    #[test]
    fn docker_and_oci_manifests_parse() {
        let m: Manifest = serde_json::from_str(
            r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
            "config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":7,"digest":"sha256:aa"},
            "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":9,"digest":"sha256:bb"}]}"#,
        )
        .unwrap();
        assert_eq!(m.layers.len(), 1);
        assert_eq!(m.layers[0].size, 9);
    }
}
