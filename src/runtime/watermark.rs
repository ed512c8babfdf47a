//! Event-time progress of one partition (a file or byte range of one, a Kafka partition, a Kinesis shard) and the
//! job's lateness rule.

use taxiflow_dataflows::{Lateness, WatermarkStrategy};

/// Watermark of one partition: "no record of this partition with event time ≤ W will be read any more".
///
/// A record is **late** when its [`Lateness::due`] time (record-level: its event time, as the taxi job's
/// "event time ≤ an already-passed watermark"; window-level: the end − 1 ms of its window, as Flink SQL's window
/// operator for the ticker job) is ≤ the partition's current watermark: it is kept out of the windows and goes
/// to the dead-letter output. The rule is per partition and depends only on the order of the partition's
/// records, so the result of a file does not depend on the number of workers or on timing.
#[derive(Clone, Debug)]
pub struct PartitionWatermark {
    strategy: WatermarkStrategy,
    lateness: Lateness,
    watermark: Option<u64>,
    max_event_time: Option<u64>,
}

/// A record behind its partition's watermark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Late {
    /// The watermark the record is behind, ms since the Unix epoch.
    pub watermark: u64,
}

impl PartitionWatermark {
    /// A partition that has read nothing, with an optional watermark inherited from the part of the partition
    /// before this reader's start (see `crate::connectors::file::split::max_watermark_between`).
    pub fn new(strategy: WatermarkStrategy, lateness: Lateness, inherited: Option<u64>) -> Self {
        PartitionWatermark { strategy, lateness, watermark: inherited, max_event_time: None }
    }

    /// A partition of the same strategy and rule that has read nothing, with an optional inherited watermark.
    pub fn fresh(&self, inherited: Option<u64>) -> Self {
        PartitionWatermark::new(self.strategy, self.lateness, inherited)
    }

    /// The state a checkpoint keeps: (watermark, largest event time seen), ms since the Unix epoch.
    pub fn state(&self) -> (Option<u64>, Option<u64>) {
        (self.watermark, self.max_event_time)
    }

    /// Continues from a checkpointed largest event time (see [`Self::state`]).
    pub fn set_max_event_time(&mut self, max_event_time: Option<u64>) {
        self.max_event_time = max_event_time;
    }

    /// Current watermark, if any.
    pub fn watermark(&self) -> Option<u64> {
        self.watermark
    }

    /// The smallest event time this partition can still send: watermark + 1, or 0 before any watermark.
    #[inline]
    pub fn frontier(&self) -> u64 {
        self.watermark.map_or(0, |w| w.saturating_add(1))
    }

    /// The time a record with event time `t` is judged by (see [`Lateness::due`]).
    #[inline]
    pub fn due(&self, t: u64) -> u64 {
        self.lateness.due(t)
    }

    /// Accounts a record with event time `t`, then advances the watermark as the strategy says.
    ///
    /// # Errors
    /// [`Late`] when the record's due time is at or behind the watermark; the record must then not enter the
    /// dataflow (and does not move the watermark).
    #[inline]
    pub fn observe_record(&mut self, t: u64) -> Result<(), Late> {
        if let Some(w) = self.watermark {
            if self.lateness.due(t) <= w {
                return Err(Late { watermark: w });
            }
        }
        let lag = match self.strategy {
            WatermarkStrategy::Records => return Ok(()),
            WatermarkStrategy::BoundedOutOfOrderness { bound_ms } => bound_ms + 1,
            WatermarkStrategy::Delay { delay_ms } => delay_ms,
        };
        let max = self.max_event_time.map_or(t, |m| m.max(t));
        self.max_event_time = Some(max);
        if let Some(w) = max.checked_sub(lag) {
            self.watermark = Some(self.watermark.map_or(w, |old| old.max(w)));
        }
        Ok(())
    }

    /// Accounts a watermark record of value `w`. Watermarks never go back: a smaller value is ignored. When the
    /// watermark is derived from event times, watermark records are ignored (the MSF job does not read them).
    /// Returns whether the record was applied.
    pub fn observe_watermark_record(&mut self, w: u64) -> bool {
        match self.strategy {
            WatermarkStrategy::Records => {
                if self.watermark.is_none_or(|old| w > old) {
                    self.watermark = Some(w);
                }
                true
            }
            WatermarkStrategy::BoundedOutOfOrderness { .. } | WatermarkStrategy::Delay { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORD: Lateness = Lateness::Record;

    #[test]
    fn watermark_records() {
        let mut p = PartitionWatermark::new(WatermarkStrategy::Records, RECORD, None);
        assert_eq!(p.frontier(), 0);
        assert_eq!(p.observe_record(5), Ok(()));
        assert!(p.observe_watermark_record(10));
        assert_eq!(p.frontier(), 11);
        assert_eq!(p.observe_record(10), Err(Late { watermark: 10 }));
        assert_eq!(p.observe_record(11), Ok(()));
        p.observe_watermark_record(7);
        assert_eq!(p.watermark(), Some(10), "watermarks never go back");
        let inherited = PartitionWatermark::new(WatermarkStrategy::Records, RECORD, Some(100));
        assert_eq!(inherited.frontier(), 101);
    }

    #[test]
    fn bounded_out_of_orderness_is_flinks() {
        // Flink's BoundedOutOfOrdernessWatermarks: watermark = max - bound - 1.
        let mut p = PartitionWatermark::new(WatermarkStrategy::BoundedOutOfOrderness { bound_ms: 120_000 }, RECORD, None);
        assert_eq!(p.observe_record(1_000_000), Ok(()));
        assert_eq!(p.watermark(), Some(1_000_000 - 120_001));
        // Exactly the bound behind the max: not late.
        assert_eq!(p.observe_record(1_000_000 - 120_000), Ok(()));
        assert_eq!(p.observe_record(1_000_000 - 120_001), Err(Late { watermark: 879_999 }));
        assert!(!p.observe_watermark_record(5_000_000));
        assert_eq!(p.watermark(), Some(879_999));
        // Early event times do not underflow.
        let mut q = PartitionWatermark::new(WatermarkStrategy::BoundedOutOfOrderness { bound_ms: 120_000 }, RECORD, None);
        assert_eq!(q.observe_record(5), Ok(()));
        assert_eq!(q.watermark(), None);
    }

    #[test]
    fn the_ticker_jobs_flink_sql_watermark_and_window_lateness() {
        // W = max event time − 5 s, no extra −1 ms; late iff window end − 1 ≤ W (Flink, measured).
        let window = taxiflow_dataflows::TumblingWindow::new(60_000);
        let mut p = PartitionWatermark::new(WatermarkStrategy::Delay { delay_ms: 5_000 }, Lateness::Window(window), None);
        let end = 1_796_112_060_000u64;
        assert_eq!(p.observe_record(end - 2 + 5_000), Ok(()));
        assert_eq!(p.watermark(), Some(end - 2));
        assert_eq!(p.observe_record(end - 60_000), Ok(()), "W = end − 2 keeps a record of the window");
        assert_eq!(p.observe_record(end - 1 + 5_000), Ok(()));
        assert_eq!(p.watermark(), Some(end - 1));
        assert_eq!(p.observe_record(end - 30_000), Err(Late { watermark: end - 1 }), "W = end − 1 drops it");
        // Behind W but in a window that has not fired: counted.
        assert_eq!(p.observe_record(end + 1), Ok(()));
        assert_eq!(p.observe_record(end), Ok(()));
        // Early event times do not underflow.
        let mut q = PartitionWatermark::new(WatermarkStrategy::Delay { delay_ms: 5_000 }, Lateness::Window(window), None);
        assert_eq!(q.observe_record(4_999), Ok(()));
        assert_eq!(q.watermark(), None);
        assert_eq!(q.observe_record(5_000), Ok(()));
        assert_eq!(q.watermark(), Some(0));
    }
}
