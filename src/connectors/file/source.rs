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
//! ranges of a file in file order; before a range it scans the gap since its previous range for watermark
//! records (other workers read those lines), so the range starts at the file's watermark at that point. Ranges
//! not yet opened cannot lower the file's frontier: a file's watermark only grows in file order.

use taxiflow_dataflows::epoch::Time;
use taxiflow_dataflows::{CheckpointPart, Job, RecordFormat, WatermarkStrategy};
use timely::dataflow::Scope;

use super::split::{max_watermark_between, SplitReader};
use super::{InputFile, Split};
use crate::runtime::checkpoint::{Checkpoint, SourcePosition, WatermarkState};
use crate::runtime::source_shell::{build_source, Position, SourceBatch, SourceContext, SourceStreams};
use crate::runtime::watermark::PartitionWatermark;

/// Lines read per activation of the operator, so that downstream operators run and memory stays bounded.
pub const LINES_PER_ACTIVATION: usize = 8192;

struct Partition<F> {
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
    fn open(&mut self, file: &mut FileProgress) -> std::io::Result<()> {
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
        self.reader = Some(reader);
        Ok(())
    }

    /// Records in `file` what this range taught about it, once the range is read.
    fn close(&mut self, file: &mut FileProgress) {
        if let Some(reader) = self.reader.take() {
            file.known_upto = file.known_upto.max(reader.position());
        }
        if let Some(w) = self.clock.watermark() {
            file.watermark = Some(file.watermark.map_or(w, |old| old.max(w)));
        }
        self.done = true;
    }

    /// Where this range stands, for a checkpoint.
    fn position(&self) -> CheckpointPart {
        let next = self.reader.as_ref().map(|reader| (reader.position(), reader.lines_consumed())).or(self.last);
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
pub fn file_source<'s, J: Job>(scope: Scope<'s, Time>, splits: Vec<Split<J::Format>>, ctx: &SourceContext<'_, J>) -> SourceStreams<'s, J::Record> {
    let worker = ctx.worker;
    let restored = ctx.restored.as_deref();
    let template = ctx.clock(None);
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
        let mut partition = Partition { split, file: files.len() - 1, reader: None, clock: template.clone(), done: false, resume: None, dirty: true, last: None, strategy: ctx.job.watermarks() };
        let key = SourcePosition::file_key(&partition.split.file.path.display().to_string(), partition.split.start);
        if let Some(SourcePosition::File { next, done, watermark, .. }) = restored.and_then(|c| c.sources.get(&key)) {
            partition.clock = watermark.clock(&template);
            partition.done = *done;
            partition.resume = if *done { None } else { *next };
            partition.last = *next;
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

    build_source(scope, "file_source", ctx, move |outputs| {
        let Some(floor) = outputs.floor() else { return };
        // Read the first unfinished range of the file that holds progress back the most.
        let next = first_unfinished_per_file(&partitions).min_by_key(|&i| file_frontier(&partitions[i], &files));
        let Some(p) = next.map(|i| &mut partitions[i]) else {
            // Nothing (left) to read, e.g. more workers than splits: release progress.
            outputs.finish(positions(&mut partitions));
            return;
        };
        p.dirty = true;
        let mut batch = SourceBatch::default();
        let source = p.split.file.path.display().to_string();
        let file = &mut files[p.file];
        if p.reader.is_none() {
            if let Err(e) = p.open(file) {
                tracing::error!(input = %p.split.describe(), error = %e, "cannot open input split");
                batch.unreadable(Position { source: source.as_str().into(), line: 0, offset: 0 }, &e);
                p.done = true;
            }
        }
        if let Some(reader) = p.reader.as_mut() {
            let format = &p.split.file.format;
            for _ in 0..LINES_PER_ACTIVATION {
                let offset = match reader.next_line() {
                    Ok(Some(offset)) => offset,
                    Ok(None) => {
                        p.done = true;
                        break;
                    }
                    Err(e) => {
                        tracing::error!(input = %p.split.describe(), error = %e, "input unreadable; rest of the split skipped");
                        batch.unreadable(Position { source: source.as_str().into(), line: reader.line_number() + 1, offset: 0 }, &e);
                        p.done = true;
                        break;
                    }
                };
                if reader.line.is_empty() {
                    continue;
                }
                let decoded = format.decode(&reader.line, &mut scratch);
                let reader = &*reader;
                batch.accept(decoded, &mut p.clock, floor, &reader.line, || Position { source: source.as_str().into(), line: reader.line_number(), offset });
            }
        }
        if p.done {
            if let Some(reader) = &p.reader {
                p.last = Some((reader.position(), reader.lines_consumed()));
            }
            p.close(file);
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
fn first_unfinished_per_file<F>(partitions: &[Partition<F>]) -> impl Iterator<Item = usize> + '_ {
    (0..partitions.len()).filter(move |&i| !partitions[i].done && (i == 0 || partitions[i - 1].file != partitions[i].file || partitions[i - 1].done))
}

/// The plan of a restored run: the byte ranges of the checkpoint (whatever worker count cut them), dealt to
/// `peers` workers in turn in (file, offset) order; `None` when the checkpoint holds no file position.
///
/// # Errors
/// An input file without ranges in the checkpoint, or a checkpointed file that is not an input (the inputs
/// changed: restore with the same inputs, or `--checkpoint-reset`).
pub fn restored_plan<F>(files: &[std::sync::Arc<InputFile<F>>], checkpoint: &Checkpoint, peers: usize) -> anyhow::Result<Option<Vec<Split<F>>>> {
    let checkpointed = checkpoint.sources.values().filter(|p| matches!(p, SourcePosition::File { .. })).count();
    if checkpointed == 0 {
        return Ok(None);
    }
    let mut splits = Vec::new();
    for file in files {
        let path = file.path.display().to_string();
        let ranges = checkpoint.file_ranges(&path);
        if ranges.is_empty() {
            anyhow::bail!("--checkpoint-dir: the checkpoint has no position for input {path}; restore with the same inputs or use --checkpoint-reset");
        }
        for (start, end) in ranges {
            splits.push(Split { file: file.clone(), start, end, worker: splits.len() % peers });
        }
    }
    if splits.len() != checkpointed {
        anyhow::bail!("--checkpoint-dir: the checkpoint has positions of files that are not inputs of this run; restore with the same inputs or use --checkpoint-reset");
    }
    Ok(Some(splits))
}
