//! The taxi job's input formats (taxi docs §1) and their detection from a file's first line.
//!
//! * [`tlc_csv`]: NYC TLC yellow taxi CSV with a header (2009–2016 header variants), columns found by name;
//! * [`debs_csv`]: the DEBS 2015 Grand Challenge headerless CSV;
//! * [`taxi_ride_csv`]: the Flink training "TaxiRide" headerless CSV (END rows are trips);
//! * [`json_lines`]: JSON trip and watermark events, one per line (the format of Kafka messages and Kinesis
//!   records).
//!
//! CSV times are NYC local time without a zone, read as UTC as the reference does ([`timestamp`]).

pub mod csv_line;
pub mod debs_csv;
pub mod json_lines;
pub mod taxi_ride_csv;
pub mod timestamp;
pub mod tlc_csv;

use super::trip::Trip;
use crate::job::{Decoded, RecordFormat};

/// The input formats of the taxi job.
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
    /// JSON lines (docs/jobs/taxi.md §1).
    Jsonl,
}

impl RecordFormat for Format {
    type Record = Trip;
    type Scratch = csv_line::CsvLine;

    #[inline]
    fn decode(&self, line: &[u8], csv: &mut csv_line::CsvLine) -> Result<Decoded<Trip>, String> {
        match self {
            Format::TlcCsv(columns) => tlc_csv::parse(line, columns, csv),
            Format::DebsCsv => debs_csv::parse(line, csv),
            Format::TaxiRideCsv => taxi_ride_csv::parse(line, csv),
            Format::JsonLines => json_lines::parse(line),
        }
    }

    fn has_header(&self) -> bool {
        matches!(self, Format::TlcCsv(_))
    }

    fn name(&self) -> &'static str {
        match self {
            Format::TlcCsv(_) => "tlc-csv",
            Format::DebsCsv => "debs-csv",
            Format::TaxiRideCsv => "taxiride-csv",
            Format::JsonLines => "json-lines",
        }
    }

    fn watermark_marker(&self) -> Option<&'static [u8]> {
        (*self == Format::JsonLines).then_some(b"watermark".as_slice())
    }
}

/// The format of a file whose first non-empty line is `first` (`None`: the file has none), or `choice`. A file
/// without any line has no records and is read as (empty) JSON lines.
///
/// # Errors
/// The first line cannot be split, its format cannot be recognised (the message suggests `--format`), or a TLC
/// header lacks a required column (named).
pub fn detect(first: Option<&[u8]>, choice: FormatChoice) -> Result<Format, String> {
    let Some(line) = first else {
        return Ok(match choice {
            FormatChoice::Auto | FormatChoice::Jsonl => Format::JsonLines,
            FormatChoice::Debs => Format::DebsCsv,
            FormatChoice::Taxiride => Format::TaxiRideCsv,
            FormatChoice::Tlc => return Err("an empty file has no TLC header".into()),
        });
    };
    let mut csv = csv_line::CsvLine::new();
    let fields: Vec<String> = match csv.split(line) {
        Ok(f) => f.iter().map(|f| f.to_string()).collect(),
        Err(e) => return Err(format!("cannot read the first line ({e}); use --format")),
    };
    let header_columns = || tlc_csv::Columns::from_header(&fields).map(Format::TlcCsv);
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
                    return Err(format!("cannot detect the format from the first line ({} fields); use --format", fields.len()));
                }
            }
        }
    })
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
    timestamp::parse_timestamp_ms(field).map_err(|e| format!("{name}: {e}"))
}
