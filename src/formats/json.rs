//! Rows as JSON documents: the fields of the schema in order, as the table of
//! `taxiflow_dataflows::output::FieldType` says (integers, shortest round-trip doubles as `serde_json` writes them,
//! `"NaN"`/`"Infinity"`/`"-Infinity"` for non-finite doubles, local timestamps as `yyyy-MM-ddTHH:mm:ss[.SSS]`),
//! optionally preceded by `_index` and `_id` (not for outputs without an envelope, whose rows are messages of their
//! own format); instants as ISO-8601 UTC text with milliseconds. Null fields are `null`, or left out where the field says so.

use taxiflow_dataflows::calendar::{format_instant, format_local_date_time, instant_text};
use taxiflow_dataflows::output::{FieldType, OutputSchema, Row, Value};

/// Which members a document has besides the fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// A leading `"_index": <output name>` (standard output and Kafka mix the outputs).
    pub index: bool,
    /// An `"_id"` (when the output has ids): files and Kafka; Elasticsearch takes it from the bulk action.
    pub id: bool,
}

impl Shape {
    /// `_id` and fields: the file sink.
    pub const PLAIN: Shape = Shape { index: false, id: true };
    /// `_index`, `_id` and fields: standard output and Kafka.
    pub const WITH_INDEX: Shape = Shape { index: true, id: true };
    /// Fields only: an Elasticsearch `_source`, the lines of a part file.
    pub const SOURCE: Shape = Shape { index: false, id: false };
    /// The columns of a part file: the fields only (the partition columns are left out by the caller).
    pub const COLUMNS: Shape = Shape::SOURCE;
}

/// Appends `row` as one JSON object (no newline) to `out`.
pub fn write(schema: &OutputSchema, row: &Row, shape: Shape, out: &mut Vec<u8>) {
    write_skipping(schema, row, shape, &[], out);
}

/// Appends `row` as one JSON object (no newline) to `out`, without the fields at the indices of `skip` (a part
/// file's partition columns).
pub fn write_skipping(schema: &OutputSchema, row: &Row, shape: Shape, skip: &[usize], out: &mut Vec<u8>) {
    out.push(b'{');
    let mut first = true;
    let mut key = |out: &mut Vec<u8>, name: &str| {
        if !first {
            out.push(b',');
        }
        first = false;
        string(name, out);
        out.push(b':');
    };
    if shape.index && schema.envelope {
        key(out, "_index");
        string(schema.name, out);
    }
    if shape.id && schema.id && schema.envelope {
        key(out, "_id");
        string(&row.id, out);
    }
    for (i, (field, value)) in schema.fields.iter().zip(&row.values).enumerate() {
        if skip.contains(&i) {
            continue;
        }
        if *value == Value::Absent || (*value == Value::Null && field.omit_null) {
            continue;
        }
        key(out, field.name);
        match (value, field.ty) {
            (Value::Null | Value::Absent, _) => out.extend_from_slice(b"null"),
            (Value::Int(ms), FieldType::Instant) => match instant_text(*ms) {
                Some(text) => {
                    out.push(b'"');
                    out.extend_from_slice(&text);
                    out.push(b'"');
                }
                None => {
                    let mut text = String::with_capacity(32);
                    format_instant(*ms, &mut text);
                    string(&text, out);
                }
            },
            (Value::Int(ms), FieldType::LocalTimestamp) => {
                let mut text = String::with_capacity(24);
                format_local_date_time(*ms, 'T', &mut text);
                string(&text, out);
            }
            (Value::Int(i), _) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
            (Value::Float(f), _) if f.is_finite() => serde_json::to_writer(&mut *out, f).expect("a finite double serializes"),
            (Value::Float(f), _) => string(if f.is_nan() { "NaN" } else if *f > 0.0 { "Infinity" } else { "-Infinity" }, out),
            (Value::Str(s), _) => string(s, out),
        }
    }
    out.push(b'}');
}

/// `row` as a JSON string.
pub fn to_string(schema: &OutputSchema, row: &Row, shape: Shape) -> String {
    let mut out = Vec::with_capacity(128);
    write(schema, row, shape, &mut out);
    String::from_utf8(out).expect("JSON is UTF-8")
}

/// Appends `s` as a JSON string, escaped as `serde_json` does.
/// Appends `s` as a JSON string. A string with nothing to escape (no `"`, `\\` or control character, the only
/// characters serde_json escapes) is copied as it is; any other goes through serde_json, so the output is
/// serde_json's either way.
fn string(s: &str, out: &mut Vec<u8>) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(out, s).expect("a string serializes");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        for s in ["", "plain ascii", "déjà vu ✓", "quote \" here", "back\\slash", "tab\tnew\nline", "\u{1}\u{1f}\u{7f}", "\u{2028}"] {
            let mut out = Vec::new();
            string(s, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }
    use taxiflow_dataflows::jobs::taxi::documents;
    use taxiflow_dataflows::jobs::ticker::{TickerJob, AVERAGES};
    use taxiflow_dataflows::output::dead_letter_schema;
    use taxiflow_dataflows::{Job, Window};

    #[test]
    fn taxi_documents_have_exactly_the_reference_fields_in_order() {
        let schemas = documents::schemas();
        let w = Window { start_ms: 1_356_998_400_000, end_ms: 1_357_002_000_000 };
        let pickup = documents::pickup_count("dr5ru7v", 12, w, 1_357_002_000_000);
        assert_eq!(
            to_string(&schemas[0], &pickup, Shape::PLAIN),
            r#"{"_id":"pickup_count-dr5ru7v-1356998400000-1357002000000","location":"dr5ru7v","pickup_count":12,"timestamp":1357002000000}"#
        );
        let duration = documents::trip_duration("dr5rud", "LGA", 82, 4, w, 1_357_002_000_000);
        assert_eq!(
            to_string(&schemas[1], &duration, Shape::PLAIN),
            r#"{"_id":"trip_duration-dr5rud-LGA-1356998400000-1357002000000","location":"dr5rud","airport_code":"LGA","sum_trip_duration":82,"avg_trip_duration":20.5,"timestamp":1357002000000}"#
        );
        assert_eq!(
            to_string(&schemas[1], &duration, Shape::WITH_INDEX),
            r#"{"_index":"trip_duration","_id":"trip_duration-dr5rud-LGA-1356998400000-1357002000000","location":"dr5rud","airport_code":"LGA","sum_trip_duration":82,"avg_trip_duration":20.5,"timestamp":1357002000000}"#
        );
        assert_eq!(to_string(&schemas[0], &pickup, Shape::SOURCE), r#"{"location":"dr5ru7v","pickup_count":12,"timestamp":1357002000000}"#);
    }

    #[test]
    fn dead_letters_leave_out_their_empty_optional_fields() {
        let letter = crate::runtime::dead_letter::DeadLetter {
            reason: "malformed: x".into(),
            source: "in.csv".into(),
            line: 3,
            offset: 120,
            record: "a\"b\u{1}".into(),
            event_time: None,
            watermark: None,
            document_id: None,
        };
        let expected = serde_json::to_string(&letter).unwrap();
        assert_eq!(to_string(&dead_letter_schema(), &letter.clone().into_row(2), Shape::PLAIN), expected);
        let late = crate::runtime::dead_letter::DeadLetter { event_time: Some(5), watermark: Some(9), ..letter };
        assert_eq!(to_string(&dead_letter_schema(), &late.clone().into_row(2), Shape::WITH_INDEX), format!("{{\"_index\":\"dead_letter\",{}", &serde_json::to_string(&late).unwrap()[1..]));
    }

    #[test]
    fn ticker_rows_as_json_lines() {
        let schema = &TickerJob::default().outputs()[0];
        assert_eq!(schema.name, AVERAGES);
        let row = |price: Value| Row { output: 0, id: "x".into(), order: 0, window: None, values: vec![Value::Str("AAPL".into()), price, Value::Int(1_796_112_061_500)] };
        let columns = |r: &Row| {
            let mut out = Vec::new();
            write_skipping(schema, r, Shape::COLUMNS, &[0], &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(columns(&row(Value::Float(42.125))), r#"{"price":42.125,"event_time":"2026-12-01T08:01:01.5"}"#);
        assert_eq!(columns(&row(Value::Float(f64::NAN))), r#"{"price":"NaN","event_time":"2026-12-01T08:01:01.5"}"#);
        assert_eq!(columns(&row(Value::Float(f64::NEG_INFINITY))), r#"{"price":"-Infinity","event_time":"2026-12-01T08:01:01.5"}"#);
        assert_eq!(columns(&row(Value::Null)), r#"{"price":null,"event_time":"2026-12-01T08:01:01.5"}"#);
        assert_eq!(to_string(schema, &row(Value::Null), Shape::WITH_INDEX), r#"{"_index":"ticker_averages","_id":"x","ticker":"AAPL","price":null,"event_time":"2026-12-01T08:01:01.5"}"#);
    }
}
