//! A seeded stream of device events (`taxiflow generate devices`) that exercises every path of the blog's two
//! rules (`docs/jobs/alerts.md` §2): faults 1, 2 and 3, recoveries of 1 and 3, alarms, runs, moves and a kind no
//! rule names, with and without `ErrCode`, several timestamp forms (`Z`, offsets, no fraction, µs), events of one
//! device in the same millisecond, and — in fixed shares — out-of-order, late, redelivered (the same line again)
//! and malformed records.
//!
//! Event `i` has the time `start + i × spacing`, moved back by up to `max_disorder`; 0.5 % are moved back by 30 s
//! more (late under the default 5 s bound), 0.5 % are followed by a redelivery of an earlier line, 0.2 % are
//! malformed. The same seed and settings give the same bytes.

use crate::calendar::civil_from_days;

/// Share of late events, per mille.
const LATE_PER_MILLE: u64 = 5;
/// Share of redeliveries, per mille.
const DUPLICATE_PER_MILLE: u64 = 5;
/// Share of malformed records, per mille.
const MALFORMED_PER_MILLE: u64 = 2;

/// A deterministic stream of device events.
#[derive(Clone, Debug)]
pub struct DeviceGenerator {
    rng: fastrand::Rng,
    devices: u64,
    start_ms: i64,
    spacing_us: f64,
    max_disorder_ms: u64,
    next: u64,
    /// Recent lines, for redeliveries.
    recent: Vec<(String, u64, i64)>,
    /// A redelivery to send next.
    queued: Option<(String, u64, i64)>,
}

/// One generated record: the line, its event time (ms since the Unix epoch; 0 for a malformed line) and the
/// device it belongs to (the Kafka partition key).
pub type Generated = (String, u64, i64);

impl DeviceGenerator {
    /// Events of `devices` devices from `start_ms` (ms since the Unix epoch), `spacing_us` µs apart, each moved
    /// back by up to `max_disorder_ms`, drawn with `seed`.
    pub fn new(seed: u64, devices: u64, start_ms: i64, spacing_us: f64, max_disorder_ms: u64) -> DeviceGenerator {
        DeviceGenerator { rng: fastrand::Rng::with_seed(seed), devices: devices.max(1), start_ms: start_ms + 30_000 + max_disorder_ms as i64, spacing_us, max_disorder_ms, next: 0, recent: Vec::new(), queued: None }
    }

    /// The next record.
    pub fn next_record(&mut self) -> Generated {
        if let Some(q) = self.queued.take() {
            return q;
        }
        let i = self.next;
        self.next += 1;
        let roll = self.rng.u64(0..1000);
        if roll < MALFORMED_PER_MILLE {
            return (self.malformed(i), 0, 0);
        }
        let base = self.start_ms + (i as f64 * self.spacing_us / 1000.0) as i64;
        let mut back = if self.max_disorder_ms > 0 { self.rng.u64(0..=self.max_disorder_ms) as i64 } else { 0 };
        if (MALFORMED_PER_MILLE..MALFORMED_PER_MILLE + LATE_PER_MILLE).contains(&roll) {
            back += 30_000;
        }
        let time = (base - back).max(0);
        let device = self.rng.u64(0..self.devices) as i64;
        let (message, code) = self.kind();
        // IDs are unique; those of a fixed width sort like their numbers, and every 50th event has an unpadded
        // id, so that byte order and number order differ ("e-00001008" < "e-1007" < "e-957").
        let id = if i % 50 == 7 { format!("e-{i}") } else { format!("e-{i:08}") };
        let line = event_line(message, code, time, &id, device, self.rng.u8(0..4));
        let record = (line, time as u64, device);
        if self.recent.len() < 64 {
            self.recent.push(record.clone());
        } else {
            let slot = self.rng.usize(0..64);
            self.recent[slot] = record.clone();
        }
        if (MALFORMED_PER_MILLE + LATE_PER_MILLE..MALFORMED_PER_MILLE + LATE_PER_MILLE + DUPLICATE_PER_MILLE).contains(&roll) {
            let again = self.recent[self.rng.usize(0..self.recent.len())].clone();
            self.queued = Some(again);
        }
        record
    }

    /// An event kind and code, weighted so that the rules' pairs and sequences occur often.
    fn kind(&mut self) -> (&'static str, Option<i64>) {
        match self.rng.u8(0..20) {
            0..=3 => ("fault", Some(1)),
            4..=6 => ("fault", Some(2)),
            7..=9 => ("fault", Some(3)),
            10 => ("fault", Some(4)),
            11 | 12 => ("recover", Some(1)),
            13 => ("recover", Some(3)),
            14..=16 => ("alarm", None),
            17 => ("run", None),
            18 => ("move", None),
            _ => ("door", None),
        }
    }

    fn malformed(&mut self, i: u64) -> String {
        match self.rng.u8(0..6) {
            0 => format!("{{\"Message\": \"fault\", \"Param\": {{\"ErrCode\": \"1\", \"Timestamp\": \"2026-03-02T08:00:00Z\", \"ID\": \"m-{i}\"}}, \"DeviceNumber\": 1}}"),
            1 => format!("{{\"Message\": \"fault\", \"Param\": {{\"ErrCode\": 1, \"Timestamp\": \"2026-03-02 08:00:00\", \"ID\": \"m-{i}\"}}, \"DeviceNumber\": 1}}"),
            2 => format!("{{\"Message\": \"alarm\", \"Param\": {{\"Timestamp\": \"2026-03-02T08:00:00Z\", \"ID\": \"m-{i}\"}}}}"),
            3 => "not json".to_string(),
            4 => format!("{{\"Message\": \"fault\", \"Param\": {{\"ErrCode\": 1.0, \"Timestamp\": \"2026-03-02T08:00:00Z\", \"ID\": \"m-{i}\"}}, \"DeviceNumber\": 1}}"),
            _ => format!("{{\"Message\": \"run\", \"Param\": {{\"Timestamp\": \"2026-02-30T08:00:00Z\", \"ID\": \"m-{i}\"}}, \"DeviceNumber\": 2}}"),
        }
    }
}

/// One event as JSON, its timestamp in form `form` (0: `Z` with ms, 1: `Z` without a fraction when the ms are 0
/// and with µs otherwise, 2: `+02:00` with ms, 3: `-05:30` with ms).
pub fn event_line(message: &str, code: Option<i64>, time_ms: i64, id: &str, device: i64, form: u8) -> String {
    let timestamp = timestamp(time_ms, form);
    let code = code.map_or_else(|| if time_ms % 2 == 0 { String::new() } else { "\"ErrCode\": null, ".to_string() }, |c| format!("\"ErrCode\": {c}, "));
    format!("{{\"Message\": \"{message}\", \"Param\": {{{code}\"Timestamp\": \"{timestamp}\", \"ID\": \"{id}\"}}, \"DeviceNumber\": {device}}}")
}

/// `time_ms` as RFC 3339 text in one of the forms of [`event_line`].
fn timestamp(time_ms: i64, form: u8) -> String {
    let offset_min: i64 = match form {
        2 => 120,
        3 => -330,
        _ => 0,
    };
    let local = time_ms + offset_min * 60_000;
    let (days, in_day) = (local.div_euclid(86_400_000), local.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    let (h, min, s, ms) = (in_day / 3_600_000, in_day / 60_000 % 60, in_day / 1000 % 60, in_day % 1000);
    let date = format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}");
    match form {
        0 => format!("{date}.{ms:03}Z"),
        1 if ms == 0 => format!("{date}Z"),
        1 => format!("{date}.{ms:03}417Z"),
        _ => {
            let sign = if offset_min < 0 { '-' } else { '+' };
            format!("{date}.{ms:03}{sign}{:02}:{:02}", offset_min.abs() / 60, offset_min.abs() % 60)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::event::decode;
    use super::*;

    #[test]
    fn records_decode_to_their_time_and_device() {
        let mut g = DeviceGenerator::new(3, 20, 1_772_438_400_000, 10_000.0, 2_000);
        let (mut malformed, mut events) = (0, 0);
        for _ in 0..5000 {
            let (line, time, device) = g.next_record();
            match decode(line.as_bytes()) {
                Ok(e) => {
                    events += 1;
                    assert_eq!((e.time, e.device), (time, device), "{line}");
                }
                Err(_) => malformed += 1,
            }
        }
        assert!(malformed > 0 && events > 4900, "{malformed} malformed");
        let take = |seed| {
            let mut g = DeviceGenerator::new(seed, 5, 0, 1000.0, 0);
            (0..200).map(|_| g.next_record()).collect::<Vec<_>>()
        };
        assert_eq!(take(1), take(1));
        assert_ne!(take(1), take(2));
    }
}
