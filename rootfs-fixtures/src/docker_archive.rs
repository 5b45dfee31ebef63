//! Writes `docker save` archives in Docker's legacy layout: per layer a
//! `<id>/` directory with `VERSION`, `json` and `layer.tar`; the image config
//! as `<hex>.json`; `manifest.json` (`[{Config, RepoTags, Layers}]`); and
//! `repositories`. The archive itself is encoded like a layer (sorted, mtime
//! 0, owner 0:0), so it is reproducible.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::Serialize;

use crate::digest::{canonical_json, sha256_digest, sha256_hex};
use crate::error::{FixtureError, Result};
use crate::images::{EPOCH, Image};
use crate::layer::Layer;
use crate::layer_tar::to_tar;
use crate::manifest::ArchiveInfo;

/// One entry of `manifest.json`, with Docker's field names and order.
#[derive(Debug, Serialize)]
struct ManifestEntry<'a> {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: &'a [String],
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// A layer's legacy v1 `json` file.
#[derive(Debug, Serialize)]
struct V1Json<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<&'a str>,
    created: &'static str,
    container_config: V1ContainerConfig<'a>,
    os: &'static str,
}

#[derive(Debug, Serialize)]
struct V1ContainerConfig<'a> {
    #[serde(rename = "Cmd")]
    cmd: [&'a str; 1],
}

/// Writes `image` as a `docker save` archive at `dest`, tagged `repo_tags`
/// (each `repository:tag`). `rel_path` is recorded in the returned summary.
pub fn write_archive(
    image: &Image,
    repo_tags: &[String],
    dest: &Path,
    rel_path: &str,
) -> Result<ArchiveInfo> {
    let mut archive = Layer::new();
    let config_json = canonical_json(&image.config(), dest)?;
    let config_hex = sha256_hex(&config_json);
    let config_file = format!("{config_hex}.json");
    archive.file(&config_file, 0o644, config_json.clone())?;

    // Legacy layer IDs: like Docker's, a hash over the chain ID and the
    // parent's ID, so equal layer stacks get equal IDs.
    let mut layer_paths = Vec::new();
    let mut parent: Option<String> = None;
    let mut chain_id = String::new();
    for layer in &image.layers {
        chain_id = if chain_id.is_empty() {
            layer.diff_id.clone()
        } else {
            sha256_digest(format!("{chain_id} {}", layer.diff_id).as_bytes())
        };
        let id = sha256_hex(
            format!(
                "chain {chain_id}\nparent {}\n",
                parent.as_deref().unwrap_or("")
            )
            .as_bytes(),
        );
        let v1 = V1Json {
            id: &id,
            parent: parent.as_deref(),
            created: EPOCH,
            container_config: V1ContainerConfig {
                cmd: [&layer.created_by],
            },
            os: "linux",
        };
        let v1_json = serde_json::to_vec(&v1).map_err(|source| FixtureError::Json {
            path: dest.join(&id).join("json"),
            source,
        })?;
        archive
            .dir(&id, 0o755)?
            .file(&format!("{id}/VERSION"), 0o644, "1.0")?
            .file(&format!("{id}/json"), 0o644, v1_json)?
            .file(&format!("{id}/layer.tar"), 0o644, layer.tar.clone())?;
        layer_paths.push(format!("{id}/layer.tar"));
        parent = Some(id);
    }

    let manifest = [ManifestEntry {
        config: config_file,
        repo_tags,
        layers: layer_paths,
    }];
    let manifest_json = serde_json::to_vec(&manifest).map_err(|source| FixtureError::Json {
        path: dest.join("manifest.json"),
        source,
    })?;
    archive.file("manifest.json", 0o644, manifest_json)?;

    let mut repositories: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    let top = parent.unwrap_or_default();
    for repo_tag in repo_tags {
        let (repo, tag) = split_repo_tag(repo_tag);
        repositories.entry(repo).or_default().insert(tag, &top);
    }
    let repositories_json =
        serde_json::to_vec(&repositories).map_err(|source| FixtureError::Json {
            path: dest.join("repositories"),
            source,
        })?;
    archive.file("repositories", 0o644, repositories_json)?;

    let bytes = to_tar(&archive, dest)?;
    if let Some(parent_dir) = dest.parent() {
        fs::create_dir_all(parent_dir)
            .map_err(|e| FixtureError::io("create directory", parent_dir, e))?;
    }
    fs::write(dest, &bytes).map_err(|e| FixtureError::io("write", dest, e))?;
    Ok(ArchiveInfo {
        path: rel_path.to_owned(),
        repo_tags: repo_tags.to_vec(),
        config_digest: format!("sha256:{config_hex}"),
        diff_ids: image.diff_ids(),
        sha256: sha256_digest(&bytes),
    })
}

/// Splits `registry:port/repo:tag` at the tag's colon (the last one after
/// the last `/`); a reference without a tag gets `latest`.
fn split_repo_tag(repo_tag: &str) -> (&str, &str) {
    let name_start = repo_tag.rfind('/').map_or(0, |i| i + 1);
    match repo_tag[name_start..].rfind(':') {
        Some(i) => (&repo_tag[..name_start + i], &repo_tag[name_start + i + 1..]),
        None => (repo_tag, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_tags_split_at_the_tag_colon() {
        assert_eq!(
            split_repo_tag("berth.test/busybox:latest"),
            ("berth.test/busybox", "latest")
        );
        assert_eq!(
            split_repo_tag("localhost:5000/x/y:v1"),
            ("localhost:5000/x/y", "v1")
        );
        assert_eq!(
            split_repo_tag("localhost:5000/x"),
            ("localhost:5000/x", "latest")
        );
    }
}
