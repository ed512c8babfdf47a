//! Keyed tumbling-window aggregation in event time: the operator both computations are built on.
//!
//! # Shape
//! `StreamVec<u64, Trip>` → `StreamVec<u64, Aggregated<K, A>>`: for every window `[s, e)` and key `K` with at
//! least one trip, one `Aggregated` record at timestamp `e`, emitted once, when the input frontier reaches `e`
//! (no element of the frontier is less than `e`).
//!
//! # Why this is correct
//! A trip may travel at any timestamp ≤ its event time (the file and stream sources send a batch at their
//! capability, which is at most one more than the partition's watermark, and trips at or below the watermark
//! are late and never enter the dataflow). So when the frontier reaches `e`, every trip with event time `< e`
//! has arrived, and window `[s, e)` is complete.
//!
//! # State
//! Per-window state is **this operator's keyed state**, `BTreeMap<window end, (Capability, HashMap<K, A>)>`,
//! not a differential arrangement: a tumbling-window count or sum is an associative, commutative fold whose
//! windows are closed once and never retracted, so an arrangement would only add per-update (data, time, diff)
//! triples and their compaction to what is a single accumulator per key. Keys and accumulators are
//! `serde`-serializable and partitioned by the key's hash (not by worker index), so the checkpoint work can
//! persist open windows as `(window end, key, accumulator)` rows and restore them under another worker count.
//!
//! # Cost
//! Trips are first folded per input batch on the worker that read them (a combiner, `Pipeline` pact, no copy
//! of trips between workers); only the partial accumulators are exchanged by key hash. In-memory maps use
//! `rustc-hash`'s FxHash; routing between workers uses [`key_hash`], which is the same in every process.

use std::collections::hash_map::Entry;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};


use rustc_hash::FxHashMap as HashMap;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;
use timely::ExchangeData;

use crate::trip::Trip;
use crate::window::{TumblingWindow, Window};

/// A mergeable per-window accumulator.
pub trait Accumulator: ExchangeData + Clone {
    /// Folds `other` into `self`; must be associative and commutative.
    fn merge(&mut self, other: &Self);
}

/// Count of trips.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count(pub u64);

impl Accumulator for Count {
    #[inline]
    fn merge(&mut self, other: &Self) {
        self.0 += other.0;
    }
}

/// Sum of whole minutes and number of trips.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinutesSum {
    /// Sum of the trips' whole minutes.
    pub sum: i64,
    /// Number of trips.
    pub trips: u64,
}

impl Accumulator for MinutesSum {
    #[inline]
    fn merge(&mut self, other: &Self) {
        self.sum += other.sum;
        self.trips += other.trips;
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

/// Aggregates trips per `(window, key)` with `key_of`, which maps a trip to its key and its accumulator
/// contribution, or `None` to leave it out. See the module documentation for shapes and guarantees.
pub fn windowed_aggregate<'s, K, A, F>(
    trips: StreamVec<'s, u64, Trip>,
    window: TumblingWindow,
    name: &str,
    mut key_of: F,
) -> StreamVec<'s, u64, Aggregated<K, A>>
where
    K: ExchangeData + Hash + Eq + Clone,
    A: Accumulator,
    F: FnMut(&Trip) -> Option<(K, A)> + 'static,
{
    // 1. Combiner: fold each input batch on the worker that read it.
    let partials: StreamVec<'s, u64, (u64, K, A)> =
        trips.unary(Pipeline, &format!("{name}.combine"), move |_capability, _info| {
            let mut local: HashMap<(u64, K), A> = HashMap::default();
            move |input, output| {
                input.for_each_time(|time, batches| {
                    for batch in batches {
                        for trip in batch.drain(..) {
                            if let Some((key, acc)) = key_of(&trip) {
                                let start = window.window_of(trip.event_time()).start_ms;
                                match local.entry((start, key)) {
                                    Entry::Occupied(mut e) => e.get_mut().merge(&acc),
                                    Entry::Vacant(e) => {
                                        e.insert(acc);
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
    let length = window.length_ms;
    partials.unary_frontier(
        Exchange::new(|(_, key, _): &(u64, K, A)| key_hash(key)),
        name,
        move |_capability, _info| {
            let mut open: BTreeMap<u64, (Capability<u64>, HashMap<K, A>)> = BTreeMap::new();
            move |(input, frontier), output| {
                let port = output.output_index();
                input.for_each_time(|time, batches| {
                    for batch in batches {
                        for (start, key, acc) in batch.drain(..) {
                            let end = start + length;
                            let (_, state) = open
                                .entry(end)
                                .or_insert_with(|| (time.delayed(&end, port), HashMap::default()));
                            match state.entry(key) {
                                Entry::Occupied(mut e) => e.get_mut().merge(&acc),
                                Entry::Vacant(e) => {
                                    e.insert(acc);
                                }
                            }
                        }
                    }
                });
                while let Some(entry) = open.first_entry() {
                    let end = *entry.key();
                    if frontier.less_than(&end) {
                        break;
                    }
                    let (capability, state) = entry.remove();
                    let window = Window { start_ms: end - length, end_ms: end };
                    let mut session = output.session(&capability);
                    for (key, acc) in state {
                        session.give(Aggregated { window, key, acc });
                    }
                }
            }
        },
    )
}
