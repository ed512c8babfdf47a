//! `taxiflow dashboard --from URL …`: the dashboard's page over stored results (see `crate::dashboard`).

use std::net::SocketAddr;
use std::time::Duration;

use crate::dashboard::{board, stored, Board, DEFAULT_WINDOWS};

/// Flags of `taxiflow dashboard`.
#[derive(Debug, clap::Args)]
#[command(after_help = "The page: http://HOST:PORT/ ; its JSON API: /api/jobs, /api/{job}/windows, /api/{job}/window/{end}, /api/{job}/series, /api/{job}/open, /api/{job}/events (README, \"Dashboard\").")]
pub struct DashboardCmdArgs {
    /// Where the results are, repeatable: file://DIR (a file sink's directory), es+http(s)://HOST[:PORT],
    /// redis://HOST:PORT, s3://BUCKET/PREFIX or kafka://BROKER[,BROKER]/TOPIC (the alert and dispatch topics).
    #[arg(long = "from", value_name = "URL", required = true)]
    pub from: Vec<String>,
    /// The job that wrote the results (default: told by each document's output).
    #[arg(long, value_name = "JOB")]
    pub job: Option<String>,
    /// Where to serve the page.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "HOST:PORT")]
    pub dashboard_addr: SocketAddr,
    /// The number of windows of each job kept (the newest).
    #[arg(long, default_value_t = DEFAULT_WINDOWS, value_parser = clap::value_parser!(u64).range(1..=100_000), value_name = "N")]
    pub dashboard_windows: u64,
    /// How often the stores are read again (Kafka topics are followed continuously).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub refresh: Duration,
    /// How to read the stores.
    #[command(flatten, next_help_heading = "Stores")]
    pub stores: stored::StoreArgs,
}

/// Runs `taxiflow dashboard`: opens every store (failing at start for one that cannot be reached), serves the page
/// and follows the stores until stopped.
///
/// # Errors
/// An unknown `--job`, a bad `--from`, a store that cannot be opened, or an address that cannot be bound.
pub fn dashboard(args: &DashboardCmdArgs) -> anyhow::Result<()> {
    let job = match &args.job {
        Some(name) => Some(board::view(name).ok_or_else(|| {
            let names: Vec<&str> = board::VIEWS.iter().map(|v| v.job).collect();
            anyhow::anyhow!("--job {name:?}: the dashboard has views of {}", names.join(", "))
        })?),
        None => None,
    };
    if args.refresh.is_zero() {
        anyhow::bail!("--refresh must be greater than zero");
    }
    let keep = args.dashboard_windows as usize;
    let stores = args.from.iter().map(|url| stored::open(url, &args.stores, keep)).collect::<anyhow::Result<Vec<_>>>()?;
    let board = Board::new(keep);
    if let Some(view) = job {
        board.add_job(view);
    }
    // Bound before the stores are read: a port in use fails at once.
    let bound = crate::dashboard::server::serve(args.dashboard_addr, board.clone(), "--dashboard-addr")?;
    let shown: Vec<String> = stores.iter().map(|s| s.describe()).collect();
    eprintln!("dashboard: http://{bound}/ over {}", shown.join(", "));
    crate::dashboard::follow(&board, stores, job, args.refresh)
}
