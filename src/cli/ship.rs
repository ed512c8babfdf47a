//! `taxiflow ship`: the flags, and the run of [`crate::ship`] (pageviews spec §5).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::connectors::kafka::KafkaTopic;
use crate::runtime::shutdown::Shutdown;
use crate::ship::{ShipOptions, StartAt};

/// Flags of `taxiflow ship`.
#[derive(Debug, clap::Args)]
pub struct ShipArgs {
    /// The files to follow: a glob (e.g. '/var/log/nginx/access.log*'), looked at again every --poll-interval,
    /// so new files are picked up.
    #[arg(long, value_name = "GLOB")]
    pub from: String,
    /// Destination: kafka://BROKER[,BROKER]/TOPIC (the topic must exist); one message per line, keyed by the
    /// file's path, with the headers host and file.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Where the acknowledged position of every file is kept (device, inode, offset, first bytes), as Flume's
    /// TAILDIR positionFile.
    #[arg(long, value_name = "FILE")]
    pub position_file: PathBuf,
    /// Where a file without a recorded position starts.
    #[arg(long, value_enum, default_value = "beginning")]
    pub start_at: StartAt,
    /// How often the glob and the files are looked at when there is nothing new.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "100ms")]
    pub poll_interval: Duration,
    /// How often the position file is written (and once at a stop), as Flume's writePosInterval.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub write_pos_interval: Duration,
    /// Stop once every matched file is read to its end and acknowledged (for bounded use and tests); by default
    /// the shipper follows the files until SIGINT or SIGTERM.
    #[arg(long)]
    pub exit_when_done: bool,
    /// Kafka client settings.
    #[command(flatten)]
    pub kafka: crate::connectors::kafka::KafkaArgs,
    /// Serve Prometheus metrics on HOST:PORT at /metrics.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<SocketAddr>,
}

/// Runs `taxiflow ship` until SIGINT/SIGTERM (or `--exit-when-done`).
///
/// # Errors
/// See [`crate::ship::ship`]; a bad `--to`.
pub fn ship(args: &ShipArgs) -> anyhow::Result<()> {
    let to = KafkaTopic::parse(&args.to, "--to")?.with_args(&args.kafka)?;
    if let Some(addr) = args.metrics_addr {
        crate::runtime::metrics::serve(addr)?;
    }
    let shutdown = Shutdown::new();
    let handler = shutdown.clone();
    ctrlc::set_handler(move || handler.request()).map_err(|e| anyhow::anyhow!("cannot install the SIGINT/SIGTERM handler: {e}"))?;
    let options = ShipOptions {
        from: args.from.clone(),
        to,
        position_file: args.position_file.clone(),
        start_at: args.start_at,
        poll_interval: args.poll_interval,
        write_pos_interval: args.write_pos_interval,
        exit_when_done: args.exit_when_done,
    };
    let report = crate::ship::ship(&options, &shutdown)?;
    println!("shipped {} lines", report.lines);
    Ok(())
}
