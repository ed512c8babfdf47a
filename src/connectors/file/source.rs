//! The file source: a timely operator that reads this worker's splits, decodes records with the job's format of
//! each file, tracks each partition's watermark, and holds a capability at the smallest time its partitions can
//! still send.
//!
//! Outputs: records, dead letters and checkpoint parts (see [`crate::runtime::source_shell`]). A batch of records
//! is sent at the source's capability, which is ≤ every non-late record's due time; after each batch the
//! capability is downgraded to the minimum over this worker's unfinished files of the file's frontier
//! (watermark + 1), and dropped when all are read. So the frontier downstream is the minimum watermark over all
//! partitions of all workers, plus one (taxi docs §3 "min over partitions of the last watermark event").
//!
//! A file is one partition even when it is cut into byte ranges read by several workers. A worker reads its
//! ranges of a file in file order. When watermarks come from watermark records, before a range it scans the gap
//! since its previous range for watermark records (other workers read those lines), so the range starts at the
//! file's watermark at that point. Ranges not yet opened cannot lower the file's frontier: a file's watermark
//! only grows in file order.
//!
//! When the watermark is derived from event times (bounded out-of-orderness, the ticker job's delay), it depends
//! on every record before it, so a range must start from the final watermark state of the range before it. The
//! ranges of such a file are then *chained* ([`RangeChain`]): all are read by the workers of one process, each
//! finished range publishes its final state, and a range whose predecessor has not finished yet is read ahead
//! and decoded into memory (the expensive part, done in parallel), and only judged — watermark, lateness, sent on
//! — once that state is known. Such ranges are smaller (see [`super::split::CHAINED_SPLIT_BYTES`]), which bounds
//! the memory of a read-ahead.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use taxiflow_dataflows::epoch::Time;
use taxiflow_dataflows::{CheckpointPart, Decoded, EventTime, Job, RecordFormat, WatermarkStrategy};
use timely::dataflow::Scope;

use super::split::{max_watermark_between, SplitReader};
use super::{InputFile, Split};
use crate::runtime::checkpoint::{Checkpoint, SourcePosition, WatermarkState};
use crate::runtime::source_shell::{build_source, Position, SourceBatch, SourceContext, SourceStreams};
use crate::runtime::watermark::PartitionWatermark;

/// Lines read per activation of the operator, so that downstream operators run and memory stays bounded.
pub const LINES_PER_ACTIVATION: usize = 8192;

/// The final watermark state of every finished range of a chained file, by (path, end byte of the range): where
/// the next range starts from. Shared by the workers of one process.
pub type RangeChain = Arc<Mutex<BTreeMap<(String, u64), RangeEnd>>>;

/// What a finished range of a chained file hands to the next one.
#[derive(Clone, Copy, Debug)]
pub struct RangeEnd {
    /// The partition's final watermark state.
    pub state: WatermarkState,
    /// Lines of the file up to the range's end, when known: the next range's line numbers start there instead of
    /// counting the newlines from the start of the file (which, for every range of a job whose records keep
    /// their line, read the file quadratically often).
    pub lines: Option<u64>,
}

/// A record of a range read ahead of its predecessor: decoded, not judged yet.
struct ReadAhead<R> {
    decoded: Result<Decoded<R>, String>,
    raw: AheadLine,
    offset: u64,
    /// Lines of the range read up to and including this one.
    lines_read: u64,
}

/// Where the line of a [`ReadAhead`] record is. Only records that keep their origin and malformed ones keep their
/// bytes; any other record needs its line only if it turns out late, and it is then read again from the file.
/// Keeping every line doubled the bytes a range read ahead holds (measured: 14 MB of a 59 MB heap peak, pageviews
/// `-w 2`).
enum AheadLine {
    /// In the partition's `ahead_bytes`.
    Kept(std::ops::Range<usize>),
    /// In the file at the record's offset, this many bytes long (without its terminator).
    InFile(usize),
}

/// The buffers of a finished read-ahead, kept by the worker for the next one: a range's read-ahead fills
/// megabytes, and freeing them after each range made the allocator return and fault in the pages again
/// (up to 275k minor page faults and 0.8 s of system time on 10M ticks with `-w 2`).
struct SpareReadAhead<R> {
    records: Vec<ReadAhead<R>>,
    bytes: Vec<u8>,
}

impl<R> Default for SpareReadAhead<R> {
    fn default() -> Self {
        SpareReadAhead { records: Vec::new(), bytes: Vec::new() }
    }
}

/// The `len` bytes at `offset` of the plain file `path`: a line read ahead whose bytes were not kept
/// ([`AheadLine::InFile`]). A file that cannot be read again gives a text saying so, for the dead letter.
fn read_line_again(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let mut line = vec![0u8; len];
    match std::fs::File::open(path).and_then(|f| f.read_exact_at(&mut line, offset)) {
        Ok(()) => line,
        Err(e) => format!("(the line could not be read again from {}: {e})", path.display()).into_bytes(),
    }
}

struct Partition<F: RecordFormat> {
    split: Split<F>,
    /// Index into the worker's `files`.
    file: usize,
    reader: Option<SplitReader>,
    clock: PartitionWatermark,
    done: bool,
    /// Restored from a checkpoint: (offset of the next line, lines before it if known).
    resume: Option<(u64, Option<u64>)>,
    /// Read since the last checkpoint cut.
    dirty: bool,
    /// Where the range stood when it was last closed or restored: (offset, lines before it if known).
    last: Option<(u64, Option<u64>)>,
    /// The job's watermark strategy.
    strategy: WatermarkStrategy,
    /// The range starts from the final state of the range before it (a chained file, not the first range).
    chained: bool,
    /// Records read ahead while the range before has not finished (`Some` until they are judged).
    ahead: Option<Vec<ReadAhead<F::Record>>>,
    /// The lines read ahead, one after the other.
    ahead_bytes: Vec<u8>,
    /// The reader of a read-ahead that has read its range to the end (for line numbers).
    closed_reader: Option<SplitReader>,
    /// The reader reached the end of the range (a read-ahead may still wait to be judged).
    read_to_end: bool,
}

/// What this worker knows of one file it reads ranges of.
#[derive(Default)]
struct FileProgress {
    /// Largest watermark record seen in the file up to `known_upto`.
    watermark: Option<u64>,
    /// Bytes `[0, known_upto)` have been read or scanned by this worker.
    known_upto: u64,
}

impl FileProgress {
    /// Frontier of an unopened range of the file: a lower bound, since the file's watermark only grows.
    fn frontier(&self) -> u64 {
        self.watermark.map_or(0, |w| w.saturating_add(1))
    }
}

impl<F: RecordFormat> Partition<F> {
    /// The final state of the range before this one, once it has finished.
    fn inherited(&self, chain: &RangeChain) -> Option<RangeEnd> {
        chain.lock().expect("range chain").get(&(self.split.file.path.display().to_string(), self.split.start)).copied()
    }

    /// Whether the range can make progress now: it is not a read-ahead that has read all it can and waits.
    fn can_progress(&self, chain: &RangeChain) -> bool {
        !(self.ahead.is_some() && self.reader.is_none() && self.inherited(chain).is_none())
    }


    fn open(&mut self, file: &mut FileProgress, chain: &RangeChain, spare: &mut SpareReadAhead<F::Record>) -> std::io::Result<()> {
        if let Some((offset, lines_before)) = self.resume.take() {
            // The restored clock is the file's watermark at `offset`; no gap to scan.
            self.reader = Some(SplitReader::resume(&self.split, offset, lines_before)?);
            file.known_upto = file.known_upto.max(offset);
            return Ok(());
        }
        let reader = SplitReader::open(&self.split)?;
        let start = reader.first_line_offset();
        if self.strategy == WatermarkStrategy::Records && start > file.known_upto {
            if let Some(w) = max_watermark_between(&self.split.file.path, file.known_upto, start, &self.split.file.format)? {
                file.watermark = Some(file.watermark.map_or(w, |old| old.max(w)));
            }
        }
        file.known_upto = file.known_upto.max(start);
        self.clock = self.clock.fresh(file.watermark);
        if self.chained {
            match self.inherited(chain) {
                Some(end) => {
                    self.clock = end.state.clock(&self.clock);
                    reader.know_lines_before(end.lines);
                }
                None => {
                    self.ahead = Some(std::mem::take(&mut spare.records));
                    self.ahead_bytes = std::mem::take(&mut spare.bytes);
                }
            }
        }
        self.reader = Some(reader);
        Ok(())
    }

    /// Records in `file` (and, for a chained file, in `chain`) what this range taught about it, once the range is
    /// read and judged.
    fn close(&mut self, file: &mut FileProgress, chain: &RangeChain) {
        if self.strategy.from_event_times() {
            let lines = self.reader.as_ref().or(self.closed_reader.as_ref()).and_then(SplitReader::lines_consumed).or(self.last.and_then(|(_, lines)| lines));
            chain.lock().expect("range chain").insert((self.split.file.path.display().to_string(), self.split.end), RangeEnd { state: WatermarkState::of(&self.clock), lines });
        }
        self.closed_reader = None;
        if let Some(reader) = self.reader.take() {
            file.known_upto = file.known_upto.max(reader.position());
        }
        if let Some(w) = self.clock.watermark() {
            file.watermark = Some(file.watermark.map_or(w, |old| old.max(w)));
        }
        self.done = true;
    }

    /// Where this range stands, for a checkpoint. A range read ahead has sent nothing yet: it is not opened.
    fn position(&self) -> CheckpointPart {
        let next = if self.ahead.is_some() { None } else { self.reader.as_ref().map(|reader| (reader.position(), reader.lines_consumed())).or(self.last) };
        SourcePosition::File {
            path: self.split.file.path.display().to_string(),
            start: self.split.start,
            end: self.split.end,
            next,
            done: self.done,
            watermark: WatermarkState::of(&self.clock),
        }
        .part()
    }
}

/// Builds the file source of one worker over `splits` (this worker's share of the plan). Ranges in
/// `ctx.restored` resume from their checkpointed position and watermark (finished ones are not read again); at
/// each cut of the epochs, the position of every range read since the last cut is sent as a checkpoint part (all
/// of them at the first cut).
/// Chained files' ranges (see the module documentation) publish their final state to `chain`, shared by the workers
/// of the process.
pub fn file_source<'s, J: Job>(scope: Scope<'s, Time>, splits: Vec<Split<J::Format>>, ctx: &SourceContext<'_, J>, chain: RangeChain) -> SourceStreams<'s, J::Record> {
    let worker = ctx.worker;
    let restored = ctx.restored.as_deref();
    let template = ctx.clock(None);
    let chained_strategy = ctx.job.watermarks().from_event_times();
    // Ranges of a file in file order; one FileProgress per distinct file.
    let mut splits = splits;
    splits.sort_by(|a, b| a.file.path.cmp(&b.file.path).then(a.start.cmp(&b.start)));
    let mut files: Vec<FileProgress> = Vec::new();
    let mut partitions: Vec<Partition<J::Format>> = Vec::with_capacity(splits.len());
    for split in splits {
        let same_file = partitions.last().is_some_and(|p: &Partition<J::Format>| p.split.file.path == split.file.path);
        if !same_file {
            files.push(FileProgress::default());
        }
        let chained = chained_strategy && split.start > 0;
        let mut partition = Partition { split, file: files.len() - 1, reader: None, clock: template.clone(), done: false, resume: None, dirty: true, last: None, strategy: ctx.job.watermarks(), chained, ahead: None, ahead_bytes: Vec::new(), closed_reader: None, read_to_end: false };
        let key = SourcePosition::file_key(&partition.split.file.path.display().to_string(), partition.split.start);
        if let Some(SourcePosition::File { next, done, watermark, .. }) = restored.and_then(|c| c.sources.get(&key)) {
            partition.clock = watermark.clock(&template);
            partition.done = *done;
            partition.resume = if *done { None } else { *next };
            partition.last = *next;
            if *done && chained_strategy {
                // Where the next range starts from, for whichever worker reads it.
                chain.lock().expect("range chain").insert((partition.split.file.path.display().to_string(), partition.split.end), RangeEnd { state: *watermark, lines: None });
            }
        }
        partitions.push(partition);
    }
    // Frontier of a file on this worker: that of its first unfinished range (a resumed range: its restored
    // watermark).
    let file_frontier = |p: &Partition<J::Format>, files: &[FileProgress]| if p.reader.is_some() || p.resume.is_some() { p.clock.frontier() } else { files[p.file].frontier() };
    let positions = |partitions: &mut [Partition<J::Format>]| -> Vec<CheckpointPart> {
        let mut parts = Vec::new();
        for p in partitions.iter_mut().filter(|p| p.dirty) {
            p.dirty = false;
            parts.push(p.position());
        }
        parts
    };
    let mut scratch = <J::Format as RecordFormat>::Scratch::default();
    let mut spare = SpareReadAhead::default();

    build_source(scope, "file_source", ctx, move |outputs| {
        let Some(floor) = outputs.floor() else { return };
        // Read the first unfinished range of the file that holds progress back the most (of those that can make
        // progress: not a read-ahead waiting for the range before it).
        let unfinished: Vec<usize> = first_unfinished_per_file(&partitions).collect();
        if unfinished.is_empty() {
            // Nothing (left) to read, e.g. more workers than splits: release progress.
            outputs.finish(positions(&mut partitions));
            return;
        }
        let Some(p) = unfinished.iter().copied().filter(|&i| partitions[i].can_progress(&chain)).min_by_key(|&i| file_frontier(&partitions[i], &files)).map(|i| &mut partitions[i]) else {
            // Every range waits for a range another worker reads.
            if outputs.checkpoint_due() {
                outputs.cut(positions(&mut partitions));
            }
            outputs.reschedule(Some(std::time::Duration::from_millis(1)));
            return;
        };
        p.dirty = true;
        let mut batch = SourceBatch::default();
        let source = p.split.file.path.display().to_string();
        let file = &mut files[p.file];
        if p.reader.is_none() && p.ahead.is_none() {
            if let Err(e) = p.open(file, &chain, &mut spare) {
                tracing::error!(input = %p.split.describe(), error = %e, "cannot open input split");
                batch.unreadable(Position { source: source.as_str().into(), line: 0, offset: 0 }, &e);
                p.done = true;
            }
        }
        // A read-ahead whose predecessor has finished: judge what was read, then go on as usual.
        if p.ahead.is_some() {
            if let Some(end) = p.inherited(&chain) {
                p.clock = end.state.clock(&p.clock);
                let mut ahead = p.ahead.take().unwrap_or_default();
                let reader = p.reader.as_ref().or(p.closed_reader.as_ref());
                if let Some(reader) = reader {
                    reader.know_lines_before(end.lines);
                    // A range read to its end before it was judged closed its reader not knowing its line count.
                    if let Some((position, None)) = p.last {
                        p.last = Some((position, reader.lines_consumed()));
                    }
                }
                for r in ahead.drain(..) {
                    let at = || Position { source: source.as_str().into(), line: reader.map_or(r.lines_read, |reader| reader.line_number_at(r.lines_read)), offset: r.offset };
                    let (bytes, path) = (&p.ahead_bytes, &p.split.file.path);
                    let raw = || match &r.raw {
                        AheadLine::Kept(range) => Cow::Borrowed(&bytes[range.clone()]),
                        AheadLine::InFile(len) => Cow::Owned(read_line_again(path, r.offset, *len)),
                    };
                    batch.accept_with(r.decoded, &mut p.clock, floor, raw, at);
                }
                p.ahead_bytes.clear();
                spare = SpareReadAhead { records: ahead, bytes: std::mem::take(&mut p.ahead_bytes) };
                p.closed_reader = None;
            }
        }
        let mut ended = false;
        if let Some(reader) = p.reader.as_mut() {
            let format = &p.split.file.format;
            for _ in 0..outputs.batch_limit(LINES_PER_ACTIVATION) {
                let offset = match reader.next_line() {
                    Ok(Some(offset)) => offset,
                    Ok(None) => {
                        ended = true;
                        break;
                    }
                    Err(e) => {
                        tracing::error!(input = %p.split.describe(), error = %e, "input unreadable; rest of the split skipped");
                        batch.unreadable(Position { source: source.as_str().into(), line: reader.line_number() + 1, offset: 0 }, &e);
                        ended = true;
                        break;
                    }
                };
                if reader.line().is_empty() {
                    continue;
                }
                let decoded = format.decode(reader.line(), &mut scratch);
                match p.ahead.as_mut() {
                    Some(ahead) => {
                        let line = reader.line();
                        let raw = if <J::Record as EventTime>::KEEPS_ORIGIN || decoded.is_err() {
                            let at = p.ahead_bytes.len();
                            p.ahead_bytes.extend_from_slice(line);
                            AheadLine::Kept(at..p.ahead_bytes.len())
                        } else {
                            AheadLine::InFile(line.len())
                        };
                        ahead.push(ReadAhead { decoded, raw, offset, lines_read: reader.lines_read() });
                    }
                    None => {
                        let reader = &*reader;
                        batch.accept(decoded, &mut p.clock, floor, reader.line(), || Position { source: source.as_str().into(), line: reader.line_number(), offset });
                    }
                }
            }
        }
        if ended {
            p.read_to_end = true;
            if let Some(reader) = p.reader.take() {
                p.last = Some((reader.position(), reader.lines_consumed()));
                file.known_upto = file.known_upto.max(reader.position());
                // A read-ahead keeps its reader's line count for the dead letters it may still make.
                if p.ahead.is_some() {
                    p.closed_reader = Some(reader);
                }
            }
        }
        if (p.read_to_end || p.done) && p.ahead.is_none() {
            p.close(file, &chain);
        }

        outputs.send(&mut batch);

        // Progress: the smallest event time any unfinished partition can still send.
        match first_unfinished_per_file(&partitions).map(|i| file_frontier(&partitions[i], &files)).min() {
            Some(frontier) => {
                outputs.advance_to(frontier);
                if outputs.checkpoint_due() {
                    outputs.cut(positions(&mut partitions));
                }
                outputs.reschedule(None);
            }
            None => {
                outputs.finish(positions(&mut partitions));
                tracing::debug!(worker, "all input splits read");
            }
        }
    })
}

/// Index of the first unfinished range of each file (partitions are sorted by file, then offset).
fn first_unfinished_per_file<F: RecordFormat>(partitions: &[Partition<F>]) -> impl Iterator<Item = usize> + '_ {
    (0..partitions.len()).filter(move |&i| !partitions[i].done && (i == 0 || partitions[i - 1].file != partitions[i].file || partitions[i - 1].done))
}

/// The plan of a restored run: the byte ranges of the checkpoint (whatever worker count cut them), dealt to the
/// workers of `topology` in turn in (file, offset) order — a `chained` file's to the workers of one process —;
/// `None` when the checkpoint holds no file position.
///
/// # Errors
/// An input file without ranges in the checkpoint, or a checkpointed file that is not an input (the inputs
/// changed: restore with the same inputs, or `--checkpoint-reset`).
pub fn restored_plan<F>(files: &[std::sync::Arc<InputFile<F>>], checkpoint: &Checkpoint, topology: crate::runtime::workers::Topology, chained: bool) -> anyhow::Result<Option<Vec<Split<F>>>> {
    let checkpointed = checkpoint.sources.values().filter(|p| matches!(p, SourcePosition::File { .. })).count();
    if checkpointed == 0 {
        return Ok(None);
    }
    let mut splits = Vec::new();
    for (f, file) in files.iter().enumerate() {
        let path = file.path.display().to_string();
        let ranges = checkpoint.file_ranges(&path);
        if ranges.is_empty() {
            anyhow::bail!("--checkpoint-dir: the checkpoint has no position for input {path}; restore with the same inputs or use --checkpoint-reset");
        }
        // A chained file's ranges go to the workers of one process (they share the chain).
        let process = f % topology.processes();
        for (i, (start, end)) in ranges.into_iter().enumerate() {
            let worker = if chained { process * topology.threads + i % topology.threads } else { splits.len() % topology.peers };
            splits.push(Split { file: file.clone(), start, end, worker });
        }
    }
    if splits.len() != checkpointed {
        anyhow::bail!("--checkpoint-dir: the checkpoint has positions of files that are not inputs of this run; restore with the same inputs or use --checkpoint-reset");
    }
    Ok(Some(splits))
}
