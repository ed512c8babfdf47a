//! `taxiflow run [JOB]`: the flags, grouped by job and connector in `--help`; the check that every flag given is
//! one the chosen job, source and sink use; and the run itself.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory};

use crate::connectors::{ConnectorArgs, ConnectorInfo, FlagGroup, SourceChoice};
use crate::jobs::{Invocation, JobArgs, JobFlags, JOBS};
use crate::runtime::checkpoint::{CheckpointLocation, CheckpointOptions};
use crate::runtime::shutdown::Shutdown;
use crate::runtime::workers::WorkerArgs;

/// Flags of `taxiflow run`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Jobs: taxiflow jobs. Semantics of each job: docs/jobs/<job>.md.")]
pub struct RunArgs {
    /// The job: taxi (the default) or ticker (see `taxiflow jobs`).
    #[arg(default_value = "taxi", value_name = "JOB")]
    pub job: String,
    /// Input file (plain or gzip), repeatable, each a partition. Default for the taxi job: the bundled real NYC
    /// samples in `data/`.
    #[arg(long = "input", value_name = "PATH", conflicts_with = "source", help_heading = "Input and output")]
    pub inputs: Vec<PathBuf>,
    /// Read from a stream instead of files: kafka://BROKER[,BROKER]/TOPIC or kinesis://STREAM.
    #[arg(long, value_name = "URL", help_heading = "Input and output")]
    pub source: Option<String>,
    /// Where results go: file://DIR, stdout, kafka://BROKER/TOPIC, es+https://HOST[:PORT] (es+http:// without TLS)
    /// or s3://BUCKET/PREFIX.
    #[arg(long, default_value = "file://out", value_name = "URL", help_heading = "Input and output")]
    pub sink: String,
    /// Read at most this many records per second on each worker (e.g. 50000 or 50000/s), for tests, benchmarks
    /// and catching up gently with a production sink.
    #[arg(long, value_name = "N/s", value_parser = crate::cli::generate::parse_rate, help_heading = "Input and output")]
    pub source_rate_limit: Option<f64>,
    /// Job flags.
    #[command(flatten)]
    pub jobs: JobArgs,
    /// Connector flags.
    #[command(flatten)]
    pub connectors: ConnectorArgs,
    /// Checkpoint flags.
    #[command(flatten, next_help_heading = "Checkpoints")]
    pub checkpoint: CheckpointArgs,
    /// Worker flags.
    #[command(flatten, next_help_heading = "Workers")]
    pub workers: WorkerArgs,
    /// Serve Prometheus metrics on HOST:PORT at /metrics.
    #[arg(long, value_name = "HOST:PORT", help_heading = "Monitoring")]
    pub metrics_addr: Option<SocketAddr>,
    /// Dashboard flags.
    #[command(flatten, next_help_heading = "Monitoring")]
    pub dashboard: crate::dashboard::DashboardArgs,
}

/// `--checkpoint-*`.
#[derive(Clone, Debug, clap::Args)]
pub struct CheckpointArgs {
    /// Checkpoint source positions, window state and sink state here, and restore the newest checkpoint at start:
    /// a directory (the same path for every process) or s3://BUCKET/PREFIX.
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    pub checkpoint_dir: Option<String>,
    /// Time between two checkpoints.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, requires = "checkpoint_dir")]
    pub checkpoint_interval: Duration,
    /// Remove the checkpoints of --checkpoint-dir and start from the beginning (also when they are unusable).
    #[arg(long, requires = "checkpoint_dir")]
    pub checkpoint_reset: bool,
}

/// The clap ids of the flags given on the command line (not defaults or environment variables).
fn given(matches: &ArgMatches) -> BTreeSet<String> {
    matches.ids().filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine)).map(|id| id.to_string()).collect()
}

/// `--long-name` of the `run` flag with clap id `id`.
fn long_name(id: &str) -> String {
    let command = crate::cli::Cli::command();
    let run = command.find_subcommand("run").expect("the run subcommand");
    let long = run.get_arguments().find(|a| a.get_id() == id).and_then(|a| a.get_long()).map(|l| format!("--{l}"));
    long.unwrap_or_else(|| id.to_string())
}

/// Refuses a job flag that `job` does not use, naming the job that does.
fn check_job_flags(given: &BTreeSet<String>, job: &crate::jobs::JobEntry) -> anyhow::Result<()> {
    for group in JobFlags::ALL {
        if job.flags.contains(&group) {
            continue;
        }
        for id in group.ids() {
            if given.contains(&id) {
                let users: Vec<&str> = JOBS.iter().filter(|j| j.flags.contains(&group)).map(|j| (j.info)().name).collect();
                bail!("{} is a flag of the {} job; this run is the {} job", long_name(&id), users.join(" and "), (job.info)().name);
            }
        }
    }
    Ok(())
}

/// The job and source of `args`, once every flag given (`matches`: the `run` subcommand's) is known to be one the
/// job, the source, the sink and the checkpoint store use. No I/O but listing the bundled samples.
///
/// # Errors
/// An unknown job, source or sink, a flag none of them uses (named, with who uses it), or no input for a job
/// without bundled data.
fn checked(args: &RunArgs, matches: &ArgMatches) -> anyhow::Result<(&'static crate::jobs::JobEntry, SourceChoice)> {
    let job = crate::jobs::find(&args.job)?;
    let given = given(matches);
    check_job_flags(&given, job)?;
    let source = match &args.source {
        Some(url) => SourceChoice::Url(url.clone()),
        None if !args.inputs.is_empty() => SourceChoice::Files(args.inputs.clone()),
        None if job.bundled_inputs => SourceChoice::Files(crate::cli::bundled_samples()?),
        None => bail!("the {} job needs --input PATH or --source URL (it has no bundled data; see taxiflow generate {0})", (job.info)().name),
    };
    let outputs = taxiflow_dataflows::output::Outputs::of_job((job.outputs)());
    let mut selected: Vec<&ConnectorInfo> = vec![source.info()?, crate::connectors::sink_info(&args.sink, &outputs)?];
    let s3_checkpoints = args.checkpoint.checkpoint_dir.as_ref().is_some_and(|d| d.starts_with("s3://"));
    let checkpoint_store = ConnectorInfo { scheme: "s3", name: "S3 checkpoint store", flags: &[FlagGroup::Aws] };
    if s3_checkpoints {
        selected.push(&checkpoint_store);
    }
    crate::connectors::check_flags(&given, &selected, long_name)?;
    Ok((job, source))
}

/// Runs `taxiflow run` with `args`; `matches` are the `run` subcommand's (to know which flags were given).
///
/// # Errors
/// A flag the chosen job or connectors do not use, a bad flag value, or any run error.
pub fn run(args: &RunArgs, matches: &ArgMatches) -> anyhow::Result<()> {
    let (job, source) = checked(args, matches)?;
    let timely = args.workers.timely_config()?;
    if args.sink == "stdout" && args.workers.processes > 1 {
        // timely_communication prints its connection progress with println!.
        bail!("--sink stdout cannot be used with --processes > 1: timely's networking writes to standard output; use --sink file://DIR");
    }
    if let Some(addr) = args.metrics_addr {
        crate::runtime::metrics::serve(addr)?;
    }
    // The sink, and so the dashboard, is on process 0.
    let dashboard = if args.workers.process == 0 { args.dashboard.start()? } else { None };
    if args.checkpoint.checkpoint_interval.is_zero() {
        bail!("--checkpoint-interval must be greater than zero");
    }
    let checkpoint = match &args.checkpoint.checkpoint_dir {
        Some(dir) => Some(CheckpointOptions {
            location: CheckpointLocation::parse(dir, &args.connectors.aws)?,
            interval: args.checkpoint.checkpoint_interval,
            reset: args.checkpoint.checkpoint_reset,
        }),
        None => None,
    };
    let shutdown = Shutdown::new();
    let handler = shutdown.clone();
    ctrlc::set_handler(move || {
        if handler.requested() {
            tracing::warn!("second stop signal: stopping at once");
            handler.fail("stopped by a second signal before the last checkpoint");
        } else {
            handler.request();
        }
    })
    .map_err(|e| anyhow::anyhow!("cannot install the SIGINT/SIGTERM handler: {e}"))?;
    let serving = dashboard.is_some().then(|| shutdown.clone());
    let invocation = Invocation { source, sink: &args.sink, connectors: &args.connectors, timely, checkpoint, shutdown, source_rate_limit: args.source_rate_limit, dashboard };
    let report = (job.run)(&args.jobs, invocation)?;
    if let Some(line) = report.summary_line() {
        if args.sink == "stdout" {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    // A bounded run's results stay on the dashboard until the process is stopped (as Kibana keeps showing the
    // indices after the job), unless the run itself was stopped.
    if let Some(shutdown) = serving {
        if !shutdown.requested() {
            use std::io::Write;
            let _ = std::io::stdout().flush();
            eprintln!("the job finished; the dashboard stays up until SIGINT or SIGTERM");
            while !shutdown.requested() {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_with(args: &[&str]) -> anyhow::Result<()> {
        let argv = std::iter::once("taxiflow").chain(std::iter::once("run")).chain(args.iter().copied());
        let matches = crate::cli::Cli::command().try_get_matches_from(argv).map_err(|e| anyhow::anyhow!("{e}"))?;
        let sub = matches.subcommand_matches("run").unwrap();
        let args = <RunArgs as clap::FromArgMatches>::from_arg_matches(sub)?;
        // Only the checks before any I/O: flag ownership.
        checked(&args, sub).map(|_| ())
    }

    #[test]
    fn flags_of_other_connectors_and_jobs_are_refused_by_name() {
        for (args, refused) in [
            (&["--source", "kafka://b:1/t", "--poll-interval", "1s"][..], "--poll-interval is a flag of the Kinesis source"),
            (&["--source", "kinesis://s", "--group", "g"], "--group is a flag of the Kafka source"),
            (&["--input", "x", "--start", "latest"], "--start is a flag of the Kafka source and the Kinesis source"),
            (&["--input", "x", "--bulk-max-actions", "5"], "--bulk-max-actions is a flag of the Elasticsearch sink"),
            (&["ticker", "--input", "x", "--profile", "msf"], "--profile is a flag of the taxi job; this run is the ticker job"),
            (&["--input", "x", "--sink-format", "parquet"], "--sink-format is a flag of the file sink of a partitioned output and the S3 sink"),
            (&["--input", "x", "--region", "eu-west-1"], "--region is a flag of the Kinesis source and the Elasticsearch sink and the S3 sink"),
            (&["--input", "x", "--timezone", "UTC"], "--timezone is a flag of the pageviews job; this run is the taxi job"),
            (&["ticker", "--input", "x", "--rules", "postgresql://h/db"], "--rules is a flag of the alerts job; this run is the ticker job"),
            (&["pageviews", "--input", "x", "--redis-ttl", "1h"], "--redis-ttl is a flag of the Redis sink"),
        ] {
            let e = run_with(args).unwrap_err().to_string();
            assert!(e.contains(refused), "{args:?}: {e}");
        }
        for ok in [
            &["--source", "kinesis://s", "--poll-interval", "1s", "--region", "r", "--stop-at", "latest"][..],
            &["--source", "kafka://b:1/t", "--group", "g", "--kafka-config", "linger.ms=5", "--sink", "kafka://b:1/out"],
            &["ticker", "--input", "x", "--sink", "s3://bucket/p", "--sink-format", "parquet", "--partition-by", "ticker,date", "--window", "2m"],
            &["ticker", "--input", "x", "--sink", "file://out", "--partition-commit-delay", "5s"],
            &["--input", "x", "--sink", "es+http://h:9200", "--bulk-max-actions", "5", "--region", "r"],
            &["--profile", "refarch", "--window", "30m", "--format", "tlc"],
            &["pageviews", "--input", "x", "--timezone", "Europe/Berlin", "--geoip", "a.mmdb", "--sink", "redis://h:6379", "--redis-ttl", "1h", "--window", "5m"],
        ] {
            run_with(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
    }
}
