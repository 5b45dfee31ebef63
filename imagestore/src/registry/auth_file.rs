//! Registry credentials from the docker config format shared by docker,
//! podman, skopeo and buildah (`{"auths": {"<registry>": {"auth":
//! base64("user:pass")}}}`), so existing `docker login`/`podman login`
//! credentials work.
//!
//! File lookup (first that exists): `$REGISTRY_AUTH_FILE`,
//! `$XDG_RUNTIME_DIR/containers/auth.json`, `$DOCKER_CONFIG/config.json`,
//! `~/.docker/config.json` — or exactly the file in
//! [`crate::StoreOptions::auth_file`]. Credential helpers (`credsStore`,
//! `credHelpers`) are not supported yet and are reported in the log.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;
use tracing::warn;

use crate::error::{Result, StoreError};
use crate::registry::Credentials;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFile {
    #[serde(default)]
    auths: HashMap<String, RawEntry>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: HashMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// A parsed auth file.
#[derive(Debug, Clone, Default)]
pub struct AuthFile {
    path: PathBuf,
    auths: HashMap<String, Credentials>,
}

/// The docker.io spellings found in auth files.
const DOCKER_HUB_KEYS: &[&str] = &[
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "https://index.docker.io/v1/",
];

/// Candidate auth file paths from an environment lookup, in order.
pub fn default_paths(env: impl Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = env("REGISTRY_AUTH_FILE") {
        out.push(PathBuf::from(p));
    }
    if let Some(dir) = env("XDG_RUNTIME_DIR") {
        out.push(Path::new(&dir).join("containers/auth.json"));
    }
    if let Some(dir) = env("DOCKER_CONFIG") {
        out.push(Path::new(&dir).join("config.json"));
    }
    if let Some(home) = env("HOME") {
        out.push(Path::new(&home).join(".docker/config.json"));
    }
    out
}

impl AuthFile {
    /// Parses the auth file at `path`.
    pub fn load(path: &Path) -> Result<AuthFile> {
        let text = std::fs::read(path).map_err(|e| StoreError::io("read", path, e))?;
        Self::parse(&text, path)
    }

    /// Parses auth file contents (`path` only names it in errors).
    pub fn parse(text: &[u8], path: &Path) -> Result<AuthFile> {
        let bad = |reason: String| StoreError::Config {
            path: path.to_path_buf(),
            reason,
        };
        let raw: RawFile =
            serde_json::from_slice(text).map_err(|e| bad(format!("auth file: {e}")))?;
        if raw.creds_store.is_some() || !raw.cred_helpers.is_empty() {
            warn!(path = %path.display(), "credential helpers are not supported; using only inline auths");
        }
        let mut auths = HashMap::new();
        for (key, entry) in raw.auths {
            let creds = match (entry.auth, entry.username, entry.password) {
                (Some(auth), _, _) if !auth.is_empty() => {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(auth.trim())
                        .map_err(|e| bad(format!("auths.{key}.auth: {e}")))?;
                    let decoded = String::from_utf8(decoded)
                        .map_err(|_| bad(format!("auths.{key}.auth is not UTF-8")))?;
                    let (user, pass) = decoded
                        .split_once(':')
                        .ok_or_else(|| bad(format!("auths.{key}.auth is not user:password")))?;
                    Credentials {
                        username: user.to_owned(),
                        password: pass.to_owned(),
                    }
                }
                (_, Some(username), Some(password)) => Credentials { username, password },
                _ => continue,
            };
            auths.insert(normalise_key(&key), creds);
        }
        Ok(AuthFile {
            path: path.to_path_buf(),
            auths,
        })
    }

    /// The first auth file that exists among `paths`.
    pub fn discover(paths: &[PathBuf]) -> Result<Option<AuthFile>> {
        for path in paths {
            if path.is_file() {
                return Self::load(path).map(Some);
            }
        }
        Ok(None)
    }

    /// Where it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Credentials for `registry/repository`: the most specific key wins
    /// (`reg/ns/repo`, `reg/ns`, `reg`), as in containers-auth.json(5).
    pub fn lookup(&self, registry: &str, repository: &str) -> Option<Credentials> {
        let full = format!("{registry}/{repository}");
        let mut scope = full.as_str();
        loop {
            if let Some(c) = self.auths.get(scope) {
                return Some(c.clone());
            }
            match scope.rsplit_once('/') {
                Some((parent, _)) => scope = parent,
                None => break,
            }
        }
        if registry == "docker.io" {
            for key in DOCKER_HUB_KEYS {
                if let Some(c) = self.auths.get(&normalise_key(key)) {
                    return Some(c.clone());
                }
            }
        }
        None
    }
}

/// `https://host/v1/` → `host`; `host/ns` stays.
fn normalise_key(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let key = key.trim_end_matches('/');
    let key = key
        .strip_suffix("/v1")
        .or_else(|| key.strip_suffix("/v2"))
        .unwrap_or(key);
    match key {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_and_podman_styles() {
        let text = br#"{
            "auths": {
                "https://index.docker.io/v1/": {"auth": "aHViOmh1YnBhc3M="},
                "127.0.0.1:5000": {"auth": "dTpwOmNvbG9u"},
                "quay.io/team": {"username": "t", "password": "tp"},
                "quay.io": {"auth": "cTpxcA=="},
                "empty.io": {}
            },
            "credHelpers": {"gcr.io": "gcloud"}
        }"#;
        let file = AuthFile::parse(text, Path::new("test.json")).expect("parse");
        let get = |r: &str, repo: &str| file.lookup(r, repo).map(|c| (c.username, c.password));
        assert_eq!(
            get("docker.io", "library/busybox"),
            Some(("hub".into(), "hubpass".into()))
        );
        assert_eq!(
            get("127.0.0.1:5000", "x"),
            Some(("u".into(), "p:colon".into()))
        );
        assert_eq!(get("quay.io", "team/app"), Some(("t".into(), "tp".into())));
        assert_eq!(get("quay.io", "other/app"), Some(("q".into(), "qp".into())));
        assert_eq!(get("empty.io", "x"), None);
        assert_eq!(get("ghcr.io", "x"), None);
    }

    #[test]
    fn default_paths_follow_the_documented_order() {
        let env = |k: &str| match k {
            "REGISTRY_AUTH_FILE" => Some("/a/auth.json".to_owned()),
            "XDG_RUNTIME_DIR" => Some("/run/user/0".to_owned()),
            "HOME" => Some("/root".to_owned()),
            _ => None,
        };
        assert_eq!(
            default_paths(env),
            vec![
                PathBuf::from("/a/auth.json"),
                PathBuf::from("/run/user/0/containers/auth.json"),
                PathBuf::from("/root/.docker/config.json"),
            ]
        );
    }
}
