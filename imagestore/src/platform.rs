//! Platforms (`os/arch[/variant]`) and choosing an index entry for one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// An OCI platform.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// GOARCH spelling: `amd64`, `arm64`, …
    pub architecture: String,
    /// `v7`, `v8`, … if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this process runs on.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        Platform {
            os: std::env::consts::OS.to_owned(),
            architecture: architecture.to_owned(),
            variant: None,
        }
    }

    /// Whether an index entry for `candidate` can run here. A variant only
    /// constrains when both sides name one (`arm64` matches `arm64/v8`).
    pub fn matches(&self, candidate: &Platform) -> bool {
        self.os == candidate.os
            && self.architecture == candidate.architecture
            && match (&self.variant, &candidate.variant) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            }
    }
}

impl FromStr for Platform {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Platform, StoreError> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || StoreError::InvalidPlatform {
            value: s.to_owned(),
        };
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        match parts.as_slice() {
            [os, arch] => Ok(Platform {
                os: (*os).to_owned(),
                architecture: (*arch).to_owned(),
                variant: None,
            }),
            [os, arch, variant] => Ok(Platform {
                os: (*os).to_owned(),
                architecture: (*arch).to_owned(),
                variant: Some((*variant).to_owned()),
            }),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let p: Platform = "linux/arm64".parse().expect("parse");
        assert!(p.matches(&"linux/arm64/v8".parse().expect("parse")));
        assert!(!p.matches(&"linux/amd64".parse().expect("parse")));
        assert!("linux".parse::<Platform>().is_err());
        if cfg!(target_arch = "x86_64") {
            assert_eq!(Platform::host().to_string(), "linux/amd64");
        }
    }
}
