//! Checkpoints and recovery (`--checkpoint-dir DIR|s3://BUCKET/PREFIX`, `--checkpoint-interval`,
//! `--checkpoint-reset`).
//!
//! A checkpoint is one **epoch** of the dataflow (see `taxiflow_dataflows::epoch`): every source sends the
//! position of each of its partitions at the end of the epoch, every window operator its open windows once it
//! has received everything of the epoch, and worker 0 of process 0 commits the epoch when the documents of the
//! epoch are acknowledged by the sink and every part has arrived (timely's progress tracking says when: it is
//! complete only when every worker of every process has sent its part). What is stored:
//!
//! * per partition ([`SourcePosition`]): the next file byte offset and line of a file byte range, the next
//!   offset (and bounded end) of a Kafka partition, the last sequence number of a Kinesis shard, and the
//!   partition's watermark; keyed by partition (`file:PATH@START`, `kafka:P`, `kinesis:SHARD`; the topic or stream is part of the job's identity);
//! * per window operator instance: `(window end, key, accumulator)` rows, restored by key hash under any
//!   worker count ([`taxiflow_dataflows::window::aggregate::WindowState`]);
//! * the sink's state at the commit (its own serialization, see `crate::connectors::Sink::prepare_commit`):
//!   the byte length of each file of a file sink (the files are cut back to it on restore), the staged part
//!   files of a part-file sink (published after the commit, or on restore) and its pending partition markers;
//!   Kafka and Elasticsearch sinks are flushed and acknowledged at each commit and need no state, since
//!   documents have deterministic ids and a re-emitted window overwrites them.
//!
//! Files are written by [`store::CheckpointStore`] (one `redb` database per checkpoint, CRC-32 checksum over
//! every row, written under a temporary name then renamed; the previous complete checkpoint is kept until the
//! next one is complete). Commits happen on the dataflow thread of worker 0 ([`writer::CheckpointWriter`]).

pub mod store;
pub mod writer;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::watermark::PartitionWatermark;

/// Where checkpoint files are kept (`--checkpoint-dir`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckpointLocation {
    /// A directory, the same path on every process of the job.
    Dir(PathBuf),
    /// An S3 prefix, with the AWS settings.
    S3(crate::connectors::s3::S3Location, crate::aws::AwsArgs),
}

impl CheckpointLocation {
    /// `s3://BUCKET/PREFIX` or a directory path.
    ///
    /// # Errors
    /// A malformed `s3://` URL.
    pub fn parse(text: &str, aws: &crate::aws::AwsArgs) -> anyhow::Result<CheckpointLocation> {
        if text.starts_with("s3://") {
            Ok(CheckpointLocation::S3(crate::connectors::s3::S3Location::parse(text, "--checkpoint-dir")?, aws.clone()))
        } else {
            Ok(CheckpointLocation::Dir(PathBuf::from(text)))
        }
    }
}

impl std::fmt::Display for CheckpointLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckpointLocation::Dir(dir) => write!(f, "{}", dir.display()),
            CheckpointLocation::S3(location, _) => write!(f, "{}", location.url()),
        }
    }
}

/// `--checkpoint-dir`, `--checkpoint-interval`, `--checkpoint-reset`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointOptions {
    /// Where the checkpoint files are, shared by every process of the job.
    pub location: CheckpointLocation,
    /// Time between two checkpoints (the end of one epoch and the next; default 5 s).
    pub interval: Duration,
    /// Start from the beginning and remove the checkpoints in `location`.
    pub reset: bool,
}

/// The event-time progress of one partition, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatermarkState {
    /// The partition's watermark, ms since the Unix epoch.
    pub watermark: Option<u64>,
    /// Largest event time seen (bounded out-of-orderness), ms since the Unix epoch.
    pub max_event_time: Option<u64>,
}

impl WatermarkState {
    /// The state of `clock`.
    pub fn of(clock: &PartitionWatermark) -> Self {
        let (watermark, max_event_time) = clock.state();
        WatermarkState { watermark, max_event_time }
    }

    /// A partition clock of the strategy and lateness rule of `like` that continues from this state.
    pub fn clock(&self, like: &PartitionWatermark) -> PartitionWatermark {
        let mut clock = like.fresh(self.watermark);
        clock.set_max_event_time(self.max_event_time);
        clock
    }
}

/// The position of one partition of a source in a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourcePosition {
    /// A byte range `[start, end)` of an input file (`end = u64::MAX`: to the end of the file).
    File {
        /// Input path as given.
        path: String,
        /// First byte of the range.
        start: u64,
        /// First byte after the range.
        end: u64,
        /// Where reading resumes: (byte offset of the next line, lines before it if known), once the range was
        /// opened.
        next: Option<(u64, Option<u64>)>,
        /// The range has been read to its end.
        done: bool,
        /// The file's watermark at `next`.
        watermark: WatermarkState,
    },
    /// A Kafka partition.
    Kafka {
        /// Partition number.
        partition: i32,
        /// Offset of the next record to read.
        next_offset: i64,
        /// `--stop-at latest`: the end offset taken when the job first started.
        end: Option<i64>,
        /// The partition's watermark.
        watermark: WatermarkState,
    },
    /// A Kinesis shard.
    Kinesis {
        /// Shard id.
        shard: String,
        /// Sequence number of the last record read (reading resumes `AFTER_SEQUENCE_NUMBER`).
        last_sequence: Option<String>,
        /// The shard was read to its end (`SHARD_END`) or, with `--stop-at latest`, caught up.
        ended: bool,
        /// The shard's watermark.
        watermark: WatermarkState,
    },
}

impl SourcePosition {
    /// The partition key: `file:PATH@START`, `kafka:P`, `kinesis:SHARD` (the topic or stream is in the job's identity).
    pub fn key(&self) -> String {
        match self {
            SourcePosition::File { path, start, .. } => Self::file_key(path, *start),
            SourcePosition::Kafka { partition, .. } => Self::kafka_key(*partition),
            SourcePosition::Kinesis { shard, .. } => format!("kinesis:{shard}"),
        }
    }

    /// The key of the byte range of `path` starting at byte `start`.
    pub fn file_key(path: &str, start: u64) -> String {
        format!("file:{path}@{start}")
    }

    /// The key of Kafka partition `partition`.
    pub fn kafka_key(partition: i32) -> String {
        format!("kafka:{partition}")
    }

    /// As a checkpoint part (bincode).
    pub fn part(&self) -> taxiflow_dataflows::CheckpointPart {
        taxiflow_dataflows::CheckpointPart::Source { key: self.key(), state: bincode::serialize(self).expect("positions serialize") }
    }
}

/// A complete checkpoint, as restored.
#[derive(Clone, Debug, Default)]
pub struct Checkpoint {
    /// The epoch it completes: every record read before each source's cut of this epoch is in it.
    pub epoch: u64,
    /// The job it belongs to (inputs and settings; see [`job_identity`]).
    pub job: String,
    /// Positions by partition key.
    pub sources: BTreeMap<String, SourcePosition>,
    /// Window operator states: `(operator, serialized WindowState)` of every instance.
    pub windows: Vec<(String, Vec<u8>)>,
    /// The sink's state at the commit (the sink's own serialization; empty for sinks without state).
    pub sink: Vec<u8>,
    /// When it was committed, ms since the Unix epoch.
    pub created_ms: u64,
}

impl Checkpoint {
    /// The byte ranges `(start, end)` of `path` that have a position, in file order.
    pub fn file_ranges(&self, path: &str) -> Vec<(u64, u64)> {
        let mut ranges: Vec<(u64, u64)> = self
            .sources
            .values()
            .filter_map(|p| match p {
                SourcePosition::File { path: p, start, end, .. } if p == path => Some((*start, *end)),
                _ => None,
            })
            .collect();
        ranges.sort_unstable();
        ranges
    }

    /// The window part of the recovery of the dataflow, starting at the next epoch.
    pub fn recovery(&self) -> taxiflow_dataflows::Recovery {
        let mut windows: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        for (operator, state) in &self.windows {
            windows.entry(operator.clone()).or_default().push(state.clone());
        }
        taxiflow_dataflows::Recovery { enabled: true, start_epoch: self.epoch + 1, windows }
    }
}

/// What a checkpoint must match to be restored: the job (its name and settings: profile, windows, precisions,
/// watermark strategy, formats), the input (files, topic or stream) and the sink (where it writes, without
/// credentials). Worker and process counts are not part of it.
pub fn job_identity(job: &str, settings: &str, source: &str, sink: &str) -> String {
    format!("job={job} settings={settings} source={source} sink={sink}")
}
