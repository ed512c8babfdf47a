//! DEBS 2015 Grand Challenge headerless CSV (NYC 2013 trips):
//! `medallion, hack_license, pickup_datetime, dropoff_datetime, trip_time_in_secs, trip_distance,
//! pickup_longitude, pickup_latitude, dropoff_longitude, dropoff_latitude, payment_type, fare_amount,
//! surcharge, mta_tax, tip_amount, tolls_amount, total_amount`.

use super::super::trip::{Point, Trip};

use super::csv_line::CsvLine;
use super::{float_field, time_field};
use crate::job::Decoded;

/// Number of fields of a DEBS 2015 row.
pub const FIELDS: usize = 17;

/// Parses one row.
///
/// # Errors
/// Not 17 fields, or a field that is not a number or a timestamp, named by its DEBS name.
pub fn parse(line: &[u8], csv: &mut CsvLine) -> Result<Decoded<Trip>, String> {
    let f = csv.split(line)?;
    if f.len() != FIELDS {
        return Err(format!("expected {FIELDS} fields, found {}", f.len()));
    }
    Ok(Decoded::Record(Trip {
        trip_id: None,
        pickup_ms: time_field(f[2], "pickup_datetime")?,
        dropoff_ms: time_field(f[3], "dropoff_datetime")?,
        pickup: Point { lat: float_field(f[7], "pickup_latitude")?, lon: float_field(f[6], "pickup_longitude")? },
        dropoff: Point { lat: float_field(f[9], "dropoff_latitude")?, lon: float_field(f[8], "dropoff_longitude")? },
        total_amount: float_field(f[16], "total_amount")?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows() {
        let mut csv = CsvLine::new();
        let row = b"07290D3599E7A0D62097A346EFCC1FB5,E7750A37CAB07D0DFF0AF7E3573AC141,2013-01-01 00:00:00,2013-01-01 00:02:00,120,0.44,-73.956528,40.716976,-73.962440,40.715008,CSH,3.50,0.50,0.50,0.00,0.00,4.50";
        match parse(row, &mut csv).unwrap() {
            Decoded::Record(t) => {
                assert_eq!(t.dropoff_ms - t.pickup_ms, 120_000);
                assert_eq!(t.pickup, Point { lat: 40.716976, lon: -73.956528 });
                assert_eq!(t.dropoff, Point { lat: 40.715008, lon: -73.962440 });
                assert_eq!(t.total_amount, 4.5);
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(b"a,b,c", &mut csv).unwrap_err().contains("17 fields"));
        let bad = b"x,y,2013-01-01 00:00:00,2013-01-01 00:02:00,120,0.44,-73.956528,,-73.962440,40.715008,CSH,3.50,0.50,0.50,0.00,0.00,4.50";
        assert!(parse(bad, &mut csv).unwrap_err().contains("pickup_latitude: empty"));
    }
}
