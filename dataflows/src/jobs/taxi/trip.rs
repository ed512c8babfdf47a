//! The trip event every reader produces and every dataflow consumes (taxi docs §1).

use serde::{Deserialize, Serialize};

/// A position in degrees WGS84.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Latitude, degrees WGS84, north positive.
    pub lat: f64,
    /// Longitude, degrees WGS84, east positive.
    pub lon: f64,
}

/// One complete taxi trip (taxi docs §1 "Trip").
///
/// Times are milliseconds since the Unix epoch (UTC; the NYC local times of the TLC files are read as UTC,
/// as the reference pipelines do). The trip's **event time is its dropoff time** (taxi docs §1).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trip {
    /// `trip_id` of a JSON trip event; `None` for CSV rows, which carry no id.
    pub trip_id: Option<i64>,
    /// Pickup time, ms since the Unix epoch.
    pub pickup_ms: u64,
    /// Dropoff time, ms since the Unix epoch; the event time.
    pub dropoff_ms: u64,
    /// Pickup position.
    pub pickup: Point,
    /// Dropoff position.
    pub dropoff: Point,
    /// `total_amount` in USD; parsed but unused by the two computations (NaN when the input has none).
    pub total_amount: f64,
}

impl Trip {
    /// The event time: the dropoff time in ms since the Unix epoch (taxi docs §1).
    #[inline]
    pub fn event_time(&self) -> u64 {
        self.dropoff_ms
    }

    /// Whole minutes from pickup to dropoff, truncated toward zero; negative when the dropoff is recorded
    /// before the pickup, which real TLC data has and the reference keeps (taxi docs §3 "duration value").
    #[inline]
    pub fn duration_minutes(&self) -> i64 {
        (self.dropoff_ms as i64 - self.pickup_ms as i64) / 60_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trip(pickup_ms: u64, dropoff_ms: u64) -> Trip {
        let p = Point { lat: 40.7, lon: -73.9 };
        Trip { trip_id: None, pickup_ms, dropoff_ms, pickup: p, dropoff: p, total_amount: 0.0 }
    }

    #[test]
    fn duration_truncates_toward_zero() {
        let t0 = 1_356_998_400_000;
        assert_eq!(trip(t0, t0 + 59_999).duration_minutes(), 0);
        assert_eq!(trip(t0, t0 + 60_000).duration_minutes(), 1);
        assert_eq!(trip(t0, t0 + 119_999).duration_minutes(), 1);
        // Dropoff before pickup (real dirty data): negative, truncated toward zero, not floored.
        assert_eq!(trip(t0, t0 - 59_999).duration_minutes(), 0);
        assert_eq!(trip(t0, t0 - 60_000).duration_minutes(), -1);
        assert_eq!(trip(t0, t0 - 119_999).duration_minutes(), -1);
        assert_eq!(trip(t0, t0 + 5).event_time(), t0 + 5);
    }
}
