//! The commit side of checkpoints, run by the sink operator on worker 0 of process 0: collects the parts of
//! every worker by epoch and writes a checkpoint when an epoch is complete (see [`crate::runtime::sink_operator`]).

use std::collections::BTreeMap;
use std::time::Instant;

use taxiflow_dataflows::CheckpointPart;

use super::store::CheckpointStore;
use super::{Checkpoint, SourcePosition};

/// Parts received and not committed yet, and the newest committed state.
pub struct CheckpointWriter {
    store: CheckpointStore,
    job: String,
    /// Positions as of the last commit (starting with the restored checkpoint's: partitions that no worker
    /// touches again keep their restored position).
    sources: BTreeMap<String, SourcePosition>,
    /// Window states as of the last commit, per (operator, worker of this run). Only this run's instances:
    /// every instance sends a part for every epoch it completes, so the first commit has all of them.
    windows: BTreeMap<(String, usize), Vec<u8>>,
    /// Parts by epoch, not committed yet.
    pending: BTreeMap<u64, Vec<CheckpointPart>>,
    /// Sources that finished or stopped after a graceful stop: worker → its last epoch.
    stopped: BTreeMap<usize, u64>,
    committed: u64,
    newest: u64,
}

impl CheckpointWriter {
    /// A writer that continues `restored` (or starts empty at epoch 0) in `store`, for the job `job` (see
    /// [`super::job_identity`]).
    pub fn new(store: CheckpointStore, job: String, restored: Option<&Checkpoint>) -> Self {
        let committed = restored.map_or(0, |c| c.epoch);
        CheckpointWriter {
            store,
            job,
            sources: restored.map(|c| c.sources.clone()).unwrap_or_default(),
            windows: BTreeMap::new(),
            pending: BTreeMap::new(),
            stopped: BTreeMap::new(),
            committed,
            newest: committed,
        }
    }

    /// The last committed epoch.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// The newest epoch a part has been received for (the epoch of the final checkpoint when the job ends).
    pub fn newest_epoch(&self) -> u64 {
        self.newest
    }

    /// Keeps a part sent at `epoch`; a source's [`CheckpointPart::Stopped`] report is kept apart (see
    /// [`Self::stopped`]).
    pub fn accept(&mut self, epoch: u64, part: CheckpointPart) {
        self.newest = self.newest.max(epoch);
        if let CheckpointPart::Stopped { worker, epoch } = part {
            self.stopped.insert(worker, epoch);
            return;
        }
        self.pending.entry(epoch).or_default().push(part);
    }

    /// The last epoch of every worker's source that has finished or stopped, by worker.
    pub fn stopped(&self) -> &BTreeMap<usize, u64> {
        &self.stopped
    }

    /// Writes the checkpoint of `epoch` (every part of epochs `≤ epoch`, the newest of each key) with the
    /// sink's acknowledged `sink` position. Logs and records `taxiflow_checkpoint_*` metrics.
    ///
    /// # Errors
    /// A source part does not decode, or the file cannot be written.
    pub fn commit(&mut self, epoch: u64, sink: Vec<u8>) -> anyhow::Result<()> {
        let started = Instant::now();
        let later = self.pending.split_off(&(epoch + 1));
        for (_, parts) in std::mem::replace(&mut self.pending, later) {
            for part in parts {
                match part {
                    CheckpointPart::Source { key, state } => {
                        let position: SourcePosition = bincode::deserialize(&state).map_err(|e| anyhow::anyhow!("source part {key}: {e}"))?;
                        self.sources.insert(key, position);
                    }
                    CheckpointPart::Window { operator, worker, state } => {
                        self.windows.insert((operator, worker), state);
                    }
                    CheckpointPart::Stopped { .. } => {}
                }
            }
        }
        let checkpoint = Checkpoint {
            epoch,
            job: self.job.clone(),
            sources: self.sources.clone(),
            windows: self.windows.iter().map(|((operator, _), state)| (operator.clone(), state.clone())).collect(),
            sink,
            created_ms: crate::runtime::clock::now_ms(),
        };
        let size = self.store.write(&checkpoint)?;
        let state_bytes: usize = checkpoint.windows.iter().map(|(_, s)| s.len()).sum::<usize>() + checkpoint.sources.len() * std::mem::size_of::<SourcePosition>();
        self.committed = epoch;
        let seconds = started.elapsed().as_secs_f64();
        metrics::histogram!("taxiflow_checkpoint_duration_seconds").record(seconds);
        metrics::gauge!("taxiflow_checkpoint_size_bytes").set(size as f64);
        metrics::gauge!("taxiflow_checkpoint_state_bytes").set(state_bytes as f64);
        metrics::gauge!("taxiflow_checkpoint_last_epoch").set(epoch as f64);
        metrics::counter!("taxiflow_checkpoints_total").increment(1);
        tracing::info!(epoch, bytes = size, state_bytes, partitions = checkpoint.sources.len(), window_parts = checkpoint.windows.len(), ms = seconds * 1000.0, "checkpoint committed");
        Ok(())
    }
}
