//! `taxiflow run`: restores the newest checkpoint (with `--checkpoint-dir`), plans the input, starts the timely
//! workers, builds the job on each (sources, the window operators, the sink that also commits checkpoints), and
//! returns the totals summed over all workers of all processes.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use taxiflow_dataflows::job::build_job;
use taxiflow_dataflows::{JobSettings, Progress, Recovery};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::{Concat, Operator, ToStream};

use crate::checkpoint::store::CheckpointStore;
use crate::checkpoint::writer::CheckpointWriter;
use crate::checkpoint::{job_identity, Checkpoint, CheckpointOptions};
use crate::file_source::file_source;
use crate::input::{plan_splits, FormatChoice, InputFile};
use crate::kafka::source::{kafka_source, partition_count, KafkaSourceOptions};
use crate::sink::{serialize, sink as sink_operator, Release, SinkSpec, SinkWriter};
use crate::source_batch::Epochs;
use crate::summary::Totals;

/// Where trips come from.
#[derive(Clone, Debug)]
pub enum SourceSpec {
    /// Input files (plain or gzip), read to their end.
    Files(Vec<PathBuf>),
    /// A Kafka topic (`--source kafka://…`).
    Kafka(KafkaSourceOptions),
    /// A Kinesis stream (`--source kinesis://…`).
    Kinesis(crate::kinesis::source::KinesisSourceOptions),
}

/// Set by SIGINT/SIGTERM: workers stop stepping, the sink is flushed, and the run ends without emitting the
/// windows that are still open (they are incomplete).
pub static STOP: AtomicBool = AtomicBool::new(false);

/// Everything `taxiflow run` needs, validated.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Input files or stream.
    pub source: SourceSpec,
    /// `--format`.
    pub format: FormatChoice,
    /// Profile settings after overrides.
    pub settings: JobSettings,
    /// `--sink`.
    pub sink: SinkSpec,
    /// Timely configuration from the worker flags.
    pub timely: timely::Config,
    /// Plain files of at least this many bytes are cut into byte ranges.
    pub min_split_bytes: u64,
    /// Byte ranges are at most this long (a file is cut into at least one range per worker).
    pub max_split_bytes: u64,
    /// `--checkpoint-dir` and its settings; `None`: no checkpoints.
    pub checkpoint: Option<CheckpointOptions>,
}

/// What a run reports: totals over all workers (on process 0; `None` on other processes; after SIGINT/SIGTERM,
/// each process reports its own workers) and the wall time.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// Totals over every worker of every process, known on process 0.
    pub totals: Option<Totals>,
    /// Wall time from the start of the workers to their end.
    pub elapsed: Duration,
}

/// Runs the job to the end of its inputs.
///
/// # Errors
/// An input that cannot be opened or whose format is unknown (named), a sink that cannot be created or that
/// failed to write, or a timely start-up error (e.g. a cluster peer that cannot be reached).
pub fn run(options: RunOptions) -> anyhow::Result<RunReport> {
    let mut files = Vec::new();
    let no_files = Vec::new();
    let mut open_shards = 0;
    let paths = match &options.source {
        SourceSpec::Files(paths) => paths,
        SourceSpec::Kafka(kafka) => {
            // Fail fast on an unreachable broker or unknown topic, before any worker starts.
            partition_count(&crate::kafka::source::consumer(kafka)?, &kafka.topic, kafka.timeout)?;
            &no_files
        }
        SourceSpec::Kinesis(kinesis) => {
            open_shards = crate::kinesis::source::open_shard_count(kinesis)?;
            &no_files
        }
    };
    for path in paths {
        let file = InputFile::inspect(path, options.format)?;
        tracing::info!(input = %path.display(), format = file.format.name(), gzip = file.gzip, bytes = file.size, "input");
        files.push(Arc::new(file));
    }
    // A bounded-out-of-orderness watermark depends on every record before it, so such files are read whole.
    let whole_files = matches!(options.settings.progress, Progress::BoundedOutOfOrderness { .. });
    let peers = match &options.timely.communication {
        timely::CommunicationConfig::Thread => 1,
        timely::CommunicationConfig::Process(n) | timely::CommunicationConfig::ProcessBinary(n) => *n,
        timely::CommunicationConfig::Cluster { threads, addresses, .. } => threads * addresses.len(),
    };
    // Checkpoints: restore the newest usable one before any worker starts.
    let source_name = match &options.source {
        SourceSpec::Files(paths) => format!("files:{}", paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(",")),
        SourceSpec::Kafka(k) => k.topic.url(),
        SourceSpec::Kinesis(k) => k.stream.url(),
    };
    let job = job_identity(&source_name, &format!("{:?}", options.format), &options.settings, &options.sink.describe());
    let (restored, writer_setup) = match &options.checkpoint {
        Some(c) => {
            let (restored, store) = restore(c, &job)?;
            (restored, Some(store))
        }
        None => (None, None),
    };
    let epochs = Epochs { interval: options.checkpoint.as_ref().map(|c| c.interval), start: restored.as_ref().map_or(1, |c| c.epoch + 1) };
    let recovery = match &restored {
        Some(c) => c.recovery(),
        None => Recovery { enabled: options.checkpoint.is_some(), start_epoch: epochs.start, windows: Default::default() },
    };
    let planned = match &restored {
        Some(c) => crate::file_source::restored_plan(&files, c, peers)?,
        None => None,
    };
    let splits = Arc::new(planned.unwrap_or_else(|| plan_splits(&files, peers, whole_files, options.min_split_bytes, options.max_split_bytes)));
    // Kinesis: workers that read shards, and the shards the dataflow has finished (shared by this process).
    let shard_readers = peers.min(open_shards).max(1);
    let finished_shards = crate::kinesis::source::FinishedShards::default();
    let settings = options.settings.clone();
    let sink = options.sink.clone();
    let source = options.source.clone();
    // Open the sink before any worker starts (an unusable sink fails fast); worker 0, on process 0, takes it.
    let is_first_process = !matches!(&options.timely.communication, timely::CommunicationConfig::Cluster { process, .. } if *process != 0);
    let opened = std::sync::Mutex::new(if is_first_process { Some(SinkWriter::open(&sink, restored.as_ref().map(|c| &c.sink))?) } else { None });
    let release = if options.checkpoint.is_some() && matches!(sink, SinkSpec::File(_)) { Release::Epoch } else { Release::EventTime };
    let committer = std::sync::Mutex::new(if is_first_process { writer_setup.map(|store| CheckpointWriter::new(store, job.clone(), restored.as_ref())) } else { None });
    let restored = restored.map(Arc::new);

    let started = Instant::now();
    let guards = timely::execute(options.timely.clone(), move |worker| -> Result<Option<Totals>, String> {
        let index = worker.index();
        let my_splits: Vec<_> = splits.iter().filter(|s| s.worker == index).cloned().collect();
        tracing::debug!(worker = index, splits = my_splits.len(), "worker starts");
        let totals = Rc::new(RefCell::new(Totals::default()));
        let filtered = Rc::new(Cell::new(0u64));
        let (writer, mut checkpoints) = if index == 0 {
            let w = opened.lock().map_err(|_| "sink lock poisoned".to_string())?.take().ok_or("worker 0 runs outside process 0")?;
            let c = committer.lock().map_err(|_| "checkpoint lock poisoned".to_string())?.take();
            (Some(Rc::new(RefCell::new(w))), c)
        } else {
            (None, None)
        };

        let peers = worker.peers();
        // Event time × checkpoint epoch, product-ordered: an iterative scope (the top level only takes totally
        // refined timestamps); nothing enters or leaves it.
        worker.dataflow::<u64, _, _>(|top| top.iterative::<u64, _, _>(|scope| {
            let (trips, dead_letters, source_parts) = match &source {
                SourceSpec::Files(_) => file_source(scope, my_splits, settings.progress, totals.clone(), index, epochs, restored.as_deref()),
                SourceSpec::Kafka(kafka) => kafka_source(scope, kafka.clone(), settings.progress, totals.clone(), index, peers, epochs, restored.clone())
                    .unwrap_or_else(|e| panic!("worker {index}: {e:#}")),
                SourceSpec::Kinesis(kinesis) => crate::kinesis::source::kinesis_source(
                    scope,
                    kinesis.clone(),
                    settings.progress,
                    totals.clone(),
                    index,
                    shard_readers,
                    finished_shards.clone(),
                    epochs,
                    restored.as_deref(),
                )
                .unwrap_or_else(|e| panic!("worker {index}: {e:#}")),
            };
            let job = build_job(trips, &settings, &recovery, filtered.clone());
            let shape = SinkWriter::shape(&sink);
            let lines = serialize(job.pickup_counts, "pickup_count", shape)
                .concat(serialize(job.trip_durations, "trip_duration", shape))
                .concat(serialize(dead_letters, "dead_letter", shape));
            sink_operator(lines, source_parts.concat(job.checkpoint_parts), release, writer.clone(), checkpoints.take());
        }));
        // step_or_park sleeps until there is work (or 10 ms), so this loop does not spin.
        loop {
            if STOP.load(Ordering::Relaxed) || !worker.step_or_park(Some(Duration::from_millis(10))) {
                break;
            }
        }
        if let Some(w) = &writer {
            let written = w.borrow_mut().finish().map_err(|e| format!("{e:#}"))?;
            let mut t = totals.borrow_mut();
            t.pickup_count_documents = written.pickup_count;
            t.trip_duration_documents = written.trip_duration;
            t.dead_letters = written.dead_letters;
        }
        if STOP.load(Ordering::Relaxed) {
            // Stopped: drop the dataflows (timely would otherwise keep stepping an unbounded source after this
            // closure returns); other processes may be gone, so report this worker only.
            for id in worker.installed_dataflows() {
                worker.drop_dataflow(id);
            }
            let mut mine = *totals.borrow();
            mine.filtered += filtered.get();
            return Ok(Some(mine));
        }

        // Sum every worker's totals on worker 0.
        let mut mine = *totals.borrow();
        mine.filtered += filtered.get();
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
    let stopped = STOP.load(Ordering::Relaxed);
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
    Ok(RunReport { totals, elapsed: started.elapsed() })
}

/// Opens the checkpoint store of `options` and returns the newest usable checkpoint of `job` (none at a first
/// start or with `--checkpoint-reset`), logging and recording the restore time.
///
/// # Errors
/// `--checkpoint-dir`: checkpoint files exist but none is usable (corrupt), or the newest belongs to another
/// job (other inputs or settings); both refuse to start unless `--checkpoint-reset` is given.
pub fn restore(options: &CheckpointOptions, job: &str) -> anyhow::Result<(Option<Checkpoint>, CheckpointStore)> {
    let started = Instant::now();
    let store = CheckpointStore::open(&options.dir)?;
    if options.reset {
        tracing::warn!(dir = %options.dir.display(), "--checkpoint-reset: removing the checkpoints and starting from the beginning");
        store.reset()?;
        return Ok((None, store));
    }
    let loaded = store.load()?;
    let Some(checkpoint) = loaded.checkpoint else {
        if !loaded.skipped.is_empty() {
            let files: Vec<String> = loaded.skipped.iter().map(|(p, e)| format!("{}: {e}", p.display())).collect();
            anyhow::bail!("--checkpoint-dir {}: no usable checkpoint ({}); refusing to start from scratch, use --checkpoint-reset to do so", options.dir.display(), files.join("; "));
        }
        tracing::info!(dir = %options.dir.display(), "no checkpoint yet: starting from the beginning");
        return Ok((None, store));
    };
    if checkpoint.job != job {
        anyhow::bail!(
            "--checkpoint-dir {}: the checkpoint belongs to another job ({}), not this one ({job}); use the same inputs and settings, another directory, or --checkpoint-reset",
            options.dir.display(),
            checkpoint.job
        );
    }
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
