//! `taxiflow replay`: replays trips from files into a Kafka topic or a Kinesis stream, paced in event time
//! (taxi docs §2).
//!
//! * Pacing: the trip with event time `t` is sent at `start + (t − event time of the first trip) / speedup`
//!   (`--speedup max`: as fast as the broker takes them; a trip older than the first is sent at once). Replay
//!   lag is how far behind that schedule the producer is.
//! * `--repeat N` replays the input N times, each copy shifted forward by the input's time span (largest minus
//!   smallest event time, plus 1 ms).
//! * Every `--watermark-interval` a watermark record goes to every partition (Kafka) or open shard (Kinesis, see
//!   [`crate::kinesis::producer`]), with the oldest-in-flight value computed from delivery reports; after the
//!   last trip is acknowledged a final watermark (the largest event time) is sent.
//! * Trips are counted as replayed only when the broker acknowledged them. Any event whose delivery finally
//!   failed makes the command exit non-zero with the reason.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use taxiflow_dataflows::jobs::taxi::formats::csv_line::CsvLine;
use taxiflow_dataflows::jobs::taxi::formats::{Format, FormatChoice};
use taxiflow_dataflows::jobs::taxi::{Profile, TaxiJob, Trip};
use taxiflow_dataflows::{Decoded, RecordFormat};

use crate::connectors::file::split::{Split, SplitReader};
use crate::connectors::file::InputFile;
use crate::connectors::kafka::producer::{Deliveries, ReplayProducer};
use crate::connectors::kafka::{KafkaArgs, KafkaTopic};
use crate::connectors::kinesis::producer::KinesisReplay;
use crate::connectors::kinesis::KinesisStream;

/// How fast to replay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speedup {
    /// Event time runs this many times faster than wall time.
    Factor(f64),
    /// No pacing.
    Max,
}

impl std::str::FromStr for Speedup {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "max" {
            return Ok(Speedup::Max);
        }
        match s.parse::<f64>() {
            Ok(f) if f > 0.0 && f.is_finite() => Ok(Speedup::Factor(f)),
            _ => Err(format!("expected a positive number or max, got {s:?}")),
        }
    }
}

/// Everything `taxiflow replay` needs, validated.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// Input files, replayed in this order.
    pub inputs: Vec<PathBuf>,
    /// `--format`.
    pub format: FormatChoice,
    /// `--to`.
    pub to: Destination,
    /// `--speedup`.
    pub speedup: Speedup,
    /// `--repeat`.
    pub repeat: u32,
    /// `--watermark-interval`.
    pub watermark_interval: Duration,
    /// How long to wait for the brokers at start and for the last acknowledgements at the end.
    pub timeout: Duration,
}

/// The key of a trip event (Kafka message key, Kinesis partition key): a hash of the payload as 16 hex digits
/// (taxi docs §2, refarch producer), the same for both streams.
pub fn trip_key(payload: &str) -> String {
    format!("{:016x}", taxiflow_dataflows::window::aggregate::key_hash(&payload))
}

/// Where a replay writes (`--to`).
#[derive(Clone, Debug)]
pub enum Destination {
    /// `kafka://BROKER[,BROKER]/TOPIC`.
    Kafka(KafkaTopic),
    /// `kinesis://STREAM`, with `--region` and `--endpoint-url`, and the shard list refresh interval.
    Kinesis(KinesisStream, crate::aws::AwsArgs, Duration),
}

impl Destination {
    /// Parses `--to`, with the Kinesis and Kafka settings.
    ///
    /// # Errors
    /// Neither a Kafka nor a Kinesis URL, or a bad `--kafka-config` setting.
    pub fn parse(url: &str, aws: &crate::aws::AwsArgs, shard_refresh: Duration, kafka: &KafkaArgs) -> anyhow::Result<Destination> {
        if url.starts_with("kinesis://") {
            Ok(Destination::Kinesis(KinesisStream::parse(url, "--to")?, aws.clone(), shard_refresh))
        } else {
            Ok(Destination::Kafka(KafkaTopic::parse(url, "--to")?.with_args(kafka)?))
        }
    }

    /// The URL, for messages.
    pub fn url(&self) -> String {
        match self {
            Destination::Kafka(t) => t.url(),
            Destination::Kinesis(s, ..) => s.url(),
        }
    }
}

/// The producer of a replay.
enum Producer {
    Kafka(Box<ReplayProducer>),
    Kinesis(Box<KinesisReplay>),
}

impl Producer {
    fn connect(to: &Destination, timeout: Duration) -> anyhow::Result<Producer> {
        Ok(match to {
            Destination::Kafka(topic) => {
                let p = ReplayProducer::connect(topic, timeout)?;
                tracing::info!(topic = %topic.topic, partitions = p.partitions(), "replaying");
                Producer::Kafka(Box::new(p))
            }
            Destination::Kinesis(stream, aws, refresh) => {
                let p = KinesisReplay::connect(stream, aws, *refresh)?;
                tracing::info!(stream = %stream.name, shards = p.shards(), "replaying");
                Producer::Kinesis(Box::new(p))
            }
        })
    }

    fn send_trip(&mut self, payload: String, event_time: u64) -> anyhow::Result<()> {
        match self {
            Producer::Kafka(p) => {
                p.send_trip(payload, event_time)?;
                p.poll(Duration::ZERO);
                p.resend_rejected().map(|_| ())
            }
            Producer::Kinesis(p) => p.send_trip(payload, event_time),
        }
    }

    fn acknowledged(&self) -> u64 {
        match self {
            Producer::Kafka(p) => p.deliveries().acknowledged,
            Producer::Kinesis(p) => p.deliveries().acknowledged,
        }
    }

    /// Sends the oldest-in-flight watermark to every partition or shard (`last`: the final one, after every
    /// trip).
    fn watermark_round(&mut self, report: &mut ReplayReport, last: bool) -> anyhow::Result<()> {
        let sent = match self {
            Producer::Kafka(p) => send_watermark(p, last)?,
            Producer::Kinesis(p) => p.watermark_round(last)?,
        };
        report.watermark_rounds += u64::from(sent);
        Ok(())
    }

    /// Delivers everything, sends the final watermark, and checks that every trip was acknowledged once.
    fn finish(&mut self, to: &Destination, timeout: Duration, report: &mut ReplayReport) -> anyhow::Result<()> {
        if let Producer::Kafka(p) = self {
            p.flush(timeout)?;
        }
        // Everything is acknowledged: the final watermark is the largest event time sent.
        self.watermark_round(report, true)?;
        let check = |d: &Deliveries| -> anyhow::Result<u64> {
            if d.failed > 0 {
                bail!("--to {}: {} events were not acknowledged: {}", to.url(), d.failed, d.first_error.clone().unwrap_or_default());
            }
            d.check_complete().with_context(|| format!("--to {}", to.url()))?;
            Ok(d.acknowledged)
        };
        report.acknowledged = match self {
            Producer::Kafka(p) => {
                p.flush(timeout)?;
                check(&p.deliveries())?
            }
            Producer::Kinesis(p) => check(p.deliveries())?,
        };
        Ok(())
    }
}

/// What a replay did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Trip events acknowledged by the broker.
    pub acknowledged: u64,
    /// Input rows that were not trips or could not be parsed (logged, not replayed).
    pub skipped: u64,
    /// Watermark rounds sent (each to every partition).
    pub watermark_rounds: u64,
}

/// Calls `f` with every trip of `files` in file order.
fn for_each_trip(files: &[Arc<InputFile<Format>>], mut f: impl FnMut(&Trip) -> anyhow::Result<()>) -> anyhow::Result<u64> {
    let mut csv = CsvLine::new();
    let mut skipped = 0;
    for file in files {
        let mut reader = SplitReader::open(&Split { file: file.clone(), start: 0, end: u64::MAX, worker: 0 })
            .with_context(|| format!("--input {}", file.path.display()))?;
        while reader.next_line().with_context(|| format!("--input {}", file.path.display()))?.is_some() {
            if reader.line().is_empty() {
                continue;
            }
            match file.format.decode(reader.line(), &mut csv) {
                Ok(Decoded::Record(t)) => f(&t)?,
                Ok(Decoded::Watermark(_)) | Ok(Decoded::Skip) => skipped += 1,
                Err(reason) => {
                    tracing::warn!(input = %file.path.display(), line = reader.line_number(), %reason, "row skipped");
                    skipped += 1;
                }
            }
        }
    }
    Ok(skipped)
}

/// Replays the inputs into Kafka or Kinesis.
///
/// # Errors
/// An unreadable input, an unreachable broker or service or unknown topic or stream (naming `--to`), or events
/// whose delivery failed (with the first reason).
pub fn replay(options: &ReplayOptions) -> anyhow::Result<ReplayReport> {
    let job = TaxiJob { format: options.format, ..TaxiJob::for_profile(Profile::Kda) };
    let files: Vec<Arc<InputFile<Format>>> = options.inputs.iter().map(|p| InputFile::inspect(p, &job).map(Arc::new)).collect::<anyhow::Result<_>>()?;
    let mut producer = Producer::connect(&options.to, options.timeout)?;

    // The time span of the input shifts repeated copies; only --repeat needs this extra pass over the input.
    let span = if options.repeat > 1 {
        let (mut min, mut max) = (u64::MAX, 0u64);
        for_each_trip(&files, |t| {
            min = min.min(t.event_time());
            max = max.max(t.event_time());
            Ok(())
        })?;
        max.saturating_sub(min) + 1
    } else {
        0
    };
    // Event time of the first trip sent: pacing is relative to it (taxi docs §2).
    let mut first: Option<u64> = None;

    let bar = indicatif::ProgressBar::new_spinner().with_style(
        indicatif::ProgressStyle::with_template("{spinner} replayed {pos} trips, {per_sec} {msg}").expect("valid template"),
    );
    let started = Instant::now();
    let mut report = ReplayReport::default();
    let mut next_watermark = Instant::now() + options.watermark_interval;
    let mut next_log = Instant::now() + Duration::from_secs(10);
    let mut trip_id = 0i64;
    let mut lag_s = 0.0f64;

    for copy in 0..options.repeat.max(1) as u64 {
        let shift = copy * span;
        let skipped = for_each_trip(&files, |t| {
            let mut trip = *t;
            trip.pickup_ms += shift;
            trip.dropoff_ms += shift;
            let first = *first.get_or_insert(trip.event_time());
            if let Speedup::Factor(f) = options.speedup {
                // A trip older than the first one (unordered input) is due at once.
                let due = started + Duration::from_secs_f64(trip.event_time().saturating_sub(first) as f64 / 1000.0 / f);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                lag_s = Instant::now().saturating_duration_since(due).as_secs_f64();
            }
            trip_id += 1;
            let payload = taxiflow_dataflows::jobs::taxi::formats::json_lines::trip_event_json(&trip, t.trip_id.unwrap_or(trip_id));
            producer.send_trip(payload, trip.event_time())?;
            if Instant::now() >= next_watermark {
                producer.watermark_round(&mut report, false)?;
                next_watermark = Instant::now() + options.watermark_interval;
            }
            let acknowledged = producer.acknowledged();
            bar.set_position(acknowledged);
            if Instant::now() >= next_log {
                let rate = acknowledged as f64 / started.elapsed().as_secs_f64();
                tracing::info!(acknowledged, rate = format!("{rate:.0}/s"), replay_lag_s = format!("{lag_s:.3}"), "replay progress");
                bar.set_message(format!("replay lag {lag_s:.1} s"));
                next_log = Instant::now() + Duration::from_secs(10);
            }
            Ok(())
        })?;
        report.skipped += skipped;
    }
    if first.is_none() {
        bail!("--input: no trips to replay");
    }
    producer.finish(&options.to, options.timeout, &mut report)?;
    bar.finish_and_clear();
    Ok(report)
}

/// Sends the oldest-in-flight watermark to every partition. The partition count is re-read first (short
/// timeout); when the brokers do not answer, the last known count is used: a broker outage is survived by
/// librdkafka's retries, and only undeliverable events fail the replay.
fn send_watermark(producer: &mut ReplayProducer, last: bool) -> anyhow::Result<bool> {
    producer.poll(Duration::ZERO);
    if let Err(e) = producer.refresh_partitions(Duration::from_secs(1)) {
        tracing::warn!(error = %format!("{e:#}"), partitions = producer.partitions(), "partition count not refreshed");
    }
    let watermark = if last { producer.deliveries().final_watermark() } else { producer.deliveries().watermark() };
    if let Some(w) = watermark {
        producer.send_watermark(w)?;
    }
    Ok(watermark.is_some())
}

#[cfg(test)]
mod tests {
    #[test]
    fn trip_keys_are_the_hash_of_the_payload_as_before() {
        // The key the Kafka replay used before this function existed: the hash of the payload `String`.
        let payload = String::from(r#"{"type":"trip","trip_id":1}"#);
        assert_eq!(super::trip_key(&payload), format!("{:016x}", taxiflow_dataflows::window::aggregate::key_hash(&payload)));
        assert_eq!(super::trip_key(&payload).len(), 16);
        assert_ne!(super::trip_key(&payload), super::trip_key("{}"));
    }
}
