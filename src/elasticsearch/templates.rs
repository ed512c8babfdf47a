//! Index templates and mappings of spec §4, created at start when missing.
//!
//! One composable index template per output (`PUT _index_template/NAME`, Elasticsearch ≥ 7.8 and OpenSearch
//! 1–3; "Create or update index template API"), matching `PREFIXbase` and `PREFIXbase-*` (the date-suffixed
//! indices), without mapping types. On Elasticsearch 7.0–7.7, which has no composable templates, the legacy
//! `PUT _template/NAME` API is used instead. Existing templates are left as they are. Indices without a date
//! suffix are then created (a cluster may forbid automatic index creation), and an existing index whose
//! `location` is not a `geo_point` is refused: the map of the dashboard needs it.

use anyhow::{anyhow, bail, Context as _};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use taxiflow_dataflows::documents::{PICKUP_COUNT_INDEX, TRIP_DURATION_INDEX};

use super::client::EsClient;
use super::{DateSuffix, EsOptions};
use crate::sink::DEAD_LETTER_INDEX;

/// The mappings of one output (spec §4), as the `mappings` object of a template (no mapping type).
pub fn mappings(base: &str) -> Value {
    match base {
        PICKUP_COUNT_INDEX => json!({"properties": {
            "location": {"type": "geo_point"},
            "pickup_count": {"type": "long"},
            "timestamp": {"type": "date"}
        }}),
        TRIP_DURATION_INDEX => json!({"properties": {
            "location": {"type": "geo_point", "fields": {"raw": {"type": "keyword"}}},
            "airport_code": {"type": "keyword"},
            "sum_trip_duration": {"type": "long"},
            "avg_trip_duration": {"type": "double"},
            "timestamp": {"type": "date"}
        }}),
        _ => json!({"properties": {
            "reason": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}},
            "source": {"type": "keyword"},
            "line": {"type": "long"},
            "offset": {"type": "long"},
            "record": {"type": "text", "index": false},
            "event_time": {"type": "date"},
            "watermark": {"type": "date"},
            "document_id": {"type": "keyword"}
        }}),
    }
}

/// The three outputs, in creation order.
pub const OUTPUTS: [&str; 3] = [PICKUP_COUNT_INDEX, TRIP_DURATION_INDEX, DEAD_LETTER_INDEX];

/// The name of the template of output `base`: `PREFIXtaxiflow-base`.
pub fn template_name(options: &EsOptions, base: &str) -> String {
    format!("{}taxiflow-{base}", options.index_prefix)
}

/// The composable template body of output `base`.
pub fn composable_template(options: &EsOptions, base: &str) -> Value {
    let name = format!("{}{base}", options.index_prefix);
    json!({
        "index_patterns": [name.clone(), format!("{name}-*")],
        "priority": 200,
        "template": {"mappings": mappings(base)},
        "_meta": {"created_by": "taxiflow", "spec": "shared/spec/reference-job.md §4"}
    })
}

/// The legacy template body of output `base` (Elasticsearch 7.0–7.7).
pub fn legacy_template(options: &EsOptions, base: &str) -> Value {
    let name = format!("{}{base}", options.index_prefix);
    json!({"index_patterns": [name.clone(), format!("{name}-*")], "order": 200, "mappings": mappings(base)})
}

/// Creates the missing templates and (without date suffix) the missing indices, and checks existing ones.
///
/// # Errors
/// `--sink`: the cluster refuses a template or index, or an existing index maps `location` as something else
/// than `geo_point`.
pub async fn ensure(client: &EsClient, options: &EsOptions) -> anyhow::Result<()> {
    for base in OUTPUTS {
        ensure_template(client, options, base).await?;
        if options.date_suffix == DateSuffix::None {
            ensure_index(client, &options.index_name(base, None), base).await?;
        }
    }
    Ok(())
}

async fn call(client: &EsClient, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<super::client::Answer> {
    let bytes = body.map(|b| serde_json::to_vec(b).expect("JSON")).unwrap_or_default();
    let content_type = body.map(|_| "application/json");
    client.send(method.clone(), path, content_type, bytes).await.map_err(|e| anyhow!("--sink {}: {method} {path}: {e}", client.base()))
}

async fn ensure_template(client: &EsClient, options: &EsOptions, base: &str) -> anyhow::Result<()> {
    let name = template_name(options, base);
    let path = format!("_index_template/{name}");
    let head = call(client, Method::HEAD, &path, None).await?;
    match head.status {
        StatusCode::OK => {
            tracing::info!(template = %name, "index template exists, left as it is");
            return Ok(());
        }
        StatusCode::NOT_FOUND => {
            let put = call(client, Method::PUT, &path, Some(&composable_template(options, base))).await?;
            if put.status.is_success() {
                tracing::info!(template = %name, "index template created");
                return Ok(());
            }
            if !matches!(put.status, StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED) || !put.text().contains("index") {
                bail!("--sink {}: PUT {path} answered {}: {}", client.base(), put.status, put.text());
            }
        }
        _ => {}
    }
    // No composable templates (Elasticsearch < 7.8): the legacy API.
    let legacy = format!("_template/{name}");
    if call(client, Method::HEAD, &legacy, None).await?.status == StatusCode::OK {
        tracing::info!(template = %name, "legacy index template exists, left as it is");
        return Ok(());
    }
    let put = call(client, Method::PUT, &legacy, Some(&legacy_template(options, base))).await?;
    if !put.status.is_success() {
        bail!("--sink {}: PUT {legacy} answered {}: {}", client.base(), put.status, put.text());
    }
    tracing::info!(template = %name, "legacy index template created");
    Ok(())
}

async fn ensure_index(client: &EsClient, index: &str, base: &str) -> anyhow::Result<()> {
    let head = call(client, Method::HEAD, index, None).await?;
    if head.status == StatusCode::NOT_FOUND {
        let put = call(client, Method::PUT, index, Some(&json!({}))).await?;
        if put.status.is_success() {
            tracing::info!(%index, "index created");
        } else if !put.text().contains("resource_already_exists_exception") {
            bail!("--sink {}: PUT {index} answered {}: {}", client.base(), put.status, put.text());
        }
    } else if !head.status.is_success() {
        bail!("--sink {}: HEAD {index} answered {}", client.base(), head.status);
    }
    if base == DEAD_LETTER_INDEX {
        return Ok(());
    }
    let answer = call(client, Method::GET, &format!("{index}/_mapping"), None).await?;
    if !answer.status.is_success() {
        bail!("--sink {}: GET {index}/_mapping answered {}: {}", client.base(), answer.status, answer.text());
    }
    let mapping: Value = serde_json::from_slice(&answer.body).with_context(|| format!("GET {index}/_mapping is not JSON"))?;
    let location_type = mapping.as_object().and_then(|m| m.values().next()).and_then(|m| m.pointer("/mappings/properties/location/type")).and_then(Value::as_str);
    match location_type {
        Some("geo_point") | None => Ok(()),
        Some(other) => bail!(
            "--sink: index {index} exists with `location` mapped as {other}, not geo_point (spec §4); delete the index or choose another --index-prefix"
        ),
    }
}
