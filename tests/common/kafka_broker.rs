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
