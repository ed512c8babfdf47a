//! The Redis sink (`--sink redis://[USER:PASSWORD@]HOST:PORT[/DB]`, `rediss://` for TLS; the password from the URL
//! or `REDISCLI_AUTH`), with the `redis` crate: the key layout of window outputs of pageviews spec §4, the one
//! the tutorial's live page reads. P is `--redis-prefix` (default `pageviews`).
//!
//! | output shape | keys |
//! |---|---|
//! | `window_end_ms, pv, uv` (`total`) | hash `P:win:{end}` with `pv`, `uv`; `P:windows`, a sorted set of window ends |
//! | `window_end_ms, K, pv, uv` (`by_path`: K = `path`) | sorted set `P:win:{end}:K` (member → pv), hash `P:win:{end}:K_uv` (member → uv) |
//! | `day, window_end_ms, pv, uv` (`today`) | hash `P:day:{day}` with `pv`, `uv`, `window_end_ms` |
//! | `day, window_end_ms, host` (`day_visitors`) | HyperLogLog `P:day:{day}:hll`: `PFADD` of the day's visitors (`PFCOUNT` ≈ uv) |
//! | dead letters | stream `P:dead_letter` (field `json`, the dead letter as the file sink writes it), capped at ~100,000 |
//!
//! Every window's writes go in one `MULTI`/`EXEC`, windows in order of their end, then `PUBLISH P:updates {end}`
//! for live pages. Values are absolute (`HSET`, `ZADD` of the final counts), so a replay or a restart writes the
//! same values again (exactly-once effect, as Flink's Redis connector with idempotent writes). Keys are not
//! deleted before they are written: after a restore a window may be emitted again only for the keys whose
//! operator instance had not emitted it yet, and deleting the window's keys would drop the others. Every key
//! gets `EXPIRE --redis-ttl` (counted from the write); the index drops ends older than its newest − ttl
//! (`ZREMRANGEBYSCORE`). Up to `--redis-max-in-flight` transactions go in one pipelined round trip; a lost
//! connection is reconnected and the whole batch sent again (idempotent) with backoff, and a batch that keeps
//! failing for `--redis-retry-for` stops the job with the reason.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use taxiflow_dataflows::output::{OutputSchema, Row, Value, DEAD_LETTER};

use crate::connectors::{Release, Sink, SinkConnector, SinkContext};
use crate::formats::json::{self, Shape};

/// Flags of the Redis sink.
#[derive(Clone, Debug, clap::Args)]
pub struct RedisArgs {
    /// Prefix of every key (`PREFIX:win:…`).
    #[arg(long, default_value = "pageviews")]
    pub redis_prefix: String,
    /// Time to live of every key written, from the write.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "7days")]
    pub redis_ttl: Duration,
    /// Window transactions sent in one pipelined round trip before waiting for their replies.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub redis_max_in_flight: u32,
    /// How long a batch of writes is retried (reconnecting with backoff) before the job stops with the reason.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub redis_retry_for: Duration,
}

/// Dead letters kept in the stream (approximately, `XADD … MAXLEN ~`).
const DEAD_LETTER_CAP: u64 = 100_000;

/// `--sink redis://…`.
#[derive(Clone, Debug)]
pub struct RedisSinkConnector {
    info: redis::ConnectionInfo,
    shown: String,
    args: RedisArgs,
}

impl RedisSinkConnector {
    /// Parses the URL; the password is the URL's or `REDISCLI_AUTH`'s.
    ///
    /// # Errors
    /// `--sink`: not a Redis URL; `--redis-prefix` empty.
    pub fn from_args(url: &str, args: &RedisArgs) -> anyhow::Result<RedisSinkConnector> {
        use redis::IntoConnectionInfo;
        let mut info = url.into_connection_info().with_context(|| format!("--sink: {:?} is not a Redis URL (redis://[USER:PASSWORD@]HOST:PORT[/DB], rediss:// for TLS)", shown(url)))?;
        if info.redis_settings().password().is_none() {
            if let Ok(password) = std::env::var("REDISCLI_AUTH") {
                let settings = info.redis_settings().clone().set_password(password);
                info = info.set_redis_settings(settings);
            }
        }
        if args.redis_prefix.is_empty() {
            bail!("--redis-prefix must not be empty");
        }
        Ok(RedisSinkConnector { info, shown: shown(url), args: args.clone() })
    }
}

/// The URL without its password (for logs and messages).
pub fn shown(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***@{}", &url[..s + 3], &url[at + 1..]),
        _ => url.to_string(),
    }
}

/// How the rows of one output are written.
#[derive(Clone, Debug)]
enum Layout {
    /// `window_end_ms, pv, uv`.
    Window,
    /// `window_end_ms, KEY, pv, uv`: the key field's name.
    Keyed(&'static str),
    /// `day, window_end_ms, pv, uv`.
    Day,
    /// `day, window_end_ms, host`.
    Visitors,
    /// The dead letters.
    DeadLetter(OutputSchema),
}

fn layout(schema: &OutputSchema) -> anyhow::Result<Layout> {
    let names: Vec<&str> = schema.fields.iter().map(|f| f.name).collect();
    Ok(match names.as_slice() {
        _ if schema.name == DEAD_LETTER => Layout::DeadLetter(schema.clone()),
        ["window_end_ms", "pv", "uv"] => Layout::Window,
        ["window_end_ms", key, "pv", "uv"] => Layout::Keyed(key),
        ["day", "window_end_ms", "pv", "uv"] => Layout::Day,
        ["day", "window_end_ms", "host"] => Layout::Visitors,
        _ => bail!("--sink redis://: the Redis sink writes window outputs (window_end_ms[, key], pv, uv; or day, window_end_ms, pv, uv: the pageviews job); output {} has the fields {names:?}", schema.name),
    })
}

impl SinkConnector for RedisSinkConnector {
    fn describe(&self) -> String {
        format!("{} prefix {}", self.shown, self.args.redis_prefix)
    }

    fn open(&self, ctx: SinkContext<'_>) -> anyhow::Result<Box<dyn Sink>> {
        let layouts = ctx.outputs.schemas.iter().map(layout).collect::<anyhow::Result<Vec<_>>>()?;
        let client = redis::Client::open(self.info.clone()).with_context(|| format!("--sink {}", self.shown))?;
        let mut connection = client.get_connection_with_timeout(Duration::from_secs(10)).with_context(|| format!("--sink {}: cannot connect", self.shown))?;
        let pong: String = redis::cmd("PING").query(&mut connection).with_context(|| format!("--sink {}: PING failed", self.shown))?;
        tracing::info!(sink = %self.shown, reply = %pong, prefix = %self.args.redis_prefix, "redis sink connected");
        Ok(Box::new(RedisSink { client, connection: Some(connection), shown: self.shown.clone(), args: self.args.clone(), layouts, windows: BTreeMap::new(), dead: Vec::new(), newest: 0, line: Vec::new() }))
    }
}

/// The open Redis sink.
struct RedisSink {
    client: redis::Client,
    connection: Option<redis::Connection>,
    shown: String,
    args: RedisArgs,
    layouts: Vec<Layout>,
    /// Rows not sent yet, by window end.
    windows: BTreeMap<i64, Vec<Row>>,
    /// Dead letters not sent yet, as JSON.
    dead: Vec<Vec<u8>>,
    /// The newest window end written (ms since the Unix epoch).
    newest: i64,
    line: Vec<u8>,
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        other => panic!("a window output's count is an integer, got {other:?}"),
    }
}

fn text(v: &Value) -> &str {
    match v {
        Value::Str(s) => s,
        other => panic!("a window output's key is a string, got {other:?}"),
    }
}

impl RedisSink {
    /// Appends the transaction of window `end` (its `rows`) and its `PUBLISH` to `pipe`.
    fn window_transaction(&mut self, pipe: &mut redis::Pipeline, end: i64, rows: &[Row]) {
        let p = &self.args.redis_prefix;
        let ttl = self.args.redis_ttl.as_secs().max(1) as i64;
        self.newest = self.newest.max(end);
        let mut keys: Vec<String> = Vec::new();
        pipe.cmd("MULTI").ignore();
        for row in rows {
            match &self.layouts[row.output as usize] {
                Layout::Window => {
                    let key = format!("{p}:win:{end}");
                    pipe.cmd("HSET").arg(&key).arg("pv").arg(int(row.value(1))).arg("uv").arg(int(row.value(2))).ignore();
                    keys.push(key);
                }
                Layout::Keyed(name) => {
                    let (scores, uvs) = (format!("{p}:win:{end}:{name}"), format!("{p}:win:{end}:{name}_uv"));
                    let member = text(row.value(1));
                    pipe.cmd("ZADD").arg(&scores).arg(int(row.value(2))).arg(member).ignore();
                    pipe.cmd("HSET").arg(&uvs).arg(member).arg(int(row.value(3))).ignore();
                    keys.push(scores);
                    keys.push(uvs);
                }
                Layout::Day => {
                    let key = format!("{p}:day:{}", text(row.value(0)));
                    pipe.cmd("HSET").arg(&key).arg("pv").arg(int(row.value(2))).arg("uv").arg(int(row.value(3))).arg("window_end_ms").arg(int(row.value(1))).ignore();
                    keys.push(key);
                }
                Layout::Visitors => {
                    let key = format!("{p}:day:{}:hll", text(row.value(0)));
                    pipe.cmd("PFADD").arg(&key).arg(text(row.value(2))).ignore();
                    keys.push(key);
                }
                Layout::DeadLetter(_) => unreachable!("dead letters are not window rows"),
            }
        }
        let index = format!("{p}:windows");
        pipe.cmd("ZADD").arg(&index).arg(end).arg(end).ignore();
        pipe.cmd("ZREMRANGEBYSCORE").arg(&index).arg("-inf").arg(format!("({}", self.newest - ttl * 1000)).ignore();
        keys.push(index);
        keys.sort();
        keys.dedup();
        for key in keys {
            pipe.cmd("EXPIRE").arg(key).arg(ttl).ignore();
        }
        pipe.cmd("EXEC").ignore();
        pipe.cmd("PUBLISH").arg(format!("{p}:updates")).arg(end).ignore();
    }

    /// Sends `pipe`, reconnecting and sending it again on failure until `--redis-retry-for` has passed.
    fn send(&mut self, pipe: &redis::Pipeline, what: &str) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            let result = match self.connection.as_mut() {
                Some(c) => pipe.query::<()>(c).map_err(anyhow::Error::from),
                None => self.client.get_connection_with_timeout(Duration::from_secs(5)).map_err(anyhow::Error::from).and_then(|mut c| {
                    let r = pipe.query::<()>(&mut c).map_err(anyhow::Error::from);
                    self.connection = Some(c);
                    r
                }),
            };
            match result {
                Ok(()) => {
                    if attempt > 0 {
                        tracing::info!(sink = %self.shown, attempts = attempt + 1, "redis writes went through after retries");
                    }
                    return Ok(());
                }
                Err(e) => {
                    metrics::counter!("taxiflow_sink_failures_total", "sink" => "redis").increment(1);
                    if started.elapsed() >= self.args.redis_retry_for {
                        return Err(e.context(format!("--sink {}: {what} failed for {:?} (--redis-retry-for)", self.shown, self.args.redis_retry_for)));
                    }
                    let delay = crate::retry::backoff(attempt, Duration::from_millis(100), Duration::from_secs(5));
                    tracing::warn!(sink = %self.shown, error = %format!("{e:#}"), retry_in = ?delay, "redis write failed; reconnecting");
                    self.connection = None;
                    std::thread::sleep(delay);
                    attempt += 1;
                }
            }
        }
    }
}

impl Sink for RedisSink {
    fn release(&self, _checkpointing: bool) -> Release {
        Release::EventTime
    }

    fn write(&mut self, _time: u64, row: &Row) -> anyhow::Result<()> {
        if let Layout::DeadLetter(schema) = &self.layouts[row.output as usize] {
            self.line.clear();
            json::write(schema, row, Shape::PLAIN, &mut self.line);
            self.dead.push(std::mem::take(&mut self.line));
        } else {
            self.windows.entry(row.order).or_default().push(row.clone());
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        let windows = std::mem::take(&mut self.windows);
        let mut batch: Vec<(i64, Vec<Row>)> = Vec::new();
        let max = self.args.redis_max_in_flight as usize;
        let mut iter = windows.into_iter().peekable();
        while iter.peek().is_some() {
            batch.clear();
            batch.extend(iter.by_ref().take(max));
            let mut pipe = redis::pipe();
            for (end, rows) in &batch {
                self.window_transaction(&mut pipe, *end, rows);
            }
            let (first, last) = (batch[0].0, batch[batch.len() - 1].0);
            self.send(&pipe, &format!("writing the windows ending {first}…{last}"))?;
        }
        if !self.dead.is_empty() {
            let key = format!("{}:dead_letter", self.args.redis_prefix);
            let mut pipe = redis::pipe();
            for json in &self.dead {
                pipe.cmd("XADD").arg(&key).arg("MAXLEN").arg("~").arg(DEAD_LETTER_CAP).arg("*").arg("json").arg(json.as_slice()).ignore();
            }
            let n = self.dead.len();
            self.send(&pipe, &format!("writing {n} dead letters"))?;
            self.dead.clear();
        }
        Ok(())
    }

    fn prepare_commit(&mut self, _epoch: u64) -> anyhow::Result<Vec<u8>> {
        self.flush()?;
        Ok(Vec::new())
    }

    fn finish(&mut self, _end_of_input: bool) -> anyhow::Result<Option<Vec<u64>>> {
        self.flush()?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(shown("redis://user:secret@127.0.0.1:6379/2"), "redis://***@127.0.0.1:6379/2");
        assert_eq!(shown("rediss://h:6380"), "rediss://h:6380");
    }

    #[test]
    fn outputs_of_other_shapes_are_refused_naming_them() {
        use taxiflow_dataflows::output::{Field, FieldType};
        let odd = OutputSchema { name: "pickup_count", description: "", fields: vec![Field::required("pickup_count", FieldType::Long)], id: true, event_time: None, partition_by: vec![], envelope: true, watermarks: None };
        let e = layout(&odd).unwrap_err().to_string();
        assert!(e.contains("pickup_count") && e.contains("window outputs"), "{e}");
    }
}
