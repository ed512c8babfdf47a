//! The dispatch job (`taxiflow run dispatch`, `docs/jobs/dispatch.md`): the blog's second Flink SQL application,
//! which turns the alert topic into work orders on a dispatch topic — delay, de-duplication (one work order per
//! device), priority override and revoke.
//!
//! # Shape
//! 1. **Due intervals** (a keyed timely operator, by device): an alert X is due on `[alert_time + delay_ms,
//!    revoke_time)`; its `alert` record becomes the update `(device, X) +1` at event time `alert_time + delay_ms`,
//!    its `revoke` the update `−1` at `max(revoke_time, alert_time + delay_ms)` — so an alert revoked before it is
//!    due cancels out and is never due. A second `alert` of the same `alert_id` (an at-least-once redelivery) is
//!    dead-lettered as `duplicate`.
//! 2. **The open work order** per device is a top-1 `reduce` of `differential-dataflow` over that collection of due
//!    alerts, ranked by priority (highest first), then `alert_time`, then `alert_id` ([`Candidate`]'s order): a
//!    function of event time, all changes of one millisecond applying together.
//! 3. **Messages** (a keyed timely operator over the reduce's output changes): when the frontier passes t, a device
//!    whose top changed at t gets `close` of the old top (`revoked` if it stopped being due at t, else
//!    `superseded`), then `dispatch` of the new one.
//!
//! Progress comes from the alert topic's watermark records (per partition); at the end of a bounded input every
//! alert still to become due is dispatched at its due time. The job does not take checkpoints yet.

pub mod record;

use std::collections::{BTreeMap, HashMap, HashSet};

use differential_dataflow::{AsCollection, VecCollection};
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Concat;
use timely::dataflow::StreamVec;

use crate::epoch::{event_time_frontier, time, Recovery, Time};
use crate::job::{Counters, Job, JobInfo, JobStreams, Lateness, WatermarkStrategy};
use crate::output::{dead_letter_row, Field, FieldType, Origin, OutputSchema, Row, Value};
use crate::window::aggregate::key_hash;
use record::{AlertJson, AlertKind, AlertRecord};

/// Name of the job's output (the dispatch topic; `dispatch.jsonl` of a file sink).
pub const DISPATCH: &str = "dispatch";

/// Index of the `duplicates` counter.
pub const DUPLICATES: usize = 0;

/// A due alert as the reduce ranks it: the smallest is the open work order (highest priority, then earliest
/// `alert_time`, then smallest `alert_id`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Candidate {
    /// `−priority`.
    pub neg_priority: i64,
    /// `alert_time`, ms since the Unix epoch.
    pub alert_time: u64,
    /// `alert_id`.
    pub alert_id: String,
    /// `alert_type`.
    pub alert_type: String,
    /// `info`.
    pub info: Option<String>,
}

/// An update of the collection of due alerts: `((device, alert), time, diff)`.
type DueUpdate = ((i64, Candidate), Time, isize);

/// The dispatch job (it has no settings of its own).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DispatchJob;

fn fields() -> Vec<Field> {
    vec![
        Field::required("type", FieldType::Keyword),
        Field::required("alert_id", FieldType::Keyword),
        Field::required("device", FieldType::Long),
        Field::required("alert_type", FieldType::Keyword),
        Field::nullable("reason", FieldType::Keyword),
        Field::nullable("priority", FieldType::Long),
        Field::nullable("info", FieldType::Text),
        Field::nullable("close_time", FieldType::Instant),
        Field::nullable("dispatch_time", FieldType::Instant),
    ]
}

impl Job for DispatchJob {
    type Record = AlertRecord;
    type Format = AlertJson;

    fn info() -> JobInfo {
        JobInfo {
            name: "dispatch",
            summary: "alerts → work orders per device: delay, de-duplication, priority override, revoke (a top-1 reduce of differential dataflow)",
            inputs: "the alerts job's messages (alert, revoke, watermark)",
            defaults: "progress from the alert topic's watermark records; record-level lateness",
            docs: "docs/jobs/dispatch.md",
        }
    }

    fn watermarks(&self) -> WatermarkStrategy {
        WatermarkStrategy::Records
    }

    fn lateness(&self) -> Lateness {
        Lateness::Record
    }

    fn stream_format(&self) -> Result<AlertJson, String> {
        Ok(AlertJson)
    }

    fn file_format(&self, _first_line: Option<&[u8]>) -> Result<AlertJson, String> {
        Ok(AlertJson)
    }

    fn outputs(&self) -> Vec<OutputSchema> {
        vec![OutputSchema {
            name: DISPATCH,
            description: "dispatch and close messages of the open work order per device, keyed by alert_id",
            fields: fields(),
            id: true,
            event_time: None,
            partition_by: Vec::new(),
            envelope: false,
            watermarks: None,
        }]
    }

    fn record_noun(&self) -> &'static str {
        "alert records"
    }

    fn counters(&self) -> &'static [&'static str] {
        &["duplicates"]
    }

    fn build<'s>(&self, records: StreamVec<'s, Time, AlertRecord>, _recovery: &Recovery, counters: &Counters) -> JobStreams<'s> {
        let dead_letter = self.outputs().len() as u16;
        let (due, duplicates) = due_updates(records, dead_letter, counters);
        let due: VecCollection<'s, Time, (i64, Candidate), isize> = due.as_collection();
        let top = due.clone().reduce(|_device, input, output| output.push((input[0].0.clone(), 1isize)));
        let rows = messages(top.inner, due.inner).concat(duplicates);
        let scope = rows.scope();
        let checkpoint_parts = timely::dataflow::operators::generic::operator::empty(scope);
        JobStreams { rows, checkpoint_parts }
    }
}

/// Step 1: the updates of the collection of due alerts, and the `duplicate` dead letters.
fn due_updates<'s>(records: StreamVec<'s, Time, AlertRecord>, dead_letter: u16, counters: &Counters) -> (StreamVec<'s, Time, DueUpdate>, StreamVec<'s, Time, Row>) {
    let scope = records.scope();
    let counters = counters.clone();
    let mut builder = OperatorBuilder::new("dispatch.due".to_owned(), scope);
    let mut input = builder.new_input(records, Exchange::new(|r: &AlertRecord| key_hash(&r.device())));
    let (due_output, due) = builder.new_output::<Vec<DueUpdate>>();
    let (dead_output, dead) = builder.new_output::<Vec<Row>>();
    let mut due_output = OutputBuilder::<_, CapacityContainerBuilder<Vec<DueUpdate>>>::from(due_output);
    let mut dead_output = OutputBuilder::<_, CapacityContainerBuilder<Vec<Row>>>::from(dead_output);
    builder.build(move |_capabilities| {
        // alert_id → (device, the alert, its due time) while not revoked; revokes that came before their alert;
        // alert_ids revoked (so that a redelivered alert is recognised after its revoke too).
        let mut open: HashMap<String, (i64, Candidate, u64)> = HashMap::new();
        let mut early_revokes: HashMap<String, u64> = HashMap::new();
        let mut closed: HashSet<String> = HashSet::new();
        // The dead letter of a redelivered record read at `origin`, with its event time.
        let duplicate = move |origin: Option<Box<Origin>>, t: u64| dead_letter_row(dead_letter, "duplicate".to_string(), origin.map_or_else(Origin::default, |o| *o), Some(t), None, None);
        move |_frontiers| {
            let (mut due_handle, mut dead_handle) = (due_output.activate(), dead_output.activate());
            input.for_each_time(|cap, batches| {
                let epoch = cap.time().inner;
                let mut updates: Vec<DueUpdate> = Vec::new();
                let mut duplicates: Vec<Row> = Vec::new();
                for batch in batches {
                    for record in batch.drain(..) {
                        let device = record.device();
                        match record.kind {
                            AlertKind::Alert(a) => {
                                if open.contains_key(&a.alert_id) || closed.contains(&a.alert_id) {
                                    duplicates.push(duplicate(record.origin, a.alert_time));
                                    continue;
                                }
                                let due_at = a.alert_time + a.delay_ms;
                                let candidate = Candidate { neg_priority: -a.priority, alert_time: a.alert_time, alert_id: a.alert_id.clone(), alert_type: a.alert_type, info: a.info };
                                updates.push(((device, candidate.clone()), time(due_at, epoch), 1));
                                match early_revokes.remove(&a.alert_id) {
                                    Some(revoke_time) => {
                                        updates.push(((device, candidate), time(revoke_time.max(due_at), epoch), -1));
                                        closed.insert(a.alert_id);
                                    }
                                    None => {
                                        open.insert(a.alert_id, (device, candidate, due_at));
                                    }
                                }
                            }
                            AlertKind::Revoke { alert_id, revoke_time, .. } => match open.remove(&alert_id) {
                                Some((device, candidate, due_at)) => {
                                    updates.push(((device, candidate), time(revoke_time.max(due_at), epoch), -1));
                                    closed.insert(alert_id);
                                }
                                None if closed.contains(&alert_id) => duplicates.push(duplicate(record.origin, revoke_time)),
                                None => {
                                    early_revokes.insert(alert_id, revoke_time);
                                }
                            },
                        }
                    }
                }
                if !updates.is_empty() {
                    due_handle.session(&cap.retain(0)).give_iterator(updates.into_iter());
                }
                if !duplicates.is_empty() {
                    counters.add(DUPLICATES, duplicates.len() as u64);
                    dead_handle.session(&cap.retain(1)).give_iterator(duplicates.into_iter());
                }
            });
        }
    });
    (due, dead)
}

/// What changed for one device at one event time: the reduce's output updates, and the alerts that stopped being
/// due (a `−1` of the due collection).
#[derive(Default)]
struct Changes {
    top: Vec<(Candidate, isize)>,
    left: HashSet<String>,
}

/// Step 3: the messages of the changes of the open work order (see the module documentation).
fn messages<'s>(top: StreamVec<'s, Time, DueUpdate>, due: StreamVec<'s, Time, DueUpdate>) -> StreamVec<'s, Time, Row> {
    let scope = top.scope();
    let mut builder = OperatorBuilder::new("dispatch.messages".to_owned(), scope);
    let by_device = |u: &DueUpdate| key_hash(&(u.0).0);
    let mut top_input = builder.new_input(top, Exchange::new(by_device));
    let mut due_input = builder.new_input(due, Exchange::new(by_device));
    let (rows_output, rows) = builder.new_output::<Vec<Row>>();
    let mut rows_output = OutputBuilder::<_, CapacityContainerBuilder<Vec<Row>>>::from(rows_output);
    builder.build(move |mut capabilities| {
        let mut floor = capabilities.pop();
        let mut pending: BTreeMap<u64, BTreeMap<i64, Changes>> = BTreeMap::new();
        move |frontiers| {
            top_input.for_each_time(|_, batches| {
                for batch in batches {
                    for ((device, candidate), t, diff) in batch.drain(..) {
                        pending.entry(t.outer).or_default().entry(device).or_default().top.push((candidate, diff));
                    }
                }
            });
            due_input.for_each_time(|_, batches| {
                for batch in batches {
                    for ((device, candidate), t, diff) in batch.drain(..) {
                        if diff < 0 {
                            pending.entry(t.outer).or_default().entry(device).or_default().left.insert(candidate.alert_id);
                        }
                    }
                }
            });
            let passed = [frontiers[0].frontier(), frontiers[1].frontier()].iter().filter_map(|f| event_time_frontier(*f)).min().unwrap_or(u64::MAX);
            let Some(cap) = floor.as_ref() else { return };
            let mut output = rows_output.activate();
            while let Some(entry) = pending.first_entry() {
                let t = *entry.key();
                if t >= passed {
                    break;
                }
                let mut rows = Vec::new();
                for (device, changes) in entry.remove() {
                    let mut net: BTreeMap<Candidate, isize> = BTreeMap::new();
                    for (c, d) in changes.top {
                        *net.entry(c).or_default() += d;
                    }
                    let old = net.iter().find(|(_, d)| **d < 0).map(|(c, _)| c.clone());
                    let new = net.iter().find(|(_, d)| **d > 0).map(|(c, _)| c.clone());
                    if let Some(x) = old {
                        let reason = if changes.left.contains(&x.alert_id) { "revoked" } else { "superseded" };
                        rows.push(message(t, device, &x, Some(reason)));
                    }
                    if let Some(y) = new {
                        rows.push(message(t, device, &y, None));
                    }
                }
                if !rows.is_empty() {
                    output.session(&cap.delayed(&time(t, cap.time().inner))).give_iterator(rows.into_iter());
                }
            }
            if frontiers[0].frontier().is_empty() && frontiers[1].frontier().is_empty() && pending.is_empty() {
                floor = None;
            } else if let Some(cap) = floor.as_mut() {
                let hold = pending.keys().next().copied().unwrap_or(passed).min(passed);
                let epoch = [frontiers[0].frontier(), frontiers[1].frontier()].iter().flat_map(|f| f.iter().map(|t| t.inner)).min().unwrap_or(cap.time().inner).max(cap.time().inner);
                let target = time(hold.max(cap.time().outer), epoch);
                if *cap.time() != target {
                    cap.downgrade(&target);
                }
            }
        }
    });
    rows
}

/// A `close` (with its reason) or `dispatch` message of `x` on `device` at `t`; sorted by time, closes before
/// dispatches (a device's close comes before its dispatch, §5), then by `alert_id`.
fn message(t: u64, device: i64, x: &Candidate, close: Option<&str>) -> Row {
    let mut values = vec![Value::Absent; 9];
    values[1] = Value::Str(x.alert_id.clone());
    values[2] = Value::Int(device);
    values[3] = Value::Str(x.alert_type.clone());
    match close {
        Some(reason) => {
            values[0] = Value::Str("close".into());
            values[4] = Value::Str(reason.into());
            values[7] = Value::Int(t as i64);
        }
        None => {
            values[0] = Value::Str("dispatch".into());
            values[5] = Value::Int(-x.neg_priority);
            values[6] = x.info.clone().map_or(Value::Null, Value::Str);
            values[8] = Value::Int(t as i64);
        }
    }
    Row { output: 0, id: x.alert_id.clone(), order: 2 * t as i64 + i64::from(close.is_none()), window: None, values }
}
