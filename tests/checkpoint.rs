//! Checkpoints and recovery: jobs killed with SIGKILL at moments chosen by their log (after their N-th checkpoint
//! commit, N and a jitter seeded) and restarted, sometimes with another worker count, end with exactly the
//! documents of an uninterrupted run: none missing, none extra, no duplicate ids. File, Kafka (a real broker process) and Kinesis (kinesalite) sources; file and
//! OpenSearch-API sinks. Corrupt checkpoint files are detected.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use common::crash::crash_loop;

/// Jitter of the kill moments after the log shows the commits: up to one checkpoint interval (100 ms).
const JITTER: Duration = Duration::from_millis(100);

/// `taxiflow run ARGS --sink file://OUT` (the uninterrupted reference run).
fn reference_run(args: &[&str], out: &Path) {
    common::run_to_dir(args, out);
}

/// The three outputs of a file sink: documents by `_id`, dead letters by `source@offset` (asserting no key twice).
fn outputs(dir: &Path) -> [BTreeMap<String, Value>; 3] {
    let dead: Vec<Value> = common::read_jsonl(dir, "dead_letter");
    let n = dead.len();
    let dead: BTreeMap<String, Value> = dead.into_iter().map(|d| (format!("{}@{}", d["source"].as_str().unwrap(), d["offset"]), d)).collect();
    assert_eq!(dead.len(), n, "a dead letter written twice");
    [common::file_documents(dir, "pickup_count"), common::file_documents(dir, "trip_duration"), dead]
}

fn assert_same_outputs(got: &Path, want: &Path) {
    let (got, want) = (outputs(got), outputs(want));
    for (i, name) in ["pickup_count", "trip_duration", "dead_letter"].iter().enumerate() {
        let missing: Vec<&String> = want[i].keys().filter(|k| !got[i].contains_key(*k)).take(5).collect();
        let extra: Vec<&String> = got[i].keys().filter(|k| !want[i].contains_key(*k)).take(5).collect();
        assert!(missing.is_empty() && extra.is_empty(), "{name}: missing {missing:?}, extra {extra:?}");
        let differ: Vec<&String> = want[i].iter().filter(|(k, v)| got[i][*k] != **v).map(|(k, _)| k).take(5).collect();
        assert!(differ.is_empty(), "{name}: documents differ: {differ:?}");
        assert!(!want[i].is_empty() || *name == "dead_letter", "{name}: the reference run wrote nothing");
    }
}

/// A temporary directory and the paths of a crash test: the uninterrupted run's output, the crash-looped
/// run's output, the checkpoints and the job's log.
struct Work {
    dir: tempfile::TempDir,
    reference: PathBuf,
    out: PathBuf,
    checkpoints: PathBuf,
    log: PathBuf,
}

impl Work {
    fn new() -> Work {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        Work { reference: path("ref"), out: path("out"), checkpoints: path("ck"), log: path("log"), dir }
    }
}

struct Input {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn real_trips(copies: u64) -> Input {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trips.jsonl");
    common::write_real_trip_copies(&path, copies);
    Input { _dir: dir, path }
}

/// `taxiflow run` with checkpoints every 100 ms in `checkpoints` on `workers` workers.
fn checkpointed_run(workers: usize, checkpoints: &Path, args: &[&str]) -> Command {
    let mut c = common::taxiflow();
    c.args(["run", "-w", &workers.to_string(), "--checkpoint-dir", checkpoints.to_str().unwrap(), "--checkpoint-interval", "100ms"]).args(args);
    c
}

/// [`checkpointed_run`], with each worker's source limited to `rate` records per second unless `last`: a killed
/// start then reads at most `rate` × workers × its time to its commits (≤ 3 intervals and a jitter), so ten of
/// them cannot read the whole input, whatever the machine's speed; the last, uninterrupted start runs at full
/// speed.
fn crash_run(workers: usize, last: bool, rate: u32, checkpoints: &Path, args: &[&str]) -> Command {
    let mut c = checkpointed_run(workers, checkpoints, args);
    if !last {
        c.args(["--source-rate-limit", &rate.to_string()]);
    }
    c
}

fn file_sink(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

#[test]
fn file_source_killed_ten_times_equals_an_uninterrupted_run() {
    let input = real_trips(12);
    let Work { dir: _work, reference, out, checkpoints, log, .. } = Work::new();
    let input_arg = input.path.display().to_string();
    reference_run(&["--input", &input_arg, "-w", "2"], &reference);
    // 12 copies: 557,400 trips, read by up to 3 workers at 15,000/s each.
    let used = crash_loop(6, JITTER, &log, |_| {}, |workers, last| crash_run(workers, last, 15_000, &checkpoints, &["--input", &input_arg, "--sink", &file_sink(&out)]));
    assert!(used.iter().any(|w| *w != used[0]), "worker counts {used:?}");
    assert!(!outputs(&reference)[2].is_empty(), "the input has late trips, so dead letters are checked too");
    assert_same_outputs(&out, &reference);
}

/// A real broker with `trips` replayed into a 3-partition topic; returns the broker and the source URL.
fn kafka_with(trips: &Input, data: &Path) -> (common::kafka_broker::Broker, String) {
    let broker = common::kafka_broker::Broker::start(common::free_port(), data);
    common::kafka_broker::create_topic(&broker.address(), "trips", 3);
    let url = format!("kafka://{}/trips", broker.address());
    let replay = common::taxiflow().args(["replay", "--to", &url, "--speedup", "max", "--input", trips.path.to_str().unwrap()]).output().unwrap();
    assert!(replay.status.success(), "replay: {}", String::from_utf8_lossy(&replay.stderr));
    (broker, url)
}

#[test]
fn kafka_source_killed_ten_times_equals_an_uninterrupted_run() {
    let input = real_trips(8);
    let Work { dir: work, reference, out, checkpoints, log, .. } = Work::new();
    let (_broker, url) = kafka_with(&input, &work.path().join("broker"));
    let source = ["--source", url.as_str(), "--stop-at", "latest"];
    reference_run(&[&source[..], &["-w", "2", "--group", "reference"]].concat(), &reference);
    // 8 copies: 371,600 trips in 3 partitions, read by up to 3 workers at 10,000/s each.
    crash_loop(7, JITTER, &log, |_| {}, |workers, last| crash_run(workers, last, 10_000, &checkpoints, &[&source[..], &["--sink", &file_sink(&out)]].concat()));
    assert_same_outputs(&out, &reference);
}

#[test]
fn kafka_source_into_opensearch_killed_ten_times_equals_an_uninterrupted_run() {
    let input = real_trips(4);
    let Work { dir: work, reference, checkpoints, log, .. } = Work::new();
    let (_broker, url) = kafka_with(&input, &work.path().join("broker"));
    let source = ["--source", url.as_str(), "--stop-at", "latest"];
    common::run_to_dir(&[&source[..], &["-w", "2", "--group", "reference"]].concat(), &reference);
    let server = common::opensearch::OpenSearch::start();
    let sink = server.sink();
    // 4 copies: 185,800 trips in 3 partitions, read by up to 3 workers at 5,000/s each.
    crash_loop(8, JITTER, &log, |_| {}, |workers, last| crash_run(workers, last, 5_000, &checkpoints, &[&source[..], &["--sink", &sink, "--bulk-interval", "50ms"]].concat()));
    let want = outputs(&reference);
    for (i, index) in ["pickup_count", "trip_duration", "dead_letter"].iter().enumerate() {
        let got = server.documents(index);
        assert_eq!(got.len(), want[i].len(), "{index}: document count");
        if i < 2 {
            assert!(got == want[i], "{index}: the indexed documents differ from the uninterrupted run's");
        }
    }
}

/// A job run to its end with checkpoints every 10 ms, leaving two checkpoint files; returns (work dir, input,
/// reference output, args of a checkpointed run into `out`).
struct Finished {
    work: tempfile::TempDir,
    _input: Input,
    args: Vec<String>,
}

impl Finished {
    fn new() -> Finished {
        let input = real_trips(2);
        let work = tempfile::tempdir().unwrap();
        let input_arg = input.path.display().to_string();
        common::run_to_dir(&["--input", &input_arg, "-w", "2"], &work.path().join("ref"));
        let args: Vec<String> = ["--input", &input_arg, "--sink", &file_sink(&work.path().join("out"))].iter().map(|s| s.to_string()).collect();
        let finished = Finished { work, _input: input, args };
        let output = finished.run(2, &[]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(finished.files().len(), 2, "the newest checkpoint and the one before it are kept");
        finished
    }

    fn checkpoints(&self) -> PathBuf {
        self.work.path().join("ck")
    }

    fn run(&self, workers: usize, extra: &[&str]) -> std::process::Output {
        let mut c = common::taxiflow();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        c.args(["run", "-w", &workers.to_string(), "--checkpoint-dir", self.checkpoints().to_str().unwrap(), "--checkpoint-interval", "10ms"]).args(args).args(extra);
        c.env("RUST_LOG", "info").output().unwrap()
    }

    /// Checkpoint files, newest first.
    fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.checkpoints()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "redb")).collect();
        files.sort();
        files.reverse();
        files
    }

    fn assert_output_is_the_reference(&self) {
        assert_same_outputs(&self.work.path().join("out"), &self.work.path().join("ref"));
    }
}

/// Flips one bit of the first occurrence of `needle` in `file`.
fn flip_bit_in(file: &Path, needle: &[u8]) {
    let mut bytes = std::fs::read(file).unwrap();
    let at = bytes.windows(needle.len()).position(|w| w == needle).expect("the checkpoint holds the needle");
    bytes[at + needle.len() / 2] ^= 0x04;
    std::fs::write(file, bytes).unwrap();
}

#[test]
fn a_truncated_or_bit_flipped_checkpoint_is_detected_and_the_previous_one_used() {
    for corruption in ["truncated", "bit flipped"] {
        let job = Finished::new();
        let files = job.files();
        let (newest, previous) = (&files[0], &files[1]);
        match corruption {
            "truncated" => {
                let len = std::fs::metadata(newest).unwrap().len();
                std::fs::OpenOptions::new().write(true).open(newest).unwrap().set_len(len / 3).unwrap();
            }
            _ => flip_bit_in(newest, b"trips.jsonl"),
        }
        let output = job.run(3, &[]);
        let log = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{corruption}: {log}");
        assert!(log.contains("checkpoint unusable, trying the previous one"), "{corruption}: no warning: {log}");
        let previous_epoch = previous.file_name().unwrap().to_str().unwrap().trim_start_matches("checkpoint-").trim_end_matches(".redb").trim_start_matches('0').to_string();
        assert!(log.contains(&format!("restored checkpoint epoch={previous_epoch}")), "{corruption}: not restored from the previous one ({previous_epoch}): {log}");
        job.assert_output_is_the_reference();
    }
}

#[test]
fn without_a_usable_checkpoint_the_job_refuses_to_start_unless_reset() {
    let job = Finished::new();
    for file in job.files() {
        flip_bit_in(&file, b"source=files:");
    }
    let output = job.run(2, &[]);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "started from scratch with corrupt checkpoints: {log}");
    assert!(log.contains("no usable checkpoint") && log.contains("checksum mismatch") && log.contains("--checkpoint-reset"), "{log}");
    let output = job.run(2, &["--checkpoint-reset"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    job.assert_output_is_the_reference();

    // Another job's checkpoint (other settings) is refused too.
    let output = job.run(2, &["--window", "30m"]);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && log.contains("belongs to another job"), "{log}");
}

#[test]
fn the_file_sink_is_cut_back_to_what_the_checkpoint_acknowledged() {
    let job = Finished::new();
    // Lines written after the last checkpoint (a crash between the write and the commit) are removed.
    let out = job.work.path().join("out");
    for name in ["pickup_count", "dead_letter"] {
        let mut text = std::fs::read_to_string(out.join(format!("{name}.jsonl"))).unwrap();
        let first = text.lines().next().unwrap().to_string();
        text.push_str(&first);
        text.push('\n');
        std::fs::write(out.join(format!("{name}.jsonl")), text).unwrap();
    }
    let output = job.run(1, &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    job.assert_output_is_the_reference();
}

#[test]
fn kinesis_source_killed_ten_times_equals_an_uninterrupted_run() {
    use common::kinesis::{Implementation, LocalKinesis, ENV};
    let input = real_trips(6);
    let Work { dir: _work, reference, out, checkpoints, log, .. } = Work::new();
    let kinesis = LocalKinesis::start(Implementation::Kinesalite);
    let stream = kinesis.create("trips", 2);
    let url = format!("kinesis://{}", stream.name);
    let replay = common::taxiflow().envs(ENV).args(["replay", "--to", &url, "--endpoint-url", &kinesis.url, "--speedup", "max", "--input", input.path.to_str().unwrap()]).output().unwrap();
    assert!(replay.status.success(), "replay: {}", String::from_utf8_lossy(&replay.stderr));
    let source = ["--source", url.as_str(), "--endpoint-url", kinesis.url.as_str(), "--stop-at", "latest", "--poll-interval", "50ms"];
    let mut uninterrupted = common::taxiflow();
    uninterrupted.envs(ENV).args(["run", "-w", "2"]).args(source).args(["--sink", &file_sink(&reference)]);
    let output = uninterrupted.output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // 6 copies: 278,700 trips in 2 shards, read by up to 2 workers at 10,000/s each.
    crash_loop(12, JITTER, &log, |_| {}, |workers, last| {
        let mut c = crash_run(workers, last, 10_000, &checkpoints, &[&source[..], &["--sink", &file_sink(&out)]].concat());
        c.envs(ENV);
        c
    });
    assert_same_outputs(&out, &reference);
}

#[test]
fn a_checkpoint_of_one_process_is_resumed_by_two() {
    let input = real_trips(6);
    let Work { dir: work, reference, out, checkpoints, .. } = Work::new();
    let input_arg = input.path.display().to_string();
    common::run_to_dir(&["--input", &input_arg, "-w", "2"], &reference);
    let sink = file_sink(&out);
    // One process with 3 workers, killed once its second checkpoint is written.
    let mut child = checkpointed_run(3, &checkpoints, &["--input", &input_arg, "--sink", &sink]).stderr(Stdio::null()).spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::fs::read_dir(&checkpoints).map_or(0, |d| d.filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "redb")).count()) < 2 {
        assert!(child.try_wait().unwrap().is_none(), "the job ended before its second checkpoint");
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: signals our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    child.wait().unwrap();
    // Two processes of 2 workers each resume it.
    let hostfile = work.path().join("hosts");
    std::fs::write(&hostfile, format!("127.0.0.1:{}\n127.0.0.1:{}\n", common::free_port(), common::free_port())).unwrap();
    let children: Vec<_> = (0..2)
        .map(|p| {
            let mut c = checkpointed_run(2, &checkpoints, &["-n", "2", "-p", &p.to_string(), "--hostfile", hostfile.to_str().unwrap(), "--input", &input_arg, "--sink", &sink]);
            c.env("RUST_LOG", "info").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
        })
        .collect();
    for (p, child) in children.into_iter().enumerate() {
        let output = child.wait_with_output().unwrap();
        let log = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "process {p}: {log}");
        assert!(log.contains("restored checkpoint"), "process {p} did not restore: {log}");
    }
    assert_same_outputs(&out, &reference);
}
