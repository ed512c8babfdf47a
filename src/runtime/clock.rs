//! The wall clock (processing time), as the runtime, connectors and dashboard read it.

/// Wall-clock time now, in ms since the Unix epoch; 0 if the system clock is set before 1970.
///
/// Processing time, which no job's window reads: checkpoint creation times, partition-commit delays (the ticker
/// job's `_SUCCESS` policy, spec §4), consumer-lag metrics (Kafka's and Kinesis' `millisBehindLatest`), the
/// dashboard's arrival times, and the first event time `taxiflow generate devices` gives without `--start-time`.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
