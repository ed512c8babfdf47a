//! Kafka (the MSK variant of the reference architecture) with `rdkafka`: addresses, the replay producer and
//! the streaming source.

pub mod producer;
pub mod sink;
pub mod source;

use anyhow::bail;
use rdkafka::ClientConfig;

/// A Kafka topic address, `kafka://BROKER[,BROKER…]/TOPIC`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaTopic {
    /// Comma-separated `host:port` bootstrap brokers.
    pub brokers: String,
    /// Topic name.
    pub topic: String,
}

impl KafkaTopic {
    /// Parses `kafka://BROKER[,BROKER…]/TOPIC`; `flag` names the setting in errors.
    ///
    /// # Errors
    /// Another scheme, no broker, or no topic, naming `flag`.
    pub fn parse(url: &str, flag: &str) -> anyhow::Result<KafkaTopic> {
        let Some(rest) = url.strip_prefix("kafka://") else {
            bail!("{flag} {url:?}: expected kafka://BROKER[,BROKER]/TOPIC");
        };
        let Some((brokers, topic)) = rest.split_once('/') else {
            bail!("{flag} {url:?}: no topic (expected kafka://BROKER[,BROKER]/TOPIC)");
        };
        if brokers.is_empty() || brokers.split(',').any(|b| b.is_empty() || !b.contains(':')) {
            bail!("{flag} {url:?}: brokers must be host:port[,host:port]");
        }
        if topic.is_empty() || topic.contains('/') || !topic.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
            bail!("{flag} {url:?}: invalid topic name {topic:?}");
        }
        Ok(KafkaTopic { brokers: brokers.to_string(), topic: topic.to_string() })
    }

    /// `kafka://BROKERS/TOPIC`.
    pub fn url(&self) -> String {
        format!("kafka://{}/{}", self.brokers, self.topic)
    }

    /// A client configuration with the bootstrap brokers set.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        config
    }
}

/// Creates `topic` with `partitions` partitions (replication 1) through the Admin API, e.g. for tests and
/// benchmarks against a local broker. An existing topic is left as it is.
///
/// # Errors
/// The brokers do not answer within `timeout`, or refuse the creation for another reason than "exists".
pub fn create_topic(topic: &KafkaTopic, partitions: i32, timeout: std::time::Duration) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::types::RDKafkaErrorCode;

    let admin: AdminClient<DefaultClientContext> = topic.client_config().create()?;
    let new = [NewTopic::new(&topic.topic, partitions, TopicReplication::Fixed(1))];
    let options = AdminOptions::new().operation_timeout(Some(timeout)).request_timeout(Some(timeout));
    for result in block_on(admin.create_topics(&new, &options))? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("kafka://{}/{name}: cannot create the topic: {code:?}", topic.brokers),
        }
    }
    Ok(())
}

/// Grows `topic` to `total` partitions through the Admin API (partitions can only be added).
///
/// # Errors
/// The brokers do not answer within `timeout` or refuse.
pub fn add_partitions(topic: &KafkaTopic, total: usize, timeout: std::time::Duration) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions};
    use rdkafka::client::DefaultClientContext;

    let admin: AdminClient<DefaultClientContext> = topic.client_config().create()?;
    let options = AdminOptions::new().operation_timeout(Some(timeout)).request_timeout(Some(timeout));
    for result in block_on(admin.create_partitions(&[NewPartitions::new(&topic.topic, total)], &options))? {
        if let Err((name, code)) = result {
            bail!("kafka://{}/{name}: cannot add partitions: {code:?}", topic.brokers);
        }
    }
    Ok(())
}

/// Runs a future to completion on this thread: the Admin API is async, but needs no runtime of its own
/// (librdkafka's threads complete it).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut context) {
            return value;
        }
        std::thread::park_timeout(std::time::Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = KafkaTopic::parse("kafka://127.0.0.1:9092,b:9093/trips", "--to").unwrap();
        assert_eq!((t.brokers.as_str(), t.topic.as_str()), ("127.0.0.1:9092,b:9093", "trips"));
        for bad in ["kinesis://s", "kafka://b:1", "kafka:///t", "kafka://host/t", "kafka://b:1/", "kafka://b:1/a/b", "kafka://b:1/t?x"] {
            let e = KafkaTopic::parse(bad, "--to").unwrap_err().to_string();
            assert!(e.starts_with("--to"), "{bad}: {e}");
        }
    }
}
