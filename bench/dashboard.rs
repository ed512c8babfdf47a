//! The dashboard's push delay: how long after the server took a window (its `emitted_ms`) a client of the event
//! stream (`/api/{job}/events`, Server-Sent Events) has it, measured in the same process that reads the stream
//! (one clock). Not a timed test (see DEVELOPERS.md): a measurement to report.
//!
//! `cargo bench --bench dashboard -- [--events N] [--rate R] [--dir DIR]`
//!
//! 1. Builds `taxiflow` in release mode.
//! 2. The taxi job on the bundled sample (about 400 documents a window), and the ticker job on `DIR/ticks-N.jsonl`
//!    (`taxiflow generate ticker`, seed 1, one tick per 10 ms of event time, 5 documents a window), each with
//!    `--source-rate-limit R` (default 20000/s) so that windows are emitted over time rather than all at the end,
//!    and `--dashboard-addr` on a free port.
//! 3. A client reads the event stream from before the first window to the end of the run and prints, per job, the
//!    windows received and the delay from `emitted_ms` to their arrival: p50, p99 and max, in ms.

mod common;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, wait_listening, Bench, KillOnDrop};

fn now_ms() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64() * 1000.0
}

/// Runs `taxiflow run ARGS --dashboard-addr …` and returns the delays (ms) of every window pushed.
fn delays(bench: &Bench, name: &str, args: &[String]) -> Vec<f64> {
    let port = free_port();
    let log = bench.dir.join(format!("dashboard-{name}.log"));
    let mut run = KillOnDrop(
        Command::new(bench.taxiflow())
            .arg("run")
            .args(args)
            .args(["--dashboard-addr", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_listening(port, "taxiflow run --dashboard-addr");
    let job = args[0].clone();
    let reader = std::thread::spawn(move || {
        let response = reqwest::blocking::Client::builder().timeout(None).build().unwrap().get(format!("http://127.0.0.1:{port}/api/{job}/events")).send().unwrap();
        let mut delays = Vec::new();
        for line in std::io::BufReader::new(response).lines() {
            let Ok(line) = line else { break };
            if let Some(data) = line.strip_prefix("data:") {
                let arrived = now_ms();
                let window: serde_json::Value = serde_json::from_str(data.trim()).unwrap();
                delays.push(arrived - window["emitted_ms"].as_f64().unwrap());
            }
        }
        delays
    });
    let deadline = Instant::now() + Duration::from_secs(600);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("the job finished") {
        assert!(run.0.try_wait().unwrap().is_none(), "{name}: the run ended: {}", std::fs::read_to_string(&log).unwrap_or_default());
        assert!(Instant::now() < deadline, "{name}: no end within 10 minutes");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The stream ends when the server does.
    let _ = run.0.kill();
    let _ = run.0.wait();
    reader.join().unwrap()
}

fn main() {
    let bench = Bench::start(&[]);
    let events: u64 = bench.arg("--events").map(|v| v.parse().expect("--events N")).unwrap_or(200_000);
    let rate = bench.arg("--rate").unwrap_or_else(|| "20000".into());
    let (ticks, _) = bench.generated_input(&format!("ticks-{events}-10ms.jsonl"), &["ticker", "--seed", "1", "--count", &events.to_string(), "--start-time", "2026-12-01T08:00:00", "--event-spacing", "10ms"]);
    let runs: [(&str, Vec<String>); 2] = [
        ("taxi", ["taxi", "--sink", &format!("file://{}", bench.dir.join("dashboard-taxi").display()), "--source-rate-limit", &rate].map(String::from).to_vec()),
        ("ticker", ["ticker", "--input", ticks.to_str().unwrap(), "--sink", &format!("file://{}", bench.dir.join("dashboard-ticker").display()), "--source-rate-limit", &rate].map(String::from).to_vec()),
    ];
    println!("| job | windows pushed | delay p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    for (name, args) in runs {
        let mut d = delays(&bench, name, &args);
        assert!(!d.is_empty(), "{name}: no window pushed");
        d.sort_by(f64::total_cmp);
        let at = |q: f64| d[((d.len() - 1) as f64 * q).round() as usize];
        println!("| {name} | {} | {:.1} | {:.1} | {:.1} |", d.len(), at(0.5), at(0.99), d[d.len() - 1]);
    }
}
