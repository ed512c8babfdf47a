//! Parsing of the timestamps found in taxi inputs into ms since the Unix epoch (UTC).
//!
//! Accepted: `YYYY-MM-DD HH:MM:SS` (TLC and DEBS CSV, NYC local time read as UTC as the reference does,
//! taxi docs §1 and `data/README.md`), `YYYY-MM-DDTHH:MM:SS[.fff…][Z]` (JSON events, taxi docs §1), and any other
//! RFC 3339 instant with an offset (through `chrono`). The two fixed layouts are read without allocation
//! on the hot path; everything else goes to `chrono::DateTime::parse_from_rfc3339`.

/// Parses a timestamp into ms since the Unix epoch.
///
/// # Errors
/// A message naming the text, for anything not in the layouts above or before 1970-01-01T00:00:00Z.
pub fn parse_timestamp_ms(text: &str) -> Result<u64, String> {
    let s = text.trim();
    if let Some(ms) = parse_fixed(s.as_bytes()) {
        return Ok(ms);
    }
    match chrono::DateTime::parse_from_rfc3339(s) {
        Ok(t) => u64::try_from(t.timestamp_millis()).map_err(|_| format!("timestamp {s:?} is before 1970")),
        Err(e) => Err(format!("invalid timestamp {s:?}: {e}")),
    }
}

use crate::calendar::{days_from_civil, days_in_month};

/// `YYYY-MM-DD[T ]HH:MM:SS[.f{1,9}][Z]`, all in UTC.
fn parse_fixed(b: &[u8]) -> Option<u64> {
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let mut v = 0u64;
        for &c in &b[r] {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + (c - b'0') as u64;
        }
        Some(v)
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if year < 1970 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut millis = 0u64;
    let mut rest = &b[19..];
    if let Some((&b'.', frac)) = rest.split_first() {
        let digits = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        let mut scale = 100u64;
        for &c in &frac[..digits.min(3)] {
            millis += (c - b'0') as u64 * scale;
            scale /= 10;
        }
        rest = &frac[digits..];
    }
    if !(rest.is_empty() || rest == b"Z") {
        return None;
    }
    let days = days_from_civil(year as i64, month as i64, day as i64);
    Some(((days as u64 * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

/// Formats ms since the Unix epoch as an ISO-8601 instant with milliseconds, e.g.
/// `2013-01-01T00:05:00.000Z` (the JSON event layout of taxi docs §1).
pub fn format_timestamp_ms(ms: u64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms as i64) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => format!("{ms}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts() {
        assert_eq!(parse_timestamp_ms("1970-01-01 00:00:00"), Ok(0));
        assert_eq!(parse_timestamp_ms("2013-01-01 00:00:00"), Ok(1_356_998_400_000));
        assert_eq!(parse_timestamp_ms("2010-01-01T00:05:00.000Z"), Ok(1_262_304_300_000));
        assert_eq!(parse_timestamp_ms("2010-01-01T00:05:00Z"), Ok(1_262_304_300_000));
        assert_eq!(parse_timestamp_ms("2010-01-01T00:05:00.5"), Ok(1_262_304_300_500));
        assert_eq!(parse_timestamp_ms("2016-02-29 23:59:59"), Ok(1_456_790_399_000));
        // Offsets go through chrono.
        assert_eq!(parse_timestamp_ms("2010-01-01T01:05:00+01:00"), Ok(1_262_304_300_000));
        assert_eq!(format_timestamp_ms(1_262_304_300_000), "2010-01-01T00:05:00.000Z");
    }

    #[test]
    fn agrees_with_chrono_on_every_day() {
        for day in 0..(60 * 366) {
            let ms = day as u64 * 86_400_000 + 3_723_004;
            assert_eq!(parse_timestamp_ms(&format_timestamp_ms(ms)), Ok(ms));
        }
    }

    #[test]
    fn rejects() {
        for bad in ["", "2013-13-01 00:00:00", "2013-02-30 00:00:00", "2013-01-01 24:00:00", "yesterday", "1969-12-31 23:59:59", "2013-01-01 00:00:00 junk"] {
            assert!(parse_timestamp_ms(bad).is_err(), "{bad:?} must be rejected");
        }
    }
}
