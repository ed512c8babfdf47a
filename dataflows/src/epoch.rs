//! The timestamp of every taxiflow dataflow: event time × checkpoint epoch, and the checkpoint parts that
//! operators send to the checkpoint writer.
//!
//! # Time
//! [`Time`] is `Product<event time, epoch>` with the product partial order: `outer` is the event time (ms since
//! the Unix epoch), `inner` the checkpoint epoch in which a source read the record. Event-time progress
//! (windows closing, documents released) looks only at `outer` ([`event_time_passed`]); checkpoint progress
//! looks only at `inner` ([`completed_epoch`]). Without `--checkpoint-dir` the epoch never changes, so the
//! dataflow behaves as with a plain event-time timestamp.
//!
//! # Epochs (issue 6, "a checkpoint is one epoch")
//! Every source holds its capabilities at `(watermark + 1, e)`. At each checkpoint interval it sends its
//! position (a [`CheckpointPart::Source`]) at epoch `e`, then downgrades its capabilities to epoch `e + 1`, so
//! everything it read before that moment travels at epochs `≤ e` and everything after at `> e`. When an
//! operator's input frontier has no element with epoch `≤ e`, it has received everything read before the cut
//! `e` of every source of every worker (timely's progress tracking), and it sends its own state for `e` (a
//! [`CheckpointPart::Window`]). The checkpoint writer commits `e` when its inputs (the parts, and the documents
//! of the sink) have passed `e`. This is the Chandy–Lamport / Flink aligned-barrier snapshot, with timely's
//! frontiers in place of barriers.

use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Capability;
use timely::order::Product;
use timely::progress::frontier::AntichainRef;

/// Event time (`outer`, ms since the Unix epoch) × checkpoint epoch (`inner`).
pub type Time = Product<u64, u64>;

/// A [`Time`] from an event time (ms since the Unix epoch) and an epoch.
#[inline]
pub fn time(event_time: u64, epoch: u64) -> Time {
    Product::new(event_time, epoch)
}

/// Whether no element of `frontier` can still produce data at event time `≤ t`: every element's event time is
/// `> t`. An empty frontier has passed everything.
#[inline]
pub fn event_time_passed(frontier: AntichainRef<'_, Time>, t: u64) -> bool {
    frontier.iter().all(|f| f.outer > t)
}

/// The smallest event time in `frontier` (`None` when it is empty).
#[inline]
pub fn event_time_frontier(frontier: AntichainRef<'_, Time>) -> Option<u64> {
    frontier.iter().map(|f| f.outer).min()
}

/// The smallest epoch in `frontier` (`None` when it is empty): every epoch below it is complete at this
/// operator, i.e. the largest completed epoch is this minus one.
#[inline]
pub fn epoch_frontier(frontier: AntichainRef<'_, Time>) -> Option<u64> {
    frontier.iter().map(|f| f.inner).min()
}

/// The largest epoch `e` such that no element of `frontier` has an epoch `≤ e`, given that nothing earlier
/// than `start` can be in flight; `None` when not even `start` is complete and the frontier is not empty.
/// An empty frontier gives `Some(u64::MAX)`.
#[inline]
pub fn completed_epoch(frontier: AntichainRef<'_, Time>) -> Option<u64> {
    match epoch_frontier(frontier) {
        None => Some(u64::MAX),
        Some(0) => None,
        Some(e) => Some(e - 1),
    }
}

/// A piece of a checkpoint, sent at epoch `e` to the checkpoint writer (worker 0 of process 0), which keeps
/// the newest part of each key with an epoch `≤ e` when it commits `e`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckpointPart {
    /// The position and watermark of one partition of a source (a file byte range, a Kafka partition, a
    /// Kinesis shard), keyed by the partition, never by worker, so that another worker count can resume it.
    /// `state` is the source's own serialization (see the `checkpoint` module of the `taxiflow` crate).
    Source {
        /// Partition key, e.g. `kafka:trips/3`.
        key: String,
        /// Serialized position.
        state: Vec<u8>,
    },
    /// The open windows of one instance of a window operator after every record of epochs `≤ e`
    /// ([`crate::window::aggregate::WindowState`], bincode).
    Window {
        /// Operator name (`hot_spots`, `airport_durations`).
        operator: String,
        /// Index of the worker that ran the instance in this run.
        worker: usize,
        /// Serialized [`crate::window::aggregate::WindowState`].
        state: Vec<u8>,
    },
    /// The source of worker `worker` has read its last record at epoch `epoch`: it finished, or stopped
    /// reading after a graceful stop, so a checkpoint of `epoch` or later holds everything it read.
    Stopped {
        /// Index of the worker whose source it is.
        worker: usize,
        /// The source's last epoch.
        epoch: u64,
    },
}

/// What the window operators of a run start from: the epoch of the restored checkpoint and its window parts.
#[derive(Clone, Debug, Default)]
pub struct Recovery {
    /// Whether checkpoints are taken (`--checkpoint-dir`): operators then send [`CheckpointPart`]s.
    pub enabled: bool,
    /// Epoch of the first records of this run: one more than the restored checkpoint's (1 without one).
    pub start_epoch: u64,
    /// Serialized window states of the restored checkpoint, per operator name (from any number of workers).
    pub windows: std::collections::BTreeMap<String, Vec<Vec<u8>>>,
}

/// The output that carries an operator's checkpoint parts.
pub type PartsOutput = OutputBuilder<Time, CapacityContainerBuilder<Vec<CheckpointPart>>>;

/// The capabilities of a stateful operator with two outputs, its results (output 0) and its checkpoint parts
/// (output 1), and the last epoch it has checkpointed (the window operator and the alert operator share this):
/// - `floor` is held at (the earliest event time it may still emit, the epoch being filled = `done + 1`);
/// - `parts` (only with checkpoints) is held at `(0, done + 1)`, and each completed epoch `e` gets a part at `(0, e)`;
/// - at the end (an empty input frontier) one last part is sent at `done + 1` and both are dropped.
pub struct EpochCaps {
    /// The results capability, `None` once the input has ended.
    pub floor: Option<Capability<Time>>,
    parts: Option<Capability<Time>>,
    /// Every epoch up to this one is checkpointed (its part was sent).
    pub done: u64,
}

impl EpochCaps {
    /// Takes the operator's two capabilities (results, then parts) and moves them to `(0, start_epoch)`; the parts
    /// capability is kept only when `checkpointing`.
    pub fn new(mut capabilities: Vec<Capability<Time>>, start_epoch: u64, checkpointing: bool) -> EpochCaps {
        let mut parts = capabilities.pop();
        let mut floor = capabilities.pop();
        let start = time(0, start_epoch);
        for cap in floor.iter_mut().chain(parts.iter_mut()) {
            cap.downgrade(&start);
        }
        if !checkpointing {
            parts = None;
        }
        EpochCaps { floor, parts, done: start_epoch - 1 }
    }

    /// Sends the part `snapshot(e)` of every epoch `e` that `frontier` has completed since the last call (before
    /// anything of a later epoch is emitted, see [`crate::epoch`]), and moves `done` to the last of them.
    pub fn complete_epochs(&mut self, frontier: AntichainRef<'_, Time>, output: &mut PartsOutput, mut snapshot: impl FnMut(u64) -> CheckpointPart) {
        if let (Some(cap), Some(completed)) = (&self.parts, completed_epoch(frontier)) {
            if !frontier.is_empty() && completed > self.done {
                let mut handle = output.activate();
                for e in self.done + 1..=completed {
                    handle.session(&cap.delayed(&time(0, e))).give(snapshot(e));
                }
                self.done = completed;
            }
        }
    }

    /// After the activation's results: at the end of the input sends the last part (`last()`) and drops both
    /// capabilities; otherwise moves `floor` to `(hold, done + 1)` and `parts` to `(0, done + 1)`.
    pub fn settle(&mut self, frontier: AntichainRef<'_, Time>, hold: u64, output: &mut PartsOutput, last: impl FnOnce() -> CheckpointPart) {
        let next = self.done + 1;
        if frontier.is_empty() {
            if let Some(cap) = self.parts.take() {
                output.activate().session(&cap.delayed(&time(0, next))).give(last());
            }
            self.floor = None;
        } else {
            let target = time(hold, next);
            if let Some(cap) = self.floor.as_mut().filter(|c| *c.time() != target) {
                cap.downgrade(&target);
            }
            if let Some(cap) = self.parts.as_mut().filter(|c| c.time().inner != next) {
                cap.downgrade(&time(0, next));
            }
        }
    }
}

/// Test support for the jobs' keyed operators: runs a dataflow of the runner's time shape (event time × epoch in an
/// iterative scope) to its end. `build` gets the records of a scripted source, whose `script(activation, caps,
/// output)` runs at every activation (counted from 1) with the source's capabilities (the initial one, at (0, 0),
/// first), until it leaves none.
#[cfg(test)]
pub(crate) fn run_scripted<D, S, B>(mut script: S, build: B)
where
    D: Clone + Send + 'static,
    S: FnMut(usize, &mut Vec<Capability<Time>>, &mut timely::dataflow::operators::generic::OutputBuilderSession<'_, Time, CapacityContainerBuilder<Vec<D>>>) + Send + Sync + 'static,
    B: for<'s> FnOnce(timely::dataflow::StreamVec<'s, Time, D>) + Send + Sync + 'static,
{
    timely::execute_directly(move |worker| {
        worker.dataflow::<u64, _, _>(|top| {
            top.iterative::<u64, _, _>(|scope| {
                let records = timely::dataflow::operators::generic::operator::source::<_, CapacityContainerBuilder<Vec<D>>, _, _>(scope, "script", move |cap, info| {
                    let activator = scope.activator_for(info.address);
                    let mut caps = vec![cap];
                    let mut activation = 0;
                    move |output| {
                        activation += 1;
                        script(activation, &mut caps, output);
                        if !caps.is_empty() {
                            activator.activate();
                        }
                    }
                });
                build(records);
            })
        });
        while worker.step() {}
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use timely::progress::Antichain;

    #[test]
    fn event_time_and_epoch_progress_are_read_separately() {
        let frontier = Antichain::from(vec![time(100, 3), time(50, 4)]);
        assert!(event_time_passed(frontier.borrow(), 49));
        assert!(!event_time_passed(frontier.borrow(), 50));
        assert_eq!(event_time_frontier(frontier.borrow()), Some(50));
        assert_eq!(completed_epoch(frontier.borrow()), Some(2));
        let empty: Antichain<Time> = Antichain::new();
        assert!(event_time_passed(empty.borrow(), u64::MAX - 1));
        assert_eq!(completed_epoch(empty.borrow()), Some(u64::MAX));
        assert_eq!(completed_epoch(Antichain::from_elem(time(0, 0)).borrow()), None);
    }
}
