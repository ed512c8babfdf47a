//! # taxiflow
//!
//! The AWS "real-time taxi hot spots" reference job (`shared/spec/reference-job.md`) on timely dataflow:
//! readers, sources, sinks and the command line around the I/O-free dataflow builders of the
//! `taxiflow-dataflows` crate (`dataflows/`).

#![warn(missing_docs)]

pub mod aws;
pub mod checkpoint;
pub mod cli;
pub mod dead_letter;
pub mod elasticsearch;
pub mod file_source;
pub mod input;
pub mod metrics;
pub mod kafka;
pub mod kinesis;
pub mod replay;
pub mod retry;
pub mod run;
pub mod sink;
pub mod source_batch;
pub mod summary;
pub mod timestamp;
pub mod watermark;
pub mod workers;

pub use taxiflow_dataflows as dataflows;
