//! Throughput and memory benchmark of `taxiflow run` against the hand-written baseline (`bench/baseline.rs`),
//! measured in the same run on the same input (not a timed test; see DEVELOPERS.md).
//!
//! `cargo bench --bench pipeline -- [--events N] [--runs R] [--dir DIR] [--flink]`
//!
//! 1. Builds `taxiflow` and the baseline in release mode.
//! 2. Makes `DIR/events-N.jsonl` (kept between runs): the 46,450 trips of the bundled 2013 TaxiRide sample,
//!    repeated forward in time (each copy shifted by the sample's span), as JSON trip events in the replay
//!    format of spec §1, with a watermark record after every 10,000 trips (`every trip ≤ W written`).
//! 3. Runs the baseline, `taxiflow run -w 1` and `taxiflow run -w 2` R times each (default 3, interleaved),
//!    and the Flink baseline of `shared/baselines/flink-hotspot` once with `--flink`, on that file; prints the
//!    median wall time, events/s, the largest peak RSS and the ratios to the baseline, and checks that taxiflow
//!    and the baseline wrote the same number of results.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use taxiflow::input::csv_line::CsvLine;
use taxiflow::input::{open_decoded, taxi_ride_csv, Record};
use taxiflow::timestamp::format_timestamp_ms;

struct Measured {
    name: String,
    seconds: f64,
    peak_rss_kib: i64,
    stderr: String,
    stdout: String,
}

/// Runs a command to completion and returns its wall time and peak resident set size (from `wait4`).
#[allow(clippy::zombie_processes)] // reaped by wait4 below, which also reports the child's peak RSS
fn measure(name: &str, cmd: &mut Command) -> Measured {
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = tempfile::NamedTempFile::new().unwrap();
    let start = Instant::now();
    let child = cmd.stdout(out.reopen().unwrap()).stderr(err.reopen().unwrap()).spawn().expect("spawn");
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; `usage` is a valid out-parameter.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let seconds = start.elapsed().as_secs_f64();
    assert!(pid > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "{name} failed: {}", std::fs::read_to_string(err.path()).unwrap_or_default());
    Measured {
        name: name.to_string(),
        seconds,
        peak_rss_kib: usage.ru_maxrss,
        stderr: std::fs::read_to_string(err.path()).unwrap_or_default(),
        stdout: std::fs::read_to_string(out.path()).unwrap_or_default(),
    }
}

/// The bundled sample's trips, sorted by dropoff (event) time.
fn sample_trips(root: &Path) -> Vec<taxiflow::dataflows::Trip> {
    let mut reader = open_decoded(&root.join("data/nyc-taxi-rides-2013-01-01.csv.gz")).unwrap();
    let mut csv = CsvLine::new();
    let mut line = Vec::new();
    let mut trips = Vec::new();
    while {
        line.clear();
        std::io::BufRead::read_until(&mut reader, b'\n', &mut line).unwrap() > 0
    } {
        if let Ok(Record::Trip(t)) = taxi_ride_csv::parse(taxiflow::input::trim_line(&line), &mut csv) {
            trips.push(t);
        }
    }
    trips.sort_by_key(|t| t.dropoff_ms);
    trips
}

fn generate(path: &Path, root: &Path, events: u64) {
    let trips = sample_trips(root);
    let first = trips.first().unwrap().dropoff_ms;
    let span = trips.last().unwrap().dropoff_ms - first + 1;
    let bar = indicatif::ProgressBar::new(events).with_style(
        indicatif::ProgressStyle::with_template("generating {bar:40} {pos}/{len} events {per_sec} eta {eta}").unwrap(),
    );
    let tmp = path.with_extension("partial");
    let mut w = BufWriter::with_capacity(1 << 22, std::fs::File::create(&tmp).unwrap());
    let mut n = 0u64;
    'copies: for copy in 0.. {
        let shift = copy * span;
        for t in &trips {
            if n == events {
                break 'copies;
            }
            n += 1;
            writeln!(
                w,
                r#"{{"type":"trip","trip_id":{},"pickup_latitude":{},"pickup_longitude":{},"dropoff_latitude":{},"dropoff_longitude":{},"pickup_datetime":"{}","dropoff_datetime":"{}","passenger_count":1,"total_amount":{}}}"#,
                n,
                t.pickup.lat,
                t.pickup.lon,
                t.dropoff.lat,
                t.dropoff.lon,
                format_timestamp_ms(t.pickup_ms + shift),
                format_timestamp_ms(t.dropoff_ms + shift),
                10.5
            )
            .unwrap();
            if n.is_multiple_of(10_000) {
                // Trips are in dropoff order, so every trip up to one ms before this one has been written.
                writeln!(w, r#"{{"type":"watermark","watermark":"{}"}}"#, format_timestamp_ms(t.dropoff_ms + shift - 1)).unwrap();
                bar.set_position(n);
            }
        }
    }
    w.flush().unwrap();
    drop(w);
    std::fs::rename(&tmp, path).unwrap();
    bar.finish();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let events: u64 = arg("--events").map(|v| v.parse().expect("--events N")).unwrap_or(20_000_000);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = arg("--dir").map(PathBuf::from).unwrap_or_else(|| root.join("target/bench"));
    std::fs::create_dir_all(&dir).unwrap();

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo).args(["build", "--release", "--bin", "taxiflow", "--example", "baseline"]).current_dir(&root).status().unwrap();
    assert!(status.success(), "release build failed");
    let taxiflow = root.join("target/release/taxiflow");
    let baseline = root.join("target/release/examples/baseline");

    let input = dir.join(format!("events-{events}.jsonl"));
    if !input.exists() {
        generate(&input, &root, events);
    }
    let bytes = std::fs::metadata(&input).unwrap().len();
    // Warm the page cache so that every run reads from memory.
    let _ = std::io::copy(&mut std::fs::File::open(&input).unwrap(), &mut std::io::sink());
    eprintln!("input: {} ({events} trips, {:.2} GB)", input.display(), bytes as f64 / 1e9);

    let repeats: usize = arg("--runs").map(|v| v.parse().expect("--runs R")).unwrap_or(3).max(1);
    let mut samples: Vec<Vec<Measured>> = vec![Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..repeats {
        samples[0].push(measure("baseline (1 thread)", Command::new(&baseline).arg(&input).arg(dir.join("baseline.out"))));
        for (i, w) in ["1", "2"].into_iter().enumerate() {
            samples[i + 1].push(measure(
                &format!("taxiflow -w {w}"),
                Command::new(&taxiflow).args(["run", "-w", w, "--input"]).arg(&input).arg("--sink").arg(format!("file://{}", dir.join(format!("out-w{w}")).display())),
            ));
        }
    }
    if args.iter().any(|a| a == "--flink") {
        let script = root.join("../shared/baselines/flink-hotspot/run.sh");
        samples.push(vec![measure("flink (p=2, hot spots only)", Command::new("bash").arg(script).arg(&input).arg(dir.join("flink-out")).arg("2"))]);
    }
    // Median wall time, largest peak RSS of each configuration.
    let runs: Vec<Measured> = samples
        .into_iter()
        .map(|mut s| {
            let rss = s.iter().map(|m| m.peak_rss_kib).max().unwrap_or(0);
            s.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
            let walls: Vec<String> = s.iter().map(|m| format!("{:.2}", m.seconds)).collect();
            let mut median = s.swap_remove(s.len() / 2);
            median.peak_rss_kib = rss;
            median.name = format!("{} [{} s]", median.name, walls.join(", "));
            median
        })
        .collect();

    // Same results: the baseline and taxiflow write the same number of documents.
    let baseline_docs = std::fs::read_to_string(dir.join("baseline.out")).unwrap().lines().count() as u64;
    for w in ["1", "2"] {
        let out = dir.join(format!("out-w{w}"));
        let docs: u64 = ["pickup_count", "trip_duration"]
            .iter()
            .map(|i| std::fs::read_to_string(out.join(format!("{i}.jsonl"))).unwrap().lines().count() as u64)
            .sum();
        assert_eq!(docs, baseline_docs, "taxiflow -w {w} and the baseline disagree on the number of results");
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
    for r in &runs {
        for line in r.stdout.lines().chain(r.stderr.lines()).filter(|l| l.contains("summary") || l.contains("baseline:") || l.contains("runtime")) {
            println!("  {}: {line}", r.name);
        }
    }
}
