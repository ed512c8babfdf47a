//! The engine around a job, generic over [`taxiflow_dataflows::Job`]: the runner ([`run`]), the operator shell
//! every source runs in ([`source_shell`]) with per-partition watermarks and the job's lateness rule
//! ([`watermark`]), dead letters ([`dead_letter`]), the sink operator that releases rows and commits checkpoints
//! ([`sink_operator`]), checkpoints ([`checkpoint`]), the stop signal ([`shutdown`]), the summary ([`summary`]),
//! Prometheus metrics ([`metrics`]), the timely worker configuration ([`workers`]), the wall clock ([`clock`]) and
//! the allocator's purge delay ([`allocator`]).

pub mod allocator;
pub mod checkpoint;
pub mod clock;
pub mod dead_letter;
pub mod metrics;
pub mod run;
pub mod shutdown;
pub mod sink_operator;
pub mod source_shell;
pub mod summary;
pub mod watermark;
pub mod workers;
