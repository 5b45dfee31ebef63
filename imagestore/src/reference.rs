//! Image references, normalised the way docker/containerd do:
//! `busybox` → `docker.io/library/busybox:latest`,
//! `user/app:1` → `docker.io/user/app:1`, `127.0.0.1:5000/x@sha256:…`.
//! The first component is a registry host when it contains `.` or `:` or
//! is `localhost`; a reference without tag or digest gets `latest`.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::StoreError;

/// The default registry for unqualified names.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The default tag.
pub const DEFAULT_TAG: &str = "latest";

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// Registry host (and port): `docker.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// Repository path: `library/busybox`.
    pub repository: String,
    /// Tag, if any (`latest` when neither tag nor digest was given).
    pub tag: Option<String>,
    /// Digest, if pinned.
    pub digest: Option<Digest>,
}

impl ImageRef {
    /// Parses and normalises `s`.
    pub fn parse(s: &str) -> Result<ImageRef, StoreError> {
        let invalid = |reason: &str| StoreError::InvalidReference {
            reference: s.to_owned(),
            reason: reason.to_owned(),
        };
        if s.is_empty() || s.len() > 4096 {
            return Err(invalid("empty or too long"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => (
                rest,
                Some(d.parse::<Digest>().map_err(|e| invalid(&e.to_string()))?),
            ),
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            let ok = !tag.is_empty()
                && tag.len() <= 128
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
                && !tag.starts_with(['.', '-']);
            if !ok {
                return Err(invalid("invalid tag"));
            }
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_owned(), path.to_owned())
            }
            _ => (DEFAULT_REGISTRY.to_owned(), name.to_owned()),
        };
        let registry = if registry == "index.docker.io" || registry == "registry-1.docker.io" {
            DEFAULT_REGISTRY.to_owned()
        } else {
            registry
        };
        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if repository.is_empty()
            || !repository.split('/').all(|c| {
                !c.is_empty()
                    && c.chars().all(|ch| {
                        ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch)
                    })
                    && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
            })
        {
            return Err(invalid(
                "repository must be lowercase [a-z0-9._-] components",
            ));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_owned()),
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (None, Some(_)) => None,
        };
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// Whether user input names its registry (`host.tld/…`, `host:port/…`,
    /// `localhost/…`) rather than being a short name to search for.
    pub fn is_qualified(input: &str) -> bool {
        match input.split_once('/') {
            Some((first, _)) => first.contains('.') || first.contains(':') || first == "localhost",
            None => false,
        }
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// Whether the registry is on the loopback interface (plain HTTP is
    /// allowed there).
    pub fn is_loopback_registry(&self) -> bool {
        is_loopback_host(&self.registry)
    }
}

/// Whether `host[:port]` names a loopback address.
pub fn is_loopback_host(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry.rsplit_once(':').map_or(registry, |(h, _)| h)
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl FromStr for ImageRef {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<ImageRef, StoreError> {
        ImageRef::parse(s)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        ImageRef::parse(s).expect(s).to_string()
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("user/app"), "docker.io/user/app:latest");
        assert_eq!(
            norm("index.docker.io/library/x"),
            "docker.io/library/x:latest"
        );
        assert_eq!(norm("localhost/x"), "localhost/x:latest");
        assert_eq!(norm("127.0.0.1:5000/a/b:v1"), "127.0.0.1:5000/a/b:v1");
        assert_eq!(
            norm("registry.k8s.io/pause:3.9"),
            "registry.k8s.io/pause:3.9"
        );
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            norm(&format!("busybox@{d}")),
            format!("docker.io/library/busybox@{d}")
        );
        assert_eq!(norm(&format!("h:1/b:t@{d}")), format!("h:1/b:t@{d}"));
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "UPPER",
            "a:",
            "a@sha256:zz",
            "a//b",
            "x:bad tag",
            "a/:t",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback_host("127.0.0.1:5000"));
        assert!(is_loopback_host("localhost:1"));
        assert!(is_loopback_host("[::1]:5000"));
        assert!(!is_loopback_host("docker.io"));
        assert!(!is_loopback_host("10.0.0.1:5000"));
    }
}
