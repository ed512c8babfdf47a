//! Cost of checkpoints and time to recover (issue 6), measured in one run on one input (not a timed test).
//!
//! `cargo bench --bench checkpoint -- [--events N] [--runs R] [--dir DIR]`
//!
//! 1. Builds `taxiflow` in release mode; makes (or reuses) `DIR/events-N.jsonl` as `bench/pipeline.rs` does.
//! 2. Runs `taxiflow run -w 2` to a file sink without checkpoints (the baseline), with `--checkpoint-interval 5s`
//!    and with `1s`, R times each, interleaved; prints median wall time, events/s, the ratio to the baseline,
//!    peak RSS, and the checkpoints written (count, file size, window state bytes, mean commit time) from the
//!    job's own log.
//! 3. Recovery: a 1 s checkpointed run killed with SIGKILL halfway through the baseline's median wall time,
//!    then restarted: the restore (load and verify) time the job logs, the restarted run's wall time, and the
//!    overhead of kill + restart over an uninterrupted run. The restarted run's documents must equal the
//!    baseline's.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{measure, Bench, Measured};

/// `field=value` numbers of the log lines containing `what`.
fn logged(stderr: &str, what: &str, field: &str) -> Vec<f64> {
    stderr
        .lines()
        .filter(|l| l.contains(what))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix(&format!("{field}="))).and_then(|v| v.parse().ok()))
        .collect()
}

fn documents(dir: &Path) -> BTreeSet<String> {
    ["pickup_count", "trip_duration"].iter().flat_map(|i| std::fs::read_to_string(dir.join(format!("{i}.jsonl"))).unwrap().lines().map(str::to_string).collect::<Vec<_>>()).collect()
}

fn main() {
    let bench = Bench::start(&[]);
    let arg = |name: &str| bench.arg(name);
    let dir = bench.dir.clone();
    let taxiflow = bench.taxiflow();
    let (input, events) = bench.events_input(20_000_000);

    let run = |name: &str, interval: Option<&str>, out: &Path| -> Command {
        let mut c = Command::new(&taxiflow);
        c.args(["run", "-w", "2", "--input"]).arg(&input).arg("--sink").arg(format!("file://{}", out.display())).env("RUST_LOG", "info");
        if let Some(i) = interval {
            let ck = dir.join(format!("ck-{name}"));
            let _ = std::fs::remove_dir_all(&ck);
            c.arg("--checkpoint-dir").arg(ck).args(["--checkpoint-interval", i]);
        }
        c
    };
    let configs: [(&str, Option<&str>); 3] = [("none", None), ("5s", Some("5s")), ("1s", Some("1s"))];
    let repeats: usize = arg("--runs").map(|v| v.parse().expect("--runs R")).unwrap_or(3).max(1);
    let mut samples: Vec<Vec<Measured>> = vec![Vec::new(), Vec::new(), Vec::new()];
    let bar = indicatif::ProgressBar::new((repeats * 3 + 2) as u64).with_style(indicatif::ProgressStyle::with_template("runs {bar:40} {pos}/{len} {msg}").unwrap());
    for _ in 0..repeats {
        for (i, (name, interval)) in configs.iter().enumerate() {
            bar.set_message(format!("checkpoints: {name}"));
            samples[i].push(measure(&format!("checkpoints: {name}"), &mut run(name, *interval, &dir.join(format!("out-ck-{name}")))));
            bar.inc(1);
        }
    }
    let reference = documents(&dir.join("out-ck-none"));
    for (name, _) in &configs {
        assert!(documents(&dir.join(format!("out-ck-{name}"))) == reference, "checkpoints {name}: other documents than without checkpoints");
    }
    let medians: Vec<Measured> = samples
        .into_iter()
        .map(|mut s| {
            s.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
            s.swap_remove(s.len() / 2)
        })
        .collect();
    let base = medians[0].seconds;

    // Recovery: kill a 1 s checkpointed run halfway, restart it.
    bar.set_message("recovery: killed run");
    let out = dir.join("out-recovery");
    let ck = dir.join("ck-recovery");
    let _ = std::fs::remove_dir_all(&ck);
    let checkpointed = |c: &mut Command| {
        c.args(["run", "-w", "2", "--input"]).arg(&input).arg("--sink").arg(format!("file://{}", out.display())).arg("--checkpoint-dir").arg(&ck).args(["--checkpoint-interval", "1s"]).env("RUST_LOG", "info");
    };
    let started = Instant::now();
    let mut first = Command::new(&taxiflow);
    checkpointed(&mut first);
    let mut child = first.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_secs_f64(base / 2.0));
    child.kill().unwrap();
    child.wait().unwrap();
    let killed_after = started.elapsed().as_secs_f64();
    bar.inc(1);
    bar.set_message("recovery: restart");
    let mut second = Command::new(&taxiflow);
    checkpointed(&mut second);
    let restarted = measure("restart after SIGKILL", &mut second);
    bar.finish_and_clear();
    assert!(documents(&out) == reference, "the restarted run's documents differ from an uninterrupted run's");
    let restore_ms = logged(&restarted.stderr, "restored checkpoint", "ms").first().copied().unwrap_or(f64::NAN);
    let restored_epoch = logged(&restarted.stderr, "restored checkpoint", "epoch").first().copied().unwrap_or(f64::NAN);

    println!("\n{events} trip events, {} result documents, taxiflow -w 2, file sink\n", reference.len());
    println!("| checkpoints | median wall s | events/s | throughput vs none | peak RSS MiB | checkpoints written | file bytes | window state bytes | mean commit ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for m in &medians {
        let sizes = logged(&m.stderr, "checkpoint committed", "bytes");
        let states = logged(&m.stderr, "checkpoint committed", "state_bytes");
        let commits = logged(&m.stderr, "checkpoint committed", "ms");
        let mean = |v: &[f64]| if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 };
        println!(
            "| {} | {:.2} | {:.0} | {:.3}x | {:.1} | {} | {:.0} | {:.0} (max {:.0}) | {:.1} |",
            m.name.trim_start_matches("checkpoints: "),
            m.seconds,
            events as f64 / m.seconds,
            base / m.seconds,
            m.peak_rss_kib as f64 / 1024.0,
            sizes.len(),
            sizes.iter().copied().fold(0.0, f64::max),
            mean(&states),
            states.iter().copied().fold(0.0, f64::max),
            mean(&commits)
        );
    }
    println!(
        "\nrecovery: killed after {killed_after:.2} s, restored epoch {restored_epoch} in {restore_ms:.1} ms, restarted run {:.2} s; kill + restart {:.2} s vs {base:.2} s uninterrupted (+{:.2} s)",
        restarted.seconds,
        killed_after + restarted.seconds,
        killed_after + restarted.seconds - base
    );
}
