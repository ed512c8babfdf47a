//! The Flink training "TaxiRide" headerless CSV (`data/README.md`):
//! `rideId, START|END, time1, time2, startLon, startLat, endLon, endLat, passengerCnt, taxiId, driverId`.
//! An END row is a complete trip (time1 = dropoff, time2 = pickup); a START row is not a trip yet.

use super::super::trip::{Point, Trip};

use super::csv_line::CsvLine;
use super::{float_field, time_field};
use crate::job::Decoded;

/// Number of fields of a TaxiRide row.
pub const FIELDS: usize = 11;

/// Parses one row: END → [`Decoded::Record`] with `trip_id` = rideId, START → [`Decoded::Skip`].
///
/// # Errors
/// Not 11 fields, a second field other than START/END, or a bad number or timestamp, named by field.
pub fn parse(line: &[u8], csv: &mut CsvLine) -> Result<Decoded<Trip>, String> {
    let f = csv.split(line)?;
    if f.len() != FIELDS {
        return Err(format!("expected {FIELDS} fields, found {}", f.len()));
    }
    let ride_id = f[0].trim().parse::<i64>().map_err(|_| format!("rideId: not an integer: {:?}", f[0]))?;
    match f[1].trim() {
        "START" => Ok(Decoded::Skip),
        "END" => Ok(Decoded::Record(Trip {
            trip_id: Some(ride_id),
            dropoff_ms: time_field(f[2], "endTime")?,
            pickup_ms: time_field(f[3], "startTime")?,
            pickup: Point { lat: float_field(f[5], "startLat")?, lon: float_field(f[4], "startLon")? },
            dropoff: Point { lat: float_field(f[7], "endLat")?, lon: float_field(f[6], "endLon")? },
            total_amount: f64::NAN,
        })),
        other => Err(format!("isStart: expected START or END, found {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_end_and_dirty() {
        let mut csv = CsvLine::new();
        let start = b"6,START,2013-01-01 00:00:00,1970-01-01 00:00:00,-73.866135,40.771091,-73.961334,40.764912,6,2013000006,2013000006";
        assert_eq!(parse(start, &mut csv), Ok(Decoded::Skip));
        let end = b"6,END,2013-01-01 00:11:00,2013-01-01 00:00:00,-73.866135,40.771091,-73.961334,40.764912,6,2013000006,2013000006";
        match parse(end, &mut csv).unwrap() {
            Decoded::Record(t) => {
                assert_eq!(t.trip_id, Some(6));
                assert_eq!(t.duration_minutes(), 11);
                assert_eq!(t.pickup, Point { lat: 40.771091, lon: -73.866135 });
                assert_eq!(t.dropoff, Point { lat: 40.764912, lon: -73.961334 });
                assert_eq!(t.event_time(), 1_356_998_400_000 + 11 * 60_000);
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(b"6,MIDDLE,2013-01-01 00:11:00,2013-01-01 00:00:00,1,2,3,4,6,7,8", &mut csv).unwrap_err().contains("START or END"));
        assert!(parse(b"6,END,2013-01-01 00:11:00", &mut csv).unwrap_err().contains("11 fields"));
        assert!(parse(b"x,END,2013-01-01 00:11:00,2013-01-01 00:00:00,1,2,3,4,6,7,8", &mut csv).unwrap_err().contains("rideId"));
    }
}
