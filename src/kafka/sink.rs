//! The Kafka sink (`--sink kafka://BROKER/TOPIC`): result documents and dead letters as JSON values with an
//! `_index` field, keyed by the document's deterministic `_id` (dead letters by `source@offset`), so a
//! compacted topic keeps one value per document and a rerun overwrites instead of adding.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use super::KafkaTopic;

#[derive(Default)]
struct Failures {
    count: u64,
    first: Option<String>,
}

/// Counts failed deliveries (librdkafka retries within `delivery.timeout.ms` first).
struct SinkContext {
    failures: Arc<Mutex<Failures>>,
}

impl ClientContext for SinkContext {}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            let mut f = self.failures.lock().expect("sink failures");
            f.count += 1;
            f.first.get_or_insert_with(|| e.to_string());
            tracing::error!(error = %e, "kafka sink delivery failed");
        }
    }
}

/// A producer of result documents to one topic.
pub struct KafkaSink {
    producer: BaseProducer<SinkContext>,
    topic: KafkaTopic,
    failures: Arc<Mutex<Failures>>,
}

impl KafkaSink {
    /// Connects and checks that the topic exists.
    ///
    /// # Errors
    /// `--sink`: unreachable brokers or unknown topic.
    pub fn open(topic: &KafkaTopic, timeout: Duration) -> anyhow::Result<KafkaSink> {
        let url = topic.url();
        let failures = Arc::new(Mutex::new(Failures::default()));
        let producer: BaseProducer<SinkContext> = topic
            .client_config()
            .set("enable.idempotence", "true")
            .set("linger.ms", "20")
            .create_with_context(SinkContext { failures: failures.clone() })
            .with_context(|| format!("--sink {url}: cannot create a producer"))?;
        let metadata = producer.client().fetch_metadata(Some(&topic.topic), timeout).with_context(|| format!("--sink {url}: brokers unreachable"))?;
        match metadata.topics().iter().find(|t| t.name() == topic.topic) {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => {}
            _ => bail!("--sink {url}: unknown topic"),
        }
        Ok(KafkaSink { producer, topic: topic.clone(), failures })
    }

    /// Sends one JSON value with `key`, waiting while librdkafka's queue is full.
    ///
    /// # Errors
    /// A production error other than a full queue.
    pub fn send(&self, key: &str, json: &str) -> anyhow::Result<()> {
        let mut record = BaseRecord::to(&self.topic.topic).key(key).payload(json);
        loop {
            match self.producer.send(record) {
                Ok(()) => {
                    self.producer.poll(Duration::ZERO);
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => bail!("--sink {}: {e}", self.topic.url()),
            }
        }
    }

    /// Waits for every document to be acknowledged.
    ///
    /// # Errors
    /// Documents unacknowledged after `timeout`, or deliveries that failed (with the first reason).
    pub fn finish(&self, timeout: Duration) -> anyhow::Result<()> {
        let url = self.topic.url();
        self.producer.flush(timeout).with_context(|| format!("--sink {url}: documents unacknowledged after {timeout:?}"))?;
        let f = self.failures.lock().expect("sink failures");
        if f.count > 0 {
            bail!("--sink {url}: {} documents were not delivered: {}", f.count, f.first.clone().unwrap_or_default());
        }
        Ok(())
    }
}
