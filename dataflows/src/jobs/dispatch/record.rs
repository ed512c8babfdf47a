//! The dispatch job's input: the alert topic's records (`docs/jobs/alerts.md` §4) — `alert`, `revoke` and
//! `watermark` messages — decoded strictly; anything else is malformed.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::job::{Decoded, EventTime, RecordFormat};
use crate::jobs::alerts::event::parse_instant;
use crate::output::PackedOrigin;

/// An alert of the alert topic, with what dispatching needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// `alert_id`.
    pub alert_id: String,
    /// `device`.
    pub device: i64,
    /// `alert_type`.
    pub alert_type: String,
    /// `priority` (larger = more important).
    pub priority: i64,
    /// `alert_time`, ms since the Unix epoch.
    pub alert_time: u64,
    /// `delay_ms` (≥ 0).
    pub delay_ms: u64,
    /// `info`.
    pub info: Option<String>,
}

/// One record of the alert topic, with where it was read (for the `duplicate` dead letter).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// The alert or revoke.
    pub kind: AlertKind,
    /// Where it was read (set by the source shell).
    pub origin: Option<PackedOrigin>,
}

/// An `alert` or a `revoke`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlertKind {
    /// An `alert`: its event time is `alert_time`.
    Alert(Alert),
    /// A `revoke` of an alert: its event time is `revoke_time` (ms since the Unix epoch).
    Revoke {
        /// `alert_id` of the revoked alert.
        alert_id: String,
        /// `device`.
        device: i64,
        /// `revoke_time`, ms since the Unix epoch.
        revoke_time: u64,
    },
}

impl AlertRecord {
    /// A record without its origin.
    pub fn of(kind: AlertKind) -> AlertRecord {
        AlertRecord { kind, origin: None }
    }

    /// The device.
    pub fn device(&self) -> i64 {
        match &self.kind {
            AlertKind::Alert(a) => a.device,
            AlertKind::Revoke { device, .. } => *device,
        }
    }
}

impl EventTime for AlertRecord {
    const KEEPS_ORIGIN: bool = true;

    fn event_time(&self) -> u64 {
        match &self.kind {
            AlertKind::Alert(a) => a.alert_time,
            AlertKind::Revoke { revoke_time, .. } => *revoke_time,
        }
    }

    fn set_origin(&mut self, origin: PackedOrigin) {
        self.origin = Some(origin);
    }
}

/// The alert topic's JSON records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlertJson;

impl RecordFormat for AlertJson {
    type Record = AlertRecord;
    type Scratch = ();

    fn decode(&self, line: &[u8], _: &mut ()) -> Result<Decoded<AlertRecord>, String> {
        decode(line)
    }

    fn name(&self) -> &'static str {
        "alert-json"
    }

    fn watermark_marker(&self) -> Option<&'static [u8]> {
        Some(b"\"watermark\"")
    }
}

fn string(o: &Map<String, Json>, key: &str) -> Result<String, String> {
    match o.get(key) {
        Some(Json::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(_) => Err(format!("{key}: not a non-empty string")),
        None => Err(format!("{key}: missing")),
    }
}

fn integer(o: &Map<String, Json>, key: &str) -> Result<i64, String> {
    match o.get(key) {
        Some(Json::Number(n)) if n.is_i64() => Ok(n.as_i64().expect("checked")),
        Some(_) => Err(format!("{key}: not an integer")),
        None => Err(format!("{key}: missing")),
    }
}

fn instant(o: &Map<String, Json>, key: &str) -> Result<u64, String> {
    let text = string(o, key)?;
    parse_instant(&text).ok_or_else(|| format!("{key}: not an ISO-8601 instant: {text:?}"))
}

/// The fields of a well-formed record, borrowed where they need no unescaping (the fast path of [`decode`]); a
/// field of another JSON type, or a duplicate, fails it.
#[derive(Deserialize)]
struct Fast<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    alert_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    device: Option<i64>,
    #[serde(borrow, default)]
    alert_type: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    priority: Option<i64>,
    #[serde(borrow, default)]
    alert_time: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    delay_ms: Option<i64>,
    #[serde(borrow, default)]
    info: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    revoke_time: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    watermark: Option<std::borrow::Cow<'a, str>>,
}

impl Fast<'_> {
    /// The record, when every field its type needs is there and valid (otherwise the general decoder decides).
    fn record(self) -> Option<Decoded<AlertRecord>> {
        let text = |v: Option<std::borrow::Cow<'_, str>>| v.filter(|s| !s.is_empty()).map(std::borrow::Cow::into_owned);
        let instant = |v: &Option<std::borrow::Cow<'_, str>>| v.as_deref().and_then(parse_instant);
        match &*self.kind {
            "alert" => {
                let (alert_time, delay, device, priority) = (instant(&self.alert_time)?, self.delay_ms?, self.device?, self.priority?);
                Some(Decoded::Record(AlertRecord::of(AlertKind::Alert(Alert {
                    alert_id: text(self.alert_id)?,
                    device,
                    alert_type: text(self.alert_type)?,
                    priority,
                    alert_time,
                    delay_ms: delay.max(0) as u64,
                    info: self.info.map(std::borrow::Cow::into_owned),
                }))))
            }
            "revoke" => {
                let (revoke_time, device) = (instant(&self.revoke_time)?, self.device?);
                Some(Decoded::Record(AlertRecord::of(AlertKind::Revoke { alert_id: text(self.alert_id)?, device, revoke_time })))
            }
            "watermark" => Some(Decoded::Watermark(instant(&self.watermark)?)),
            _ => None,
        }
    }
}

/// Decodes one record of the alert topic: a typed parse with borrowed strings (sonic-rs), and for anything it does
/// not take the general decoder, which accepts or names the field; both accept exactly the same records with the
/// same values (a property test checks it).
///
/// # Errors
/// Not a JSON object of type `alert`, `revoke` or `watermark` with its fields, naming the field.
pub fn decode(line: &[u8]) -> Result<Decoded<AlertRecord>, String> {
    if let Some(record) = sonic_rs::from_slice::<Fast<'_>>(line).ok().and_then(Fast::record) {
        return Ok(record);
    }
    decode_general(line)
}

/// The general decoder (a JSON value, then each field checked), which names the field of a malformed record.
///
/// # Errors
/// As [`decode`].
pub fn decode_general(line: &[u8]) -> Result<Decoded<AlertRecord>, String> {
    let value: Json = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
    let Json::Object(o) = value else { return Err("not a JSON object".to_string()) };
    match o.get("type").and_then(Json::as_str) {
        Some("alert") => {
            let delay = integer(&o, "delay_ms")?;
            let info = match o.get("info") {
                None | Some(Json::Null) => None,
                Some(Json::String(s)) => Some(s.clone()),
                Some(_) => return Err("info: not a string or null".to_string()),
            };
            Ok(Decoded::Record(AlertRecord::of(AlertKind::Alert(Alert {
                alert_id: string(&o, "alert_id")?,
                device: integer(&o, "device")?,
                alert_type: string(&o, "alert_type")?,
                priority: integer(&o, "priority")?,
                alert_time: instant(&o, "alert_time")?,
                delay_ms: delay.max(0) as u64,
                info,
            }))))
        }
        Some("revoke") => Ok(Decoded::Record(AlertRecord::of(AlertKind::Revoke { alert_id: string(&o, "alert_id")?, device: integer(&o, "device")?, revoke_time: instant(&o, "revoke_time")? }))),
        Some("watermark") => Ok(Decoded::Watermark(instant(&o, "watermark")?)),
        Some(other) => Err(format!("type: {other:?} is not alert, revoke or watermark")),
        None => Err("type: missing or not a string".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_kinds_decode_and_others_are_malformed() {
        let alert = br#"{"type":"alert","alert_id":"a","rule_id":1,"alert_type":"A_AND_B","priority":5,"device":17,"alert_time":"2026-03-02T08:00:31.000Z","fault_time":"2026-03-02T08:00:01.250Z","trigger_event_id":"t","fault_event_id":"f","info":null,"overrides":null,"delay_ms":2000}"#;
        let Ok(Decoded::Record(AlertRecord { kind: AlertKind::Alert(a), .. })) = decode(alert) else { panic!() };
        assert_eq!((a.priority, a.alert_time, a.delay_ms, a.info), (5, 1_772_438_431_000, 2000, None));
        let revoke = br#"{"type":"revoke","alert_id":"a","rule_id":1,"alert_type":"A_AND_B","device":17,"revoke_time":"2026-03-02T08:02:00.000Z","revoke_event_id":"e"}"#;
        assert!(matches!(decode(revoke), Ok(Decoded::Record(AlertRecord { kind: AlertKind::Revoke { revoke_time: 1_772_438_520_000, .. }, .. }))));
        assert_eq!(decode(br#"{"type":"watermark","watermark":"1970-01-01T00:00:01.000Z"}"#), Ok(Decoded::Watermark(1000)));
        assert_eq!(decode(br#"{"type":"close"}"#).unwrap_err(), "type: \"close\" is not alert, revoke or watermark");
        assert_eq!(decode(br#"{"type":"revoke","alert_id":"a","device":"17","revoke_time":"x"}"#).unwrap_err(), "device: not an integer");
        assert!(decode(b"[]").unwrap_err().starts_with("not a JSON object"));
    }

    #[test]
    fn well_formed_records_take_the_fast_path() {
        for line in [
            &br#"{"type":"alert","alert_id":"a","rule_id":1,"alert_type":"A_AND_B","priority":5,"device":17,"alert_time":"2026-03-02T08:00:31.000Z","info":"x","delay_ms":2000}"#[..],
            br#"{"type":"revoke","alert_id":"a","device":17,"revoke_time":"2026-03-02T08:02:00.000Z","revoke_event_id":"e"}"#,
            br#"{"type":"watermark","watermark":"1970-01-01T00:00:01.000Z"}"#,
        ] {
            let fast = sonic_rs::from_slice::<Fast<'_>>(line).ok().and_then(Fast::record).expect("the fast path takes it");
            assert_eq!(Ok(fast), decode_general(line));
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20_000))]
        /// The fast path and the general decoder accept the same records with the same values (20,000 cases: a
        /// good part of them well-formed, so both paths are exercised).
        #[test]
        fn the_fast_path_agrees_with_the_general_decoder(
            kind in proptest::sample::select(vec!["\"alert\"", "\"revoke\"", "\"watermark\"", "\"al\\u0065rt\"", "\"close\"", "1"]),
            id in proptest::sample::select(vec!["", "\"alert_id\": \"a1\", ", "\"alert_id\": \"\", ", "\"alert_id\": 5, ", "\"alert_id\": \"\\ud800\", "]),
            device in proptest::sample::select(vec!["", "\"device\": 17, ", "\"device\": null, ", "\"device\": 1.5, ", "\"device\": 9223372036854775808, ", "\"device\": 1e3, "]),
            alert in proptest::sample::select(vec!["", "\"alert_type\": \"A_AND_B\", \"priority\": 5, ", "\"alert_type\": \"\", \"priority\": 5, ", "\"alert_type\": \"X\", \"priority\": \"5\", ", "\"alert_type\": 7, \"priority\": 5, "]),
            time in proptest::sample::select(vec!["", "\"alert_time\": \"2026-03-02T08:00:31.000Z\", ", "\"revoke_time\": \"2026-03-02T08:00:31Z\", ", "\"watermark\": \"1970-01-01T00:00:01.000Z\", ", "\"alert_time\": \"x\", \"revoke_time\": 3, "]),
            delay in proptest::sample::select(vec!["", "\"delay_ms\": 2000, ", "\"delay_ms\": -5, ", "\"delay_ms\": null, ", "\"delay_ms\": 2.0, "]),
            info in proptest::sample::select(vec!["", "\"info\": null, ", "\"info\": \"i\\n\", ", "\"info\": 3, "]),
            extra in proptest::sample::select(vec!["\"rule_id\": 1", "\"x\": [1, {}]", "\"type\": \"revoke\"", "\"device\": 4"]),
        ) {
            let line = format!("{{\"type\": {kind}, {id}{device}{alert}{time}{delay}{info}{extra}}}");
            proptest::prop_assert_eq!(decode(line.as_bytes()), decode_general(line.as_bytes()), "{}", line);
        }
    }
}
