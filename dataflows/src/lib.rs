//! # taxiflow-dataflows
//!
//! The dataflow builders of taxiflow's reference taxi job (`shared/spec/reference-job.md` §3), with no I/O:
//! they take a timely stream of [`Trip`]s and return timely streams of result documents.
//!
//! * [`nyc_filter::filter_nyc`]: keeps trips whose pickup **and** dropoff are in the NYC area of the profile.
//! * [`hot_spots::hot_spots`]: trips per pickup geohash cell per tumbling window (`pickup_count` index).
//! * [`airport_durations::airport_durations`]: average whole minutes from a pickup cell to JFK or LGA per
//!   tumbling window (`trip_duration` index).
//! * [`job::build_job`]: the three composed, as `taxiflow run` uses them.
//!
//! Timestamps of every stream are [`epoch::Time`]: event time in **milliseconds since the Unix epoch** (`u64`)
//! × checkpoint epoch. A window `[start, end)` is emitted exactly once, at event time `end`, when the input
//! frontier's event time reaches `end` (see [`windowed_aggregate`]); checkpoints are cut by epoch (see
//! [`epoch`]).

#![warn(missing_docs)]

pub mod airport_durations;
pub mod documents;
pub mod epoch;
pub mod geo;
pub mod geohash;
pub mod hot_spots;
pub mod job;
pub mod nyc_filter;
pub mod profile;
pub mod trip;
pub mod window;
pub mod windowed_aggregate;

pub use documents::{PickupCount, TripDuration};
pub use epoch::{CheckpointPart, Recovery, Time};
pub use profile::{JobSettings, Profile, Progress};
pub use trip::{Point, Trip};
pub use window::{TumblingWindow, Window};

/// Event time: milliseconds since the Unix epoch (UTC), the timestamp type of every taxiflow dataflow.
pub type EventTime = u64;
