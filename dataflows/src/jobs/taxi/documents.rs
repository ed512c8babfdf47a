//! The taxi job's result documents (taxi docs §4) as output rows, with deterministic ids
//! ([`crate::window::document_id`]: the reference sets no ids, so its replays duplicate documents).
//!
//! * `pickup_count`: `{"_id", "location": geohash, "pickup_count": long, "timestamp": epoch ms}`;
//! * `trip_duration`: `{"_id", "location": geohash6, "airport_code": "JFK"|"LGA", "sum_trip_duration": long
//!   minutes, "avg_trip_duration": double minutes, "timestamp": epoch ms}`.
//!
//! Geohashes and airport codes contain no `-`, so ids split back into their parts.

use crate::output::{Field, FieldType, OutputSchema, Row, Value};
use crate::window::{document_id, Window};

/// Name of the hot-spot output (index, file stem).
pub const PICKUP_COUNT_INDEX: &str = "pickup_count";
/// Name of the airport-duration output.
pub const TRIP_DURATION_INDEX: &str = "trip_duration";

/// Index of `pickup_count` among the job's outputs.
pub const PICKUP_COUNT_OUTPUT: u16 = 0;
/// Index of `trip_duration` among the job's outputs.
pub const TRIP_DURATION_OUTPUT: u16 = 1;

/// The schemas of the two outputs, in output order.
pub fn schemas() -> Vec<OutputSchema> {
    vec![
        OutputSchema {
            name: PICKUP_COUNT_INDEX,
            description: "trips per pickup geohash cell and window (the Kibana map's layer)",
            fields: vec![
                Field::required("location", FieldType::GeoPoint { raw: false }),
                Field::required("pickup_count", FieldType::Long),
                Field::required("timestamp", FieldType::EpochMillis),
            ],
            id: true,
            event_time: Some("timestamp"),
            partition_by: Vec::new(),
            envelope: true,
            watermarks: None,
        },
        OutputSchema {
            name: TRIP_DURATION_INDEX,
            description: "sum and average whole minutes from a pickup cell to JFK or LGA per window, groups of at least 2 trips",
            fields: vec![
                Field::required("location", FieldType::GeoPoint { raw: true }),
                Field::required("airport_code", FieldType::Keyword),
                Field::required("sum_trip_duration", FieldType::Long),
                Field::required("avg_trip_duration", FieldType::Double),
                Field::required("timestamp", FieldType::EpochMillis),
            ],
            id: true,
            event_time: Some("timestamp"),
            partition_by: Vec::new(),
            envelope: true,
            watermarks: None,
        },
    ]
}

/// A `pickup_count` row: `count` trips picked up in `cell` whose dropoff is in `window`; `timestamp` is the
/// document timestamp (ms since the Unix epoch).
pub fn pickup_count(cell: &str, count: u64, window: Window, timestamp: i64) -> Row {
    Row {
        output: PICKUP_COUNT_OUTPUT,
        id: document_id(PICKUP_COUNT_INDEX, &[cell], window),
        order: timestamp,
        window: Some(window),
        values: vec![Value::Str(cell.to_string()), Value::Int(count as i64), Value::Int(timestamp)],
    }
}

/// A `trip_duration` row: `trips` trips from `cell` to `airport` in `window` with `sum` whole minutes in all.
pub fn trip_duration(cell: &str, airport: &str, sum: i64, trips: u64, window: Window, timestamp: i64) -> Row {
    Row {
        output: TRIP_DURATION_OUTPUT,
        id: document_id(TRIP_DURATION_INDEX, &[cell, airport], window),
        order: timestamp,
        window: Some(window),
        values: vec![
            Value::Str(cell.to_string()),
            Value::Str(airport.to_string()),
            Value::Int(sum),
            Value::Float(sum as f64 / trips as f64),
            Value::Int(timestamp),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::window_start_of_id;

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let w = Window { start_ms: 1_357_002_000_000, end_ms: 1_357_005_600_000 };
        let a = document_id(PICKUP_COUNT_INDEX, &["dr5ru7v"], w);
        assert_eq!(a, "pickup_count-dr5ru7v-1357002000000-1357005600000");
        assert_eq!(a, pickup_count("dr5ru7v", 3, w, 7).id);
        assert_eq!(window_start_of_id(&a), Some(w.start_ms as i64));
        assert_eq!(window_start_of_id(&document_id(TRIP_DURATION_INDEX, &["dr5ru7", "JFK"], w)), Some(w.start_ms as i64));
        assert_eq!(window_start_of_id("data/x.csv@12"), None);
        // Other index, key or window: other id.
        assert_ne!(a, document_id(TRIP_DURATION_INDEX, &["dr5ru7v"], w));
        assert_ne!(a, document_id(PICKUP_COUNT_INDEX, &["dr5ru7y"], w));
        let w10 = Window { start_ms: w.start_ms, end_ms: w.start_ms + 600_000 };
        assert_ne!(a, document_id(PICKUP_COUNT_INDEX, &["dr5ru7v"], w10));
        assert_eq!(trip_duration("dr5ru7", "JFK", 61, 2, w, 7).id, "trip_duration-dr5ru7-JFK-1357002000000-1357005600000");
    }

    #[test]
    fn rows_follow_the_schemas() {
        let w = Window { start_ms: 0, end_ms: 10 };
        let schemas = schemas();
        let row = trip_duration("dr5ru7", "JFK", 61, 2, w, 10);
        assert_eq!(row.values.len(), schemas[1].fields.len());
        assert_eq!(row.values[3], Value::Float(30.5));
        assert_eq!(pickup_count("dr5ru7v", 3, w, 10).values.len(), schemas[0].fields.len());
        assert_eq!(schemas[0].field_index("timestamp"), Some(2));
    }
}
