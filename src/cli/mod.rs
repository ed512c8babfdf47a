//! The `taxiflow` command line (clap): `run [JOB]`, `jobs`, `replay`, `generate JOB`, `ship`, `dashboard`.

pub mod dashboard;
pub mod generate;
pub mod jobs;
pub mod replay;
pub mod run;
pub mod ship;

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::bail;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// taxiflow: reference streaming jobs (NYC taxi hot spots, stock ticker averages) on timely dataflow.
#[derive(Debug, Parser)]
#[command(name = "taxiflow", version, about, long_about = None)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a job (default: taxi) from files, Kafka or Kinesis into files, stdout, Kafka, Elasticsearch or S3.
    Run(Box<run::RunArgs>),
    /// List the jobs with their inputs, outputs and defaults.
    Jobs,
    /// Replay taxi trips from files into Kafka or Kinesis, paced in event time, with watermark records
    /// (docs/jobs/taxi.md §2).
    Replay(Box<replay::ReplayArgs>),
    /// Generate a job's input events into Kinesis, Kafka or a file (e.g. the ticker blog's producer).
    Generate(Box<generate::GenerateArgs>),
    /// Follow log files and send each line to Kafka, with acknowledged positions (Flume's TAILDIR source and
    /// Kafka sink, docs/jobs/pageviews.md §6).
    Ship(Box<ship::ShipArgs>),
    /// Serve the dashboard's page over stored results: files, Elasticsearch, Redis, S3 or Kafka (what Kibana does
    /// with the indices).
    Dashboard(Box<dashboard::DashboardCmdArgs>),
}

/// Parses `args` (the program name first) and runs the command.
///
/// # Errors
/// Any start-up or run error, naming the flag at fault where there is one.
pub fn main(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> anyhow::Result<()> {
    let matches = Cli::command().get_matches_from(args);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match cli.command {
        Command::Run(args) => run::run(&args, matches.subcommand_matches("run").expect("the run subcommand")),
        Command::Jobs => {
            print!("{}", jobs::listing());
            Ok(())
        }
        Command::Replay(args) => replay::replay(&args),
        Command::Generate(args) => generate::generate(&args),
        Command::Ship(args) => ship::ship(&args),
        Command::Dashboard(args) => dashboard::dashboard(&args),
    }
}

/// The bundled real NYC samples: `data/*.csv*` under `$TAXIFLOW_DATA`, `./data`, or the source checkout.
///
/// # Errors
/// None of those directories holds a sample.
pub fn bundled_samples() -> anyhow::Result<Vec<PathBuf>> {
    let mut candidates = Vec::new();
    if let Ok(dir) = std::env::var("TAXIFLOW_DATA") {
        candidates.push(PathBuf::from(dir));
    }
    candidates.push(PathBuf::from("data"));
    candidates.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data"));
    for dir in candidates {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".csv") || n.ends_with(".csv.gz")))
                .collect();
            if !files.is_empty() {
                files.sort();
                return Ok(files);
            }
        }
    }
    bail!("no --input given and no bundled samples found in $TAXIFLOW_DATA, ./data or the source checkout")
}
