//! Kafka (the MSK variant of the reference architectures) with `rdkafka`: addresses, client settings
//! (`--kafka-config`), the replay producer, the source and the sink.

pub mod producer;
pub mod sink;
pub mod source;

use anyhow::{bail, Context as _};
use rdkafka::ClientConfig;

/// Flags of every Kafka client (source, sink, `replay`, `generate`).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct KafkaArgs {
    /// A librdkafka setting for every Kafka client, KEY=VALUE (repeatable, like kcat's -X), e.g. for Amazon MSK
    /// with SCRAM: security.protocol=SASL_SSL, sasl.mechanism=SCRAM-SHA-512, sasl.username=U, sasl.password=P;
    /// or @PATH: KEY=VALUE lines of a file ('#' comments), which keeps secrets out of process listings.
    #[arg(long = "kafka-config", value_name = "KEY=VALUE|@PATH")]
    pub kafka_config: Vec<String>,
}

impl KafkaArgs {
    /// The settings, in order (later ones win), checked by librdkafka.
    ///
    /// # Errors
    /// `--kafka-config`: not KEY=VALUE, an unreadable file, or a setting librdkafka refuses (unknown property,
    /// bad value), with librdkafka's message.
    pub fn settings(&self) -> anyhow::Result<Vec<(String, String)>> {
        let mut settings = Vec::new();
        for arg in &self.kafka_config {
            let lines: Vec<String> = match arg.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("--kafka-config @{path}: cannot read"))?
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(String::from)
                    .collect(),
                None => vec![arg.clone()],
            };
            for line in lines {
                let Some((key, value)) = line.split_once('=') else {
                    bail!("--kafka-config {line:?}: expected KEY=VALUE (a librdkafka setting)");
                };
                settings.push((key.trim().to_string(), value.trim().to_string()));
            }
        }
        // librdkafka validates names and values (and their combination) when a client is created.
        let mut check = ClientConfig::new();
        for (key, value) in &settings {
            check.set(key, value);
        }
        if !settings.is_empty() {
            check.create::<rdkafka::producer::BaseProducer>().map_err(|e| anyhow::anyhow!("--kafka-config: {e}"))?;
        }
        Ok(settings)
    }
}

/// A Kafka topic address, `kafka://BROKER[,BROKER…]/TOPIC`, with the client settings of `--kafka-config`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaTopic {
    /// Comma-separated `host:port` bootstrap brokers.
    pub brokers: String,
    /// Topic name.
    pub topic: String,
    /// librdkafka settings applied to every client of this topic (`--kafka-config`).
    pub config: Vec<(String, String)>,
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
        Ok(KafkaTopic { brokers: brokers.to_string(), topic: topic.to_string(), config: Vec::new() })
    }

    /// `kafka://BROKERS/TOPIC`.
    pub fn url(&self) -> String {
        format!("kafka://{}/{}", self.brokers, self.topic)
    }

    /// The topic with the client settings of `args` (`--kafka-config`).
    ///
    /// # Errors
    /// As [`KafkaArgs::settings`].
    pub fn with_args(mut self, args: &KafkaArgs) -> anyhow::Result<KafkaTopic> {
        self.config = args.settings()?;
        Ok(self)
    }

    /// A client configuration with the bootstrap brokers and the `--kafka-config` settings set.
    pub fn client_config(&self) -> ClientConfig {
        self.client_config_with(&[])
    }

    /// A client configuration: the bootstrap brokers, then the client's `defaults`, then the `--kafka-config`
    /// settings, which override both.
    pub fn client_config_with(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in &self.config {
            config.set(key, value);
        }
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
    fn kafka_config_settings() {
        let args = KafkaArgs { kafka_config: vec!["linger.ms=5".into(), "client.id = taxiflow-test".into()] };
        assert_eq!(args.settings().unwrap(), [("linger.ms".to_string(), "5".to_string()), ("client.id".to_string(), "taxiflow-test".to_string())]);
        let bad = KafkaArgs { kafka_config: vec!["no.such.property=1".into()] };
        let e = bad.settings().unwrap_err().to_string();
        assert!(e.starts_with("--kafka-config") && e.contains("no.such.property"), "{e}");
        // Amazon MSK's SASL/SCRAM over TLS is built in (rdkafka's ssl feature; no GSSAPI needed), and librdkafka
        // checks the combination.
        let msk = |extra: &[&str]| {
            let mut config: Vec<String> = ["security.protocol=SASL_SSL", "sasl.mechanism=SCRAM-SHA-512"].iter().map(|s| s.to_string()).collect();
            config.extend(extra.iter().map(|s| s.to_string()));
            KafkaArgs { kafka_config: config }.settings()
        };
        assert_eq!(msk(&["sasl.username=u", "sasl.password=p"]).unwrap().len(), 4);
        assert!(msk(&[]).unwrap_err().to_string().contains("sasl.username and sasl.password must be set"));
        let bad = KafkaArgs { kafka_config: vec!["linger.ms".into()] };
        assert!(bad.settings().unwrap_err().to_string().contains("KEY=VALUE"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("client.properties");
        std::fs::write(&file, "# MSK\nsasl.username=alice\n\nsasl.password=secret\n").unwrap();
        let args = KafkaArgs { kafka_config: vec![format!("@{}", file.display())] };
        let topic = KafkaTopic::parse("kafka://b:1/t", "--sink").unwrap().with_args(&args).unwrap();
        assert_eq!(topic.config.len(), 2);
        let config = topic.client_config_with(&[("sasl.username", "bob"), ("linger.ms", "20")]);
        assert_eq!((config.get("sasl.username"), config.get("linger.ms"), config.get("bootstrap.servers")), (Some("alice"), Some("20"), Some("b:1")));
    }

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
