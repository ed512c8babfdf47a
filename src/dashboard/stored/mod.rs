//! Stores read back for `taxiflow dashboard --from URL` (what Kibana does with the indices): the results a run
//! wrote, read as the same JSON documents the run's sink wrote, so that the page shows the same numbers as during
//! the run.
//!
//! | `--from` | what is read | how often |
//! |---|---|---|
//! | `file://DIR` | `DIR/<output>.jsonl` (the file sink) and the part files of partitioned outputs (`DIR/ticker=…/part-*.{csv,jsonl,parquet}`, `_dead_letter/`) | appended lines and new part files at each `--refresh` |
//! | `es+http(s)://HOST` | the indices `[--index-prefix]<output>` and their date-suffixed ones: the newest `--dashboard-windows` windows | again at each `--refresh` |
//! | `redis://HOST:PORT` | the page-view layout under `--redis-prefix` (docs/jobs/pageviews.md §4): the newest windows of `P:windows` and the days | again at each `--refresh` |
//! | `s3://BUCKET/PREFIX` | the part files under the prefix (the ticker job's layout) | new objects at each `--refresh` |
//! | `kafka://BROKER/TOPIC` | every message of every partition from the beginning, `read_committed` (the alert and dispatch topics, or any job's documents with `_index`) | continuously |
//!
//! Which job wrote a document is told by its output (`pickup_count` is the taxi job's, `total` the page-view job's,
//! an `alert`/`revoke` message the alerts job's, a `dispatch`/`close` message the dispatch job's), or by `--job`.

pub mod es;
pub mod file;
pub mod kafka;
pub mod redis;
pub mod s3;

use serde_json::Value;

/// Documents read from a store: `(output, document)`, the output being the job's output name or `dead_letter`.
pub type Docs = Vec<(String, Value)>;

/// A store the dashboard reads.
pub trait Store: Send {
    /// Where it reads, without credentials.
    fn describe(&self) -> String;

    /// Reads what is new since the last call; stores without positions (Elasticsearch, Redis) read their newest
    /// windows again (the board replaces documents by id).
    ///
    /// # Errors
    /// The store cannot be read (unreachable, refused); the caller logs it and tries again at the next refresh.
    fn read(&mut self) -> anyhow::Result<Docs>;
}

/// Flags of `taxiflow dashboard` that tell how to read its stores.
#[derive(Clone, Debug, clap::Args)]
pub struct StoreArgs {
    /// Elasticsearch/OpenSearch: authentication, none, basic or sigv4 (default: basic when the URL has
    /// credentials, else none; the password of basic from TAXIFLOW_ES_PASSWORD).
    #[arg(long, value_enum)]
    pub es_auth: Option<crate::connectors::elasticsearch::args::AuthChoice>,
    /// Elasticsearch/OpenSearch: the user of --es-auth basic.
    #[arg(long)]
    pub es_user: Option<String>,
    /// Elasticsearch/OpenSearch: the password of --es-auth basic (from the environment only).
    #[arg(long, env = "TAXIFLOW_ES_PASSWORD", hide = true, hide_env_values = true)]
    pub es_password: Option<String>,
    /// Elasticsearch/OpenSearch: the SigV4 service, es (OpenSearch Service domains) or aoss (OpenSearch Serverless).
    #[arg(long, value_enum)]
    pub es_service: Option<crate::connectors::elasticsearch::auth::SigV4Service>,
    /// Elasticsearch/OpenSearch: the prefix of the index names the run wrote (its --index-prefix).
    #[arg(long)]
    pub index_prefix: Option<String>,
    /// Redis: the key prefix the run wrote under (its --redis-prefix).
    #[arg(long, default_value = "pageviews")]
    pub redis_prefix: String,
    /// AWS settings (S3, SigV4).
    #[command(flatten)]
    pub aws: crate::aws::AwsArgs,
    /// Kafka settings.
    #[command(flatten)]
    pub kafka: crate::connectors::kafka::KafkaArgs,
}

/// The store at `url`, keeping the newest `keep` windows of each job.
///
/// # Errors
/// `--from`: an unknown scheme or a malformed URL, or a store that cannot be reached at start.
pub fn open(url: &str, args: &StoreArgs, keep: usize) -> anyhow::Result<Box<dyn Store>> {
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    Ok(match scheme {
        "file" => Box::new(file::FileStore::open(url)?),
        "es+http" | "es+https" => Box::new(es::EsStore::open(url, args, keep)?),
        "redis" | "rediss" => Box::new(redis::RedisStore::open(url, args, keep)?),
        "s3" => Box::new(s3::S3Store::open(url, args)?),
        "kafka" => Box::new(kafka::KafkaStore::open(url, args)?),
        _ => anyhow::bail!("--from {url:?}: expected file://DIR, es+http(s)://HOST[:PORT], redis://HOST:PORT, s3://BUCKET/PREFIX or kafka://BROKER/TOPIC"),
    })
}
