//! Index templates and mappings of taxi docs §4, created at start when missing.
//!
//! One composable index template per output (`PUT _index_template/NAME`, Elasticsearch ≥ 7.8 and OpenSearch
//! 1–3; "Create or update index template API"), matching `PREFIXbase` and `PREFIXbase-*` (the date-suffixed
//! indices), without mapping types. On Elasticsearch 7.0–7.7, which has no composable templates, the legacy
//! `PUT _template/NAME` API is used instead. Existing templates are left as they are. Indices without a date
//! suffix are then created (a cluster may forbid automatic index creation), and an existing index whose
//! `location` is not a `geo_point` is refused: the map of the dashboard needs it.

use anyhow::{anyhow, bail, Context as _};
use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};
use taxiflow_dataflows::output::{FieldType, OutputSchema, Outputs};

use super::client::EsClient;
use super::{DateSuffix, EsOptions};

/// The mapping of one field type (see the table of `taxiflow_dataflows::output::FieldType`).
fn field_mapping(ty: FieldType) -> Value {
    match ty {
        FieldType::Keyword => json!({"type": "keyword"}),
        FieldType::Text => json!({"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}),
        FieldType::StoredText => json!({"type": "text", "index": false}),
        FieldType::GeoPoint { raw: false } => json!({"type": "geo_point"}),
        FieldType::GeoPoint { raw: true } => json!({"type": "geo_point", "fields": {"raw": {"type": "keyword"}}}),
        FieldType::Long => json!({"type": "long"}),
        FieldType::Double => json!({"type": "double"}),
        FieldType::EpochMillis | FieldType::Instant | FieldType::LocalTimestamp => json!({"type": "date"}),
    }
}

/// The mappings of one output, from its schema, as the `mappings` object of a template (no mapping type): for
/// the taxi job exactly those of taxi docs §4 (`location` a `geo_point`, with a `raw` keyword sub-field in
/// `trip_duration`; `airport_code` a keyword; `timestamp` a date).
pub fn mappings(schema: &OutputSchema) -> Value {
    let properties: Map<String, Value> = schema.fields.iter().map(|f| (f.name.to_string(), field_mapping(f.ty))).collect();
    json!({ "properties": properties })
}

/// The name of the template of output `base`: `PREFIXtaxiflow-base`.
pub fn template_name(options: &EsOptions, base: &str) -> String {
    format!("{}taxiflow-{base}", options.index_prefix)
}

/// The composable template body of output `schema`.
pub fn composable_template(options: &EsOptions, schema: &OutputSchema) -> Value {
    let name = format!("{}{}", options.index_prefix, schema.name);
    json!({
        "index_patterns": [name.clone(), format!("{name}-*")],
        "priority": 200,
        "template": {"mappings": mappings(schema)},
        "_meta": {"created_by": "taxiflow", "description": schema.description}
    })
}

/// The legacy template body of output `schema` (Elasticsearch 7.0–7.7).
pub fn legacy_template(options: &EsOptions, schema: &OutputSchema) -> Value {
    let name = format!("{}{}", options.index_prefix, schema.name);
    json!({"index_patterns": [name.clone(), format!("{name}-*")], "order": 200, "mappings": mappings(schema)})
}

/// Creates the missing templates and (without date suffix) the missing indices of every output, and checks
/// existing ones.
///
/// # Errors
/// `--sink`: the cluster refuses a template or index, or an existing index maps a geo-point field as something
/// else than `geo_point`.
pub async fn ensure(client: &EsClient, options: &EsOptions, outputs: &Outputs) -> anyhow::Result<()> {
    for schema in &outputs.schemas {
        ensure_template(client, options, schema).await?;
        if options.date_suffix == DateSuffix::None {
            ensure_index(client, &options.index_name(schema.name, None), schema).await?;
        }
    }
    Ok(())
}

async fn call(client: &EsClient, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<super::client::Answer> {
    let bytes = body.map(|b| serde_json::to_vec(b).expect("JSON")).unwrap_or_default();
    let content_type = body.map(|_| "application/json");
    client.send(method.clone(), path, content_type, bytes).await.map_err(|e| anyhow!("--sink {}: {method} {path}: {e}", client.base()))
}

async fn ensure_template(client: &EsClient, options: &EsOptions, schema: &OutputSchema) -> anyhow::Result<()> {
    let name = template_name(options, schema.name);
    let path = format!("_index_template/{name}");
    let head = call(client, Method::HEAD, &path, None).await?;
    match head.status {
        StatusCode::OK => {
            tracing::info!(template = %name, "index template exists, left as it is");
            return Ok(());
        }
        StatusCode::NOT_FOUND => {
            let put = call(client, Method::PUT, &path, Some(&composable_template(options, schema))).await?;
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
    let put = call(client, Method::PUT, &legacy, Some(&legacy_template(options, schema))).await?;
    if !put.status.is_success() {
        bail!("--sink {}: PUT {legacy} answered {}: {}", client.base(), put.status, put.text());
    }
    tracing::info!(template = %name, "legacy index template created");
    Ok(())
}

async fn ensure_index(client: &EsClient, index: &str, schema: &OutputSchema) -> anyhow::Result<()> {
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
    let points: Vec<&str> = schema.fields.iter().filter(|f| matches!(f.ty, FieldType::GeoPoint { .. })).map(|f| f.name).collect();
    if points.is_empty() {
        return Ok(());
    }
    let answer = call(client, Method::GET, &format!("{index}/_mapping"), None).await?;
    if !answer.status.is_success() {
        bail!("--sink {}: GET {index}/_mapping answered {}: {}", client.base(), answer.status, answer.text());
    }
    let mapping: Value = serde_json::from_slice(&answer.body).with_context(|| format!("GET {index}/_mapping is not JSON"))?;
    for field in points {
        let ty = mapping.as_object().and_then(|m| m.values().next()).and_then(|m| m.pointer(&format!("/mappings/properties/{field}/type"))).and_then(Value::as_str);
        if let Some(other) = ty.filter(|t| *t != "geo_point") {
            bail!("--sink: index {index} exists with `{field}` mapped as {other}, not geo_point (the map of the dashboard needs it); delete the index or choose another --index-prefix");
        }
    }
    Ok(())
}
