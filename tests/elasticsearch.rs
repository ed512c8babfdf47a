//! The Elasticsearch sink end to end against a real OpenSearch-API server process (`scripts/opensearch.sh`,
//! osmem-server): the indices hold exactly the file sink's documents (by `_id` and source, `_count`, terms and
//! sum aggregations), a second run leaves the same set (documents overwritten, not added), dead letters are
//! indexed, the templates give the spec §4 mappings (also to date-suffixed indices), and documents the
//! cluster refuses become dead letters with its reason.

mod common;

use std::collections::BTreeMap;

use common::file_documents;
use common::opensearch::OpenSearch;
use reqwest::Method;
use serde_json::{json, Value};

fn run_es(server: &OpenSearch, args: &[&str]) -> String {
    let output = common::taxiflow().arg("run").args(args).arg("--sink").arg(server.sink()).output().unwrap();
    assert!(output.status.success(), "taxiflow {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn dead_letters_by_key(dir: &std::path::Path) -> BTreeMap<String, Value> {
    common::read_jsonl(dir, "dead_letter").into_iter().map(|d| (format!("{}@{}", d["source"].as_str().unwrap(), d["offset"]), d)).collect()
}

#[test]
fn indices_hold_exactly_the_file_documents_and_a_rerun_adds_none() {
    let server = OpenSearch::start();
    let dir = tempfile::tempdir().unwrap();
    // msf: progress by bounded out-of-orderness, so the unordered sample also yields late trips (dead letters).
    let args = ["--profile", "msf"];
    common::run_to_dir(&args, dir.path());
    let expected_pickups = file_documents(dir.path(), "pickup_count");
    let expected_durations = file_documents(dir.path(), "trip_duration");
    let expected_dead = dead_letters_by_key(dir.path());
    assert!(expected_pickups.len() > 1000 && !expected_durations.is_empty() && expected_dead.len() > 1000);

    for round in 1..=2 {
        let stdout = run_es(&server, &args);
        assert_eq!(common::summary_value(&stdout, "pickup_count"), expected_pickups.len() as u64, "round {round}: {stdout}");
        assert_eq!(common::summary_value(&stdout, "trip_duration"), expected_durations.len() as u64);

        assert_eq!(server.documents("pickup_count"), expected_pickups, "round {round}");
        assert_eq!(server.documents("trip_duration"), expected_durations, "round {round}");
        assert_eq!(server.documents("dead_letter"), expected_dead, "round {round}");
        assert_eq!(server.count("pickup_count"), expected_pickups.len() as u64);
        assert_eq!(server.count("trip_duration"), expected_durations.len() as u64);

        // Terms aggregation per airport and per window end, and the sum of pickup counts.
        let aggs = server.aggregate("trip_duration", json!({"airports": {"terms": {"field": "airport_code"}}}));
        let mut by_airport: BTreeMap<String, u64> = BTreeMap::new();
        for d in expected_durations.values() {
            *by_airport.entry(d["airport_code"].as_str().unwrap().to_string()).or_default() += 1;
        }
        let got: BTreeMap<String, u64> =
            aggs["airports"]["buckets"].as_array().unwrap().iter().map(|b| (b["key"].as_str().unwrap().to_string(), b["doc_count"].as_u64().unwrap())).collect();
        assert_eq!(got, by_airport);
        let aggs = server.aggregate("pickup_count", json!({"trips": {"sum": {"field": "pickup_count"}}, "windows": {"terms": {"field": "timestamp", "size": 10000}}}));
        let trips: u64 = expected_pickups.values().map(|d| d["pickup_count"].as_u64().unwrap()).sum();
        assert_eq!(aggs["trips"]["value"].as_f64().unwrap(), trips as f64);
        let mut windows: BTreeMap<i64, u64> = BTreeMap::new();
        for d in expected_pickups.values() {
            *windows.entry(d["timestamp"].as_i64().unwrap()).or_default() += 1;
        }
        let got: BTreeMap<i64, u64> =
            aggs["windows"]["buckets"].as_array().unwrap().iter().map(|b| (b["key"].as_i64().unwrap(), b["doc_count"].as_u64().unwrap())).collect();
        assert_eq!(got, windows);
    }
    // The second run overwrote each document under its id instead of adding one.
    let some_id = expected_pickups.keys().next().unwrap();
    let (status, doc) = server.call(Method::GET, &format!("pickup_count/_doc/{some_id}"), None);
    assert_eq!(status, 200);
    assert_eq!(doc["_version"], 2, "{doc}");
}

#[test]
fn templates_give_the_spec_mappings_and_date_suffixes_split_the_indices() {
    let server = OpenSearch::start();
    let dir = tempfile::tempdir().unwrap();
    common::run_to_dir(&[], dir.path());
    let expected = file_documents(dir.path(), "pickup_count");
    run_es(&server, &["--index-prefix", "nyc-", "--index-date-suffix", "day"]);

    let (_, indices) = server.call(Method::GET, "_cat/indices?format=json", None);
    let mut names: Vec<String> = indices.as_array().unwrap().iter().map(|i| i["index"].as_str().unwrap().to_string()).collect();
    names.sort();
    let mut days: Vec<String> = expected
        .keys()
        .map(|id| {
            let start = taxiflow::dataflows::window::window_start_of_id(id).unwrap();
            format!("nyc-pickup_count-{}", chrono::DateTime::from_timestamp_millis(start).unwrap().format("%Y.%m.%d"))
        })
        .collect();
    days.sort();
    days.dedup();
    for day in &days {
        assert!(names.contains(day), "{day} missing from {names:?}");
    }
    assert_eq!(server.documents("nyc-pickup_count-*"), expected);
    // The date-suffixed index got its mapping from the template.
    let (_, mapping) = server.call(Method::GET, &format!("{}/_mapping", days[0]), None);
    let props = &mapping[&days[0]]["mappings"]["properties"];
    assert_eq!(props["location"]["type"], "geo_point", "{mapping}");
    assert_eq!(props["pickup_count"]["type"], "long");
    assert_eq!(props["timestamp"]["type"], "date");
    let (_, template) = server.call(Method::GET, "_index_template/nyc-taxiflow-trip_duration", None);
    let t = &template["index_templates"][0]["index_template"];
    assert_eq!(t["index_patterns"], json!(["nyc-trip_duration", "nyc-trip_duration-*"]));
    let props = &t["template"]["mappings"]["properties"];
    assert_eq!(props["location"], json!({"type": "geo_point", "fields": {"raw": {"type": "keyword"}}}));
    assert_eq!(props["airport_code"]["type"], "keyword");
    // A terms aggregation on the keyword sub-field works.
    let aggs = server.aggregate("nyc-trip_duration-*", json!({"cells": {"terms": {"field": "location.raw", "size": 1000}}}));
    assert!(!aggs["cells"]["buckets"].as_array().unwrap().is_empty());
}

#[test]
fn documents_the_cluster_refuses_become_dead_letters_with_its_reason() {
    let server = OpenSearch::start();
    let dir = tempfile::tempdir().unwrap();
    common::run_to_dir(&[], dir.path());
    let expected = file_documents(dir.path(), "trip_duration");
    // A trip_duration index whose sum field only holds bytes (-128..127): larger sums are refused with 400.
    let (status, body) = server.call(
        Method::PUT,
        "trip_duration",
        Some(json!({"mappings": {"properties": {"location": {"type": "geo_point"}, "sum_trip_duration": {"type": "byte"}}}})),
    );
    assert_eq!(status, 200, "{body}");
    let stdout = run_es(&server, &[]);

    let refused: BTreeMap<&String, &Value> = expected.iter().filter(|(_, d)| d["sum_trip_duration"].as_i64().unwrap() > 127).collect();
    assert!(!refused.is_empty() && refused.len() < expected.len(), "the sample has sums on both sides of 127");
    let indexed = server.documents("trip_duration");
    assert_eq!(indexed.len() + refused.len(), expected.len());
    for (id, doc) in &indexed {
        assert_eq!(Some(doc), expected.get(id));
    }
    let dead = server.documents("dead_letter");
    assert_eq!(dead.len(), refused.len(), "{dead:?}");
    for (id, doc) in refused {
        let letter = &dead[&format!("rejected:{id}")];
        assert_eq!(letter["document_id"], json!(id));
        assert_eq!(letter["source"], "trip_duration");
        assert!(letter["reason"].as_str().unwrap().starts_with("rejected by the cluster: 400 mapper_parsing_exception"), "{letter}");
        assert_eq!(&serde_json::from_str::<Value>(letter["record"].as_str().unwrap()).unwrap(), doc);
    }
    assert_eq!(common::summary_value(&stdout, "trip_duration"), indexed.len() as u64, "{stdout}");
}

#[test]
fn an_existing_index_without_geo_point_is_refused_at_start() {
    let server = OpenSearch::start();
    let (status, _) = server.call(Method::PUT, "pickup_count", Some(json!({"mappings": {"properties": {"location": {"type": "keyword"}}}})));
    assert_eq!(status, 200);
    let output = common::taxiflow().args(["run", "--sink", &server.sink()]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("pickup_count exists with `location` mapped as keyword"), "{stderr}");
}

#[test]
fn configuration_errors_name_the_flag() {
    let not_pem = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(not_pem.path(), "this is not a certificate\n").unwrap();
    let not_pem = not_pem.path().display().to_string();
    for (args, needle) in [
        (vec!["--sink", "file://x", "--bulk-max-actions", "5"], "--bulk-max-actions is a flag of the Elasticsearch sink; this run uses the file source (--input) and the file sink"),
        (vec!["--sink", "es+http://127.0.0.1:1", "--es-auth", "sigv4"], "--region"),
        (vec!["--sink", "es+http://127.0.0.1:1", "--es-auth", "basic"], "--es-user"),
        (vec!["--sink", "es+http://127.0.0.1:1", "--index-prefix", "A"], "--index-prefix"),
        (vec!["--sink", "es+http://127.0.0.1:1"], "cannot reach the cluster"),
        (vec!["--sink", "es+https://127.0.0.1:1", "--es-ca-cert", "/nonexistent.pem"], "--es-ca-cert /nonexistent.pem: no such file"),
        (vec!["--sink", "es+https://127.0.0.1:1", "--es-ca-cert", &not_pem], "no certificate in the file"),
    ] {
        let output = common::taxiflow().arg("run").args(&args).env_remove("AWS_REGION").output().unwrap();
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}
