//! Telling whether a recorded pid is still the same process: `/proc/<pid>/stat`'s
//! start time (field 22, clock ticks since boot) is recorded at create time and compared
//! later, so a pid reused by an unrelated process is never signalled or reported as the
//! container's init.

use std::io;

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// The one-letter state (`R`, `S`, `Z`, ...).
    pub state: char,
    /// Start time in clock ticks since boot.
    pub start_time: u64,
}

/// Reads the state and start time of `pid`; `Ok(None)` if no such process exists.
pub fn read(pid: i32) -> io::Result<Option<ProcStat>> {
    let text = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
        Err(e) => return Err(e),
    };
    parse(&text).map(Some).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("malformed /proc/{pid}/stat"),
        )
    })
}

fn parse(text: &str) -> Option<ProcStat> {
    // The command name (field 2) is in parentheses and may itself contain ") ".
    let after = &text[text.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // After the state (field 3), start time is field 22: 18 more fields to skip.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(ProcStat { state, start_time })
}

/// Whether `pid` is alive (not a zombie) and started at `start_time`.
pub fn is_same_live_process(pid: i32, start_time: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    matches!(read(pid), Ok(Some(s)) if s.state != 'Z' && s.state != 'X' && s.start_time == start_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_parens_in_comm() {
        let s = "42 (a) b) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 12345 1000 10";
        assert_eq!(
            parse(s),
            Some(ProcStat {
                state: 'S',
                start_time: 12345
            })
        );
    }

    #[test]
    fn reads_self() {
        let me = read(std::process::id() as i32).unwrap().unwrap();
        assert!(is_same_live_process(
            std::process::id() as i32,
            me.start_time
        ));
        assert!(!is_same_live_process(
            std::process::id() as i32,
            me.start_time + 1
        ));
    }
}
