//! The fixture cache: one directory per input key under a cache root, built
//! once into a temporary sibling and renamed into place atomically, with an
//! exclusive `flock` so concurrent test processes build once and the others
//! wait and reuse.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::digest::sha256_hex;
use crate::error::{FixtureError, Result};
use crate::manifest::{FIXTURES_JSON, FORMAT};

/// Hash of this crate's sources (and the versions of the crates that shape
/// the output bytes), computed by build.rs: any code change changes the key.
pub const SOURCE_HASH: &str = env!("BERTH_FIXTURES_SOURCE_HASH");

/// Environment variable naming the cache base directory (fixtures go in its
/// `fixtures/` subdirectory).
pub const CACHE_ENV: &str = "BERTH_CACHE_DIR";

/// The default cache root: `$BERTH_CACHE_DIR/fixtures`, else
/// `<workspace>/.cache/fixtures`.
pub fn default_root() -> PathBuf {
    match std::env::var_os(CACHE_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("fixtures"),
        _ => {
            let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
            manifest_dir
                .parent()
                .unwrap_or(manifest_dir)
                .join(".cache")
                .join("fixtures")
        }
    }
}

/// The cache key for a busybox binary: 16 hex digits of a hash over the
/// binary's SHA-256, [`SOURCE_HASH`] and the directory format.
pub fn key(busybox_sha256: &str) -> String {
    let input = format!("format {FORMAT}\nbusybox {busybox_sha256}\nsource {SOURCE_HASH}\n");
    sha256_hex(input.as_bytes())[..16].to_owned()
}

/// Whether `dir` is a complete fixture build (fixtures.json is written last,
/// and the directory only gets its final name once complete).
fn is_complete(dir: &Path) -> bool {
    dir.join(FIXTURES_JSON).is_file()
}

/// Returns `root/key`, first running `build` into a temporary directory and
/// renaming it there if no complete build exists. Holds `root/key.lock`
/// while checking and building.
pub fn ensure(root: &Path, key: &str, build: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
    let dir = root.join(key);
    if is_complete(&dir) {
        return Ok(dir);
    }
    fs::create_dir_all(root).map_err(|e| FixtureError::io("create directory", root, e))?;
    let _lock = lock(&root.join(format!("{key}.lock")))?;
    if is_complete(&dir) {
        // Another process built it while we waited.
        return Ok(dir);
    }
    remove_leftovers(root, key, &dir)?;

    let tmp = tempfile::Builder::new()
        .prefix(&tmp_prefix(key))
        .tempdir_in(root)
        .map_err(|e| FixtureError::io("create temporary directory in", root, e))?;
    build(tmp.path())?;
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755))
        .map_err(|e| FixtureError::io("chmod", tmp.path(), e))?;
    fs::rename(tmp.path(), &dir).map_err(|e| FixtureError::io("rename into place", &dir, e))?;
    // The directory now lives under its final name; nothing left to clean up.
    let _ = tmp.keep();
    Ok(dir)
}

fn tmp_prefix(key: &str) -> String {
    format!(".tmp-{key}-")
}

/// Takes an exclusive flock on `path`, waiting for other holders.
fn lock(path: &Path) -> Result<Flock<File>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| FixtureError::io("open lock file", path, e))?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| FixtureError::io("lock", path, errno.into()))
}

/// Removes temporary directories of crashed builds of `key` and an
/// incomplete `dir`. Only called with the key's lock held, so no live build
/// owns them.
fn remove_leftovers(root: &Path, key: &str, dir: &Path) -> Result<()> {
    let prefix = tmp_prefix(key);
    let entries = fs::read_dir(root).map_err(|e| FixtureError::io("read directory", root, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| FixtureError::io("read directory", root, e))?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let path = entry.path();
            fs::remove_dir_all(&path).map_err(|e| FixtureError::io("remove", &path, e))?;
        }
    }
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(|e| FixtureError::io("remove", dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn fake_build(counter: &AtomicUsize) -> impl FnOnce(&Path) -> Result<()> + '_ {
        move |dir| {
            counter.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(200));
            fs::write(dir.join(FIXTURES_JSON), "{}").map_err(|e| FixtureError::io("write", dir, e))
        }
    }

    #[test]
    fn concurrent_callers_build_once() {
        let root = tempfile::tempdir().expect("tempdir");
        let builds = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| ensure(root.path(), "k", fake_build(&builds)).expect("ensure"));
            }
        });
        assert_eq!(builds.load(Ordering::SeqCst), 1);
        assert!(is_complete(&root.path().join("k")));
    }

    #[test]
    fn failed_builds_leave_nothing_and_are_retried() {
        let root = tempfile::tempdir().expect("tempdir");
        let err = ensure(root.path(), "k", |dir| {
            Err(FixtureError::io(
                "build",
                dir,
                std::io::Error::other("boom"),
            ))
        })
        .expect_err("build fails");
        assert!(err.to_string().contains("boom"));
        let names: Vec<_> = fs::read_dir(root.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .collect();
        assert_eq!(names, ["k.lock"]);

        // A crashed build's leftovers are cleaned before the next build.
        fs::create_dir(root.path().join(".tmp-k-crashed")).expect("mkdir");
        fs::create_dir(root.path().join("k")).expect("mkdir incomplete");
        let builds = AtomicUsize::new(0);
        let dir = ensure(root.path(), "k", fake_build(&builds)).expect("ensure");
        assert_eq!(builds.load(Ordering::SeqCst), 1);
        assert!(is_complete(&dir));
        assert!(!root.path().join(".tmp-k-crashed").exists());
    }

    #[test]
    fn key_depends_on_busybox_hash() {
        assert_ne!(key("aa"), key("bb"));
        assert_eq!(key("aa"), key("aa"));
        assert_eq!(key("aa").len(), 16);
    }
}
