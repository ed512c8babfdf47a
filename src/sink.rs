//! Sinks for result documents and dead letters: `file://DIR` (the default, `out/`), `stdout`,
//! `kafka://BROKER/TOPIC` and `es+https://HOST` (Elasticsearch/OpenSearch, see [`crate::elasticsearch`]).
//!
//! Documents and dead letters are serialized to JSON on the worker that produced them, then routed to worker 0
//! of process 0, which writes them. A time's documents are written when the sink's input frontier passes that
//! time, sorted by (`timestamp`, `_id`), so the files do not depend on the number of workers. Dead letters are
//! written as they arrive (sorted within each batch), so their order can vary between runs.
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

/// The writer of worker 0. The first write error is kept, the job is stopped (see [`crate::run::STOP`]) and the
/// error reported at the end of the run (the job then exits non-zero); nothing after it is claimed as written.
pub struct SinkWriter {
    target: Target,
    error: Option<String>,
    written: Written,
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
    /// Opens the sink: creates `DIR` and truncates the three files; connects to Kafka; connects to
    /// Elasticsearch and creates its templates and indices.
    ///
    /// # Errors
    /// `--sink`: the directory or a file cannot be created, the brokers or the cluster cannot be reached.
    pub fn open(spec: &SinkSpec) -> anyhow::Result<SinkWriter> {
        let target = match spec {
            SinkSpec::Stdout => Target::Stdout(BufWriter::new(std::io::stdout())),
            SinkSpec::Kafka(topic) => Target::Kafka(crate::kafka::sink::KafkaSink::open(topic, std::time::Duration::from_secs(30))?),
            SinkSpec::Elasticsearch(options) => Target::Elasticsearch(Box::new(crate::elasticsearch::EsSink::open(options)?)),
            SinkSpec::File(dir) => {
                std::fs::create_dir_all(dir).with_context(|| format!("--sink: cannot create directory {}", dir.display()))?;
                let mut files = Vec::new();
                for index in [taxiflow_dataflows::documents::PICKUP_COUNT_INDEX, taxiflow_dataflows::documents::TRIP_DURATION_INDEX, DEAD_LETTER_INDEX] {
                    let path = dir.join(format!("{index}.jsonl"));
                    let file = File::create(&path).with_context(|| format!("--sink: cannot create {}", path.display()))?;
                    files.push((index, BufWriter::with_capacity(1 << 16, file)));
                }
                Target::Files(files)
            }
        };
        Ok(SinkWriter { target, error: None, written: Written::default() })
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

/// Serializes `stream` on the workers that produced it (in `shape`), routes the lines to worker 0 and writes
/// them there with `writer` (which only worker 0 has), releasing each timestamp's lines once the input
/// frontier has passed it (dead letters at once). The writer counts what it wrote (see [`Written`]).
pub fn write_stream<'s, R: SinkRecord>(stream: StreamVec<'s, u64, R>, name: &str, shape: Shape, writer: Option<Rc<RefCell<SinkWriter>>>) {
    let lines: StreamVec<'s, u64, SinkLine> = stream.unary(Pipeline, &format!("{name}.serialize"), move |_capability, _info| {
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
    });
    let mut pending: BTreeMap<u64, Vec<SinkLine>> = BTreeMap::new();
    let label = name.to_string();
    lines.sink(Exchange::new(|_: &SinkLine| 0), name, move |(input, frontier)| {
        input.for_each_time(|time, batches| {
            let queue = pending.entry(*time.time()).or_default();
            for batch in batches {
                queue.append(batch);
            }
        });
        let mut released = false;
        while let Some(entry) = pending.first_entry() {
            // Documents wait until their window's time is complete; dead letters need no event-time order and
            // are written as they come (a stalled frontier must not hold them back).
            if R::INDEX != IndexName::DeadLetter && frontier.less_equal(entry.key()) {
                break;
            }
            let time = *entry.key();
            let mut records = entry.remove();
            records.sort_unstable_by(|a, b| (a.order, &a.key).cmp(&(b.order, &b.key)));
            if let Some(writer) = &writer {
                let mut w = writer.borrow_mut();
                for r in records {
                    w.write(time, r);
                }
            }
            metrics::gauge!("taxiflow_output_watermark_ms", "stream" => label.clone()).set(time as f64);
            released = true;
        }
        if released || frontier.frontier().is_empty() {
            if let Some(writer) = &writer {
                writer.borrow_mut().flush();
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
