//! The `taxiflow` command line (clap): `taxiflow run …`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::{Parser, Subcommand};
use taxiflow_dataflows::{JobSettings, Profile, Progress, TumblingWindow};

use crate::input::FormatChoice;
use crate::kafka::source::KafkaSourceOptions;
use crate::kinesis::source::KinesisSourceOptions;
use crate::kafka::KafkaTopic;
use crate::replay::ReplayOptions;
use crate::run::{run, RunOptions, SourceSpec};
use crate::sink::SinkSpec;
use crate::workers::WorkerArgs;

/// taxiflow: the AWS "real-time taxi hot spots" reference job on timely dataflow.
#[derive(Debug, Parser)]
#[command(name = "taxiflow", version, about)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compute pickup hot spots and airport trip durations in event time.
    Run(Box<RunArgs>),
    /// Replay trips from files into Kafka, paced in event time, with watermark records (spec §2).
    Replay(ReplayArgs),
}

/// Flags of `taxiflow replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Input file, replayed in the given order (repeatable). Default: the bundled samples.
    #[arg(long = "input", value_name = "PATH")]
    pub inputs: Vec<PathBuf>,
    /// Input format; `auto` detects it from each file's first line.
    #[arg(long, value_enum, default_value = "auto")]
    pub format: FormatChoice,
    /// Destination: kafka://BROKER[,BROKER]/TOPIC or kinesis://STREAM (the topic or stream must exist).
    #[arg(long)]
    pub to: String,
    /// Kinesis: how often the shard list is read again (watermarks go to every open shard).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub shard_refresh_interval: Duration,
    /// AWS settings (Kinesis).
    #[command(flatten)]
    pub aws: crate::aws::AwsArgs,
    /// Event time runs this many times faster than wall time; `max` for no pacing.
    #[arg(long, default_value = "3600")]
    pub speedup: crate::replay::Speedup,
    /// Replay the input this many times, each copy shifted forward by the input's time span.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    /// How often a watermark record goes to every partition.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub watermark_interval: Duration,
    /// How long to wait for the brokers (metadata at start, acknowledgements at the end).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// `--stop-at` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StopAt {
    /// Finish at the end offsets taken at start.
    Latest,
}

/// Flags of `taxiflow run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Input file (TLC/DEBS/TaxiRide CSV or JSON lines, plain or gzip); repeat for several. Default: the
    /// bundled real NYC samples in `data/`.
    #[arg(long = "input", value_name = "PATH", conflicts_with = "source")]
    pub inputs: Vec<PathBuf>,
    /// Read trip and watermark events from a stream instead of files: kafka://BROKER[,BROKER]/TOPIC or
    /// kinesis://STREAM.
    #[arg(long)]
    pub source: Option<String>,
    /// Consumer group the Kafka source commits its offsets to (monitoring only).
    #[arg(long, default_value = "taxiflow", requires = "source")]
    pub group: String,
    /// Where the source starts: earliest (Kinesis: trim-horizon) or latest; Kinesis also at-timestamp:T
    /// (RFC 3339 or ms since the Unix epoch).
    #[arg(long, default_value = "earliest", requires = "source")]
    pub start: String,
    /// Kinesis: how often the shard list is read again (new shards after a resharding).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub shard_refresh_interval: Duration,
    /// Kinesis: the least time between two GetRecords calls on one shard (the service allows 5 per second).
    #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
    /// Bounded read: finish at the end offsets of all partitions taken at start, then close all windows.
    #[arg(long, value_enum, requires = "source")]
    pub stop_at: Option<StopAt>,
    /// A partition without records for this long stops holding progress back (see the Kafka source docs).
    #[arg(long, value_parser = humantime::parse_duration, requires = "source")]
    pub idle_timeout: Option<Duration>,
    /// Input format; `auto` detects it from each file's first line.
    #[arg(long, value_enum, default_value = "auto")]
    pub format: FormatChoice,
    /// Reference job to reproduce (spec §3): kda, refarch or msf.
    #[arg(long, default_value = "kda")]
    pub profile: Profile,
    /// Tumbling window length (e.g. 1h, 10m); default from the profile.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub window: Option<Duration>,
    /// Geohash precision of the hot-spot key (1–12); default from the profile.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=12))]
    pub hot_spot_precision: Option<u8>,
    /// Geohash precision of the duration key's pickup cell (1–12); default 6.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=12))]
    pub duration_precision: Option<u8>,
    /// Derive progress as max event time − this bound (e.g. 2m) instead of from watermark records.
    /// The msf profile sets 2m.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub max_out_of_orderness: Option<Duration>,
    /// Where results go: file://DIR, stdout, kafka://BROKER/TOPIC, or Elasticsearch/OpenSearch at
    /// es+https://HOST[:PORT] (es+http:// without TLS).
    #[arg(long, default_value = "file://out")]
    pub sink: SinkSpec,
    /// Elasticsearch sink flags.
    #[command(flatten)]
    pub es: crate::elasticsearch::args::EsArgs,
    /// AWS settings (Kinesis source, SigV4 signing).
    #[command(flatten)]
    pub aws: crate::aws::AwsArgs,
    /// Serve Prometheus metrics on HOST:PORT at /metrics.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<SocketAddr>,
    /// Checkpoint source positions, window state and sink acknowledgements in this directory, and restore
    /// the newest checkpoint at start (the same path for every process).
    #[arg(long, value_name = "DIR")]
    pub checkpoint_dir: Option<std::path::PathBuf>,
    /// Time between two checkpoints.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, requires = "checkpoint_dir")]
    pub checkpoint_interval: Duration,
    /// Remove the checkpoints of --checkpoint-dir and start from the beginning (also when they are unusable).
    #[arg(long, requires = "checkpoint_dir")]
    pub checkpoint_reset: bool,
    /// Plain files of at least this many bytes are cut into byte ranges (tests set it low).
    #[arg(long, default_value_t = crate::input::split::MIN_SPLIT_BYTES, hide = true)]
    pub min_split_bytes: u64,
    /// Byte ranges are at most this long, dealt to the workers in turn (tests set it low).
    #[arg(long, default_value_t = crate::input::split::MAX_SPLIT_BYTES, hide = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_split_bytes: u64,
    /// Worker flags.
    #[command(flatten)]
    pub workers: WorkerArgs,
}

impl RunArgs {
    /// The job settings: the profile's, with the flags' overrides.
    ///
    /// # Errors
    /// `--window` shorter than 1 ms or not a whole number of ms.
    pub fn settings(&self) -> anyhow::Result<JobSettings> {
        let mut s = JobSettings::for_profile(self.profile);
        if let Some(w) = self.window {
            let ms = w.as_millis();
            if ms == 0 || w.as_nanos() % 1_000_000 != 0 {
                bail!("--window must be a positive whole number of milliseconds, got {w:?}");
            }
            s.window = TumblingWindow::new(ms as u64);
        }
        if let Some(p) = self.hot_spot_precision {
            s.hot_spot_precision = p as usize;
        }
        if let Some(p) = self.duration_precision {
            s.duration_precision = p as usize;
        }
        if let Some(b) = self.max_out_of_orderness {
            s.progress = Progress::BoundedOutOfOrderness { bound_ms: b.as_millis() as u64 };
        }
        Ok(s)
    }

    /// The inputs, or the bundled samples when none is given.
    ///
    /// # Errors
    /// No `--input` and no bundled `data/` directory could be found.
    pub fn inputs(&self) -> anyhow::Result<Vec<PathBuf>> {
        if !self.inputs.is_empty() {
            return Ok(self.inputs.clone());
        }
        bundled_samples()
    }
}

/// The bundled real NYC samples: `data/*.csv*` under `$TAXIFLOW_DATA`, `./data`, or the source checkout.
///
/// # Errors
/// None of those directories holds a sample.
pub fn bundled_samples() -> anyhow::Result<Vec<PathBuf>> {
    let mut candidates = Vec::new();
    if let Ok(dir) = std::env::var("TAXIFLOW_DATA") {
        candidates.push(PathBuf::from(dir));
    }
    candidates.push(PathBuf::from("data"));
    candidates.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data"));
    for dir in candidates {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".csv") || n.ends_with(".csv.gz")))
                .collect();
            if !files.is_empty() {
                files.sort();
                return Ok(files);
            }
        }
    }
    bail!("no --input given and no bundled samples found in $TAXIFLOW_DATA, ./data or the source checkout")
}

/// Runs the parsed command line.
///
/// # Errors
/// Any start-up or run error, naming the flag at fault where there is one.
pub fn main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => {
            let settings = args.settings()?;
            let timely = args.workers.timely_config()?;
            if args.sink == SinkSpec::Stdout && args.workers.processes > 1 {
                // timely_communication prints its connection progress with println!.
                bail!("--sink stdout cannot be used with --processes > 1: timely's networking writes to standard output; use --sink file://DIR");
            }
            if let Some(addr) = args.metrics_addr {
                crate::metrics::serve(addr)?;
            }
            let source = match &args.source {
                None => SourceSpec::Files(args.inputs()?),
                Some(url) if url.starts_with("kinesis://") => SourceSpec::Kinesis(KinesisSourceOptions {
                    stream: crate::kinesis::KinesisStream::parse(url, "--source")?,
                    aws: args.aws.clone(),
                    start: args.start.parse().map_err(|e: String| anyhow::anyhow!(e))?,
                    stop_at_latest: args.stop_at == Some(StopAt::Latest),
                    idle_timeout: args.idle_timeout,
                    shard_refresh: args.shard_refresh_interval,
                    poll_interval: args.poll_interval,
                }),
                Some(url) => SourceSpec::Kafka(KafkaSourceOptions {
                    topic: KafkaTopic::parse(url, "--source")?,
                    group: args.group.clone(),
                    start: match args.start.as_str() {
                        "earliest" | "trim-horizon" => crate::kafka::source::StartPosition::Earliest,
                        "latest" => crate::kafka::source::StartPosition::Latest,
                        other => bail!("--start {other:?}: a Kafka source starts at earliest or latest"),
                    },
                    stop_at_latest: args.stop_at == Some(StopAt::Latest),
                    idle_timeout: args.idle_timeout,
                    timeout: Duration::from_secs(30),
                }),
            };
            ctrlc::set_handler(|| crate::run::STOP.store(true, std::sync::atomic::Ordering::Relaxed))
                .map_err(|e| anyhow::anyhow!("cannot install the SIGINT/SIGTERM handler: {e}"))?;
            let mut sink = args.sink.clone();
            match &mut sink {
                SinkSpec::Elasticsearch(options) => args.es.apply(options, args.aws.region.as_deref())?,
                _ => args.es.reject_for_other_sinks()?,
            }
            if args.checkpoint_interval.is_zero() {
                bail!("--checkpoint-interval must be greater than zero");
            }
            let checkpoint = args.checkpoint_dir.clone().map(|dir| crate::checkpoint::CheckpointOptions { dir, interval: args.checkpoint_interval, reset: args.checkpoint_reset });
            let options = RunOptions { source, format: args.format, settings, sink, timely, min_split_bytes: args.min_split_bytes, max_split_bytes: args.max_split_bytes, checkpoint };
            let report = run(options)?;
            if let Some(totals) = report.totals {
                let line = totals.summary_line(report.elapsed.as_secs_f64());
                if args.sink == SinkSpec::Stdout {
                    eprintln!("{line}");
                } else {
                    println!("{line}");
                }
            }
            Ok(())
        }
        Command::Replay(args) => {
            let inputs = if args.inputs.is_empty() { bundled_samples()? } else { args.inputs.clone() };
            let options = ReplayOptions {
                inputs,
                format: args.format,
                to: crate::replay::Destination::parse(&args.to, &args.aws, args.shard_refresh_interval)?,
                speedup: args.speedup,
                repeat: args.repeat,
                watermark_interval: args.watermark_interval,
                timeout: args.timeout,
            };
            let started = std::time::Instant::now();
            let report = crate::replay::replay(&options)?;
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "replay: {} trips acknowledged, {} rows skipped, {} watermark rounds, {:.0} events/s in {:.3} s",
                report.acknowledged,
                report.skipped,
                report.watermark_rounds,
                report.acknowledged as f64 / seconds.max(1e-9),
                seconds
            );
            Ok(())
        }
    }
}
