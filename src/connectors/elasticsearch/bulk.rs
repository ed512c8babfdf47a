//! One `_bulk` request (Elasticsearch "Bulk API"): the NDJSON body of `index` actions with explicit `_id`,
//! the per-item results, and which failures are worth a retry.
//!
//! An `index` action creates or replaces the document with that `_id`, so sending an item twice (a retry after
//! a lost answer, or a replay after a restart) leaves one document.

use serde::Deserialize;

/// One document (or dead letter) to index.
#[derive(Clone, Debug, PartialEq)]
pub struct BulkItem {
    /// Which output it belongs to (index into the run's outputs; the last is the dead-letter output).
    pub output: u16,
    /// Full index name (prefix and date suffix applied).
    pub index: String,
    /// Deterministic document id.
    pub id: String,
    /// The document source: a JSON object without `_id`.
    pub source: String,
    /// Dataflow time the document was released at (ms since the Unix epoch), for the acknowledged position.
    pub time: u64,
    /// Retries so far.
    pub retries: u32,
}

impl BulkItem {
    /// Bytes this item adds to the NDJSON body.
    pub fn body_len(&self) -> usize {
        // {"index":{"_index":"…","_id":"…"}}\n + source + \n, ids and names escaped at most ×6.
        32 + self.index.len() + self.id.len() + self.source.len()
    }
}

/// Appends the action and source lines of `item` to `body`.
pub fn append_item(body: &mut Vec<u8>, item: &BulkItem) {
    body.extend_from_slice(b"{\"index\":{\"_index\":");
    serde_json::to_writer(&mut *body, &item.index).expect("string");
    body.extend_from_slice(b",\"_id\":");
    serde_json::to_writer(&mut *body, &item.id).expect("string");
    body.extend_from_slice(b"}}\n");
    body.extend_from_slice(item.source.as_bytes());
    body.push(b'\n');
}

/// The NDJSON body of `items`.
pub fn body(items: &[BulkItem]) -> Vec<u8> {
    let mut body = Vec::with_capacity(items.iter().map(BulkItem::body_len).sum());
    for item in items {
        append_item(&mut body, item);
    }
    body
}

/// What became of one item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Indexed (status 200 or 201).
    Indexed,
    /// Failed for now (429, 5xx): send again later.
    Retry {
        /// HTTP status of the item.
        status: u16,
        /// Elasticsearch's `type: reason`.
        reason: String,
    },
    /// Refused for good (e.g. 400 `mapper_parsing_exception`): goes to the dead-letter output.
    Rejected {
        /// HTTP status of the item.
        status: u16,
        /// Elasticsearch's `type: reason`.
        reason: String,
    },
}

#[derive(Deserialize)]
struct Response {
    items: Vec<std::collections::HashMap<String, ItemResult>>,
}

#[derive(Deserialize)]
struct ItemResult {
    #[serde(default)]
    _id: Option<String>,
    status: u16,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// Whether an HTTP status (of a whole request or of one item) is worth a retry: 429 Too Many Requests and
/// 5xx (Elasticsearch "Bulk API": "429 … es_rejected_execution_exception" under back-pressure; 502/503/504 from
/// load balancers and during restarts).
pub fn is_transient(status: u16) -> bool {
    status == 429 || status >= 500
}

/// Reads a `_bulk` answer of status 200: one outcome per item, in request order.
///
/// # Errors
/// The body is not a bulk answer, or its items do not match the request (count or ids).
pub fn outcomes(answer: &[u8], items: &[BulkItem]) -> anyhow::Result<Vec<ItemOutcome>> {
    let response: Response = serde_json::from_slice(answer).map_err(|e| anyhow::anyhow!("not a bulk answer: {e}"))?;
    if response.items.len() != items.len() {
        anyhow::bail!("the bulk answer has {} items for {} actions", response.items.len(), items.len());
    }
    let mut out = Vec::with_capacity(items.len());
    for (result, item) in response.items.into_iter().zip(items) {
        let Some((_, r)) = result.into_iter().next() else { anyhow::bail!("an empty item in the bulk answer") };
        if let Some(id) = &r._id {
            if id != &item.id {
                anyhow::bail!("bulk answer out of order: item {id} where {} was sent", item.id);
            }
        }
        out.push(match r.status {
            200 | 201 => ItemOutcome::Indexed,
            status => {
                let reason = r.error.as_ref().map(error_reason).unwrap_or_else(|| format!("status {status}"));
                if is_transient(status) {
                    ItemOutcome::Retry { status, reason }
                } else {
                    ItemOutcome::Rejected { status, reason }
                }
            }
        });
    }
    Ok(out)
}

/// `type: reason` of an Elasticsearch error object, with its first `caused_by`.
pub fn error_reason(error: &serde_json::Value) -> String {
    let text = |e: &serde_json::Value| {
        let kind = e.get("type").and_then(|v| v.as_str()).unwrap_or("error");
        let reason = e.get("reason").and_then(|v| v.as_str()).unwrap_or("");
        format!("{kind}: {reason}")
    };
    match error.get("caused_by") {
        Some(cause) => format!("{} (caused by {})", text(error), text(cause)),
        None if error.is_string() => error.as_str().unwrap_or_default().to_string(),
        None => text(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str) -> BulkItem {
        BulkItem { output: 0, index: "pickup_count".into(), id: id.into(), source: r#"{"pickup_count":1}"#.into(), time: 5, retries: 0 }
    }

    #[test]
    fn ndjson_body() {
        let b = body(&[item("a"), item("b\"c")]);
        assert_eq!(
            String::from_utf8(b).unwrap(),
            "{\"index\":{\"_index\":\"pickup_count\",\"_id\":\"a\"}}\n{\"pickup_count\":1}\n{\"index\":{\"_index\":\"pickup_count\",\"_id\":\"b\\\"c\"}}\n{\"pickup_count\":1}\n"
        );
    }

    #[test]
    fn classifies_items() {
        let answer = br#"{"took":3,"errors":true,"items":[
            {"index":{"_index":"pickup_count","_id":"a","status":201}},
            {"index":{"_index":"pickup_count","_id":"b","status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}},
            {"index":{"_index":"pickup_count","_id":"c","status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse","caused_by":{"type":"illegal_argument_exception","reason":"x"}}}},
            {"index":{"_index":"pickup_count","_id":"d","status":503,"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"}}}]}"#;
        let o = outcomes(answer, &[item("a"), item("b"), item("c"), item("d")]).unwrap();
        assert_eq!(o[0], ItemOutcome::Indexed);
        assert_eq!(o[1], ItemOutcome::Retry { status: 429, reason: "es_rejected_execution_exception: queue full".into() });
        assert_eq!(o[2], ItemOutcome::Rejected { status: 400, reason: "mapper_parsing_exception: failed to parse (caused by illegal_argument_exception: x)".into() });
        assert!(matches!(o[3], ItemOutcome::Retry { status: 503, .. }));
        assert!(outcomes(answer, &[item("a")]).is_err());
        assert!(outcomes(answer, &[item("a"), item("x"), item("c"), item("d")]).is_err());
        assert!(outcomes(b"<html>", &[item("a")]).is_err());
    }
}
