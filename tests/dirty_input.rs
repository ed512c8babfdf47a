//! Readers on every format with dirty rows: bad rows go to the dead-letter output with file, line and reason,
//! the run goes on, and configuration errors fail fast naming the flag.

mod common;

use std::io::Write;

use common::*;

const TLC_HEADER: &str = "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,pickup_longitude,pickup_latitude,RateCodeID,store_and_fwd_flag,dropoff_longitude,dropoff_latitude,payment_type,fare_amount,extra,mta_tax,tip_amount,tolls_amount,improvement_surcharge,total_amount";
const TLC_GOOD: &str = "2,2015-01-15 19:05:39,2015-01-15 19:23:42,1,1.59,-73.993896484375,40.750110626220703,1,N,-73.974784851074219,40.750617980957031,1,12,1,0.5,3.25,0,0.3,17.05";

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn every_format_with_dirty_rows() {
    let dir = tempfile::tempdir().unwrap();
    let tlc = write(
        dir.path(),
        "tlc.csv",
        &format!(
            "{TLC_HEADER}\n{TLC_GOOD}\n\
             2,2015-01-15 19:05:39,2015-01-15 19:23:42,1,1.59,-73.99,forty,1,N,-73.97,40.75,1,12,1,0.5,3.25,0,0.3,17.05\n\
             \n\
             2,2015-01-15 19:05:39\n\
             2,2015-01-15 19:05:39,2015-01-15 19:23:42,1,1.59,0,0,1,N,0,0,1,12,1,0.5,3.25,0,0.3,17.05\n\
             {TLC_GOOD}\r\n"
        ),
    );
    let debs = write(
        dir.path(),
        "debs.csv",
        "07290D3599E7A0D62097A346EFCC1FB5,E7750A37CAB07D0DFF0AF7E3573AC141,2013-01-01 00:00:00,2013-01-01 00:02:00,120,0.44,-73.956528,40.716976,-73.962440,40.715008,CSH,3.50,0.50,0.50,0.00,0.00,4.50\n\
         07290D3599E7A0D62097A346EFCC1FB5,E7750A37CAB07D0DFF0AF7E3573AC141,2013-01-01 00:00:00,2013-13-01 00:02:00,120,0.44,-73.956528,40.716976,-73.962440,40.715008,CSH,3.50,0.50,0.50,0.00,0.00,4.50\n",
    );
    let ride = write(
        dir.path(),
        "rides.csv",
        "6,START,2013-01-01 00:00:00,1970-01-01 00:00:00,-73.866135,40.771091,-73.961334,40.764912,6,2013000006,2013000006\n\
         6,END,2013-01-01 00:11:00,2013-01-01 00:00:00,-73.866135,40.771091,-73.961334,40.764912,6,2013000006,2013000006\n\
         7,HALFWAY,2013-01-01 00:11:00,2013-01-01 00:00:00,-73.866135,40.771091,-73.961334,40.764912,6,2013000006,2013000006\n",
    );
    let trip = |dropoff: &str| {
        format!(r#"{{"type":"trip","trip_id":1,"pickup_latitude":40.75,"pickup_longitude":-73.99,"dropoff_latitude":40.645,"dropoff_longitude":-73.78,"pickup_datetime":"2013-01-01T00:00:00.000Z","dropoff_datetime":"{dropoff}","total_amount":50}}"#)
    };
    // JSON lines, gzip-compressed but named .txt: detected by magic bytes.
    let json_text = format!(
        "{}\n{{\"type\":\"watermark\",\"watermark\":\"2013-01-01T00:30:00.000Z\"}}\n{}\n{{not json\n{{\"type\":\"ride\"}}\n{}\n",
        trip("2013-01-01T00:40:00.000Z"),
        trip("2013-01-01T00:20:00.000Z"),
        trip("2013-01-01T00:45:00.000Z"),
    );
    let gz_path = dir.path().join("events.txt");
    let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(&gz_path).unwrap(), flate2::Compression::default());
    gz.write_all(json_text.as_bytes()).unwrap();
    gz.finish().unwrap();
    // A plain file named .gz is read as plain text.
    let plain_gz = write(dir.path(), "plain.json.gz", &format!("{}\n", trip("2013-01-01T00:50:00.000Z")));

    let out = dir.path().join("out");
    let inputs = [&tlc, &debs, &ride, &gz_path, &plain_gz];
    let mut args: Vec<String> = Vec::new();
    for p in inputs {
        args.push("--input".into());
        args.push(p.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = run_to_dir(&args, &out);
    let stdout = String::from_utf8_lossy(&output.stdout);

    let dead = read_jsonl(&out, "dead_letter");
    let find = |file: &std::path::Path, line: u64| {
        dead.iter()
            .find(|d| d["source"] == file.display().to_string() && d["line"] == line)
            .unwrap_or_else(|| panic!("no dead letter for {}:{line} in {dead:#?}", file.display()))
    };
    assert!(find(&tlc, 3)["reason"].as_str().unwrap().contains("pickup_latitude"));
    assert!(find(&tlc, 5)["reason"].as_str().unwrap().contains("fields"));
    assert!(find(&debs, 2)["reason"].as_str().unwrap().contains("dropoff_datetime"));
    assert!(find(&ride, 3)["reason"].as_str().unwrap().contains("START or END"));
    assert!(find(&gz_path, 4)["reason"].as_str().unwrap().contains("invalid JSON"));
    assert!(find(&gz_path, 5)["reason"].as_str().unwrap().contains("\"ride\""));
    let late = find(&gz_path, 3);
    assert_eq!(late["reason"], "late");
    assert_eq!(late["event_time"], 1_356_999_600_000u64);
    assert_eq!(late["watermark"], 1_357_000_200_000u64);
    assert!(late["record"].as_str().unwrap().contains("00:20:00"));
    assert_eq!(dead.len(), 7);

    // TLC: 3 trips (one with 0,0 coordinates), DEBS: 1, rides: 1 END (+1 START), JSON: 3 (1 late) + 1.
    assert_eq!(summary_value(&stdout, "trips"), 3 + 1 + 1 + 3 + 1);
    assert_eq!(summary_value(&stdout, "malformed"), 6);
    assert_eq!(summary_value(&stdout, "late"), 1);
    assert_eq!(summary_value(&stdout, "filtered"), 1);
    // records: TLC 5 non-empty data lines, DEBS 2, rides 3, JSON 6, plain 1.
    assert_eq!(summary_value(&stdout, "records read"), 5 + 2 + 3 + 6 + 1);

    // The two JSON trips at JFK from the same cell in the same window make one duration document.
    let durations = read_jsonl(&out, "trip_duration");
    let jfk: Vec<_> = durations.iter().filter(|d| d["airport_code"] == "JFK").collect();
    assert_eq!(jfk.len(), 1, "{durations:#?}");
    assert_eq!(jfk[0]["sum_trip_duration"], 40 + 45 + 50);
    assert_eq!(jfk[0]["avg_trip_duration"], 45.0);
}

#[test]
fn line_numbers_hold_in_byte_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = format!("{TLC_HEADER}\n");
    let mut bad_lines = Vec::new();
    for i in 2..=400u64 {
        if i % 37 == 0 {
            text.push_str("garbage,row\n");
            bad_lines.push(i);
        } else {
            text.push_str(TLC_GOOD);
            text.push('\n');
        }
    }
    let file = write(dir.path(), "split.csv", &text);
    let out = dir.path().join("out");
    let f = file.display().to_string();
    let output = run_to_dir(&["--input", &f, "-w", "3", "--min-split-bytes", "1"], &out);
    assert_eq!(summary_value(&String::from_utf8_lossy(&output.stdout), "trips"), 399 - bad_lines.len() as u64);
    let mut lines: Vec<u64> = read_jsonl(&out, "dead_letter").iter().map(|d| d["line"].as_u64().unwrap()).collect();
    lines.sort();
    assert_eq!(lines, bad_lines);
    let counts = read_jsonl(&out, "pickup_count");
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[0]["pickup_count"], 399 - bad_lines.len() as u64);
}

fn fails_with(args: &[&str], needle: &str) {
    let output = taxiflow().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{args:?} must fail");
    assert!(stderr.contains(needle), "{args:?}: {stderr:?} should mention {needle:?}");
}

#[test]
fn configuration_errors_fail_fast_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = write(dir.path(), "what.csv", "a,b,c\n1,2,3\n");
    let u = unknown.display().to_string();
    fails_with(&["run", "--input", &u], "--format");
    fails_with(&["run", "--input", "/nonexistent/trips.csv"], "--input /nonexistent/trips.csv");
    let header_only = write(dir.path(), "h.csv", "VendorID,tpep_pickup_datetime,pickup_longitude\n");
    fails_with(&["run", "--input", &header_only.display().to_string()], "dropoff_datetime");
    fails_with(&["run", "--sink", "kafka://b/t"], "--sink");
    fails_with(&["run", "-n", "2", "-p", "2"], "--process 2");
    fails_with(&["run", "-n", "2", "--hostfile", "/nonexistent/hosts"], "--hostfile");
    fails_with(&["run", "--profile", "emr"], "--profile");
    fails_with(&["run", "--window", "0s"], "--window");
    fails_with(&["run", "--hot-spot-precision", "13"], "--hot-spot-precision");
    fails_with(&["run", "--sink", "stdout", "-n", "2"], "--sink stdout");
    fails_with(&["run", "--sink", &format!("file://{u}/sub")], "--sink");
}

#[test]
fn stdout_sink_prints_documents_with_their_index() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "t.csv", &format!("{TLC_HEADER}\n{TLC_GOOD}\n{TLC_GOOD}\n"));
    let output = taxiflow().args(["run", "--input", &file.display().to_string(), "--sink", "stdout"]).output().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let docs: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(docs.len(), 1, "{stdout}");
    assert_eq!(docs[0]["_index"], "pickup_count");
    assert_eq!(docs[0]["pickup_count"], 2);
    assert!(String::from_utf8_lossy(&output.stderr).contains("summary: records read 2"));
}
