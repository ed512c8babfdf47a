//! What one activation of a source read: trips for the dataflow, dead letters, and counts. Shared by the file
//! and Kafka sources, so that every source applies the same late rule and dead-letter format.

use taxiflow_dataflows::Trip;

use crate::dead_letter::DeadLetter;
use crate::input::Record;
use crate::summary::Totals;
use crate::watermark::PartitionWatermark;

/// Where a record came from, for dead letters.
pub struct Position<'a> {
    /// File path, or `kafka://TOPIC/PARTITION`.
    pub source: &'a str,
    /// 1-based line in a file; 0 for stream sources.
    pub line: u64,
    /// Byte offset in a file, or the Kafka offset.
    pub offset: u64,
}

/// Trips, dead letters and counts of one source activation.
#[derive(Default)]
pub struct SourceBatch {
    /// Trips to send into the dataflow (none late).
    pub trips: Vec<Trip>,
    /// Dead letters to send to the sink.
    pub dead_letters: Vec<DeadLetter>,
    /// Counts of this batch.
    pub totals: Totals,
}

impl SourceBatch {
    /// Routes one parsed record of a partition: a trip is checked against the partition's watermark (late trips
    /// and trips behind `floor`, the source's capability, become dead letters `late`), a watermark record
    /// advances the partition, a START row is counted, a parse error becomes a `malformed: …` dead letter.
    /// `raw` is the record as read and `at` where it was read (`line` is computed only when needed).
    pub fn accept<'a>(&mut self, parsed: Result<Record, String>, clock: &mut PartitionWatermark, floor: u64, raw: &[u8], at: impl FnOnce() -> Position<'a>) {
        self.totals.records_read += 1;
        match parsed {
            Ok(Record::Trip(trip)) => {
                self.totals.trips += 1;
                let t = trip.event_time();
                match clock.observe_trip(t) {
                    Ok(()) if t >= floor => self.trips.push(trip),
                    result => {
                        // Behind the partition's watermark, or (an idle partition that resumed) behind the
                        // frontier other partitions already passed.
                        let watermark = result.err().map_or(floor.saturating_sub(1), |late| late.watermark);
                        self.totals.late += 1;
                        let at = at();
                        self.dead_letters.push(DeadLetter {
                            reason: "late".to_string(),
                            source: at.source.to_string(),
                            line: at.line,
                            offset: at.offset,
                            record: String::from_utf8_lossy(raw).into_owned(),
                            event_time: Some(t),
                            watermark: Some(watermark),
                        });
                    }
                }
            }
            Ok(Record::Watermark(w)) => {
                self.totals.watermarks += 1;
                clock.observe_watermark_record(w);
            }
            Ok(Record::NotATrip) => self.totals.not_trips += 1,
            Err(reason) => {
                self.totals.malformed += 1;
                let at = at();
                self.dead_letters.push(DeadLetter {
                    reason: format!("malformed: {reason}"),
                    source: at.source.to_string(),
                    line: at.line,
                    offset: at.offset,
                    record: String::from_utf8_lossy(raw).into_owned(),
                    event_time: None,
                    watermark: None,
                });
            }
        }
    }

    /// Records a source that cannot be read any further (`unreadable: …`).
    pub fn unreadable(&mut self, at: Position<'_>, error: &dyn std::fmt::Display) {
        self.totals.malformed += 1;
        self.dead_letters.push(DeadLetter {
            reason: format!("unreadable: {error}"),
            source: at.source.to_string(),
            line: at.line,
            offset: at.offset,
            record: String::new(),
            event_time: None,
            watermark: None,
        });
    }

    /// Adds this batch's counts to the Prometheus counters of `worker`.
    pub fn record_metrics(&self, worker: &str) {
        let b = &self.totals;
        metrics::counter!("taxiflow_records_in_total", "worker" => worker.to_string()).increment(b.records_read);
        metrics::counter!("taxiflow_trips_total", "worker" => worker.to_string()).increment(b.trips);
        metrics::counter!("taxiflow_late_records_total", "worker" => worker.to_string()).increment(b.late);
        metrics::counter!("taxiflow_malformed_records_total", "worker" => worker.to_string()).increment(b.malformed);
    }
}
