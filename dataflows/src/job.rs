//! The whole reference job as one builder: NYC filter, then hot spots and airport durations.

use std::cell::Cell;
use std::rc::Rc;

use timely::dataflow::StreamVec;

use crate::airport_durations::airport_durations;
use crate::documents::{PickupCount, TripDuration};
use crate::hot_spots::hot_spots;
use crate::nyc_filter::filter_nyc;
use crate::profile::JobSettings;
use crate::trip::Trip;

/// The result streams of [`build_job`], timestamps = window ends (ms since the Unix epoch).
pub struct JobStreams<'s> {
    /// `pickup_count` documents.
    pub pickup_counts: StreamVec<'s, u64, PickupCount>,
    /// `trip_duration` documents.
    pub trip_durations: StreamVec<'s, u64, TripDuration>,
}

/// Builds the reference job of `settings.profile` on a stream of trips whose timestamps never exceed their
/// event time (see [`crate::windowed_aggregate`]). Trips outside NYC are counted into `filtered`.
pub fn build_job<'s>(trips: StreamVec<'s, u64, Trip>, settings: &JobSettings, filtered: Rc<Cell<u64>>) -> JobStreams<'s> {
    let nyc = filter_nyc(trips, settings.nyc.clone(), filtered);
    JobStreams {
        pickup_counts: hot_spots(nyc.clone(), settings),
        trip_durations: airport_durations(nyc, settings),
    }
}
