//! `--from redis://[USER:PASSWORD@]HOST:PORT[/DB]` (`rediss://` for TLS; the password also from `REDISCLI_AUTH`):
//! the page-view job's layout (docs/jobs/pageviews.md §4) under `--redis-prefix` P, read back as the job's
//! documents: the newest `--dashboard-windows` ends of the index `P:windows`; per end, `total` from the hash
//! `P:win:{end}`, `by_path` and `by_country` from the sorted sets `P:win:{end}:path|country` (pv) and the hashes
//! `…_uv`; and `today` from the day hashes `P:day:{day}` (the newest row of each day).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use redis::{Commands, IntoConnectionInfo};
use serde_json::json;

use super::{Docs, Store, StoreArgs};

/// The Redis store.
pub struct RedisStore {
    client: redis::Client,
    connection: Option<redis::Connection>,
    prefix: String,
    keep: usize,
    shown: String,
}

impl RedisStore {
    /// Connects to `url` and checks that Redis answers.
    ///
    /// # Errors
    /// `--from`: not a Redis URL, or Redis does not answer.
    pub fn open(url: &str, args: &StoreArgs, keep: usize) -> anyhow::Result<RedisStore> {
        let shown = crate::connectors::redis::shown(url);
        let mut info = url.into_connection_info().with_context(|| format!("--from {shown:?}: not a Redis URL"))?;
        if info.redis_settings().password().is_none() {
            if let Ok(password) = std::env::var("REDISCLI_AUTH") {
                let settings = info.redis_settings().clone().set_password(password);
                info = info.set_redis_settings(settings);
            }
        }
        let client = redis::Client::open(info).with_context(|| format!("--from {shown}"))?;
        let connection = client.get_connection_with_timeout(Duration::from_secs(10)).with_context(|| format!("--from {shown}: cannot connect"))?;
        Ok(RedisStore { client, connection: Some(connection), prefix: args.redis_prefix.clone(), keep, shown })
    }

    fn read_all(&self, c: &mut redis::Connection) -> redis::RedisResult<Docs> {
        let p = &self.prefix;
        let mut docs = Vec::new();
        let ends: Vec<i64> = c.zrange(format!("{p}:windows"), -(self.keep as isize), -1)?;
        for end in ends {
            let total: BTreeMap<String, i64> = c.hgetall(format!("{p}:win:{end}"))?;
            if let (Some(pv), Some(uv)) = (total.get("pv"), total.get("uv")) {
                docs.push(("total".to_string(), json!({"window_end_ms": end, "pv": pv, "uv": uv})));
            }
            for (key, output) in [("path", "by_path"), ("country", "by_country")] {
                let pvs: Vec<(String, i64)> = c.zrange_withscores(format!("{p}:win:{end}:{key}"), 0, -1)?;
                let uvs: BTreeMap<String, i64> = c.hgetall(format!("{p}:win:{end}:{key}_uv"))?;
                for (member, pv) in pvs {
                    let uv = uvs.get(&member).copied();
                    docs.push((output.to_string(), json!({"window_end_ms": end, key: member, "pv": pv, "uv": uv})));
                }
            }
        }
        let days: Vec<String> = c.scan_match::<_, String>(format!("{p}:day:*"))?.collect::<redis::RedisResult<Vec<String>>>()?.into_iter().filter(|k| !k.ends_with(":hll")).collect();
        for key in days {
            let day = key.rsplit(':').next().unwrap_or("").to_string();
            let row: BTreeMap<String, i64> = c.hgetall(&key)?;
            if let (Some(end), Some(pv), Some(uv)) = (row.get("window_end_ms"), row.get("pv"), row.get("uv")) {
                docs.push(("today".to_string(), json!({"day": day, "window_end_ms": end, "pv": pv, "uv": uv})));
            }
        }
        Ok(docs)
    }
}

impl Store for RedisStore {
    fn describe(&self) -> String {
        format!("{} prefix {}", self.shown, self.prefix)
    }

    fn read(&mut self) -> anyhow::Result<Docs> {
        let mut connection = match self.connection.take() {
            Some(c) => c,
            None => self.client.get_connection_with_timeout(Duration::from_secs(5)).with_context(|| format!("--from {}: cannot connect", self.shown))?,
        };
        let docs = self.read_all(&mut connection).with_context(|| format!("--from {}", self.shown))?;
        // Kept only after a good read: a broken connection is made anew at the next refresh.
        self.connection = Some(connection);
        Ok(docs)
    }
}
