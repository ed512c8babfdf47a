//! `taxiflow generate JOB`: a job's input events into Kinesis, Kafka or a file. `ticker` is the blog's producer
//! (`taxiflow_dataflows::jobs::ticker::generator`): one shard (partition key `"partitionkey"`, as the blog puts
//! every record), a random ticker of AAPL/AMZN/MSFT/INTC/TBV, a price uniform in [0, 100) rounded to cents, and
//! `event_time` the local wall-clock time — or, with `--start-time`, a deterministic event time per event, so
//! that a seed and a start time give the same bytes every time. `devices` is the alerts job's input
//! (`taxiflow_dataflows::jobs::alerts::generator`): device events of `--devices` devices, keyed by device number
//! (so a Kafka topic is partitioned by device), with late, redelivered and malformed records in fixed shares; its
//! `--start-time` is an instant (RFC 3339, or ms since the Unix epoch).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use taxiflow_dataflows::jobs::alerts::generator::DeviceGenerator;
use taxiflow_dataflows::jobs::ticker::generator::TickGenerator;

use crate::connectors::kafka::producer::ReplayProducer;
use crate::connectors::kafka::{KafkaArgs, KafkaTopic};
use crate::connectors::kinesis::producer::KinesisReplay;
use crate::connectors::kinesis::KinesisStream;

/// Flags of `taxiflow generate`.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// The input to generate: ticker (the ticker job's) or devices (the alerts job's).
    #[arg(value_name = "JOB")]
    pub job: String,
    /// Destination: kinesis://STREAM, kafka://BROKER[,BROKER]/TOPIC (both must exist) or a file path.
    #[arg(long, value_name = "URL|PATH")]
    pub to: String,
    /// Events per second, e.g. 1000 or 1000/s (default: as fast as the destination takes them).
    #[arg(long, value_name = "N/s", value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Seed of the random events (default: random).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Number of events (default: until SIGINT/SIGTERM).
    #[arg(long)]
    pub count: Option<u64>,
    /// Event time of the first event: a local date-time (2026-12-01T08:00:00) or ms since the Unix epoch; events
    /// then follow --event-spacing apart. Default: each event's time is the local time it is made (the blog's
    /// datetime.now()); devices: the first event is at the current time.
    #[arg(long, value_name = "TIME")]
    pub start_time: Option<String>,
    /// With --start-time: the event time between two events.
    #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration, requires = "start_time")]
    pub event_spacing: Duration,
    /// With --start-time: move each event back by a random amount up to this, so the stream is out of order
    /// (more than the 5s watermark delay makes late events).
    #[arg(long, value_parser = humantime::parse_duration, requires = "start_time")]
    pub max_disorder: Option<Duration>,
    /// devices: the number of devices, device numbers 0 to N − 1 (default 1000).
    #[arg(long, value_name = "N")]
    pub devices: Option<u64>,
    /// AWS settings (Kinesis).
    #[command(flatten)]
    pub aws: crate::aws::AwsArgs,
    /// Kafka client settings.
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// Parses a rate: a positive number of events per second, optionally followed by `/s`.
///
/// # Errors
/// Anything else.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let n = text.strip_suffix("/s").unwrap_or(text);
    match n.parse::<f64>() {
        Ok(r) if r > 0.0 && r.is_finite() => Ok(r),
        _ => Err(format!("expected a positive number of events per second, e.g. 1000/s, got {text:?}")),
    }
}

/// The partition key of every event (the blog's producer).
const PARTITION_KEY: &str = "partitionkey";

enum Destination {
    File(std::io::BufWriter<std::fs::File>),
    Kafka(Box<ReplayProducer>),
    Kinesis(Box<KinesisReplay>),
}

impl Destination {
    fn open(args: &GenerateArgs) -> anyhow::Result<Destination> {
        let to = &args.to;
        Ok(if to.starts_with("kinesis://") {
            Destination::Kinesis(Box::new(KinesisReplay::connect(&KinesisStream::parse(to, "--to")?, &args.aws, Duration::from_secs(10))?))
        } else if to.starts_with("kafka://") {
            Destination::Kafka(Box::new(ReplayProducer::connect(&KafkaTopic::parse(to, "--to")?.with_args(&args.kafka)?, Duration::from_secs(30))?))
        } else {
            let file = std::fs::File::create(to).with_context(|| format!("--to {to}: cannot create"))?;
            Destination::File(std::io::BufWriter::with_capacity(1 << 20, file))
        })
    }

    fn send(&mut self, line: String, key: String, event_time: u64) -> anyhow::Result<()> {
        match self {
            Destination::File(w) => {
                w.write_all(line.as_bytes())?;
                w.write_all(b"\n")?;
                Ok(())
            }
            Destination::Kafka(p) => {
                p.send_event(line, key, event_time)?;
                p.poll(Duration::ZERO);
                p.resend_rejected().map(|_| ())
            }
            Destination::Kinesis(p) => p.send_event(line, key, event_time),
        }
    }

    /// Delivers everything; returns the events acknowledged (written, for a file).
    fn finish(&mut self, to: &str, sent: u64) -> anyhow::Result<u64> {
        let deliveries = match self {
            Destination::File(w) => {
                w.flush().with_context(|| format!("--to {to}: cannot write"))?;
                return Ok(sent);
            }
            Destination::Kafka(p) => {
                p.flush(Duration::from_secs(60))?;
                let d = p.deliveries();
                (d.acknowledged, d.failed, d.first_error.clone())
            }
            Destination::Kinesis(p) => {
                p.send_batch()?;
                let d = p.deliveries();
                (d.acknowledged, d.failed, d.first_error.clone())
            }
        };
        if deliveries.1 > 0 {
            bail!("--to {to}: {} events were not acknowledged: {}", deliveries.1, deliveries.2.unwrap_or_default());
        }
        Ok(deliveries.0)
    }
}

/// The event time of `--start-time`: ms since the Unix epoch, else a local date-time (ticker) or an RFC 3339
/// instant (devices).
fn start_ms(text: &str, devices: bool) -> anyhow::Result<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    if devices {
        return taxiflow_dataflows::jobs::alerts::event::parse_instant(text).map(|ms| ms as i64).ok_or_else(|| anyhow::anyhow!("--start-time {text:?}: not an RFC 3339 instant (2026-03-02T08:00:00Z) or ms since the Unix epoch"));
    }
    taxiflow_dataflows::jobs::ticker::local_time::parse_local_date_time(text).map(|ms| ms as i64).map_err(|e| anyhow::anyhow!("--start-time: {e}"))
}

/// The local wall-clock time as µs since the Unix epoch of that date and time read as UTC (the blog's
/// `datetime.now()`, which has no zone).
fn local_now_us() -> i64 {
    chrono::Local::now().naive_local().and_utc().timestamp_micros()
}

/// How far ahead of its schedule `--rate` lets the generator run before it sleeps (1 ms).
const PACING_STEP: Duration = Duration::from_millis(1);

/// Runs `taxiflow generate`.
///
/// # Errors
/// An unknown job, an unreachable destination, or events the destination did not acknowledge.
pub fn generate(args: &GenerateArgs) -> anyhow::Result<()> {
    let devices = match args.job.as_str() {
        "ticker" => false,
        "devices" => true,
        other => bail!("taxiflow generate {other:?}: events can be generated for the ticker job (ticker) and the alerts job (devices); the taxi job replays real trips: taxiflow replay"),
    };
    if !devices && args.devices.is_some() {
        bail!("--devices: only taxiflow generate devices has devices");
    }
    let seed = args.seed.unwrap_or_else(|| fastrand::u64(..));
    let deterministic = args.start_time.is_some();
    let spacing_us = args.event_spacing.as_nanos() as f64 / 1000.0;
    let start = match &args.start_time {
        Some(t) => start_ms(t, devices)?,
        None if devices => crate::runtime::clock::now_ms() as i64,
        None => local_now_us() / 1000,
    };
    let disorder = args.max_disorder.map_or(0, |d| d.as_millis() as u64);
    let mut generator = TickGenerator::new(seed, start, spacing_us, disorder);
    let mut device_events = DeviceGenerator::new(seed, args.devices.unwrap_or(1000), start, spacing_us, disorder);
    let mut destination = Destination::open(args)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed)).map_err(|e| anyhow::anyhow!("cannot install the SIGINT/SIGTERM handler: {e}"))?;
    let bar = indicatif::ProgressBar::new(args.count.unwrap_or(0)).with_style(
        indicatif::ProgressStyle::with_template(if args.count.is_some() { "generated {pos}/{len} events {per_sec} eta {eta}" } else { "{spinner} generated {pos} events {per_sec}" }).expect("valid template"),
    );
    let started = Instant::now();
    let mut sent = 0u64;
    while args.count.is_none_or(|n| sent < n) && !stop.load(Ordering::Relaxed) {
        if let Some(rate) = args.rate {
            // Paced in steps of PACING_STEP: a sleep per event (50,000 a second at --rate 50000) would cost the
            // generator more CPU than the events, and the producer batches them for linger.ms anyway.
            let due = started + Duration::from_secs_f64(sent as f64 / rate);
            let now = Instant::now();
            if due > now + PACING_STEP {
                std::thread::sleep(due - now);
            }
        }
        let (line, key, event_time) = if devices {
            let (line, time, device) = device_events.next_record();
            (line, device.to_string(), time as i64)
        } else if deterministic {
            let (line, time) = generator.next_event();
            (line, PARTITION_KEY.to_string(), time)
        } else {
            // The blog's producer: the event time is the time the event is made.
            let now = local_now_us();
            (generator.event_at(now), PARTITION_KEY.to_string(), now.div_euclid(1000))
        };
        destination.send(line, key, event_time.max(0) as u64)?;
        sent += 1;
        if sent.is_multiple_of(1024) {
            bar.set_position(sent);
        }
    }
    let acknowledged = destination.finish(&args.to, sent)?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let noun = if devices { "device" } else { "ticker" };
    println!("generate: {acknowledged} {noun} events acknowledged (seed {seed}), {:.0} events/s in {seconds:.3} s", acknowledged as f64 / seconds.max(1e-9));
    Ok(())
}
