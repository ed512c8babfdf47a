//! Splitting inputs across all workers of all processes, and reading one split line by line.
//!
//! A **split** is a whole file (gzip files, small files, and every file when a partition's watermark depends on
//! all records before it) or a byte range `[start, end)` of a plain file. A byte range owns exactly the lines
//! whose first byte lies in it, so every line is read by exactly one worker. Every process computes the same
//! plan from the same inputs, so the workers agree on it without talking.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use taxiflow_dataflows::{Decoded, RecordFormat};

use super::{trim_line, InputFile};

/// Default of `--min-split-bytes`: plain files smaller than this are not cut into byte ranges.
pub const MIN_SPLIT_BYTES: u64 = 1 << 20;

/// Default of `--max-split-bytes`: byte ranges are at most this long, so a big file is cut into many ranges
/// dealt to the workers in turn, and the workers move through the file (and its event time) together.
pub const MAX_SPLIT_BYTES: u64 = 64 << 20;

/// A piece of input read by one worker.
#[derive(Debug)]
pub struct Split<F> {
    /// The file.
    pub file: Arc<InputFile<F>>,
    /// First byte owned (0 for whole files).
    pub start: u64,
    /// First byte not owned; `u64::MAX` reads to the end of the file.
    pub end: u64,
    /// Global index of the worker that reads it.
    pub worker: usize,
}

impl<F> Clone for Split<F> {
    fn clone(&self) -> Self {
        Split { file: self.file.clone(), start: self.start, end: self.end, worker: self.worker }
    }
}

impl<F> Split<F> {
    /// `path` for a whole file, `path[start..end)` for a byte range, for logs and dead letters.
    pub fn describe(&self) -> String {
        if self.start == 0 && self.end == u64::MAX {
            self.file.path.display().to_string()
        } else {
            format!("{}[{}..{})", self.file.path.display(), self.start, self.end)
        }
    }
}

/// Byte ranges of a chained file (a watermark derived from event times) are at most this long: a range read ahead
/// of the one before it is held in memory, decoded, until that one finishes, and is then sent on as one batch.
/// 1 MiB instead of 4 MiB: measured on the 2M-line page-view bench log (`-w 2`, glibc's malloc), a heap peak of
/// 50.6 MB became 29.0 MB (heaptrack: the read-ahead's records 7.9 → 2.0 MB, its batch 5.2 → 1.3 MB, and the
/// batch's copies in the channels, 6.9 MB before, no longer among the largest allocations) and peak RSS 69.4–73.6
/// MiB became 52.5–54.6 MiB, in the same time (2.06–2.16 s); the output is byte-identical.
pub const CHAINED_SPLIT_BYTES: u64 = 1 << 20;

/// How files are cut into byte ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cutting {
    /// Watermarks from watermark records: ranges dealt to every worker (a range's starting watermark is found by
    /// scanning the gap before it for watermark records).
    Free,
    /// A watermark derived from event times: ranges of at most [`CHAINED_SPLIT_BYTES`], dealt to the workers of
    /// one process, each starting from the final state of the one before it (see `source`).
    Chained,
}

/// Plans the splits of `files` over the workers of `topology`.
///
/// Gzip files and plain files under `min_split_bytes` are one split each, given to the worker with the fewest
/// bytes so far (gzip bytes count 4×). Other files are cut into `max(workers, ⌈size / max⌉)` byte ranges of
/// equal length, dealt to the workers in turn starting with the least loaded one (with [`Cutting::Chained`]:
/// the workers of the least loaded process, and `max` at most [`CHAINED_SPLIT_BYTES`]); a worker reads the
/// ranges of one file in file order.
pub fn plan_splits<F>(files: &[Arc<InputFile<F>>], topology: crate::runtime::workers::Topology, cutting: Cutting, min_split_bytes: u64, max_split_bytes: u64) -> Vec<Split<F>> {
    let peers = topology.peers;
    let mut load = vec![0u64; peers];
    let least_loaded = |load: &[u64]| (0..peers).min_by_key(|&w| (load[w], w)).unwrap_or(0);
    let mut splits = Vec::new();
    let mut whole: Vec<&Arc<InputFile<F>>> = Vec::new();
    for file in files {
        if file.gzip || file.size < min_split_bytes || peers == 1 {
            whole.push(file);
            continue;
        }
        // The workers the ranges go to: all, or those of the least loaded process.
        let (workers, max): (Vec<usize>, u64) = match cutting {
            Cutting::Free => ((0..peers).collect(), max_split_bytes),
            Cutting::Chained => {
                let threads = topology.threads.max(1);
                let process = (0..topology.processes()).min_by_key(|p| (load[p * threads..(p + 1) * threads].iter().sum::<u64>(), *p)).unwrap_or(0);
                ((process * threads..(process + 1) * threads).collect(), max_split_bytes.min(CHAINED_SPLIT_BYTES))
            }
        };
        if workers.len() == 1 {
            whole.push(file);
            continue;
        }
        let pieces = (workers.len() as u64).max(file.size.div_ceil(max.max(1)));
        let step = file.size.div_ceil(pieces);
        let first = (0..workers.len()).min_by_key(|&i| (load[workers[i]], i)).unwrap_or(0);
        for k in 0..pieces {
            let worker = workers[(first + k as usize) % workers.len()];
            let start = k * step;
            let end = if k + 1 == pieces { u64::MAX } else { (k + 1) * step };
            load[worker] += step;
            splits.push(Split { file: file.clone(), start, end, worker });
        }
    }
    // Stable: equal weights keep input order, so every process computes the same plan.
    whole.sort_by_key(|f| std::cmp::Reverse(if f.gzip { f.size * 4 } else { f.size }));
    for file in whole {
        let worker = least_loaded(&load);
        load[worker] += if file.gzip { file.size * 4 } else { file.size }.max(1);
        splits.push(Split { file: file.clone(), start: 0, end: u64::MAX, worker });
    }
    splits
}

/// Bytes a [`SplitReader`] reads at a time (its buffer grows for a longer line). Each range a worker opens has its
/// own reader: 1 MiB, as large as a chained range, made every range allocate and zero a buffer of its size; with
/// 128 KiB the page-view bench log (`-w 2 --no-today`) peaked at 37.3–38.5 instead of 37.3–41.5 MiB, as fast.
const READ_BUFFER_BYTES: usize = 128 << 10;

/// Reads the lines of one split, tracking byte offsets and line numbers. A line is handed out in place, in the
/// reader's buffer (no copy per line: `read_until` into a line buffer was a tenth of a ticker run).
pub struct SplitReader {
    reader: Box<dyn Read + Send>,
    /// `buf[head..filled]` is read and not yet consumed.
    buf: Vec<u8>,
    head: usize,
    filled: usize,
    eof: bool,
    /// The current line in `buf`, without terminator.
    line: std::ops::Range<usize>,
    /// Absolute offset of the next line to read.
    pos: u64,
    end: u64,
    /// Offset of the first line this split owns.
    first_line_offset: u64,
    /// Lines consumed since `first_line_offset` (header included).
    lines_read: u64,
    /// Newlines before `first_line_offset`, counted on first need.
    lines_before: std::cell::Cell<Option<u64>>,
    path: PathBuf,
}

/// [`super::open_bytes`], its error as an I/O error of the split.
fn open_bytes(path: &Path) -> io::Result<Box<dyn Read + Send>> {
    super::open_bytes(path).map_err(io::Error::other)
}

impl SplitReader {
    fn new(reader: Box<dyn Read + Send>, pos: u64, end: u64, lines_before: Option<u64>, path: &Path) -> SplitReader {
        SplitReader {
            reader,
            buf: vec![0; READ_BUFFER_BYTES],
            head: 0,
            filled: 0,
            eof: false,
            line: 0..0,
            pos,
            end,
            first_line_offset: pos,
            lines_read: 0,
            lines_before: std::cell::Cell::new(lines_before),
            path: path.to_path_buf(),
        }
    }

    /// Opens `split`: seeks to its first owned line, and skips the header line when the split starts the file
    /// and the format has one.
    ///
    /// # Errors
    /// The file cannot be opened, sought or read.
    pub fn open<F: RecordFormat>(split: &Split<F>) -> io::Result<SplitReader> {
        let path = &split.file.path;
        let mut r = if split.start == 0 {
            SplitReader::new(open_bytes(path)?, 0, split.end, Some(0), path)
        } else {
            let mut file = File::open(path)?;
            file.seek(SeekFrom::Start(split.start - 1))?;
            let mut r = SplitReader::new(Box::new(file), split.start - 1, split.end, None, path);
            // The byte before `start` tells whether a line starts exactly at `start`.
            let n = r.read_line()?;
            r.pos += n as u64;
            r.first_line_offset = r.pos;
            r
        };
        if split.start == 0 && split.file.format.has_header() {
            while r.next_line()?.is_some() && r.line().is_empty() {}
        }
        Ok(r)
    }

    /// Reopens `split` where a checkpoint left it: at the line starting at byte `offset` (of the decompressed
    /// file), with `lines_before` lines before it (`None`: counted when first needed, as for a byte range). A
    /// gzip file is decompressed from its start and the first `offset` bytes are skipped.
    ///
    /// # Errors
    /// The file cannot be opened, sought or read, or is shorter than `offset`.
    pub fn resume<F>(split: &Split<F>, offset: u64, lines_before: Option<u64>) -> io::Result<SplitReader> {
        let path = &split.file.path;
        let too_short = || io::Error::new(io::ErrorKind::UnexpectedEof, format!("{} is shorter than the checkpointed offset {offset}", path.display()));
        let reader: Box<dyn Read + Send> = if split.file.gzip {
            let mut reader = open_bytes(path)?;
            if io::copy(&mut (&mut reader).take(offset), &mut io::sink())? < offset {
                return Err(too_short());
            }
            reader
        } else {
            let mut file = File::open(path)?;
            if file.metadata()?.len() < offset {
                return Err(too_short());
            }
            file.seek(SeekFrom::Start(offset))?;
            Box::new(file)
        };
        Ok(SplitReader::new(reader, offset, split.end, lines_before, path))
    }

    /// Reads up to and including the next `\n` (or to the end of the input) into the buffer and sets
    /// [`Self::line`] to it without its terminator; returns the bytes consumed (0 at the end of the input).
    fn read_line(&mut self) -> io::Result<usize> {
        let mut scanned = self.head;
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[scanned..self.filled]) {
                let (start, next) = (self.head, scanned + i + 1);
                self.head = next;
                self.line = start..start + trim_line(&self.buf[start..next]).len();
                return Ok(next - start);
            }
            scanned = self.filled;
            if self.eof {
                let start = self.head;
                self.head = self.filled;
                self.line = start..start + trim_line(&self.buf[start..self.filled]).len();
                return Ok(self.filled - start);
            }
            // Keep the partial line, at the front; grow for a line longer than the buffer.
            if self.head > 0 {
                self.buf.copy_within(self.head..self.filled, 0);
                (self.filled, scanned) = (self.filled - self.head, scanned - self.head);
                self.head = 0;
            }
            if self.filled == self.buf.len() {
                self.buf.resize(self.buf.len() * 2, 0);
            }
            match self.reader.read(&mut self.buf[self.filled..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The line last returned by [`Self::next_line`], without its terminator (`\n` or `\r\n`).
    pub fn line(&self) -> &[u8] {
        &self.buf[self.line.clone()]
    }

    /// Lines read from this split so far (header included).
    pub fn lines_read(&self) -> u64 {
        self.lines_read
    }

    /// 1-based line number in the file of the split's `lines_read`-th line (the first call counts the newlines
    /// before a byte range, once).
    pub fn line_number_at(&self, lines_read: u64) -> u64 {
        self.line_number() - self.lines_read + lines_read
    }

    /// Takes `lines` (when known, and not known already) as the number of lines before the split: what the range
    /// before it consumed, so that [`Self::line_number`] need not count them.
    pub fn know_lines_before(&self, lines: Option<u64>) {
        if self.lines_before.get().is_none() {
            self.lines_before.set(lines);
        }
    }

    /// Lines consumed before [`Self::position`] (header included), if known without counting the newlines
    /// before a byte range (which costs a read of the file up to it): where a resumed reader continues counting.
    pub fn lines_consumed(&self) -> Option<u64> {
        self.lines_before.get().map(|before| before + self.lines_read)
    }

    /// Offset of the first line this split owns (after the partial line before a byte range).
    pub fn first_line_offset(&self) -> u64 {
        self.first_line_offset
    }

    /// Offset of the next line to read; after the end of the split, the first byte after its last line.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Reads the next owned line ([`Self::line`]); returns its absolute byte offset, or `None` at the end of
    /// the split.
    ///
    /// # Errors
    /// An I/O or decompression error.
    pub fn next_line(&mut self) -> io::Result<Option<u64>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let n = self.read_line()?;
        if n == 0 {
            return Ok(None);
        }
        let offset = self.pos;
        self.pos += n as u64;
        self.lines_read += 1;
        Ok(Some(offset))
    }

    /// 1-based line number in the file of the line last returned by [`Self::next_line`]. For a byte range,
    /// the first call counts the newlines before it (once).
    pub fn line_number(&self) -> u64 {
        let before = match self.lines_before.get() {
            Some(n) => n,
            None => {
                let n = count_newlines(&self.path, self.first_line_offset).unwrap_or(0);
                self.lines_before.set(Some(n));
                n
            }
        };
        before + self.lines_read
    }
}

/// Number of `\n` bytes in the first `len` bytes of a plain file.
fn count_newlines(path: &Path, len: u64) -> io::Result<u64> {
    let mut file = File::open(path)?.take(len);
    let mut buf = vec![0u8; 1 << 20];
    let mut count = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(count);
        }
        count += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
    }
}

/// The largest value of the watermark records in bytes `[from, to)` (both line starts) of a plain file of
/// `format`. A partition's watermark is the maximum of its watermark records so far (a smaller later record does
/// not take progress back), so a byte range inherits the maximum over everything before it; each worker scans
/// only the gaps between its own ranges. Only lines containing the format's watermark marker are decoded; the
/// rest is only searched (memchr's `memmem`), so the cost is a sequential read of the gap. `None` without
/// watermark records (or for a format without them).
///
/// # Errors
/// An I/O error.
pub fn max_watermark_between<F: RecordFormat>(path: &Path, from: u64, to: u64, format: &F) -> io::Result<Option<u64>> {
    const CHUNK: usize = 4 << 20;
    let Some(marker) = format.watermark_marker() else { return Ok(None) };
    let finder = memchr::memmem::Finder::new(marker);
    let mut scratch = F::Scratch::default();
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(from))?;
    let mut file = file.take(to.saturating_sub(from));
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK * 2);
    let mut best: Option<u64> = None;
    loop {
        let carried = buf.len();
        buf.resize(carried + CHUNK, 0);
        let n = file.read(&mut buf[carried..])?;
        buf.truncate(carried + n);
        let at_end = n == 0;
        // Complete lines only; the tail after the last newline waits for the next chunk (or is the last line).
        let complete = if at_end { buf.len() } else { memchr::memrchr(b'\n', &buf).map_or(0, |i| i + 1) };
        let mut from = 0;
        while let Some(i) = finder.find(&buf[from..complete]) {
            let hit = from + i;
            let start = memchr::memrchr(b'\n', &buf[..hit]).map_or(0, |j| j + 1);
            let end = memchr::memchr(b'\n', &buf[hit..complete]).map_or(complete, |j| hit + j + 1);
            if let Ok(Decoded::Watermark(w)) = format.decode(trim_line(&buf[start..end]), &mut scratch) {
                best = Some(best.map_or(w, |b| b.max(w)));
            }
            from = end;
        }
        if at_end {
            return Ok(best);
        }
        buf.drain(..complete);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::workers::Topology;
    use std::io::Write;
    use taxiflow_dataflows::jobs::taxi::formats::{Format, FormatChoice};
    use taxiflow_dataflows::jobs::taxi::{Profile, TaxiJob};

    fn file_with(text: &str) -> (tempfile::NamedTempFile, Arc<InputFile<Format>>) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        let job = TaxiJob { format: FormatChoice::Jsonl, ..TaxiJob::for_profile(Profile::Kda) };
        let input = InputFile::inspect(f.path(), &job).unwrap();
        (f, Arc::new(input))
    }

    #[test]
    fn byte_ranges_cover_every_line_once() {
        let text: String = (0..200).map(|i| format!("line {i} {}\n", "x".repeat(i % 17))).collect();
        let (_f, file) = file_with(&text);
        for cut in 1..text.len() as u64 {
            let mut seen = Vec::new();
            for (start, end) in [(0, cut), (cut, u64::MAX)] {
                let split = Split { file: file.clone(), start, end, worker: 0 };
                let mut r = SplitReader::open(&split).unwrap();
                while let Some(offset) = r.next_line().unwrap() {
                    let n = r.line_number();
                    seen.push((offset, n, String::from_utf8(r.line().to_vec()).unwrap()));
                }
            }
            let expected: Vec<String> = text.lines().map(String::from).collect();
            assert_eq!(seen.iter().map(|s| s.2.clone()).collect::<Vec<_>>(), expected, "cut at {cut}");
            assert_eq!(seen.iter().map(|s| s.1).collect::<Vec<_>>(), (1..=200).collect::<Vec<u64>>(), "cut at {cut}");
        }
    }

    /// Lines across the reader's buffer boundary, one longer than the buffer, CRLF ends, and a last line
    /// without a newline, from the start and from byte ranges cut anywhere near the buffer's size.
    #[test]
    fn lines_longer_than_the_buffer_and_across_its_boundaries() {
        let mut text: String = (0..40_000).map(|i| format!("{i} {}\r\n", "y".repeat(i % 61))).collect();
        text.push_str(&"z".repeat(3 * READ_BUFFER_BYTES));
        text.push('\n');
        text.extend((0..1000).map(|i| format!("tail {i}\n")));
        text.push_str("last, without a newline");
        let (_f, file) = file_with(&text);
        let expected: Vec<&str> = text.lines().collect();
        let size = text.len() as u64;
        for cut in [1, READ_BUFFER_BYTES as u64 - 1, READ_BUFFER_BYTES as u64, READ_BUFFER_BYTES as u64 + 7, size / 2, size - 30, size - 1] {
            let mut seen = Vec::new();
            for (start, end) in [(0, cut), (cut, u64::MAX)] {
                let mut r = SplitReader::open(&Split { file: file.clone(), start, end, worker: 0 }).unwrap();
                while let Some(offset) = r.next_line().unwrap() {
                    assert!(text.as_bytes()[offset as usize..].starts_with(r.line()), "cut at {cut}: offset {offset}");
                    seen.push(String::from_utf8(r.line().to_vec()).unwrap());
                }
                assert_eq!(r.position(), if end == u64::MAX { size } else { r.position().max(end) }, "cut at {cut}");
            }
            assert_eq!(seen.len(), expected.len(), "cut at {cut}");
            assert!(seen.iter().zip(&expected).all(|(a, b)| a == b), "cut at {cut}");
        }
    }

    #[test]
    fn plan_balances_and_keeps_gzip_whole() {
        let big = Arc::new(InputFile { path: "a".into(), format: Format::JsonLines, gzip: false, size: 10 << 20 });
        let gz = Arc::new(InputFile { path: "b".into(), format: Format::JsonLines, gzip: true, size: 1 << 20 });
        let two = Topology { peers: 2, threads: 2 };
        let plan = plan_splits(&[big.clone(), gz.clone()], two, Cutting::Free, MIN_SPLIT_BYTES, MAX_SPLIT_BYTES);
        assert_eq!(plan.iter().filter(|s| s.file.gzip).count(), 1);
        assert_eq!(plan.len(), 3);
        assert!(plan.iter().any(|s| s.worker == 0) && plan.iter().any(|s| s.worker == 1));
        // Ranges of at most 1 MiB: ten, dealt alternately, covering the file.
        let dealt = plan_splits(std::slice::from_ref(&big), two, Cutting::Free, MIN_SPLIT_BYTES, 1 << 20);
        assert_eq!(dealt.len(), 10);
        assert_eq!(dealt.iter().map(|s| s.worker).collect::<Vec<_>>(), [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]);
        assert_eq!((dealt[0].start, dealt[9].end), (0, u64::MAX));
        assert!(dealt.windows(2).all(|w| w[0].end == w[1].start));
        // Chained: ranges of at most CHAINED_SPLIT_BYTES, all read by the workers of one process, in turn.
        let chained = plan_splits(std::slice::from_ref(&big), Topology { peers: 4, threads: 2 }, Cutting::Chained, MIN_SPLIT_BYTES, MAX_SPLIT_BYTES);
        assert_eq!(chained.len() as u64, (10u64 << 20).div_ceil(CHAINED_SPLIT_BYTES));
        assert!(chained.iter().all(|s| s.worker < 2), "{:?}", chained.iter().map(|s| s.worker).collect::<Vec<_>>());
        assert!(chained.windows(2).all(|w| w[0].worker != w[1].worker && w[0].end == w[1].start));
        // One worker per process: a chained file is read whole by one worker.
        let whole = plan_splits(&[big, gz], Topology { peers: 2, threads: 1 }, Cutting::Chained, MIN_SPLIT_BYTES, MAX_SPLIT_BYTES);
        assert!(whole.iter().all(|s| s.start == 0 && s.end == u64::MAX));
    }

    fn max_watermark_between_json(path: &Path, from: u64, to: u64) -> io::Result<Option<u64>> {
        max_watermark_between(path, from, to, &Format::JsonLines)
    }

    #[test]
    fn max_watermark_between_takes_the_maximum_of_the_gap() {
        let mut text = String::new();
        text.push_str("{\"type\":\"watermark\",\"watermark\":1000}\n");
        let mark = text.len() as u64;
        // More than one read chunk of trips that mention the word, which must not count.
        for i in 0..200_000 {
            text.push_str(&format!("{{\"type\":\"trip\",\"note\":\"watermark-ish {i}\"}}\n"));
        }
        text.push_str("{\"type\":\"watermark\",\"watermark\":3000}\n");
        let second = text.len() as u64;
        text.push_str("{\"type\":\"watermark\",\"watermark\":2000}\n");
        let (_f, file) = file_with(&text);
        assert_eq!(max_watermark_between_json(&file.path, 0, 0).unwrap(), None);
        assert_eq!(max_watermark_between_json(&file.path, 0, mark).unwrap(), Some(1000));
        assert_eq!(max_watermark_between_json(&file.path, mark, second).unwrap(), Some(3000));
        assert_eq!(max_watermark_between_json(&file.path, 0, second).unwrap(), Some(3000));
        assert_eq!(max_watermark_between_json(&file.path, second, text.len() as u64).unwrap(), Some(2000));
        // A later, smaller watermark does not take progress back.
        assert_eq!(max_watermark_between_json(&file.path, 0, text.len() as u64).unwrap(), Some(3000));
    }
}
