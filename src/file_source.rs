//! The file source: a timely operator that reads this worker's splits, turns records into trips, tracks each
//! partition's watermark, and holds a capability at the smallest event time its partitions can still send.
//!
//! Outputs: trips (`StreamVec<u64, Trip>`) and dead letters (`StreamVec<u64, DeadLetter>`). A batch of trips is
//! sent at the source's capability, which is ≤ every non-late trip's event time; after each batch the
//! capability is downgraded to the minimum over this worker's unfinished files of the file's frontier
//! (watermark + 1), and dropped when all are read. So the frontier downstream is the minimum watermark over all
//! partitions of all workers, plus one (spec §3 "min over partitions of the last watermark event").
//!
//! A file is one partition even when it is cut into byte ranges read by several workers. A worker reads its
//! ranges of a file in file order; before a range it scans the gap since its previous range for watermark
//! records (other workers read those lines), so the range starts at the file's watermark at that point. Ranges
//! not yet opened cannot lower the file's frontier: a file's watermark only grows in file order.

use std::cell::RefCell;
use std::rc::Rc;

use taxiflow_dataflows::{Progress, Trip};
use timely::dataflow::{Scope, StreamVec};

use crate::dead_letter::DeadLetter;
use crate::input::csv_line::CsvLine;
use crate::input::split::{max_watermark_between, SplitReader};
use crate::input::{Format, Split};
use crate::source_batch::{build_source, Position, SourceBatch};
use crate::summary::Totals;
use crate::watermark::PartitionWatermark;

/// Lines read per activation of the operator, so that downstream operators run and memory stays bounded.
pub const LINES_PER_ACTIVATION: usize = 8192;

struct Partition {
    split: Split,
    /// Index into the worker's `files`.
    file: usize,
    reader: Option<SplitReader>,
    clock: PartitionWatermark,
    done: bool,
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

impl Partition {
    fn open(&mut self, progress: Progress, file: &mut FileProgress) -> std::io::Result<()> {
        let reader = SplitReader::open(&self.split)?;
        let start = reader.first_line_offset();
        if progress == Progress::WatermarkRecords && self.split.file.format == Format::JsonLines && start > file.known_upto {
            if let Some(w) = max_watermark_between(&self.split.file.path, file.known_upto, start)? {
                file.watermark = Some(file.watermark.map_or(w, |old| old.max(w)));
            }
        }
        file.known_upto = file.known_upto.max(start);
        self.clock = PartitionWatermark::new(progress, file.watermark);
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
}

/// Builds the file source of one worker over `splits` (this worker's share of the plan). `totals` receives the
/// worker's record counts; `worker` labels its metrics.
pub fn file_source<'s>(
    scope: Scope<'s, u64>,
    splits: Vec<Split>,
    progress: Progress,
    totals: Rc<RefCell<Totals>>,
    worker: usize,
) -> (StreamVec<'s, u64, Trip>, StreamVec<'s, u64, DeadLetter>) {
    // Ranges of a file in file order; one FileProgress per distinct file.
    let mut splits = splits;
    splits.sort_by(|a, b| a.file.path.cmp(&b.file.path).then(a.start.cmp(&b.start)));
    let mut files: Vec<FileProgress> = Vec::new();
    let mut partitions: Vec<Partition> = Vec::with_capacity(splits.len());
    for split in splits {
        let same_file = partitions.last().is_some_and(|p: &Partition| p.split.file.path == split.file.path);
        if !same_file {
            files.push(FileProgress::default());
        }
        partitions.push(Partition { split, file: files.len() - 1, reader: None, clock: PartitionWatermark::new(progress, None), done: false });
    }
    // Frontier of a file on this worker: that of its first unfinished range.
    let file_frontier = |p: &Partition, files: &[FileProgress]| if p.reader.is_some() { p.clock.frontier() } else { files[p.file].frontier() };
    let mut csv = CsvLine::new();

    build_source(scope, "file_source", worker, totals, move |outputs| {
        let Some(floor) = outputs.floor() else { return };
        // Read the first unfinished range of the file that holds progress back the most.
        let next = first_unfinished_per_file(&partitions).min_by_key(|&i| file_frontier(&partitions[i], &files));
        let Some(p) = next.map(|i| &mut partitions[i]) else {
            // Nothing (left) to read, e.g. more workers than splits: release progress.
            outputs.finish();
            return;
        };
        let mut batch = SourceBatch::default();
        let source = p.split.file.path.display().to_string();
        let file = &mut files[p.file];
        if p.reader.is_none() {
            if let Err(e) = p.open(progress, file) {
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
                let parsed = format.parse(&reader.line, &mut csv);
                let reader = &*reader;
                batch.accept(parsed, &mut p.clock, floor, &reader.line, || Position { source: source.as_str().into(), line: reader.line_number(), offset });
            }
        }
        if p.done {
            p.close(file);
        }

        outputs.send(&mut batch);

        // Progress: the smallest event time any unfinished partition can still send.
        match first_unfinished_per_file(&partitions).map(|i| file_frontier(&partitions[i], &files)).min() {
            Some(frontier) => {
                outputs.advance_to(frontier);
                outputs.reschedule(None);
            }
            None => {
                outputs.finish();
                tracing::debug!(worker, "all input splits read");
            }
        }
    })
}

/// Index of the first unfinished range of each file (partitions are sorted by file, then offset).
fn first_unfinished_per_file(partitions: &[Partition]) -> impl Iterator<Item = usize> + '_ {
    (0..partitions.len()).filter(move |&i| !partitions[i].done && (i == 0 || partitions[i - 1].file != partitions[i].file || partitions[i - 1].done))
}
