//! The blog's producer (`taxiflow generate ticker`), reproduced: each event is
//! `{"event_time": "<datetime.isoformat()>", "ticker": "<random choice>", "price": <round(random() * 100, 2)>}`
//! as Python's `json.dumps` writes it. With a seed and a start time the stream is deterministic: event `i` has
//! the time `start + i × spacing` (optionally moved back by up to `max_disorder`, so the stream is out of order),
//! a ticker and a price drawn from the seeded generator.

use crate::calendar::format_local_date_time;

/// The blog's tickers.
pub const TICKERS: [&str; 5] = ["AAPL", "AMZN", "MSFT", "INTC", "TBV"];

/// A deterministic stream of ticker events.
#[derive(Clone, Debug)]
pub struct TickGenerator {
    rng: fastrand::Rng,
    /// Event time of event 0, µs since the Unix epoch.
    start_us: i64,
    /// Event-time distance between two events, µs.
    spacing_us: f64,
    /// Largest amount an event's time is moved back, µs (0: in order).
    max_disorder_us: u64,
    next: u64,
}

impl TickGenerator {
    /// Events from `start_ms` (ms since the Unix epoch, a local time read as UTC) spaced by `spacing_us`
    /// microseconds, each moved back by a uniform amount in `[0, max_disorder_ms]`, drawn with `seed`.
    pub fn new(seed: u64, start_ms: i64, spacing_us: f64, max_disorder_ms: u64) -> TickGenerator {
        TickGenerator { rng: fastrand::Rng::with_seed(seed), start_us: start_ms * 1000 + max_disorder_ms as i64 * 1000, spacing_us, max_disorder_us: max_disorder_ms * 1000, next: 0 }
    }

    /// The next event as a JSON line (without newline) and its event time in ms since the Unix epoch.
    pub fn next_event(&mut self) -> (String, i64) {
        let base = self.start_us + (self.next as f64 * self.spacing_us) as i64;
        self.next += 1;
        let back = if self.max_disorder_us > 0 { self.rng.u64(0..=self.max_disorder_us) as i64 } else { 0 };
        let us = base - back;
        (self.event_at(us), us.div_euclid(1000))
    }

    /// An event at `time_us` (µs since the Unix epoch, a local time read as UTC) with a random ticker and price,
    /// as the blog's producer makes at `datetime.now()`.
    pub fn event_at(&mut self, time_us: i64) -> String {
        let ticker = TICKERS[self.rng.usize(..TICKERS.len())];
        let cents = (self.rng.f64() * 10_000.0).round() as u64;
        event_json(time_us, ticker, cents)
    }
}

/// One event as Python's `json.dumps({"event_time": t.isoformat(), "ticker": ticker, "price": cents / 100})`:
/// the time with microseconds unless they are zero, the price in its shortest form with at least one decimal
/// (`42.0`, `0.5`, `42.17`).
pub fn event_json(time_us: i64, ticker: &str, cents: u64) -> String {
    let mut time = String::with_capacity(26);
    format_local_date_time(time_us.div_euclid(1_000_000) * 1000, 'T', &mut time);
    let micros = time_us.rem_euclid(1_000_000);
    if micros != 0 {
        time.push_str(&format!(".{micros:06}"));
    }
    let price = cents as f64 / 100.0;
    let price_text = if price.fract() == 0.0 { format!("{price:.1}") } else { format!("{price}") };
    format!("{{\"event_time\": \"{time}\", \"ticker\": \"{ticker}\", \"price\": {price_text}}}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Decoded;

    #[test]
    fn events_are_the_blogs_json() {
        assert_eq!(event_json(1_796_112_001_123_456, "AAPL", 4217), r#"{"event_time": "2026-12-01T08:00:01.123456", "ticker": "AAPL", "price": 42.17}"#);
        assert_eq!(event_json(1_796_112_000_000_000, "TBV", 4200), r#"{"event_time": "2026-12-01T08:00:00", "ticker": "TBV", "price": 42.0}"#);
        assert_eq!(event_json(1_796_112_000_000_500, "MSFT", 5), r#"{"event_time": "2026-12-01T08:00:00.000500", "ticker": "MSFT", "price": 0.05}"#);
    }

    #[test]
    fn seeded_streams_repeat_and_decode() {
        let take = |seed| {
            let mut g = TickGenerator::new(seed, 1_796_112_000_000, 250_000.0, 0);
            (0..100).map(|_| g.next_event()).collect::<Vec<_>>()
        };
        assert_eq!(take(7), take(7));
        assert_ne!(take(7), take(8));
        for (line, ms) in take(7) {
            let Ok(Decoded::Record(tick)) = super::super::decode::decode(line.as_bytes()) else { panic!("{line}") };
            assert_eq!(tick.event_time as i64, ms);
            let price = tick.price.unwrap();
            assert!((0.0..=100.0).contains(&price) && (price * 100.0).round() / 100.0 == price, "{line}");
            assert!(TICKERS.contains(&tick.ticker.as_deref().unwrap()));
        }
    }

    #[test]
    fn disorder_moves_events_back_within_the_bound() {
        let mut g = TickGenerator::new(1, 1_796_112_000_000, 1000.0, 3000);
        let times: Vec<i64> = (0..2000).map(|_| g.next_event().1).collect();
        assert!(times.windows(2).any(|w| w[1] < w[0]), "some events are out of order");
        for (i, t) in times.iter().enumerate() {
            let base = 1_796_112_000_000 + 3000 + i as i64;
            assert!(*t <= base && *t >= base - 3000, "event {i} at {t}");
        }
    }
}
