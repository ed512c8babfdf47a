//! PostgreSQL tables as a job's configuration (`--rules postgresql://…`, `--sla postgresql://…` of the alerts job),
//! read with `tokio-postgres` (the rows of `alert_rule` and `device_sla`, `docs/jobs/alerts.md` §2–§3).
//!
//! URLs are libpq connection URIs (`postgresql://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=…]`, also `postgres://`);
//! without a password in the URL, `PGPASSWORD` is used (as libpq does), so that a password need not be on the
//! command line. TLS follows `sslmode` (`disable`, `prefer` — the default —, `require`) with rustls and the
//! system's root certificates (Amazon RDS's CA bundle must be installed there). A connection that fails is retried
//! with backoff for `RETRY_FOR`; then the start fails naming the flag.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use taxiflow_dataflows::jobs::alerts::rules::RuleRow;
use taxiflow_dataflows::jobs::alerts::{Sla, SlaTable};

use crate::retry::{backoff, error_chain};

/// How long a failing connection is retried before the start fails.
pub const RETRY_FOR: Duration = Duration::from_secs(30);

/// A parsed `postgresql://` URL.
#[derive(Clone, Debug)]
pub struct PgUrl {
    config: tokio_postgres::Config,
    /// The URL without its password, for logs and errors.
    shown: String,
    /// The flag it was given with.
    flag: &'static str,
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
        Ok(PgUrl { config, shown, flag })
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
        let (client, connection) = self.config.connect(tls()).await.map_err(|e| error_chain(&e))?;
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

/// Every row of `device_sla` (§3); a negative `delay_ms` is read as 0, with a warning naming the device.
///
/// # Errors
/// The server cannot be reached, or the table is missing or has other columns (named, with the flag).
pub fn read_sla(url: &PgUrl) -> anyhow::Result<SlaTable> {
    let rows = runtime()?.block_on(url.query("SELECT device_id, info, overrides, delay_ms FROM device_sla"))?;
    let mut table = SlaTable::new();
    for r in &rows {
        let read = || -> Result<(i32, Option<String>, Option<String>, i32), tokio_postgres::Error> { Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)) };
        let (device, info, overrides, delay_ms) = read().map_err(|e| anyhow!("{} {}: device_sla: {}", url.flag, url.shown, error_chain(&e)))?;
        if delay_ms < 0 {
            tracing::warn!(device, delay_ms, "device_sla: a negative delay_ms counts as 0");
        }
        table.insert(i64::from(device), Sla { info, overrides, delay_ms: delay_ms.max(0) as u64 });
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(without_password("postgresql://app:s3cr@t@db:5432/x"), "postgresql://app:***@db:5432/x");
        assert_eq!(without_password("postgresql://app@db/x"), "postgresql://app@db/x");
        assert_eq!(PgUrl::parse("postgresql://app:pw@127.0.0.1:5/x", "--rules").unwrap().shown(), "postgresql://app:***@127.0.0.1:5/x");
        assert!(PgUrl::parse("mysql://x", "--rules").unwrap_err().to_string().starts_with("--rules"));
    }
}
