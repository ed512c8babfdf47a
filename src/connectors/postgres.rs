//! PostgreSQL tables as a job's configuration (`--rules postgresql://…`, `--sla postgresql://…` of the alerts job),
//! read with `tokio-postgres` (the rows of `alert_rule` and `device_sla`, `docs/jobs/alerts.md` §2–§3).
//!
//! URLs are libpq connection URIs (`postgresql://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=…]`, also `postgres://`);
//! without a password in the URL, `PGPASSWORD` is used (as libpq does), so that a password need not be on the
//! command line. TLS follows `sslmode` (`disable`, `prefer` — the default —, `require`) with rustls and the
//! system's root certificates (Amazon RDS's CA bundle must be installed there). A connection that fails is retried
//! with backoff for `RETRY_FOR`; then the start fails naming the flag.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use taxiflow_dataflows::jobs::alerts::rules::{rules_of, RuleRow};
use taxiflow_dataflows::jobs::alerts::{RuleSet, Sla, SlaLookup};

use crate::retry::{backoff, error_chain};
use crate::runtime::shutdown::Shutdown;

/// How long a failing connection is retried before the start fails.
pub const RETRY_FOR: Duration = Duration::from_secs(30);

/// A parsed `postgresql://` URL.
#[derive(Clone)]
pub struct PgUrl {
    config: tokio_postgres::Config,
    /// The URL without its password, for logs and errors.
    shown: String,
    /// The flag it was given with.
    flag: &'static str,
    /// The TLS connector, built at the first connection (it reads the system's root certificates).
    tls: Arc<std::sync::OnceLock<tokio_postgres_rustls::MakeRustlsConnect>>,
}

impl std::fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgUrl").field("url", &self.shown).field("flag", &self.flag).finish()
    }
}

impl PgUrl {
    /// Parses `url` given with `flag`.
    ///
    /// # Errors
    /// Not a `postgresql://` or `postgres://` URL that libpq's rules accept, naming the flag.
    pub fn parse(url: &str, flag: &'static str) -> anyhow::Result<PgUrl> {
        if !(url.starts_with("postgresql://") || url.starts_with("postgres://")) {
            anyhow::bail!("{flag} {url:?}: expected postgresql://USER@HOST:PORT/DATABASE");
        }
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| anyhow!("{flag}: not a PostgreSQL URL: {e}"))?;
        if config.get_password().is_none() {
            if let Ok(password) = std::env::var("PGPASSWORD") {
                config.password(password);
            }
        }
        let shown = without_password(url);
        Ok(PgUrl { config, shown, flag, tls: Arc::default() })
    }

    /// The URL without a password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Runs `query` with a connection, retrying the connection with backoff for [`RETRY_FOR`].
    async fn query(&self, runtime_query: &str) -> anyhow::Result<Vec<tokio_postgres::Row>> {
        let started = Instant::now();
        let mut retry = 0;
        loop {
            match self.connect().await {
                Ok(client) => {
                    return client.query(runtime_query, &[]).await.map_err(|e| anyhow!("{} {}: {}", self.flag, self.shown, error_chain(&e)));
                }
                Err(e) if started.elapsed() < RETRY_FOR => {
                    let delay = backoff(retry, Duration::from_millis(100), Duration::from_secs(5));
                    tracing::warn!(url = %self.shown, error = %e, retry, ?delay, "PostgreSQL connection failed; retrying");
                    tokio::time::sleep(delay).await;
                    retry += 1;
                }
                Err(e) => return Err(anyhow!("{} {}: cannot connect for {RETRY_FOR:?}: {e}", self.flag, self.shown)),
            }
        }
    }

    async fn connect(&self) -> Result<tokio_postgres::Client, String> {
        let (client, connection) = self.config.connect(self.tls.get_or_init(tls).clone()).await.map_err(|e| error_chain(&e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %error_chain(&e), "PostgreSQL connection ended");
            }
        });
        Ok(client)
    }
}

/// `url` with a password replaced by `***`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    match rest.rsplit_once('@').and_then(|(userinfo, host)| userinfo.split_once(':').map(|(user, _)| (user, host))) {
        Some((user, host)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// A rustls connector with the system's root certificates (used when `sslmode` asks for TLS).
fn tls() -> tokio_postgres_rustls::MakeRustlsConnect {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the default protocol versions are supported")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the PostgreSQL runtime")
}

/// The enabled rows of `alert_rule` (§2), ordered by `rule_id`.
///
/// # Errors
/// The server cannot be reached, or the table is missing or has other columns (named, with the flag).
pub fn read_rules(url: &PgUrl) -> anyhow::Result<Vec<RuleRow>> {
    let rows = runtime()?.block_on(url.query("SELECT rule_id, template, alert_type, priority, within_ms, params::text FROM alert_rule WHERE enabled ORDER BY rule_id"))?;
    rows.iter()
        .map(|r| {
            Ok(RuleRow {
                rule_id: r.try_get(0)?,
                template: r.try_get(1)?,
                alert_type: r.try_get(2)?,
                priority: r.try_get(3)?,
                within_ms: r.try_get(4)?,
                params: r.try_get(5)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()
        .map_err(|e| anyhow!("{} {}: alert_rule: {}", url.flag, url.shown, error_chain(&e)))
}

/// `--rules-refresh`: a thread that reads `alert_rule` every `every` and puts a changed, valid set of rules in
/// force ([`RuleSet::replace`]); a table that cannot be read (after [`RETRY_FOR`] of retries) or a bad row keeps the
/// rules in force, with a warning that names the rule and field. The thread ends with the run (when the job's
/// rules are dropped or the run stops).
pub fn refresh_rules(url: PgUrl, every: Duration, rules: std::sync::Weak<RuleSet>, shutdown: Shutdown) -> anyhow::Result<()> {
    std::thread::Builder::new().name("rules-refresh".into()).spawn(move || {
        let tick = Duration::from_millis(50).min(every);
        let mut next = Instant::now() + every;
        loop {
            std::thread::sleep(tick);
            if shutdown.requested() {
                return;
            }
            if Instant::now() < next {
                continue;
            }
            next = Instant::now() + every;
            let Some(set) = rules.upgrade() else { return };
            match read_rules(&url).and_then(|rows| rules_of(&rows).map_err(|e| anyhow!("{} {}: {e}", url.flag, url.shown))) {
                Ok(new) => {
                    let count = new.len();
                    if set.replace(new) {
                        metrics::counter!("taxiflow_rules_refreshes_total").increment(1);
                        tracing::info!(rules = count, version = set.current().0, "alert rules refreshed: a changed alert_rule is in force");
                    }
                }
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "alert rules not refreshed; the rules in force stay"),
            }
        }
    })?;
    Ok(())
}

/// The settings of `device_sla` by device, from `rows` of (device_id, info, overrides, delay_ms); a negative
/// `delay_ms` is read as 0, with a warning naming the device.
fn sla_rows(url: &PgUrl, rows: &[tokio_postgres::Row]) -> anyhow::Result<Vec<(i64, Sla)>> {
    rows.iter()
        .map(|r| {
            let read = || -> Result<(i32, Option<String>, Option<String>, i32), tokio_postgres::Error> { Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)) };
            let (device, info, overrides, delay_ms) = read().map_err(|e| anyhow!("{} {}: device_sla: {}", url.flag, url.shown, error_chain(&e)))?;
            if delay_ms < 0 {
                tracing::warn!(device, delay_ms, "device_sla: a negative delay_ms counts as 0");
            }
            Ok((i64::from(device), Sla { info, overrides, delay_ms: delay_ms.max(0) as u64 }))
        })
        .collect()
}

/// The cached LEFT lookup of `device_sla` (§3) as of processing time, like the reference's JDBC lookup source
/// (Flink's `lookup.cache.max-rows` and `lookup.cache.ttl`, expire after write; devices without a row are cached
/// too): one `WHERE device_id = ANY($1)` query for the devices an activation misses.
///
/// A failing server is asked again with backoff (from 100 ms to 5 s) while the alerts wait; after
/// [`RETRY_FOR`] of failures the run is stopped with the reason ([`Shutdown::fail`]) rather than emitting alerts
/// without their settings. With `--sla-cdc`, a background thread reads the changes of `device_sla` from a
/// temporary logical replication slot and drops the changed devices' entries.
pub struct PgSlaLookup {
    url: PgUrl,
    ttl: Duration,
    state: Arc<std::sync::Mutex<LookupState>>,
    shutdown: Shutdown,
    /// Dropped with the lookup: ends the change-data-capture thread.
    _cdc: Option<CdcThread>,
}

impl std::fmt::Debug for PgSlaLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSlaLookup").field("url", &self.url.shown).field("ttl", &self.ttl).finish()
    }
}

struct LookupState {
    runtime: tokio::runtime::Runtime,
    client: Option<tokio_postgres::Client>,
    cache: lru::LruCache<i64, (Option<Sla>, Instant)>,
    /// Bumped by every change the change-data-capture thread sees: a query that a change overtook is not cached.
    changes: u64,
    failing_since: Option<Instant>,
    retry: u32,
    next_attempt: Instant,
}

impl PgSlaLookup {
    /// The lookup of `url` with `max_rows` cached rows kept for `ttl`; `cdc`: follow the table's changes.
    ///
    /// # Errors
    /// `--sla`: the server cannot be reached within [`RETRY_FOR`] or the table is missing; `--sla-cdc`: the server
    /// refuses a logical replication slot (it needs `wal_level=logical`).
    pub fn open(url: PgUrl, max_rows: u64, ttl: Duration, cdc: bool, shutdown: Shutdown) -> anyhow::Result<PgSlaLookup> {
        let runtime = runtime()?;
        // Checks the table at start (a missing table or column fails here, not at the first alert).
        let rows = runtime.block_on(url.query("SELECT device_id, info, overrides, delay_ms FROM device_sla LIMIT 1"))?;
        sla_rows(&url, &rows)?;
        let capacity = std::num::NonZeroUsize::new(max_rows as usize).context("--lookup-cache-max-rows: must be at least 1")?;
        let state = Arc::new(std::sync::Mutex::new(LookupState { runtime, client: None, cache: lru::LruCache::new(capacity), changes: 0, failing_since: None, retry: 0, next_attempt: Instant::now() }));
        let cdc = if cdc { Some(CdcThread::start(url.clone(), state.clone(), shutdown.clone())?) } else { None };
        Ok(PgSlaLookup { url, ttl, state, shutdown, _cdc: cdc })
    }

    /// Reads the rows of `devices` (ids beyond PostgreSQL's `integer` have none).
    fn query(state: &mut LookupState, url: &PgUrl, devices: &[i64]) -> anyhow::Result<Vec<(i64, Sla)>> {
        let ids: Vec<i32> = devices.iter().filter_map(|d| i32::try_from(*d).ok()).collect();
        if state.client.is_none() {
            let client = state.runtime.block_on(url.connect()).map_err(|e| anyhow!("cannot connect: {e}"))?;
            state.client = Some(client);
        }
        let client = state.client.as_ref().expect("connected");
        let rows = state
            .runtime
            .block_on(client.query("SELECT device_id, info, overrides, delay_ms FROM device_sla WHERE device_id = ANY($1)", &[&ids]))
            .map_err(|e| anyhow!("{}", error_chain(&e)))?;
        sla_rows(url, &rows)
    }
}

impl SlaLookup for PgSlaLookup {
    fn lookup(&self, devices: &[i64]) -> Result<Vec<Option<Sla>>, String> {
        let mut state = self.state.lock().map_err(|_| "the lookup cache is poisoned".to_string())?;
        let now = Instant::now();
        let mut found: Vec<Option<Option<Sla>>> = devices
            .iter()
            .map(|d| match state.cache.get(d) {
                Some((sla, at)) if now.duration_since(*at) < self.ttl => Some(sla.clone()),
                _ => None,
            })
            .collect();
        let missing: Vec<i64> = devices.iter().zip(&found).filter(|(_, f)| f.is_none()).map(|(d, _)| *d).collect();
        metrics::counter!("taxiflow_lookup_cache_hits_total").increment((devices.len() - missing.len()) as u64);
        if !missing.is_empty() {
            if now < state.next_attempt {
                return Err(format!("{} {}: waiting to ask again", self.url.flag, self.url.shown));
            }
            let changes = state.changes;
            metrics::counter!("taxiflow_lookup_cache_misses_total").increment(missing.len() as u64);
            match Self::query(&mut state, &self.url, &missing) {
                Ok(rows) => {
                    if state.failing_since.take().is_some() {
                        tracing::info!(url = %self.url.shown, "device_sla lookups work again");
                    }
                    state.retry = 0;
                    let rows: BTreeMap<i64, Sla> = rows.into_iter().collect();
                    let cache = state.changes == changes;
                    for (slot, d) in found.iter_mut().zip(devices).filter(|(f, _)| f.is_none()) {
                        let sla = rows.get(d).cloned();
                        if cache {
                            state.cache.put(*d, (sla.clone(), now));
                        }
                        *slot = Some(sla);
                    }
                }
                Err(e) => {
                    metrics::counter!("taxiflow_lookup_failures_total").increment(1);
                    state.client = None;
                    let since = *state.failing_since.get_or_insert(now);
                    let delay = backoff(state.retry, Duration::from_millis(100), Duration::from_secs(5));
                    state.retry += 1;
                    state.next_attempt = now + delay;
                    let reason = format!("{} {}: device_sla lookup failed: {e:#}", self.url.flag, self.url.shown);
                    if now.duration_since(since) >= RETRY_FOR {
                        self.shutdown.fail(format!("{reason} (for {RETRY_FOR:?}; alerts are not emitted without their settings)"));
                    } else {
                        tracing::warn!(error = %reason, retry = state.retry, ?delay, "device_sla lookup failed; the alerts wait and it is retried");
                    }
                    return Err(reason);
                }
            }
        }
        Ok(found.into_iter().map(|f| f.flatten()).collect())
    }
}

/// How often the change-data-capture thread reads the slot.
const CDC_POLL: Duration = Duration::from_millis(200);

/// The change-data-capture thread of `--sla-cdc`: a temporary logical replication slot with the `test_decoding`
/// plugin (PostgreSQL's own), read with `pg_logical_slot_get_changes` every [`CDC_POLL`]; every change of a
/// `device_sla` row drops the cached entries of its device ids (old and new key). The slot belongs to the
/// connection and goes with it; after a lost connection the whole cache is dropped (changes in between are not
/// known) and a new slot is made. Ends when dropped or when the run stops.
struct CdcThread {
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl CdcThread {
    fn start(url: PgUrl, state: Arc<std::sync::Mutex<LookupState>>, shutdown: Shutdown) -> anyhow::Result<CdcThread> {
        let runtime = runtime()?;
        let slot = format!("taxiflow_sla_{}", std::process::id());
        let client = runtime.block_on(Self::connect(&url, &slot)).map_err(|e| anyhow!("--sla-cdc {}: {e} (the server needs wal_level=logical)", url.shown))?;
        tracing::info!(url = %url.shown, slot, "device_sla change data capture started");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let handle = std::thread::Builder::new().name("sla-cdc".into()).spawn(move || {
            let mut client = Some(client);
            let mut retry = 0;
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) && !shutdown.requested() {
                std::thread::sleep(CDC_POLL);
                let Some(c) = &client else {
                    match runtime.block_on(Self::connect(&url, &slot)) {
                        Ok(c) => {
                            tracing::info!(slot, "device_sla change data capture reconnected; the cache was dropped");
                            client = Some(c);
                            retry = 0;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, retry, "device_sla change data capture cannot reconnect");
                            std::thread::sleep(backoff(retry, Duration::from_millis(100), Duration::from_secs(5)));
                            retry += 1;
                        }
                    }
                    continue;
                };
                match runtime.block_on(c.query("SELECT data FROM pg_logical_slot_get_changes($1, NULL, NULL)", &[&slot])) {
                    Ok(rows) => {
                        let changed: Vec<i64> = rows.iter().filter_map(|r| r.try_get::<_, String>(0).ok()).flat_map(|d| changed_devices(&d)).collect();
                        if !changed.is_empty() {
                            let mut s = state.lock().expect("lookup cache");
                            s.changes += 1;
                            for d in &changed {
                                s.cache.pop(d);
                            }
                            drop(s);
                            metrics::counter!("taxiflow_lookup_changes_total").increment(changed.len() as u64);
                            tracing::info!(devices = ?changed, "device_sla changed: cached rows dropped");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %error_chain(&e), "device_sla change data capture lost its connection");
                        client = None;
                        let mut s = state.lock().expect("lookup cache");
                        s.changes += 1;
                        s.cache.clear();
                    }
                }
            }
        })?;
        Ok(CdcThread { stop, handle: Some(handle) })
    }

    /// Connects and creates the temporary slot.
    async fn connect(url: &PgUrl, slot: &str) -> Result<tokio_postgres::Client, String> {
        let client = url.connect().await?;
        client.query("SELECT pg_create_logical_replication_slot($1, 'test_decoding', true)", &[&slot]).await.map_err(|e| error_chain(&e))?;
        Ok(client)
    }
}

impl Drop for CdcThread {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The device ids of a `test_decoding` change line of `device_sla`, e.g.
/// `table public.device_sla: UPDATE: device_id[integer]:7 info[text]:'x' overrides[text]:null delay_ms[integer]:0`
/// (an update of the key has `old-key:` and `new-tuple:`, both with a `device_id`); other tables and
/// `BEGIN`/`COMMIT` lines give none.
fn changed_devices(line: &str) -> Vec<i64> {
    let Some(rest) = line.strip_prefix("table ") else { return Vec::new() };
    let Some((table, change)) = rest.split_once(": ") else { return Vec::new() };
    if table.rsplit('.').next().map(|t| t.trim_matches('"')) != Some("device_sla") {
        return Vec::new();
    }
    change.match_indices("device_id[integer]:").filter_map(|(i, m)| change[i + m.len()..].split(' ').next()?.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_decoding_lines_name_the_changed_devices() {
        assert_eq!(changed_devices("table public.device_sla: UPDATE: device_id[integer]:7 info[text]:'a b' overrides[text]:null delay_ms[integer]:10"), [7]);
        assert_eq!(changed_devices("table public.device_sla: UPDATE: old-key: device_id[integer]:1 new-tuple: device_id[integer]:2 info[text]:null"), [1, 2]);
        assert_eq!(changed_devices("table public.device_sla: DELETE: device_id[integer]:-3"), [-3]);
        assert!(changed_devices("table public.alert_rule: UPDATE: rule_id[integer]:1").is_empty());
        assert!(changed_devices("BEGIN 745").is_empty() && changed_devices("COMMIT 745").is_empty());
    }

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(without_password("postgresql://app:s3cr@t@db:5432/x"), "postgresql://app:***@db:5432/x");
        assert_eq!(without_password("postgresql://app@db/x"), "postgresql://app@db/x");
        assert_eq!(PgUrl::parse("postgresql://app:pw@127.0.0.1:5/x", "--rules").unwrap().shown(), "postgresql://app:***@127.0.0.1:5/x");
        assert!(PgUrl::parse("mysql://x", "--rules").unwrap_err().to_string().starts_with("--rules"));
    }
}
