//! The page-view job (`docs/jobs/pageviews.md`) against independent re-computations: the Flink baseline's
//! `reference.py` (total and per-path outputs) on the real logstalgia sample, and `scripts/pageviews_reference.py`
//! (every output and the dead letters) on generated logs with out-of-order, late and malformed lines, in one and
//! three partitions, with `-w 1/2/3`, a country database and a time zone; from files and from a real broker; and
//! killed ten times with checkpoints.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::root;

/// The logstalgia sample (Debian package, GPL-3), fetched by `scripts/install-test-services.sh`.
fn sample() -> PathBuf {
    let path = root().join("target/test-data/logstalgia/example.log");
    assert!(path.exists(), "{} is missing: run scripts/install-test-services.sh (apt-get download logstalgia)", path.display());
    path
}

/// The CC0 country databases (npm `@ip-location-db/geo-whois-asn-country-mmdb`), IPv4 and IPv6.
fn geoip() -> [PathBuf; 2] {
    let dir = root().join("target/npm/node_modules/@ip-location-db/geo-whois-asn-country-mmdb");
    let files = [dir.join("geo-whois-asn-country-ipv4.mmdb"), dir.join("geo-whois-asn-country-ipv6.mmdb")];
    for f in &files {
        assert!(f.exists(), "{} is missing: run scripts/install-test-services.sh (npm install)", f.display());
    }
    files
}

fn script() -> Command {
    let mut c = Command::new("python3");
    c.arg(root().join("scripts/pageviews_reference.py"));
    c
}

/// A generated log (`scripts/pageviews_reference.py generate`).
fn generate(path: &Path, seed: u64, lines: u64, extra: &[&str]) {
    let status = script().arg("generate").arg(path).args(["--seed", &seed.to_string(), "--lines", &lines.to_string()]).args(extra).status().unwrap();
    assert!(status.success());
}

/// The reference outputs of `logs` (one partition each) in `out`, with `flags` (`--timezone`, `--geoip`).
fn reference(out: &Path, logs: &[PathBuf], flags: &[String]) {
    let output = script().arg("reference").arg(out).args(flags).args(logs).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// Runs `taxiflow run pageviews ARGS` to completion; returns stdout.
fn pageviews(args: &[String]) -> String {
    let output = common::taxiflow().arg("run").arg("pageviews").args(args).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// `(reason kind, source, line)` of every dead letter in `dir` (the kind: `malformed` or `late`).
fn dead_letters(dir: &Path) -> BTreeSet<(String, String, u64)> {
    common::read_jsonl(dir, "dead_letter")
        .into_iter()
        .map(|d| (d["reason"].as_str().unwrap().split(':').next().unwrap().to_string(), d["source"].as_str().unwrap().to_string(), d["line"].as_u64().unwrap()))
        .collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every output file of `names` in `got` equals the reference's in `expected`, byte for byte.
fn assert_outputs_equal(got: &Path, expected: &Path, names: &[&str], what: &str) {
    for name in names {
        let (g, e) = (read(&got.join(format!("{name}.jsonl"))), read(&expected.join(format!("{name}.jsonl"))));
        assert!(!e.is_empty(), "{what}: the reference's {name} is empty");
        if g != e {
            let first = g.lines().zip(e.lines()).find(|(a, b)| a != b);
            panic!("{what}: {name}.jsonl differs from the reference ({} vs {} lines); first difference: {first:?}", g.lines().count(), e.lines().count());
        }
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// `window_end_ms,pv,uv` / `window_end_ms,path,pv,uv` CSV rows (the baseline's layout) of a JSON-lines output.
fn as_baseline_rows(dir: &Path, name: &str) -> Vec<Vec<String>> {
    common::read_jsonl(dir, name)
        .into_iter()
        .map(|d| {
            let mut row = vec![d["window_end_ms"].to_string()];
            if let Some(p) = d.get("path") {
                row.push(p.as_str().unwrap().to_string());
            }
            row.push(d["pv"].to_string());
            row.push(d["uv"].to_string());
            row
        })
        .collect()
}

/// Rows of a CSV file written by Python's `csv` (minimal quoting), without the header.
fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    let text = read(path);
    let mut rows = Vec::new();
    for line in text.lines().skip(1) {
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut chars = line.chars().peekable();
        let mut quoted = false;
        while let Some(c) = chars.next() {
            match (c, quoted) {
                ('"', false) if field.is_empty() => quoted = true,
                ('"', true) if chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                ('"', true) => quoted = false,
                (',', false) => fields.push(std::mem::take(&mut field)),
                (c, _) => field.push(c),
            }
        }
        fields.push(field);
        rows.push(fields);
    }
    rows
}

#[test]
fn the_logstalgia_sample_equals_the_flink_baseline_and_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let sample = sample();
    let expected = dir.path().join("expected");
    reference(&expected, std::slice::from_ref(&sample), &[]);
    // The Flink baseline's own re-computation (byte-identical to the Flink 2.3 job on this sample).
    let baseline = root().join("../shared/baselines/flink-pageviews/reference.py");
    let flink = dir.path().join("flink");
    if baseline.exists() {
        let status = Command::new("python3").arg(&baseline).arg(&sample).arg(&flink).status().unwrap();
        assert!(status.success());
    }
    for workers in ["1", "2", "3"] {
        let out = dir.path().join(format!("w{workers}"));
        let stdout = pageviews(&strings(&["-w", workers, "--input", sample.to_str().unwrap(), "--sink", &format!("file://{}", out.display())]));
        assert_eq!(common::summary_value(&stdout, "late"), 0, "{stdout}");
        assert_outputs_equal(&out, &expected, &["total", "by_path", "today"], &format!("-w {workers}"));
        if baseline.exists() {
            assert_eq!(as_baseline_rows(&out, "total"), csv_rows(&flink.join("total.csv")), "-w {workers}: total equals the Flink baseline");
            assert_eq!(as_baseline_rows(&out, "by_path"), csv_rows(&flink.join("by-path.csv")), "-w {workers}: by path equals the Flink baseline");
        }
    }
    // Without the today output (`--no-today`): the same window rows, and no today file.
    let out = dir.path().join("no-today");
    pageviews(&strings(&["-w", "2", "--no-today", "--input", sample.to_str().unwrap(), "--sink", &format!("file://{}", out.display())]));
    assert_outputs_equal(&out, &expected, &["total", "by_path"], "--no-today");
    assert!(out.join("total.jsonl").exists() && !out.join("today.jsonl").exists(), "--no-today writes no today output");
    let total = common::read_jsonl(&dir.path().join("w1"), "total");
    assert_eq!(total.len(), 5, "the sample has 5 windows");
    assert_eq!(total.iter().map(|d| d["pv"].as_u64().unwrap()).sum::<u64>(), 3260, "every line is a page view");
}

#[test]
fn generated_logs_in_one_and_three_partitions_equal_the_reference_with_countries_and_a_time_zone() {
    let dir = tempfile::tempdir().unwrap();
    // Three logs around midnight in New York (2024-04-22T04:00Z), two servers each, the second 7 or 9 s behind
    // the first (late lines), with malformed lines; one gzip-compressed.
    let midnight_ny = 1_713_758_400u64;
    let logs = [dir.path().join("a.log"), dir.path().join("b.log"), dir.path().join("c.log")];
    let start = (midnight_ny - 1800).to_string();
    generate(&logs[0], 11, 12_000, &["--servers", "2", "--lag-s", "7", "--dirty", "--start", &start]);
    generate(&logs[1], 12, 9_000, &["--servers", "2", "--lag-s", "9", "--start", &start, "--final-newline"]);
    generate(&logs[2], 13, 6_000, &["--servers", "3", "--lag-s", "4", "--dirty", "--start", &start]);
    let gz = dir.path().join("c.log.gz");
    {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
        e.write_all(&std::fs::read(&logs[2]).unwrap()).unwrap();
        e.finish().unwrap();
    }
    let [v4, v6] = geoip();
    let mut flags = strings(&["--timezone", "America/New_York"]);
    for f in [&v4, &v6] {
        flags.extend(["--geoip".to_string(), f.display().to_string()]);
    }
    let names = ["total", "by_path", "by_country", "today"];
    for (partitions, inputs) in [("one", vec![logs[0].clone()]), ("three", vec![logs[0].clone(), logs[1].clone(), gz.clone()])] {
        let expected = dir.path().join(format!("expected-{partitions}"));
        reference(&expected, &inputs, &flags);
        let want_dead = dead_letters(&expected);
        assert!(want_dead.iter().any(|d| d.0 == "late") && want_dead.iter().any(|d| d.0 == "malformed"), "the logs have late and malformed lines");
        let today = common::read_jsonl(&expected, "today");
        assert!(today.iter().map(|d| d["day"].as_str().unwrap()).collect::<BTreeSet<_>>().len() == 2, "the logs cross midnight in New York");
        let countries = common::read_jsonl(&expected, "by_country");
        assert!(countries.iter().any(|d| d["country"] == "--") && countries.iter().filter(|d| d["country"] != "--").count() > 100, "hosts of many countries and unknown ones");
        for workers in ["1", "2", "3"] {
            let out = dir.path().join(format!("{partitions}-w{workers}"));
            let mut args = strings(&["-w", workers, "--sink", &format!("file://{}", out.display())]);
            for input in &inputs {
                args.extend(["--input".to_string(), input.display().to_string()]);
            }
            args.extend(flags.iter().cloned());
            pageviews(&args);
            let what = format!("{partitions} partition(s), -w {workers}");
            assert_outputs_equal(&out, &expected, &names, &what);
            assert_eq!(dead_letters(&out), want_dead, "{what}: the same lines are late and malformed");
        }
    }
}

/// Sends `lines` to `partition` of `topic`, a random 1–5 lines per message (a shipper's batch).
fn produce_lines(brokers: &str, topic: &str, partition: i32, lines: &[&[u8]], seed: u64) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let producer: BaseProducer = rdkafka::ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut i = 0;
    while i < lines.len() {
        let n = rng.usize(1..=5).min(lines.len() - i);
        let mut payload = lines[i..i + n].join(&b'\n');
        if rng.bool() {
            payload.push(b'\n');
        }
        loop {
            match producer.send(BaseRecord::<(), [u8]>::to(topic).partition(partition).payload(&payload)) {
                Ok(()) => break,
                Err((e, _)) => {
                    assert!(matches!(e, rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull)), "{e}");
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
        i += n;
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

#[test]
fn from_a_broker_with_several_lines_per_message_equals_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let logs = [dir.path().join("p0.log"), dir.path().join("p1.log"), dir.path().join("p2.log")];
    for (i, log) in logs.iter().enumerate() {
        generate(log, 30 + i as u64, 4_000, &["--servers", "2", "--lag-s", "8", "--dirty"]);
    }
    let expected = dir.path().join("expected");
    reference(&expected, &logs, &[]);
    let port = common::free_port();
    let _broker = common::kafka_broker::Broker::start(port, &dir.path().join("broker"));
    let brokers = format!("127.0.0.1:{port}");
    common::kafka_broker::create_topic(&brokers, "access", 3);
    for (p, log) in logs.iter().enumerate() {
        let data = std::fs::read(log).unwrap();
        let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
        produce_lines(&brokers, "access", p as i32, &lines, p as u64);
    }
    for workers in ["1", "3"] {
        let out = dir.path().join(format!("w{workers}"));
        pageviews(&strings(&["-w", workers, "--source", &format!("kafka://{brokers}/access"), "--stop-at", "latest", "--group", &format!("pv-{workers}"), "--sink", &format!("file://{}", out.display())]));
        assert_outputs_equal(&out, &expected, &["total", "by_path", "today"], &format!("kafka, -w {workers}"));
        // Dead letters name the partition and the line within the message: compare their kinds and counts.
        let kinds = |d: &BTreeSet<(String, String, u64)>| d.iter().fold((0, 0), |(m, l), (k, _, _)| if k == "late" { (m, l + 1) } else { (m + 1, l) });
        let got: Vec<_> = common::read_jsonl(&out, "dead_letter").into_iter().map(|d| d["reason"].as_str().unwrap().split(':').next().unwrap().to_string()).collect();
        let want = kinds(&dead_letters(&expected));
        assert_eq!((got.iter().filter(|k| *k != "late").count(), got.iter().filter(|k| *k == "late").count()), want, "kafka, -w {workers}: malformed and late lines");
    }
}

#[test]
fn killed_ten_times_with_checkpoints_equals_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    // Three days of log (so that days close, and their state leaves the checkpoints, while the job is killed), in
    // two partitions, read at 5,000 lines/s in all in the killed starts (the limit is per worker): a start of the
    // debug build takes about a second to its commits, so ten kills read about half the log. (At 20,000 lines/s a
    // worker, a start of 3 workers read 60,000 lines a second, and a run ended by itself before its tenth kill.)
    let logs = [dir.path().join("a.log"), dir.path().join("b.log")];
    generate(&logs[0], 41, 60_000, &["--servers", "2", "--lag-s", "7", "--dirty", "--span", "259200", "--start", "1713700000"]);
    generate(&logs[1], 42, 40_000, &["--servers", "1", "--span", "259200", "--start", "1713700000"]);
    let expected = dir.path().join("expected");
    reference(&expected, &logs, &[]);
    let out = dir.path().join("out");
    let checkpoints = dir.path().join("ck");
    let log = dir.path().join("log");
    let sink = format!("file://{}", out.display());
    common::crash::crash_loop(
        51,
        Duration::from_millis(100),
        &log,
        |_| {},
        |workers, last| {
            let mut c = common::taxiflow();
            c.args(["run", "pageviews", "-w", &workers.to_string(), "--sink", &sink]);
            for l in &logs {
                c.arg("--input").arg(l);
            }
            c.arg("--checkpoint-dir").arg(&checkpoints).args(["--checkpoint-interval", "100ms"]);
            if !last {
                c.args(["--source-rate-limit", &(5_000.0 / workers as f64).to_string()]);
            }
            c
        },
    );
    // Rows are written at their epoch's commit, so a window's rows of two workers may be apart: compare as sets,
    // every row once.
    for name in ["total", "by_path", "today"] {
        let sorted = |d: &Path| {
            let mut lines: Vec<String> = read(&d.join(format!("{name}.jsonl"))).lines().map(str::to_string).collect();
            lines.sort();
            lines
        };
        assert_eq!(sorted(&out), sorted(&expected), "after ten kills: {name} holds every row of the reference once");
    }
    assert_eq!(common::read_jsonl(&expected, "today").iter().map(|d| d["day"].as_str().unwrap().to_string()).collect::<BTreeSet<_>>().len(), 4, "the log covers parts of four days");
    assert_eq!(dead_letters(&out), dead_letters(&expected), "every dead letter once");
}

/// A Redis server started by `scripts/redis.sh`, killed when dropped.
struct RedisServer {
    child: Option<std::process::Child>,
    port: u16,
    dir: PathBuf,
    aof: bool,
}

impl RedisServer {
    fn start(port: u16, dir: &Path, aof: bool) -> RedisServer {
        let mut server = RedisServer { child: None, port, dir: dir.to_path_buf(), aof };
        server.restart();
        server
    }

    fn restart(&mut self) {
        let mut c = Command::new(root().join("scripts/redis.sh"));
        c.arg(self.port.to_string()).arg(&self.dir).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        if self.aof {
            c.arg("aof");
        }
        self.child = Some(c.spawn().expect("scripts/redis.sh starts"));
        common::wait_listening(self.port, "redis-server (apt-get install redis-server)");
    }

    /// Stops the server with SIGTERM and waits for it to exit.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signals our own child process.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            child.wait().unwrap();
        }
    }

    fn connection(&self) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{}", self.port)).unwrap().get_connection().unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What Redis holds under prefix `p`, in the file sink's layout (`total`, `by_path`, and the last `today` row of each
/// day), to compare with the reference's files.
fn redis_content(con: &mut redis::Connection, p: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    use redis::Commands;
    let ends: Vec<i64> = con.zrangebyscore(format!("{p}:windows"), "-inf", "+inf").unwrap();
    let (mut total, mut by_path) = (Vec::new(), Vec::new());
    for end in ends {
        let win: std::collections::HashMap<String, i64> = con.hgetall(format!("{p}:win:{end}")).unwrap();
        total.push(format!("{{\"window_end_ms\":{end},\"pv\":{},\"uv\":{}}}", win["pv"], win["uv"]));
        let scores: Vec<(String, i64)> = con.zrange_withscores(format!("{p}:win:{end}:path"), 0, -1).unwrap();
        let uvs: std::collections::HashMap<String, i64> = con.hgetall(format!("{p}:win:{end}:path_uv")).unwrap();
        let mut paths: Vec<(String, i64)> = scores;
        paths.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        for (path, pv) in paths {
            by_path.push(format!("{{\"window_end_ms\":{end},\"path\":{},\"pv\":{pv},\"uv\":{}}}", serde_json::to_string(&path).unwrap(), uvs[&path]));
        }
    }
    let mut days: Vec<String> = con.keys(format!("{p}:day:*")).unwrap();
    days.retain(|k| !k.ends_with(":hll"));
    days.sort();
    let today = days
        .iter()
        .map(|key| {
            let h: std::collections::HashMap<String, i64> = con.hgetall(key).unwrap();
            format!("{{\"day\":\"{}\",\"window_end_ms\":{},\"pv\":{},\"uv\":{}}}", key.rsplit(':').next().unwrap(), h["window_end_ms"], h["pv"], h["uv"])
        })
        .collect();
    (total, by_path, today)
}

/// The reference's `total` and `by_path` lines, and the last `today` line of each day.
fn reference_content(expected: &Path) -> (Vec<String>, Vec<String>, Vec<String>) {
    let lines = |name: &str| read(&expected.join(format!("{name}.jsonl"))).lines().map(str::to_string).collect::<Vec<_>>();
    let mut last: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for l in lines("today") {
        let day: serde_json::Value = serde_json::from_str(&l).unwrap();
        last.insert(day["day"].as_str().unwrap().to_string(), l);
    }
    (lines("total"), lines("by_path"), last.into_values().collect())
}

#[test]
fn into_redis_every_window_in_one_transaction_with_ttls_and_updates_published() {
    use redis::Commands;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    generate(&log, 61, 8_000, &["--servers", "2", "--lag-s", "7", "--dirty", "--start", "1713700000", "--span", "172800"]);
    let expected = dir.path().join("expected");
    reference(&expected, std::slice::from_ref(&log), &[]);
    let server = RedisServer::start(common::free_port(), &dir.path().join("redis"), false);
    let url = format!("redis://127.0.0.1:{}/3", server.port);
    // A live page's subscription: one message per window, its end.
    let mut subscriber = redis::Client::open(url.as_str()).unwrap().get_connection().unwrap();
    let mut pubsub = subscriber.as_pubsub();
    pubsub.subscribe("site:updates").unwrap();
    pageviews(&strings(&["-w", "2", "--input", log.to_str().unwrap(), "--sink", &url, "--redis-prefix", "site"]));
    let want = reference_content(&expected);
    let mut con = redis::Client::open(url.as_str()).unwrap().get_connection().unwrap();
    assert_same_content(&redis_content(&mut con, "site"), &want, "Redis holds the reference's windows, paths and days");
    let ends: Vec<i64> = con.zrangebyscore("site:windows", "-inf", "+inf").unwrap();
    pubsub.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut published = Vec::new();
    while published.len() < ends.len() {
        published.push(pubsub.get_message().expect("an update per window").get_payload::<i64>().unwrap());
    }
    assert!(published == ends, "an update per window, in order of their ends");
    let week = 7 * 86_400;
    for key in [format!("site:win:{}", ends[0]), format!("site:win:{}:path", ends[0]), format!("site:win:{}:path_uv", ends[0]), "site:windows".to_string(), "site:day:2024-04-22".to_string()] {
        let ttl: i64 = con.ttl(&key).unwrap();
        assert!(ttl > week - 600 && ttl <= week, "{key} expires after --redis-ttl (7 days), got {ttl} s");
    }
    // The HyperLogLog of each day is within 2% of the exact UV.
    for day in &want.2 {
        let day: serde_json::Value = serde_json::from_str(day).unwrap();
        let exact = day["uv"].as_f64().unwrap();
        let approx: f64 = redis::cmd("PFCOUNT").arg(format!("site:day:{}:hll", day["day"].as_str().unwrap())).query(&mut con).unwrap();
        assert!((approx - exact).abs() <= exact * 0.02, "{day}: PFCOUNT {approx} vs exact {exact}");
    }
    let dead: usize = redis::cmd("XLEN").arg("site:dead_letter").query(&mut con).unwrap();
    assert_eq!(dead, dead_letters(&expected).len(), "every dead letter is in the stream");
    // A second run over the same log writes the same values (absolute, idempotent).
    pageviews(&strings(&["--input", log.to_str().unwrap(), "--sink", &url, "--redis-prefix", "site"]));
    assert_same_content(&redis_content(&mut con, "site"), &want, "after a second run");
    // With a TTL of a day, the index keeps the windows of the last day of event time (the log spans two).
    pageviews(&strings(&["--input", log.to_str().unwrap(), "--sink", &url, "--redis-prefix", "short", "--redis-ttl", "1day"]));
    let short: Vec<i64> = con.zrangebyscore("short:windows", "-inf", "+inf").unwrap();
    let newest = *ends.last().unwrap();
    let kept: Vec<i64> = ends.iter().copied().filter(|&e| e >= newest - 86_400_000).collect();
    assert!(short == kept && kept.len() < ends.len(), "the index drops the ends older than its newest − ttl ({} of {} kept)", short.len(), ends.len());
    let ttl: i64 = con.ttl("short:windows").unwrap();
    assert!(ttl > 86_000 && ttl <= 86_400, "got {ttl}");
}

/// The two contents are equal; on a difference, names the first one (not the whole content).
fn assert_same_content(got: &(Vec<String>, Vec<String>, Vec<String>), want: &(Vec<String>, Vec<String>, Vec<String>), what: &str) {
    for (name, g, w) in [("total", &got.0, &want.0), ("by_path", &got.1, &want.1), ("today", &got.2, &want.2)] {
        assert!(!w.is_empty(), "{what}: the reference has no {name}");
        if g != w {
            let first = g.iter().zip(w.iter()).find(|(a, b)| a != b);
            panic!("{what}: {name} differs ({} vs {} rows); first difference (got, want): {first:?}", g.len(), w.len());
        }
    }
}

#[test]
fn redis_stopped_and_restarted_during_a_run_loses_nothing() {
    use redis::Commands;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    generate(&log, 71, 20_000, &["--servers", "2", "--lag-s", "7", "--start", "1713700000", "--span", "86400"]);
    let expected = dir.path().join("expected");
    reference(&expected, std::slice::from_ref(&log), &[]);
    let mut server = RedisServer::start(common::free_port(), &dir.path().join("redis"), true);
    let url = format!("redis://127.0.0.1:{}", server.port);
    let stderr = dir.path().join("log");
    let child = common::taxiflow()
        .env("RUST_LOG", "info")
        .args(["run", "pageviews", "--input", log.to_str().unwrap(), "--sink", &url, "--source-rate-limit", "4000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let mut child = common::KillOnDrop(child);
    // Some windows are written, then the server goes away until the job has failed to write and retried.
    let mut con = server.connection();
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while con.zcard::<_, usize>("pageviews:windows").unwrap() < 10 {
        assert!(child.0.try_wait().unwrap().is_none(), "the job ended before Redis was stopped");
        assert!(std::time::Instant::now() < deadline, "no windows written: {}", common::crash::tail(&stderr));
        std::thread::sleep(Duration::from_millis(20));
    }
    server.stop();
    common::wait_for_log(&stderr, "redis write failed; reconnecting", 2, &mut child.0);
    server.restart();
    common::wait_for_log(&stderr, "redis writes went through after retries", 1, &mut child.0);
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{}", common::crash::tail(&stderr));
    let mut con = server.connection();
    assert_same_content(&redis_content(&mut con, "pageviews"), &reference_content(&expected), "nothing lost while Redis was down");
}

/// Every value of `topic`, waiting until there are at least `count` (60 s at most: a stuck shipper, not a slow one).
fn wait_for_messages(brokers: &str, topic: &str, count: usize, shipper: &mut std::process::Child, log: &Path) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let values = common::kafka_broker::read_committed(brokers, topic);
        if values.len() >= count {
            return values;
        }
        assert!(shipper.try_wait().unwrap().is_none(), "the shipper ended: {}", common::crash::tail(log));
        assert!(std::time::Instant::now() < deadline, "{} of {count} lines in the topic after 60 s: {}", values.len(), common::crash::tail(log));
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn numbered(prefix: &str, range: std::ops::Range<usize>) -> String {
    range.map(|i| format!("{prefix}-{i}\n")).collect()
}

fn ship_command(glob: &str, brokers: &str, topic: &str, positions: &Path, extra: &[&str]) -> Command {
    let mut c = common::taxiflow();
    c.env("RUST_LOG", "info").args(["ship", "--from", glob, "--to", &format!("kafka://{brokers}/{topic}"), "--poll-interval", "20ms", "--write-pos-interval", "100ms"]);
    c.arg("--position-file").arg(positions).args(extra);
    c
}

/// A directory with an empty `logs/`, a broker and its topic `lines` of `partitions` partitions.
fn shipper_setup(partitions: i32) -> (tempfile::TempDir, PathBuf, common::kafka_broker::Broker, String) {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let port = common::free_port();
    let broker = common::kafka_broker::Broker::start(port, &dir.path().join("broker"));
    let brokers = format!("127.0.0.1:{port}");
    common::kafka_broker::create_topic(&brokers, "lines", partitions);
    (dir, logs, broker, brokers)
}

#[test]
fn the_shipper_follows_appends_rotation_truncation_and_new_files_and_sends_every_line_once() {
    let (dir, logs, _broker, brokers) = shipper_setup(2);
    let (a, b, c) = (logs.join("a.log"), logs.join("b.log"), logs.join("c.log"));
    // 100 lines and the start of a partial one.
    append(&a, &numbered("a", 0..100));
    append(&a, "a-parti");
    append(&b, &numbered("b", 0..20));
    let log = dir.path().join("ship.log");
    let glob = format!("{}/*.log", logs.display());
    let positions = dir.path().join("positions.json");
    let child = ship_command(&glob, &brokers, "lines", &positions, &[]).stdout(std::process::Stdio::null()).stderr(std::fs::File::create(&log).unwrap()).spawn().unwrap();
    let mut shipper = common::KillOnDrop(child);
    wait_for_messages(&brokers, "lines", 120, &mut shipper.0, &log);
    // The partial line is completed, more lines come; then a.log is renamed away (not matched any more) and a new
    // a.log starts.
    append(&a, "al\n");
    append(&a, &numbered("a", 100..150));
    std::fs::rename(&a, logs.join("a.log.1")).unwrap();
    append(&a, &numbered("a2", 0..30));
    wait_for_messages(&brokers, "lines", 120 + 1 + 50 + 30, &mut shipper.0, &log);
    // b.log is truncated and rewritten shorter (copytruncate); c.log is new.
    std::fs::write(&b, numbered("b2", 0..10)).unwrap();
    append(&c, &numbered("c", 0..7));
    append(&c, "c-last-without-newline");
    let values = wait_for_messages(&brokers, "lines", 201 + 10 + 7, &mut shipper.0, &log);
    // SIGTERM: positions written, exit 0.
    // SAFETY: signals our own child process.
    unsafe { libc::kill(shipper.0.id() as libc::pid_t, libc::SIGTERM) };
    let status = shipper.0.wait().unwrap();
    assert!(status.success(), "{}", common::crash::tail(&log));
    let mut expected: Vec<String> = Vec::new();
    expected.extend(numbered("a", 0..100).lines().map(str::to_string));
    expected.push("a-partial".to_string());
    expected.extend(numbered("a", 100..150).lines().map(str::to_string));
    expected.extend(numbered("a2", 0..30).lines().map(str::to_string));
    expected.extend(numbered("b", 0..20).lines().map(str::to_string));
    expected.extend(numbered("b2", 0..10).lines().map(str::to_string));
    expected.extend(numbered("c", 0..7).lines().map(str::to_string));
    let (mut got, mut want) = (values, expected);
    got.sort();
    want.sort();
    assert_eq!(got, want, "every complete line once, the partial one only when complete");
    let text = read(&log);
    assert!(text.contains("file truncated") && text.contains("rotated away and shipped"), "{}", common::crash::tail(&log));
    let recorded: serde_json::Value = serde_json::from_str(&read(&positions)).unwrap();
    let c_len = std::fs::metadata(&c).unwrap().len() - "c-last-without-newline".len() as u64;
    assert!(recorded.as_array().unwrap().iter().any(|p| p["path"].as_str().unwrap().ends_with("c.log") && p["offset"] == c_len), "c.log's position is after its last complete line: {recorded}");
}

#[test]
fn the_shipper_killed_ten_times_while_a_log_grows_loses_no_line() {
    let (dir, logs, _broker, brokers) = shipper_setup(1);
    let glob = format!("{}/access.log", logs.display());
    let positions = dir.path().join("positions.json");
    let path = logs.join("access.log");
    // The writer: 30,000 lines, a burst of 100 every few ms, the file rotated by rename every 10,000 lines.
    let total = 30_000usize;
    let writer = {
        let (path, logs) = (path.clone(), logs.clone());
        std::thread::spawn(move || {
            for burst in 0..total / 100 {
                if burst > 0 && burst % 100 == 0 {
                    std::fs::rename(&path, logs.join(format!("access.log.{}", burst / 100))).unwrap();
                }
                append(&path, &numbered("line", burst * 100..burst * 100 + 100));
                std::thread::sleep(Duration::from_millis(3));
            }
        })
    };
    let mut rng = fastrand::Rng::with_seed(81);
    let log = dir.path().join("ship.log");
    for kill in 0..10 {
        let from = std::fs::read_to_string(&log).unwrap_or_default().len();
        let child = ship_command(&glob, &brokers, "lines", &positions, &[]).stdout(std::process::Stdio::null()).stderr(std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap()).spawn().unwrap();
        let mut shipper = common::KillOnDrop(child);
        let writes = rng.usize(1..=3);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::fs::read_to_string(&log).unwrap_or_default()[from..].matches("positions written").count() < writes {
            assert!(shipper.0.try_wait().unwrap().is_none(), "start {kill} ended: {}", common::crash::tail(&log));
            assert!(std::time::Instant::now() < deadline, "start {kill} wrote no positions: {}", common::crash::tail(&log));
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rng.u64(0..100)));
        shipper.0.kill().unwrap();
        shipper.0.wait().unwrap();
    }
    writer.join().unwrap();
    // The last start ships what is left and stops. Lines of the rotated files that were dropped while killed are
    // in files the glob no longer matches: the rotated files are followed by their inode only while the shipper
    // runs, so the last start also looks at them.
    let all = format!("{}/access.log*", logs.display());
    let output = ship_command(&all, &brokers, "lines", &positions, &["--exit-when-done"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let values = common::kafka_broker::read_committed(&brokers, "lines");
    let mut counts: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for v in &values {
        *counts.entry(v.as_str()).or_default() += 1;
    }
    let missing: Vec<String> = (0..total).map(|i| format!("line-{i}")).filter(|l| !counts.contains_key(l.as_str())).collect();
    assert!(missing.is_empty(), "{} lines lost, e.g. {:?}", missing.len(), &missing[..missing.len().min(5)]);
    assert_eq!(counts.len(), total, "nothing but the written lines");
    let duplicates = values.len() - total;
    println!("the shipper killed 10 times: {total} lines, {duplicates} sent twice (kills between an acknowledgement and a position write)");
}

#[test]
fn shipped_into_kafka_then_into_redis_the_sample_equals_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::copy(sample(), logs.join("access.log")).unwrap();
    let expected = dir.path().join("expected");
    reference(&expected, &[logs.join("access.log")], &[]);
    let port = common::free_port();
    let _broker = common::kafka_broker::Broker::start(port, &dir.path().join("broker"));
    let brokers = format!("127.0.0.1:{port}");
    common::kafka_broker::create_topic(&brokers, "access", 1);
    let glob = format!("{}/*.log", logs.display());
    let output = ship_command(&glob, &brokers, "access", &dir.path().join("positions.json"), &["--exit-when-done"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("shipped 3260 lines"));
    let server = RedisServer::start(common::free_port(), &dir.path().join("redis"), false);
    let url = format!("redis://127.0.0.1:{}", server.port);
    pageviews(&strings(&["--source", &format!("kafka://{brokers}/access"), "--stop-at", "latest", "--sink", &url]));
    let mut con = server.connection();
    assert_same_content(&redis_content(&mut con, "pageviews"), &reference_content(&expected), "ship → Kafka → pageviews → Redis");
}
