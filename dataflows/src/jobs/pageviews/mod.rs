//! The page-view job (`taxiflow run pageviews`, `docs/jobs/pageviews.md`): the "Flume + Kafka + Flink + Redis"
//! tutorial's Flink job, which counts page views (PV) and unique visitors (UV) of web access logs per tumbling
//! event-time window, in total, per path and per country, and "today so far" (pageviews spec §1–§3). Its total
//! and per-path outputs equal the Flink 2.3 SQL job of the baseline:
//!
//! ```sql
//! SELECT window_end, COUNT(*) AS pv, COUNT(DISTINCT remote_host) AS uv
//! FROM TABLE(TUMBLE(TABLE page_views, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY window_start, window_end
//! -- and the same GROUP BY window_start, window_end, path; WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
//! ```
//!
//! | module | what |
//! |---|---|
//! | [`parse`] | the combined/common log line, accepted by the baseline's expression |
//! | [`today`] | "today so far": a distinct count per day over a differential arrangement |
//!
//! Event time: the request time in UTC, ms since the Unix epoch. Watermark per partition: max event time − 5 s
//! (Flink SQL, no extra −1 ms). Lateness is window-level (Flink's window operator): a line is late iff its
//! window's end − 1 ms ≤ its partition's watermark.
//!
//! # Shape
//! `PageView` → three keyed window aggregates (`()`, path, country) of [`Visitors`] (pv and the exact set of
//! visitors, folded per input batch on the reading worker, merged by key hash) → rows at the window end; and
//! [`today::today`] for output 4. Every aggregate checkpoints its open windows (`crate::window::aggregate`).

pub mod parse;
pub mod today;

use std::net::IpAddr;
use std::sync::Arc;

use compact_str::CompactString;
use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::Concat;
use timely::dataflow::StreamVec;

use crate::epoch::{Recovery, Time};
use crate::job::{Counters, Decoded, EventTime, Job, JobInfo, JobStreams, Lateness, RecordFormat, WatermarkStrategy};
use crate::output::{Field, FieldType, OutputSchema, Row, Value};
use crate::window::aggregate::{windowed_aggregate, Accumulator, Aggregated};
use crate::window::{TumblingWindow, Window};
use parse::{parse_line, Parsed};
use today::DayCalendar;

/// One page view: an accepted access-log line (pageviews spec §1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageView {
    /// The request time in UTC, ms since the Unix epoch.
    pub event_time: u64,
    /// The visitor: the remote-host field as written.
    pub host: CompactString,
    /// The request target up to the first `?`.
    pub path: CompactString,
    /// The country code of the host (`--geoip`), `"--"` when the host is not an address in the database; `None`
    /// without `--geoip`.
    pub country: Option<CompactString>,
}

impl EventTime for PageView {
    #[inline]
    fn event_time(&self) -> u64 {
        self.event_time
    }
}

/// The country of an IP address (pageviews spec §3.3): a MaxMind-format database (`--geoip`), read by the
/// `taxiflow` crate. The job asks only for addresses; host names are never resolved.
pub trait CountryLookup: Send + Sync + std::fmt::Debug {
    /// The ISO 3166 alpha-2 code of `ip`, or `None` when the database has none.
    fn country(&self, ip: IpAddr) -> Option<CompactString>;
}

/// The code reported for a host that is not an address, or an address the database does not know.
pub const UNKNOWN_COUNTRY: &str = "--";

/// The country of `host`: the database's code when `host` is an IPv4 or IPv6 address it knows (an IPv4-mapped
/// IPv6 address is looked up as IPv4), else [`UNKNOWN_COUNTRY`]. `1.2.3.4:5678` is not an address.
pub fn country_of(lookup: &dyn CountryLookup, host: &str) -> CompactString {
    let ip = match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        Ok(ip) => ip,
        Err(_) => return CompactString::const_new(UNKNOWN_COUNTRY),
    };
    lookup.country(ip).unwrap_or(CompactString::const_new(UNKNOWN_COUNTRY))
}

/// The job's one input format: access-log lines ([`parse`]), with the country looked up when `--geoip` is given.
#[derive(Clone, Debug)]
pub struct AccessLog {
    /// `--geoip`.
    pub geoip: Option<Arc<dyn CountryLookup>>,
}

impl RecordFormat for AccessLog {
    type Record = PageView;
    type Scratch = ();

    fn decode(&self, line: &[u8], _: &mut ()) -> Result<Decoded<PageView>, String> {
        match parse_line(line)? {
            Parsed::Empty => Ok(Decoded::Skip),
            Parsed::Line(l) => {
                let country = self.geoip.as_deref().map(|g| country_of(g, &l.host));
                Ok(Decoded::Record(PageView { event_time: l.event_time, host: l.host, path: l.path, country }))
            }
        }
    }

    fn name(&self) -> &'static str {
        "access-log"
    }

    fn lines_per_message(&self) -> bool {
        true
    }
}

/// Page views and the exact set of visitors of one key in one window.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visitors {
    /// Page views.
    pub pv: u64,
    /// Distinct visitors (remote hosts).
    pub hosts: FxHashSet<CompactString>,
}

impl Accumulator for Visitors {
    type Value = CompactString;

    fn of(host: CompactString) -> Self {
        let mut v = Visitors::default();
        v.add(host);
        v
    }

    #[inline]
    fn add(&mut self, host: CompactString) {
        self.pv += 1;
        self.hosts.insert(host);
    }

    fn merge(&mut self, other: &Self) {
        self.pv += other.pv;
        self.hosts.extend(other.hosts.iter().cloned());
    }
}

/// Output names (the file sink's `DIR/<name>.jsonl`).
pub const TOTAL: &str = "total";
/// Output 2: per path.
pub const BY_PATH: &str = "by_path";
/// Output 3: per country (with `--geoip`).
pub const BY_COUNTRY: &str = "by_country";
/// Output 4: today so far.
pub const TODAY: &str = "today";
/// Output 5 (with [`PageviewsJob::day_visitors`]): each visitor of a day once, for a HyperLogLog.
pub const DAY_VISITORS: &str = "day_visitors";

/// The flags of the page-view job.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct PageviewsArgs {
    /// The time zone of the days of the today output, an IANA name (e.g. Europe/Berlin); default UTC.
    #[arg(long, value_name = "ZONE")]
    pub timezone: Option<String>,
    /// A MaxMind-format country database (.mmdb): adds the by_country output. Repeat it for databases that come
    /// as separate IPv4 and IPv6 files; an address is looked up in each in order. The code is read from
    /// country.iso_code (GeoLite2 layout) or country_code.
    #[arg(long, value_name = "FILE")]
    pub geoip: Vec<std::path::PathBuf>,
    /// Leave out the today output (and, with the Redis sink, the day keys and the day's HyperLogLog): its exact
    /// distinct count holds every visitor of each open day, the job's largest state (about 8 bytes a visitor in
    /// the day state and 12 in each of two arrangements). The reference's Flink job has no such output.
    #[arg(long)]
    pub no_today: bool,
}

/// The page-view job with its settings.
#[derive(Clone, Debug)]
pub struct PageviewsJob {
    /// Tumbling window (`--window`, default 1 min).
    pub window: TumblingWindow,
    /// The watermark delay (`--max-out-of-orderness`, default 5 s): W = max event time − delay.
    pub watermark_delay_ms: u64,
    /// The days of output 4 (`--timezone`, default UTC).
    pub calendar: DayCalendar,
    /// `--geoip`: output 3 is produced only with it.
    pub geoip: Option<Arc<dyn CountryLookup>>,
    /// Compute output 4, [`TODAY`] (`--no-today` turns it off, and [`DAY_VISITORS`] with it).
    pub today: bool,
    /// Emit [`DAY_VISITORS`] (for the Redis sink's `PFADD` into the day's HyperLogLog, pageviews spec §4); only
    /// with [`PageviewsJob::today`], whose day state finds each visitor's first window of the day.
    pub day_visitors: bool,
}

impl PageviewsJob {
    /// The job of the flags: `--window`, `--max-out-of-orderness`, `--timezone` and the country database.
    ///
    /// # Errors
    /// A bad `--window`, `--max-out-of-orderness` or `--timezone` (named).
    pub fn new(window: &super::WindowArgs, timezone: Option<&str>, geoip: Option<Arc<dyn CountryLookup>>) -> Result<PageviewsJob, String> {
        let calendar = match timezone {
            None => DayCalendar::utc(),
            Some(name) => DayCalendar::of(name).map_err(|e| format!("--timezone: {e}"))?,
        };
        Ok(PageviewsJob { window: window.window()?.unwrap_or(TumblingWindow::new(60_000)), watermark_delay_ms: window.bound_ms()?.unwrap_or(5_000), calendar, geoip, today: true, day_visitors: false })
    }

    /// The output index of each output (`by_country` only with `--geoip`).
    fn index(&self, name: &str) -> u16 {
        self.outputs().iter().position(|o| o.name == name).expect("an output of the job") as u16
    }
}

/// `window_end_ms, pv, uv`, plus `key_field` before `pv` when given.
fn window_fields(key_field: Option<&'static str>) -> Vec<Field> {
    let mut fields = vec![Field::required("window_end_ms", FieldType::EpochMillis)];
    fields.extend(key_field.map(|k| Field::required(k, FieldType::Keyword)));
    fields.push(Field::required("pv", FieldType::Long));
    fields.push(Field::required("uv", FieldType::Long));
    fields
}

fn schema(name: &'static str, description: &'static str, fields: Vec<Field>) -> OutputSchema {
    OutputSchema { name, description, fields, id: true, event_time: Some("window_end_ms"), partition_by: Vec::new(), envelope: false, watermarks: None }
}

/// The row id `<output>-<window start>-<window end>[-<key>]`: unique per output, window and key, and, among the
/// rows of one window, ordered as the keys' bytes (the file sink writes a window's rows by id).
pub fn row_id(output: &str, window: Window, key: Option<&str>) -> String {
    match key {
        Some(k) => format!("{output}-{}-{}-{k}", window.start_ms, window.end_ms),
        None => format!("{output}-{}-{}", window.start_ms, window.end_ms),
    }
}

/// The row of one window aggregate of output `output` (`keyed`: the key is a field).
fn window_row<K: AsRef<str>>(output: u16, name: &str, agg: Aggregated<K, Visitors>, keyed: bool) -> Row {
    let key = keyed.then(|| agg.key.as_ref());
    let mut values = vec![Value::Int(agg.window.end_ms as i64)];
    values.extend(key.map(|k| Value::Str(k.to_string())));
    values.push(Value::Int(agg.acc.pv as i64));
    values.push(Value::Int(agg.acc.hosts.len() as i64));
    Row { output, id: row_id(name, agg.window, key), order: agg.window.end_ms as i64, window: Some(agg.window), values }
}

/// The unit key of the total, as a key with a string form (never written).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct All;

impl AsRef<str> for All {
    fn as_ref(&self) -> &str {
        ""
    }
}

impl Job for PageviewsJob {
    type Record = PageView;
    type Format = AccessLog;

    fn info() -> JobInfo {
        JobInfo {
            name: "pageviews",
            summary: "page views and unique visitors per tumbling window, in total, per path, per country, and today so far (Flume + Kafka + Flink + Redis tutorial)",
            inputs: "access-log lines, Apache/Nginx combined or common log format (files, plain or gzip, or Kafka messages of one or more lines)",
            defaults: "--window 1m, watermark max event time − 5s (--max-out-of-orderness), window-level lateness, --timezone UTC for today",
            docs: "docs/jobs/pageviews.md",
        }
    }

    fn identity(&self) -> String {
        let today = if self.today { "" } else { " today=false" };
        format!("pageviews window={:?} delay={} timezone={} geoip={:?} day_visitors={}{today}", self.window, self.watermark_delay_ms, self.calendar.name(), self.geoip, self.day_visitors)
    }

    fn watermarks(&self) -> WatermarkStrategy {
        WatermarkStrategy::Delay { delay_ms: self.watermark_delay_ms }
    }

    fn lateness(&self) -> Lateness {
        Lateness::Window(self.window)
    }

    fn stream_format(&self) -> Result<AccessLog, String> {
        Ok(AccessLog { geoip: self.geoip.clone() })
    }

    fn file_format(&self, _first_line: Option<&[u8]>) -> Result<AccessLog, String> {
        Ok(AccessLog { geoip: self.geoip.clone() })
    }

    fn outputs(&self) -> Vec<OutputSchema> {
        let mut outputs = vec![
            schema(TOTAL, "PV and exact UV per window", window_fields(None)),
            schema(BY_PATH, "PV and exact UV per window and request path (the target up to '?')", window_fields(Some("path"))),
        ];
        if self.geoip.is_some() {
            outputs.push(schema(BY_COUNTRY, "PV and exact UV per window and country of the remote host (--geoip; \"--\" when unknown)", window_fields(Some("country"))));
        }
        if !self.today {
            return outputs;
        }
        outputs.push(schema(
            TODAY,
            "PV and exact UV of the day (--timezone) up to each window end, emitted with each total window",
            vec![Field::required("day", FieldType::Keyword), Field::required("window_end_ms", FieldType::EpochMillis), Field::required("pv", FieldType::Long), Field::required("uv", FieldType::Long)],
        ));
        if self.day_visitors {
            outputs.push(schema(
                DAY_VISITORS,
                "each visitor of a day once, at the end of its first window of the day (for the Redis sink's HyperLogLog)",
                vec![Field::required("day", FieldType::Keyword), Field::required("window_end_ms", FieldType::EpochMillis), Field::required("host", FieldType::Keyword)],
            ));
        }
        outputs
    }

    fn record_noun(&self) -> &'static str {
        "lines"
    }

    fn build<'s>(&self, records: StreamVec<'s, Time, PageView>, recovery: &Recovery, _counters: &Counters) -> JobStreams<'s> {
        let w = self.window;
        let (total, by_path) = (self.index(TOTAL), self.index(BY_PATH));
        let (totals, total_parts) = windowed_aggregate::<_, All, Visitors, _>(records.clone(), w, "pageviews.total", recovery, |r: PageView| Some((All, r.host)));
        let (paths, path_parts) = windowed_aggregate::<_, CompactString, Visitors, _>(records.clone(), w, "pageviews.by_path", recovery, |r: PageView| Some((r.path, r.host)));
        let mut rows = totals.map(move |agg| window_row(total, TOTAL, agg, false)).concat(paths.map(move |agg| window_row(by_path, BY_PATH, agg, true)));
        let mut parts = total_parts.concat(path_parts);
        if self.geoip.is_some() {
            let by_country = self.index(BY_COUNTRY);
            let (countries, country_parts) = windowed_aggregate::<_, CompactString, Visitors, _>(records.clone(), w, "pageviews.by_country", recovery, |r: PageView| r.country.map(|c| (c, r.host)));
            rows = rows.concat(countries.map(move |agg| window_row(by_country, BY_COUNTRY, agg, true)));
            parts = parts.concat(country_parts);
        }
        if self.today {
            let visitors = self.day_visitors.then(|| self.index(DAY_VISITORS));
            let (today_rows, today_parts) = today::today(records, w, self.calendar, self.index(TODAY), visitors, recovery);
            rows = rows.concat(today_rows);
            parts = parts.concat(today_parts);
        }
        JobStreams { rows, checkpoint_parts: parts }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Table;

    impl CountryLookup for Table {
        fn country(&self, ip: IpAddr) -> Option<CompactString> {
            match ip {
                IpAddr::V4(v4) if v4.octets()[0] == 1 => Some("AU".into()),
                IpAddr::V6(v6) if v6.segments()[0] == 0x2001 => Some("DE".into()),
                _ => None,
            }
        }
    }

    #[test]
    fn countries_of_hosts() {
        assert_eq!(country_of(&Table, "1.2.3.4"), "AU");
        assert_eq!(country_of(&Table, "::ffff:1.2.3.4"), "AU");
        assert_eq!(country_of(&Table, "2001:db8::1"), "DE");
        assert_eq!(country_of(&Table, "9.9.9.9"), "--");
        assert_eq!(country_of(&Table, "1.2.3.4:5678"), "--");
        assert_eq!(country_of(&Table, "host.example.com"), "--");
    }

    #[test]
    fn row_ids_order_keys_by_their_bytes() {
        let w = Window { start_ms: 0, end_ms: 60_000 };
        let mut paths = ["/a!", "/a", "/a-b", "/", "/\u{e9}", "/Z"];
        let mut ids: Vec<String> = paths.iter().map(|p| row_id(BY_PATH, w, Some(p))).collect();
        ids.sort();
        paths.sort();
        let expected: Vec<String> = paths.iter().map(|p| row_id(BY_PATH, w, Some(p))).collect();
        assert_eq!(ids, expected);
    }
}
