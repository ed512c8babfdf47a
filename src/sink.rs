//! Sinks for result documents and dead letters: `file://DIR` (the default, `out/`) and `stdout`.
//!
//! Documents and dead letters are serialized to JSON on the worker that produced them, then routed to worker 0
//! of process 0, which writes them. A time's documents are written when the sink's input frontier passes that
//! time, sorted by (`timestamp`, `_id`), so the files do not depend on the number of workers. Dead letters are
//! written as they arrive (sorted within each batch), so their order can vary between runs.
//!
//! File layout: `DIR/pickup_count.jsonl`, `DIR/trip_duration.jsonl` (one document per line: the fields of
//! spec §4 plus `_id`) and `DIR/dead_letter.jsonl` (see [`DeadLetter`]). The files are truncated at start.
//! `stdout` prints the same lines with an `_index` field added.

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
use crate::summary::Totals;

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
}

impl std::str::FromStr for SinkSpec {
    type Err = String;
    /// Parses `file://DIR` or `stdout`.
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
        } else {
            Err(format!("unsupported sink {s:?}: expected file://DIR, stdout or kafka://BROKER/TOPIC"))
        }
    }
}

/// The writer of worker 0: files or standard output. The first write error is kept and reported at the end of
/// the run (the job then exits non-zero); nothing after it is claimed as written.
pub struct SinkWriter {
    target: Target,
    error: Option<String>,
}

enum Target {
    Files(Vec<(&'static str, BufWriter<File>)>),
    Stdout(BufWriter<std::io::Stdout>),
    Kafka(crate::kafka::sink::KafkaSink),
}

#[derive(Serialize)]
struct Indexed<'a, D: Serialize> {
    _index: &'a str,
    #[serde(flatten)]
    doc: &'a D,
}

impl SinkWriter {
    /// Opens the sink: creates `DIR` and truncates the three files.
    ///
    /// # Errors
    /// `--sink`: the directory or a file cannot be created.
    pub fn open(spec: &SinkSpec) -> anyhow::Result<SinkWriter> {
        let target = match spec {
            SinkSpec::Stdout => Target::Stdout(BufWriter::new(std::io::stdout())),
            SinkSpec::Kafka(topic) => Target::Kafka(crate::kafka::sink::KafkaSink::open(topic, std::time::Duration::from_secs(30))?),
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
        Ok(SinkWriter { target, error: None })
    }

    /// Whether records need an `_index` field (standard output and Kafka mix the indices).
    pub fn wants_index_field(spec: &SinkSpec) -> bool {
        matches!(spec, SinkSpec::Stdout | SinkSpec::Kafka(_))
    }

    /// Writes one record of `index` (a JSON value without newline, keyed by `key` where the sink has keys);
    /// returns whether it was written.
    pub fn write(&mut self, index: IndexName, key: &str, json: &str) -> bool {
        if self.error.is_some() {
            return false;
        }
        let w: &mut dyn Write = match &mut self.target {
            Target::Files(files) => {
                let (_, w) = files.iter_mut().find(|(i, _)| *i == index.as_str()).expect("every index has a file");
                w
            }
            Target::Stdout(w) => w,
            Target::Kafka(k) => {
                let result = k.send(key, json).map_err(|e| std::io::Error::other(format!("{e:#}")));
                return self.check(result);
            }
        };
        let result = w.write_all(json.as_bytes()).and_then(|_| w.write_all(b"\n"));
        self.check(result)
    }

    /// Flushes buffered lines to the files or standard output.
    pub fn flush(&mut self) {
        let result = match &mut self.target {
            Target::Files(files) => files.iter_mut().try_for_each(|(_, w)| w.flush()),
            Target::Stdout(w) => w.flush(),
            Target::Kafka(_) => Ok(()),
        };
        self.check(result);
    }

    fn check(&mut self, result: std::io::Result<()>) -> bool {
        match result {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "sink write failed");
                self.error.get_or_insert_with(|| e.to_string());
                false
            }
        }
    }

    /// The first write error, if any.
    ///
    /// # Errors
    /// The sink failed to write; the output is incomplete.
    pub fn finish(&mut self) -> anyhow::Result<()> {
        self.flush();
        if let Target::Kafka(k) = &self.target {
            if let Err(e) = k.finish(std::time::Duration::from_secs(60)) {
                self.error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
        if let Some(e) = &self.error {
            bail!("--sink: write failed, output is incomplete: {e}");
        }
        Ok(())
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
    /// The record's key: a document's `_id`, a dead letter's `source@offset`.
    fn key(&self) -> String;
}

impl SinkRecord for taxiflow_dataflows::PickupCount {
    const INDEX: IndexName = IndexName::PickupCount;
    fn order(&self) -> i64 {
        Document::timestamp(self)
    }
    fn key(&self) -> String {
        self.id.clone()
    }
}

impl SinkRecord for taxiflow_dataflows::TripDuration {
    const INDEX: IndexName = IndexName::TripDuration;
    fn order(&self) -> i64 {
        Document::timestamp(self)
    }
    fn key(&self) -> String {
        self.id.clone()
    }
}

impl SinkRecord for DeadLetter {
    const INDEX: IndexName = IndexName::DeadLetter;
    fn order(&self) -> i64 {
        self.offset as i64
    }
    fn key(&self) -> String {
        format!("{}@{}", self.source, self.offset)
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
}

/// Serializes `stream` on the workers that produced it, routes the lines to worker 0 and writes them there
/// with `writer` (which only worker 0 has), releasing each timestamp's lines once the input frontier has passed
/// it. With `with_index`, each line gets an `_index` field. Written records are counted into `totals`.
pub fn write_stream<'s, R: SinkRecord>(
    stream: StreamVec<'s, u64, R>,
    name: &str,
    with_index: bool,
    writer: Option<Rc<RefCell<SinkWriter>>>,
    totals: Rc<RefCell<Totals>>,
) {
    let lines: StreamVec<'s, u64, SinkLine> = stream.unary(Pipeline, &format!("{name}.serialize"), move |_capability, _info| {
        move |input, output| {
            input.for_each_time(|time, batches| {
                let mut session = output.session(&time);
                for batch in batches {
                    for record in batch.drain(..) {
                        let json = if with_index {
                            serde_json::to_string(&Indexed { _index: R::INDEX.as_str(), doc: &record })
                        } else {
                            serde_json::to_string(&record)
                        };
                        session.give(SinkLine { index: R::INDEX, order: record.order(), key: record.key(), json: json.expect("documents serialize") });
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
                let mut written = 0u64;
                for r in &records {
                    if w.write(r.index, &r.key, &r.json) {
                        written += 1;
                    }
                }
                let mut t = totals.borrow_mut();
                match R::INDEX {
                    IndexName::PickupCount => t.pickup_count_documents += written,
                    IndexName::TripDuration => t.trip_duration_documents += written,
                    IndexName::DeadLetter => t.dead_letters += written,
                }
                metrics::counter!("taxiflow_documents_out_total", "index" => label.clone()).increment(written);
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
        assert!("kinesis://s".parse::<SinkSpec>().unwrap_err().contains("file://DIR, stdout or kafka://BROKER/TOPIC"));
        assert!("kafka://b:1/t".parse::<SinkSpec>().is_ok());
        assert!("kafka://b/t".parse::<SinkSpec>().unwrap_err().contains("--sink"));
    }
}
