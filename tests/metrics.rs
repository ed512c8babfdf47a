//! `--metrics-addr`: the Prometheus endpoint serves the run's counters and watermarks. In its own test binary,
//! because the metrics recorder is global to a process.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use taxiflow::connectors::file::sink::FileSink;
use taxiflow::connectors::file::{FileSource, FileSourceArgs};
use taxiflow::dataflows::jobs::taxi::{Profile, TaxiJob};
use taxiflow::runtime::checkpoint::{CheckpointLocation, CheckpointOptions};
use taxiflow::runtime::run::{run, RunOptions};

fn scrape(addr: std::net::SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).expect("metrics endpoint answers");
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"), "{response}");
    response
}

/// Sum of a metric over all its label sets.
fn total(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && (l.as_bytes().get(name.len()) == Some(&b'{') || l.as_bytes().get(name.len()) == Some(&b' ')))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

/// A run of the bundled samples on 2 workers into `out`.
fn options(profile: Profile, out: &std::path::Path, checkpoint: Option<CheckpointOptions>) -> RunOptions<TaxiJob> {
    let source = Box::new(FileSource::new(taxiflow::cli::bundled_samples().unwrap(), &FileSourceArgs::default()));
    let sink = Box::new(FileSink { dir: out.to_path_buf() });
    RunOptions { checkpoint, ..RunOptions::new(TaxiJob::for_profile(profile), source, sink, timely::Config::process(2)) }
}

#[test]
fn prometheus_endpoint_reports_the_run() {
    let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    taxiflow::runtime::metrics::serve(addr).expect("metrics listener starts");
    let out = tempfile::tempdir().unwrap();
    let report = run(options(Profile::Msf, out.path(), None)).unwrap();
    let totals = report.totals.unwrap();
    // The exporter may take a moment to bind after install; retry briefly.
    let mut text = String::new();
    for _ in 0..50 {
        if TcpStream::connect(addr).is_ok() {
            text = scrape(addr);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(total(&text, "taxiflow_records_in_total"), 103_998.0, "{text}");
    assert_eq!(total(&text, "taxiflow_records_total"), 50_448.0);
    assert_eq!(total(&text, "taxiflow_late_records_total"), totals.counts.late as f64);
    assert!(totals.counts.late > 0, "the msf profile makes trips of the unsorted TLC samples late");
    assert_eq!(total(&text, "taxiflow_malformed_records_total"), 0.0);
    assert_eq!(
        total(&text, "taxiflow_documents_out_total"),
        (totals.documents_written() + totals.dead_letters()) as f64
    );
    // Watermarks are epoch milliseconds of the sample (2013–2016), not zero.
    assert!(total(&text, "taxiflow_output_watermark_ms") > 1.3e12);
    assert!(text.contains("taxiflow_input_watermark_ms"));

    // With checkpoints: commits counted, their epoch, size and duration; a second run reports its restore.
    let checkpoints = tempfile::tempdir().unwrap();
    let checkpointed = || {
        let every_5_ms = CheckpointOptions { location: CheckpointLocation::Dir(checkpoints.path().to_path_buf()), interval: std::time::Duration::from_millis(5), reset: false };
        options(Profile::Kda, out.path(), Some(every_5_ms))
    };
    run(checkpointed()).unwrap();
    let text = scrape(addr);
    let commits = total(&text, "taxiflow_checkpoints_total");
    assert!(commits >= 1.0, "{text}");
    assert!(total(&text, "taxiflow_checkpoint_last_epoch") >= 1.0);
    assert!(total(&text, "taxiflow_checkpoint_size_bytes") > 0.0);
    assert!(total(&text, "taxiflow_checkpoint_state_bytes") > 0.0);
    assert_eq!(total(&text, "taxiflow_checkpoint_duration_seconds_count"), commits);
    assert!(!text.contains("taxiflow_checkpoint_restore_seconds"), "nothing was restored yet");
    run(checkpointed()).unwrap();
    let text = scrape(addr);
    assert!(text.contains("taxiflow_checkpoint_restore_seconds"), "{text}");
}
