//! A real OpenSearch-API server process for tests (`scripts/opensearch.sh`, osmem-server from PyPI), killed when
//! dropped, with the few queries the tests make.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

/// The server process.
pub struct OpenSearch {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    http: reqwest::blocking::Client,
}

impl OpenSearch {
    /// Starts `scripts/opensearch.sh` on a free port and waits until it answers.
    pub fn start() -> OpenSearch {
        let port = super::free_port();
        let child = Command::new(super::root().join("scripts/opensearch.sh"))
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("scripts/opensearch.sh starts");
        super::wait_listening(port, "the OpenSearch-API server (pip install osmem-server)");
        OpenSearch { child, url: format!("http://127.0.0.1:{port}"), http: reqwest::blocking::Client::new() }
    }

    /// `--sink` value for this server.
    pub fn sink(&self) -> String {
        format!("es+{}", self.url)
    }

    /// A request; returns status and JSON body (Null when empty).
    pub fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}/{path}", self.url));
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request.send().expect("the server answers");
        let status = response.status().as_u16();
        let text = response.text().unwrap();
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("JSON answer") })
    }

    /// `POST INDEX/_refresh`, then `INDEX/_count`.
    pub fn count(&self, index: &str) -> u64 {
        self.call(reqwest::Method::POST, &format!("{index}/_refresh"), None);
        let (status, body) = self.call(reqwest::Method::GET, &format!("{index}/_count"), None);
        assert_eq!(status, 200, "{index}/_count: {body}");
        body["count"].as_u64().unwrap()
    }

    /// Every document of `index` (a name or pattern) as `_id → _source`, read with the scroll API.
    pub fn documents(&self, index: &str) -> BTreeMap<String, Value> {
        self.call(reqwest::Method::POST, &format!("{index}/_refresh"), None);
        let mut docs = BTreeMap::new();
        let (status, mut page) = self.call(reqwest::Method::POST, &format!("{index}/_search?scroll=1m"), Some(json!({"size": 1000, "sort": ["_doc"]})));
        assert_eq!(status, 200, "{page}");
        loop {
            let hits = page["hits"]["hits"].as_array().unwrap().clone();
            if hits.is_empty() {
                break;
            }
            for hit in hits {
                let id = hit["_id"].as_str().unwrap().to_string();
                assert!(docs.insert(id.clone(), hit["_source"].clone()).is_none(), "document {id} seen twice");
            }
            let scroll_id = page["_scroll_id"].clone();
            let (status, next) = self.call(reqwest::Method::POST, "_search/scroll", Some(json!({"scroll": "1m", "scroll_id": scroll_id})));
            assert_eq!(status, 200, "{next}");
            page = next;
        }
        docs
    }

    /// `POST INDEX/_search` with `size: 0` and `aggs`; returns the `aggregations` object.
    pub fn aggregate(&self, index: &str, aggs: Value) -> Value {
        self.call(reqwest::Method::POST, &format!("{index}/_refresh"), None);
        let (status, body) = self.call(reqwest::Method::POST, &format!("{index}/_search"), Some(json!({"size": 0, "aggs": aggs})));
        assert_eq!(status, 200, "{body}");
        body["aggregations"].clone()
    }
}

impl Drop for OpenSearch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
