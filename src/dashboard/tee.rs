//! The live run's feed of the dashboard (`taxiflow run … --dashboard-addr`): a sink connector wrapped around the
//! run's own sink that hands every row the sink accepted to the [`Board`] as the JSON document a file sink writes,
//! and announces the changed windows once per release (at the sink's `flush`, `commit` and `finish`). The wrapped
//! sink is untouched: same release, same checkpoint identity ([`SinkConnector::describe`]), same state.

use serde_json::Value;
use taxiflow_dataflows::output::{Outputs, Row, DEAD_LETTER};

use super::board::{Board, JobView};
use crate::connectors::{Release, Sink, SinkConnector, SinkContext};
use crate::formats::json::{self, Shape};

/// `sink`, whose rows also go to `board` under `view`.
pub struct DashboardSink {
    /// The run's sink.
    pub inner: Box<dyn SinkConnector>,
    /// The dashboard's memory.
    pub board: Board,
    /// The job's view.
    pub view: &'static JobView,
}

impl SinkConnector for DashboardSink {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn open(&self, ctx: SinkContext<'_>) -> anyhow::Result<Box<dyn Sink>> {
        let outputs = ctx.outputs.clone();
        let inner = self.inner.open(ctx)?;
        let shown: Vec<bool> = outputs.schemas.iter().map(|s| s.name == DEAD_LETTER || self.view.outputs.contains(&s.name)).collect();
        self.board.add_job(self.view);
        Ok(Box::new(TeeSink { inner, board: self.board.clone(), view: self.view, outputs, shown, pending: Vec::new(), line: Vec::new() }))
    }

    fn committed_epoch(&self, restored: &[u8], epoch: u64) -> anyhow::Result<u64> {
        self.inner.committed_epoch(restored, epoch)
    }
}

struct TeeSink {
    inner: Box<dyn Sink>,
    board: Board,
    view: &'static JobView,
    outputs: Outputs,
    /// Per output: whether the dashboard takes its rows.
    shown: Vec<bool>,
    pending: Vec<(String, Value)>,
    line: Vec<u8>,
}

impl TeeSink {
    fn keep(&mut self, row: &Row) {
        if !self.shown.get(row.output as usize).copied().unwrap_or(false) {
            return;
        }
        let schema = self.outputs.schema(row.output);
        if schema.name == DEAD_LETTER {
            // The board only counts dead letters: no document to encode.
            self.pending.push((DEAD_LETTER.to_string(), Value::Null));
            return;
        }
        self.line.clear();
        json::write(schema, row, Shape::PLAIN, &mut self.line);
        match serde_json::from_slice(&self.line) {
            Ok(doc) => self.pending.push((schema.name.to_string(), doc)),
            Err(e) => tracing::warn!(output = schema.name, error = %e, "dashboard: a row did not encode as JSON; not shown"),
        }
    }

    fn publish(&mut self) {
        if !self.pending.is_empty() {
            self.board.ingest(self.view, std::mem::take(&mut self.pending));
        }
    }
}

impl Sink for TeeSink {
    fn release(&self, checkpointing: bool) -> Release {
        self.inner.release(checkpointing)
    }

    fn write(&mut self, time: u64, row: &Row) -> anyhow::Result<()> {
        self.inner.write(time, row)?;
        self.keep(row);
        Ok(())
    }

    fn write_watermark(&mut self, w: u64, row: &Row) -> anyhow::Result<()> {
        self.inner.write_watermark(w, row)?;
        self.keep(row);
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        self.inner.flush()?;
        self.publish();
        Ok(())
    }

    fn prepare_commit(&mut self, epoch: u64) -> anyhow::Result<Vec<u8>> {
        self.inner.prepare_commit(epoch)
    }

    fn commit(&mut self, epoch: u64) -> anyhow::Result<()> {
        self.inner.commit(epoch)?;
        self.publish();
        Ok(())
    }

    fn acknowledges(&self) -> bool {
        self.inner.acknowledges()
    }

    fn finish(&mut self, end_of_input: bool) -> anyhow::Result<Option<Vec<u64>>> {
        let result = self.inner.finish(end_of_input);
        self.publish();
        result
    }
}
