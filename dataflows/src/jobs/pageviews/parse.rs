//! Access-log lines (pageviews spec §1, `docs/jobs/pageviews.md` §1): the Apache/Nginx combined and common log
//! formats, accepted by one anchored regular expression (the Flink baseline's, so that Flink, its Python
//! re-computation and taxiflow accept the same lines), then the timestamp checked to be a real instant.
//!
//! ```text
//! 127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif?x=1 HTTP/1.0" 200 2326 "http://r/" "Mozilla/4.08"
//! └ visitor          └ event time (UTC ms)       └ path = target up to '?'  (referer and user agent optional)
//! ```

use std::sync::LazyLock;

use compact_str::CompactString;
use regex::Regex;

use crate::calendar::{days_from_civil, days_in_month};

/// The accepting expression (the Flink baseline's, anchored at the start; anything after the match is ignored).
/// Groups: 1 remote host, 2 ident, 3 user, 4 time, 5 method, 6 request target, 7 protocol, 8 status, 9 bytes,
/// 10 referer, 11 user agent.
pub const LINE_PATTERN: &str = r#"^([^ ]+) ([^ ]+) ([^ ]+) \[([0-9]{2}/(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} [+-](?:[01][0-9]|2[0-3])[0-5][0-9])\] "([^ "]+) ([^ "]+) ([^ "]+)" ([0-9]{3}) ([0-9]+|-)(?: "([^"\\]*(?:\\.[^"\\]*)*)" "([^"\\]*(?:\\.[^"\\]*)*)")?"#;

static LINE: LazyLock<Regex> = LazyLock::new(|| Regex::new(LINE_PATTERN).expect("the log line pattern compiles"));

/// The fields of one accepted line that the job counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// The request time converted to UTC, ms since the Unix epoch (second precision).
    pub event_time: u64,
    /// The remote-host field exactly as written (the visitor id).
    pub host: CompactString,
    /// The request target up to, excluding, the first `?`, byte for byte.
    pub path: CompactString,
}

/// What one line is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// An accepted line.
    Line(LogLine),
    /// Empty after removing a trailing `\r`: skipped, not malformed.
    Empty,
}

/// Parses one line (without its `\n`): a trailing `\r` is removed, invalid UTF-8 replaced by U+FFFD per invalid
/// sequence (`String::from_utf8_lossy`), then the line must match [`LINE_PATTERN`] at its start and its
/// timestamp must be a real instant.
///
/// # Errors
/// The reason the line is malformed: not a combined or common log line, or a timestamp that is not a real
/// instant (day past the month's end, hour ≥ 24, minute or second ≥ 60, year outside 1970–9999, or before the
/// Unix epoch once the offset is applied), naming the value.
pub fn parse_line(line: &[u8]) -> Result<Parsed, String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Ok(Parsed::Empty);
    }
    let text = String::from_utf8_lossy(line);
    let Some(caps) = LINE.captures(&text) else {
        return Err("not an access-log line in the combined or common log format".to_string());
    };
    let time = &caps[4];
    let event_time = instant_of(time).map_err(|why| format!("timestamp [{time}] is not a real instant: {why}"))?;
    let target = &caps[6];
    let path = match memchr::memchr(b'?', target.as_bytes()) {
        Some(q) => &target[..q],
        None => target,
    };
    Ok(Parsed::Line(LogLine { event_time, host: CompactString::from(&caps[1]), path: CompactString::from(path) }))
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// `dd/MMM/yyyy:HH:mm:ss ±hhmm` (as the pattern admits it) → ms since the Unix epoch.
fn instant_of(time: &str) -> Result<u64, String> {
    let b = time.as_bytes();
    let num = |range: std::ops::Range<usize>| -> i64 { b[range].iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')) };
    let day = num(0..2);
    let month = MONTHS.iter().position(|m| m.as_bytes() == &b[3..6]).expect("the pattern admits only these months") as i64 + 1;
    let year = num(7..11);
    let (hour, minute, second) = (num(12..14), num(15..17), num(18..20));
    let offset = (num(22..24) * 60 + num(24..26)) * if b[21] == b'-' { -1 } else { 1 };
    if !(1970..=9999).contains(&year) {
        return Err(format!("year {year} is outside 1970–9999"));
    }
    if day < 1 || day as u64 > days_in_month(year as u64, month as u64) {
        return Err(format!("{} has no day {day}", MONTHS[month as usize - 1]));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(format!("{hour:02}:{minute:02}:{second:02} is not a time of day"));
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset * 60;
    if seconds < 0 {
        return Err("it is before the Unix epoch".to_string());
    }
    Ok(seconds as u64 * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &str) -> LogLine {
        match parse_line(s.as_bytes()) {
            Ok(Parsed::Line(l)) => l,
            other => panic!("{s:?}: {other:?}"),
        }
    }

    #[test]
    fn combined_common_and_extra_fields() {
        let l = line(r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif?x=1 HTTP/1.0" 200 2326 "http://r/" "Mozilla/4.08""#);
        // 2000-10-10T20:55:36Z
        assert_eq!(l.event_time, 971_211_336_000);
        assert_eq!((l.host.as_str(), l.path.as_str()), ("127.0.0.1", "/apache_pb.gif"));
        let common = line(r#"h.example - - [01/Jan/2024:00:00:00 +0000] "HEAD / HTTP/1.1" 304 -"#);
        assert_eq!(common.event_time, 1_704_067_200_000);
        let nginx = line("1.2.3.4 - - [01/Jan/2024:00:00:00 +0100] \"POST /a#f?x HTTP/2\" 500 0 \"-\" \"ua\" \"10.0.0.1\"\r");
        assert_eq!((nginx.path.as_str(), nginx.event_time), ("/a#f", 1_704_063_600_000));
        assert_eq!(line(r#"x - - [01/Jan/2024:00:00:00 +0000] "GET ?q=1 HTTP/1.1" 200 1"#).path, "");
        assert_eq!(line(r#"x - - [01/Jan/2024:00:00:00 +0000] "GET http://h/x?y HTTP/1.1" 200 1"#).path, "http://h/x");
    }

    #[test]
    fn malformed_and_empty() {
        assert_eq!(parse_line(b"\r"), Ok(Parsed::Empty));
        assert_eq!(parse_line(b""), Ok(Parsed::Empty));
        for bad in [
            "free text",
            r#"x - - [01/Jan/2024:00:00:00 +0000] "-" 400 0"#,
            r#"x - - [01/Jan/2024:00:00:00 +0000] "GET /" 200 1"#,
            r#"x - - [01/jan/2024:00:00:00 +0000] "GET / HTTP/1.1" 200 1"#,
            r#"x - - [01/Jan/2024:00:00:00 +2400] "GET / HTTP/1.1" 200 1"#,
            r#"x - - [01/Jan/2024:00:00:00] "GET / HTTP/1.1" 200 1"#,
            r#"x - - [01/Jan/2024:00:00:00 +0000] "GET / HTTP/1.1" 20 1"#,
            r#"x a b c [01/Jan/2024:00:00:00 +0000] "GET / HTTP/1.1" 200 1"#,
        ] {
            assert!(parse_line(bad.as_bytes()).is_err(), "{bad}");
        }
        let e = parse_line(br#"x - - [31/Sep/2000:00:00:00 +0000] "GET / HTTP/1.1" 200 1"#).unwrap_err();
        assert!(e.contains("Sep has no day 31"), "{e}");
        assert!(parse_line(br#"x - - [01/Jan/2000:00:00:60 +0000] "GET / HTTP/1.1" 200 1"#).unwrap_err().contains("not a time of day"));
        assert!(parse_line(br#"x - - [01/Jan/1969:00:00:00 +0000] "GET / HTTP/1.1" 200 1"#).unwrap_err().contains("1970"));
        assert!(parse_line(br#"x - - [01/Jan/1970:00:30:00 +0100] "GET / HTTP/1.1" 200 1"#).unwrap_err().contains("before the Unix epoch"));
        assert!(parse_line(br#"x - - [29/Feb/2023:00:00:00 +0000] "GET / HTTP/1.1" 200 1"#).is_err());
        assert!(parse_line(br#"x - - [29/Feb/2024:00:00:00 +0000] "GET / HTTP/1.1" 200 1"#).is_ok());
    }

    #[test]
    fn invalid_utf8_is_replaced_per_sequence() {
        let l = line("h\u{0}\u{1} - - [01/Jan/2024:00:00:00 +0000] \"GET /\u{e9} HTTP/1.1\" 200 1");
        assert_eq!(l.path, "/\u{e9}");
        let mut bytes = b"h - - [01/Jan/2024:00:00:00 +0000] \"GET /".to_vec();
        bytes.extend_from_slice(&[0xff, 0xc3]);
        bytes.extend_from_slice(b" HTTP/1.1\" 200 1");
        match parse_line(&bytes) {
            Ok(Parsed::Line(l)) => assert_eq!(l.path, "/\u{fffd}\u{fffd}"),
            other => panic!("{other:?}"),
        }
    }
}
