//! Content addressing: SHA-256 digests and deterministic JSON encoding of the
//! documents that are stored as content-addressed blobs.

use std::path::Path;

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::error::{FixtureError, Result};

/// Lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// `sha256:<hex>` digest string of `data`, as used in OCI descriptors.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

/// Serialises `value` as compact JSON with object keys sorted.
///
/// The OCI types keep annotations and labels in `HashMap`s, whose iteration
/// order changes from run to run; going through [`serde_json::Value`] (whose
/// maps are ordered by key) makes the bytes, and therefore the digests,
/// reproducible. `path` only names the document in errors.
pub fn canonical_json<T: Serialize>(value: &T, path: &Path) -> Result<Vec<u8>> {
    let json_err = |source| FixtureError::Json {
        path: path.to_path_buf(),
        source,
    };
    let mut value = serde_json::to_value(value).map_err(json_err)?;
    sort_keys(&mut value);
    serde_json::to_vec(&value).map_err(json_err)
}

/// Like [`canonical_json`] but indented, for files humans read (fixtures.json,
/// config.json).
pub fn pretty_json<T: Serialize>(value: &T, path: &Path) -> Result<Vec<u8>> {
    let json_err = |source| FixtureError::Json {
        path: path.to_path_buf(),
        source,
    };
    let mut value = serde_json::to_value(value).map_err(json_err)?;
    sort_keys(&mut value);
    let mut out = serde_json::to_vec_pretty(&value).map_err(json_err)?;
    out.push(b'\n');
    Ok(out)
}

/// Sorts every object's keys, recursively. A no-op unless some crate in the
/// build enabled serde_json's `preserve_order` feature.
fn sort_keys(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = std::mem::take(map).into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, mut inner) in entries {
                sort_keys(&mut inner);
                map.insert(key, inner);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_empty_input_is_the_well_known_value() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn canonical_json_sorts_hash_map_keys() {
        let map: std::collections::HashMap<String, u32> =
            (0..50).map(|i| (format!("k{i:02}"), i)).collect();
        let bytes = canonical_json(&map, Path::new("test")).expect("serialise");
        let text = String::from_utf8(bytes).expect("utf-8");
        assert!(text.starts_with(r#"{"k00":0,"k01":1,"#), "{text}");
    }
}
