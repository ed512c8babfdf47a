//! The dashboard's HTTP server (axum): the page and its assets, embedded in the binary, and the JSON API behind it.
//!
//! | path | answer |
//! |---|---|
//! | `/` | the page (`assets/index.html`) |
//! | `/assets/{name}` | an embedded asset: `app.js`, `style.css`, `echarts.min.js`, `nyc.geo.json`, `world.geo.json`, `LICENSES.txt` |
//! | `/api/jobs` | `{"jobs": [{"job", "windows", "latest", "watermark", "dead_letters"}]}` |
//! | `/api/{job}/windows` | `{"job", "windows": [{"end", "emitted_ms", "rows": {output: count}}]}`, ascending |
//! | `/api/{job}/window/{end}` | `{"job", "end", "emitted_ms", "outputs": {output: [documents]}}` |
//! | `/api/{job}/series?outputs=a,b` | `{"job", "windows": [window as above, with the outputs listed]}` |
//! | `/api/{job}/open` | `{"job", "open": [messages]}`: alerts not revoked, the open work order per device |
//! | `/api/{job}/events` | Server-Sent Events: event `window`, data as `/api/{job}/window/{end}`, for each new or changed window |
//!
//! Times are ms since the Unix epoch; `emitted_ms` is the wall-clock time the window last changed on the server.
//! Errors are 4xx with `{"error": "…"}`: an unknown job or window (404), a window id that is not an integer (400).
//! Nothing outside the embedded assets is ever served: there is no file system path behind any URL.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::Context;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::assets;
use super::board::Board;

/// Starts serving `board` on `addr` in a thread of its own and returns the address bound (with the port chosen
/// when `addr` has port 0).
///
/// # Errors
/// `flag`: the address cannot be bound (in use, not local), or the runtime cannot start.
pub fn serve(addr: SocketAddr, board: Board, flag: &str) -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("{flag} {addr}: cannot listen"))?;
    listener.set_nonblocking(true).with_context(|| format!("{flag} {addr}: cannot listen"))?;
    let bound = listener.local_addr().with_context(|| format!("{flag} {addr}: cannot listen"))?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the dashboard's runtime")?;
    std::thread::Builder::new()
        .name("dashboard".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => return tracing::error!(error = %e, "dashboard: cannot listen"),
                };
                // No Nagle delay: an event is a small write that must leave at once (with Nagle and the client's
                // delayed acknowledgements, pushes waited ~40 ms).
                let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                if let Err(e) = axum::serve(listener, router(board)).await {
                    tracing::error!(error = %e, "dashboard: the server stopped");
                }
            })
        })
        .context("cannot start the dashboard thread")?;
    tracing::info!(%bound, "dashboard at http://{bound}/");
    Ok(bound)
}

/// The routes of the page, its assets and the API over `board`.
pub fn router(board: Board) -> Router {
    Router::new()
        .route("/", get(|headers: HeaderMap| async move { asset("index.html", &headers) }))
        .route("/assets/{name}", get(|Path(name): Path<String>, headers: HeaderMap| async move { asset(&name, &headers) }))
        .route("/api/jobs", get(jobs))
        .route("/api/{job}/windows", get(|State(b): State<Board>, Path(job): Path<String>| async move { with_job(&b, &job, |j| Ok(j.windows())) }))
        .route("/api/{job}/window/{end}", get(window))
        .route("/api/{job}/series", get(series))
        .route("/api/{job}/open", get(|State(b): State<Board>, Path(job): Path<String>| async move { with_job(&b, &job, |j| Ok(j.open())) }))
        .route("/api/{job}/events", get(events))
        .fallback(|uri: Uri| async move { error(StatusCode::NOT_FOUND, format!("no such page: {}; the page is at / and the API under /api/ (see the README)", uri.path())) })
        .with_state(board)
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

fn asset(name: &str, headers: &HeaderMap) -> Response {
    let Some(a) = assets::find(name) else {
        return error(StatusCode::NOT_FOUND, format!("no asset {name:?}; the page's assets are {}", assets::names().join(", ")));
    };
    let gzip_ok = headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("gzip"));
    let mut response = if a.gzipped && gzip_ok {
        let mut r = a.bytes.to_vec().into_response();
        r.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        a.plain().into_response()
    };
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(a.content_type));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn jobs(State(board): State<Board>) -> Response {
    let jobs: Vec<Value> = board.lock().values().map(|j| j.summary()).collect();
    Json(json!({"jobs": jobs})).into_response()
}

/// An API error: its status and message.
type ApiError = (StatusCode, String);

/// Runs `f` on the board of `job`, or answers 404 naming the jobs there are.
fn with_job(board: &Board, job: &str, f: impl FnOnce(&super::board::JobBoard) -> Result<Value, ApiError>) -> Response {
    let jobs = board.lock();
    match jobs.get(job) {
        Some(j) => match f(j) {
            Ok(v) => Json(v).into_response(),
            Err((status, message)) => error(status, message),
        },
        None => unknown_job(&jobs, job),
    }
}

/// 404 for `job`, naming the jobs there are.
fn unknown_job(jobs: &std::collections::BTreeMap<&'static str, super::board::JobBoard>, job: &str) -> Response {
    let names: Vec<&str> = jobs.keys().copied().collect();
    error(StatusCode::NOT_FOUND, format!("unknown job {job:?}: this dashboard shows {}", if names.is_empty() { "no job yet".to_string() } else { names.join(", ") }))
}

/// A window id of the API: its end, ms since the Unix epoch.
fn window_end(job: &str, end: &str) -> Result<i64, ApiError> {
    end.parse::<i64>().map_err(|_| (StatusCode::BAD_REQUEST, format!("window id {end:?} is not a window end (an integer, ms since the Unix epoch); /api/{job}/windows lists them")))
}

async fn window(State(board): State<Board>, Path((job, end)): Path<(String, String)>) -> Response {
    with_job(&board, &job, |j| {
        let end = window_end(&job, &end)?;
        j.window(end).ok_or_else(|| (StatusCode::NOT_FOUND, format!("no window of {job} ends at {end}; /api/{job}/windows lists the windows kept")))
    })
}

#[derive(serde::Deserialize)]
struct SeriesQuery {
    outputs: Option<String>,
}

async fn series(State(board): State<Board>, Path(job): Path<String>, Query(q): Query<SeriesQuery>) -> Response {
    let outputs: Option<BTreeSet<String>> = q.outputs.map(|o| o.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect());
    with_job(&board, &job, |j| Ok(j.series(outputs.as_ref())))
}

async fn events(State(board): State<Board>, Path(job): Path<String>) -> Response {
    {
        let jobs = board.lock();
        if !jobs.contains_key(job.as_str()) {
            return unknown_job(&jobs, &job);
        }
    }
    let receiver = board.subscribe();
    let stream = futures::stream::unfold((receiver, board, job), |(mut receiver, board, job)| async move {
        loop {
            match receiver.recv().await {
                Ok(change) if change.job == job => {
                    let data = board.lock().get(job.as_str()).and_then(|j| j.window(change.end));
                    if let Some(data) = data {
                        let event = Event::default().event("window").data(data.to_string());
                        return Some((Ok::<Event, Infallible>(event), (receiver, board, job)));
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "dashboard: a page fell behind; it misses {n} window updates until it reloads");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}
