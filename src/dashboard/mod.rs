//! The live dashboard: a web page of every job's results, served by the binary itself (what Kibana, the reference
//! page's echarts and Athena queries are for the reference systems), with no Elasticsearch or Kibana needed.
//!
//! - `taxiflow run … --dashboard-addr 127.0.0.1:8080`: the running job's outputs, pushed to the page as each window
//!   is emitted (Server-Sent Events), fed by a wrapper around the run's sink ([`tee`]).
//! - `taxiflow dashboard --from URL …`: the same page over stored results ([`stored`]): files, Elasticsearch,
//!   Redis, S3 or Kafka.
//!
//! Both keep the last `--dashboard-windows` (48) windows of each job in memory ([`board`]), and serve the page, its
//! embedded assets ([`assets`]) and a JSON API ([`server`], also in the README). Views, one per job
//! ([`board::VIEWS`]): taxi, a map of the pickup hot spots of a window (geohash cells over the NYC boroughs, by
//! default `pickup_count ≥ 3` as the reference's Kibana query) with a time slider and the JFK/LGA trip durations per
//! window; pageviews, PV and UV over time, today so far, the top pages and a world map of page views by country;
//! ticker, one price line per ticker; alerts and dispatch, the open items per device and a timeline.

pub mod assets;
pub mod board;
pub mod server;
pub mod stored;
pub mod tee;

use std::net::SocketAddr;
use std::time::Duration;

pub use board::Board;

/// Default of `--dashboard-windows`.
pub const DEFAULT_WINDOWS: u64 = 48;

/// The dashboard flags of `taxiflow run`.
#[derive(Clone, Debug, clap::Args)]
pub struct DashboardArgs {
    /// Serve a live dashboard of the job's results on HOST:PORT (e.g. 127.0.0.1:8080): a web page pushed each window
    /// as it is emitted, and its JSON API under /api/ (by process 0, which holds the sink).
    #[arg(long, value_name = "HOST:PORT")]
    pub dashboard_addr: Option<SocketAddr>,
    /// The number of windows of each job the dashboard keeps in memory (the newest).
    #[arg(long, default_value_t = DEFAULT_WINDOWS, value_parser = clap::value_parser!(u64).range(1..=100_000), value_name = "N")]
    pub dashboard_windows: u64,
}

impl DashboardArgs {
    /// Starts the dashboard's server when `--dashboard-addr` is given and returns its board.
    ///
    /// # Errors
    /// `--dashboard-addr`: the address cannot be bound.
    pub fn start(&self) -> anyhow::Result<Option<Board>> {
        let Some(addr) = self.dashboard_addr else { return Ok(None) };
        let board = Board::new(self.dashboard_windows as usize);
        server::serve(addr, board.clone(), "--dashboard-addr")?;
        Ok(Some(board))
    }
}

/// Reads `stores` into `board` every `refresh` until the process is stopped (SIGINT, SIGTERM); `job`, when given,
/// is the job every document belongs to (else each document's output tells). A store that fails is logged and read
/// again at the next refresh (the page keeps what it has).
pub fn follow(board: &Board, mut stores: Vec<Box<dyn stored::Store>>, job: Option<&'static board::JobView>, refresh: Duration) -> ! {
    let mut current: Vec<Option<&'static board::JobView>> = vec![job; stores.len()];
    let mut failing = vec![false; stores.len()];
    loop {
        let started = std::time::Instant::now();
        for (i, store) in stores.iter_mut().enumerate() {
            match store.read() {
                Ok(docs) => {
                    if failing[i] {
                        tracing::info!(store = %store.describe(), "dashboard: the store answers again");
                        failing[i] = false;
                    }
                    ingest_by_job(board, docs, job, &mut current[i]);
                }
                Err(e) => {
                    if !failing[i] {
                        tracing::warn!(store = %store.describe(), error = %format!("{e:#}"), "dashboard: cannot read the store; trying again at each refresh");
                    }
                    failing[i] = true;
                }
            }
        }
        std::thread::sleep(refresh.saturating_sub(started.elapsed()));
    }
}

/// Hands `docs` to the board of their job: `job` when given, else the job of each output; dead letters (and
/// watermark records) go to the job of the store's documents (`current`: the last job the store had, found first
/// in this read, since a directory lists `dead_letter.jsonl` before the job's outputs).
fn ingest_by_job(board: &Board, docs: stored::Docs, job: Option<&'static board::JobView>, current: &mut Option<&'static board::JobView>) {
    if let Some(view) = docs.iter().find_map(|(output, _)| board::view_of_output(output)) {
        current.get_or_insert(view);
    }
    let mut batch: Vec<(String, serde_json::Value)> = Vec::new();
    let mut batch_view: Option<&'static board::JobView> = None;
    for (output, doc) in docs {
        let view = job.or_else(|| board::view_of_output(&output)).or(*current);
        let Some(view) = view else { continue };
        if let Some(previous) = batch_view.filter(|v| *v != view) {
            board.ingest(previous, std::mem::take(&mut batch));
        }
        batch_view = Some(view);
        *current = Some(view);
        batch.push((output, doc));
    }
    if let Some(view) = batch_view {
        board.ingest(view, batch);
    }
}
