//! The dashboard's memory: per job, the last `--dashboard-windows` windows of its outputs as JSON documents, the
//! open items of the message jobs (alerts not revoked, the open work order per device), the newest watermark and the
//! number of dead letters. Fed by the live run's sink ([`super::tee`]) or by a store read back
//! ([`super::stored`]), read by the HTTP server ([`super::server`]).
//!
//! A **window** is keyed by its end, ms since the Unix epoch, read from each document's own time field
//! ([`JobView::window_of`]), so that a window read back from Elasticsearch, Redis or S3 has the same key as the one
//! the run emitted. The message jobs (alerts, dispatch) have no windows of their own: their messages are grouped in
//! 1-minute buckets of event time for the timeline. Documents are upserted by their id (`_id`, else the fields that
//! identify them), so reading a store again or a window re-emitted after a restart replaces instead of adding.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Map, Value};
use taxiflow_dataflows::output::DEAD_LETTER;

/// How the dashboard reads the documents of one job: which outputs it shows, where a document's window end is,
/// and how the open items of a message job are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobView {
    /// The job's name (`taxi`, `pageviews`, `ticker`, `alerts`, `dispatch`).
    pub job: &'static str,
    /// The outputs the views show (others, such as `day_visitors`, are left out; `dead_letter` is counted).
    pub outputs: &'static [&'static str],
    /// The document fields that hold its time, the first present one counts: an integer (ms since the Unix epoch),
    /// an ISO-8601 instant (`…Z`) or a local timestamp (`yyyy-MM-ddTHH:mm:ss[.SSS]` or with a space, read as UTC).
    pub time_fields: &'static [&'static str],
    /// Messages grouped in buckets of this many ms (the bucket's end is the window key); `None`: the time is the
    /// window end itself.
    pub bucket_ms: Option<i64>,
    /// The open items of a message job.
    pub open: Option<OpenItems>,
}

/// How a message job's open items are kept ([`JobView::open`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenItems {
    /// Alerts not revoked (alerts docs §4): an `alert` opens its `alert_id`, a `revoke` closes it.
    Alerts,
    /// The open work order per device (dispatch docs §3): a `dispatch` sets the device's order, a `close` of that
    /// order's `alert_id` removes it.
    WorkOrders,
}

/// The views, one per job (the dashboard's knowledge of each job's documents: docs/jobs/*.md, "Outputs").
pub const VIEWS: &[JobView] = &[
    JobView { job: "taxi", outputs: &["pickup_count", "trip_duration"], time_fields: &["timestamp"], bucket_ms: None, open: None },
    JobView { job: "pageviews", outputs: &["total", "by_path", "by_country", "today"], time_fields: &["window_end_ms"], bucket_ms: None, open: None },
    JobView { job: "ticker", outputs: &["ticker_averages"], time_fields: &["event_time"], bucket_ms: None, open: None },
    JobView { job: "alerts", outputs: &["alerts"], time_fields: &["alert_time", "revoke_time"], bucket_ms: Some(60_000), open: Some(OpenItems::Alerts) },
    JobView { job: "dispatch", outputs: &["dispatch"], time_fields: &["dispatch_time", "close_time"], bucket_ms: Some(60_000), open: Some(OpenItems::WorkOrders) },
];

/// The view of job `name`.
pub fn view(name: &str) -> Option<&'static JobView> {
    VIEWS.iter().find(|v| v.job == name)
}

/// The view whose outputs include `output` (how a store read back tells which job wrote it).
pub fn view_of_output(output: &str) -> Option<&'static JobView> {
    VIEWS.iter().find(|v| v.outputs.contains(&output))
}

/// The fields that identify a document of a window when it has no `_id` (documents read back from Redis or part
/// files, messages): its key fields and, for messages, the kind and time (one alert may be dispatched and closed
/// several times, at different times).
const KEY_FIELDS: &[&str] = &["type", "alert_id", "alert_time", "revoke_time", "dispatch_time", "close_time", "location", "airport_code", "path", "country", "day", "ticker"];

/// A time field's value as ms since the Unix epoch: an integer, an ISO-8601 instant, or a local timestamp read as
/// UTC (Flink's `TIMESTAMP(3)` as the ticker job writes it, with `T` or a space).
pub fn parse_time(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => {
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                return Some(t.timestamp_millis());
            }
            let s = s.replace(' ', "T");
            ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S"]
                .iter()
                .find_map(|f| chrono::NaiveDateTime::parse_from_str(&s, f).ok())
                .map(|t| t.and_utc().timestamp_millis())
        }
        _ => None,
    }
}

impl JobView {
    /// The window key of `doc`: its time (see [`Self::time_fields`]), or the end of its bucket; `None` when it has
    /// no readable time (a watermark record, a foreign document).
    pub fn window_of(&self, doc: &Value) -> Option<i64> {
        let t = self.time_fields.iter().find_map(|f| doc.get(*f).and_then(parse_time))?;
        Some(match self.bucket_ms {
            Some(b) => t.div_euclid(b) * b + b,
            None => t,
        })
    }
}

/// The identity of `doc` within its window and output: `_id`, else its key fields.
fn doc_key(doc: &Value) -> String {
    if let Some(id) = doc.get("_id").and_then(Value::as_str) {
        return id.to_string();
    }
    let mut key = String::new();
    for f in KEY_FIELDS {
        if let Some(v) = doc.get(*f) {
            key.push_str(f);
            key.push('=');
            key.push_str(&v.to_string());
            key.push('\u{1f}');
        }
    }
    key
}

/// One window: its documents per output (by identity, in the order they arrived) and when it last changed.
#[derive(Debug, Default)]
struct WindowData {
    /// Wall-clock time of its last change, ms since the Unix epoch (the push delay is measured from it).
    emitted_ms: i64,
    outputs: BTreeMap<String, Vec<Value>>,
    index: BTreeMap<(String, String), usize>,
}

impl WindowData {
    fn upsert(&mut self, output: &str, doc: Value) -> bool {
        let key = (output.to_string(), doc_key(&doc));
        let docs = self.outputs.entry(output.to_string()).or_default();
        match self.index.get(&key) {
            Some(&i) if docs[i] == doc => false,
            Some(&i) => {
                docs[i] = doc;
                true
            }
            None => {
                self.index.insert(key, docs.len());
                docs.push(doc);
                true
            }
        }
    }

    fn to_json(&self, job: &str, end: i64, outputs: Option<&BTreeSet<String>>) -> Value {
        let chosen: Map<String, Value> = self
            .outputs
            .iter()
            .filter(|(name, _)| outputs.is_none_or(|o| o.contains(*name)))
            .map(|(name, docs)| (name.clone(), Value::Array(docs.clone())))
            .collect();
        json!({"job": job, "end": end, "emitted_ms": self.emitted_ms, "outputs": chosen})
    }
}

/// What the dashboard holds of one job.
#[derive(Debug)]
pub struct JobBoard {
    view: &'static JobView,
    keep: usize,
    windows: BTreeMap<i64, WindowData>,
    open: BTreeMap<String, Value>,
    watermark: Option<i64>,
    dead_letters: u64,
    changed: BTreeSet<i64>,
}

impl JobBoard {
    fn new(view: &'static JobView, keep: usize) -> JobBoard {
        JobBoard { view, keep: keep.max(1), windows: BTreeMap::new(), open: BTreeMap::new(), watermark: None, dead_letters: 0, changed: BTreeSet::new() }
    }

    /// Takes one document of `output` (a job output's document, a message, a watermark record or a dead letter),
    /// received at wall-clock time `now_ms`. Documents of outputs the view does not show, and documents older than
    /// every window kept once `keep` windows are held, are left out.
    pub fn ingest(&mut self, output: &str, doc: Value, now_ms: i64) {
        if output == DEAD_LETTER {
            self.dead_letters += 1;
            return;
        }
        if doc.get("type").and_then(Value::as_str) == Some("watermark") {
            if let Some(w) = doc.get("watermark").and_then(parse_time) {
                self.watermark = self.watermark.max(Some(w));
            }
            return;
        }
        if !self.view.outputs.contains(&output) {
            return;
        }
        let Some(end) = self.view.window_of(&doc) else { return };
        if self.windows.len() >= self.keep && self.windows.first_key_value().is_some_and(|(first, _)| end < *first) {
            return;
        }
        if let Some(open) = self.view.open {
            self.track_open(open, &doc);
        }
        let window = self.windows.entry(end).or_default();
        if window.upsert(output, doc) {
            window.emitted_ms = now_ms;
            self.changed.insert(end);
        }
        while self.windows.len() > self.keep {
            if let Some((old, _)) = self.windows.pop_first() {
                self.changed.remove(&old);
            }
        }
    }

    fn track_open(&mut self, open: OpenItems, doc: &Value) {
        let kind = doc.get("type").and_then(Value::as_str).unwrap_or("");
        let alert_id = doc.get("alert_id").and_then(Value::as_str).unwrap_or("").to_string();
        match (open, kind) {
            (OpenItems::Alerts, "alert") => {
                self.open.insert(alert_id, doc.clone());
            }
            (OpenItems::Alerts, "revoke") => {
                self.open.remove(&alert_id);
            }
            (OpenItems::WorkOrders, "dispatch") => {
                let device = doc.get("device").map(Value::to_string).unwrap_or_default();
                self.open.insert(device, doc.clone());
            }
            (OpenItems::WorkOrders, "close") => {
                let device = doc.get("device").map(Value::to_string).unwrap_or_default();
                if self.open.get(&device).and_then(|o| o.get("alert_id")).and_then(Value::as_str) == Some(alert_id.as_str()) {
                    self.open.remove(&device);
                }
            }
            _ => {}
        }
    }

    /// The ends of the windows changed since the last call.
    pub fn take_changed(&mut self) -> Vec<i64> {
        std::mem::take(&mut self.changed).into_iter().collect()
    }

    /// `/api/jobs` entry: `{"job", "windows", "latest", "watermark", "dead_letters"}`.
    pub fn summary(&self) -> Value {
        json!({
            "job": self.view.job,
            "windows": self.windows.len(),
            "latest": self.windows.last_key_value().map(|(end, _)| *end),
            "watermark": self.watermark,
            "dead_letters": self.dead_letters,
        })
    }

    /// `/api/{job}/windows`: every window kept, ascending, with its rows per output.
    pub fn windows(&self) -> Value {
        let windows: Vec<Value> = self
            .windows
            .iter()
            .map(|(end, w)| {
                let rows: Map<String, Value> = w.outputs.iter().map(|(name, docs)| (name.clone(), json!(docs.len()))).collect();
                json!({"end": end, "emitted_ms": w.emitted_ms, "rows": rows})
            })
            .collect();
        json!({"job": self.view.job, "windows": windows})
    }

    /// `/api/{job}/window/{end}`: the window's documents per output, `None` when no window ends at `end`.
    pub fn window(&self, end: i64) -> Option<Value> {
        self.windows.get(&end).map(|w| w.to_json(self.view.job, end, None))
    }

    /// `/api/{job}/series`: every window kept with the documents of `outputs` (all when `None`).
    pub fn series(&self, outputs: Option<&BTreeSet<String>>) -> Value {
        let windows: Vec<Value> = self.windows.iter().map(|(end, w)| w.to_json(self.view.job, *end, outputs)).collect();
        json!({"job": self.view.job, "windows": windows})
    }

    /// `/api/{job}/open`: the open items (empty for jobs without them), ordered by device.
    pub fn open(&self) -> Value {
        let mut open: Vec<&Value> = self.open.values().collect();
        open.sort_by_key(|d| (d.get("device").and_then(Value::as_i64).unwrap_or(i64::MAX), d.get("alert_id").and_then(Value::as_str).unwrap_or("").to_string()));
        json!({"job": self.view.job, "open": open})
    }
}

/// A change of the board, sent to the page's event streams: the window of `job` ending at `end` is new or changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The job.
    pub job: &'static str,
    /// The window's end, ms since the Unix epoch.
    pub end: i64,
}

/// The dashboard's shared memory (cheap to clone): the boards of its jobs and the channel of their changes.
#[derive(Clone)]
pub struct Board {
    jobs: Arc<Mutex<BTreeMap<&'static str, JobBoard>>>,
    changes: tokio::sync::broadcast::Sender<Change>,
    keep: usize,
}

impl Board {
    /// An empty board keeping the last `keep` windows of each job (`--dashboard-windows`).
    pub fn new(keep: usize) -> Board {
        let (changes, _) = tokio::sync::broadcast::channel(4096);
        Board { jobs: Arc::new(Mutex::new(BTreeMap::new())), changes, keep }
    }

    /// Adds job `view` (an empty board) if it is not there yet.
    pub fn add_job(&self, view: &'static JobView) {
        self.lock().entry(view.job).or_insert_with(|| JobBoard::new(view, self.keep));
    }

    /// The boards, locked (a poisoned lock is taken over: a board stays readable after a panicking writer).
    pub fn lock(&self) -> MutexGuard<'_, BTreeMap<&'static str, JobBoard>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes documents `(output, doc)` of job `view` at once and announces the windows they changed.
    pub fn ingest(&self, view: &'static JobView, docs: impl IntoIterator<Item = (String, Value)>) {
        let now = crate::runtime::clock::now_ms() as i64;
        let changed = {
            let mut jobs = self.lock();
            let board = jobs.entry(view.job).or_insert_with(|| JobBoard::new(view, self.keep));
            for (output, doc) in docs {
                board.ingest(&output, doc, now);
            }
            board.take_changed()
        };
        for end in changed {
            // No receiver (no page open) is not an error.
            let _ = self.changes.send(Change { job: view.job, end });
        }
    }

    /// A receiver of the changes from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_of_every_kind_read_as_ms() {
        assert_eq!(parse_time(&json!(1357002000000_i64)), Some(1357002000000));
        assert_eq!(parse_time(&json!("2026-03-02T08:00:31.000Z")), Some(1772438431000));
        assert_eq!(parse_time(&json!("2026-12-01T08:01:00")), Some(1796112060000));
        assert_eq!(parse_time(&json!("2026-12-01 08:01:01.5")), Some(1796112061500));
        assert_eq!(parse_time(&json!("yesterday")), None);
    }

    #[test]
    fn documents_are_upserted_trimmed_and_announced() {
        let taxi = view("taxi").unwrap();
        let mut board = JobBoard::new(taxi, 2);
        let doc = |cell: &str, n: i64, end: i64| json!({"_id": format!("pickup_count-{cell}-{end}"), "location": cell, "pickup_count": n, "timestamp": end});
        board.ingest("pickup_count", doc("dr5ru", 1, 3_600_000), 1);
        board.ingest("pickup_count", doc("dr5ru", 2, 3_600_000), 2);
        board.ingest("pickup_count", doc("dr5rv", 1, 7_200_000), 3);
        assert_eq!(board.take_changed(), vec![3_600_000, 7_200_000]);
        assert_eq!(board.window(3_600_000).unwrap()["outputs"]["pickup_count"], json!([doc("dr5ru", 2, 3_600_000)]));
        board.ingest("pickup_count", doc("dr5rw", 1, 10_800_000), 4);
        assert!(board.window(3_600_000).is_none(), "the oldest window is dropped beyond keep");
        board.ingest("pickup_count", doc("dr5rw", 5, 1_000), 5);
        assert!(board.window(1_000).is_none(), "a window older than all kept is left out");
        board.ingest("dead_letter", json!({"reason": "x"}), 6);
        assert_eq!(board.summary()["dead_letters"], json!(1));
        assert_eq!(board.summary()["latest"], json!(10_800_000));
    }

    #[test]
    fn work_orders_open_and_close_per_device() {
        let dispatch = view("dispatch").unwrap();
        let mut board = JobBoard::new(dispatch, 48);
        let msg = |kind: &str, id: &str, device: i64, t: &str| {
            let time = if kind == "dispatch" { "dispatch_time" } else { "close_time" };
            json!({"type": kind, "alert_id": id, "device": device, time: t})
        };
        board.ingest("dispatch", msg("dispatch", "a", 1, "2026-03-02T08:00:40.000Z"), 1);
        board.ingest("dispatch", msg("dispatch", "b", 2, "2026-03-02T08:00:41.000Z"), 1);
        board.ingest("dispatch", msg("close", "a", 1, "2026-03-02T08:01:00.000Z"), 1);
        board.ingest("dispatch", msg("close", "x", 2, "2026-03-02T08:01:00.000Z"), 1);
        board.ingest("dispatch", json!({"type": "watermark", "watermark": "2026-03-02T08:01:00.000Z"}), 1);
        let open = board.open();
        assert_eq!(open["open"].as_array().unwrap().len(), 1);
        assert_eq!(open["open"][0]["alert_id"], "b");
        // Buckets of one minute: 08:00:40 and 08:00:41 end at 08:01, the closes at 08:01:00 end at 08:02.
        assert_eq!(board.windows()["windows"].as_array().unwrap().len(), 2);
        assert_eq!(board.summary()["watermark"], json!(1772438460000_i64));
    }
}
