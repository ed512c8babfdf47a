//! A real out-of-process Kafka-protocol broker (noida-db) started by `scripts/kafka-broker.sh`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A broker process, stopped when dropped.
pub struct Broker {
    child: Child,
    port: u16,
}

impl Broker {
    pub fn start(port: u16, data: &Path) -> Broker {
        let child = Command::new(super::root().join("scripts/kafka-broker.sh"))
            .arg(port.to_string())
            .arg(data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("scripts/kafka-broker.sh starts");
        super::wait_listening(port, "the broker (pip install noida-db)");
        Broker { child, port }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the broker with SIGTERM (it saves its data and exits), or SIGKILL after 10 s.
    pub fn stop(&mut self) {
        // SAFETY: signals our own child process.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let t = taxiflow::connectors::kafka::KafkaTopic { brokers: brokers.to_string(), topic: topic.to_string(), config: Vec::new() };
    taxiflow::connectors::kafka::create_topic(&t, partitions, Duration::from_secs(10)).expect("topic created");
}

/// The values of every partition of `topic` as a `read_committed` consumer sees them (committed transactions
/// and non-transactional records; no open or aborted transaction), read to the partitions' end offsets.
pub fn read_committed(brokers: &str, topic: &str) -> Vec<String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("read-committed-{}", std::process::id()))
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
    let partitions = metadata.topics()[0].partitions().len() as i32;
    let mut list = rdkafka::TopicPartitionList::new();
    // The last stable offset is at most the high watermark: reading to the high watermark reads everything
    // committed (markers and aborted records move the consumer's position without a message).
    let mut ends = Vec::new();
    for p in 0..partitions {
        list.add_partition_offset(topic, p, rdkafka::Offset::Beginning).unwrap();
        ends.push(consumer.fetch_watermarks(topic, p, Duration::from_secs(10)).unwrap().1);
    }
    consumer.assign(&list).unwrap();
    let mut values = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => values.push(String::from_utf8(m.payload().unwrap_or_default().to_vec()).unwrap()),
            Some(Err(e)) => panic!("{topic}: {e}"),
            None => {
                let position = consumer.position().unwrap();
                let at_end = (0..partitions).all(|p| match position.find_partition(topic, p).map(|e| e.offset()) {
                    Some(rdkafka::Offset::Offset(o)) => o >= ends[p as usize],
                    _ => ends[p as usize] == 0,
                });
                if at_end {
                    return values;
                }
                assert!(Instant::now() < deadline, "{topic}: not read to its end offsets {ends:?} within 60 s (an open transaction?)");
            }
        }
    }
}
