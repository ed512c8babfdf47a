//! The job registry: every job `taxiflow run JOB` can run, with its flags and its runner. A job is a folder under
//! `dataflows/src/jobs/` implementing [`taxiflow_dataflows::Job`]; adding one is that folder, one [`JOBS`] entry
//! below, and its flags in [`JobArgs`] if it has any of its own.

use taxiflow_dataflows::job::JobInfo;
use taxiflow_dataflows::jobs::alerts::{AlertsArgs, AlertsJob};
use taxiflow_dataflows::jobs::dispatch::DispatchJob;
use taxiflow_dataflows::jobs::pageviews::{PageviewsArgs, PageviewsJob};
use taxiflow_dataflows::jobs::taxi::{TaxiArgs, TaxiJob};
use taxiflow_dataflows::jobs::ticker::TickerJob;
use taxiflow_dataflows::jobs::WindowArgs;
use taxiflow_dataflows::Job;

use crate::connectors::{ConnectorArgs, SourceChoice};
use crate::runtime::checkpoint::CheckpointOptions;
use crate::runtime::run::{run, RunOptions, RunReport};
use crate::runtime::shutdown::Shutdown;

/// The flags of every job, under a help heading each.
#[derive(Clone, Debug, clap::Args)]
pub struct JobArgs {
    /// Flags of the jobs with tumbling windows.
    #[command(flatten, next_help_heading = "Event time (jobs taxi, ticker, alerts and pageviews)")]
    pub window: WindowArgs,
    /// Flags of the taxi job.
    #[command(flatten, next_help_heading = "Job taxi")]
    pub taxi: TaxiArgs,
    /// Flags of the alerts job.
    #[command(flatten, next_help_heading = "Job alerts")]
    pub alerts: AlertsArgs,
    /// Flags of the pageviews job.
    #[command(flatten, next_help_heading = "Job pageviews")]
    pub pageviews: PageviewsArgs,
}

/// A group of job flags (see [`JobArgs`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobFlags {
    /// [`WindowArgs`].
    Window,
    /// [`TaxiArgs`].
    Taxi,
    /// [`AlertsArgs`].
    Alerts,
    /// [`PageviewsArgs`].
    Pageviews,
}

impl JobFlags {
    /// Every group.
    pub const ALL: [JobFlags; 4] = [JobFlags::Window, JobFlags::Taxi, JobFlags::Alerts, JobFlags::Pageviews];

    /// The clap ids of the group's flags.
    pub fn ids(self) -> Vec<String> {
        match self {
            JobFlags::Window => crate::connectors::flag_ids::<WindowArgs>(),
            JobFlags::Taxi => crate::connectors::flag_ids::<TaxiArgs>(),
            JobFlags::Alerts => crate::connectors::flag_ids::<AlertsArgs>(),
            JobFlags::Pageviews => crate::connectors::flag_ids::<PageviewsArgs>(),
        }
    }
}

/// What a run of any job is given besides the job's own flags.
pub struct Invocation<'a> {
    /// `--input` files or `--source` URL.
    pub source: SourceChoice,
    /// `--sink` URL.
    pub sink: &'a str,
    /// The connectors' flags.
    pub connectors: &'a ConnectorArgs,
    /// Timely configuration from the worker flags.
    pub timely: timely::Config,
    /// `--checkpoint-dir` and its settings.
    pub checkpoint: Option<CheckpointOptions>,
    /// The stop signal the signal handler sets.
    pub shutdown: Shutdown,
    /// `--source-rate-limit`.
    pub source_rate_limit: Option<f64>,
    /// The dashboard's board when `--dashboard-addr` is given: the sink's rows are shown there too.
    pub dashboard: Option<crate::dashboard::Board>,
}

/// One job of the registry.
pub struct JobEntry {
    /// Name, summary and docs.
    pub info: fn() -> JobInfo,
    /// The job flag groups it reads (a job flag of another job is refused).
    pub flags: &'static [JobFlags],
    /// Whether it runs on the bundled real data of `data/` when no input is given.
    pub bundled_inputs: bool,
    /// Its outputs with default settings (for `taxiflow jobs` and to choose a sink layout before the job's flags
    /// are resolved).
    pub outputs: fn() -> Vec<taxiflow_dataflows::OutputSchema>,
    /// Builds the job from its flags and runs it.
    pub run: fn(&JobArgs, Invocation<'_>) -> anyhow::Result<RunReport>,
}

/// Every job, the default first.
pub const JOBS: &[JobEntry] = &[
    JobEntry {
        info: TaxiJob::info,
        flags: &[JobFlags::Window, JobFlags::Taxi],
        bundled_inputs: true,
        outputs: || TaxiJob::for_profile(taxiflow_dataflows::jobs::taxi::Profile::Kda).outputs(),
        run: |args, invocation| run_job(TaxiJob::from_args(&args.taxi, &args.window).map_err(anyhow::Error::msg)?, invocation),
    },
    JobEntry {
        info: TickerJob::info,
        flags: &[JobFlags::Window],
        bundled_inputs: false,
        outputs: || TickerJob::default().outputs(),
        run: |args, invocation| run_job(TickerJob::from_args(&args.window).map_err(anyhow::Error::msg)?, invocation),
    },
    JobEntry {
        info: AlertsJob::info,
        flags: &[JobFlags::Window, JobFlags::Alerts],
        bundled_inputs: false,
        outputs: || AlertsJob::new(Vec::new(), std::sync::Arc::new(taxiflow_dataflows::jobs::alerts::SlaTable::new()), &WindowArgs::default(), std::time::Duration::from_secs(1)).expect("the default settings are valid").outputs(),
        run: |args, invocation| run_job(alerts_job(&args.alerts, &args.window, &invocation.shutdown)?, invocation),
    },
    JobEntry {
        info: DispatchJob::info,
        flags: &[],
        bundled_inputs: false,
        outputs: || DispatchJob.outputs(),
        run: |_, invocation| run_job(DispatchJob, invocation),
    },
    JobEntry {
        info: PageviewsJob::info,
        flags: &[JobFlags::Window, JobFlags::Pageviews],
        bundled_inputs: false,
        outputs: || PageviewsJob::new(&WindowArgs::default(), None, None).expect("the default settings are valid").outputs(),
        run: |args, invocation| {
            let mut job = pageviews_job(&args.pageviews, &args.window)?;
            // This job is measured by its memory (a twentieth of Flink's RSS, README) more than by its speed: what
            // it frees goes back to the system at once (`crate::runtime::allocator`), for about a tenth more time.
            crate::runtime::allocator::set_purge_delay_ms(0);
            // The Redis sink keeps a HyperLogLog of each day's visitors beside the exact count (pageviews spec §4).
            job.day_visitors = job.today && crate::connectors::sink_info(invocation.sink, &taxiflow_dataflows::output::Outputs::of_job(job.outputs()))?.scheme == "redis";
            run_job(job, invocation)
        },
    },
];

/// The page-view job: its country databases opened at start (`crate::connectors::geoip`).
///
/// # Errors
/// A `--geoip` file that is not a MaxMind database, a bad `--timezone` or event-time flag.
fn pageviews_job(args: &PageviewsArgs, window: &WindowArgs) -> anyhow::Result<PageviewsJob> {
    let geoip: Option<std::sync::Arc<dyn taxiflow_dataflows::jobs::pageviews::CountryLookup>> =
        if args.geoip.is_empty() { None } else { Some(std::sync::Arc::new(crate::connectors::geoip::GeoIp::open(&args.geoip)?)) };
    let mut job = PageviewsJob::new(window, args.timezone.as_deref(), geoip).map_err(anyhow::Error::msg)?;
    job.today = !args.no_today;
    Ok(job)
}

/// The alerts job: its rules and device settings read from PostgreSQL at start (`crate::connectors::postgres`).
///
/// # Errors
/// `--rules` missing, a database that cannot be read, a bad rule row (naming its `rule_id` and field), or a bad
/// event-time flag.
fn alerts_job(args: &AlertsArgs, window: &WindowArgs, shutdown: &Shutdown) -> anyhow::Result<AlertsJob> {
    use crate::connectors::postgres::{read_rules, refresh_rules, PgSlaLookup, PgUrl};
    use taxiflow_dataflows::jobs::alerts::{SlaLookup, SlaTable};
    let Some(rules_url) = &args.rules else { anyhow::bail!("--rules: the alerts job needs its rules, --rules postgresql://USER@HOST:PORT/DB (table alert_rule)") };
    let rules_url = PgUrl::parse(rules_url, "--rules")?;
    let rules = taxiflow_dataflows::jobs::alerts::rules::rules_of(&read_rules(&rules_url)?).map_err(|e| anyhow::anyhow!("--rules {}: {e}", rules_url.shown()))?;
    let sla: std::sync::Arc<dyn SlaLookup> = match &args.sla {
        Some(url) => std::sync::Arc::new(PgSlaLookup::open(PgUrl::parse(url, "--sla")?, args.lookup_cache_max_rows, args.lookup_cache_ttl, args.sla_cdc, shutdown.clone())?),
        None if args.sla_cdc => anyhow::bail!("--sla-cdc follows the table of --sla, which is not given"),
        None => std::sync::Arc::new(SlaTable::new()),
    };
    tracing::info!(rules = rules.len(), refresh = ?args.rules_refresh, cache_rows = args.lookup_cache_max_rows, cache_ttl = ?args.lookup_cache_ttl, cdc = args.sla_cdc, "alerts: rules read; device settings looked up through a cache");
    let job = AlertsJob::new(rules, sla, window, args.watermark_interval).map_err(anyhow::Error::msg)?;
    if let Some(every) = args.rules_refresh {
        refresh_rules(rules_url, every, std::sync::Arc::downgrade(&job.rules), shutdown.clone())?;
    }
    Ok(job)
}

/// The registry entry of job `name`.
///
/// # Errors
/// No such job, listing the jobs.
pub fn find(name: &str) -> anyhow::Result<&'static JobEntry> {
    JOBS.iter().find(|j| (j.info)().name == name).ok_or_else(|| {
        let names: Vec<&str> = JOBS.iter().map(|j| (j.info)().name).collect();
        anyhow::anyhow!("unknown job {name:?}: taxiflow runs {} (see taxiflow jobs)", names.join(", "))
    })
}

/// Runs `job` with the source, sink, workers and checkpoints of `invocation`.
///
/// # Errors
/// As [`run`], and a source or sink that cannot be configured (named).
pub fn run_job<J: Job>(job: J, invocation: Invocation<'_>) -> anyhow::Result<RunReport> {
    let outputs = taxiflow_dataflows::output::Outputs::of_job(job.outputs());
    let source = crate::connectors::source::<J>(&invocation.source, invocation.connectors)?;
    let mut sink = crate::connectors::sink(invocation.sink, &outputs, invocation.connectors)?;
    if let Some(board) = invocation.dashboard {
        let name = J::info().name;
        let view = crate::dashboard::board::view(name).ok_or_else(|| anyhow::anyhow!("--dashboard-addr: the dashboard has no view of the {name} job"))?;
        sink = Box::new(crate::dashboard::tee::DashboardSink { inner: sink, board, view });
    }
    run(RunOptions { job, source, sink, timely: invocation.timely, checkpoint: invocation.checkpoint, shutdown: invocation.shutdown, source_rate_limit: invocation.source_rate_limit })
}
