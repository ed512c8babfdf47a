//! Prometheus metrics (`--metrics-addr HOST:PORT`, served at `http://HOST:PORT/metrics` by
//! `metrics-exporter-prometheus`).
//!
//! | metric | kind | labels | meaning |
//! |---|---|---|---|
//! | `taxiflow_records_in_total` | counter | worker | non-empty input lines read |
//! | `taxiflow_records_total` | counter | worker | records decoded (the job's trips, ticks) |
//! | `taxiflow_late_records_total` | counter | worker | records behind their partition's watermark (the job's lateness rule) |
//! | `taxiflow_malformed_records_total` | counter | worker | records that could not be parsed |
//! | `taxiflow_documents_out_total` | counter | index | rows and dead letters written (Elasticsearch: acknowledged), by output |
//! | `taxiflow_part_files_total` | counter | | part files made visible by a part-file sink (S3, partitioned file://) |
//! | `taxiflow_partitions_committed_total` | counter | | `_SUCCESS` markers written |
//! | `taxiflow_input_watermark_ms` | gauge | worker | the source's watermark, ms since the Unix epoch |
//! | `taxiflow_output_watermark_ms` | gauge | | last window end released to the sink, ms since the Unix epoch |
//! | `taxiflow_kafka_consumer_lag_records` | gauge | partition | end offset minus next offset of the Kafka source |
//! | `taxiflow_kafka_millis_behind_latest` | gauge | partition | now minus the broker time of the last record read, while behind |
//! | `taxiflow_kafka_offsets_skipped_total` | counter | partition | offsets without a record for the consumer: transaction markers, aborted records, records deleted by retention |
//! | `taxiflow_lookup_cache_hits_total` | counter | | device settings found in the lookup cache (alerts job) |
//! | `taxiflow_lookup_cache_misses_total` | counter | | device settings read from PostgreSQL |
//! | `taxiflow_lookup_failures_total` | counter | | lookups that failed (retried with backoff) |
//! | `taxiflow_lookup_changes_total` | counter | | changed `device_sla` rows seen by `--sla-cdc` |
//! | `taxiflow_rules_refreshes_total` | counter | | changed rule sets put in force by `--rules-refresh` |
//! | `taxiflow_es_bulk_requests_total` | counter | outcome (`ok`, `retry`, `refused`, `too_large`) | Elasticsearch bulk requests by answer |
//! | `taxiflow_es_documents_indexed_total` | counter | index | documents the cluster acknowledged |
//! | `taxiflow_es_item_failures_total` | counter | status | bulk items that failed, by HTTP status |
//! | `taxiflow_es_retries_total` | counter | scope (`item`, `request`) | items and whole requests sent again |
//! | `taxiflow_es_bulk_request_seconds` | histogram (summary) | | bulk request latency, seconds |
//! | `taxiflow_es_bulk_in_flight` | gauge | | bulk requests in flight (≤ `--bulk-concurrency`) |
//! | `taxiflow_sink_acknowledged_below_ms` | gauge | | every document released at a dataflow time below this is acknowledged |
//! | `taxiflow_kinesis_millis_behind_latest` | gauge | shard | `MillisBehindLatest` of the last `GetRecords` |
//! | `taxiflow_kinesis_iterator_age_ms` | gauge | shard | now minus the arrival time of the last record read (0 when caught up) |
//! | `taxiflow_kinesis_records_total` | counter | shard | Kinesis records read |
//! | `taxiflow_kinesis_throttles_total` | counter | shard | `GetRecords` calls throttled |
//! | `taxiflow_kinesis_put_failures_total` | counter | code | replay `PutRecords` entries that failed (then sent again) |
//! | `taxiflow_checkpoint_duration_seconds` | histogram (summary) | | time to write one checkpoint file, seconds |
//! | `taxiflow_checkpoint_size_bytes` | gauge | | size of the last checkpoint file |
//! | `taxiflow_checkpoint_state_bytes` | gauge | | window state and positions in the last checkpoint, bytes |
//! | `taxiflow_checkpoint_last_epoch` | gauge | | epoch of the last committed (or restored) checkpoint |
//! | `taxiflow_checkpoints_total` | counter | | checkpoints committed |
//! | `taxiflow_checkpoint_restore_seconds` | gauge | | time to find, read and verify the checkpoint restored at start |

use std::net::SocketAddr;

use anyhow::Context;

/// Installs the Prometheus recorder and its HTTP listener on `addr`.
///
/// # Errors
/// `--metrics-addr`: the listener cannot be started (e.g. the address is in use).
pub fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .with_context(|| format!("--metrics-addr {addr}: cannot serve metrics"))?;
    tracing::info!(%addr, "serving Prometheus metrics at /metrics");
    Ok(())
}
