//! Amazon Kinesis Data Streams: the replay producer (`taxiflow replay --to kinesis://STREAM`) and the source
//! (`taxiflow run --source kinesis://STREAM`), with `aws-sdk-kinesis` and the `aws-config` chain
//! (`--region`, `--endpoint-url` for local endpoints such as moto or kinesalite).
//!
//! | module | concept |
//! |---|---|
//! | [`producer`] | the replay producer: `PutRecords` batches, retries of failed entries, watermarks per open shard |
//! | [`source`] | the source: shards assigned to workers, `GetRecords` loops, resharding, per-shard watermarks |
//! | [`deaggregate`] | KPL aggregated records (magic `F3 89 9A C2`, protobuf, MD5) |

pub mod deaggregate;
pub mod producer;
pub mod source;

pub use source::KinesisArgs;

use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use aws_sdk_kinesis::types::StreamStatus;
use aws_sdk_kinesis::Client;

/// A stream named by `kinesis://STREAM`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KinesisStream {
    /// Stream name.
    pub name: String,
}

impl KinesisStream {
    /// Parses `kinesis://STREAM`; `flag` names the flag in errors.
    ///
    /// # Errors
    /// Not `kinesis://` or an invalid stream name (1–128 of `a-zA-Z0-9_.-`, AWS `StreamName` constraint).
    pub fn parse(url: &str, flag: &str) -> anyhow::Result<KinesisStream> {
        let Some(name) = url.strip_prefix("kinesis://") else { bail!("{flag} {url:?}: expected kinesis://STREAM") };
        if name.is_empty() || name.len() > 128 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
            bail!("{flag} {url:?}: a stream name is 1 to 128 characters of a-z, A-Z, 0-9, _ . -");
        }
        Ok(KinesisStream { name: name.to_string() })
    }

    /// `kinesis://STREAM`.
    pub fn url(&self) -> String {
        format!("kinesis://{}", self.name)
    }
}

/// One shard as `ListShards` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardInfo {
    /// `shardId-…`.
    pub id: String,
    /// The shard it was split from or merged from.
    pub parent: Option<String>,
    /// The other shard of a merge.
    pub adjacent_parent: Option<String>,
    /// Starting hash key (decimal, 0 to 2^128 − 1): an `ExplicitHashKey` that routes a record to this shard.
    pub starting_hash_key: String,
    /// The shard was closed by a split or merge: it takes no more records and ends (SHARD_END).
    pub closed: bool,
}

impl ShardInfo {
    /// The parents that must be read to their end before this shard (AWS "Resharding a stream": process parents
    /// before children to keep the order of each partition key).
    pub fn parents(&self) -> impl Iterator<Item = &str> {
        self.parent.iter().chain(self.adjacent_parent.iter()).map(String::as_str)
    }
}

/// A Kinesis client for `aws` settings (region, endpoint, credentials from the standard chain).
pub async fn client(aws: &crate::aws::AwsArgs) -> Client {
    Client::new(&aws.load().await)
}

/// All shards of the stream (`ListShards`, every page), open and closed.
///
/// # Errors
/// The stream does not exist or the service cannot be reached (with the service's message).
pub async fn list_shards(client: &Client, stream: &KinesisStream) -> anyhow::Result<Vec<ShardInfo>> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let request = match &token {
            // With a next token, the stream name must not be given (ListShards API reference).
            Some(t) => client.list_shards().next_token(t),
            None => client.list_shards().stream_name(&stream.name),
        };
        let page = request.send().await.map_err(|e| anyhow!("{}: ListShards: {}", stream.url(), crate::retry::error_chain(&e)))?;
        for s in page.shards() {
            shards.push(ShardInfo {
                id: s.shard_id().to_string(),
                parent: s.parent_shard_id().map(str::to_string),
                adjacent_parent: s.adjacent_parent_shard_id().map(str::to_string),
                starting_hash_key: s.hash_key_range().map(|r| r.starting_hash_key().to_string()).unwrap_or_else(|| "0".into()),
                closed: s.sequence_number_range().and_then(|r| r.ending_sequence_number()).is_some(),
            });
        }
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(shards);
        }
    }
}

/// Creates a stream with `shards` shards and waits until it is `ACTIVE` (tests and benchmarks).
///
/// # Errors
/// The service refuses, or the stream is not active within 30 s.
pub async fn create_stream(client: &Client, stream: &KinesisStream, shards: i32) -> anyhow::Result<()> {
    client
        .create_stream()
        .stream_name(&stream.name)
        .shard_count(shards)
        .send()
        .await
        .map_err(|e| anyhow!("{}: CreateStream: {}", stream.url(), crate::retry::error_chain(&e)))?;
    wait_active(client, stream).await
}

/// Waits until the stream is `ACTIVE` (after creation or a resharding), for up to 30 s.
///
/// # Errors
/// Not active in time, or the stream cannot be described.
pub async fn wait_active(client: &Client, stream: &KinesisStream) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let summary = client.describe_stream_summary().stream_name(&stream.name).send().await.context("DescribeStreamSummary")?;
        if summary.stream_description_summary().map(|d| d.stream_status()) == Some(&StreamStatus::Active) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{}: not ACTIVE after 30 s", stream.url());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A single-threaded tokio runtime for blocking callers (the replay, the source's start-up checks).
///
/// # Errors
/// The runtime cannot be created.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the AWS client runtime")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stream_urls() {
        assert_eq!(KinesisStream::parse("kinesis://taxi-trips", "--to").unwrap().name, "taxi-trips");
        assert!(KinesisStream::parse("kinesis://", "--to").unwrap_err().to_string().contains("--to"));
        assert!(KinesisStream::parse("kinesis://a/b", "--to").is_err());
        assert!(KinesisStream::parse("kafka://a/b", "--source").unwrap_err().to_string().contains("kinesis://STREAM"));
    }
}
