//! Decoding ticker events (ticker docs §1): one JSON object per line, Kafka message or Kinesis record,
//! `{"event_time": "2026-12-01T08:00:01.123456", "ticker": "AAPL", "price": 42.17}`.
//!
//! The rules are Flink 2.3's JSON format for the blog's table (`ticker VARCHAR(6), price DOUBLE, event_time
//! TIMESTAMP(3)`, `json.timestamp-format.standard = 'ISO-8601'`), measured on Flink itself
//! (`shared/baselines/flink-ticker/README.md`). Where Flink fails the whole job, or reads a record oddly, the
//! record is malformed here and goes to the dead-letter output with a reason naming the field:
//!
//! | field | accepted | malformed |
//! |---|---|---|
//! | `event_time` | a string in `ISO_LOCAL_DATE_TIME` ([`super::local_time`]) | missing, null, not a string, a zone or offset, a space for `T`, no such date |
//! | `ticker` | a string as is; a number, boolean, object or array as its compact JSON text; missing, null → NULL | a partition directory `ticker=<escaped>` over 255 bytes |
//! | `price` | a number; a string that after trimming ASCII whitespace is a JSON number or `NaN`, `Infinity`, `-Infinity`; missing, null → NULL | a boolean, object or array; another string (`"abc"`, `"42d"`, `"0x1p3"`); a number beyond the double range (`1e400`) |
//!
//! Also malformed: a line that is not a JSON object, invalid UTF-8, and a duplicate key (Flink 2.x counts both
//! and then skips later fields). Other fields are ignored; empty (or blank) lines are skipped. Decoding is
//! `sonic-rs` (SIMD JSON, serde), which validates ignored values too.

use compact_str::CompactString;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use sonic_rs::{JsonType, JsonValueTrait, LazyValue};

use super::local_time::DateCache;
use super::Tick;
use crate::job::Decoded;
use crate::output::escape_partition_value;

/// Longest partition directory name (`ticker=<escaped value>`), bytes: the `NAME_MAX` of Linux filesystems.
pub const MAX_PARTITION_NAME: usize = 255;

/// The fields of one event, as raw JSON values (`None`: missing or null).
#[derive(Default)]
struct Fields<'a> {
    event_time: Option<LazyValue<'a>>,
    ticker: Option<LazyValue<'a>>,
    price: Option<LazyValue<'a>>,
}

/// A key of an event object: one of the three fields (no allocation), or another key (kept, to find duplicates).
enum Key {
    EventTime,
    Ticker,
    Price,
    Other(String),
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "event_time" => Key::EventTime,
                    "ticker" => Key::Ticker,
                    "price" => Key::Price,
                    other => Key::Other(other.to_string()),
                })
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Fields<'de>, M::Error> {
        let mut fields = Fields::default();
        // Which of the three fields were seen (a null one included), and the other keys.
        let mut seen = [false; 3];
        let mut others: Vec<String> = Vec::new();
        let duplicate = |name: &str| serde::de::Error::custom(format!("duplicate key {name:?}"));
        while let Some(key) = map.next_key::<Key>()? {
            let (slot, name, index) = match key {
                Key::EventTime => (&mut fields.event_time, "event_time", 0),
                Key::Ticker => (&mut fields.ticker, "ticker", 1),
                Key::Price => (&mut fields.price, "price", 2),
                Key::Other(name) => {
                    if others.contains(&name) {
                        return Err(duplicate(&name));
                    }
                    map.next_value::<IgnoredAny>()?;
                    others.push(name);
                    continue;
                }
            };
            if std::mem::replace(&mut seen[index], true) {
                return Err(duplicate(name));
            }
            *slot = map.next_value::<Option<LazyValue<'de>>>()?;
        }
        Ok(fields)
    }
}

/// One event object, deserialized through [`FieldsVisitor`].
struct Event<'a>(Fields<'a>);

impl<'de> serde::Deserialize<'de> for Event<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(FieldsVisitor).map(Event)
    }
}

fn fields(line: &str) -> Result<Fields<'_>, String> {
    sonic_rs::from_str::<Event<'_>>(line).map(|e| e.0).map_err(|e| format!("invalid JSON: {e}"))
}

fn kind(t: JsonType) -> &'static str {
    match t {
        JsonType::Null => "null",
        JsonType::Boolean => "a boolean",
        JsonType::Number => "a number",
        JsonType::String => "a string",
        JsonType::Array => "an array",
        JsonType::Object => "an object",
    }
}

/// Decodes one line (without its line terminator; a trailing `\r` is dropped).
///
/// # Errors
/// Why the event is malformed, naming the field (see the module documentation).
pub fn decode(line: &[u8]) -> Result<Decoded<Tick>, String> {
    decode_with(line, &mut DateCache::default())
}

/// [`decode`] with the scratch space of one reader (the last date read).
///
/// # Errors
/// As [`decode`].
pub fn decode_with(line: &[u8], dates: &mut DateCache) -> Result<Decoded<Tick>, String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if let Some(tick) = canonical(line, dates) {
        return Ok(Decoded::Record(tick));
    }
    decode_general(line)
}

/// [`decode`] without the fast path (a trailing `\r` is JSON whitespace here).
fn decode_general(line: &[u8]) -> Result<Decoded<Tick>, String> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(Decoded::Skip);
    }
    let text = std::str::from_utf8(line).map_err(|e| format!("invalid UTF-8: {e}"))?;
    let f = fields(text)?;
    let event_time = match &f.event_time {
        None => return Err("event_time: missing or null".into()),
        Some(v) if v.get_type() != JsonType::String => return Err(format!("event_time: expected a date-time string, found {}", kind(v.get_type()))),
        Some(v) => {
            let s = v.as_str().ok_or("event_time: invalid string")?;
            super::local_time::parse_local_date_time(s).map_err(|e| format!("event_time: {e}"))?
        }
    };
    let ticker: Option<CompactString> = match &f.ticker {
        None => None,
        Some(v) if v.get_type() == JsonType::String => Some(v.as_str().ok_or("ticker: invalid string")?.into()),
        Some(v) => Some(compact(v.as_raw_str()).into()),
    };
    if let Some(t) = &ticker {
        // Escaping at most triples a character's bytes: most tickers need no escaping to be measured.
        if "ticker=".len() + 3 * t.len() > MAX_PARTITION_NAME {
            let name = "ticker=".len() + escape_partition_value(t).len();
            if name > MAX_PARTITION_NAME {
                return Err(format!("ticker: its partition directory would be {name} bytes, more than {MAX_PARTITION_NAME}"));
            }
        }
    }
    let price = match &f.price {
        None => None,
        Some(v) => Some(price(v)?),
    };
    Ok(Decoded::Record(Tick { event_time, ticker, price }))
}

/// The fast path for the layout the blog's producer writes, `{"event_time": "…", "ticker": "…", "price": N}` (the
/// three keys in this order, spaces or tabs around the punctuation, strings without escapes, the ticker and the
/// price possibly `null`), decoded without a general JSON parser. Anything else — and any value the general path
/// would refuse — gives `None`, and the general path ([`fields`]) decides; a property test checks that the two
/// agree on every line the fast path takes.
fn canonical(line: &[u8], dates: &mut DateCache) -> Option<Tick> {
    struct Cursor<'a>(&'a [u8], usize);
    impl<'a> Cursor<'a> {
        fn ws(&mut self) {
            while matches!(self.0.get(self.1), Some(b' ' | b'\t')) {
                self.1 += 1;
            }
        }
        fn token<const N: usize>(&mut self, t: &[u8; N]) -> Option<()> {
            self.ws();
            let end = self.1 + N;
            // A fixed-size compare, inlined (a slice compare called memcmp for each key).
            (<&[u8; N]>::try_from(self.0.get(self.1..end)?).ok()? == t).then(|| self.1 = end)
        }
        /// A string without escapes or control characters, its bytes.
        fn string(&mut self) -> Option<&'a [u8]> {
            self.ws();
            if self.0.get(self.1) != Some(&b'"') {
                return None;
            }
            let start = self.1 + 1;
            let len = memchr::memchr(b'"', &self.0[start..])?;
            let text = &self.0[start..start + len];
            // Without branches, so that it vectorizes.
            if text.iter().fold(false, |bad, &c| bad | (c == b'\\') | (c < 0x20)) {
                return None;
            }
            self.1 = start + len + 1;
            Some(text)
        }
        fn null(&mut self) -> bool {
            self.ws();
            let null = self.0.get(self.1..self.1 + 4) == Some(b"null");
            if null {
                self.1 += 4;
            }
            null
        }
        /// A JSON number's text.
        fn number(&mut self) -> Option<&'a [u8]> {
            self.ws();
            let start = self.1;
            while matches!(self.0.get(self.1), Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')) {
                self.1 += 1;
            }
            Some(&self.0[start..self.1])
        }
    }
    let mut c = Cursor(line, 0);
    c.token(b"{")?;
    c.token(b"\"event_time\"")?;
    c.token(b":")?;
    let event_time = dates.parse_bytes(c.string()?).ok()?;
    c.token(b",")?;
    c.token(b"\"ticker\"")?;
    c.token(b":")?;
    let ticker: Option<CompactString> = if c.null() { None } else { Some(std::str::from_utf8(c.string()?).ok()?.into()) };
    if ticker.as_ref().is_some_and(|t| "ticker=".len() + 3 * t.len() > MAX_PARTITION_NAME) {
        return None;
    }
    c.token(b",")?;
    c.token(b"\"price\"")?;
    c.token(b":")?;
    let price = if c.null() {
        None
    } else {
        let text = c.number()?;
        match decimal(text) {
            Some(x) => Some(x),
            None => {
                let text = std::str::from_utf8(text).ok()?;
                if !is_json_number(text) {
                    return None;
                }
                Some(finite_double(text)?)
            }
        }
    };
    c.token(b"}")?;
    // Trailing whitespace only (JSON's: space, tab, CR, LF).
    line[c.1..].iter().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n')).then_some(Tick { event_time, ticker, price })
}

/// A JSON number of at most 15 significant digits and no exponent (`-12.34`, the producer's cents), as the
/// correctly rounded `f64` (what `str::parse` gives): the digits as an integer `m < 2^53` and `10^k` with
/// `k <= 15` are exact doubles, and IEEE division rounds their quotient correctly (Clinger's fast path).
/// `None` for anything else (the caller parses it in full).
fn decimal(text: &[u8]) -> Option<f64> {
    const POW10: [f64; 16] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];
    let negative = text.first() == Some(&b'-');
    let start = negative as usize;
    // One pass: the digits into `m`, and where the fraction starts.
    let (mut m, mut n, mut dot) = (0u64, 0usize, None);
    for (i, &c) in text.iter().enumerate().skip(start) {
        match c {
            b'0'..=b'9' if n < 15 => {
                m = m * 10 + (c - b'0') as u64;
                n += 1;
            }
            b'.' if dot.is_none() => dot = Some(i),
            _ => return None,
        }
    }
    let int_end = dot.unwrap_or(text.len());
    let int_len = int_end - start;
    let fraction_len = dot.map_or(0, |d| text.len() - d - 1);
    // JSON: an integer part, without a leading zero unless it is 0; a fraction of at least one digit.
    if int_len == 0 || (int_len > 1 && text[start] == b'0') || (dot.is_some() && fraction_len == 0) {
        return None;
    }
    let x = m as f64 / POW10[fraction_len];
    Some(if negative { -x } else { x })
}

fn price(v: &LazyValue<'_>) -> Result<f64, String> {
    match v.get_type() {
        JsonType::Number => {
            let raw = v.as_raw_str();
            finite_double(raw).ok_or_else(|| format!("price: {raw} is beyond the double range"))
        }
        JsonType::String => {
            let s = v.as_str().ok_or("price: invalid string")?;
            let t = s.trim_matches(|c: char| c.is_ascii_whitespace());
            match t {
                "NaN" => Ok(f64::NAN),
                "Infinity" => Ok(f64::INFINITY),
                "-Infinity" => Ok(f64::NEG_INFINITY),
                _ if is_json_number(t) => finite_double(t).ok_or_else(|| format!("price: {s:?} is beyond the double range")),
                _ => Err(format!("price: the string {s:?} is not a number")),
            }
        }
        other => Err(format!("price: expected a number or a numeric string, found {}", kind(other))),
    }
}

/// A JSON number's text (see [`is_json_number`]) as the nearest double, as `str::parse` rounds; `None` beyond the
/// double range (`1e400`: malformed, see the module documentation), where parsing gives an infinity.
fn finite_double(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// Whether `s` is a number in JSON's grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if b.first() == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Valid JSON text without the whitespace outside strings.
fn compact(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in raw.chars() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_796_112_000_000;

    fn tick(line: &str) -> Tick {
        match decode(line.as_bytes()) {
            Ok(Decoded::Record(t)) => t,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn reason(line: &[u8]) -> String {
        decode(line).unwrap_err()
    }

    #[test]
    fn the_blog_producers_events() {
        let t = tick(r#"{"event_time": "2026-12-01T08:00:01.123456", "ticker": "AAPL", "price": 42.17}"#);
        assert_eq!(t, Tick { event_time: T0 + 1123, ticker: Some("AAPL".into()), price: Some(42.17) });
        let t = tick("{\"event_time\":\"2026-12-01T08:00:00\",\"price\":\" 42.1 \",\"extra\":[1,{\"a\":null}]}\r");
        assert_eq!(t, Tick { event_time: T0, ticker: None, price: Some(42.1) });
    }

    #[test]
    fn tickers_of_any_json_value() {
        let t = |v: &str| tick(&format!(r#"{{"event_time":"2026-12-01T08:00","ticker":{v}}}"#)).ticker;
        assert_eq!(t("\"GOOGLEX\""), Some("GOOGLEX".into()), "VARCHAR(6) is not enforced");
        assert_eq!(t("\"A\\u0041\""), Some("AA".into()));
        assert_eq!(t("42"), Some("42".into()));
        assert_eq!(t("true"), Some("true".into()));
        assert_eq!(t("{ \"a\" : [1, \"b c\"] }"), Some("{\"a\":[1,\"b c\"]}".into()));
        assert_eq!(t("null"), None);
        assert_eq!(t("\"\""), Some(CompactString::default()));
        let long = format!("\"{}\"", "/".repeat(83)); // 83 × "%2F" = 249 bytes + "ticker=" = 256
        assert!(reason(format!(r#"{{"event_time":"2026-12-01T08:00","ticker":{long}}}"#).as_bytes()).contains("256 bytes"));
        let fits = format!("\"{}\"", "/".repeat(82));
        assert!(t(&fits).is_some());
    }

    #[test]
    fn prices() {
        let p = |v: &str| tick(&format!(r#"{{"event_time":"2026-12-01T08:00","price":{v}}}"#)).price;
        assert_eq!(p("42"), Some(42.0));
        assert_eq!(p("-0.5e1"), Some(-5.0));
        assert_eq!(p("1e-400"), Some(0.0));
        assert_eq!(p("\"42.1\""), Some(42.1));
        assert_eq!(p("\"\\t42.1\\n\""), Some(42.1));
        assert!(p("\"NaN\"").unwrap().is_nan());
        assert_eq!(p("\"Infinity\""), Some(f64::INFINITY));
        assert_eq!(p("\"-Infinity\""), Some(f64::NEG_INFINITY));
        assert_eq!(p("null"), None);
        assert_eq!(tick(r#"{"event_time":"2026-12-01T08:00"}"#).price, None);
        for (v, why) in [
            ("\"abc\"", "not a number"),
            ("\"42d\"", "not a number"),
            ("\"0x1p3\"", "not a number"),
            ("\"+1\"", "not a number"),
            ("\".5\"", "not a number"),
            ("\"1e400\"", "beyond the double range"),
            ("1e400", "beyond the double range"),
            ("true", "found a boolean"),
            ("[1]", "found an array"),
        ] {
            let r = reason(format!(r#"{{"event_time":"2026-12-01T08:00","price":{v}}}"#).as_bytes());
            assert!(r.starts_with("price: ") && r.contains(why), "{v}: {r}");
        }
    }

    #[test]
    fn malformed_events() {
        for (line, why) in [
            (&br#"{"ticker":"AAPL","price":1}"#[..], "event_time: missing or null"),
            (br#"{"event_time":null}"#, "event_time: missing or null"),
            (br#"{"event_time":1796112000000}"#, "event_time: expected a date-time string, found a number"),
            (br#"{"event_time":"2026-12-01T08:00:00Z"}"#, "event_time: a zone or offset"),
            (br#"{"event_time":"2026-12-01 08:00:00"}"#, "event_time: expected 'T'"),
            (br#"{"event_time":"2026-02-30T08:00"}"#, "event_time: no such date"),
            (br#"{"event_time":"2026-12-01T08:00","price":1,"price":2}"#, "duplicate key \"price\""),
            (br#"{"event_time":"2026-12-01T08:00","x":1,"x":2}"#, "duplicate key \"x\""),
            (br#"["event_time"]"#, "invalid JSON"),
            (b"not json", "invalid JSON"),
            (br#"{"event_time":"2026-12-01T08:00"} x"#, "invalid JSON"),
            (br#"{"event_time":"2026-12-01T08:00","x":[1,,2]}"#, "invalid JSON"),
            (b"{\"event_time\":\"2026-12-01T08:00\",\"ticker\":\"\xff\"}", "invalid UTF-8"),
        ] {
            let r = reason(line);
            assert!(r.contains(why), "{}: {r}", String::from_utf8_lossy(line));
        }
        assert_eq!(decode(b""), Ok(Decoded::Skip));
        assert_eq!(decode(b"  \r"), Ok(Decoded::Skip));
    }

    /// The fast path takes what the general one takes, with the same result, and leaves everything else to it.
    #[test]
    fn the_fast_path_agrees_with_the_general_decoder() {
        use proptest::prelude::*;
        let piece = prop_oneof![
            Just("\"2026-12-01T08:00:01.123456\"".to_string()),
            Just("\"2026-12-01T08:00\"".to_string()),
            Just("\"2026-02-30T08:00\"".to_string()),
            Just("\"2026-12-01 08:00\"".to_string()),
            Just("\"2026-12-01T08:00\\u003a00\"".to_string()),
            Just("1796112000000".to_string()),
            Just("null".to_string()),
        ];
        let ticker = prop_oneof![Just("\"AAPL\"".to_string()), Just("\"A\\\"B\"".to_string()), Just("\"é\"".to_string()), Just("null".to_string()), Just("42".to_string()), Just("\"\"".to_string()), Just(format!("\"{}\"", "/".repeat(90)))];
        let price = prop_oneof![Just("42.17".to_string()), Just("-0".to_string()), Just("0.1".to_string()), Just("-12.5".to_string()), Just("123456789012345.6".to_string()), Just("1.".to_string()), Just("-".to_string()), Just("00.5".to_string()), Just("1e400".to_string()), Just("01".to_string()), Just("\"42\"".to_string()), Just("null".to_string()), Just("1.5e-3".to_string()), Just("true".to_string())];
        let ws = prop_oneof![Just(""), Just(" "), Just("\t"), Just("  "), Just("\n")];
        let keys = prop_oneof![Just(["event_time", "ticker", "price"]), Just(["ticker", "event_time", "price"]), Just(["event_time", "ticker", "prize"])];
        let line = (piece, ticker, price, ws, keys, prop_oneof![Just(""), Just(" x"), Just(","), Just(" \r")]).prop_map(|(t, k, p, w, names, tail)| {
            let values = [t, k, p];
            let members: Vec<String> = names.iter().zip(values.iter()).map(|(n, v)| format!("{w}\"{n}\"{w}:{w}{v}{w}")).collect();
            format!("{{{}}}{tail}", members.join(","))
        });
        proptest!(ProptestConfig::with_cases(3000), |(line in line)| {
            if let Some(fast) = canonical(line.as_bytes(), &mut DateCache::default()) {
                let general = fields(&line).ok().map(|_| ());
                prop_assert!(general.is_some(), "fast path took {line:?}, which is not valid JSON");
                // The general path alone (the fast one disabled) gives the same tick.
                let slow = decode_general(line.as_bytes());
                prop_assert_eq!(slow, Ok(Decoded::Record(fast)), "{}", line);
            }
        });
        assert!(canonical(br#"{"event_time": "2026-12-01T08:00:01.123456", "ticker": "AAPL", "price": 42.17}"#, &mut DateCache::default()).is_some(), "the producer's events take the fast path");
    }

    /// The short-decimal path rounds as `str::parse` does, and leaves what it cannot take to it.
    #[test]
    fn short_decimals_parse_as_str_parse() {
        use proptest::prelude::*;
        proptest!(ProptestConfig::with_cases(20_000), |(neg in any::<bool>(), int in "(0|[1-9][0-9]{0,15})", fraction in proptest::option::of("[0-9]{1,16}"))| {
            let text = format!("{}{int}{}", if neg { "-" } else { "" }, fraction.map(|f| format!(".{f}")).unwrap_or_default());
            let exact: f64 = text.parse().unwrap();
            match decimal(text.as_bytes()) {
                Some(x) => prop_assert_eq!(x.to_bits(), exact.to_bits(), "{}", text),
                None => prop_assert!(text.trim_start_matches('-').replace('.', "").len() > 15, "{} refused", text),
            }
        });
        for bad in ["", "-", "01", "1.", ".5", "+1", "1e5", "1.5e-3", "--1", "1.2.3", "0x1"] {
            assert_eq!(decimal(bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(decimal(b"-0").map(f64::to_bits), Some((-0.0f64).to_bits()));
        assert_eq!(decimal(b"0.1"), Some(0.1));
        assert_eq!(decimal(b"999999999999999"), Some(999_999_999_999_999.0));
    }

    #[test]
    fn json_numbers() {
        for ok in ["0", "-0", "42", "4.25", "1e5", "1E+5", "-1.5e-3"] {
            assert!(is_json_number(ok), "{ok}");
        }
        for bad in ["", "-", "01", "1.", ".5", "+1", "1e", "1e+", "NaN", "0x10", "42d", "1_000"] {
            assert!(!is_json_number(bad), "{bad}");
        }
    }
}
