//! Shared test helpers: fixtures, stores in tempdirs, tree snapshots, and a
//! real `docker-registry` (distribution v2) on 127.0.0.1 seeded by skopeo.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_imagestore::{ImageStore, StoreOptions};
use berth_rootfs_fixtures::Fixtures;

pub const INSTALL_HINT: &str = "run /work/main/scripts/install-deps";

pub fn fixtures() -> Fixtures {
    Fixtures::get().expect("build fixtures")
}

/// A store under `dir/store`, hermetic: no host registries.conf, no
/// host auth file.
pub fn open_store(dir: &Path) -> ImageStore {
    open_store_with(dir, |_| {})
}

pub fn open_store_with(dir: &Path, tweak: impl FnOnce(&mut StoreOptions)) -> ImageStore {
    let mut opts = StoreOptions::with_root(dir.join("store"));
    opts.registries_conf = None;
    opts.registries_conf_d = None;
    opts.auth_file = Some(dir.join("no-auth-file.json"));
    tweak(&mut opts);
    ImageStore::open(opts).expect("open store")
}

pub fn assert_root(what: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "{what} needs root (overlay mounts, whiteout device nodes): run the tests as root"
    );
}

pub fn require_tool(name: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("required tool `{name}` not found in PATH: {INSTALL_HINT}");
}

/// One node of a tree snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    /// File contents' sha256 / symlink target / device number.
    pub payload: String,
}

/// Snapshot of a directory tree (relative path → node), root excluded.
pub fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
    for entry in fs::read_dir(dir).expect("read_dir") {
        let entry = entry.expect("entry");
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).expect("stat");
        let ft = meta.file_type();
        let (kind, payload) = if ft.is_dir() {
            ("dir", String::new())
        } else if ft.is_symlink() {
            (
                "symlink",
                fs::read_link(&path)
                    .expect("readlink")
                    .display()
                    .to_string(),
            )
        } else if ft.is_file() {
            let data = fs::read(&path).expect("read");
            ("file", berth_imagestore::Digest::of(&data).to_string())
        } else if ft.is_char_device() {
            ("char", meta.rdev().to_string())
        } else {
            ("other", String::new())
        };
        let rel = path
            .strip_prefix(root)
            .expect("prefix")
            .display()
            .to_string();
        out.insert(
            rel,
            Node {
                kind,
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                mtime: meta.mtime(),
                payload,
            },
        );
        if ft.is_dir() {
            walk(root, &path, out);
        }
    }
}

/// A `docker-registry serve` on 127.0.0.1:<free port>, killed on drop.
pub struct Registry {
    child: Child,
    pub addr: String,
    pub creds: Option<(String, String)>,
    dir: tempfile::TempDir,
}

impl Registry {
    pub fn start(creds: Option<(&str, &str)>) -> Registry {
        let binary = require_tool("docker-registry");
        let dir = tempfile::tempdir().expect("tempdir");
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        if let Some((user, pass)) = creds {
            require_tool("htpasswd");
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .expect("run htpasswd");
            assert!(out.status.success(), "htpasswd failed: {out:?}");
            let file = dir.path().join("htpasswd");
            fs::write(&file, &out.stdout).expect("write htpasswd");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                file.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config).expect("write config");
        let log = fs::File::create(dir.path().join("registry.log")).expect("log");
        let child = Command::new(binary)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("spawn docker-registry");
        let registry = Registry {
            child,
            addr,
            creds: creds.map(|(u, p)| (u.to_owned(), p.to_owned())),
            dir,
        };
        registry.wait_ready();
        registry
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect(&self.addr) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let req = format!(
                    "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    self.addr
                );
                if s.write_all(req.as_bytes()).is_ok() {
                    let mut buf = String::new();
                    let _ = s.read_to_string(&mut buf);
                    if buf.starts_with("HTTP/1.1 200") || buf.starts_with("HTTP/1.1 401") {
                        return;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default();
        panic!(
            "docker-registry on {} did not become ready; log:\n{log}",
            self.addr
        );
    }

    /// Copies the `latest` image (all platforms) of an OCI layout to
    /// `<addr>/<repo_tag>` with skopeo, preserving digests.
    pub fn push_layout(&self, layout: &Path, repo_tag: &str) {
        let skopeo = require_tool("skopeo");
        let mut cmd = Command::new(skopeo);
        cmd.args([
            "copy",
            "--quiet",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ]);
        if let Some((u, p)) = &self.creds {
            cmd.arg(format!("--dest-creds={u}:{p}"));
        }
        cmd.arg(format!("oci:{}:latest", layout.display()))
            .arg(format!("docker://{}/{repo_tag}", self.addr));
        let out = cmd.output().expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo copy to {} failed: {}",
            self.addr,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes an OCI layout at `dir` (tag-less, one image) whose layers are
/// the given uncompressed tars, base first. Returns the layer digests.
pub fn write_layout(dir: &Path, tars: &[Vec<u8>]) -> Vec<berth_imagestore::Digest> {
    use berth_imagestore::Digest;
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).expect("mkdir");
    let put = |data: &[u8]| {
        let d = Digest::of(data);
        fs::write(blobs.join(d.hex()), data).expect("write blob");
        d
    };
    let layers: Vec<Digest> = tars.iter().map(|t| put(t)).collect();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|d| d.to_string()).collect::<Vec<_>>()}
    });
    let config = serde_json::to_vec(&config).expect("json");
    let config_d = put(&config);
    let layer_descs: Vec<_> = layers
        .iter()
        .zip(tars)
        .map(|(d, t)| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d.to_string(), "size": t.len()}))
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_d.to_string(), "size": config.len()},
        "layers": layer_descs
    });
    let manifest = serde_json::to_vec(&manifest).expect("json");
    let manifest_d = put(&manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_d.to_string(), "size": manifest.len()}]
    });
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&index).expect("json"),
    )
    .expect("index");
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
    layers
}
