//! Result documents (spec §4), with deterministic ids.
//!
//! The `_id` of a document is derived from its index, its key and its window, so a replay or a restart that
//! emits the same window again overwrites the same document instead of adding one (the reference sets no
//! ids; spec §4). Shape: `<index>-<key parts joined by '-'>-<window start ms>-<window end ms>`, e.g.
//! `pickup_count-dr5ru7v-1357002000000-1357005600000`; geohash and airport codes contain no '-'.

use serde::{Deserialize, Serialize};

use crate::window::Window;

/// Name of the hot-spot index (spec §4).
pub const PICKUP_COUNT_INDEX: &str = "pickup_count";
/// Name of the airport-duration index (spec §4).
pub const TRIP_DURATION_INDEX: &str = "trip_duration";

/// Common view of the result documents, for sinks.
pub trait Document: Serialize {
    /// The index (Elasticsearch) or file stem the document belongs to.
    fn index(&self) -> &'static str;
    /// The deterministic document id.
    fn id(&self) -> &str;
    /// The document's `timestamp` field, ms since the Unix epoch.
    fn timestamp(&self) -> i64;
}

/// The deterministic `_id` of the document of `index` for `key_parts` in `window`.
pub fn document_id(index: &str, key_parts: &[&str], window: Window) -> String {
    let mut id = String::with_capacity(64);
    id.push_str(index);
    for part in key_parts {
        id.push('-');
        id.push_str(part);
    }
    id.push_str(&format!("-{}-{}", window.start_ms, window.end_ms));
    id
}

/// The window start (ms since the Unix epoch) of a document id made by [`document_id`], or `None` for an id of
/// another shape.
pub fn window_start_of_id(id: &str) -> Option<i64> {
    let mut parts = id.rsplitn(3, '-');
    let _end: i64 = parts.next()?.parse().ok()?;
    let start = parts.next()?.parse().ok()?;
    parts.next()?;
    Some(start)
}

/// A `pickup_count` document: trips picked up in one geohash cell during one window (spec §4).
/// JSON: `{"_id", "location": geohash, "pickup_count": long, "timestamp": epoch ms}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PickupCount {
    /// Deterministic id, see [`document_id`].
    #[serde(rename = "_id")]
    pub id: String,
    /// Pickup geohash cell (precision 7, or 6 in the refarch profile); mapped as `geo_point`.
    pub location: String,
    /// Number of trips picked up in the cell whose dropoff (event time) is in the window.
    pub pickup_count: u64,
    /// Window end (exclusive) in ms since the Unix epoch, minus 1 ms in the refarch profile.
    pub timestamp: i64,
}

/// A `trip_duration` document: trips from one pickup cell to one airport during one window (spec §4).
/// JSON: `{"_id", "location": geohash6, "airport_code": "JFK"|"LGA", "sum_trip_duration": long minutes,
/// "avg_trip_duration": double minutes, "timestamp": epoch ms}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TripDuration {
    /// Deterministic id, see [`document_id`].
    #[serde(rename = "_id")]
    pub id: String,
    /// Pickup geohash cell, precision 6; mapped as `geo_point` with a `raw` keyword sub-field.
    pub location: String,
    /// `"JFK"` or `"LGA"`.
    pub airport_code: String,
    /// Sum of the trips' whole minutes (each truncated toward zero, negatives kept).
    pub sum_trip_duration: i64,
    /// `sum_trip_duration / n` as a double, n ≥ 2.
    pub avg_trip_duration: f64,
    /// Window end (exclusive) in ms since the Unix epoch, minus 1 ms in the refarch profile.
    pub timestamp: i64,
}

impl Document for PickupCount {
    fn index(&self) -> &'static str {
        PICKUP_COUNT_INDEX
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn timestamp(&self) -> i64 {
        self.timestamp
    }
}

impl Document for TripDuration {
    fn index(&self) -> &'static str {
        TRIP_DURATION_INDEX
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn timestamp(&self) -> i64 {
        self.timestamp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let w = Window { start_ms: 1_357_002_000_000, end_ms: 1_357_005_600_000 };
        let a = document_id(PICKUP_COUNT_INDEX, &["dr5ru7v"], w);
        assert_eq!(a, "pickup_count-dr5ru7v-1357002000000-1357005600000");
        assert_eq!(a, document_id(PICKUP_COUNT_INDEX, &["dr5ru7v"], w));
        assert_eq!(window_start_of_id(&a), Some(w.start_ms as i64));
        assert_eq!(window_start_of_id(&document_id(TRIP_DURATION_INDEX, &["dr5ru7", "JFK"], w)), Some(w.start_ms as i64));
        assert_eq!(window_start_of_id("data/x.csv@12"), None);
        // Other index, key or window: other id.
        assert_ne!(a, document_id(TRIP_DURATION_INDEX, &["dr5ru7v"], w));
        assert_ne!(a, document_id(PICKUP_COUNT_INDEX, &["dr5ru7y"], w));
        let w10 = Window { start_ms: w.start_ms, end_ms: w.start_ms + 600_000 };
        assert_ne!(a, document_id(PICKUP_COUNT_INDEX, &["dr5ru7v"], w10));
        assert_eq!(
            document_id(TRIP_DURATION_INDEX, &["dr5ru7", "JFK"], w),
            "trip_duration-dr5ru7-JFK-1357002000000-1357005600000"
        );
    }

    #[test]
    fn json_has_exactly_the_spec_fields_in_order() {
        let d = TripDuration {
            id: "x".into(),
            location: "dr5ru7".into(),
            airport_code: "JFK".into(),
            sum_trip_duration: 61,
            avg_trip_duration: 30.5,
            timestamp: 7,
        };
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(
            json,
            r#"{"_id":"x","location":"dr5ru7","airport_code":"JFK","sum_trip_duration":61,"avg_trip_duration":30.5,"timestamp":7}"#
        );
    }
}
