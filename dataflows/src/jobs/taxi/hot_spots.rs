//! Pickup hot spots: trips per pickup geohash cell per tumbling window (taxi docs §3 "hot spots", output
//! `pickup_count` of §4).

use timely::dataflow::operators::vec::Map;
use timely::dataflow::StreamVec;

use super::documents::pickup_count;
use super::geohash::Geohash;
use super::profile::TaxiSettings;
use super::trip::Trip;
use crate::epoch::{CheckpointPart, Recovery, Time};
use crate::output::Row;
use crate::window::aggregate::windowed_aggregate;

/// Counts NYC trips (already filtered by [`super::nyc_filter::filter_nyc`]) per pickup geohash cell at
/// `settings.hot_spot_precision` per window of `settings.window`, keyed on the dropoff (event) time.
///
/// Output: one `pickup_count` row per (cell, window) with `pickup_count ≥ settings.min_pickup_count`, at
/// timestamp = window end, `timestamp` field = window end + `settings.timestamp_offset_ms`.
pub fn hot_spots<'s>(nyc_trips: StreamVec<'s, Time, Trip>, settings: &TaxiSettings, recovery: &Recovery) -> (StreamVec<'s, Time, Row>, StreamVec<'s, Time, CheckpointPart>) {
    let precision = settings.hot_spot_precision;
    let min_count = settings.min_pickup_count;
    let settings = settings.clone();
    let (aggregates, parts) = windowed_aggregate::<_, _, crate::window::aggregate::Count, _>(nyc_trips, settings.window, "hot_spots", recovery, move |trip: Trip| {
        Some((Geohash::encode(trip.pickup.lat, trip.pickup.lon, precision)?, ()))
    });
    let rows = aggregates.flat_map(move |agg| {
        (agg.acc.0 >= min_count).then(|| pickup_count(agg.key.as_str(), agg.acc.0, agg.window, settings.document_timestamp(agg.window.end_ms)))
    });
    (rows, parts)
}
