//! Run totals: per-worker counters, their sum over all workers of all processes, and the summary line.

use std::ops::AddAssign;

use serde::{Deserialize, Serialize};

/// Counts of one worker, or summed over all workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Non-empty lines read (headers excluded): trips, watermark records, START rows, malformed lines.
    pub records_read: u64,
    /// Trip records parsed (late ones included).
    pub trips: u64,
    /// Valid records that are not trips (TaxiRide START rows).
    pub not_trips: u64,
    /// Watermark records read.
    pub watermarks: u64,
    /// Trips outside the NYC area of the profile.
    pub filtered: u64,
    /// Trips behind their partition's watermark (in the dead-letter output).
    pub late: u64,
    /// Records that could not be parsed (in the dead-letter output).
    pub malformed: u64,
    /// `pickup_count` documents written by the sink.
    pub pickup_count_documents: u64,
    /// `trip_duration` documents written by the sink.
    pub trip_duration_documents: u64,
    /// Dead letters written by the sink.
    pub dead_letters: u64,
}

impl AddAssign for Totals {
    fn add_assign(&mut self, o: Totals) {
        self.records_read += o.records_read;
        self.trips += o.trips;
        self.not_trips += o.not_trips;
        self.watermarks += o.watermarks;
        self.filtered += o.filtered;
        self.late += o.late;
        self.malformed += o.malformed;
        self.pickup_count_documents += o.pickup_count_documents;
        self.trip_duration_documents += o.trip_duration_documents;
        self.dead_letters += o.dead_letters;
    }
}

impl Totals {
    /// Documents written to both indices.
    pub fn documents_written(&self) -> u64 {
        self.pickup_count_documents + self.trip_duration_documents
    }

    /// The one-line run summary: records read, trips, filtered, late, malformed, documents written and
    /// events (records read) per second over `seconds` of wall time.
    pub fn summary_line(&self, seconds: f64) -> String {
        let rate = if seconds > 0.0 { self.records_read as f64 / seconds } else { 0.0 };
        format!(
            "summary: records read {}, trips {}, filtered {}, late {}, malformed {}, documents written {} \
             (pickup_count {}, trip_duration {}), {:.0} events/s in {:.3} s",
            self.records_read,
            self.trips,
            self.filtered,
            self.late,
            self.malformed,
            self.documents_written(),
            self.pickup_count_documents,
            self.trip_duration_documents,
            rate,
            seconds
        )
    }
}
