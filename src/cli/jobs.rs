//! `taxiflow jobs`: every job of the registry with its inputs, outputs (fields and types, partitions) and
//! defaults.

use taxiflow_dataflows::output::{FieldType, Outputs};

/// The listing `taxiflow jobs` prints.
pub fn listing() -> String {
    let mut text = String::new();
    for (i, entry) in crate::jobs::JOBS.iter().enumerate() {
        let info = (entry.info)();
        let outputs = (entry.outputs)();
        text.push_str(&format!("{}{}\n", info.name, if i == 0 { " (default)" } else { "" }));
        text.push_str(&format!("  {}\n", info.summary));
        text.push_str(&format!("  inputs:   {}\n", info.inputs));
        text.push_str(&format!("  defaults: {}\n", info.defaults));
        text.push_str("  outputs:\n");
        for schema in Outputs::of_job(outputs).schemas {
            let fields: Vec<String> = schema.fields.iter().map(|f| format!("{} {}{}", f.name, type_name(f.ty), if f.nullable { "?" } else { "" })).collect();
            text.push_str(&format!("    {} ({}{}): {}\n", schema.name, fields.join(", "), match (schema.id, schema.envelope) {
                (true, true) => ", with _id",
                (true, false) => ", keyed by id",
                _ => "",
            }, schema.description));
            if !schema.partition_by.is_empty() {
                text.push_str(&format!("      partitioned by {}\n", schema.partition_by.join(", ")));
            }
        }
        text.push_str(&format!("  docs:     {}\n\n", info.docs));
    }
    text
}

fn type_name(ty: FieldType) -> &'static str {
    match ty {
        FieldType::Keyword | FieldType::Text | FieldType::StoredText => "string",
        FieldType::GeoPoint { .. } => "geohash",
        FieldType::Long => "long",
        FieldType::Double => "double",
        FieldType::EpochMillis => "epoch-ms",
        FieldType::LocalTimestamp => "timestamp",
        FieldType::Instant => "instant",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_job_is_listed_with_its_outputs() {
        let text = super::listing();
        assert!(text.starts_with("taxi (default)\n"), "{text}");
        for needle in ["pickup_count (location geohash, pickup_count long, timestamp epoch-ms, with _id)", "ticker\n", "ticker_averages (ticker string?, price double?, event_time timestamp, with _id)", "partitioned by ticker", "docs/jobs/ticker.md"] {
            assert!(text.contains(needle), "{needle} in\n{text}");
        }
    }
}
