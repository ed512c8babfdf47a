//! End-to-end Kafka benchmark against a real broker process (`scripts/kafka-broker.sh`, noida-db):
//! `taxiflow replay --speedup max` of the bundled 2013 sample repeated K times into a 2-partition topic, while an
//! unbounded `taxiflow run -w 2 --source kafka://…` consumes it. Prints the replay's rate, the consumer's
//! records and lag (from its Prometheus endpoint) every second, and the end-to-end rate: trips divided by the
//! time from the replay's start until the consumer has read every trip. Then a bounded read of the whole topic
//! (`--stop-at latest`) with `-w 1` and `-w 2` gives the consumer's own rate.
//!
//! `cargo bench --bench kafka -- [--copies K]` (default 20, i.e. 929,000 trips)

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, wait_listening, KillOnDrop};

/// Sum over label sets of a metric in a Prometheus text page.
fn total(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b'{') | Some(b' ')))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn scrape(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET /metrics HTTP/1.0\r\n\r\n").ok()?;
    let mut page = String::new();
    s.read_to_string(&mut page).ok()?;
    Some(page)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let copies: u64 = args.iter().position(|a| a == "--copies").and_then(|i| args.get(i + 1)).map_or(20, |v| v.parse().expect("--copies K"));
    let trips = 46_450 * copies;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // The binary cargo builds for the benchmark (bench profile: the release settings).
    let taxiflow = PathBuf::from(env!("CARGO_BIN_EXE_taxiflow"));
    let dir = tempfile::tempdir().unwrap();

    let port = free_port();
    let _broker = KillOnDrop(
        Command::new(root.join("scripts/kafka-broker.sh")).arg(port.to_string()).arg(dir.path().join("broker")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap(),
    );
    wait_listening(port, "the broker (pip install noida-db)");
    let topic = taxiflow::connectors::kafka::KafkaTopic { brokers: format!("127.0.0.1:{port}"), topic: "trips".into(), config: Vec::new() };
    taxiflow::connectors::kafka::create_topic(&topic, 2, Duration::from_secs(10)).unwrap();
    let url = format!("kafka://{}/trips", topic.brokers);

    let metrics_port = free_port();
    let mut consumer = KillOnDrop(
        Command::new(&taxiflow)
            .args(["run", "-w", "2", "--source", &url, "--metrics-addr", &format!("127.0.0.1:{metrics_port}"), "--sink"])
            .arg(format!("file://{}", dir.path().join("out").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    while scrape(metrics_port).is_none() {
        std::thread::sleep(Duration::from_millis(50));
    }

    let started = Instant::now();
    let mut replay = KillOnDrop(
        Command::new(&taxiflow)
            .args(["replay", "--to", &url, "--speedup", "max", "--repeat", &copies.to_string(), "--input"])
            .arg(root.join("data/nyc-taxi-rides-2013-01-01.csv.gz"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    println!("{trips} trips, 2 partitions, consumer -w 2\n");
    println!("| t s | consumed trips | consumer lag (records) | ms behind latest |");
    println!("|---:|---:|---:|---:|");
    let mut replay_seconds = None;
    let mut replay_line = String::new();
    let consumed_all = loop {
        std::thread::sleep(Duration::from_secs(1));
        let page = scrape(metrics_port).unwrap_or_default();
        let consumed = total(&page, "taxiflow_trips_total");
        println!(
            "| {:.0} | {consumed:.0} | {:.0} | {:.0} |",
            started.elapsed().as_secs_f64(),
            total(&page, "taxiflow_kafka_consumer_lag_records"),
            total(&page, "taxiflow_kafka_millis_behind_latest")
        );
        if replay_seconds.is_none() {
            if let Some(status) = replay.0.try_wait().unwrap() {
                assert!(status.success(), "replay failed");
                replay_seconds = Some(started.elapsed().as_secs_f64());
                replay.0.stdout.take().unwrap().read_to_string(&mut replay_line).unwrap();
            }
        }
        if consumed as u64 >= trips {
            break started.elapsed().as_secs_f64();
        }
        assert!(started.elapsed() < Duration::from_secs(1800), "the consumer did not catch up");
    };
    // SAFETY: signals our own child.
    unsafe { libc::kill(consumer.0.id() as libc::pid_t, libc::SIGTERM) };
    let _ = consumer.0.wait();
    let replay_seconds = replay_seconds.unwrap_or(consumed_all);
    println!("\n{}", replay_line.trim());
    println!("replay into the broker: {:.0} trips/s ({replay_seconds:.1} s)", trips as f64 / replay_seconds);
    println!("end to end (replay start → every trip consumed): {:.0} trips/s ({consumed_all:.1} s)", trips as f64 / consumed_all);

    // The consumer's own ceiling: a bounded read of the whole topic.
    for w in ["1", "2"] {
        let t = Instant::now();
        let out = Command::new(&taxiflow)
            .args(["run", "-w", w, "--stop-at", "latest", "--group", &format!("bounded-{w}"), "--source", &url, "--sink"])
            .arg(format!("file://{}", dir.path().join(format!("bounded-{w}")).display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let seconds = t.elapsed().as_secs_f64();
        println!("bounded read -w {w}: {:.0} trips/s ({seconds:.2} s wall)", trips as f64 / seconds);
    }
}
