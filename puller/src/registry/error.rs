//! What can go wrong talking to a registry, in the user's terms: oci-client's errors mapped
//! to one clear line each, and which of them are worth another try.

use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};
use thiserror::Error;

use super::{DOCKER_V1_SIGNED, Registry};
use crate::tls;

#[derive(Debug, Error)]
pub enum RegistryError {
    #[error(
        "registry {registry}: authentication failed (HTTP 401{detail}); check --username/--password or the credentials files"
    )]
    Unauthorized { registry: String, detail: String },
    #[error("registry {registry}: access denied to {repository}: {message}")]
    Denied {
        registry: String,
        repository: String,
        message: String,
    },
    #[error("image {image} not found: {message}")]
    NotFound { image: String, message: String },
    #[error("cannot reach registry {registry}{hint}")]
    Unreachable {
        registry: String,
        hint: String,
        #[source]
        source: OciDistributionError,
    },
    #[error("registry {registry}: TLS certificate rejected ({reason}); {hint}")]
    Certificate {
        registry: String,
        reason: String,
        hint: String,
    },
    #[error("registry {registry}: TLS setup: {reason}")]
    TlsSetup { registry: String, reason: String },
    /// Shown on one line, and not as a `source` too: `{:#}` would print it twice.
    #[error("registry {registry}: {}", one_line(&error.to_string()))]
    Other {
        registry: String,
        error: OciDistributionError,
    },
    #[error(
        "image {image}: schema1 manifests ({media_type}) are deprecated and not supported; re-push the image with a current docker, skopeo or buildah"
    )]
    Schema1 { image: String, media_type: String },
    #[error("image {image}: unsupported manifest media type {media_type:?}")]
    UnsupportedManifest { image: String, media_type: String },
    #[error("image {image}: invalid {what}: {reason}")]
    Invalid {
        image: String,
        what: String,
        reason: String,
    },
    #[error("image {image}: no manifest for platform {want} in the index (available: {available})")]
    NoPlatform {
        image: String,
        want: String,
        available: String,
    },
    #[error("blob {digest}: {reason}")]
    Blob { digest: String, reason: String },
}

impl RegistryError {
    /// Worth another try: the registry or the network may recover.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Unreachable { source, .. } => is_transient(source),
            RegistryError::Other { error, .. } => is_transient(error),
            _ => false,
        }
    }
}

pub(super) fn is_transient(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ServerError { code, .. } => *code >= 500 || *code == 429,
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| e.code == OciErrorCode::Toomanyrequests),
        // A refused certificate stays refused: no point in asking again.
        OciDistributionError::RequestError(r) if tls::certificate_rejection(r).is_some() => false,
        OciDistributionError::RequestError(r) => {
            r.is_timeout() || r.is_connect() || r.is_body() || r.is_request()
        }
        OciDistributionError::IoError(_) => true,
        _ => false,
    }
}

impl Registry {
    pub(super) fn map_err(&self, e: OciDistributionError) -> RegistryError {
        let registry = self.image.registry.clone();
        match e {
            OciDistributionError::UnauthorizedError { .. } => RegistryError::Unauthorized {
                registry,
                detail: String::new(),
            },
            OciDistributionError::AuthenticationFailure(msg) => RegistryError::Unauthorized {
                registry,
                detail: format!(": {}", one_line(&msg)),
            },
            OciDistributionError::RegistryError { envelope, url } => {
                let message = envelope
                    .errors
                    .iter()
                    .map(|e| e.message.clone())
                    .collect::<Vec<_>>()
                    .join("; ");
                let code = envelope.errors.first().map(|e| &e.code);
                match code {
                    Some(
                        OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                        | OciErrorCode::BlobUnknown,
                    ) => RegistryError::NotFound {
                        image: self.image.to_string(),
                        message,
                    },
                    Some(OciErrorCode::Unauthorized) => RegistryError::Unauthorized {
                        registry,
                        detail: format!(": {message}"),
                    },
                    Some(OciErrorCode::Denied) => RegistryError::Denied {
                        registry,
                        repository: self.image.repository.clone(),
                        message,
                    },
                    _ => RegistryError::Other {
                        registry,
                        error: OciDistributionError::RegistryError { envelope, url },
                    },
                }
            }
            OciDistributionError::ServerError { code: 404, .. } => RegistryError::NotFound {
                image: self.image.to_string(),
                message: "HTTP 404".into(),
            },
            OciDistributionError::RequestError(ref r)
                if tls::certificate_rejection(r).is_some() =>
            {
                RegistryError::Certificate {
                    registry,
                    reason: tls::certificate_rejection(r).unwrap_or_default(),
                    hint: self.tls_hint.clone(),
                }
            }
            OciDistributionError::RequestError(ref r) if r.is_connect() || r.is_timeout() => {
                let hint = if self.image.is_loopback() {
                    String::new()
                } else {
                    " (for a plain-HTTP registry use --plain-http or --insecure)".into()
                };
                RegistryError::Unreachable {
                    registry,
                    hint,
                    source: e,
                }
            }
            // A manifest or config whose bytes do not hash to the digest that named them: said
            // in the same words as a layer's mismatch.
            OciDistributionError::DigestError(DigestError::VerificationError {
                expected,
                actual,
            }) => RegistryError::Blob {
                digest: expected,
                reason: format!("digest mismatch: content is {actual}"),
            },
            OciDistributionError::UnsupportedSchemaVersionError(1) => RegistryError::Schema1 {
                image: self.image.to_string(),
                media_type: DOCKER_V1_SIGNED.into(),
            },
            error => RegistryError::Other { registry, error },
        }
    }
}

pub(super) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
