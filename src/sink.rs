//! Sinks for result documents and dead letters: `file://DIR` (the default, `out/`), `stdout`,
//! `kafka://BROKER/TOPIC` and `es+https://HOST` (Elasticsearch/OpenSearch, see [`crate::elasticsearch`]).
//!
//! Documents and dead letters are serialized to JSON on the worker that produced them, then routed to worker 0
//! of process 0, which writes them ([`sink`]). A time's documents are written when the sink's input frontier
//! passes that event time, sorted by (`timestamp`, `_id`), so the files do not depend on the number of workers.
//! Dead letters are written as they arrive (sorted within each batch), so their order can vary between runs.
//! With checkpoints, the same operator commits each epoch after the sink acknowledged it, and a file sink writes
//! an epoch's lines only then ([`Release::Epoch`]; see [`crate::checkpoint`]).
//!
//! File layout: `DIR/pickup_count.jsonl`, `DIR/trip_duration.jsonl` (one document per line: the fields of
//! spec §4 plus `_id`) and `DIR/dead_letter.jsonl` (see [`DeadLetter`]). The files are truncated at start.
//! `stdout` prints the same lines with an `_index` field added. The Elasticsearch sink indexes each document
//! under its `_id` (the source then has no `_id` field) and dead letters into the `dead_letter` index.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::rc::Rc;

use anyhow::{bail, Context};
use serde::Serialize;
use taxiflow_dataflows::documents::Document;
use taxiflow_dataflows::epoch::{completed_epoch, event_time_passed, CheckpointPart, Time};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;

use crate::dead_letter::DeadLetter;

/// Name of the dead-letter file stem / index.
pub const DEAD_LETTER_INDEX: &str = "dead_letter";

/// Where results go (`--sink`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkSpec {
    /// `file://DIR`: one JSON-lines file per index in `DIR`.
    File(PathBuf),
    /// `stdout`: JSON lines on standard output.
    Stdout,
    /// `kafka://BROKER/TOPIC`: JSON values keyed by `_id` (see `kafka::sink`).
    Kafka(crate::kafka::KafkaTopic),
    /// `es+https://HOST[:PORT]` or `es+http://…`: bulk-indexed into Elasticsearch/OpenSearch.
    Elasticsearch(Box<crate::elasticsearch::EsOptions>),
}

impl std::str::FromStr for SinkSpec {
    type Err = String;
    /// Parses `file://DIR`, `stdout`, `kafka://BROKER/TOPIC` or `es+http(s)://HOST[:PORT]`.
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "stdout" {
            Ok(SinkSpec::Stdout)
        } else if let Some(dir) = s.strip_prefix("file://") {
            if dir.is_empty() {
                return Err("file:// needs a directory, e.g. file://out".into());
            }
            Ok(SinkSpec::File(PathBuf::from(dir)))
        } else if s.starts_with("kafka://") {
            crate::kafka::KafkaTopic::parse(s, "--sink").map(SinkSpec::Kafka).map_err(|e| e.to_string())
        } else if s.starts_with("es+") {
            crate::elasticsearch::EsOptions::parse(s).map(|o| SinkSpec::Elasticsearch(Box::new(o))).map_err(|e| e.to_string())
        } else {
            Err(format!("unsupported sink {s:?}: expected file://DIR, stdout, kafka://BROKER/TOPIC or es+https://HOST[:PORT]"))
        }
    }
}

impl SinkSpec {
    /// Where documents go, without credentials: `file://DIR`, `stdout`, `kafka://BROKERS/TOPIC`,
    /// `es+SCHEME://HOST:PORT` with the index prefix. Part of a checkpoint's job identity: a restored job must
    /// write where the checkpointed one wrote, or documents emitted before the checkpoint would be missing.
    pub fn describe(&self) -> String {
        match self {
            SinkSpec::File(dir) => format!("file://{}", dir.display()),
            SinkSpec::Stdout => "stdout".to_string(),
            SinkSpec::Kafka(t) => t.url(),
            SinkSpec::Elasticsearch(o) => {
                format!("es+{}://{}:{} prefix {:?}", o.url.scheme(), o.url.host_str().unwrap_or_default(), o.url.port_or_known_default().unwrap_or_default(), o.index_prefix)
            }
        }
    }
}

/// The writer of worker 0. The first write error is kept, the job is stopped (see [`crate::run::STOP`]) and the
/// error reported at the end of the run (the job then exits non-zero); nothing after it is claimed as written.
pub struct SinkWriter {
    target: Target,
    error: Option<String>,
    written: Written,
    /// The file sink's directory.
    dir: Option<String>,
}

enum Target {
    Files(Vec<(&'static str, BufWriter<File>)>),
    Stdout(BufWriter<std::io::Stdout>),
    Kafka(crate::kafka::sink::KafkaSink),
    Elasticsearch(Box<crate::elasticsearch::EsSink>),
}

/// Records written per output: for files and standard output when written, for Kafka when handed to the
/// producer (delivery failures fail the run), for Elasticsearch when the cluster acknowledged them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// `pickup_count` documents.
    pub pickup_count: u64,
    /// `trip_duration` documents.
    pub trip_duration: u64,
    /// Dead letters.
    pub dead_letters: u64,
}

impl Written {
    /// Counts one record of `index`.
    pub fn add(&mut self, index: IndexName) {
        match index {
            IndexName::PickupCount => self.pickup_count += 1,
            IndexName::TripDuration => self.trip_duration += 1,
            IndexName::DeadLetter => self.dead_letters += 1,
        }
    }
}

/// How a record is serialized for a sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// The record's fields (documents with `_id`): files.
    Plain,
    /// With an `_index` field added: standard output and Kafka mix the outputs.
    WithIndex,
    /// Without `_id`, which Elasticsearch takes from the bulk action, not from the source.
    Source,
}

#[derive(Serialize)]
struct Indexed<'a, D: Serialize> {
    _index: &'a str,
    #[serde(flatten)]
    doc: &'a D,
}

impl SinkWriter {
    /// Opens the sink: creates `DIR` and truncates the three files (or, restoring a checkpoint, cuts them back
    /// to the lengths `restore` recorded); connects to Kafka; connects to Elasticsearch and creates its
    /// templates and indices.
    ///
    /// # Errors
    /// `--sink`: the directory or a file cannot be created, a file is shorter than the checkpoint says (it was
    /// changed outside the job), the checkpoint's file sink was another directory, the brokers or the cluster
    /// cannot be reached.
    pub fn open(spec: &SinkSpec, restore: Option<&crate::checkpoint::SinkPosition>) -> anyhow::Result<SinkWriter> {
        let mut dir_name = None;
        let target = match spec {
            SinkSpec::Stdout => Target::Stdout(BufWriter::new(std::io::stdout())),
            SinkSpec::Kafka(topic) => Target::Kafka(crate::kafka::sink::KafkaSink::open(topic, std::time::Duration::from_secs(30))?),
            SinkSpec::Elasticsearch(options) => Target::Elasticsearch(Box::new(crate::elasticsearch::EsSink::open(options)?)),
            SinkSpec::File(dir) => {
                std::fs::create_dir_all(dir).with_context(|| format!("--sink: cannot create directory {}", dir.display()))?;
                let name = dir.display().to_string();
                let lengths = match restore.and_then(|r| r.files.as_ref()) {
                    Some((restored_dir, lengths)) if *restored_dir == name => Some(lengths),
                    Some((restored_dir, _)) => bail!("--sink file://{name}: the checkpoint was taken with --sink file://{restored_dir}; use that sink or --checkpoint-reset"),
                    None => None,
                };
                let mut files = Vec::new();
                for index in [taxiflow_dataflows::documents::PICKUP_COUNT_INDEX, taxiflow_dataflows::documents::TRIP_DURATION_INDEX, DEAD_LETTER_INDEX] {
                    let path = dir.join(format!("{index}.jsonl"));
                    let file = match lengths {
                        None => File::create(&path).with_context(|| format!("--sink: cannot create {}", path.display()))?,
                        Some(lengths) => {
                            let keep = lengths.get(index).copied().unwrap_or(0);
                            let file = std::fs::OpenOptions::new().create(true).append(true).open(&path).with_context(|| format!("--sink: cannot open {}", path.display()))?;
                            let len = file.metadata()?.len();
                            if len < keep {
                                bail!("--sink: {} has {len} bytes but the checkpoint acknowledged {keep}: it was changed outside the job", path.display());
                            }
                            file.set_len(keep).with_context(|| format!("--sink: cannot truncate {}", path.display()))?;
                            tracing::info!(file = %path.display(), bytes = keep, dropped = len - keep, "file sink cut back to the checkpoint");
                            file
                        }
                    };
                    files.push((index, BufWriter::with_capacity(1 << 16, file)));
                }
                dir_name = Some(name);
                Target::Files(files)
            }
        };
        Ok(SinkWriter { target, error: None, written: Written::default(), dir: dir_name })
    }

    /// How records are serialized for this sink.
    pub fn shape(spec: &SinkSpec) -> Shape {
        match spec {
            SinkSpec::File(_) => Shape::Plain,
            SinkSpec::Stdout | SinkSpec::Kafka(_) => Shape::WithIndex,
            SinkSpec::Elasticsearch(_) => Shape::Source,
        }
    }

    /// Writes one record released at dataflow `time`; returns whether it was written (or, for Elasticsearch,
    /// handed over: it counts as written once acknowledged).
    pub fn write(&mut self, time: u64, line: SinkLine) -> bool {
        if self.error.is_some() {
            return false;
        }
        let index = line.index;
        let w: &mut dyn Write = match &mut self.target {
            Target::Files(files) => {
                let (_, w) = files.iter_mut().find(|(i, _)| *i == index.as_str()).expect("every index has a file");
                w
            }
            Target::Stdout(w) => w,
            Target::Kafka(k) => {
                let result = k.send(&line.key, &line.json).map_err(|e| std::io::Error::other(format!("{e:#}")));
                return self.check(index, result);
            }
            Target::Elasticsearch(es) => {
                let result = es.write(index, time, line.window_start, &line.key, line.json).map_err(|e| std::io::Error::other(format!("{e:#}")));
                return self.check_handed_over(result);
            }
        };
        let result = w.write_all(line.json.as_bytes()).and_then(|_| w.write_all(b"\n"));
        self.check(index, result)
    }

    /// Writes the lines released at dataflow time `time` sorted by (`order`, key), so files do not depend on
    /// the number of workers.
    pub fn write_sorted(&mut self, time: Time, mut lines: Vec<SinkLine>) {
        lines.sort_unstable_by(|a, b| (a.order, &a.key).cmp(&(b.order, &b.key)));
        for line in lines {
            self.write(time.outer, line);
        }
    }

    /// Flushes buffered lines to the files or standard output.
    pub fn flush(&mut self) {
        let result = match &mut self.target {
            Target::Files(files) => files.iter_mut().try_for_each(|(_, w)| w.flush()),
            Target::Stdout(w) => w.flush(),
            // The bulk timer sends what is buffered; flushing here would wait for every answer.
            Target::Kafka(_) | Target::Elasticsearch(_) => Ok(()),
        };
        self.check_handed_over(result);
    }

    fn check(&mut self, index: IndexName, result: std::io::Result<()>) -> bool {
        let ok = self.check_handed_over(result);
        if ok {
            self.written.add(index);
            metrics::counter!("taxiflow_documents_out_total", "index" => index.as_str()).increment(1);
        }
        ok
    }

    fn check_handed_over(&mut self, result: std::io::Result<()>) -> bool {
        match result {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "sink write failed; stopping the job");
                self.error.get_or_insert_with(|| e.to_string());
                crate::run::STOP.store(true, std::sync::atomic::Ordering::Relaxed);
                false
            }
        }
    }

    /// Makes everything written so far durable and acknowledged, for a checkpoint: files are flushed and synced
    /// (`fsync`) and their lengths returned; Kafka waits for every delivery, Elasticsearch for the answer of
    /// every bulk request; standard output is flushed.
    ///
    /// # Errors
    /// A write, sync or delivery failed (the sink's first error).
    pub fn sync(&mut self) -> anyhow::Result<crate::checkpoint::SinkPosition> {
        self.flush();
        let mut position = crate::checkpoint::SinkPosition::default();
        match &mut self.target {
            Target::Files(files) => {
                // Flushed above.
                let mut lengths = BTreeMap::new();
                for (index, w) in files.iter() {
                    w.get_ref().sync_data()?;
                    lengths.insert(index.to_string(), w.get_ref().metadata()?.len());
                }
                position.files = Some((self.dir.clone().unwrap_or_default(), lengths));
            }
            Target::Stdout(w) => w.flush()?,
            Target::Kafka(k) => k.finish(std::time::Duration::from_secs(60))?,
            Target::Elasticsearch(es) => es.flush()?,
        }
        if let Some(e) = &self.error {
            bail!("{e}");
        }
        Ok(position)
    }

    /// Records a failure that ends the job (as a write error does).
    pub fn fail(&mut self, error: String) {
        self.check_handed_over(Err(std::io::Error::other(error)));
    }

    /// Flushes and closes the sink (Elasticsearch: sends everything buffered and waits for the answers) and
    /// returns what was written.
    ///
    /// # Errors
    /// The sink failed to write; the output is incomplete.
    pub fn finish(&mut self) -> anyhow::Result<Written> {
        self.flush();
        match &mut self.target {
            Target::Kafka(k) => {
                if let Err(e) = k.finish(std::time::Duration::from_secs(60)) {
                    self.error.get_or_insert_with(|| format!("{e:#}"));
                }
            }
            Target::Elasticsearch(es) => match es.finish() {
                Ok(acknowledged) => self.written = acknowledged,
                // The sink's own first error, with the number of documents left unacknowledged.
                Err(e) => self.error = Some(format!("{e:#}")),
            },
            Target::Files(_) | Target::Stdout(_) => {}
        }
        if let Some(e) = &self.error {
            bail!("--sink: write failed, output is incomplete: {e}");
        }
        Ok(self.written)
    }
}

/// The three outputs of the sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum IndexName {
    /// `pickup_count` documents.
    PickupCount,
    /// `trip_duration` documents.
    TripDuration,
    /// Dead letters.
    DeadLetter,
}

impl IndexName {
    /// The index name and file stem.
    pub fn as_str(self) -> &'static str {
        match self {
            IndexName::PickupCount => taxiflow_dataflows::documents::PICKUP_COUNT_INDEX,
            IndexName::TripDuration => taxiflow_dataflows::documents::TRIP_DURATION_INDEX,
            IndexName::DeadLetter => DEAD_LETTER_INDEX,
        }
    }
}

/// Something the sink writes: result documents and dead letters.
pub trait SinkRecord: Serialize + 'static {
    /// The output it belongs to.
    const INDEX: IndexName;
    /// Sort key within one timestamp of the stream, for deterministic files: a number, then [`Self::key`].
    fn order(&self) -> i64;
    /// The record's key: a document's `_id`, a dead letter's [`DeadLetter::key`].
    fn key(&self) -> String;
    /// Start of the record's window, ms since the Unix epoch (documents only).
    fn window_start(&self) -> Option<i64> {
        None
    }
}

/// Implements [`SinkRecord`] for a result document type: sorted by its `timestamp`, keyed by its `_id`, its
/// window start read from the `_id`.
macro_rules! document_record {
    ($document:ty, $index:expr) => {
        impl SinkRecord for $document {
            const INDEX: IndexName = $index;
            fn order(&self) -> i64 {
                Document::timestamp(self)
            }
            fn key(&self) -> String {
                Document::id(self).to_string()
            }
            fn window_start(&self) -> Option<i64> {
                taxiflow_dataflows::documents::window_start_of_id(Document::id(self))
            }
        }
    };
}

document_record!(taxiflow_dataflows::PickupCount, IndexName::PickupCount);
document_record!(taxiflow_dataflows::TripDuration, IndexName::TripDuration);

impl SinkRecord for DeadLetter {
    const INDEX: IndexName = IndexName::DeadLetter;
    fn order(&self) -> i64 {
        self.offset as i64
    }
    fn key(&self) -> String {
        DeadLetter::key(self)
    }
}

/// A record serialized for the sink: its output, its sort key and its JSON line.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct SinkLine {
    /// Output.
    pub index: IndexName,
    /// Sort position within a timestamp: `(order, key)`.
    pub order: i64,
    /// The record's key (`_id`, or `source@offset`).
    pub key: String,
    /// The JSON line, without newline.
    pub json: String,
    /// Start of the document's window (ms since the Unix epoch), for date-suffixed index names.
    pub window_start: Option<i64>,
}

/// Serializes `stream` on the workers that produced it, in `shape`, for [`sink`].
pub fn serialize<'s, R: SinkRecord>(stream: StreamVec<'s, Time, R>, name: &str, shape: Shape) -> StreamVec<'s, Time, SinkLine> {
    stream.unary(Pipeline, &format!("{name}.serialize"), move |_capability, _info| {
        move |input, output| {
            input.for_each_time(|time, batches| {
                let mut session = output.session(&time);
                for batch in batches {
                    for record in batch.drain(..) {
                        let json = match shape {
                            Shape::Plain => serde_json::to_string(&record),
                            Shape::WithIndex => serde_json::to_string(&Indexed { _index: R::INDEX.as_str(), doc: &record }),
                            Shape::Source => serde_json::to_value(&record).and_then(|mut v| {
                                if let Some(fields) = v.as_object_mut() {
                                    fields.remove("_id");
                                }
                                serde_json::to_string(&v)
                            }),
                        };
                        session.give(SinkLine {
                            index: R::INDEX,
                            order: record.order(),
                            key: record.key(),
                            json: json.expect("documents serialize"),
                            window_start: record.window_start(),
                        });
                    }
                }
            });
        }
    })
}

/// When the sink releases documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// A time's documents once the event-time frontier has passed it, dead letters at once (no checkpoints,
    /// or a sink that overwrites by `_id`: Elasticsearch, Kafka, standard output).
    EventTime,
    /// Everything of an epoch once the epoch is complete, i.e. at each checkpoint (a file sink with
    /// checkpoints: a file cannot overwrite a line, so it only ever holds committed epochs).
    Epoch,
}

/// The sink operator, on worker 0 of process 0: writes `lines` with `writer` (which only worker 0 has) and,
/// with `checkpoints`, commits each epoch once the lines and `parts` of every worker have passed it.
///
/// Documents of one release are sorted by (event time, `timestamp`, `_id`), so files do not depend on the
/// number of workers. At a commit, every line of the epoch is written first, the writer flushed and
/// acknowledged ([`SinkWriter::sync`]), and only then the checkpoint written, so a checkpoint never claims a
/// document the sink does not have.
pub fn sink<'s>(
    lines: StreamVec<'s, Time, SinkLine>,
    parts: StreamVec<'s, Time, CheckpointPart>,
    release: Release,
    writer: Option<Rc<RefCell<SinkWriter>>>,
    mut checkpoints: Option<crate::checkpoint::writer::CheckpointWriter>,
) {
    let mut documents: BTreeMap<Time, Vec<SinkLine>> = BTreeMap::new();
    let mut dead_letters: BTreeMap<Time, Vec<SinkLine>> = BTreeMap::new();
    lines.binary_frontier::<_, CapacityContainerBuilder<Vec<()>>, _, _, _, _>(parts, Exchange::new(|_: &SinkLine| 0), Exchange::new(|_: &CheckpointPart| 0), "sink", move |_capability, _info| {
        move |(lines, lines_frontier), (parts, parts_frontier), _output| {
            lines.for_each_time(|time, batches| {
                for batch in batches {
                    for line in batch.drain(..) {
                        let pending = if line.index == IndexName::DeadLetter { &mut dead_letters } else { &mut documents };
                        pending.entry(*time.time()).or_default().push(line);
                    }
                }
            });
            parts.for_each_time(|time, batches| {
                for batch in batches {
                    for part in batch.drain(..) {
                        if let Some(c) = checkpoints.as_mut() {
                            c.accept(time.time().inner, part);
                        }
                    }
                }
            });
            let (lines_frontier, parts_frontier) = (lines_frontier.frontier(), parts_frontier.frontier());
            let finished = lines_frontier.is_empty() && parts_frontier.is_empty();
            // The largest epoch whose lines and parts have all arrived (checkpoints only).
            let completed = checkpoints.as_ref().and_then(|c| {
                let both = completed_epoch(lines_frontier)?.min(completed_epoch(parts_frontier)?);
                let epoch = if finished { c.newest_epoch() } else { both };
                (epoch > c.committed()).then_some(epoch)
            });
            let releasable = |t: &Time| match release {
                Release::EventTime => event_time_passed(lines_frontier, t.outer) || completed.is_some_and(|e| t.inner <= e),
                Release::Epoch => finished || completed.is_some_and(|e| t.inner <= e),
            };
            // Dead letters need no event-time order: without epoch release they are written as they come (a
            // stalled frontier must not hold them back).
            let times: Vec<Time> = documents.keys().copied().filter(releasable).collect();
            let letters: Vec<Time> = dead_letters.keys().copied().filter(|t| release == Release::EventTime || releasable(t)).collect();
            let mut released = !times.is_empty() || !letters.is_empty();
            if let Some(writer) = &writer {
                let mut w = writer.borrow_mut();
                for t in &times {
                    w.write_sorted(*t, documents.remove(t).unwrap_or_default());
                }
                if let Some(t) = times.last() {
                    metrics::gauge!("taxiflow_output_watermark_ms").set(t.outer as f64);
                }
                for t in &letters {
                    w.write_sorted(*t, dead_letters.remove(t).unwrap_or_default());
                }
                if let (Some(epoch), Some(c)) = (completed, checkpoints.as_mut()) {
                    match w.sync().and_then(|position| c.commit(epoch, position)) {
                        Ok(()) => {}
                        Err(e) => w.fail(format!("checkpoint {epoch} failed: {e:#}")),
                    }
                    released = false;
                }
                if released || finished {
                    w.flush();
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_specs() {
        assert_eq!("stdout".parse::<SinkSpec>(), Ok(SinkSpec::Stdout));
        assert_eq!("file://out".parse::<SinkSpec>(), Ok(SinkSpec::File("out".into())));
        assert!("file://".parse::<SinkSpec>().is_err());
        assert!("kinesis://s".parse::<SinkSpec>().unwrap_err().contains("file://DIR, stdout, kafka://BROKER/TOPIC or es+https://HOST[:PORT]"));
        assert!(matches!("es+http://127.0.0.1:9200".parse::<SinkSpec>(), Ok(SinkSpec::Elasticsearch(_))));
        assert!("es+ftp://h".parse::<SinkSpec>().is_err());
        assert!("kafka://b:1/t".parse::<SinkSpec>().is_ok());
        assert!("kafka://b/t".parse::<SinkSpec>().unwrap_err().contains("--sink"));
    }
}
