//! What a job is, as the engine sees it: a record type and its decoders, the event-time rules (watermark
//! strategy and lateness rule), the outputs with their schemas, and a dataflow builder from a stream of records
//! to a stream of output [`Row`]s. Jobs do no I/O; sources, sinks, checkpoints and the runner are generic over
//! this trait (`src/runtime/` of the `taxiflow` crate).
//!
//! Adding a job: a folder under `jobs/` implementing [`Job`], and one entry in the job registry of the
//! `taxiflow` crate (`src/jobs.rs`).

use std::cell::Cell;
use std::rc::Rc;

use timely::dataflow::StreamVec;
use timely::ExchangeData;

use crate::epoch::{CheckpointPart, Recovery, Time};
use crate::output::{OutputSchema, Row};
use crate::window::TumblingWindow;

/// One decoded input record.
#[derive(Clone, Debug, PartialEq)]
pub enum Decoded<R> {
    /// A record of the job.
    Record(R),
    /// A watermark record: every record of this partition with event time ≤ this value (ms since the Unix
    /// epoch) came before it (taxi docs §1).
    Watermark(u64),
    /// A valid input line that is not a record (e.g. a TaxiRide START row): counted, not processed.
    Skip,
}

/// A record with an event time.
pub trait EventTime {
    /// Whether the record keeps where it was read ([`EventTime::set_origin`]), for dead letters the job's
    /// dataflow writes itself (the alert job's redeliveries); the source shell then gives every record it sends
    /// its origin. `false` by default: no cost per record.
    const KEEPS_ORIGIN: bool = false;

    /// The record's event time, ms since the Unix epoch.
    fn event_time(&self) -> u64;

    /// Gives the record where it was read (called only when [`EventTime::KEEPS_ORIGIN`]).
    fn set_origin(&mut self, _origin: crate::output::PackedOrigin) {}
}

/// How the bytes of one partition (a file, a Kafka message, a Kinesis record) become records.
pub trait RecordFormat: Clone + std::fmt::Debug + Send + Sync + 'static {
    /// The record type.
    type Record;
    /// Reusable scratch space of one reader (e.g. a CSV field splitter).
    type Scratch: Default + 'static;

    /// Decodes one line or message (without its line terminator).
    ///
    /// # Errors
    /// Why the record is malformed, naming the field (the dead letter's reason, after `malformed: `).
    fn decode(&self, line: &[u8], scratch: &mut Self::Scratch) -> Result<Decoded<Self::Record>, String>;

    /// Whether the first line of a file in this format is a header, not a record.
    fn has_header(&self) -> bool {
        false
    }

    /// A short name for logs (`json-lines`, `tlc-csv`).
    fn name(&self) -> &'static str;

    /// Bytes every watermark record of this format contains, so that a reader can find watermark records in a
    /// part of a file it does not read without decoding every line; `None`: the format has no watermark records.
    fn watermark_marker(&self) -> Option<&'static [u8]> {
        None
    }

    /// Whether a stream record (a Kafka message) may hold several `\n`-terminated lines, each one record (an
    /// access-log shipper's batch, pageviews spec §1); `false`: a message is one record.
    fn lines_per_message(&self) -> bool {
        false
    }
}

/// How a partition's watermark W ("no record with event time ≤ W will come") is derived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatermarkStrategy {
    /// From the partition's watermark records (the taxi job's KDA and refarch profiles); a partition without any
    /// makes progress only at its end.
    Records,
    /// After each record, W = max event time so far − bound − 1 ms, as Flink's DataStream
    /// `BoundedOutOfOrdernessWatermarks` (the taxi job's MSF profile); watermark records are ignored.
    BoundedOutOfOrderness {
        /// The bound, ms.
        bound_ms: u64,
    },
    /// After each record, W = max event time so far − delay, as Flink SQL's `WATERMARK FOR t AS t - INTERVAL`
    /// with `pipeline.auto-watermark-interval = 0` (the ticker job); watermark records are ignored.
    Delay {
        /// The delay, ms.
        delay_ms: u64,
    },
}

impl WatermarkStrategy {
    /// Whether W depends on every record before it in the partition, so that a partition must be read in order
    /// by one reader (files are then not cut into byte ranges).
    pub fn from_event_times(&self) -> bool {
        !matches!(self, WatermarkStrategy::Records)
    }
}

/// When a record is late (counted, dead-lettered with reason `late`, kept out of the results).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lateness {
    /// Record-level (the taxi and alert jobs): late iff its event time ≤ its partition's watermark.
    Record,
    /// Window-level, Flink SQL's window operator (the ticker and page-view jobs): late iff the end − 1 ms of
    /// its tumbling window ≤ its partition's watermark, i.e. its window has fired; a record behind the
    /// watermark whose window has not fired still counts.
    Window(TumblingWindow),
}

impl Lateness {
    /// The time a record with event time `t` is judged by: late iff it is ≤ the partition's watermark (or below
    /// the frontier the source has already passed). It is also an upper bound of the timestamp the record may
    /// travel at, so that the window it belongs to is complete when the frontier passes its end.
    #[inline]
    pub fn due(&self, t: u64) -> u64 {
        match self {
            Lateness::Record => t,
            Lateness::Window(w) => w.window_of(t).end_ms - 1,
        }
    }
}

/// Per-worker counters a job's dataflow adds to (e.g. the taxi job's trips outside NYC), named by
/// [`Job::counters`]; summed over all workers into the run summary.
#[derive(Clone, Debug, Default)]
pub struct Counters(Rc<Vec<Cell<u64>>>);

impl Counters {
    /// `n` counters at zero.
    pub fn new(n: usize) -> Counters {
        Counters(Rc::new((0..n).map(|_| Cell::new(0)).collect()))
    }

    /// Adds `by` to counter `index`.
    #[inline]
    pub fn add(&self, index: usize, by: u64) {
        let c = &self.0[index];
        c.set(c.get() + by);
    }

    /// The values, in order.
    pub fn values(&self) -> Vec<u64> {
        self.0.iter().map(Cell::get).collect()
    }
}

/// The streams a job's dataflow returns, timestamps (event time, epoch) as every stream (see [`crate::epoch`]).
pub struct JobStreams<'s> {
    /// Output rows of every output of the job (at the window end for window results).
    pub rows: StreamVec<'s, Time, Row>,
    /// Checkpoint parts of the job's stateful operators (empty unless `recovery.enabled`).
    pub checkpoint_parts: StreamVec<'s, Time, CheckpointPart>,
}

/// What `taxiflow jobs` says of a job.
#[derive(Clone, Debug)]
pub struct JobInfo {
    /// The job's name (`taxiflow run NAME`).
    pub name: &'static str,
    /// One line: what it computes and after which reference system.
    pub summary: &'static str,
    /// The input formats it reads.
    pub inputs: &'static str,
    /// Its defaults (windows, watermarks, profile), one line.
    pub defaults: &'static str,
    /// Where its semantics are documented in the repository (`docs/jobs/NAME.md`).
    pub docs: &'static str,
}

/// A job: its record type, decoding, event-time rules, outputs and dataflow. `Self` holds the job's settings
/// (its flags, resolved).
pub trait Job: Clone + std::fmt::Debug + Send + Sync + 'static {
    /// The record the decoders produce and the dataflow consumes.
    type Record: ExchangeData + Clone + EventTime;
    /// How one partition's bytes are decoded.
    type Format: RecordFormat<Record = Self::Record>;

    /// Name, summary and docs for `taxiflow jobs`.
    fn info() -> JobInfo;

    /// The settings that make two runs the same job (part of a checkpoint's identity): everything but the
    /// inputs, the sink and the worker counts.
    fn identity(&self) -> String {
        format!("{self:?}")
    }

    /// How partitions' watermarks are derived.
    fn watermarks(&self) -> WatermarkStrategy;

    /// When a record is late.
    fn lateness(&self) -> Lateness;

    /// The format of stream records (Kafka messages, Kinesis records).
    ///
    /// # Errors
    /// A format flag of the job that does not apply to streams, naming it.
    fn stream_format(&self) -> Result<Self::Format, String>;

    /// The format of an input file from its first non-empty line (`None`: the file is empty).
    ///
    /// # Errors
    /// The format cannot be recognised or a header lacks a column, with the reason (the file is named by the
    /// caller).
    fn file_format(&self, first_line: Option<&[u8]>) -> Result<Self::Format, String>;

    /// The job's outputs, in the order of [`crate::output::Row::output`].
    fn outputs(&self) -> Vec<OutputSchema>;

    /// What the summary calls the records (`trips`, `ticks`).
    fn record_noun(&self) -> &'static str;

    /// Names of the job's counters (see [`Counters`]), reported in the summary after the records.
    fn counters(&self) -> &'static [&'static str] {
        &[]
    }

    /// Builds the job's dataflow on `records`, whose timestamps never exceed [`Lateness::due`] of their event
    /// time. Stateful operators start from `recovery`.
    fn build<'s>(&self, records: StreamVec<'s, Time, Self::Record>, recovery: &Recovery, counters: &Counters) -> JobStreams<'s>;
}
