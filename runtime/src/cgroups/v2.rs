//! One cgroup v2 directory under `/sys/fs/cgroup`: the hierarchy check, creation (with
//! every available controller enabled in each ancestor's `cgroup.subtree_control`, like
//! runc's `fs2.CreateCgroupPath`), file reads and writes that name the file and value on
//! error, process listing, killing and removal.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::CgroupError;

/// Where the unified hierarchy is mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// How long `destroy` waits for the processes of a killed cgroup to be gone.
const EMPTY_TIMEOUT: Duration = Duration::from_secs(10);

/// Fails unless [`CGROUP_ROOT`] is a cgroup2 mount (`statfs` magic `CGROUP2_SUPER_MAGIC`).
pub fn check_root() -> Result<(), CgroupError> {
    use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, TMPFS_MAGIC, statfs};
    let st = statfs(CGROUP_ROOT).map_err(|e| CgroupError::NotCgroup2 {
        root: CGROUP_ROOT.into(),
        found: format!("not accessible ({e})"),
    })?;
    let magic = st.filesystem_type();
    if magic == CGROUP2_SUPER_MAGIC {
        return Ok(());
    }
    let found = if magic == TMPFS_MAGIC {
        "a tmpfs (a cgroup v1 or hybrid layout)".to_owned()
    } else {
        format!("a filesystem with magic {:#x}", magic.0)
    };
    Err(CgroupError::NotCgroup2 {
        root: CGROUP_ROOT.into(),
        found,
    })
}

/// A controller the container needs, and the config field that needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    /// The controller name (`memory`, `cpu`, ...).
    pub controller: String,
    /// The config field, for the error message.
    pub field: String,
}

/// A cgroup directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    dir: PathBuf,
}

fn read_words(path: &Path) -> Result<Vec<String>, CgroupError> {
    let text = fs::read_to_string(path).map_err(CgroupError::io("read", path))?;
    Ok(text.split_whitespace().map(str::to_owned).collect())
}

fn write_file(path: &Path, value: &str) -> Result<(), CgroupError> {
    // cgroup files take one value per write(2): no buffering, no truncation games.
    use std::io::Write;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|source| CgroupError::Write {
            path: path.to_owned(),
            value: value.to_owned(),
            source,
        })?;
    f.write_all(value.as_bytes())
        .map_err(|source| CgroupError::Write {
            path: path.to_owned(),
            value: value.to_owned(),
            source,
        })
}

impl Cgroup {
    /// The cgroup at `rel` (relative to the cgroup root, e.g. `/c1`).
    pub fn at(rel: &Path) -> Self {
        let rel = super::path::clean_path(&Path::new("/").join(rel));
        let rel = rel.strip_prefix("/").unwrap_or(&rel);
        Self {
            dir: Path::new(CGROUP_ROOT).join(rel),
        }
    }

    /// A cgroup from its absolute directory (as recorded in the state).
    pub fn from_dir(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The absolute directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path relative to the cgroup root, starting with `/`.
    pub fn rel(&self) -> PathBuf {
        Path::new("/").join(self.dir.strip_prefix(CGROUP_ROOT).unwrap_or(&self.dir))
    }

    /// Whether the directory exists.
    pub fn exists(&self) -> bool {
        self.dir.is_dir()
    }

    /// Whether the interface file `name` exists.
    pub fn has_file(&self, name: &str) -> bool {
        self.dir.join(name).exists()
    }

    /// Reads an interface file.
    pub fn read(&self, name: &str) -> Result<String, CgroupError> {
        let p = self.dir.join(name);
        fs::read_to_string(&p).map_err(CgroupError::io("read", p))
    }

    /// Writes `value` to an interface file; the error names the file and the value.
    pub fn write(&self, name: &str, value: &str) -> Result<(), CgroupError> {
        write_file(&self.dir.join(name), value)
    }

    /// The controllers available in this cgroup (`cgroup.controllers`).
    pub fn controllers(&self) -> Result<Vec<String>, CgroupError> {
        read_words(&self.dir.join("cgroup.controllers"))
    }

    /// Creates the cgroup at `rel`, enabling in every ancestor's `cgroup.subtree_control`
    /// all the controllers it has available, and checking that every `needs` controller
    /// ends up usable in the new cgroup. An existing, empty cgroup is reused; one with
    /// processes is refused. On failure, every directory this call created is removed.
    pub fn create(rel: &Path, needs: &[Need]) -> Result<Self, CgroupError> {
        let target = Self::at(rel);
        let mut created: Vec<PathBuf> = Vec::new();
        let result = target.create_inner(needs, &mut created);
        if result.is_err() {
            for dir in created.iter().rev() {
                let _ = fs::remove_dir(dir);
            }
        }
        result.map(|()| target)
    }

    fn create_inner(&self, needs: &[Need], created: &mut Vec<PathBuf>) -> Result<(), CgroupError> {
        let rel = self.dir.strip_prefix(CGROUP_ROOT).unwrap_or(Path::new(""));
        let mut dir = PathBuf::from(CGROUP_ROOT);
        let comps: Vec<_> = rel.components().collect();
        if comps.is_empty() {
            return Err(CgroupError::Invalid {
                field: "linux.cgroupsPath".into(),
                reason: "the container cannot use the root cgroup".into(),
            });
        }
        for (i, comp) in comps.iter().enumerate() {
            enable_controllers(&dir, needs)?;
            dir.push(comp);
            match fs::create_dir(&dir) {
                Ok(()) => created.push(dir.clone()),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    if i + 1 == comps.len() && Cgroup::from_dir(dir.clone()).is_populated()? {
                        return Err(CgroupError::InUse { path: dir });
                    }
                }
                Err(e) => return Err(CgroupError::io("create cgroup", &dir)(e)),
            }
        }
        Ok(())
    }

    /// Moves the calling process into this cgroup.
    pub fn join_self(&self) -> Result<(), CgroupError> {
        self.write("cgroup.procs", "0")
    }

    /// Whether any process is in this cgroup or below (`cgroup.events` `populated`).
    pub fn is_populated(&self) -> Result<bool, CgroupError> {
        Ok(self.event("populated")? == Some(1))
    }

    /// A key of `cgroup.events` (`populated`, `frozen`).
    pub fn event(&self, key: &str) -> Result<Option<u64>, CgroupError> {
        let text = self.read("cgroup.events")?;
        Ok(parse_flat_keyed(&text)
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v))
    }

    /// Pids of every process in this cgroup and its descendants.
    pub fn all_pids(&self) -> Result<Vec<i32>, CgroupError> {
        let mut pids = Vec::new();
        collect_pids(&self.dir, &mut pids)?;
        Ok(pids)
    }

    /// SIGKILLs every process in the cgroup (and below): `cgroup.kill` where the kernel
    /// has it (5.14+), else each pid of `cgroup.procs`, repeatedly, while the cgroup is
    /// frozen so nothing can fork in between.
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        if !self.exists() {
            return Ok(());
        }
        if self.has_file("cgroup.kill") {
            return self.write("cgroup.kill", "1");
        }
        let _ = self.write("cgroup.freeze", "1");
        for pid in self.all_pids()? {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.write("cgroup.freeze", "0");
        Ok(())
    }

    /// Waits until no process is left in the cgroup.
    pub fn wait_empty(&self, timeout: Duration) -> Result<(), CgroupError> {
        let deadline = Instant::now() + timeout;
        while self.exists() && self.is_populated()? {
            if Instant::now() > deadline {
                return Err(CgroupError::Timeout {
                    path: self.dir.clone(),
                    what: "its processes to exit",
                    secs: timeout.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// Kills whatever is left in the cgroup, waits for it to be empty and removes it
    /// (with any cgroups the container created below it). A missing cgroup is fine.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        if !self.exists() {
            return Ok(());
        }
        if self.is_populated()? {
            self.kill_all()?;
            self.wait_empty(EMPTY_TIMEOUT)?;
        }
        remove_tree(&self.dir)
    }
}

/// Parses a flat-keyed file (`key value` per line).
pub fn parse_flat_keyed(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let k = it.next()?;
            let v = it.next()?.parse().ok()?;
            Some((k.to_owned(), v))
        })
        .collect()
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<(), CgroupError> {
    let procs = dir.join("cgroup.procs");
    match fs::read_to_string(&procs) {
        Ok(text) => out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(CgroupError::io("read", procs)(e)),
    }
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(CgroupError::io("read", dir)(e)),
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_pids(&entry.path(), out)?;
        }
    }
    Ok(())
}

fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(CgroupError::io("read", dir)(e)),
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path())?;
        }
    }
    // A cgroup whose last process just exited can briefly still count as busy.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(CgroupError::io("remove cgroup", dir)(e)),
        }
    }
}

/// Enables in `dir`'s `cgroup.subtree_control` every controller `dir` has available
/// (runc does the same), then checks that each needed controller is enabled.
fn enable_controllers(dir: &Path, needs: &[Need]) -> Result<(), CgroupError> {
    let available = read_words(&dir.join("cgroup.controllers"))?;
    let control = dir.join("cgroup.subtree_control");
    let enabled = read_words(&control)?;
    let missing: Vec<&String> = available.iter().filter(|c| !enabled.contains(c)).collect();
    let mut failures: Vec<(String, String)> = Vec::new();
    if !missing.is_empty() {
        let all = missing
            .iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(" ");
        if write_file(&control, &all).is_err() {
            // One by one: a controller that cannot be enabled here (busy, threaded
            // subtree) must not keep the others from being enabled.
            for c in &missing {
                if let Err(CgroupError::Write { source, .. }) =
                    write_file(&control, &format!("+{c}"))
                {
                    failures.push(((*c).clone(), source.to_string()));
                }
            }
        }
    }
    for need in needs {
        if !available.contains(&need.controller) {
            return Err(CgroupError::ControllerUnavailable {
                field: need.field.clone(),
                controller: need.controller.clone(),
                reason: format!(
                    "it is not available in {} (available: {})",
                    dir.join("cgroup.controllers").display(),
                    if available.is_empty() {
                        "none".to_owned()
                    } else {
                        available.join(" ")
                    }
                ),
            });
        }
        if let Some((_, err)) = failures.iter().find(|(c, _)| *c == need.controller) {
            return Err(CgroupError::ControllerUnavailable {
                field: need.field.clone(),
                controller: need.controller.clone(),
                reason: format!("it could not be enabled in {}: {err}", control.display()),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let c = Cgroup::at(Path::new("/a/../b/c"));
        assert_eq!(c.dir(), Path::new("/sys/fs/cgroup/b/c"));
        assert_eq!(c.rel(), Path::new("/b/c"));
        assert_eq!(
            parse_flat_keyed("populated 1\nfrozen 0\n"),
            vec![("populated".into(), 1), ("frozen".into(), 0)]
        );
    }
}
