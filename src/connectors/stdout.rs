//! The standard-output sink (`--sink stdout`): every output's rows as JSON lines with an `_index` member naming
//! the output ([`crate::formats::json::Shape::WITH_INDEX`]); the summary goes to standard error instead.

use std::io::{BufWriter, Write};

use taxiflow_dataflows::output::{Outputs, Row};

use crate::connectors::{Release, Sink, SinkConnector, SinkContext};
use crate::formats::json::{self, Shape};

/// `--sink stdout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StdoutSink;

impl SinkConnector for StdoutSink {
    fn describe(&self) -> String {
        "stdout".to_string()
    }

    fn open(&self, ctx: SinkContext<'_>) -> anyhow::Result<Box<dyn Sink>> {
        Ok(Box::new(Stdout { outputs: ctx.outputs.clone(), out: BufWriter::new(std::io::stdout()), line: Vec::with_capacity(256) }))
    }
}

struct Stdout {
    outputs: Outputs,
    out: BufWriter<std::io::Stdout>,
    line: Vec<u8>,
}

impl Sink for Stdout {
    fn release(&self, _checkpointing: bool) -> Release {
        Release::EventTime
    }

    fn write(&mut self, _time: u64, row: &Row) -> anyhow::Result<()> {
        self.line.clear();
        json::write(self.outputs.schema(row.output), row, Shape::WITH_INDEX, &mut self.line);
        self.line.push(b'\n');
        self.out.write_all(&self.line)?;
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        self.out.flush()?;
        Ok(())
    }

    fn prepare_commit(&mut self, _epoch: u64) -> anyhow::Result<Vec<u8>> {
        self.flush()?;
        Ok(Vec::new())
    }

    fn finish(&mut self, _end_of_input: bool) -> anyhow::Result<Option<Vec<u64>>> {
        self.flush()?;
        Ok(None)
    }
}
