//! Throughput, memory and state size of the alerts and dispatch jobs (`docs/jobs/alerts.md`, `docs/jobs/dispatch.md`)
//! on a generated file (not a timed test; see DEVELOPERS.md).
//!
//! `cargo bench --bench alerts -- [--events N] [--devices D] [--runs R] [--dir DIR]`
//!
//! 1. Builds `taxiflow` in release mode and starts a throwaway PostgreSQL (`scripts/postgres.sh`) with
//!    `scripts/alerts_schema.sql` (the blog's two rules) and settings for a tenth of the devices (delays 0–60 s).
//! 2. Makes `DIR/devices-N-D.jsonl` (kept between runs) with `taxiflow generate devices` (seed 1, 20 µs of event
//!    time between events, moved back by up to 3 s; 0.5 % late, 0.5 % redelivered, 0.2 % malformed).
//! 3. Runs `taxiflow run alerts -w 1` and `-w 2` R times each (default 3) into a file sink, then `taxiflow run
//!    dispatch -w 1` and `-w 2` on the alerts they wrote; prints the median wall time, events/s and the largest peak
//!    RSS of each, and the checkpointed state per device of a run with one checkpoint at its end.

mod common;

use std::process::{Command, Stdio};

use common::{measure, Bench, Measured};

fn main() {
    let bench = Bench::start(&[]);
    let taxiflow = bench.taxiflow();
    let dir = bench.dir.clone();
    let events: u64 = bench.arg("--events").map(|v| v.parse().expect("--events N")).unwrap_or(10_000_000);
    let devices: u64 = bench.arg("--devices").map(|v| v.parse().expect("--devices D")).unwrap_or(100_000);
    let repeats: usize = bench.arg("--runs").map(|v| v.parse().expect("--runs R")).unwrap_or(3).max(1);

    // PostgreSQL with the rules and some device settings.
    let pg_dir = tempfile::Builder::new().prefix("taxiflow-bench-pg").tempdir().unwrap();
    std::fs::set_permissions(pg_dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let port = common::free_port();
    let _server = common::KillOnDrop(Command::new(bench.root.join("scripts/postgres.sh")).arg(pg_dir.path().join("pg")).arg(port.to_string()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    let psql = |sql: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let out = Command::new("psql").args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-c", sql]).output().unwrap();
            if out.status.success() {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "psql: {}", String::from_utf8_lossy(&out.stderr));
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    psql("SELECT 1");
    psql(&std::fs::read_to_string(bench.root.join("scripts/alerts_schema.sql")).unwrap());
    psql(&format!("INSERT INTO device_sla SELECT d, 'device ' || d, NULL, (d % 7) * 10000 FROM generate_series(0, {}, 10) d", devices.saturating_sub(1)));
    let url = format!("postgresql://postgres@127.0.0.1:{port}/postgres");

    let (count, devices_arg) = (events.to_string(), devices.to_string());
    let (input, bytes) = bench.generated_input(
        &format!("devices-{events}-{devices}.jsonl"),
        &["devices", "--seed", "1", "--start-time", "2026-03-02T08:00:00Z", "--event-spacing", "20us", "--max-disorder", "3s", "--count", &count, "--devices", &devices_arg],
    );
    eprintln!("input: {} ({events} events of {devices} devices, {:.2} GB)", input.display(), bytes as f64 / 1e9);

    let mut samples: Vec<Vec<Measured>> = vec![Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..repeats {
        for (i, w) in ["1", "2"].into_iter().enumerate() {
            let out = dir.join(format!("alerts-out-w{w}"));
            let _ = std::fs::remove_dir_all(&out);
            samples[i].push(measure(
                &format!("alerts -w {w}"),
                Command::new(&taxiflow).args(["run", "alerts", "-w", w, "--rules", &url, "--sla", &url, "--input"]).arg(&input).arg("--sink").arg(format!("file://{}", out.display())),
            ));
        }
    }
    let alerts = dir.join("alerts-out-w2/alerts.jsonl");
    // The messages are the same; the watermark records among them fall where the frontier happened to be.
    let messages = |path: &std::path::Path| std::fs::read_to_string(path).unwrap().lines().filter(|l| !l.contains("\"type\":\"watermark\"")).map(String::from).collect::<Vec<_>>();
    assert!(messages(&alerts) == messages(&dir.join("alerts-out-w1/alerts.jsonl")), "-w 1 and -w 2 wrote different alerts");
    let alert_records = std::fs::read_to_string(&alerts).unwrap().lines().count() as u64;
    let alert_messages = messages(&alerts).len();
    for _ in 0..repeats {
        for (i, w) in ["1", "2"].into_iter().enumerate() {
            let out = dir.join(format!("dispatch-out-w{w}"));
            let _ = std::fs::remove_dir_all(&out);
            samples[2 + i].push(measure(&format!("dispatch -w {w}"), Command::new(&taxiflow).args(["run", "dispatch", "-w", w, "--input"]).arg(&alerts).arg("--sink").arg(format!("file://{}", out.display()))));
        }
    }
    // State per device: one checkpoint, at the end of a run (the rule states; nothing is pending then).
    let ck = dir.join("alerts-ck");
    let _ = std::fs::remove_dir_all(&ck);
    let with_checkpoint = measure(
        "alerts -w 2 with a checkpoint",
        Command::new(&taxiflow)
            .env("RUST_LOG", "info")
            .args(["run", "alerts", "-w", "2", "--rules", &url, "--sla", &url, "--checkpoint-interval", "1h", "--checkpoint-dir"])
            .arg(&ck)
            .arg("--input")
            .arg(&input)
            .arg("--sink")
            .arg(format!("file://{}", dir.join("alerts-out-ck").display())),
    );
    let state_bytes: u64 = with_checkpoint.stderr.lines().filter(|l| l.contains("checkpoint committed")).filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("state_bytes=")).and_then(|v| v.parse().ok())).next_back().unwrap_or(0);

    let runs = common::medians(samples);
    println!("\n{events} device events of {devices} devices, {:.2} GB of JSON lines; {alert_records} alert records ({alert_messages} messages, the rest watermark records)\n", bytes as f64 / 1e9);
    println!("| run [all wall times] | median wall s | records/s | peak RSS MiB |");
    println!("|---|---:|---:|---:|");
    for (i, r) in runs.iter().enumerate() {
        let records = if i < 2 { events } else { alert_records };
        println!("| {} | {:.2} | {:.0} | {:.1} |", r.name, r.seconds, records as f64 / r.seconds, r.peak_rss_kib as f64 / 1024.0);
    }
    println!("\nstate at the end (checkpointed, rule states of every device): {state_bytes} bytes, {:.1} bytes per device", state_bytes as f64 / devices as f64);
    for r in &runs {
        for line in r.stdout.lines().filter(|l| l.contains("summary")) {
            println!("  {}: {line}", r.name);
        }
    }
}
