//! The replay producer for Kinesis (`taxiflow replay --to kinesis://STREAM`, taxi docs §2).
//!
//! - Trips are sent in `PutRecords` batches of at most 500 records and 5 MB (the API's limits), keyed by a hash
//!   of the payload (taxi docs §2, refarch); a batch is sent when full, and before every watermark round.
//! - Only the entries that failed (`ProvisionedThroughputExceededException`, `InternalFailure`) are sent again,
//!   after an exponential backoff with jitter (AWS "PutRecords" and "Error retries and exponential backoff");
//!   a whole call that fails (throttling, network) is retried the same way. After [`MAX_ATTEMPTS`] attempts the
//!   replay fails loudly with the service's message.
//! - A watermark round writes one watermark record to every open shard, routed by `ExplicitHashKey` = the
//!   shard's starting hash key, with the oldest-in-flight value (every trip ≤ W acknowledged). The shard list is
//!   refreshed every `shard_refresh` (default 10 s), so a resharding during the replay is followed.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_sdk_kinesis::Client;

use super::{list_shards, KinesisStream, ShardInfo};
use crate::connectors::kafka::producer::Deliveries;

/// Records per `PutRecords` call (API limit).
pub const MAX_BATCH_RECORDS: usize = 500;
/// Bytes per `PutRecords` call, data and partition keys (API limit: 5 MiB).
pub const MAX_BATCH_BYTES: usize = 5 * 1024 * 1024;
/// Attempts of one entry (or call) before the replay fails.
pub const MAX_ATTEMPTS: u32 = 12;

struct Entry {
    data: String,
    partition_key: String,
    explicit_hash_key: Option<String>,
    /// Event time of a trip; `None` for a watermark record.
    event_time: Option<u64>,
}

impl Entry {
    fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

/// The replay producer of one stream.
pub struct KinesisReplay {
    runtime: tokio::runtime::Runtime,
    client: Client,
    stream: KinesisStream,
    batch: Vec<Entry>,
    batch_bytes: usize,
    deliveries: Deliveries,
    open_shards: Vec<ShardInfo>,
    next_refresh: Instant,
    shard_refresh: Duration,
    /// `PutRecords` entries sent again after a failure.
    pub retried: u64,
}

impl KinesisReplay {
    /// Connects and reads the stream's shards.
    ///
    /// # Errors
    /// `--to`: the stream does not exist or the service cannot be reached.
    pub fn connect(stream: &KinesisStream, aws: &crate::aws::AwsArgs, shard_refresh: Duration) -> anyhow::Result<KinesisReplay> {
        let runtime = super::runtime()?;
        let client = runtime.block_on(super::client(aws));
        let shards = runtime.block_on(list_shards(&client, stream)).map_err(|e| anyhow!("--to {e:#}"))?;
        let open_shards: Vec<ShardInfo> = shards.into_iter().filter(|s| !s.closed).collect();
        if open_shards.is_empty() {
            bail!("--to {}: the stream has no open shard", stream.url());
        }
        Ok(KinesisReplay {
            runtime,
            client,
            stream: stream.clone(),
            batch: Vec::new(),
            batch_bytes: 0,
            deliveries: Deliveries::default(),
            open_shards,
            next_refresh: Instant::now() + shard_refresh,
            shard_refresh,
            retried: 0,
        })
    }

    /// Open shards as last listed.
    pub fn shards(&self) -> usize {
        self.open_shards.len()
    }

    /// Queues one trip event with event time `event_time`, keyed by a hash of the payload; sends the batch when
    /// it is full.
    ///
    /// # Errors
    /// A batch could not be delivered (see the module docs).
    pub fn send_trip(&mut self, payload: String, event_time: u64) -> anyhow::Result<()> {
        let partition_key = crate::replay::trip_key(&payload);
        self.send_event(payload, partition_key, event_time)
    }

    /// Queues one event with event time `event_time` and `partition_key`; sends the batch when it is full.
    ///
    /// # Errors
    /// A batch could not be delivered (see the module docs).
    pub fn send_event(&mut self, payload: String, partition_key: String, event_time: u64) -> anyhow::Result<()> {
        self.deliveries.sent(event_time);
        self.push(Entry { data: payload, partition_key, explicit_hash_key: None, event_time: Some(event_time) })
    }

    fn push(&mut self, entry: Entry) -> anyhow::Result<()> {
        if self.batch.len() == MAX_BATCH_RECORDS || self.batch_bytes + entry.size() > MAX_BATCH_BYTES {
            self.send_batch()?;
        }
        self.batch_bytes += entry.size();
        self.batch.push(entry);
        Ok(())
    }

    /// Sends the queued batch until every entry is acknowledged.
    ///
    /// # Errors
    /// Entries still failing after [`MAX_ATTEMPTS`] attempts.
    pub fn send_batch(&mut self) -> anyhow::Result<()> {
        let mut pending = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let mut attempt = 0u32;
        while !pending.is_empty() {
            if attempt > 0 {
                let delay = crate::retry::backoff(attempt - 1, Duration::from_millis(100), Duration::from_secs(5));
                std::thread::sleep(delay);
            }
            attempt += 1;
            let entries: Vec<PutRecordsRequestEntry> = pending
                .iter()
                .map(|e| {
                    PutRecordsRequestEntry::builder()
                        .data(Blob::new(e.data.as_bytes()))
                        .partition_key(&e.partition_key)
                        .set_explicit_hash_key(e.explicit_hash_key.clone())
                        .build()
                        .expect("data and partition key are set")
                })
                .collect();
            let call = self.client.put_records().stream_name(&self.stream.name).set_records(Some(entries)).send();
            let why = match self.runtime.block_on(call) {
                Err(e) => crate::retry::error_chain(&e),
                Ok(output) => {
                    let results = output.records();
                    if results.len() != pending.len() {
                        bail!("--to {}: PutRecords answered {} results for {} records", self.stream.url(), results.len(), pending.len());
                    }
                    let mut failed = Vec::new();
                    let mut first = None;
                    for (entry, result) in pending.drain(..).zip(results) {
                        match result.error_code() {
                            None => {
                                if let Some(t) = entry.event_time {
                                    self.deliveries.acknowledged += 1;
                                    self.deliveries.settled(t);
                                }
                            }
                            Some(code) => {
                                metrics::counter!("taxiflow_kinesis_put_failures_total", "code" => code.to_string()).increment(1);
                                first.get_or_insert_with(|| format!("{code}: {}", result.error_message().unwrap_or_default()));
                                failed.push(entry);
                            }
                        }
                    }
                    if failed.is_empty() {
                        return Ok(());
                    }
                    self.retried += failed.len() as u64;
                    pending = failed;
                    first.unwrap_or_default()
                }
            };
            if attempt >= MAX_ATTEMPTS {
                let trips = pending.iter().filter(|e| e.event_time.is_some()).count() as u64;
                self.deliveries.failed += pending.len() as u64;
                for t in pending.iter().filter_map(|e| e.event_time) {
                    self.deliveries.settled(t);
                }
                bail!("--to {}: {} records ({trips} trips) not accepted after {MAX_ATTEMPTS} attempts: {why}", self.stream.url(), pending.len());
            }
            tracing::warn!(stream = %self.stream.name, records = pending.len(), attempt, error = %why, "PutRecords failed, retrying the failed records");
        }
        Ok(())
    }

    /// Re-reads the shard list when `shard_refresh` has passed (a failure keeps the last list, with a warning).
    fn refresh_shards(&mut self) {
        if Instant::now() < self.next_refresh {
            return;
        }
        self.next_refresh = Instant::now() + self.shard_refresh;
        match self.runtime.block_on(list_shards(&self.client, &self.stream)) {
            Ok(shards) => {
                let open: Vec<ShardInfo> = shards.into_iter().filter(|s| !s.closed).collect();
                if !open.is_empty() {
                    if open.len() != self.open_shards.len() {
                        tracing::info!(stream = %self.stream.name, shards = open.len(), "open shards changed");
                    }
                    self.open_shards = open;
                }
            }
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "shard list not refreshed"),
        }
    }

    /// Sends the queued trips, then the oldest-in-flight watermark to every open shard (`last`: the final
    /// watermark, after every trip). Returns whether a watermark was sent (none before the first trip).
    ///
    /// # Errors
    /// Records could not be delivered.
    pub fn watermark_round(&mut self, last: bool) -> anyhow::Result<bool> {
        self.send_batch()?;
        self.refresh_shards();
        let w = if last { self.deliveries.final_watermark() } else { self.deliveries.watermark() };
        let Some(w) = w else { return Ok(false) };
        let payload = taxiflow_dataflows::jobs::taxi::formats::json_lines::watermark_event_json(w);
        for shard in self.open_shards.clone() {
            self.push(Entry { data: payload.clone(), partition_key: "watermark".into(), explicit_hash_key: Some(shard.starting_hash_key), event_time: None })?;
        }
        self.send_batch()?;
        Ok(true)
    }

    /// The delivery state.
    pub fn deliveries(&self) -> &Deliveries {
        &self.deliveries
    }
}
