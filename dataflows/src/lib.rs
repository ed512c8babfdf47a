//! # taxiflow-dataflows
//!
//! The jobs of taxiflow and the generic, I/O-free parts of the engine they are built from:
//!
//! * [`job`]: the [`job::Job`] trait a job implements (record type, decoders, watermark strategy, lateness rule,
//!   outputs, dataflow), used by the runner, sources, sinks and checkpoints of the `taxiflow` crate;
//! * [`output`]: typed output rows and their schemas, which every sink encodes;
//! * [`window`]: tumbling event-time windows and the keyed window operator ([`window::aggregate`]);
//! * [`epoch`]: the (event time, checkpoint epoch) timestamp of every dataflow, and checkpoint parts;
//! * [`jobs`]: one folder per job ([`jobs::taxi`], [`jobs::ticker`]).
//!
//! Timestamps of every stream are [`epoch::Time`]: event time in **milliseconds since the Unix epoch** (`u64`)
//! × checkpoint epoch. A window `[start, end)` is emitted exactly once, at event time `end`, when the input
//! frontier's event time reaches `end` (see [`window::aggregate`]); checkpoints are cut by epoch (see
//! [`epoch`]).

#![warn(missing_docs)]

pub mod calendar;
pub mod epoch;
pub mod job;
pub mod jobs;
pub mod output;
pub mod window;

pub use epoch::{CheckpointPart, Recovery, Time};
pub use job::{Decoded, EventTime, Job, Lateness, RecordFormat, WatermarkStrategy};
pub use output::{OutputSchema, Row, Value};
pub use window::{TumblingWindow, Window};
