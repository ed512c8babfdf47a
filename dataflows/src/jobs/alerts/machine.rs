//! The per-(device, rule) state machine of both templates (`docs/jobs/alerts.md` §2), run over a device's events
//! in event order `(time, ID)`, and the messages it raises (§4).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::event::DeviceEvent;
use super::rules::{Rule, Template};

/// An event's place in event order: its time (ms since the Unix epoch) and ID.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventRef {
    /// Event time, ms since the Unix epoch.
    pub time: u64,
    /// `Param.ID`.
    pub id: compact_str::CompactString,
}

/// The open alert of a (device, rule).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Active {
    /// Its `alert_id`.
    pub alert_id: String,
}

/// The state of one (device, rule) (§2): `last_first`, `last_second` and `active`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleState {
    /// The latest `first` event not cleared since.
    pub last_first: Option<EventRef>,
    /// The latest `second` event.
    pub last_second: Option<EventRef>,
    /// The open alert.
    pub active: Option<Active>,
}

impl RuleState {
    /// Whether the state holds nothing (it can be dropped).
    pub fn is_empty(&self) -> bool {
        self.last_first.is_none() && self.last_second.is_none() && self.active.is_none()
    }
}

/// A raised alert, before its device settings are added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Raised {
    /// `alert_id`.
    pub alert_id: String,
    /// `alert_time`: the trigger's time, ms since the Unix epoch.
    pub alert_time: u64,
    /// `fault_time`/`fault_event_id`: the earlier event of the pair.
    pub fault: EventRef,
    /// `trigger_event_id`.
    pub trigger_event_id: String,
}

/// A revoke of the open alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revoked {
    /// `alert_id` of the revoked alert.
    pub alert_id: String,
    /// `revoke_time`, ms since the Unix epoch.
    pub revoke_time: u64,
    /// `revoke_event_id`.
    pub revoke_event_id: String,
}

/// What one event did to one (device, rule): at most one revoke (step 1) and one alert (step 4), in that order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Step 1's revoke.
    pub revoked: Option<Revoked>,
    /// Step 4's alert.
    pub raised: Option<Raised>,
}

/// `alert_id` (§4): lowercase hex SHA-256 of `"{rule_id}:{device}:{trigger_event_id}"`.
pub fn alert_id(rule_id: i32, device: i64, trigger_event_id: &str) -> String {
    let digest = Sha256::digest(format!("{rule_id}:{device}:{trigger_event_id}").as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest.iter() {
        hex.push(char::from_digit(u32::from(b >> 4), 16).expect("a nibble"));
        hex.push(char::from_digit(u32::from(b & 15), 16).expect("a nibble"));
    }
    hex
}

/// Runs steps 1–4 of §2 for event `e` of device `e.device` on `state` under `rule`.
pub fn step(rule: &Rule, state: &mut RuleState, e: &DeviceEvent) -> Step {
    let mut out = Step::default();
    let here = || EventRef { time: e.time, id: e.id.clone() };
    // 1. Revoke.
    if state.active.is_some() && rule.revoke.iter().any(|c| c.matches(e)) {
        let active = state.active.take().expect("checked");
        out.revoked = Some(Revoked { alert_id: active.alert_id, revoke_time: e.time, revoke_event_id: e.id.to_string() });
    }
    // 2. Unless.
    if rule.unless.matches(e) {
        state.last_first = None;
    }
    // 3. Record.
    let (is_first, is_second) = (rule.first.matches(e), rule.second.matches(e));
    if is_first {
        state.last_first = Some(here());
    }
    if is_second {
        state.last_second = Some(here());
    }
    // 4. Raise.
    if state.active.is_some() {
        return out;
    }
    let Some(first) = state.last_first.as_ref().filter(|f| e.time - f.time <= rule.within_ms) else { return out };
    let is_self = |r: &EventRef| r.time == e.time && r.id == e.id;
    let fault = match rule.template {
        Template::CoOccurrence => {
            let Some(second) = state.last_second.as_ref().filter(|s| (is_first || is_second) && e.time - s.time <= rule.within_ms && *s != first) else { return out };
            first.min(second).clone()
        }
        Template::Sequence => {
            if !is_second || is_self(first) {
                return out;
            }
            first.clone()
        }
    };
    let alert_id = alert_id(rule.rule_id, e.device, &e.id);
    state.active = Some(Active { alert_id: alert_id.clone() });
    out.raised = Some(Raised { alert_id, alert_time: e.time, fault, trigger_event_id: e.id.to_string() });
    out
}

#[cfg(test)]
mod tests {
    use super::super::rules::{blog_rules, rules_of};
    use super::*;

    fn ev(time: u64, id: &str, message: &str, code: Option<i64>) -> DeviceEvent {
        DeviceEvent { time, id: id.into(), device: 17, message: message.into(), err_code: code, origin: None }
    }

    fn run(rule: &Rule, events: &[DeviceEvent]) -> Vec<String> {
        let mut state = RuleState::default();
        let mut out = Vec::new();
        for e in events {
            let s = step(rule, &mut state, e);
            if let Some(r) = s.revoked {
                out.push(format!("revoke@{} by {}", r.revoke_time, r.revoke_event_id));
            }
            if let Some(a) = s.raised {
                out.push(format!("alert@{} by {} fault {}@{}", a.alert_time, a.trigger_event_id, a.fault.id, a.fault.time));
            }
        }
        out
    }

    #[test]
    fn alert_ids_are_sha256_of_rule_device_and_trigger() {
        // printf '1:17:e-000130' | sha256sum
        assert_eq!(alert_id(1, 17, "e-000130"), "c305f8836b3d6683dbe466dd03616faa9fb3aeb6eaba5bb1ae443e42bc8354ea");
        assert_ne!(alert_id(1, 17, "e-1"), alert_id(2, 17, "e-1"));
    }

    #[test]
    fn co_occurrence_of_a_and_b_within_a_minute_unless_a_recovered() {
        let rule = &rules_of(&blog_rules()).unwrap()[0];
        // A then B within a minute: an alert at B, fault = A.
        assert_eq!(run(rule, &[ev(0, "a", "fault", Some(1)), ev(30_000, "b", "fault", Some(2))]), ["alert@30000 by b fault a@0"]);
        // B then A: triggered by A (either role triggers), fault = B, the earlier.
        assert_eq!(run(rule, &[ev(0, "b", "fault", Some(2)), ev(60_000, "a", "fault", Some(1))]), ["alert@60000 by a fault b@0"]);
        // More than within_ms apart: nothing.
        assert!(run(rule, &[ev(0, "a", "fault", Some(1)), ev(60_001, "b", "fault", Some(2))]).is_empty());
        // A recovered before B: unless clears last_first.
        assert!(run(rule, &[ev(0, "a", "fault", Some(1)), ev(1, "r", "recover", Some(1)), ev(2, "b", "fault", Some(2))]).is_empty());
        // Open alert: a second B raises nothing; run revokes; then a new B raises again (A still set).
        assert_eq!(
            run(rule, &[ev(0, "a", "fault", Some(1)), ev(1, "b", "fault", Some(2)), ev(2, "b2", "fault", Some(2)), ev(3, "x", "run", None), ev(4, "b3", "fault", Some(2))]),
            ["alert@1 by b fault a@0", "revoke@3 by x", "alert@4 by b3 fault a@0"]
        );
        // recover A revokes and clears A: a later B raises nothing.
        assert_eq!(
            run(rule, &[ev(0, "a", "fault", Some(1)), ev(1, "b", "fault", Some(2)), ev(2, "r", "recover", Some(1)), ev(3, "b2", "fault", Some(2))]),
            ["alert@1 by b fault a@0", "revoke@2 by r"]
        );
    }

    #[test]
    fn co_occurrence_needs_two_different_events() {
        // A rule whose first and second classes both match one event: that event alone raises nothing.
        let mut row = blog_rules()[0].clone();
        row.params = r#"{"first":{"message":"fault"},"second":{"message":"fault","err_code":2},"unless":{"message":"recover"},"revoke":[]}"#.into();
        let rule = &rules_of(&[row]).unwrap()[0];
        assert!(run(rule, &[ev(0, "b", "fault", Some(2))]).is_empty());
        // A second such event pairs with... itself as both: last_first = last_second = it, no alert.
        assert!(run(rule, &[ev(0, "b", "fault", Some(2)), ev(1, "b2", "fault", Some(2))]).is_empty());
        // An A then the B: last_first = B (B matches first too), last_second = B: the same event, no alert.
        assert!(run(rule, &[ev(0, "a", "fault", Some(1)), ev(1, "b", "fault", Some(2))]).is_empty());
        // B then A: last_first = A, last_second = B: an alert, fault = B.
        assert_eq!(run(rule, &[ev(0, "b", "fault", Some(2)), ev(1, "a", "fault", Some(1))]), ["alert@1 by a fault b@0"]);
    }

    #[test]
    fn sequence_of_c_then_alarm_without_run_between() {
        let rule = &rules_of(&blog_rules()).unwrap()[1];
        assert_eq!(run(rule, &[ev(0, "c", "fault", Some(3)), ev(60_000, "al", "alarm", None)]), ["alert@60000 by al fault c@0"]);
        // Alarm first: nothing (no last_first).
        assert!(run(rule, &[ev(0, "al", "alarm", None), ev(1, "c", "fault", Some(3))]).is_empty());
        // run in between clears C.
        assert!(run(rule, &[ev(0, "c", "fault", Some(3)), ev(1, "x", "run", None), ev(2, "al", "alarm", None)]).is_empty());
        // Same millisecond: event order by ID ("c" < "d").
        assert_eq!(run(rule, &[ev(5, "c", "fault", Some(3)), ev(5, "d", "alarm", None)]), ["alert@5 by d fault c@5"]);
        // recover 3 revokes the open alert but does not clear C (unless is run): the next alarm raises again.
        assert_eq!(
            run(rule, &[ev(0, "c", "fault", Some(3)), ev(1, "al", "alarm", None), ev(2, "r", "recover", Some(3)), ev(3, "al2", "alarm", None)]),
            ["alert@1 by al fault c@0", "revoke@2 by r", "alert@3 by al2 fault c@0"]
        );
    }
}
