//! Output 4, "today so far" (pageviews spec §3.4): at each window end `e` of the total output, with `d` the day
//! (in `--timezone`) that contains `e − 1 ms`, the PV and the exact UV of `[start of d, e)`.
//!
//! # Shape
//! 1. **Visitors per window and day**: a keyed window aggregate by `(day, host)` (`crate::window::aggregate`,
//!    folded per input batch on the reading worker, merged by key hash): at each window end `e`, one
//!    `((d, host), count)` per visitor of `d` in the window.
//! 2. **Day state** ([`DayVisitors`], a keyed timely operator by day): turns those into the updates of two
//!    differential collections, the visitors ([`DayVisitor`]: the day and the host packed in one `u64`, +1 at
//!    `(e, epoch)` of the visitor's first window of the day) and the page views `d` (+pv at `(e, epoch)`). When the
//!    event-time frontier passes the end of `d`, it retracts everything it added for `d` at `day end + 1 ms`, so
//!    the arrangements below are compacted to nothing for a closed day instead of growing with every day of the
//!    log (at the end of the input nothing is retracted: it would change no row). It keeps, per open day, each
//!    visitor's first window (an IPv4 visitor as its address, 8 bytes a visitor) and the page views per window:
//!    what it must retract, and its checkpoint (aligned by epoch, as the window aggregates).
//! 3. **Distinct count** (`differential-dataflow`): `visitors.distinct().map(day).count()` and
//!    `page_views.count()`, the exact UV and PV of each day as a function of event time, over arrangements.
//! 4. **Rows** (a keyed timely operator by day): when the frontier passes a window end `e`, the day's counts as
//!    of `e` become the row `(day, e, pv, uv)`, at the latest epoch at which a piece of window `e` arrived (so
//!    that a checkpoint that commits the row has every piece of it).
//!
//! A window that straddles a day's end (a window length that does not divide the day, or an offset that is not
//! a whole number of windows) counts its lines of the earlier day in no row, as the spec's `[start of d, e)`
//! with `e − 1 ms` in `d` says.
//!
//! # Checkpoints
//! Step 2 sends, at each epoch `e`, its days with every update of epochs `≤ e` (a closed day is left out once
//! every update of it is of an epoch `≤ e`: no window of it can be emitted again after a restore from `e`).
//! A restore (any `-w`/`-n`) feeds those updates back into the collections at the first epoch; steps 3 and 4
//! are rebuilt from them.

use std::collections::BTreeMap;

use chrono::{NaiveDate, Offset, TimeZone};
use compact_str::CompactString;
use differential_dataflow::AsCollection;
use rustc_hash::FxHashMap as HashMap;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;

use crate::epoch::{event_time_frontier, event_time_passed, time, CheckpointPart, EpochCaps, PartsOutput, Recovery, Time};
use crate::output::{Row, Value};
use crate::window::aggregate::{key_hash, windowed_aggregate, Aggregated, Count};
use crate::window::{TumblingWindow, Window};

use super::{row_id, PageView, TODAY};

/// A day: days since 1970-01-01 of the local date in the job's time zone.
pub type Day = i32;

/// The days of `--timezone` (an IANA name; UTC by default): which day an instant is in, and when a day ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DayCalendar {
    /// `None`: UTC.
    zone: Option<chrono_tz::Tz>,
}

impl DayCalendar {
    /// Days in UTC.
    pub fn utc() -> DayCalendar {
        DayCalendar { zone: None }
    }

    /// Days in the IANA time zone `name` (e.g. `Europe/Berlin`).
    ///
    /// # Errors
    /// `name` is not a time zone of the IANA database.
    pub fn of(name: &str) -> Result<DayCalendar, String> {
        match name.parse::<chrono_tz::Tz>() {
            Ok(chrono_tz::Tz::UTC) | Ok(chrono_tz::Tz::Etc__UTC) => Ok(DayCalendar::utc()),
            Ok(tz) => Ok(DayCalendar { zone: Some(tz) }),
            Err(_) => Err(format!("{name:?} is not an IANA time zone (e.g. UTC, Europe/Berlin, America/New_York)")),
        }
    }

    /// The zone's name.
    pub fn name(&self) -> &'static str {
        self.zone.map_or("UTC", |z| z.name())
    }

    /// The day that contains `ms` (ms since the Unix epoch).
    pub fn day_of(&self, ms: u64) -> Day {
        let offset_ms = match self.zone {
            None => 0,
            Some(tz) => {
                let utc = chrono::DateTime::from_timestamp_millis(ms as i64).expect("an event time is a valid instant").naive_utc();
                i64::from(tz.offset_from_utc_datetime(&utc).fix().local_minus_utc()) * 1000
            }
        };
        (ms as i64 + offset_ms).div_euclid(86_400_000) as Day
    }

    /// The first instant of `day` (ms since the Unix epoch; the earliest local midnight, or the first local time
    /// after a midnight that a clock change skips).
    pub fn start_of(&self, day: Day) -> i64 {
        let utc_midnight = i64::from(day) * 86_400_000;
        let Some(tz) = self.zone else { return utc_midnight };
        let date = NaiveDate::from_num_days_from_ce_opt(day + 719_163).expect("a day of the log is a valid date");
        // A clock change may skip midnight (e.g. America/Havana): the day then starts at the first local time
        // that exists, found by the hour.
        (0..24)
            .find_map(|h| tz.from_local_datetime(&date.and_hms_opt(h, 0, 0).expect("a valid time")).earliest())
            .map_or(utc_midnight, |t| t.timestamp_millis())
    }

    /// The first instant after `day`.
    pub fn end_of(&self, day: Day) -> u64 {
        self.start_of(day + 1).max(0) as u64
    }

    /// `YYYY-MM-DD`.
    pub fn label(day: Day) -> String {
        let (y, m, d) = crate::calendar::civil_from_days(i64::from(day));
        format!("{y:04}-{m:02}-{d:02}")
    }
}

/// Name of the visitors-per-window-and-day aggregate (its checkpoint parts).
pub const VISITORS_OPERATOR: &str = "pageviews.today_visitors";
/// Name of the day-state operator's checkpoint parts ([`DayState`]).
pub const DAYS_OPERATOR: &str = "pageviews.today_days";

/// A visitor of a day, the key of the visitor collection: one `u64` instead of `(day, host string)` (8 bytes in an
/// arrangement instead of 32, measured as the largest part of the job's memory, see `docs/jobs/pageviews.md`). The
/// day is in the high 31 bits (arithmetic shift, so a day before 1970 in a zone west of UTC keeps its sign); bit 32
/// is clear for an IPv4 visitor, whose low 32 bits are its address, and set for any other visitor (a host name, an
/// IPv6 address, anything else as written), whose low 32 bits are its number among the day's other visitors
/// ([`DayVisitors::names`]). Two visitors of a day are equal iff their host strings are (pageviews spec §1: the
/// visitor is the remote-host string as written): Rust's `Ipv4Addr` parser accepts only the canonical dotted-quad
/// form (no leading zeros, signs or spaces), so an address string and its `u32` map one to one.
pub type DayVisitor = u64;

/// The [`DayVisitor`] of `day` with the low 32 bits `low` (`name`: a numbered name, else an IPv4 address).
fn day_visitor(day: Day, name: bool, low: u32) -> DayVisitor {
    ((i64::from(day) << 33) as u64) | (u64::from(name) << 32) | u64::from(low)
}

/// The day of a [`DayVisitor`].
fn day_of_visitor(visitor: DayVisitor) -> Day {
    ((visitor as i64) >> 33) as Day
}

/// The updates of the visitor collection, `(visitor, time, diff)`.
type VisitorUpdate = (DayVisitor, Time, isize);
/// The updates of the page-view collection, `(day, time, diff)`.
type ViewUpdate = (Day, Time, isize);

/// One open day of the day-state operator. A window end is kept as ms after the day's start
/// ([`DayCalendar::start_of`]; a day lasts at most 25 hours, so it fits in a `u32`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayVisitors {
    /// Page views per window end (ms since the Unix epoch).
    pub views: BTreeMap<u64, u64>,
    /// The IPv4 visitors: address → the end of its first window of the day (the visitor's one `+1` update).
    pub ipv4: HashMap<u32, u32>,
    /// Every other visitor: host as written → (its number among the day's names, the end of its first window of
    /// the day). The numbers are unique per day across the main and the pending states (the operator hands them
    /// out) and are handed out anew on restore.
    pub names: HashMap<CompactString, (u32, u32)>,
    /// The latest epoch of an update of this day.
    pub last_epoch: u64,
}

impl DayVisitors {
    fn add_view(&mut self, end: u64, pv: u64) {
        *self.views.entry(end).or_default() += pv;
    }

    /// Whether the visitor `key` is one of this state's.
    fn has(&self, key: &HostKey) -> bool {
        match key {
            HostKey::Ipv4(ip) => self.ipv4.contains_key(ip),
            HostKey::Name(name) => self.names.contains_key(name),
        }
    }

    /// The visitors with their first window end (ms after the day's start).
    fn visitors(&self, day: Day) -> impl Iterator<Item = (DayVisitor, u32)> + '_ {
        let ipv4 = self.ipv4.iter().map(move |(&ip, &first)| (day_visitor(day, false, ip), first));
        ipv4.chain(self.names.values().map(move |&(n, first)| (day_visitor(day, true, n), first)))
    }

    fn merge(&mut self, other: DayVisitors) {
        for (end, pv) in other.views {
            self.add_view(end, pv);
        }
        for (ip, first) in other.ipv4 {
            let entry = self.ipv4.entry(ip).or_insert(first);
            *entry = (*entry).min(first);
        }
        for (name, (n, first)) in other.names {
            let entry = self.names.entry(name).or_insert((n, first));
            entry.1 = entry.1.min(first);
        }
        self.last_epoch = self.last_epoch.max(other.last_epoch);
    }

    /// Numbers the names `0..n` anew (after a restore merged parts of several checkpoints) and returns `n`.
    fn renumber_names(&mut self) -> u32 {
        for (i, (n, _)) in self.names.values_mut().enumerate() {
            *n = i as u32;
        }
        self.names.len() as u32
    }
}

/// How a host is kept: an IPv4 address as its `u32`, anything else as written.
enum HostKey {
    Ipv4(u32),
    Name(CompactString),
}

impl HostKey {
    fn of(host: &CompactString) -> HostKey {
        match host.parse::<std::net::Ipv4Addr>() {
            Ok(ip) => HostKey::Ipv4(u32::from(ip)),
            Err(_) => HostKey::Name(host.clone()),
        }
    }
}

/// The day-state operator's checkpoint part: its open days, over every update of epochs `≤ e`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct DayState {
    /// `(day, its state)`.
    pub days: Vec<(Day, DayVisitors)>,
}

/// The checkpoint part of worker `worker` with the days of `days` that `keep` keeps, serialized as a [`DayState`]
/// (from references: the day states are not copied).
fn day_part(days: &BTreeMap<Day, DayVisitors>, keep: impl Fn(&Day, &DayVisitors) -> bool, worker: u64) -> CheckpointPart {
    #[derive(Serialize)]
    struct DayStateRef<'a> {
        days: Vec<(Day, &'a DayVisitors)>,
    }
    let part = DayStateRef { days: days.iter().filter(|(d, s)| keep(d, s)).map(|(d, s)| (*d, s)).collect() };
    CheckpointPart::Window { operator: DAYS_OPERATOR.to_string(), worker: worker as usize, state: bincode::serialize(&part).expect("day state serializes") }
}

/// The state that an update of `day` read at `epoch` goes to: the pending state of its epoch when that epoch is
/// not complete yet (with checkpoints), else the main state.
fn state_for<'a>(days: &'a mut BTreeMap<Day, DayVisitors>, pending: &'a mut BTreeMap<u64, BTreeMap<Day, DayVisitors>>, checkpointing: bool, done: u64, epoch: u64, day: Day) -> &'a mut DayVisitors {
    if checkpointing && epoch > done {
        pending.entry(epoch).or_default().entry(day).or_default()
    } else {
        days.entry(day).or_default()
    }
}

/// Output 4's rows (output index `output`) and the checkpoint parts of its operators (see the module docs).
///
/// With `new_visitors_output`, also the rows of that output: each visitor of a day once, at the end of its first window
/// of the day (`day`, `window_end_ms`, `host`), for a sink's HyperLogLog of the day (the Redis sink's `PFADD`).
pub fn today<'s>(records: StreamVec<'s, Time, PageView>, window: TumblingWindow, calendar: DayCalendar, output: u16, new_visitors_output: Option<u16>, recovery: &Recovery) -> (StreamVec<'s, Time, Row>, StreamVec<'s, Time, CheckpointPart>) {
    let (per_window, window_parts) = windowed_aggregate::<_, (Day, CompactString), Count, _>(records, window, VISITORS_OPERATOR, recovery, move |r: PageView| Some(((calendar.day_of(r.event_time), r.host), ())));
    let (visitors, views, ends, new_visitors, day_parts) = day_state(per_window, calendar, new_visitors_output, recovery);
    let uv = visitors.as_collection().distinct().map(day_of_visitor).count();
    let pv = views.as_collection().count();
    let rows = rows(ends, uv.inner, pv.inner, window, calendar, output);
    use timely::dataflow::operators::Concat;
    (rows.concat(new_visitors), window_parts.concat(day_parts))
}

/// Step 2 of the module docs: the collections' updates, the window ends seen (at their window's time), and parts.
#[allow(clippy::type_complexity)]
fn day_state<'s>(
    per_window: StreamVec<'s, Time, Aggregated<(Day, CompactString), Count>>,
    calendar: DayCalendar,
    new_visitors_output: Option<u16>,
    recovery: &Recovery,
) -> (StreamVec<'s, Time, VisitorUpdate>, StreamVec<'s, Time, ViewUpdate>, StreamVec<'s, Time, u64>, StreamVec<'s, Time, Row>, StreamVec<'s, Time, CheckpointPart>) {
    let scope = per_window.scope();
    let (index, peers) = (scope.index() as u64, scope.peers() as u64);
    let mine = move |day: Day| key_hash(&day) % peers == index;
    let mut days: BTreeMap<Day, DayVisitors> = BTreeMap::new();
    for bytes in recovery.windows.get(DAYS_OPERATOR).into_iter().flatten() {
        let part: DayState = bincode::deserialize(bytes).unwrap_or_else(|e| panic!("checkpointed state of {DAYS_OPERATOR} does not match this job: {e}"));
        for (day, state) in part.days.into_iter().filter(|(d, _)| mine(*d)) {
            days.entry(day).or_default().merge(state);
        }
    }
    // The next number of a name per day (see `DayVisitors::names`).
    let mut names_next: HashMap<Day, u32> = days.iter_mut().map(|(&day, state)| (day, state.renumber_names())).collect();
    // The restored updates, fed into the collections at the first epoch.
    let mut restored = !days.is_empty();
    // Updates of epochs not complete yet: epoch → day → state.
    let mut pending: BTreeMap<u64, BTreeMap<Day, DayVisitors>> = BTreeMap::new();
    // Days whose end the frontier has passed (retracted), kept until a checkpoint no longer needs them.
    let mut closed: Vec<Day> = Vec::new();
    let (checkpointing, start_epoch) = (recovery.enabled, recovery.start_epoch);
    // Each day's start and end (with a time zone a lookup in its rules), asked once per day.
    let mut day_bounds: HashMap<Day, (i64, u64)> = HashMap::default();
    let mut bounds = move |day: Day| *day_bounds.entry(day).or_insert_with(|| (calendar.start_of(day), calendar.end_of(day)));

    let mut builder = OperatorBuilder::new(DAYS_OPERATOR.to_owned(), scope);
    let mut input = builder.new_input(per_window, Exchange::new(|a: &Aggregated<(Day, CompactString), Count>| key_hash(&a.key.0)));
    let (visitors_output, visitors) = builder.new_output::<Vec<VisitorUpdate>>();
    let (parts_output, parts) = builder.new_output::<Vec<CheckpointPart>>();
    let (views_output, views) = builder.new_output::<Vec<ViewUpdate>>();
    let (ends_output, ends) = builder.new_output::<Vec<u64>>();
    let mut visitors_output = OutputBuilder::<_, CapacityContainerBuilder<Vec<VisitorUpdate>>>::from(visitors_output);
    let mut parts_output = PartsOutput::from(parts_output);
    let mut views_output = OutputBuilder::<_, CapacityContainerBuilder<Vec<ViewUpdate>>>::from(views_output);
    let (new_output, new_visitors) = builder.new_output::<Vec<Row>>();
    let mut ends_output = OutputBuilder::<_, CapacityContainerBuilder<Vec<u64>>>::from(ends_output);
    let mut new_output = OutputBuilder::<_, CapacityContainerBuilder<Vec<Row>>>::from(new_output);
    builder.build(move |mut capabilities| {
        // New visitors are sent only at the capability of the window they come with.
        drop(capabilities.pop());
        let mut ends_cap = capabilities.pop();
        let mut views_cap = capabilities.pop();
        let mut caps = EpochCaps::new(capabilities, start_epoch, checkpointing);
        for cap in ends_cap.iter_mut().chain(views_cap.iter_mut()) {
            cap.downgrade(&time(0, start_epoch));
        }
        move |frontiers| {
            let frontier = frontiers[0].frontier();
            if restored {
                restored = false;
                if let (Some(floor), Some(views_cap)) = (&caps.floor, &views_cap) {
                    let mut v = visitors_output.activate();
                    let mut p = views_output.activate();
                    for (&day, state) in &days {
                        let start = bounds(day).0;
                        for (visitor, first) in state.visitors(day) {
                            let at = time((start + i64::from(first)) as u64, start_epoch);
                            v.session(&floor.delayed(&at)).give((visitor, at, 1));
                        }
                        for (&end, &pv) in &state.views {
                            p.session(&views_cap.delayed(&time(end, start_epoch))).give((day, time(end, start_epoch), pv as isize));
                        }
                    }
                }
            }
            input.for_each_time(|cap, batches| {
                let (end, epoch) = (cap.time().outer, cap.time().inner);
                let mut v = visitors_output.activate();
                let mut p = views_output.activate();
                let mut visitors = v.session(&cap);
                let mut views = p.session(&cap);
                let mut n = new_output.activate();
                let mut new_rows = n.session(&cap);
                let mut window_views: HashMap<Day, u64> = HashMap::default();
                let mut seen = false;
                for batch in batches {
                    for agg in batch.drain(..) {
                        seen = true;
                        let ((day, host), Count(pv)) = (agg.key, agg.acc);
                        debug_assert_eq!(agg.window.end_ms, end);
                        let (day_start, day_end) = bounds(day);
                        if agg.window.end_ms > day_end {
                            continue; // a window straddling the day's end: counted in no row of the day
                        }
                        *window_views.entry(day).or_default() += pv;
                        // A (day, visitor) key's windows come from one aggregate instance, in order: the first seen
                        // is its first window of the day. Only that one enters the collection (one update per
                        // visitor and day instead of one per window).
                        let key = HostKey::of(&host);
                        let known = |d: &BTreeMap<Day, DayVisitors>| d.get(&day).is_some_and(|s| s.has(&key));
                        if known(&days) || pending.values().any(known) {
                            continue;
                        }
                        if let Some(output) = new_visitors_output {
                            let label = DayCalendar::label(day);
                            let row = Row { output, id: format!("day_visitors-{label}-{host}"), order: end as i64, window: Some(agg.window), values: vec![Value::Str(label), Value::Int(end as i64), Value::Str(host.to_string())] };
                            new_rows.give(row);
                        }
                        let first = (end as i64 - day_start) as u32;
                        let state = state_for(&mut days, &mut pending, checkpointing, caps.done, epoch, day);
                        let visitor = match key {
                            HostKey::Ipv4(ip) => {
                                state.ipv4.insert(ip, first);
                                day_visitor(day, false, ip)
                            }
                            HostKey::Name(name) => {
                                let next = names_next.entry(day).or_default();
                                let n = *next;
                                *next += 1;
                                state.names.insert(name, (n, first));
                                day_visitor(day, true, n)
                            }
                        };
                        state.last_epoch = state.last_epoch.max(epoch);
                        visitors.give((visitor, *cap.time(), 1));
                    }
                }
                for (day, pv) in window_views {
                    let state = state_for(&mut days, &mut pending, checkpointing, caps.done, epoch, day);
                    state.add_view(end, pv);
                    state.last_epoch = state.last_epoch.max(epoch);
                    views.give((day, *cap.time(), pv as isize));
                }
                if seen {
                    ends_output.activate().session(&cap).give(end);
                }
            });
            caps.complete_epochs(frontier, &mut parts_output, |e| {
                for (day, state) in pending.remove(&e).unwrap_or_default() {
                    days.entry(day).or_default().merge(state);
                }
                day_part(&days, |d, s| !(closed.contains(d) && s.last_epoch <= e), index)
            });
            // Days no checkpoint needs any more are dropped (all of them without checkpoints).
            let done = caps.done;
            closed.retain(|d| {
                // Updates of a closed day may still wait in epochs not complete yet (they are in its retraction).
                let keep = checkpointing && (pending.values().any(|p| p.contains_key(d)) || days.get(d).is_some_and(|s| s.last_epoch > done));
                if !keep {
                    days.remove(d);
                    names_next.remove(d);
                }
                keep
            });
            // Close the days the event-time frontier has passed: retract their updates at day end + 1 ms. A
            // retraction changes no row (the rows of a day are at window ends ≤ its end); it only empties the
            // arrangements. So at the end of the input, when nothing will be read again, it is not sent: merging a
            // day's retraction into its arrangements would double them just before the end (measured: the peak of
            // a one-day log).
            let ended = frontier.is_empty();
            let passed = event_time_frontier(frontier).unwrap_or(u64::MAX);
            if let Some(floor) = &caps.floor {
                let open: Vec<Day> = days.keys().chain(pending.values().flat_map(|d| d.keys())).copied().filter(|d| !closed.contains(d)).collect();
                let mut v = visitors_output.activate();
                let mut p = views_output.activate();
                for day in open {
                    let day_end = bounds(day).1;
                    if passed <= day_end || closed.contains(&day) {
                        continue;
                    }
                    closed.push(day);
                    if ended {
                        continue;
                    }
                    let at = time(day_end + 1, caps.done + 1);
                    let cap = floor.delayed(&at);
                    // Everything added for the day: its main state and what waits in epochs not complete yet (a
                    // visitor is in one of them only, with its one +1).
                    let parts: Vec<&DayVisitors> = days.get(&day).into_iter().chain(pending.values().filter_map(|p| p.get(&day))).collect();
                    v.session(&cap).give_iterator(parts.iter().flat_map(|s| s.visitors(day)).map(|(visitor, _)| (visitor, at, -1)));
                    let views = parts.iter().flat_map(|s| s.views.values()).sum::<u64>();
                    p.session(&views_cap.as_ref().expect("held while the floor is").delayed(&at)).give((day, at, -(views as isize)));
                }
            }
            let hold = passed;
            caps.settle(frontier, hold, &mut parts_output, || day_part(&days, |_, _| true, index));
            match &caps.floor {
                None => {
                    views_cap = None;
                    ends_cap = None;
                }
                Some(floor) => {
                    for cap in views_cap.iter_mut().chain(ends_cap.iter_mut()) {
                        if cap.time() != floor.time() {
                            cap.downgrade(floor.time());
                        }
                    }
                }
            }
        }
    });
    (visitors, views, ends, new_visitors, parts)
}

/// Step 4 of the module docs: the rows of output 4 from the window ends and the changes of the day counts.
fn rows<'s>(ends: StreamVec<'s, Time, u64>, uv: StreamVec<'s, Time, ((Day, isize), Time, isize)>, pv: StreamVec<'s, Time, ((Day, isize), Time, isize)>, window: TumblingWindow, calendar: DayCalendar, output: u16) -> StreamVec<'s, Time, Row> {
    let scope = ends.scope();
    let mut builder = OperatorBuilder::new("pageviews.today_rows".to_owned(), scope);
    let mut ends_input = builder.new_input(ends, Exchange::new(move |end: &u64| key_hash(&calendar.day_of(end - 1))));
    let mut uv_input = builder.new_input(uv, Exchange::new(|((day, _), _, _): &((Day, isize), Time, isize)| key_hash(day)));
    let mut pv_input = builder.new_input(pv, Exchange::new(|((day, _), _, _): &((Day, isize), Time, isize)| key_hash(day)));
    let (rows_output, rows) = builder.new_output::<Vec<Row>>();
    let mut rows_output = OutputBuilder::<_, CapacityContainerBuilder<Vec<Row>>>::from(rows_output);
    builder.build(move |_capabilities| {
        // Window end → the capability of its latest piece.
        let mut pending_ends: BTreeMap<u64, Capability<Time>> = BTreeMap::new();
        // Event time → (day, Δpv, Δuv).
        let mut changes: BTreeMap<u64, Vec<(Day, i64, i64)>> = BTreeMap::new();
        // Day → (pv, uv) as of the last window end processed.
        let mut counts: HashMap<Day, (i64, i64)> = HashMap::default();
        move |frontiers| {
            ends_input.for_each_time(|cap, batches| {
                for batch in batches {
                    for end in batch.drain(..) {
                        match pending_ends.get_mut(&end) {
                            Some(held) if held.time().inner >= cap.time().inner => {}
                            Some(held) => *held = cap.delayed(&time(end, cap.time().inner), 0),
                            None => {
                                pending_ends.insert(end, cap.delayed(&time(end, cap.time().inner), 0));
                            }
                        }
                    }
                }
            });
            for (input, is_uv) in [(&mut uv_input, true), (&mut pv_input, false)] {
                input.for_each_time(|_cap, batches| {
                    for batch in batches {
                        for ((day, count), t, diff) in batch.drain(..) {
                            let delta = (count * diff) as i64;
                            changes.entry(t.outer).or_default().push(if is_uv { (day, 0, delta) } else { (day, delta, 0) });
                        }
                    }
                });
            }
            let mut out = rows_output.activate();
            while let Some(entry) = pending_ends.first_entry() {
                let end = *entry.key();
                if !frontiers.iter().all(|f| event_time_passed(f.frontier(), end)) {
                    break;
                }
                let cap = entry.remove();
                while let Some(change) = changes.first_entry() {
                    if *change.key() > end {
                        break;
                    }
                    for (day, dpv, duv) in change.remove() {
                        let c = counts.entry(day).or_default();
                        c.0 += dpv;
                        c.1 += duv;
                        if *c == (0, 0) {
                            counts.remove(&day);
                        }
                    }
                }
                let day = calendar.day_of(end - 1);
                let (pv, uv) = counts.get(&day).copied().unwrap_or_default();
                let label = DayCalendar::label(day);
                let w = Window { start_ms: end - window.length_ms, end_ms: end };
                let row = Row { output, id: row_id(TODAY, w, Some(&label)), order: end as i64, window: Some(w), values: vec![Value::Str(label), Value::Int(end as i64), Value::Int(pv), Value::Int(uv)] };
                out.session(&cap).give(row);
            }
        }
    });
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_visitors_keep_their_day_and_stay_distinct() {
        for day in [-1, 0, 14_356, 2_932_896] {
            for (name, low) in [(false, 0), (false, u32::MAX), (true, 0), (true, 7)] {
                assert_eq!(day_of_visitor(day_visitor(day, name, low)), day, "{day} {name} {low}");
            }
            assert_ne!(day_visitor(day, false, 7), day_visitor(day, true, 7));
            assert_ne!(day_visitor(day, false, u32::MAX), day_visitor(day + 1, false, 0));
        }
    }

    #[test]
    fn only_canonical_ipv4_strings_become_addresses() {
        // The visitor is the host string as written (pageviews spec §1): a string kept as an address must be the
        // one way of writing it, or two visitors would count as one.
        assert!(matches!(HostKey::of(&"10.0.0.255".into()), HostKey::Ipv4(0x0a00_00ff)));
        for other in ["010.0.0.255", "10.0.0.255 ", " 10.0.0.255", "10.0.0", "10.0.0.0.1", "+10.0.0.1", "0x0a.0.0.1", "10.0.0.256", "::ffff:10.0.0.1", "1.2.3.4:80", "host.example"] {
            assert!(matches!(HostKey::of(&other.into()), HostKey::Name(ref n) if n == other), "{other}");
        }
    }

    #[test]
    fn days_in_utc_and_in_a_zone_with_clock_changes() {
        let utc = DayCalendar::utc();
        let t = 1_704_067_200_000u64; // 2024-01-01T00:00:00Z
        assert_eq!(DayCalendar::label(utc.day_of(t)), "2024-01-01");
        assert_eq!(DayCalendar::label(utc.day_of(t - 1)), "2023-12-31");
        assert_eq!(utc.end_of(utc.day_of(t - 1)), t);
        let berlin = DayCalendar::of("Europe/Berlin").unwrap();
        // 2024-01-01T00:00 in Berlin is 2023-12-31T23:00Z.
        assert_eq!(DayCalendar::label(berlin.day_of(t - 3_600_000)), "2024-01-01");
        assert_eq!(DayCalendar::label(berlin.day_of(t - 3_600_001)), "2023-12-31");
        // 2024-03-31 has 23 hours in Berlin (clocks go forward at 02:00).
        let day = berlin.day_of(1_711_843_200_000); // 2024-03-31T00:00Z
        assert_eq!(DayCalendar::label(day), "2024-03-31");
        assert_eq!(berlin.end_of(day) as i64 - berlin.start_of(day), 23 * 3_600_000);
        assert!(DayCalendar::of("Mars/Olympus").unwrap_err().contains("IANA"));
        assert_eq!(DayCalendar::of("UTC").unwrap(), utc);
    }
}
