//! Keyed tumbling-window aggregation in event time: the operator every job's windows are built on.
//!
//! # Shape
//! `StreamVec<Time, R>` → `StreamVec<Time, Aggregated<K, A>>` (+ a stream of [`CheckpointPart`]s): for every
//! window `[s, e)` and key `K` with at least one record, one `Aggregated` record at event time `e` (and the
//! epoch being filled), emitted once, when the input frontier's event time reaches `e` (no element of the
//! frontier has an event time less than `e`).
//!
//! # Why this is correct
//! A record travels at a timestamp below the end of its window: the sources send a batch at their capability,
//! which is at most one more than the partition's watermark, and a record is late (kept out) when its
//! [`crate::job::Lateness::due`] time (its event time, or its window's end − 1 ms) is at or below the watermark.
//! So when the frontier reaches `e`, every record of a window ending at `e` has arrived, and the window is
//! complete.
//!
//! # State
//! Per-window state is **this operator's keyed state**, `BTreeMap<window end, HashMap<K, A>>`,
//! not a differential arrangement: a tumbling-window count or sum is an associative, commutative fold whose
//! windows are closed once and never retracted, so an arrangement would only add per-update (data, time, diff)
//! triples and their compaction to what is a single accumulator per key. Keys and accumulators are
//! `serde`-serializable and partitioned by the key's hash (not by worker index).
//!
//! # Checkpoints (issue 6)
//! Records of epochs that are not complete yet wait in per-epoch partial states; when the input frontier
//! passes epoch `e`, that epoch's partials are folded into the main state and the operator sends a
//! [`CheckpointPart::Window`] at epoch `e`: a [`WindowState`] with the open windows as `(window end, key,
//! accumulator)` rows (exactly the records of epochs `≤ e`) and how far windows are closed. Windows are closed
//! (after the parts of this activation are sent) and emitted at the epoch being filled, so a checkpoint that
//! says a window is closed always has its documents acknowledged by the sink. On restore, each instance takes
//! the rows whose key hash routes to it (any earlier worker count) and drops the records that re-read input
//! contributes to windows an earlier run already emitted ([`Closed`]).
//!
//! # Cost
//! Records are first folded per input batch on the worker that read them (a combiner, `Pipeline` pact, no copy
//! of records between workers); only the partial accumulators are exchanged by key hash. In-memory maps use
//! `rustc-hash`'s FxHash; routing between workers uses [`key_hash`], which is the same in every process.

use std::collections::hash_map::Entry;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use rustc_hash::FxHashMap as HashMap;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::{Operator, OutputBuilder};
use timely::dataflow::StreamVec;
use timely::ExchangeData;

use crate::epoch::{event_time_frontier, time, CheckpointPart, EpochCaps, PartsOutput, Recovery, Time};
use crate::job::EventTime;
use crate::window::{TumblingWindow, Window};

/// A mergeable per-window accumulator.
pub trait Accumulator: ExchangeData + Clone {
    /// What one record contributes (e.g. nothing for a count, a price for an average).
    type Value;

    /// The accumulator of one record's value.
    fn of(value: Self::Value) -> Self;

    /// Adds one more record's value (the combiner's per-record step: no allocation for most accumulators).
    fn add(&mut self, value: Self::Value);

    /// Folds `other` into `self`; must be associative and commutative.
    fn merge(&mut self, other: &Self);
}

/// Count of records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count(pub u64);

impl Accumulator for Count {
    type Value = ();

    #[inline]
    fn of(_: ()) -> Self {
        Count(1)
    }

    #[inline]
    fn add(&mut self, _: ()) {
        self.0 += 1;
    }

    #[inline]
    fn merge(&mut self, other: &Self) {
        self.0 += other.0;
    }
}

/// The final accumulator of one key in one window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Aggregated<K, A> {
    /// The closed window.
    pub window: Window,
    /// The key.
    pub key: K,
    /// The folded accumulator.
    pub acc: A,
}

/// Hash of a key that is the same in every process of a cluster (FxHash has no random seed), used to route
/// partial accumulators to the worker that owns the key.
pub fn key_hash<K: Hash>(key: &K) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    key.hash(&mut h);
    h.finish()
}

/// How far an earlier run closed windows, for the keys one of its operator instances owned: windows of keys
/// with `key_hash(key) % modulus == residue` and an end `≤ through` were emitted (ms since the Unix epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closed {
    /// Worker count of the run whose instance this was.
    pub modulus: u64,
    /// Its worker index.
    pub residue: u64,
    /// Every window with an end `≤ through` was emitted for these keys.
    pub through: u64,
}

/// The checkpointed state of one instance of a window operator (see the module documentation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowState<K, A> {
    /// Open windows: `(window end, key, accumulator)`, folded over every record of epochs `≤ e`.
    pub rows: Vec<(u64, K, A)>,
    /// How far windows were closed, per instance that owned the keys (this one, and of earlier runs those
    /// that still matter).
    pub closed: Vec<Closed>,
}

/// Aggregates records per `(window, key)` with `key_of`, which maps a record (taken by value, so that a key can
/// be moved out of it) to its key and its accumulator value, or `None` to leave it out. Returns the aggregates and, when `recovery.enabled`, the
/// checkpoint parts of this operator (see the module documentation for shapes and guarantees).
///
/// # Panics
/// A window part of `recovery` that does not deserialize as this operator's [`WindowState`] (the checkpoint
/// store verified its checksum, so this is a different job's state).
pub fn windowed_aggregate<'s, R, K, A, F>(
    records: StreamVec<'s, Time, R>,
    window: TumblingWindow,
    name: &str,
    recovery: &Recovery,
    mut key_of: F,
) -> (StreamVec<'s, Time, Aggregated<K, A>>, StreamVec<'s, Time, CheckpointPart>)
where
    R: EventTime + Clone + 'static,
    K: ExchangeData + Hash + Eq + Clone,
    A: Accumulator,
    F: FnMut(R) -> Option<(K, A::Value)> + 'static,
{
    // 1. Combiner: fold each input batch on the worker that read it.
    let partials: StreamVec<'s, Time, (u64, K, A)> =
        records.unary(Pipeline, &format!("{name}.combine"), move |_capability, _info| {
            let mut local: HashMap<(u64, K), A> = HashMap::default();
            move |input, output| {
                input.for_each_time(|time, batches| {
                    for batch in batches {
                        for record in batch.drain(..) {
                            let start = window.window_of(record.event_time()).start_ms;
                            if let Some((key, value)) = key_of(record) {
                                match local.entry((start, key)) {
                                    Entry::Occupied(mut e) => e.get_mut().add(value),
                                    Entry::Vacant(e) => {
                                        e.insert(A::of(value));
                                    }
                                }
                            }
                        }
                    }
                    let mut session = output.session(&time);
                    for ((start, key), acc) in local.drain() {
                        session.give((start, key, acc));
                    }
                });
            }
        });

    // 2. Keyed window state, partitioned by key hash; a window is released when the frontier reaches its end.
    let scope = partials.scope();
    let (index, peers) = (scope.index() as u64, scope.peers() as u64);
    let mut state: KeyedWindows<K, A> = KeyedWindows::restore(recovery, name, index, peers);
    let checkpointing = recovery.enabled;
    let length = window.length_ms;
    let operator = name.to_string();

    let mut builder = OperatorBuilder::new(name.to_owned(), scope);
    let mut input = builder.new_input(partials, Exchange::new(|(_, key, _): &(u64, K, A)| key_hash(key)));
    let (results_output, results) = builder.new_output::<Vec<Aggregated<K, A>>>();
    let (parts_output, parts) = builder.new_output::<Vec<CheckpointPart>>();
    let mut results_output = OutputBuilder::<_, CapacityContainerBuilder<Vec<Aggregated<K, A>>>>::from(results_output);
    let mut parts_output = PartsOutput::from(parts_output);
    let start_epoch = recovery.start_epoch;
    builder.build(move |capabilities| {
        // The results are emitted from the floor, held at the meet of the input frontier (see the module docs).
        let mut caps = EpochCaps::new(capabilities, start_epoch, checkpointing);
        move |frontiers| {
            let frontier = frontiers[0].frontier();
            let done = caps.done;
            input.for_each_time(|time, batches| {
                for batch in batches {
                    for (start, key, acc) in batch.drain(..) {
                        state.add(start + length, key, acc, time.time().inner, done);
                    }
                }
            });
            // Checkpoint parts of the epochs this activation completed, before any window closes.
            caps.complete_epochs(frontier, &mut parts_output, |e| {
                state.fold_epoch(e);
                CheckpointPart::Window { operator: operator.clone(), worker: index as usize, state: state.snapshot() }
            });
            let done = caps.done;
            // Close every window the event-time frontier has passed, at the epoch being filled.
            let passed = event_time_frontier(frontier).unwrap_or(u64::MAX);
            if let Some(cap) = &caps.floor {
                let mut output = results_output.activate();
                while let Some((end, rows)) = state.close_first(passed) {
                    let cap = cap.delayed(&time(end, done + 1));
                    let mut session = output.session(&cap);
                    let window = Window { start_ms: end - length, end_ms: end };
                    for (key, acc) in rows {
                        session.give(Aggregated { window, key, acc });
                    }
                }
            }
            state.closed_through(passed);
            caps.settle(frontier, passed, &mut parts_output, || CheckpointPart::Window { operator: operator.clone(), worker: index as usize, state: state.snapshot() });
        }
    });
    (results, parts)
}

/// The state of one instance of a window operator: folded records of complete epochs, partials of epochs not
/// complete yet, and how far windows are closed.
struct KeyedWindows<K, A> {
    /// Window end → key → accumulator, over every record of epochs `≤ done`.
    main: BTreeMap<u64, HashMap<K, A>>,
    /// Epoch → window end → key → accumulator, for epochs `> done`.
    pending: BTreeMap<u64, BTreeMap<u64, HashMap<K, A>>>,
    /// This instance: windows with an end `≤ own.through` were emitted.
    own: Closed,
    /// Of the restored checkpoint, the entries that still close more than `own`.
    inherited: Vec<Closed>,
}

impl<K: ExchangeData + Hash + Eq + Clone, A: Accumulator> KeyedWindows<K, A> {
    /// The state of instance `index` of `peers` from the parts of operator `name` in `recovery`.
    fn restore(recovery: &Recovery, name: &str, index: u64, peers: u64) -> Self {
        let mut state = KeyedWindows { main: BTreeMap::new(), pending: BTreeMap::new(), own: Closed { modulus: peers, residue: index, through: 0 }, inherited: Vec::new() };
        for bytes in recovery.windows.get(name).into_iter().flatten() {
            let part: WindowState<K, A> = bincode::deserialize(bytes).unwrap_or_else(|e| panic!("checkpointed state of {name} does not match this job: {e}"));
            for (end, key, acc) in part.rows {
                if key_hash(&key) % peers == index {
                    merge_into(state.main.entry(end).or_default(), key, &acc);
                }
            }
            state.inherited.extend(part.closed);
        }
        state
    }

    /// Every window of `key` with an end `≤` this was emitted.
    fn closed_for(&self, key: &K) -> u64 {
        if self.inherited.is_empty() {
            return self.own.through;
        }
        let hash = key_hash(key);
        self.inherited.iter().filter(|c| hash % c.modulus == c.residue).map(|c| c.through).fold(self.own.through, u64::max)
    }

    /// Adds a partial accumulator of window `end` read at `epoch`; dropped when the window was emitted (by an
    /// earlier run: re-read input).
    fn add(&mut self, end: u64, key: K, acc: A, epoch: u64, done: u64) {
        if end <= self.closed_for(&key) {
            return;
        }
        let windows = if epoch <= done { &mut self.main } else { self.pending.entry(epoch).or_default() };
        merge_into(windows.entry(end).or_default(), key, &acc);
    }

    /// Folds the partials of epoch `e` into the main state.
    fn fold_epoch(&mut self, e: u64) {
        for (end, keys) in self.pending.remove(&e).unwrap_or_default() {
            let into = self.main.entry(end).or_default();
            for (key, acc) in keys {
                merge_into(into, key, &acc);
            }
        }
    }

    /// The main state as a serialized [`WindowState`].
    fn snapshot(&self) -> Vec<u8> {
        let rows = self.main.iter().flat_map(|(end, keys)| keys.iter().map(|(k, a)| (*end, k.clone(), a.clone()))).collect();
        let mut closed = vec![self.own];
        closed.extend(self.inherited.iter().filter(|c| c.through > self.own.through));
        bincode::serialize(&WindowState { rows, closed }).expect("window state serializes")
    }

    /// Removes and returns the earliest window (main and pending folded) if its end is `≤ passed`.
    fn close_first(&mut self, passed: u64) -> Option<(u64, HashMap<K, A>)> {
        let end = self.main.keys().next().into_iter().chain(self.pending.values().filter_map(|w| w.keys().next())).min().copied()?;
        if end > passed {
            return None;
        }
        let mut keys = self.main.remove(&end).unwrap_or_default();
        for windows in self.pending.values_mut() {
            for (key, acc) in windows.remove(&end).unwrap_or_default() {
                merge_into(&mut keys, key, &acc);
            }
        }
        self.pending.retain(|_, w| !w.is_empty());
        Some((end, keys))
    }

    /// Records that every window with an end `≤ passed` has been emitted.
    fn closed_through(&mut self, passed: u64) {
        self.own.through = self.own.through.max(passed);
        let own = self.own.through;
        self.inherited.retain(|c| c.through > own);
    }
}

fn merge_into<K: Hash + Eq, A: Accumulator>(keys: &mut HashMap<K, A>, key: K, acc: &A) {
    match keys.entry(key) {
        Entry::Occupied(mut e) => e.get_mut().merge(acc),
        Entry::Vacant(e) => {
            e.insert(acc.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_of(windows: &KeyedWindows<u64, Count>) -> WindowState<u64, Count> {
        bincode::deserialize(&windows.snapshot()).unwrap()
    }

    #[test]
    fn a_snapshot_holds_exactly_the_completed_epochs() {
        let recovery = Recovery { enabled: true, start_epoch: 1, windows: Default::default() };
        let mut w: KeyedWindows<u64, Count> = KeyedWindows::restore(&recovery, "op", 0, 1);
        w.add(100, 7, Count(1), 1, 0);
        w.add(100, 7, Count(2), 2, 0);
        w.add(200, 8, Count(5), 2, 0);
        w.fold_epoch(1);
        assert_eq!(state_of(&w).rows, vec![(100, 7, Count(1))], "epoch 2 is not in the snapshot of epoch 1");
        w.fold_epoch(2);
        let mut rows = state_of(&w).rows;
        rows.sort_by_key(|r| r.0);
        assert_eq!(rows, vec![(100, 7, Count(3)), (200, 8, Count(5))]);
        // Closing folds every epoch of the window.
        w.add(100, 7, Count(10), 3, 2);
        assert_eq!(w.close_first(99), None);
        let (end, keys) = w.close_first(100).unwrap();
        assert_eq!((end, keys.get(&7).copied()), (100, Some(Count(13))));
        w.closed_through(150);
        assert_eq!(state_of(&w).closed, vec![Closed { modulus: 1, residue: 0, through: 150 }]);
    }

    #[test]
    fn restored_under_another_worker_count_by_key_hash() {
        // Two instances of a 2-worker run: instance 0 had closed windows up to 100, instance 1 only up to 50.
        let keys: Vec<u64> = (0..40).collect();
        let part = |residue: u64, through: u64| -> Vec<u8> {
            let rows = keys.iter().filter(|k| key_hash(*k) % 2 == residue).map(|k| (200, *k, Count(*k + 1))).collect();
            bincode::serialize(&WindowState { rows, closed: vec![Closed { modulus: 2, residue, through }] }).unwrap()
        };
        let recovery = Recovery { enabled: true, start_epoch: 5, windows: [("op".to_string(), vec![part(0, 100), part(1, 50)])].into() };
        // Restored by 3 workers: every row goes to exactly the instance its key routes to.
        let mut restored = Vec::new();
        for index in 0..3 {
            let mut w: KeyedWindows<u64, Count> = KeyedWindows::restore(&recovery, "op", index, 3);
            for (_, k, acc) in state_of(&w).rows {
                assert_eq!(key_hash(&k) % 3, index);
                assert_eq!(acc, Count(k + 1));
                restored.push(k);
            }
            // Re-read input of a window the old owner had emitted is dropped; of one it had not, kept.
            for k in keys.iter().filter(|k| key_hash(*k) % 3 == index) {
                let closed_by_old_owner = if key_hash(k) % 2 == 0 { 100 } else { 50 };
                w.add(80, *k, Count(1), 5, 4);
                let kept = w.close_first(80).is_some();
                assert_eq!(kept, 80 > closed_by_old_owner, "key {k}");
            }
        }
        restored.sort();
        assert_eq!(restored, keys);
    }
}
