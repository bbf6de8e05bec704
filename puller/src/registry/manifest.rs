//! Manifests and image indexes: what a reference resolves to, the platform choice in an
//! index, schema1 refused with a clear message, digests validated before they are used.

use bytes::Bytes;
use serde::Deserialize;

use super::{
    DOCKER_LIST, DOCKER_MANIFEST, DOCKER_V1, DOCKER_V1_SIGNED, OCI_INDEX, OCI_MANIFEST, Registry,
    RegistryError, one_line,
};
use crate::platform::{self, IndexEntry, Platform};
use crate::reference::validate_digest;

/// A descriptor as found in manifests and indexes (lenient: docker and OCI spellings).
#[derive(Debug, Clone, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<DescPlatform>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DescPlatform {
    pub architecture: String,
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct Index {
    manifests: Vec<Descriptor>,
}

impl Index {
    /// The index's manifests as platform candidates.
    pub(super) fn entries(&self) -> Vec<IndexEntry> {
        self.manifests
            .iter()
            .map(|d| IndexEntry {
                digest: d.digest.clone(),
                os: d.platform.as_ref().map(|p| p.os.clone()),
                arch: d.platform.as_ref().map(|p| p.architecture.clone()),
                variant: d.platform.as_ref().and_then(|p| p.variant.clone()),
            })
            .collect()
    }
}

#[derive(Deserialize)]
pub(super) struct Head {
    #[serde(rename = "schemaVersion", default)]
    schema_version: i64,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
}

/// The platform manifest an image reference resolved to.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub manifest: Manifest,
    pub manifest_raw: Bytes,
    pub digest: String,
    /// The index or manifest list it was chosen from.
    pub index: Option<(Bytes, String)>,
}

/// Resolve a digest reference from blobs already in the cache (content-addressed, so as good
/// as the registry's answer); `None` when anything is missing or unusable.
pub fn resolve_cached(
    digest: &str,
    want: &Platform,
    blob: impl Fn(&str) -> Option<Vec<u8>>,
) -> Option<Resolved> {
    let manifest = |raw: Vec<u8>| -> Option<(Manifest, Bytes)> {
        match classify(&raw).ok()? {
            Kind::Manifest => {
                let m: Manifest = serde_json::from_slice(&raw).ok()?;
                std::iter::once(&m.config)
                    .chain(&m.layers)
                    .all(|d| validate_digest(&d.digest).is_ok())
                    .then_some(())?;
                Some((m, Bytes::from(raw)))
            }
            Kind::Index => None,
        }
    };
    let raw = blob(digest)?;
    match classify(&raw).ok()? {
        Kind::Manifest => {
            let (m, raw) = manifest(raw)?;
            Some(Resolved {
                manifest: m,
                manifest_raw: raw,
                digest: digest.to_string(),
                index: None,
            })
        }
        Kind::Index => {
            let index: Index = serde_json::from_slice(&raw).ok()?;
            let entries = index.entries();
            let chosen = platform::choose(&entries, want)?.digest.clone();
            validate_digest(&chosen).ok()?;
            let (m, mraw) = manifest(blob(&chosen)?)?;
            Some(Resolved {
                manifest: m,
                manifest_raw: mraw,
                digest: chosen,
                index: Some((Bytes::from(raw), digest.to_string())),
            })
        }
    }
}

impl Registry {
    /// Resolve the reference to one image manifest for `want`, walking an index if needed.
    pub async fn resolve(&self, want: &Platform) -> Result<Resolved, RegistryError> {
        let (raw, digest) = self.manifest_raw(&self.oref).await?;
        match self.classify(&raw)? {
            Kind::Manifest => Ok(Resolved {
                manifest: self.parse_manifest(&raw)?,
                manifest_raw: raw,
                digest,
                index: None,
            }),
            Kind::Index => {
                let index: Index =
                    serde_json::from_slice(&raw).map_err(|e| self.invalid("index", e))?;
                let entries = index.entries();
                let chosen = platform::choose(&entries, want).ok_or_else(|| {
                    let available = entries
                        .iter()
                        .filter_map(|e| {
                            let (os, arch) = (e.os.as_ref()?, e.arch.as_ref()?);
                            Some(match &e.variant {
                                Some(v) => format!("{os}/{arch}/{v}"),
                                None => format!("{os}/{arch}"),
                            })
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                    RegistryError::NoPlatform {
                        image: self.image.to_string(),
                        want: want.to_string(),
                        available,
                    }
                })?;
                validate_digest(&chosen.digest).map_err(|r| self.invalid("index entry", r))?;
                // Fetched by digest: oci-client checks the body against it.
                let by_digest = self.oref.clone_with_digest(chosen.digest.clone());
                let (mraw, mdigest) = self.manifest_raw(&by_digest).await?;
                if mdigest != chosen.digest {
                    return Err(self.invalid(
                        "manifest",
                        format!(
                            "digest {mdigest} differs from the index's {}",
                            chosen.digest
                        ),
                    ));
                }
                match self.classify(&mraw)? {
                    Kind::Manifest => Ok(Resolved {
                        manifest: self.parse_manifest(&mraw)?,
                        manifest_raw: mraw,
                        digest: mdigest,
                        index: Some((raw, digest)),
                    }),
                    Kind::Index => {
                        Err(self.invalid("index", "nested image indexes are not supported"))
                    }
                }
            }
        }
    }

    pub(super) fn invalid(&self, what: &str, reason: impl std::fmt::Display) -> RegistryError {
        RegistryError::Invalid {
            image: self.image.to_string(),
            what: what.to_string(),
            reason: one_line(&reason.to_string()),
        }
    }

    pub(super) fn classify(&self, raw: &[u8]) -> Result<Kind, RegistryError> {
        classify(raw).map_err(|e| match e {
            ClassifyError::Schema1(media_type) => RegistryError::Schema1 {
                image: self.image.to_string(),
                media_type,
            },
            ClassifyError::Unsupported(media_type) => RegistryError::UnsupportedManifest {
                image: self.image.to_string(),
                media_type,
            },
            ClassifyError::Json(e) => self.invalid("manifest", e),
        })
    }

    pub(super) fn parse_manifest(&self, raw: &[u8]) -> Result<Manifest, RegistryError> {
        let m: Manifest = serde_json::from_slice(raw).map_err(|e| self.invalid("manifest", e))?;
        for d in std::iter::once(&m.config).chain(&m.layers) {
            validate_digest(&d.digest).map_err(|r| self.invalid("manifest", r))?;
        }
        Ok(m)
    }
}

pub(super) enum Kind {
    Manifest,
    Index,
}

pub(super) enum ClassifyError {
    Schema1(String),
    Unsupported(String),
    Json(serde_json::Error),
}

pub(super) fn classify(raw: &[u8]) -> Result<Kind, ClassifyError> {
    let head: Head = serde_json::from_slice(raw).map_err(ClassifyError::Json)?;
    match head.media_type.as_deref() {
        Some(DOCKER_V1 | DOCKER_V1_SIGNED) => {
            return Err(ClassifyError::Schema1(head.media_type.unwrap_or_default()));
        }
        _ if head.schema_version == 1 => {
            return Err(ClassifyError::Schema1(DOCKER_V1_SIGNED.into()));
        }
        Some(OCI_INDEX | DOCKER_LIST) => return Ok(Kind::Index),
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => return Ok(Kind::Manifest),
        Some(other) => return Err(ClassifyError::Unsupported(other.to_string())),
        None => {}
    }
    // OCI allows omitting mediaType: tell them apart by shape.
    Ok(if head.manifests.is_some() {
        Kind::Index
    } else {
        Kind::Manifest
    })
}
