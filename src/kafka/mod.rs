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

    /// A client configuration with the bootstrap brokers set.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        config
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
