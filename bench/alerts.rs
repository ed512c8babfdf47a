//! Throughput, memory and state size of the alerts and dispatch jobs (`docs/jobs/alerts.md`, `docs/jobs/dispatch.md`)
//! on a generated file (not a timed test; see DEVELOPERS.md).
//!
//! `cargo bench --bench alerts -- [--events N] [--devices D] [--runs R] [--dir DIR] [--latency-events N]
//! [--latency-only] [--latency-workers W] [--latency-job-args 'FLAGS']`
//!
//! 1. Builds `taxiflow` in release mode and starts a throwaway PostgreSQL (`scripts/postgres.sh`) with
//!    `scripts/alerts_schema.sql` (the blog's two rules) and settings for a tenth of the devices (delays 0–60 s).
//! 2. Makes `DIR/devices-N-D.jsonl` (kept between runs) with `taxiflow generate devices` (seed 1, 20 µs of event
//!    time between events, moved back by up to 3 s; 0.5 % late, 0.5 % redelivered, 0.2 % malformed).
//! 3. Runs `taxiflow run alerts -w 1` and `-w 2` R times each (default 3) into a file sink, then `taxiflow run
//!    dispatch -w 1` and `-w 2` on the alerts they wrote; prints the median wall time, events/s and the largest peak
//!    RSS of each, and the checkpointed state per device of a run with one checkpoint at its end.
//! 4. Latency (`--latency-events N`, default 600,000; 0 skips it): a broker (`scripts/kafka-broker.sh`), the alerts
//!    job `-w 2` from a topic of 2 partitions into an alert topic with `--max-out-of-orderness 0`, and `taxiflow
//!    generate devices --rate 50000/s` into the event topic; then, for every alert, the time from its triggering
//!    event's broker timestamp to the alert's broker timestamp (both topics `message.timestamp.type=LogAppendTime`
//!    when the broker takes it, else the producers' CreateTime): p50, p99, max. `--latency-only` skips steps 2–3;
//!    `--latency-workers` sets the job's `-w` (default 2), and `--latency-job-args` sets the flags added to the job
//!    (split on spaces; default [`PACED_FETCHES`], `''` for librdkafka's defaults).
//!
//! The local broker (noida-db) answers a fetch at once even when it has nothing new, where Kafka holds it for
//! `fetch.wait.max.ms` (500 ms) unless `fetch.min.bytes` arrive: librdkafka then fetches again at once, and with
//! the consumer of each worker doing so, the broker and the job's fetcher threads took about 2 of this machine's 2
//! cores while nothing was produced (the broker 90–100 %, each consumer's broker thread 55–65 %). [`PACED_FETCHES`]
//! paces the fetches in the client: a partition is fetched again only when the records of its last fetch were
//! polled, and its next fetch waits 1 ms.

mod common;

use std::process::{Command, Stdio};

use common::{measure, Bench, Measured};

fn main() {
    let bench = Bench::start(&[]);
    let taxiflow = bench.taxiflow();
    let dir = bench.dir.clone();
    let events: u64 = bench.arg("--events").map(|v| v.parse().expect("--events N")).unwrap_or(10_000_000);
    let devices: u64 = bench.arg("--devices").map(|v| v.parse().expect("--devices D")).unwrap_or(100_000);
    let repeats: usize = bench.arg("--runs").map(|v| v.parse().expect("--runs R")).unwrap_or(3).max(1);

    // PostgreSQL with the rules and some device settings.
    let pg_dir = tempfile::Builder::new().prefix("taxiflow-bench-pg").tempdir().unwrap();
    std::fs::set_permissions(pg_dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let port = common::free_port();
    let _server = common::KillOnDrop(Command::new(bench.root.join("scripts/postgres.sh")).arg(pg_dir.path().join("pg")).arg(port.to_string()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    let psql = |sql: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let out = Command::new("psql").args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-c", sql]).output().unwrap();
            if out.status.success() {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "psql: {}", String::from_utf8_lossy(&out.stderr));
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    psql("SELECT 1");
    psql(&std::fs::read_to_string(bench.root.join("scripts/alerts_schema.sql")).unwrap());
    psql(&format!("INSERT INTO device_sla SELECT d, 'device ' || d, NULL, (d % 7) * 10000 FROM generate_series(0, {}, 10) d", devices.saturating_sub(1)));
    let url = format!("postgresql://postgres@127.0.0.1:{port}/postgres");
    let latency_events: u64 = bench.arg("--latency-events").map(|v| v.parse().expect("--latency-events N")).unwrap_or(600_000);
    if bench.flag("--latency-only") {
        println!("\n{}", latency(&bench, &taxiflow, &url, latency_events));
        return;
    }

    let (count, devices_arg) = (events.to_string(), devices.to_string());
    let (input, bytes) = bench.generated_input(
        &format!("devices-{events}-{devices}.jsonl"),
        &["devices", "--seed", "1", "--start-time", "2026-03-02T08:00:00Z", "--event-spacing", "20us", "--max-disorder", "3s", "--count", &count, "--devices", &devices_arg],
    );
    eprintln!("input: {} ({events} events of {devices} devices, {:.2} GB)", input.display(), bytes as f64 / 1e9);

    let mut samples: Vec<Vec<Measured>> = vec![Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..repeats {
        for (i, w) in ["1", "2"].into_iter().enumerate() {
            let out = dir.join(format!("alerts-out-w{w}"));
            let _ = std::fs::remove_dir_all(&out);
            samples[i].push(measure(
                &format!("alerts -w {w}"),
                Command::new(&taxiflow).args(["run", "alerts", "-w", w, "--rules", &url, "--sla", &url, "--input"]).arg(&input).arg("--sink").arg(format!("file://{}", out.display())),
            ));
        }
    }
    let alerts = dir.join("alerts-out-w2/alerts.jsonl");
    // The messages are the same; the watermark records among them fall where the frontier happened to be. Read line
    // by line: holding the files (0.7 GB of alerts at 10M events) made this process large, and a child forked from
    // it inherits its peak RSS (Linux keeps the larger of the old and the new address space's high-water mark
    // across execve), so every dispatch run below reported 2,278 MiB however little it used.
    let (records_w2, messages_w2) = message_digest(&alerts);
    let (_, messages_w1) = message_digest(&dir.join("alerts-out-w1/alerts.jsonl"));
    assert!(messages_w2 == messages_w1, "-w 1 and -w 2 wrote different alerts");
    let (alert_records, alert_messages) = (records_w2, messages_w2.0);
    for _ in 0..repeats {
        for (i, w) in ["1", "2"].into_iter().enumerate() {
            let out = dir.join(format!("dispatch-out-w{w}"));
            let _ = std::fs::remove_dir_all(&out);
            samples[2 + i].push(measure(&format!("dispatch -w {w}"), Command::new(&taxiflow).args(["run", "dispatch", "-w", w, "--input"]).arg(&alerts).arg("--sink").arg(format!("file://{}", out.display()))));
        }
    }
    // State per device: one checkpoint, at the end of a run (the rule states; nothing is pending then).
    let ck = dir.join("alerts-ck");
    let _ = std::fs::remove_dir_all(&ck);
    let with_checkpoint = measure(
        "alerts -w 2 with a checkpoint",
        Command::new(&taxiflow)
            .env("RUST_LOG", "info")
            .args(["run", "alerts", "-w", "2", "--rules", &url, "--sla", &url, "--checkpoint-interval", "1h", "--checkpoint-dir"])
            .arg(&ck)
            .arg("--input")
            .arg(&input)
            .arg("--sink")
            .arg(format!("file://{}", dir.join("alerts-out-ck").display())),
    );
    let state_bytes: u64 = with_checkpoint.stderr.lines().filter(|l| l.contains("checkpoint committed")).filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("state_bytes=")).and_then(|v| v.parse().ok())).next_back().unwrap_or(0);

    let runs = common::medians(samples);
    println!("\n{events} device events of {devices} devices, {:.2} GB of JSON lines; {alert_records} alert records ({alert_messages} messages, the rest watermark records)\n", bytes as f64 / 1e9);
    println!("| run [all wall times] | median wall s | records/s | peak RSS MiB |");
    println!("|---|---:|---:|---:|");
    for (i, r) in runs.iter().enumerate() {
        let records = if i < 2 { events } else { alert_records };
        println!("| {} | {:.2} | {:.0} | {:.1} |", r.name, r.seconds, records as f64 / r.seconds, r.peak_rss_kib as f64 / 1024.0);
    }
    println!("\nstate at the end (checkpointed, rule states of every device): {state_bytes} bytes, {:.1} bytes per device", state_bytes as f64 / devices as f64);
    for r in &runs {
        for line in r.stdout.lines().filter(|l| l.contains("summary")) {
            println!("  {}: {line}", r.name);
        }
    }
    if latency_events > 0 {
        println!("\n{}", latency(&bench, &taxiflow, &url, latency_events));
    }
}

/// The lines of the alert file at `path`, and the count and a digest (in order) of its messages (lines other than
/// watermark records).
fn message_digest(path: &std::path::Path) -> (u64, (usize, u64)) {
    use std::hash::{Hash, Hasher};
    use std::io::BufRead;
    let (mut lines, mut messages, mut hasher) = (0u64, 0usize, std::collections::hash_map::DefaultHasher::new());
    for line in std::io::BufReader::new(std::fs::File::open(path).unwrap()).lines() {
        let line = line.unwrap();
        lines += 1;
        if !line.contains("\"type\":\"watermark\"") {
            messages += 1;
            line.hash(&mut hasher);
        }
    }
    (lines, (messages, hasher.finish()))
}

/// The job's flags in the latency run unless `--latency-job-args` replaces them: librdkafka fetches a partition
/// only while fewer than `queued.min.messages` of its records wait to be polled, and otherwise checks again after
/// `fetch.queue.backoff.ms` (librdkafka CONFIGURATION.md), so a fetch is sent once the last one's records were polled
/// and at most every millisecond per partition while records arrive. (A broker answering empty fetches at once
/// still gets them back to back while the topic is idle.)
const PACED_FETCHES: &str = "--kafka-config queued.min.messages=1 --kafka-config fetch.queue.backoff.ms=1";

/// The paced Kafka run of step 4; returns its report line.
fn latency(bench: &Bench, taxiflow: &std::path::Path, url: &str, events: u64) -> String {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Message, Timestamp};
    use std::time::{Duration, Instant};
    let dir = tempfile::Builder::new().prefix("taxiflow-bench-latency").tempdir().unwrap();
    let port = common::free_port();
    let _broker = common::KillOnDrop(Command::new(bench.root.join("scripts/kafka-broker.sh")).arg(port.to_string()).arg(dir.path().join("broker")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    common::wait_listening(port, "the broker (pip install noida-db)");
    let brokers = format!("127.0.0.1:{port}");
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
    let topics = [NewTopic::new("events", 2, TopicReplication::Fixed(1)).set("message.timestamp.type", "LogAppendTime"), NewTopic::new("alerts", 1, TopicReplication::Fixed(1)).set("message.timestamp.type", "LogAppendTime")];
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let created = futures::executor::block_on(admin.create_topics(&topics, &options)).unwrap();
    assert!(created.iter().all(Result::is_ok), "topics: {created:?}");
    let log = dir.path().join("alerts.log");
    let workers = bench.arg("--latency-workers").unwrap_or_else(|| "2".into());
    let extra = bench.arg("--latency-job-args").unwrap_or_else(|| PACED_FETCHES.into());
    let mut job = common::KillOnDrop(
        Command::new(taxiflow)
            .args(["run", "alerts", "-w", &workers, "--rules", url, "--sla", url, "--max-out-of-orderness", "0", "--group", "latency"])
            .args(["--source", &format!("kafka://{brokers}/events"), "--sink", &format!("kafka://{brokers}/alerts")])
            .args(extra.split_whitespace())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("kafka source assigned") {
        assert!(Instant::now() < deadline && job.0.try_wait().unwrap().is_none(), "the alerts job did not start: {}", std::fs::read_to_string(&log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(20));
    }
    let count = events.to_string();
    let generated = Command::new(taxiflow)
        .args(["generate", "devices", "--to", &format!("kafka://{brokers}/events"), "--rate", "50000", "--count", &count, "--devices", "10000", "--seed", "2", "--start-time", "2026-03-02T08:00:00Z", "--event-spacing", "20us", "--max-disorder", "0s"])
        .output()
        .unwrap();
    assert!(generated.status.success(), "generate: {}", String::from_utf8_lossy(&generated.stderr));
    let consumer: BaseConsumer = rdkafka::ClientConfig::new().set("bootstrap.servers", &brokers).set("group.id", "latency-reader").create().unwrap();
    // The alert topic is complete when its end offset stops moving for 2 s.
    let end = || consumer.fetch_watermarks("alerts", 0, Duration::from_secs(10)).unwrap().1;
    let (mut last, mut since) = (end(), Instant::now());
    while since.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(200));
        let now = end();
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    drop(job);
    let read = |topic: &str, partitions: i32| -> Vec<(Vec<u8>, i64, bool)> {
        let c: BaseConsumer = rdkafka::ClientConfig::new().set("bootstrap.servers", &brokers).set("group.id", format!("latency-{topic}")).create().unwrap();
        let mut list = rdkafka::TopicPartitionList::new();
        let mut remaining = 0;
        for p in 0..partitions {
            list.add_partition_offset(topic, p, rdkafka::Offset::Beginning).unwrap();
            remaining += c.fetch_watermarks(topic, p, Duration::from_secs(10)).unwrap().1;
        }
        c.assign(&list).unwrap();
        let mut out = Vec::new();
        while remaining > 0 {
            if let Some(Ok(m)) = c.poll(Duration::from_secs(10)) {
                remaining -= 1;
                let (t, broker_time) = match m.timestamp() {
                    Timestamp::LogAppendTime(t) => (t, true),
                    Timestamp::CreateTime(t) => (t, false),
                    Timestamp::NotAvailable => (0, false),
                };
                out.push((m.payload().unwrap_or_default().to_vec(), t, broker_time));
            }
        }
        out
    };
    let mut arrival: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    let event_records = read("events", 2);
    let broker_times = event_records.iter().all(|r| r.2);
    for (payload, t, _) in &event_records {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) {
            if let Some(id) = v["Param"]["ID"].as_str() {
                arrival.entry(id.to_string()).or_insert(*t);
            }
        }
    }
    let mut latencies: Vec<i64> = Vec::new();
    // The largest latency per second of the run (by the trigger's arrival): where in the run the tail is.
    let first_arrival = arrival.values().copied().min().unwrap_or(0);
    let mut worst_per_second: std::collections::BTreeMap<i64, i64> = std::collections::BTreeMap::new();
    for (payload, t, _) in read("alerts", 1) {
        let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        if v["type"] == "alert" {
            let trigger = v["trigger_event_id"].as_str().unwrap();
            let latency = t - arrival[trigger];
            latencies.push(latency);
            let worst = worst_per_second.entry((arrival[trigger] - first_arrival) / 1000).or_default();
            *worst = (*worst).max(latency);
        }
    }
    eprintln!("largest latency per second of the run (s: ms): {}", worst_per_second.iter().map(|(s, ms)| format!("{s}: {ms}")).collect::<Vec<_>>().join(", "));
    latencies.sort_unstable();
    assert!(!latencies.is_empty(), "no alerts: {}", std::fs::read_to_string(&log).unwrap_or_default());
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    format!(
        "latency at 50,000 events/s ({events} events, 2 partitions, -w {workers}{}{extra}, --max-out-of-orderness 0; {} timestamps): {} alerts, p50 {} ms, p99 {} ms, max {} ms",
        if extra.is_empty() { "" } else { " " },
        if broker_times { "broker LogAppendTime" } else { "producer CreateTime" },
        latencies.len(),
        at(0.5),
        at(0.99),
        latencies[latencies.len() - 1]
    )
}
