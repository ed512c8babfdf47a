//! Airport trip durations: average whole minutes from each pickup cell to JFK and to LGA per tumbling window
//! (taxi docs §3 "duration", output `trip_duration` of §4).

use serde::{Deserialize, Serialize};
use timely::dataflow::operators::vec::Map;
use timely::dataflow::StreamVec;

use super::documents::trip_duration;
use super::geo::Airport;
use super::geohash::Geohash;
use super::profile::TaxiSettings;
use super::trip::Trip;
use crate::epoch::{CheckpointPart, Recovery, Time};
use crate::output::Row;
use crate::window::aggregate::{windowed_aggregate, Accumulator};

/// For NYC trips (already filtered by [`super::nyc_filter::filter_nyc`]) whose dropoff is at an airport
/// ([`TaxiSettings::airport_of`], JFK first), sums the whole minutes of each trip (truncated toward zero,
/// negatives kept) per (pickup geohash at `settings.duration_precision`, airport) per window.
///
/// Output: one `trip_duration` row per group with at least `settings.min_duration_trips` trips, with
/// `avg_trip_duration = sum / n` as f64, at timestamp = window end, `timestamp` field = window end +
/// `settings.timestamp_offset_ms`.
pub fn airport_durations<'s>(nyc_trips: StreamVec<'s, Time, Trip>, settings: &TaxiSettings, recovery: &Recovery) -> (StreamVec<'s, Time, Row>, StreamVec<'s, Time, CheckpointPart>) {
    let precision = settings.duration_precision;
    let min_trips = settings.min_duration_trips;
    let settings = settings.clone();
    let airports = settings.clone();
    let (aggregates, parts) = windowed_aggregate::<_, _, MinutesSum, _>(nyc_trips, settings.window, "airport_durations", recovery, move |trip: Trip| {
        let airport: Airport = airports.airport_of(trip.dropoff)?;
        let cell = Geohash::encode(trip.pickup.lat, trip.pickup.lon, precision)?;
        Some(((cell, airport), trip.duration_minutes()))
    });
    let rows = aggregates.flat_map(move |agg| {
        (agg.acc.trips >= min_trips).then(|| {
            let (cell, airport) = agg.key;
            trip_duration(cell.as_str(), airport.code(), agg.acc.sum, agg.acc.trips, agg.window, settings.document_timestamp(agg.window.end_ms))
        })
    });
    (rows, parts)
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
    /// A trip's whole minutes.
    type Value = i64;

    #[inline]
    fn of(minutes: i64) -> Self {
        MinutesSum { sum: minutes, trips: 1 }
    }

    #[inline]
    fn add(&mut self, minutes: i64) {
        self.sum += minutes;
        self.trips += 1;
    }

    #[inline]
    fn merge(&mut self, other: &Self) {
        self.sum += other.sum;
        self.trips += other.trips;
    }
}
