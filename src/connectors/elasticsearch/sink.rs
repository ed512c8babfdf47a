//! The Elasticsearch sink proper: documents handed over by worker 0 are batched into `_bulk` requests and sent
//! by a background thread (a single-threaded tokio runtime).
//!
//! - A request is sent when it holds `--bulk-max-actions` actions or `--bulk-max-bytes` bytes, or
//!   `--bulk-interval` after its first action (a timer, not the next document, sends it).
//! - At most `--bulk-concurrency` requests are in flight, retries included. When all are busy the batcher stops
//!   taking documents, its bounded queue fills, and [`EsSink::write`] blocks worker 0: the dataflow is
//!   back-pressured instead of buffering without bound.
//! - Every item's status is read. Items failing with 429 or 5xx are sent again, alone (only the failed ones),
//!   after an exponential backoff with jitter; a whole request that fails (connection refused or reset,
//!   timeout, 429, 5xx) is retried the same way; a 413 answer splits the request in two. Items refused for good
//!   (e.g. 400 `mapper_parsing_exception`) become dead letters with Elasticsearch's reason, indexed into the
//!   dead-letter index. After `--bulk-max-retries` retries, or when a dead letter itself is refused, or the
//!   whole request is refused (401, 403, other 4xx), the sink fails: the error is kept, the job is stopped
//!   ([`crate::runtime::shutdown::Shutdown::fail`]) and exits non-zero.
//! - A document counts as written only once Elasticsearch acknowledged it (item status 200/201). The sink
//!   keeps, per dataflow time, how many released documents are not yet acknowledged; [`EsSink::position`]
//!   tells the time below which everything released is acknowledged (for checkpoints), and
//!   [`EsSink::flush`] sends everything buffered and waits for the answers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{anyhow, Context as _};
use reqwest::Method;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;

use super::bulk::{self, BulkItem, ItemOutcome};
use super::client::EsClient;
use super::{BulkSettings, EsOptions};
use taxiflow_dataflows::output::Outputs;

use crate::formats::json::{self, Shape};
use crate::runtime::dead_letter::DeadLetter;
use crate::runtime::shutdown::Shutdown;

enum Command {
    Item(BulkItem),
    Flush(oneshot::Sender<()>),
}

/// The acknowledged position: every document released to the sink at a dataflow time (ms since the Unix epoch)
/// below `below` has been acknowledged by the cluster. `None` when nothing was released yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// Exclusive bound on the times of fully acknowledged documents.
    pub below: Option<u64>,
    /// Documents released but not yet acknowledged.
    pub pending: u64,
}

#[derive(Default)]
struct State {
    outstanding: BTreeMap<u64, u64>,
    released_max: Option<u64>,
    /// Documents acknowledged per output.
    acknowledged: Vec<u64>,
    fatal: Option<String>,
}

impl State {
    fn position(&self) -> Position {
        let below = match self.outstanding.first_key_value() {
            Some((t, _)) => Some(*t),
            None => self.released_max.map(|m| m + 1),
        };
        Position { below, pending: self.outstanding.values().sum() }
    }
}

type Shared = Arc<Mutex<State>>;

/// The sink: owned by worker 0 (see [`crate::runtime::sink_operator::SinkWriter`]).
pub struct EsSink {
    options: EsOptions,
    outputs: Outputs,
    tx: Option<mpsc::Sender<Command>>,
    thread: Option<JoinHandle<()>>,
    shared: Shared,
}

impl EsSink {
    /// Connects (checks `GET /` except for OpenSearch Serverless), creates the missing templates and indices, and
    /// starts the sending thread.
    ///
    /// # Errors
    /// `--sink`: the cluster cannot be reached or refuses the credentials or a template; `--es-ca-cert` or
    /// `--es-auth sigv4` problems (see [`EsClient::new`]).
    pub fn open(options: &EsOptions, outputs: &Outputs, shutdown: Shutdown) -> anyhow::Result<EsSink> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the HTTP runtime")?;
        let client = runtime.block_on(async {
            let client = EsClient::new(options).await?;
            if !matches!(options.auth, super::AuthMethod::SigV4 { service: super::SigV4Service::Aoss, .. }) {
                let version = client.version().await?;
                tracing::info!(url = %options.url, %version, "connected to the cluster");
            }
            super::templates::ensure(&client, options, outputs).await?;
            anyhow::Ok(client)
        })?;
        let (tx, rx) = mpsc::channel(options.bulk.max_actions.clamp(1, 100_000));
        let shared: Shared = Arc::default();
        shared.lock().expect("sink state").acknowledged = vec![0; outputs.schemas.len()];
        let batcher = Batcher {
            client,
            settings: options.bulk.clone(),
            dead_letter_index: options.index_name(outputs.schema(outputs.dead_letter()).name, None),
            outputs: outputs.clone(),
            shared: shared.clone(),
            shutdown,
        };
        let thread = std::thread::Builder::new()
            .name("es-sink".into())
            .spawn(move || runtime.block_on(batcher.run(rx)))
            .context("cannot start the sink thread")?;
        Ok(EsSink { options: options.clone(), outputs: outputs.clone(), tx: Some(tx), thread: Some(thread), shared })
    }

    /// Hands one document over: `output`'s document `id` with JSON `source` (no `_id` field), released at
    /// dataflow `time`, whose window starts at `window_start_ms` (for the date suffix). Blocks while the
    /// cluster is behind (back-pressure).
    ///
    /// # Errors
    /// The sink has failed (the first error).
    pub fn write(&mut self, output: u16, time: u64, window_start_ms: Option<i64>, id: &str, source: String) -> anyhow::Result<()> {
        {
            let mut state = self.shared.lock().expect("sink state");
            if let Some(e) = &state.fatal {
                return Err(anyhow!("{e}"));
            }
            *state.outstanding.entry(time).or_default() += 1;
            state.released_max = Some(state.released_max.map_or(time, |m| m.max(time)));
        }
        let dead_letter = output == self.outputs.dead_letter();
        let index = self.options.index_name(self.outputs.schema(output).name, if dead_letter { None } else { window_start_ms });
        let item = BulkItem { output, index, id: id.to_string(), source, time, retries: 0 };
        let tx = self.tx.as_ref().ok_or_else(|| anyhow!("the sink is closed"))?;
        tx.blocking_send(Command::Item(item)).map_err(|_| self.failure().unwrap_or_else(|| anyhow!("the sink thread has stopped")))
    }

    /// Sends everything buffered and waits until every document handed over so far is acknowledged or failed.
    ///
    /// # Errors
    /// The sink has failed.
    pub fn flush(&mut self) -> anyhow::Result<()> {
        if let Some(tx) = &self.tx {
            let (reply, done) = oneshot::channel();
            if tx.blocking_send(Command::Flush(reply)).is_ok() {
                let _ = done.blocking_recv();
            }
        }
        self.failure().map_or(Ok(()), Err)
    }

    /// The acknowledged position (see [`Position`]).
    pub fn position(&self) -> Position {
        self.shared.lock().expect("sink state").position()
    }

    /// The first failure, if any.
    pub fn failure(&self) -> Option<anyhow::Error> {
        self.shared.lock().expect("sink state").fatal.as_ref().map(|e| anyhow!("{e}"))
    }

    /// Flushes, stops the sending thread and returns the acknowledged counts.
    ///
    /// # Errors
    /// The sink failed: some documents were not acknowledged (their number is in the message).
    pub fn finish(&mut self) -> anyhow::Result<Vec<u64>> {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                self.shared.lock().expect("sink state").fatal.get_or_insert_with(|| "the sink thread panicked".into());
            }
        }
        let state = self.shared.lock().expect("sink state");
        if let Some(e) = &state.fatal {
            let pending = state.position().pending;
            return Err(anyhow!("{e} ({pending} documents not acknowledged)"));
        }
        Ok(state.acknowledged.clone())
    }
}

impl Drop for EsSink {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Batcher {
    client: EsClient,
    settings: BulkSettings,
    dead_letter_index: String,
    outputs: Outputs,
    shared: Shared,
    shutdown: Shutdown,
}

impl Batcher {
    async fn run(self, mut rx: mpsc::Receiver<Command>) {
        let this = Arc::new(self);
        let permits = Arc::new(Semaphore::new(this.settings.concurrency.max(1)));
        let mut tasks = JoinSet::new();
        let mut batch: Vec<BulkItem> = Vec::new();
        let mut bytes = 0usize;
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            while let Some(done) = tasks.try_join_next() {
                this.reap(done);
            }
            let command = match deadline {
                Some(at) => tokio::select! {
                    command = rx.recv() => command,
                    _ = tokio::time::sleep_until(at) => {
                        this.dispatch(&permits, &mut tasks, std::mem::take(&mut batch)).await;
                        (bytes, deadline) = (0, None);
                        continue;
                    }
                },
                None => rx.recv().await,
            };
            match command {
                None => break,
                Some(Command::Item(item)) => {
                    bytes += item.body_len();
                    batch.push(item);
                    deadline.get_or_insert_with(|| tokio::time::Instant::now() + this.settings.interval);
                    if batch.len() >= this.settings.max_actions || bytes >= this.settings.max_bytes {
                        this.dispatch(&permits, &mut tasks, std::mem::take(&mut batch)).await;
                        (bytes, deadline) = (0, None);
                    }
                }
                Some(Command::Flush(reply)) => {
                    this.dispatch(&permits, &mut tasks, std::mem::take(&mut batch)).await;
                    (bytes, deadline) = (0, None);
                    while let Some(done) = tasks.join_next().await {
                        this.reap(done);
                    }
                    let _ = reply.send(());
                }
            }
        }
        this.dispatch(&permits, &mut tasks, batch).await;
        while let Some(done) = tasks.join_next().await {
            this.reap(done);
        }
    }

    fn reap(&self, done: Result<(), tokio::task::JoinError>) {
        if let Err(e) = done {
            self.fail(format!("a bulk task failed: {e}"));
        }
    }

    /// Waits for a free slot (this is the back-pressure), then sends `items` in a task holding the slot.
    async fn dispatch(self: &Arc<Self>, permits: &Arc<Semaphore>, tasks: &mut JoinSet<()>, items: Vec<BulkItem>) {
        if items.is_empty() || self.failed() {
            return;
        }
        let permit = permits.clone().acquire_owned().await.expect("the semaphore is never closed");
        metrics::gauge!("taxiflow_es_bulk_in_flight").increment(1.0);
        let this = self.clone();
        tasks.spawn(async move {
            this.send(items).await;
            metrics::gauge!("taxiflow_es_bulk_in_flight").decrement(1.0);
            drop(permit);
        });
    }

    fn failed(&self) -> bool {
        self.shared.lock().expect("sink state").fatal.is_some()
    }

    fn fail(&self, message: String) {
        tracing::error!(error = %message, "elasticsearch sink failed; stopping the job");
        self.shared.lock().expect("sink state").fatal.get_or_insert(message.clone());
        self.shutdown.fail(message);
    }

    fn acknowledge(&self, item: &BulkItem) {
        let mut state = self.shared.lock().expect("sink state");
        state.acknowledged[item.output as usize] += 1;
        if let Some(n) = state.outstanding.get_mut(&item.time) {
            *n -= 1;
            if *n == 0 {
                state.outstanding.remove(&item.time);
            }
        }
        let position = state.position();
        drop(state);
        let name = self.outputs.schema(item.output).name;
        metrics::counter!("taxiflow_es_documents_indexed_total", "index" => name).increment(1);
        metrics::counter!("taxiflow_documents_out_total", "index" => name).increment(1);
        if let Some(below) = position.below {
            metrics::gauge!("taxiflow_sink_acknowledged_below_ms").set(below as f64);
        }
    }

    /// The dead letter of a document the cluster refused for good, bound for the dead-letter index.
    fn dead_letter(&self, item: BulkItem, status: u16, reason: &str) -> BulkItem {
        let letter = DeadLetter {
            reason: format!("rejected by the cluster: {status} {reason}"),
            source: item.index.clone(),
            line: 0,
            offset: 0,
            record: item.source.clone(),
            event_time: None,
            watermark: None,
            document_id: Some(item.id.clone()),
        };
        let dead_letter = self.outputs.dead_letter();
        let row = letter.into_row(dead_letter);
        BulkItem {
            output: dead_letter,
            index: self.dead_letter_index.clone(),
            id: row.id.clone(),
            source: json::to_string(self.outputs.schema(dead_letter), &row, Shape::SOURCE),
            time: item.time,
            retries: 0,
        }
    }

    /// Sends `items` until each is acknowledged, turned into a dead letter, or out of retries.
    async fn send(&self, items: Vec<BulkItem>) {
        let mut work = vec![items];
        while let Some(mut pending) = work.pop() {
            let mut round = 0u32;
            while !pending.is_empty() {
                if self.failed() {
                    // The job is stopping; what is not acknowledged stays pending.
                    return;
                }
                if round > 0 {
                    tokio::time::sleep(crate::retry::backoff(round - 1, self.settings.backoff_initial, self.settings.backoff_max)).await;
                }
                round += 1;
                let started = Instant::now();
                let result = self.client.send(Method::POST, "_bulk", Some("application/x-ndjson"), bulk::body(&pending)).await;
                metrics::histogram!("taxiflow_es_bulk_request_seconds").record(started.elapsed().as_secs_f64());
                let answer = match result {
                    Ok(answer) if answer.status.is_success() => answer,
                    Ok(answer) if answer.status.as_u16() == 413 && pending.len() > 1 => {
                        metrics::counter!("taxiflow_es_bulk_requests_total", "outcome" => "too_large").increment(1);
                        tracing::warn!(actions = pending.len(), "bulk request too large (413), sending it in two halves");
                        let half = pending.split_off(pending.len() / 2);
                        work.push(half);
                        round = 0;
                        continue;
                    }
                    Ok(answer) if answer.status.as_u16() == 413 => {
                        let item = pending.pop().expect("one item");
                        metrics::counter!("taxiflow_es_item_failures_total", "status" => "413").increment(1);
                        if item.output == self.outputs.dead_letter() {
                            self.fail(format!("--sink: dead letter {} is too large for the cluster (413)", item.id));
                            return;
                        }
                        tracing::warn!(id = %item.id, "document too large (413), kept as a dead letter");
                        pending.push(self.dead_letter(item, 413, "request entity too large"));
                        continue;
                    }
                    Ok(answer) if !bulk::is_transient(answer.status.as_u16()) => {
                        metrics::counter!("taxiflow_es_bulk_requests_total", "outcome" => "refused").increment(1);
                        self.fail(format!("--sink: the cluster refused a bulk request: {} {}", answer.status, answer.text()));
                        return;
                    }
                    failed => {
                        let why = match failed {
                            Ok(answer) => format!("{} {}", answer.status, answer.text()),
                            Err(e) => e.message,
                        };
                        metrics::counter!("taxiflow_es_bulk_requests_total", "outcome" => "retry").increment(1);
                        if !self.count_retry(&mut pending, &why) {
                            return;
                        }
                        metrics::counter!("taxiflow_es_retries_total", "scope" => "request").increment(1);
                        tracing::warn!(error = %why, actions = pending.len(), round, "bulk request failed, retrying");
                        continue;
                    }
                };
                let outcomes = match bulk::outcomes(&answer.body, &pending) {
                    Ok(o) => o,
                    Err(e) => {
                        self.fail(format!("--sink: {e:#}"));
                        return;
                    }
                };
                metrics::counter!("taxiflow_es_bulk_requests_total", "outcome" => "ok").increment(1);
                let mut again = Vec::new();
                for (item, outcome) in pending.drain(..).zip(outcomes) {
                    match outcome {
                        ItemOutcome::Indexed => self.acknowledge(&item),
                        ItemOutcome::Retry { status, reason } => {
                            metrics::counter!("taxiflow_es_item_failures_total", "status" => status.to_string()).increment(1);
                            let mut one = vec![item];
                            if !self.count_retry(&mut one, &format!("{status} {reason}")) {
                                return;
                            }
                            metrics::counter!("taxiflow_es_retries_total", "scope" => "item").increment(1);
                            again.append(&mut one);
                        }
                        ItemOutcome::Rejected { status, reason } => {
                            metrics::counter!("taxiflow_es_item_failures_total", "status" => status.to_string()).increment(1);
                            if item.output == self.outputs.dead_letter() {
                                self.fail(format!("--sink: the cluster refused dead letter {}: {status} {reason}", item.id));
                                return;
                            }
                            tracing::warn!(id = %item.id, %status, %reason, "document refused, kept as a dead letter");
                            again.push(self.dead_letter(item, status, &reason));
                        }
                    }
                }
                pending = again;
            }
        }
    }

    /// Counts one more retry of `items`; fails the sink when one is out of retries.
    fn count_retry(&self, items: &mut [BulkItem], why: &str) -> bool {
        for item in items.iter_mut() {
            item.retries += 1;
            if item.retries > self.settings.max_retries {
                self.fail(format!("--sink: document {} still failing after {} retries: {why}", item.id, self.settings.max_retries));
                return false;
            }
        }
        true
    }
}
