//! The ticker job's `event_time`: Java's strict `DateTimeFormatter.ISO_LOCAL_DATE_TIME`, which Flink's JSON
//! format uses for `TIMESTAMP(3)` with `json.timestamp-format.standard = 'ISO-8601'` (ticker docs §1).
//!
//! Accepted: `YYYY-MM-DD`, `T` or `t`, `HH:MM`, optionally `:SS`, optionally `.` and 0 to 9 fraction digits
//! (after the seconds only); a real calendar date and time (no `02-30`, `24:00` or `:60`); no zone or offset.
//! Years 1970–9999 with four digits: event time is unsigned ms since the Unix epoch, so earlier instants are
//! refused here (Java reads them). The time is read as UTC and sub-millisecond digits are truncated, as Flink's
//! windows and watermarks use the floor millisecond.

use crate::calendar::{days_from_civil, days_in_month};

/// Parses `text` into ms since the Unix epoch (the date and time read as UTC).
///
/// # Errors
/// What is wrong, e.g. `expected 'T' after the date in "2026-12-01 08:00:00"`.
pub fn parse_local_date_time(text: &str) -> Result<u64, String> {
    DateCache::default().parse(text)
}

/// The last minute a parser read (`YYYY-MM-DDTHH:MM`, checked), so that the next event of the same minute
/// reads only its seconds (a stream of events is mostly in order: at one tick per ms, 60,000 share a minute).
/// A decoder's scratch space.
#[derive(Clone, Debug, Default)]
pub struct DateCache {
    /// The first 16 bytes of the last time read, and ms since the Unix epoch of that minute.
    last: Option<([u8; 16], u64)>,
}

impl DateCache {
    /// As [`parse_local_date_time`], reusing the last minute when `text` starts with it.
    ///
    /// # Errors
    /// As [`parse_local_date_time`].
    pub fn parse(&mut self, text: &str) -> Result<u64, String> {
        self.parse_bytes(text.as_bytes())
    }

    /// As [`Self::parse`], of bytes (text that is not ASCII is refused: no byte of a time is).
    ///
    /// # Errors
    /// As [`parse_local_date_time`].
    pub fn parse_bytes(&mut self, b: &[u8]) -> Result<u64, String> {
        if let (Some((prefix, minute_ms)), Some(head)) = (&self.last, b.first_chunk::<16>()) {
            if head == prefix {
                return Ok(minute_ms + tail(b, 16)?.ms(b)?);
            }
        }
        let (minute_ms, ms) = parse(b)?;
        if let Some(head) = b.first_chunk::<16>() {
            self.last = Some((*head, minute_ms));
        }
        Ok(ms)
    }
}

fn fail<T>(b: &[u8], what: &str) -> Result<T, String> {
    Err(format!("{what} in {:?} (expected yyyy-MM-ddTHH:mm[:ss[.fffffffff]], no zone)", String::from_utf8_lossy(b)))
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let part = b.get(at..at + n)?;
    part.iter().try_fold(0u32, |v, c| c.is_ascii_digit().then(|| v * 10 + (c - b'0') as u32))
}

/// What follows the minute: seconds and ms, syntax checked, range not yet.
struct Tail {
    second: u32,
    ms: u64,
}

impl Tail {
    /// The ms within the minute; a second past 59 is refused.
    fn ms(&self, b: &[u8]) -> Result<u64, String> {
        if self.second > 59 {
            return fail(b, "no such time");
        }
        Ok(self.second as u64 * 1000 + self.ms)
    }
}

/// Reads `[:SS[.fffffffff]]` from `b[at..]` to the end of `b`.
fn tail(b: &[u8], mut at: usize) -> Result<Tail, String> {
    let (mut second, mut ms) = (0, 0u64);
    if b.get(at) == Some(&b':') {
        let Some(s) = digits(b, at + 1, 2) else { return fail(b, "expected two-digit seconds") };
        second = s;
        at += 3;
        if b.get(at) == Some(&b'.') {
            at += 1;
            let fraction = b[at..].iter().take_while(|c| c.is_ascii_digit()).count();
            if fraction > 9 {
                return fail(b, "more than 9 fraction digits");
            }
            for (i, c) in b[at..at + fraction.min(3)].iter().enumerate() {
                ms += (c - b'0') as u64 * [100, 10, 1][i];
            }
            at += fraction;
        }
    }
    if at != b.len() {
        return fail(b, if b[at..].iter().any(|c| matches!(c, b'Z' | b'z' | b'+' | b'-')) { "a zone or offset is not allowed" } else { "unexpected text after the time" });
    }
    Ok(Tail { second, ms })
}

/// Parses `b`: (ms of its minute, ms). Syntax is checked before the calendar, so each text gets the error
/// it always got.
fn parse(b: &[u8]) -> Result<(u64, u64), String> {
    let Some(year) = digits(b, 0, 4) else { return fail(b, "expected a four-digit year") };
    if b.get(4) != Some(&b'-') {
        return fail(b, "expected '-' after the year");
    }
    let Some(month) = digits(b, 5, 2) else { return fail(b, "expected a two-digit month") };
    if b.get(7) != Some(&b'-') {
        return fail(b, "expected '-' after the month");
    }
    let Some(day) = digits(b, 8, 2) else { return fail(b, "expected a two-digit day") };
    if !matches!(b.get(10), Some(b'T' | b't')) {
        return fail(b, "expected 'T' after the date");
    }
    let Some(hour) = digits(b, 11, 2) else { return fail(b, "expected a two-digit hour") };
    if b.get(13) != Some(&b':') {
        return fail(b, "expected ':' after the hour");
    }
    let Some(minute) = digits(b, 14, 2) else { return fail(b, "expected two-digit minutes") };
    let tail = tail(b, 16)?;
    if year < 1970 {
        return fail(b, "years before 1970 are not supported");
    }
    if !(1..=12).contains(&month) || day == 0 || day as u64 > days_in_month(year as u64, month as u64) {
        return fail(b, "no such date");
    }
    let days = days_from_civil(year as i64, month as i64, day as i64) as u64;
    if hour > 23 || minute > 59 {
        return fail(b, "no such time");
    }
    let minute_ms = ((days * 24 + hour as u64) * 60 + minute as u64) * 60_000;
    Ok((minute_ms, minute_ms + tail.ms(b)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 1_796_112_000_000; // 2026-12-01T08:00:00 read as UTC

    #[test]
    fn accepts_java_iso_local_date_time() {
        assert_eq!(parse_local_date_time("2026-12-01T08:00"), Ok(BASE));
        assert_eq!(parse_local_date_time("2026-12-01t08:00:00"), Ok(BASE));
        assert_eq!(parse_local_date_time("2026-12-01T08:00:01."), Ok(BASE + 1000));
        assert_eq!(parse_local_date_time("2026-12-01T08:00:01.5"), Ok(BASE + 1500));
        assert_eq!(parse_local_date_time("2026-12-01T08:00:59.999900"), Ok(BASE + 59_999), "sub-ms digits truncated");
        assert_eq!(parse_local_date_time("2026-12-01T08:00:01.123456789"), Ok(BASE + 1123));
        assert_eq!(parse_local_date_time("1970-01-01T00:00"), Ok(0));
        assert_eq!(parse_local_date_time("2024-02-29T23:59:59"), Ok(1_709_251_199_000));
        assert_eq!(parse_local_date_time("9999-12-31T23:59:59.999"), Ok(253_402_300_799_999));
    }

    #[test]
    fn refuses_everything_else() {
        for (text, why) in [
            ("2026-12-01T08:00:00Z", "zone"),
            ("2026-12-01T08:00:00+01:00", "zone"),
            ("2026-12-01 08:00:00", "'T'"),
            ("1796112000000", "'-'"),
            ("2026-02-30T08:00", "no such date"),
            ("2025-02-29T08:00", "no such date"),
            ("2026-12-01T24:00", "no such time"),
            ("2026-12-01T08:00:60", "no such time"),
            ("2026-13-01T08:00", "no such date"),
            ("2026-12-01T08:00:01.1234567890", "9 fraction"),
            ("2026-12-01T08:00.5", "unexpected"),
            ("2026-12-01T8:00", "hour"),
            ("1969-12-31T23:59:59", "before 1970"),
            ("+12026-12-01T08:00", "year"),
            ("2026-12-01", "'T'"),
            ("", "year"),
        ] {
            let e = parse_local_date_time(text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn a_cached_minute_parses_as_the_first_time() {
        let mut cache = DateCache::default();
        for text in [
            "2026-12-01T08:00", "2026-12-01T08:00:01.5", "2026-12-01T08:00:60", "2026-12-01T08:00:01.1234567890", "2026-12-01T08:00Z",
            "2026-12-01T08:00:01.5+01:00", "2026-12-01T08:00:1", "2026-12-01T08:00.5", "2026-12-01T08:00:59.999", "2026-12-01T23:59:59.999",
            "2026-12-01 08:00", "2026-12-01T24:00", "2026-12-01T24:00:01", "2026-12-02T00:00", "2026-02-30T08:00", "2026-02-30T08:00:01",
            "2026-12-01T08:00:01.5", "2026-12-01T08:00\u{e9}",
        ] {
            assert_eq!(cache.parse(text), parse_local_date_time(text), "{text}");
        }
    }

    #[test]
    fn formatted_times_parse_back() {
        for ms in [0u64, BASE, 253_402_300_799_999, 1_709_251_199_000, 951_782_400_000] {
            let mut s = String::new();
            crate::calendar::format_local_date_time(ms as i64, 'T', &mut s);
            assert_eq!(parse_local_date_time(&s), Ok(ms), "{s}");
        }
    }
}
