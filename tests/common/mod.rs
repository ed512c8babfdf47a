//! Helpers shared by the integration tests: running the `taxiflow` binary, reading its output, and a naive
//! batch recomputation of the reference job to compare the dataflow with.
#![allow(dead_code)]

pub mod browser;
pub mod bulk_server;
pub mod crash;
pub mod kafka_broker;
pub mod kinesis;
pub mod opensearch;
pub mod postgres;
pub mod s3;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use taxiflow::connectors::file::{FileSource, FileSourceArgs};
use taxiflow::connectors::Source;
use taxiflow::dataflows::jobs::taxi::documents::{PICKUP_COUNT_INDEX, TRIP_DURATION_INDEX};
use taxiflow::dataflows::jobs::taxi::formats::FormatChoice;
use taxiflow::dataflows::jobs::taxi::geohash::Geohash;
use taxiflow::dataflows::jobs::taxi::{TaxiJob, TaxiSettings, Trip};
use taxiflow::dataflows::window::document_id;
use taxiflow::dataflows::WatermarkStrategy;
use taxiflow::runtime::run::{run, RunOptions, RunReport};

/// Runs the taxi job with `settings` in this process on `timely`'s workers from `source` into `file://out`.
pub fn run_taxi(settings: &TaxiSettings, source: Box<dyn Source<TaxiJob>>, timely: timely::Config, out: &Path) -> RunReport {
    let job = TaxiJob { settings: settings.clone(), format: FormatChoice::Auto };
    let sink = Box::new(taxiflow::connectors::file::sink::FileSink { dir: out.to_path_buf() });
    run(RunOptions::new(job, source, sink, timely)).expect("run succeeds")
}

/// The file source of `files`, with byte ranges of at least `min_split_bytes` and at most `max_split_bytes`.
pub fn file_source(files: &[PathBuf], min_split_bytes: u64, max_split_bytes: u64) -> Box<dyn Source<TaxiJob>> {
    Box::new(FileSource::new(files.to_vec(), &FileSourceArgs { min_split_bytes, max_split_bytes }))
}

/// The `taxiflow` binary built for these tests.
pub fn taxiflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_taxiflow"))
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits up to 30 s until something listens on 127.0.0.1:`port`; `what` says what, and how to install it.
pub fn wait_listening(port: u16, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Waits until `log` (a child's stderr, written with `RUST_LOG=info`) holds `needle` `count` times, for up to 3
/// minutes (a hung process, not a slow machine, fails it); fails at once if `child` ends first.
pub fn wait_for_log(log: &Path, needle: &str, count: usize, child: &mut std::process::Child) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    while std::fs::read_to_string(log).unwrap_or_default().matches(needle).count() < count {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the process ended ({status}) before logging {needle:?}; log: {}", crash::tail(log));
        }
        assert!(std::time::Instant::now() < deadline, "no {needle:?} logged within 3 minutes; log: {}", crash::tail(log));
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A child process that is killed if the test ends (or fails) before it stopped.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `taxiflow run ARGS --sink file://OUT` and asserts it succeeded; returns its output.
pub fn run_to_dir(args: &[&str], out: &Path) -> Output {
    let output = taxiflow()
        .arg("run")
        .args(args)
        .arg("--sink")
        .arg(format!("file://{}", out.display()))
        .output()
        .expect("taxiflow runs");
    assert!(output.status.success(), "taxiflow failed: {}", String::from_utf8_lossy(&output.stderr));
    output
}

/// The lines of `DIR/NAME.jsonl` parsed as JSON.
pub fn read_jsonl(dir: &Path, name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join(format!("{name}.jsonl"))).expect("output file exists");
    text.lines().map(|l| serde_json::from_str(l).expect("valid JSON line")).collect()
}

/// A number from the summary line, e.g. `summary_value(stdout, "late")`.
pub fn summary_value(stdout: &str, name: &str) -> u64 {
    let line = stdout.lines().find(|l| l.starts_with("summary:")).expect("summary line");
    let at = line.find(&format!("{name} ")).unwrap_or_else(|| panic!("{name} in {line}")) + name.len() + 1;
    line[at..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

/// One event of a generated partition.
#[derive(Clone, Debug)]
pub enum Event {
    /// A trip.
    Trip(Trip),
    /// A watermark record, ms since the Unix epoch.
    Watermark(u64),
}

/// The JSON line of an event (spec §1, KDA field names, ISO instants).
pub fn json_line(e: &Event) -> String {
    use taxiflow::dataflows::jobs::taxi::formats::timestamp::format_timestamp_ms as iso;
    match e {
        Event::Trip(t) => serde_json::json!({
            "type": "trip",
            "trip_id": t.trip_id,
            "pickup_latitude": t.pickup.lat,
            "pickup_longitude": t.pickup.lon,
            "dropoff_latitude": t.dropoff.lat,
            "dropoff_longitude": t.dropoff.lon,
            "pickup_datetime": iso(t.pickup_ms),
            "dropoff_datetime": iso(t.dropoff_ms),
            "total_amount": 12.5,
        })
        .to_string(),
        Event::Watermark(w) => serde_json::json!({"type": "watermark", "watermark": iso(*w)}).to_string(),
    }
}

/// Result of the naive recomputation: documents as JSON values keyed by `_id`, and the late trips as
/// (partition index, 1-based line).
pub struct Expected {
    pub pickup_count: BTreeMap<String, Value>,
    pub trip_duration: BTreeMap<String, Value>,
    pub late: Vec<(usize, u64)>,
}

/// Naive batch recomputation of the job over partitions read one after the other, one record at a time:
/// the late rule per partition, then plain maps per (window, key). No timely, no splitting, no exchange.
pub fn naive(partitions: &[Vec<Event>], s: &TaxiSettings) -> Expected {
    let mut counts: BTreeMap<(u64, String), u64> = BTreeMap::new();
    let mut durations: BTreeMap<(u64, String, &'static str), (i64, u64)> = BTreeMap::new();
    let mut late = Vec::new();
    for (pi, events) in partitions.iter().enumerate() {
        let mut watermark: Option<u64> = None;
        let mut max_seen: Option<u64> = None;
        for (li, e) in events.iter().enumerate() {
            match e {
                Event::Watermark(w) => {
                    if s.watermarks == WatermarkStrategy::Records {
                        watermark = Some(watermark.map_or(*w, |o| o.max(*w)));
                    }
                }
                Event::Trip(t) => {
                    let et = t.dropoff_ms;
                    if watermark.is_some_and(|w| et <= w) {
                        late.push((pi, li as u64 + 1));
                        continue;
                    }
                    if let WatermarkStrategy::BoundedOutOfOrderness { bound_ms } = s.watermarks {
                        let m = max_seen.map_or(et, |m| m.max(et));
                        max_seen = Some(m);
                        if m > bound_ms {
                            watermark = Some(watermark.map_or(m - bound_ms - 1, |o| o.max(m - bound_ms - 1)));
                        }
                    }
                    if !(s.nyc.contains(t.pickup) && s.nyc.contains(t.dropoff)) {
                        continue;
                    }
                    let len = s.window.length_ms;
                    let start = et / len * len;
                    let cell = Geohash::encode(t.pickup.lat, t.pickup.lon, s.hot_spot_precision).unwrap().to_string();
                    *counts.entry((start, cell)).or_default() += 1;
                    if let Some(a) = s.airport_of(t.dropoff) {
                        let cell = Geohash::encode(t.pickup.lat, t.pickup.lon, s.duration_precision).unwrap().to_string();
                        let minutes = (t.dropoff_ms as i64 - t.pickup_ms as i64) / 60_000;
                        let e = durations.entry((start, cell, a.code())).or_default();
                        e.0 += minutes;
                        e.1 += 1;
                    }
                }
            }
        }
    }
    let len = s.window.length_ms;
    let window = |start: u64| taxiflow::dataflows::Window { start_ms: start, end_ms: start + len };
    let mut pickup_count = BTreeMap::new();
    for ((start, cell), n) in counts {
        if n >= s.min_pickup_count {
            let id = document_id(PICKUP_COUNT_INDEX, &[&cell], window(start));
            pickup_count.insert(
                id.clone(),
                serde_json::json!({"_id": id, "location": cell, "pickup_count": n, "timestamp": (start + len) as i64 + s.timestamp_offset_ms}),
            );
        }
    }
    let mut trip_duration = BTreeMap::new();
    for ((start, cell, code), (sum, n)) in durations {
        if n >= s.min_duration_trips {
            let id = document_id(TRIP_DURATION_INDEX, &[&cell, code], window(start));
            trip_duration.insert(
                id.clone(),
                serde_json::json!({"_id": id, "location": cell, "airport_code": code, "sum_trip_duration": sum,
                    "avg_trip_duration": sum as f64 / n as f64, "timestamp": (start + len) as i64 + s.timestamp_offset_ms}),
            );
        }
    }
    Expected { pickup_count, trip_duration, late }
}

/// Documents of an output file keyed by `_id`, asserting ids are unique.
pub fn by_id(docs: Vec<Value>) -> BTreeMap<String, Value> {
    let n = docs.len();
    let map: BTreeMap<String, Value> = docs.into_iter().map(|d| (d["_id"].as_str().unwrap().to_string(), d)).collect();
    assert_eq!(map.len(), n, "duplicate _id in output");
    map
}

/// The file sink's documents of `DIR/NAME.jsonl` as `_id → fields without _id` (the shape an index stores),
/// asserting ids are unique.
pub fn file_documents(dir: &Path, name: &str) -> BTreeMap<String, Value> {
    let mut docs = by_id(read_jsonl(dir, name));
    for doc in docs.values_mut() {
        doc.as_object_mut().expect("a JSON object").remove("_id");
    }
    docs
}

/// The replay-format JSON of a trip picked up at Times Square 10 minutes before `dropoff_ms` and dropped off
/// nearby (both in the NYC area, no airport), for tests that produce records by hand.
pub fn trip_event_at(dropoff_ms: u64) -> String {
    let trip = Trip {
        trip_id: None,
        pickup_ms: dropoff_ms - 600_000,
        dropoff_ms,
        pickup: taxiflow::dataflows::jobs::taxi::Point { lat: 40.758, lon: -73.9855 },
        dropoff: taxiflow::dataflows::jobs::taxi::Point { lat: 40.75, lon: -73.99 },
        total_amount: 10.0,
    };
    taxiflow::dataflows::jobs::taxi::formats::json_lines::trip_event_json(&trip, 1)
}

/// Writes `copies` copies of the real trips of the bundled 2013 sample as replay-format JSON lines to `path`,
/// copy `k` shifted by `k` days (so each copy fills its own windows), in dropoff order but with every run of
/// 500 trips reversed, and a watermark record every 2,000 trips at the largest dropoff so far minus one minute
/// (so some trips are late).
/// Returns the number of trips written.
pub fn write_real_trip_copies(path: &Path, copies: u64) -> u64 {
    use std::io::{BufRead, Write};
    use taxiflow::connectors::file::{open_decoded, trim_line};
    use taxiflow::dataflows::jobs::taxi::formats::{csv_line::CsvLine, taxi_ride_csv};
    use taxiflow::dataflows::Decoded;
    let mut reader = open_decoded(&root().join("data/nyc-taxi-rides-2013-01-01.csv.gz")).unwrap();
    let (mut csv, mut line, mut trips) = (CsvLine::new(), Vec::new(), Vec::new());
    while {
        line.clear();
        reader.read_until(b'\n', &mut line).unwrap() > 0
    } {
        if let Ok(Decoded::Record(t)) = taxi_ride_csv::parse(trim_line(&line), &mut csv) {
            trips.push(t);
        }
    }
    trips.sort_by_key(|t| t.dropoff_ms);
    for run in trips.chunks_mut(500) {
        run.reverse();
    }
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let (mut n, mut max_dropoff) = (0u64, 0u64);
    for copy in 0..copies {
        let shift = copy * 86_400_000;
        for t in &trips {
            let mut t = *t;
            t.pickup_ms += shift;
            t.dropoff_ms += shift;
            t.trip_id = Some(n as i64);
            max_dropoff = max_dropoff.max(t.dropoff_ms);
            writeln!(w, "{}", json_line(&Event::Trip(t))).unwrap();
            n += 1;
            if n % 2000 == 0 {
                writeln!(w, "{}", json_line(&Event::Watermark(max_dropoff - 60_000))).unwrap();
            }
        }
    }
    writeln!(w, "{}", json_line(&Event::Watermark(max_dropoff))).unwrap();
    n
}
