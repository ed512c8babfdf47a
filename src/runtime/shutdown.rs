//! The stop signal of a run, handed to the runner, the sources, the sink and the signal handler (no global).
//!
//! Two ways to stop:
//! * [`Shutdown::request`] (SIGINT/SIGTERM): a graceful stop. Without checkpoints the workers stop at once and
//!   the sink is flushed; the windows still open are not emitted (they are incomplete). With checkpoints it is
//!   Flink's stop-with-savepoint: every source cuts a last epoch and stops reading, the sink commits a last
//!   checkpoint covering everything read (part files are finished), and only then do the workers stop
//!   ([`Shutdown::finish`], called on every worker of every process when the final commit is known).
//! * [`Shutdown::fail`]: a connector failed for good (e.g. the sink cannot write): the workers stop at once,
//!   without a last checkpoint, and the run reports the error.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct State {
    requested: AtomicBool,
    finished: AtomicBool,
    /// The first failure.
    failure: Mutex<Option<String>>,
}

/// A handle on the run's stop signal; clones share it.
#[derive(Clone, Debug, Default)]
pub struct Shutdown(Arc<State>);

impl Shutdown {
    /// A run that has not been asked to stop.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Asks for a graceful stop (see the module documentation).
    pub fn request(&self) {
        self.0.requested.store(true, Ordering::Relaxed);
    }

    /// Whether a stop was asked for (gracefully or by a failure).
    pub fn requested(&self) -> bool {
        self.0.requested.load(Ordering::Relaxed)
    }

    /// Stops at once because a connector failed for `reason` (the first reason is kept).
    pub fn fail(&self, reason: impl Into<String>) {
        self.0.failure.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(|| reason.into());
        self.0.requested.store(true, Ordering::Relaxed);
        self.0.finished.store(true, Ordering::Relaxed);
    }

    /// The first failure, if a connector failed.
    pub fn failure(&self) -> Option<String> {
        self.0.failure.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The last checkpoint of a graceful stop is committed: the workers may stop.
    pub fn finish(&self) {
        self.0.finished.store(true, Ordering::Relaxed);
    }

    /// Whether the workers should stop stepping now: after [`Self::finish`] or [`Self::fail`], or after
    /// [`Self::request`] when the run takes no checkpoints.
    pub fn should_exit(&self, checkpointing: bool) -> bool {
        self.0.finished.load(Ordering::Relaxed) || (!checkpointing && self.requested())
    }
}
