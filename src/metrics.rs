//! Prometheus metrics (`--metrics-addr HOST:PORT`, served at `http://HOST:PORT/metrics` by
//! `metrics-exporter-prometheus`).
//!
//! | metric | kind | labels | meaning |
//! |---|---|---|---|
//! | `taxiflow_records_in_total` | counter | worker | non-empty input lines read |
//! | `taxiflow_trips_total` | counter | worker | trip records parsed |
//! | `taxiflow_late_records_total` | counter | worker | trips behind their partition's watermark |
//! | `taxiflow_malformed_records_total` | counter | worker | records that could not be parsed |
//! | `taxiflow_documents_out_total` | counter | index | documents and dead letters written |
//! | `taxiflow_input_watermark_ms` | gauge | worker | the source's watermark, ms since the Unix epoch |
//! | `taxiflow_output_watermark_ms` | gauge | stream | last event time released to the sink, ms since the Unix epoch |
//! | `taxiflow_es_bulk_requests_total` | counter | outcome (`ok`, `retry`, `refused`, `too_large`) | Elasticsearch bulk requests by answer |
//! | `taxiflow_es_documents_indexed_total` | counter | index | documents the cluster acknowledged |
//! | `taxiflow_es_item_failures_total` | counter | status | bulk items that failed, by HTTP status |
//! | `taxiflow_es_retries_total` | counter | scope (`item`, `request`) | items and whole requests sent again |
//! | `taxiflow_es_bulk_request_seconds` | histogram (summary) | | bulk request latency, seconds |
//! | `taxiflow_es_bulk_in_flight` | gauge | | bulk requests in flight (≤ `--bulk-concurrency`) |
//! | `taxiflow_sink_acknowledged_below_ms` | gauge | | every document released at a dataflow time below this is acknowledged |

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
