//! `--from file://DIR`: what the file sink wrote. `DIR/<output>.jsonl` files are followed like `tail -F` (the lines
//! appended since the last read; a file that got shorter, cut back by a restart to its checkpoint, is read again from
//! its start), part files of partitioned outputs (`DIR/k=v/…/part-*.{csv,jsonl,parquet}`, visible only complete)
//! are read once each, and `_dead_letter/` part files are counted as dead letters. Hidden files (`.part-…inprogress`)
//! are never read.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Map, Value};

use super::{Docs, Store};

/// The output of the part files of a partitioned output: the only job with one is the ticker job (docs/jobs/ticker.md
/// §3), whose rows are `ticker_averages`.
pub const PARTITIONED_OUTPUT: &str = "ticker_averages";

/// The file store of `DIR`.
pub struct FileStore {
    dir: PathBuf,
    /// Per JSON-lines file: the bytes read (up to the last complete line).
    offsets: BTreeMap<PathBuf, u64>,
    /// Part files read.
    parts: BTreeSet<PathBuf>,
}

impl FileStore {
    /// Opens `file://DIR`.
    ///
    /// # Errors
    /// `--from`: no directory, or not a directory.
    pub fn open(url: &str) -> anyhow::Result<FileStore> {
        let dir = url.strip_prefix("file://").filter(|d| !d.is_empty()).ok_or_else(|| anyhow::anyhow!("--from {url:?}: file:// needs a directory"))?;
        let dir = PathBuf::from(dir);
        if !dir.is_dir() {
            anyhow::bail!("--from {url:?}: {} is not a directory", dir.display());
        }
        Ok(FileStore { dir, offsets: BTreeMap::new(), parts: BTreeSet::new() })
    }

    fn read_lines(&mut self, path: &Path, output: &str, docs: &mut Docs) -> anyhow::Result<()> {
        let mut file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let len = file.metadata()?.len();
        let mut offset = self.offsets.get(path).copied().unwrap_or(0);
        if len < offset {
            offset = 0;
        }
        file.seek(SeekFrom::Start(offset))?;
        let mut bytes = Vec::new();
        file.take(len - offset).read_to_end(&mut bytes)?;
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        for line in bytes[..complete].split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice(line) {
                Ok(doc) => docs.push((output.to_string(), doc)),
                Err(e) => tracing::warn!(file = %path.display(), error = %e, "dashboard: a line is not JSON; left out"),
            }
        }
        self.offsets.insert(path.to_path_buf(), offset + complete as u64);
        Ok(())
    }
}

impl Store for FileStore {
    fn describe(&self) -> String {
        format!("file://{}", self.dir.display())
    }

    fn read(&mut self) -> anyhow::Result<Docs> {
        let mut docs = Vec::new();
        let mut files = Vec::new();
        walk(&self.dir, &mut files).with_context(|| format!("--from file://{}: cannot list", self.dir.display()))?;
        for path in files {
            let relative = path.strip_prefix(&self.dir).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !relative.contains('/') && name.ends_with(".jsonl") {
                let output = name.trim_end_matches(".jsonl").to_string();
                self.read_lines(&path, &output, &mut docs)?;
            } else if name.starts_with("part-") && !self.parts.contains(&path) {
                let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
                docs.extend(part_file(&relative, &bytes)?);
                self.parts.insert(path);
            }
        }
        Ok(docs)
    }
}

/// Every file under `dir` that is not hidden, sorted.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')) {
            continue;
        }
        if path.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Undoes Hive's escaping of a partition value (`%` and two hex digits).
fn unescape(value: &str) -> String {
    percent_encoding::percent_decode_str(value).decode_utf8_lossy().into_owned()
}

/// The documents of one part file at `relative` (`ticker=AMZN/part-….csv` under the sink's prefix): its rows with
/// the partition columns of its path (`date` is left out: it is derived from the event time), or its dead letters
/// when it is under `_dead_letter/`.
///
/// # Errors
/// A Parquet file that does not decode.
pub fn part_file(relative: &str, bytes: &[u8]) -> anyhow::Result<Docs> {
    if relative.starts_with("_dead_letter/") {
        let n = bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count();
        return Ok((0..n).map(|_| (taxiflow_dataflows::output::DEAD_LETTER.to_string(), Value::Null)).collect());
    }
    let mut columns = Map::new();
    for segment in relative.split('/') {
        if let Some((k, v)) = segment.split_once('=') {
            if k != "date" {
                let v = unescape(v);
                columns.insert(k.to_string(), if v == taxiflow_dataflows::output::DEFAULT_PARTITION { Value::Null } else { Value::String(v) });
            }
        }
    }
    let rows = if relative.ends_with(".csv") {
        csv_rows(bytes)
    } else if relative.ends_with(".jsonl") {
        bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()).filter_map(|l| serde_json::from_slice::<Map<String, Value>>(l).ok()).collect()
    } else if relative.ends_with(".parquet") {
        parquet_rows(bytes).with_context(|| format!("{relative}: not a readable Parquet file"))?
    } else {
        Vec::new()
    };
    Ok(rows
        .into_iter()
        .map(|mut row| {
            for (k, v) in &columns {
                row.insert(k.clone(), v.clone());
            }
            (PARTITIONED_OUTPUT.to_string(), Value::Object(row))
        })
        .collect())
}

/// A double as the JSON sink writes it: a number, or `"NaN"`, `"Infinity"`, `"-Infinity"`.
fn double(x: f64) -> Value {
    serde_json::Number::from_f64(x).map(Value::Number).unwrap_or_else(|| {
        Value::String(if x.is_nan() {
            "NaN"
        } else if x > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        }
        .into())
    })
}

/// The ticker job's CSV rows (`<price>,"<yyyy-MM-dd HH:mm:ss[.S]>"`, docs/jobs/ticker.md §3) as the JSON-lines
/// part files hold them: `price` and `event_time` (`yyyy-MM-ddTHH:mm:ss[.S]`).
fn csv_rows(bytes: &[u8]) -> Vec<Map<String, Value>> {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .filter(|l| !l.is_empty())
        .filter_map(|line| {
            let (price, time) = line.split_once(',')?;
            let price = match price {
                "" => Value::Null,
                p => double(p.parse::<f64>().ok().or(match p {
                    "NaN" => Some(f64::NAN),
                    "Infinity" => Some(f64::INFINITY),
                    "-Infinity" => Some(f64::NEG_INFINITY),
                    _ => None,
                })?),
            };
            let mut row = Map::new();
            row.insert("price".into(), price);
            // As the JSON sink writes a local timestamp: `T` between date and time.
            row.insert("event_time".into(), Value::String(time.trim_matches('"').replacen(' ', "T", 1)));
            Some(row)
        })
        .collect()
}

/// A local timestamp (ms read as UTC) as the JSON sink writes it: `yyyy-MM-ddTHH:mm:ss[.SSS]`.
fn local_time(ms: i64) -> Value {
    let mut text = String::new();
    taxiflow_dataflows::calendar::format_local_date_time(ms, 'T', &mut text);
    Value::String(text)
}

/// The rows of a Parquet part file (`price` DOUBLE, `event_time` TIMESTAMP(MILLIS)), the time as the JSON sink writes
/// a local timestamp.
fn parquet_rows(bytes: &[u8]) -> anyhow::Result<Vec<Map<String, Value>>> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;
    let reader = SerializedFileReader::new(bytes::Bytes::copy_from_slice(bytes))?;
    let mut rows = Vec::new();
    for row in reader.get_row_iter(None)? {
        let row = row?;
        let mut out = Map::new();
        for (name, field) in row.get_column_iter() {
            let value = match field {
                Field::Null => Value::Null,
                Field::Double(x) => double(*x),
                Field::Float(x) => double(f64::from(*x)),
                Field::Long(x) => Value::from(*x),
                Field::Int(x) => Value::from(*x),
                Field::TimestampMillis(ms) => local_time(*ms),
                Field::TimestampMicros(us) => local_time(us.div_euclid(1000)),
                Field::Str(s) => Value::String(s.clone()),
                other => Value::String(other.to_string()),
            };
            out.insert(name.clone(), value);
        }
        rows.push(out);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_files_read_as_the_json_sink_writes() {
        let docs = part_file("ticker=A%2FB/part-0000000001-0000.csv", b"42.125,\"2026-12-01 08:01:00\"\nNaN,\"2026-12-01 08:02:00\"\n,\"2026-12-01 08:03:00\"\n").unwrap();
        let rows: Vec<Value> = docs.into_iter().map(|(o, d)| {
            assert_eq!(o, PARTITIONED_OUTPUT);
            d
        }).collect();
        assert_eq!(rows[0], serde_json::json!({"price": 42.125, "event_time": "2026-12-01T08:01:00", "ticker": "A/B"}));
        assert_eq!(rows[1]["price"], "NaN");
        assert_eq!(rows[2]["price"], Value::Null);
        assert_eq!(part_file("_dead_letter/part-1.jsonl", b"{}\n{}\n").unwrap().len(), 2);
    }
}
