//! The dead-letter output: every record that is not counted in a result, with the reason.

use serde::{Deserialize, Serialize};

/// One dead letter, written as a JSON line to `DIR/dead_letter.jsonl` by the file sink.
///
/// `reason` is `"late"` for a trip behind its partition's watermark (then `event_time` and `watermark` are
/// set, ms since the Unix epoch), `"malformed: …"` for a record that cannot be parsed, or `"unreadable: …"`
/// when the rest of a file cannot be read (I/O or decompression error), or `"rejected by the cluster: …"` for
/// a result document Elasticsearch refused (with its status and reason).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Why the record is here.
    pub reason: String,
    /// The input file path.
    pub source: String,
    /// 1-based line number in the (decompressed) file.
    pub line: u64,
    /// Byte offset of the line in the (decompressed) file.
    pub offset: u64,
    /// The record as read (lossy UTF-8).
    pub record: String,
    /// Event time of a late trip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_time: Option<u64>,
    /// Watermark a late trip is behind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watermark: Option<u64>,
    /// The `_id` of a result document the Elasticsearch sink could not index (then `source` is the index,
    /// `record` the document, `line` and `offset` 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_id: Option<String>,
}

impl DeadLetter {
    /// The dead letter's own id: `source@offset` for input records, `rejected:<document id>` for refused
    /// documents.
    pub fn key(&self) -> String {
        match &self.document_id {
            Some(id) => format!("rejected:{id}"),
            None => format!("{}@{}", self.source, self.offset),
        }
    }
}
