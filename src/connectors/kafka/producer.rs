//! The replay producer for Kafka: trip events keyed by a hash of their payload, watermark records to every
//! partition, and delivery reports that drive the oldest-in-flight watermark (taxi docs §2).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use super::KafkaTopic;

/// What a delivery report refers to: kept with the record so that a rejected record can be sent again.
#[derive(Debug)]
pub struct Pending {
    /// Event time of a trip; `None` for a watermark record.
    event_time: Option<u64>,
    /// The record's key (`None` for a watermark record, which goes to an explicit partition).
    key: Option<String>,
    /// The record's value.
    payload: String,
    /// Explicit partition of a watermark record.
    partition: Option<i32>,
    /// Times this record was sent again.
    resends: u32,
}

/// Errors after which a record is sent again instead of failing the replay:
/// * the idempotent producer's sequence or identity was rejected (a broker that lost its producer state in a
///   restart): the record was not appended;
/// * the record was purged because the producer hit a fatal error (the producer is then replaced): a record
///   that was in flight may already be in the log, so in this case the topic can hold it twice (at least once).
///   Brokers that keep producer state across restarts, as Kafka does, do not lead here.
fn send_again(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::OutOfOrderSequenceNumber
                | RDKafkaErrorCode::UnknownProducerId
                | RDKafkaErrorCode::InvalidProducerEpoch
                | RDKafkaErrorCode::PurgeQueue
                | RDKafkaErrorCode::PurgeInflight
                | RDKafkaErrorCode::Fatal
        )
    )
}

/// How often one record is sent again after a rejection that guarantees it was not appended.
pub const MAX_RESENDS: u32 = 10;

/// What the delivery reports have told so far.
#[derive(Debug, Default)]
pub struct Deliveries {
    /// Event time (ms since the Unix epoch) → number of trip events sent but not yet acknowledged.
    in_flight: BTreeMap<u64, u32>,
    /// Largest event time sent.
    max_sent: Option<u64>,
    /// Trip events handed to the producer (each once, resends not counted).
    pub sent_trips: u64,
    /// Trip events acknowledged by the broker.
    pub acknowledged: u64,
    /// Events (trips or watermarks) whose delivery finally failed.
    pub failed: u64,
    /// The first delivery error.
    pub first_error: Option<String>,
    /// Records rejected without being appended, to be sent again.
    resend: Vec<Pending>,
    /// Records sent again so far.
    pub resent: u64,
}

impl Deliveries {
    /// Checks, after the final flush, that every trip handed to the producer was acknowledged exactly once and
    /// none is still in flight.
    ///
    /// # Errors
    /// The counts disagree: some trips were neither acknowledged nor reported failed.
    pub fn check_complete(&self) -> anyhow::Result<()> {
        let in_flight: u64 = self.in_flight.values().map(|&n| n as u64).sum();
        if self.acknowledged != self.sent_trips || in_flight != 0 {
            bail!(
                "{} trips were sent but only {} acknowledged ({in_flight} without a delivery report)",
                self.sent_trips,
                self.acknowledged
            );
        }
        Ok(())
    }

    /// The oldest-in-flight watermark (taxi docs §2) while trips are still being sent: the largest W such that every
    /// trip with event time ≤ W that was sent has been acknowledged and no trip with event time ≤ W is still to
    /// come from event-time-ordered input: one ms before the oldest unacknowledged trip, or, when none is in
    /// flight, one ms before the largest event time sent (more trips with that same event time may follow).
    /// `None` before the first trip.
    pub fn watermark(&self) -> Option<u64> {
        match self.in_flight.keys().next() {
            Some(&oldest) => oldest.checked_sub(1),
            None => self.max_sent.and_then(|m| m.checked_sub(1)),
        }
    }

    /// The watermark after the last trip: the largest event time sent, once none is in flight (else as
    /// [`Self::watermark`]).
    pub fn final_watermark(&self) -> Option<u64> {
        if self.in_flight.is_empty() {
            self.max_sent
        } else {
            self.watermark()
        }
    }

    /// Accounts a trip handed to the producer.
    pub(crate) fn sent(&mut self, event_time: u64) {
        self.sent_trips += 1;
        *self.in_flight.entry(event_time).or_default() += 1;
        self.max_sent = Some(self.max_sent.map_or(event_time, |m| m.max(event_time)));
    }

    /// Accounts the end of a trip's delivery (acknowledged or failed).
    pub(crate) fn settled(&mut self, event_time: u64) {
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
    type DeliveryOpaque = Box<Pending>;

    fn delivery(&self, result: &DeliveryResult<'_>, pending: Box<Pending>) {
        let mut d = self.deliveries.lock().expect("delivery state");
        match result {
            Ok(_) => {
                if let Some(t) = pending.event_time {
                    d.acknowledged += 1;
                    d.settled(t);
                }
            }
            Err((e, _)) if send_again(e) && pending.resends < MAX_RESENDS => {
                // Send it again; the trip stays in flight meanwhile, so no watermark passes it.
                tracing::warn!(error = %e, "record not delivered; sending it again");
                let mut again = *pending;
                again.resends += 1;
                d.resend.push(again);
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
    /// Producers replaced after a fatal error.
    pub replaced: u32,
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
        let producer = Self::create(topic, &deliveries)?;
        let mut p = ReplayProducer { producer, replaced: 0, topic: topic.clone(), deliveries, partitions: 0 };
        p.refresh_partitions(timeout)?;
        Ok(p)
    }

    fn create(topic: &KafkaTopic, deliveries: &Arc<Mutex<Deliveries>>) -> anyhow::Result<BaseProducer<DeliveryContext>> {
        topic
            .client_config_with(&[("enable.idempotence", "true"), ("linger.ms", "5"), ("delivery.timeout.ms", "120000")])
            .create_with_context(DeliveryContext { deliveries: deliveries.clone() })
            .with_context(|| format!("--to {}: cannot create a producer", topic.url()))
    }

    /// After a fatal producer error (librdkafka purges everything not yet acknowledged, and the delivery reports
    /// put those records on the resend list), replaces the producer with a new one.
    fn replace_if_fatal(&mut self) -> anyhow::Result<()> {
        let Some((code, reason)) = self.producer.client().fatal_error() else { return Ok(()) };
        tracing::error!(?code, %reason, "fatal producer error; replacing the producer and sending unacknowledged records again");
        self.producer.purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
        // Serve every delivery report of the purged records (they go to the resend list) before the old producer
        // is dropped: a report not served is a record silently forgotten.
        let _ = self.producer.flush(Duration::from_secs(10));
        self.producer.poll(Duration::ZERO);
        self.producer = Self::create(&self.topic, &self.deliveries)?;
        self.replaced += 1;
        if self.replaced > MAX_RESENDS {
            bail!("--to {}: the producer failed fatally {} times: {reason}", self.topic.url(), self.replaced);
        }
        Ok(())
    }

    /// Re-reads the number of partitions of the topic (partitions added while replaying get watermarks too).
    ///
    /// # Errors
    /// The metadata cannot be read or the topic is unknown.
    pub fn refresh_partitions(&mut self, timeout: Duration) -> anyhow::Result<i32> {
        let url = self.topic.url();
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

    /// Sends one trip event with event time `event_time`, keyed by a hash of the payload (taxi docs §2, refarch and
    /// replay 0.1). Waits while librdkafka's queue is full.
    ///
    /// # Errors
    /// A production error other than a full queue.
    pub fn send_trip(&mut self, payload: String, event_time: u64) -> anyhow::Result<()> {
        let key = crate::replay::trip_key(&payload);
        self.send_event(payload, key, event_time)
    }

    /// Sends one event with event time `event_time` keyed by `key`. Waits while librdkafka's queue is full.
    ///
    /// # Errors
    /// A production error other than a full queue.
    pub fn send_event(&mut self, payload: String, key: String, event_time: u64) -> anyhow::Result<()> {
        self.deliveries.lock().expect("delivery state").sent(event_time);
        self.send(Pending { event_time: Some(event_time), key: Some(key), payload, partition: None, resends: 0 })
    }

    /// Sends a watermark record of value `watermark_ms` to every partition (explicit partition, taxi docs §2).
    ///
    /// # Errors
    /// A production error other than a full queue.
    pub fn send_watermark(&mut self, watermark_ms: u64) -> anyhow::Result<()> {
        let payload = taxiflow_dataflows::jobs::taxi::formats::json_lines::watermark_event_json(watermark_ms);
        for partition in 0..self.partitions {
            self.send(Pending { event_time: None, key: None, payload: payload.clone(), partition: Some(partition), resends: 0 })?;
        }
        Ok(())
    }

    /// Sends again the records the broker rejected without appending them; returns how many.
    ///
    /// # Errors
    /// A production error other than a full queue.
    pub fn resend_rejected(&mut self) -> anyhow::Result<usize> {
        self.replace_if_fatal()?;
        let again = {
            let mut d = self.deliveries.lock().expect("delivery state");
            d.resent += d.resend.len() as u64;
            std::mem::take(&mut d.resend)
        };
        let n = again.len();
        for pending in again {
            self.send(pending)?;
        }
        Ok(n)
    }

    fn send(&mut self, pending: Pending) -> anyhow::Result<()> {
        // The key and value are copied by librdkafka at send time; the opaque keeps the value for a resend.
        let key = pending.key.clone();
        let payload = pending.payload.clone();
        let partition = pending.partition;
        let mut pending = Box::new(pending);
        loop {
            let mut record = BaseRecord::<str, str, Box<Pending>>::with_opaque_to(&self.topic.topic, pending).payload(payload.as_str());
            if let Some(k) = &key {
                record = record.key(k.as_str());
            }
            if let Some(p) = partition {
                record = record.partition(p);
            }
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    pending = r.delivery_opaque;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::Fatal), r)) => {
                    pending = r.delivery_opaque;
                    self.replace_if_fatal()?;
                }
                Err((e, _)) => bail!("--to {}: {e}", self.topic.url()),
            }
        }
    }

    /// Waits until every event is acknowledged or has finally failed, sending again what the broker rejected
    /// without appending.
    ///
    /// # Errors
    /// Not every event settled within `timeout` (e.g. the brokers stayed unreachable).
    pub fn flush(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let flushed = self.producer.flush(deadline.saturating_duration_since(std::time::Instant::now()));
            if self.resend_rejected()? > 0 {
                continue;
            }
            flushed.with_context(|| format!("--to {}: events still unacknowledged after {timeout:?}", self.topic.url()))?;
            if self.deliveries().resend.is_empty() {
                return Ok(());
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
        assert_eq!(d.watermark(), Some(104), "another trip at 105 may still come");
        assert_eq!(d.final_watermark(), Some(105));
    }

    #[test]
    fn completeness_needs_every_sent_trip_acknowledged() {
        let mut d = Deliveries::default();
        d.sent(100);
        d.sent(101);
        d.acknowledged = 1;
        d.settled(100);
        assert!(d.check_complete().unwrap_err().to_string().contains("2 trips were sent but only 1 acknowledged"));
        d.acknowledged = 2;
        d.settled(101);
        assert!(d.check_complete().is_ok());
    }
}
