//! Amazon S3 (`s3://BUCKET/PREFIX`): the part-file sink's store (`--sink s3://…`, see
//! [`crate::connectors::part_files`]) and the checkpoint store (`--checkpoint-dir s3://…`, see
//! `crate::runtime::checkpoint::store`), through the `object_store` crate's S3 client.
//!
//! Settings: `--region` (or `AWS_REGION`, or the AWS profile's; default `us-east-1`), credentials from the
//! standard AWS chain of `aws-config` (environment, profiles with `credential_process`/SSO, web identity, ECS,
//! IMDS), fetched again 5 minutes before they expire, so rotated credentials are used without a restart.
//! `--endpoint-url` points at another S3 implementation (e.g. a local moto server, as the tests do); requests to
//! it use path-style addressing (`ENDPOINT/BUCKET/KEY`), as local servers need, and `http://` is allowed there.
//! Without it, the AWS endpoint of the region with virtual-hosted addressing (`BUCKET.s3.REGION.amazonaws.com`),
//! as AWS recommends.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context as _};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use object_store::aws::{AmazonS3, AmazonS3Builder, AwsCredential};
use object_store::path::Path;
use object_store::CredentialProvider;

/// A bucket and key prefix named by `s3://BUCKET/PREFIX`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix without leading or trailing `/` (may be empty).
    pub prefix: String,
}

impl S3Location {
    /// Parses `s3://BUCKET[/PREFIX]`; `flag` names the flag in errors.
    ///
    /// # Errors
    /// Not `s3://`, or an invalid bucket name (3–63 of `a-z 0-9 . -`, AWS bucket naming rules).
    pub fn parse(url: &str, flag: &str) -> anyhow::Result<S3Location> {
        let Some(rest) = url.strip_prefix("s3://") else { bail!("{flag} {url:?}: expected s3://BUCKET/PREFIX") };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.len() < 3 || bucket.len() > 63 || !bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-') {
            bail!("{flag} {url:?}: a bucket name is 3 to 63 characters of a-z, 0-9, . and -");
        }
        let prefix = prefix.trim_matches('/');
        Path::parse(prefix).map_err(|e| anyhow!("{flag} {url:?}: invalid key prefix: {e}"))?;
        Ok(S3Location { bucket: bucket.to_string(), prefix: prefix.to_string() })
    }

    /// `s3://BUCKET/PREFIX`.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    /// The prefix to list objects under; `None` for the whole bucket.
    ///
    /// # Errors
    /// An invalid prefix (not for a location made by [`Self::parse`], which checked it).
    pub fn listing_prefix(&self) -> anyhow::Result<Option<Path>> {
        (!self.prefix.is_empty()).then(|| Path::parse(&self.prefix)).transpose().map_err(|e| anyhow!("{}: invalid key prefix: {e}", self.url()))
    }

    /// The key `PREFIX/relative`, kept verbatim (no percent-encoding: Hive-escaped partition values stay as they
    /// are).
    ///
    /// # Errors
    /// An empty segment or a `.`/`..` segment.
    pub fn key(&self, relative: &str) -> anyhow::Result<Path> {
        let key = if self.prefix.is_empty() { relative.to_string() } else { format!("{}/{relative}", self.prefix) };
        Path::parse(&key).map_err(|e| anyhow!("invalid S3 key {key:?}: {e}"))
    }
}

/// The S3 client of `location` with the AWS settings of `aws` (see the module documentation).
///
/// # Errors
/// No AWS credentials provider could be set up, or the client cannot be built.
pub async fn client(location: &S3Location, aws: &crate::aws::AwsArgs) -> anyhow::Result<AmazonS3> {
    let config = aws.load().await;
    let region = config.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".to_string());
    let provider = config.credentials_provider().ok_or_else(|| anyhow!("no AWS credentials provider (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile)"))?;
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&location.bucket)
        .with_region(&region)
        .with_credentials(Arc::new(AwsChainCredentials::new(provider)))
        .with_retry(object_store::RetryConfig { max_retries: 10, retry_timeout: Duration::from_secs(120), ..Default::default() });
    builder = match &aws.endpoint_url {
        Some(endpoint) => builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://")).with_virtual_hosted_style_request(false),
        None => builder.with_virtual_hosted_style_request(true),
    };
    builder.build().with_context(|| format!("{}: cannot build the S3 client", location.url()))
}

/// Credentials of the `aws-config` chain for `object_store`, cached until 5 minutes before they expire (or for 5
/// minutes when they do not say), as the SigV4 signer of the Elasticsearch sink does.
#[derive(Debug)]
pub struct AwsChainCredentials {
    inner: SharedCredentialsProvider,
    cache: tokio::sync::Mutex<Option<Cached>>,
}

/// Credentials with their expiry and when they were fetched.
type Cached = (Arc<AwsCredential>, Option<SystemTime>, Instant);

const REFRESH_MARGIN: Duration = Duration::from_secs(300);

impl AwsChainCredentials {
    /// Wraps `inner`.
    pub fn new(inner: SharedCredentialsProvider) -> Self {
        AwsChainCredentials { inner, cache: tokio::sync::Mutex::new(None) }
    }
}

#[async_trait::async_trait]
impl CredentialProvider for AwsChainCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let mut cache = self.cache.lock().await;
        if let Some((credential, expiry, fetched)) = &*cache {
            let fresh = match expiry {
                Some(e) => e.duration_since(SystemTime::now()).is_ok_and(|left| left > REFRESH_MARGIN),
                None => fetched.elapsed() < REFRESH_MARGIN,
            };
            if fresh {
                return Ok(Arc::clone(credential));
            }
        }
        let c = self.inner.provide_credentials().await.map_err(|e| object_store::Error::Generic { store: "S3", source: Box::new(e) })?;
        let credential = Arc::new(AwsCredential { key_id: c.access_key_id().to_string(), secret_key: c.secret_access_key().to_string(), token: c.session_token().map(str::to_string) });
        *cache = Some((Arc::clone(&credential), c.expiry(), Instant::now()));
        Ok(credential)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        let l = S3Location::parse("s3://my-bucket/ticker/out/", "--sink").unwrap();
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("my-bucket", "ticker/out"));
        assert_eq!(l.key("ticker=A,B%2FC/part-0000000001-0000.csv").unwrap().as_ref(), "ticker/out/ticker=A,B%2FC/part-0000000001-0000.csv");
        let bare = S3Location::parse("s3://bkt", "--sink").unwrap();
        assert_eq!(bare.key("x/y").unwrap().as_ref(), "x/y");
        for bad in ["s3://", "s3://AB/x", "s3://b/x", "file://x", "s3://bucket/a//b"] {
            assert!(S3Location::parse(bad, "--sink").unwrap_err().to_string().starts_with("--sink"), "{bad}");
        }
    }
}
