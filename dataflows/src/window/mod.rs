//! Epoch-aligned tumbling event-time windows, the keyed window operator every job builds on ([`aggregate`]), and
//! the deterministic ids of window results.

pub mod aggregate;

use serde::{Deserialize, Serialize};

/// A tumbling window assigner: windows of `length_ms` milliseconds aligned to the Unix epoch, as Flink's
/// `TumblingEventTimeWindows.of(size)` with offset 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TumblingWindow {
    /// Window length in milliseconds; greater than zero.
    pub length_ms: u64,
}

/// One window `[start_ms, end_ms)`, ms since the Unix epoch; `end_ms` is exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Window {
    /// First millisecond inside the window.
    pub start_ms: u64,
    /// First millisecond after the window.
    pub end_ms: u64,
}

impl TumblingWindow {
    /// A window assigner of `length_ms` milliseconds.
    ///
    /// # Panics
    /// If `length_ms` is zero (the CLI rejects that at start-up).
    pub fn new(length_ms: u64) -> Self {
        assert!(length_ms > 0, "window length must be positive");
        TumblingWindow { length_ms }
    }

    /// The window holding event time `t` (ms since the Unix epoch).
    #[inline]
    pub fn window_of(&self, t: u64) -> Window {
        let start_ms = t - t % self.length_ms;
        Window { start_ms, end_ms: start_ms + self.length_ms }
    }
}

/// The deterministic id of the result of output `output` for `key_parts` in `window`:
/// `<output>-<key parts joined by '-'>-<window start ms>-<window end ms>`, e.g.
/// `pickup_count-dr5ru7v-1357002000000-1357005600000`. A replay or a restart that emits the same window again
/// overwrites the same document instead of adding one.
pub fn document_id(output: &str, key_parts: &[&str], window: Window) -> String {
    let mut id = String::with_capacity(64);
    id.push_str(output);
    for part in key_parts {
        id.push('-');
        id.push_str(part);
    }
    id.push_str(&format!("-{}-{}", window.start_ms, window.end_ms));
    id
}

/// The window start (ms since the Unix epoch) of an id made by [`document_id`], or `None` for an id of another
/// shape.
pub fn window_start_of_id(id: &str) -> Option<i64> {
    let mut parts = id.rsplitn(3, '-');
    let _end: i64 = parts.next()?.parse().ok()?;
    let start = parts.next()?.parse().ok()?;
    parts.next()?;
    Some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_aligned_half_open_windows() {
        let w = TumblingWindow::new(3_600_000);
        let t = 1_356_998_400_000; // 2013-01-01T00:00:00Z, an hour boundary
        assert_eq!(w.window_of(t), Window { start_ms: t, end_ms: t + 3_600_000 });
        assert_eq!(w.window_of(t + 3_599_999), Window { start_ms: t, end_ms: t + 3_600_000 });
        assert_eq!(w.window_of(t - 1), Window { start_ms: t - 3_600_000, end_ms: t });
        assert_eq!(TumblingWindow::new(600_000).window_of(t + 600_000).start_ms, t + 600_000);
    }
}
