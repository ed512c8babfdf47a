//! Throughput and memory benchmark of `taxiflow run` against the hand-written baseline (`bench/baseline.rs`),
//! measured in the same run on the same input (not a timed test; see DEVELOPERS.md).
//!
//! `cargo bench --bench pipeline -- [--events N] [--runs R] [--dir DIR] [--flink] [--against BINARY]`
//!
//! 1. Builds `taxiflow` and the baseline in release mode.
//! 2. Makes `DIR/events-N.jsonl` (kept between runs): the 46,450 trips of the bundled 2013 TaxiRide sample,
//!    repeated forward in time (each copy shifted by the sample's span), as JSON trip events in the replay
//!    format of spec §1, with a watermark record after every 10,000 trips (`every trip ≤ W written`).
//! 3. Runs the baseline, `taxiflow run -w 1` and `taxiflow run -w 2` R times each (default 3, interleaved),
//!    and the Flink baseline of `shared/baselines/flink-hotspot` once with `--flink`, on that file; prints the
//!    median wall time, events/s, the largest peak RSS and the ratios to the baseline, and checks that taxiflow
//!    and the baseline wrote the same number of results.
//! 4. With `--against BINARY` (an older `taxiflow`, e.g. built from the commit before a change), also runs that
//!    binary with `-w 1` and `-w 2`, interleaved with the new one's runs, checks that both wrote byte-identical
//!    outputs and prints the new binary's throughput as a ratio to the old one's (the "does not drop" check of
//!    a refactoring, measured in one run on one machine).

mod common;

use std::process::Command;

use common::{measure, Bench, Measured};

fn main() {
    let bench = Bench::start(&["--example", "baseline"]);
    let arg = |name: &str| bench.arg(name);
    let (root, dir) = (bench.root.clone(), bench.dir.clone());
    let taxiflow = bench.taxiflow();
    let baseline = root.join("target/release/examples/baseline");
    let (input, events) = bench.events_input(20_000_000);
    let bytes = std::fs::metadata(&input).unwrap().len();
    eprintln!("input: {} ({events} trips, {:.2} GB)", input.display(), bytes as f64 / 1e9);

    let repeats: usize = arg("--runs").map(|v| v.parse().expect("--runs R")).unwrap_or(3).max(1);
    let against = arg("--against").map(std::path::PathBuf::from);
    if let Some(old) = &against {
        assert!(old.is_file(), "--against {}: no such binary", old.display());
    }
    // (label, binary, output directory prefix) of every taxiflow configuration, run in this order each round.
    let mut binaries = vec![("taxiflow", taxiflow.clone(), "out")];
    if let Some(old) = &against {
        binaries.push(("taxiflow --against", old.clone(), "against-out"));
    }
    let mut samples: Vec<Vec<Measured>> = (0..1 + 2 * binaries.len()).map(|_| Vec::new()).collect();
    for _ in 0..repeats {
        samples[0].push(measure("baseline (1 thread)", Command::new(&baseline).arg(&input).arg(dir.join("baseline.out"))));
        for (i, w) in ["1", "2"].into_iter().enumerate() {
            for (b, (label, binary, out)) in binaries.iter().enumerate() {
                samples[1 + i * binaries.len() + b].push(measure(
                    &format!("{label} -w {w}"),
                    Command::new(binary).args(["run", "-w", w, "--input"]).arg(&input).arg("--sink").arg(format!("file://{}", dir.join(format!("{out}-w{w}")).display())),
                ));
            }
        }
    }
    if bench.flag("--flink") {
        let script = root.join("../shared/baselines/flink-hotspot/run.sh");
        samples.push(vec![measure("flink (p=2, hot spots only)", Command::new("bash").arg(script).arg(&input).arg(dir.join("flink-out")).arg("2")).with_reported_jvm_rss()]);
    }
    let runs: Vec<Measured> = common::medians(samples);

    // Same results: the baseline and taxiflow write the same number of documents.
    let baseline_docs = std::fs::read_to_string(dir.join("baseline.out")).unwrap().lines().count() as u64;
    for w in ["1", "2"] {
        let out = dir.join(format!("out-w{w}"));
        let docs: u64 = ["pickup_count", "trip_duration"]
            .iter()
            .map(|i| std::fs::read_to_string(out.join(format!("{i}.jsonl"))).unwrap().lines().count() as u64)
            .sum();
        assert_eq!(docs, baseline_docs, "taxiflow -w {w} and the baseline disagree on the number of results");
        if against.is_some() {
            for file in ["pickup_count.jsonl", "trip_duration.jsonl", "dead_letter.jsonl"] {
                let (new, old) = (out.join(file), dir.join(format!("against-out-w{w}")).join(file));
                assert!(std::fs::read(&new).ok() == std::fs::read(&old).ok(), "{} and {} differ", new.display(), old.display());
            }
        }
    }

    let base = runs[0].seconds;
    let base_rss = runs[0].peak_rss_kib as f64;
    println!("\n{events} trip events, {:.2} GB of JSON lines, {baseline_docs} result documents\n", bytes as f64 / 1e9);
    println!("| run [all wall times] | median wall s | events/s | peak RSS MiB | throughput vs baseline | RSS vs baseline |");
    println!("|---|---:|---:|---:|---:|---:|");
    for r in &runs {
        println!(
            "| {} | {:.2} | {:.0} | {:.1} | {:.2}x | {:.2}x |",
            r.name,
            r.seconds,
            events as f64 / r.seconds,
            r.peak_rss_kib as f64 / 1024.0,
            base / r.seconds,
            r.peak_rss_kib as f64 / base_rss
        );
    }
    if against.is_some() {
        println!("\n| new binary vs --against | throughput ratio | peak RSS ratio |");
        println!("|---|---:|---:|");
        for (i, w) in ["1", "2"].into_iter().enumerate() {
            let (new, old) = (&runs[1 + 2 * i], &runs[2 + 2 * i]);
            println!("| -w {w} | {:.3}x | {:.2}x |", old.seconds / new.seconds, new.peak_rss_kib as f64 / old.peak_rss_kib as f64);
        }
        println!("(outputs byte-identical)");
    }
    for r in &runs {
        for line in r.stdout.lines().chain(r.stderr.lines()).filter(|l| l.contains("summary") || l.contains("baseline:") || l.contains("runtime")) {
            println!("  {}: {line}", r.name);
        }
    }
}
