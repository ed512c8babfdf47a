//! Pickup hot spots: trips per pickup geohash cell per tumbling window (spec §3 "hot spots", index
//! `pickup_count` of spec §4).

use timely::dataflow::operators::vec::Map;
use timely::dataflow::StreamVec;

use crate::documents::{document_id, PickupCount, PICKUP_COUNT_INDEX};
use crate::geohash::Geohash;
use crate::epoch::{CheckpointPart, Recovery, Time};
use crate::profile::JobSettings;
use crate::trip::Trip;
use crate::windowed_aggregate::{windowed_aggregate, Count};

/// Counts NYC trips (already filtered by [`crate::nyc_filter::filter_nyc`]) per pickup geohash cell at
/// `settings.hot_spot_precision` per window of `settings.window`, keyed on the dropoff (event) time.
///
/// Output: one [`PickupCount`] per (cell, window) with `pickup_count ≥ settings.min_pickup_count`, at
/// timestamp = window end, `timestamp` field = window end + `settings.timestamp_offset_ms`.
pub fn hot_spots<'s>(nyc_trips: StreamVec<'s, Time, Trip>, settings: &JobSettings, recovery: &Recovery) -> (StreamVec<'s, Time, PickupCount>, StreamVec<'s, Time, CheckpointPart>) {
    let precision = settings.hot_spot_precision;
    let min_count = settings.min_pickup_count;
    let settings = settings.clone();
    let (aggregates, parts) = windowed_aggregate(nyc_trips, settings.window, "hot_spots", recovery, move |trip| {
        Some((Geohash::encode(trip.pickup.lat, trip.pickup.lon, precision)?, Count(1)))
    });
    let documents = aggregates.flat_map(move |agg| {
        (agg.acc.0 >= min_count).then(|| {
            let cell = agg.key.as_str();
            PickupCount {
                id: document_id(PICKUP_COUNT_INDEX, &[cell], agg.window),
                location: cell.to_string(),
                pickup_count: agg.acc.0,
                timestamp: settings.document_timestamp(agg.window.end_ms),
            }
        })
    });
    (documents, parts)
}
