//! The alert job (`taxiflow run alerts`, `docs/jobs/alerts.md`): the AWS blog's Flink SQL application on Kinesis
//! Data Analytics that matches a manufacturer's device events against rules kept in PostgreSQL and raises and
//! revokes alerts on an alert topic.
//!
//! | module | what |
//! |---|---|
//! | [`event`] | the JSON device events (§1), decoded strictly |
//! | [`rules`] | rows of `alert_rule` validated into rules (§2) |
//! | [`machine`] | the per-(device, rule) state machine of both templates (§2) and `alert_id` (§4) |
//! | [`operator`] | the keyed operator: event order per device, redeliveries, checkpoints |
//! | [`generator`] | a seeded stream of device events for every path of the blog's rules |
//!
//! Event time: `Param.Timestamp`. Watermark per partition: max event time − `--max-out-of-orderness` (default 5 s)
//! − 1 ms (Flink's bounded out-of-orderness). Lateness is record-level: an event at or behind its partition's
//! watermark is late. Device settings (`device_sla`, §3) come from a [`SlaLookup`] the connector gives the job: a
//! raised alert is enriched as of processing time ([`enrich`]); a table is its own static lookup.

pub mod event;
pub mod generator;
pub mod machine;
pub mod operator;
pub mod rules;

use std::collections::BTreeMap;
use std::sync::Arc;

use timely::dataflow::StreamVec;

use crate::epoch::{Recovery, Time};
use crate::job::{Counters, Job, JobInfo, JobStreams, Lateness, WatermarkStrategy};
use crate::output::{Field, FieldType, OutputSchema, Row, Value, WatermarkRecords};
use event::{DeviceEvent, DeviceEventJson};
use machine::Step;
use rules::Rule;

/// Flags of the alerts job.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct AlertsArgs {
    /// The rules: a PostgreSQL database with the table alert_rule, postgresql://USER@HOST:PORT/DB (password from
    /// the URL or PGPASSWORD; TLS by ?sslmode=require). Required by the alerts job.
    #[arg(long, value_name = "URL")]
    pub rules: Option<String>,
    /// The device settings: a PostgreSQL database with the table device_sla (default: none, so every alert has
    /// null info and overrides and delay_ms 0).
    #[arg(long, value_name = "URL")]
    pub sla: Option<String>,
    /// Rows of device_sla kept in the lookup cache (least recently used dropped first; devices without a row are
    /// cached too), as the reference's lookup.cache.max-rows.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub lookup_cache_max_rows: u64,
    /// How long a cached device_sla row is used before it is read again (expire after write), as the reference's
    /// lookup.cache.ttl: a change of the table reaches alerts within this time.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub lookup_cache_ttl: std::time::Duration,
    /// Change data capture of device_sla (beyond the reference): a temporary logical replication slot
    /// (test_decoding; the server needs wal_level=logical) is read every 200 ms, and a changed device's cached row
    /// is dropped, so the change reaches the next alert within a second instead of a TTL.
    #[arg(long)]
    pub sla_cdc: bool,
    /// Re-read alert_rule this often and apply a change without a restart (the reference restarts daily): the
    /// states of rules that remain are kept, those of removed or disabled rules dropped. A table that no longer
    /// reads, or a bad row, keeps the rules in force (logged with the rule_id and field). Default: read once.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub rules_refresh: Option<std::time::Duration>,
    /// The shortest time between two watermark records of the alert output (written when its event-time
    /// frontier advances, and once at the end).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub watermark_interval: std::time::Duration,
}

/// One row of `device_sla` (§3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sla {
    /// `info`.
    pub info: Option<String>,
    /// `overrides`.
    pub overrides: Option<String>,
    /// `delay_ms`, ms (a negative value is read as 0, with a warning, by whoever builds the table).
    pub delay_ms: u64,
}

/// Device settings by `device_id` (the LEFT lookup of §3: a device without a row has null `info` and `overrides`
/// and `delay_ms` 0).
pub type SlaTable = BTreeMap<i64, Sla>;

/// The LEFT lookup of `device_sla` (§3) as of processing time (Flink's `FOR SYSTEM_TIME AS OF proctime`): the
/// PostgreSQL connector's cached lookup, or a static table.
pub trait SlaLookup: Send + Sync + std::fmt::Debug {
    /// The settings of each of `devices`, in their order (`None`: the device has no row).
    ///
    /// # Errors
    /// The settings cannot be had now (the server is unreachable): the caller emits nothing that needs them and
    /// asks again later; the implementation stops the run with the reason when the failure lasts.
    fn lookup(&self, devices: &[i64]) -> Result<Vec<Option<Sla>>, String>;
}

impl SlaLookup for SlaTable {
    fn lookup(&self, devices: &[i64]) -> Result<Vec<Option<Sla>>, String> {
        Ok(devices.iter().map(|d| self.get(d).cloned()).collect())
    }
}

/// The rules in force, shared by the workers and whoever refreshes them (`--rules-refresh`): a change applies as
/// of processing time, like a restart with the new rules (the reference restarts daily): the states of rules that
/// remain (by `rule_id`) are kept, those of removed or disabled rules dropped, new rules start without state.
#[derive(Debug)]
pub struct RuleSet {
    current: std::sync::RwLock<(u64, Arc<Vec<Rule>>)>,
}

impl RuleSet {
    /// The set of `rules`, version 0.
    pub fn new(rules: Vec<Rule>) -> RuleSet {
        RuleSet { current: std::sync::RwLock::new((0, Arc::new(rules))) }
    }

    /// The rules in force and their version (one more with every change).
    pub fn current(&self) -> (u64, Arc<Vec<Rule>>) {
        let c = self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        (c.0, c.1.clone())
    }

    /// Puts `rules` in force; returns whether they differ from the rules in force (nothing changes otherwise).
    pub fn replace(&self, rules: Vec<Rule>) -> bool {
        let mut c = self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if *c.1 == rules {
            return false;
        }
        *c = (c.0 + 1, Arc::new(rules));
        true
    }
}

/// Name of the job's output (the alert topic; `alerts.jsonl` of a file sink).
pub const ALERTS: &str = "alerts";

/// Index of the `duplicates` counter ([`AlertsJob::counters`]).
pub const DUPLICATES: usize = 0;

/// The alert job with its settings.
#[derive(Clone, Debug)]
pub struct AlertsJob {
    /// The enabled rules of `alert_rule`, ordered by `rule_id`: those of the start, replaced while running with
    /// `--rules-refresh`.
    pub rules: Arc<RuleSet>,
    /// The device settings.
    pub sla: Arc<dyn SlaLookup>,
    /// `--max-out-of-orderness`, ms (default 5 s).
    pub bound_ms: u64,
    /// `--watermark-interval`, ms (default 1 s).
    pub watermark_interval_ms: u64,
}

impl AlertsJob {
    /// The job of `rules` and `sla` with the event-time flags (`--max-out-of-orderness` sets the bound; the job has
    /// no windows) and `--watermark-interval`.
    ///
    /// # Errors
    /// `--window` given, or a bad `--max-out-of-orderness`.
    pub fn new(rules: Vec<Rule>, sla: Arc<dyn SlaLookup>, window: &super::WindowArgs, watermark_interval: std::time::Duration) -> Result<AlertsJob, String> {
        if window.window.is_some() {
            return Err("--window: the alerts job has no windows (see docs/jobs/alerts.md)".to_string());
        }
        let watermark_interval_ms = watermark_interval.as_millis() as u64;
        Ok(AlertsJob { rules: Arc::new(RuleSet::new(rules)), sla, bound_ms: window.bound_ms()?.unwrap_or(5_000), watermark_interval_ms })
    }
}

/// The output's fields: the union of the `alert`, `revoke` and `watermark` records of §4, in their order; a record
/// of one kind has the others' fields [`Value::Absent`].
fn fields() -> Vec<Field> {
    vec![
        Field::required("type", FieldType::Keyword),
        Field::required("alert_id", FieldType::Keyword),
        Field::required("rule_id", FieldType::Long),
        Field::required("alert_type", FieldType::Keyword),
        Field::nullable("priority", FieldType::Long),
        Field::required("device", FieldType::Long),
        Field::nullable("alert_time", FieldType::Instant),
        Field::nullable("fault_time", FieldType::Instant),
        Field::nullable("trigger_event_id", FieldType::Keyword),
        Field::nullable("fault_event_id", FieldType::Keyword),
        Field::nullable("info", FieldType::Text),
        Field::nullable("overrides", FieldType::Text),
        Field::nullable("delay_ms", FieldType::Long),
        Field::nullable("revoke_time", FieldType::Instant),
        Field::nullable("revoke_event_id", FieldType::Keyword),
        Field::nullable("watermark", FieldType::Instant),
    ]
}

/// Appends the rows of the messages of `step` (revoke first, §2's order) of `device` under `rule` to `out`; an
/// alert's settings (`info`, `overrides`, `delay_ms`) are left [`Value::Absent`] for [`enrich`].
pub fn message_rows(rule: &Rule, device: i64, step: Step, out: &mut Vec<Row>) {
    let text = |s: &str| Value::Str(s.to_string());
    if let Some(r) = step.revoked {
        let mut values = vec![Value::Absent; 16];
        values[0] = text("revoke");
        values[1] = text(&r.alert_id);
        values[2] = Value::Int(i64::from(rule.rule_id));
        values[3] = text(&rule.alert_type);
        values[5] = Value::Int(device);
        values[13] = Value::Int(r.revoke_time as i64);
        values[14] = Value::Str(r.revoke_event_id);
        out.push(Row { output: 0, id: r.alert_id, order: r.revoke_time as i64, window: None, values });
    }
    if let Some(a) = step.raised {
        let mut values = vec![Value::Absent; 16];
        values[0] = text("alert");
        values[1] = text(&a.alert_id);
        values[2] = Value::Int(i64::from(rule.rule_id));
        values[3] = text(&rule.alert_type);
        values[4] = Value::Int(i64::from(rule.priority));
        values[5] = Value::Int(device);
        values[6] = Value::Int(a.alert_time as i64);
        values[7] = Value::Int(a.fault.time as i64);
        values[8] = Value::Str(a.trigger_event_id);
        values[9] = Value::Str(a.fault.id.into_string());
        out.push(Row { output: 0, id: a.alert_id, order: a.alert_time as i64, window: None, values });
    }
}

/// Fills in the settings of every alert among the rows of `batches` (rows at some time each) from one lookup of
/// their devices (§3: no row gives null `info` and `overrides` and `delay_ms` 0).
///
/// # Errors
/// The lookup's: the rows are left as they are.
pub fn enrich<T>(sla: &dyn SlaLookup, batches: &mut [(T, Vec<Row>)]) -> Result<(), String> {
    let is_alert = |r: &Row| matches!(&r.values[0], Value::Str(t) if t == "alert");
    let device = |r: &Row| if let Value::Int(d) = r.values[5] { Some(d) } else { None };
    let mut devices: Vec<i64> = batches.iter().flat_map(|(_, rows)| rows.iter()).filter(|r| is_alert(r)).filter_map(device).collect();
    if devices.is_empty() {
        return Ok(());
    }
    devices.sort_unstable();
    devices.dedup();
    let settings = sla.lookup(&devices)?;
    let optional = |v: &Option<String>| v.as_deref().map_or(Value::Null, |s| Value::Str(s.to_string()));
    let none = Sla::default();
    for row in batches.iter_mut().flat_map(|(_, rows)| rows.iter_mut()).filter(|r| is_alert(r)) {
        let found = device(row).and_then(|d| devices.binary_search(&d).ok()).and_then(|i| settings.get(i)).and_then(Option::as_ref);
        let sla = found.unwrap_or(&none);
        row.values[10] = optional(&sla.info);
        row.values[11] = optional(&sla.overrides);
        row.values[12] = Value::Int(sla.delay_ms as i64);
    }
    Ok(())
}

impl Job for AlertsJob {
    type Record = DeviceEvent;
    type Format = DeviceEventJson;

    fn info() -> JobInfo {
        JobInfo {
            name: "alerts",
            summary: "device events matched against rules from PostgreSQL: alerts and revokes per device (AWS blog: Flink SQL on Kinesis Data Analytics, MSK → MSK)",
            inputs: "JSON device events {\"Message\", \"Param\": {\"ErrCode\", \"Timestamp\", \"ID\"}, \"DeviceNumber\"}",
            defaults: "--rules and --sla postgresql://…; watermark max event time − 5s − 1ms (--max-out-of-orderness), record-level lateness",
            docs: "docs/jobs/alerts.md",
        }
    }

    /// Rules and device settings are not part of the identity: a restart after a rule change resumes the
    /// checkpoint (states of removed rules are dropped), as the reference's daily restart applies new rules.
    fn identity(&self) -> String {
        format!("alerts bound_ms={}", self.bound_ms)
    }

    fn watermarks(&self) -> WatermarkStrategy {
        WatermarkStrategy::BoundedOutOfOrderness { bound_ms: self.bound_ms }
    }

    fn lateness(&self) -> Lateness {
        Lateness::Record
    }

    fn stream_format(&self) -> Result<DeviceEventJson, String> {
        Ok(DeviceEventJson)
    }

    fn file_format(&self, _first_line: Option<&[u8]>) -> Result<DeviceEventJson, String> {
        Ok(DeviceEventJson)
    }

    fn outputs(&self) -> Vec<OutputSchema> {
        vec![OutputSchema {
            name: ALERTS,
            description: "alert and revoke messages (docs/jobs/alerts.md §4), keyed by alert_id",
            fields: fields(),
            id: true,
            event_time: None,
            partition_by: Vec::new(),
            envelope: false,
            watermarks: Some(WatermarkRecords { interval_ms: self.watermark_interval_ms, type_field: 0, type_value: "watermark", watermark_field: 15 }),
        }]
    }

    fn record_noun(&self) -> &'static str {
        "events"
    }

    fn counters(&self) -> &'static [&'static str] {
        &["duplicates"]
    }

    fn build<'s>(&self, records: StreamVec<'s, Time, DeviceEvent>, recovery: &Recovery, counters: &Counters) -> JobStreams<'s> {
        let dead_letter = self.outputs().len() as u16;
        let (rows, checkpoint_parts) = operator::alert_rows(records, self, recovery, dead_letter, counters);
        JobStreams { rows, checkpoint_parts }
    }
}
