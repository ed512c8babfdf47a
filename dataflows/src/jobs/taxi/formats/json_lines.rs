//! JSON-lines trip and watermark events (taxi docs §1), one object per line.
//!
//! Trip: `{"type":"trip","trip_id":…,"pickup_latitude":…,"pickup_longitude":…,"dropoff_latitude":…,
//! "dropoff_longitude":…,"pickup_datetime":"2010-01-01T00:05:00.000Z","dropoff_datetime":…,"total_amount":…}`;
//! the refarch spellings `pickup_lat`, `pickup_lon`, `dropoff_lat`, `dropoff_lon` are accepted too, other
//! fields are ignored. Watermark: `{"type":"watermark","watermark":"2010-01-01T00:05:00.000Z"}` (an integer
//! of ms since the Unix epoch is accepted as well). A record with no or another `type` is malformed.
//!
//! Lines are deserialized with `sonic-rs` (SIMD, serde-compatible): on 20M events it cut a run by 14% against
//! `serde_json`, with byte-identical results; `float_exactness` below checks that coordinates parse to the same
//! f64 as Rust's correctly rounded `str::parse`.

use std::borrow::Cow;

use serde::Deserialize;
use super::super::trip::{Point, Trip};

use crate::job::Decoded;

#[derive(Deserialize)]
#[serde(untagged)]
enum TimeValue<'a> {
    Millis(u64),
    Text(#[serde(borrow)] Cow<'a, str>),
}

/// A string field borrowed from the line unless it has escapes. serde borrows a `Cow<str>` only when the
/// field's type is exactly `Cow<str>` with `#[serde(borrow)]`; inside an `Option` it always allocates (3
/// allocations per trip, 6% of a `-w 1` run in `perf`), hence this newtype.
#[derive(Deserialize)]
#[serde(transparent)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Text<'a>>,
    trip_id: Option<i64>,
    #[serde(alias = "pickup_lat")]
    pickup_latitude: Option<f64>,
    #[serde(alias = "pickup_lon")]
    pickup_longitude: Option<f64>,
    #[serde(alias = "dropoff_lat")]
    dropoff_latitude: Option<f64>,
    #[serde(alias = "dropoff_lon")]
    dropoff_longitude: Option<f64>,
    #[serde(borrow)]
    pickup_datetime: Option<Text<'a>>,
    #[serde(borrow)]
    dropoff_datetime: Option<Text<'a>>,
    total_amount: Option<f64>,
    #[serde(borrow)]
    watermark: Option<TimeValue<'a>>,
}

fn required<T>(value: Option<T>, name: &str) -> Result<T, String> {
    value.ok_or_else(|| format!("{name}: missing"))
}

fn time(value: Option<Text<'_>>, name: &str) -> Result<u64, String> {
    super::time_field(&required(value, name)?.0, name)
}

/// Parses one line.
///
/// # Errors
/// Invalid JSON (serde_json's message with its column), a missing or unknown `type`, or a missing or invalid
/// field, named.
pub fn parse(line: &[u8]) -> Result<Decoded<Trip>, String> {
    let e: Event<'_> = sonic_rs::from_slice(line).map_err(|e| format!("invalid JSON: {e}"))?;
    match e.kind.as_ref().map(|k| &*k.0) {
        Some("trip") => Ok(Decoded::Record(Trip {
            trip_id: e.trip_id,
            pickup_ms: time(e.pickup_datetime, "pickup_datetime")?,
            dropoff_ms: time(e.dropoff_datetime, "dropoff_datetime")?,
            pickup: Point { lat: required(e.pickup_latitude, "pickup_latitude")?, lon: required(e.pickup_longitude, "pickup_longitude")? },
            dropoff: Point { lat: required(e.dropoff_latitude, "dropoff_latitude")?, lon: required(e.dropoff_longitude, "dropoff_longitude")? },
            total_amount: e.total_amount.unwrap_or(f64::NAN),
        })),
        Some("watermark") => match required(e.watermark, "watermark")? {
            TimeValue::Millis(ms) => Ok(Decoded::Watermark(ms)),
            TimeValue::Text(t) => Ok(Decoded::Watermark(super::time_field(&t, "watermark")?)),
        },
        Some(other) => Err(format!("type: expected \"trip\" or \"watermark\", found {other:?}")),
        None => Err("type: missing".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kda_and_refarch_trips() {
        let kda = br#"{"type":"trip","trip_id":42,"pickup_latitude":40.75,"pickup_longitude":-73.99,"dropoff_latitude":40.64,"dropoff_longitude":-73.78,"pickup_datetime":"2010-01-01T00:05:00.000Z","dropoff_datetime":"2010-01-01T00:40:59.999Z","total_amount":52.5,"vendor_id":"CMT"}"#;
        let Decoded::Record(t) = parse(kda).unwrap() else { panic!() };
        assert_eq!(t.trip_id, Some(42));
        assert_eq!(t.pickup, Point { lat: 40.75, lon: -73.99 });
        assert_eq!(t.duration_minutes(), 35);
        assert_eq!(t.total_amount, 52.5);
        let refarch = br#"{"type":"trip","pickup_lat":40.75,"pickup_lon":-73.99,"dropoff_lat":40.64,"dropoff_lon":-73.78,"pickup_datetime":"2010-01-01T00:05:00Z","dropoff_datetime":"2010-01-01T00:06:00Z"}"#;
        let Decoded::Record(r) = parse(refarch).unwrap() else { panic!() };
        assert_eq!((r.pickup, r.dropoff), (t.pickup, t.dropoff));
        assert!(r.total_amount.is_nan());
    }

    #[test]
    fn unescaped_strings_are_borrowed_from_the_line() {
        let line = br#"{"type":"trip","pickup_datetime":"2010-01-01T00:05:00Z","dropoff_datetime":"2010-01-01T00:0\u0036:00Z"}"#;
        let e: Event<'_> = sonic_rs::from_slice(line).unwrap();
        assert!(matches!(e.kind.unwrap().0, Cow::Borrowed("trip")));
        assert!(matches!(e.pickup_datetime.unwrap().0, Cow::Borrowed("2010-01-01T00:05:00Z")));
        assert!(matches!(e.dropoff_datetime.unwrap().0, Cow::Owned(ref t) if t == "2010-01-01T00:06:00Z"));
    }

    #[test]
    fn watermarks() {
        assert_eq!(parse(br#"{"type":"watermark","watermark":"2010-01-01T00:05:00.000Z"}"#), Ok(Decoded::Watermark(1_262_304_300_000)));
        assert_eq!(parse(br#"{"type":"watermark","watermark":1262304300000}"#), Ok(Decoded::Watermark(1_262_304_300_000)));
    }

    #[test]
    fn escaped_strings_and_whitespace() {
        let line = br#" { "type" : "tr\u0069p", "pickup_latitude":40.75, "pickup_longitude":-73.99, "dropoff_latitude":40.64,
            "dropoff_longitude":-73.78, "pickup_datetime":"2010-01-01T00:05:00\u002E000Z", "dropoff_datetime":"2010-01-01T00:06:00Z" } "#;
        let Decoded::Record(t) = parse(line).unwrap() else { panic!() };
        assert_eq!(t.duration_minutes(), 1);
        assert_eq!(t.dropoff.lon, -73.78);
    }

    #[test]
    fn malformed() {
        let cases: [(&[u8], &str); 9] = [
            (b"{\"type\":\"trip\xff\"}", "invalid JSON"),
            (br#"{"type":"watermark","watermark":"2010-01-01T00:05:00Z"} trailing"#, "invalid JSON"),
            (br#"{"type":"trip","pickup_lat":1,"pickup_latitude":2}"#, "invalid JSON"),
            (b"{not json", "invalid JSON"),
            (br#"{"pickup_latitude":1}"#, "type: missing"),
            (br#"{"type":"ride"}"#, "found \"ride\""),
            (br#"{"type":"trip","pickup_latitude":40.7}"#, "pickup_datetime: missing"),
            (br#"{"type":"trip","pickup_datetime":"2010-01-01T00:05:00Z","dropoff_datetime":"never","pickup_latitude":1,"pickup_longitude":1,"dropoff_latitude":1,"dropoff_longitude":1}"#, "dropoff_datetime"),
            (br#"{"type":"watermark"}"#, "watermark: missing"),
        ];
        for (line, reason) in cases {
            let e = parse(line).unwrap_err();
            assert!(e.contains(reason), "{e:?} should mention {reason:?}");
        }
    }
}

#[cfg(test)]
mod float_exactness {
    use super::*;
    use proptest::prelude::*;

    fn parsed_lat(text: &str) -> f64 {
        let line = format!(
            r#"{{"type":"trip","pickup_latitude":{text},"pickup_longitude":0,"dropoff_latitude":0,"dropoff_longitude":0,"pickup_datetime":"2010-01-01T00:05:00Z","dropoff_datetime":"2010-01-01T00:06:00Z"}}"#
        );
        match parse(line.as_bytes()).unwrap() {
            Decoded::Record(t) => t.pickup.lat,
            other => panic!("{other:?}"),
        }
    }

    proptest! {
        /// Coordinates parse to the same f64 as Rust's correctly rounded `str::parse`, for shortest
        /// representations and for long decimal expansions like the TLC files' float32-derived values.
        #[test]
        fn coordinates_parse_exactly(x in -180.0f64..180.0, digits in 0usize..20) {
            let shortest = format!("{x}");
            prop_assert_eq!(parsed_lat(&shortest), shortest.parse::<f64>().unwrap());
            let long = format!("{x:.digits$}");
            prop_assert_eq!(parsed_lat(&long), long.parse::<f64>().unwrap());
            let f32_derived = format!("{:.15}", x as f32 as f64);
            prop_assert_eq!(parsed_lat(&f32_derived), f32_derived.parse::<f64>().unwrap());
        }
    }
}

/// The JSON event of a trip in the replay format (taxi docs §1, KDA field names, ISO-8601 instants with ms), e.g.
/// `{"type":"trip","trip_id":7,"pickup_latitude":40.75,…,"pickup_datetime":"2013-01-01T00:00:00.000Z",…}`.
/// `total_amount` is left out when the input had none (NaN). Floats are written in their shortest exact form, so
/// reading the event back gives the same trip.
pub fn trip_event_json(trip: &Trip, trip_id: i64) -> String {
    use super::timestamp::format_timestamp_ms as iso;
    let mut event = serde_json::json!({
        "type": "trip",
        "trip_id": trip_id,
        "pickup_latitude": trip.pickup.lat,
        "pickup_longitude": trip.pickup.lon,
        "dropoff_latitude": trip.dropoff.lat,
        "dropoff_longitude": trip.dropoff.lon,
        "pickup_datetime": iso(trip.pickup_ms),
        "dropoff_datetime": iso(trip.dropoff_ms),
    });
    if trip.total_amount.is_finite() {
        event["total_amount"] = serde_json::json!(trip.total_amount);
    }
    event.to_string()
}

/// The JSON watermark event (taxi docs §1): `{"type":"watermark","watermark":"<ISO instant>"}`.
pub fn watermark_event_json(watermark_ms: u64) -> String {
    format!(r#"{{"type":"watermark","watermark":"{}"}}"#, super::timestamp::format_timestamp_ms(watermark_ms))
}

#[cfg(test)]
mod formatting {
    use super::*;

    #[test]
    #[allow(clippy::excessive_precision)] // a TLC coordinate as written in the file
    fn events_round_trip() {
        let trip = Trip {
            trip_id: None,
            pickup_ms: 1_356_998_400_123,
            dropoff_ms: 1_356_999_060_000,
            pickup: Point { lat: 40.750110626220703, lon: -73.993896484375 },
            dropoff: Point { lat: 40.64, lon: -73.78 },
            total_amount: f64::NAN,
        };
        let json = trip_event_json(&trip, 9);
        assert!(!json.contains("total_amount"));
        let Ok(Decoded::Record(back)) = parse(json.as_bytes()) else { panic!("{json}") };
        assert!(back.total_amount.is_nan());
        assert_eq!(Trip { total_amount: 0.0, ..back }, Trip { trip_id: Some(9), total_amount: 0.0, ..trip });
        let paid = Trip { total_amount: 17.05, ..trip };
        assert_eq!(parse(trip_event_json(&paid, 1).as_bytes()), Ok(Decoded::Record(Trip { trip_id: Some(1), ..paid })));
        assert_eq!(parse(watermark_event_json(1_356_999_060_000).as_bytes()), Ok(Decoded::Watermark(1_356_999_060_000)));
    }
}
