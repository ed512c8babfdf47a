//! The Kafka source's Prometheus metrics after a bounded read (own test binary: the recorder is global).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use rdkafka::mocking::MockCluster;
use taxiflow::connectors::kafka::source::KafkaSource;
use taxiflow::dataflows::jobs::taxi::formats::FormatChoice;
use taxiflow::connectors::file::sink::FileSink;
use taxiflow::dataflows::jobs::taxi::{Profile, TaxiJob};
use taxiflow::connectors::kafka::source::{KafkaSourceOptions, StartPosition};
use taxiflow::connectors::kafka::KafkaTopic;
use taxiflow::replay::{replay, ReplayOptions, Speedup};
use taxiflow::runtime::run::{run, RunOptions};

fn scrape(addr: std::net::SocketAddr) -> String {
    for _ in 0..50 {
        if let Ok(mut s) = TcpStream::connect(addr) {
            write!(s, "GET /metrics HTTP/1.0\r\n\r\n").unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).unwrap();
            return text;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("metrics endpoint did not answer");
}

fn value(text: &str, metric: &str, partition: i32) -> Option<f64> {
    let prefix = format!("{metric}{{partition=\"{partition}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).map(|v| v.parse().unwrap())
}

#[test]
fn consumer_lag_gauges_per_partition() {
    let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    taxiflow::runtime::metrics::serve(addr).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("trips.csv");
    let sample = std::fs::read_to_string(common::root().join("data/yellow_tripdata_2015-01-sample.csv")).unwrap();
    std::fs::write(&input, sample).unwrap();
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("trips", 2, 1).unwrap();
    let topic = KafkaTopic { brokers: cluster.bootstrap_servers(), topic: "trips".into(), config: Vec::new() };
    let replayed = replay(&ReplayOptions {
        inputs: vec![input],
        format: FormatChoice::Auto,
        to: taxiflow::replay::Destination::Kafka(topic.clone()),
        speedup: Speedup::Max,
        repeat: 1,
        watermark_interval: Duration::from_secs(1),
        timeout: Duration::from_secs(30),
    })
    .unwrap();
    let report = run(RunOptions {
        source: Box::new(KafkaSource::new(KafkaSourceOptions {
            topic,
            group: "lag-test".into(),
            start: StartPosition::Earliest,
            stop_at_latest: true,
            idle_timeout: None,
            timeout: Duration::from_secs(30),
        })),
        ..RunOptions::new(TaxiJob::for_profile(Profile::Kda), common::file_source(&[], 1, 1), Box::new(FileSink { dir: dir.path().join("out") }), timely::Config::process(2))
    })
    .unwrap();
    assert_eq!(report.totals.unwrap().counts.records, replayed.acknowledged);
    let text = scrape(addr);
    for p in [0, 1] {
        assert_eq!(value(&text, "taxiflow_kafka_consumer_lag_records", p), Some(0.0), "partition {p}: {text:?}");
        assert_eq!(value(&text, "taxiflow_kafka_millis_behind_latest", p), Some(0.0), "partition {p}");
    }
}
