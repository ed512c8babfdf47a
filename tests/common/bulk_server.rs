//! An HTTP test server (wiremock) that speaks enough of the Elasticsearch API for `taxiflow run` (root, template
//! and index checks, `_bulk`), stores what it acknowledges, and answers bulk requests with scripted faults; and a
//! TCP forwarder that can refuse connections for a while.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Decides an item's failure: `(position in request, _id)` → failure status and error type, or `None`.
pub type ItemFault = Arc<dyn Fn(usize, &str) -> Option<(u16, &'static str)> + Send + Sync>;

/// Checks a request before it is answered; `Err` gets a 403 with the reason.
pub type RequestCheck = Arc<dyn Fn(&Request) -> Result<(), String> + Send + Sync>;

/// What the server does with one bulk request.
#[derive(Clone)]
pub enum Fault {
    /// Index every item.
    None,
    /// Answer the whole request with this status (nothing stored).
    Whole(u16),
    /// Store and answer per item: `f(position in request, _id)` gives a failure status and error type, or `None`
    /// to index it.
    Items(ItemFault),
    /// Index every item but answer only after this delay (the client may time out first).
    Slow(Duration),
    /// Run this, then index every item (e.g. take a forwarder down so the answer is lost).
    Hook(Arc<dyn Fn() + Send + Sync>),
    /// Count the request, then answer it (indexing every item) only once the test opens this gate: the test
    /// looks at the client while the answer is outstanding, for as long as it needs, instead of racing a delay.
    /// (The server answers one request at a time meanwhile.)
    Held(Arc<Gate>),
}

/// A gate a held answer waits behind ([`Fault::Held`]).
#[derive(Default)]
pub struct Gate {
    open: Mutex<bool>,
    opened: std::sync::Condvar,
}

/// Opens its gate when dropped: declared after the client, it lets a held answer go before the client is
/// dropped, so a failing assertion ends the test instead of leaving the client waiting for the answer.
pub struct OpenOnDrop(pub Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

impl Gate {
    /// Lets held answers go.
    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
    }
}

/// What the server saw.
#[derive(Default)]
pub struct Seen {
    /// Stored documents: (index, _id) → source.
    pub stored: BTreeMap<(String, String), Value>,
    /// Bulk requests received.
    pub requests: usize,
    /// Items received, retries included.
    pub items: usize,
    /// Times each id was received.
    pub receipts: BTreeMap<String, usize>,
}

struct Bulk {
    seen: Arc<Mutex<Seen>>,
    script: Arc<dyn Fn(usize) -> Fault + Send + Sync>,
    check: RequestCheck,
    rejected_checks: Arc<AtomicUsize>,
}

impl Respond for Bulk {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if let Err(why) = (self.check)(request) {
            self.rejected_checks.fetch_add(1, Ordering::SeqCst);
            return ResponseTemplate::new(403).set_body_json(json!({"message": why}));
        }
        let text = String::from_utf8(request.body.clone()).expect("UTF-8 body");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len().is_multiple_of(2), "NDJSON of action/source pairs");
        let number = {
            let mut seen = self.seen.lock().unwrap();
            seen.requests += 1;
            seen.requests
        };
        let fault = (self.script)(number);
        let mut delay = None;
        match &fault {
            Fault::Whole(status) => return ResponseTemplate::new(*status).set_body_json(json!({"error": {"type": "test_fault", "reason": "scripted"}, "status": status})),
            Fault::Slow(d) => delay = Some(*d),
            Fault::Hook(f) => f(),
            Fault::Held(gate) => gate.wait(),
            Fault::None | Fault::Items(_) => {}
        }
        let mut items = Vec::new();
        let mut errors = false;
        let mut seen = self.seen.lock().unwrap();
        for (position, pair) in lines.chunks(2).enumerate() {
            let action: Value = serde_json::from_str(pair[0]).expect("action line");
            let source: Value = serde_json::from_str(pair[1]).expect("source line");
            let index = action["index"]["_index"].as_str().expect("_index").to_string();
            let id = action["index"]["_id"].as_str().expect("_id").to_string();
            seen.items += 1;
            *seen.receipts.entry(id.clone()).or_default() += 1;
            let failure = match &fault {
                Fault::Items(f) => f(position, &id),
                _ => None,
            };
            items.push(match failure {
                Some((status, kind)) => {
                    errors = true;
                    json!({"index": {"_index": index, "_id": id, "status": status, "error": {"type": kind, "reason": format!("scripted {status}")}}})
                }
                None => {
                    let created = seen.stored.insert((index.clone(), id.clone()), source).is_none();
                    json!({"index": {"_index": index, "_id": id, "status": if created { 201 } else { 200 }, "result": if created { "created" } else { "updated" }}})
                }
            });
        }
        let answer = ResponseTemplate::new(200).set_body_json(json!({"took": 1, "errors": errors, "items": items}));
        match delay {
            Some(d) => answer.set_delay(d),
            None => answer,
        }
    }
}

/// The server, on its own threads (wiremock), with what it saw.
pub struct BulkServer {
    /// Keeps the server alive.
    pub server: MockServer,
    /// What it saw.
    pub seen: Arc<Mutex<Seen>>,
    /// Requests refused by the request check.
    pub rejected_checks: Arc<AtomicUsize>,
    /// The runtime the server was started on.
    pub runtime: tokio::runtime::Runtime,
}

impl BulkServer {
    /// Starts a server whose bulk request number `n` (1-based) gets `script(n)`; every request (not only bulk)
    /// must pass `check` or gets 403.
    pub fn start(script: impl Fn(usize) -> Fault + Send + Sync + 'static, check: impl Fn(&Request) -> Result<(), String> + Send + Sync + 'static) -> BulkServer {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let rejected_checks = Arc::new(AtomicUsize::new(0));
        let check: RequestCheck = Arc::new(check);
        let server = runtime.block_on(async {
            let server = MockServer::start().await;
            let checked = |template: ResponseTemplate| {
                let check = check.clone();
                let rejected = rejected_checks.clone();
                move |request: &Request| match check(request) {
                    Ok(()) => template.clone(),
                    Err(why) => {
                        rejected.fetch_add(1, Ordering::SeqCst);
                        ResponseTemplate::new(403).set_body_json(json!({"message": why}))
                    }
                }
            };
            Mock::given(method("GET"))
                .and(path("/"))
                .respond_with(checked(ResponseTemplate::new(200).set_body_json(json!({"version": {"number": "8.15.0", "distribution": "elasticsearch"}}))))
                .mount(&server)
                .await;
            Mock::given(method("HEAD")).and(path_regex(r"^/_index_template/.+$")).respond_with(checked(ResponseTemplate::new(200))).mount(&server).await;
            Mock::given(method("HEAD")).and(path_regex(r"^/[a-z_]+$")).respond_with(checked(ResponseTemplate::new(200))).mount(&server).await;
            Mock::given(method("GET")).and(path_regex(r"^/[a-z_]+/_mapping$")).respond_with(checked(ResponseTemplate::new(200).set_body_json(json!({})))).mount(&server).await;
            Mock::given(method("POST"))
                .and(path("/_bulk"))
                .respond_with(Bulk { seen: seen.clone(), script: Arc::new(script), check: check.clone(), rejected_checks: rejected_checks.clone() })
                .mount(&server)
                .await;
            server
        });
        BulkServer { server, seen, rejected_checks, runtime }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.uri()
    }

    /// The stored documents of `index`, `_id → source`.
    pub fn stored(&self, index: &str) -> BTreeMap<String, Value> {
        self.seen.lock().unwrap().stored.iter().filter(|((i, _), _)| i == index).map(|((_, id), doc)| (id.clone(), doc.clone())).collect()
    }
}

/// A TCP forwarder to `upstream` on its own port that can be taken down (its port then refuses connections and
/// open connections are cut) and brought up again on the same port.
pub struct Forwarder {
    /// The port it listens on.
    pub port: u16,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Forwarder {
    /// Starts forwarding from a free port to `upstream` (`host:port`).
    pub fn start(upstream: String) -> Forwarder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let f = Forwarder { port, up: Arc::new(AtomicBool::new(true)), open: Arc::default(), stop: Arc::default() };
        let (up, open, stop) = (f.up.clone(), f.open.clone(), f.stop.clone());
        std::thread::spawn(move || {
            let mut listener = Some(listener);
            while !stop.load(Ordering::SeqCst) {
                if !up.load(Ordering::SeqCst) {
                    listener = None;
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                let l = listener.get_or_insert_with(|| TcpListener::bind(("127.0.0.1", port)).expect("rebind the forwarder port"));
                l.set_nonblocking(true).unwrap();
                match l.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let server = TcpStream::connect(&upstream).expect("upstream");
                        open.lock().unwrap().extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                        for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)] {
                            std::thread::spawn(move || {
                                let mut buf = [0u8; 16384];
                                while let Ok(n) = from.read(&mut buf) {
                                    if n == 0 || to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                                let _ = to.shutdown(Shutdown::Both);
                            });
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        f
    }

    /// Refuses new connections and cuts the open ones.
    pub fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Accepts connections again.
    pub fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.down();
    }
}
