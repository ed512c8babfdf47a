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
//! alert still to become due is dispatched at its due time.
//!
//! # Checkpoints
//! Both keyed operators send parts: step 1 its pairing state (aligned, [`DueState`]), step 3 the collection of due
//! alerts consolidated at the checkpoint's epoch and compacted below the event time up to which it has emitted
//! ([`MessagesState`]). A restore (any `-w`/`-n`) feeds that collection back into the reduce at the first epoch,
//! and step 3 ignores the changes below each device's restored `emitted_below`: the reduce's arrangement is
//! rebuilt from the consolidated collection instead of being stored.

pub mod record;

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use differential_dataflow::{AsCollection, VecCollection};
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Concat;
use timely::dataflow::StreamVec;

use crate::epoch::{event_time_frontier, time, CheckpointPart, EpochCaps, PartsOutput, Recovery, Time};
use crate::job::{Counters, EventTime, Job, JobInfo, JobStreams, Lateness, WatermarkStrategy};
use crate::output::{dead_letter_row, Field, FieldType, OutputSchema, PackedOrigin, Row, Value};
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

    fn build<'s>(&self, records: StreamVec<'s, Time, AlertRecord>, recovery: &Recovery, counters: &Counters) -> JobStreams<'s> {
        let dead_letter = self.outputs().len() as u16;
        let (due, duplicates, due_parts) = due_updates(records, dead_letter, counters, recovery);
        let due: VecCollection<'s, Time, (i64, Candidate), isize> = due.as_collection();
        let top = due.clone().reduce(|_device, input, output| output.push((input[0].0.clone(), 1isize)));
        let (rows, message_parts) = messages(top.inner, due.inner, recovery);
        JobStreams { rows: rows.concat(duplicates), checkpoint_parts: message_parts.concat(due_parts) }
    }
}

/// Name of the due-update operator's checkpoint parts ([`DueState`]).
pub const DUE_OPERATOR: &str = "dispatch.due";

/// Name of the message operator's checkpoint parts ([`MessagesState`]).
pub const MESSAGES_OPERATOR: &str = "dispatch.messages";

/// The due-update operator's state at the end of an epoch `e`: the pairing of alerts and revokes by `alert_id`, and
/// the records of epochs `≤ e` not processed yet (read after a later epoch's cut, see [`due_updates`]).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct DueState {
    /// `alert_id` → (device, the alert, its due time), while not revoked.
    open: Vec<(String, (i64, Candidate, u64))>,
    /// Revokes that came before their alert: `alert_id` → (device, revoke time).
    early_revokes: Vec<(String, (i64, u64))>,
    /// `alert_id`s revoked: → (device, revoke time). A redelivered alert or revoke is recognised after the revoke
    /// too, until the event-time frontier passes the revoke time ([`Expiry`]).
    closed: Vec<(String, (i64, u64))>,
    /// Records read but not processed yet.
    unprocessed: Vec<AlertRecord>,
}

/// The message operator's state at the end of an epoch `e`, of one worker: every message of an event time below
/// `emitted_below` was emitted at an epoch `≤ e`, none at or above it; and the collection of due alerts of epochs
/// `≤ e`, its times below `emitted_below` advanced to `emitted_below − 1` and consolidated (differential's
/// compaction), so that only alerts still due remain of the past.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct MessagesState {
    /// The worker and the number of workers of the run that sent it (which devices were its own).
    worker: u64,
    peers: u64,
    emitted_below: u64,
    /// `((device, alert), event time, diff)`.
    due: Vec<((i64, Candidate), u64, isize)>,
}

/// When the pairing state of a revoked alert (`closed`) or of a revoke whose alert has not come (`early_revokes`)
/// is dropped: `alert_id`s by revoke time (ms since the Unix epoch). Once the event-time frontier and every record
/// still to process are past a revoke time, any record of that alert still to come is late (its event time,
/// `alert_time` or `revoke_time`, is at most the revoke time, so at or behind the watermark of every partition:
/// the source dead-letters it), so nothing can ask for the entry again. Without this, `closed` held every alert
/// ever revoked, growing for as long as the job ran: 1.2M ids after the 2.55M alert records of 10M device events,
/// where dropping them took the peak RSS of `-w 1` from 706 to 591 MiB.
type Expiry = BTreeMap<u64, Vec<String>>;

/// Drops the entries of `closed` and `early_revokes` whose revoke time is before `bound` (see [`Expiry`]).
fn expire(expiry: &mut Expiry, bound: u64, closed: &mut HashMap<String, (i64, u64)>, early_revokes: &mut HashMap<String, (i64, u64)>) {
    while let Some(entry) = expiry.first_entry() {
        if *entry.key() >= bound {
            break;
        }
        for alert_id in entry.remove() {
            closed.remove(&alert_id);
            early_revokes.remove(&alert_id);
        }
    }
}

/// Step 1: the updates of the collection of due alerts, the `duplicate` dead letters, and checkpoint parts.
///
/// With checkpoints the operator is aligned like Flink's aligned checkpoints: records of an epoch beyond the one
/// being filled (`done + 1`) wait until the earlier epochs are complete, so that the part of epoch `e` (the pairing
/// state and the records still to process) holds exactly the effects of the input of epochs `≤ e`. Updates are
/// emitted at the epoch being filled. A restore keeps the entries of its own devices (any `-w`/`-n`) and emits the
/// restored collection of due alerts ([`MessagesState::due`]) at the first epoch.
fn due_updates<'s>(records: StreamVec<'s, Time, AlertRecord>, dead_letter: u16, counters: &Counters, recovery: &Recovery) -> (StreamVec<'s, Time, DueUpdate>, StreamVec<'s, Time, Row>, StreamVec<'s, Time, CheckpointPart>) {
    let scope = records.scope();
    let (index, peers) = (scope.index() as u64, scope.peers() as u64);
    let mine = move |device: i64| key_hash(&device) % peers == index;
    let counters = counters.clone();
    let mut open: HashMap<String, (i64, Candidate, u64)> = HashMap::default();
    let mut early_revokes: HashMap<String, (i64, u64)> = HashMap::default();
    let mut closed: HashMap<String, (i64, u64)> = HashMap::default();
    // Records by epoch, not processed yet.
    let mut unprocessed: BTreeMap<u64, Vec<AlertRecord>> = BTreeMap::new();
    for bytes in recovery.windows.get(DUE_OPERATOR).into_iter().flatten() {
        let part: DueState = bincode::deserialize(bytes).unwrap_or_else(|e| panic!("checkpointed state of {DUE_OPERATOR} does not match this job: {e}"));
        open.extend(part.open.into_iter().filter(|(_, (d, _, _))| mine(*d)));
        early_revokes.extend(part.early_revokes.into_iter().filter(|(_, (d, _))| mine(*d)));
        closed.extend(part.closed.into_iter().filter(|(_, (d, _))| mine(*d)));
        unprocessed.entry(0).or_default().extend(part.unprocessed.into_iter().filter(|r| mine(r.device())));
    }
    let mut expiry: Expiry = BTreeMap::new();
    for (alert_id, (_, revoke_time)) in closed.iter().chain(early_revokes.iter()) {
        expiry.entry(*revoke_time).or_default().push(alert_id.clone());
    }
    let mut restored_due: Vec<((i64, Candidate), u64, isize)> = Vec::new();
    for bytes in recovery.windows.get(MESSAGES_OPERATOR).into_iter().flatten() {
        let part: MessagesState = bincode::deserialize(bytes).unwrap_or_else(|e| panic!("checkpointed state of {MESSAGES_OPERATOR} does not match this job: {e}"));
        restored_due.extend(part.due.into_iter().filter(|((d, _), _, _)| mine(*d)));
    }
    let (checkpointing, start_epoch) = (recovery.enabled, recovery.start_epoch);
    let mut builder = OperatorBuilder::new("dispatch.due".to_owned(), scope);
    let mut input = builder.new_input(records, Exchange::new(|r: &AlertRecord| key_hash(&r.device())));
    let (due_output, due) = builder.new_output::<Vec<DueUpdate>>();
    let (parts_output, parts) = builder.new_output::<Vec<CheckpointPart>>();
    let (dead_output, dead) = builder.new_output::<Vec<Row>>();
    let mut due_output = OutputBuilder::<_, CapacityContainerBuilder<Vec<DueUpdate>>>::from(due_output);
    let mut parts_output = PartsOutput::from(parts_output);
    let mut dead_output = OutputBuilder::<_, CapacityContainerBuilder<Vec<Row>>>::from(dead_output);
    builder.build(move |mut capabilities| {
        let mut dead_cap = capabilities.pop();
        let mut caps = EpochCaps::new(capabilities, start_epoch, checkpointing);
        if let Some(cap) = dead_cap.as_mut() {
            cap.downgrade(&time(0, start_epoch));
        }
        // The dead letter of a redelivered record read at `origin`, with its event time.
        let duplicate = move |origin: Option<PackedOrigin>, t: u64| dead_letter_row(dead_letter, "duplicate".to_string(), PackedOrigin::unpack_or_default(origin.as_ref()), Some(t), None, None);
        move |frontiers| {
            let frontier = frontiers[0].frontier();
            input.for_each_time(|cap, batches| {
                let epoch = cap.time().inner;
                let records = unprocessed.entry(epoch).or_default();
                for batch in batches {
                    records.append(batch);
                }
            });
            if !restored_due.is_empty() {
                if let Some(floor) = &caps.floor {
                    let restored = std::mem::take(&mut restored_due).into_iter().map(|(key, t, diff)| (key, time(t, start_epoch), diff));
                    due_output.activate().session(floor).give_iterator(restored);
                }
            }
            caps.complete_epochs(frontier, &mut parts_output, |e| due_part(&open, &early_revokes, &closed, &unprocessed, e, index));
            let filling = caps.done + 1;
            // At the end every epoch is complete.
            let limit = if frontier.is_empty() { u64::MAX } else { filling };
            let mut updates: Vec<DueUpdate> = Vec::new();
            let mut duplicates: Vec<Row> = Vec::new();
            while let Some(entry) = unprocessed.first_entry() {
                if *entry.key() > limit {
                    break;
                }
                for record in entry.remove() {
                    let device = record.device();
                    match record.kind {
                        AlertKind::Alert(a) => {
                            if open.contains_key(&a.alert_id) || closed.contains_key(&a.alert_id) {
                                duplicates.push(duplicate(record.origin, a.alert_time));
                                continue;
                            }
                            let due_at = a.alert_time + a.delay_ms;
                            let candidate = Candidate { neg_priority: -a.priority, alert_time: a.alert_time, alert_id: a.alert_id.clone(), alert_type: a.alert_type, info: a.info };
                            updates.push(((device, candidate.clone()), time(due_at, filling), 1));
                            match early_revokes.remove(&a.alert_id) {
                                Some((_, revoke_time)) => {
                                    updates.push(((device, candidate), time(revoke_time.max(due_at), filling), -1));
                                    // Already in `expiry`, at the same revoke time.
                                    closed.insert(a.alert_id, (device, revoke_time));
                                }
                                None => {
                                    open.insert(a.alert_id, (device, candidate, due_at));
                                }
                            }
                        }
                        AlertKind::Revoke { alert_id, revoke_time, .. } => match open.remove(&alert_id) {
                            Some((device, candidate, due_at)) => {
                                updates.push(((device, candidate), time(revoke_time.max(due_at), filling), -1));
                                expiry.entry(revoke_time).or_default().push(alert_id.clone());
                                closed.insert(alert_id, (device, revoke_time));
                            }
                            None if closed.contains_key(&alert_id) => duplicates.push(duplicate(record.origin, revoke_time)),
                            None => {
                                expiry.entry(revoke_time).or_default().push(alert_id.clone());
                                early_revokes.insert(alert_id, (device, revoke_time));
                            }
                        },
                    }
                }
            }
            if let Some(floor) = &caps.floor {
                if !updates.is_empty() {
                    due_output.activate().session(&floor.delayed(&time(floor.time().outer, filling))).give_iterator(updates.into_iter());
                }
            }
            if let Some(cap) = &dead_cap {
                if !duplicates.is_empty() {
                    counters.add(DUPLICATES, duplicates.len() as u64);
                    dead_output.activate().session(cap).give_iterator(duplicates.into_iter());
                }
            }
            // Held at the earliest record still to process and the input's event-time frontier: every update is
            // at or after its record's event time.
            let passed = event_time_frontier(frontier).unwrap_or(u64::MAX);
            let hold = unprocessed.values().flatten().map(EventTime::event_time).min().unwrap_or(passed).min(passed);
            expire(&mut expiry, hold, &mut closed, &mut early_revokes);
            caps.settle(frontier, hold, &mut parts_output, || due_part(&open, &early_revokes, &closed, &unprocessed, u64::MAX, index));
            match (&caps.floor, dead_cap.as_mut()) {
                (None, _) => dead_cap = None,
                (Some(floor), Some(cap)) if cap.time() != floor.time() => cap.downgrade(floor.time()),
                _ => {}
            }
        }
    });
    (due, dead, parts)
}

/// The due-update operator's part of epoch `e` ([`DueState`]): the pairing state and the records of epochs `≤ e`
/// still to process.
fn due_part(open: &HashMap<String, (i64, Candidate, u64)>, early_revokes: &HashMap<String, (i64, u64)>, closed: &HashMap<String, (i64, u64)>, unprocessed: &BTreeMap<u64, Vec<AlertRecord>>, e: u64, worker: u64) -> CheckpointPart {
    let state = DueState {
        open: open.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        early_revokes: early_revokes.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        closed: closed.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        unprocessed: unprocessed.range(..=e).flat_map(|(_, r)| r.iter()).map(|r| AlertRecord { origin: None, ..r.clone() }).collect(),
    };
    CheckpointPart::Window { operator: DUE_OPERATOR.to_string(), worker: worker as usize, state: bincode::serialize(&state).expect("due state serializes") }
}

/// What changed for one device at one event time: the reduce's output updates, and the alerts that stopped being
/// due (a `−1` of the due collection).
#[derive(Default)]
struct Changes {
    top: Vec<(Candidate, isize)>,
    left: HashSet<String>,
}

/// Step 3: the messages of the changes of the open work order (see the module documentation), and checkpoint
/// parts ([`MessagesState`]): the operator keeps the collection of due alerts it is sent (by epoch, then
/// consolidated once an epoch is complete) and the event time below which it has emitted. A restore ignores the
/// changes of its devices below the `emitted_below` of the worker that had each device: those messages were
/// emitted before the checkpoint.
fn messages<'s>(top: StreamVec<'s, Time, DueUpdate>, due: StreamVec<'s, Time, DueUpdate>, recovery: &Recovery) -> (StreamVec<'s, Time, Row>, StreamVec<'s, Time, CheckpointPart>) {
    let scope = top.scope();
    let (index, peers) = (scope.index() as u64, scope.peers() as u64);
    // The restored `emitted_below` of each worker of the checkpointed run, by its worker count.
    let mut emitted_below: BTreeMap<u64, BTreeMap<u64, u64>> = BTreeMap::new();
    for bytes in recovery.windows.get(MESSAGES_OPERATOR).into_iter().flatten() {
        let part: MessagesState = bincode::deserialize(bytes).unwrap_or_else(|e| panic!("checkpointed state of {MESSAGES_OPERATOR} does not match this job: {e}"));
        emitted_below.entry(part.peers).or_default().insert(part.worker, part.emitted_below);
    }
    let restored_max = emitted_below.values().flat_map(|w| w.values()).copied().max().unwrap_or(0);
    // The event time below which a device's messages were emitted before the restored checkpoint.
    let restored_below = move |device: i64| -> u64 { emitted_below.iter().filter_map(|(p, workers)| workers.get(&(key_hash(&device) % p))).copied().max().unwrap_or(0) };
    let (checkpointing, start_epoch) = (recovery.enabled, recovery.start_epoch);
    let mut builder = OperatorBuilder::new("dispatch.messages".to_owned(), scope);
    let by_device = |u: &DueUpdate| key_hash(&(u.0).0);
    let mut top_input = builder.new_input(top, Exchange::new(by_device));
    let mut due_input = builder.new_input(due, Exchange::new(by_device));
    let (rows_output, rows) = builder.new_output::<Vec<Row>>();
    let (parts_output, parts) = builder.new_output::<Vec<CheckpointPart>>();
    let mut rows_output = OutputBuilder::<_, CapacityContainerBuilder<Vec<Row>>>::from(rows_output);
    let mut parts_output = PartsOutput::from(parts_output);
    builder.build(move |capabilities| {
        let mut caps = EpochCaps::new(capabilities, start_epoch, checkpointing);
        let mut pending: BTreeMap<u64, BTreeMap<i64, Changes>> = BTreeMap::new();
        // The collection of due alerts: consolidated for the completed epochs, by epoch for the others.
        let mut collection: HashMap<(i64, Candidate), BTreeMap<u64, isize>> = HashMap::default();
        let mut by_epoch: BTreeMap<u64, Vec<DueUpdate>> = BTreeMap::new();
        let mut below: u64 = 0;
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
                    for update in batch.drain(..) {
                        let ((device, candidate), t, diff) = &update;
                        if *diff < 0 {
                            pending.entry(t.outer).or_default().entry(*device).or_default().left.insert(candidate.alert_id.clone());
                        }
                        if checkpointing {
                            by_epoch.entry(t.inner).or_default().push(update);
                        }
                    }
                }
            });
            let mut joint = timely::progress::Antichain::new();
            for t in frontiers[0].frontier().iter().chain(frontiers[1].frontier().iter()) {
                joint.insert(*t);
            }
            let frontier = joint.borrow();
            let passed = event_time_frontier(frontier).unwrap_or(u64::MAX);
            // Messages first, at the epoch being filled, so that a part sent below says truly up to where this
            // worker has emitted.
            if let Some(floor) = &caps.floor {
                let epoch = caps.done + 1;
                let mut output = rows_output.activate();
                while let Some(entry) = pending.first_entry() {
                    let t = *entry.key();
                    if t >= passed {
                        break;
                    }
                    let mut rows = Vec::new();
                    for (device, changes) in entry.remove() {
                        if t < restored_below(device) {
                            continue; // emitted before the restored checkpoint
                        }
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
                        output.session(&floor.delayed(&time(t, epoch))).give_iterator(rows.into_iter());
                    }
                }
                below = below.max(passed);
            }
            // Parts of the completed epochs — once this run has emitted past every restored `emitted_below`, so that
            // no part claims less than what was emitted before the restore.
            if passed >= restored_max {
                caps.complete_epochs(frontier, &mut parts_output, |e| messages_part(&mut collection, &mut by_epoch, e, below, index, peers));
            }
            let hold = pending.keys().next().copied().unwrap_or(passed).min(passed);
            caps.settle(frontier, hold, &mut parts_output, || messages_part(&mut collection, &mut by_epoch, u64::MAX, below, index, peers));
        }
    });
    (rows, parts)
}

/// The message operator's part of epoch `e` ([`MessagesState`]): the updates of epochs `≤ e` merged into the
/// consolidated `collection`, compacted at `below`.
fn messages_part(collection: &mut HashMap<(i64, Candidate), BTreeMap<u64, isize>>, by_epoch: &mut BTreeMap<u64, Vec<DueUpdate>>, e: u64, below: u64, worker: u64, peers: u64) -> CheckpointPart {
    let later = by_epoch.split_off(&e.saturating_add(1));
    for (key, t, diff) in std::mem::replace(by_epoch, later).into_values().flatten() {
        *collection.entry(key).or_default().entry(t.outer).or_default() += diff;
    }
    compact(collection, below);
    let due = collection.iter().flat_map(|(key, times)| times.iter().map(move |(t, d)| (key.clone(), *t, *d))).collect();
    let state = MessagesState { worker, peers, emitted_below: below, due };
    CheckpointPart::Window { operator: MESSAGES_OPERATOR.to_string(), worker: worker as usize, state: bincode::serialize(&state).expect("messages state serializes") }
}

/// Differential's compaction of the due collection at `below`: times before it are advanced to `below − 1` and
/// consolidated; entries that cancel out are removed.
fn compact(collection: &mut HashMap<(i64, Candidate), BTreeMap<u64, isize>>, below: u64) {
    let Some(to) = below.checked_sub(1) else { return };
    collection.retain(|_, times| {
        let later = times.split_off(&to);
        let past: isize = times.values().sum();
        *times = later;
        if past != 0 {
            *times.entry(to).or_default() += past;
        }
        times.retain(|_, d| *d != 0);
        !times.is_empty()
    });
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use timely::dataflow::operators::generic::OutputBuilderSession;
    use timely::dataflow::operators::{Capability, Inspect};
    use timely::order::Product;

    use super::record::Alert;
    use super::*;
    use crate::epoch::run_scripted;

    fn alert(alert_id: &str, alert_time: u64) -> AlertRecord {
        AlertRecord::of(AlertKind::Alert(Alert { alert_id: alert_id.into(), device: 1, alert_type: "A_AND_B".into(), priority: 5, alert_time, delay_ms: 0, info: None }))
    }

    fn revoke(alert_id: &str, revoke_time: u64) -> AlertRecord {
        AlertRecord::of(AlertKind::Revoke { alert_id: alert_id.into(), device: 1, revoke_time })
    }

    /// The pairing state is bounded ([`Expiry`]): once the event-time frontier passes a revoke time, the revoked id
    /// (and a revoke still waiting for its alert) leaves the state; a revoke the frontier has not passed stays, so
    /// its redelivery is still a duplicate. Read from the checkpoint part of epoch 1, cut after the frontier moved.
    #[test]
    fn revoked_ids_leave_the_pairing_state_once_the_frontier_passes_their_revoke_time() {
        let recovery = Recovery { enabled: true, start_epoch: 1, windows: Default::default() };
        let parts: Arc<Mutex<Vec<(Time, CheckpointPart)>>> = Default::default();
        let dead: Arc<Mutex<Vec<Row>>> = Default::default();
        let (parts_seen, dead_seen) = (parts.clone(), dead.clone());
        let source = |activation: usize, caps: &mut Vec<Capability<Time>>, output: &mut OutputBuilderSession<'_, Time, CapacityContainerBuilder<Vec<AlertRecord>>>| match activation {
            1 => {
                let at = caps[0].delayed(&Product::new(100, 1));
                // X alerted and revoked by 200; Y revoked (before its alert) at 150; Z revoked at 400.
                let batch = vec![alert("x", 100), revoke("x", 200), revoke("y", 150), alert("z", 120), revoke("z", 400)];
                output.session(&at).give_iterator(batch.into_iter());
                caps[0] = at;
            }
            // The frontier passes 200 (X's and Y's revoke times) but not 400, still in epoch 1.
            20 => caps[0].downgrade(&Product::new(300, 1)),
            // A redelivery of Z's revoke (behind 400: the job still knows Z), then epoch 1 completes.
            40 => {
                output.session(&caps[0]).give(revoke("z", 400));
                let next = caps[0].delayed(&Product::new(300, 2));
                caps[0] = next;
            }
            60 => caps.clear(),
            _ => {}
        };
        run_scripted(source, move |records| {
            let (_, duplicates, parts) = due_updates(records, 1, &Counters::new(1), &recovery);
            parts.inspect_time(move |t, p| parts_seen.lock().unwrap().push((*t, p.clone())));
            duplicates.inspect(move |r| dead_seen.lock().unwrap().push(r.clone()));
        });
        let parts = parts.lock().unwrap();
        let first = parts.iter().find(|(t, p)| t.inner == 1 && matches!(p, CheckpointPart::Window { operator, .. } if operator == DUE_OPERATOR)).expect("a part of epoch 1");
        let CheckpointPart::Window { state, .. } = &first.1 else { panic!("{first:?}") };
        let state: DueState = bincode::deserialize(state).unwrap();
        assert_eq!(state.closed, vec![("z".to_string(), (1, 400))], "X left with the frontier past 200, Z stays");
        assert!(state.early_revokes.is_empty(), "Y's revoke left too: {:?}", state.early_revokes);
        assert_eq!(dead.lock().unwrap().len(), 1, "the redelivered revoke of Z is a duplicate");
    }
}
