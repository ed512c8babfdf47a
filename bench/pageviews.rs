//! Throughput and memory of the page-view job against the Flink 2.3 SQL job of `shared/baselines/flink-pageviews`
//! (parallelism 2), in the same run on the same input, and the shipper's lines/s into a broker (not a timed
//! test; see DEVELOPERS.md).
//!
//! `cargo bench --bench pageviews -- [--lines N] [--big-lines M] [--runs R] [--dir DIR] [--no-flink] [--no-ship]`
//!
//! 1. Builds `taxiflow` in release mode.
//! 2. Makes `DIR/pageviews-N.log` and `DIR/pageviews-M.log` (kept between runs; N = 2M and M = 20M by default) with
//!    `scripts/pageviews_reference.py replicate`: the logstalgia sample (`target/test-data/logstalgia/example.log`,
//!    fetched by `scripts/install-test-services.sh`) repeated forward in time, a copy a minute, with hosts made
//!    distinct per copy (≥ 1M distinct per day) and 150 variants of each path (≥ 10k paths).
//! 3. Runs `taxiflow run pageviews -w 1` and `-w 2`, each also with `--no-today` (only the outputs the Flink job
//!    has: total and by_path), R times each (default 3) on the N-line file and Flink once on it (unless
//!    `--no-flink`), checks that taxiflow's total and per-path rows equal Flink's, and prints events/s, peak RSS and
//!    the ratios; then taxiflow alone on the M-line file, with the distinct visitors per day that the
//!    exact day UV holds.
//! 4. Ships the N-line file into a local noida-db broker with `taxiflow ship --exit-when-done` (unless
//!    `--no-ship`) and prints lines/s.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{measure, Bench, Measured};

/// The replicated log of `lines` lines in the bench directory (made if missing) and its size in bytes.
fn replicated(bench: &Bench, lines: u64) -> (PathBuf, u64) {
    let path = bench.dir.join(format!("pageviews-{lines}.log"));
    if !path.exists() {
        let sample = bench.root.join("target/test-data/logstalgia/example.log");
        assert!(sample.exists(), "{} is missing: run scripts/install-test-services.sh", sample.display());
        let tmp = path.with_extension("tmp");
        let status = Command::new("python3").arg(bench.root.join("scripts/pageviews_reference.py")).arg("replicate").arg(&sample).arg(&tmp).args(["--lines", &lines.to_string()]).status().unwrap();
        assert!(status.success(), "replicate failed");
        std::fs::rename(&tmp, &path).unwrap();
    }
    let _ = std::io::copy(&mut std::fs::File::open(&path).unwrap(), &mut std::io::sink());
    let bytes = std::fs::metadata(&path).unwrap().len();
    (path, bytes)
}

/// `(window_end_ms, path)` → `(pv, uv)` of taxiflow's JSON lines (`by_path`) or Flink's CSV (`by-path.csv`);
/// `total` under the path `None`.
type Rows = BTreeMap<(String, Option<String>), (String, String)>;

fn taxiflow_rows(dir: &Path) -> Rows {
    let mut rows = Rows::new();
    for (name, keyed) in [("total", false), ("by_path", true)] {
        for line in std::fs::read_to_string(dir.join(format!("{name}.jsonl"))).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let key = keyed.then(|| v["path"].as_str().unwrap().to_string());
            rows.insert((v["window_end_ms"].to_string(), key), (v["pv"].to_string(), v["uv"].to_string()));
        }
    }
    rows
}

fn flink_rows(dir: &Path) -> Rows {
    let mut rows = Rows::new();
    for (name, keyed) in [("total.csv", false), ("by-path.csv", true)] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        for line in text.lines().skip(1) {
            // The replicated paths have no ',' or '"', so no field is quoted.
            let f: Vec<&str> = line.split(',').collect();
            let (end, key, pv, uv) = if keyed { (f[0], Some(f[1..f.len() - 2].join(",")), f[f.len() - 2], f[f.len() - 1]) } else { (f[0], None, f[1], f[2]) };
            rows.insert((end.to_string(), key), (pv.to_string(), uv.to_string()));
        }
    }
    rows
}

/// The largest VmHWM (KiB) of a Java process running PyFlink's gateway (the mini-cluster JVM), sampled every
/// 100 ms until `stop`: the page-view baseline does not print it, and `wait4` sees only the Python process, which
/// starts the JVM without waiting for it. VmHWM is the process's own peak, so the last sample before it exits holds
/// its peak.
fn sample_jvm_peak(stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> std::thread::JoinHandle<i64> {
    std::thread::spawn(move || {
        let mut peak = 0i64;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                let dir = entry.path();
                let Ok(cmdline) = std::fs::read(dir.join("cmdline")) else { continue };
                let cmdline = String::from_utf8_lossy(&cmdline);
                if !(cmdline.contains("java") && cmdline.contains("pyflink")) {
                    continue;
                }
                let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
                if let Some(kib) = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.split_whitespace().next()?.parse::<i64>().ok()) {
                    peak = peak.max(kib);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        peak
    })
}

/// One run of the job with `workers` and the `extra` flags, into `DIR/pageviews-out-{tag}-w{workers}`.
fn run_pageviews(taxiflow: &Path, dir: &Path, input: &Path, workers: &str, extra: &[&str], tag: &str) -> Measured {
    let out = dir.join(format!("pageviews-out-{tag}-w{workers}"));
    let _ = std::fs::remove_dir_all(&out);
    let name = format!("taxiflow -w {workers}{}", extra.iter().map(|f| format!(" {f}")).collect::<String>());
    measure(&name, Command::new(taxiflow).args(["run", "pageviews", "-w", workers]).args(extra).arg("--input").arg(input).arg("--sink").arg(format!("file://{}", out.display())))
}

fn table(lines: u64, runs: &[Measured], flink: Option<&(Measured, f64)>) {
    println!("| run | wall s | lines/s | peak RSS MiB | lines/s vs Flink (wall) | vs Flink (net runtime) | RSS vs Flink |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let (fw, fnet, frss) = flink.map_or((f64::NAN, f64::NAN, f64::NAN), |(m, net)| (m.seconds, *net, m.peak_rss_kib as f64));
    for r in runs {
        println!("| {} | {:.2} | {:.0} | {:.1} | {:.1}x | {:.1}x | 1/{:.0} |", r.name, r.seconds, lines as f64 / r.seconds, r.peak_rss_kib as f64 / 1024.0, fw / r.seconds, fnet / r.seconds, frss / r.peak_rss_kib as f64);
    }
    if let Some((m, net)) = flink {
        println!("| {} | {:.2} (net runtime {net:.2}) | {:.0} (net {:.0}) | {:.1} | 1.0x | 1.0x | 1 |", m.name, m.seconds, lines as f64 / m.seconds, lines as f64 / net, m.peak_rss_kib as f64 / 1024.0);
    }
}

fn main() {
    let bench = Bench::start(&[]);
    let taxiflow = bench.taxiflow();
    let dir = bench.dir.clone();
    let lines: u64 = bench.arg("--lines").map(|v| v.parse().expect("--lines N")).unwrap_or(2_000_000);
    let big: u64 = bench.arg("--big-lines").map(|v| v.parse().expect("--big-lines M")).unwrap_or(20_000_000);
    let repeats: usize = bench.arg("--runs").map(|v| v.parse().expect("--runs R")).unwrap_or(3).max(1);
    let (input, bytes) = replicated(&bench, lines);
    eprintln!("input: {} ({lines} lines, {:.2} GB)", input.display(), bytes as f64 / 1e9);

    // 1. Against Flink on the N-line file: the whole job, and the job with only the outputs the Flink job has
    //    (total and by_path: `--no-today`).
    let configs: [(&str, &[&str], &str); 4] = [("1", &[], "small"), ("2", &[], "small"), ("1", &["--no-today"], "flink-outputs"), ("2", &["--no-today"], "flink-outputs")];
    let mut best: Vec<Option<Measured>> = configs.iter().map(|_| None).collect();
    for _ in 0..repeats {
        for (i, (w, extra, tag)) in configs.into_iter().enumerate() {
            let m = run_pageviews(&taxiflow, &dir, &input, w, extra, tag);
            eprintln!("{}: {:.2} s, {:.1} MiB", m.name, m.seconds, m.peak_rss_kib as f64 / 1024.0);
            if best[i].as_ref().is_none_or(|b| m.seconds < b.seconds) {
                best[i] = Some(m);
            }
        }
    }
    let runs: Vec<Measured> = best.into_iter().flatten().collect();
    let mut flink: Option<(Measured, f64)> = None;
    if !bench.flag("--no-flink") {
        let out = dir.join("flink-pageviews-out");
        let _ = std::fs::remove_dir_all(&out);
        let script = bench.root.join("../shared/baselines/flink-pageviews/run.sh");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sampler = sample_jvm_peak(stop.clone());
        let mut m = measure("flink 2.3 (p=2)", Command::new("bash").arg(script).arg(&input).arg(&out).arg("2"));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let jvm = sampler.join().unwrap();
        eprintln!("flink: python process peak RSS {:.1} MiB, mini-cluster JVM peak RSS {:.1} MiB", m.peak_rss_kib as f64 / 1024.0, jvm as f64 / 1024.0);
        m.peak_rss_kib = m.peak_rss_kib.max(jvm);
        let net_ms: f64 = m.stderr.split_whitespace().find_map(|w| w.strip_prefix("job_net_runtime_ms=")).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
        let theirs = flink_rows(&out);
        let ours = taxiflow_rows(&dir.join("pageviews-out-small-w2"));
        assert!(ours == theirs, "taxiflow's rows differ from Flink's ({} vs {} rows)", ours.len(), theirs.len());
        assert!(taxiflow_rows(&dir.join("pageviews-out-flink-outputs-w2")) == theirs, "taxiflow's rows with --no-today differ from Flink's");
        eprintln!("same {} total and per-path rows as Flink", ours.len());
        flink = Some((m, net_ms / 1000.0));
    }
    println!("\n{lines} lines ({:.2} GB), best of {repeats} runs for taxiflow, one for Flink\n", bytes as f64 / 1e9);
    table(lines, &runs, flink.as_ref());
    for r in &runs {
        for line in r.stdout.lines().filter(|l| l.contains("summary")) {
            println!("  {}: {line}", r.name);
        }
    }

    // 2. taxiflow alone on the M-line file.
    let (big_input, big_bytes) = replicated(&bench, big);
    let mut big_runs = Vec::new();
    for w in ["1", "2"] {
        big_runs.push(run_pageviews(&taxiflow, &dir, &big_input, w, &[], "big"));
    }
    println!("\n{big} lines ({:.2} GB), one run each\n", big_bytes as f64 / 1e9);
    table(big, &big_runs, None);
    // The distinct visitors per day the exact day UV holds (its last row of each day).
    let mut days: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for line in std::fs::read_to_string(dir.join("pageviews-out-big-w2/today.jsonl")).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        days.insert(v["day"].as_str().unwrap().to_string(), (v["pv"].as_u64().unwrap(), v["uv"].as_u64().unwrap()));
    }
    for (day, (pv, uv)) in &days {
        println!("  {day}: {pv} page views, {uv} distinct visitors");
    }
    let paths: std::collections::HashSet<String> = std::fs::read_to_string(dir.join("pageviews-out-big-w2/by_path.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["path"].as_str().unwrap().to_string())
        .collect();
    println!("  {} distinct paths", paths.len());
    for r in &big_runs {
        for line in r.stdout.lines().filter(|l| l.contains("summary")) {
            println!("  {}: {line}", r.name);
        }
    }

    // 3. The shipper into a local broker.
    if !bench.flag("--no-ship") {
        let port = common::free_port();
        let data = dir.join("ship-broker");
        let _ = std::fs::remove_dir_all(&data);
        let mut broker = Command::new(bench.root.join("scripts/kafka-broker.sh")).arg(port.to_string()).arg(&data).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
        common::wait_listening(port, "the broker (pip install noida-db)");
        let brokers = format!("127.0.0.1:{port}");
        let topic = taxiflow::connectors::kafka::KafkaTopic { brokers: brokers.clone(), topic: "access".into(), config: Vec::new() };
        taxiflow::connectors::kafka::create_topic(&topic, 1, std::time::Duration::from_secs(10)).unwrap();
        let logs = dir.join("ship-logs");
        let _ = std::fs::remove_dir_all(&logs);
        std::fs::create_dir_all(&logs).unwrap();
        std::fs::hard_link(&input, logs.join("access.log")).or_else(|_| std::fs::copy(&input, logs.join("access.log")).map(|_| ())).unwrap();
        let positions = dir.join("ship-positions.json");
        let _ = std::fs::remove_file(&positions);
        let m = measure(
            "taxiflow ship",
            Command::new(&taxiflow).args(["ship", "--from", &format!("{}/*.log", logs.display()), "--to", &format!("kafka://{brokers}/access", ), "--exit-when-done"]).arg("--position-file").arg(&positions),
        );
        println!("\nshipper: {lines} lines into a local noida-db broker in {:.2} s: {:.0} lines/s, peak RSS {:.1} MiB", m.seconds, lines as f64 / m.seconds, m.peak_rss_kib as f64 / 1024.0);
        // SAFETY: signals our own child process.
        unsafe { libc::kill(broker.id() as libc::pid_t, libc::SIGTERM) };
        let _ = broker.wait();
    }
}
