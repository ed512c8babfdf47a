//! Retrying calls to remote services (Elasticsearch bulk requests, Kinesis reads and writes): the backoff delay
//! and the error text that retries log and failures report.

use std::time::Duration;

/// The delay before retry number `retry` (0-based): `initial × 2^retry`, capped at `max`, with "equal jitter"
/// (uniform in [d/2, d]) so that parallel senders do not retry in step (AWS Architecture Blog, "Exponential
/// Backoff and Jitter").
pub fn backoff(retry: u32, initial: Duration, max: Duration) -> Duration {
    let d = initial.saturating_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX)).min(max);
    let half = d / 2;
    half + Duration::from_nanos(fastrand::u64(0..=(d - half).as_nanos() as u64))
}

/// An error with its causes, joined by `: `.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let (i, m) = (Duration::from_millis(50), Duration::from_secs(1));
        for retry in 0..40 {
            let full = (i * 2u32.saturating_pow(retry.min(20))).min(m);
            let d = backoff(retry, i, m);
            assert!(d >= full / 2 && d <= full, "retry {retry}: {d:?} not in [{:?}, {full:?}]", full / 2);
        }
    }
}
