//! Kafka over librdkafka's in-process mock cluster (`rdkafka::mocking::MockCluster`, a real Kafka-protocol
//! broker inside this test process): replay → run → file sink equals the file-mode result on the same input.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rdkafka::mocking::MockCluster;
use taxiflow::connectors::kafka::source::KafkaSource;
use taxiflow::dataflows::jobs::taxi::formats::FormatChoice;
use taxiflow::dataflows::jobs::taxi::{Profile, TaxiJob, TaxiSettings};
use taxiflow::connectors::kafka::source::{KafkaSourceOptions, StartPosition};
use taxiflow::connectors::kafka::KafkaTopic;
use taxiflow::replay::{replay, ReplayOptions, Speedup};
use taxiflow::runtime::run::{run, RunOptions};

/// The first 20,000 rows of the bundled TaxiRide sample (its END rows are in dropoff order, as the replay
/// expects), written to `dir`. librdkafka's mock broker keeps only a few MB per partition, so the whole
/// sample would not fit.
fn sample(dir: &Path) -> PathBuf {
    use std::io::BufRead;
    let reader = taxiflow::connectors::file::open_decoded(&common::root().join("data/nyc-taxi-rides-2013-01-01.csv.gz")).unwrap();
    let text: String = reader.lines().take(20_000).map(|l| l.unwrap() + "\n").collect();
    let path = dir.join("rides.csv");
    std::fs::write(&path, text).unwrap();
    path
}

fn run_into(source: Box<dyn taxiflow::connectors::Source<TaxiJob>>, threads: usize, out: &Path) -> taxiflow::runtime::summary::Totals {
    let timely = if threads == 1 { timely::Config::thread() } else { timely::Config::process(threads) };
    common::run_taxi(&TaxiSettings::for_profile(Profile::Kda), source, timely, out).totals.expect("totals on process 0")
}

#[test]
fn replay_then_run_equals_file_mode() {
    let dir = tempfile::tempdir().unwrap();
    let input = sample(dir.path());
    let file_out = dir.path().join("file");
    let file_totals = run_into(common::file_source(std::slice::from_ref(&input), taxiflow::connectors::file::split::MIN_SPLIT_BYTES, taxiflow::connectors::file::split::MAX_SPLIT_BYTES), 1, &file_out);
    let trips = file_totals.counts.records;
    assert!(trips > 5_000, "{file_totals:?}");

    for partitions in [1, 3] {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("trips", partitions, 1).unwrap();
        let topic = KafkaTopic { brokers: cluster.bootstrap_servers(), topic: "trips".into(), config: Vec::new() };
        let report = replay(&ReplayOptions {
            inputs: vec![input.clone()],
            format: FormatChoice::Auto,
            to: taxiflow::replay::Destination::Kafka(topic.clone()),
            speedup: Speedup::Max,
            repeat: 1,
            watermark_interval: Duration::from_millis(20),
            timeout: Duration::from_secs(30),
        })
        .expect("replay succeeds");
        assert_eq!(report.acknowledged, trips);
        assert!(report.watermark_rounds >= 1);

        for threads in [1, 2] {
            let out = dir.path().join(format!("kafka-{partitions}-{threads}"));
            let totals = run_into(
                Box::new(KafkaSource::new(KafkaSourceOptions {
                    topic: topic.clone(),
                    group: format!("test-{partitions}-{threads}-{}", std::process::id()),
                    start: StartPosition::Earliest,
                    stop_at_latest: true,
                    idle_timeout: None,
                    timeout: Duration::from_secs(30),
                })),
                threads,
                &out,
            );
            let what = format!("{partitions} partition(s), {threads} worker(s)");
            assert_eq!(totals.counts.records, trips, "{what}: {totals:?}");
            assert_eq!(totals.counts.late, 0, "{what}: the replay's watermarks never pass an unsent trip of sorted input");
            assert_eq!(totals.counts.watermarks, report.watermark_rounds * partitions as u64, "{what}: a watermark per partition per round");
            for name in ["pickup_count", "trip_duration"] {
                let expected = std::fs::read_to_string(file_out.join(format!("{name}.jsonl"))).unwrap();
                let actual = std::fs::read_to_string(out.join(format!("{name}.jsonl"))).unwrap();
                assert!(!expected.is_empty());
                assert!(actual == expected, "{what}: {name} differs from file mode");
            }
        }
    }
}

#[test]
fn unknown_topic_and_bad_urls_fail_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = MockCluster::new(1).unwrap();
    // The mock broker creates topics on demand; make this one answer "unknown topic".
    cluster.topic_error("missing", rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART).unwrap();
    let topic = KafkaTopic { brokers: cluster.bootstrap_servers(), topic: "missing".into(), config: Vec::new() };
    let e = replay(&ReplayOptions {
        inputs: vec![sample(dir.path())],
        format: FormatChoice::Auto,
        to: taxiflow::replay::Destination::Kafka(topic),
        speedup: Speedup::Max,
        repeat: 1,
        watermark_interval: Duration::from_secs(1),
        timeout: Duration::from_secs(5),
    })
    .unwrap_err();
    assert!(format!("{e:#}").contains("--to kafka://"), "{e:#}");
    let output = common::taxiflow().args(["run", "--source", "kafka://nohost/trips"]).output().unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("--source"), "{}", String::from_utf8_lossy(&output.stderr));
    let output = common::taxiflow().args(["replay", "--to", "kafka://127.0.0.1:1/trips", "--timeout", "2s"]).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--to kafka://127.0.0.1:1/trips"), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn kafka_sink_writes_the_file_sink_documents_keyed_by_id() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;

    let dir = tempfile::tempdir().unwrap();
    let input = sample(dir.path());
    let file_out = dir.path().join("file");
    run_into(common::file_source(std::slice::from_ref(&input), taxiflow::connectors::file::split::MIN_SPLIT_BYTES, taxiflow::connectors::file::split::MAX_SPLIT_BYTES), 1, &file_out);
    let mut expected = std::collections::BTreeMap::new();
    for index in ["pickup_count", "trip_duration"] {
        for mut doc in common::read_jsonl(&file_out, index) {
            doc["_index"] = serde_json::json!(index);
            expected.insert(doc["_id"].as_str().unwrap().to_string(), doc);
        }
    }

    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("results", 2, 1).unwrap();
    let topic = KafkaTopic { brokers: cluster.bootstrap_servers(), topic: "results".into(), config: Vec::new() };
    let timely = timely::Config::process(2);
    let source = common::file_source(&[input], taxiflow::connectors::file::split::MIN_SPLIT_BYTES, taxiflow::connectors::file::split::MAX_SPLIT_BYTES);
    let sink = Box::new(taxiflow::connectors::kafka::sink::KafkaSinkConnector::new(topic.clone()));
    run(RunOptions::new(TaxiJob::for_profile(Profile::Kda), source, sink, timely)).expect("run with the kafka sink succeeds");

    let consumer: BaseConsumer = topic
        .client_config()
        .set("group.id", format!("sink-test-{}", std::process::id()))
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    consumer.subscribe(&["results"]).unwrap();
    let mut actual = std::collections::BTreeMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while actual.len() < expected.len() && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
            let value: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            assert_eq!(value["_id"].as_str(), Some(key.as_str()), "key is the document id");
            assert!(actual.insert(key, value).is_none(), "no document twice");
        }
    }
    assert_eq!(actual.len(), expected.len());
    assert!(actual == expected, "the topic holds exactly the file sink's documents");
}

/// Polls `path` until `ready` says its lines are complete, for up to 60 s.
fn wait_for_lines(path: &Path, ready: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let lines: Vec<String> = std::fs::read_to_string(path).unwrap_or_default().lines().map(String::from).collect();
        if ready(&lines) {
            return lines;
        }
        assert!(std::time::Instant::now() < deadline, "{} never became ready: {} lines", path.display(), lines.len());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sigterm(child: &mut std::process::Child) -> std::process::Output {
    // SAFETY: signals our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "taxiflow did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    std::process::Output { status: child.wait().unwrap(), stdout: stdout.into_bytes(), stderr: Vec::new() }
}

#[test]
fn unbounded_run_emits_closed_windows_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let input = sample(dir.path());
    let file_out = dir.path().join("file");
    // 10-minute windows (refarch), so that the sample prefix spans several.
    common::run_to_dir(&["--profile", "refarch", "--input", input.to_str().unwrap()], &file_out);
    // The final watermark is the largest event time, which lies inside the last window: every window but the
    // last one closes (refarch timestamps are window end − 1 ms).
    let all = std::fs::read_to_string(file_out.join("pickup_count.jsonl")).unwrap();
    let last_end = all.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["timestamp"].as_i64().unwrap()).max().unwrap();
    let expected: Vec<&str> = all.lines().filter(|l| !l.contains(&format!("\"timestamp\":{last_end}"))).collect();
    assert!(!expected.is_empty());

    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("trips", 2, 1).unwrap();
    let topic = KafkaTopic { brokers: cluster.bootstrap_servers(), topic: "trips".into(), config: Vec::new() };
    replay(&ReplayOptions {
        inputs: vec![input],
        format: FormatChoice::Auto,
        to: taxiflow::replay::Destination::Kafka(topic.clone()),
        speedup: Speedup::Max,
        repeat: 1,
        watermark_interval: Duration::from_millis(50),
        timeout: Duration::from_secs(30),
    })
    .unwrap();
    let out = dir.path().join("stream");
    let mut child = common::KillOnDrop(common::taxiflow()
        .args(["run", "-w", "2", "--profile", "refarch", "--source", &format!("kafka://{}/trips", topic.brokers), "--sink"])
        .arg(format!("file://{}", out.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap());
    let lines = wait_for_lines(&out.join("pickup_count.jsonl"), |l| l.len() >= expected.len());
    let output = sigterm(&mut child.0);
    assert!(output.status.success(), "exit after SIGTERM: {:?}", output.status);
    assert!(String::from_utf8_lossy(&output.stdout).contains("summary:"));
    let written = std::fs::read_to_string(out.join("pickup_count.jsonl")).unwrap();
    assert_eq!(written.lines().collect::<Vec<_>>(), expected, "closed windows only, as in the batch answer");
    assert_eq!(lines.len(), expected.len());
}

#[test]
fn idle_partition_stops_holding_progress_back() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("trips", 2, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let producer: BaseProducer = rdkafka::ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
    let t0 = 1_356_998_400_000u64; // 2013-01-01T00:00:00Z
    let trip = common::trip_event_at;
    // Partition 0: two trips in the first hour, then a watermark past it. Partition 1: nothing.
    for payload in [trip(t0 + 60_000), trip(t0 + 120_000), taxiflow::dataflows::jobs::taxi::formats::json_lines::watermark_event_json(t0 + 3_600_000)] {
        producer.send(BaseRecord::<(), str>::to("trips").payload(&payload).partition(0)).unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut child = common::KillOnDrop(common::taxiflow()
        .args(["run", "--idle-timeout", "1s", "--source", &format!("kafka://{brokers}/trips"), "--sink"])
        .arg(format!("file://{}", out.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap());
    // The first hour closes although partition 1 never sent a watermark.
        let lines = wait_for_lines(&out.join("pickup_count.jsonl"), |l| !l.is_empty());
    assert!(lines[0].contains("\"pickup_count\":2"), "{lines:?}");
    // A trip that the idle partition delivers behind the frontier cannot enter its closed window: late.
    producer.send(BaseRecord::<(), str>::to("trips").payload(&trip(t0 + 180_000)).partition(1)).unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
    let dead = wait_for_lines(&out.join("dead_letter.jsonl"), |l| !l.is_empty());
    assert!(dead[0].contains("\"reason\":\"late\"") && dead[0].contains("/trips/1"), "{dead:?}");
    let output = sigterm(&mut child.0);
    assert!(output.status.success());
}

#[test]
fn repeat_replays_shifted_copies() {
    let dir = tempfile::tempdir().unwrap();
    let input = sample(dir.path());
    let file_out = dir.path().join("file");
    let once = run_into(common::file_source(std::slice::from_ref(&input), taxiflow::connectors::file::split::MIN_SPLIT_BYTES, taxiflow::connectors::file::split::MAX_SPLIT_BYTES), 1, &file_out);
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("trips", 1, 1).unwrap();
    let topic = KafkaTopic { brokers: cluster.bootstrap_servers(), topic: "trips".into(), config: Vec::new() };
    let report = replay(&ReplayOptions {
        inputs: vec![input],
        format: FormatChoice::Auto,
        to: taxiflow::replay::Destination::Kafka(topic.clone()),
        speedup: Speedup::Max,
        repeat: 2,
        watermark_interval: Duration::from_millis(20),
        timeout: Duration::from_secs(30),
    })
    .unwrap();
    assert_eq!(report.acknowledged, 2 * once.counts.records);
    let out = dir.path().join("kafka");
    let twice = run_into(
        Box::new(KafkaSource::new(KafkaSourceOptions {
            topic,
            group: "repeat".into(),
            start: StartPosition::Earliest,
            stop_at_latest: true,
            idle_timeout: None,
            timeout: Duration::from_secs(30),
        })),
        1,
        &out,
    );
    assert_eq!((twice.counts.records, twice.counts.late), (2 * once.counts.records, 0));
    // Every trip is counted once per copy, and the copy lies one span (last − first event time + 1 ms) later.
    let sum = |docs: &[serde_json::Value]| docs.iter().map(|d| d["pickup_count"].as_u64().unwrap()).sum::<u64>();
    let original = common::read_jsonl(&file_out, "pickup_count");
    let both = common::read_jsonl(&out, "pickup_count");
    assert_eq!(sum(&both), 2 * sum(&original));
    let last_original = original.iter().map(|d| d["timestamp"].as_i64().unwrap()).max().unwrap();
    assert!(both.iter().any(|d| d["timestamp"].as_i64().unwrap() > last_original), "the copy lies later in event time");
}
