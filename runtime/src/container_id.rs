//! Container id validation, with runc's rules: non-empty, only `[A-Za-z0-9_+.-]`
//! (runc's `^[\w+-\.]+$`), and never `.` or `..` (the id is a directory name under
//! `--root`, so it must not be able to name anything but a direct child).

use std::fmt;

/// Why an id was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ContainerIdError {
    /// The id is the empty string.
    #[error("invalid container id: the id must not be empty")]
    Empty,
    /// The id contains a character outside `[A-Za-z0-9_+.-]`.
    #[error("invalid container id {id:?}: only letters, digits and _ + - . are allowed")]
    InvalidCharacter {
        /// The rejected id.
        id: String,
    },
    /// The id is `.` or `..`.
    #[error("invalid container id {id:?}: . and .. are not allowed")]
    DotName {
        /// The rejected id.
        id: String,
    },
}

/// A validated container id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerId(String);

impl ContainerId {
    /// Validates `id`.
    pub fn parse(id: &str) -> Result<Self, ContainerIdError> {
        if id.is_empty() {
            return Err(ContainerIdError::Empty);
        }
        if id == "." || id == ".." {
            return Err(ContainerIdError::DotName { id: id.to_owned() });
        }
        let valid = id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'));
        if !valid {
            return Err(ContainerIdError::InvalidCharacter { id: id.to_owned() });
        }
        Ok(Self(id.to_owned()))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_runc_ids() {
        for id in ["abc", "a.b-c_d+e", "0123", "x..y"] {
            assert!(ContainerId::parse(id).is_ok(), "{id}");
        }
    }

    #[test]
    fn rejects_bad_ids() {
        for id in ["", ".", "..", "a/b", "../x", "a b", "é", "a\0b"] {
            assert!(ContainerId::parse(id).is_err(), "{id:?}");
        }
    }
}
