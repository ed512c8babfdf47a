//! The dashboard (`--dashboard-addr`, `taxiflow dashboard --from`) in a real headless Chromium driven over the
//! DevTools protocol (`common::browser`), against real servers (a Kafka-protocol broker, Redis, moto's S3,
//! OpenSearch's API, PostgreSQL): for each job's view, the numbers the page draws (read back from its charts and
//! tables by `dashboard.numbers()`) equal the documents the sink wrote, recomputed here from the sink's files; a
//! window emitted while the page is open appears without a reload; the page requests nothing but its own origin and
//! reports no console error. Screenshots of every view go to `target/dashboard-screenshots/`.
//! The JSON API's errors and the asset server's refusal of paths outside its assets are checked over HTTP.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::browser::{numbers, Browser};
use common::{free_port, read_jsonl, root, taxiflow, wait_listening, KillOnDrop};
use serde_json::{json, Value};

/// Generous bound for what the page must show; never a measured time.
const LIMIT: Duration = Duration::from_secs(120);

fn screenshot_path(name: &str) -> PathBuf {
    root().join("target/dashboard-screenshots").join(format!("{name}.png"))
}

/// A `taxiflow` child with `RUST_LOG=info`, its standard error in `log`.
fn spawn(args: &[String], log: &Path) -> KillOnDrop {
    let file = std::fs::File::create(log).unwrap();
    // The dummy AWS settings of the local S3 (harmless for the other stores).
    let child = taxiflow().args(args).env("RUST_LOG", "info").envs(common::s3::ENV).stdout(Stdio::null()).stderr(file).spawn().expect("taxiflow starts");
    KillOnDrop(child)
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// `GET url`: status and JSON body.
fn get(url: &str) -> (u16, Value) {
    let response = reqwest::blocking::get(url).unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

/// The ends of the windows the page knows.
fn page_windows(browser: &mut Browser) -> Vec<i64> {
    serde_json::from_value(browser.eval("dashboard.windows.slice()")).unwrap()
}

/// Selects window `end` and returns what the page draws.
fn drawn(browser: &mut Browser, end: i64) -> Value {
    browser.eval(&format!("(dashboard.selectWindow({end}), dashboard.numbers())"))
}

fn approx(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn assert_same_numbers(got: &BTreeMap<String, f64>, want: &BTreeMap<String, f64>, what: &str) {
    let keys: BTreeSet<&String> = got.keys().chain(want.keys()).collect();
    for k in keys {
        match (got.get(k), want.get(k)) {
            (Some(a), Some(b)) if approx(*a, *b) => {}
            (a, b) => panic!("{what}: {k}: the page draws {a:?}, the sink wrote {b:?}"),
        }
    }
}

/// The push delays the page measured (`Date.now() − emitted_ms`), as p50/max, for the log of the test.
fn report_delays(browser: &mut Browser, what: &str) {
    let mut delays: Vec<f64> = serde_json::from_value(browser.eval("dashboard.delays.slice()")).unwrap();
    delays.sort_by(f64::total_cmp);
    if !delays.is_empty() {
        eprintln!("{what}: {} windows pushed, delay from emission to the page p50 {} ms, max {} ms", delays.len(), delays[delays.len() / 2], delays[delays.len() - 1]);
    }
}

/// The documents of `output` in the file sink's `dir`, grouped by window end (`timestamp` or `window_end_ms`).
fn by_window(dir: &Path, output: &str, time: &str) -> BTreeMap<i64, Vec<Value>> {
    let mut windows: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
    for doc in read_jsonl(dir, output) {
        windows.entry(doc[time].as_i64().unwrap()).or_default().push(doc);
    }
    windows
}

/// A raw HTTP/1.1 request (no client-side normalisation of the path): status line and body.
fn raw_get(port: u16, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (head.lines().next().unwrap_or("").to_string(), body.to_string())
}

#[test]
fn the_api_serves_the_sink_documents_answers_bad_requests_with_4xx_and_only_its_assets() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let log = dir.path().join("run.log");
    let port = free_port();
    let mut run = spawn(&strings(&["run", "--sink", &format!("file://{}", out.display()), "--dashboard-addr", &format!("127.0.0.1:{port}"), "--dashboard-windows", "30"]), &log);
    common::wait_for_log(&log, "the job finished", 1, &mut run.0);
    let base = format!("http://127.0.0.1:{port}");

    // The newest 30 windows, each with exactly the sink's documents.
    let pickups = by_window(&out, "pickup_count", "timestamp");
    let durations = by_window(&out, "trip_duration", "timestamp");
    let all: BTreeSet<i64> = pickups.keys().chain(durations.keys()).copied().collect();
    assert!(all.len() > 30, "the sample has more windows than are kept: {}", all.len());
    let newest: Vec<i64> = all.iter().rev().take(30).rev().copied().collect();
    let (status, jobs) = get(&format!("{base}/api/jobs"));
    assert_eq!(status, 200);
    assert_eq!(jobs["jobs"][0]["job"], "taxi");
    assert_eq!(jobs["jobs"][0]["windows"], 30);
    assert_eq!(jobs["jobs"][0]["latest"], json!(newest.last().unwrap()));
    let (_, windows) = get(&format!("{base}/api/taxi/windows"));
    let ends: Vec<i64> = windows["windows"].as_array().unwrap().iter().map(|w| w["end"].as_i64().unwrap()).collect();
    assert_eq!(ends, newest);
    for end in &newest {
        let (status, window) = get(&format!("{base}/api/taxi/window/{end}"));
        assert_eq!(status, 200);
        for (output, sink) in [("pickup_count", &pickups), ("trip_duration", &durations)] {
            let mut got: Vec<String> = window["outputs"][output].as_array().map(|d| d.iter().map(Value::to_string).collect()).unwrap_or_default();
            let mut want: Vec<String> = sink.get(end).map(|d| d.iter().map(Value::to_string).collect()).unwrap_or_default();
            got.sort();
            want.sort();
            assert_eq!(got, want, "{output} of window {end}");
        }
    }
    let (_, series) = get(&format!("{base}/api/taxi/series?outputs=trip_duration"));
    assert_eq!(series["windows"].as_array().unwrap().len(), 30);
    assert!(series["windows"].as_array().unwrap().iter().all(|w| w["outputs"].get("pickup_count").is_none()), "only the outputs asked for");

    // Errors: 4xx with a message.
    for (path, status, says) in [
        ("/api/taxi/window/abc", 400, "is not a window end"),
        ("/api/taxi/window/12", 404, "no window of taxi ends at 12"),
        ("/api/pageviews/windows", 404, "unknown job \"pageviews\": this dashboard shows taxi"),
        ("/api/nope/window/1", 404, "unknown job"),
        ("/api/nope/events", 404, "unknown job"),
        ("/etc/passwd", 404, "no such page"),
        ("/assets/Cargo.toml", 404, "no asset"),
    ] {
        let (got, body) = get(&format!("{base}{path}"));
        assert_eq!(got, status, "{path}: {body}");
        assert!(body["error"].as_str().unwrap_or("").contains(says), "{path}: {body}");
    }
    // Paths that climb out are not resolved against any directory.
    for path in ["/../Cargo.toml", "/assets/..%2F..%2FCargo.toml", "/assets/%2e%2e/Cargo.toml", "/assets/../../README.md"] {
        let (status, body) = raw_get(port, path);
        assert!(status.contains(" 404 ") || status.contains(" 400 "), "{path}: {status}");
        assert!(!body.contains("[package]") && !body.contains("# taxiflow"), "{path} served a file: {body}");
    }
    // The vendored chart library: gzip'd when the browser takes it, plain otherwise.
    let plain = reqwest::blocking::Client::builder().no_gzip().build().unwrap();
    let zipped = plain.get(format!("{base}/assets/echarts.min.js")).header("accept-encoding", "gzip").send().unwrap();
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    let raw = plain.get(format!("{base}/assets/echarts.min.js")).send().unwrap();
    assert!(raw.headers().get("content-encoding").is_none());
    assert!(raw.text().unwrap().contains("Apache"), "echarts.min.js");
    // The dashboard command binds 127.0.0.1 unless told otherwise.
    let help = taxiflow().args(["dashboard", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("[default: 127.0.0.1:8080]"));
}

/// The pickup cells of `docs` drawn with the default filter (`pickup_count ≥ 3`, the reference's Kibana query).
fn cells(docs: &[Value], min: i64) -> BTreeMap<String, f64> {
    docs.iter().filter(|d| d["pickup_count"].as_i64().unwrap() >= min).map(|d| (d["location"].as_str().unwrap().to_string(), d["pickup_count"].as_f64().unwrap())).collect()
}

/// Kibana's line of the reference dashboard: per window, the average of `avg_trip_duration` of the airport's
/// documents.
fn airport_line(durations: &BTreeMap<i64, Vec<Value>>, ends: &[i64], airport: &str) -> BTreeMap<String, f64> {
    let mut line = BTreeMap::new();
    for end in ends {
        let values: Vec<f64> = durations.get(end).into_iter().flatten().filter(|d| d["airport_code"] == airport).map(|d| d["avg_trip_duration"].as_f64().unwrap()).collect();
        if !values.is_empty() {
            line.insert(end.to_string(), values.iter().sum::<f64>() / values.len() as f64);
        }
    }
    line
}

#[test]
fn taxi_from_kafka_the_page_shows_each_window_as_it_is_emitted_and_draws_the_sink_documents() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::kafka_broker::Broker::start(free_port(), &dir.path().join("broker"));
    common::kafka_broker::create_topic(&broker.address(), "trips", 1);
    let out = dir.path().join("out");
    let port = free_port();
    let source = format!("kafka://{}/trips", broker.address());
    let mut run = spawn(&strings(&["run", "--source", &source, "--sink", &format!("file://{}", out.display()), "--dashboard-addr", &format!("127.0.0.1:{port}")]), &dir.path().join("run.log"));
    wait_listening(port, "taxiflow run --dashboard-addr");

    // The page is open before any trip is in the topic: every window reaches it as a push.
    let origin = format!("http://127.0.0.1:{port}/");
    let mut browser = Browser::start(1280, 900);
    browser.navigate(&format!("{origin}#taxi"));
    browser.wait_for("window.dashboard && dashboard.ready === true", LIMIT);
    assert!(page_windows(&mut browser).is_empty());
    // One watermark record, at the end: the sample is not sorted by event time, and intermediate watermarks (every
    // --watermark-interval of wall time) would make a timing-dependent set of trips late.
    let replay = taxiflow().args(["replay", "--to", &source, "--speedup", "max", "--watermark-interval", "1h"]).output().unwrap();
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));

    // Every window of a file run of the same trips but the last, which a stream leaves open (the replay's one
    // watermark is the largest event time, before the end of its window); the newest 48 kept.
    let expected = dir.path().join("expected");
    common::run_to_dir(&[], &expected);
    let pickups = by_window(&expected, "pickup_count", "timestamp");
    let durations = by_window(&expected, "trip_duration", "timestamp");
    let all: BTreeSet<i64> = pickups.keys().chain(durations.keys()).copied().collect();
    let newest: Vec<i64> = all.iter().rev().skip(1).take(48).rev().copied().collect();
    let condition = format!("JSON.stringify(dashboard.windows) === '{}'", serde_json::to_string(&newest).unwrap());
    if !browser.try_wait_for(&condition, LIMIT) {
        let (_, api) = get(&format!("{origin}api/taxi/windows"));
        let api: Vec<&Value> = api["windows"].as_array().map(|w| w.iter().map(|w| &w["end"]).collect()).unwrap_or_default();
        panic!("the page's windows {:?} are not the sink's newest 48 {newest:?}; the server holds {api:?}", page_windows(&mut browser));
    }
    assert!(run.0.try_wait().unwrap().is_none(), "the streaming run goes on");
    let received: u64 = serde_json::from_value(browser.eval("dashboard.received")).unwrap();
    assert!(received >= 48, "{received} windows pushed");
    report_delays(&mut browser, "taxi");

    for end in &newest {
        let page = drawn(&mut browser, *end);
        assert_eq!(page["window"], json!(end));
        assert_eq!(page["min"], json!(3));
        let want = cells(pickups.get(end).map_or(&[][..], |d| d.as_slice()), 3);
        assert_same_numbers(&numbers(&page["cells"]), &want, &format!("hot spots of window {end}"));
    }
    let page = browser.eval("dashboard.numbers()");
    let mut points = 0;
    for (airport, key) in [("JFK", "jfk"), ("LGA", "lga")] {
        let want = airport_line(&durations, &newest, airport);
        points += want.len();
        assert_same_numbers(&numbers(&page[key]), &want, &format!("{airport} averages"));
    }
    assert!(points > 0, "the windows shown have airport trips");
    // The filter: all cells with a minimum of 1.
    let busiest = *newest.iter().max_by_key(|e| pickups.get(*e).map_or(0, Vec::len)).unwrap();
    browser.eval(&format!("(() => {{ const m = document.getElementById('min-pickups'); m.value = '1'; m.dispatchEvent(new Event('input')); m.dispatchEvent(new Event('change')); dashboard.selectWindow({busiest}); }})()"));
    let page = browser.eval("dashboard.numbers()");
    assert_same_numbers(&numbers(&page["cells"]), &cells(&pickups[&busiest], 1), "every cell with min 1");
    browser.eval(&format!("(() => {{ const m = document.getElementById('min-pickups'); m.value = '3'; m.dispatchEvent(new Event('input')); m.dispatchEvent(new Event('change')); dashboard.selectWindow({busiest}); }})()"));
    browser.screenshot(&screenshot_path("taxi"));
    browser.assert_clean(&origin);
}

/// `taxiflow dashboard ARGS` on a free port, waited for; returns the process and the page's origin.
fn dashboard(args: &[String], log: &Path) -> (KillOnDrop, String) {
    let port = free_port();
    let mut all = strings(&["dashboard", "--dashboard-addr", &format!("127.0.0.1:{port}"), "--refresh", "200ms"]);
    all.extend_from_slice(args);
    let child = spawn(&all, log);
    wait_listening(port, "taxiflow dashboard");
    (child, format!("http://127.0.0.1:{port}/"))
}

/// Opens `origin#job` and waits until the page has the windows `ends`.
fn open_view(browser: &mut Browser, origin: &str, job: &str, ends: &[i64]) {
    browser.navigate(&format!("{origin}#{job}"));
    browser.wait_for(&format!("window.dashboard && dashboard.ready === true && dashboard.job === '{job}'"), LIMIT);
    let condition = format!("JSON.stringify(dashboard.windows) === '{}'", serde_json::to_string(ends).unwrap());
    if !browser.try_wait_for(&condition, LIMIT) {
        panic!("{job}: the page's windows {:?} are not the stored ones {ends:?}", page_windows(browser));
    }
}

#[test]
fn pageviews_from_redis_the_page_draws_what_the_file_sink_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let sample = root().join("target/test-data/logstalgia/example.log");
    assert!(sample.exists(), "{} is missing: run scripts/install-test-services.sh", sample.display());
    let geoip = root().join("target/npm/node_modules/@ip-location-db/geo-whois-asn-country-mmdb");
    let mut args = strings(&["run", "pageviews", "--input", sample.to_str().unwrap()]);
    for f in ["geo-whois-asn-country-ipv4.mmdb", "geo-whois-asn-country-ipv6.mmdb"] {
        args.extend(strings(&["--geoip", geoip.join(f).to_str().unwrap()]));
    }
    let expected = dir.path().join("expected");
    let file_run = taxiflow().args(&args).args(["--sink", &format!("file://{}", expected.display())]).output().unwrap();
    assert!(file_run.status.success(), "{}", String::from_utf8_lossy(&file_run.stderr));

    let redis_port = free_port();
    let mut redis = KillOnDrop(Command::new(root().join("scripts/redis.sh")).arg(redis_port.to_string()).arg(dir.path().join("redis")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("scripts/redis.sh starts"));
    wait_listening(redis_port, "redis-server (apt-get install redis-server)");
    let redis_url = format!("redis://127.0.0.1:{redis_port}");
    let redis_run = taxiflow().args(&args).args(["--sink", &redis_url]).output().unwrap();
    assert!(redis_run.status.success(), "{}", String::from_utf8_lossy(&redis_run.stderr));

    let (_board, origin) = dashboard(&strings(&["--from", &redis_url]), &dir.path().join("dashboard.log"));
    let totals = by_window(&expected, "total", "window_end_ms");
    let paths = by_window(&expected, "by_path", "window_end_ms");
    let countries = by_window(&expected, "by_country", "window_end_ms");
    let ends: Vec<i64> = totals.keys().copied().collect();
    assert!(ends.len() >= 3, "{ends:?}");
    let mut browser = Browser::start(1280, 1000);
    open_view(&mut browser, &origin, "pageviews", &ends);
    let pv: BTreeMap<String, f64> = totals.iter().map(|(e, d)| (e.to_string(), d[0]["pv"].as_f64().unwrap())).collect();
    let uv: BTreeMap<String, f64> = totals.iter().map(|(e, d)| (e.to_string(), d[0]["uv"].as_f64().unwrap())).collect();
    let last_today = read_jsonl(&expected, "today").pop().unwrap();
    for end in &ends {
        let page = drawn(&mut browser, *end);
        assert_same_numbers(&numbers(&page["pv"]), &pv, "PV per window");
        assert_same_numbers(&numbers(&page["uv"]), &uv, "UV per window");
        assert_eq!(page["today"], json!({"day": last_today["day"], "pv": last_today["pv"], "uv": last_today["uv"]}), "today so far");
        let mut top: Vec<(i64, String, i64)> = paths[end].iter().map(|d| (-d["pv"].as_i64().unwrap(), d["path"].as_str().unwrap().to_string(), d["uv"].as_i64().unwrap())).collect();
        top.sort();
        let top: Vec<Value> = top.into_iter().take(10).map(|(pv, path, uv)| json!([path, -pv, uv])).collect();
        assert_eq!(page["top"], json!(top), "top pages of window {end}");
        let want: BTreeMap<String, f64> = countries.get(end).into_iter().flatten().map(|d| (d["country"].as_str().unwrap().to_string(), d["pv"].as_f64().unwrap())).collect();
        assert!(want.keys().any(|c| c != "--"), "the sample has located visitors in window {end}");
        assert_same_numbers(&numbers(&page["countries"]), &want, &format!("page views by country of window {end}"));
    }
    browser.screenshot(&screenshot_path("pageviews"));
    browser.assert_clean(&origin);
    let _ = redis.0.kill();
}

#[test]
fn ticker_from_s3_the_page_draws_every_average_the_sink_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let ticks = dir.path().join("ticks.jsonl");
    let generated = taxiflow().args(["generate", "ticker", "--to", ticks.to_str().unwrap(), "--seed", "11", "--count", "4000", "--start-time", "2026-12-01T08:00:00"]).output().unwrap();
    assert!(generated.status.success(), "{}", String::from_utf8_lossy(&generated.stderr));
    let s3 = common::s3::LocalS3::start();
    s3.bucket("results");
    let run = taxiflow()
        .args(["run", "ticker", "--input", ticks.to_str().unwrap(), "--sink", "s3://results/averages", "--endpoint-url", &s3.url])
        .envs(common::s3::ENV)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let expected = dir.path().join("expected");
    let file_run = taxiflow().args(["run", "ticker", "--input", ticks.to_str().unwrap(), "--sink-format", "jsonl", "--sink", &format!("file://{}", expected.display())]).output().unwrap();
    assert!(file_run.status.success(), "{}", String::from_utf8_lossy(&file_run.stderr));
    // The expected prices: every ticker=T/part-*.jsonl line.
    let mut want: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    let mut ends = BTreeSet::new();
    for entry in std::fs::read_dir(&expected).unwrap() {
        let path = entry.unwrap().path();
        let Some(ticker) = path.file_name().unwrap().to_str().unwrap().strip_prefix("ticker=").map(str::to_string) else { continue };
        for part in std::fs::read_dir(&path).unwrap() {
            let part = part.unwrap().path();
            if !part.file_name().unwrap().to_str().unwrap().starts_with("part-") {
                continue;
            }
            for line in std::fs::read_to_string(&part).unwrap().lines() {
                let row: Value = serde_json::from_str(line).unwrap();
                let end = chrono::NaiveDateTime::parse_from_str(row["event_time"].as_str().unwrap(), "%Y-%m-%dT%H:%M:%S").unwrap().and_utc().timestamp_millis();
                ends.insert(end);
                if let Some(price) = row["price"].as_f64() {
                    want.entry(ticker.clone()).or_default().insert(end.to_string(), price);
                }
            }
        }
    }
    assert!(want.len() >= 3 && ends.len() >= 10, "{} tickers, {} windows", want.len(), ends.len());
    let (_board, origin) = dashboard(&strings(&["--from", "s3://results/averages", "--endpoint-url", &s3.url]), &dir.path().join("dashboard.log"));
    let mut browser = Browser::start(1280, 900);
    open_view(&mut browser, &origin, "ticker", &ends.into_iter().collect::<Vec<_>>());
    let page = browser.eval("dashboard.numbers()");
    let got: BTreeMap<String, Value> = serde_json::from_value(page["prices"].clone()).unwrap();
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "one line per ticker");
    for (ticker, line) in &want {
        assert_same_numbers(&numbers(&got[ticker]), line, &format!("{ticker} averages"));
    }
    browser.screenshot(&screenshot_path("ticker"));
    browser.assert_clean(&origin);
}

/// Open items recomputed from messages in order: alerts not revoked (by `alert_id`), or the open work order per device.
fn open_items(messages: &[Value], dispatch: bool) -> BTreeSet<(i64, String)> {
    let mut open: BTreeMap<String, (i64, String)> = BTreeMap::new();
    for m in messages {
        let id = m["alert_id"].as_str().unwrap_or("").to_string();
        let device = m["device"].as_i64().unwrap_or(-1);
        match (dispatch, m["type"].as_str().unwrap_or("")) {
            (false, "alert") => {
                open.insert(id.clone(), (device, id));
            }
            (false, "revoke") => {
                open.remove(&id);
            }
            (true, "dispatch") => {
                open.insert(device.to_string(), (device, id));
            }
            (true, "close") if open.get(&device.to_string()).is_some_and(|(_, o)| *o == id) => {
                open.remove(&device.to_string());
            }
            _ => {}
        }
    }
    open.into_values().map(|(d, id)| (d, id.chars().take(12).collect())).collect()
}

/// Messages per minute of event time (the bucket's end, ms) of two kinds.
fn timeline(messages: &[Value], kinds: [(&str, &str); 2]) -> BTreeMap<String, (f64, f64)> {
    let mut counts: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for m in messages {
        for (i, (kind, time)) in kinds.iter().enumerate() {
            if m["type"] == *kind {
                let t = chrono::DateTime::parse_from_rfc3339(m[*time].as_str().unwrap()).unwrap().timestamp_millis();
                let entry = counts.entry((t.div_euclid(60_000) * 60_000 + 60_000).to_string()).or_default();
                if i == 0 {
                    entry.0 += 1.0;
                } else {
                    entry.1 += 1.0;
                }
            }
        }
    }
    counts
}

fn assert_message_view(browser: &mut Browser, messages: &[Value], dispatch: bool) {
    let page = browser.eval("dashboard.numbers()");
    let shown: BTreeSet<(i64, String)> = page["open"].as_array().unwrap().iter().map(|o| (o["device"].as_i64().unwrap(), o["alert_id"].as_str().unwrap().chars().take(12).collect())).collect();
    let want = open_items(messages, dispatch);
    assert!(!want.is_empty(), "some items stay open");
    assert_eq!(shown, want, "open items (device, alert_id)");
    let kinds = if dispatch { [("dispatch", "dispatch_time"), ("close", "close_time")] } else { [("alert", "alert_time"), ("revoke", "revoke_time")] };
    let want = timeline(messages, kinds);
    let got: BTreeMap<String, (f64, f64)> = page["timeline"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), (v[0].as_f64().unwrap(), v[1].as_f64().unwrap()))).collect();
    let got: BTreeMap<String, (f64, f64)> = got.into_iter().filter(|(_, v)| *v != (0.0, 0.0)).collect();
    assert_eq!(got, want, "messages per minute");
}

#[test]
fn alerts_from_files_and_dispatch_from_kafka_the_page_shows_open_items_and_the_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let pg = common::postgres::LocalPostgres::start();
    pg.sql(include_str!("../scripts/alerts_schema.sql"));
    pg.sql("INSERT INTO device_sla SELECT d, 'line ' || d, NULL, 20000 FROM generate_series(0, 9) d");
    let events = dir.path().join("events.jsonl");
    let generated = taxiflow()
        .args(["generate", "devices", "--to", events.to_str().unwrap(), "--count", "30000", "--devices", "40", "--seed", "5"])
        .args(["--start-time", "2026-03-02T08:00:00Z", "--event-spacing", "10ms", "--max-disorder", "2s"])
        .output()
        .unwrap();
    assert!(generated.status.success(), "{}", String::from_utf8_lossy(&generated.stderr));
    let alerts_dir = dir.path().join("alerts");
    let alerts = taxiflow()
        .args(["run", "alerts", "--input", events.to_str().unwrap(), "--rules", &pg.url, "--sla", &pg.url, "--sink", &format!("file://{}", alerts_dir.display())])
        .output()
        .unwrap();
    assert!(alerts.status.success(), "{}", String::from_utf8_lossy(&alerts.stderr));
    let alert_messages: Vec<Value> = read_jsonl(&alerts_dir, "alerts").into_iter().filter(|m| m["type"] != "watermark").collect();

    let broker = common::kafka_broker::Broker::start(free_port(), &dir.path().join("broker"));
    common::kafka_broker::create_topic(&broker.address(), "dispatch", 1);
    let topic = format!("kafka://{}/dispatch", broker.address());
    let dispatch = taxiflow().args(["run", "dispatch", "--input", alerts_dir.join("alerts.jsonl").to_str().unwrap(), "--sink", &topic]).output().unwrap();
    assert!(dispatch.status.success(), "{}", String::from_utf8_lossy(&dispatch.stderr));
    let dispatch_messages: Vec<Value> = common::kafka_broker::read_committed(&broker.address(), "dispatch").iter().map(|v| serde_json::from_str(v).unwrap()).filter(|m: &Value| m["type"] != "watermark").collect();

    let (_board, origin) = dashboard(&strings(&["--from", &format!("file://{}", alerts_dir.display()), "--from", &topic]), &dir.path().join("dashboard.log"));
    // Each store tells its job: the alerts job's file, the dispatch job's topic; the directory's dead letters are
    // the alerts job's.
    let dead_letters = read_jsonl(&alerts_dir, "dead_letter").len();
    assert!(dead_letters > 0, "the generated events have malformed and late records");
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let (_, jobs) = get(&format!("{origin}api/jobs"));
        let names: BTreeMap<String, u64> = jobs["jobs"].as_array().unwrap().iter().map(|j| (j["job"].as_str().unwrap().to_string(), j["dead_letters"].as_u64().unwrap())).collect();
        if names == BTreeMap::from([("alerts".to_string(), dead_letters as u64), ("dispatch".to_string(), 0)]) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the dashboard shows the jobs and dead letters {names:?}, not alerts with {dead_letters}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut browser = Browser::start(1280, 1000);
    for (job, messages, is_dispatch) in [("alerts", &alert_messages, false), ("dispatch", &dispatch_messages, true)] {
        let ends: Vec<i64> = timeline(messages, if is_dispatch { [("dispatch", "dispatch_time"), ("close", "close_time")] } else { [("alert", "alert_time"), ("revoke", "revoke_time")] }).keys().map(|k| k.parse().unwrap()).collect();
        assert!(ends.len() >= 3 && ends.len() <= 48, "{job}: {} minutes", ends.len());
        open_view(&mut browser, &origin, job, &ends);
        browser.wait_for("document.querySelectorAll('#open tbody tr').length > 0", LIMIT);
        let (_, series) = get(&format!("{origin}api/{job}/series"));
        let served: Vec<Value> = series["windows"].as_array().unwrap().iter().flat_map(|w| w["outputs"][job].as_array().unwrap().clone()).collect();
        assert_eq!(served.len(), messages.len(), "{job}: every message is served");
        assert_message_view(&mut browser, messages, is_dispatch);
        browser.screenshot(&screenshot_path(job));
    }
    browser.assert_clean(&origin);
}

#[test]
fn taxi_from_opensearch_the_page_draws_the_indexed_documents() {
    let dir = tempfile::tempdir().unwrap();
    let search = common::opensearch::OpenSearch::start();
    let run = taxiflow().args(["run", "--sink", &search.sink()]).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let expected = dir.path().join("expected");
    common::run_to_dir(&[], &expected);
    let pickups = by_window(&expected, "pickup_count", "timestamp");
    let all: BTreeSet<i64> = pickups.keys().chain(by_window(&expected, "trip_duration", "timestamp").keys()).copied().collect();
    let newest: Vec<i64> = all.iter().rev().take(48).rev().copied().collect();
    let (_board, origin) = dashboard(&strings(&["--from", &search.sink()]), &dir.path().join("dashboard.log"));
    let mut browser = Browser::start(1280, 900);
    open_view(&mut browser, &origin, "taxi", &newest);
    for end in &newest {
        let page = drawn(&mut browser, *end);
        let want = cells(pickups.get(end).map_or(&[][..], |d| d.as_slice()), 3);
        assert_same_numbers(&numbers(&page["cells"]), &want, &format!("hot spots of window {end}"));
    }
    browser.assert_clean(&origin);
}
