//! Connectors: one folder per external system, each owning its flags, its source and/or sink. What every source
//! and every sink has in common is the [`Source`] and [`Sink`] traits below; [`source`] and [`sink`] pick one by
//! URL scheme from the registry ([`SOURCES`], [`SINKS`]), and [`check_flags`] refuses a flag given to a connector
//! that does not use it.
//!
//! | scheme | source | sink |
//! |---|---|---|
//! | `--input PATH` / `file://DIR` | [`file`]: plain or gzip files, byte ranges | [`file`]: one JSON-lines file per output, or part files in Hive partitions ([`part_files`]) for partitioned outputs |
//! | `stdout` | | [`stdout`]: JSON lines |
//! | `kafka://BROKERS/TOPIC` | [`kafka`]: partitions dealt to workers | [`kafka`]: JSON values keyed by id |
//! | `kinesis://STREAM` | [`kinesis`]: shards, resharding, KPL | |
//! | `es+https://HOST` | | [`elasticsearch`]: bulk requests, SigV4 |
//! | `s3://BUCKET/PREFIX` | | [`s3`]: part files in Hive partitions, multipart uploads completed at the checkpoint commit |
//!
//! Sources follow Flink's FLIP-27 split: a source knows how to read its partitions (file byte ranges, Kafka
//! partitions, Kinesis shards) and hands raw records to the shell (`crate::runtime::source_shell`), which decodes
//! them with the job's format and applies watermarks, lateness, dead letters and checkpoint epochs. Sinks follow
//! Flink's two-phase-commit sink: rows are written as the job releases them, made durable and staged at a
//! checkpoint ([`Sink::prepare_commit`], whose state goes into the checkpoint), and published once the checkpoint
//! is durable ([`Sink::commit`]).

pub mod elasticsearch;
pub mod file;
pub mod geoip;
pub mod kafka;
pub mod kinesis;
pub mod part_files;
pub mod postgres;
pub mod redis;
pub mod s3;
pub mod stdout;

use std::collections::BTreeSet;

use anyhow::bail;
use taxiflow_dataflows::epoch::Time;
use taxiflow_dataflows::output::{Outputs, Row};
use taxiflow_dataflows::Job;
use timely::dataflow::Scope;

use crate::runtime::checkpoint::Checkpoint;
use crate::runtime::shutdown::Shutdown;
use crate::runtime::source_shell::{SourceContext, SourceStreams};

/// A configured source: built once per process, then once per worker.
pub trait Source<J: Job>: Send + Sync {
    /// Where it reads, without credentials (`files:PATH,…`, `kafka://BROKERS/TOPIC`, `kinesis://STREAM`): part of a
    /// checkpoint's identity.
    fn describe(&self) -> String;

    /// Prepares the run before any worker starts, on every process: checks that the input exists and can be read
    /// (an unreachable broker or a missing file fails here, naming the flag), and plans the partitions of the
    /// workers of `topology`, resuming `restored` if any.
    ///
    /// # Errors
    /// The input cannot be used, with the flag and the reason.
    fn prepare(&mut self, job: &J, topology: crate::runtime::workers::Topology, restored: Option<&Checkpoint>) -> anyhow::Result<()>;

    /// Builds the source operator of one worker.
    ///
    /// # Errors
    /// The worker's reader cannot be started (e.g. a consumer cannot be created).
    fn build<'s>(&self, scope: Scope<'s, Time>, ctx: SourceContext<'_, J>) -> anyhow::Result<SourceStreams<'s, J::Record>>;
}

/// When the sink operator hands rows to the sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// A time's rows once the event-time frontier has passed it, dead letters at once (no checkpoints, or a sink
    /// that overwrites by id: Elasticsearch, Kafka, standard output).
    EventTime,
    /// Everything of an epoch once the epoch is complete, i.e. at each checkpoint (sinks that cannot take back
    /// what they wrote: files, part files).
    Epoch,
}

impl Release {
    /// The release of a sink that cannot take back what it wrote: by epoch with checkpoints, else by event time.
    pub fn of_files(checkpointing: bool) -> Release {
        if checkpointing {
            Release::Epoch
        } else {
            Release::EventTime
        }
    }
}

/// An open sink, owned by worker 0 of process 0, which receives every output row (Flink's `SinkWriter` and
/// `Committer` of a two-phase-commit sink in one).
pub trait Sink: Send {
    /// When it wants rows (see [`Release`]); `checkpointing`: the run takes checkpoints.
    fn release(&self, checkpointing: bool) -> Release;

    /// Writes one row, released at dataflow event time `time` (rows of one release come sorted by
    /// `(order, id)`, so outputs do not depend on the number of workers).
    ///
    /// # Errors
    /// The row cannot be written or handed over; the run stops.
    fn write(&mut self, time: u64, row: &Row) -> anyhow::Result<()>;

    /// Writes a watermark record of an output that has them (`taxiflow_dataflows::output::WatermarkRecords`; `w`
    /// in ms since the Unix epoch): like any row by default; a Kafka sink writes it to every partition.
    ///
    /// # Errors
    /// As [`Self::write`].
    fn write_watermark(&mut self, w: u64, row: &Row) -> anyhow::Result<()> {
        self.write(w, row)
    }

    /// Hands what is buffered to the system after a release (files: flushed; remote sinks: their timers send).
    ///
    /// # Errors
    /// A write failed.
    fn flush(&mut self) -> anyhow::Result<()>;

    /// Makes everything written so far durable or staged for checkpoint `epoch` and returns the state the
    /// checkpoint keeps (file lengths, staged uploads, pending markers; empty when there is none). Nothing staged
    /// may become visible before [`Self::commit`].
    ///
    /// # Errors
    /// A write, sync or delivery failed: the checkpoint is not taken and the run stops.
    fn prepare_commit(&mut self, epoch: u64) -> anyhow::Result<Vec<u8>>;

    /// Publishes what was staged for `epoch`, now that its checkpoint is durable (a restart publishes it again
    /// from the checkpoint's state if this did not finish).
    ///
    /// # Errors
    /// Publishing failed; the run stops (and a restart retries it).
    fn commit(&mut self, epoch: u64) -> anyhow::Result<()> {
        let _ = epoch;
        Ok(())
    }

    /// Whether the sink counts a row as written only once the remote system acknowledged it (Elasticsearch): it
    /// then reports `taxiflow_documents_out_total` itself and its counts from [`Self::finish`].
    fn acknowledges(&self) -> bool {
        false
    }

    /// Flushes and closes the sink at the end of the run: `end_of_input` when every input was read to its end (a
    /// part-file sink then writes every partition's `_SUCCESS` at once), not after a stop. Without checkpoints
    /// this also finishes open part files. Returns the rows acknowledged per output when the sink counts them
    /// itself (Elasticsearch counts what the cluster acknowledged), `None` to use the rows written.
    ///
    /// # Errors
    /// The sink failed; the output is incomplete.
    fn finish(&mut self, end_of_input: bool) -> anyhow::Result<Option<Vec<u64>>>;
}

/// What a sink connector is opened with.
pub struct SinkContext<'a> {
    /// The run's outputs (the job's, then dead letters).
    pub outputs: &'a Outputs,
    /// The sink's state in the restored checkpoint, if any.
    pub restored: Option<&'a [u8]>,
    /// The restored checkpoint's epoch (0 without one): anything a sink staged for a later epoch is discarded.
    pub restored_epoch: u64,
    /// The run takes checkpoints.
    pub checkpointing: bool,
    /// `--checkpoint-interval`, when the run takes checkpoints.
    pub checkpoint_interval: Option<std::time::Duration>,
    /// The run's stop signal, for sinks whose background work can fail.
    pub shutdown: Shutdown,
}

/// A configured sink, opened once, on process 0, before the workers start.
pub trait SinkConnector: Send + Sync {
    /// Where it writes, without credentials: part of a checkpoint's identity (a restored job must write where
    /// the checkpointed one did).
    fn describe(&self) -> String;

    /// Opens the sink: creates or checks files, connects, creates templates; restores its checkpointed state.
    ///
    /// # Errors
    /// The sink cannot be opened, naming `--sink` or the flag at fault.
    fn open(&self, ctx: SinkContext<'_>) -> anyhow::Result<Box<dyn Sink>>;

    /// The newest epoch whose output the sink's system holds as committed, asked before a restore from the
    /// checkpoint of `epoch` whose sink state is `restored`. A sink that publishes an epoch after its checkpoint
    /// and can publish it again from the checkpoint's state (part files) answers `epoch`, the default; one whose
    /// commit is lost with the process (Kafka transactions, which librdkafka cannot resume) answers the epoch of
    /// its last commit (0: none of this run), and the run then restores the checkpoint of that epoch and
    /// produces the later ones again.
    ///
    /// # Errors
    /// The sink's system cannot be asked; the run does not start.
    fn committed_epoch(&self, restored: &[u8], epoch: u64) -> anyhow::Result<u64> {
        let _ = restored;
        Ok(epoch)
    }
}

/// Groups of connector flags, each a clap `Args` struct of its connector; [`SOURCES`] and [`SINKS`] say which
/// connector uses which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagGroup {
    /// [`file::FileSourceArgs`].
    FileSource,
    /// [`StreamArgs`].
    Stream,
    /// [`kafka::KafkaArgs`].
    Kafka,
    /// [`kafka::source::KafkaSourceArgs`].
    KafkaSource,
    /// [`kafka::sink::KafkaSinkArgs`].
    KafkaSink,
    /// [`kinesis::KinesisArgs`].
    Kinesis,
    /// [`crate::aws::AwsArgs`].
    Aws,
    /// [`elasticsearch::args::EsArgs`].
    Elasticsearch,
    /// [`part_files::PartFileArgs`].
    PartFiles,
    /// [`redis::RedisArgs`].
    Redis,
}

/// The clap ids of the flags of an `Args` struct.
pub fn flag_ids<A: clap::Args>() -> Vec<String> {
    A::augment_args(clap::Command::new("flags")).get_arguments().map(|a| a.get_id().to_string()).collect()
}

impl FlagGroup {
    /// Every group.
    pub const ALL: [FlagGroup; 10] = [
        FlagGroup::FileSource,
        FlagGroup::Stream,
        FlagGroup::Kafka,
        FlagGroup::KafkaSource,
        FlagGroup::KafkaSink,
        FlagGroup::Kinesis,
        FlagGroup::Aws,
        FlagGroup::Elasticsearch,
        FlagGroup::PartFiles,
        FlagGroup::Redis,
    ];

    /// The clap ids of the group's flags.
    pub fn ids(self) -> Vec<String> {
        match self {
            FlagGroup::FileSource => flag_ids::<file::FileSourceArgs>(),
            FlagGroup::Stream => flag_ids::<StreamArgs>(),
            FlagGroup::Kafka => flag_ids::<kafka::KafkaArgs>(),
            FlagGroup::KafkaSource => flag_ids::<kafka::source::KafkaSourceArgs>(),
            FlagGroup::KafkaSink => flag_ids::<kafka::sink::KafkaSinkArgs>(),
            FlagGroup::Kinesis => flag_ids::<kinesis::KinesisArgs>(),
            FlagGroup::Aws => flag_ids::<crate::aws::AwsArgs>(),
            FlagGroup::Elasticsearch => flag_ids::<elasticsearch::args::EsArgs>(),
            FlagGroup::PartFiles => flag_ids::<part_files::PartFileArgs>(),
            FlagGroup::Redis => flag_ids::<redis::RedisArgs>(),
        }
    }
}

/// A connector in the registry: its URL scheme, its name for messages, and the flag groups it uses.
#[derive(Clone, Copy, Debug)]
pub struct ConnectorInfo {
    /// URL scheme (`kafka`), or `files` for `--input`.
    pub scheme: &'static str,
    /// Name in messages and help (`Kafka source`).
    pub name: &'static str,
    /// The flag groups it reads.
    pub flags: &'static [FlagGroup],
}

/// The sources, by scheme.
pub const SOURCES: &[ConnectorInfo] = &[
    ConnectorInfo { scheme: "files", name: "file source (--input)", flags: &[FlagGroup::FileSource] },
    ConnectorInfo { scheme: "kafka", name: "Kafka source", flags: &[FlagGroup::Stream, FlagGroup::Kafka, FlagGroup::KafkaSource] },
    ConnectorInfo { scheme: "kinesis", name: "Kinesis source", flags: &[FlagGroup::Stream, FlagGroup::Kinesis, FlagGroup::Aws] },
];

/// The sinks, by scheme.
pub const SINKS: &[ConnectorInfo] = &[
    ConnectorInfo { scheme: "file", name: "file sink", flags: &[] },
    ConnectorInfo { scheme: "file+parts", name: "file sink of a partitioned output", flags: &[FlagGroup::PartFiles] },
    ConnectorInfo { scheme: "stdout", name: "standard output sink", flags: &[] },
    ConnectorInfo { scheme: "kafka", name: "Kafka sink", flags: &[FlagGroup::Kafka, FlagGroup::KafkaSink] },
    ConnectorInfo { scheme: "es", name: "Elasticsearch sink", flags: &[FlagGroup::Elasticsearch, FlagGroup::Aws] },
    ConnectorInfo { scheme: "s3", name: "S3 sink", flags: &[FlagGroup::PartFiles, FlagGroup::Aws] },
    ConnectorInfo { scheme: "redis", name: "Redis sink", flags: &[FlagGroup::Redis] },
];

/// Flags of the sources that read streams (Kafka, Kinesis).
#[derive(Clone, Debug, clap::Args)]
pub struct StreamArgs {
    /// Where the source starts: earliest (Kinesis: trim-horizon) or latest; Kinesis also at-timestamp:T
    /// (RFC 3339 or ms since the Unix epoch).
    #[arg(long, default_value = "earliest")]
    pub start: String,
    /// Bounded read: finish at the end offsets of all partitions taken at start, then close all windows.
    #[arg(long, value_enum)]
    pub stop_at: Option<StopAt>,
    /// A partition without records for this long stops holding progress back.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub idle_timeout: Option<std::time::Duration>,
}

/// `--stop-at` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StopAt {
    /// Finish at the end offsets taken at start.
    Latest,
}

/// Every connector's flags, grouped under a help heading each.
#[derive(Clone, Debug, clap::Args)]
pub struct ConnectorArgs {
    /// File source flags.
    #[command(flatten, next_help_heading = "File source (--input)")]
    pub files: file::FileSourceArgs,
    /// Stream source flags.
    #[command(flatten, next_help_heading = "Stream sources (Kafka, Kinesis)")]
    pub stream: StreamArgs,
    /// Kafka flags.
    #[command(flatten, next_help_heading = "Kafka source and sink")]
    pub kafka: kafka::KafkaArgs,
    /// Kafka source flags.
    #[command(flatten, next_help_heading = "Kafka source and sink")]
    pub kafka_source: kafka::source::KafkaSourceArgs,
    /// Kafka sink flags.
    #[command(flatten, next_help_heading = "Kafka source and sink")]
    pub kafka_sink: kafka::sink::KafkaSinkArgs,
    /// Kinesis flags.
    #[command(flatten, next_help_heading = "Kinesis source")]
    pub kinesis: kinesis::KinesisArgs,
    /// AWS flags.
    #[command(flatten, next_help_heading = "AWS (Kinesis, S3, SigV4 signing)")]
    pub aws: crate::aws::AwsArgs,
    /// Elasticsearch sink flags.
    #[command(flatten, next_help_heading = "Elasticsearch / OpenSearch sink (es+https://)")]
    pub es: elasticsearch::args::EsArgs,
    /// Part-file sink flags.
    #[command(flatten, next_help_heading = "Part-file sinks (s3://, file:// of partitioned outputs)")]
    pub parts: part_files::PartFileArgs,
    /// Redis sink flags.
    #[command(flatten, next_help_heading = "Redis sink (redis://, rediss://)")]
    pub redis: redis::RedisArgs,
}

/// Where records come from: `--input` files, or a `--source` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceChoice {
    /// Input files, read to their end.
    Files(Vec<std::path::PathBuf>),
    /// `kafka://…` or `kinesis://…`.
    Url(String),
}

impl SourceChoice {
    /// The registry entry of this source.
    ///
    /// # Errors
    /// `--source`: an unknown scheme.
    pub fn info(&self) -> anyhow::Result<&'static ConnectorInfo> {
        let scheme = match self {
            SourceChoice::Files(_) => "files",
            // `files` names --input in the registry; it is not a URL scheme.
            SourceChoice::Url(url) => url.split_once("://").map_or("", |(s, _)| s),
        };
        let found = SOURCES.iter().find(|c| c.scheme == scheme).filter(|c| c.scheme != "files" || matches!(self, SourceChoice::Files(_)));
        found.ok_or_else(|| {
            anyhow::anyhow!("--source {:?}: unsupported source; expected kafka://BROKER[,BROKER]/TOPIC or kinesis://STREAM (files: --input PATH)", self.describe())
        })
    }

    fn describe(&self) -> String {
        match self {
            SourceChoice::Files(paths) => paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(","),
            SourceChoice::Url(url) => url.clone(),
        }
    }
}

/// The source of `choice` for job `J`, configured from `args`.
///
/// # Errors
/// An unknown scheme or a malformed URL or flag, named.
pub fn source<J: Job>(choice: &SourceChoice, args: &ConnectorArgs) -> anyhow::Result<Box<dyn Source<J>>> {
    match choice {
        SourceChoice::Files(paths) => Ok(Box::new(file::FileSource::new(paths.clone(), &args.files))),
        SourceChoice::Url(url) => match choice.info()?.scheme {
            "kafka" => Ok(Box::new(kafka::source::KafkaSource::from_args(url, &args.stream, &args.kafka, &args.kafka_source)?)),
            "kinesis" => Ok(Box::new(kinesis::source::KinesisSource::from_args(url, &args.stream, &args.kinesis, &args.aws)?)),
            other => bail!("--source {url:?}: {other}:// is not a source"),
        },
    }
}

/// The registry entry of the sink at `url` for a job whose outputs are `outputs`.
///
/// # Errors
/// `--sink`: an unknown scheme.
pub fn sink_info(url: &str, outputs: &Outputs) -> anyhow::Result<&'static ConnectorInfo> {
    let scheme = if url == "stdout" {
        "stdout"
    } else if url.starts_with("es+") {
        "es"
    } else if url.starts_with("rediss://") {
        "redis"
    } else if url.starts_with("file://") && part_files::partitioned(outputs) {
        "file+parts"
    } else {
        url.split_once("://").map_or("", |(s, _)| s)
    };
    SINKS.iter().find(|c| c.scheme == scheme).ok_or_else(|| {
        anyhow::anyhow!("--sink {url:?}: unsupported sink; expected file://DIR, stdout, kafka://BROKER/TOPIC, es+https://HOST[:PORT], s3://BUCKET/PREFIX or redis://HOST:PORT")
    })
}

/// The sink at `url` for a job whose outputs are `outputs`, configured from `args`.
///
/// # Errors
/// An unknown scheme or a malformed URL or flag, named.
pub fn sink(url: &str, outputs: &Outputs, args: &ConnectorArgs) -> anyhow::Result<Box<dyn SinkConnector>> {
    Ok(match sink_info(url, outputs)?.scheme {
        "stdout" => Box::new(stdout::StdoutSink),
        "file" => Box::new(file::sink::FileSink::parse(url)?),
        "file+parts" => Box::new(part_files::PartFileSink::local(url, &args.parts)?),
        "kafka" => Box::new(kafka::sink::KafkaSinkConnector::from_args(url, &args.kafka, &args.kafka_sink)?),
        "es" => Box::new(elasticsearch::EsSinkConnector::from_args(url, &args.es, args.aws.region.as_deref())?),
        "s3" => Box::new(part_files::PartFileSink::s3(url, &args.parts, &args.aws)?),
        "redis" => Box::new(redis::RedisSinkConnector::from_args(url, &args.redis)?),
        other => bail!("--sink {url:?}: {other} is not a sink"),
    })
}

/// Refuses every flag in `given` (clap ids of flags given on the command line) that none of `selected` uses,
/// naming the flag and the connectors that do use it.
///
/// # Errors
/// The first such flag.
pub fn check_flags(given: &BTreeSet<String>, selected: &[&ConnectorInfo], long_name: impl Fn(&str) -> String) -> anyhow::Result<()> {
    let used: BTreeSet<String> = selected.iter().flat_map(|c| c.flags.iter().flat_map(|g| g.ids())).collect();
    for group in FlagGroup::ALL {
        for id in group.ids() {
            if given.contains(&id) && !used.contains(&id) {
                let users: Vec<&str> = SOURCES.iter().chain(SINKS).filter(|c| c.flags.contains(&group)).map(|c| c.name).collect();
                let here: Vec<&str> = selected.iter().map(|c| c.name).collect();
                bail!("{} is a flag of the {}; this run uses the {}", long_name(&id), users.join(" and the "), here.join(" and the "));
            }
        }
    }
    Ok(())
}
