//! The jobs, one folder each: [`taxi`] (NYC taxi hot spots and airport trip durations), [`ticker`] (average
//! price per ticker into S3), [`alerts`] (device alerts from rules), [`dispatch`] (their work orders) and
//! [`pageviews`] (page views and unique visitors of access logs), and the event-time flags they share ([`WindowArgs`]).

pub mod alerts;
pub mod dispatch;
pub mod pageviews;
pub mod taxi;
pub mod ticker;

use std::time::Duration;

use crate::window::TumblingWindow;

/// Event-time flags of the jobs with tumbling windows and a bounded out-of-orderness watermark.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct WindowArgs {
    /// Tumbling window length (e.g. 1h, 10m, 1m, 1500ms); default from the job (taxi: its profile; ticker: 1m).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub window: Option<Duration>,
    /// Watermark bound: the watermark is the largest event time so far minus this (taxi: and minus 1 ms, as
    /// Flink's DataStream API, instead of its watermark records; ticker: default 5s, as its Flink SQL).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub max_out_of_orderness: Option<Duration>,
}

impl WindowArgs {
    /// The `--window` assigner, or `None` when not given.
    ///
    /// # Errors
    /// `--window` shorter than 1 ms or not a whole number of milliseconds.
    pub fn window(&self) -> Result<Option<TumblingWindow>, String> {
        match self.window {
            None => Ok(None),
            Some(w) if w.as_millis() == 0 || w.as_nanos() % 1_000_000 != 0 => Err(format!("--window must be a positive whole number of milliseconds, got {w:?}")),
            Some(w) => Ok(Some(TumblingWindow::new(w.as_millis() as u64))),
        }
    }

    /// `--max-out-of-orderness` in ms, or `None` when not given.
    ///
    /// # Errors
    /// Not a whole number of milliseconds.
    pub fn bound_ms(&self) -> Result<Option<u64>, String> {
        match self.max_out_of_orderness {
            None => Ok(None),
            Some(b) if b.as_nanos() % 1_000_000 != 0 => Err(format!("--max-out-of-orderness must be a whole number of milliseconds, got {b:?}")),
            Some(b) => Ok(Some(b.as_millis() as u64)),
        }
    }
}
