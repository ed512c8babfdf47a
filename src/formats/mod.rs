//! Encodings of output rows, from their schema alone: JSON documents ([`json`]), Flink's CSV ([`csv`], with
//! Java's `Double.toString` in [`java_double`]) and Parquet ([`parquet`]). Sinks pick one; a row is encoded where
//! the sink writes it.

pub mod csv;
pub mod java_double;
pub mod json;
pub mod parquet;

/// The layout of a part file (`--sink-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FileFormat {
    /// Flink's `csv` format: one line per row, no header, the partition columns left out.
    Csv,
    /// Apache Parquet, Snappy-compressed, the partition columns left out.
    Parquet,
    /// One JSON object per line, the partition columns left out.
    Jsonl,
}

impl FileFormat {
    /// The file name extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Parquet => "parquet",
            FileFormat::Jsonl => "jsonl",
        }
    }
}
