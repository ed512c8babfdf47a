//! Failure handling of the Elasticsearch sink against an HTTP test server with scripted faults
//! (`common::bulk_server`): items answered 429 or 503, whole requests 500/503, answers slower than the request
//! timeout, connections cut and refused, a 400 mapping error. The run must end with every document stored
//! once per id, the refused one in the dead-letter index, and never report as written a document the server
//! did not acknowledge.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::bulk_server::{BulkServer, Fault, Forwarder};
use common::file_documents;
use serde_json::Value;

fn bundled_documents() -> (BTreeMap<String, Value>, BTreeMap<String, Value>) {
    let dir = tempfile::tempdir().unwrap();
    common::run_to_dir(&[], dir.path());
    (file_documents(dir.path(), "pickup_count"), file_documents(dir.path(), "trip_duration"))
}

fn run(sink: &str, extra: &[&str]) -> std::process::Output {
    common::taxiflow()
        .args(["run", "--sink", sink, "--bulk-max-actions", "500", "--bulk-backoff", "20ms", "--bulk-backoff-max", "200ms", "--es-timeout", "1s"])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn transient_failures_are_retried_until_every_document_is_stored() {
    let (pickups, durations) = bundled_documents();
    let refused_id = pickups.keys().nth(1234).unwrap().clone();
    let refused = refused_id.clone();
    let script = move |n: usize| match n {
        1 => Fault::Whole(503),
        2 => Fault::Whole(500),
        3 => Fault::Items(Arc::new(|position, _| match position % 5 {
            0 => Some((429, "es_rejected_execution_exception")),
            1 => Some((503, "unavailable_shards_exception")),
            _ => None,
        })),
        4 => Fault::Slow(Duration::from_secs(3)),
        5 => Fault::Whole(429),
        _ => {
            let refused = refused.clone();
            Fault::Items(Arc::new(move |_, id| (id == refused).then_some((400, "mapper_parsing_exception"))))
        }
    };
    let server = BulkServer::start(script, |_| Ok(()));
    let output = run(&format!("es+{}", server.url()), &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let mut expected_pickups = pickups.clone();
    let refused_doc = expected_pickups.remove(&refused_id).unwrap();
    assert_eq!(server.stored("pickup_count"), expected_pickups);
    assert_eq!(server.stored("trip_duration"), durations);
    let dead = server.stored("dead_letter");
    assert_eq!(dead.len(), 1, "{dead:?}");
    let letter = &dead[&format!("rejected:{refused_id}")];
    assert!(letter["reason"].as_str().unwrap().contains("400 mapper_parsing_exception"), "{letter}");
    assert_eq!(serde_json::from_str::<Value>(letter["record"].as_str().unwrap()).unwrap(), refused_doc);
    // Reported written = acknowledged: every stored result document, once.
    assert_eq!(common::summary_value(&stdout, "pickup_count"), expected_pickups.len() as u64, "{stdout}");
    assert_eq!(common::summary_value(&stdout, "trip_duration"), durations.len() as u64);
    // Retries happened: the item failures and the timed-out request were sent again.
    let seen = server.seen.lock().unwrap();
    assert!(seen.requests > 6, "{} requests", seen.requests);
    assert!(seen.items > pickups.len() + durations.len() + 500, "{} items", seen.items);
}

#[test]
fn connections_cut_and_refused_for_a_while_lose_nothing() {
    let (pickups, durations) = bundled_documents();
    let forwarder: Arc<OnceLock<Arc<Forwarder>>> = Arc::default();
    let handle = forwarder.clone();
    let script = move |n: usize| {
        if n == 3 {
            // Store the request, then cut the connection before the answer and refuse connections for 1.5 s.
            let handle = handle.clone();
            Fault::Hook(Arc::new(move || {
                let f = handle.get().unwrap().clone();
                f.down();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(1500));
                    f.up();
                });
            }))
        } else {
            Fault::None
        }
    };
    let server = BulkServer::start(script, |_| Ok(()));
    let upstream = server.url().trim_start_matches("http://").to_string();
    forwarder.set(Arc::new(Forwarder::start(upstream))).ok().unwrap();
    let port = forwarder.get().unwrap().port;
    let output = run(&format!("es+http://127.0.0.1:{port}"), &["--bulk-max-retries", "20"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(server.stored("pickup_count"), pickups);
    assert_eq!(server.stored("trip_duration"), durations);
    assert_eq!(common::summary_value(&stdout, "pickup_count"), pickups.len() as u64);
    // The lost answer's items were sent again.
    let seen = server.seen.lock().unwrap();
    assert!(seen.receipts.values().any(|&n| n > 1));
}

#[test]
fn a_cluster_that_keeps_failing_fails_the_job_without_claiming_documents() {
    let server = BulkServer::start(|n| if n <= 1 { Fault::None } else { Fault::Whole(503) }, |_| Ok(()));
    let output = run(&format!("es+{}", server.url()), &["--bulk-max-retries", "3"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("still failing after 3 retries") && stderr.contains("503"), "{stderr}");
    assert!(stderr.contains("documents not acknowledged"), "{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("summary:"), "no summary claims documents written");
    // The first request (500 documents) was stored; the sink never reported more than that.
    assert_eq!(server.seen.lock().unwrap().stored.len(), 500);
}

#[test]
fn a_refused_request_fails_the_job_at_once() {
    // 401 on bulk requests (e.g. wrong credentials): not retried.
    let server = BulkServer::start(|_| Fault::Whole(401), |_| Ok(()));
    let output = run(&format!("es+{}", server.url()), &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refused a bulk request: 401"), "{stderr}");
    let requests = server.seen.lock().unwrap().requests;
    assert!(requests <= 2, "{requests} requests: a 401 is not retried, and no request is sent after it (2 may be in flight)");
}

#[test]
fn the_bulk_interval_timer_sends_a_partial_request_and_the_position_follows_acknowledgements() {
    use taxiflow::connectors::elasticsearch::{EsOptions, EsSink};
    use taxiflow::dataflows::jobs::taxi::documents::{PICKUP_COUNT_OUTPUT, TRIP_DURATION_OUTPUT};
    use taxiflow::dataflows::jobs::taxi::{Profile, TaxiJob};
    use taxiflow::dataflows::Job;
    let outputs = taxiflow::dataflows::output::Outputs::of_job(TaxiJob::for_profile(Profile::Kda).outputs());
    let gate = Arc::new(common::bulk_server::Gate::default());
    let held = gate.clone();
    let server = BulkServer::start(move |n| if n == 1 { Fault::Held(held.clone()) } else { Fault::None }, |_| Ok(()));
    let mut options = EsOptions::parse(&format!("es+{}", server.url())).unwrap();
    options.bulk.interval = Duration::from_millis(200);
    let mut sink = EsSink::open(&options, &outputs, taxiflow::runtime::shutdown::Shutdown::new()).unwrap();
    let _release = common::bulk_server::OpenOnDrop(gate.clone());
    for (time, id) in [(10, "a"), (10, "b"), (20, "c")] {
        sink.write(PICKUP_COUNT_OUTPUT, time, None, id, r#"{"pickup_count":1}"#.into()).unwrap();
    }
    assert_eq!(sink.position().pending, 3);
    assert_eq!(sink.position().below, Some(10), "nothing acknowledged yet");
    // Well under the action limit: only the timer sends them. The server holds its answer until the gate opens.
    wait_until("the timer sends the request", || server.seen.lock().unwrap().requests == 1);
    assert_eq!(sink.position().pending, 3, "sent is not acknowledged");
    assert_eq!(sink.position().below, Some(10), "sent is not acknowledged");
    gate.open();
    wait_until("the answer is taken as acknowledgement", || sink.position().pending == 0);
    assert_eq!(sink.position().below, Some(21));
    assert_eq!(server.seen.lock().unwrap().requests, 1, "one request for the three documents");
    sink.write(TRIP_DURATION_OUTPUT, 30, None, "d", r#"{"airport_code":"JFK"}"#.into()).unwrap();
    sink.flush().unwrap();
    assert_eq!(server.stored("trip_duration").len(), 1, "flush waits for the answer");
    let written = sink.finish().unwrap();
    assert_eq!(written, [3, 1, 0], "pickup_count, trip_duration, dead letters");
}

/// Polls `done` until it holds, for up to 60 s (a hung sink, not a slow machine, fails it).
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what}: not within 60 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn bulk_requests_are_cut_by_bytes() {
    let server = BulkServer::start(|_| Fault::None, |_| Ok(()));
    let output = run(&format!("es+{}", server.url()), &["--bulk-max-bytes", "20000"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let seen = server.seen.lock().unwrap();
    assert!(seen.requests >= 30, "{} requests for ~1 MB of NDJSON at 20 kB each", seen.requests);
}
