//! NYC TLC yellow taxi CSV with a header (2009–2016), columns found by header name.
//!
//! Header variants (names compared trimmed and case-insensitively):
//! * 2009: `Trip_Pickup_DateTime, Trip_Dropoff_DateTime, Start_Lon, Start_Lat, End_Lon, End_Lat, Total_Amt`;
//! * 2010–2014: `pickup_datetime, dropoff_datetime, pickup_longitude, pickup_latitude, dropoff_longitude,
//!   dropoff_latitude, total_amount` (2014 with leading spaces);
//! * 2015–2016: `tpep_pickup_datetime, tpep_dropoff_datetime, …` (2016 spells `RatecodeID`, unused here).
//!
//! Times are NYC local time without zone, read as UTC as the reference does (`data/README.md`).

use super::super::trip::{Point, Trip};

use super::csv_line::CsvLine;
use super::{float_field, time_field};
use crate::job::Decoded;

/// Positions of the needed columns in a TLC header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Columns {
    /// Pickup datetime column.
    pub pickup_time: usize,
    /// Dropoff datetime column.
    pub dropoff_time: usize,
    /// Pickup longitude column.
    pub pickup_lon: usize,
    /// Pickup latitude column.
    pub pickup_lat: usize,
    /// Dropoff longitude column.
    pub dropoff_lon: usize,
    /// Dropoff latitude column.
    pub dropoff_lat: usize,
    /// Total amount column, if the header has one.
    pub total_amount: Option<usize>,
}

const PICKUP_TIME: &[&str] = &["tpep_pickup_datetime", "pickup_datetime", "trip_pickup_datetime", "lpep_pickup_datetime"];
const DROPOFF_TIME: &[&str] = &["tpep_dropoff_datetime", "dropoff_datetime", "trip_dropoff_datetime", "lpep_dropoff_datetime"];
const PICKUP_LON: &[&str] = &["pickup_longitude", "start_lon"];
const PICKUP_LAT: &[&str] = &["pickup_latitude", "start_lat"];
const DROPOFF_LON: &[&str] = &["dropoff_longitude", "end_lon"];
const DROPOFF_LAT: &[&str] = &["dropoff_latitude", "end_lat"];
const TOTAL: &[&str] = &["total_amount", "total_amt"];

impl Columns {
    /// Finds the columns in a header row.
    ///
    /// # Errors
    /// A required column is missing; the message names the accepted spellings.
    pub fn from_header(header: &[String]) -> Result<Columns, String> {
        let names: Vec<String> = header.iter().map(|h| h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase()).collect();
        let find = |accepted: &[&str]| names.iter().position(|n| accepted.contains(&n.as_str()));
        let need = |accepted: &[&str]| -> Result<usize, String> {
            match find(accepted) {
                Some(i) => Ok(i),
                None => Err(format!("TLC CSV header has no column {} (header: {})", accepted.join(" or "), names.join(","))),
            }
        };
        Ok(Columns {
            pickup_time: need(PICKUP_TIME)?,
            dropoff_time: need(DROPOFF_TIME)?,
            pickup_lon: need(PICKUP_LON)?,
            pickup_lat: need(PICKUP_LAT)?,
            dropoff_lon: need(DROPOFF_LON)?,
            dropoff_lat: need(DROPOFF_LAT)?,
            total_amount: find(TOTAL),
        })
    }

    fn max_index(&self) -> usize {
        [self.pickup_time, self.dropoff_time, self.pickup_lon, self.pickup_lat, self.dropoff_lon, self.dropoff_lat]
            .into_iter()
            .max()
            .unwrap_or(0)
    }
}

/// Parses one data row.
///
/// # Errors
/// Too few fields, or a field that is not a number or a timestamp, named by its header name.
pub fn parse(line: &[u8], columns: &Columns, csv: &mut CsvLine) -> Result<Decoded<Trip>, String> {
    let f = csv.split(line)?;
    if f.len() <= columns.max_index() {
        return Err(format!("expected at least {} fields, found {}", columns.max_index() + 1, f.len()));
    }
    let total_amount = match columns.total_amount {
        Some(i) if i < f.len() && !f[i].trim().is_empty() => float_field(f[i], "total_amount")?,
        _ => f64::NAN,
    };
    Ok(Decoded::Record(Trip {
        trip_id: None,
        pickup_ms: time_field(f[columns.pickup_time], "pickup_datetime")?,
        dropoff_ms: time_field(f[columns.dropoff_time], "dropoff_datetime")?,
        pickup: Point { lat: float_field(f[columns.pickup_lat], "pickup_latitude")?, lon: float_field(f[columns.pickup_lon], "pickup_longitude")? },
        dropoff: Point { lat: float_field(f[columns.dropoff_lat], "dropoff_latitude")?, lon: float_field(f[columns.dropoff_lon], "dropoff_longitude")? },
        total_amount,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(s: &str) -> Columns {
        Columns::from_header(&s.split(',').map(String::from).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn header_variants() {
        let h2009 = header("vendor_name,Trip_Pickup_DateTime,Trip_Dropoff_DateTime,Passenger_Count,Trip_Distance,Start_Lon,Start_Lat,Rate_Code,store_and_forward,End_Lon,End_Lat,Payment_Type,Fare_Amt,surcharge,mta_tax,Tip_Amt,Tolls_Amt,Total_Amt");
        assert_eq!((h2009.pickup_time, h2009.dropoff_lat, h2009.total_amount), (1, 10, Some(17)));
        let h2014 = header("vendor_id, pickup_datetime, dropoff_datetime, passenger_count, trip_distance, pickup_longitude, pickup_latitude, rate_code, store_and_fwd_flag, dropoff_longitude, dropoff_latitude, payment_type, fare_amount, surcharge, mta_tax, tip_amount, tolls_amount, total_amount");
        assert_eq!((h2014.pickup_lon, h2014.pickup_lat, h2014.dropoff_lon), (5, 6, 9));
        let h2016 = header("VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,pickup_longitude,pickup_latitude,RatecodeID,store_and_fwd_flag,dropoff_longitude,dropoff_latitude,payment_type,fare_amount,extra,mta_tax,tip_amount,tolls_amount,improvement_surcharge,total_amount");
        assert_eq!((h2016.pickup_time, h2016.dropoff_time, h2016.total_amount), (1, 2, Some(18)));
        let missing = Columns::from_header(&["VendorID".to_string(), "tpep_pickup_datetime".to_string()]);
        assert!(missing.unwrap_err().to_string().contains("tpep_dropoff_datetime or dropoff_datetime"));
    }

    #[test]
    #[allow(clippy::excessive_precision)] // the literals are the CSV row's text
    fn rows_clean_and_dirty() {
        let c = header("VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,pickup_longitude,pickup_latitude,RateCodeID,store_and_fwd_flag,dropoff_longitude,dropoff_latitude,payment_type,fare_amount,extra,mta_tax,tip_amount,tolls_amount,improvement_surcharge,total_amount");
        let mut csv = CsvLine::new();
        let row = b"2,2015-01-15 19:05:39,2015-01-15 19:23:42,1,1.59,-73.993896484375,40.750110626220703,1,N,-73.974784851074219,40.750617980957031,1,12,1,0.5,3.25,0,0.3,17.05";
        match parse(row, &c, &mut csv).unwrap() {
            Decoded::Record(t) => {
                assert_eq!(t.pickup_ms, 1_421_348_739_000);
                assert_eq!(t.dropoff_ms, 1_421_349_822_000);
                assert_eq!(t.pickup, Point { lat: 40.750110626220703, lon: -73.993896484375 });
                assert_eq!(t.dropoff.lon, -73.974784851074219);
                assert_eq!(t.total_amount, 17.05);
                assert_eq!(t.duration_minutes(), 18);
            }
            other => panic!("{other:?}"),
        }
        // Zero coordinates are valid records (filtered later, not malformed).
        assert!(parse(b"2,2015-01-15 19:05:39,2015-01-15 19:23:42,1,1.59,0,0,1,N,0,0,1,12,1,0.5,3.25,0,0.3,17.05", &c, &mut csv).is_ok());
        let e = parse(b"2,2015-01-15 19:05:39,2015-01-15 19:23:42,1,1.59,-73.9,forty,1,N,-73.9,40.7,1,12,1,0.5,3.25,0,0.3,17.05", &c, &mut csv).unwrap_err();
        assert!(e.contains("pickup_latitude"), "{e}");
        let e = parse(b"2,2015-01-15 25:05:39,2015-01-15 19:23:42,1,1.59,-73.9,40.7,1,N,-73.9,40.7", &c, &mut csv).unwrap_err();
        assert!(e.contains("pickup_datetime"), "{e}");
        assert!(parse(b"2,2015-01-15 19:05:39", &c, &mut csv).unwrap_err().contains("fields"));
    }
}
