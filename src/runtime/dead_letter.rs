//! The dead-letter output: every record that is not counted in a result, with the reason. Its schema is
//! `taxiflow_dataflows::output::dead_letter_schema` (the same for every job); [`DeadLetter::into_row`] makes the
//! row sinks write.

use serde::{Deserialize, Serialize};
use taxiflow_dataflows::output::{dead_letter_row, Origin, Row};

/// One dead letter (the file sink writes it as a JSON line to `DIR/dead_letter.jsonl`).
///
/// `reason` is `"late"` for a record behind its partition's watermark (see the job's lateness rule) (then `event_time` and `watermark` are
/// set, ms since the Unix epoch), `"malformed: …"` for a record that cannot be parsed, or `"unreadable: …"`
/// when the rest of a file cannot be read (I/O or decompression error), or `"rejected by the cluster: …"` for
/// a result document Elasticsearch refused (with its status and reason).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Why the record is here.
    pub reason: String,
    /// Where it was read: the input file path, `kafka://…/PARTITION` or `kinesis://STREAM/SHARD/SEQUENCE` (see
    /// `source_shell::Position`).
    pub source: String,
    /// 1-based line number in the (decompressed) file; 0 for stream sources.
    pub line: u64,
    /// Byte offset of the line in the (decompressed) file, or the Kafka offset.
    pub offset: u64,
    /// The record as read (lossy UTF-8).
    pub record: String,
    /// Event time of a late record, ms since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_time: Option<u64>,
    /// Watermark a late record is behind, ms since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watermark: Option<u64>,
    /// The `_id` of a result document the Elasticsearch sink could not index (then `source` is the index,
    /// `record` the document, `line` and `offset` 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_id: Option<String>,
}

impl DeadLetter {
    /// The row of the dead-letter output (index `output` of the run's outputs), sorted by offset and keyed by
    /// `source@offset` (`rejected:<document id>` for refused documents; [`dead_letter_row`]).
    pub fn into_row(self, output: u16) -> Row {
        let origin = Origin { source: self.source, line: self.line, offset: self.offset, record: self.record };
        dead_letter_row(output, self.reason, origin, self.event_time, self.watermark, self.document_id)
    }
}
