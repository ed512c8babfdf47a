//! Shared by the benchmarks: the generated input file and the measurement of one command.
#![allow(dead_code)] // each benchmark uses part of it

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Child, Command};
use std::time::Instant;

use taxiflow::connectors::file::open_decoded;
use taxiflow::dataflows::jobs::taxi::formats::csv_line::CsvLine;
use taxiflow::dataflows::jobs::taxi::formats::taxi_ride_csv;
use taxiflow::dataflows::jobs::taxi::formats::timestamp::format_timestamp_ms;
use taxiflow::dataflows::Decoded;

/// One measured run.
pub struct Measured {
    pub name: String,
    pub seconds: f64,
    pub peak_rss_kib: i64,
    pub stderr: String,
    pub stdout: String,
}

/// This process's own peak RSS, KiB (`VmHWM`).
fn own_peak_rss_kib() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
}

/// Runs a command to completion and returns its wall time and peak resident set size (from `wait4`).
///
/// The child's peak is at least this process's own peak when it was started: Linux carries the larger of the old
/// and the new address space's high-water mark across `execve`, and the old one is this process's. A run whose
/// figure is not above that is reported with a warning: keep the benchmark process small (stream what it reads).
#[allow(clippy::zombie_processes)] // reaped by wait4 below, which also reports the child's peak RSS
pub fn measure(name: &str, cmd: &mut Command) -> Measured {
    let own_peak = own_peak_rss_kib();
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
    if usage.ru_maxrss <= own_peak {
        eprintln!("warning: {name}: its peak RSS ({} KiB) is not above the benchmark process's own ({own_peak} KiB), which it inherits: the figure is an upper bound", usage.ru_maxrss);
    }
    Measured {
        name: name.to_string(),
        seconds,
        peak_rss_kib: usage.ru_maxrss,
        stderr: std::fs::read_to_string(err.path()).unwrap_or_default(),
        stdout: std::fs::read_to_string(out.path()).unwrap_or_default(),
    }
}

impl Measured {
    /// For a Flink baseline: the larger of the measured peak RSS and the `jvm_peak_rss_kb=` (the mini-cluster
    /// JVM's VmHWM) its script prints. PyFlink starts the JVM from Python and does not wait for it, so `wait4`
    /// sees only the Python process (172 MiB of a 977 MiB run).
    pub fn with_reported_jvm_rss(mut self) -> Measured {
        let reported = self.stderr.split_whitespace().find_map(|w| w.strip_prefix("jvm_peak_rss_kb=")).and_then(|v| v.parse::<i64>().ok());
        self.peak_rss_kib = self.peak_rss_kib.max(reported.unwrap_or(0));
        self
    }
}

/// One line per configuration: the run with the median wall time, named with every wall time, and the largest
/// peak RSS of its runs.
pub fn medians(samples: Vec<Vec<Measured>>) -> Vec<Measured> {
    samples
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
        .collect()
}

/// The bundled sample's trips, sorted by dropoff (event) time.
fn sample_trips(root: &Path) -> Vec<taxiflow::dataflows::jobs::taxi::Trip> {
    let mut reader = open_decoded(&root.join("data/nyc-taxi-rides-2013-01-01.csv.gz")).unwrap();
    let mut csv = CsvLine::new();
    let mut line = Vec::new();
    let mut trips = Vec::new();
    while {
        line.clear();
        std::io::BufRead::read_until(&mut reader, b'\n', &mut line).unwrap() > 0
    } {
        if let Ok(Decoded::Record(t)) = taxi_ride_csv::parse(taxiflow::connectors::file::trim_line(&line), &mut csv) {
            trips.push(t);
        }
    }
    trips.sort_by_key(|t| t.dropoff_ms);
    trips
}

/// Writes `events` trip events (the bundled 2013 sample repeated forward in time, a watermark record every
/// 10,000 trips) as JSON lines to `path`.
pub fn generate(path: &Path, root: &Path, events: u64) {
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


/// A child process killed when dropped (servers the benchmarks start).
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits up to 30 s until something listens on 127.0.0.1:`port`; `what` names it (and how to install it).
pub fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// What a benchmark starts from: its `--NAME VALUE` options, the repository root and its working directory
/// (`--dir`, default `target/bench`, created), with `extra` cargo targets built in the bench profile (release
/// settings); `taxiflow` itself is the binary cargo builds for the benchmark.
pub struct Bench {
    args: Vec<String>,
    /// The repository root.
    pub root: std::path::PathBuf,
    /// Where inputs and outputs go.
    pub dir: std::path::PathBuf,
}

impl Bench {
    /// Reads the options and builds `extra` (e.g. `["--example", "baseline"]`).
    pub fn start(extra: &[&str]) -> Bench {
        let args: Vec<String> = std::env::args().collect();
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let mut bench = Bench { args, dir: root.join("target/bench"), root };
        if let Some(dir) = bench.arg("--dir") {
            bench.dir = dir.into();
        }
        std::fs::create_dir_all(&bench.dir).unwrap();
        if !extra.is_empty() {
            // The bench profile, as `cargo bench` itself: a `--release` build compiles the crate again (without
            // the dev-dependencies' features) and the next `cargo bench` once more, ~4 minutes each.
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(&cargo).args(["build", "--profile", "bench"]).args(extra).current_dir(&bench.root).status().unwrap();
            assert!(status.success(), "bench profile build of {extra:?} failed");
        }
        bench
    }

    /// The value after `name`, if given.
    pub fn arg(&self, name: &str) -> Option<String> {
        self.args.iter().position(|a| a == name).and_then(|i| self.args.get(i + 1)).cloned()
    }

    /// Whether the flag `name` is given.
    pub fn flag(&self, name: &str) -> bool {
        self.args.iter().any(|a| a == name)
    }

    /// The `taxiflow` binary, built by `cargo bench` for the benchmarks (bench profile: the release settings).
    pub fn taxiflow(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_taxiflow"))
    }

    /// `DIR/NAME`, made by `taxiflow generate ARGS --to DIR/NAME` if missing (kept between runs), then read once so
    /// that every run reads it from the page cache; returns its path and size in bytes.
    pub fn generated_input(&self, name: &str, args: &[&str]) -> (std::path::PathBuf, u64) {
        let input = self.dir.join(name);
        if !input.exists() {
            let status = Command::new(self.taxiflow()).arg("generate").args(args).arg("--to").arg(&input).status().unwrap();
            assert!(status.success(), "taxiflow generate {args:?} failed");
        }
        let _ = std::io::copy(&mut std::fs::File::open(&input).unwrap(), &mut std::io::sink());
        let bytes = std::fs::metadata(&input).unwrap().len();
        (input, bytes)
    }

    /// `DIR/events-N.jsonl` for `--events N` (default `default`), generated if missing (see [`generate`]) and
    /// read once so that every run reads it from the page cache; returns (path, N).
    pub fn events_input(&self, default: u64) -> (std::path::PathBuf, u64) {
        let events: u64 = self.arg("--events").map(|v| v.parse().expect("--events N")).unwrap_or(default);
        let input = self.dir.join(format!("events-{events}.jsonl"));
        if !input.exists() {
            generate(&input, &self.root, events);
        }
        let _ = std::io::copy(&mut std::fs::File::open(&input).unwrap(), &mut std::io::sink());
        (input, events)
    }
}
