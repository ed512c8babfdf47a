//! `--from es+http(s)://HOST[:PORT]`: the result indices the Elasticsearch/OpenSearch sink wrote
//! (`[--index-prefix]<output>` and their date-suffixed ones, `-YYYY.MM[.DD]`), read the way Kibana's
//! visualisations ask: a `terms` aggregation on the output's time field finds the newest `--dashboard-windows`
//! window ends, then one `term` query per window fetches its documents (`_source` with its `_id`). Authentication
//! as the sink's: none, basic, or SigV4 with the AWS credential chain (`--es-auth`, `--region`).

use anyhow::Context;
use reqwest::Method;
use serde_json::{json, Value};

use super::{Docs, Store, StoreArgs};
use crate::connectors::elasticsearch::args::EsArgs;
use crate::connectors::elasticsearch::client::EsClient;
use crate::connectors::elasticsearch::EsOptions;
use crate::dashboard::board::VIEWS;

/// The Elasticsearch store.
pub struct EsStore {
    client: EsClient,
    runtime: tokio::runtime::Runtime,
    prefix: String,
    keep: usize,
    shown: String,
}

/// At most this many documents per window are read (Elasticsearch's default `index.max_result_window`).
const MAX_DOCS: usize = 10_000;

impl EsStore {
    /// Connects to the cluster at `url` and checks that it answers.
    ///
    /// # Errors
    /// `--from`: a malformed URL, inconsistent authentication flags, or a cluster that does not answer.
    pub fn open(url: &str, args: &StoreArgs, keep: usize) -> anyhow::Result<EsStore> {
        let mut options = EsOptions::parse(url).map_err(|e| anyhow::anyhow!("--from: {e:#}"))?;
        let es = EsArgs { es_auth: args.es_auth, es_user: args.es_user.clone(), es_password: args.es_password.clone(), es_service: args.es_service, ..EsArgs::default() };
        es.apply(&mut options, args.aws.region.as_deref())?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the HTTP runtime")?;
        let client = runtime.block_on(EsClient::new(&options))?;
        let version = runtime.block_on(client.version()).map_err(|e| anyhow::anyhow!("--from: {e:#}"))?;
        tracing::info!(cluster = %options.url, %version, "dashboard: reading Elasticsearch");
        Ok(EsStore { client, runtime, prefix: args.index_prefix.clone().unwrap_or_default(), keep, shown: options.url.to_string() })
    }

    async fn search(&self, pattern: &str, body: Value) -> anyhow::Result<Value> {
        let path = format!("{pattern}/_search?ignore_unavailable=true&allow_no_indices=true");
        let answer = self.client.send(Method::POST, &path, Some("application/json"), body.to_string().into_bytes()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        if answer.status.as_u16() == 404 {
            return Ok(json!({}));
        }
        if !answer.status.is_success() {
            anyhow::bail!("POST {path} answered {}: {}", answer.status, answer.text());
        }
        serde_json::from_slice(&answer.body).with_context(|| format!("POST {path}: the answer is not JSON"))
    }

    async fn read_output(&self, output: &str, time_field: &str, docs: &mut Docs) -> anyhow::Result<()> {
        let pattern = format!("{p}{output},{p}{output}-*", p = self.prefix);
        let aggs = json!({"size": 0, "aggs": {"ends": {"terms": {"field": time_field, "size": self.keep, "order": {"_key": "desc"}}}}});
        let answer = self.search(&pattern, aggs).await?;
        let ends: Vec<Value> = answer.pointer("/aggregations/ends/buckets").and_then(Value::as_array).map(|b| b.iter().filter_map(|b| b.get("key").cloned()).collect()).unwrap_or_default();
        for end in ends {
            let query = json!({"size": MAX_DOCS, "query": {"term": {time_field: end}}});
            let answer = self.search(&pattern, query).await?;
            for hit in answer.pointer("/hits/hits").and_then(Value::as_array).into_iter().flatten() {
                let mut doc = hit.get("_source").cloned().unwrap_or(Value::Null);
                if let (Some(map), Some(id)) = (doc.as_object_mut(), hit.get("_id")) {
                    map.insert("_id".into(), id.clone());
                }
                docs.push((output.to_string(), doc));
            }
        }
        Ok(())
    }
}

impl Store for EsStore {
    fn describe(&self) -> String {
        format!("es+{}", self.shown)
    }

    fn read(&mut self) -> anyhow::Result<Docs> {
        let mut docs = Vec::new();
        // The windowed outputs of every job (the message jobs write to Kafka; their timeline is read there).
        for view in VIEWS.iter().filter(|v| v.bucket_ms.is_none()) {
            for output in view.outputs {
                self.runtime.block_on(self.read_output(output, view.time_fields[0], &mut docs)).with_context(|| format!("--from {}: index {}{output}", self.describe(), self.prefix))?;
            }
        }
        Ok(docs)
    }
}
