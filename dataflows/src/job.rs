//! The whole reference job as one builder: NYC filter, then hot spots and airport durations.

use std::cell::Cell;
use std::rc::Rc;

use timely::dataflow::operators::Concat;
use timely::dataflow::StreamVec;

use crate::airport_durations::airport_durations;
use crate::documents::{PickupCount, TripDuration};
use crate::epoch::{CheckpointPart, Recovery, Time};
use crate::hot_spots::hot_spots;
use crate::nyc_filter::filter_nyc;
use crate::profile::JobSettings;
use crate::trip::Trip;

/// The result streams of [`build_job`], timestamps = window ends (ms since the Unix epoch).
pub struct JobStreams<'s> {
    /// `pickup_count` documents.
    pub pickup_counts: StreamVec<'s, Time, PickupCount>,
    /// `trip_duration` documents.
    pub trip_durations: StreamVec<'s, Time, TripDuration>,
    /// Checkpoint parts of both window operators (empty unless `recovery.enabled`).
    pub checkpoint_parts: StreamVec<'s, Time, CheckpointPart>,
}

/// Builds the reference job of `settings.profile` on a stream of trips whose timestamps never exceed their
/// event time (see [`crate::windowed_aggregate`]). Trips outside NYC are counted into `filtered`. The window
/// operators start from `recovery` (see [`crate::epoch`]).
pub fn build_job<'s>(trips: StreamVec<'s, Time, Trip>, settings: &JobSettings, recovery: &Recovery, filtered: Rc<Cell<u64>>) -> JobStreams<'s> {
    let nyc = filter_nyc(trips, settings.nyc.clone(), filtered);
    let (pickup_counts, hot_spot_parts) = hot_spots(nyc.clone(), settings, recovery);
    let (trip_durations, duration_parts) = airport_durations(nyc, settings, recovery);
    JobStreams { pickup_counts, trip_durations, checkpoint_parts: hot_spot_parts.concat(duration_parts) }
}
