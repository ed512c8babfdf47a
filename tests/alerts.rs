//! The alerts job (`docs/jobs/alerts.md`) against a real PostgreSQL server (`scripts/postgres.sh`) holding its
//! rules and device settings: generated streams equal the independent Python implementation
//! (`scripts/alerts_reference.py`) message for message; hand-written scenarios for the steps of §2 and the
//! order of §1 and §4; bad rule rows; a server that is not up yet at start; a crash loop with checkpoints.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::postgres::LocalPostgres;
use sha2::{Digest, Sha256};

/// The tables with the blog's two rules.
const SCHEMA: &str = include_str!("../scripts/alerts_schema.sql");

/// A server with the schema, the blog's rules and settings for devices 1–3 (one with a negative delay).
fn configured() -> LocalPostgres {
    let pg = LocalPostgres::start();
    pg.sql(SCHEMA);
    pg.sql("INSERT INTO device_sla VALUES (1, 'line 1', 'night shift', 2000), (2, NULL, 'press 4', -5), (3, 'hall \"B\"', NULL, 0)");
    pg
}

/// `taxiflow generate devices` into `path`.
fn generate(path: &Path, count: u64, devices: u64, seed: u64) {
    let output = common::taxiflow()
        .args(["generate", "devices", "--to", path.to_str().unwrap(), "--count", &count.to_string(), "--devices", &devices.to_string(), "--seed", &seed.to_string()])
        .args(["--start-time", "2026-03-02T08:00:00Z", "--event-spacing", "5ms", "--max-disorder", "3s"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// Two generated partitions (files) of `count` events each over the same span of event time (seeds `seed`, `seed + 1`).
fn two_partitions(dir: &Path, count: u64, devices: u64, seed: u64) -> Vec<PathBuf> {
    let inputs: Vec<PathBuf> = (0..2).map(|p| dir.join(format!("events-{p}.jsonl"))).collect();
    for (p, path) in inputs.iter().enumerate() {
        generate(path, count, devices, seed + p as u64);
    }
    inputs
}

/// The expected messages (JSON lines) and dead letters (`PATH\tLINE\tREASON` lines, sorted) of the reference.
fn reference(pg: &LocalPostgres, inputs: &[PathBuf]) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (rules, sla, dead) = (dir.path().join("rules.json"), dir.path().join("sla.json"), dir.path().join("dead.tsv"));
    std::fs::write(&rules, pg.json_rows("alert_rule")).unwrap();
    std::fs::write(&sla, pg.json_rows("device_sla")).unwrap();
    let output = Command::new("python3")
        .arg(common::root().join("scripts/alerts_reference.py"))
        .args(["--rules", rules.to_str().unwrap(), "--sla", sla.to_str().unwrap(), "--dead-letters", dead.to_str().unwrap()])
        .args(inputs)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let mut dead: Vec<String> = std::fs::read_to_string(dead).unwrap().lines().map(String::from).collect();
    dead.sort();
    (String::from_utf8(output.stdout).unwrap(), dead.join("\n"))
}

/// The dead letters of a file sink as sorted `REASON\tRECORD` lines (the reason up to its first colon): which of two
/// equal records in two partitions is the redelivery depends on the order they are read in, the records do not.
fn dead_letters(out: &Path) -> String {
    let mut lines: Vec<String> = common::read_jsonl(out, "dead_letter")
        .iter()
        .map(|d| format!("{}\t{}", d["reason"].as_str().unwrap().split(':').next().unwrap(), d["record"].as_str().unwrap()))
        .collect();
    lines.sort();
    lines.join("\n")
}

/// The reference's dead letters (`PATH\tLINE\tREASON`) as sorted `REASON\tRECORD` lines.
fn records_of(reference_dead: &str) -> String {
    let mut files: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut lines: Vec<String> = reference_dead
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut f = l.split('\t');
            let (path, line, reason) = (f.next().unwrap(), f.next().unwrap().parse::<usize>().unwrap(), f.next().unwrap());
            let text = files.entry(path.to_string()).or_insert_with(|| std::fs::read_to_string(path).unwrap().lines().map(String::from).collect());
            format!("{reason}\t{}", text[line - 1])
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

/// Fails with the first difference of two sorted line lists (not the whole lists).
fn assert_same_lines(got: &str, want: &str, what: &str) {
    if got != want {
        let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
        let first = g.iter().zip(&w).position(|(a, b)| a != b).unwrap_or(g.len().min(w.len()));
        panic!("{what}: {} lines, the reference {}; first difference at line {first}: {:?} vs {:?}", g.len(), w.len(), g.get(first), w.get(first));
    }
}

/// The alert and revoke messages of an `alerts.jsonl`, without its watermark records, after checking that every
/// watermark record follows all messages up to its instant.
fn messages_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let mut watermark: Option<String> = None;
    let mut messages = String::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["type"] == "watermark" {
            let w = v["watermark"].as_str().unwrap().to_string();
            assert!(watermark.as_ref().is_none_or(|old| *old < w), "watermarks advance: {line}");
            watermark = Some(w);
            continue;
        }
        let t = v["alert_time"].as_str().or(v["revoke_time"].as_str()).unwrap();
        if let Some(w) = &watermark {
            assert!(t > w.as_str(), "a message at {t} after the watermark {w}");
        }
        messages.push_str(line);
        messages.push('\n');
    }
    messages
}

fn alerts_args<'a>(pg: &'a LocalPostgres, inputs: &'a [PathBuf]) -> Vec<String> {
    let mut args = vec!["alerts".to_string(), "--rules".into(), pg.url.clone(), "--sla".into(), pg.url.clone()];
    for i in inputs {
        args.push("--input".into());
        args.push(i.display().to_string());
    }
    args
}

fn run_alerts(pg: &LocalPostgres, inputs: &[PathBuf], workers: usize, out: &Path) -> std::process::Output {
    let mut args = alerts_args(pg, inputs);
    args.extend(["-w".to_string(), workers.to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    common::run_to_dir(&args, out)
}

#[test]
fn generated_streams_equal_the_reference_for_one_and_three_partitions_and_one_to_three_workers() {
    let pg = configured();
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("events.jsonl");
    generate(&whole, 60_000, 300, 11);
    // Three partitions: every third line, so each is out of order in its own way.
    let text = std::fs::read_to_string(&whole).unwrap();
    let parts: Vec<PathBuf> = (0..3).map(|p| dir.path().join(format!("part-{p}.jsonl"))).collect();
    for (p, path) in parts.iter().enumerate() {
        let lines: Vec<&str> = text.lines().enumerate().filter(|(i, _)| i % 3 == p).map(|(_, l)| l).collect();
        std::fs::write(path, lines.join("\n") + "\n").unwrap();
    }
    for (inputs, workers) in [(vec![whole.clone()], vec![1, 2]), (parts.clone(), vec![1, 2, 3])] {
        let (expected, expected_dead) = reference(&pg, &inputs);
        let kinds = ["\"type\":\"alert\",\"alert_id\"", "\"type\":\"revoke\"", "\"rule_id\":1,", "\"rule_id\":2,", "\"info\":\"line 1\"", "\"overrides\":\"press 4\",\"delay_ms\":0"];
        for kind in kinds {
            assert!(expected.contains(kind), "the stream exercises {kind}");
        }
        for reason in ["late", "duplicate", "malformed"] {
            assert!(expected_dead.contains(reason), "the stream has {reason} records");
        }
        for w in workers {
            let out = dir.path().join(format!("out-{}-{w}", inputs.len()));
            let output = run_alerts(&pg, &inputs, w, &out);
            let got = messages_of(&out.join("alerts.jsonl"));
            assert_same_lines(&got, &expected, &format!("{} partition(s), -w {w}: messages", inputs.len()));
            assert_same_lines(&dead_letters(&out), &records_of(&expected_dead), &format!("{} partition(s), -w {w}: dead letters", inputs.len()));
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert_eq!(common::summary_value(&stdout, "duplicates") as usize, expected_dead.matches("\tduplicate").count());
        }
    }
}

fn id(rule: u32, device: i64, trigger: &str) -> String {
    Sha256::digest(format!("{rule}:{device}:{trigger}").as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn event(message: &str, code: Option<i64>, time: &str, id: &str, device: i64) -> String {
    let code = code.map_or(String::new(), |c| format!("\"ErrCode\": {c}, "));
    format!("{{\"Message\": \"{message}\", \"Param\": {{{code}\"Timestamp\": \"{time}\", \"ID\": \"{id}\"}}, \"DeviceNumber\": {device}}}")
}

#[test]
fn hand_written_scenarios_follow_every_step_and_order_of_the_spec() {
    let pg = configured();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.jsonl");
    let lines = [
        // Device 1: A then B within a minute raises A_AND_B (with device 1's settings); run revokes it.
        event("fault", Some(1), "2026-03-02T08:00:00.000Z", "a1", 1),
        event("fault", Some(2), "2026-03-02T09:00:30.5+01:00", "b1", 1),
        // Device 2: C and the alarm in the same millisecond: "e-10" sorts before "e-9", so C comes first.
        event("alarm", None, "2026-03-02T08:00:40.000Z", "e-9", 2),
        event("fault", Some(3), "2026-03-02T08:00:40.000Z", "e-10", 2),
        // Device 3: an alert and its revoke in one millisecond: the alert first (same time, same alert_id).
        event("fault", Some(3), "2026-03-02T08:00:41.000Z", "c3", 3),
        event("alarm", None, "2026-03-02T08:00:42.000Z", "d3", 3),
        event("recover", Some(3), "2026-03-02T08:00:42.000Z", "e3", 3),
        // Device 4: A recovered before B (unless) raises nothing; a redelivery of B is a duplicate.
        event("fault", Some(1), "2026-03-02T08:00:43.000Z", "a4", 4),
        event("recover", Some(1), "2026-03-02T08:00:44.000Z", "r4", 4),
        event("fault", Some(2), "2026-03-02T08:00:45.000Z", "b4", 4),
        event("fault", Some(2), "2026-03-02T08:00:45.000Z", "b4", 4),
        // Device 1 again: the run revokes the open alert.
        event("run", None, "2026-03-02T08:00:50.000Z", "x1", 1),
        // Late: 6 s behind the largest event time so far (the bound is 5 s + 1 ms).
        event("fault", Some(1), "2026-03-02T08:00:43.999Z", "late", 5),
        // Malformed: an ErrCode of "1".
        "{\"Message\": \"fault\", \"Param\": {\"ErrCode\": \"1\", \"Timestamp\": \"2026-03-02T08:00:50Z\", \"ID\": \"m\"}, \"DeviceNumber\": 6}".to_string(),
    ];
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let out = dir.path().join("out");
    run_alerts(&pg, std::slice::from_ref(&input), 2, &out);
    let alert = |rule: u32, alert_type: &str, priority: u32, device: i64, time: &str, fault_time: &str, trigger: &str, fault: &str, sla: &str| {
        format!(
            "{{\"type\":\"alert\",\"alert_id\":\"{}\",\"rule_id\":{rule},\"alert_type\":\"{alert_type}\",\"priority\":{priority},\"device\":{device},\"alert_time\":\"{time}\",\"fault_time\":\"{fault_time}\",\"trigger_event_id\":\"{trigger}\",\"fault_event_id\":\"{fault}\",{sla}}}",
            id(rule, device, trigger)
        )
    };
    let revoke = |rule: u32, alert_type: &str, device: i64, trigger: &str, time: &str, by: &str| {
        format!("{{\"type\":\"revoke\",\"alert_id\":\"{}\",\"rule_id\":{rule},\"alert_type\":\"{alert_type}\",\"device\":{device},\"revoke_time\":\"{time}\",\"revoke_event_id\":\"{by}\"}}", id(rule, device, trigger))
    };
    let expected = [
        alert(1, "A_AND_B", 5, 1, "2026-03-02T08:00:30.500Z", "2026-03-02T08:00:00.000Z", "b1", "a1", "\"info\":\"line 1\",\"overrides\":\"night shift\",\"delay_ms\":2000"),
        alert(2, "C_THEN_ALARM", 8, 2, "2026-03-02T08:00:40.000Z", "2026-03-02T08:00:40.000Z", "e-9", "e-10", "\"info\":null,\"overrides\":\"press 4\",\"delay_ms\":0"),
        alert(2, "C_THEN_ALARM", 8, 3, "2026-03-02T08:00:42.000Z", "2026-03-02T08:00:41.000Z", "d3", "c3", "\"info\":\"hall \\\"B\\\"\",\"overrides\":null,\"delay_ms\":0"),
        revoke(2, "C_THEN_ALARM", 3, "d3", "2026-03-02T08:00:42.000Z", "e3"),
        revoke(1, "A_AND_B", 1, "b1", "2026-03-02T08:00:50.000Z", "x1"),
    ];
    let got = messages_of(&out.join("alerts.jsonl"));
    assert_eq!(got.lines().collect::<Vec<_>>(), expected, "messages in (event time, alert_id) order");
    let last = std::fs::read_to_string(out.join("alerts.jsonl")).unwrap().lines().last().unwrap().to_string();
    assert_eq!(last, "{\"type\":\"watermark\",\"watermark\":\"2026-03-02T08:00:50.000Z\"}", "a last watermark record at the end");
    let dead = common::read_jsonl(&out, "dead_letter");
    let mut reasons: Vec<(String, u64)> = dead.iter().map(|d| (d["reason"].as_str().unwrap().split(':').next().unwrap().to_string(), d["line"].as_u64().unwrap())).collect();
    reasons.sort_by_key(|r| r.1);
    assert_eq!(reasons, [("duplicate".to_string(), 11), ("late".to_string(), 13), ("malformed".to_string(), 14)]);
    assert!(dead.iter().any(|d| d["reason"] == "malformed: Param.ErrCode: not an integer"), "the reason names the field: {dead:?}");
    assert!(dead.iter().any(|d| d["reason"] == "duplicate" && d["record"].as_str().unwrap().contains("\"b4\"")), "the redelivery's record is kept: {dead:?}");
    // The reference agrees with the hand-written expectation.
    let (reference_messages, _) = reference(&pg, std::slice::from_ref(&input));
    assert_eq!(reference_messages, got);
}

#[test]
fn a_bad_rule_row_refuses_the_start_naming_the_rule_and_the_field() {
    let pg = configured();
    pg.sql("INSERT INTO alert_rule VALUES (7, 'sequence', 'X', 1, 1000, '{\"first\": {\"message\": \"fault\", \"err_code\": \"3\"}, \"second\": {\"message\": \"alarm\"}, \"unless\": {\"message\": \"run\"}, \"revoke\": []}', true)");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.jsonl");
    std::fs::write(&input, event("fault", Some(1), "2026-03-02T08:00:00Z", "a", 1) + "\n").unwrap();
    let output = common::taxiflow().args(["run", "alerts", "--rules", &pg.url, "--input", input.to_str().unwrap(), "--sink", &format!("file://{}", dir.path().join("out").display())]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--rules") && stderr.contains("rule_id 7: params.first.err_code: not an integer or null"), "{stderr}");
    // A disabled bad row is not read.
    pg.sql("UPDATE alert_rule SET enabled = false WHERE rule_id = 7");
    run_alerts(&pg, &[input], 1, &dir.path().join("out"));
    // Without --rules the start names the flag.
    let output = common::taxiflow().args(["run", "alerts", "--input", "x.jsonl"]).output().unwrap();
    assert!(!output.status.success() && String::from_utf8_lossy(&output.stderr).contains("--rules"));
}

#[test]
fn a_server_that_is_not_up_yet_is_retried_with_backoff() {
    let mut pg = configured();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.jsonl");
    std::fs::write(&input, [event("fault", Some(3), "2026-03-02T08:00:00Z", "c", 9), event("alarm", None, "2026-03-02T08:00:01Z", "d", 9)].join("\n") + "\n").unwrap();
    pg.stop();
    let log = dir.path().join("log");
    let out = dir.path().join("out");
    let mut child = common::taxiflow()
        .env("RUST_LOG", "info")
        .args(["run", "alerts", "--rules", &pg.url, "--input", input.to_str().unwrap(), "--sink", &format!("file://{}", out.display())])
        .stderr(std::fs::File::create(&log).unwrap())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    common::wait_for_log(&log, "PostgreSQL connection failed; retrying", 2, &mut child);
    pg.restart();
    let status = child.wait().unwrap();
    assert!(status.success(), "{}", common::crash::tail(&log));
    let text = messages_of(&out.join("alerts.jsonl"));
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains(&id(2, 9, "d")));
}

#[test]
fn killed_ten_times_with_checkpoints_equals_an_uninterrupted_run() {
    let pg = configured();
    let dir = tempfile::tempdir().unwrap();
    // 2 × 60,000 events; read at 10,000/s per partition in the killed starts, in steps of 1,000 (a tenth of a
    // second's worth), so commits come every few steps and ten starts cannot read it all.
    let inputs = two_partitions(dir.path(), 60_000, 200, 40);
    let (expected, expected_dead) = reference(&pg, &inputs);
    let out = dir.path().join("out");
    let checkpoints = dir.path().join("ck");
    let log = dir.path().join("log");
    let base = alerts_args(&pg, &inputs);
    common::crash::crash_loop(
        5,
        Duration::from_millis(100),
        &log,
        |_| {},
        |workers, last| {
            let mut c = common::taxiflow();
            c.arg("run").args(&base).args(["-w", &workers.to_string(), "--sink", &format!("file://{}", out.display())]);
            c.args(["--checkpoint-dir", checkpoints.to_str().unwrap(), "--checkpoint-interval", "100ms"]);
            if !last {
                c.args(["--source-rate-limit", "10000"]);
            }
            c
        },
    );
    let mut got: Vec<String> = std::fs::read_to_string(out.join("alerts.jsonl")).unwrap().lines().filter(|l| !l.contains("\"type\":\"watermark\"")).map(String::from).collect();
    let mut want: Vec<String> = expected.lines().map(String::from).collect();
    assert_eq!(got.len(), want.len(), "as many messages as the reference: none lost, none twice");
    got.sort();
    want.sort();
    assert_same_lines(&got.join("\n"), &want.join("\n"), "the messages after 10 kills");
    assert_same_lines(&dead_letters(&out), &records_of(&expected_dead), "every dead letter once");
}

/// The expected dispatch messages of alert-topic files, from `scripts/dispatch_reference.py`.
fn dispatch_reference(inputs: &[PathBuf]) -> String {
    let output = Command::new("python3").arg(common::root().join("scripts/dispatch_reference.py")).args(inputs).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn run_dispatch(input: &Path, workers: usize, out: &Path) -> std::process::Output {
    common::run_to_dir(&["dispatch", "--input", input.to_str().unwrap(), "-w", &workers.to_string()], out)
}

#[test]
fn dispatch_of_generated_alerts_equals_the_reference_with_one_to_three_workers() {
    let pg = configured();
    // Long delays for two devices, so that many of their alerts are revoked before they are due.
    pg.sql("INSERT INTO device_sla SELECT d, 'd' || d, NULL, 45000 FROM generate_series(10, 40) d");
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    generate(&events, 60_000, 150, 23);
    let alerts_out = dir.path().join("alerts");
    run_alerts(&pg, std::slice::from_ref(&events), 2, &alerts_out);
    let alerts = alerts_out.join("alerts.jsonl");
    let expected = dispatch_reference(std::slice::from_ref(&alerts));
    for kind in ["\"reason\":\"revoked\"", "\"reason\":\"superseded\"", "\"type\":\"dispatch\"", "\"info\":\"d1"] {
        assert!(expected.contains(kind), "the alerts exercise {kind}");
    }
    for w in [1, 2, 3] {
        let out = dir.path().join(format!("dispatch-{w}"));
        run_dispatch(&alerts, w, &out);
        let got = std::fs::read_to_string(out.join("dispatch.jsonl")).unwrap();
        assert_same_lines(&got, &expected, &format!("dispatch -w {w}"));
    }
}

#[test]
fn dispatch_scenarios_delay_deduplicate_override_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("alerts.jsonl");
    let at = |s: u32| format!("2026-03-02T08:00:{s:02}.000Z");
    let alert = |id: &str, device: i64, priority: i64, s: u32, delay: u64| {
        format!("{{\"type\":\"alert\",\"alert_id\":\"{id}\",\"rule_id\":1,\"alert_type\":\"T{priority}\",\"priority\":{priority},\"device\":{device},\"alert_time\":\"{}\",\"fault_time\":\"{}\",\"trigger_event_id\":\"t\",\"fault_event_id\":\"f\",\"info\":\"i-{id}\",\"overrides\":null,\"delay_ms\":{delay}}}", at(s), at(s))
    };
    let revoke = |id: &str, device: i64, s: u32| format!("{{\"type\":\"revoke\",\"alert_id\":\"{id}\",\"rule_id\":1,\"alert_type\":\"T\",\"device\":{device},\"revoke_time\":\"{}\",\"revoke_event_id\":\"r\"}}", at(s));
    let lines = [
        // Device 1: revoked within its delay: never sent.
        alert("a1", 1, 5, 0, 5000),
        // Device 2: a higher priority supersedes, its revoke re-dispatches the lower one.
        alert("l2", 2, 5, 1, 0),
        alert("h2", 2, 8, 2, 0),
        revoke("a1", 1, 3),
        revoke("h2", 2, 4),
        // Device 3: one millisecond revokes both open alerts: no transient dispatch of the second.
        alert("x3", 3, 8, 5, 0),
        alert("y3", 3, 5, 5, 0),
        // Device 4: a tie of priority and alert_time: the smaller alert_id; a redelivery is a duplicate.
        alert("q4", 4, 5, 6, 0),
        alert("p4", 4, 5, 6, 0),
        alert("p4", 4, 5, 6, 0),
        revoke("x3", 3, 7),
        revoke("y3", 3, 7),
        "{\"type\":\"watermark\",\"watermark\":\"2026-03-02T08:00:07.000Z\"}".to_string(),
        // Device 5: a delay of 2 s, dispatched at alert_time + delay_ms (after the input's end, at the end).
        alert("d5", 5, 1, 8, 2000),
    ];
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let out = dir.path().join("out");
    let output = run_dispatch(&input, 2, &out);
    let dispatch = |id: &str, device: i64, priority: i64, s: u32| format!("{{\"type\":\"dispatch\",\"alert_id\":\"{id}\",\"device\":{device},\"alert_type\":\"T{priority}\",\"priority\":{priority},\"info\":\"i-{id}\",\"dispatch_time\":\"{}\"}}", at(s));
    let close = |id: &str, device: i64, priority: i64, reason: &str, s: u32| format!("{{\"type\":\"close\",\"alert_id\":\"{id}\",\"device\":{device},\"alert_type\":\"T{priority}\",\"reason\":\"{reason}\",\"close_time\":\"{}\"}}", at(s));
    let expected = [
        dispatch("l2", 2, 5, 1),
        close("l2", 2, 5, "superseded", 2),
        dispatch("h2", 2, 8, 2),
        close("h2", 2, 8, "revoked", 4),
        dispatch("l2", 2, 5, 4),
        dispatch("x3", 3, 8, 5),
        dispatch("p4", 4, 5, 6),
        close("x3", 3, 8, "revoked", 7),
        dispatch("d5", 5, 1, 10),
    ];
    let got = std::fs::read_to_string(out.join("dispatch.jsonl")).unwrap();
    assert_eq!(got.lines().collect::<Vec<_>>(), expected);
    assert_eq!(dispatch_reference(std::slice::from_ref(&input)), got, "the reference agrees");
    let dead = common::read_jsonl(&out, "dead_letter");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0]["reason"].as_str(), dead[0]["line"].as_u64()), (Some("duplicate"), Some(10)));
    assert_eq!(common::summary_value(&String::from_utf8_lossy(&output.stdout), "duplicates"), 1);
}

#[test]
fn alerts_into_a_kafka_topic_and_dispatch_from_it_equal_the_reference() {
    use common::kafka_broker::{create_topic, Broker};
    let pg = configured();
    pg.sql("INSERT INTO device_sla SELECT d, 'd' || d, NULL, 20000 FROM generate_series(10, 40) d");
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    generate(&events, 30_000, 100, 31);
    let broker = Broker::start(common::free_port(), &dir.path().join("broker"));
    create_topic(&broker.address(), "alerts", 3);
    let topic = format!("kafka://{}/alerts", broker.address());
    // The alerts job into a topic of 3 partitions: messages keyed by alert_id, watermark records to every partition.
    let mut args = alerts_args(&pg, std::slice::from_ref(&events));
    args.extend(["-w".to_string(), "2".into(), "--sink".into(), topic.clone(), "--watermark-interval".into(), "50ms".into()]);
    let output = common::taxiflow().arg("run").args(&args).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // The same alerts from a file run are what dispatch must work from.
    let file_out = dir.path().join("alerts");
    run_alerts(&pg, std::slice::from_ref(&events), 1, &file_out);
    let expected = dispatch_reference(&[file_out.join("alerts.jsonl")]);
    assert!(expected.contains("\"reason\":\"revoked\"") && expected.contains("\"reason\":\"superseded\""));
    for w in ["1", "3"] {
        let out = dir.path().join(format!("dispatch-{w}"));
        let run = common::run_to_dir(&["dispatch", "--source", &topic, "--stop-at", "latest", "-w", w, "--group", &format!("dispatch-{w}")], &out);
        let got = std::fs::read_to_string(out.join("dispatch.jsonl")).unwrap();
        assert_same_lines(&got, &expected, &format!("dispatch from Kafka, -w {w}"));
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert_eq!(common::summary_value(&stdout, "late"), 0, "{stdout}");
    }
}

/// The dead letters among Kafka values as sorted `REASON\tRECORD` lines (see [`dead_letters`]).
fn dead_letter_values(values: &[String]) -> String {
    let mut lines: Vec<String> = values
        .iter()
        .map(|v| {
            let d: serde_json::Value = serde_json::from_str(v).unwrap();
            assert_eq!(d["_index"], "dead_letter", "only dead letters in the dead-letter topic: {v}");
            format!("{}\t{}", d["reason"].as_str().unwrap().split(':').next().unwrap(), d["record"].as_str().unwrap())
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

/// The alert and revoke messages among Kafka values (no watermark records), sorted: each must be there once.
fn sorted_messages(values: &[String]) -> String {
    let mut lines: Vec<&str> = values.iter().map(String::as_str).filter(|v| !v.contains("\"type\":\"watermark\"")).collect();
    lines.sort_unstable();
    lines.join("\n")
}

/// `expected` (JSON lines) sorted.
fn sorted_lines(expected: &str) -> String {
    let mut lines: Vec<&str> = expected.lines().collect();
    lines.sort_unstable();
    lines.join("\n")
}

/// A broker with an alert topic of 3 partitions and a dead-letter topic, and the alerts job's arguments into
/// them with `--kafka-transactions` and checkpoints every 100 ms.
fn transactional_run(pg: &LocalPostgres, inputs: &[PathBuf], dir: &Path) -> (common::kafka_broker::Broker, Vec<String>) {
    use common::kafka_broker::{create_topic, Broker};
    let broker = Broker::start(common::free_port(), &dir.join("broker"));
    create_topic(&broker.address(), "alerts", 3);
    create_topic(&broker.address(), "alerts-dead", 1);
    let mut args = vec!["run".to_string()];
    args.extend(alerts_args(pg, inputs));
    let sink = format!("kafka://{}/alerts", broker.address());
    args.extend(["--sink".to_string(), sink, "--dead-letter-topic".into(), "alerts-dead".into(), "--kafka-transactions".into()]);
    args.extend(["--checkpoint-dir".to_string(), dir.join("ck").display().to_string(), "--checkpoint-interval".into(), "100ms".into()]);
    // One partition per file: a file split in byte ranges starts a range in the middle of its event time, which
    // holds the watermark (and all output) back until the first range catches up.
    args.extend(["--min-split-bytes".to_string(), "1000000000".into()]);
    (broker, args)
}

#[test]
fn exactly_once_into_kafka_a_commit_lost_between_checkpoint_and_transaction_is_produced_again() {
    let pg = configured();
    let dir = tempfile::tempdir().unwrap();
    // Two partitions over the same span of event time, so that the watermark and the output advance with the
    // input.
    let inputs = two_partitions(dir.path(), 20_000, 100, 52);
    let (expected, expected_dead) = reference(&pg, &inputs);
    let (broker, args) = transactional_run(&pg, &inputs, dir.path());
    // The process dies after its 8th checkpoint is durable and before its transaction is committed (the one moment
    // a kill from outside cannot aim at): the broker aborts that transaction when the next run starts.
    let log = dir.path().join("log");
    let first = common::taxiflow()
        .args(&args)
        .args(["-w", "2", "--source-rate-limit", "10000"])
        .env(taxiflow::runtime::sink_operator::ABORT_BEFORE_COMMIT, "8")
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log).unwrap())
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!first.status.success() && text.contains("aborting before the sink commits"), "{}", common::crash::tail(&log));
    let seen = common::kafka_broker::read_committed(&broker.address(), "alerts");
    let committed = seen.iter().filter(|v| !v.contains("\"type\":\"watermark\"")).count();
    assert!(committed < expected.lines().count(), "only the epochs before are committed");
    assert!(committed > 0, "the epochs before are committed: {} values; {}", seen.len(), text);
    // The restart restores the checkpoint of the committed epoch (the 7th), not the newest (the 8th), and produces that epoch again.
    let second = common::taxiflow().args(&args).args(["-w", "3"]).env("RUST_LOG", "info").stderr(std::fs::File::options().append(true).open(&log).unwrap()).output().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(second.status.success(), "{}", common::crash::tail(&log));
    // The epochs of the log's "checkpoint committed" lines: the first run's 7th is the one restored.
    let epoch_of = |line: &str| line.split("epoch=").nth(1).and_then(|r| r.split(' ').next()).map(String::from);
    let commits: Vec<String> = text.lines().filter(|l| l.contains("checkpoint committed")).filter_map(epoch_of).collect();
    let restored = text.lines().find(|l| l.contains("restored checkpoint")).and_then(epoch_of);
    assert!(text.contains("the sink did not commit the newest checkpoint's epoch"), "{}", common::crash::tail(&log));
    assert_eq!(restored.as_ref(), commits.get(6), "the checkpoint of the last committed transaction is restored: {}", common::crash::tail(&log));
    let values = common::kafka_broker::read_committed(&broker.address(), "alerts");
    assert_same_lines(&sorted_messages(&values), &sorted_lines(&expected), "committed messages: each once");
    let dead = common::kafka_broker::read_committed(&broker.address(), "alerts-dead");
    assert_same_lines(&dead_letter_values(&dead), &records_of(&expected_dead), "dead letters in their own topic, each once");
    // dispatch reads the transactional topic (read_committed) to its end offsets, which lie past the last
    // transaction marker, and ends.
    let file_out = dir.path().join("alerts-file");
    run_alerts(&pg, &inputs, 1, &file_out);
    let want = dispatch_reference(&[file_out.join("alerts.jsonl")]);
    let out = dir.path().join("dispatch");
    let topic = format!("kafka://{}/alerts", broker.address());
    common::run_to_dir(&["dispatch", "--source", &topic, "--stop-at", "latest", "-w", "2", "--group", "dispatch-txn"], &out);
    assert_same_lines(&std::fs::read_to_string(out.join("dispatch.jsonl")).unwrap(), &want, "dispatch from the transactional topic");
}

#[test]
fn killed_ten_times_into_kafka_with_transactions_the_committed_topic_equals_an_uninterrupted_run() {
    let pg = configured();
    let dir = tempfile::tempdir().unwrap();
    let inputs = two_partitions(dir.path(), 60_000, 200, 60);
    let (expected, expected_dead) = reference(&pg, &inputs);
    let (broker, args) = transactional_run(&pg, &inputs, dir.path());
    let log = dir.path().join("log");
    let used = common::crash::crash_loop(
        17,
        Duration::from_millis(100),
        &log,
        |_| {},
        |workers, last| {
            let mut c = common::taxiflow();
            c.args(&args).args(["-w", &workers.to_string()]);
            if !last {
                c.args(["--source-rate-limit", "10000"]);
            }
            c
        },
    );
    eprintln!("worker counts of the starts: {used:?}");
    let values = common::kafka_broker::read_committed(&broker.address(), "alerts");
    assert_same_lines(&sorted_messages(&values), &sorted_lines(&expected), "committed messages after 10 kills: none lost, none twice");
    let dead = common::kafka_broker::read_committed(&broker.address(), "alerts-dead");
    assert_same_lines(&dead_letter_values(&dead), &records_of(&expected_dead), "dead letters after 10 kills, each once");
}

/// Produces `lines` to `topic` (one message each, no key) and waits for their acknowledgement.
fn produce(brokers: &str, topic: &str, lines: &[String]) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let producer: BaseProducer = rdkafka::ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    for line in lines {
        producer.send(BaseRecord::<(), str>::to(topic).payload(line.as_str())).unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// The alerts of `device` in `out/alerts.jsonl` so far, as JSON.
fn alerts_of(out: &Path, device: i64) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(out.join("alerts.jsonl")).unwrap_or_default();
    text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).filter(|v| v["type"] == "alert" && v["device"] == device).collect()
}

/// Waits until `device` has `n` alerts in `out`, while `child` runs.
fn wait_for_alerts(out: &Path, device: i64, n: usize, child: &mut std::process::Child, log: &Path) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let alerts = alerts_of(out, device);
        if alerts.len() >= n {
            return alerts;
        }
        assert!(child.try_wait().unwrap().is_none(), "the job ended; log: {}", common::crash::tail(log));
        assert!(std::time::Instant::now() < deadline, "no {n} alerts of device {device} within 2 minutes; log: {}", common::crash::tail(log));
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Device `device`'s events that raise rule 1's alert at `second` + 1 (A then B), revoking an open one first (run),
/// and a later event of device 99 that moves the watermark past them.
fn raising(device: i64, second: u32, tag: &str) -> Vec<String> {
    let at = |s: u32| format!("2026-03-02T08:{:02}:{:02}.000Z", s / 60, s % 60);
    vec![
        event("run", None, &at(second), &format!("{tag}-run"), device),
        event("fault", Some(1), &at(second + 1), &format!("{tag}-a"), device),
        event("fault", Some(2), &at(second + 2), &format!("{tag}-b"), device),
        event("run", None, &at(second + 20), &format!("{tag}-push"), 99),
    ]
}

/// The alerts job reading `topic` of `broker` into a file sink, with `extra` flags, logging to `log`.
fn streaming_alerts(pg: &LocalPostgres, brokers: &str, topic: &str, out: &Path, log: &Path, extra: &[&str]) -> common::KillOnDrop {
    common::kafka_broker::create_topic(brokers, topic, 1);
    let child = common::taxiflow()
        .args(["run", "alerts", "--rules", &pg.url, "--sla", &pg.url, "--source", &format!("kafka://{brokers}/{topic}"), "--group", topic])
        .args(["--sink", &format!("file://{}", out.display())])
        .args(extra)
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    common::KillOnDrop(child)
}

#[test]
fn device_settings_come_through_a_cache_changed_after_its_ttl_and_at_once_with_change_data_capture() {
    let pg = configured();
    let dir = tempfile::tempdir().unwrap();
    let broker = common::kafka_broker::Broker::start(common::free_port(), &dir.path().join("broker"));
    let delay = |a: &serde_json::Value| a["delay_ms"].as_u64().unwrap();
    // (ttl, cdc, whether the change must be seen): a cached row is used until its TTL ends, however the table
    // changes; after the TTL it is read again; with change data capture the change is seen at once.
    for (case, (ttl, cdc)) in [("1h", false), ("2s", false), ("1h", true)].into_iter().enumerate() {
        pg.sql("UPDATE device_sla SET delay_ms = 2000 WHERE device_id = 1");
        let (out, log, topic) = (dir.path().join(format!("out-{case}")), dir.path().join(format!("log-{case}")), format!("events-{case}"));
        let mut extra = vec!["--lookup-cache-ttl", ttl];
        if cdc {
            extra.push("--sla-cdc");
        }
        let mut job = streaming_alerts(&pg, &broker.address(), &topic, &out, &log, &extra);
        produce(&broker.address(), &topic, &raising(1, 0, "p1"));
        let first = wait_for_alerts(&out, 1, 1, &mut job.0, &log);
        assert_eq!(delay(&first[0]), 2000);
        pg.sql("UPDATE device_sla SET delay_ms = 7000 WHERE device_id = 1");
        match (ttl, cdc) {
            // The TTL itself is what is waited for: the row cached at the first alert is older than 2 s after it.
            ("2s", _) => std::thread::sleep(Duration::from_secs(2)),
            (_, true) => common::wait_for_log(&log, "device_sla changed", 1, &mut job.0),
            _ => {}
        }
        produce(&broker.address(), &topic, &raising(1, 60, "p2"));
        let second = wait_for_alerts(&out, 1, 2, &mut job.0, &log);
        let want = if ttl == "1h" && !cdc { 2000 } else { 7000 };
        assert_eq!(delay(&second[1]), want, "ttl {ttl}, cdc {cdc}: {}", common::crash::tail(&log));
        drop(job);
    }
}

#[test]
fn postgres_stopped_during_a_run_holds_the_alerts_back_until_it_is_back() {
    let mut pg = configured();
    let dir = tempfile::tempdir().unwrap();
    let broker = common::kafka_broker::Broker::start(common::free_port(), &dir.path().join("broker"));
    let (out, log) = (dir.path().join("out"), dir.path().join("log"));
    let mut job = streaming_alerts(&pg, &broker.address(), "events", &out, &log, &["--sla-cdc"]);
    produce(&broker.address(), "events", &raising(1, 0, "p1"));
    assert_eq!(wait_for_alerts(&out, 1, 1, &mut job.0, &log)[0]["delay_ms"], 2000);
    pg.stop();
    // Device 2's settings are not cached: its alert waits while the lookups fail, and is not emitted without them.
    produce(&broker.address(), "events", &raising(2, 60, "p2"));
    common::wait_for_log(&log, "device_sla lookup failed; the alerts wait", 1, &mut job.0);
    assert!(alerts_of(&out, 2).is_empty(), "no alert without its settings");
    pg.restart();
    let alert = &wait_for_alerts(&out, 2, 1, &mut job.0, &log)[0];
    assert_eq!((alert["overrides"].as_str(), alert["delay_ms"].as_u64()), (Some("press 4"), Some(0)), "device 2's settings");
    // Change data capture reconnects with a new slot and sees changes again.
    common::wait_for_log(&log, "change data capture reconnected", 1, &mut job.0);
    pg.sql("UPDATE device_sla SET delay_ms = 9000 WHERE device_id = 1");
    common::wait_for_log(&log, "device_sla changed", 1, &mut job.0);
    produce(&broker.address(), "events", &raising(1, 120, "p3"));
    assert_eq!(wait_for_alerts(&out, 1, 2, &mut job.0, &log)[1]["delay_ms"], 9000);
    drop(job);
}

#[test]
fn a_lookup_that_keeps_failing_stops_the_run_with_the_reason() {
    let mut pg = configured();
    let dir = tempfile::tempdir().unwrap();
    let broker = common::kafka_broker::Broker::start(common::free_port(), &dir.path().join("broker"));
    let (out, log) = (dir.path().join("out"), dir.path().join("log"));
    let mut job = streaming_alerts(&pg, &broker.address(), "events", &out, &log, &[]);
    common::wait_for_log(&log, "kafka source assigned", 1, &mut job.0);
    pg.stop();
    produce(&broker.address(), "events", &raising(1, 0, "p1"));
    // Retried with backoff for 30 s (taxiflow::connectors::postgres::RETRY_FOR), then the run stops.
    let status = job.0.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "{}", common::crash::tail(&log));
    assert!(text.contains("device_sla lookup failed") && text.contains("alerts are not emitted without their settings"), "{}", common::crash::tail(&log));
    assert!(alerts_of(&out, 1).is_empty(), "no alert without its settings");
}

#[test]
fn dispatch_killed_ten_times_into_kafka_with_transactions_the_committed_topic_equals_the_reference() {
    use common::kafka_broker::{create_topic, Broker};
    let pg = configured();
    pg.sql("INSERT INTO device_sla SELECT d, 'd' || d, NULL, (d % 4) * 15000 FROM generate_series(10, 200) d");
    let dir = tempfile::tempdir().unwrap();
    // The alert topic as two files (partitions) of the alerts job's output, watermark records included.
    let mut inputs = Vec::new();
    for p in 0..2u64 {
        let events = dir.path().join(format!("events-{p}.jsonl"));
        generate(&events, 50_000, 200, 70 + p);
        let out = dir.path().join(format!("alerts-{p}"));
        run_alerts(&pg, std::slice::from_ref(&events), 1, &out);
        inputs.push(out.join("alerts.jsonl"));
    }
    let expected = dispatch_reference(&inputs);
    for kind in ["\"reason\":\"revoked\"", "\"reason\":\"superseded\"", "\"type\":\"dispatch\""] {
        assert!(expected.contains(kind), "the stream exercises {kind}");
    }
    let broker = Broker::start(common::free_port(), &dir.path().join("broker"));
    create_topic(&broker.address(), "dispatch", 3);
    let (checkpoints, log) = (dir.path().join("ck"), dir.path().join("log"));
    let used = common::crash::crash_loop(
        23,
        Duration::from_millis(100),
        &log,
        |_| {},
        |workers, last| {
            let mut c = common::taxiflow();
            c.args(["run", "dispatch", "-w", &workers.to_string(), "--sink", &format!("kafka://{}/dispatch", broker.address()), "--kafka-transactions"]);
            c.args(["--checkpoint-dir", checkpoints.to_str().unwrap(), "--checkpoint-interval", "100ms", "--min-split-bytes", "1000000000"]);
            for i in &inputs {
                c.arg("--input").arg(i);
            }
            if !last {
                c.args(["--source-rate-limit", "3000"]);
            }
            c
        },
    );
    eprintln!("worker counts of the starts: {used:?}");
    let values = common::kafka_broker::read_committed(&broker.address(), "dispatch");
    assert_same_lines(&sorted_messages(&values), &sorted_lines(&expected), "committed dispatch messages after 10 kills: none lost, none twice");
}

#[test]
fn rules_refresh_applies_a_changed_alert_rule_without_a_restart_and_keeps_the_rules_on_a_bad_row() {
    let pg = configured();
    let dir = tempfile::tempdir().unwrap();
    let broker = common::kafka_broker::Broker::start(common::free_port(), &dir.path().join("broker"));
    let (out, log) = (dir.path().join("out"), dir.path().join("log"));
    let mut job = streaming_alerts(&pg, &broker.address(), "events", &out, &log, &["--rules-refresh", "100ms"]);
    produce(&broker.address(), "events", &raising(1, 0, "p1"));
    assert_eq!(wait_for_alerts(&out, 1, 1, &mut job.0, &log)[0]["priority"], 5);
    pg.sql("UPDATE alert_rule SET priority = 9 WHERE rule_id = 1");
    common::wait_for_log(&log, "alert rules refreshed", 1, &mut job.0);
    produce(&broker.address(), "events", &raising(1, 60, "p2"));
    assert_eq!(wait_for_alerts(&out, 1, 2, &mut job.0, &log)[1]["priority"], 9, "the changed rule is in force");
    // A bad row is reported with its rule and field, and the rules in force stay.
    pg.sql("INSERT INTO alert_rule VALUES (7, 'sequence', 'X', 1, 1000, '{\"first\": {\"message\": \"fault\", \"err_code\": \"3\"}, \"second\": {\"message\": \"alarm\"}, \"unless\": {\"message\": \"run\"}, \"revoke\": []}', true)");
    common::wait_for_log(&log, "rule_id 7: params.first.err_code: not an integer or null", 1, &mut job.0);
    produce(&broker.address(), "events", &raising(1, 120, "p3"));
    assert_eq!(wait_for_alerts(&out, 1, 3, &mut job.0, &log)[2]["priority"], 9);
    // A disabled rule raises nothing more: device 1's next A and B stay silent, while a rule 2 alert still comes.
    pg.sql("DELETE FROM alert_rule WHERE rule_id = 7; UPDATE alert_rule SET enabled = false WHERE rule_id = 1");
    common::wait_for_log(&log, "alert rules refreshed", 2, &mut job.0);
    let mut lines = raising(1, 180, "p4");
    lines.insert(3, event("fault", Some(3), "2026-03-02T08:03:04.000Z", "p4-c", 1));
    lines.insert(4, event("alarm", None, "2026-03-02T08:03:05.000Z", "p4-alarm", 1));
    produce(&broker.address(), "events", &lines);
    let alerts = wait_for_alerts(&out, 1, 4, &mut job.0, &log);
    assert_eq!((alerts.len(), alerts[3]["rule_id"].as_u64()), (4, Some(2)), "only rule 2 raised: {alerts:?}");
    drop(job);
}
