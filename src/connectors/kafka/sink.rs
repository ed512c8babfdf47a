//! The Kafka sink (`--sink kafka://BROKER/TOPIC`): every output's rows as JSON values (with an `_index` field
//! naming the output when the output has an envelope, [`crate::formats::json::Shape::WITH_INDEX`]), keyed by the
//! row's deterministic id, so a compacted topic keeps one value per document and a rerun overwrites instead of
//! adding. Dead letters go to `--dead-letter-topic` when it is given (Kafka Connect's
//! `errors.deadletterqueue.topic.name`), else to the same topic, keyed by `source@offset`.
//!
//! Delivery:
//! * by default at least once: at each checkpoint every message is flushed and acknowledged before the
//!   checkpoint is written, and a restart may produce the messages after the last checkpoint again (their keys
//!   make them recognisable);
//! * with `--kafka-transactions`, exactly once, as Flink's two-phase-commit `KafkaSink`
//!   (`DeliveryGuarantee.EXACTLY_ONCE`): each checkpoint epoch's messages are produced in one Kafka transaction
//!   (`transactional.id` = `--transactional-id`), which is flushed before the checkpoint is written and committed
//!   after it; a `read_committed` consumer sees each message once. The transaction also commits, for the consumer
//!   group `taxiflow-txn-<transactional id>`, an offset on partition 0 of the topic that is the epoch (with this
//!   run's id as its metadata): the broker's own record of which epoch's output is committed. librdkafka cannot
//!   resume another process's transaction (Flink does so by reflection), so a crash between the checkpoint and
//!   the commit loses that transaction (the restart's `init_transactions` aborts it); the restart then reads that
//!   record ([`SinkConnector::committed_epoch`]) and restores the checkpoint before, whose epoch is committed,
//!   and produces the lost epoch again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context as _};
use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerGroupMetadata};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use taxiflow_dataflows::output::{Outputs, Row};

use super::{KafkaArgs, KafkaTopic};
use crate::connectors::{Release, Sink, SinkConnector, SinkContext};
use crate::formats::json::{self, Shape};

/// Flags of the Kafka sink.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct KafkaSinkArgs {
    /// Dead letters (malformed, late, duplicate records, with the reason and position) go to this topic of the
    /// same cluster, which must exist, instead of the --sink topic (like Kafka Connect's
    /// errors.deadletterqueue.topic.name).
    #[arg(long, value_name = "TOPIC")]
    pub dead_letter_topic: Option<String>,
    /// Exactly once: each checkpoint epoch's messages in one Kafka transaction, committed with the checkpoint
    /// (Flink's KafkaSink with DeliveryGuarantee.EXACTLY_ONCE); needs --checkpoint-dir. Consumers see the
    /// messages once, at the checkpoint, when they read with isolation.level=read_committed (librdkafka's
    /// default).
    #[arg(long)]
    pub kafka_transactions: bool,
    /// The transactional.id of the producer with --kafka-transactions (default taxiflow-TOPIC): a later run with
    /// the same id fences an older one still producing, and aborts its open transaction.
    #[arg(long, value_name = "ID")]
    pub transactional_id: Option<String>,
}

/// `--sink kafka://BROKER[,BROKER]/TOPIC`.
#[derive(Clone, Debug)]
pub struct KafkaSinkConnector {
    topic: KafkaTopic,
    dead_letter_topic: Option<String>,
    /// `--kafka-transactions`: the transactional id.
    transactional_id: Option<String>,
}

impl KafkaSinkConnector {
    /// The sink of `url` with the `--kafka-config` settings and the Kafka sink's flags.
    ///
    /// # Errors
    /// A malformed URL, setting or topic name, named; `--transactional-id` without `--kafka-transactions`.
    pub fn from_args(url: &str, kafka: &KafkaArgs, args: &KafkaSinkArgs) -> anyhow::Result<KafkaSinkConnector> {
        let topic = KafkaTopic::parse(url, "--sink")?.with_args(kafka)?;
        if let Some(name) = &args.dead_letter_topic {
            KafkaTopic::parse(&format!("kafka://{}/{name}", topic.brokers), "--dead-letter-topic")?;
        }
        if args.transactional_id.is_some() && !args.kafka_transactions {
            bail!("--transactional-id is for --kafka-transactions, which is not given");
        }
        let transactional_id = args.kafka_transactions.then(|| args.transactional_id.clone().unwrap_or_else(|| format!("taxiflow-{}", topic.topic)));
        Ok(KafkaSinkConnector { topic, dead_letter_topic: args.dead_letter_topic.clone(), transactional_id })
    }

    /// The at-least-once sink of `topic`, dead letters in the same topic.
    pub fn new(topic: KafkaTopic) -> KafkaSinkConnector {
        KafkaSinkConnector { topic, dead_letter_topic: None, transactional_id: None }
    }

    /// The consumer group whose committed offset records the last committed epoch.
    fn marker_group(id: &str) -> String {
        format!("taxiflow-txn-{id}")
    }
}

/// The metadata of the epoch record of run `run`.
fn marker_metadata(run: &str) -> String {
    format!("taxiflow run={run}")
}

impl SinkConnector for KafkaSinkConnector {
    fn describe(&self) -> String {
        let mut d = self.topic.url();
        if let Some(t) = &self.dead_letter_topic {
            d.push_str(&format!(" (dead letters: {t})"));
        }
        if let Some(id) = &self.transactional_id {
            d.push_str(&format!(" (transactions: {id})"));
        }
        d
    }

    fn open(&self, ctx: SinkContext<'_>) -> anyhow::Result<Box<dyn Sink>> {
        let timeout = Duration::from_secs(30);
        let transactions = match &self.transactional_id {
            None => None,
            Some(_) if !ctx.checkpointing => bail!("--kafka-transactions needs --checkpoint-dir: each transaction is committed with a checkpoint"),
            Some(id) => Some(id.as_str()),
        };
        let (sink, transactions) = match transactions {
            None => (KafkaSink::open(&self.topic, &[], timeout)?, None),
            Some(id) => {
                // A transaction spans a checkpoint interval; the broker aborts one open longer than this.
                let txn_timeout = ctx.checkpoint_interval.unwrap_or_default().saturating_mul(4).max(Duration::from_secs(60)).as_millis().to_string();
                let sink = KafkaSink::open(&self.topic, &[("transactional.id", id), ("transaction.timeout.ms", &txn_timeout)], timeout)?;
                let url = self.topic.url();
                // Fences an older producer with this id and aborts its open transaction.
                sink.producer.init_transactions(timeout).with_context(|| format!("--sink {url}: cannot initialise transactions (transactional.id {id})"))?;
                sink.producer.begin_transaction().with_context(|| format!("--sink {url}: cannot begin a transaction"))?;
                let consumer: BaseConsumer = self.topic.client_config_with(&[("group.id", &Self::marker_group(id))]).create().with_context(|| format!("--sink {url}: cannot create the consumer of the epoch record"))?;
                let group = consumer.group_metadata().with_context(|| format!("--sink {url}: no consumer group metadata"))?;
                // This run's id: kept in every checkpoint, so that a restart tells its own epoch records from an
                // earlier run's (after --checkpoint-reset).
                let run = match ctx.restored {
                    Some(state) if !state.is_empty() => String::from_utf8(state.to_vec()).context("--checkpoint-dir: the Kafka sink's state is not a run id")?,
                    _ => format!("{:016x}", std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), std::time::SystemTime::now())),
                };
                (sink, Some(Transactions { group, run, open: true }))
            }
        };
        let dead_letters = match &self.dead_letter_topic {
            Some(name) => {
                sink.check_topic(name, timeout, "--dead-letter-topic")?;
                Some(name.clone())
            }
            None => None,
        };
        Ok(Box::new(KafkaRows { sink, outputs: ctx.outputs.clone(), value: Vec::with_capacity(256), dead_letters, transactions }))
    }

    fn committed_epoch(&self, restored: &[u8], epoch: u64) -> anyhow::Result<u64> {
        let Some(id) = &self.transactional_id else { return Ok(epoch) };
        let url = self.topic.url();
        let run = std::str::from_utf8(restored).unwrap_or_default();
        // read_committed: the offset fetch waits while a transaction that commits offsets is open (KIP-447).
        let consumer: BaseConsumer = self
            .topic
            .client_config_with(&[("group.id", &Self::marker_group(id)), ("isolation.level", "read_committed")])
            .create()
            .with_context(|| format!("--sink {url}: cannot create the consumer of the epoch record"))?;
        let mut list = TopicPartitionList::new();
        list.add_partition(&self.topic.topic, 0);
        let committed = consumer.committed_offsets(list, Duration::from_secs(30)).with_context(|| format!("--sink {url}: cannot read the committed epoch (group {})", Self::marker_group(id)))?;
        let record = committed.find_partition(&self.topic.topic, 0).and_then(|e| match e.offset() {
            Offset::Offset(n) if n >= 0 => Some((n as u64, e.metadata().to_string())),
            _ => None,
        });
        Ok(match record {
            Some((n, metadata)) if metadata == marker_metadata(run) => n,
            // No transaction of this run committed yet (an epoch record of another run, or none).
            _ => 0,
        })
    }
}

/// The state of `--kafka-transactions`.
struct Transactions {
    /// The consumer group of the epoch record.
    group: ConsumerGroupMetadata,
    /// This run's id (the sink's checkpoint state).
    run: String,
    /// A transaction is open.
    open: bool,
}

/// The open sink: rows encoded as JSON and produced.
struct KafkaRows {
    sink: KafkaSink,
    outputs: Outputs,
    value: Vec<u8>,
    /// `--dead-letter-topic`.
    dead_letters: Option<String>,
    transactions: Option<Transactions>,
}

impl KafkaRows {
    /// Encodes `row` as its message value into `self.value`.
    fn encode(&mut self, row: &Row) {
        self.value.clear();
        json::write(self.outputs.schema(row.output), row, Shape::WITH_INDEX, &mut self.value);
    }
}

impl Sink for KafkaRows {
    fn release(&self, _checkpointing: bool) -> Release {
        // A transaction holds exactly one epoch: rows of a later epoch must not enter it, even when their event
        // time has passed.
        if self.transactions.is_some() {
            Release::Epoch
        } else {
            Release::EventTime
        }
    }

    fn write(&mut self, _time: u64, row: &Row) -> anyhow::Result<()> {
        self.encode(row);
        match &self.dead_letters {
            Some(topic) if row.output == self.outputs.dead_letter() => self.sink.send_to_topic(topic, &row.id, &self.value),
            _ => self.sink.send(&row.id, &self.value),
        }
    }

    fn write_watermark(&mut self, _w: u64, row: &Row) -> anyhow::Result<()> {
        self.encode(row);
        for partition in 0..self.sink.partitions {
            self.sink.send_to(partition, &self.value)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    fn prepare_commit(&mut self, epoch: u64) -> anyhow::Result<Vec<u8>> {
        self.sink.finish(Duration::from_secs(60))?;
        let Some(t) = &self.transactions else { return Ok(Vec::new()) };
        let mut record = TopicPartitionList::new();
        let mut e = record.add_partition(&self.sink.topic.topic, 0);
        e.set_offset(Offset::Offset(epoch as i64))?;
        e.set_metadata(marker_metadata(&t.run));
        let url = self.sink.topic.url();
        self.sink.producer.send_offsets_to_transaction(&record, &t.group, Duration::from_secs(60)).with_context(|| format!("--sink {url}: cannot add the epoch record to transaction {epoch}"))?;
        Ok(t.run.clone().into_bytes())
    }

    fn commit(&mut self, epoch: u64) -> anyhow::Result<()> {
        let Some(t) = &mut self.transactions else { return Ok(()) };
        let url = self.sink.topic.url();
        t.open = false;
        self.sink.producer.commit_transaction(Duration::from_secs(60)).with_context(|| format!("--sink {url}: cannot commit the transaction of epoch {epoch}"))?;
        tracing::debug!(epoch, "kafka transaction committed");
        self.sink.producer.begin_transaction().with_context(|| format!("--sink {url}: cannot begin a transaction"))?;
        t.open = true;
        Ok(())
    }

    fn finish(&mut self, _end_of_input: bool) -> anyhow::Result<Option<Vec<u64>>> {
        self.sink.finish(Duration::from_secs(60))?;
        if let Some(t) = &mut self.transactions {
            // What is still open belongs to no checkpoint (nothing, after the last one): a restart produces it
            // again.
            if t.open {
                t.open = false;
                let url = self.sink.topic.url();
                self.sink.producer.abort_transaction(Duration::from_secs(60)).with_context(|| format!("--sink {url}: cannot abort the open transaction"))?;
            }
        }
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
    /// Connects with librdkafka `settings` added to the defaults (idempotence; linger.ms 5, librdkafka's own default and
    /// Kafka 4.0's, KIP-1030: a message waits at most 5 ms for others to share its request) and checks that the
    /// topic exists.
    ///
    /// # Errors
    /// `--sink`: unreachable brokers or unknown topic.
    pub fn open(topic: &KafkaTopic, settings: &[(&str, &str)], timeout: Duration) -> anyhow::Result<KafkaSink> {
        let url = topic.url();
        let failures = Arc::new(Mutex::new(Failures::default()));
        let mut defaults = vec![("enable.idempotence", "true"), ("linger.ms", "5")];
        defaults.extend_from_slice(settings);
        let producer: BaseProducer<DeliveryCounter> = topic
            .client_config_with(&defaults)
            .create_with_context(DeliveryCounter { failures: failures.clone() })
            .with_context(|| format!("--sink {url}: cannot create a producer"))?;
        let mut sink = KafkaSink { producer, topic: topic.clone(), failures, partitions: 0 };
        sink.partitions = sink.check_topic(&topic.topic, timeout, "--sink")?;
        // The idempotent producer asks for its producer id after each metadata response, or else every 500 ms
        // (librdkafka's PID timer, rdkafka_idempotence.c), from a broker whose connection is up. The first response
        // comes over the bootstrap connection, which librdkafka then closes for the brokers the metadata names: the
        // id, and every message produced until then, waited up to 0.5 s for the timer (a run's first alerts at
        // 50k events/s arrived 0.4 s late). A second request, answered over the named broker's connection, gets
        // the id before the first message.
        sink.check_topic(&topic.topic, timeout, "--sink")?;
        Ok(sink)
    }

    /// The partition count of topic `name` of the same cluster; `flag` names the setting in errors.
    ///
    /// # Errors
    /// `flag`: unreachable brokers or unknown topic.
    pub fn check_topic(&self, name: &str, timeout: Duration, flag: &str) -> anyhow::Result<i32> {
        let url = format!("kafka://{}/{name}", self.topic.brokers);
        let metadata = self.producer.client().fetch_metadata(Some(name), timeout).with_context(|| format!("{flag} {url}: brokers unreachable"))?;
        match metadata.topics().iter().find(|t| t.name() == name) {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(t.partitions().len() as i32),
            _ => bail!("{flag} {url}: unknown topic"),
        }
    }

    /// Sends one value with `key`, waiting while librdkafka's queue is full.
    ///
    /// # Errors
    /// A production error other than a full queue.
    pub fn send(&self, key: &str, json: &[u8]) -> anyhow::Result<()> {
        self.produce(BaseRecord::to(&self.topic.topic).key(key).payload(json))
    }

    /// Sends one value with `key` to topic `name` of the same cluster (dead letters).
    ///
    /// # Errors
    /// As [`Self::send`].
    pub fn send_to_topic(&self, name: &str, key: &str, json: &[u8]) -> anyhow::Result<()> {
        self.produce(BaseRecord::to(name).key(key).payload(json))
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
