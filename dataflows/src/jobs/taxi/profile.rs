//! The three profiles of the taxi job (taxi docs §3) and the settings they resolve to.

use super::geo::{Airport, Area, BoundingBox};
use super::trip::Point;
use crate::job::WatermarkStrategy;
use crate::window::TumblingWindow;

/// Which reference job to reproduce (taxi docs §3 table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// `amazon-kinesis-analytics-taxi-consumer` (Flink on KDA), the default.
    Kda,
    /// `flink-stream-processing-refarch` (Flink on EMR).
    Refarch,
    /// `amazon-managed-service-for-apache-flink-taxi-consumer` (Flink on MSF).
    Msf,
}

impl std::str::FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "kda" => Ok(Profile::Kda),
            "refarch" => Ok(Profile::Refarch),
            "msf" => Ok(Profile::Msf),
            other => Err(format!("unknown profile {other:?}: expected kda, refarch or msf")),
        }
    }
}

/// Everything the dataflows need to know about a profile, after command-line overrides.
#[derive(Clone, Debug, PartialEq)]
pub struct TaxiSettings {
    /// The profile these settings come from.
    pub profile: Profile,
    /// Tumbling window assigner (1 h for KDA/MSF, 10 min for refarch).
    pub window: TumblingWindow,
    /// Geohash precision of the hot-spot key (7 for KDA/MSF, 6 for refarch).
    pub hot_spot_precision: usize,
    /// Geohash precision of the pickup cell of the duration key (6 in every profile).
    pub duration_precision: usize,
    /// Smallest `pickup_count` emitted (1 = every cell, refarch: 2).
    pub min_pickup_count: u64,
    /// Smallest number of trips of a duration group emitted (2 in every profile).
    pub min_duration_trips: u64,
    /// Area that the pickup and the dropoff must both be in.
    pub nyc: Area,
    /// JFK area, tested first on the dropoff.
    pub jfk: Area,
    /// LGA area, tested on the dropoff when it is not at JFK.
    pub lga: Area,
    /// Added to the window end (exclusive) to give the documents' `timestamp` (0, or −1 for refarch).
    pub timestamp_offset_ms: i64,
    /// How partitions' watermarks are derived (watermark records, or bounded out-of-orderness).
    pub watermarks: WatermarkStrategy,
}

/// The KDA/MSF NYC box: lat [40.560, 40.878], lon [−74.054, −73.722], inclusive.
pub const NYC_BOX: BoundingBox = BoundingBox { min_lat: 40.560, max_lat: 40.878, min_lon: -74.054, max_lon: -73.722 };
/// The KDA/MSF JFK box: lat [40.632, 40.654], lon [−73.800, −73.761].
pub const JFK_BOX: BoundingBox = BoundingBox { min_lat: 40.632, max_lat: 40.654, min_lon: -73.800, max_lon: -73.761 };
/// The KDA/MSF LGA box: lat [40.766, 40.778], lon [−73.881, −73.859].
pub const LGA_BOX: BoundingBox = BoundingBox { min_lat: 40.766, max_lat: 40.778, min_lon: -73.881, max_lon: -73.859 };

impl TaxiSettings {
    /// The exact settings of `profile` (taxi docs §3).
    pub fn for_profile(profile: Profile) -> TaxiSettings {
        match profile {
            Profile::Kda | Profile::Msf => TaxiSettings {
                profile,
                window: TumblingWindow::new(3_600_000),
                hot_spot_precision: 7,
                duration_precision: 6,
                min_pickup_count: 1,
                min_duration_trips: 2,
                nyc: Area::Box(NYC_BOX),
                jfk: Area::Box(JFK_BOX),
                lga: Area::Box(LGA_BOX),
                timestamp_offset_ms: 0,
                watermarks: if profile == Profile::Msf {
                    WatermarkStrategy::BoundedOutOfOrderness { bound_ms: 120_000 }
                } else {
                    WatermarkStrategy::Records
                },
            },
            Profile::Refarch => TaxiSettings {
                profile,
                window: TumblingWindow::new(600_000),
                hot_spot_precision: 6,
                duration_precision: 6,
                min_pickup_count: 2,
                min_duration_trips: 2,
                nyc: Area::neighbours_of("dr72"),
                jfk: Area::neighbours_of("dr5x0z"),
                lga: Area::Cells(vec![
                    super::geohash::Geohash::parse("dr5ryy").unwrap(),
                    super::geohash::Geohash::parse("dr5rzn").unwrap(),
                ])
                .union(Area::neighbours_of("dr5rzjx")),
                timestamp_offset_ms: -1,
                watermarks: WatermarkStrategy::Records,
            },
        }
    }

    /// The airport of a dropoff position: JFK tested before LGA (taxi docs §3).
    #[inline]
    pub fn airport_of(&self, dropoff: Point) -> Option<Airport> {
        if self.jfk.contains(dropoff) {
            Some(Airport::Jfk)
        } else if self.lga.contains(dropoff) {
            Some(Airport::Lga)
        } else {
            None
        }
    }

    /// The `timestamp` field of a document of the window ending at `window_end_ms` (exclusive).
    #[inline]
    pub fn document_timestamp(&self, window_end_ms: u64) -> i64 {
        window_end_ms as i64 + self.timestamp_offset_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use super::super::geohash::Geohash;

    fn cells(area: &Area) -> Vec<String> {
        let Area::Cells(c) = area else { panic!("expected cells") };
        let mut v: Vec<String> = c.iter().map(|g| g.to_string()).collect();
        v.sort();
        v
    }

    /// Centre of a geohash cell, via the `geohash` crate's decoder.
    fn centre(cell: &str) -> Point {
        let (c, _, _) = geohash::decode(cell).unwrap();
        Point { lat: c.y, lon: c.x }
    }

    #[test]
    fn refarch_geohash_sets() {
        // Expected lists computed independently by scripts/reference_job.py (bisection and decode).
        let s = TaxiSettings::for_profile(Profile::Refarch);
        assert_eq!(cells(&s.nyc), ["dr5p", "dr5r", "dr5x", "dr70", "dr71", "dr73", "dr78", "dr79"]);
        assert_eq!(cells(&s.jfk), ["dr5x0w", "dr5x0x", "dr5x0y", "dr5x1n", "dr5x1p", "dr5x28", "dr5x2b", "dr5x30"]);
        assert_eq!(
            cells(&s.lga),
            ["dr5ryy", "dr5rzjq", "dr5rzjr", "dr5rzjw", "dr5rzjy", "dr5rzjz", "dr5rzm2", "dr5rzm8", "dr5rzmb", "dr5rzn"]
        );
        // The centre cells are excluded.
        assert!(!s.nyc.contains(centre("dr72")));
        assert!(!s.jfk.contains(centre("dr5x0z")));
        assert!(!s.lga.contains(centre("dr5rzjx")));
        // Points inside member cells of each precision are included.
        assert!(s.nyc.contains(centre("dr5ru7v")));
        assert_eq!(s.airport_of(centre("dr5x0y")), Some(Airport::Jfk));
        assert_eq!(s.airport_of(centre("dr5ryyz")), Some(Airport::Lga));
        assert_eq!(s.airport_of(centre("dr5rzjw")), Some(Airport::Lga));
        assert_eq!(s.airport_of(centre("dr5ru7v")), None);
        assert_eq!((s.window.length_ms, s.hot_spot_precision, s.duration_precision), (600_000, 6, 6));
        assert_eq!((s.min_pickup_count, s.min_duration_trips, s.timestamp_offset_ms), (2, 2, -1));
        assert_eq!(s.document_timestamp(1_357_002_000_000), 1_357_001_999_999);
        assert_eq!(s.watermarks, WatermarkStrategy::Records);
    }

    #[test]
    fn kda_and_msf_boxes_are_inclusive() {
        for profile in [Profile::Kda, Profile::Msf] {
            let s = TaxiSettings::for_profile(profile);
            for (lat, lon) in [(40.560, -74.054), (40.878, -73.722), (40.560, -73.722), (40.878, -74.054)] {
                assert!(s.nyc.contains(Point { lat, lon }), "{profile:?} NYC corner {lat},{lon}");
            }
            assert!(!s.nyc.contains(Point { lat: 40.5599999, lon: -73.9 }));
            assert!(!s.nyc.contains(Point { lat: 40.7, lon: -73.7219999 }));
            assert!(!s.nyc.contains(Point { lat: 0.0, lon: 0.0 }));
            assert!(!s.nyc.contains(Point { lat: f64::NAN, lon: -73.9 }));
            assert_eq!(s.airport_of(Point { lat: 40.632, lon: -73.800 }), Some(Airport::Jfk));
            assert_eq!(s.airport_of(Point { lat: 40.654, lon: -73.761 }), Some(Airport::Jfk));
            assert_eq!(s.airport_of(Point { lat: 40.766, lon: -73.881 }), Some(Airport::Lga));
            assert_eq!(s.airport_of(Point { lat: 40.778, lon: -73.859 }), Some(Airport::Lga));
            assert_eq!(s.airport_of(Point { lat: 40.7781, lon: -73.859 }), None);
            assert_eq!((s.window.length_ms, s.hot_spot_precision, s.duration_precision), (3_600_000, 7, 6));
            assert_eq!((s.min_pickup_count, s.min_duration_trips, s.timestamp_offset_ms), (1, 2, 0));
            assert_eq!(s.document_timestamp(1_357_002_000_000), 1_357_002_000_000);
        }
        assert_eq!(TaxiSettings::for_profile(Profile::Kda).watermarks, WatermarkStrategy::Records);
        assert_eq!(TaxiSettings::for_profile(Profile::Msf).watermarks, WatermarkStrategy::BoundedOutOfOrderness { bound_ms: 120_000 });
    }

    #[test]
    fn jfk_is_tested_before_lga() {
        // Overlapping areas: with the same cell in both, the trip is JFK's.
        let mut s = TaxiSettings::for_profile(Profile::Refarch);
        let cell = Geohash::parse("dr5x0y").unwrap();
        s.lga = Area::Cells(vec![cell]);
        assert_eq!(s.airport_of(centre("dr5x0y")), Some(Airport::Jfk));
    }

    #[test]
    fn profile_names() {
        assert_eq!("kda".parse::<Profile>(), Ok(Profile::Kda));
        assert_eq!("refarch".parse::<Profile>(), Ok(Profile::Refarch));
        assert_eq!("msf".parse::<Profile>(), Ok(Profile::Msf));
        assert!("flink".parse::<Profile>().unwrap_err().contains("kda, refarch or msf"));
    }
}
