//! Event-time progress of one partition (a file, or later a Kafka partition or Kinesis shard) and the
//! late-trip rule (spec §1 "Watermark", spec §3 "event-time progress").

use taxiflow_dataflows::Progress;

/// Watermark of one partition: "every trip of this partition with event time ≤ W has been read".
///
/// A trip whose event time is ≤ the partition's current watermark is **late** (spec §3: "event time ≤ an
/// already-passed watermark"): it is kept out of the windows and goes to the dead-letter output. The rule is
/// per partition and depends only on the order of the partition's records, so the result of a file does not
/// depend on the number of workers or on timing.
#[derive(Clone, Debug)]
pub struct PartitionWatermark {
    progress: Progress,
    watermark: Option<u64>,
    max_event_time: Option<u64>,
}

/// A trip behind its partition's watermark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Late {
    /// The watermark the trip is behind, ms since the Unix epoch.
    pub watermark: u64,
}

impl PartitionWatermark {
    /// A partition that has read nothing, with an optional watermark inherited from the part of the partition
    /// before this reader's start (see `input::split::max_watermark_between`).
    pub fn new(progress: Progress, inherited: Option<u64>) -> Self {
        PartitionWatermark { progress, watermark: inherited, max_event_time: None }
    }

    /// A partition that continues from a checkpointed state (see [`Self::state`]).
    pub fn restore(progress: Progress, watermark: Option<u64>, max_event_time: Option<u64>) -> Self {
        PartitionWatermark { progress, watermark, max_event_time }
    }

    /// The state a checkpoint keeps: (watermark, largest event time seen), ms since the Unix epoch.
    pub fn state(&self) -> (Option<u64>, Option<u64>) {
        (self.watermark, self.max_event_time)
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

    /// Accounts a trip with event time `t`.
    ///
    /// # Errors
    /// [`Late`] when `t` is at or behind the watermark; the trip must then not enter the dataflow.
    #[inline]
    pub fn observe_trip(&mut self, t: u64) -> Result<(), Late> {
        if let Some(w) = self.watermark {
            if t <= w {
                return Err(Late { watermark: w });
            }
        }
        if let Progress::BoundedOutOfOrderness { bound_ms } = self.progress {
            let max = self.max_event_time.map_or(t, |m| m.max(t));
            self.max_event_time = Some(max);
            if let Some(w) = max.checked_sub(bound_ms + 1) {
                self.watermark = Some(self.watermark.map_or(w, |old| old.max(w)));
            }
        }
        Ok(())
    }

    /// Accounts a watermark record of value `w`. Watermarks never go back: a smaller value is ignored. With
    /// bounded out-of-orderness, watermark records are ignored (the MSF job does not read them).
    /// Returns whether the record was applied.
    pub fn observe_watermark_record(&mut self, w: u64) -> bool {
        match self.progress {
            Progress::WatermarkRecords => {
                if self.watermark.is_none_or(|old| w > old) {
                    self.watermark = Some(w);
                }
                true
            }
            Progress::BoundedOutOfOrderness { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_records() {
        let mut p = PartitionWatermark::new(Progress::WatermarkRecords, None);
        assert_eq!(p.frontier(), 0);
        assert_eq!(p.observe_trip(5), Ok(()));
        assert!(p.observe_watermark_record(10));
        assert_eq!(p.frontier(), 11);
        assert_eq!(p.observe_trip(10), Err(Late { watermark: 10 }));
        assert_eq!(p.observe_trip(11), Ok(()));
        p.observe_watermark_record(7);
        assert_eq!(p.watermark(), Some(10), "watermarks never go back");
        let inherited = PartitionWatermark::new(Progress::WatermarkRecords, Some(100));
        assert_eq!(inherited.frontier(), 101);
    }

    #[test]
    fn bounded_out_of_orderness_is_flinks() {
        // Flink's BoundedOutOfOrdernessWatermarks: watermark = max - bound - 1.
        let mut p = PartitionWatermark::new(Progress::BoundedOutOfOrderness { bound_ms: 120_000 }, None);
        assert_eq!(p.observe_trip(1_000_000), Ok(()));
        assert_eq!(p.watermark(), Some(1_000_000 - 120_001));
        // Exactly the bound behind the max: not late.
        assert_eq!(p.observe_trip(1_000_000 - 120_000), Ok(()));
        assert_eq!(p.observe_trip(1_000_000 - 120_001), Err(Late { watermark: 879_999 }));
        assert!(!p.observe_watermark_record(5_000_000));
        assert_eq!(p.watermark(), Some(879_999));
        // Early event times do not underflow.
        let mut q = PartitionWatermark::new(Progress::BoundedOutOfOrderness { bound_ms: 120_000 }, None);
        assert_eq!(q.observe_trip(5), Ok(()));
        assert_eq!(q.watermark(), None);
    }
}
