//! The sink operator, on worker 0 of process 0: every output row and dead letter is routed there, released to the
//! sink ([`crate::connectors::Sink`]) in a deterministic order, and — with checkpoints — each epoch is committed
//! once every worker's rows and checkpoint parts have passed it (see [`super::checkpoint`]).
//!
//! Release ([`Release`]): a time's rows are written when the input frontier passes that event time, sorted by
//! (`order`, `id`), so files do not depend on the number of workers; dead letters are written as they arrive
//! (sorted within each batch). A sink that cannot take back what it wrote (files, part files) gets an epoch's
//! rows only when the epoch is committed instead.
//!
//! Commit: every row of the epoch is written first, the sink made durable or staged
//! ([`crate::connectors::Sink::prepare_commit`]), then the checkpoint written with the sink's state, then the sink
//! told to publish ([`crate::connectors::Sink::commit`]): a checkpoint never claims a row the sink does not have,
//! and nothing staged becomes visible before the checkpoint that covers it.
//!
//! Graceful stop (SIGTERM with checkpoints): the sources report their last epoch
//! ([`taxiflow_dataflows::CheckpointPart::Stopped`]); once every worker's source has, and an epoch at least that
//! late is committed, the operator emits that epoch on its output, which the runner broadcasts to every worker to
//! end the run ([`super::shutdown::Shutdown::finish`]).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use taxiflow_dataflows::epoch::{completed_epoch, event_time_frontier, event_time_passed, CheckpointPart, Time};
use taxiflow_dataflows::output::{Outputs, Row, WatermarkRecords};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;

use super::checkpoint::writer::CheckpointWriter;
use super::shutdown::Shutdown;
use crate::connectors::{Release, Sink};

/// The sink of worker 0, with the bookkeeping every sink shares: the first error is kept, the run is stopped
/// ([`Shutdown::fail`]) and the error reported at the end (the run then exits non-zero); rows written are counted
/// per output; nothing after an error is claimed as written.
pub struct SinkWriter {
    sink: Box<dyn Sink>,
    outputs: Outputs,
    release: Release,
    acknowledges: bool,
    error: Option<String>,
    written: Vec<u64>,
    shutdown: Shutdown,
    /// Per output with watermark records: the last W written and when the next may be.
    watermarks: Vec<(u16, WatermarkRecords, Option<u64>, Instant)>,
    /// Fault injection for crash tests, [`ABORT_BEFORE_COMMIT`]: the commit (counted from 1 in this process)
    /// before which the process aborts.
    abort_before_commit: Option<u64>,
    /// Commits so far in this process.
    commits: u64,
}

/// Fault injection for crash tests: with this environment variable set to N, the process aborts (like a
/// SIGKILL: no cleanup, nothing flushed) after its N-th checkpoint is durable and before the sink is told to
/// commit it, the one moment a crash loop cannot aim at from outside. Read once, when the sink opens.
pub const ABORT_BEFORE_COMMIT: &str = "TAXIFLOW_FAULT_ABORT_BEFORE_SINK_COMMIT";

impl SinkWriter {
    /// Wraps `sink` for the run's `outputs`.
    pub fn new(sink: Box<dyn Sink>, outputs: &Outputs, checkpointing: bool, shutdown: Shutdown) -> SinkWriter {
        let release = sink.release(checkpointing);
        let acknowledges = sink.acknowledges();
        let watermarks = outputs.schemas.iter().enumerate().filter_map(|(i, o)| o.watermarks.map(|w| (i as u16, w, None, Instant::now()))).collect();
        let abort_before_commit = std::env::var(ABORT_BEFORE_COMMIT).ok().and_then(|n| n.parse().ok());
        SinkWriter { sink, release, acknowledges, written: vec![0; outputs.schemas.len()], outputs: outputs.clone(), error: None, shutdown, watermarks, abort_before_commit, commits: 0 }
    }

    /// Writes the watermark records of the outputs that have them (see [`WatermarkRecords`]): `w` is the largest
    /// event time such that every row up to it was written; at most every interval unless `last` (the end).
    pub fn watermark(&mut self, w: u64, last: bool) {
        let now = Instant::now();
        for i in 0..self.watermarks.len() {
            let (output, records, written, next) = self.watermarks[i];
            if self.error.is_some() || written.is_some_and(|x| x >= w) || (!last && now < next) {
                continue;
            }
            let row = records.row(output, self.outputs.schema(output).fields.len(), w);
            let result = self.sink.write_watermark(w, &row);
            if self.check(result) {
                self.watermarks[i].2 = Some(w);
                self.watermarks[i].3 = now + Duration::from_millis(records.interval_ms);
            }
        }
    }

    /// Whether an output has watermark records.
    pub fn has_watermarks(&self) -> bool {
        !self.watermarks.is_empty()
    }

    /// When the sink wants rows.
    pub fn release(&self) -> Release {
        self.release
    }

    /// Whether a graceful stop was asked for.
    pub fn stopping(&self) -> bool {
        self.shutdown.requested()
    }

    /// Writes the rows released at dataflow time `time` sorted by (`order`, `id`, values: [`Row::release_cmp`]), so
    /// files do not depend on the number of workers or on the order rows arrived in.
    pub fn write_sorted(&mut self, time: Time, mut rows: Vec<Row>) {
        rows.sort_unstable_by(Row::release_cmp);
        let before = self.written.clone();
        for row in &rows {
            if self.error.is_some() {
                break;
            }
            let result = self.sink.write(time.outer, row);
            if self.check(result) {
                self.written[row.output as usize] += 1;
            }
        }
        // The documents counter once per output and batch (a labelled counter is a registry lookup).
        if !self.acknowledges {
            for (output, (now, was)) in self.written.iter().zip(before).enumerate() {
                if *now > was {
                    metrics::counter!("taxiflow_documents_out_total", "index" => self.outputs.schema(output as u16).name).increment(now - was);
                }
            }
        }
    }

    /// Hands buffered rows over (see [`Sink::flush`]).
    pub fn flush(&mut self) {
        if self.error.is_none() {
            let result = self.sink.flush();
            self.check(result);
        }
    }

    fn check<T>(&mut self, result: anyhow::Result<T>) -> bool {
        match result {
            Ok(_) => true,
            Err(e) => {
                self.fail(format!("{e:#}"));
                false
            }
        }
    }

    /// Records a failure that ends the run.
    pub fn fail(&mut self, error: String) {
        tracing::error!(error = %error, "sink failed; stopping the job");
        self.shutdown.fail(format!("--sink: {error}"));
        self.error.get_or_insert(error);
    }

    /// Makes everything written durable or staged for checkpoint `epoch` and returns the sink's state for it.
    ///
    /// # Errors
    /// The sink's first error, or the staging failed.
    pub fn prepare_commit(&mut self, epoch: u64) -> anyhow::Result<Vec<u8>> {
        if let Some(e) = &self.error {
            anyhow::bail!("{e}");
        }
        self.sink.prepare_commit(epoch)
    }

    /// Publishes what was staged for `epoch` (its checkpoint is durable).
    pub fn commit(&mut self, epoch: u64) {
        self.commits += 1;
        if self.abort_before_commit == Some(self.commits) {
            tracing::warn!(epoch, "{ABORT_BEFORE_COMMIT}: aborting before the sink commits");
            std::process::abort();
        }
        let result = self.sink.commit(epoch);
        self.check(result);
    }

    /// Flushes and closes the sink (`end_of_input`: every input was read to its end, not stopped) and returns the
    /// rows written per output (or, for a sink that counts acknowledgements, acknowledged).
    ///
    /// # Errors
    /// The sink failed to write; the output is incomplete.
    pub fn finish(&mut self, end_of_input: bool) -> anyhow::Result<Vec<u64>> {
        // Closed even after an error: the sink's own error (e.g. how many documents were not acknowledged) is the
        // one reported.
        match self.sink.finish(end_of_input && self.error.is_none()) {
            Ok(Some(acknowledged)) => self.written = acknowledged,
            Ok(None) => {}
            Err(e) => self.error = Some(format!("{e:#}")),
        }
        if let Some(e) = &self.error {
            anyhow::bail!("--sink: write failed, output is incomplete: {e}");
        }
        Ok(self.written.clone())
    }
}

/// The sink operator (see the module documentation): writes `rows` with `writer` (which only worker 0 has) and,
/// with `checkpoints`, commits each epoch once the rows and `parts` of every worker have passed it. Output: the
/// epoch of the last checkpoint of a graceful stop, once committed (broadcast by the runner to end the run).
pub fn sink<'s>(
    rows: StreamVec<'s, Time, Row>,
    parts: StreamVec<'s, Time, CheckpointPart>,
    dead_letter: u16,
    writer: Option<Rc<RefCell<SinkWriter>>>,
    mut checkpoints: Option<CheckpointWriter>,
    peers: usize,
) -> StreamVec<'s, Time, u64> {
    let release = writer.as_ref().map_or(Release::EventTime, |w| w.borrow().release());
    let mut documents: BTreeMap<Time, Vec<Row>> = BTreeMap::new();
    let mut dead_letters: BTreeMap<Time, Vec<Row>> = BTreeMap::new();
    rows.binary_frontier::<_, CapacityContainerBuilder<Vec<u64>>, _, _, _, _>(parts, Exchange::new(|_: &Row| 0), Exchange::new(|_: &CheckpointPart| 0), "sink", move |capability, _info| {
        // Held by worker 0 until the run ends, to announce the last checkpoint of a graceful stop.
        let mut announce = writer.is_some().then_some(capability);
        let mut announced = false;
        let mut released_through: Option<u64> = None;
        move |(rows, rows_frontier), (parts, parts_frontier), output| {
            rows.for_each_time(|time, batches| {
                for batch in batches {
                    for row in batch.drain(..) {
                        let pending = if row.output == dead_letter { &mut dead_letters } else { &mut documents };
                        pending.entry(*time.time()).or_default().push(row);
                    }
                }
            });
            parts.for_each_time(|time, batches| {
                for batch in batches {
                    for part in batch.drain(..) {
                        if let Some(c) = checkpoints.as_mut() {
                            c.accept(time.time().inner, part);
                        }
                    }
                }
            });
            let (rows_frontier, parts_frontier) = (rows_frontier.frontier(), parts_frontier.frontier());
            let finished = rows_frontier.is_empty() && parts_frontier.is_empty();
            // After a graceful stop: the epoch every source has stopped by, once all have reported. (Sources that
            // finish report too, but a run that is not stopping ends when its frontiers are empty.)
            let stopping = writer.as_ref().is_some_and(|w| w.borrow().stopping());
            let stop_epoch = checkpoints.as_ref().filter(|c| stopping && c.stopped().len() >= peers).and_then(|c| c.stopped().values().max().copied());
            // The largest epoch whose rows and parts have all arrived (checkpoints only).
            // While stopping, only the last checkpoint is taken (the sources cut empty epochs until they all reach it).
            let completed = checkpoints.as_ref().and_then(|c| {
                let both = completed_epoch(rows_frontier)?.min(completed_epoch(parts_frontier)?);
                let epoch = if finished { c.newest_epoch() } else { both };
                let wanted = finished || !stopping || stop_epoch.is_some_and(|stop| epoch >= stop);
                (epoch > c.committed() && wanted).then_some(epoch)
            });
            let releasable = |t: &Time| match release {
                Release::EventTime => event_time_passed(rows_frontier, t.outer) || completed.is_some_and(|e| t.inner <= e),
                Release::Epoch => finished || completed.is_some_and(|e| t.inner <= e),
            };
            // Dead letters need no event-time order: without epoch release they are written as they come (a
            // stalled frontier must not hold them back).
            let times: Vec<Time> = documents.keys().copied().filter(releasable).collect();
            let letters: Vec<Time> = dead_letters.keys().copied().filter(|t| release == Release::EventTime || releasable(t)).collect();
            let mut released = !times.is_empty() || !letters.is_empty();
            if let Some(writer) = &writer {
                let mut w = writer.borrow_mut();
                for t in &times {
                    w.write_sorted(*t, documents.remove(t).unwrap_or_default());
                }
                if let Some(t) = times.last() {
                    metrics::gauge!("taxiflow_output_watermark_ms").set(t.outer as f64);
                    released_through = released_through.max(Some(t.outer));
                }
                for t in &letters {
                    w.write_sorted(*t, dead_letters.remove(t).unwrap_or_default());
                }
                if w.has_watermarks() {
                    // Every row up to W was written: W is below the frontier and below every row still held back
                    // (of an epoch not committed yet); at the end, the largest event time written.
                    let held = documents.keys().map(|t| t.outer).min();
                    let bound = match (event_time_frontier(rows_frontier), held) {
                        (None, None) => released_through,
                        (f, h) => Some(f.unwrap_or(u64::MAX).min(h.unwrap_or(u64::MAX)).saturating_sub(1)).filter(|w| *w > 0 && *w < u64::MAX - 1),
                    };
                    if let Some(bound) = bound {
                        w.watermark(bound, finished);
                    }
                }
                if let (Some(epoch), Some(c)) = (completed, checkpoints.as_mut()) {
                    match w.prepare_commit(epoch).and_then(|state| c.commit(epoch, state)) {
                        Ok(()) => w.commit(epoch),
                        Err(e) => w.fail(format!("checkpoint {epoch} failed: {e:#}")),
                    }
                    released = false;
                }
                if released || finished {
                    w.flush();
                }
                let committed = checkpoints.as_ref().map_or(0, CheckpointWriter::committed);
                if let (Some(cap), Some(stop), false) = (&announce, stop_epoch, announced) {
                    if committed >= stop {
                        tracing::info!(epoch = committed, "last checkpoint of the stop committed");
                        output.session(cap).give(committed);
                        announced = true;
                    }
                }
            }
            if finished {
                announce = None;
            }
        }
    })
}
