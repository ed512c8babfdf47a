//! Files: the file source (`--input PATH`, repeatable; plain or gzip, cut into byte ranges) and the JSON-lines
//! file sink (`--sink file://DIR`; partitioned outputs use [`super::part_files`] instead).
//!
//! | module | what |
//! |---|---|
//! | this module | input files: gzip detection by magic bytes, the first line for the job's format detection |
//! | [`split`] | byte ranges of inputs dealt to workers, and the reader of one range |
//! | [`source`] | the timely source over this worker's ranges |
//! | [`sink`] | `DIR/<output>.jsonl`, truncated at start or cut back to a checkpoint |
//!
//! Compression: a file that starts with the gzip magic bytes `1f 8b` is decompressed, whatever its name.

pub mod sink;
pub mod source;
pub mod split;

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use taxiflow_dataflows::epoch::Time;
use taxiflow_dataflows::{Job, RecordFormat};
use timely::dataflow::Scope;

pub use split::{plan_splits, Split};

use super::Source;
use crate::runtime::checkpoint::Checkpoint;
use crate::runtime::source_shell::{SourceContext, SourceStreams};

/// Flags of the file source (for tests; hidden from `--help`).
#[derive(Clone, Debug, clap::Args)]
pub struct FileSourceArgs {
    /// Plain files of at least this many bytes are cut into byte ranges (tests set it low).
    #[arg(long, default_value_t = split::MIN_SPLIT_BYTES, hide = true)]
    pub min_split_bytes: u64,
    /// Byte ranges are at most this long, dealt to the workers in turn (tests set it low).
    #[arg(long, default_value_t = split::MAX_SPLIT_BYTES, hide = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_split_bytes: u64,
}

impl Default for FileSourceArgs {
    fn default() -> Self {
        FileSourceArgs { min_split_bytes: split::MIN_SPLIT_BYTES, max_split_bytes: split::MAX_SPLIT_BYTES }
    }
}

/// Whether the file starts with the gzip magic bytes.
///
/// # Errors
/// The file cannot be opened or read.
pub fn is_gzip(path: &Path) -> anyhow::Result<bool> {
    let mut magic = [0u8; 2];
    let mut file = File::open(path).with_context(|| format!("--input {}: cannot open", path.display()))?;
    let n = file.read(&mut magic).with_context(|| format!("--input {}: cannot read", path.display()))?;
    Ok(n == 2 && magic == [0x1f, 0x8b])
}

/// Opens a file for reading from its start, decompressing gzip (detected by magic bytes), without a buffer above
/// the decompressor (readers of lines buffer: [`split::SplitReader`], [`open_decoded`]).
///
/// # Errors
/// The file cannot be opened.
pub fn open_bytes(path: &Path) -> anyhow::Result<Box<dyn Read + Send>> {
    let gzip = is_gzip(path)?;
    let file = File::open(path).with_context(|| format!("--input {}: cannot open", path.display()))?;
    Ok(if gzip { Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 16, file))) } else { Box::new(file) })
}

/// [`open_bytes`] with a 1 MiB buffer.
///
/// # Errors
/// The file cannot be opened.
pub fn open_decoded(path: &Path) -> anyhow::Result<Box<dyn BufRead + Send>> {
    Ok(Box::new(BufReader::with_capacity(1 << 20, open_bytes(path)?)))
}

/// The first non-empty line of a (possibly gzip) file, without its terminator; `None` for a file without one.
///
/// # Errors
/// The file cannot be read.
pub fn first_line(path: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    let mut reader = open_decoded(path)?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).with_context(|| format!("--input {}: cannot read", path.display()))? == 0 {
            return Ok(None);
        }
        if !trim_line(&line).is_empty() {
            let len = trim_line(&line).len();
            line.truncate(len);
            return Ok(Some(line));
        }
    }
}

/// Strips a trailing `\n` or `\r\n`.
#[inline]
pub fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// An input file with its format (of the job's record formats).
#[derive(Clone, Debug)]
pub struct InputFile<F> {
    /// Path as given on the command line.
    pub path: PathBuf,
    /// Detected or chosen format.
    pub format: F,
    /// Whether the file is gzip-compressed (such files are read whole by one worker).
    pub gzip: bool,
    /// Size in bytes on disk.
    pub size: u64,
}

impl<F: RecordFormat> InputFile<F> {
    /// Inspects `path` for `job`: size, compression, and the format the job detects from the first line.
    ///
    /// # Errors
    /// The file cannot be read, or the job cannot tell its format (the message names the file).
    pub fn inspect<J: Job<Format = F>>(path: &Path, job: &J) -> anyhow::Result<InputFile<F>> {
        let size = std::fs::metadata(path).with_context(|| format!("--input {}: cannot stat", path.display()))?.len();
        let first = first_line(path)?;
        if first.is_none() {
            tracing::warn!(input = %path.display(), "input file has no records");
        }
        let format = job.file_format(first.as_deref()).map_err(|e| anyhow::anyhow!("--input {}: {e}", path.display()))?;
        Ok(InputFile { path: path.to_path_buf(), format, gzip: is_gzip(path)?, size })
    }
}

/// The file source: input files read to their end, each a partition, plain files cut into byte ranges dealt to
/// the workers (see [`split`] and [`source`]).
pub struct FileSource<F> {
    paths: Vec<PathBuf>,
    args: FileSourceArgs,
    /// The plan, made by [`Source::prepare`].
    splits: Arc<Vec<Split<F>>>,
    /// Final states of finished ranges of chained files, shared by this process's workers.
    chain: source::RangeChain,
}

impl<F> FileSource<F> {
    /// The source of `paths` (read in this order).
    pub fn new(paths: Vec<PathBuf>, args: &FileSourceArgs) -> Self {
        FileSource { paths, args: args.clone(), splits: Arc::default(), chain: source::RangeChain::default() }
    }
}

impl<J: Job> Source<J> for FileSource<J::Format> {
    fn describe(&self) -> String {
        format!("files:{}", self.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(","))
    }

    fn prepare(&mut self, job: &J, topology: crate::runtime::workers::Topology, restored: Option<&Checkpoint>) -> anyhow::Result<()> {
        let mut files = Vec::new();
        for path in &self.paths {
            let file = InputFile::inspect(path, job)?;
            tracing::info!(input = %path.display(), format = file.format.name(), gzip = file.gzip, bytes = file.size, "input");
            files.push(Arc::new(file));
        }
        // A watermark derived from event times depends on every record before it: such files' ranges are chained.
        let cutting = if job.watermarks().from_event_times() { split::Cutting::Chained } else { split::Cutting::Free };
        let planned = match restored {
            Some(c) => source::restored_plan(&files, c, topology, cutting == split::Cutting::Chained)?,
            None => None,
        };
        self.splits = Arc::new(planned.unwrap_or_else(|| plan_splits(&files, topology, cutting, self.args.min_split_bytes, self.args.max_split_bytes)));
        Ok(())
    }

    fn build<'s>(&self, scope: Scope<'s, Time>, ctx: SourceContext<'_, J>) -> anyhow::Result<SourceStreams<'s, J::Record>> {
        let mine: Vec<Split<J::Format>> = self.splits.iter().filter(|s| s.worker == ctx.worker).cloned().collect();
        tracing::debug!(worker = ctx.worker, splits = mine.len(), "file source of the worker");
        Ok(source::file_source(scope, mine, &ctx, self.chain.clone()))
    }
}
