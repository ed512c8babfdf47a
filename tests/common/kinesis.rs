//! Local Kinesis implementations for tests, started by `scripts/` and killed when dropped: moto's server
//! (`scripts/moto.sh`) and kinesalite (`scripts/kinesalite.sh`); a client for them; and a forwarding
//! proxy that answers some calls with throttling errors.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aws_sdk_kinesis::Client;
use taxiflow::connectors::kinesis::KinesisStream;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Which implementation.
#[derive(Clone, Copy, Debug)]
pub enum Implementation {
    /// moto's server (PyPI).
    Moto,
    /// kinesalite (npm).
    Kinesalite,
}

/// A running local Kinesis endpoint.
pub struct LocalKinesis {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// A single-threaded runtime for the client calls of the test.
    pub runtime: tokio::runtime::Runtime,
    /// A client of the endpoint.
    pub client: Client,
}

/// Dummy credentials and region for the local endpoints (children get them through the environment).
pub const ENV: [(&str, &str); 4] = [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_REGION", "us-east-1"), ("AWS_EC2_METADATA_DISABLED", "true")];

/// A client of `url` with the dummy credentials.
pub fn client(url: &str) -> Client {
    let credentials = aws_credential_types::Credentials::new("test", "test", None, None, "tests");
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
        .region(aws_sdk_kinesis::config::Region::new("us-east-1"))
        .credentials_provider(credentials)
        .endpoint_url(url)
        .build();
    Client::from_conf(config)
}

impl LocalKinesis {
    /// Starts `which` on a free port and waits until it listens.
    pub fn start(which: Implementation) -> LocalKinesis {
        let port = super::free_port();
        let script = match which {
            Implementation::Moto => "scripts/moto.sh",
            Implementation::Kinesalite => "scripts/kinesalite.sh",
        };
        let child = Command::new(super::root().join(script)).arg(port.to_string()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("the Kinesis script starts");
        super::wait_listening(port, &format!("{script} (pip install 'moto[server]'; npm install kinesalite)"));
        let url = format!("http://127.0.0.1:{port}");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        LocalKinesis { child, client: client(&url), url, runtime }
    }

    /// Creates `name` with `shards` shards and waits until it is active.
    pub fn create(&self, name: &str, shards: i32) -> KinesisStream {
        let stream = KinesisStream { name: name.into() };
        self.runtime.block_on(taxiflow::connectors::kinesis::create_stream(&self.client, &stream, shards)).unwrap();
        stream
    }

    /// The stream's shards.
    pub fn shards(&self, stream: &KinesisStream) -> Vec<taxiflow::connectors::kinesis::ShardInfo> {
        self.runtime.block_on(taxiflow::connectors::kinesis::list_shards(&self.client, stream)).unwrap()
    }
}

impl Drop for LocalKinesis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Forwards every request to `upstream` over plain HTTP/1.1, except: `GetRecords` and `PutRecords` calls
/// number `n` with `n % every == 0` are answered `400 ProvisionedThroughputExceededException` without being
/// forwarded, and every other forwarded `PutRecords` has its second half of records cut off and reported
/// failed (`ProvisionedThroughputExceededException`), as Kinesis does under load.
pub struct ThrottlingProxy {
    /// Keeps the server alive.
    pub server: MockServer,
    /// Calls answered with a throttling error (whole call).
    pub throttled: Arc<AtomicUsize>,
    /// Records reported failed in partly failed `PutRecords` answers.
    pub failed_entries: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

struct Forward {
    upstream: String,
    every: usize,
    calls: AtomicUsize,
    puts: AtomicUsize,
    throttled: Arc<AtomicUsize>,
    failed_entries: Arc<AtomicUsize>,
}

fn throughput_exceeded() -> ResponseTemplate {
    ResponseTemplate::new(400)
        .insert_header("content-type", "application/x-amz-json-1.1")
        .set_body_string(r#"{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded for shard (test proxy)"}"#)
}

/// One HTTP/1.1 exchange with `upstream` (`host:port`); returns status, content type and body.
fn exchange(upstream: &str, request: &Request, body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(upstream).expect("upstream");
    let mut head = format!("{} {} HTTP/1.1\r\nhost: {upstream}\r\nconnection: close\r\ncontent-length: {}\r\n", request.method, request.url.path(), body.len());
    for (name, value) in request.headers.iter() {
        if !matches!(name.as_str(), "host" | "content-length" | "connection" | "transfer-encoding") {
            head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap_or("")));
        }
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut content_type = String::new();
    let mut length = None;
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':').unwrap();
        match n.to_ascii_lowercase().as_str() {
            "content-type" => content_type = v.trim().to_string(),
            "content-length" => length = v.trim().parse::<usize>().ok(),
            _ => {}
        }
    }
    let mut out = Vec::new();
    match length {
        Some(n) => {
            out.resize(n, 0);
            reader.read_exact(&mut out).unwrap();
        }
        None => {
            reader.read_to_end(&mut out).unwrap();
        }
    }
    (status, content_type, out)
}

impl Respond for Forward {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let target = request.headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let counted = target.ends_with(".GetRecords") || target.ends_with(".PutRecords");
        if counted && (self.calls.fetch_add(1, Ordering::SeqCst) + 1).is_multiple_of(self.every) {
            self.throttled.fetch_add(1, Ordering::SeqCst);
            return throughput_exceeded();
        }
        let mut body = request.body.clone();
        let mut cut = 0;
        if target.ends_with(".PutRecords") && self.puts.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
            let mut json: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let records = json["Records"].as_array_mut().unwrap();
            if records.len() > 1 {
                cut = records.len() / 2;
                let keep = records.len() - cut;
                records.truncate(keep);
                body = serde_json::to_vec(&json).unwrap();
            }
        }
        let (status, content_type, answer) = exchange(&self.upstream, request, &body);
        let mut answer = answer;
        if cut > 0 && status == 200 {
            let mut json: serde_json::Value = serde_json::from_slice(&answer).unwrap();
            let results = json["Records"].as_array_mut().unwrap();
            for _ in 0..cut {
                results.push(serde_json::json!({"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded for shard (test proxy)"}));
            }
            json["FailedRecordCount"] = serde_json::json!(json["FailedRecordCount"].as_u64().unwrap_or(0) + cut as u64);
            self.failed_entries.fetch_add(cut, Ordering::SeqCst);
            answer = serde_json::to_vec(&json).unwrap();
        }
        ResponseTemplate::new(status).insert_header("content-type", content_type.as_str()).set_body_bytes(answer)
    }
}

impl ThrottlingProxy {
    /// Starts a proxy to `upstream` (`http://host:port`) that throttles every `every`-th read or write call.
    pub fn start(upstream: &str, every: usize) -> ThrottlingProxy {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let throttled = Arc::new(AtomicUsize::new(0));
        let failed_entries = Arc::new(AtomicUsize::new(0));
        let forward = Forward {
            upstream: upstream.trim_start_matches("http://").to_string(),
            every,
            calls: AtomicUsize::new(0),
            puts: AtomicUsize::new(0),
            throttled: throttled.clone(),
            failed_entries: failed_entries.clone(),
        };
        let server = runtime.block_on(async {
            let server = MockServer::start().await;
            Mock::given(wiremock::matchers::any()).respond_with(forward).mount(&server).await;
            server
        });
        ThrottlingProxy { server, throttled, failed_entries, _runtime: runtime }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.uri()
    }
}
