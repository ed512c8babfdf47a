//! A headless Chromium (Debian's `chromium`, installed by `scripts/install-test-services.sh`) driven over the Chrome
//! DevTools Protocol: one page target, its console messages, exceptions and log entries, the URLs it requested,
//! JavaScript evaluated in it, and screenshots. The browser is killed when dropped.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// A running headless Chromium with one page.
pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    socket: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Console calls (`type: text`), exceptions and log entries of level warning or error, in order.
    pub problems: Vec<String>,
    /// Every URL the page requested.
    pub requests: Vec<String>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    /// Starts Chromium headless with an empty profile and no background networking (the machine has no network;
    /// every host name but 127.0.0.1 is made unresolvable), and attaches to a blank page of `width`×`height`.
    pub fn start(width: u32, height: u32) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new("chromium")
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"])
            .arg("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("--remote-debugging-port=0")
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium starts (apt-get install chromium; scripts/install-test-services.sh installs it)");
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID"
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("ws://") {
                    let _ = tx.send(line[at..].trim().to_string());
                }
            }
        });
        let browser_url = rx.recv_timeout(Duration::from_secs(60)).expect("chromium printed its DevTools address");
        let port: u16 = browser_url.trim_start_matches("ws://127.0.0.1:").split('/').next().unwrap().parse().unwrap();
        let client = reqwest::blocking::Client::new();
        let target: Value = client.put(format!("http://127.0.0.1:{port}/json/new?about:blank")).send().unwrap().json().unwrap();
        let page_url = target["webSocketDebuggerUrl"].as_str().expect("a page target").to_string();
        let (socket, _) = tungstenite::connect(page_url).expect("DevTools WebSocket");
        let mut browser = Browser { child, _profile: profile, socket, next_id: 0, problems: Vec::new(), requests: Vec::new() };
        for domain in ["Page.enable", "Runtime.enable", "Log.enable", "Network.enable"] {
            browser.call(domain, json!({}));
        }
        browser.call("Emulation.setDeviceMetricsOverride", json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}));
        browser
    }

    fn note(&mut self, event: &Value) {
        let params = &event["params"];
        match event["method"].as_str().unwrap_or("") {
            "Runtime.consoleAPICalled" => {
                let kind = params["type"].as_str().unwrap_or("");
                if matches!(kind, "error" | "warning" | "assert") {
                    self.problems.push(format!("console.{kind}: {}", params["args"]));
                }
            }
            "Runtime.exceptionThrown" => self.problems.push(format!("exception: {}", params["exceptionDetails"])),
            "Log.entryAdded" => {
                let level = params["entry"]["level"].as_str().unwrap_or("");
                if matches!(level, "error" | "warning") {
                    self.problems.push(format!("log {level}: {} {}", params["entry"]["text"], params["entry"]["url"]));
                }
            }
            "Network.requestWillBeSent" => self.requests.push(params["request"]["url"].as_str().unwrap_or("").to_string()),
            _ => {}
        }
    }

    /// Sends the DevTools command `method` and returns its result, noting the events that arrive meanwhile.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.socket.send(Message::text(json!({"id": id, "method": method, "params": params}).to_string())).unwrap();
        loop {
            let message = self.socket.read().expect("DevTools answers");
            let Message::Text(text) = message else { continue };
            let value: Value = serde_json::from_str(text.as_str()).unwrap();
            if value["id"].as_u64() == Some(id) {
                assert!(value.get("error").is_none(), "{method}: {}", value["error"]);
                return value["result"].clone();
            }
            self.note(&value);
        }
    }

    /// Loads `url` and waits for its `load` event.
    pub fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
        self.wait_for("document.readyState === 'complete'", Duration::from_secs(60));
    }

    /// The value of the JavaScript `expression` (awaited when it is a promise), as JSON.
    pub fn eval(&mut self, expression: &str) -> Value {
        let result = self.call("Runtime.evaluate", json!({"expression": expression, "returnByValue": true, "awaitPromise": true}));
        assert!(result.get("exceptionDetails").is_none(), "{expression}: {}", result["exceptionDetails"]);
        result["result"]["value"].clone()
    }

    /// Waits until `expression` is true in the page, for up to `limit` (a generous bound: what is waited for is a
    /// condition the page shows, never a time).
    pub fn wait_for(&mut self, expression: &str, limit: Duration) {
        assert!(self.try_wait_for(expression, limit), "the page did not show {expression} within {limit:?}; problems: {:?}", self.problems);
    }

    /// Whether `expression` became true in the page within `limit`.
    pub fn try_wait_for(&mut self, expression: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let result = self.call("Runtime.evaluate", json!({"expression": format!("Boolean({expression})"), "returnByValue": true}));
            if result["result"]["value"] == json!(true) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Writes a PNG screenshot of the page to `path`.
    pub fn screenshot(&mut self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// Asserts that the page wrote no error or warning and requested nothing but `origin` (and `data:` URLs).
    pub fn assert_clean(&mut self, origin: &str) {
        // Events that arrived after the last command.
        self.call("Runtime.evaluate", json!({"expression": "1"}));
        assert!(self.problems.is_empty(), "the page reported problems: {:#?}", self.problems);
        let foreign: Vec<&String> = self.requests.iter().filter(|u| !u.starts_with(origin) && !u.starts_with("data:")).collect();
        assert!(foreign.is_empty(), "the page requested more than {origin}: {foreign:?}");
        assert!(!self.requests.is_empty(), "the page requested nothing");
    }
}

/// The numbers of an object of `{key: number}` as a sorted map (keys of JSON objects are strings).
pub fn numbers(value: &Value) -> BTreeMap<String, f64> {
    value.as_object().map(|o| o.iter().filter_map(|(k, v)| v.as_f64().map(|x| (k.clone(), x))).collect()).unwrap_or_default()
}
