//! JSON-lines trip and watermark events (spec §1), one object per line.
//!
//! Trip: `{"type":"trip","trip_id":…,"pickup_latitude":…,"pickup_longitude":…,"dropoff_latitude":…,
//! "dropoff_longitude":…,"pickup_datetime":"2010-01-01T00:05:00.000Z","dropoff_datetime":…,"total_amount":…}`;
//! the refarch spellings `pickup_lat`, `pickup_lon`, `dropoff_lat`, `dropoff_lon` are accepted too, other
//! fields are ignored. Watermark: `{"type":"watermark","watermark":"2010-01-01T00:05:00.000Z"}` (an integer
//! of ms since the Unix epoch is accepted as well). A record with no or another `type` is malformed.

use std::borrow::Cow;

use serde::Deserialize;
use taxiflow_dataflows::{Point, Trip};

use super::Record;

#[derive(Deserialize)]
#[serde(untagged)]
enum TimeValue<'a> {
    Millis(u64),
    Text(#[serde(borrow)] Cow<'a, str>),
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
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
    pickup_datetime: Option<Cow<'a, str>>,
    #[serde(borrow)]
    dropoff_datetime: Option<Cow<'a, str>>,
    total_amount: Option<f64>,
    #[serde(borrow)]
    watermark: Option<TimeValue<'a>>,
}

fn required<T>(value: Option<T>, name: &str) -> Result<T, String> {
    value.ok_or_else(|| format!("{name}: missing"))
}

fn time(value: Option<Cow<'_, str>>, name: &str) -> Result<u64, String> {
    super::time_field(&required(value, name)?, name)
}

/// Parses one line.
///
/// # Errors
/// Invalid JSON (serde_json's message with its column), a missing or unknown `type`, or a missing or invalid
/// field, named.
pub fn parse(line: &[u8]) -> Result<Record, String> {
    let e: Event<'_> = serde_json::from_slice(line).map_err(|e| format!("invalid JSON: {e}"))?;
    match e.kind.as_deref() {
        Some("trip") => Ok(Record::Trip(Trip {
            trip_id: e.trip_id,
            pickup_ms: time(e.pickup_datetime, "pickup_datetime")?,
            dropoff_ms: time(e.dropoff_datetime, "dropoff_datetime")?,
            pickup: Point { lat: required(e.pickup_latitude, "pickup_latitude")?, lon: required(e.pickup_longitude, "pickup_longitude")? },
            dropoff: Point { lat: required(e.dropoff_latitude, "dropoff_latitude")?, lon: required(e.dropoff_longitude, "dropoff_longitude")? },
            total_amount: e.total_amount.unwrap_or(f64::NAN),
        })),
        Some("watermark") => match required(e.watermark, "watermark")? {
            TimeValue::Millis(ms) => Ok(Record::Watermark(ms)),
            TimeValue::Text(t) => Ok(Record::Watermark(super::time_field(&t, "watermark")?)),
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
        let Record::Trip(t) = parse(kda).unwrap() else { panic!() };
        assert_eq!(t.trip_id, Some(42));
        assert_eq!(t.pickup, Point { lat: 40.75, lon: -73.99 });
        assert_eq!(t.duration_minutes(), 35);
        assert_eq!(t.total_amount, 52.5);
        let refarch = br#"{"type":"trip","pickup_lat":40.75,"pickup_lon":-73.99,"dropoff_lat":40.64,"dropoff_lon":-73.78,"pickup_datetime":"2010-01-01T00:05:00Z","dropoff_datetime":"2010-01-01T00:06:00Z"}"#;
        let Record::Trip(r) = parse(refarch).unwrap() else { panic!() };
        assert_eq!((r.pickup, r.dropoff), (t.pickup, t.dropoff));
        assert!(r.total_amount.is_nan());
    }

    #[test]
    fn watermarks() {
        assert_eq!(parse(br#"{"type":"watermark","watermark":"2010-01-01T00:05:00.000Z"}"#), Ok(Record::Watermark(1_262_304_300_000)));
        assert_eq!(parse(br#"{"type":"watermark","watermark":1262304300000}"#), Ok(Record::Watermark(1_262_304_300_000)));
    }

    #[test]
    fn malformed() {
        let cases: [(&[u8], &str); 6] = [
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
