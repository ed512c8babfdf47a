//! Part files in Hive partitions: the S3 sink (`--sink s3://BUCKET/PREFIX`) and the file sink of a partitioned
//! output (`--sink file://DIR` for the ticker job), as Flink's filesystem connector writes them for Athena and
//! other SQL engines (ticker docs §3 "Layout", "Partition commit").
//!
//! # Layout
//! `ROOT/<partition>=<value>/…/part-<epoch>-<n>.<csv|parquet|jsonl>`, where ROOT is the prefix (a job with one
//! output) or `PREFIX/<output>` (several), the partitions are the output's partition columns (`ticker`) or
//! `--partition-by` (`ticker,date`: `date=YYYY-MM-DD` of the row's event time), values escaped as Hive does
//! (`taxiflow_dataflows::output::escape_partition_value`), NULL and empty values `__DEFAULT_PARTITION__`; the
//! partition columns are not in the files. Dead letters go to `PREFIX/_dead_letter/part-….jsonl` (a hidden
//! directory for Hive and Athena). File names carry no run id: `<epoch>` is the checkpoint epoch (0 without
//! checkpoints) and `<n>` the roll within it (always 0 with checkpoints), so a restart rewrites the same names.
//!
//! # Visibility (two-phase commit)
//! With checkpoints, an epoch's rows are written only at its checkpoint ([`Release::Epoch`]): each part file is
//! *staged* — on S3 an open multipart upload (invisible until completed, Arroyo's approach), locally a hidden
//! `.part-….inprogress` file (Flink's) — and recorded in the checkpoint; once the checkpoint is durable the files
//! are *published* (the upload completed, the file renamed). A restart publishes the staged files of the restored
//! checkpoint (again: publishing is idempotent) and deletes every part file of a later epoch (visible only if a
//! newer checkpoint was written and then found unusable); uploads of later epochs are left open and never become
//! visible (an S3 lifecycle rule `AbortIncompleteMultipartUpload` removes them). Without checkpoints, files are
//! written with one atomic PUT (or a rename) every `--roll-interval` and at the end, with no exactness after a
//! crash. A start without a checkpoint to restore replaces the output: it first deletes the part files it
//! finds in its directories.
//!
//! # Partition commit (`success-file` policy, process-time trigger)
//! After a file of a partition is published, the partition is pending; at the first checkpoint at least
//! `--partition-commit-delay` (default 1 min) of processing time later, an empty `_SUCCESS` is written in it
//! (again after later files). Pending partitions are part of the checkpoint, so a crash loses none. At the end of
//! a bounded input (and without checkpoints, at any end) every pending partition's `_SUCCESS` is written at once.

mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use taxiflow_dataflows::calendar::format_local_date_time;
use taxiflow_dataflows::output::{escape_partition_value, Outputs, Row, Value, DEFAULT_PARTITION};

use crate::connectors::{Release, Sink, SinkConnector, SinkContext};
use crate::formats::json::{self, Shape};
use crate::formats::FileFormat;
use store::{Staged, Store, Target};

/// Flags of the part-file sinks.
#[derive(Clone, Debug, clap::Args)]
pub struct PartFileArgs {
    /// Format of the part files: csv (Flink's csv format), parquet (Snappy) or jsonl.
    #[arg(long, value_enum, default_value = "csv")]
    pub sink_format: FileFormat,
    /// Hive partition columns, comma-separated, outermost first: fields of the output, and `date` (the day of the
    /// row's event time, YYYY-MM-DD). Default: the output's own (the ticker job: ticker).
    #[arg(long, value_name = "COLUMNS")]
    pub partition_by: Option<String>,
    /// A partition gets its `_SUCCESS` file at the first checkpoint this long (processing time) after a file of it
    /// was committed (Flink's sink.partition-commit.delay).
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    pub partition_commit_delay: Duration,
    /// Without --checkpoint-dir: how often the part files are finished (and at the end).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub roll_interval: Duration,
}

/// Whether a run with `outputs` writes part files to a `file://` sink: some output of the job has partition
/// columns.
pub fn partitioned(outputs: &Outputs) -> bool {
    outputs.results().iter().any(|o| !o.partition_by.is_empty())
}

/// The part-file sink of a directory or an S3 prefix, with its flags.
#[derive(Clone, Debug)]
pub struct PartFileSink {
    target: Target,
    format: FileFormat,
    partition_by: Option<Vec<String>>,
    commit_delay: Duration,
    roll_interval: Duration,
}

impl PartFileSink {
    /// `--sink file://DIR` of a partitioned output.
    ///
    /// # Errors
    /// No directory, or bad flags (named).
    pub fn local(url: &str, args: &PartFileArgs) -> anyhow::Result<PartFileSink> {
        let dir = super::file::sink::FileSink::parse(url)?.dir;
        Self::with(Target::Local(dir), args)
    }

    /// `--sink s3://BUCKET/PREFIX`.
    ///
    /// # Errors
    /// A malformed URL or bad flags (named).
    pub fn s3(url: &str, args: &PartFileArgs, aws: &crate::aws::AwsArgs) -> anyhow::Result<PartFileSink> {
        Self::with(Target::S3(super::s3::S3Location::parse(url, "--sink")?, aws.clone()), args)
    }

    fn with(target: Target, args: &PartFileArgs) -> anyhow::Result<PartFileSink> {
        let partition_by = args.partition_by.as_ref().map(|p| p.split(',').map(|c| c.trim().to_string()).collect::<Vec<_>>());
        if partition_by.as_ref().is_some_and(|p| p.iter().any(String::is_empty)) {
            bail!("--partition-by {:?}: an empty column name", args.partition_by.clone().unwrap_or_default());
        }
        if args.roll_interval.is_zero() {
            bail!("--roll-interval must be greater than zero");
        }
        Ok(PartFileSink { target, format: args.sink_format, partition_by, commit_delay: args.partition_commit_delay, roll_interval: args.roll_interval })
    }

    /// The directory of output `index` of `outputs` under the root, and its partition columns.
    fn layouts(&self, outputs: &Outputs) -> anyhow::Result<Vec<Layout>> {
        let results = outputs.results().len();
        let mut layouts = Vec::new();
        for (index, schema) in outputs.schemas.iter().enumerate() {
            if index == outputs.dead_letter() as usize {
                layouts.push(Layout { dir: "_dead_letter".into(), columns: Vec::new(), format: FileFormat::Jsonl, skip: Vec::new() });
                continue;
            }
            let names: Vec<String> = self.partition_by.clone().unwrap_or_else(|| schema.partition_by.iter().map(|s| s.to_string()).collect());
            let mut columns = Vec::new();
            for name in &names {
                if name == "date" && schema.field_index("date").is_none() {
                    let at = schema.event_time.and_then(|f| schema.field_index(f)).with_context(|| format!("--partition-by date: output {} has no event time", schema.name))?;
                    columns.push(Column::Date(at));
                } else {
                    let at = schema.field_index(name).with_context(|| {
                        format!("--partition-by {name}: output {} has no such field (fields: {}, or date)", schema.name, schema.fields.iter().map(|f| f.name).collect::<Vec<_>>().join(", "))
                    })?;
                    columns.push(Column::Field(name.clone(), at));
                }
            }
            let skip = columns.iter().filter_map(|c| if let Column::Field(_, at) = c { Some(*at) } else { None }).collect();
            layouts.push(Layout { dir: if results == 1 { String::new() } else { schema.name.to_string() }, columns, format: self.format, skip });
        }
        Ok(layouts)
    }
}

/// Where one output's files go.
#[derive(Clone, Debug)]
struct Layout {
    /// Directory under the root ("" for the root).
    dir: String,
    /// Partition columns, outermost first.
    columns: Vec<Column>,
    /// File format.
    format: FileFormat,
    /// Fields left out of the files (the partition columns).
    skip: Vec<usize>,
}

/// A partition column.
#[derive(Clone, Debug)]
enum Column {
    /// A field of the output, by name and index.
    Field(String, usize),
    /// `date=YYYY-MM-DD` of the event time field at this index.
    Date(usize),
}

impl Layout {
    /// The directory of `row` under the root: `dir/name=value/…` (without trailing `/`).
    fn partition(&self, row: &Row) -> String {
        let mut path = self.dir.clone();
        for column in &self.columns {
            let segment = match column {
                Column::Field(name, at) => {
                    let value = match row.value(*at) {
                        Value::Null | Value::Absent => DEFAULT_PARTITION.to_string(),
                        Value::Str(s) => escape_partition_value(s),
                        Value::Int(i) => i.to_string(),
                        Value::Float(f) => escape_partition_value(&crate::formats::java_double::to_string(*f)),
                    };
                    format!("{name}={value}")
                }
                Column::Date(at) => {
                    let ms = if let Value::Int(ms) = row.value(*at) { *ms } else { 0 };
                    let mut day = String::new();
                    format_local_date_time(ms, 'T', &mut day);
                    format!("date={}", &day[..10])
                }
            };
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(&segment);
        }
        path
    }
}

/// The name of a part file: `part-<epoch, 10 digits>-<roll, 4 digits>.<extension>`.
fn file_name(epoch: u64, roll: u32, format: FileFormat) -> String {
    format!("part-{epoch:010}-{roll:04}.{}", format.extension())
}

/// The epoch of a part file name made by [`file_name`] (also of its hidden staged name).
fn epoch_of(name: &str) -> Option<u64> {
    let rest = name.strip_prefix(".part-").or_else(|| name.strip_prefix("part-"))?;
    rest.get(..10)?.parse().ok().filter(|_| rest.as_bytes().get(10) == Some(&b'-'))
}

/// What a checkpoint keeps of the sink: the files staged for its epoch and the pending partitions.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    /// Files staged for the checkpoint's epoch, published after it.
    staged: Vec<Staged>,
    /// The partition directories (those that get markers) of the staged files: pending once they are published.
    staged_partitions: BTreeSet<String>,
    /// Partition directory → processing time (ms since the Unix epoch) of the first file published there since
    /// its last `_SUCCESS`.
    pending: BTreeMap<String, u64>,
}

impl SinkConnector for PartFileSink {
    fn describe(&self) -> String {
        let partitions = self.partition_by.as_ref().map_or_else(|| "default".to_string(), |p| p.join(","));
        format!("{} format {:?} partitions {partitions}", self.target.url(), self.format)
    }

    fn open(&self, ctx: SinkContext<'_>) -> anyhow::Result<Box<dyn Sink>> {
        let layouts = self.layouts(ctx.outputs)?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the I/O runtime")?;
        let store = runtime.block_on(Store::open(&self.target))?;
        let mut sink = PartFiles {
            runtime,
            store,
            outputs: ctx.outputs.clone(),
            layouts,
            buffer: BTreeMap::new(),
            state: State::default(),
            checkpointing: ctx.checkpointing,
            commit_delay_ms: self.commit_delay.as_millis() as u64,
            roll_interval: self.roll_interval,
            next_roll: Instant::now() + self.roll_interval,
            roll: 0,
        };
        match ctx.restored {
            Some(state) if !state.is_empty() => {
                sink.state = bincode::deserialize(state).context("--checkpoint-dir: the checkpoint's part-file sink state does not decode")?;
                let later = sink.runtime.block_on(sink.store.remove_part_files(|epoch| epoch > ctx.restored_epoch))?;
                tracing::info!(epoch = ctx.restored_epoch, staged = sink.state.staged.len(), removed_later = later, "part files restored from the checkpoint");
                sink.publish_staged()?;
            }
            _ => {
                let removed = sink.runtime.block_on(sink.store.remove_part_files(|_| true))?;
                if removed > 0 {
                    tracing::warn!(removed, sink = %self.target.url(), "no checkpoint to resume: part files of an earlier run removed");
                }
            }
        }
        Ok(Box::new(sink))
    }
}

/// One part file to write.
struct PartFile {
    /// Its directory under the root.
    dir: String,
    /// Its name.
    name: String,
    /// Its content.
    bytes: Vec<u8>,
    /// The directory is a partition (it gets markers).
    partition: bool,
}

/// The open part-file sink.
struct PartFiles {
    runtime: tokio::runtime::Runtime,
    store: Store,
    outputs: Outputs,
    layouts: Vec<Layout>,
    /// Rows not in a file yet, by (output, partition directory).
    buffer: BTreeMap<(u16, String), Vec<Row>>,
    state: State,
    checkpointing: bool,
    commit_delay_ms: u64,
    roll_interval: Duration,
    next_roll: Instant,
    /// Without checkpoints: the number of rolls so far.
    roll: u32,
}

impl PartFiles {
    /// The buffered rows as files, the buffer emptied.
    fn encode(&mut self, epoch: u64, roll: u32) -> anyhow::Result<Vec<PartFile>> {
        let mut files = Vec::new();
        for ((output, dir), mut rows) in std::mem::take(&mut self.buffer) {
            rows.sort_unstable_by(Row::release_cmp);
            let layout = &self.layouts[output as usize];
            let schema = self.outputs.schema(output);
            let bytes = match layout.format {
                FileFormat::Csv => {
                    let mut text = String::new();
                    for row in &rows {
                        crate::formats::csv::write_skipping(schema, row, &layout.skip, &mut text);
                    }
                    text.into_bytes()
                }
                FileFormat::Jsonl => {
                    let mut out = Vec::new();
                    for row in &rows {
                        json::write_skipping(schema, row, Shape::COLUMNS, &layout.skip, &mut out);
                        out.push(b'\n');
                    }
                    out
                }
                FileFormat::Parquet => crate::formats::parquet::encode_skipping(schema, &rows.iter().collect::<Vec<_>>(), &layout.skip)?,
            };
            files.push(PartFile { dir: dir.clone(), name: file_name(epoch, roll, layout.format), bytes, partition: !layout.columns.is_empty() });
        }
        Ok(files)
    }

    /// The partition directories of `files`: directories of unpartitioned outputs get no markers.
    fn partitions(files: &[PartFile]) -> impl Iterator<Item = String> + '_ {
        files.iter().filter(|f| f.partition).map(|f| f.dir.clone())
    }

    /// Writes `_SUCCESS` in every pending partition whose delay has passed (`all`: in every pending one).
    fn write_markers(&mut self, all: bool) -> anyhow::Result<()> {
        let now = crate::runtime::clock::now_ms();
        let due: Vec<String> = self.state.pending.iter().filter(|(_, since)| all || now >= **since + self.commit_delay_ms).map(|(d, _)| d.clone()).collect();
        if due.is_empty() {
            return Ok(());
        }
        let store = &self.store;
        self.runtime.block_on(futures::future::try_join_all(due.iter().map(|dir| store.put(format!("{dir}/_SUCCESS"), Vec::new()))))?;
        for dir in &due {
            self.state.pending.remove(dir);
            tracing::info!(partition = %dir, "partition committed: _SUCCESS written");
        }
        metrics::counter!("taxiflow_partitions_committed_total").increment(due.len() as u64);
        Ok(())
    }

    /// Publishes the staged files of the state, then writes the markers that are due.
    fn publish_staged(&mut self) -> anyhow::Result<()> {
        let staged = std::mem::take(&mut self.state.staged);
        let store = &self.store;
        self.runtime.block_on(futures::future::try_join_all(staged.iter().map(|s| store.publish(s))))?;
        if !staged.is_empty() {
            let partitions: BTreeSet<&str> = staged.iter().map(|s| s.path().rsplit_once('/').map_or("", |(dir, _)| dir)).collect();
            tracing::info!(files = staged.len(), ?partitions, "part files published");
            metrics::counter!("taxiflow_part_files_total").increment(staged.len() as u64);
        }
        // The delay counts from the publication (after its log line), as Flink's committer counts from the
        // checkpoint that made the files visible.
        let now = crate::runtime::clock::now_ms();
        for dir in std::mem::take(&mut self.state.staged_partitions) {
            self.state.pending.entry(dir).or_insert(now);
        }
        self.write_markers(false)
    }

    /// Without checkpoints: writes the buffered rows as visible files (one atomic put each).
    fn roll(&mut self) -> anyhow::Result<()> {
        let mut files = self.encode(0, self.roll)?;
        self.roll += 1;
        self.next_roll = Instant::now() + self.roll_interval;
        if files.is_empty() {
            return Ok(());
        }
        let store = &self.store;
        // The bytes move into the requests; the files keep their directories for the markers.
        self.runtime.block_on(futures::future::try_join_all(files.iter_mut().map(|f| store.put(format!("{}/{}", f.dir, f.name), std::mem::take(&mut f.bytes)))))?;
        metrics::counter!("taxiflow_part_files_total").increment(files.len() as u64);
        let now = crate::runtime::clock::now_ms();
        for dir in Self::partitions(&files) {
            self.state.pending.entry(dir).or_insert(now);
        }
        Ok(())
    }
}

impl Sink for PartFiles {
    fn release(&self, checkpointing: bool) -> Release {
        Release::of_files(checkpointing)
    }

    fn write(&mut self, _time: u64, row: &Row) -> anyhow::Result<()> {
        let dir = self.layouts[row.output as usize].partition(row);
        self.buffer.entry((row.output, dir)).or_default().push(row.clone());
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        if !self.checkpointing && Instant::now() >= self.next_roll {
            self.roll()?;
            self.write_markers(false)?;
        }
        Ok(())
    }

    fn prepare_commit(&mut self, epoch: u64) -> anyhow::Result<Vec<u8>> {
        let mut files = self.encode(epoch, 0)?;
        let store = &self.store;
        let staged = self.runtime.block_on(futures::future::try_join_all(files.iter_mut().map(|PartFile { dir, name, bytes, .. }| store.stage(dir, name, std::mem::take(bytes)))))?;
        self.state.staged_partitions = Self::partitions(&files).collect();
        self.state.staged = staged;
        Ok(bincode::serialize(&self.state).expect("part-file state serializes"))
    }

    fn commit(&mut self, _epoch: u64) -> anyhow::Result<()> {
        self.publish_staged()
    }

    fn finish(&mut self, end_of_input: bool) -> anyhow::Result<Option<Vec<u64>>> {
        if !self.checkpointing {
            self.roll()?;
        }
        // With checkpoints, pending partitions after a stop stay in the checkpoint for the next run.
        self.write_markers(end_of_input || !self.checkpointing)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taxiflow_dataflows::jobs::ticker::TickerJob;
    use taxiflow_dataflows::Job;

    fn sink(partition_by: Option<&str>) -> PartFileSink {
        let args = PartFileArgs { sink_format: FileFormat::Csv, partition_by: partition_by.map(String::from), partition_commit_delay: Duration::from_secs(60), roll_interval: Duration::from_secs(60) };
        PartFileSink::local("file:///tmp/x", &args).unwrap()
    }

    #[test]
    fn hive_partitions_of_ticker_rows() {
        let outputs = Outputs::of_job(TickerJob::default().outputs());
        let row = |ticker: Value| Row { output: 0, id: String::new(), order: 0, window: None, values: vec![ticker, Value::Float(1.0), Value::Int(1_796_169_600_000)] };
        let layouts = sink(None).layouts(&outputs).unwrap();
        assert_eq!(layouts[0].partition(&row(Value::Str("A,B/C".into()))), "ticker=A,B%2FC");
        assert_eq!(layouts[0].partition(&row(Value::Null)), "ticker=__DEFAULT_PARTITION__");
        assert_eq!(layouts[0].partition(&row(Value::Str(String::new()))), "ticker=__DEFAULT_PARTITION__");
        assert_eq!(layouts[1].dir, "_dead_letter");
        let by_day = sink(Some("ticker,date")).layouts(&outputs).unwrap();
        assert_eq!(by_day[0].partition(&row(Value::Str("AAPL".into()))), "ticker=AAPL/date=2026-12-02");
        let day_only = sink(Some("date")).layouts(&outputs).unwrap();
        assert_eq!(day_only[0].partition(&row(Value::Str("AAPL".into()))), "date=2026-12-02");
        assert!(day_only[0].skip.is_empty(), "the ticker is then a column of the files");
        let e = sink(Some("ticker,venue")).layouts(&outputs).unwrap_err().to_string();
        assert!(e.starts_with("--partition-by venue") && e.contains("ticker, price, event_time"), "{e}");
    }

    #[test]
    fn file_names_carry_the_epoch() {
        assert_eq!(file_name(42, 0, FileFormat::Csv), "part-0000000042-0000.csv");
        assert_eq!(epoch_of("part-0000000042-0000.csv"), Some(42));
        assert_eq!(epoch_of(".part-0000000042-0000.parquet.inprogress"), Some(42));
        assert_eq!(epoch_of("part-abc"), None);
        assert_eq!(epoch_of("_SUCCESS"), None);
    }
}
