//! Reading trip inputs: format detection, gzip detection, splitting inputs across workers, and the record
//! parsers of each format.
//!
//! Formats (`--format`, detected from the first line by default):
//! * [`tlc_csv`]: NYC TLC yellow taxi CSV with a header (2009–2016 header variants), columns found by name;
//! * [`debs_csv`]: the DEBS 2015 Grand Challenge headerless CSV;
//! * [`taxi_ride_csv`]: the Flink training "TaxiRide" headerless CSV (END rows are trips);
//! * [`json_lines`]: JSON trip and watermark events (spec §1), one per line.
//!
//! Compression: a file that starts with the gzip magic bytes `1f 8b` is decompressed, whatever its name.

pub mod csv_line;
pub mod debs_csv;
pub mod json_lines;
pub mod split;
pub mod taxi_ride_csv;
pub mod tlc_csv;

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use taxiflow_dataflows::Trip;

pub use split::{plan_splits, Split};

/// One parsed input record.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// A complete trip.
    Trip(Trip),
    /// A watermark event: every trip of this partition with event time ≤ this value (ms since the Unix epoch)
    /// came before it (spec §1).
    Watermark(u64),
    /// A record that is valid but is not a trip: a TaxiRide START row (the trip is not complete yet).
    NotATrip,
}

/// The input formats taxiflow reads.
#[derive(Clone, Debug, PartialEq)]
pub enum Format {
    /// TLC yellow CSV with the column positions found in its header.
    TlcCsv(tlc_csv::Columns),
    /// DEBS 2015 headerless CSV.
    DebsCsv,
    /// Flink training TaxiRide headerless CSV.
    TaxiRideCsv,
    /// JSON lines of trip and watermark events.
    JsonLines,
}

/// `--format` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatChoice {
    /// Detect from the first line of each file.
    Auto,
    /// NYC TLC yellow CSV with header.
    Tlc,
    /// DEBS 2015 headerless CSV.
    Debs,
    /// Flink training TaxiRide CSV.
    Taxiride,
    /// JSON lines (spec §1).
    Jsonl,
}

impl Format {
    /// Whether the first line of the file is a header, not a record.
    pub fn has_header(&self) -> bool {
        matches!(self, Format::TlcCsv(_))
    }

    /// Parses one line (without its line terminator) of this format.
    ///
    /// # Errors
    /// The reason the line is malformed, for the dead-letter output.
    pub fn parse(&self, line: &[u8], csv: &mut csv_line::CsvLine) -> Result<Record, String> {
        match self {
            Format::TlcCsv(columns) => tlc_csv::parse(line, columns, csv),
            Format::DebsCsv => debs_csv::parse(line, csv),
            Format::TaxiRideCsv => taxi_ride_csv::parse(line, csv),
            Format::JsonLines => json_lines::parse(line),
        }
    }

    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Format::TlcCsv(_) => "tlc-csv",
            Format::DebsCsv => "debs-csv",
            Format::TaxiRideCsv => "taxiride-csv",
            Format::JsonLines => "json-lines",
        }
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

/// Opens a file for reading from its start, decompressing gzip (detected by magic bytes).
///
/// # Errors
/// The file cannot be opened.
pub fn open_decoded(path: &Path) -> anyhow::Result<Box<dyn BufRead + Send>> {
    let gzip = is_gzip(path)?;
    let file = File::open(path).with_context(|| format!("--input {}: cannot open", path.display()))?;
    Ok(if gzip {
        Box::new(BufReader::with_capacity(1 << 20, flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 16, file))))
    } else {
        Box::new(BufReader::with_capacity(1 << 20, file))
    })
}

/// Detects the format of a file from its first non-empty line, or applies `choice`. A file without any
/// non-empty line has no records and is read as (empty) JSON lines.
///
/// # Errors
/// The file cannot be read, its format cannot be recognised (the message suggests `--format`), or a
/// TLC header lacks a required column (the message names it).
pub fn detect_format(path: &Path, choice: FormatChoice) -> anyhow::Result<Format> {
    let mut reader = open_decoded(path)?;
    let mut first = Vec::new();
    loop {
        first.clear();
        let n = reader.read_until(b'\n', &mut first).with_context(|| format!("--input {}: cannot read", path.display()))?;
        if n == 0 {
            if choice == FormatChoice::Auto {
                // An empty partition: nothing to read, whatever the format.
                tracing::warn!(input = %path.display(), "input file has no records");
                return Ok(Format::JsonLines);
            }
            break;
        }
        if !trim_line(&first).is_empty() {
            break;
        }
    }
    let line = trim_line(&first);
    let mut csv = csv_line::CsvLine::new();
    let fields: Vec<String> = match csv.split(line) {
        Ok(f) => f.iter().map(|f| f.to_string()).collect(),
        Err(e) => bail!("--input {}: cannot read the first line ({e}); use --format", path.display()),
    };
    let header_columns = || -> anyhow::Result<Format> {
        Ok(Format::TlcCsv(tlc_csv::Columns::from_header(&fields).with_context(|| format!("--input {}", path.display()))?))
    };
    Ok(match choice {
        FormatChoice::Tlc => header_columns()?,
        FormatChoice::Debs => Format::DebsCsv,
        FormatChoice::Taxiride => Format::TaxiRideCsv,
        FormatChoice::Jsonl => Format::JsonLines,
        FormatChoice::Auto => {
            if line.first() == Some(&b'{') {
                Format::JsonLines
            } else {
                let lower: Vec<String> = fields.iter().map(|f| f.to_ascii_lowercase()).collect();
                if lower.iter().any(|f| f.contains("pickup") || f.contains("datetime")) {
                    header_columns()?
                } else if lower.len() == taxi_ride_csv::FIELDS && (lower[1] == "start" || lower[1] == "end") {
                    Format::TaxiRideCsv
                } else if fields.len() == debs_csv::FIELDS {
                    Format::DebsCsv
                } else {
                    bail!(
                        "--input {}: cannot detect the format from the first line ({} fields); use --format",
                        path.display(),
                        fields.len()
                    )
                }
            }
        }
    })
}

/// Strips a trailing `\n` or `\r\n`.
#[inline]
pub fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// An input file with its detected format.
#[derive(Clone, Debug)]
pub struct InputFile {
    /// Path as given on the command line.
    pub path: PathBuf,
    /// Detected or chosen format.
    pub format: Format,
    /// Whether the file is gzip-compressed (such files are read whole by one worker).
    pub gzip: bool,
    /// Size in bytes on disk.
    pub size: u64,
}

impl InputFile {
    /// Inspects `path`: size, compression, format.
    ///
    /// # Errors
    /// As [`detect_format`].
    pub fn inspect(path: &Path, choice: FormatChoice) -> anyhow::Result<InputFile> {
        let size = std::fs::metadata(path).with_context(|| format!("--input {}: cannot stat", path.display()))?.len();
        Ok(InputFile { path: path.to_path_buf(), format: detect_format(path, choice)?, gzip: is_gzip(path)?, size })
    }
}

/// Parses a float field, naming the field in the error.
#[inline]
pub(crate) fn float_field(field: &str, name: &str) -> Result<f64, String> {
    let f = field.trim();
    if f.is_empty() {
        return Err(format!("{name}: empty"));
    }
    f.parse::<f64>().map_err(|_| format!("{name}: not a number: {f:?}"))
}

/// Parses a timestamp field, naming the field in the error.
#[inline]
pub(crate) fn time_field(field: &str, name: &str) -> Result<u64, String> {
    crate::timestamp::parse_timestamp_ms(field).map_err(|e| format!("{name}: {e}"))
}
