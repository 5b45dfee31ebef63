//! Where a container's cgroup lives: `linux.cgroupsPath` in its two forms.
//!
//! - cgroupfs (runc's `fs2.defaultDirPath`): the path is cleaned lexically (`..` can never
//!   climb above the root). An absolute path is relative to the cgroup root
//!   (`/sys/fs/cgroup`); a relative one is relative to the *parent* of the runtime's own
//!   cgroup (the runtime's own cgroup usually has processes in it, so no controller could
//!   be enabled below it). An empty or missing path means the container id, relative.
//! - systemd (`slice:prefix:name`, runc's `--systemd-cgroup` form): parsed here so it can
//!   be wired to a systemd manager later; an empty path means `system.slice:runc:<id>`.

use std::path::{Component, Path, PathBuf};

/// A cgroupsPath that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CgroupPathError {
    /// Not three `:`-separated parts.
    #[error(
        "linux.cgroupsPath {path:?}: expected \"slice:prefix:name\" for the systemd cgroup manager"
    )]
    SystemdForm {
        /// The path as given.
        path: String,
    },
    /// A slice name that is not `<name>.slice` or contains a `/`.
    #[error("linux.cgroupsPath {path:?}: invalid slice name {slice:?}")]
    Slice {
        /// The path as given.
        path: String,
        /// The offending slice.
        slice: String,
    },
    /// `/proc/self/cgroup` has no cgroup v2 entry.
    #[error("/proc/self/cgroup: no cgroup v2 (\"0::\") entry: {0}")]
    OwnCgroup(String),
}

/// runc's `utils.CleanPath`: lexical clean; a relative path stays relative but cannot
/// escape upwards.
pub fn clean_path(p: &Path) -> PathBuf {
    let absolute = p.is_absolute();
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s),
            Component::ParentDir => {
                parts.pop();
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    let mut out = if absolute {
        PathBuf::from("/")
    } else {
        PathBuf::new()
    };
    for part in parts {
        out.push(part);
    }
    out
}

/// The cgroup v2 path (from `/proc/<pid>/cgroup`'s `0::` line) of the given contents.
pub fn parse_proc_cgroup(text: &str) -> Result<PathBuf, CgroupPathError> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(PathBuf::from)
        .ok_or_else(|| CgroupPathError::OwnCgroup(text.trim().to_owned()))
}

/// The cgroupfs location of a container's cgroup, relative to the cgroup root and
/// starting with `/` (e.g. `/mycontainer`). `own_cgroup` is the runtime's own cgroup
/// (from `/proc/self/cgroup`), used for relative paths.
pub fn fs_path(cgroups_path: Option<&Path>, id: &str, own_cgroup: &Path) -> PathBuf {
    let inner = cgroups_path
        .map(clean_path)
        .filter(|p| !p.as_os_str().is_empty() && p != Path::new("/"))
        .unwrap_or_else(|| PathBuf::from(id));
    if inner.is_absolute() {
        return inner;
    }
    let parent = clean_path(&Path::new("/").join(own_cgroup));
    let parent = parent.parent().unwrap_or(Path::new("/"));
    clean_path(&parent.join(inner))
}

/// A systemd-form cgroupsPath, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemdPath {
    /// The parent slice (`system.slice` when empty).
    pub slice: String,
    /// The unit name prefix (`runc`, `crio`, `libpod`...).
    pub prefix: String,
    /// The container's name (or a `.slice` name: then the container gets a slice).
    pub name: String,
}

impl SystemdPath {
    /// Parses `slice:prefix:name`; an empty path means `system.slice:runc:<id>`.
    pub fn parse(path: Option<&str>, id: &str) -> Result<Self, CgroupPathError> {
        let Some(path) = path.filter(|p| !p.is_empty()) else {
            return Ok(Self {
                slice: "system.slice".into(),
                prefix: "runc".into(),
                name: id.into(),
            });
        };
        let parts: Vec<&str> = path.split(':').collect();
        let [slice, prefix, name] = parts[..] else {
            return Err(CgroupPathError::SystemdForm { path: path.into() });
        };
        if name.is_empty() || name.contains('/') || prefix.contains('/') {
            return Err(CgroupPathError::SystemdForm { path: path.into() });
        }
        let slice = if slice.is_empty() {
            "system.slice"
        } else {
            slice
        };
        let parsed = Self {
            slice: slice.into(),
            prefix: prefix.into(),
            name: name.into(),
        };
        parsed.slice_dir().map_err(|()| CgroupPathError::Slice {
            path: path.into(),
            slice: slice.into(),
        })?;
        Ok(parsed)
    }

    /// The unit systemd would manage: `<prefix>-<name>.scope` (or `<name>.scope`
    /// without a prefix), or `name` itself if it is a slice.
    pub fn unit_name(&self) -> String {
        if self.name.ends_with(".slice") {
            self.name.clone()
        } else if self.prefix.is_empty() {
            format!("{}.scope", self.name)
        } else {
            format!("{}-{}.scope", self.prefix, self.name)
        }
    }

    /// systemd's slice expansion: `a-b-c.slice` → `/a.slice/a-b.slice/a-b-c.slice`
    /// (`-.slice` is the root).
    fn slice_dir(&self) -> Result<PathBuf, ()> {
        let slice = self.slice.as_str();
        if slice == "-.slice" {
            return Ok(PathBuf::from("/"));
        }
        let base = slice.strip_suffix(".slice").ok_or(())?;
        if base.is_empty() || base.contains('/') || base.starts_with('-') || base.ends_with('-') {
            return Err(());
        }
        if base.contains("--") {
            return Err(());
        }
        let mut out = PathBuf::from("/");
        let mut prefix = String::new();
        for (i, part) in base.split('-').enumerate() {
            if i > 0 {
                prefix.push('-');
            }
            prefix.push_str(part);
            out.push(format!("{prefix}.slice"));
        }
        Ok(out)
    }

    /// The cgroup the unit gets, relative to the cgroup root (starts with `/`).
    pub fn cgroup_path(&self) -> PathBuf {
        self.slice_dir()
            .expect("validated by parse")
            .join(self.unit_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_path_never_escapes() {
        assert_eq!(clean_path(Path::new("/a/../../b/./c")), Path::new("/b/c"));
        assert_eq!(clean_path(Path::new("../../x/y/..")), Path::new("x"));
        assert_eq!(clean_path(Path::new("a//b/")), Path::new("a/b"));
    }

    #[test]
    fn fs_paths_like_runc() {
        let own = Path::new("/user.slice/session-1.scope");
        assert_eq!(
            fs_path(Some(Path::new("/machine/c1")), "c1", own),
            Path::new("/machine/c1")
        );
        assert_eq!(
            fs_path(Some(Path::new("pods/c1")), "c1", own),
            Path::new("/user.slice/pods/c1")
        );
        assert_eq!(fs_path(None, "c1", own), Path::new("/user.slice/c1"));
        assert_eq!(
            fs_path(Some(Path::new("")), "c1", Path::new("/")),
            Path::new("/c1")
        );
        assert_eq!(
            fs_path(Some(Path::new("../../../etc")), "c1", Path::new("/")),
            Path::new("/etc")
        );
        assert_eq!(
            parse_proc_cgroup("1:name=systemd:/x\n0::/a/b\n").unwrap(),
            Path::new("/a/b")
        );
        assert!(parse_proc_cgroup("1:cpu:/\n").is_err());
    }

    #[test]
    fn systemd_form() {
        let p = SystemdPath::parse(Some("machine-pods.slice:libpod:abc"), "x").unwrap();
        assert_eq!(p.unit_name(), "libpod-abc.scope");
        assert_eq!(
            p.cgroup_path(),
            Path::new("/machine.slice/machine-pods.slice/libpod-abc.scope")
        );
        let d = SystemdPath::parse(None, "c1").unwrap();
        assert_eq!(d.cgroup_path(), Path::new("/system.slice/runc-c1.scope"));
        let e = SystemdPath::parse(Some(":crio:c2"), "c2").unwrap();
        assert_eq!(e.cgroup_path(), Path::new("/system.slice/crio-c2.scope"));
        let s = SystemdPath::parse(Some("user.slice::sub.slice"), "c").unwrap();
        assert_eq!(s.cgroup_path(), Path::new("/user.slice/sub.slice"));
        let n = SystemdPath::parse(Some("-.slice::c"), "c").unwrap();
        assert_eq!(n.cgroup_path(), Path::new("/c.scope"));
        for bad in [
            "/a/b",
            "a:b",
            "a:b:c:d",
            "a.slice:p:",
            "notaslice:p:n",
            "a--b.slice:p:n",
        ] {
            assert!(SystemdPath::parse(Some(bad), "c").is_err(), "{bad}");
        }
    }
}
