//! Golden test: `taxiflow run` on the bundled real samples equals, byte for byte, the output of
//! `scripts/reference_job.py` (an independent Python implementation of spec §3) for each profile.
//! Regenerate with `python3 scripts/reference_job.py PROFILE tests/golden/PROFILE data/*.csv*`.

mod common;

use common::*;

fn golden(profile: &str, threads: &str) {
    let out = tempfile::tempdir().unwrap();
    let output = run_to_dir(&["--profile", profile, "-w", threads], out.path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    for name in ["pickup_count", "trip_duration"] {
        let expected = std::fs::read_to_string(root().join("tests/golden").join(profile).join(format!("{name}.jsonl"))).unwrap();
        let actual = std::fs::read_to_string(out.path().join(format!("{name}.jsonl"))).unwrap();
        assert!(!expected.is_empty());
        assert!(actual == expected, "{profile} {name}: output differs from tests/golden (-w {threads})");
    }
    // The bundled samples: 100,000 TaxiRide rows (46,450 END trips) and 2 × 1,998 TLC rows.
    assert_eq!(summary_value(&stdout, "records read"), 103_998);
    assert_eq!(summary_value(&stdout, "trips"), 50_448);
    assert_eq!(summary_value(&stdout, "malformed"), 0);
    let docs = std::fs::read_to_string(out.path().join("pickup_count.jsonl")).unwrap().lines().count()
        + std::fs::read_to_string(out.path().join("trip_duration.jsonl")).unwrap().lines().count();
    assert_eq!(summary_value(&stdout, "documents written"), docs as u64);
}

#[test]
fn kda_profile_matches_the_reference() {
    golden("kda", "1");
}

#[test]
fn kda_profile_two_threads() {
    golden("kda", "2");
}

#[test]
fn refarch_profile_matches_the_reference() {
    golden("refarch", "1");
}

#[test]
fn msf_profile_matches_the_reference() {
    // Bounded out-of-orderness (2 min) makes trips of the unsorted TLC samples late.
    let out = tempfile::tempdir().unwrap();
    let output = run_to_dir(&["--profile", "msf"], out.path());
    assert_eq!(summary_value(&String::from_utf8_lossy(&output.stdout), "late"), 3958);
    let dead = read_jsonl(out.path(), "dead_letter");
    assert_eq!(dead.len(), 3958);
    assert!(dead.iter().all(|d| d["reason"] == "late" && d["event_time"].as_u64() <= d["watermark"].as_u64()));
    golden("msf", "2");
}

#[test]
fn window_and_precision_overrides() {
    let base = tempfile::tempdir().unwrap();
    run_to_dir(&[], base.path());
    let out = tempfile::tempdir().unwrap();
    run_to_dir(&["--window", "30m", "--hot-spot-precision", "5", "--duration-precision", "5"], out.path());
    let sum = |docs: &[serde_json::Value]| docs.iter().map(|d| d["pickup_count"].as_u64().unwrap()).sum::<u64>();
    let counts = read_jsonl(out.path(), "pickup_count");
    // The same trips are counted, in cells of 5 characters and 30-minute windows.
    assert_eq!(sum(&counts), sum(&read_jsonl(base.path(), "pickup_count")));
    assert!(counts.iter().all(|d| d["location"].as_str().unwrap().len() == 5 && d["timestamp"].as_u64().unwrap() % 1_800_000 == 0));
    let durations = read_jsonl(out.path(), "trip_duration");
    assert!(!durations.is_empty());
    assert!(durations.iter().all(|d| d["location"].as_str().unwrap().len() == 5));
}
