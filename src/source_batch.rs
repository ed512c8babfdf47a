//! What one activation of a source read (trips for the dataflow, dead letters, counts), and the operator shell
//! every source runs in ([`build_source`]: two outputs, their capabilities, progress). Shared by the file and
//! Kafka sources, so that every source applies the same late rule, dead-letter format and progress handling.

use std::cell::RefCell;
use std::rc::Rc;

use taxiflow_dataflows::epoch::{time, CheckpointPart, Time};
use taxiflow_dataflows::Trip;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::{Scope, StreamVec};
use timely::scheduling::Activator;

use crate::dead_letter::DeadLetter;
use crate::input::Record;
use crate::summary::Totals;
use crate::watermark::PartitionWatermark;

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

/// Trips, dead letters and counts of one source activation.
#[derive(Default)]
pub struct SourceBatch {
    /// Trips to send into the dataflow (none late).
    pub trips: Vec<Trip>,
    /// Dead letters to send to the sink.
    pub dead_letters: Vec<DeadLetter>,
    /// Counts of this batch.
    pub totals: Totals,
}

impl SourceBatch {
    /// Routes one parsed record of a partition: a trip is checked against the partition's watermark (late trips
    /// and trips behind `floor`, the source's capability, become dead letters `late`), a watermark record
    /// advances the partition, a START row is counted, a parse error becomes a `malformed: …` dead letter.
    /// `raw` is the record as read and `at` where it was read (`line` is computed only when needed).
    pub fn accept<'a>(&mut self, parsed: Result<Record, String>, clock: &mut PartitionWatermark, floor: u64, raw: &[u8], at: impl FnOnce() -> Position<'a>) {
        self.totals.records_read += 1;
        match parsed {
            Ok(Record::Trip(trip)) => {
                self.totals.trips += 1;
                let t = trip.event_time();
                match clock.observe_trip(t) {
                    Ok(()) if t >= floor => self.trips.push(trip),
                    result => {
                        // Behind the partition's watermark, or (an idle partition that resumed) behind the
                        // frontier other partitions already passed.
                        let watermark = result.err().map_or(floor.saturating_sub(1), |late| late.watermark);
                        self.totals.late += 1;
                        let at = at();
                        self.dead_letters.push(DeadLetter {
                            reason: "late".to_string(),
                            source: at.source.into_owned(),
                            line: at.line,
                            offset: at.offset,
                            record: String::from_utf8_lossy(raw).into_owned(),
                            event_time: Some(t),
                            watermark: Some(watermark),
                            document_id: None,
                        });
                    }
                }
            }
            Ok(Record::Watermark(w)) => {
                self.totals.watermarks += 1;
                clock.observe_watermark_record(w);
            }
            Ok(Record::NotATrip) => self.totals.not_trips += 1,
            Err(reason) => {
                self.totals.malformed += 1;
                let at = at();
                self.dead_letters.push(DeadLetter {
                    reason: format!("malformed: {reason}"),
                    source: at.source.into_owned(),
                    line: at.line,
                    offset: at.offset,
                    record: String::from_utf8_lossy(raw).into_owned(),
                    event_time: None,
                    watermark: None,
                    document_id: None,
                });
            }
        }
    }

    /// Records a source that cannot be read any further (`unreadable: …`).
    pub fn unreadable(&mut self, at: Position<'_>, error: &dyn std::fmt::Display) {
        self.totals.malformed += 1;
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

    /// Adds this batch's counts to the Prometheus counters of `worker`.
    pub fn record_metrics(&self, worker: &str) {
        let b = &self.totals;
        metrics::counter!("taxiflow_records_in_total", "worker" => worker.to_string()).increment(b.records_read);
        metrics::counter!("taxiflow_trips_total", "worker" => worker.to_string()).increment(b.trips);
        metrics::counter!("taxiflow_late_records_total", "worker" => worker.to_string()).increment(b.late);
        metrics::counter!("taxiflow_malformed_records_total", "worker" => worker.to_string()).increment(b.malformed);
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

/// The streams of a source: trips, dead letters and checkpoint parts (positions of its partitions).
pub type SourceStreams<'s> = (StreamVec<'s, Time, Trip>, StreamVec<'s, Time, DeadLetter>, StreamVec<'s, Time, CheckpointPart>);

/// The outputs of a source operator (trips, dead letters, checkpoint parts), their capabilities and the
/// operator's activator, handed to the source's logic by [`build_source`]. All capabilities always stand at the
/// same time: (the source's frontier, its epoch).
pub struct SourceOutputs {
    trips: OutputBuilder<Time, CapacityContainerBuilder<Vec<Trip>>>,
    dead_letters: OutputBuilder<Time, CapacityContainerBuilder<Vec<DeadLetter>>>,
    parts: OutputBuilder<Time, CapacityContainerBuilder<Vec<CheckpointPart>>>,
    caps: Option<[Capability<Time>; 3]>,
    activator: Activator,
    worker: String,
    totals: Rc<RefCell<Totals>>,
    epochs: Epochs,
    next_cut: std::time::Instant,
}

impl SourceOutputs {
    /// The source's capability event time: no trip it sends may have an earlier event time. `None` once finished.
    pub fn floor(&self) -> Option<u64> {
        self.caps.as_ref().map(|[c, ..]| c.time().outer)
    }

    /// Sends the batch's trips and dead letters at the capability, adds its counts to the worker's totals and
    /// to the Prometheus counters, and leaves the batch empty.
    pub fn send(&mut self, batch: &mut SourceBatch) {
        if let Some([trip_cap, dead_cap, _]) = &self.caps {
            if !batch.trips.is_empty() {
                self.trips.activate().session(trip_cap).give_container(&mut batch.trips);
            }
            if !batch.dead_letters.is_empty() {
                self.dead_letters.activate().session(dead_cap).give_container(&mut batch.dead_letters);
            }
        }
        batch.record_metrics(&self.worker);
        *self.totals.borrow_mut() += std::mem::take(&mut batch.totals);
    }

    /// Moves progress to `frontier` (watermark + 1) if that is later than the capability.
    pub fn advance_to(&mut self, frontier: u64) {
        if let Some(caps) = &mut self.caps {
            if frontier > caps[0].time().outer {
                let to = time(frontier, caps[0].time().inner);
                for cap in caps.iter_mut() {
                    cap.downgrade(&to);
                }
                metrics::gauge!("taxiflow_input_watermark_ms", "worker" => self.worker.clone()).set((frontier - 1) as f64);
            }
        }
    }

    /// Whether the current epoch should end now (the checkpoint interval has passed).
    pub fn checkpoint_due(&self) -> bool {
        self.epochs.interval.is_some() && self.caps.is_some() && std::time::Instant::now() >= self.next_cut
    }

    /// Ends the current epoch: sends `positions` (of the partitions that changed since the last cut) at it, and
    /// moves every capability to the next epoch, so whatever is read from now on belongs to the next checkpoint.
    pub fn cut(&mut self, positions: Vec<CheckpointPart>) {
        let Some(interval) = self.epochs.interval else { return };
        self.send_positions(positions);
        if let Some(caps) = &mut self.caps {
            let next = time(caps[0].time().outer, caps[0].time().inner + 1);
            for cap in caps.iter_mut() {
                cap.downgrade(&next);
            }
            self.next_cut = std::time::Instant::now() + interval;
        }
    }

    /// Releases the capabilities: the source will send nothing more, so every window downstream can close.
    /// With checkpoints, `positions` (the final positions of the partitions that changed) are sent first.
    pub fn finish(&mut self, positions: Vec<CheckpointPart>) {
        self.send_positions(positions);
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
    /// checkpoint interval delays the cut until it runs again).
    pub fn reschedule(&self, delay: Option<std::time::Duration>) {
        match delay {
            Some(d) => self.activator.activate_after(d),
            None => self.activator.activate(),
        }
    }
}

/// Builds a source operator named `name` for worker `worker` whose `logic` is called at every activation with
/// the [`SourceOutputs`] (nothing is called once it has finished). Counts go to `totals`; the capabilities
/// start at epoch `epochs.start`.
pub fn build_source<'s, L>(scope: Scope<'s, Time>, name: &str, worker: usize, totals: Rc<RefCell<Totals>>, epochs: Epochs, mut logic: L) -> SourceStreams<'s>
where
    L: FnMut(&mut SourceOutputs) + 'static,
{
    let mut builder = OperatorBuilder::new(name.to_owned(), scope);
    let activator = scope.activator_for(builder.operator_info().address);
    let (trips_output, trips) = builder.new_output::<Vec<Trip>>();
    let (dead_output, dead_letters) = builder.new_output::<Vec<DeadLetter>>();
    let (parts_output, parts) = builder.new_output::<Vec<CheckpointPart>>();
    builder.build(move |capabilities| {
        let mut caps: [Capability<Time>; 3] = capabilities.try_into().unwrap_or_else(|_| panic!("a capability per output"));
        for cap in caps.iter_mut() {
            cap.downgrade(&time(0, epochs.start));
        }
        let mut outputs = SourceOutputs {
            trips: OutputBuilder::from(trips_output),
            dead_letters: OutputBuilder::from(dead_output),
            parts: OutputBuilder::from(parts_output),
            caps: Some(caps),
            activator,
            worker: worker.to_string(),
            totals,
            epochs,
            next_cut: std::time::Instant::now() + epochs.interval.unwrap_or_default(),
        };
        move |_frontiers| {
            if outputs.caps.is_some() {
                logic(&mut outputs);
            }
        }
    });
    (trips, dead_letters, parts)
}
