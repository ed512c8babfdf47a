//! `taxiflow run`, for any job: restores the newest checkpoint (with `--checkpoint-dir`), prepares the source
//! (plans its partitions) and opens the sink, starts the timely workers, builds on each the source, the job's
//! dataflow and the sink operator (which also commits checkpoints), and returns the totals summed over all
//! workers of all processes.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use taxiflow_dataflows::job::Counters;
use taxiflow_dataflows::output::Outputs;
use taxiflow_dataflows::{Job, Recovery};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::vec::{Broadcast, Map};
use timely::dataflow::operators::{Concat, Operator, ToStream};

use super::checkpoint::store::CheckpointStore;
use super::checkpoint::writer::CheckpointWriter;
use super::checkpoint::{job_identity, Checkpoint, CheckpointOptions};
use super::shutdown::Shutdown;
use super::sink_operator::{sink as sink_operator, SinkWriter};
use super::source_shell::{Epochs, SourceContext};
use super::summary::{Counts, SummaryNames, Totals};
use crate::connectors::{SinkConnector, SinkContext, Source};

/// Everything a run needs, validated.
pub struct RunOptions<J: Job> {
    /// The job with its settings.
    pub job: J,
    /// Where records come from.
    pub source: Box<dyn Source<J>>,
    /// Where rows go.
    pub sink: Box<dyn SinkConnector>,
    /// Timely configuration from the worker flags.
    pub timely: timely::Config,
    /// `--checkpoint-dir` and its settings; `None`: no checkpoints.
    pub checkpoint: Option<CheckpointOptions>,
    /// The stop signal (the signal handler's, or a fresh one).
    pub shutdown: Shutdown,
    /// `--source-rate-limit`: at most this many records per second per worker.
    pub source_rate_limit: Option<f64>,
}

impl<J: Job> RunOptions<J> {
    /// A run of `job` from `source` into `sink` on `timely`'s workers, without checkpoints.
    pub fn new(job: J, source: Box<dyn Source<J>>, sink: Box<dyn SinkConnector>, timely: timely::Config) -> Self {
        RunOptions { job, source, sink, timely, checkpoint: None, shutdown: Shutdown::new(), source_rate_limit: None }
    }
}

/// What a run reports: totals over all workers (on process 0; `None` on other processes; after a stop, each
/// process reports its own workers), the names to print them with, and the wall time.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// Totals over every worker of every process, known on process 0.
    pub totals: Option<Totals>,
    /// The job's names for the summary line.
    pub names: SummaryNames,
    /// Wall time from the start of the workers to their end.
    pub elapsed: Duration,
}

impl RunReport {
    /// The summary line (see [`Totals::summary_line`]), if this process has the totals.
    pub fn summary_line(&self) -> Option<String> {
        self.totals.as_ref().map(|t| t.summary_line(&self.names, self.elapsed.as_secs_f64()))
    }
}

/// Runs the job to the end of its inputs (or to a stop).
///
/// # Errors
/// A source that cannot be prepared or a sink that cannot be opened (named), a sink or source that failed, a
/// checkpoint that cannot be restored, or a timely start-up error (e.g. a cluster peer that cannot be reached).
pub fn run<J: Job>(options: RunOptions<J>) -> anyhow::Result<RunReport> {
    let RunOptions { job, mut source, sink, timely: config, checkpoint, shutdown, source_rate_limit } = options;
    let info = J::info();
    let topology = super::workers::Topology::of(&config);
    let peers = topology.peers;
    let outputs = Outputs::of_job(job.outputs());
    let dead_letter = outputs.dead_letter();
    let names = SummaryNames { records: job.record_noun(), counters: job.counters().to_vec(), outputs: outputs.results().iter().map(|o| o.name).collect() };
    // Checkpoints: restore the newest usable one before any worker starts.
    let identity = job_identity(info.name, &job.identity(), &source.describe(), &sink.describe());
    let (restored, store) = match &checkpoint {
        Some(c) => {
            let (restored, store) = restore(c, &identity, sink.as_ref())?;
            (restored, Some(store))
        }
        None => (None, None),
    };
    source.prepare(&job, topology, restored.as_ref())?;
    let epochs = Epochs { interval: checkpoint.as_ref().map(|c| c.interval), start: restored.as_ref().map_or(1, |c| c.epoch + 1) };
    let recovery = match &restored {
        Some(c) => c.recovery(),
        None => Recovery { enabled: checkpoint.is_some(), start_epoch: epochs.start, windows: Default::default() },
    };
    let checkpointing = checkpoint.is_some();
    // Open the sink before any worker starts (an unusable sink fails fast); worker 0, on process 0, takes it.
    let is_first_process = !matches!(&config.communication, timely::CommunicationConfig::Cluster { process, .. } if *process != 0);
    let opened = if is_first_process {
        let context = SinkContext {
            outputs: &outputs,
            restored: restored.as_ref().map(|c| c.sink.as_slice()),
            restored_epoch: restored.as_ref().map_or(0, |c| c.epoch),
            checkpointing,
            checkpoint_interval: checkpoint.as_ref().map(|c| c.interval),
            shutdown: shutdown.clone(),
        };
        Some(SinkWriter::new(sink.open(context)?, &outputs, checkpointing, shutdown.clone()))
    } else {
        None
    };
    let opened = std::sync::Mutex::new(opened);
    let committer = std::sync::Mutex::new(if is_first_process { store.map(|store| CheckpointWriter::new(store, identity.clone(), restored.as_ref())) } else { None });
    let restored = restored.map(Arc::new);
    let source: Arc<dyn Source<J>> = Arc::from(source);
    let worker_shutdown = shutdown.clone();

    let started = Instant::now();
    let guards = timely::execute(config, move |worker| -> Result<Option<Totals>, String> {
        let index = worker.index();
        let shutdown = worker_shutdown.clone();
        let counts = Rc::new(RefCell::new(Counts::default()));
        let counters = Counters::new(job.counters().len());
        let (writer, mut checkpoints) = if index == 0 {
            let w = opened.lock().map_err(|_| "sink lock poisoned".to_string())?.take().ok_or("worker 0 runs outside process 0")?;
            let c = committer.lock().map_err(|_| "checkpoint lock poisoned".to_string())?.take();
            (Some(Rc::new(RefCell::new(w))), c)
        } else {
            (None, None)
        };

        // Event time × checkpoint epoch, product-ordered: an iterative scope (the top level only takes totally
        // refined timestamps); nothing enters or leaves it.
        worker.dataflow::<u64, _, _>(|top| {
            top.iterative::<u64, _, _>(|scope| {
                let ctx = SourceContext { job: &job, worker: index, peers, counts: counts.clone(), epochs, restored: restored.clone(), shutdown: shutdown.clone(), rate_limit: source_rate_limit };
                let (records, dead_letters, source_parts) = source.build(scope, ctx).unwrap_or_else(|e| panic!("worker {index}: {e:#}"));
                let streams = job.build(records, &recovery, &counters);
                let rows = streams.rows.concat(dead_letters.map(move |d| d.into_row(dead_letter)));
                let stopped = sink_operator(rows, source_parts.concat(streams.checkpoint_parts), dead_letter, writer.clone(), checkpoints.take(), peers);
                // The last checkpoint of a graceful stop is committed: every worker of every process ends.
                let stop = shutdown.clone();
                stopped.broadcast().sink(Pipeline, "stop", move |(input, _)| input.for_each(|_, _| stop.finish()));
            })
        });
        // step_or_park sleeps until there is work (or 10 ms), so this loop does not spin.
        while !shutdown.should_exit(checkpointing) && worker.step_or_park(Some(Duration::from_millis(10))) {}
        let mut mine = Totals { counts: *counts.borrow(), counters: counters.values(), written: Vec::new() };
        if let Some(w) = &writer {
            mine.written = w.borrow_mut().finish(!shutdown.requested()).map_err(|e| format!("{e:#}"))?;
        }
        if shutdown.requested() {
            // Stopped: drop the dataflows (timely would otherwise keep stepping an unbounded source after this
            // closure returns); other processes may be gone, so report this worker only.
            for id in worker.installed_dataflows() {
                worker.drop_dataflow(id);
            }
            return Ok(Some(mine));
        }

        // Sum every worker's totals on worker 0.
        let sum: Rc<RefCell<Option<Totals>>> = Rc::new(RefCell::new(None));
        let sum_in = sum.clone();
        worker.dataflow::<u64, _, _>(|scope| {
            vec![mine].to_stream(scope).container::<Vec<Totals>>().sink(Exchange::new(|_: &Totals| 0), "totals", move |(input, _)| {
                input.for_each(|_, batch| {
                    for t in batch.drain(..) {
                        *sum_in.borrow_mut().get_or_insert_with(Totals::default) += t;
                    }
                });
            });
        });
        while worker.step_or_park(Some(Duration::from_millis(10))) {}
        let total = sum.borrow_mut().take();
        Ok(total)
    })
    .map_err(|e| anyhow!("cannot start the timely workers: {e}"))?;

    let mut totals: Option<Totals> = None;
    let stopped = shutdown.requested();
    for result in guards.join() {
        let worker_result = result.map_err(|e| anyhow!("a worker failed: {e}"))?;
        if let Some(t) = worker_result.map_err(|e| anyhow!(e)).context("worker")? {
            if stopped {
                *totals.get_or_insert_with(Totals::default) += t;
            } else {
                totals = Some(t);
            }
        }
    }
    if let Some(failure) = shutdown.failure() {
        anyhow::bail!("{failure}");
    }
    Ok(RunReport { totals, names, elapsed: started.elapsed() })
}

/// Opens the checkpoint store of `options` and returns the newest usable checkpoint of `job` (none at a first
/// start or with `--checkpoint-reset`) whose epoch `sink` holds as committed
/// ([`SinkConnector::committed_epoch`]: an older one when the sink lost the commit of the newest, whose file is
/// then removed), logging and recording the restore time.
///
/// # Errors
/// `--checkpoint-dir`: checkpoint files exist but none is usable (corrupt), or the newest belongs to another
/// job (other inputs or settings); both refuse to start unless `--checkpoint-reset` is given. The sink holds a
/// later epoch as committed than the newest usable checkpoint, or an earlier one whose checkpoint is gone: a
/// restore would write some output twice or lose it.
pub fn restore(options: &CheckpointOptions, job: &str, sink: &dyn SinkConnector) -> anyhow::Result<(Option<Checkpoint>, CheckpointStore)> {
    let started = Instant::now();
    let store = CheckpointStore::open(&options.location)?;
    if options.reset {
        tracing::warn!(dir = %options.location, "--checkpoint-reset: removing the checkpoints and starting from the beginning");
        store.reset()?;
        return Ok((None, store));
    }
    let loaded = store.load()?;
    let Some(checkpoint) = loaded.checkpoint else {
        if !loaded.skipped.is_empty() {
            let files: Vec<String> = loaded.skipped.iter().map(|(p, e)| format!("{p}: {e}")).collect();
            anyhow::bail!("--checkpoint-dir {}: no usable checkpoint ({}); refusing to start from scratch, use --checkpoint-reset to do so", options.location, files.join("; "));
        }
        tracing::info!(dir = %options.location, "no checkpoint yet: starting from the beginning");
        return Ok((None, store));
    };
    if checkpoint.job != job {
        anyhow::bail!(
            "--checkpoint-dir {}: the checkpoint belongs to another job ({}), not this one ({job}); use the same inputs and settings, another directory, or --checkpoint-reset",
            options.location,
            checkpoint.job
        );
    }
    let committed = sink.committed_epoch(&checkpoint.sink, checkpoint.epoch)?;
    let checkpoint = if committed == checkpoint.epoch {
        checkpoint
    } else if committed > checkpoint.epoch {
        anyhow::bail!(
            "--checkpoint-dir {}: the sink {} has committed epoch {committed}, but the newest usable checkpoint is of epoch {}: restoring it would write epochs {}..={committed} twice",
            options.location,
            sink.describe(),
            checkpoint.epoch,
            checkpoint.epoch + 1
        );
    } else {
        tracing::warn!(epoch = checkpoint.epoch, committed, "the sink did not commit the newest checkpoint's epoch (the process stopped between the checkpoint and the commit): restoring the checkpoint of the committed epoch");
        store.discard_after(committed)?;
        if committed == 0 {
            tracing::info!(dir = %options.location, "nothing committed yet: starting from the beginning");
            return Ok((None, store));
        }
        store.load_epoch(committed).with_context(|| format!("--checkpoint-dir {}: the sink committed epoch {committed}, whose checkpoint cannot be read", options.location))?
    };
    let seconds = started.elapsed().as_secs_f64();
    metrics::gauge!("taxiflow_checkpoint_restore_seconds").set(seconds);
    metrics::gauge!("taxiflow_checkpoint_last_epoch").set(checkpoint.epoch as f64);
    tracing::info!(
        epoch = checkpoint.epoch,
        partitions = checkpoint.sources.len(),
        window_parts = checkpoint.windows.len(),
        skipped = loaded.skipped.len(),
        ms = seconds * 1000.0,
        "restored checkpoint"
    );
    Ok((Some(checkpoint), store))
}
