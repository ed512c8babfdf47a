//! What a job emits, in a form every sink can write without knowing the job: typed [`Row`]s described by an
//! [`OutputSchema`] (the output's name, its fields with their types, whether rows have an id, the field that
//! holds their event time, and the columns a partitioned sink splits directories by).
//!
//! A job converts its own result types into rows inside its dataflow (on the worker that produced them);
//! sinks encode rows as JSON documents (files, standard output, Kafka, Elasticsearch), as Flink's CSV, or as
//! Parquet columns, from the schema alone. This is the role of Flink's `RowData` with its `RowType`, and of
//! Arroyo's Arrow record batches with their schema.
//!
//! The dead-letter output is the same for every job ([`dead_letter_schema`]); the runner appends it after the
//! job's own outputs, so a row's [`Row::output`] indexes the job's outputs followed by `dead_letter`.

use serde::{Deserialize, Serialize};

use crate::window::Window;

/// The type of one field, which decides how each sink encodes it.
///
/// | type | JSON | Flink CSV | Parquet | Elasticsearch mapping |
/// |---|---|---|---|---|
/// | `Keyword` | string | string | BYTE_ARRAY (UTF8) | `keyword` |
/// | `Text` | string | string | BYTE_ARRAY (UTF8) | `text` with a `keyword` sub-field (`ignore_above` 256) |
/// | `StoredText` | string | string | BYTE_ARRAY (UTF8) | `text`, not indexed |
/// | `GeoPoint { raw }` | geohash string | string | BYTE_ARRAY (UTF8) | `geo_point` (with a `raw` keyword sub-field) |
/// | `Long` | integer | integer | INT64 | `long` |
/// | `Double` | number; `"NaN"`, `"Infinity"`, `"-Infinity"` | Java `Double.toString` | DOUBLE | `double` |
/// | `EpochMillis` | integer, ms since the Unix epoch | integer | INT64 TIMESTAMP(MILLIS, UTC) | `date` |
/// | `LocalTimestamp` | `"yyyy-MM-ddTHH:mm:ss[.SSS]"` | `"yyyy-MM-dd HH:mm:ss[.S…]"` | INT64 TIMESTAMP(MILLIS, not UTC) | `date` |
/// | `Instant` | `"yyyy-MM-ddTHH:mm:ss.SSSZ"` (ISO-8601 UTC, always 3 fraction digits) | the same | INT64 TIMESTAMP(MILLIS, UTC) | `date` |
///
/// [`Value::Absent`] (a field that is not part of the row's kind) is left out of JSON documents and is empty or
/// null elsewhere, as [`Value::Null`].
///
/// `LocalTimestamp` is Flink SQL's `TIMESTAMP(3)` (a date and time without a zone, stored here as ms since
/// the Unix epoch read as UTC); `EpochMillis` is an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// An exact-match string.
    Keyword,
    /// Free text, searchable, with an exact `keyword` sub-field.
    Text,
    /// Text that is kept but not searched (raw input records).
    StoredText,
    /// A geohash cell, mapped as a point.
    GeoPoint {
        /// The Elasticsearch mapping adds a `raw` keyword sub-field.
        raw: bool,
    },
    /// A 64-bit signed integer.
    Long,
    /// A 64-bit IEEE float.
    Double,
    /// An instant, ms since the Unix epoch.
    EpochMillis,
    /// A date and time without a zone (ms since the Unix epoch of that date and time read as UTC).
    LocalTimestamp,
    /// An instant, ms since the Unix epoch, written as ISO-8601 UTC text with milliseconds (the alert messages
    /// of `docs/jobs/alerts.md` §4).
    Instant,
}

/// One field of an output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// Field (column, JSON key) name.
    pub name: &'static str,
    /// Its type.
    pub ty: FieldType,
    /// Whether a row may hold [`Value::Null`] here.
    pub nullable: bool,
    /// JSON encodings leave a null field out instead of writing `null` (dead letters' optional fields).
    pub omit_null: bool,
}

impl Field {
    /// A field that is never null.
    pub const fn required(name: &'static str, ty: FieldType) -> Field {
        Field { name, ty, nullable: false, omit_null: false }
    }

    /// A nullable field written as `null` when null.
    pub const fn nullable(name: &'static str, ty: FieldType) -> Field {
        Field { name, ty, nullable: true, omit_null: false }
    }

    /// A nullable field left out of JSON documents when null.
    pub const fn optional(name: &'static str, ty: FieldType) -> Field {
        Field { name, ty, nullable: true, omit_null: true }
    }
}

/// The description of one output of a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputSchema {
    /// Name: the file stem, index, or directory of the output (e.g. `pickup_count`).
    pub name: &'static str,
    /// One sentence for `taxiflow jobs` and the docs.
    pub description: &'static str,
    /// Fields in document and column order.
    pub fields: Vec<Field>,
    /// Rows carry a deterministic id (`_id` of JSON documents, Kafka key), from the output, key and window.
    pub id: bool,
    /// The field that holds the row's event time (the window end or its document timestamp), if any.
    pub event_time: Option<&'static str>,
    /// Columns a partitioned sink (S3, part files) splits directories by (Hive `name=value`), by default.
    pub partition_by: Vec<&'static str>,
    /// JSON documents carry `_index`/`_id` members besides the fields (result documents); `false` for outputs
    /// whose rows are messages of a documented format (the alert topic's records), written as their fields only
    /// and keyed by [`Row::id`].
    pub envelope: bool,
    /// The output's progress records, if it has them (the alert topic's watermark records).
    pub watermarks: Option<WatermarkRecords>,
}

/// Progress records a sink writes into an output (alerts docs §4, like the taxi replay's watermark records):
/// whenever the output's event-time frontier advances, at most every `interval_ms` and once at the end, a row
/// with field `type_field` = `type_value` and field `watermark_field` = W (ms since the Unix epoch), the other
/// fields [`Value::Absent`]: every row of the output with an event time ≤ W was written before it. A Kafka sink
/// writes it to every partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatermarkRecords {
    /// The shortest time between two records, ms.
    pub interval_ms: u64,
    /// Index of the field that names the record's kind.
    pub type_field: usize,
    /// Its value in a watermark record (`watermark`).
    pub type_value: &'static str,
    /// Index of the field that holds W.
    pub watermark_field: usize,
}

impl WatermarkRecords {
    /// The record of watermark `w` for output `output` with `fields` fields.
    pub fn row(&self, output: u16, fields: usize, w: u64) -> Row {
        let mut values = vec![Value::Absent; fields];
        values[self.type_field] = Value::Str(self.type_value.to_string());
        values[self.watermark_field] = Value::Int(w as i64);
        Row { output, id: format!("watermark-{w}"), order: w as i64, window: None, values }
    }
}

impl OutputSchema {
    /// The index of field `name`.
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }
}

/// A field value. Integers of every integer type are [`Value::Int`], strings of every string type
/// [`Value::Str`]; the schema says how to encode them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// No value (SQL NULL).
    Null,
    /// An integer (also ms since the Unix epoch for the time types).
    Int(i64),
    /// A double.
    Float(f64),
    /// A string.
    Str(String),
    /// The field is not part of this row's kind (an output whose rows are of several kinds, such as the alert
    /// topic's `alert` and `revoke` messages): JSON leaves it out, other encodings write it as null.
    Absent,
}

impl Value {
    /// Whether the value is [`Value::Null`] or [`Value::Absent`].
    #[inline]
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null | Value::Absent)
    }
}

/// One row of one output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Index of the output: the job's outputs in order, then the dead-letter output.
    pub output: u16,
    /// Deterministic id (documents) or dead-letter key (`source@offset`); the tie-breaker of the sort.
    pub id: String,
    /// Sort key within one release of the sink: a document's timestamp, a dead letter's offset.
    pub order: i64,
    /// The window the row aggregates, if it is a window result.
    pub window: Option<Window>,
    /// Values in the order of the schema's fields.
    pub values: Vec<Value>,
}

impl Row {
    /// The order rows are written in within one release of the sink: by `order`, then `id`, then the values (so
    /// that rows with the same order and id — an alert and its revoke in one millisecond — sort the same in every
    /// run; timely hands an operator the containers of one time in no fixed order). Values compare by kind (null,
    /// absent, integer, double, string), then by content (doubles by `total_cmp`).
    pub fn release_cmp(&self, other: &Row) -> std::cmp::Ordering {
        fn rank(v: &Value) -> u8 {
            match v {
                Value::Null => 0,
                Value::Absent => 1,
                Value::Int(_) => 2,
                Value::Float(_) => 3,
                Value::Str(_) => 4,
            }
        }
        fn value(a: &Value, b: &Value) -> std::cmp::Ordering {
            match (a, b) {
                (Value::Int(x), Value::Int(y)) => x.cmp(y),
                (Value::Float(x), Value::Float(y)) => x.total_cmp(y),
                (Value::Str(x), Value::Str(y)) => x.cmp(y),
                _ => rank(a).cmp(&rank(b)),
            }
        }
        (self.order, &self.id).cmp(&(other.order, &other.id)).then_with(|| {
            self.values.iter().zip(&other.values).map(|(a, b)| value(a, b)).find(|o| o.is_ne()).unwrap_or_else(|| self.values.len().cmp(&other.values.len()))
        })
    }

    /// The value of field `index`.
    pub fn value(&self, index: usize) -> &Value {
        &self.values[index]
    }
}

/// The schema of the dead-letter output (`dead_letter`), shared by every job: a record that is not counted in a
/// result, with the reason and where it came from (see `DeadLetter` in the runtime).
pub fn dead_letter_schema() -> OutputSchema {
    OutputSchema {
        name: DEAD_LETTER,
        description: "records left out of the results (malformed, late, unreadable, refused by a sink), with the reason and position",
        fields: vec![
            Field::required("reason", FieldType::Text),
            Field::required("source", FieldType::Keyword),
            Field::required("line", FieldType::Long),
            Field::required("offset", FieldType::Long),
            Field::required("record", FieldType::StoredText),
            Field::optional("event_time", FieldType::EpochMillis),
            Field::optional("watermark", FieldType::EpochMillis),
            Field::optional("document_id", FieldType::Keyword),
        ],
        id: false,
        event_time: None,
        partition_by: Vec::new(),
        envelope: true,
        watermarks: None,
    }
}

/// Where a record was read, for the dead letters a job's dataflow writes itself (e.g. a redelivered device
/// event): the same fields as the source's dead letters (all empty when unknown: [`Origin::default`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The input file path, `kafka://…/PARTITION` or `kinesis://STREAM/SHARD/SEQUENCE`.
    pub source: String,
    /// 1-based line number in the (decompressed) file; 0 for stream sources.
    pub line: u64,
    /// Byte offset of the line in the file, or the Kafka offset.
    pub offset: u64,
    /// The record as read (lossy UTF-8).
    pub record: String,
}

/// Where a record was read, for records that keep it ([`crate::job::EventTime::KEEPS_ORIGIN`]): a record of the
/// alert or dispatch job carries one from the source to the operator that may find it redelivered. The origins of
/// one source batch share one [`OriginChunk`] (its records' bytes in one buffer, each source named once), so that
/// keeping them costs a reference count per record instead of an allocation and a copy of the source's name
/// (the UTF-8 conversion is done by [`PackedOrigin::unpack`], for the rare dead letter). Serialized (checkpoints)
/// as one record's bytes: line (u64 LE), offset (u64 LE), source length in bytes (u32 LE), the source, the
/// record's bytes as read.
#[derive(Clone)]
pub struct PackedOrigin {
    chunk: std::sync::Arc<OriginChunk>,
    index: u32,
}

/// The origins of a batch of records ([`OriginsBuilder`] makes one).
#[derive(Debug, Default)]
pub struct OriginChunk {
    /// Per record: 1-based line (0 for streams), byte or Kafka offset, index into `sources`, start of its bytes in
    /// `bytes` (they end where the next record's start).
    entries: Vec<(u64, u64, u32, u32)>,
    /// The sources named by the entries (a path, `kafka://TOPIC/PARTITION`, …).
    sources: Vec<Box<str>>,
    /// The records' bytes as read, one after the other.
    bytes: Vec<u8>,
}

/// Collects the origins of a source batch in the order its records are accepted; [`OriginsBuilder::finish`]
/// gives the chunk whose entry `i` is the origin of the batch's record `i`.
#[derive(Debug, Default)]
pub struct OriginsBuilder(OriginChunk);

impl OriginsBuilder {
    /// Appends where the next record was read: `source`, the 1-based `line` (0 for streams), the byte or Kafka
    /// `offset`, and the `record`'s bytes.
    ///
    /// # Panics
    /// A batch of 4 GiB or more of records.
    pub fn push(&mut self, source: &str, line: u64, offset: u64, record: &[u8]) {
        let chunk = &mut self.0;
        if chunk.sources.last().is_none_or(|s| **s != *source) {
            chunk.sources.push(source.into());
        }
        let start = u32::try_from(chunk.bytes.len()).expect("a source batch under 4 GiB");
        chunk.entries.push((line, offset, chunk.sources.len() as u32 - 1, start));
        chunk.bytes.extend_from_slice(record);
    }

    /// How many origins it holds.
    pub fn len(&self) -> usize {
        self.0.entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.0.entries.is_empty()
    }

    /// The origins collected so far, shared, one [`PackedOrigin`] per record in order; the builder is left empty.
    pub fn finish(&mut self) -> impl Iterator<Item = PackedOrigin> {
        let chunk = std::sync::Arc::new(std::mem::take(&mut self.0));
        (0..chunk.entries.len() as u32).map(move |index| PackedOrigin { chunk: chunk.clone(), index })
    }
}

impl PackedOrigin {
    /// One record's origin in a chunk of its own: `source` (a path, `kafka://TOPIC/PARTITION`, …), the 1-based
    /// `line` (0 for streams), the byte or Kafka `offset`, and the `record`'s bytes.
    pub fn new(source: &str, line: u64, offset: u64, record: &[u8]) -> PackedOrigin {
        let mut builder = OriginsBuilder::default();
        builder.push(source, line, offset, record);
        builder.finish().next().expect("one origin")
    }

    /// The [`Origin`] it holds (the record as lossy UTF-8).
    pub fn unpack(&self) -> Origin {
        let (line, offset, source, record) = self.parts();
        Origin { source: String::from_utf8_lossy(source).into_owned(), line, offset, record: String::from_utf8_lossy(record).into_owned() }
    }

    /// Its place in the order records were read: (source, offset).
    pub fn position(&self) -> (&[u8], u64) {
        let (_, offset, source, _) = self.parts();
        (source, offset)
    }

    /// (line, offset, source, record bytes).
    fn parts(&self) -> (u64, u64, &[u8], &[u8]) {
        let chunk = &*self.chunk;
        let i = self.index as usize;
        let (line, offset, source, start) = chunk.entries[i];
        let end = chunk.entries.get(i + 1).map_or(chunk.bytes.len(), |e| e.3 as usize);
        (line, offset, chunk.sources[source as usize].as_bytes(), &chunk.bytes[start as usize..end])
    }

    /// The origin of `packed`, or the empty [`Origin::default`] when unknown.
    pub fn unpack_or_default(packed: Option<&PackedOrigin>) -> Origin {
        packed.map_or_else(Origin::default, PackedOrigin::unpack)
    }
}

impl PartialEq for PackedOrigin {
    fn eq(&self, other: &PackedOrigin) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for PackedOrigin {}

impl Serialize for PackedOrigin {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (line, offset, source, record) = self.parts();
        let mut bytes = Vec::with_capacity(20 + source.len() + record.len());
        bytes.extend_from_slice(&line.to_le_bytes());
        bytes.extend_from_slice(&offset.to_le_bytes());
        bytes.extend_from_slice(&(source.len() as u32).to_le_bytes());
        bytes.extend_from_slice(source);
        bytes.extend_from_slice(record);
        bytes.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PackedOrigin {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<PackedOrigin, D::Error> {
        use serde::de::Error;
        let bytes: Vec<u8> = Deserialize::deserialize(deserializer)?;
        let word = |at: usize| bytes.get(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
        let source_len = bytes.get(16..20).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize);
        match (word(0), word(8), source_len) {
            (Some(line), Some(offset), Some(n)) if bytes.len() >= 20 + n => {
                let source = std::str::from_utf8(&bytes[20..20 + n]).map_err(D::Error::custom)?;
                Ok(PackedOrigin::new(source, line, offset, &bytes[20 + n..]))
            }
            _ => Err(D::Error::custom("a packed origin shorter than its header")),
        }
    }
}

impl std::fmt::Debug for PackedOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.unpack().fmt(f)
    }
}

/// A row of the dead-letter output (index `output`; [`dead_letter_schema`]) for a record read at `origin`, keyed by
/// `source@offset` and sorted by offset. `event_time`/`watermark` (ms since the Unix epoch) are set for late
/// records, `document_id` for documents a sink refused.
pub fn dead_letter_row(output: u16, reason: String, origin: Origin, event_time: Option<u64>, watermark: Option<u64>, document_id: Option<String>) -> Row {
    let optional = |v: Option<u64>| v.map_or(Value::Null, |v| Value::Int(v as i64));
    let id = match &document_id {
        Some(id) => format!("rejected:{id}"),
        None => format!("{}@{}", origin.source, origin.offset),
    };
    Row {
        output,
        id,
        order: origin.offset as i64,
        window: None,
        values: vec![
            Value::Str(reason),
            Value::Str(origin.source),
            Value::Int(origin.line as i64),
            Value::Int(origin.offset as i64),
            Value::Str(origin.record),
            optional(event_time),
            optional(watermark),
            document_id.map_or(Value::Null, Value::Str),
        ],
    }
}

/// Name of the dead-letter output (file stem, index, directory).
pub const DEAD_LETTER: &str = "dead_letter";

/// The outputs of a run: the job's, then `dead_letter`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outputs {
    /// Every output; the last is the dead-letter output.
    pub schemas: Vec<OutputSchema>,
}

impl Outputs {
    /// The job's `outputs` followed by the dead-letter output.
    pub fn of_job(outputs: Vec<OutputSchema>) -> Outputs {
        let mut schemas = outputs;
        schemas.push(dead_letter_schema());
        Outputs { schemas }
    }

    /// The index of the dead-letter output.
    pub fn dead_letter(&self) -> u16 {
        (self.schemas.len() - 1) as u16
    }

    /// The schema of output `index`.
    pub fn schema(&self, index: u16) -> &OutputSchema {
        &self.schemas[index as usize]
    }

    /// The job's outputs (without the dead-letter output).
    pub fn results(&self) -> &[OutputSchema] {
        &self.schemas[..self.schemas.len() - 1]
    }
}

/// The directory value of a NULL or empty partition column (Hive's and Flink's `__DEFAULT_PARTITION__`).
pub const DEFAULT_PARTITION: &str = "__DEFAULT_PARTITION__";

/// Escapes a partition value for a `name=value` directory as Hive and Flink do (`FileUtils.escapePathName`,
/// Flink's `PartitionPathUtils.escapePathName`): `%` and two upper-case hex digits for the characters
/// `"#%'*/:=?\{[]^`, DEL and U+0000–U+001F; everything else (non-ASCII included) is kept. An empty value is
/// [`DEFAULT_PARTITION`].
pub fn escape_partition_value(value: &str) -> String {
    if value.is_empty() {
        return DEFAULT_PARTITION.to_string();
    }
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c < ' ' || c == '\u{7f}' || "\"#%'*/:=?\\{[]^".contains(c) {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_origin_gives_back_what_was_packed() {
        let packed = PackedOrigin::new("kafka://events/3", 0, 1 << 40, b"{\"a\": 1}\xff");
        assert_eq!(packed.unpack(), Origin { source: "kafka://events/3".into(), line: 0, offset: 1 << 40, record: "{\"a\": 1}\u{fffd}".into() });
        assert_eq!(packed.position(), (&b"kafka://events/3"[..], 1 << 40));
        let file = PackedOrigin::new("in.jsonl", 7, 99, b"");
        assert_eq!(file.unpack(), Origin { source: "in.jsonl".into(), line: 7, offset: 99, record: String::new() });
        assert_eq!(PackedOrigin::unpack_or_default(None), Origin::default());
        let bytes = bincode::serialize(&packed).unwrap();
        assert_eq!(bincode::deserialize::<PackedOrigin>(&bytes).unwrap(), packed, "it travels between processes");
        assert_eq!(bincode::serialize(&Box::<[u8]>::from(&bytes[8..])).unwrap(), bytes, "checkpoints of the one-allocation layout still restore");
    }

    #[test]
    fn the_origins_of_a_batch_share_one_chunk_and_each_gives_back_its_own() {
        let mut builder = OriginsBuilder::default();
        let read = [("a.jsonl", 1, 0, &b"first"[..]), ("a.jsonl", 2, 6, b""), ("kafka://t/0", 0, 41, b"third \xff"), ("a.jsonl", 3, 7, b"x")];
        for (source, line, offset, record) in read {
            builder.push(source, line, offset, record);
        }
        assert_eq!(builder.len(), 4);
        let origins: Vec<PackedOrigin> = builder.finish().collect();
        assert!(builder.is_empty(), "the builder starts the next batch empty");
        assert_eq!(origins.len(), 4);
        for (origin, (source, line, offset, record)) in origins.iter().zip(read) {
            assert_eq!(*origin, PackedOrigin::new(source, line, offset, record), "{source}:{line}");
            let bytes = bincode::serialize(origin).unwrap();
            assert_eq!(bincode::deserialize::<PackedOrigin>(&bytes).unwrap().unpack(), origin.unpack());
        }
        assert_ne!(origins[0], origins[3]);
    }

    #[test]
    fn rows_of_one_order_and_id_sort_by_their_values() {
        let row = |kind: &str| Row { output: 0, id: "a".into(), order: 5, window: None, values: vec![Value::Str(kind.into()), Value::Absent] };
        let (alert, revoke) = (row("alert"), row("revoke"));
        assert_eq!(revoke.release_cmp(&alert), std::cmp::Ordering::Greater);
        assert_eq!(alert.release_cmp(&revoke), std::cmp::Ordering::Less);
        let earlier = Row { order: 4, ..row("revoke") };
        assert_eq!(earlier.release_cmp(&alert), std::cmp::Ordering::Less, "order first");
        let other = Row { id: "0".into(), ..row("revoke") };
        assert_eq!(other.release_cmp(&alert), std::cmp::Ordering::Less, "then id");
        let mut rows = vec![revoke.clone(), alert.clone(), revoke.clone()];
        rows.sort_unstable_by(Row::release_cmp);
        assert_eq!(rows, [alert, revoke.clone(), revoke]);
    }

    #[test]
    fn partition_values_are_escaped_as_hive_does() {
        assert_eq!(escape_partition_value("A,B/C"), "A,B%2FC");
        assert_eq!(escape_partition_value("AAPL"), "AAPL");
        assert_eq!(escape_partition_value(""), DEFAULT_PARTITION);
        assert_eq!(escape_partition_value("a=b:c%d"), "a%3Db%3Ac%25d");
        assert_eq!(escape_partition_value("\"#'*?\\{[]^\u{7f}\u{0}\u{1f} é"), "%22%23%27%2A%3F%5C%7B%5B%5D%5E%7F%00%1F é");
    }
}
