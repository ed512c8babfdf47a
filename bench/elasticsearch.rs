//! Throughput of the Elasticsearch sink against the file sink, measured in the same run on the same input (not
//! a timed test; see DEVELOPERS.md).
//!
//! `cargo bench --bench elasticsearch -- [--events N] [--runs R] [--dir DIR] [--concurrency C]`
//!
//! Makes (or reuses) `DIR/events-N.jsonl` like the pipeline benchmark (default N = 2,000,000), starts the
//! OpenSearch-API server of `scripts/opensearch.sh` (osmem-server, in memory, on this machine: it shares the
//! 2 cores with taxiflow), then runs `taxiflow run -w 2` R times (default 3, interleaved) with the file sink and
//! with `--sink es+http://…` (indices deleted before each run), checks that the cluster holds as many documents
//! as the file sink wrote, and prints the median wall time, documents/s and the ratio to the file sink.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{free_port, generate, measure, wait_listening, KillOnDrop, Measured};

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl").arg("-s").args(args).output().expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let events: u64 = arg("--events").map(|v| v.parse().expect("--events N")).unwrap_or(2_000_000);
    let repeats: usize = arg("--runs").map(|v| v.parse().expect("--runs R")).unwrap_or(3).max(1);
    let concurrency = arg("--concurrency").unwrap_or_else(|| "2".into());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = arg("--dir").map(PathBuf::from).unwrap_or_else(|| root.join("target/bench"));
    std::fs::create_dir_all(&dir).unwrap();

    // The binary cargo builds for the benchmark (bench profile: the release settings).
    let taxiflow = PathBuf::from(env!("CARGO_BIN_EXE_taxiflow"));
    let input = dir.join(format!("events-{events}.jsonl"));
    if !input.exists() {
        generate(&input, &root, events);
    }
    let _ = std::io::copy(&mut std::fs::File::open(&input).unwrap(), &mut std::io::sink());

    let port = free_port();
    let _server = KillOnDrop(Command::new(root.join("scripts/opensearch.sh")).arg(port.to_string()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("scripts/opensearch.sh"));
    wait_listening(port, "the OpenSearch-API server (pip install osmem-server)");
    let url = format!("http://127.0.0.1:{port}");

    let out_dir = dir.join("out-es-bench");
    let mut file_runs: Vec<Measured> = Vec::new();
    let mut es_runs: Vec<Measured> = Vec::new();
    let bar = indicatif::ProgressBar::new(2 * repeats as u64)
        .with_style(indicatif::ProgressStyle::with_template("measuring {bar:30} {pos}/{len} runs {elapsed}").unwrap());
    for _ in 0..repeats {
        file_runs.push(measure(
            "taxiflow -w 2, file sink",
            Command::new(&taxiflow).args(["run", "-w", "2", "--input"]).arg(&input).arg("--sink").arg(format!("file://{}", out_dir.display())),
        ));
        bar.inc(1);
        curl(&["-XDELETE", &format!("{url}/pickup_count,trip_duration,dead_letter")]);
        es_runs.push(measure(
            "taxiflow -w 2, es sink",
            Command::new(&taxiflow).args(["run", "-w", "2", "--bulk-concurrency", &concurrency, "--input"]).arg(&input).arg("--sink").arg(format!("es+{url}")),
        ));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let docs: u64 = ["pickup_count", "trip_duration"].iter().map(|i| std::fs::read_to_string(out_dir.join(format!("{i}.jsonl"))).unwrap().lines().count() as u64).sum();
    curl(&["-XPOST", &format!("{url}/_refresh")]);
    let count: serde_json::Value = serde_json::from_str(&curl(&[&format!("{url}/pickup_count,trip_duration/_count")])).unwrap();
    assert_eq!(count["count"].as_u64(), Some(docs), "the cluster holds {count} documents, the file sink wrote {docs}");

    let median = |runs: &mut Vec<Measured>| {
        runs.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
        let walls: Vec<String> = runs.iter().map(|m| format!("{:.2}", m.seconds)).collect();
        let rss = runs.iter().map(|m| m.peak_rss_kib).max().unwrap_or(0);
        let m = &runs[runs.len() / 2];
        (m.name.clone(), m.seconds, rss, walls.join(", "))
    };
    let file = median(&mut file_runs);
    let es = median(&mut es_runs);
    println!("\n{events} trip events, {docs} result documents, bulk concurrency {concurrency}\n");
    println!("| run [all wall times] | median wall s | events/s | documents/s | peak RSS MiB | throughput vs file sink |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, seconds, rss, walls) in [&file, &es] {
        println!(
            "| {name} [{walls} s] | {seconds:.2} | {:.0} | {:.0} | {:.1} | {:.2}x |",
            events as f64 / seconds,
            docs as f64 / seconds,
            *rss as f64 / 1024.0,
            file.1 / seconds
        );
    }
}
