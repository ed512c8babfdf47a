//! A local S3 for tests: moto's server (`scripts/moto.sh`), killed when dropped, with the helpers of
//! `scripts/s3_tool.py` (buckets, listings, objects) and the Athena step with DuckDB (`scripts/duckdb_ticker.py`).

use std::process::{Child, Command, Stdio};

/// Dummy credentials and region for the local server (children get them through the environment).
pub const ENV: [(&str, &str); 4] = [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_REGION", "us-east-1"), ("AWS_EC2_METADATA_DISABLED", "true")];

/// A running moto server.
pub struct LocalS3 {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub address: String,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Drop for LocalS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python(script: &str) -> Command {
    let mut c = Command::new("python3");
    c.arg(super::root().join("scripts").join(script));
    c
}

impl LocalS3 {
    /// Starts moto on a free port and waits until it listens.
    pub fn start() -> LocalS3 {
        let port = super::free_port();
        let child = Command::new(super::root().join("scripts/moto.sh")).arg(port.to_string()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("scripts/moto.sh starts");
        super::wait_listening(port, "scripts/moto.sh (pip install 'moto[server]')");
        LocalS3 { child, address: format!("127.0.0.1:{port}"), url: format!("http://127.0.0.1:{port}") }
    }

    fn tool(&self, args: &[&str]) -> Vec<u8> {
        let output = python("s3_tool.py").arg(&self.url).args(args).output().expect("python3 runs");
        assert!(output.status.success(), "s3_tool.py {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        output.stdout
    }

    /// Creates `bucket`.
    pub fn bucket(&self, bucket: &str) {
        self.tool(&["mkbucket", bucket]);
    }

    /// Every key under `prefix` of `bucket` with its size, in key order.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<(String, u64)> {
        let text = String::from_utf8(self.tool(&["ls", bucket, prefix])).unwrap();
        text.lines().map(|l| l.split_once('\t').map(|(k, n)| (k.to_string(), n.parse().unwrap())).unwrap()).collect()
    }

    /// The bytes of `key`.
    pub fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        self.tool(&["get", bucket, key])
    }
}

/// The rows a SQL engine reads back from a ticker output at `location` (s3://… through `s3`, or a directory),
/// as `ticker,price,window_end_ms` lines after a header (`scripts/duckdb_ticker.py`).
pub fn duckdb_rows(s3: Option<&LocalS3>, location: &str, format: &str, by_date: bool) -> String {
    let mut c = python("duckdb_ticker.py");
    if let Some(s3) = s3 {
        c.args(["--endpoint", &s3.address]);
    }
    c.args(["--format", format]).arg(location);
    if by_date {
        c.arg("--date");
    }
    let output = c.output().expect("python3 runs");
    assert!(output.status.success(), "duckdb_ticker.py {location}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// The rows the independent implementation (`scripts/ticker_reference.py`) computes from `inputs` (one partition
/// each), in the same format; with `dead_letters`, also its `PATH<TAB>LINE<TAB>late|malformed` lines.
pub fn reference_rows(inputs: &[&std::path::Path], dead_letters: Option<&std::path::Path>) -> String {
    let mut c = python("ticker_reference.py");
    c.args(inputs);
    if let Some(d) = dead_letters {
        c.arg("--dead-letters").arg(d);
    }
    let output = c.output().expect("python3 runs");
    assert!(output.status.success(), "ticker_reference.py: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}
