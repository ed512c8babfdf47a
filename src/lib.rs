//! # taxiflow
//!
//! A stream processor on timely dataflow that runs several reference streaming jobs as jobs of one binary
//! (`taxiflow jobs` lists them; their semantics are in `docs/jobs/`). This crate is everything around the I/O-free
//! jobs of the `taxiflow-dataflows` crate (`dataflows/`):
//!
//! | module | what |
//! |---|---|
//! | [`jobs`] | the job registry: name → job, its flags and its runner |
//! | [`runtime`] | the generic engine: runner, source shell, watermarks, sink operator, checkpoints, shutdown, metrics |
//! | [`connectors`] | sources and sinks by URL scheme: files, Kafka, Kinesis, Elasticsearch, S3, part files, stdout |
//! | [`formats`] | row encodings: JSON, Flink's CSV (Java doubles), Parquet |
//! | [`dashboard`] | the live dashboard: the page, its embedded assets, its JSON API, fed by a run or by stored results |
//! | [`cli`] | the command line: `run`, `jobs`, `replay`, `generate`, `ship`, `dashboard` |
//! | [`replay`] | `taxiflow replay`: taxi trips into Kafka or Kinesis, paced in event time |
//! | [`aws`], [`retry`] | AWS settings, backoff and error chains shared by connectors |

#![warn(missing_docs)]

pub mod aws;
pub mod cli;
pub mod connectors;
pub mod dashboard;
pub mod formats;
pub mod jobs;
pub mod replay;
pub mod retry;
pub mod runtime;
pub mod ship;

pub use taxiflow_dataflows as dataflows;
