//! Image references, normalised the way docker does it.
//!
//! `nginx` is `docker.io/library/nginx:latest`; a first component with a `.` or `:` or equal to
//! `localhost` is a registry host (`host:5000/repo:tag`); `@sha256:...` pins a digest, and a
//! tag without a digest defaults to `latest`.

use std::fmt;
use std::net::IpAddr;

use thiserror::Error;

pub const DOCKER_HUB: &str = "docker.io";

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid image reference {input:?}: {reason}")]
pub struct ReferenceError {
    pub input: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// Registry host with an optional port, e.g. `docker.io`, `127.0.0.1:5000`, `[::1]:5000`.
    pub registry: String,
    /// Repository path inside the registry, e.g. `library/nginx`.
    pub repository: String,
    pub tag: Option<String>,
    /// `algorithm:hex`, e.g. `sha256:...`.
    pub digest: Option<String>,
}

impl ImageRef {
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        let err = |reason: &str| ReferenceError {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(err("empty reference"));
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err("contains whitespace"));
        }
        let (name_tag, digest) = match input.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (input, None),
        };
        if let Some(d) = digest {
            validate_digest(d).map_err(|r| err(&r))?;
        }
        // A tag is after the last ':' only if that ':' is after the last '/' (else it is a port).
        let last_slash = name_tag.rfind('/');
        let (name, tag) = match name_tag.rfind(':') {
            Some(colon) if last_slash.is_none_or(|s| colon > s) => {
                (&name_tag[..colon], Some(&name_tag[colon + 1..]))
            }
            _ => (name_tag, None),
        };
        if let Some(t) = tag {
            validate_tag(t).map_err(|r| err(&r))?;
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        validate_registry(&registry).map_err(|r| err(&r))?;
        let registry = if registry == "index.docker.io" || registry == "registry-1.docker.io" {
            DOCKER_HUB.to_string()
        } else {
            registry
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        validate_repository(&repository).map_err(|r| err(&r))?;
        let tag = match (tag, digest) {
            (None, None) => Some("latest".to_string()),
            (t, _) => t.map(str::to_string),
        };
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest: digest.map(str::to_string),
        })
    }

    /// The registry host without its port (and without IPv6 brackets).
    pub fn host(&self) -> &str {
        let r = self.registry.as_str();
        if let Some(rest) = r.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest);
        }
        r.split(':').next().unwrap_or(r)
    }

    /// Docker talks plain HTTP to loopback registries without being asked; so do we.
    pub fn is_loopback(&self) -> bool {
        let host = self.host();
        host == "localhost"
            || host.ends_with(".localhost")
            || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// `registry/repository`, the name without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The reference oci-client understands; a digest wins over a tag when both are given.
    pub fn to_oci(&self) -> oci_client::Reference {
        match (&self.tag, &self.digest) {
            (Some(t), Some(d)) => oci_client::Reference::with_tag_and_digest(
                self.registry.clone(),
                self.repository.clone(),
                t.clone(),
                d.clone(),
            ),
            (_, Some(d)) => oci_client::Reference::with_digest(
                self.registry.clone(),
                self.repository.clone(),
                d.clone(),
            ),
            (t, None) => oci_client::Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                t.clone().unwrap_or_else(|| "latest".into()),
            ),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// `host[:port]`: DNS labels or an IPv4 address, or `[ipv6]`, and a numeric port.
fn validate_registry(reg: &str) -> Result<(), String> {
    let bad = || Err(format!("invalid registry host {reg:?}"));
    let (host, port) = if let Some(rest) = reg.strip_prefix('[') {
        let Some((h, after)) = rest.split_once(']') else {
            return bad();
        };
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return bad();
        }
        match after {
            "" => return Ok(()),
            p => (None, p.strip_prefix(':').or(Some("x"))),
        }
    } else {
        match reg.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(reg), None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.chars().all(|c| c.is_ascii_digit()) {
            return bad();
        }
    }
    if let Some(h) = host {
        let label_ok = |l: &str| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if !h.split('.').all(label_ok) {
            return bad();
        }
    }
    Ok(())
}

fn validate_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tag {tag:?} must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}"
        ))
    }
}

pub fn validate_digest(d: &str) -> Result<(), String> {
    let (alg, hex) = d
        .split_once(':')
        .ok_or_else(|| format!("digest {d:?} must be algorithm:hex"))?;
    let want = match alg {
        "sha256" => 64,
        "sha512" => 128,
        _ => return Err(format!("unsupported digest algorithm {alg:?}")),
    };
    if hex.len() != want || !hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
        return Err(format!(
            "digest {d:?} must have {want} lowercase hex characters"
        ));
    }
    Ok(())
}

fn validate_repository(repo: &str) -> Result<(), String> {
    if repo.is_empty() {
        return Err("empty repository name".into());
    }
    if repo.len() > 255 {
        return Err("repository name longer than 255 characters".into());
    }
    for comp in repo.split('/') {
        if comp.is_empty() {
            return Err("empty path component in repository name".into());
        }
        if comp.chars().any(|c| c.is_ascii_uppercase()) {
            return Err("repository name must be lowercase".into());
        }
        let bytes = comp.as_bytes();
        let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
            return Err(format!(
                "repository component {comp:?} must start and end with a lowercase letter or digit"
            ));
        }
        // Separators: '.', '_', '__' or runs of '-' between alphanumerics.
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if alnum(b) {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && !alnum(bytes[i]) {
                i += 1;
            }
            let sep = &comp[start..i];
            let ok = sep == "." || sep == "_" || sep == "__" || sep.chars().all(|c| c == '-');
            if !ok {
                return Err(format!("invalid separator {sep:?} in repository name"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn short_names_go_to_docker_hub_library() {
        let r = p("nginx");
        assert_eq!(r.registry, "docker.io");
        assert_eq!(r.repository, "library/nginx");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert_eq!(r.digest, None);
        assert_eq!(r.to_string(), "docker.io/library/nginx:latest");
        assert_eq!(p("user/app:1.0").to_string(), "docker.io/user/app:1.0");
        assert_eq!(
            p("index.docker.io/library/busybox").to_string(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            p("docker.io/busybox:musl").to_string(),
            "docker.io/library/busybox:musl"
        );
    }

    #[test]
    fn host_port_and_localhost() {
        let r = p("127.0.0.1:5000/busybox:1.36");
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "busybox");
        assert_eq!(r.tag.as_deref(), Some("1.36"));
        assert!(r.is_loopback());
        assert_eq!(p("localhost/a/b").registry, "localhost");
        assert_eq!(p("localhost/a/b").repository, "a/b");
        assert!(p("localhost:5000/x").is_loopback());
        assert!(p("[::1]:5000/x").is_loopback());
        assert_eq!(p("[::1]:5000/x").host(), "::1");
        assert!(p("127.1.2.3:80/x").is_loopback());
        assert!(!p("quay.io/x/y").is_loopback());
        assert!(!p("nginx").is_loopback());
        // A port-less host with a dot; a name without a dot is a docker hub user.
        assert_eq!(p("ghcr.io/o/r").registry, "ghcr.io");
        assert_eq!(p("myhost/r").registry, "docker.io");
        assert_eq!(p("myhost/r").repository, "myhost/r");
        // A port on a host with a repository but no tag.
        let r = p("reg.example:5000/team/app");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("reg.example:5000", "team/app", Some("latest"))
        );
    }

    #[test]
    fn digests_and_tag_plus_digest() {
        let r = p(&format!("busybox@{D}"));
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{D}"));
        assert_eq!(r.to_oci().digest(), Some(D));
        let r = p(&format!("localhost:5000/busybox:1.0@{D}"));
        assert_eq!(r.tag.as_deref(), Some("1.0"));
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(r.to_oci().digest(), Some(D));
    }

    #[test]
    fn bad_references_are_refused_with_a_reason() {
        for (bad, why) in [
            ("", "empty"),
            ("Nginx", "lowercase"),
            ("nginx:", "tag"),
            ("nginx:-x", "tag"),
            ("a//b", "empty path component"),
            ("nginx@sha256:abc", "64"),
            ("nginx@md5:0123", "algorithm"),
            ("-nginx", "start and end"),
            ("a..b/c", "registry host"),
            ("r.io:x/c", "registry host"),
            ("[zz]:5000/c", "registry host"),
            ("r.io/a..b", "separator"),
            ("nginx latest", "whitespace"),
        ] {
            let e = ImageRef::parse(bad).expect_err(bad).to_string();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(e.contains("invalid image reference"), "{e}");
        }
    }

    #[test]
    fn separators_allowed_by_docker() {
        for ok in ["a_b", "a__b", "a.b", "a---b", "my-org/my.app_x"] {
            p(ok);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 512, failure_persistence: None, ..Default::default()
        })]

        /// Any text: a reference or one error naming the input, never a panic.
        #[test]
        fn any_text_parses_or_is_refused(input in "\\PC{0,80}") {
            match ImageRef::parse(&input) {
                Ok(r) => {
                    proptest::prop_assert!(!r.registry.is_empty() && !r.repository.is_empty());
                }
                Err(e) => proptest::prop_assert_eq!(e.input, input),
            }
        }

        /// Reference-shaped text (the characters references use) the same way, and what
        /// parses prints back to something that parses to the same reference.
        #[test]
        fn reference_shaped_text_roundtrips(input in "[a-z0-9.:/@_-]{0,60}(:[a-zA-Z0-9._-]{1,20})?") {
            if let Ok(r) = ImageRef::parse(&input) {
                let again = ImageRef::parse(&r.to_string());
                proptest::prop_assert_eq!(again.ok(), Some(r));
            }
        }
    }
}
