//! Airport trip durations: average whole minutes from each pickup cell to JFK and to LGA per tumbling window
//! (spec §3 "duration", index `trip_duration` of spec §4).

use timely::dataflow::operators::vec::Map;
use timely::dataflow::StreamVec;

use crate::documents::{document_id, TripDuration, TRIP_DURATION_INDEX};
use crate::geo::Airport;
use crate::geohash::Geohash;
use crate::epoch::{CheckpointPart, Recovery, Time};
use crate::profile::JobSettings;
use crate::trip::Trip;
use crate::windowed_aggregate::{windowed_aggregate, MinutesSum};

/// For NYC trips (already filtered by [`crate::nyc_filter::filter_nyc`]) whose dropoff is at an airport
/// ([`JobSettings::airport_of`], JFK first), sums the whole minutes of each trip (truncated toward zero,
/// negatives kept) per (pickup geohash at `settings.duration_precision`, airport) per window.
///
/// Output: one [`TripDuration`] per group with at least `settings.min_duration_trips` trips, with
/// `avg_trip_duration = sum / n` as f64, at timestamp = window end, `timestamp` field = window end +
/// `settings.timestamp_offset_ms`.
pub fn airport_durations<'s>(nyc_trips: StreamVec<'s, Time, Trip>, settings: &JobSettings, recovery: &Recovery) -> (StreamVec<'s, Time, TripDuration>, StreamVec<'s, Time, CheckpointPart>) {
    let precision = settings.duration_precision;
    let min_trips = settings.min_duration_trips;
    let settings = settings.clone();
    let airports = settings.clone();
    let (aggregates, parts) = windowed_aggregate(nyc_trips, settings.window, "airport_durations", recovery, move |trip| {
        let airport: Airport = airports.airport_of(trip.dropoff)?;
        let cell = Geohash::encode(trip.pickup.lat, trip.pickup.lon, precision)?;
        Some(((cell, airport), MinutesSum { sum: trip.duration_minutes(), trips: 1 }))
    });
    let documents = aggregates.flat_map(move |agg| {
        (agg.acc.trips >= min_trips).then(|| {
            let (cell, airport) = agg.key;
            TripDuration {
                id: document_id(TRIP_DURATION_INDEX, &[cell.as_str(), airport.code()], agg.window),
                location: cell.to_string(),
                airport_code: airport.code().to_string(),
                sum_trip_duration: agg.acc.sum,
                avg_trip_duration: agg.acc.sum as f64 / agg.acc.trips as f64,
                timestamp: settings.document_timestamp(agg.window.end_ms),
            }
        })
    });
    (documents, parts)
}
