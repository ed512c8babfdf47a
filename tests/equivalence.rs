//! Property: the dataflow's output equals a naive batch recomputation (tests/common `naive`) on random trips,
//! with out-of-order trips, watermark records and late trips, under one worker, two threads (files cut into
//! byte ranges) and two processes on localhost.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use proptest::prelude::*;
use taxiflow::dataflows::jobs::taxi::{Point, Profile, TaxiSettings, Trip};
use taxiflow::dataflows::WatermarkStrategy;

/// Positions that exercise every branch: cells shared by several points, both airports, the NYC box edges,
/// points outside NYC and on (0, 0), and refarch cells.
const POINTS: &[(f64, f64)] = &[
    (40.7580, -73.9855),  // Times Square
    (40.75801, -73.98551), // same geohash-7 cell
    (40.7527, -73.9772),  // Grand Central
    (40.7061, -74.0087),  // Financial District
    (40.6413, -73.7781),  // JFK
    (40.6450, -73.7850),  // JFK
    (40.7769, -73.8740),  // LGA
    (40.7720, -73.8700),  // LGA
    (40.560, -74.054),    // NYC box corner (inclusive)
    (40.878, -73.722),    // NYC box corner (inclusive)
    (40.5599, -73.90),    // just outside
    (0.0, 0.0),           // dirty zero coordinates
    (40.6895, -74.1745),  // Newark, outside
];

/// A small deterministic generator (SplitMix64), so that one seed describes a whole input.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Partitions of events: dropoff times advance by a few minutes per event with random lateness up to 40 min;
/// about one event in eight is a watermark record trailing the clock by 0–30 min, so some later trips are
/// behind it.
fn generate(seed: u64, partitions: usize, events: usize) -> Vec<Vec<Event>> {
    let mut rng = Rng(seed);
    let t0 = 1_356_998_400_000u64; // 2013-01-01T00:00:00Z
    (0..partitions)
        .map(|p| {
            let mut clock = t0 + p as u64 * 600_000 + rng.below(3_600_000);
            (0..events)
                .map(|i| {
                    clock += rng.below(5 * 60_000);
                    if rng.below(8) == 0 {
                        Event::Watermark(clock.saturating_sub(rng.below(30 * 60_000)))
                    } else {
                        let dropoff_ms = clock - rng.below(40 * 60_000);
                        let pickup_ms = (dropoff_ms + 5 * 60_000).saturating_sub(rng.below(95 * 60_000) + 1);
                        let (plat, plon) = POINTS[rng.below(POINTS.len() as u64) as usize];
                        let (dlat, dlon) = POINTS[rng.below(POINTS.len() as u64) as usize];
                        Event::Trip(Trip {
                            trip_id: Some((p * 100_000 + i) as i64),
                            pickup_ms,
                            dropoff_ms,
                            pickup: Point { lat: plat, lon: plon },
                            dropoff: Point { lat: dlat, lon: dlon },
                            total_amount: 12.5,
                        })
                    }
                })
                .collect()
        })
        .collect()
}

fn write_partitions(dir: &Path, partitions: &[Vec<Event>]) -> Vec<PathBuf> {
    partitions
        .iter()
        .enumerate()
        .map(|(i, events)| {
            let path = dir.join(format!("part-{i}.jsonl"));
            let text: String = events.iter().map(|e| json_line(e) + "\n").collect();
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect()
}

fn settings(profile: Profile, out_of_orderness: Option<u64>) -> TaxiSettings {
    let mut s = TaxiSettings::for_profile(profile);
    if let Some(bound_ms) = out_of_orderness {
        s.watermarks = WatermarkStrategy::BoundedOutOfOrderness { bound_ms };
    }
    s
}

/// Compares an output directory with the naive result, including the late dead letters.
fn check(out: &Path, files: &[PathBuf], expected: &Expected, what: &str) -> Result<(), TestCaseError> {
    for (name, expected) in [("pickup_count", &expected.pickup_count), ("trip_duration", &expected.trip_duration)] {
        let actual = by_id(read_jsonl(out, name));
        let wrong: Vec<_> = expected.iter().filter(|(id, doc)| actual.get(*id) != Some(doc)).map(|(id, doc)| (doc, actual.get(id))).collect();
        let extra: Vec<_> = actual.keys().filter(|id| !expected.contains_key(*id)).collect();
        prop_assert!(wrong.is_empty() && extra.is_empty(), "{}, {}: {} of {} expected documents missing or different {:?}; unexpected {:?}",
            name, what, wrong.len(), expected.len(), wrong.iter().take(3).collect::<Vec<_>>(), extra.iter().take(3).collect::<Vec<_>>());
    }
    let texts: Vec<String> = files.iter().map(|f| std::fs::read_to_string(f).unwrap()).collect();
    let mut late: Vec<(usize, u64)> = read_jsonl(out, "dead_letter")
        .iter()
        .map(|d| {
            prop_assert_eq!(d["reason"].as_str(), Some("late"));
            let file = files.iter().position(|f| f.display().to_string() == d["source"].as_str().unwrap()).unwrap();
            let line = d["line"].as_u64().unwrap();
            // The record as read: a range read ahead of the one before it keeps no bytes of its records and reads a
            // late one again from the file.
            prop_assert_eq!(d["record"].as_str(), texts[file].lines().nth(line as usize - 1), "dead letter's record, {}", what);
            Ok((file, line))
        })
        .collect::<Result<_, TestCaseError>>()?;
    late.sort();
    prop_assert_eq!(late, expected.late.clone(), "late trips, {}", what);
    Ok(())
}

fn run_in_process(files: &[PathBuf], s: &TaxiSettings, threads: usize, out: &Path, max_split_bytes: u64) {
    let timely = if threads == 1 { timely::Config::thread() } else { timely::Config::process(threads) };
    run_taxi(s, file_source(files, 1, max_split_bytes), timely, out);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn dataflow_equals_batch_recomputation(
        seed in any::<u64>(),
        partitions in 1usize..4,
        events in 0usize..150,
        profile in prop_oneof![Just(Profile::Kda), Just(Profile::Refarch)],
        out_of_orderness in prop_oneof![Just(None), Just(Some(120_000u64)), Just(Some(600_000u64))],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let input = generate(seed, partitions, events);
        let files = write_partitions(dir.path(), &input);
        let s = settings(profile, out_of_orderness);
        let expected = naive(&input, &s);
        // One worker; two with one range per file and worker; two with many small ranges per worker.
        for (threads, max_split_bytes) in [(1, u64::MAX), (2, u64::MAX), (2, 1 + seed % 3000)] {
            let out = dir.path().join(format!("out-{threads}-{max_split_bytes}"));
            run_in_process(&files, &s, threads, &out, max_split_bytes);
            check(&out, &files, &expected, &format!("{threads} thread(s), ranges ≤ {max_split_bytes} B, {profile:?}, {out_of_orderness:?}"))?;
        }
    }
}


#[test]
fn four_threads_equal_batch_recomputation() {
    for seed in [1u64, 2, 3] {
        let dir = tempfile::tempdir().unwrap();
        let input = generate(seed, 3, 400);
        let files = write_partitions(dir.path(), &input);
        let s = settings(Profile::Kda, None);
        let out = dir.path().join("out");
        run_in_process(&files, &s, 4, &out, 4096);
        check(&out, &files, &naive(&input, &s), &format!("4 threads, seed {seed}")).unwrap();
    }
}

#[test]
fn two_processes_equal_batch_recomputation() {
    for seed in [1u64, 2, 3] {
        let dir = tempfile::tempdir().unwrap();
        let input = generate(seed, 3, 400);
        let files = write_partitions(dir.path(), &input);
        let s = settings(Profile::Kda, None);
        let expected = naive(&input, &s);
        assert!(!expected.late.is_empty() && !expected.pickup_count.is_empty(), "the input exercises late trips");
        let hostfile = dir.path().join("hosts");
        std::fs::write(&hostfile, format!("127.0.0.1:{}\n127.0.0.1:{}\n", common::free_port(), common::free_port())).unwrap();
        let out = dir.path().join("out");
        let mut children: Vec<_> = (0..2)
            .map(|p| {
                let mut cmd = taxiflow();
                cmd.args(["run", "-n", "2", "-w", "2", "-p", &p.to_string(), "--min-split-bytes", "1", "--max-split-bytes", "5000"])
                    .arg("--hostfile")
                    .arg(&hostfile)
                    .arg("--sink")
                    .arg(format!("file://{}", dir.path().join(format!("out-{p}")).display()));
                for f in &files {
                    cmd.arg("--input").arg(f);
                }
                cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap()
            })
            .collect();
        let outputs: Vec<_> = children.drain(..).map(|c| c.wait_with_output().unwrap()).collect();
        for o in &outputs {
            assert!(o.status.success(), "process failed: {}", String::from_utf8_lossy(&o.stderr));
        }
        // Process 0 writes; its summary counts every worker.
        std::fs::rename(dir.path().join("out-0"), &out).unwrap();
        check(&out, &files, &expected, &format!("2 processes, seed {seed}")).unwrap();
        let stdout = String::from_utf8_lossy(&outputs[0].stdout);
        assert_eq!(summary_value(&stdout, "late"), expected.late.len() as u64);
        let trips = input.iter().flatten().filter(|e| matches!(e, Event::Trip(_))).count() as u64;
        assert_eq!(summary_value(&stdout, "trips"), trips);
    }
}
