//! The NYC filter shared by both computations (taxi docs §3 "NYC filter (pickup AND dropoff)").

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;

use super::geo::Area;
use super::trip::Trip;
use crate::epoch::Time;
use crate::job::Counters;

/// Keeps the trips whose pickup **and** dropoff are in `nyc`; adds the number of trips left out to counter
/// `filtered` of `counters` (per worker, for the run summary). Shape: `StreamVec<Time, Trip>` →
/// `StreamVec<Time, Trip>`, same timestamps, no exchange.
pub fn filter_nyc<'s>(trips: StreamVec<'s, Time, Trip>, nyc: Area, counters: Counters, filtered: usize) -> StreamVec<'s, Time, Trip> {
    trips.unary(Pipeline, "filter_nyc", move |_capability, _info| {
        move |input, output| {
            input.for_each_time(|time, batches| {
                let mut session = output.session(&time);
                for batch in batches {
                    let before = batch.len();
                    batch.retain(|t| nyc.contains(t.pickup) && nyc.contains(t.dropoff));
                    counters.add(filtered, (before - batch.len()) as u64);
                    session.give_container(batch);
                }
            });
        }
    })
}
