//! Rows as Flink's `csv` format writes them (Jackson's CSV generator with Flink's defaults; ticker docs §3): the
//! fields of the schema in order (a part file leaves out its partition columns), `,` between fields, LF after each row, no
//! header. Doubles in Java's `Double.toString` layout ([`super::java_double`]), integers as digits, local
//! timestamps as `yyyy-MM-dd HH:mm:ss[.S…]`, NULL as an empty field. A string is quoted (with `"` doubled) when it
//! is empty or has a character below `-` (space, quote, comma, control characters…), as Jackson's loose quoting
//! check does; so a timestamp, which has a space, is always quoted: `42.125,"2026-12-01 08:01:00"`.

use taxiflow_dataflows::calendar::{format_instant, format_local_date_time};
use taxiflow_dataflows::output::{FieldType, OutputSchema, Row, Value};

/// Appends `row` as one CSV line (with its LF) to `out`, without the fields at the indices of `skip` (a part
/// file's partition columns).
pub fn write_skipping(schema: &OutputSchema, row: &Row, skip: &[usize], out: &mut String) {
    let mut first = true;
    for (i, (field, value)) in schema.fields.iter().zip(&row.values).enumerate() {
        if skip.contains(&i) {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        match (value, field.ty) {
            (Value::Null | Value::Absent, _) => {}
            (Value::Int(ms), FieldType::LocalTimestamp) => {
                let mut text = String::with_capacity(24);
                format_local_date_time(*ms, ' ', &mut text);
                quoted(&text, out);
            }
            (Value::Int(ms), FieldType::Instant) => {
                let mut text = String::with_capacity(24);
                format_instant(*ms, &mut text);
                quoted(&text, out);
            }
            (Value::Int(i), _) => out.push_str(itoa::Buffer::new().format(*i)),
            (Value::Float(f), _) => super::java_double::write(*f, out),
            (Value::Str(s), _) => quoted(s, out),
        }
    }
    out.push('\n');
}

/// A string field, quoted when Jackson's loose check says so.
fn quoted(s: &str, out: &mut String) {
    if s.is_empty() || s.chars().any(|c| c < '-') {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taxiflow_dataflows::jobs::ticker::TickerJob;
    use taxiflow_dataflows::Job;

    fn line(price: Value, end_ms: i64) -> String {
        let schema = &TickerJob::default().outputs()[0];
        let row = Row { output: 0, id: String::new(), order: 0, window: None, values: vec![Value::Str("AAPL".into()), price, Value::Int(end_ms)] };
        let mut out = String::new();
        write_skipping(schema, &row, &[0], &mut out);
        out
    }

    #[test]
    fn flinks_rows() {
        let end = 1_796_112_060_000;
        assert_eq!(line(Value::Float(42.125), end), "42.125,\"2026-12-01 08:01:00\"\n");
        assert_eq!(line(Value::Float(1.0e-4), end), "1.0E-4,\"2026-12-01 08:01:00\"\n");
        assert_eq!(line(Value::Float(f64::NAN), end), "NaN,\"2026-12-01 08:01:00\"\n");
        assert_eq!(line(Value::Float(f64::NEG_INFINITY), end), "-Infinity,\"2026-12-01 08:01:00\"\n");
        assert_eq!(line(Value::Null, end), ",\"2026-12-01 08:01:00\"\n");
        assert_eq!(line(Value::Float(42.0), end + 1500), "42.0,\"2026-12-01 08:01:01.5\"\n");
    }

    #[test]
    fn strings_are_quoted_like_jackson() {
        let mut out = String::new();
        quoted("AAPL", &mut out);
        quoted("a,b", &mut out);
        quoted("say \"hi\"", &mut out);
        quoted("", &mut out);
        quoted("-x.y", &mut out);
        assert_eq!(out, "AAPL\"a,b\"\"say \"\"hi\"\"\"\"\"-x.y");
    }
}
