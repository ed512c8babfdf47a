//! The operator shell every source runs in ([`build_source`]: three outputs — records, dead letters, checkpoint
//! parts — their capabilities, epochs, progress, the stop signal), and what one activation of a source read
//! ([`SourceBatch`]: records for the dataflow, dead letters, counts). Shared by the file, Kafka and Kinesis
//! sources, so that every source applies the job's lateness rule, the same dead-letter format, and the same
//! progress, checkpoint and shutdown handling (Flink FLIP-27's split between the source reader of one split and
//! the shell around it).

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use taxiflow_dataflows::epoch::{time, CheckpointPart, Time};
use taxiflow_dataflows::job::{Decoded, EventTime, Job};
use taxiflow_dataflows::output::OriginsBuilder;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::{Scope, StreamVec};
use timely::scheduling::Activator;

use super::checkpoint::Checkpoint;
use super::dead_letter::DeadLetter;
use super::shutdown::Shutdown;
use super::summary::Counts;
use super::watermark::PartitionWatermark;

/// Where a record came from, for dead letters.
pub struct Position<'a> {
    /// File path, `kafka://TOPIC/PARTITION` or `kinesis://STREAM/SHARD/SEQUENCE` (borrowed where the source keeps
    /// it, made only when a dead letter needs it where it is per record).
    pub source: std::borrow::Cow<'a, str>,
    /// 1-based line in a file; 0 for stream sources.
    pub line: u64,
    /// Byte offset in a file, or the Kafka offset.
    pub offset: u64,
}

/// Records, dead letters and counts of one source activation.
pub struct SourceBatch<R> {
    /// Records to send into the dataflow (none late).
    pub records: Vec<R>,
    /// Dead letters to send to the sink.
    pub dead_letters: Vec<DeadLetter>,
    /// Counts of this batch.
    pub counts: Counts,
    /// Where each of `records` was read, when the job's records keep it ([`EventTime::KEEPS_ORIGIN`]); given to
    /// them, one shared chunk per batch, when the batch is sent.
    origins: OriginsBuilder,
}

impl<R> Default for SourceBatch<R> {
    fn default() -> Self {
        SourceBatch { records: Vec::new(), dead_letters: Vec::new(), counts: Counts::default(), origins: OriginsBuilder::default() }
    }
}

impl<R: EventTime> SourceBatch<R> {
    /// Routes one decoded record of a partition: a record is checked against the partition's watermark with the
    /// job's lateness rule (late records, and records whose due time is behind `floor`, the source's capability,
    /// become dead letters `late`), a watermark record advances the partition, a skipped line is counted, a
    /// decoding error becomes a `malformed: …` dead letter. `raw` is the record as read and `at` where it was read
    /// (computed only when needed).
    pub fn accept<'a>(&mut self, decoded: Result<Decoded<R>, String>, clock: &mut PartitionWatermark, floor: u64, raw: &[u8], at: impl FnOnce() -> Position<'a>) {
        self.accept_with(decoded, clock, floor, || Cow::Borrowed(raw), at)
    }

    /// [`Self::accept`] with the record as read given by `raw`, called only when it is needed (a record that keeps
    /// its origin, a late record, a malformed one): for a source that did not keep the bytes of a record it read
    /// ahead and reads them again from the file.
    pub fn accept_with<'a, 'r>(&mut self, decoded: Result<Decoded<R>, String>, clock: &mut PartitionWatermark, floor: u64, raw: impl FnOnce() -> Cow<'r, [u8]>, at: impl FnOnce() -> Position<'a>) {
        self.counts.records_read += 1;
        match decoded {
            Ok(Decoded::Record(record)) => {
                self.counts.records += 1;
                let t = record.event_time();
                match clock.observe_record(t) {
                    Ok(()) if clock.due(t) >= floor => {
                        if R::KEEPS_ORIGIN {
                            let at = at();
                            self.origins.push(&at.source, at.line, at.offset, &raw());
                        }
                        self.records.push(record)
                    }
                    result => {
                        // Behind the partition's watermark, or (an idle partition that resumed) behind the
                        // frontier other partitions already passed.
                        let watermark = result.err().map_or(floor.saturating_sub(1), |late| late.watermark);
                        self.counts.late += 1;
                        let at = at();
                        self.dead_letters.push(DeadLetter {
                            reason: "late".to_string(),
                            source: at.source.into_owned(),
                            line: at.line,
                            offset: at.offset,
                            record: String::from_utf8_lossy(&raw()).into_owned(),
                            event_time: Some(t),
                            watermark: Some(watermark),
                            document_id: None,
                        });
                    }
                }
            }
            Ok(Decoded::Watermark(w)) => {
                self.counts.watermarks += 1;
                clock.observe_watermark_record(w);
            }
            Ok(Decoded::Skip) => self.counts.skipped += 1,
            Err(reason) => {
                self.counts.malformed += 1;
                let at = at();
                self.dead_letters.push(DeadLetter {
                    reason: format!("malformed: {reason}"),
                    source: at.source.into_owned(),
                    line: at.line,
                    offset: at.offset,
                    record: String::from_utf8_lossy(&raw()).into_owned(),
                    event_time: None,
                    watermark: None,
                    document_id: None,
                });
            }
        }
    }
}

impl<R> SourceBatch<R> {
    /// Records a source that cannot be read any further (`unreadable: …`).
    pub fn unreadable(&mut self, at: Position<'_>, error: &dyn std::fmt::Display) {
        self.counts.malformed += 1;
        self.dead_letters.push(DeadLetter {
            reason: format!("unreadable: {error}"),
            source: at.source.into_owned(),
            line: at.line,
            offset: at.offset,
            record: String::new(),
            event_time: None,
            watermark: None,
            document_id: None,
        });
    }
}

/// When a source ends an epoch (see `taxiflow_dataflows::epoch`): every `interval` (`--checkpoint-interval`),
/// starting at epoch `start`; never without `--checkpoint-dir`.
#[derive(Clone, Copy, Debug)]
pub struct Epochs {
    /// Time between two cuts; `None`: no checkpoints, the epoch stays `start`.
    pub interval: Option<std::time::Duration>,
    /// The first epoch of this run.
    pub start: u64,
}

/// After a graceful stop, how often a source that stopped reading ends an (empty) epoch, so that every source
/// reaches the epoch of the last checkpoint soon.
const STOPPED_CUT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);

/// What a source builder gets from the runner, on each worker.
pub struct SourceContext<'a, J: Job> {
    /// The job: its formats and event-time rules.
    pub job: &'a J,
    /// This worker's index among all workers of all processes.
    pub worker: usize,
    /// All workers of all processes.
    pub peers: usize,
    /// The worker's counts.
    pub counts: Rc<RefCell<Counts>>,
    /// When to cut epochs.
    pub epochs: Epochs,
    /// The restored checkpoint, if any.
    pub restored: Option<Arc<Checkpoint>>,
    /// The run's stop signal.
    pub shutdown: Shutdown,
    /// At most this many records per second on this worker (`--source-rate-limit`), if set.
    pub rate_limit: Option<f64>,
}

impl<J: Job> SourceContext<'_, J> {
    /// A partition clock of the job that has read nothing, with an optional inherited watermark.
    pub fn clock(&self, inherited: Option<u64>) -> PartitionWatermark {
        PartitionWatermark::new(self.job.watermarks(), self.job.lateness(), inherited)
    }
}

/// The streams of a source: records, dead letters and checkpoint parts (positions of its partitions).
pub type SourceStreams<'s, R> = (StreamVec<'s, Time, R>, StreamVec<'s, Time, DeadLetter>, StreamVec<'s, Time, CheckpointPart>);

/// The outputs of a source operator (records, dead letters, checkpoint parts), their capabilities and the
/// operator's activator, handed to the source's logic by [`build_source`]. All capabilities always stand at the
/// same time: (the source's frontier, its epoch).
pub struct SourceOutputs<R: 'static> {
    records: OutputBuilder<Time, CapacityContainerBuilder<Vec<R>>>,
    dead_letters: OutputBuilder<Time, CapacityContainerBuilder<Vec<DeadLetter>>>,
    parts: OutputBuilder<Time, CapacityContainerBuilder<Vec<CheckpointPart>>>,
    caps: Option<[Capability<Time>; 3]>,
    activator: Activator,
    worker: usize,
    worker_label: String,
    counts: Rc<RefCell<Counts>>,
    epochs: Epochs,
    next_cut: std::time::Instant,
    last_cut: std::time::Instant,
    shutdown: Shutdown,
    /// Set once the source stopped reading after a graceful stop (its last positions are sent).
    stopped: bool,
    /// `--source-rate-limit` and the records read since the source started.
    rate_limit: Option<(f64, std::time::Instant, u64)>,
}

impl<R: EventTime + 'static> SourceOutputs<R> {
    /// The source's capability event time: no record it sends may have a due time earlier than this. `None` once
    /// finished.
    pub fn floor(&self) -> Option<u64> {
        self.caps.as_ref().map(|[c, ..]| c.time().outer)
    }

    /// Sends the batch's records and dead letters at the capability, adds its counts to the worker's counts and
    /// to the Prometheus counters, and leaves the batch empty.
    pub fn send(&mut self, batch: &mut SourceBatch<R>) {
        debug_assert!(!R::KEEPS_ORIGIN || batch.origins.len() == batch.records.len(), "an origin per record");
        // Not for an empty batch: an idle source sends one per poll, and the chunk is an allocation.
        if R::KEEPS_ORIGIN && !batch.origins.is_empty() {
            for (record, origin) in batch.records.iter_mut().zip(batch.origins.finish()) {
                record.set_origin(origin);
            }
        }
        if let Some([record_cap, dead_cap, _]) = &self.caps {
            if !batch.records.is_empty() {
                self.records.activate().session(record_cap).give_container(&mut batch.records);
            }
            if !batch.dead_letters.is_empty() {
                self.dead_letters.activate().session(dead_cap).give_container(&mut batch.dead_letters);
            }
        }
        batch.counts.record_metrics(&self.worker_label);
        if let Some((_, _, read)) = &mut self.rate_limit {
            *read += batch.counts.records_read;
        }
        *self.counts.borrow_mut() += std::mem::take(&mut batch.counts);
    }

    /// How many records to read in one activation: `default`, or with `--source-rate-limit` at most a tenth of a
    /// second's worth (at least 1), so that a paced source sends, moves its watermark and cuts its epochs in small
    /// steps instead of a large batch followed by a long pause.
    pub fn batch_limit(&self, default: usize) -> usize {
        match self.rate_limit {
            Some((rate, _, _)) => default.min(((rate / 10.0) as usize).max(1)),
            None => default,
        }
    }

    /// Moves progress to `frontier` (watermark + 1) if that is later than the capability.
    pub fn advance_to(&mut self, frontier: u64) {
        if let Some(caps) = &mut self.caps {
            if frontier > caps[0].time().outer {
                let to = time(frontier, caps[0].time().inner);
                for cap in caps.iter_mut() {
                    cap.downgrade(&to);
                }
                metrics::gauge!("taxiflow_input_watermark_ms", "worker" => self.worker_label.clone()).set((frontier - 1) as f64);
            }
        }
    }

    /// Whether the current epoch should end now: the checkpoint interval has passed, or a graceful stop was asked
    /// for (the last checkpoint is then cut at once).
    pub fn checkpoint_due(&self) -> bool {
        self.epochs.interval.is_some() && self.caps.is_some() && (std::time::Instant::now() >= self.next_cut || self.shutdown.requested())
    }

    /// Ends the current epoch: sends `positions` (of the partitions that changed since the last cut) at it, and
    /// moves every capability to the next epoch, so whatever is read from now on belongs to the next checkpoint.
    /// After a graceful stop this is the source's last cut: it reports its last epoch to the checkpoint writer
    /// and stops reading (see [`Shutdown`]).
    pub fn cut(&mut self, positions: Vec<CheckpointPart>) {
        let Some(interval) = self.epochs.interval else { return };
        self.send_positions(positions);
        if let Some(caps) = &mut self.caps {
            let epoch = caps[0].time().inner;
            if self.shutdown.requested() && !self.stopped {
                self.stopped = true;
                self.parts.activate().session(&caps[2]).give(CheckpointPart::Stopped { worker: self.worker, epoch });
                tracing::info!(worker = self.worker, epoch, "source stopped: last checkpoint epoch cut");
            }
            let next = time(caps[0].time().outer, epoch + 1);
            for cap in caps.iter_mut() {
                cap.downgrade(&next);
            }
            self.last_cut = std::time::Instant::now();
            self.next_cut = self.last_cut + interval;
        }
    }

    /// Releases the capabilities: the source will send nothing more, so every window downstream can close.
    /// With checkpoints, `positions` (the final positions of the partitions that changed) are sent first, and the
    /// source's last epoch is reported.
    pub fn finish(&mut self, positions: Vec<CheckpointPart>) {
        self.send_positions(positions);
        if let (Some(caps), Some(_), false) = (&self.caps, self.epochs.interval, self.stopped) {
            self.parts.activate().session(&caps[2]).give(CheckpointPart::Stopped { worker: self.worker, epoch: caps[2].time().inner });
        }
        self.caps = None;
    }

    /// Sends checkpoint positions at the current capability (with checkpoints only).
    fn send_positions(&mut self, positions: Vec<CheckpointPart>) {
        if let (Some(caps), Some(_)) = (&self.caps, self.epochs.interval) {
            if !positions.is_empty() {
                self.parts.activate().session(&caps[2]).give_iterator(positions.into_iter());
            }
        }
    }

    /// Schedules the source again as soon as possible, or after `delay` (a source that waits longer than the
    /// checkpoint interval delays the cut until it runs again); later when it is ahead of `--source-rate-limit`.
    pub fn reschedule(&self, delay: Option<std::time::Duration>) {
        let throttle = self.rate_limit.and_then(|(rate, started, read)| {
            let due = started + std::time::Duration::from_secs_f64(read as f64 / rate);
            due.checked_duration_since(std::time::Instant::now())
        });
        match delay.max(throttle) {
            Some(d) => self.activator.activate_after(d),
            None => self.activator.activate(),
        }
    }
}

/// Builds a source operator named `name` for worker `ctx.worker` whose `logic` is called at every activation with
/// the [`SourceOutputs`] (nothing is called once it has finished, or once it has stopped after a graceful stop:
/// it then only ends an empty epoch every few ms until the last checkpoint is committed). Counts go to
/// `ctx.counts`; the capabilities start at epoch `ctx.epochs.start`.
pub fn build_source<'s, J, L>(scope: Scope<'s, Time>, name: &str, ctx: &SourceContext<'_, J>, mut logic: L) -> SourceStreams<'s, J::Record>
where
    J: Job,
    L: FnMut(&mut SourceOutputs<J::Record>) + 'static,
{
    let mut builder = OperatorBuilder::new(name.to_owned(), scope);
    let activator = scope.activator_for(builder.operator_info().address);
    let (records_output, records) = builder.new_output::<Vec<J::Record>>();
    let (dead_output, dead_letters) = builder.new_output::<Vec<DeadLetter>>();
    let (parts_output, parts) = builder.new_output::<Vec<CheckpointPart>>();
    let (worker, counts, epochs, shutdown, rate_limit) = (ctx.worker, ctx.counts.clone(), ctx.epochs, ctx.shutdown.clone(), ctx.rate_limit);
    builder.build(move |capabilities| {
        let mut caps: [Capability<Time>; 3] = capabilities.try_into().unwrap_or_else(|_| panic!("a capability per output"));
        for cap in caps.iter_mut() {
            cap.downgrade(&time(0, epochs.start));
        }
        let mut outputs = SourceOutputs {
            records: OutputBuilder::from(records_output),
            dead_letters: OutputBuilder::from(dead_output),
            parts: OutputBuilder::from(parts_output),
            caps: Some(caps),
            activator,
            worker,
            worker_label: worker.to_string(),
            counts,
            epochs,
            next_cut: std::time::Instant::now() + epochs.interval.unwrap_or_default(),
            last_cut: std::time::Instant::now(),
            shutdown,
            stopped: false,
            rate_limit: rate_limit.map(|rate| (rate, std::time::Instant::now(), 0)),
        };
        move |_frontiers| {
            if outputs.caps.is_none() {
                return;
            }
            if outputs.stopped {
                // Stopped after a graceful stop: empty epochs until the last checkpoint is committed.
                if std::time::Instant::now() >= outputs.last_cut + STOPPED_CUT_INTERVAL {
                    outputs.cut(Vec::new());
                }
                outputs.reschedule(Some(STOPPED_CUT_INTERVAL));
                return;
            }
            logic(&mut outputs);
        }
    });
    (records, dead_letters, parts)
}
