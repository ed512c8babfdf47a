//! Run totals: the sources' per-worker counts, the job's counters, what the sink wrote, their sum over all
//! workers of all processes, and the summary line.

use std::ops::AddAssign;

use serde::{Deserialize, Serialize};

/// What the sources of one worker read (or summed over all workers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Non-empty lines or messages read (headers excluded): records, watermark records, skipped lines, malformed
    /// ones.
    pub records_read: u64,
    /// Records decoded (late ones included).
    pub records: u64,
    /// Valid lines that are not records (TaxiRide START rows).
    pub skipped: u64,
    /// Watermark records read.
    pub watermarks: u64,
    /// Records behind their partition's watermark (in the dead-letter output).
    pub late: u64,
    /// Records that could not be decoded or read (in the dead-letter output).
    pub malformed: u64,
}

impl AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.records_read += o.records_read;
        self.records += o.records;
        self.skipped += o.skipped;
        self.watermarks += o.watermarks;
        self.late += o.late;
        self.malformed += o.malformed;
    }
}

impl Counts {
    /// Adds these counts to the Prometheus counters of `worker`.
    pub fn record_metrics(&self, worker: &str) {
        metrics::counter!("taxiflow_records_in_total", "worker" => worker.to_string()).increment(self.records_read);
        metrics::counter!("taxiflow_records_total", "worker" => worker.to_string()).increment(self.records);
        metrics::counter!("taxiflow_late_records_total", "worker" => worker.to_string()).increment(self.late);
        metrics::counter!("taxiflow_malformed_records_total", "worker" => worker.to_string()).increment(self.malformed);
    }
}

/// Totals of a run: the sources' counts, the job's counters (in the job's order) and the rows written per output
/// (the job's outputs, then dead letters).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// What the sources read.
    pub counts: Counts,
    /// The job's counters (e.g. the taxi job's `filtered`).
    pub counters: Vec<u64>,
    /// Rows written per output, dead letters last: for files and standard output when written, for Kafka when
    /// handed to the producer (delivery failures fail the run), for Elasticsearch when acknowledged.
    pub written: Vec<u64>,
}

impl AddAssign for Totals {
    fn add_assign(&mut self, o: Totals) {
        self.counts += o.counts;
        add_vec(&mut self.counters, &o.counters);
        add_vec(&mut self.written, &o.written);
    }
}

fn add_vec(into: &mut Vec<u64>, other: &[u64]) {
    if into.len() < other.len() {
        into.resize(other.len(), 0);
    }
    for (a, b) in into.iter_mut().zip(other) {
        *a += b;
    }
}

/// The names the summary line uses: the job's records, counters and outputs.
#[derive(Clone, Debug)]
pub struct SummaryNames {
    /// What the job calls its records (`trips`).
    pub records: &'static str,
    /// The job's counters.
    pub counters: Vec<&'static str>,
    /// The job's outputs (without dead letters).
    pub outputs: Vec<&'static str>,
}

impl Totals {
    /// Documents written to the job's outputs (dead letters not counted).
    pub fn documents_written(&self) -> u64 {
        let results = self.written.len().saturating_sub(1);
        self.written[..results].iter().sum()
    }

    /// Dead letters written.
    pub fn dead_letters(&self) -> u64 {
        self.written.last().copied().unwrap_or(0)
    }

    /// The one-line run summary: records read, records, the job's counters, late, malformed, documents written
    /// per output and events (records read) per second over `seconds` of wall time, e.g. `summary: records read
    /// 103998, trips 50448, filtered 1198, late 0, malformed 0, documents written 8960 (pickup_count 8940,
    /// trip_duration 20), 1601589 events/s in 0.065 s`.
    pub fn summary_line(&self, names: &SummaryNames, seconds: f64) -> String {
        let c = &self.counts;
        let rate = if seconds > 0.0 { c.records_read as f64 / seconds } else { 0.0 };
        let mut line = format!("summary: records read {}, {} {}", c.records_read, names.records, c.records);
        for (i, name) in names.counters.iter().enumerate() {
            line.push_str(&format!(", {name} {}", self.counters.get(i).copied().unwrap_or(0)));
        }
        let outputs: Vec<String> = names.outputs.iter().enumerate().map(|(i, name)| format!("{name} {}", self.written.get(i).copied().unwrap_or(0))).collect();
        line.push_str(&format!(
            ", late {}, malformed {}, documents written {} ({}), {:.0} events/s in {:.3} s",
            c.late,
            c.malformed,
            self.documents_written(),
            outputs.join(", "),
            rate,
            seconds
        ));
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_taxi_jobs_summary_line_is_unchanged() {
        let totals = Totals {
            counts: Counts { records_read: 103_998, records: 50_448, skipped: 0, watermarks: 0, late: 0, malformed: 0 },
            counters: vec![1198],
            written: vec![8940, 20, 0],
        };
        let names = SummaryNames { records: "trips", counters: vec!["filtered"], outputs: vec!["pickup_count", "trip_duration"] };
        assert_eq!(
            totals.summary_line(&names, 0.065),
            "summary: records read 103998, trips 50448, filtered 1198, late 0, malformed 0, documents written 8960 (pickup_count 8940, trip_duration 20), 1599969 events/s in 0.065 s"
        );
        let mut sum = totals.clone();
        sum += totals;
        assert_eq!((sum.counts.records, sum.counters[0], sum.written[0], sum.dead_letters()), (100_896, 2396, 17_880, 0));
    }
}
