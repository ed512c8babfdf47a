//! `--from kafka://BROKER[,BROKER]/TOPIC`: every message of every partition of the topic from the beginning, as a
//! `read_committed` consumer sees them (no group, no committed offsets: the dashboard only reads), then the new ones
//! as they come. A message is one of the alert topic's (`alert`, `revoke`, docs/jobs/alerts.md §4) or the dispatch
//! topic's (`dispatch`, `close`, docs/jobs/dispatch.md §3), a watermark record, or a document of another job's
//! output with an `_index` member (the Kafka sink's envelope). `--kafka-config` settings apply (MSK with TLS and
//! SCRAM).

use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use serde_json::Value;

use super::{Docs, Store, StoreArgs};
use crate::connectors::kafka::KafkaTopic;

/// The Kafka store.
pub struct KafkaStore {
    topic: KafkaTopic,
    consumer: BaseConsumer,
    /// The output of the topic's last message of a known kind (a watermark record belongs to it).
    last_output: Option<&'static str>,
}

/// A read returns after this long, so that the board is updated while a busy topic is read.
const READ_FOR: Duration = Duration::from_millis(200);

impl KafkaStore {
    /// Assigns every partition of the topic at its beginning.
    ///
    /// # Errors
    /// `--from`: a malformed URL, a bad `--kafka-config`, or a topic whose metadata cannot be read.
    pub fn open(url: &str, args: &StoreArgs) -> anyhow::Result<KafkaStore> {
        let topic = KafkaTopic::parse(url, "--from")?.with_args(&args.kafka)?;
        let consumer: BaseConsumer = topic
            .client_config_with(&[("group.id", "taxiflow-dashboard"), ("enable.auto.commit", "false"), ("isolation.level", "read_committed")])
            .create()
            .with_context(|| format!("--from {}: cannot create a consumer", topic.url()))?;
        let metadata = consumer.fetch_metadata(Some(&topic.topic), Duration::from_secs(10)).with_context(|| format!("--from {}: no metadata", topic.url()))?;
        let partitions = metadata.topics().first().map_or(0, |t| t.partitions().len());
        if partitions == 0 {
            anyhow::bail!("--from {}: the topic does not exist or has no partitions", topic.url());
        }
        let mut list = rdkafka::TopicPartitionList::new();
        for p in 0..partitions as i32 {
            list.add_partition_offset(&topic.topic, p, rdkafka::Offset::Beginning)?;
        }
        consumer.assign(&list).with_context(|| format!("--from {}: cannot assign the partitions", topic.url()))?;
        Ok(KafkaStore { topic, consumer, last_output: None })
    }

    /// The output of a message: its `_index`, or its kind's.
    fn output_of(&mut self, doc: &Value) -> Option<String> {
        if let Some(index) = doc.get("_index").and_then(Value::as_str) {
            return Some(index.to_string());
        }
        let output = match doc.get("type").and_then(Value::as_str)? {
            "alert" | "revoke" => "alerts",
            "dispatch" | "close" => "dispatch",
            "watermark" => return self.last_output.map(str::to_string),
            _ => return None,
        };
        self.last_output = Some(output);
        Some(output.to_string())
    }
}

impl Store for KafkaStore {
    fn describe(&self) -> String {
        self.topic.url()
    }

    fn read(&mut self) -> anyhow::Result<Docs> {
        let started = Instant::now();
        let mut docs = Vec::new();
        while started.elapsed() < READ_FOR {
            let Some(message) = self.consumer.poll(Duration::from_millis(50)) else { continue };
            let message = message.with_context(|| format!("--from {}", self.topic.url()))?;
            let Some(payload) = message.payload() else { continue };
            match serde_json::from_slice::<Value>(payload) {
                Ok(doc) => {
                    if let Some(output) = self.output_of(&doc) {
                        docs.push((output, doc));
                    }
                }
                Err(e) => tracing::warn!(partition = message.partition(), offset = message.offset(), error = %e, "dashboard: a message is not JSON; left out"),
            }
        }
        Ok(docs)
    }
}
