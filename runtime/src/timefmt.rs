//! RFC 3339 timestamps (UTC, nanoseconds) for `state`/`list` output and JSON logs.
//!
//! Hand-written (a dozen lines of Howard Hinnant's civil-from-days) rather than pulling in
//! chrono or time: the runtime needs exactly one format and no parsing, and every
//! dependency adds to the start-up cost of a binary that is exec'ed per operation.

use std::time::{SystemTime, UNIX_EPOCH};

/// Formats `t` as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// The current time as RFC 3339.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let t = UNIX_EPOCH + Duration::new(1_709_251_200, 5); // 2024-03-01 (leap year)
        assert_eq!(rfc3339(t), "2024-03-01T00:00:00.000000005Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_399); // 2000-02-28T23:59:59
        assert_eq!(rfc3339(t), "2000-02-28T23:59:59.000000000Z");
    }
}
