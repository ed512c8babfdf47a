//! The Elasticsearch/OpenSearch sink (`--sink es+https://HOST[:PORT]` or `es+http://…`): result documents and
//! dead letters bulk-indexed with their deterministic `_id`, so a replay or a restart overwrites documents
//! instead of adding them (taxi docs §4: the reference sets no ids and ignores failed bulk items).
//!
//! | module | concept |
//! |---|---|
//! | [`args`] | the `--es-*`, `--index-*` and `--bulk-*` flags |
//! | [`auth`] | `--es-auth none|basic|sigv4`: HTTP basic credentials, AWS SigV4 signing (`aws-sigv4`, credentials from the `aws-config` chain) |
//! | [`client`] | the HTTP client (reqwest, rustls, `--es-ca-cert`) that signs and sends one request |
//! | [`templates`] | the index templates and mappings of taxi docs §4, created at start when missing |
//! | [`bulk`] | one `_bulk` request: NDJSON body, per-item status, retry classification (backoff: [`crate::retry`]) |
//! | [`sink`] | the sink: batching by actions/bytes/interval, bounded concurrency, retries, acknowledgements |
//!
//! Tested against osmem-server, an OpenSearch-API server (`scripts/opensearch.sh`); real Elasticsearch and
//! Amazon OpenSearch Service cannot be installed on the development machines.

pub mod args;
pub mod auth;
pub mod bulk;
pub mod client;
pub mod sink;
pub mod templates;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use taxiflow_dataflows::output::{Outputs, Row};

pub use auth::{AuthMethod, SigV4Service};
pub use sink::EsSink;

use crate::connectors::{Release, Sink, SinkConnector, SinkContext};
use crate::formats::json::{self, Shape};

/// `--sink es+https://HOST[:PORT]` with its flags.
#[derive(Clone, Debug)]
pub struct EsSinkConnector {
    options: EsOptions,
}

impl EsSinkConnector {
    /// The sink of `url` with the Elasticsearch flags; `region` is `--region`.
    ///
    /// # Errors
    /// A malformed URL or inconsistent flags, named.
    pub fn from_args(url: &str, args: &args::EsArgs, region: Option<&str>) -> anyhow::Result<EsSinkConnector> {
        let mut options = EsOptions::parse(url)?;
        args.apply(&mut options, region)?;
        Ok(EsSinkConnector { options })
    }

    /// The sink of `options`.
    pub fn new(options: EsOptions) -> EsSinkConnector {
        EsSinkConnector { options }
    }
}

impl SinkConnector for EsSinkConnector {
    /// `es+SCHEME://HOST:PORT` with the index prefix, without credentials.
    fn describe(&self) -> String {
        let o = &self.options;
        format!("es+{}://{}:{} prefix {:?}", o.url.scheme(), o.url.host_str().unwrap_or_default(), o.url.port_or_known_default().unwrap_or_default(), o.index_prefix)
    }

    fn open(&self, ctx: SinkContext<'_>) -> anyhow::Result<Box<dyn Sink>> {
        let sink = EsSink::open(&self.options, ctx.outputs, ctx.shutdown.clone())?;
        Ok(Box::new(EsRows { sink, outputs: ctx.outputs.clone() }))
    }
}

/// The open sink: rows as `_source` documents under their id.
struct EsRows {
    sink: EsSink,
    outputs: Outputs,
}

impl Sink for EsRows {
    fn release(&self, _checkpointing: bool) -> Release {
        Release::EventTime
    }

    fn write(&mut self, time: u64, row: &Row) -> anyhow::Result<()> {
        let source = json::to_string(self.outputs.schema(row.output), row, Shape::SOURCE);
        self.sink.write(row.output, time, row.window.map(|w| w.start_ms as i64), &row.id, source)
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        // The bulk timer sends what is buffered; flushing here would wait for every answer.
        Ok(())
    }

    fn prepare_commit(&mut self, _epoch: u64) -> anyhow::Result<Vec<u8>> {
        self.sink.flush()?;
        Ok(Vec::new())
    }

    fn acknowledges(&self) -> bool {
        true
    }

    fn finish(&mut self, _end_of_input: bool) -> anyhow::Result<Option<Vec<u64>>> {
        self.sink.finish().map(Some)
    }
}

/// How index names are formed: `PREFIX` + base name (`pickup_count`, `trip_duration`, `dead_letter`) +
/// an optional date suffix taken from the document's window start (UTC).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DateSuffix {
    /// One index per output (the default).
    #[default]
    None,
    /// `-YYYY.MM.DD` of the window start.
    Day,
    /// `-YYYY.MM` of the window start.
    Month,
}

/// Bulk request settings (`--bulk-*`). Defaults follow taxi docs §4 (flush at 10,000 actions or every second,
/// exponential backoff from 50 ms), with 5 MB requests as the issue asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BulkSettings {
    /// A request is sent when it holds this many actions.
    pub max_actions: usize,
    /// A request is sent when its NDJSON body reaches this many bytes.
    pub max_bytes: usize,
    /// A non-empty request is sent at the latest this long after its first action.
    pub interval: Duration,
    /// Requests in flight at most; beyond that the dataflow waits (back-pressure).
    pub concurrency: usize,
    /// Retries of an item (or of a whole request) before the sink gives up and the job fails.
    pub max_retries: u32,
    /// First backoff delay; each retry doubles it, with jitter, up to `backoff_max`.
    pub backoff_initial: Duration,
    /// Backoff cap.
    pub backoff_max: Duration,
    /// Timeout of one HTTP request (connect, send, answer).
    pub request_timeout: Duration,
}

impl Default for BulkSettings {
    fn default() -> Self {
        BulkSettings {
            max_actions: 10_000,
            max_bytes: 5 * 1024 * 1024,
            interval: Duration::from_secs(1),
            concurrency: 2,
            max_retries: 12,
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// Everything the Elasticsearch sink needs, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EsOptions {
    /// Base URL (`http://` or `https://`, with an optional path prefix for a proxy), without credentials.
    pub url: reqwest::Url,
    /// `--es-auth`.
    pub auth: AuthMethod,
    /// `--es-ca-cert`: PEM file of extra trusted root certificates (private CA).
    pub ca_cert: Option<PathBuf>,
    /// `--index-prefix`, prepended to every index name and template pattern.
    pub index_prefix: String,
    /// `--index-date-suffix`.
    pub date_suffix: DateSuffix,
    /// `--bulk-*`.
    pub bulk: BulkSettings,
}

impl EsOptions {
    /// Parses `es+https://[USER:PASSWORD@]HOST[:PORT][/PATH]` (or `es+http://`) with default settings;
    /// credentials in the URL select `--es-auth basic`.
    ///
    /// # Errors
    /// Not an `es+http(s)://` URL, or no host.
    pub fn parse(spec: &str) -> anyhow::Result<EsOptions> {
        let Some(rest) = spec.strip_prefix("es+") else { bail!("--sink {spec:?}: expected es+https://HOST[:PORT] or es+http://HOST[:PORT]") };
        let mut url = reqwest::Url::parse(rest).with_context(|| format!("--sink {spec:?}: not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            bail!("--sink {spec:?}: expected es+https://HOST[:PORT] or es+http://HOST[:PORT]");
        }
        if url.query().is_some() || url.fragment().is_some() {
            bail!("--sink {spec:?}: no query or fragment allowed");
        }
        let auth = if url.username().is_empty() {
            AuthMethod::None
        } else {
            let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
            let user = decode(url.username());
            let password = url.password().map(decode).unwrap_or_default();
            url.set_username("").ok();
            url.set_password(None).ok();
            AuthMethod::Basic { user, password }
        };
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(EsOptions { url, auth, ca_cert: None, index_prefix: String::new(), date_suffix: DateSuffix::None, bulk: BulkSettings::default() })
    }

    /// The full name of index `base` (`pickup_count`, `trip_duration`, `dead_letter`) for a document whose
    /// window starts at `window_start_ms` (ms since the Unix epoch; `None`: no date suffix, as for dead letters).
    pub fn index_name(&self, base: &str, window_start_ms: Option<i64>) -> String {
        let mut name = format!("{}{base}", self.index_prefix);
        let format = match self.date_suffix {
            DateSuffix::None => return name,
            DateSuffix::Day => "-%Y.%m.%d",
            DateSuffix::Month => "-%Y.%m",
        };
        if let Some(dt) = window_start_ms.and_then(chrono::DateTime::from_timestamp_millis) {
            name.push_str(&dt.format(format).to_string());
        }
        name
    }
}

/// Checks the index prefix: Elasticsearch index names are lower case and cannot contain `\ / * ? " < > | , #`,
/// spaces or `:`, nor start with `-`, `_` or `+` (Elasticsearch "Create index API", path parameters).
///
/// # Errors
/// `--index-prefix`: a forbidden character.
pub fn check_index_prefix(prefix: &str) -> anyhow::Result<()> {
    if prefix.chars().any(|c| c.is_uppercase() || "\\/*?\"<>|, #:".contains(c)) {
        bail!("--index-prefix {prefix:?}: index names must be lower case without \\ / * ? \" < > | , # : or spaces");
    }
    if prefix.starts_with(['-', '_', '+']) {
        bail!("--index-prefix {prefix:?}: index names cannot start with -, _ or +");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let o = EsOptions::parse("es+https://search.example.com").unwrap();
        assert_eq!(o.url.as_str(), "https://search.example.com/");
        assert_eq!(o.auth, AuthMethod::None);
        let o = EsOptions::parse("es+http://elastic:p%40ss@127.0.0.1:9200/proxy").unwrap();
        assert_eq!(o.url.as_str(), "http://127.0.0.1:9200/proxy/");
        assert_eq!(o.auth, AuthMethod::Basic { user: "elastic".into(), password: "p@ss".into() });
        assert!(EsOptions::parse("https://x").is_err());
        assert!(EsOptions::parse("es+ftp://x").is_err());
        assert!(EsOptions::parse("es+http://").is_err());
        assert!(EsOptions::parse("es+http://h:9200/?x=1").is_err());
    }

    #[test]
    fn index_names() {
        let mut o = EsOptions::parse("es+http://h:9200").unwrap();
        o.index_prefix = "nyc-".into();
        assert_eq!(o.index_name("pickup_count", Some(1_357_002_000_000)), "nyc-pickup_count");
        o.date_suffix = DateSuffix::Day;
        assert_eq!(o.index_name("pickup_count", Some(1_357_002_000_000)), "nyc-pickup_count-2013.01.01");
        assert_eq!(o.index_name("dead_letter", None), "nyc-dead_letter");
        o.date_suffix = DateSuffix::Month;
        assert_eq!(o.index_name("trip_duration", Some(1_357_002_000_000)), "nyc-trip_duration-2013.01");
        assert!(check_index_prefix("nyc-").is_ok());
        assert!(check_index_prefix("NYC").is_err());
        assert!(check_index_prefix("_x").is_err());
        assert!(check_index_prefix("a b").is_err());
    }
}
