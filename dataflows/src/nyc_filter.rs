//! The NYC filter shared by both computations (spec §3 "NYC filter (pickup AND dropoff)").

use std::cell::Cell;
use std::rc::Rc;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;

use crate::epoch::Time;
use crate::geo::Area;
use crate::trip::Trip;

/// Keeps the trips whose pickup **and** dropoff are in `nyc`; adds the number of trips left out to
/// `filtered` (a per-worker counter for the run summary and metrics). Shape: `StreamVec<Time, Trip>` →
/// `StreamVec<Time, Trip>`, same timestamps, no exchange.
pub fn filter_nyc<'s>(trips: StreamVec<'s, Time, Trip>, nyc: Area, filtered: Rc<Cell<u64>>) -> StreamVec<'s, Time, Trip> {
    trips.unary(Pipeline, "filter_nyc", move |_capability, _info| {
        move |input, output| {
            input.for_each_time(|time, batches| {
                let mut session = output.session(&time);
                for batch in batches {
                    let before = batch.len();
                    batch.retain(|t| nyc.contains(t.pickup) && nyc.contains(t.dropoff));
                    filtered.set(filtered.get() + (before - batch.len()) as u64);
                    session.give_container(batch);
                }
            });
        }
    })
}
