//! The JSON-lines file sink (`--sink file://DIR`, the default `file://out`): one file per output,
//! `DIR/<output>.jsonl` (the taxi job: `pickup_count.jsonl`, `trip_duration.jsonl`, and `dead_letter.jsonl`), one
//! JSON document per line with its `_id` ([`crate::formats::json::Shape::PLAIN`]).
//!
//! The files are truncated at start. With checkpoints, an epoch's lines are written only when the epoch is
//! committed (a file cannot take back a line: [`Release::Epoch`]), the files are synced (`fsync`) before the
//! checkpoint is written, and the checkpoint keeps their lengths; a restart cuts them back to those lengths, so
//! they hold every document once. (Outputs with partition columns, such as the ticker job's, are written as part
//! files instead: [`crate::connectors::part_files`].)

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use taxiflow_dataflows::output::{OutputSchema, Row};

use crate::connectors::{Release, Sink, SinkConnector, SinkContext};
use crate::formats::json::{self, Shape};

/// `--sink file://DIR`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSink {
    /// The directory.
    pub dir: PathBuf,
}

impl FileSink {
    /// Parses `file://DIR`.
    ///
    /// # Errors
    /// `--sink`: not `file://`, or no directory.
    pub fn parse(url: &str) -> anyhow::Result<FileSink> {
        match url.strip_prefix("file://") {
            Some(dir) if !dir.is_empty() => Ok(FileSink { dir: PathBuf::from(dir) }),
            _ => bail!("--sink {url:?}: file:// needs a directory, e.g. file://out"),
        }
    }
}

/// What a checkpoint keeps of the file sink: its directory and the length of each file.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Lengths {
    dir: String,
    files: BTreeMap<String, u64>,
}

impl SinkConnector for FileSink {
    fn describe(&self) -> String {
        format!("file://{}", self.dir.display())
    }

    fn open(&self, ctx: SinkContext<'_>) -> anyhow::Result<Box<dyn Sink>> {
        let dir = &self.dir;
        std::fs::create_dir_all(dir).with_context(|| format!("--sink: cannot create directory {}", dir.display()))?;
        let name = dir.display().to_string();
        let restored: Option<Lengths> = match ctx.restored.filter(|s| !s.is_empty()) {
            Some(state) => Some(bincode::deserialize(state).context("--checkpoint-dir: the checkpoint's file sink state does not decode")?),
            None => None,
        };
        if let Some(r) = restored.as_ref().filter(|r| r.dir != name) {
            bail!("--sink file://{name}: the checkpoint was taken with --sink file://{}; use that sink or --checkpoint-reset", r.dir);
        }
        let mut files = Vec::new();
        for schema in &ctx.outputs.schemas {
            let path = dir.join(format!("{}.jsonl", schema.name));
            let file = match &restored {
                None => File::create(&path).with_context(|| format!("--sink: cannot create {}", path.display()))?,
                Some(lengths) => {
                    let keep = lengths.files.get(schema.name).copied().unwrap_or(0);
                    let file = std::fs::OpenOptions::new().create(true).append(true).open(&path).with_context(|| format!("--sink: cannot open {}", path.display()))?;
                    let len = file.metadata()?.len();
                    if len < keep {
                        bail!("--sink: {} has {len} bytes but the checkpoint acknowledged {keep}: it was changed outside the job", path.display());
                    }
                    file.set_len(keep).with_context(|| format!("--sink: cannot truncate {}", path.display()))?;
                    tracing::info!(file = %path.display(), bytes = keep, dropped = len - keep, "file sink cut back to the checkpoint");
                    file
                }
            };
            files.push((schema.clone(), BufWriter::with_capacity(1 << 16, file)));
        }
        Ok(Box::new(JsonFiles { dir: name, files, line: Vec::with_capacity(256) }))
    }
}

/// The open file sink.
struct JsonFiles {
    dir: String,
    /// One file per output, in output order.
    files: Vec<(OutputSchema, BufWriter<File>)>,
    line: Vec<u8>,
}

impl Sink for JsonFiles {
    fn release(&self, checkpointing: bool) -> Release {
        Release::of_files(checkpointing)
    }

    fn write(&mut self, _time: u64, row: &Row) -> anyhow::Result<()> {
        let (schema, w) = &mut self.files[row.output as usize];
        self.line.clear();
        json::write(schema, row, Shape::PLAIN, &mut self.line);
        self.line.push(b'\n');
        w.write_all(&self.line)?;
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        for (_, w) in &mut self.files {
            w.flush()?;
        }
        Ok(())
    }

    fn prepare_commit(&mut self, _epoch: u64) -> anyhow::Result<Vec<u8>> {
        self.flush()?;
        let mut lengths = Lengths { dir: self.dir.clone(), files: BTreeMap::new() };
        for (schema, w) in &self.files {
            w.get_ref().sync_data()?;
            lengths.files.insert(schema.name.to_string(), w.get_ref().metadata()?.len());
        }
        Ok(bincode::serialize(&lengths).expect("lengths serialize"))
    }

    fn finish(&mut self, _end_of_input: bool) -> anyhow::Result<Option<Vec<u64>>> {
        self.flush()?;
        Ok(None)
    }
}
