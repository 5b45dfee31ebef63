//! The container process's environment and executable: `process.env` (plus `HOME` from
//! the container's `/etc/passwd` when the config does not set it, as runc does), and
//! `process.args[0]` looked up in the container's `PATH` (runc's `exec.LookPath`
//! semantics), run after `pivot_root` so the lookup sees only the container's files.
//! The lookup happens before `create` reports success, so a missing executable is a
//! `create` error naming it.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A failed environment or lookup step.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// args[0] was not found.
    #[error("process.args[0]: exec: {name:?}: executable file not found in $PATH ({path})")]
    NotFound {
        /// args[0].
        name: String,
        /// The PATH searched.
        path: String,
    },
    /// args[0] names a file that is missing, not regular or not executable.
    #[error("process.args[0]: exec: {path}: {reason}")]
    NotExecutable {
        /// The resolved path.
        path: PathBuf,
        /// Why it cannot be executed.
        reason: String,
    },
    /// A string contains a NUL byte.
    #[error("{field}: contains a NUL byte")]
    Nul {
        /// The field.
        field: String,
    },
}

/// runc's default when the config has no PATH.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The final environment: `env` plus `HOME` for `uid` if missing.
pub fn build_env(env: &[String], uid: u32) -> Result<Vec<CString>, EnvError> {
    let mut out: Vec<String> = env.to_vec();
    if !out.iter().any(|e| e.starts_with("HOME=")) {
        out.push(format!(
            "HOME={}",
            home_of(uid).unwrap_or_else(|| "/".to_owned())
        ));
    }
    out.into_iter()
        .enumerate()
        .map(|(i, e)| {
            CString::new(e).map_err(|_| EnvError::Nul {
                field: format!("process.env[{i}]"),
            })
        })
        .collect()
}

fn home_of(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[2].parse() == Ok(uid)).then(|| f[5].to_owned())
    })
}

/// `args` as C strings.
pub fn c_args(args: &[String]) -> Result<Vec<CString>, EnvError> {
    args.iter()
        .enumerate()
        .map(|(i, a)| {
            CString::new(a.as_str()).map_err(|_| EnvError::Nul {
                field: format!("process.args[{i}]"),
            })
        })
        .collect()
}

fn check_executable(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".to_owned());
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err("permission denied (not executable)".to_owned());
    }
    Ok(())
}

/// Resolves `name` like `exec.LookPath`: names containing `/` are used as-is, others are
/// searched in the `PATH` from `env`.
pub fn lookup_executable(name: &str, env: &[String]) -> Result<PathBuf, EnvError> {
    if name.contains('/') {
        let path = PathBuf::from(name);
        return check_executable(&path)
            .map(|()| path.clone())
            .map_err(|reason| EnvError::NotExecutable { path, reason });
    }
    let search = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    for dir in search.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(name);
        if check_executable(&candidate).is_ok() {
            return Ok(candidate);
        }
    }
    Err(EnvError::NotFound {
        name: name.to_owned(),
        path: search.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh_in_path_and_reports_missing() {
        let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_owned()];
        assert!(lookup_executable("sh", &env).is_ok());
        let e = lookup_executable("no-such-binary-xyz", &env)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no-such-binary-xyz") && e.contains("not found"),
            "{e}"
        );
        let e = lookup_executable("/no/such", &env).unwrap_err().to_string();
        assert!(e.contains("/no/such"), "{e}");
    }

    #[test]
    fn adds_home_when_missing() {
        let env = build_env(&["A=b".to_owned()], 0).unwrap();
        assert!(env.iter().any(|e| e.to_str().unwrap().starts_with("HOME=")));
        let env = build_env(&["HOME=/x".to_owned()], 0).unwrap();
        assert_eq!(env.len(), 1);
    }
}
