//! Alert rules (`docs/jobs/alerts.md` §2): rows of the PostgreSQL table `alert_rule`, validated into [`Rule`]s.
//! The connector reads the rows (`src/connectors/postgres/` of the `taxiflow` crate); this module only checks them,
//! so that a bad row refuses the start naming its `rule_id` and field.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::event::DeviceEvent;

/// One row of `alert_rule` as read (`params` as JSON text; `jsonb` is read as text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleRow {
    /// `rule_id`.
    pub rule_id: i32,
    /// `template`.
    pub template: String,
    /// `alert_type`.
    pub alert_type: String,
    /// `priority`.
    pub priority: i32,
    /// `within_ms`.
    pub within_ms: i32,
    /// `params`, JSON text.
    pub params: String,
}

/// A rule's template (§2): how its trigger and condition are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Template {
    /// `co_occurrence`: a `first` and a `second` event, of different events, both within `within_ms`.
    CoOccurrence,
    /// `sequence`: a `first` event, then a `second` event within `within_ms`.
    Sequence,
}

/// An event class: `{"message": "fault", "err_code": 1}`; `err_code` `None` matches any code.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EventClass {
    /// The `Message` it matches.
    pub message: String,
    /// The `ErrCode` it matches, or any.
    pub err_code: Option<i64>,
}

impl EventClass {
    /// Whether `e` matches: the same `Message` and, if given, the same `ErrCode`.
    #[inline]
    pub fn matches(&self, e: &DeviceEvent) -> bool {
        e.message == self.message && self.err_code.is_none_or(|c| e.err_code == Some(c))
    }
}

/// A validated rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rule {
    /// `rule_id`.
    pub rule_id: i32,
    /// `template`.
    pub template: Template,
    /// `alert_type`, copied into its alerts.
    pub alert_type: String,
    /// `priority` (larger = more important).
    pub priority: i32,
    /// `within_ms` (> 0).
    pub within_ms: u64,
    /// `params.first`.
    pub first: EventClass,
    /// `params.second`.
    pub second: EventClass,
    /// `params.unless`.
    pub unless: EventClass,
    /// `params.revoke` (may be empty).
    pub revoke: Vec<EventClass>,
}

impl Rule {
    /// Validates one row.
    ///
    /// # Errors
    /// `rule_id N: FIELD: why`, for an unknown template, `within_ms` ≤ 0, `params` that is not an object of
    /// exactly `first`, `second`, `unless` and `revoke`, or a class that is not `{"message": string, "err_code":
    /// integer or null (optional)}`.
    pub fn from_row(row: &RuleRow) -> Result<Rule, String> {
        let fail = |field: &str, why: &str| format!("alert_rule: rule_id {}: {field}: {why}", row.rule_id);
        let template = match row.template.as_str() {
            "co_occurrence" => Template::CoOccurrence,
            "sequence" => Template::Sequence,
            other => return Err(fail("template", &format!("{other:?} is not co_occurrence or sequence"))),
        };
        if row.within_ms <= 0 {
            return Err(fail("within_ms", &format!("{} is not > 0", row.within_ms)));
        }
        let params: Json = serde_json::from_str(&row.params).map_err(|e| fail("params", &format!("not JSON: {e}")))?;
        let Json::Object(params) = params else { return Err(fail("params", "not a JSON object")) };
        let mut keys: Vec<&str> = params.keys().map(String::as_str).collect();
        keys.sort_unstable();
        if keys != ["first", "revoke", "second", "unless"] {
            return Err(fail("params", &format!("must hold exactly first, second, unless and revoke, not {}", keys.join(", "))));
        }
        let class = |key: &str, value: &Json| -> Result<EventClass, String> {
            let Json::Object(c) = value else { return Err(fail(&format!("params.{key}"), "not an object")) };
            if let Some(other) = c.keys().find(|k| *k != "message" && *k != "err_code") {
                return Err(fail(&format!("params.{key}"), &format!("unknown key {other:?}")));
            }
            let message = match c.get("message") {
                Some(Json::String(m)) => m.clone(),
                Some(_) => return Err(fail(&format!("params.{key}.message"), "not a string")),
                None => return Err(fail(&format!("params.{key}.message"), "missing")),
            };
            let err_code = match c.get("err_code") {
                None | Some(Json::Null) => None,
                Some(Json::Number(n)) if n.is_i64() => n.as_i64(),
                Some(_) => return Err(fail(&format!("params.{key}.err_code"), "not an integer or null")),
            };
            Ok(EventClass { message, err_code })
        };
        let revoke = match &params["revoke"] {
            Json::Array(list) => list.iter().enumerate().map(|(i, c)| class(&format!("revoke[{i}]"), c)).collect::<Result<Vec<_>, _>>()?,
            _ => return Err(fail("params.revoke", "not a list")),
        };
        Ok(Rule {
            rule_id: row.rule_id,
            template,
            alert_type: row.alert_type.clone(),
            priority: row.priority,
            within_ms: row.within_ms as u64,
            first: class("first", &params["first"])?,
            second: class("second", &params["second"])?,
            unless: class("unless", &params["unless"])?,
            revoke,
        })
    }
}

/// Validates every row, ordered by `rule_id`.
///
/// # Errors
/// The first bad row (see [`Rule::from_row`]).
pub fn rules_of(rows: &[RuleRow]) -> Result<Vec<Rule>, String> {
    let mut rules = rows.iter().map(Rule::from_row).collect::<Result<Vec<_>, _>>()?;
    rules.sort_by_key(|r| r.rule_id);
    Ok(rules)
}

/// The blog's two rules (§2's table), as rows: for tests, the generator and the docs.
pub fn blog_rules() -> Vec<RuleRow> {
    vec![
        RuleRow {
            rule_id: 1,
            template: "co_occurrence".into(),
            alert_type: "A_AND_B".into(),
            priority: 5,
            within_ms: 60_000,
            params: r#"{"first":{"message":"fault","err_code":1},"second":{"message":"fault","err_code":2},"unless":{"message":"recover","err_code":1},"revoke":[{"message":"recover","err_code":1},{"message":"run"}]}"#.into(),
        },
        RuleRow {
            rule_id: 2,
            template: "sequence".into(),
            alert_type: "C_THEN_ALARM".into(),
            priority: 8,
            within_ms: 60_000,
            params: r#"{"first":{"message":"fault","err_code":3},"second":{"message":"alarm"},"unless":{"message":"run"},"revoke":[{"message":"run"},{"message":"recover","err_code":3}]}"#.into(),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blog_rules_validate() {
        let rules = rules_of(&blog_rules()).unwrap();
        assert_eq!(rules[0].template, Template::CoOccurrence);
        assert_eq!(rules[1].revoke.len(), 2);
        assert_eq!(rules[1].second, EventClass { message: "alarm".into(), err_code: None });
    }

    #[test]
    fn bad_rows_are_refused_naming_rule_and_field() {
        let good = &blog_rules()[0];
        let with = |f: &dyn Fn(&mut RuleRow)| {
            let mut r = good.clone();
            f(&mut r);
            Rule::from_row(&r).unwrap_err()
        };
        assert_eq!(with(&|r| r.template = "window".into()), "alert_rule: rule_id 1: template: \"window\" is not co_occurrence or sequence");
        assert_eq!(with(&|r| r.within_ms = 0), "alert_rule: rule_id 1: within_ms: 0 is not > 0");
        assert!(with(&|r| r.params = r#"{"first":{"message":"a"}}"#.into()).starts_with("alert_rule: rule_id 1: params: must hold exactly"));
        assert_eq!(
            with(&|r| r.params = r#"{"first":{"message":"a","err_code":"1"},"second":{"message":"b"},"unless":{"message":"c"},"revoke":[]}"#.into()),
            "alert_rule: rule_id 1: params.first.err_code: not an integer or null"
        );
        assert_eq!(
            with(&|r| r.params = r#"{"first":{"message":"a"},"second":{"message":"b"},"unless":{"message":"c"},"revoke":[{"msg":"x"}]}"#.into()),
            "alert_rule: rule_id 1: params.revoke[0]: unknown key \"msg\""
        );
        assert_eq!(
            with(&|r| r.params = r#"{"first":{"message":"a"},"second":{"err_code":2},"unless":{"message":"c"},"revoke":[]}"#.into()),
            "alert_rule: rule_id 1: params.second.message: missing"
        );
    }
}
