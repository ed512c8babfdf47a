//! Kinesis end to end against two independent local implementations started by `scripts/` (moto's server and
//! kinesalite): `taxiflow replay --to kinesis://…` then `taxiflow run --source kinesis://… --stop-at latest`
//! gives exactly the file-mode documents with 1 and 4 shards; a split and a merge while an unbounded run
//! reads lose and duplicate nothing (kinesalite; moto does not reshard as Kinesis does, see below); throttling answers and partly failed `PutRecords` are retried; KPL
//! aggregated records are read.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::kinesis::{Implementation, LocalKinesis, ThrottlingProxy, ENV};
use common::file_documents;
use serde_json::Value;

const SAMPLE: &str = "data/nyc-taxi-rides-2013-01-01.csv.gz";

fn taxiflow(args: &[&str]) -> Command {
    let mut c = common::taxiflow();
    c.args(args).envs(ENV);
    c
}

fn ok(mut c: Command) -> Output {
    let output = c.output().unwrap();
    assert!(output.status.success(), "{c:?}: {}", String::from_utf8_lossy(&output.stderr));
    output
}

/// The file-mode documents of `inputs` (both indices, `_id → fields`).
fn file_mode(inputs: &[PathBuf]) -> BTreeMap<String, Value> {
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = Vec::new();
    for i in inputs {
        args.extend(["--input".to_string(), i.display().to_string()]);
    }
    common::run_to_dir(&args.iter().map(String::as_str).collect::<Vec<_>>(), dir.path());
    documents(dir.path())
}

fn documents(dir: &Path) -> BTreeMap<String, Value> {
    let mut docs = file_documents(dir, "pickup_count");
    docs.extend(file_documents(dir, "trip_duration"));
    docs
}

fn replay(endpoint: &str, stream: &str, input: &Path) {
    let input = input.display().to_string();
    ok(taxiflow(&["replay", "--input", &input, "--to", &format!("kinesis://{stream}"), "--endpoint-url", endpoint, "--speedup", "max"]));
}

fn bounded_run(endpoint: &str, stream: &str, out: &Path, workers: &str) -> Output {
    let sink = format!("file://{}", out.display());
    ok(taxiflow(&["run", "-w", workers, "--source", &format!("kinesis://{stream}"), "--endpoint-url", endpoint, "--stop-at", "latest", "--poll-interval", "50ms", "--sink", &sink]))
}

fn replay_then_run_equals_file_mode(which: Implementation) {
    let sample = common::root().join(SAMPLE);
    let expected = file_mode(std::slice::from_ref(&sample));
    let kinesis = LocalKinesis::start(which);
    for shards in [1, 4] {
        let stream = format!("trips-{shards}");
        kinesis.create(&stream, shards);
        replay(&kinesis.url, &stream, &sample);
        let out = tempfile::tempdir().unwrap();
        let output = bounded_run(&kinesis.url, &stream, out.path(), "2");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(common::summary_value(&stdout, "late"), 0, "{which:?}, {shards} shards: {stdout}");
        assert_eq!(common::summary_value(&stdout, "trips"), 46_450, "{stdout}");
        assert_eq!(documents(out.path()), expected, "{which:?}, {shards} shards");
    }
}

#[test]
fn replay_then_run_equals_file_mode_on_kinesalite() {
    replay_then_run_equals_file_mode(Implementation::Kinesalite);
}

#[test]
fn replay_then_run_equals_file_mode_on_moto() {
    replay_then_run_equals_file_mode(Implementation::Moto);
}

/// The sample cut in two (decompressed) at a line boundary, in order.
fn halves(dir: &Path) -> (PathBuf, PathBuf) {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(std::fs::File::open(common::root().join(SAMPLE)).unwrap()), &mut text).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (a, b) = lines.split_at(lines.len() / 2);
    let (first, second) = (dir.join("first.csv"), dir.join("second.csv"));
    std::fs::write(&first, a.join("\n") + "\n").unwrap();
    std::fs::write(&second, b.join("\n") + "\n").unwrap();
    (first, second)
}

/// A running job, killed when dropped.
struct Job(Option<std::process::Child>);

impl Drop for Job {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn resharding_during_the_run(which: Implementation) {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = halves(dir.path());
    let expected = file_mode(&[first.clone(), second.clone()]);
    let kinesis = LocalKinesis::start(which);
    let stream = kinesis.create("resharded", 2);
    let out = dir.path().join("out");
    let sink = format!("file://{}", out.display());
    let (stdout_path, stderr_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut job = Job(Some(
        taxiflow(&["run", "-w", "2", "--source", "kinesis://resharded", "--endpoint-url", &kinesis.url, "--shard-refresh-interval", "300ms", "--poll-interval", "50ms", "--sink", &sink])
            .stdout(std::fs::File::create(&stdout_path).unwrap())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap(),
    ));
    replay(&kinesis.url, "resharded", &first);

    // Split shard 0 in the middle of its hash range, then merge its upper child with shard 1.
    let shards = kinesis.shards(&stream);
    let s0 = &shards[0];
    let s1 = &shards[1];
    let start: u128 = s0.starting_hash_key.parse().unwrap();
    let end: u128 = s1.starting_hash_key.parse::<u128>().unwrap() - 1;
    let middle = start + (end - start) / 2 + 1;
    kinesis.runtime.block_on(async {
        kinesis.client.split_shard().stream_name("resharded").shard_to_split(&s0.id).new_starting_hash_key(middle.to_string()).send().await.unwrap();
        taxiflow::connectors::kinesis::wait_active(&kinesis.client, &stream).await.unwrap();
    });
    let upper = kinesis.shards(&stream).into_iter().find(|s| s.parent.as_deref() == Some(&s0.id) && s.starting_hash_key == middle.to_string()).expect("upper child");
    kinesis.runtime.block_on(async {
        kinesis.client.merge_shards().stream_name("resharded").shard_to_merge(&upper.id).adjacent_shard_to_merge(&s1.id).send().await.unwrap();
        taxiflow::connectors::kinesis::wait_active(&kinesis.client, &stream).await.unwrap();
    });
    let after = kinesis.shards(&stream);
    assert_eq!(after.iter().filter(|s| !s.closed).count(), 2, "{after:?}");
    assert!(after.iter().any(|s| s.adjacent_parent.is_some()), "a merged shard: {after:?}");
    replay(&kinesis.url, "resharded", &second);

    // The replay's last watermark closes every window but the last; wait until the job has written them.
    let last_window = expected.values().map(|d| d["timestamp"].as_i64().unwrap()).max().unwrap();
    let closed: BTreeMap<String, Value> = expected.iter().filter(|(_, d)| d["timestamp"].as_i64().unwrap() < last_window).map(|(k, v)| (k.clone(), v.clone())).collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if out.join("pickup_count.jsonl").exists() && documents(&out).len() >= closed.len() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // SIGTERM: the job stops without emitting the open window.
    let mut child = job.0.take().unwrap();
    // SAFETY: signals our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let (stdout, stderr) = (std::fs::read_to_string(&stdout_path).unwrap(), std::fs::read_to_string(&stderr_path).unwrap());
    assert!(status.success(), "{stderr}");
    let got = documents(&out);
    let lines: usize = ["pickup_count", "trip_duration"].iter().map(|f| std::fs::read_to_string(out.join(format!("{f}.jsonl"))).unwrap().lines().count()).sum();
    assert_eq!(lines, got.len(), "no document id twice");
    let missing = closed.keys().filter(|k| !got.contains_key(*k)).count();
    let extra: Vec<&String> = got.keys().filter(|k| !closed.contains_key(*k)).collect();
    assert!(missing == 0 && extra.is_empty(), "{which:?}: {missing} of {} documents missing, extra {extra:?}\n{stderr}", closed.len());
    assert_eq!(got, closed, "{which:?}: every closed window, nothing more, nothing less");
    assert_eq!(common::summary_value(&stdout, "late"), 0, "{stdout}\n{stderr}");
}

#[test]
fn resharding_during_the_run_on_kinesalite() {
    resharding_during_the_run(Implementation::Kinesalite);
}

// Not on moto: moto 5.2.1's SplitShard and MergeShards close the parents but keep routing new records to the
// closed parent and copy the parents' records into the merged shard (seen here: the children of a split stay
// empty while the closed parent grows), which is not how Kinesis reshards ("Resharding a stream"), so it is
// not an endpoint that supports them.

#[test]
fn throttled_calls_and_failed_records_are_retried() {
    let sample = common::root().join(SAMPLE);
    let expected = file_mode(std::slice::from_ref(&sample));
    let kinesis = LocalKinesis::start(Implementation::Kinesalite);
    kinesis.create("throttled", 2);
    let proxy = ThrottlingProxy::start(&kinesis.url, 3);
    replay(&proxy.url(), "throttled", &sample);
    let out = tempfile::tempdir().unwrap();
    let output = bounded_run(&proxy.url(), "throttled", out.path(), "1");
    assert_eq!(common::summary_value(&String::from_utf8_lossy(&output.stdout), "trips"), 46_450);
    assert_eq!(documents(out.path()), expected);
    assert!(proxy.throttled.load(std::sync::atomic::Ordering::SeqCst) > 10);
    assert!(proxy.failed_entries.load(std::sync::atomic::Ordering::SeqCst) > 1000);
}

#[test]
fn kpl_aggregated_records_are_deaggregated() {
    // The sample's trip events, written as KPL aggregated records of 100 user records each.
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = halves(dir.path());
    let expected = file_mode(std::slice::from_ref(&first));
    let kinesis = LocalKinesis::start(Implementation::Kinesalite);
    let stream = kinesis.create("kpl", 1);
    // Replay into a scratch stream, then read its records back to aggregate them (the replay's exact events).
    kinesis.create("plain", 1);
    replay(&kinesis.url, "plain", &first);
    let plain = kinesis.runtime.block_on(async {
        let shard = taxiflow::connectors::kinesis::list_shards(&kinesis.client, &taxiflow::connectors::kinesis::KinesisStream { name: "plain".into() }).await.unwrap()[0].id.clone();
        let mut it = kinesis.client.get_shard_iterator().stream_name("plain").shard_id(shard).shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon).send().await.unwrap().shard_iterator().unwrap().to_string();
        let mut data: Vec<Vec<u8>> = Vec::new();
        loop {
            let out = kinesis.client.get_records().shard_iterator(&it).send().await.unwrap();
            if out.records().is_empty() {
                break;
            }
            data.extend(out.records().iter().map(|r| r.data().as_ref().to_vec()));
            it = out.next_shard_iterator().unwrap().to_string();
        }
        data
    });
    kinesis.runtime.block_on(async {
        for chunk in plain.chunks(100) {
            let pairs: Vec<(&str, &[u8])> = chunk.iter().map(|d| ("k", d.as_slice())).collect();
            let record = taxiflow::connectors::kinesis::deaggregate::aggregate(&pairs);
            kinesis.client.put_record().stream_name("kpl").partition_key("k").data(aws_sdk_kinesis::primitives::Blob::new(record)).send().await.unwrap();
        }
    });
    assert_eq!(kinesis.shards(&stream).len(), 1);
    let out = tempfile::tempdir().unwrap();
    let output = bounded_run(&kinesis.url, "kpl", out.path(), "1");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(common::summary_value(&stdout, "records read"), plain.len() as u64, "{stdout}");
    assert_eq!(documents(out.path()), expected);
}
