//! Throughput and memory of the ticker job against Flink SQL (`shared/baselines/flink-ticker`, the blog's query on
//! Flink 2.3, parallelism 2), measured in the same run on the same input (not a timed test; see DEVELOPERS.md).
//!
//! `cargo bench --bench ticker -- [--events N] [--runs R] [--dir DIR] [--no-flink]`
//!
//! 1. Builds `taxiflow` in release mode.
//! 2. Makes `DIR/ticks-N.jsonl` (kept between runs) with `taxiflow generate ticker` (seed 1, from
//!    2026-12-01T08:00, one tick per ms of event time, moved back by up to 3 s: out of order, none late).
//! 3. Runs `taxiflow run ticker -w 1` and `-w 2` R times each (default 3), into part files (CSV) in a directory,
//!    and Flink once (unless `--no-flink`), on that file; prints the median wall time, events/s, the largest
//!    peak RSS and the ratios to Flink (wall time of the whole run, and Flink's own net runtime), and checks that
//!    taxiflow's rows equal Flink's (the averages at a relative tolerance of 1e-12: Flink adds in arrival order).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{measure, Bench, Measured};

/// `ticker,window_end_ms` → price of a Flink-layout or taxiflow output tree (`ticker=T/part-*` CSV files).
fn rows(dir: &Path) -> BTreeMap<(String, String), f64> {
    let mut rows = BTreeMap::new();
    for partition in std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()) {
        let Some(ticker) = partition.file_name().unwrap().to_str().unwrap().strip_prefix("ticker=").map(String::from) else { continue };
        for file in std::fs::read_dir(&partition).unwrap().map(|e| e.unwrap().path()) {
            if !file.file_name().unwrap().to_str().unwrap().starts_with("part-") {
                continue;
            }
            for line in std::fs::read_to_string(&file).unwrap().lines() {
                let (price, end) = line.split_once(',').unwrap();
                rows.insert((ticker.clone(), end.to_string()), price.parse::<f64>().unwrap());
            }
        }
    }
    rows
}

fn main() {
    let bench = Bench::start(&[]);
    let taxiflow = bench.taxiflow();
    let dir = bench.dir.clone();
    let events: u64 = bench.arg("--events").map(|v| v.parse().expect("--events N")).unwrap_or(10_000_000);
    let count = events.to_string();
    let (input, bytes) = bench.generated_input(&format!("ticks-{events}.jsonl"), &["ticker", "--seed", "1", "--start-time", "2026-12-01T08:00:00", "--event-spacing", "1ms", "--max-disorder", "3s", "--count", &count]);
    eprintln!("input: {} ({events} ticks, {:.2} GB)", input.display(), bytes as f64 / 1e9);

    let repeats: usize = bench.arg("--runs").map(|v| v.parse().expect("--runs R")).unwrap_or(3).max(1);
    let mut samples: Vec<Vec<Measured>> = vec![Vec::new(), Vec::new()];
    for _ in 0..repeats {
        for (i, w) in ["1", "2"].into_iter().enumerate() {
            let out = dir.join(format!("ticker-out-w{w}"));
            let _ = std::fs::remove_dir_all(&out);
            samples[i].push(measure(
                &format!("taxiflow -w {w}"),
                Command::new(&taxiflow).args(["run", "ticker", "-w", w, "--input"]).arg(&input).arg("--sink").arg(format!("file://{}", out.display())),
            ));
        }
    }
    let mut flink: Option<(Measured, f64)> = None;
    if !bench.flag("--no-flink") {
        let out = dir.join("flink-ticker-out");
        let _ = std::fs::remove_dir_all(&out);
        let script = bench.root.join("../shared/baselines/flink-ticker/run.sh");
        let m = measure("flink 2.3 (p=2)", Command::new("bash").arg(script).arg(&input).arg(&out).arg("2")).with_reported_jvm_rss();
        let net_ms: f64 = m.stderr.split_whitespace().find_map(|w| w.strip_prefix("job_net_runtime_ms=")).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
        // Same rows: Flink's averages equal taxiflow's exact ones at a relative tolerance of 1e-12.
        let (ours, theirs) = (rows(&dir.join("ticker-out-w2")), rows(&out));
        assert_eq!(ours.len(), theirs.len(), "taxiflow and Flink wrote different numbers of rows");
        let worst = ours.iter().map(|(k, a)| ((a - theirs[k]) / a.abs().max(f64::MIN_POSITIVE)).abs()).fold(0.0, f64::max);
        assert!(worst <= 1e-12, "averages differ from Flink's by {worst:e} (relative)");
        eprintln!("same {} rows as Flink (largest relative difference {worst:e})", ours.len());
        flink = Some((m, net_ms / 1000.0));
    }

    let runs: Vec<Measured> = common::medians(samples);
    println!("\n{events} ticks, {:.2} GB of JSON lines\n", bytes as f64 / 1e9);
    println!("| run [all wall times] | median wall s | events/s | peak RSS MiB | events/s vs Flink (wall) | vs Flink (net runtime) | RSS vs Flink |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let (flink_wall, flink_net, flink_rss) = flink.as_ref().map_or((f64::NAN, f64::NAN, f64::NAN), |(m, net)| (m.seconds, *net, m.peak_rss_kib as f64));
    for r in &runs {
        println!(
            "| {} | {:.2} | {:.0} | {:.1} | {:.1}x | {:.1}x | 1/{:.0} |",
            r.name,
            r.seconds,
            events as f64 / r.seconds,
            r.peak_rss_kib as f64 / 1024.0,
            flink_wall / r.seconds,
            flink_net / r.seconds,
            flink_rss / r.peak_rss_kib as f64
        );
    }
    if let Some((m, net)) = &flink {
        println!("| {} | {:.2} (net runtime {net:.2}) | {:.0} (net {:.0}) | {:.1} | 1.0x | 1.0x | 1 |", m.name, m.seconds, events as f64 / m.seconds, events as f64 / net, m.peak_rss_kib as f64 / 1024.0);
        for line in m.stderr.lines().filter(|l| l.contains("job_wall_ms")) {
            println!("  flink: {line}");
        }
    }
    for r in &runs {
        for line in r.stdout.lines().filter(|l| l.contains("summary")) {
            println!("  {}: {line}", r.name);
        }
    }
}
