//! `taxiflow replay`: the flags, and the run of [`crate::replay`].

use std::path::PathBuf;
use std::time::Duration;

use taxiflow_dataflows::jobs::taxi::formats::FormatChoice;

use crate::replay::ReplayOptions;

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
    /// Kafka client settings.
    #[command(flatten)]
    pub kafka: crate::connectors::kafka::KafkaArgs,
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

/// Runs `taxiflow replay`.
///
/// # Errors
/// See [`crate::replay::replay`].
pub fn replay(args: &ReplayArgs) -> anyhow::Result<()> {
    let inputs = if args.inputs.is_empty() { super::bundled_samples()? } else { args.inputs.clone() };
    let options = ReplayOptions {
        inputs,
        format: args.format,
        to: crate::replay::Destination::parse(&args.to, &args.aws, args.shard_refresh_interval, &args.kafka)?,
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
