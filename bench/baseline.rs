//! The benchmark's baseline: a hand-written single-threaded loop over JSON-lines trip events with serde_json,
//! the `geohash` crate and `HashMap`s (spec §6 "hand-written single-threaded Rust loop"). It computes what
//! `taxiflow run` computes in the KDA profile (hot spots at geohash 7 and airport durations at geohash 6 per
//! 1 h window, NYC box, JFK/LGA boxes), closes windows on watermark records and at the end, and writes one line
//! per result to `OUT`: `index,window_end_ms,key,value`.
//!
//! Usage: `baseline INPUT.jsonl OUT`

use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Write};

use serde::Deserialize;

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    pickup_latitude: Option<f64>,
    pickup_longitude: Option<f64>,
    dropoff_latitude: Option<f64>,
    dropoff_longitude: Option<f64>,
    pickup_datetime: Option<&'a str>,
    dropoff_datetime: Option<&'a str>,
    watermark: Option<&'a str>,
}

const HOUR: i64 = 3_600_000;

fn millis(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_millis())
}

fn in_box(lat: f64, lon: f64, b: (f64, f64, f64, f64)) -> bool {
    lat >= b.0 && lat <= b.1 && lon >= b.2 && lon <= b.3
}

const NYC: (f64, f64, f64, f64) = (40.560, 40.878, -74.054, -73.722);
const JFK: (f64, f64, f64, f64) = (40.632, 40.654, -73.800, -73.761);
const LGA: (f64, f64, f64, f64) = (40.766, 40.778, -73.881, -73.859);

#[derive(Default)]
struct State {
    counts: HashMap<(i64, String), u64>,
    durations: HashMap<(i64, String, &'static str), (i64, u64)>,
}

impl State {
    /// Writes and forgets every window whose end is ≤ `frontier`.
    fn close(&mut self, frontier: i64, out: &mut impl Write) -> u64 {
        let mut written = 0;
        self.counts.retain(|(end, cell), n| {
            if *end <= frontier {
                writeln!(out, "pickup_count,{end},{cell},{n}").unwrap();
                written += 1;
                false
            } else {
                true
            }
        });
        self.durations.retain(|(end, cell, airport), (sum, n)| {
            if *end <= frontier {
                if *n >= 2 {
                    writeln!(out, "trip_duration,{end},{cell}-{airport},{}", *sum as f64 / *n as f64).unwrap();
                    written += 1;
                }
                false
            } else {
                true
            }
        });
        written
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (input, output) = (&args[1], &args[2]);
    let mut reader = BufReader::with_capacity(1 << 20, std::fs::File::open(input).expect("input"));
    let mut out = BufWriter::new(std::fs::File::create(output).expect("output"));
    let mut state = State::default();
    let (mut records, mut malformed, mut written) = (0u64, 0u64, 0u64);
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).expect("read") == 0 {
            break;
        }
        records += 1;
        let Ok(e) = serde_json::from_slice::<Event>(&line) else {
            malformed += 1;
            continue;
        };
        match e.kind {
            "watermark" => {
                if let Some(w) = e.watermark.and_then(millis) {
                    written += state.close(w + 1, &mut out);
                }
            }
            "trip" => {
                let (Some(plat), Some(plon), Some(dlat), Some(dlon), Some(pu), Some(dropoff)) = (
                    e.pickup_latitude,
                    e.pickup_longitude,
                    e.dropoff_latitude,
                    e.dropoff_longitude,
                    e.pickup_datetime.and_then(millis),
                    e.dropoff_datetime.and_then(millis),
                ) else {
                    malformed += 1;
                    continue;
                };
                if !in_box(plat, plon, NYC) || !in_box(dlat, dlon, NYC) {
                    continue;
                }
                let end = dropoff - dropoff.rem_euclid(HOUR) + HOUR;
                let cell = geohash::encode(geohash::Coord { x: plon, y: plat }, 7).expect("valid coordinates");
                let airport = if in_box(dlat, dlon, JFK) {
                    Some("JFK")
                } else if in_box(dlat, dlon, LGA) {
                    Some("LGA")
                } else {
                    None
                };
                if let Some(airport) = airport {
                    let d = state.durations.entry((end, cell[..6].to_string(), airport)).or_default();
                    d.0 += (dropoff - pu) / 60_000;
                    d.1 += 1;
                }
                *state.counts.entry((end, cell)).or_default() += 1;
            }
            _ => malformed += 1,
        }
    }
    written += state.close(i64::MAX, &mut out);
    out.flush().unwrap();
    eprintln!("baseline: records {records}, malformed {malformed}, documents written {written}");
}
