//! The Kafka sink (`--sink kafka://BROKER/TOPIC`): every output's rows and dead letters as JSON values with an
//! `_index` field naming the output ([`crate::formats::json::Shape::WITH_INDEX`]), keyed by the row's
//! deterministic id (dead letters by `source@offset`), so a compacted topic keeps one value per document and a
//! rerun overwrites instead of adding. At each checkpoint every message is flushed and acknowledged before the
//! checkpoint is written.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use taxiflow_dataflows::output::{Outputs, Row};

use super::{KafkaArgs, KafkaTopic};
use crate::connectors::{Release, Sink, SinkConnector, SinkContext};
use crate::formats::json::{self, Shape};

/// `--sink kafka://BROKER[,BROKER]/TOPIC`.
#[derive(Clone, Debug)]
pub struct KafkaSinkConnector {
    topic: KafkaTopic,
}

impl KafkaSinkConnector {
    /// The sink of `url` with the `--kafka-config` settings.
    ///
    /// # Errors
    /// A malformed URL or setting, named.
    pub fn from_args(url: &str, kafka: &KafkaArgs) -> anyhow::Result<KafkaSinkConnector> {
        Ok(KafkaSinkConnector { topic: KafkaTopic::parse(url, "--sink")?.with_args(kafka)? })
    }

    /// The sink of `topic`.
    pub fn new(topic: KafkaTopic) -> KafkaSinkConnector {
        KafkaSinkConnector { topic }
    }
}

impl SinkConnector for KafkaSinkConnector {
    fn describe(&self) -> String {
        self.topic.url()
    }

    fn open(&self, ctx: SinkContext<'_>) -> anyhow::Result<Box<dyn Sink>> {
        let sink = KafkaSink::open(&self.topic, Duration::from_secs(30))?;
        Ok(Box::new(KafkaRows { sink, outputs: ctx.outputs.clone(), value: Vec::with_capacity(256) }))
    }
}

/// The open sink: rows encoded as JSON and produced.
struct KafkaRows {
    sink: KafkaSink,
    outputs: Outputs,
    value: Vec<u8>,
}

impl Sink for KafkaRows {
    fn release(&self, _checkpointing: bool) -> Release {
        Release::EventTime
    }

    fn write(&mut self, _time: u64, row: &Row) -> anyhow::Result<()> {
        self.value.clear();
        json::write(self.outputs.schema(row.output), row, Shape::WITH_INDEX, &mut self.value);
        self.sink.send(&row.id, &self.value)
    }

    fn write_watermark(&mut self, _w: u64, row: &Row) -> anyhow::Result<()> {
        self.value.clear();
        json::write(self.outputs.schema(row.output), row, Shape::WITH_INDEX, &mut self.value);
        for partition in 0..self.sink.partitions {
            self.sink.send_to(partition, &self.value)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    fn prepare_commit(&mut self, _epoch: u64) -> anyhow::Result<Vec<u8>> {
        self.sink.finish(Duration::from_secs(60))?;
        Ok(Vec::new())
    }

    fn finish(&mut self, _end_of_input: bool) -> anyhow::Result<Option<Vec<u64>>> {
        self.sink.finish(Duration::from_secs(60))?;
        Ok(None)
    }
}

#[derive(Default)]
struct Failures {
    count: u64,
    first: Option<String>,
}

/// Counts failed deliveries (librdkafka retries within `delivery.timeout.ms` first).
struct DeliveryCounter {
    failures: Arc<Mutex<Failures>>,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
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
    producer: BaseProducer<DeliveryCounter>,
    topic: KafkaTopic,
    failures: Arc<Mutex<Failures>>,
    /// The topic's partition count at the start.
    pub partitions: i32,
}

impl KafkaSink {
    /// Connects and checks that the topic exists.
    ///
    /// # Errors
    /// `--sink`: unreachable brokers or unknown topic.
    pub fn open(topic: &KafkaTopic, timeout: Duration) -> anyhow::Result<KafkaSink> {
        let url = topic.url();
        let failures = Arc::new(Mutex::new(Failures::default()));
        let producer: BaseProducer<DeliveryCounter> = topic
            .client_config_with(&[("enable.idempotence", "true"), ("linger.ms", "20")])
            .create_with_context(DeliveryCounter { failures: failures.clone() })
            .with_context(|| format!("--sink {url}: cannot create a producer"))?;
        let metadata = producer.client().fetch_metadata(Some(&topic.topic), timeout).with_context(|| format!("--sink {url}: brokers unreachable"))?;
        let partitions = match metadata.topics().iter().find(|t| t.name() == topic.topic) {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => t.partitions().len() as i32,
            _ => bail!("--sink {url}: unknown topic"),
        };
        Ok(KafkaSink { producer, topic: topic.clone(), failures, partitions })
    }

    /// Sends one value with `key`, waiting while librdkafka's queue is full.
    ///
    /// # Errors
    /// A production error other than a full queue.
    pub fn send(&self, key: &str, json: &[u8]) -> anyhow::Result<()> {
        self.produce(BaseRecord::to(&self.topic.topic).key(key).payload(json))
    }

    /// Sends one value without a key to `partition` (a watermark record).
    ///
    /// # Errors
    /// As [`Self::send`].
    pub fn send_to(&self, partition: i32, json: &[u8]) -> anyhow::Result<()> {
        self.produce(BaseRecord::<str, [u8]>::to(&self.topic.topic).partition(partition).payload(json))
    }

    fn produce<K: rdkafka::message::ToBytes + ?Sized>(&self, mut record: BaseRecord<'_, K, [u8]>) -> anyhow::Result<()> {
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
