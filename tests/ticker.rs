//! The ticker job (docs/jobs/ticker.md) against real servers: moto's S3, kinesalite's Kinesis, and DuckDB in the
//! role of Athena. Every result is compared with `scripts/ticker_reference.py`, an independent implementation.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::s3::{duckdb_rows, reference_rows, LocalS3, ENV};

/// `taxiflow generate ticker` of `count` events from 2026-12-01T08:00 with `seed`, spaced 250 ms, moved back by
/// up to `disorder` (more than the 5 s watermark delay makes late events), into `to`.
fn generate(to: &str, count: u64, seed: u64, disorder: &str, extra: &[&str]) {
    let output = common::taxiflow()
        .envs(ENV)
        .args(["generate", "ticker", "--to", to, "--count", &count.to_string(), "--seed", &seed.to_string(), "--start-time", "2026-12-01T08:00:00", "--max-disorder", disorder])
        .args(extra)
        .output()
        .unwrap();
    assert!(output.status.success(), "generate: {}", String::from_utf8_lossy(&output.stderr));
}

fn ticker(args: &[&str]) -> std::process::Output {
    let output = common::taxiflow().envs(ENV).args(["run", "ticker"]).args(args).output().unwrap();
    assert!(output.status.success(), "taxiflow run ticker {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output
}

/// The dead letters of a part-file sink's `_dead_letter` directory (local), as (source, line, reason).
fn dead_letters(dir: &Path) -> BTreeSet<(String, u64, String)> {
    let mut letters = BTreeSet::new();
    let dir = dir.join("_dead_letter");
    for entry in std::fs::read_dir(&dir).into_iter().flatten() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_str().unwrap().starts_with("part-") {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let d: serde_json::Value = serde_json::from_str(line).unwrap();
                let reason = d["reason"].as_str().unwrap();
                let kind = if reason == "late" { "late" } else { assert!(reason.starts_with("malformed: "), "{reason}"); "malformed" };
                letters.insert((d["source"].as_str().unwrap().to_string(), d["line"].as_u64().unwrap(), kind.to_string()));
            }
        }
    }
    letters
}

/// The reference's dead letters, in the same shape.
fn expected_dead_letters(tsv: &Path) -> BTreeSet<(String, u64, String)> {
    std::fs::read_to_string(tsv).unwrap().lines().map(|l| {
        let f: Vec<&str> = l.split('\t').collect();
        (f[0].to_string(), f[1].parse().unwrap(), f[2].to_string())
    }).collect()
}

#[test]
fn from_a_file_into_s3_as_csv_and_parquet_equals_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("ticks.jsonl");
    generate(input.to_str().unwrap(), 30_000, 1, "7s", &[]);
    let dead = dir.path().join("dead.tsv");
    let expected = reference_rows(&[&input], Some(&dead));
    assert!(expected.lines().count() > 500, "{expected}");
    assert!(!expected_dead_letters(&dead).is_empty(), "the input has late events");
    let s3 = LocalS3::start();
    s3.bucket("ticks");
    let input_arg = input.to_str().unwrap();
    let endpoint = ["--endpoint-url", s3.url.as_str()];
    let output = ticker(&[&["--input", input_arg, "-w", "2", "--sink", "s3://ticks/csv"][..], &endpoint].concat());
    assert_eq!(duckdb_rows(Some(&s3), "s3://ticks/csv", "csv", false), expected, "CSV read back by DuckDB");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(common::summary_value(&stdout, "late"), expected_dead_letters(&dead).len() as u64, "{stdout}");
    // A bounded input: every partition has its _SUCCESS at the end, and only part files and markers are there.
    let keys = s3.keys("ticks", "csv/");
    let partitions: BTreeSet<&str> = keys.iter().filter(|(k, _)| k.contains("ticker=")).map(|(k, _)| k.rsplit_once('/').unwrap().0).collect();
    assert_eq!(partitions.len(), 5, "{keys:?}");
    for p in &partitions {
        assert!(keys.iter().any(|(k, n)| *k == format!("{p}/_SUCCESS") && *n == 0), "{p} has no empty _SUCCESS: {keys:?}");
    }
    assert!(keys.iter().all(|(k, _)| k.ends_with("/_SUCCESS") || k.rsplit('/').next().unwrap().starts_with("part-")), "{keys:?}");
    // The exact Flink CSV text: "<Java double>,"<yyyy-MM-dd HH:mm:ss>"".
    let (first, _) = keys.iter().find(|(k, _)| k.starts_with("csv/ticker=AAPL/part-")).unwrap();
    let text = String::from_utf8(s3.get("ticks", first)).unwrap();
    let line = regex_like_flink_csv();
    assert!(text.lines().all(line), "{text}");

    // Parquet, with a day level (--partition-by ticker,date).
    ticker(&[&["--input", input_arg, "--sink", "s3://ticks/parquet", "--sink-format", "parquet", "--partition-by", "ticker,date"][..], &endpoint].concat());
    assert_eq!(duckdb_rows(Some(&s3), "s3://ticks/parquet", "parquet", true), expected, "Parquet read back by DuckDB");
    assert!(s3.keys("ticks", "parquet/ticker=TBV/date=2026-12-01/").iter().any(|(k, _)| k.ends_with(".parquet")));
}

/// A checker of Flink's CSV rows: a Java double (or nothing), a comma, a quoted timestamp.
fn regex_like_flink_csv() -> impl Fn(&str) -> bool {
    |l: &str| {
        let Some((price, ts)) = l.split_once(',') else { return false };
        let price_ok = price.is_empty() || price == "NaN" || price.parse::<f64>().is_ok() && price.contains('.');
        let ts_ok = ts.len() == 21 && ts.starts_with('"') && ts.ends_with('"') && ts.as_bytes()[11] == b' ';
        price_ok && ts_ok
    }
}

#[test]
fn from_kinesis_into_s3_equals_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("ticks.jsonl");
    // The same events into a file (for the reference) and into a one-shard stream, as the blog's producer does.
    generate(input.to_str().unwrap(), 12_000, 2, "7s", &[]);
    // One moto server is both the Kinesis and the S3 endpoint (--endpoint-url is shared, as on AWS).
    let aws = LocalS3::start();
    aws.bucket("ticks");
    let kinesis = common::kinesis::client(&aws.url);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let stream = taxiflow::connectors::kinesis::KinesisStream { name: "ticks".into() };
    runtime.block_on(taxiflow::connectors::kinesis::create_stream(&kinesis, &stream, 1)).unwrap();
    generate("kinesis://ticks", 12_000, 2, "7s", &["--endpoint-url", &aws.url]);
    ticker(&["--source", "kinesis://ticks", "--stop-at", "latest", "--endpoint-url", &aws.url, "--sink", "s3://ticks/out", "-w", "2"]);
    assert_eq!(duckdb_rows(Some(&aws), "s3://ticks/out", "csv", false), reference_rows(&[&input], None));
}

#[test]
fn malformed_and_late_events_are_dead_lettered_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("dirty.jsonl");
    let lines = [
        r#"{"event_time": "2026-12-01T08:00:01.500", "ticker": "AAPL", "price": 10.5}"#,
        r#"{"event_time": "2026-12-01T08:00:02", "ticker": "AAPL", "price": "11.5"}"#,
        r#"{"event_time": "2026-12-01T08:00:03Z", "ticker": "AAPL", "price": 1}"#,
        r#"{"event_time": "2026-12-01 08:00:03", "ticker": "AAPL", "price": 1}"#,
        r#"{"event_time": 1796112003000, "ticker": "AAPL", "price": 1}"#,
        r#"{"ticker": "AAPL", "price": 1}"#,
        r#"{"event_time": "2026-02-30T08:00:03", "ticker": "AAPL", "price": 1}"#,
        r#"{"event_time": "2026-12-01T08:00:04", "ticker": "AAPL", "price": "abc"}"#,
        r#"{"event_time": "2026-12-01T08:00:04", "ticker": "AAPL", "price": true}"#,
        r#"{"event_time": "2026-12-01T08:00:04", "ticker": "AAPL", "price": 1e400}"#,
        r#"{"event_time": "2026-12-01T08:00:04", "ticker": "AAPL", "price": "42d"}"#,
        r#"{"event_time": "2026-12-01T08:00:04", "ticker": "AAPL", "price": 1, "price": 2}"#,
        "not json at all",
        r#"["event_time", "2026-12-01T08:00:04"]"#,
        "",
        r#"{"event_time": "2026-12-01T08:00:05", "ticker": 42, "price": null}"#,
        r#"{"event_time": "2026-12-01T08:00:06", "price": " NaN "}"#,
        r#"{"event_time": "2026-12-01T08:01:07", "ticker": "A,B/C", "price": 3}"#,
        // The watermark is now 08:01:02: the window ending 08:01:00 has fired, this one is late.
        r#"{"event_time": "2026-12-01T08:00:59.999", "ticker": "AAPL", "price": 99}"#,
        // 40 s behind the watermark but in a window that has not fired: counted.
        r#"{"event_time": "2026-12-01T08:01:00", "ticker": "AAPL", "price": 7}"#,
    ];
    std::fs::write(&input, lines.join("\n") + "\r\n").unwrap();
    let out = dir.path().join("out");
    let output = ticker(&["--input", input.to_str().unwrap(), "--sink", &format!("file://{}", out.display())]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(common::summary_value(&stdout, "malformed"), 12, "{stdout}");
    assert_eq!(common::summary_value(&stdout, "late"), 1, "{stdout}");
    let dead = dir.path().join("dead.tsv");
    assert_eq!(duckdb_rows(None, out.to_str().unwrap(), "csv", false), reference_rows(&[&input], Some(&dead)));
    assert_eq!(dead_letters(&out), expected_dead_letters(&dead));
    // The reasons name the field.
    let text: String = std::fs::read_dir(out.join("_dead_letter")).unwrap().map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap()).collect();
    for reason in ["event_time: a zone or offset", "event_time: expected 'T'", "event_time: expected a date-time string, found a number", "event_time: missing or null", "event_time: no such date", "price: the string \\\"abc\\\" is not a number", "price: expected a number or a numeric string, found a boolean", "beyond the double range", "duplicate key", "invalid JSON", "\"late\""] {
        assert!(text.contains(reason), "{reason} in {text}");
    }
    // Escaped partitions, the default partition for a NULL ticker.
    assert!(out.join("ticker=A,B%2FC").is_dir() && out.join("ticker=42").is_dir() && out.join("ticker=__DEFAULT_PARTITION__").is_dir());
}

/// Part files of `keys` (as `(key, size)`) with their epoch.
fn part_epochs(keys: &[(String, u64)]) -> Vec<(String, u64)> {
    keys.iter().filter_map(|(k, _)| {
        let name = k.rsplit('/').next().unwrap();
        name.strip_prefix("part-").map(|rest| (k.clone(), rest[..10].parse().unwrap()))
    }).collect()
}

#[test]
fn killed_ten_times_into_s3_with_checkpoints_in_s3_equals_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("ticks.jsonl");
    // 300,000 events (21 hours of ticks), some late; one file is one partition, read by one worker at 20,000/s
    // in the killed starts: ten of them cannot read it all.
    generate(input.to_str().unwrap(), 300_000, 3, "7s", &[]);
    let s3 = LocalS3::start();
    s3.bucket("ticks");
    let input_arg = input.to_str().unwrap().to_string();
    let log = dir.path().join("log");
    let endpoint = s3.url.clone();
    let checkpoint_epochs = |s3: &LocalS3| -> Vec<u64> {
        s3.keys("ticks", "ck/").iter().filter_map(|(k, _)| k.strip_prefix("ck/checkpoint-").and_then(|n| n.strip_suffix(".redb.gz")).map(|n| n.parse().unwrap())).collect()
    };
    let flink_csv = regex_like_flink_csv();
    common::crash::crash_loop(
        21,
        Duration::from_millis(100),
        &log,
        |kills| {
            // Nothing of an uncommitted epoch is visible, and nothing visible is half-written.
            let keys = s3.keys("ticks", "out/");
            let newest = checkpoint_epochs(&s3).into_iter().max().unwrap_or(0);
            for (key, epoch) in part_epochs(&keys) {
                assert!(epoch <= newest, "after kill {kills}: {key} is of epoch {epoch}, after the newest checkpoint {newest}");
                if key.ends_with(".csv") {
                    let text = String::from_utf8(s3.get("ticks", &key)).unwrap();
                    assert!(text.ends_with('\n') && text.lines().all(&flink_csv), "after kill {kills}: {key} is not complete: {text:?}");
                }
            }
        },
        |workers, last| {
            let mut c = common::taxiflow();
            c.envs(ENV).args(["run", "ticker", "-w", &workers.to_string(), "--input", &input_arg, "--sink", "s3://ticks/out", "--endpoint-url", &endpoint]);
            c.args(["--checkpoint-dir", "s3://ticks/ck", "--checkpoint-interval", "100ms", "--partition-commit-delay", "0s"]);
            if !last {
                c.args(["--source-rate-limit", "20000"]);
            }
            c
        },
    );
    let expected = reference_rows(&[&input], None);
    assert_eq!(duckdb_rows(Some(&s3), "s3://ticks/out", "csv", false), expected, "the rows read back equal the reference: none missing, none twice");
    // An uninterrupted run into another prefix gives the same rows (which objects hold them may differ).
    ticker(&["--input", &input_arg, "--sink", "s3://ticks/once", "--endpoint-url", &s3.url]);
    assert_eq!(duckdb_rows(Some(&s3), "s3://ticks/once", "csv", false), expected);
    assert!(checkpoint_epochs(&s3).len() <= 2, "the newest two checkpoints are kept");
}

#[test]
fn partition_markers_follow_the_commit_delay_and_sigterm_takes_a_last_checkpoint() {
    use common::kinesis::{Implementation, LocalKinesis};
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("ticks.jsonl");
    generate(input.to_str().unwrap(), 6_000, 4, "2s", &[]);
    let kinesis = LocalKinesis::start(Implementation::Kinesalite);
    kinesis.create("ticks", 1);
    generate("kinesis://ticks", 6_000, 4, "2s", &["--endpoint-url", &kinesis.url]);
    let out = dir.path().join("out");
    let checkpoints = dir.path().join("ck");
    let log = dir.path().join("log");
    let run = |extra: &[&str]| {
        let mut c = common::taxiflow();
        c.envs(ENV).env("RUST_LOG", "info").args(["run", "ticker", "--source", "kinesis://ticks", "--endpoint-url", &kinesis.url, "--poll-interval", "50ms"]);
        c.args(["--sink", &format!("file://{}", out.display()), "--checkpoint-dir", checkpoints.to_str().unwrap(), "--checkpoint-interval", "200ms", "--partition-commit-delay", "1s"]);
        c.args(extra).stdout(std::process::Stdio::piped()).stderr(std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap());
        c
    };
    // An unbounded run: every partition gets its _SUCCESS, at the first checkpoint 1 s after its first file.
    let mut child = run(&[]).spawn().unwrap();
    let tickers = ["AAPL", "AMZN", "INTC", "MSFT", "TBV"];
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !tickers.iter().all(|t| out.join(format!("ticker={t}/_SUCCESS")).exists()) {
        assert!(child.try_wait().unwrap().is_none(), "the job ended: {}", common::crash::tail(&log));
        assert!(std::time::Instant::now() < deadline, "no markers: {}", common::crash::tail(&log));
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let at = |line: &str| chrono::DateTime::parse_from_rfc3339(line.split_whitespace().next().unwrap()).unwrap();
    for t in tickers {
        let partition = format!("\"ticker={t}\"");
        let first_file = at(text.lines().find(|l| l.contains("part files published") && l.contains(&partition)).unwrap());
        let marker = at(text.lines().find(|l| l.contains("_SUCCESS written") && l.contains(&format!("ticker={t}"))).unwrap());
        assert!(marker - first_file >= chrono::Duration::milliseconds(1000), "ticker={t}: marker {marker} less than 1 s after its first file {first_file}");
    }
    // SIGTERM: a last checkpoint, part files finished, exit 0; the windows still open are not emitted.
    // SAFETY: signals our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{}", common::crash::tail(&log));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("last checkpoint of the stop committed"), "{}", common::crash::tail(&log));
    let stopped = duckdb_rows(None, out.to_str().unwrap(), "csv", false);
    let expected = reference_rows(&[&input], None);
    assert!(stopped.lines().count() < expected.lines().count(), "the open windows were not emitted");
    assert!(stopped.lines().all(|l| expected.lines().any(|e| e == l)), "what was written is final");
    // Restarted with a bounded read: resumes from the last checkpoint, reads nothing twice, ends every window.
    let output = run(&["--stop-at", "latest"]).output().unwrap();
    assert!(output.status.success(), "{}", common::crash::tail(&log));
    assert_eq!(duckdb_rows(None, out.to_str().unwrap(), "csv", false), expected);
}

/// `taxiflow generate ticker` writes the blog's events, the same bytes for the same seed and start.
#[test]
fn the_generator_is_deterministic_with_a_seed() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b): (PathBuf, PathBuf) = (dir.path().join("a"), dir.path().join("b"));
    generate(a.to_str().unwrap(), 1000, 9, "0s", &[]);
    generate(b.to_str().unwrap(), 1000, 9, "0s", &[]);
    let text = std::fs::read_to_string(&a).unwrap();
    assert_eq!(text, std::fs::read_to_string(&b).unwrap());
    assert!(text.starts_with("{\"event_time\": \"2026-12-01T08:00:00"), "{text}");
    assert_eq!(text.lines().count(), 1000);
}
