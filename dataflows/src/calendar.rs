//! Proleptic Gregorian calendar arithmetic on day counts since 1970-01-01 (Howard Hinnant's `days_from_civil`
//! and `civil_from_days`), shared by the jobs' timestamp parsers and formatters, and the text of a local date and
//! time (Flink's `TIMESTAMP(3)`) that the sinks write for `FieldType::LocalTimestamp`.

/// Days in `month` (1–12) of `year`.
pub fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of the date `y`-`m`-`d`.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (year, month, day) of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Formats ms since the Unix epoch as a local date and time `yyyy-MM-dd<sep>HH:mm:ss`, followed by `.` and the
/// milliseconds without trailing zeros when they are not zero (`08:01:01.5`), as Flink writes `TIMESTAMP(3)`
/// (`sep` is ' ' in Flink's CSV, 'T' in its JSON).
pub fn format_local_date_time(ms: i64, sep: char, out: &mut String) {
    use std::fmt::Write;
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, min, s, milli) = (in_day / 3_600_000, in_day / 60_000 % 60, in_day / 1000 % 60, in_day % 1000);
    let _ = write!(out, "{y:04}-{m:02}-{d:02}{sep}{h:02}:{min:02}:{s:02}");
    if milli != 0 {
        let fraction = format!("{milli:03}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
}

/// Formats ms since the Unix epoch as an ISO-8601 UTC instant with milliseconds, `yyyy-MM-ddTHH:mm:ss.SSSZ`
/// (the alert messages' instants, `docs/jobs/alerts.md` §4; what Java's `Instant.toString` writes for a whole
/// number of ms, but always with 3 fraction digits).
pub fn format_instant(ms: i64, out: &mut String) {
    use std::fmt::Write;
    if let Some(text) = instant_text(ms) {
        out.push_str(std::str::from_utf8(&text).expect("ASCII digits"));
        return;
    }
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, min, s, milli) = (in_day / 3_600_000, in_day / 60_000 % 60, in_day / 1000 % 60, in_day % 1000);
    let _ = write!(out, "{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z");
}

/// The text of [`format_instant`] as 24 ASCII bytes, `yyyy-MM-ddTHH:mm:ss.SSSZ`, for an instant in the years
/// 0000–9999 (`None` for any other: [`format_instant`] writes those with more or signed year digits). Digits are
/// placed directly, without the formatting machinery (the alert messages' three instants each were a tenth of the
/// file sink's time).
pub fn instant_text(ms: i64) -> Option<[u8; 24]> {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return None;
    }
    let mut text = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut value: i64| {
        for i in (at..at + width).rev() {
            text[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, y);
    put(5, 2, m);
    put(8, 2, d);
    put(11, 2, in_day / 3_600_000);
    put(14, 2, in_day / 60_000 % 60);
    put(17, 2, in_day / 1000 % 60);
    put(20, 3, in_day % 1000);
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_flink() {
        const BASE: i64 = 1_796_112_000_000; // 2026-12-01T08:00:00 read as UTC
        let f = |ms: i64, sep| {
            let mut s = String::new();
            format_local_date_time(ms, sep, &mut s);
            s
        };
        assert_eq!(f(BASE + 60_000, ' '), "2026-12-01 08:01:00");
        assert_eq!(f(BASE + 61_500, ' '), "2026-12-01 08:01:01.5");
        assert_eq!(f(BASE + 61_250, 'T'), "2026-12-01T08:01:01.25");
        assert_eq!(f(BASE + 61_005, 'T'), "2026-12-01T08:01:01.005");
        assert_eq!(f(0, 'T'), "1970-01-01T00:00:00");
        let mut s = String::new();
        format_instant(BASE + 61_250, &mut s);
        assert_eq!(s, "2026-12-01T08:01:01.250Z");
        s.clear();
        format_instant(0, &mut s);
        assert_eq!(s, "1970-01-01T00:00:00.000Z");
        // The fast digits against the formatting machinery, over the years 0000–9999 and either side of them.
        for ms in [-62_167_219_200_001_i64, -62_167_219_200_000, -1, 1, 86_399_999, 951_782_400_000, 4_107_542_399_999, 253_402_300_799_999, 253_402_300_800_000] {
            let (days, in_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
            let (y, m, d) = civil_from_days(days);
            let slow = format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", in_day / 3_600_000, in_day / 60_000 % 60, in_day / 1000 % 60, in_day % 1000);
            s.clear();
            format_instant(ms, &mut s);
            assert_eq!(s, slow, "{ms}");
            assert_eq!(instant_text(ms).is_some(), (0..=9999).contains(&y), "{ms}");
        }
    }

    #[test]
    fn days_round_trip() {
        for days in [-1, 0, 1, 59, 365, 10_957, 11_016, 20_788, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert!((1..=12).contains(&m) && d >= 1 && d as u64 <= days_in_month(y as u64, m as u64));
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
        assert_eq!((days_in_month(2024, 2), days_in_month(1900, 2), days_in_month(2000, 2)), (29, 28, 29));
    }
}
