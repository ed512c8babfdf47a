//! `taxiflow ship` (pageviews spec §5): Flume's TAILDIR source with its Kafka sink. It follows every file that
//! matches a glob and sends each complete line (up to `\n`, without it) as one Kafka message, keyed by the file's
//! path, with the headers `host` (this machine's name) and `file` (the path).
//!
//! # Positions
//! Per file (device, inode) it keeps the offset up to which every line was **acknowledged** by the broker, and
//! writes them to the position file (JSON, written to a temporary file, fsynced, renamed) every
//! `--write-pos-interval` and at a stop. A restart resumes each file there; a file without a recorded position
//! starts at `--start-at` (beginning or end). A recorded inode that now holds another file (its first bytes differ
//! from the recorded ones: the inode was reused) starts over. So no line is lost, and a line is sent twice only if
//! the shipper dies between an acknowledgement and the next position write (the producer is idempotent, so the
//! broker's own retries never duplicate).
//!
//! # Rotation
//! A file is read through the handle opened when it was first seen, so a file renamed away (logrotate's default)
//! is read to its end before it is dropped, and the new file at the path is followed from its start. A file that
//! became shorter than its offset was truncated (`copytruncate`): it is read again from 0. A partial last line is
//! kept until its `\n` arrives; the partial last line of a file renamed away is sent once the file is dropped.
//!
//! # Monitoring
//! `taxiflow_ship_lines_total`, `taxiflow_ship_bytes_total`, `taxiflow_ship_lag_bytes{file}` (bytes of the file not
//! acknowledged yet), a progress line per `--write-pos-interval` on `RUST_LOG=info`.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::client::ClientContext;
use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use serde::{Deserialize, Serialize};

use crate::connectors::kafka::KafkaTopic;
use crate::runtime::shutdown::Shutdown;

/// Bytes of a file's start that identify it (its inode could be reused by another file).
const HEAD_BYTES: usize = 64;
/// Bytes read from a file per poll and file, so that one busy file does not starve the others.
const READ_CHUNK: usize = 1 << 20;

/// Where a file without a recorded position starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StartAt {
    /// At its first byte.
    Beginning,
    /// At its current end: only lines appended from now on.
    End,
}

/// What `taxiflow ship` is given.
#[derive(Clone, Debug)]
pub struct ShipOptions {
    /// `--from`: the glob of the files to follow.
    pub from: String,
    /// `--to`: the topic.
    pub to: KafkaTopic,
    /// `--position-file`.
    pub position_file: PathBuf,
    /// `--start-at`.
    pub start_at: StartAt,
    /// `--poll-interval`: how often the glob and the files are looked at.
    pub poll_interval: Duration,
    /// `--write-pos-interval`.
    pub write_pos_interval: Duration,
    /// `--exit-when-done`: stop once every matched file is read to its end and acknowledged (bounded use, tests).
    pub exit_when_done: bool,
}

/// One recorded position (a line of the position file's JSON array).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The path the file had when the position was written.
    pub path: String,
    /// Its device number.
    pub dev: u64,
    /// Its inode number.
    pub inode: u64,
    /// Every line before this byte offset was acknowledged.
    pub offset: u64,
    /// Its first bytes (up to 64), hex.
    pub head: String,
}

/// A followed file.
struct Tailed {
    path: PathBuf,
    file: File,
    dev: u64,
    inode: u64,
    head: Vec<u8>,
    /// Read (and sent, or kept in `partial`) up to here.
    read: u64,
    /// A line without its `\n` yet, starting at `read - partial.len()`.
    partial: Vec<u8>,
    /// End offsets of lines sent and not acknowledged yet, in order.
    in_flight: std::collections::VecDeque<u64>,
    /// End offsets acknowledged out of order, waiting for earlier ones.
    acked_ahead: std::collections::BTreeSet<u64>,
    /// Every line before this offset was acknowledged.
    acked: u64,
    /// The path no longer leads to this file (renamed away or deleted).
    gone: bool,
    /// Counts truncations: acknowledgements of lines sent before the last one are ignored.
    generation: u64,
}

impl Tailed {
    fn ack(&mut self, end: u64, generation: u64) {
        if generation != self.generation {
            return;
        }
        self.acked_ahead.insert(end);
        while let Some(&front) = self.in_flight.front() {
            if !self.acked_ahead.remove(&front) {
                break;
            }
            self.in_flight.pop_front();
            self.acked = front;
        }
    }

    fn position(&self) -> Position {
        Position { path: self.path.display().to_string(), dev: self.dev, inode: self.inode, offset: self.acked, head: hex(&self.head) }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A delivery report: which file (its id), the end offset of the line and the file's generation.
type Report = (u64, u64, u64, Result<(), String>);

/// Collects delivery reports for the main loop.
struct Reports(Arc<Mutex<Vec<Report>>>);

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<(u64, u64, u64)>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        let (id, end, generation) = *opaque;
        let outcome = match result {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(e.to_string()),
        };
        self.0.lock().expect("reports lock").push((id, end, generation, outcome));
    }
}

/// Reads the position file (absent: no positions).
///
/// # Errors
/// `--position-file`: unreadable or not a position file.
pub fn read_positions(path: &Path) -> anyhow::Result<Vec<Position>> {
    match std::fs::read(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("--position-file {}: cannot be read", path.display())),
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| format!("--position-file {}: not a position file (a JSON array of positions)", path.display())),
    }
}

/// Writes `positions` to `path` atomically and durably (temporary file, fsync, rename, fsync of the directory).
fn write_positions(path: &Path, positions: &[Position]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).with_context(|| format!("--position-file: cannot write {}", tmp.display()))?;
    f.write_all(&serde_json::to_vec_pretty(positions).expect("positions serialize"))?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Runs the shipper until `shutdown` is requested (or, with `exit_when_done`, every file is shipped).
///
/// # Errors
/// A bad glob or position file, a broker that cannot be reached, a line the broker refused after its retries
/// (the positions stay before it), or a file that cannot be read.
pub fn ship(options: &ShipOptions, shutdown: &Shutdown) -> anyhow::Result<ShipReport> {
    glob::Pattern::new(&options.from).with_context(|| format!("--from {:?}: not a glob pattern", options.from))?;
    let mut recorded: HashMap<(u64, u64), Position> = read_positions(&options.position_file)?.into_iter().map(|p| ((p.dev, p.inode), p)).collect();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let producer: BaseProducer<Reports> = options
        .to
        .client_config_with(&[("enable.idempotence", "true"), ("linger.ms", "5"), ("compression.type", "lz4")])
        .create_with_context(Reports(reports.clone()))
        .with_context(|| format!("--to {}: cannot create a producer", options.to.url()))?;
    producer.client().fetch_metadata(Some(&options.to.topic), Duration::from_secs(30)).with_context(|| format!("--to {}: the brokers do not answer", options.to.url()))?;
    let host = hostname::get().map(|h| h.to_string_lossy().into_owned()).unwrap_or_else(|_| "unknown".to_string());
    let mut files: BTreeMap<u64, Tailed> = BTreeMap::new();
    let mut next_id = 0u64;
    let mut report = ShipReport::default();
    let mut last_write = Instant::now();
    let lines_total = metrics::counter!("taxiflow_ship_lines_total");
    let bytes_total = metrics::counter!("taxiflow_ship_bytes_total");
    tracing::info!(from = %options.from, to = %options.to.url(), positions = recorded.len(), "shipping");
    loop {
        let stopping = shutdown.requested();
        // 1. The files the glob matches now.
        let mut seen: HashMap<(u64, u64), PathBuf> = HashMap::new();
        for entry in glob::glob(&options.from).expect("checked above").flatten() {
            if let Ok(meta) = std::fs::metadata(&entry) {
                if meta.is_file() {
                    seen.insert((meta.dev(), meta.ino()), entry);
                }
            }
        }
        for t in files.values_mut() {
            match seen.remove(&(t.dev, t.inode)) {
                Some(path) => {
                    t.path = path;
                    t.gone = false;
                }
                None => t.gone = true,
            }
        }
        for ((dev, inode), path) in seen {
            let Ok(mut file) = File::open(&path) else { continue };
            let mut head = vec![0u8; HEAD_BYTES];
            let n = read_up_to(&mut file, &mut head)?;
            head.truncate(n);
            let size = file.metadata()?.len();
            let start = match recorded.remove(&(dev, inode)) {
                Some(p) if p.head.starts_with(&hex(&head)) || hex(&head).starts_with(&p.head) => p.offset,
                Some(p) => {
                    tracing::info!(file = %path.display(), recorded = %p.path, "the recorded inode holds another file now: starting over");
                    0
                }
                None => match options.start_at {
                    StartAt::Beginning => 0,
                    StartAt::End => size,
                },
            };
            tracing::info!(file = %path.display(), offset = start, "following");
            files.insert(next_id, Tailed { path, file, dev, inode, head, read: start, partial: Vec::new(), in_flight: Default::default(), acked_ahead: Default::default(), acked: start, gone: false, generation: 0 });
            next_id += 1;
        }
        // 2. New lines of every file.
        let mut idle = true;
        for (&id, t) in files.iter_mut() {
            let size = t.file.metadata()?.len();
            if size < t.read {
                tracing::warn!(file = %t.path.display(), size, offset = t.read, "file truncated: reading it again from the start");
                t.read = 0;
                t.partial.clear();
                t.in_flight.clear();
                t.acked_ahead.clear();
                t.acked = 0;
                t.generation += 1;
            }
            if size == t.read {
                continue;
            }
            idle = false;
            t.file.seek(SeekFrom::Start(t.read))?;
            let mut buf = vec![0u8; (size - t.read).min(READ_CHUNK as u64) as usize];
            let n = read_up_to(&mut t.file, &mut buf)?;
            buf.truncate(n);
            let mut line_start = t.read - t.partial.len() as u64;
            let mut rest: &[u8] = &buf;
            while let Some(nl) = memchr::memchr(b'\n', rest) {
                let mut line = std::mem::take(&mut t.partial);
                line.extend_from_slice(&rest[..nl]);
                let end = line_start + line.len() as u64 + 1;
                send(&producer, &options.to.topic, &t.path, &host, &line, (id, end, t.generation))?;
                t.in_flight.push_back(end);
                lines_total.increment(1);
                bytes_total.increment(line.len() as u64 + 1);
                report.lines += 1;
                line_start = end;
                rest = &rest[nl + 1..];
            }
            t.partial.extend_from_slice(rest);
            t.read += n as u64;
        }
        // 3. Acknowledgements.
        producer.poll(Duration::ZERO);
        take_reports(&reports, &mut files, &options.to)?;
        // 4. Files renamed away, read to their end and acknowledged, are dropped (their partial last line sent).
        let done: Vec<u64> = files.iter().filter(|(_, t)| t.gone && t.in_flight.is_empty() && t.file.metadata().map(|m| m.len() == t.read).unwrap_or(true)).map(|(&id, _)| id).collect();
        for id in done {
            let mut t = files.remove(&id).expect("listed");
            if !t.partial.is_empty() {
                let end = t.read;
                send(&producer, &options.to.topic, &t.path, &host, &t.partial, (id, end, t.generation))?;
                producer.flush(Duration::from_secs(30)).context("--to: flushing the last line of a rotated file")?;
                t.partial.clear();
                report.lines += 1;
            }
            tracing::info!(file = %t.path.display(), offset = t.read, "rotated away and shipped: no longer followed");
        }
        for t in files.values() {
            let lag = t.file.metadata().map(|m| m.len().saturating_sub(t.acked)).unwrap_or(0);
            metrics::gauge!("taxiflow_ship_lag_bytes", "file" => t.path.display().to_string()).set(lag as f64);
        }
        let all_acked = files.values().all(|t| t.in_flight.is_empty());
        let finished = options.exit_when_done && idle && all_acked;
        if stopping || finished || last_write.elapsed() >= options.write_pos_interval {
            if stopping || finished {
                producer.flush(Duration::from_secs(30)).context("--to: flushing before the stop")?;
                producer.poll(Duration::ZERO);
                take_reports(&reports, &mut files, &options.to)?;
            }
            let mut positions: Vec<Position> = files.values().map(Tailed::position).collect();
            positions.extend(recorded.values().cloned()); // files not seen (yet) keep their positions
            write_positions(&options.position_file, &positions)?;
            let lag: u64 = files.values().map(|t| t.read - t.acked).sum();
            tracing::info!(files = files.len(), lines = report.lines, unacknowledged_bytes = lag, "positions written");
            last_write = Instant::now();
            if stopping || finished {
                return Ok(report);
            }
        }
        if idle {
            std::thread::sleep(options.poll_interval);
        }
    }
}

/// Applies the delivery reports that came in.
///
/// # Errors
/// A line the broker refused after the producer's retries.
fn take_reports(reports: &Mutex<Vec<Report>>, files: &mut BTreeMap<u64, Tailed>, to: &KafkaTopic) -> anyhow::Result<()> {
    for (id, end, generation, outcome) in std::mem::take(&mut *reports.lock().expect("reports lock")) {
        if let Err(e) = outcome {
            bail!("--to {}: a line was not delivered: {e} (positions stay before it)", to.url());
        }
        if let Some(t) = files.get_mut(&id) {
            t.ack(end, generation);
        }
    }
    Ok(())
}

/// What a run of the shipper did.
#[derive(Clone, Debug, Default)]
pub struct ShipReport {
    /// Lines sent.
    pub lines: u64,
}

fn send(producer: &BaseProducer<Reports>, topic: &str, path: &Path, host: &str, line: &[u8], opaque: (u64, u64, u64)) -> anyhow::Result<()> {
    let key = path.display().to_string();
    let headers = OwnedHeaders::new().insert(Header { key: "host", value: Some(host) }).insert(Header { key: "file", value: Some(key.as_str()) });
    let mut record = BaseRecord::with_opaque_to(topic, Box::new(opaque)).key(key.as_str()).payload(line).headers(headers);
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(5));
            }
            Err((e, _)) => bail!("--to: cannot send a line of {key}: {e}"),
        }
    }
}

/// Reads until `buf` is full or the end of the file; the number of bytes read.
fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
