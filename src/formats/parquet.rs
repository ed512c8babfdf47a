//! Rows as an Apache Parquet file (`--sink-format parquet`, what Athena users pick): one row group, Snappy
//! compression, a part file's partition columns left out (Hive keeps them in the path). Column types follow the schema:
//! strings `BYTE_ARRAY (STRING)`, `Long` `INT64`, `Double` `DOUBLE`, `EpochMillis` `INT64 TIMESTAMP(MILLIS, true)`,
//! `LocalTimestamp` `INT64 TIMESTAMP(MILLIS, false)` (Flink's `TIMESTAMP(3)`, not adjusted to UTC); nullable
//! fields are `optional`. Written with the `parquet` crate's low-level column writers (no Arrow).

use std::sync::Arc;

use anyhow::Context as _;
use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use taxiflow_dataflows::output::{Field, FieldType, OutputSchema, Row, Value};

/// The Parquet message type of the fields of `schema` but those at the indices of `skip` (the partition columns).
pub fn message_type(schema: &OutputSchema, skip: &[usize]) -> String {
    let mut text = format!("message {} {{\n", schema.name);
    for (_, field) in columns(schema, skip) {
        let repetition = if field.nullable { "optional" } else { "required" };
        let ty = match field.ty {
            FieldType::Keyword | FieldType::Text | FieldType::StoredText | FieldType::GeoPoint { .. } => "binary",
            FieldType::Long | FieldType::EpochMillis | FieldType::Instant | FieldType::LocalTimestamp => "int64",
            FieldType::Double => "double",
        };
        let logical = match field.ty {
            FieldType::Keyword | FieldType::Text | FieldType::StoredText | FieldType::GeoPoint { .. } => " (STRING)",
            FieldType::EpochMillis | FieldType::Instant => " (TIMESTAMP(MILLIS,true))",
            FieldType::LocalTimestamp => " (TIMESTAMP(MILLIS,false))",
            FieldType::Long | FieldType::Double => "",
        };
        text.push_str(&format!("  {repetition} {ty} {}{logical};\n", field.name));
    }
    text.push('}');
    text
}

fn columns<'a>(schema: &'a OutputSchema, skip: &'a [usize]) -> impl Iterator<Item = (usize, &'a Field)> {
    schema.fields.iter().enumerate().filter(move |(i, _)| !skip.contains(i))
}

/// `rows` of `schema` as a complete Parquet file, without the fields at the indices of `skip`.
///
/// # Errors
/// A value that does not match its field's type, or an encoder error.
pub fn encode_skipping(schema: &OutputSchema, rows: &[&Row], skip: &[usize]) -> anyhow::Result<Vec<u8>> {
    let message = Arc::new(parse_message_type(&message_type(schema, skip)).context("parquet schema")?);
    let props = Arc::new(WriterProperties::builder().set_compression(Compression::SNAPPY).build());
    let mut writer = SerializedFileWriter::new(Vec::new(), message, props)?;
    let mut group = writer.next_row_group()?;
    for (index, field) in columns(schema, skip) {
        let mut column = group.next_column()?.context("a column per field")?;
        let values = rows.iter().map(|r| r.value(index));
        let levels: Vec<i16> = values.clone().map(|v| i16::from(!v.is_null())).collect();
        let levels = field.nullable.then_some(levels.as_slice());
        let mismatch = || anyhow::anyhow!("parquet: field {} holds a value of another type", field.name);
        match field.ty {
            FieldType::Double => {
                let data = values.filter(|v| !v.is_null()).map(|v| if let Value::Float(f) = v { Ok(*f) } else { Err(mismatch()) }).collect::<anyhow::Result<Vec<f64>>>()?;
                column.typed::<DoubleType>().write_batch(&data, levels, None)?;
            }
            FieldType::Long | FieldType::EpochMillis | FieldType::Instant | FieldType::LocalTimestamp => {
                let data = values.filter(|v| !v.is_null()).map(|v| if let Value::Int(i) = v { Ok(*i) } else { Err(mismatch()) }).collect::<anyhow::Result<Vec<i64>>>()?;
                column.typed::<Int64Type>().write_batch(&data, levels, None)?;
            }
            _ => {
                let data = values
                    .filter(|v| !v.is_null())
                    .map(|v| if let Value::Str(s) = v { Ok(ByteArray::from(s.as_bytes().to_vec())) } else { Err(mismatch()) })
                    .collect::<anyhow::Result<Vec<ByteArray>>>()?;
                column.typed::<ByteArrayType>().write_batch(&data, levels, None)?;
            }
        }
        column.close()?;
    }
    group.close()?;
    Ok(writer.into_inner()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use taxiflow_dataflows::jobs::ticker::TickerJob;
    use taxiflow_dataflows::Job;

    #[test]
    fn ticker_rows_read_back() {
        let schema = &TickerJob::default().outputs()[0];
        assert_eq!(message_type(schema, &[0]), "message ticker_averages {\n  optional double price;\n  required int64 event_time (TIMESTAMP(MILLIS,false));\n}");
        let row = |price: Value, end: i64| Row { output: 0, id: String::new(), order: 0, window: None, values: vec![Value::Str("AAPL".into()), price, Value::Int(end)] };
        let rows = [row(Value::Float(42.125), 1_796_112_060_000), row(Value::Null, 1_796_112_120_000)];
        let bytes = encode_skipping(schema, &rows.iter().collect::<Vec<_>>(), &[0]).unwrap();
        let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
        assert_eq!(reader.metadata().file_metadata().num_rows(), 2);
        assert_eq!(reader.metadata().row_group(0).column(0).compression(), Compression::SNAPPY);
        let got: Vec<String> = reader.get_row_iter(None).unwrap().map(|r| r.unwrap().to_string()).collect();
        assert_eq!(got, ["{price: 42.125, event_time: 2026-12-01 08:01:00.000 +00:00}", "{price: null, event_time: 2026-12-01 08:02:00.000 +00:00}"]);
    }
}
