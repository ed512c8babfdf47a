//! The Kinesis source of `taxiflow run --source kinesis://STREAM`.
//!
//! - **Shards to workers**: `readers = min(workers, open shards at start)`; a shard goes to the reader of its
//!   root (its oldest listed ancestor through `ParentShardId`, so a split's children stay with their parent),
//!   and roots are dealt to the readers in the order of their ids. A worker that reads no shard, or whose
//!   shards have all ended without a child it reads, finishes and never holds progress back.
//! - **Reading**: each reader worker has a background thread (single-threaded tokio runtime) that lists the
//!   shards (every `--shard-refresh-interval`, default 10 s) and runs a `GetShardIterator`/`GetRecords` loop per
//!   shard within the service limits (at most one `GetRecords` per shard every `--poll-interval`, default
//!   250 ms, i.e. 4 of the 5 reads per second a shard allows, and no faster than 2 MB/s per shard), with
//!   exponential backoff on `ProvisionedThroughputExceededException`; expired iterators are renewed
//!   `AFTER_SEQUENCE_NUMBER` the last record read. Batches go to the dataflow through a bounded channel, so a
//!   slow dataflow slows the reads instead of filling memory.
//! - **Resharding** (AWS "Resharding a stream"): a shard is read only after its parents are finished, i.e.
//!   after the dataflow has taken every record of each parent (workers of one process share that knowledge;
//!   with several processes, a merge whose parents are read in different processes is the one case where the
//!   child may start before its adjacent parent is finished). A child inherits the largest final watermark of
//!   its parents, and a finished parent keeps holding progress back until its children on the same worker have
//!   started. Closed shards are dropped once read.
//! - **KPL**: aggregated records are de-aggregated ([`super::deaggregate`]).
//! - **Event time**: per-shard watermarks (from watermark records, or the job's bounded out-of-orderness), records
//!   decoded with the job's stream format, as for Kafka partitions; `--idle-timeout`.
//! - **Positions**: the last sequence number read per shard is kept (for checkpoints, resumed with
//!   `AFTER_SEQUENCE_NUMBER`). Dead letters name `kinesis://STREAM/SHARD/SEQUENCE` and the sub-record index.
//! - **`--start`**: `trim-horizon` (default), `latest`, `at-timestamp:T` (RFC 3339 or ms since the Unix epoch)
//!   for the shards present at start; shards created later are read from their beginning.
//! - **`--stop-at latest`**: the shards present at start are read up to the records present at start
//!   (a `GetRecords` answer with no records and `millisBehindLatest` 0, or the shard's end for closed ones),
//!   then all windows close and the job ends.
//! - **Metrics**: `taxiflow_kinesis_millis_behind_latest{shard}`, `taxiflow_kinesis_iterator_age_ms{shard}` (now
//!   minus the arrival time of the last record read, 0 when caught up), `taxiflow_kinesis_records_total{shard}`,
//!   `taxiflow_kinesis_throttles_total{shard}`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_kinesis::Client;
use taxiflow_dataflows::epoch::Time;
use taxiflow_dataflows::{CheckpointPart, Job, RecordFormat};
use timely::dataflow::Scope;

use super::{list_shards, KinesisStream, ShardInfo};
use crate::connectors::{Source, StopAt, StreamArgs};
use crate::runtime::checkpoint::{Checkpoint, SourcePosition, WatermarkState};
use crate::runtime::source_shell::{build_source, Position, SourceBatch, SourceContext, SourceStreams};
use crate::runtime::watermark::PartitionWatermark;

/// Flags of the Kinesis source.
#[derive(Clone, Debug, clap::Args)]
pub struct KinesisArgs {
    /// Kinesis: how often the shard list is read again (new shards after a resharding; replay and generate:
    /// the open shards that get watermark records).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub shard_refresh_interval: Duration,
    /// Kinesis: the least time between two GetRecords calls on one shard (the service allows 5 per second).
    #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
}

/// The Kinesis source (`--source kinesis://STREAM`).
pub struct KinesisSource {
    options: KinesisSourceOptions,
    /// Workers that read shards: `min(workers, open shards at start)`, from [`Source::prepare`].
    readers: usize,
    /// Shards the dataflow has finished, shared by the workers of this process.
    finished: FinishedShards,
}

impl KinesisSource {
    /// The source of `url` with the stream, Kinesis and AWS flags.
    ///
    /// # Errors
    /// A malformed URL or `--start` value, named.
    pub fn from_args(url: &str, stream: &StreamArgs, kinesis: &KinesisArgs, aws: &crate::aws::AwsArgs) -> anyhow::Result<KinesisSource> {
        Ok(KinesisSource::new(KinesisSourceOptions {
            stream: KinesisStream::parse(url, "--source")?,
            aws: aws.clone(),
            start: stream.start.parse().map_err(|e: String| anyhow!(e))?,
            stop_at_latest: stream.stop_at == Some(StopAt::Latest),
            idle_timeout: stream.idle_timeout,
            shard_refresh: kinesis.shard_refresh_interval,
            poll_interval: kinesis.poll_interval,
        }))
    }

    /// The source of `options`.
    pub fn new(options: KinesisSourceOptions) -> KinesisSource {
        KinesisSource { options, readers: 1, finished: FinishedShards::default() }
    }
}

impl<J: Job> Source<J> for KinesisSource {
    fn describe(&self) -> String {
        self.options.stream.url()
    }

    fn prepare(&mut self, job: &J, topology: crate::runtime::workers::Topology, _restored: Option<&Checkpoint>) -> anyhow::Result<()> {
        job.stream_format().map_err(|e| anyhow!(e))?;
        self.readers = topology.peers.min(open_shard_count(&self.options)?).max(1);
        Ok(())
    }

    fn build<'s>(&self, scope: Scope<'s, Time>, ctx: SourceContext<'_, J>) -> anyhow::Result<SourceStreams<'s, J::Record>> {
        kinesis_source(scope, self.options.clone(), &ctx, self.readers, self.finished.clone())
    }
}

/// `--start` of the Kinesis source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KinesisStart {
    /// The oldest record of each shard (`TRIM_HORIZON`).
    TrimHorizon,
    /// Only records written after the start (`LATEST`).
    Latest,
    /// Records from this time on, ms since the Unix epoch (`AT_TIMESTAMP`).
    AtTimestamp(i64),
}

impl std::str::FromStr for KinesisStart {
    type Err = String;
    /// Parses `trim-horizon` (or `earliest`), `latest` or `at-timestamp:T` with T RFC 3339 or ms since the epoch.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "trim-horizon" | "earliest" => Ok(KinesisStart::TrimHorizon),
            "latest" => Ok(KinesisStart::Latest),
            _ => {
                let t = s.strip_prefix("at-timestamp:").ok_or_else(|| format!("--start {s:?}: expected trim-horizon, latest or at-timestamp:T"))?;
                let ms = t.parse::<i64>().ok().or_else(|| chrono::DateTime::parse_from_rfc3339(t).ok().map(|d| d.timestamp_millis()));
                ms.map(KinesisStart::AtTimestamp).ok_or_else(|| format!("--start {s:?}: T must be RFC 3339 or ms since the Unix epoch"))
            }
        }
    }
}

/// Settings of the Kinesis source.
#[derive(Clone, Debug)]
pub struct KinesisSourceOptions {
    /// `--source`.
    pub stream: KinesisStream,
    /// `--region`, `--endpoint-url`.
    pub aws: crate::aws::AwsArgs,
    /// `--start`.
    pub start: KinesisStart,
    /// `--stop-at latest`.
    pub stop_at_latest: bool,
    /// `--idle-timeout`.
    pub idle_timeout: Option<Duration>,
    /// `--shard-refresh-interval`.
    pub shard_refresh: Duration,
    /// `--poll-interval`: the least time between two `GetRecords` of one shard.
    pub poll_interval: Duration,
}

/// Shards whose records the dataflow has all taken, with their final watermark; shared by the workers of a
/// process (see the module docs).
pub type FinishedShards = Arc<Mutex<BTreeMap<String, Option<u64>>>>;

/// Records read from a shard: (sequence number, data, approximate arrival ms).
type Fetched = Vec<(String, Vec<u8>, Option<i64>)>;

enum Event {
    /// The shards assigned to this worker at start (for `--stop-at latest`, the ones it reads to the end).
    Assigned(BTreeSet<String>),
    /// A shard starts being read, after its parents.
    Started { shard: String, parents: Vec<String> },
    /// Records of a shard.
    Records { shard: String, records: Fetched, millis_behind: Option<i64> },
    /// The shard has been read up to the records present at start (`--stop-at latest`).
    CaughtUp { shard: String },
    /// The shard's end (SHARD_END); `children` are its children that this worker reads.
    Ended { shard: String, children: Vec<String> },
    /// The reader failed for good.
    Failed(String),
}

/// Checks that the stream exists and returns its open shard count.
///
/// # Errors
/// `--source`: unknown stream or unreachable service.
pub fn open_shard_count(options: &KinesisSourceOptions) -> anyhow::Result<usize> {
    let runtime = super::runtime()?;
    let client = runtime.block_on(super::client(&options.aws));
    let shards = runtime.block_on(list_shards(&client, &options.stream)).map_err(|e| anyhow!("--source {e:#}"))?;
    Ok(shards.iter().filter(|s| !s.closed).count())
}

/// The reader of every listed shard among `readers`: the reader of its root (the oldest listed ancestor
/// through `ParentShardId`), with the roots dealt to the readers in the order of their ids.
fn owners(all: &BTreeMap<String, ShardInfo>, readers: usize) -> BTreeMap<String, usize> {
    fn root<'a>(mut s: &'a ShardInfo, all: &'a BTreeMap<String, ShardInfo>) -> &'a str {
        let mut hops = 0;
        while let Some(parent) = s.parent.as_ref().and_then(|p| all.get(p)) {
            s = parent;
            hops += 1;
            if hops > all.len() {
                break;
            }
        }
        &s.id
    }
    let roots: BTreeMap<&str, &str> = all.values().map(|s| (s.id.as_str(), root(s, all))).collect();
    let order: BTreeMap<&str, usize> = roots.values().copied().collect::<BTreeSet<&str>>().into_iter().enumerate().map(|(i, r)| (r, i % readers)).collect();
    roots.into_iter().map(|(id, r)| (id.to_string(), order[r])).collect()
}

struct ShardClock {
    clock: PartitionWatermark,
    last_sequence: Option<String>,
    last_record: Instant,
    caught_up: bool,
    ended: bool,
    /// Children this worker reads that have not started yet: the ended shard holds progress back until then.
    waiting_children: Vec<String>,
    /// Read since the last checkpoint cut.
    dirty: bool,
}

impl ShardClock {
    fn position(&self, shard: &str) -> CheckpointPart {
        SourcePosition::Kinesis { shard: shard.to_string(), last_sequence: self.last_sequence.clone(), ended: self.ended || self.caught_up, watermark: WatermarkState::of(&self.clock) }.part()
    }
}

/// The checkpoint positions of the shards read since the last cut.
fn positions(shards: &mut BTreeMap<String, ShardClock>) -> Vec<CheckpointPart> {
    let mut parts = Vec::new();
    for (id, s) in shards.iter_mut().filter(|(_, s)| s.dirty) {
        s.dirty = false;
        parts.push(s.position(id));
    }
    parts
}

/// The checkpointed shards: id → (last sequence number, ended, watermark).
type RestoredShards = BTreeMap<String, (Option<String>, bool, WatermarkState)>;

fn restored_shards(restored: Option<&Checkpoint>) -> RestoredShards {
    restored
        .into_iter()
        .flat_map(|c| c.sources.values())
        .filter_map(|p| match p {
            SourcePosition::Kinesis { shard, last_sequence, ended, watermark } => Some((shard.clone(), (last_sequence.clone(), *ended, *watermark))),
            _ => None,
        })
        .collect()
}

/// Builds the Kinesis source of worker `ctx.worker`; `readers` is `min(peers, open shards at start)`. Outputs
/// records, dead letters and checkpoint parts, like the other sources. Shards in `ctx.restored` resume
/// `AFTER_SEQUENCE_NUMBER` their checkpointed last record with their watermark; ended ones are not read again
/// (their children start at once).
///
/// # Errors
/// The reader thread cannot be started.
pub fn kinesis_source<'s, J: Job>(scope: Scope<'s, Time>, options: KinesisSourceOptions, ctx: &SourceContext<'_, J>, readers: usize, finished: FinishedShards) -> anyhow::Result<SourceStreams<'s, J::Record>> {
    let worker = ctx.worker;
    let url = options.stream.url();
    let template = ctx.clock(None);
    let format = ctx.job.stream_format().map_err(|e| anyhow!(e))?;
    let mut scratch = <J::Format as RecordFormat>::Scratch::default();
    let shutdown = ctx.shutdown.clone();
    let restored = restored_shards(ctx.restored.as_deref());
    {
        let mut done = finished.lock().expect("finished shards");
        for (shard, (_, ended, watermark)) in &restored {
            if *ended {
                done.insert(shard.clone(), watermark.watermark);
            }
        }
    }
    let reader = if worker < readers { Some(Reader::start(&options, worker, readers, finished.clone(), restored.clone())?) } else { None };
    let mut shards: BTreeMap<String, ShardClock> = BTreeMap::new();
    let mut snapshot: Option<BTreeSet<String>> = None;
    Ok(build_source(scope, "kinesis_source", ctx, move |outputs| {
        let Some(floor) = outputs.floor() else { return };
        let Some(reader) = &reader else {
            outputs.finish(Vec::new());
            return;
        };
        let mut batch = SourceBatch::default();
        let mut events = 0;
        while events < 64 {
            let event = match reader.events.try_recv() {
                Ok(e) => e,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    tracing::error!(worker, "kinesis reader stopped");
                    outputs.finish(Vec::new());
                    return;
                }
            };
            events += 1;
            match event {
                Event::Assigned(s) => {
                    if s.is_empty() {
                        // No shard now, and none later: new shards go to the readers of their parents.
                        reader.stop.store(true, Ordering::Relaxed);
                        outputs.finish(Vec::new());
                        return;
                    }
                    // Restored shards hold progress at their restored watermark from now on, not only once
                    // started: a shard that starts first must not move the frontier past another one's
                    // checkpointed position (its records there would find their windows already emitted).
                    for id in &s {
                        if let Some((last_sequence, false, watermark)) = restored.get(id) {
                            shards.entry(id.clone()).or_insert_with(|| ShardClock {
                                clock: watermark.clock(&template),
                                last_sequence: last_sequence.clone(),
                                last_record: Instant::now(),
                                caught_up: false,
                                ended: false,
                                waiting_children: Vec::new(),
                                dirty: false,
                            });
                        }
                    }
                    if options.stop_at_latest {
                        // Shards a restored checkpoint says ended are done already.
                        snapshot = Some(s.into_iter().filter(|id| !restored.get(id).is_some_and(|r| r.1)).collect());
                    }
                }
                Event::Started { shard, parents } => {
                    let done = finished.lock().expect("finished shards");
                    let inherited = parents.iter().filter_map(|p| done.get(p).copied().flatten()).max();
                    drop(done);
                    let last_sequence = restored.get(&shard).and_then(|r| r.0.clone());
                    let clock = match restored.get(&shard) {
                        Some((_, _, watermark)) => watermark.clock(&template),
                        None => template.fresh(inherited),
                    };
                    for p in &parents {
                        if let Some(parent) = shards.get_mut(p) {
                            parent.waiting_children.retain(|c| c != &shard);
                        }
                    }
                    tracing::debug!(worker, %shard, ?inherited, "shard started");
                    shards.insert(
                        shard,
                        ShardClock {
                            clock,
                            last_sequence,
                            last_record: Instant::now(),
                            caught_up: false,
                            ended: false,
                            waiting_children: Vec::new(),
                            dirty: true,
                        },
                    );
                }
                Event::Records { shard, records, millis_behind } => {
                    let Some(state) = shards.get_mut(&shard) else { continue };
                    let now_ms = crate::runtime::clock::now_ms() as i64;
                    if let Some(behind) = millis_behind {
                        metrics::gauge!("taxiflow_kinesis_millis_behind_latest", "shard" => shard.clone()).set(behind as f64);
                        let age = if behind == 0 { 0 } else { records.last().and_then(|r| r.2).map_or(behind, |t| (now_ms - t).max(0)) };
                        metrics::gauge!("taxiflow_kinesis_iterator_age_ms", "shard" => shard.clone()).set(age as f64);
                    }
                    metrics::counter!("taxiflow_kinesis_records_total", "shard" => shard.clone()).increment(records.len() as u64);
                    if !records.is_empty() {
                        state.last_record = Instant::now();
                        state.dirty = true;
                    }
                    for (sequence, data, _) in &records {
                        for (i, user) in super::deaggregate::user_records(data).into_iter().enumerate() {
                            let decoded = format.decode(user, &mut scratch);
                            let at = || Position { source: format!("{url}/{shard}/{sequence}").into(), line: 0, offset: i as u64 };
                            batch.accept(decoded, &mut state.clock, floor, user, at);
                        }
                    }
                    if let Some((sequence, ..)) = records.last() {
                        state.last_sequence = Some(sequence.clone());
                    }
                }
                Event::CaughtUp { shard } => {
                    if let Some(state) = shards.get_mut(&shard) {
                        state.caught_up = true;
                        state.dirty = true;
                    }
                }
                Event::Ended { shard, children } => {
                    if let Some(state) = shards.get_mut(&shard) {
                        state.ended = true;
                        state.dirty = true;
                        state.waiting_children = children;
                        finished.lock().expect("finished shards").insert(shard.clone(), state.clock.watermark());
                        tracing::debug!(worker, %shard, watermark = ?state.clock.watermark(), "shard finished");
                    }
                }
                Event::Failed(e) => {
                    tracing::error!(worker, error = %e, "kinesis source failed; stopping the job");
                    shutdown.fail(format!("--source {url}: {e}"));
                }
            }
        }
        outputs.send(&mut batch);

        if let Some(snapshot) = &snapshot {
            // --stop-at latest: done when every shard of the snapshot is caught up or ended.
            let done = snapshot.iter().all(|s| shards.get(s).is_some_and(|c| c.caught_up || c.ended));
            if done {
                outputs.finish(positions(&mut shards));
                tracing::debug!(worker, "kinesis source finished");
                return;
            }
        }
        // Progress: the minimum over shards still held (not ended, or ended with children yet to start), not idle.
        let now = Instant::now();
        let held: Vec<&ShardClock> = shards.values().filter(|s| !s.ended || !s.waiting_children.is_empty()).collect();
        let busy = held.iter().filter(|s| s.ended || options.idle_timeout.is_none_or(|idle| now.duration_since(s.last_record) < idle));
        if let Some(frontier) = busy.map(|s| s.clock.frontier()).min().or_else(|| held.iter().map(|s| s.clock.frontier()).max()) {
            outputs.advance_to(frontier);
        } else if !shards.is_empty() {
            // Every shard of this worker has ended and none has a child here: nothing more can come.
            reader.stop.store(true, Ordering::Relaxed);
            outputs.finish(positions(&mut shards));
            tracing::debug!(worker, "kinesis source finished: all its shards ended");
            return;
        }
        if outputs.checkpoint_due() {
            outputs.cut(positions(&mut shards));
        }
        outputs.reschedule((events == 0).then_some(Duration::from_millis(5)));
    }))
}

/// The background reader of one worker.
struct Reader {
    events: Receiver<Event>,
    stop: Arc<AtomicBool>,
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Reader {
    fn start(options: &KinesisSourceOptions, worker: usize, readers: usize, finished: FinishedShards, restored: RestoredShards) -> anyhow::Result<Reader> {
        let (tx, events) = sync_channel(16);
        let stop = Arc::new(AtomicBool::new(false));
        let (options, stop_flag) = (options.clone(), stop.clone());
        std::thread::Builder::new().name(format!("kinesis-read-{worker}")).spawn(move || {
            let runtime = match super::runtime() {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Event::Failed(format!("{e:#}")));
                    return;
                }
            };
            let run = ShardLoop { options, worker, readers, finished, tx: tx.clone(), stop: stop_flag, shards: BTreeMap::new(), known: BTreeMap::new(), restored };
            if let Err(e) = runtime.block_on(run.run()) {
                let _ = tx.send(Event::Failed(format!("{e:#}")));
            }
        })?;
        Ok(Reader { events, stop })
    }
}

enum Phase {
    Waiting,
    Reading(String),
    Done,
}

struct ShardRead {
    info: ShardInfo,
    phase: Phase,
    /// Where reading starts when there is no last sequence number.
    start: KinesisStart,
    last_sequence: Option<String>,
    next_read: tokio::time::Instant,
    throttled: u32,
    in_snapshot: bool,
    caught_up: bool,
}

struct ShardLoop {
    options: KinesisSourceOptions,
    worker: usize,
    readers: usize,
    finished: FinishedShards,
    tx: SyncSender<Event>,
    stop: Arc<AtomicBool>,
    /// This worker's shards.
    shards: BTreeMap<String, ShardRead>,
    /// Every shard listed.
    known: BTreeMap<String, ShardInfo>,
    /// Positions of a restored checkpoint.
    restored: RestoredShards,
}

impl ShardLoop {
    fn send(&self, event: Event) -> anyhow::Result<()> {
        self.tx.send(event).map_err(|_| anyhow!("the source operator is gone"))
    }

    /// Lists the shards and takes this worker's new ones. At start (`first`), `--start` applies and the
    /// snapshot of a bounded read is sent.
    async fn refresh(&mut self, client: &Client, first: bool) -> anyhow::Result<()> {
        let listed = list_shards(client, &self.options.stream).await?;
        self.known = listed.iter().map(|s| (s.id.clone(), s.clone())).collect();
        let owners = owners(&self.known, self.readers);
        for info in listed {
            if self.shards.contains_key(&info.id) || owners[&info.id] != self.worker {
                continue;
            }
            if !first && self.options.stop_at_latest {
                continue; // a bounded read covers the shards present at start
            }
            let start = if first { self.options.start } else { KinesisStart::TrimHorizon };
            if first && info.closed && start != KinesisStart::TrimHorizon {
                continue; // a closed shard has nothing after "now"
            }
            let id = info.id.clone();
            let (last_sequence, ended) = self.restored.get(&id).map_or((None, false), |r| (r.0.clone(), r.1));
            let phase = if ended { Phase::Done } else { Phase::Waiting };
            self.shards.insert(id, ShardRead { info, phase, start, last_sequence, next_read: tokio::time::Instant::now(), throttled: 0, in_snapshot: first, caught_up: ended });
        }
        if first {
            tracing::info!(worker = self.worker, shards = ?self.shards.keys().collect::<Vec<_>>(), "kinesis source assigned");
            self.send(Event::Assigned(self.shards.keys().cloned().collect()))?;
        }
        Ok(())
    }

    async fn iterator(&self, client: &Client, shard: &ShardRead) -> anyhow::Result<String> {
        let mut request = client.get_shard_iterator().stream_name(&self.options.stream.name).shard_id(&shard.info.id);
        request = match (&shard.last_sequence, shard.start) {
            (Some(seq), _) => request.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).starting_sequence_number(seq),
            (None, KinesisStart::TrimHorizon) => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
            (None, KinesisStart::Latest) => request.shard_iterator_type(ShardIteratorType::Latest),
            (None, KinesisStart::AtTimestamp(ms)) => request.shard_iterator_type(ShardIteratorType::AtTimestamp).timestamp(aws_sdk_kinesis::primitives::DateTime::from_millis(ms)),
        };
        let out = request.send().await.map_err(|e| anyhow!("GetShardIterator {}: {}", shard.info.id, crate::retry::error_chain(&e)))?;
        out.shard_iterator().map(str::to_string).ok_or_else(|| anyhow!("GetShardIterator {}: no iterator", shard.info.id))
    }

    async fn run(mut self) -> anyhow::Result<()> {
        let client = super::client(&self.options.aws).await;
        self.refresh(&client, true).await?;
        let mut next_list = tokio::time::Instant::now() + self.options.shard_refresh;
        while !self.stop.load(Ordering::Relaxed) {
            let now = tokio::time::Instant::now();
            if now >= next_list {
                if let Err(e) = self.refresh(&client, false).await {
                    tracing::warn!(error = %format!("{e:#}"), "shard list not refreshed");
                }
                next_list = now + self.options.shard_refresh;
            }
            let ids: Vec<String> = self.shards.keys().cloned().collect();
            for id in ids {
                self.step(&client, &id).await?;
            }
            let next = self.shards.values().filter(|s| !matches!(s.phase, Phase::Done)).map(|s| s.next_read).min().unwrap_or(next_list).min(next_list);
            let wake = next.max(tokio::time::Instant::now() + Duration::from_millis(5)).min(tokio::time::Instant::now() + Duration::from_millis(100));
            tokio::time::sleep_until(wake).await;
        }
        Ok(())
    }

    /// One step of one shard: start it when its parents are finished, or read once when it is due.
    async fn step(&mut self, client: &Client, id: &str) -> anyhow::Result<()> {
        let now = tokio::time::Instant::now();
        let shard = self.shards.get(id).expect("own shard");
        match &shard.phase {
            Phase::Done => Ok(()),
            Phase::Waiting => {
                let parents: Vec<String> = shard.info.parents().filter(|p| self.known.contains_key(*p)).map(str::to_string).collect();
                let ready = {
                    let done = self.finished.lock().expect("finished shards");
                    parents.iter().all(|p| done.contains_key(p))
                };
                if !ready {
                    return Ok(());
                }
                let iterator = self.iterator(client, shard).await?;
                self.shards.get_mut(id).expect("own shard").phase = Phase::Reading(iterator);
                self.send(Event::Started { shard: id.to_string(), parents })
            }
            Phase::Reading(iterator) if now >= shard.next_read => {
                let result = client.get_records().shard_iterator(iterator).limit(10_000).send().await;
                let poll = self.options.poll_interval;
                match result {
                    Ok(out) => {
                        let mut bytes = 0usize;
                        let records: Fetched = out
                            .records()
                            .iter()
                            .map(|r| {
                                bytes += r.data().as_ref().len();
                                (r.sequence_number().to_string(), r.data().as_ref().to_vec(), r.approximate_arrival_timestamp().and_then(|t| t.to_millis().ok()))
                            })
                            .collect();
                        let millis_behind = out.millis_behind_latest();
                        let next_iterator = out.next_shard_iterator().map(str::to_string);
                        let state = self.shards.get_mut(id).expect("own shard");
                        if let Some((seq, ..)) = records.last() {
                            state.last_sequence = Some(seq.clone());
                        }
                        state.throttled = 0;
                        // 2 MB/s per shard: a large batch delays the next read accordingly.
                        state.next_read = now + poll.max(Duration::from_secs_f64(bytes as f64 / 2_000_000.0));
                        // Caught up: an empty answer at the tip (some endpoints report 0 ms behind while records remain).
                        let caught_up_now = state.in_snapshot && !state.caught_up && millis_behind == Some(0) && records.is_empty();
                        if caught_up_now {
                            state.caught_up = true;
                        }
                        // SHARD_END: no next iterator (Kinesis), or an empty answer from a shard the listing shows closed
                        // (a closed shard takes no more records; some local endpoints never end the iterator).
                        let closed = self.known.get(id).is_some_and(|s| s.closed);
                        let ended = next_iterator.is_none() || (closed && records.is_empty());
                        state.phase = match next_iterator {
                            Some(it) if !ended => Phase::Reading(it),
                            _ => Phase::Done,
                        };
                        self.send(Event::Records { shard: id.to_string(), records, millis_behind })?;
                        if caught_up_now {
                            self.send(Event::CaughtUp { shard: id.to_string() })?;
                        }
                        if ended {
                            let children = if self.options.stop_at_latest { Vec::new() } else { self.children_of(client, id).await };
                            self.send(Event::Ended { shard: id.to_string(), children })?;
                        }
                        Ok(())
                    }
                    Err(e) => {
                        let service = e.as_service_error();
                        let state = self.shards.get_mut(id).expect("own shard");
                        if service.is_some_and(|s| s.is_provisioned_throughput_exceeded_exception()) {
                            metrics::counter!("taxiflow_kinesis_throttles_total", "shard" => id.to_string()).increment(1);
                            state.throttled += 1;
                            state.next_read = now + crate::retry::backoff(state.throttled - 1, poll, Duration::from_secs(10));
                            tracing::debug!(shard = %id, throttled = state.throttled, "GetRecords throttled");
                            Ok(())
                        } else if service.is_some_and(|s| s.is_expired_iterator_exception()) {
                            tracing::info!(shard = %id, "shard iterator expired, renewing it");
                            let shard = self.shards.get(id).expect("own shard");
                            let iterator = self.iterator(client, shard).await?;
                            self.shards.get_mut(id).expect("own shard").phase = Phase::Reading(iterator);
                            Ok(())
                        } else {
                            state.throttled += 1;
                            if state.throttled > 20 {
                                bail!("GetRecords {id}: still failing after 20 attempts: {}", crate::retry::error_chain(&e));
                            }
                            state.next_read = now + crate::retry::backoff(state.throttled - 1, poll, Duration::from_secs(10));
                            tracing::warn!(shard = %id, error = %crate::retry::error_chain(&e), "GetRecords failed, retrying");
                            Ok(())
                        }
                    }
                }
            }
            Phase::Reading(_) => Ok(()),
        }
    }

    /// The children of an ended shard that this worker reads (listing the shards again until they show).
    async fn children_of(&mut self, client: &Client, id: &str) -> Vec<String> {
        for _ in 0..50 {
            if let Err(e) = self.refresh(client, false).await {
                tracing::warn!(error = %format!("{e:#}"), "shard list not refreshed");
            }
            let children: Vec<String> = self.known.values().filter(|s| s.parents().any(|p| p == id)).map(|s| s.id.clone()).collect();
            if !children.is_empty() {
                return children.into_iter().filter(|c| self.shards.contains_key(c)).collect();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_positions() {
        assert_eq!("trim-horizon".parse(), Ok(KinesisStart::TrimHorizon));
        assert_eq!("earliest".parse(), Ok(KinesisStart::TrimHorizon));
        assert_eq!("latest".parse(), Ok(KinesisStart::Latest));
        assert_eq!("at-timestamp:1357002000000".parse(), Ok(KinesisStart::AtTimestamp(1_357_002_000_000)));
        assert_eq!("at-timestamp:2013-01-01T01:00:00Z".parse(), Ok(KinesisStart::AtTimestamp(1_357_002_000_000)));
        assert!("at-timestamp:yesterday".parse::<KinesisStart>().is_err());
        assert!("newest".parse::<KinesisStart>().unwrap_err().contains("trim-horizon"));
    }

    #[test]
    fn children_follow_their_parent() {
        let shard = |id: &str, parent: Option<&str>| ShardInfo { id: id.into(), parent: parent.map(Into::into), adjacent_parent: None, starting_hash_key: "0".into(), closed: false };
        let all: BTreeMap<String, ShardInfo> = [shard("a", None), shard("b", None), shard("c", Some("a")), shard("d", Some("c"))].into_iter().map(|s| (s.id.clone(), s)).collect();
        for readers in 1..5 {
            let owner = owners(&all, readers);
            assert_eq!(owner["c"], owner["a"]);
            assert_eq!(owner["d"], owner["a"]);
            assert!(owner["b"] < readers);
            // Roots a and b are dealt in id order.
            assert_eq!((owner["a"], owner["b"]), (0, 1 % readers));
        }
    }
}
