//! The alert operator: device events → alert and revoke rows (and `duplicate` dead letters), keyed by device.
//!
//! # Shape
//! `StreamVec<Time, DeviceEvent>` → `StreamVec<Time, Row>` (+ checkpoint parts). Events are exchanged by the hash of
//! `DeviceNumber` and wait in buckets by event time, in arrival order. Once the input frontier's event time passes
//! an event's time (every earlier event of its device has arrived: lateness is record-level), the events it passed
//! are evaluated bucket by bucket in event time, each bucket sorted by `(device, ID, place read)`: for each device
//! in event order `(time, ID)`, as `docs/jobs/alerts.md` §1 requires, through every rule's state machine
//! ([`super::machine`]). Messages travel at their event time, so the sink releases them when the frontier passes
//! it. An event with the same `(time, ID)` as another pending event of its device that was read before it (a
//! smaller offset of the same source; otherwise by source, then arrival) is a redelivery: a `duplicate` dead letter
//! at the event's own timestamp (both are pending together: a redelivery that arrives after its original was
//! evaluated is behind the watermark, so late).
//!
//! # Checkpoints
//! As Flink's aligned checkpoints hold back records behind a barrier, an event of an epoch beyond the one being
//! filled (`done + 1`) is not evaluated (nor any later event of its device) until the epochs before it are
//! complete: so the state sent for epoch `e` — the rule states and the pending events of epochs `≤ e` — holds
//! exactly the effects of the input of epochs `≤ e`, and the messages of every evaluation it reflects travel at
//! epochs `≤ e` (acknowledged before the checkpoint is written). Restore keeps the entries whose device hash routes
//! to this instance (any `-w`/`-n`) and drops the states of rules that no longer exist.

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap as HashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::StreamVec;

use super::event::DeviceEvent;
use super::machine::{step, RuleState};
use super::{enrich, message_rows, AlertsJob, DUPLICATES};
use crate::epoch::{event_time_frontier, time, CheckpointPart, EpochCaps, PartsOutput, Recovery, Time};
use crate::job::Counters;
use crate::output::{dead_letter_row, PackedOrigin, Row};
use crate::window::aggregate::key_hash;

/// Name of the operator's checkpoint parts.
pub const OPERATOR: &str = "alerts.rules";

/// The checkpointed state of one instance.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct AlertState {
    /// (device, rule_id) → its state machine, non-empty states only.
    machines: Vec<((i64, i32), RuleState)>,
    /// Events read in epochs `≤ e` and not evaluated yet, with their origins (a redelivery among them is found
    /// when they are evaluated, and its dead letter names where it was read).
    pending: Vec<DeviceEvent>,
}

/// An event waiting for the frontier to pass its time.
struct Waiting {
    /// Arrival order at this instance (restored events first, in their checkpoint's order): the last tie-break of
    /// which of two equal events is the original ([`read_order`]).
    seq: u64,
    /// The epoch it was read in (0 for restored events).
    epoch: u64,
    event: DeviceEvent,
}

/// The order in which two pending events with the same (device, time, ID) were read: by source and offset
/// ([`PackedOrigin::position`]; deterministic under any `-w`), then by arrival.
fn read_order(w: &Waiting) -> (Option<(&[u8], u64)>, u64) {
    (w.event.origin.as_ref().map(PackedOrigin::position), w.seq)
}

/// Pending events by event time (ms since the Unix epoch), each bucket in arrival order.
type Pending = BTreeMap<u64, Vec<Waiting>>;

/// The rule states of one device: `(rule_id, state)`, non-empty states only, at most one per rule, held in the map
/// entry for up to two rules (the blog's). One map entry per device instead of one per (device, rule), and no
/// allocation of its own: an event reads one entry, not one per rule (the map lookups were 9 % of a `-w 2` run's
/// CPU, nearly all cache misses in a map of 100k devices; a `Vec` per device only moved the miss to its heap block).
type DeviceRules = smallvec::SmallVec<[(i32, RuleState); 2]>;

/// Runs every rule of `rules`, in their order, over `event` on its device's `states`, appending the messages to
/// `messages`; states that end empty are dropped.
fn evaluate(rules: &[super::rules::Rule], states: &mut DeviceRules, event: &DeviceEvent, messages: &mut Vec<Row>) {
    for rule in rules {
        let s = match states.iter_mut().find(|(r, _)| *r == rule.rule_id) {
            Some((_, state)) => step(rule, state, event),
            None => {
                let mut state = RuleState::default();
                let s = step(rule, &mut state, event);
                if !state.is_empty() {
                    states.push((rule.rule_id, state));
                }
                s
            }
        };
        message_rows(rule, event.device, s, messages);
    }
    states.retain(|(_, state)| !state.is_empty());
}

/// Builds the operator (see the module documentation); `dead_letter` is the run's dead-letter output index.
///
/// # Panics
/// A checkpoint part of this operator that does not deserialize (the store verified its checksum, so it is
/// another job's state).
pub fn alert_rows<'s>(events: StreamVec<'s, Time, DeviceEvent>, job: &AlertsJob, recovery: &Recovery, dead_letter: u16, counters: &Counters) -> (StreamVec<'s, Time, Row>, StreamVec<'s, Time, CheckpointPart>) {
    let scope = events.scope();
    let (index, peers) = (scope.index() as u64, scope.peers() as u64);
    let job = job.clone();
    let counters = counters.clone();
    let mut machines: HashMap<i64, DeviceRules> = HashMap::default();
    let mut pending: Pending = BTreeMap::new();
    let mut arrivals: u64 = 0;
    let rules_at_start = job.rules.current().1;
    for bytes in recovery.windows.get(OPERATOR).into_iter().flatten() {
        let part: AlertState = bincode::deserialize(bytes).unwrap_or_else(|e| panic!("checkpointed state of {OPERATOR} does not match this job: {e}"));
        for ((device, rule), state) in part.machines {
            if key_hash(&device) % peers == index && rules_at_start.iter().any(|r| r.rule_id == rule) {
                machines.entry(device).or_default().push((rule, state));
            }
        }
        for event in part.pending {
            if key_hash(&event.device) % peers == index {
                pending.entry(event.time).or_default().push(Waiting { seq: arrivals, epoch: 0, event });
                arrivals += 1;
            }
        }
    }
    let checkpointing = recovery.enabled;
    let start_epoch = recovery.start_epoch;

    let mut builder = OperatorBuilder::new("alerts".to_owned(), scope);
    let activator = scope.activator_for(builder.operator_info().address);
    // Messages evaluated but not emitted yet because the device settings could not be looked up, at their times:
    // while there are any, nothing else is evaluated and no epoch is completed, so no checkpoint holds the rule
    // states that produced them before they are emitted.
    let mut stalled: Vec<(Time, Vec<Row>)> = Vec::new();
    let mut rules_version = job.rules.current().0;
    // The (event-time frontier, epoch limit) of the last evaluation: events held back for an epoch wait until it
    // changes.
    let mut last_pass = (0, 0);
    let mut input = builder.new_input(events, Exchange::new(|e: &DeviceEvent| key_hash(&e.device)));
    let (rows_output, rows) = builder.new_output::<Vec<Row>>();
    let (parts_output, parts) = builder.new_output::<Vec<CheckpointPart>>();
    let mut rows_output = OutputBuilder::<_, CapacityContainerBuilder<Vec<Row>>>::from(rows_output);
    let mut parts_output = PartsOutput::from(parts_output);
    builder.build(move |capabilities| {
        let mut caps = EpochCaps::new(capabilities, start_epoch, checkpointing);
        move |frontiers| {
            let frontier = frontiers[0].frontier();
            // Take the input.
            input.for_each_time(|cap, batches| {
                let epoch = cap.time().inner;
                for batch in batches {
                    for event in batch.drain(..) {
                        pending.entry(event.time).or_default().push(Waiting { seq: arrivals, epoch, event });
                        arrivals += 1;
                    }
                }
            });
            if !stalled.is_empty() {
                match enrich(job.sla.as_ref(), &mut stalled) {
                    Ok(()) => emit(&mut rows_output, &caps, std::mem::take(&mut stalled)),
                    Err(_) => {
                        activator.activate_after(LOOKUP_RETRY);
                        return;
                    }
                }
            }
            // Checkpoint parts of the epochs this activation completed, before anything of a later epoch is evaluated.
            caps.complete_epochs(frontier, &mut parts_output, |e| CheckpointPart::Window { operator: OPERATOR.to_string(), worker: index as usize, state: snapshot(&machines, &pending, e) });
            let done = caps.done;
            // At the end every epoch is complete.
            let limit = if frontier.is_empty() { u64::MAX } else { done + 1 };
            // Evaluate, in event order, every event the event-time frontier has passed, up to the first of an epoch
            // beyond the one being filled.
            let passed = event_time_frontier(frontier).unwrap_or(u64::MAX);
            // The rules in force; after a change, the states of rules that are gone are dropped.
            let (version, rules) = job.rules.current();
            if version != rules_version {
                machines.retain(|_, states| {
                    states.retain(|(rule, _)| rules.iter().any(|r| r.rule_id == *rule));
                    !states.is_empty()
                });
                rules_version = version;
            }
            let mut evaluated: Vec<(Time, Vec<Row>)> = Vec::new();
            let ready = pending.first_key_value().is_some_and(|(t, _)| *t < passed);
            if caps.floor.is_some() && ready && last_pass != (passed, limit) {
                last_pass = (passed, limit);
                let later = pending.split_off(&passed);
                let ready = std::mem::replace(&mut pending, later);
                let mut duplicates = Vec::new();
                // Devices with an event held back for a later epoch: their later events wait too (event order).
                let mut held: FxHashSet<i64> = FxHashSet::default();
                // Bucket by bucket in event time, so each device's events in event order (time, ID); within a bucket
                // by (device, ID), and for the same (device, time, ID) the one read first in its source (the smaller
                // offset) is the original, whichever worker read it, then arrival order. (Each bucket is sorted
                // instead of all the passed events at once: no copy of them into one vector, and short sorts.)
                for (_, mut bucket) in ready {
                    bucket.sort_unstable_by(|a, b| (a.event.device, &a.event.id).cmp(&(b.event.device, &b.event.id)).then_with(|| read_order(a).cmp(&read_order(b))));
                    // The previous event's (device, ID) in the bucket.
                    let mut previous: Option<(i64, compact_str::CompactString)> = None;
                    for w in bucket {
                        let event = w.event;
                        let key = (event.device, event.id.clone());
                        if previous.as_ref() == Some(&key) {
                            let origin = PackedOrigin::unpack_or_default(event.origin.as_ref());
                            duplicates.push((time(event.time, w.epoch.max(done + 1)), vec![dead_letter_row(dead_letter, "duplicate".to_string(), origin, Some(event.time), None, None)]));
                            continue;
                        }
                        previous = Some(key);
                        if w.epoch > limit || (!held.is_empty() && held.contains(&event.device)) {
                            held.insert(event.device);
                            pending.entry(event.time).or_default().push(Waiting { event, ..w });
                            continue;
                        }
                        let mut messages = Vec::new();
                        match machines.get_mut(&event.device) {
                            Some(states) => {
                                evaluate(&rules, states, &event, &mut messages);
                                if states.is_empty() {
                                    machines.remove(&event.device);
                                }
                            }
                            None => {
                                let mut states = DeviceRules::new();
                                evaluate(&rules, &mut states, &event, &mut messages);
                                if !states.is_empty() {
                                    machines.insert(event.device, states);
                                }
                            }
                        }
                        if !messages.is_empty() {
                            evaluated.push((time(event.time, done + 1), messages));
                        }
                    }
                }
                if !duplicates.is_empty() {
                    counters.add(DUPLICATES, duplicates.len() as u64);
                    emit(&mut rows_output, &caps, duplicates);
                }
            }
            match enrich(job.sla.as_ref(), &mut evaluated) {
                Ok(()) => emit(&mut rows_output, &caps, evaluated),
                Err(_) => {
                    // The lookup reports and, when the failure lasts, stops the run.
                    stalled = evaluated;
                    activator.activate_after(LOOKUP_RETRY);
                }
            }
            // Held at the earliest pending event (one of an epoch held back may be earlier than the frontier), and
            // at the earliest stalled message.
            let stalled_at = stalled.iter().map(|(t, _)| t.outer).min().unwrap_or(u64::MAX);
            let hold = pending.first_key_value().map_or(passed, |(t, _)| (*t).min(passed)).min(stalled_at);
            if !stalled.is_empty() && frontier.is_empty() {
                return; // the capabilities stay until the stalled messages are emitted
            }
            caps.settle(frontier, hold, &mut parts_output, || CheckpointPart::Window { operator: OPERATOR.to_string(), worker: index as usize, state: snapshot(&machines, &pending, u64::MAX) });
        }
    });
    (rows, parts)
}

/// How soon an activation whose device settings could not be looked up asks again.
const LOOKUP_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

/// Emits `batches` of messages at their times, one session per distinct time (the batches come in device order,
/// and a session per batch made a container per message for the sink's exchange).
fn emit(output: &mut OutputBuilder<Time, CapacityContainerBuilder<Vec<Row>>>, caps: &EpochCaps, mut batches: Vec<(Time, Vec<Row>)>) {
    let Some(floor) = &caps.floor else { return };
    // Stable: the messages of one time keep their evaluation order.
    batches.sort_by_key(|(t, _)| (t.outer, t.inner));
    let mut output = output.activate();
    let mut batches = batches.into_iter().peekable();
    while let Some((t, rows)) = batches.next() {
        let cap = floor.delayed(&t);
        let mut session = output.session(&cap);
        session.give_iterator(rows.into_iter());
        while let Some((_, rows)) = batches.next_if(|(next, _)| *next == t) {
            session.give_iterator(rows.into_iter());
        }
    }
}

/// The state of epoch `e`: every rule state, and the pending events read in epochs `≤ e`.
fn snapshot(machines: &HashMap<i64, DeviceRules>, pending: &Pending, e: u64) -> Vec<u8> {
    let mut state = AlertState {
        machines: machines.iter().flat_map(|(device, states)| states.iter().map(|(rule, s)| ((*device, *rule), s.clone()))).collect(),
        pending: pending.values().flatten().filter(|w| w.epoch <= e).map(|w| w.event.clone()).collect(),
    };
    state.machines.sort_by_key(|(k, _)| *k);
    bincode::serialize(&state).expect("alert state serializes")
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use timely::dataflow::operators::generic::OutputBuilderSession;
    use timely::dataflow::operators::{Capability, Inspect};
    use timely::order::Product;

    use super::*;
    use crate::epoch::run_scripted;
    use crate::jobs::alerts::rules::{blog_rules, rules_of};
    use crate::jobs::alerts::SlaTable;

    fn event(message: &str, code: Option<i64>, time: u64, id: &str) -> DeviceEvent {
        DeviceEvent { time, id: id.into(), device: 1, message: message.into(), err_code: code, origin: None }
    }

    /// The aligned hold: an event of epoch 2 whose event time the frontier has passed is not evaluated while epoch 1
    /// is incomplete, so epoch 1's part holds the rule state of epoch 1's input only, and the alert it raises is
    /// emitted at epoch 2.
    #[test]
    fn an_event_of_a_later_epoch_waits_until_the_earlier_epoch_is_checkpointed() {
        let rules = rules_of(&blog_rules()).unwrap();
        let job = AlertsJob::new(rules.clone(), Arc::new(SlaTable::new()), &Default::default(), std::time::Duration::from_secs(1)).unwrap();
        let recovery = Recovery { enabled: true, start_epoch: 1, windows: Default::default() };
        let (a, b) = (event("fault", Some(1), 100, "a"), event("fault", Some(2), 101, "b"));
        let rows: Arc<Mutex<Vec<(Time, Row)>>> = Default::default();
        let parts: Arc<Mutex<Vec<(Time, CheckpointPart)>>> = Default::default();
        let (rows_seen, parts_seen) = (rows.clone(), parts.clone());
        // A scripted source that holds one capability in epoch 1 and one in epoch 2.
        let mut script = Some((a.clone(), b.clone()));
        let source = move |activation: usize, caps: &mut Vec<Capability<Time>>, output: &mut OutputBuilderSession<'_, Time, CapacityContainerBuilder<Vec<DeviceEvent>>>| {
            if let Some((a, b)) = script.take() {
                let one = caps[0].delayed(&Product::new(0, 1));
                let two = caps[0].delayed(&Product::new(0, 2));
                output.session(&one).give(a);
                output.session(&two).give(b);
                // Event time 200 has passed A and B, but epoch 1 is not complete.
                *caps = vec![one.delayed(&Product::new(200, 1)), two.delayed(&Product::new(200, 2))];
            } else if activation == 50 {
                // Epoch 1 completes.
                caps.truncate(1);
                caps[0].downgrade(&Product::new(200, 2));
            } else if activation == 100 {
                caps.clear();
            }
        };
        run_scripted(source, move |events| {
            let (out, checkpoint) = alert_rows(events, &job, &recovery, 1, &Counters::new(1));
            checkpoint.inspect_time(move |t, p| parts_seen.lock().unwrap().push((*t, p.clone())));
            out.inspect_time(move |t, r| rows_seen.lock().unwrap().push((*t, r.clone())));
        });
        let parts = parts.lock().unwrap();
        let first = parts.iter().find(|(t, _)| t.inner == 1).expect("a part of epoch 1");
        let CheckpointPart::Window { state, .. } = &first.1 else { panic!("{first:?}") };
        let state: AlertState = bincode::deserialize(state).unwrap();
        let mut after_a = RuleState::default();
        step(&rules[0], &mut after_a, &a);
        assert_eq!(state.machines, vec![((1, 1), after_a)], "epoch 1's part holds the state after A alone");
        let alert = rows.lock().unwrap().iter().find(|(_, r)| r.values[0] == crate::output::Value::Str("alert".into())).cloned().expect("B raises A_AND_B");
        assert_eq!(alert.0.inner, 2, "the alert of an epoch-2 event is emitted at epoch 2");
    }
}
