//! Platforms (`os/arch[/variant]`) and the choice of one manifest from an image index.
//!
//! Normalisation follows containerd's: `x86_64` is `amd64`, `aarch64` is `arm64`, and a missing
//! variant means the architecture's default (`v8` for arm64, `v7` for arm), so `linux/arm64`
//! matches both an entry without a variant and one with `v8`.

use std::fmt;

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid --platform {0:?}: expected os/arch[/variant], e.g. linux/arm64/v8")]
pub struct PlatformError(pub String);

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    pub fn parse(s: &str) -> Result<Self, PlatformError> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &&str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(ok) {
            return Err(PlatformError(s.to_string()));
        }
        let (arch, default_variant) = normalize_arch(&parts[1].to_ascii_lowercase());
        Ok(Platform {
            os: parts[0].to_ascii_lowercase(),
            arch,
            variant: parts
                .get(2)
                .map(|v| v.to_ascii_lowercase())
                .or(default_variant),
        })
    }

    /// The platform this binary runs on.
    pub fn host() -> Self {
        let (arch, variant) = normalize_arch(std::env::consts::ARCH);
        Platform {
            os: std::env::consts::OS.to_string(),
            arch,
            variant,
        }
    }

    /// Whether an index entry with this os/arch/variant can run on `self`.
    pub fn matches(&self, os: &str, arch: &str, variant: Option<&str>) -> bool {
        let (arch, implied) = normalize_arch(&arch.to_ascii_lowercase());
        if os.to_ascii_lowercase() != self.os || arch != self.arch {
            return false;
        }
        let theirs = variant.map(str::to_ascii_lowercase).or(implied);
        match (&self.variant, theirs) {
            (None, _) => true,
            (Some(want), Some(have)) => *want == have,
            (Some(want), None) => Some(want.as_str()) == default_variant(&arch),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

fn default_variant(arch: &str) -> Option<&'static str> {
    match arch {
        "arm64" => Some("v8"),
        "arm" => Some("v7"),
        _ => None,
    }
}

/// GOARCH name for an architecture alias, plus the variant the alias implies.
fn normalize_arch(arch: &str) -> (String, Option<String>) {
    let (a, v): (&str, Option<&str>) = match arch {
        "x86_64" | "x86-64" | "amd64" => ("amd64", None),
        "aarch64" | "arm64" => ("arm64", default_variant("arm64")),
        "armhf" | "armv7l" | "arm" => ("arm", default_variant("arm")),
        "armel" | "armv6l" => ("arm", Some("v6")),
        "i386" | "i686" | "x86" | "386" => ("386", None),
        "powerpc64le" | "ppc64le" => ("ppc64le", None),
        "riscv64" => ("riscv64", None),
        "s390x" => ("s390x", None),
        other => (other, None),
    };
    (a.to_string(), v.map(str::to_string))
}

/// One entry of an image index, reduced to what platform choice needs.
#[derive(Debug, Clone)]
pub struct IndexEntry {
    pub digest: String,
    pub os: Option<String>,
    pub arch: Option<String>,
    pub variant: Option<String>,
}

/// The first entry that runs on `want`, preferring an exact variant match over a variant-less
/// request matching any variant (`linux/arm` on an index with v6 and v7 picks v7).
pub fn choose<'a>(entries: &'a [IndexEntry], want: &Platform) -> Option<&'a IndexEntry> {
    let candidates: Vec<&IndexEntry> = entries
        .iter()
        .filter(|e| match (&e.os, &e.arch) {
            (Some(os), Some(arch)) => want.matches(os, arch, e.variant.as_deref()),
            _ => false,
        })
        .collect();
    let is_default_variant = |e: &&&IndexEntry| {
        let (norm, implied) = normalize_arch(e.arch.as_deref().unwrap_or_default());
        e.variant.clone().or(implied).as_deref() == default_variant(&norm)
    };
    let preferred = match want.variant {
        None => candidates.iter().find(is_default_variant),
        Some(_) => None,
    };
    preferred.or(candidates.first()).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(d: &str, os: &str, arch: &str, v: Option<&str>) -> IndexEntry {
        IndexEntry {
            digest: d.into(),
            os: Some(os.into()),
            arch: Some(arch.into()),
            variant: v.map(Into::into),
        }
    }

    #[test]
    fn parse_and_display() {
        assert_eq!(
            Platform::parse("linux/amd64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("linux/arm64").unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(
            Platform::parse("linux/arm/v6").unwrap().to_string(),
            "linux/arm/v6"
        );
        assert_eq!(
            Platform::parse("Linux/x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", "linux/am d64", ""] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
        let err = Platform::parse("linux").unwrap_err().to_string();
        assert!(err.contains("--platform"), "{err}");
    }

    #[test]
    fn host_is_normalised() {
        let h = Platform::host();
        assert_eq!(h.os, "linux");
        assert!(!h.arch.contains('_'), "{h}");
        #[cfg(target_arch = "x86_64")]
        assert_eq!(h.to_string(), "linux/amd64");
    }

    #[test]
    fn chooses_by_os_arch_and_variant() {
        let idx = vec![
            e("amd", "linux", "amd64", None),
            e("arm6", "linux", "arm", Some("v6")),
            e("arm7", "linux", "arm", Some("v7")),
            e("arm64", "linux", "arm64", None),
            e("win", "windows", "amd64", None),
            IndexEntry {
                digest: "attestation".into(),
                os: Some("unknown".into()),
                arch: Some("unknown".into()),
                variant: None,
            },
        ];
        let pick = |p: &str| choose(&idx, &Platform::parse(p).unwrap()).map(|e| e.digest.clone());
        assert_eq!(pick("linux/amd64").as_deref(), Some("amd"));
        assert_eq!(pick("linux/arm64").as_deref(), Some("arm64"));
        assert_eq!(pick("linux/arm64/v8").as_deref(), Some("arm64"));
        assert_eq!(pick("linux/arm/v6").as_deref(), Some("arm6"));
        assert_eq!(pick("linux/arm").as_deref(), Some("arm7"));
        assert_eq!(pick("windows/amd64").as_deref(), Some("win"));
        assert_eq!(pick("linux/s390x"), None);
        assert_eq!(pick("linux/arm64/v9"), None);
        assert_eq!(pick("linux/arm/v5"), None);
    }

    #[test]
    fn explicit_v8_matches_variantless_arm64_and_aliases() {
        let idx = vec![e("x", "linux", "aarch64", None)];
        assert!(choose(&idx, &Platform::parse("linux/arm64/v8").unwrap()).is_some());
        let idx = vec![e("y", "linux", "arm64", Some("v8"))];
        assert!(choose(&idx, &Platform::parse("linux/arm64").unwrap()).is_some());
        // Entries without a platform never match.
        let idx = vec![IndexEntry {
            digest: "z".into(),
            os: None,
            arch: None,
            variant: None,
        }];
        assert!(choose(&idx, &Platform::host()).is_none());
    }
}
