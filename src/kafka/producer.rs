//! The replay producer for Kafka: trip events keyed by a hash of their payload, watermark records to every
//! partition, and delivery reports that drive the oldest-in-flight watermark (spec §2).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use super::KafkaTopic;

/// Delivery opaque of watermark records (trip records carry their event time).
const WATERMARK_OPAQUE: usize = usize::MAX;

/// What the delivery reports have told so far.
#[derive(Debug, Default)]
pub struct Deliveries {
    /// Event time (ms since the Unix epoch) → number of trip events sent but not yet acknowledged.
    in_flight: BTreeMap<u64, u32>,
    /// Largest event time sent.
    max_sent: Option<u64>,
    /// Trip events acknowledged by the broker.
    pub acknowledged: u64,
    /// Events (trips or watermarks) whose delivery finally failed.
    pub failed: u64,
    /// The first delivery error.
    pub first_error: Option<String>,
}

impl Deliveries {
    /// The oldest-in-flight watermark (spec §2): the largest W such that every trip with event time ≤ W that was
    /// sent has been acknowledged: one ms before the oldest unacknowledged trip, or the largest event time sent
    /// when none is in flight. `None` before the first trip.
    pub fn watermark(&self) -> Option<u64> {
        match self.in_flight.keys().next() {
            Some(&oldest) => oldest.checked_sub(1),
            None => self.max_sent,
        }
    }

    fn sent(&mut self, event_time: u64) {
        *self.in_flight.entry(event_time).or_default() += 1;
        self.max_sent = Some(self.max_sent.map_or(event_time, |m| m.max(event_time)));
    }

    fn settled(&mut self, event_time: u64) {
        if let Some(n) = self.in_flight.get_mut(&event_time) {
            *n -= 1;
            if *n == 0 {
                self.in_flight.remove(&event_time);
            }
        }
    }
}

/// rdkafka context that records delivery reports into [`Deliveries`].
pub struct DeliveryContext {
    deliveries: Arc<Mutex<Deliveries>>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        let mut d = self.deliveries.lock().expect("delivery state");
        match result {
            Ok(_) => {
                if opaque != WATERMARK_OPAQUE {
                    d.acknowledged += 1;
                    d.settled(opaque as u64);
                }
            }
            Err((e, message)) => {
                // librdkafka already retried within delivery.timeout.ms: this is final.
                d.failed += 1;
                d.first_error.get_or_insert_with(|| format!("{e} (partition {})", message.partition()));
                tracing::error!(error = %e, "delivery failed");
                // A failed trip stays in flight forever, so the watermark never passes it.
            }
        }
    }
}

/// A producer of replay events to one topic.
pub struct ReplayProducer {
    producer: BaseProducer<DeliveryContext>,
    topic: KafkaTopic,
    deliveries: Arc<Mutex<Deliveries>>,
    partitions: i32,
}

impl ReplayProducer {
    /// Connects to the brokers of `topic` and reads the topic's partition count.
    ///
    /// # Errors
    /// `--to`: the brokers cannot be reached within `timeout` or the topic does not exist.
    pub fn connect(topic: &KafkaTopic, timeout: Duration) -> anyhow::Result<ReplayProducer> {
        let deliveries = Arc::new(Mutex::new(Deliveries::default()));
        let producer: BaseProducer<DeliveryContext> = topic
            .client_config()
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("delivery.timeout.ms", "120000")
            .create_with_context(DeliveryContext { deliveries: deliveries.clone() })
            .with_context(|| format!("--to kafka://{}/{}: cannot create a producer", topic.brokers, topic.topic))?;
        let mut p = ReplayProducer { producer, topic: topic.clone(), deliveries, partitions: 0 };
        p.refresh_partitions(timeout)?;
        Ok(p)
    }

    /// Re-reads the number of partitions of the topic (partitions added while replaying get watermarks too).
    ///
    /// # Errors
    /// The metadata cannot be read or the topic is unknown.
    pub fn refresh_partitions(&mut self, timeout: Duration) -> anyhow::Result<i32> {
        let url = format!("kafka://{}/{}", self.topic.brokers, self.topic.topic);
        let metadata = self
            .producer
            .client()
            .fetch_metadata(Some(&self.topic.topic), timeout)
            .with_context(|| format!("--to {url}: brokers unreachable"))?;
        let Some(t) = metadata.topics().iter().find(|t| t.name() == self.topic.topic) else {
            bail!("--to {url}: topic not in the metadata");
        };
        if let Some(e) = t.error() {
            bail!("--to {url}: {:?}", RDKafkaErrorCode::from(e));
        }
        if t.partitions().is_empty() {
            bail!("--to {url}: unknown topic (no partitions)");
        }
        self.partitions = t.partitions().len() as i32;
        Ok(self.partitions)
    }

    /// Number of partitions of the topic, as last read.
    pub fn partitions(&self) -> i32 {
        self.partitions
    }

    /// Sends one trip event with event time `event_time`, keyed by a hash of the payload (spec §2, refarch and
    /// replay 0.1). Waits while librdkafka's queue is full.
    ///
    /// # Errors
    /// A production error other than a full queue.
    pub fn send_trip(&self, payload: &str, event_time: u64) -> anyhow::Result<()> {
        let key = format!("{:016x}", taxiflow_dataflows::windowed_aggregate::key_hash(&payload));
        self.deliveries.lock().expect("delivery state").sent(event_time);
        self.send(BaseRecord::with_opaque_to(&self.topic.topic, event_time as usize).payload(payload).key(&key))
    }

    /// Sends a watermark record of value `watermark_ms` to every partition (explicit partition, spec §2).
    ///
    /// # Errors
    /// A production error other than a full queue.
    pub fn send_watermark(&self, watermark_ms: u64) -> anyhow::Result<()> {
        let payload = crate::input::json_lines::watermark_event_json(watermark_ms);
        for partition in 0..self.partitions {
            self.send(BaseRecord::<(), str, usize>::with_opaque_to(&self.topic.topic, WATERMARK_OPAQUE).payload(payload.as_str()).partition(partition))?;
        }
        Ok(())
    }

    fn send<K: rdkafka::message::ToBytes + ?Sized>(&self, mut record: BaseRecord<'_, K, str, usize>) -> anyhow::Result<()> {
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => bail!("--to kafka://{}/{}: {e}", self.topic.brokers, self.topic.topic),
            }
        }
    }

    /// Serves delivery reports for up to `timeout`.
    pub fn poll(&self, timeout: Duration) {
        self.producer.poll(timeout);
    }

    /// The delivery state (acknowledged count, failures, watermark).
    pub fn deliveries(&self) -> std::sync::MutexGuard<'_, Deliveries> {
        self.deliveries.lock().expect("delivery state")
    }

    /// Waits until every event is acknowledged or has finally failed.
    ///
    /// # Errors
    /// Not every event settled within `timeout` (e.g. the brokers stayed unreachable).
    pub fn flush(&self, timeout: Duration) -> anyhow::Result<()> {
        self.producer
            .flush(timeout)
            .with_context(|| format!("--to kafka://{}/{}: events still unacknowledged after {timeout:?}", self.topic.brokers, self.topic.topic))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_in_flight_watermark() {
        let mut d = Deliveries::default();
        assert_eq!(d.watermark(), None);
        d.sent(100);
        d.sent(105);
        d.sent(100);
        assert_eq!(d.watermark(), Some(99));
        d.settled(100);
        assert_eq!(d.watermark(), Some(99), "one trip at 100 is still in flight");
        d.settled(100);
        assert_eq!(d.watermark(), Some(104));
        d.settled(105);
        assert_eq!(d.watermark(), Some(105));
    }
}
