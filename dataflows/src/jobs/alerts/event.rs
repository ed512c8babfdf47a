//! Device events (`docs/jobs/alerts.md` §1): one JSON object per line or Kafka message,
//! `{"Message": "fault", "Param": {"ErrCode": 1, "Timestamp": "2026-03-02T08:00:01.250Z", "ID": "e-000123"},
//! "DeviceNumber": 17}`, decoded strictly: a missing required field, a field of another JSON type (an `ErrCode`
//! of `"1"` or `1.0` included) or a timestamp that is not RFC 3339 as §1 gives it is malformed, naming the field.

use std::borrow::Cow;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::calendar::{days_from_civil, days_in_month};
use crate::job::{Decoded, EventTime, RecordFormat};
use crate::output::PackedOrigin;

/// One device event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEvent {
    /// `Param.Timestamp`: the event time, ms since the Unix epoch (sub-ms digits truncated).
    pub time: u64,
    /// `Param.ID`: the event's id, non-empty (inline up to 24 bytes: no allocation for the usual ids).
    pub id: CompactString,
    /// `DeviceNumber`: the device, the key of all state.
    pub device: i64,
    /// `Message`: the event kind (`fault`, `recover`, `alarm`, `run`, `move`, or any other string).
    pub message: CompactString,
    /// `Param.ErrCode`: the fault code, `None` when absent or null.
    pub err_code: Option<i64>,
    /// Where it was read (set by the source shell: [`EventTime::KEEPS_ORIGIN`]), for the `duplicate` dead letter.
    pub origin: Option<PackedOrigin>,
}

impl EventTime for DeviceEvent {
    const KEEPS_ORIGIN: bool = true;

    #[inline]
    fn event_time(&self) -> u64 {
        self.time
    }

    fn set_origin(&mut self, origin: PackedOrigin) {
        self.origin = Some(origin);
    }
}

/// The alert job's input format: JSON device events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceEventJson;

impl RecordFormat for DeviceEventJson {
    type Record = DeviceEvent;
    type Scratch = ();

    fn decode(&self, line: &[u8], _: &mut ()) -> Result<Decoded<DeviceEvent>, String> {
        decode(line).map(Decoded::Record)
    }

    fn name(&self) -> &'static str {
        "device-event-json"
    }
}

/// The fields of a well-formed event, borrowed where they need no unescaping (the fast path of [`decode`]).
#[derive(Deserialize)]
struct Fast<'a> {
    #[serde(rename = "Message", borrow)]
    message: Cow<'a, str>,
    #[serde(rename = "Param", borrow)]
    param: FastParam<'a>,
    #[serde(rename = "DeviceNumber")]
    device: i64,
}

#[derive(Deserialize)]
struct FastParam<'a> {
    #[serde(rename = "ErrCode", default)]
    err_code: Option<i64>,
    #[serde(rename = "Timestamp", borrow)]
    timestamp: Cow<'a, str>,
    #[serde(rename = "ID", borrow)]
    id: Cow<'a, str>,
}

/// Decodes one device event: a typed parse with borrowed strings (sonic-rs, SIMD), and for anything it does not take (a missing
/// field, a wrong type, duplicate keys) the general decoder, which accepts or names the field; both accept
/// exactly the same records with the same values (a property test checks it).
///
/// # Errors
/// Why it is malformed, naming the field (`Param.Timestamp: not an RFC 3339 instant`).
pub fn decode(line: &[u8]) -> Result<DeviceEvent, String> {
    if let Ok(fast) = sonic_rs::from_slice::<Fast<'_>>(line) {
        if let (Some(time), false) = (parse_instant(&fast.param.timestamp), fast.param.id.is_empty()) {
            return Ok(DeviceEvent { time, id: CompactString::from(fast.param.id), device: fast.device, message: CompactString::from(fast.message), err_code: fast.param.err_code, origin: None });
        }
    }
    decode_general(line)
}

/// The general decoder (a JSON value, then each field checked), which names the field of a malformed record.
///
/// # Errors
/// As [`decode`].
pub fn decode_general(line: &[u8]) -> Result<DeviceEvent, String> {
    if line.is_empty() {
        return Err("empty record".to_string());
    }
    let value: Json = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
    let Json::Object(top) = value else { return Err("not a JSON object".to_string()) };
    let message = match top.get("Message") {
        Some(Json::String(s)) => CompactString::from(s.as_str()),
        Some(_) => return Err("Message: not a string".to_string()),
        None => return Err("Message: missing".to_string()),
    };
    let param = match top.get("Param") {
        Some(Json::Object(p)) => p,
        Some(_) => return Err("Param: not an object".to_string()),
        None => return Err("Param: missing".to_string()),
    };
    let err_code = match param.get("ErrCode") {
        None | Some(Json::Null) => None,
        Some(Json::Number(n)) if n.is_i64() => n.as_i64(),
        Some(_) => return Err("Param.ErrCode: not an integer".to_string()),
    };
    let time = match param.get("Timestamp") {
        Some(Json::String(s)) => parse_instant(s).ok_or_else(|| format!("Param.Timestamp: not an RFC 3339 instant at or after 1970: {s:?}"))?,
        Some(_) => return Err("Param.Timestamp: not a string".to_string()),
        None => return Err("Param.Timestamp: missing".to_string()),
    };
    let id = match param.get("ID") {
        Some(Json::String(s)) if !s.is_empty() => CompactString::from(s.as_str()),
        Some(Json::String(_)) => return Err("Param.ID: empty".to_string()),
        Some(_) => return Err("Param.ID: not a string".to_string()),
        None => return Err("Param.ID: missing".to_string()),
    };
    let device = match top.get("DeviceNumber") {
        Some(Json::Number(n)) if n.is_i64() => n.as_i64().expect("checked"),
        Some(_) => return Err("DeviceNumber: not a 64-bit integer".to_string()),
        None => return Err("DeviceNumber: missing".to_string()),
    };
    Ok(DeviceEvent { time, id, device, message, err_code, origin: None })
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±hh:mm)` (spec §1; upper-case `T` and `Z`, seconds 00–59) as ms
/// since the Unix epoch, sub-ms digits truncated (floor); `None` when it is not of that form, not a real date
/// and time, or before 1970.
pub fn parse_instant(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let digits = |from: usize, n: usize| -> Option<i64> {
        let part = b.get(from..from + n)?;
        part.iter().all(u8::is_ascii_digit).then(|| part.iter().fold(0i64, |a, d| a * 10 + i64::from(d - b'0')))
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if !(1..=12).contains(&month) || day < 1 || day as u64 > days_in_month(year as u64, month as u64) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut at = 19;
    let mut millis = 0i64;
    if b[at] == b'.' {
        at += 1;
        let start = at;
        while at < b.len() && b[at].is_ascii_digit() {
            if at - start < 3 {
                millis = millis * 10 + i64::from(b[at] - b'0');
            }
            at += 1;
        }
        let n = at - start;
        if n == 0 {
            return None;
        }
        for _ in n..3 {
            millis *= 10;
        }
    }
    let offset_minutes = match b.get(at..)? {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (digits(at + 1, 2)?, digits(at + 4, 2)?);
            let _ = (h1, h2, m1, m2);
            if h > 23 || m > 59 {
                return None;
            }
            if *sign == b'+' {
                h * 60 + m
            } else {
                -(h * 60 + m)
            }
        }
        _ => return None,
    };
    let ms = ((days_from_civil(year, month, day) * 24 + hour) * 60 + minute - offset_minutes) * 60_000 + second * 1000 + millis;
    u64::try_from(ms).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_example_decodes() {
        let e = decode(br#"{"Message": "fault", "Param": {"ErrCode": 1, "Timestamp": "2026-03-02T08:00:01.250Z", "ID": "e-000123"}, "DeviceNumber": 17, "x": [1]}"#).unwrap();
        assert_eq!((e.time, e.id.as_str(), e.device, e.message.as_str(), e.err_code), (1_772_438_401_250, "e-000123", 17, "fault", Some(1)));
        let e = decode(br#"{"Message":"run","Param":{"ErrCode":null,"Timestamp":"2026-03-02T09:00:01+01:00","ID":"r"},"DeviceNumber":-3}"#).unwrap();
        assert_eq!((e.time, e.err_code, e.device), (1_772_438_401_000, None, -3));
    }

    #[test]
    fn malformed_records_name_the_field() {
        let cases: &[(&str, &str)] = &[
            ("", "empty record"),
            ("[1]", "not a JSON object"),
            ("{", "not JSON"),
            (r#"{"Param":{"Timestamp":"2026-03-02T08:00:00Z","ID":"a"},"DeviceNumber":1}"#, "Message: missing"),
            (r#"{"Message":1,"Param":{"Timestamp":"2026-03-02T08:00:00Z","ID":"a"},"DeviceNumber":1}"#, "Message: not a string"),
            (r#"{"Message":"fault","Param":{"ErrCode":"1","Timestamp":"2026-03-02T08:00:00Z","ID":"a"},"DeviceNumber":1}"#, "Param.ErrCode: not an integer"),
            (r#"{"Message":"fault","Param":{"ErrCode":1.0,"Timestamp":"2026-03-02T08:00:00Z","ID":"a"},"DeviceNumber":1}"#, "Param.ErrCode: not an integer"),
            (r#"{"Message":"fault","Param":{"Timestamp":"2026-03-02 08:00:00Z","ID":"a"},"DeviceNumber":1}"#, "Param.Timestamp: not an RFC 3339"),
            (r#"{"Message":"fault","Param":{"Timestamp":"1969-12-31T23:59:59.999Z","ID":"a"},"DeviceNumber":1}"#, "Param.Timestamp: not an RFC 3339"),
            (r#"{"Message":"fault","Param":{"Timestamp":"2026-03-02T08:00:00Z","ID":""},"DeviceNumber":1}"#, "Param.ID: empty"),
            (r#"{"Message":"fault","Param":{"Timestamp":"2026-03-02T08:00:00Z","ID":"a"},"DeviceNumber":"1"}"#, "DeviceNumber: not a 64-bit integer"),
            (r#"{"Message":"fault","Param":{"Timestamp":"2026-03-02T08:00:00Z","ID":"a"},"DeviceNumber":1.5}"#, "DeviceNumber: not a 64-bit integer"),
            (r#"{"Message":"fault","Param":{"Timestamp":"2026-03-02T08:00:00Z","ID":"a"}}"#, "DeviceNumber: missing"),
        ];
        for (line, reason) in cases {
            let got = decode(line.as_bytes()).unwrap_err();
            assert!(got.starts_with(reason), "{line}: {got}");
        }
    }

    proptest::proptest! {
        /// The fast path and the general decoder accept the same records with the same values.
        #[test]
        fn the_fast_path_agrees_with_the_general_decoder(
            message in proptest::sample::select(vec!["\"fault\"", "\"run\"", "\"a\\u0041\"", "1", "null"]),
            code in proptest::sample::select(vec!["", "\"ErrCode\": 1, ", "\"ErrCode\": null, ", "\"ErrCode\": 1.0, ", "\"ErrCode\": \"1\", ", "\"ErrCode\": 99999999999999999999, "]),
            time in proptest::sample::select(vec!["\"2026-03-02T08:00:01.250Z\"", "\"2026-03-02T08:00:01+01:00\"", "\"1969-12-31T23:59:59Z\"", "\"x\"", "5"]),
            id in proptest::sample::select(vec!["\"e-1\"", "\"\"", "\"e\\n2\"", "3", "\"\\ud800\"", "\"\\ud83d\\ude00\"", "\"e\u{7}\""]),
            device in proptest::sample::select(vec!["17", "-3", "1.5", "\"1\"", "9223372036854775808", "1e3", "-0", "017"]),
            extra in proptest::sample::select(vec!["", ", \"x\": [1, {}]", ", \"DeviceNumber\": 5"]),
        ) {
            let line = format!("{{\"Message\": {message}, \"Param\": {{{code}\"Timestamp\": {time}, \"ID\": {id}}}, \"DeviceNumber\": {device}{extra}}}");
            proptest::prop_assert_eq!(decode(line.as_bytes()), decode_general(line.as_bytes()), "{}", line);
        }
    }

    #[test]
    fn bytes_that_are_not_utf_8_are_malformed_on_both_paths() {
        for bad in [&b"\xff"[..], b"e\xc3", b"\xed\xa0\x80"] {
            let mut line = br#"{"Message": "fault", "Param": {"Timestamp": "2026-03-02T08:00:01Z", "ID": ""#.to_vec();
            line.extend_from_slice(bad);
            line.extend_from_slice(br#""}, "DeviceNumber": 1}"#);
            assert!(decode(&line).is_err(), "{bad:?}");
            assert_eq!(decode(&line), decode_general(&line));
        }
    }

    #[test]
    fn instants_follow_the_spec_grammar() {
        assert_eq!(parse_instant("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_instant("1970-01-01T00:00:00.0019Z"), Some(1));
        assert_eq!(parse_instant("1970-01-01T01:00:00.5+01:00"), Some(500));
        assert_eq!(parse_instant("2024-02-29T23:59:59.999999-00:30"), Some(1_709_252_999_999));
        for bad in ["2023-02-29T00:00:00Z", "2026-03-02T24:00:00Z", "2026-03-02T08:00:60Z", "2026-03-02t08:00:00Z", "2026-03-02T08:00:00z", "2026-03-02T08:00:00", "2026-03-02T08:00:00.Z", "2026-03-02T08:00:00+0100", "2026-03-02T08:00:00+24:00", "1970-01-01T00:30:00+01:00"] {
            assert_eq!(parse_instant(bad), None, "{bad}");
        }
    }
}
