//! The Kafka source of `taxiflow run --source kafka://BROKER/TOPIC`: partitions assigned to workers explicitly
//! (partition `p` to worker `p mod readers`, with `readers = min(workers, partitions at start)`, also for
//! partitions added later; no consumer-group rebalancing inside the dataflow; a worker that owns no partition
//! finishes at once and never holds progress back),
//! per-partition watermarks from watermark records, and a capability at the minimum over the worker's
//! partitions (taxi docs §3 "min over partitions of the last watermark event").
//!
//! * `--start earliest|latest`: where partitions start.
//! * `--stop-at latest`: a bounded read, like Flink's bounded `KafkaSource`: the end offsets of all partitions are
//!   taken at start; a partition is finished when it reaches its end offset; when all are, the source releases
//!   its capability, so every window closes, and the job ends. Without it, the job reads until stopped.
//! * `--idle-timeout D`: a partition without records for `D` stops holding progress back; the frontier is the
//!   minimum over the other partitions, and when all are idle, the highest frontier any partition reached.
//!   Correctness cost: a trip that an idle partition delivers later with an event time the frontier has already
//!   passed cannot enter its (already emitted) window; it goes to the dead-letter output as `late`.
//! * The next offset of every partition is tracked (per-partition state of the operator, partition → next
//!   offset) and committed to the consumer group every 5 s for monitoring only; positions for recovery are the
//!   checkpoint work's.
//! * Metrics: `taxiflow_records_in_total` (records consumed), and per partition every 5 s
//!   `taxiflow_kafka_consumer_lag_records` and `taxiflow_kafka_millis_behind_latest`.
//! * Partition counts and end offsets are read by a background thread per worker, never by the dataflow thread.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use taxiflow_dataflows::epoch::Time;
use taxiflow_dataflows::{CheckpointPart, Job, RecordFormat};
use timely::dataflow::Scope;

use super::{KafkaArgs, KafkaTopic};
use crate::connectors::{Source, StopAt, StreamArgs};
use crate::runtime::checkpoint::{Checkpoint, SourcePosition, WatermarkState};
use crate::runtime::source_shell::{build_source, Position, SourceBatch, SourceContext, SourceStreams};
use crate::runtime::watermark::PartitionWatermark;

/// Messages read per activation.
pub const MESSAGES_PER_ACTIVATION: usize = 8192;

/// `--start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StartPosition {
    /// The oldest retained offset of each partition.
    Earliest,
    /// Only records produced after the start.
    Latest,
}

/// Flags of the Kafka source.
#[derive(Clone, Debug, clap::Args)]
pub struct KafkaSourceArgs {
    /// Consumer group the Kafka source commits its offsets to (monitoring only).
    #[arg(long, default_value = "taxiflow")]
    pub group: String,
}

/// Settings of the Kafka source.
#[derive(Clone, Debug)]
pub struct KafkaSourceOptions {
    /// `--source`.
    pub topic: KafkaTopic,
    /// `--group`: consumer group for offset commits (monitoring only).
    pub group: String,
    /// `--start`.
    pub start: StartPosition,
    /// `--stop-at latest`.
    pub stop_at_latest: bool,
    /// `--idle-timeout`.
    pub idle_timeout: Option<Duration>,
    /// How long to wait for metadata from the brokers.
    pub timeout: Duration,
}

struct PartitionState {
    clock: PartitionWatermark,
    /// Offset of the next record to read.
    next_offset: i64,
    /// `--stop-at latest`: the end offset taken at start.
    end: Option<i64>,
    last_record: Instant,
    /// Kafka timestamp (ms since the Unix epoch) of the last record read.
    last_timestamp_ms: Option<i64>,
    /// Read since the last checkpoint cut.
    dirty: bool,
}

impl PartitionState {
    fn finished(&self) -> bool {
        self.end.is_some_and(|end| self.next_offset >= end)
    }

    /// A partition starting at `start` (ending at `end` for a bounded read) with a clock like `clock`, or where
    /// `restored` left it.
    fn new(clock: &PartitionWatermark, start: i64, end: Option<i64>, restored: Option<&SourcePosition>) -> Self {
        let (next_offset, end, clock) = match restored {
            Some(SourcePosition::Kafka { next_offset, end: restored_end, watermark, .. }) => (*next_offset, restored_end.or(end).filter(|_| end.is_some()), watermark.clock(clock)),
            _ => (start, end, clock.fresh(None)),
        };
        PartitionState { clock, next_offset, end, last_record: Instant::now(), last_timestamp_ms: None, dirty: true }
    }

    fn position(&self, partition: i32) -> CheckpointPart {
        SourcePosition::Kafka { partition, next_offset: self.next_offset, end: self.end, watermark: WatermarkState::of(&self.clock) }.part()
    }
}

/// The checkpoint positions of the partitions read since the last cut.
fn positions(partitions: &mut BTreeMap<i32, PartitionState>) -> Vec<CheckpointPart> {
    let mut parts = Vec::new();
    for (p, s) in partitions.iter_mut().filter(|(_, s)| s.dirty) {
        s.dirty = false;
        parts.push(s.position(*p));
    }
    parts
}

/// The restored position of partition `p`.
fn restored_position(restored: Option<&Checkpoint>, p: i32) -> Option<&SourcePosition> {
    restored.and_then(|c| c.sources.get(&SourcePosition::kafka_key(p)))
}

/// What the background watcher last learned from the brokers.
#[derive(Default)]
struct Watched {
    /// Partition count of the topic.
    partitions: i32,
    /// High watermark (end offset) of each of this worker's partitions.
    high: BTreeMap<i32, i64>,
}

/// A thread that every 5 s reads the topic's partition count and the end offsets of this worker's partitions
/// with its own consumer, so that the dataflow thread never waits on the network. It ends when dropped.
struct Watcher {
    watched: std::sync::Arc<std::sync::Mutex<Watched>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Watcher {
    fn start(options: &KafkaSourceOptions, worker: usize, readers: usize) -> anyhow::Result<Watcher> {
        let consumer = consumer(options)?;
        let watched = std::sync::Arc::new(std::sync::Mutex::new(Watched::default()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (w, s, topic) = (watched.clone(), stop.clone(), options.topic.clone());
        std::thread::Builder::new().name(format!("kafka-watch-{worker}")).spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(count) = partition_count(&consumer, &topic, Duration::from_secs(5)) {
                    let mut high = BTreeMap::new();
                    for p in (0..count).filter(|p| *p as usize % readers == worker) {
                        if let Ok((_, h)) = consumer.fetch_watermarks(&topic.topic, p, Duration::from_secs(5)) {
                            high.insert(p, h);
                        }
                    }
                    *w.lock().expect("watched") = Watched { partitions: count, high };
                }
                for _ in 0..50 {
                    if s.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })?;
        Ok(Watcher { watched, stop })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Checks that the topic exists and returns its partition count.
///
/// # Errors
/// `--source`: the brokers cannot be reached or the topic is unknown.
pub fn partition_count(consumer: &BaseConsumer, topic: &KafkaTopic, timeout: Duration) -> anyhow::Result<i32> {
    let url = topic.url();
    let metadata = consumer.fetch_metadata(Some(&topic.topic), timeout).with_context(|| format!("--source {url}: brokers unreachable"))?;
    match metadata.topics().iter().find(|t| t.name() == topic.topic) {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(t.partitions().len() as i32),
        _ => anyhow::bail!("--source {url}: unknown topic"),
    }
}

/// Creates the consumer of one worker (no subscription: partitions are assigned explicitly).
///
/// # Errors
/// `--source`: invalid client configuration.
pub fn consumer(options: &KafkaSourceOptions) -> anyhow::Result<BaseConsumer> {
    options
        .topic
        .client_config_with(&[
            ("group.id", &options.group),
            ("enable.auto.commit", "false"),
            ("session.timeout.ms", "6000"),
            ("enable.partition.eof", "false"),
            // Some Kafka-protocol brokers (noida-db, used in tests) answer a fetch from the start of a large log
            // with more than librdkafka's 100 MB default allows, which librdkafka treats as a broken connection.
            ("receive.message.max.bytes", "1000000000"),
        ])
        .create()
        .with_context(|| format!("--source {}: cannot create a consumer", options.topic.url()))
}

/// The Kafka source (`--source kafka://BROKER[,BROKER]/TOPIC`).
pub struct KafkaSource {
    options: KafkaSourceOptions,
}

impl KafkaSource {
    /// The source of `url` with the stream and Kafka flags.
    ///
    /// # Errors
    /// A malformed URL, `--start` value or `--kafka-config` setting, named.
    pub fn from_args(url: &str, stream: &StreamArgs, kafka: &KafkaArgs, args: &KafkaSourceArgs) -> anyhow::Result<KafkaSource> {
        Ok(KafkaSource {
            options: KafkaSourceOptions {
                topic: KafkaTopic::parse(url, "--source")?.with_args(kafka)?,
                group: args.group.clone(),
                start: match stream.start.as_str() {
                    "earliest" | "trim-horizon" => StartPosition::Earliest,
                    "latest" => StartPosition::Latest,
                    other => anyhow::bail!("--start {other:?}: a Kafka source starts at earliest or latest"),
                },
                stop_at_latest: stream.stop_at == Some(StopAt::Latest),
                idle_timeout: stream.idle_timeout,
                timeout: Duration::from_secs(30),
            },
        })
    }

    /// The source of `options`.
    pub fn new(options: KafkaSourceOptions) -> KafkaSource {
        KafkaSource { options }
    }
}

impl<J: Job> Source<J> for KafkaSource {
    fn describe(&self) -> String {
        self.options.topic.url()
    }

    fn prepare(&mut self, job: &J, _topology: crate::runtime::workers::Topology, _restored: Option<&Checkpoint>) -> anyhow::Result<()> {
        job.stream_format().map_err(|e| anyhow::anyhow!(e))?;
        // Fail fast on an unreachable broker or unknown topic, before any worker starts.
        partition_count(&consumer(&self.options)?, &self.options.topic, self.options.timeout)?;
        Ok(())
    }

    fn build<'s>(&self, scope: Scope<'s, Time>, ctx: SourceContext<'_, J>) -> anyhow::Result<SourceStreams<'s, J::Record>> {
        kafka_source(scope, self.options.clone(), &ctx)
    }
}

/// Builds the Kafka source of worker `ctx.worker` of `ctx.peers`. Outputs records, dead letters and checkpoint
/// parts, like the file source. Partitions in `ctx.restored` resume at their checkpointed next offset, watermark
/// and (bounded read) end offset; `--start` applies to the others.
///
/// # Errors
/// The consumer cannot be created, the topic is unknown, or its offsets cannot be read (all naming `--source`).
pub fn kafka_source<'s, J: Job>(scope: Scope<'s, Time>, options: KafkaSourceOptions, ctx: &SourceContext<'_, J>) -> anyhow::Result<SourceStreams<'s, J::Record>> {
    let (worker, peers, restored) = (ctx.worker, ctx.peers, ctx.restored.clone());
    let template = ctx.clock(None);
    let format = ctx.job.stream_format().map_err(|e| anyhow::anyhow!(e))?;
    let lines_per_message = format.lines_per_message();
    let mut scratch = <J::Format as RecordFormat>::Scratch::default();
    let consumer = consumer(&options)?;
    let url = options.topic.url();
    let count = partition_count(&consumer, &options.topic, options.timeout)?;
    // Workers that read partitions; the same set receives the partitions added later.
    let readers = peers.min(count as usize).max(1);
    let mut partitions: BTreeMap<i32, PartitionState> = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for p in (0..count).filter(|p| *p as usize % readers == worker) {
        let (low, high) = consumer
            .fetch_watermarks(&options.topic.topic, p, options.timeout)
            .with_context(|| format!("--source {url}: cannot read the offsets of partition {p}"))?;
        let start = match options.start {
            StartPosition::Earliest => low,
            StartPosition::Latest => high,
        };
        let state = PartitionState::new(&template, start, options.stop_at_latest.then_some(high), restored_position(restored.as_deref(), p));
        assignment.add_partition_offset(&options.topic.topic, p, Offset::Offset(state.next_offset)).context("assignment")?;
        partitions.insert(p, state);
    }
    consumer.assign(&assignment).with_context(|| format!("--source {url}: cannot assign partitions"))?;
    tracing::info!(
        worker,
        partitions = ?partitions.iter().map(|(p, s)| (*p, s.next_offset, s.end)).collect::<Vec<_>>(),
        "kafka source assigned (partition, start offset, end offset)"
    );

    let watcher = Watcher::start(&options, worker, readers)?;
    // Dead-letter `source` of each partition, e.g. kafka://127.0.0.1:9092/trips/0.
    let mut sources: BTreeMap<i32, String> = (0..count).map(|p| (p, format!("{url}/{p}"))).collect();

    let mut next_commit = Instant::now() + Duration::from_secs(5);
    Ok(build_source(scope, "kafka_source", ctx, move |outputs| {
        let Some(floor) = outputs.floor() else { return };
        let mut batch = SourceBatch::default();
        let mut received = 0;
        let limit = outputs.batch_limit(MESSAGES_PER_ACTIVATION);
        while received < limit {
            match consumer.poll(Duration::ZERO) {
                None => break,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "kafka consumer error");
                    break;
                }
                Some(Ok(message)) => {
                    received += 1;
                    let p = message.partition();
                    let Some(state) = partitions.get_mut(&p) else { continue };
                    if state.finished() {
                        continue; // past the end offset of a bounded read
                    }
                    if message.offset() > state.next_offset {
                        skipped(p, state.next_offset, message.offset());
                    }
                    state.next_offset = message.offset() + 1;
                    state.dirty = true;
                    state.last_record = Instant::now();
                    state.last_timestamp_ms = message.timestamp().to_millis();
                    let raw = message.payload().unwrap_or_default();
                    let source = sources.entry(p).or_insert_with(|| format!("{url}/{p}"));
                    let offset = message.offset() as u64;
                    if lines_per_message {
                        // Each `\n`-terminated line is a record; its dead letter gives the line within the message.
                        for (i, line) in message_lines(raw).enumerate() {
                            let decoded = format.decode(line, &mut scratch);
                            batch.accept(decoded, &mut state.clock, floor, line, || Position { source: source.as_str().into(), line: i as u64 + 1, offset });
                        }
                    } else {
                        let decoded = format.decode(raw, &mut scratch);
                        batch.accept(decoded, &mut state.clock, floor, raw, || Position { source: source.as_str().into(), line: 0, offset });
                    }
                }
            }
        }
        outputs.send(&mut batch);
        if received < limit {
            // Caught up: move past offsets without a record for the application (transaction markers, records
            // of aborted transactions), as the consumer's position does, so that a bounded read of a topic
            // written with transactions reaches its end offset.
            past_markers(&consumer, &options.topic.topic, &mut partitions);
        }

        let now = Instant::now();
        if now >= next_commit {
            commit(&consumer, &options.topic.topic, &partitions);
            if let Ok(watched) = watcher.watched.try_lock() {
                report_lag(&watched, &partitions);
                if !options.stop_at_latest {
                    add_new_partitions(&consumer, &options, &template, &watched, &mut partitions, restored.as_deref());
                }
            }
            next_commit = now + Duration::from_secs(5);
        }

        // Progress: the minimum over partitions that are neither finished nor idle.
        let active = partitions.values().filter(|s| !s.finished());
        let busy = active.clone().filter(|s| options.idle_timeout.is_none_or(|idle| now.duration_since(s.last_record) < idle));
        if active.clone().next().is_none() {
            commit(&consumer, &options.topic.topic, &partitions);
            if let Ok(watched) = watcher.watched.try_lock() {
                report_lag(&watched, &partitions);
            }
            outputs.finish(positions(&mut partitions));
            tracing::debug!(worker, "kafka source finished");
            return;
        }
        // Idle partitions do not hold progress back, but nothing goes past the highest frontier a partition
        // reached: with every partition idle, that maximum is the frontier.
        let highest = active.clone().map(|s| s.clock.frontier()).max();
        if let Some(frontier) = busy.map(|s| s.clock.frontier()).min().or(highest) {
            outputs.advance_to(frontier);
        }
        if outputs.checkpoint_due() {
            outputs.cut(positions(&mut partitions));
        }
        outputs.reschedule((received == 0).then_some(Duration::from_millis(5)));
    }))
}

/// Sets the consumer-lag gauges of each partition: `taxiflow_kafka_consumer_lag_records` (end offset, as the
/// watcher last read it, minus the next offset) and `taxiflow_kafka_millis_behind_latest` (now minus the broker
/// timestamp of the last record read, while records remain; 0 when caught up), the Kafka analogue of Kinesis'
/// `millisBehindLatest` the reference monitors (taxi docs §5).
fn report_lag(watched: &Watched, partitions: &BTreeMap<i32, PartitionState>) {
    let now_ms = crate::runtime::clock::now_ms() as i64;
    for (p, s) in partitions {
        // The watcher's end offset, or for a bounded read the one taken at start.
        let Some(high) = watched.high.get(p).copied().or(s.end) else { continue };
        let lag = (high - s.next_offset).max(0);
        let behind = if lag == 0 { 0 } else { s.last_timestamp_ms.map_or(0, |t| (now_ms - t).max(0)) };
        metrics::gauge!("taxiflow_kafka_consumer_lag_records", "partition" => p.to_string()).set(lag as f64);
        metrics::gauge!("taxiflow_kafka_millis_behind_latest", "partition" => p.to_string()).set(behind as f64);
    }
}

/// Counts offsets `from..to` of partition `p` that the consumer skipped: transaction markers (one after every
/// transaction), records of aborted transactions (not delivered to a `read_committed` consumer) and records
/// deleted by retention.
fn skipped(p: i32, from: i64, to: i64) {
    tracing::debug!(partition = p, from, skipped = to - from, "offsets skipped: transaction markers, aborted records, or records deleted by retention");
    metrics::counter!("taxiflow_kafka_offsets_skipped_total", "partition" => p.to_string()).increment((to - from) as u64);
}

/// Advances each partition's next offset to the consumer's position where that is ahead (nothing is queued for
/// the application in between: the position moves past transaction markers and aborted records only when no
/// record precedes them). A local call, no request to the broker.
fn past_markers(consumer: &BaseConsumer, topic: &str, partitions: &mut BTreeMap<i32, PartitionState>) {
    let Ok(position) = consumer.position() else { return };
    for e in position.elements_for_topic(topic) {
        let (Offset::Offset(at), Some(state)) = (e.offset(), partitions.get_mut(&e.partition())) else { continue };
        let at = state.end.map_or(at, |end| at.min(end));
        if at > state.next_offset && !state.finished() {
            skipped(e.partition(), state.next_offset, at);
            state.next_offset = at;
            state.dirty = true;
        }
    }
}

/// Commits the next offsets to the consumer group (monitoring only).
fn commit(consumer: &BaseConsumer, topic: &str, partitions: &BTreeMap<i32, PartitionState>) {
    let mut list = TopicPartitionList::new();
    for (p, s) in partitions {
        let _ = list.add_partition_offset(topic, *p, Offset::Offset(s.next_offset));
    }
    if let Err(e) = consumer.commit(&list, CommitMode::Async) {
        tracing::debug!(error = %e, "offset commit failed");
    }
}

/// Assigns partitions added to the topic since the start that belong to this worker, from their beginning (or
/// their checkpointed position).
fn add_new_partitions(consumer: &BaseConsumer, options: &KafkaSourceOptions, clock: &PartitionWatermark, watched: &Watched, partitions: &mut BTreeMap<i32, PartitionState>, restored: Option<&Checkpoint>) {
    let mut added = TopicPartitionList::new();
    let new: Vec<i32> = watched.high.keys().copied().filter(|p| !partitions.contains_key(p)).collect();
    for p in new {
        let state = PartitionState::new(clock, 0, None, restored_position(restored, p));
        let offset = if state.next_offset == 0 { Offset::Beginning } else { Offset::Offset(state.next_offset) };
        let _ = added.add_partition_offset(&options.topic.topic, p, offset);
        partitions.insert(p, state);
    }
    if added.count() > 0 {
        tracing::info!(partitions = added.count(), total = watched.partitions, "new partitions assigned");
        if let Err(e) = consumer.incremental_assign(&added) {
            tracing::warn!(error = %e, "cannot assign new partitions");
        }
    }
}

/// The lines of a message that may hold several (`RecordFormat::lines_per_message`): the segments between `\n`s,
/// without a last empty one (a message that ends with `\n`).
fn message_lines(payload: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = payload.strip_suffix(b"\n").unwrap_or(payload);
    let empty = payload.is_empty();
    body.split(|&b| b == b'\n').filter(move |_| !empty)
}

#[cfg(test)]
mod message_line_tests {
    use super::message_lines;

    #[test]
    fn a_message_is_split_into_its_lines() {
        let lines = |p: &[u8]| message_lines(p).map(|l| String::from_utf8_lossy(l).into_owned()).collect::<Vec<_>>();
        assert_eq!(lines(b"a\nb\n"), ["a", "b"]);
        assert_eq!(lines(b"a\nb"), ["a", "b"]);
        assert_eq!(lines(b"a"), ["a"]);
        assert_eq!(lines(b"a\n\nb"), ["a", "", "b"]);
        assert!(lines(b"").is_empty());
        assert_eq!(lines(b"\n"), [""]);
    }
}
