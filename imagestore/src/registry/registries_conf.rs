//! containers-registries.conf(5) v2, the format podman, CRI-O and skopeo
//! share: `unqualified-search-registries`, and `[[registry]]` tables with
//! `prefix`, `location`, `insecure`, `blocked` and `[[registry.mirror]]`
//! (`location`, `insecure`). Read from a main file (default
//! `/etc/containers/registries.conf`) plus `*.conf` drop-ins from a
//! directory (default `/etc/containers/registries.conf.d`) in lexical
//! order; a later file's `unqualified-search-registries` replaces the
//! earlier list and a `[[registry]]` with the same prefix replaces the
//! earlier one. Missing files are fine (defaults apply).
//!
//! Not yet supported: wildcard prefixes (`*.example.com`),
//! `pull-from-mirror`, `short-name-mode` (resolution is always
//! "permissive": search registries are tried in order) and aliases.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Result, StoreError};
use crate::reference::{DEFAULT_REGISTRY, ImageRef};

/// Default main file.
pub const DEFAULT_REGISTRIES_CONF: &str = "/etc/containers/registries.conf";
/// Default drop-in directory.
pub const DEFAULT_REGISTRIES_CONF_D: &str = "/etc/containers/registries.conf.d";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawConf {
    unqualified_search_registries: Option<Vec<String>>,
    #[serde(default)]
    registry: Vec<RawRegistry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawRegistry {
    prefix: Option<String>,
    location: Option<String>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    mirror: Vec<RawMirror>,
}

#[derive(Debug, Deserialize)]
struct RawMirror {
    location: String,
    #[serde(default)]
    insecure: bool,
}

/// Where to fetch from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port][/path]`.
    pub location: String,
    /// Plain HTTP allowed.
    pub insecure: bool,
}

/// One `[[registry]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConf {
    /// Names it applies to (`docker.io`, `quay.io/team`).
    pub prefix: String,
    /// Where those names really live (defaults to the prefix).
    pub location: String,
    /// Plain HTTP allowed for `location`.
    pub insecure: bool,
    /// Pulls refused.
    pub blocked: bool,
    /// Tried in order before `location`.
    pub mirrors: Vec<Endpoint>,
}

/// The merged configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistriesConf {
    /// Registries tried for short names (empty: `docker.io`).
    pub unqualified_search_registries: Vec<String>,
    /// `[[registry]]` tables.
    pub registries: Vec<RegistryConf>,
}

/// `prefix` matches `name` at a path-component boundary.
fn prefix_matches(prefix: &str, name: &str) -> bool {
    name == prefix
        || name.strip_prefix(prefix).is_some_and(|rest| {
            rest.starts_with('/') || rest.starts_with(':') || rest.starts_with('@')
        })
}

impl RegistriesConf {
    /// Parses one file's text and merges it over `self`.
    pub fn merge_str(&mut self, text: &str, path: &Path) -> Result<()> {
        let raw: RawConf = toml::from_str(text).map_err(|e| StoreError::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        if let Some(search) = raw.unqualified_search_registries {
            self.unqualified_search_registries = search;
        }
        for r in raw.registry {
            let prefix = match r.prefix.or_else(|| r.location.clone()) {
                Some(p) if !p.is_empty() => p,
                _ => {
                    return Err(StoreError::Config {
                        path: path.to_path_buf(),
                        reason: "[[registry]] needs a prefix or a location".to_owned(),
                    });
                }
            };
            let entry = RegistryConf {
                location: r.location.unwrap_or_else(|| prefix.clone()),
                prefix,
                insecure: r.insecure,
                blocked: r.blocked,
                mirrors: r
                    .mirror
                    .into_iter()
                    .map(|m| Endpoint {
                        location: m.location,
                        insecure: m.insecure,
                    })
                    .collect(),
            };
            self.registries.retain(|e| e.prefix != entry.prefix);
            self.registries.push(entry);
        }
        Ok(())
    }

    /// Loads `main` then the `*.conf` files of `drop_ins` (both optional).
    pub fn load(main: Option<&Path>, drop_ins: Option<&Path>) -> Result<RegistriesConf> {
        let mut conf = RegistriesConf::default();
        let mut files: Vec<PathBuf> = main
            .filter(|p| p.is_file())
            .map(Path::to_path_buf)
            .into_iter()
            .collect();
        if let Some(dir) = drop_ins.filter(|d| d.is_dir()) {
            let mut extra: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| StoreError::io("read", dir, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "conf"))
                .collect();
            extra.sort();
            files.extend(extra);
        }
        for file in files {
            let text =
                std::fs::read_to_string(&file).map_err(|e| StoreError::io("read", &file, e))?;
            conf.merge_str(&text, &file)?;
        }
        Ok(conf)
    }

    /// Registries to try for a short name, in order.
    pub fn search_registries(&self) -> Vec<String> {
        if self.unqualified_search_registries.is_empty() {
            vec![DEFAULT_REGISTRY.to_owned()]
        } else {
            self.unqualified_search_registries.clone()
        }
    }

    /// The candidate references for user input `input`: itself when it
    /// names a registry, else one per search registry.
    pub fn candidates(&self, input: &str) -> Result<Vec<ImageRef>> {
        if ImageRef::is_qualified(input) {
            return Ok(vec![ImageRef::parse(input)?]);
        }
        self.search_registries()
            .iter()
            .map(|registry| ImageRef::parse(&format!("{registry}/{input}")))
            .collect()
    }

    /// Where to fetch `reference` from, in order (mirrors, then the
    /// location), each as a rewritten reference plus its insecure flag.
    pub fn endpoints(&self, reference: &ImageRef) -> Result<Vec<(ImageRef, bool)>> {
        let name = reference.name();
        let Some(entry) = self
            .registries
            .iter()
            .filter(|e| prefix_matches(&e.prefix, &name))
            .max_by_key(|e| e.prefix.len())
        else {
            return Ok(vec![(reference.clone(), false)]);
        };
        if entry.blocked {
            return Err(StoreError::Blocked {
                reference: reference.to_string(),
            });
        }
        let rest = &name[entry.prefix.len()..];
        let rewrite = |location: &str| -> Result<ImageRef> {
            let full = format!("{location}{rest}");
            let (registry, repository) =
                full.split_once('/')
                    .ok_or_else(|| StoreError::InvalidReference {
                        reference: full.clone(),
                        reason: "mirror location has no repository path".to_owned(),
                    })?;
            Ok(ImageRef {
                registry: registry.to_owned(),
                repository: repository.to_owned(),
                tag: reference.tag.clone(),
                digest: reference.digest.clone(),
            })
        };
        let mut out = Vec::new();
        for mirror in &entry.mirrors {
            out.push((rewrite(&mirror.location)?, mirror.insecure));
        }
        out.push((rewrite(&entry.location)?, entry.insecure));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = r#"
unqualified-search-registries = ["registry.local", "docker.io"]

[[registry]]
prefix = "docker.io"
location = "hub-proxy.local"
[[registry.mirror]]
location = "10.0.0.5:5000"
insecure = true

[[registry]]
prefix = "registry.k8s.io"
[[registry.mirror]]
location = "mirror.local/k8s"

[[registry]]
location = "evil.io"
blocked = true
"#;

    fn conf() -> RegistriesConf {
        let mut c = RegistriesConf::default();
        c.merge_str(CONF, Path::new("test.conf")).expect("parse");
        c
    }

    fn names(v: Vec<(ImageRef, bool)>) -> Vec<(String, bool)> {
        v.into_iter().map(|(r, i)| (r.to_string(), i)).collect()
    }

    #[test]
    fn mirrors_then_location() {
        let c = conf();
        let r = ImageRef::parse("busybox").expect("ref");
        assert_eq!(
            names(c.endpoints(&r).expect("endpoints")),
            vec![
                ("10.0.0.5:5000/library/busybox:latest".to_owned(), true),
                ("hub-proxy.local/library/busybox:latest".to_owned(), false),
            ]
        );
        let r = ImageRef::parse("registry.k8s.io/pause:3.9").expect("ref");
        assert_eq!(
            names(c.endpoints(&r).expect("endpoints")),
            vec![
                ("mirror.local/k8s/pause:3.9".to_owned(), false),
                ("registry.k8s.io/pause:3.9".to_owned(), false),
            ]
        );
        let r = ImageRef::parse("quay.io/x/y").expect("ref");
        assert_eq!(
            names(c.endpoints(&r).expect("endpoints")),
            vec![("quay.io/x/y:latest".to_owned(), false)]
        );
        let r = ImageRef::parse("evil.io/x").expect("ref");
        assert!(matches!(c.endpoints(&r), Err(StoreError::Blocked { .. })));
        // A prefix matches whole components only.
        let r = ImageRef::parse("docker.io.evil.com/x").expect("ref");
        assert_eq!(c.endpoints(&r).expect("endpoints").len(), 1);
    }

    #[test]
    fn short_names_use_search_registries() {
        let c = conf();
        let got: Vec<String> = c
            .candidates("busybox:1")
            .expect("c")
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(
            got,
            ["registry.local/busybox:1", "docker.io/library/busybox:1"]
        );
        let got: Vec<String> = c
            .candidates("quay.io/a/b")
            .expect("c")
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(got, ["quay.io/a/b:latest"]);
        let default = RegistriesConf::default();
        let got: Vec<String> = default
            .candidates("busybox")
            .expect("c")
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(got, ["docker.io/library/busybox:latest"]);
    }

    #[test]
    fn drop_ins_override_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let main = dir.path().join("registries.conf");
        std::fs::write(&main, CONF).expect("write");
        let d = dir.path().join("registries.conf.d");
        std::fs::create_dir(&d).expect("mkdir");
        std::fs::write(
            d.join("10-a.conf"),
            "unqualified-search-registries = [\"a.io\"]\n",
        )
        .expect("w");
        std::fs::write(
            d.join("20-b.conf"),
            "[[registry]]\nprefix = \"docker.io\"\nlocation = \"b.local\"\n",
        )
        .expect("w");
        std::fs::write(d.join("ignored.txt"), "not toml [").expect("w");
        let c = RegistriesConf::load(Some(&main), Some(&d)).expect("load");
        assert_eq!(c.search_registries(), ["a.io"]);
        let r = ImageRef::parse("busybox").expect("ref");
        assert_eq!(
            names(c.endpoints(&r).expect("e")),
            vec![("b.local/library/busybox:latest".to_owned(), false)]
        );
        let missing =
            RegistriesConf::load(Some(&dir.path().join("nope")), None).expect("missing ok");
        assert_eq!(missing, RegistriesConf::default());
    }
}
