//! AWS settings shared by the Kinesis replay and source and the SigV4 signing of the Elasticsearch sink:
//! `--region` (or `AWS_REGION`) and `--endpoint-url` (a local endpoint such as moto or kinesalite), loaded with
//! `aws-config`'s standard chain (credentials from the environment, profiles, web identity, ECS, IMDS).

/// `--region` and `--endpoint-url`.
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct AwsArgs {
    /// AWS region of the stream or domain (default: $AWS_REGION, then the AWS profile's).
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
    /// Endpoint URL of the AWS service, for local endpoints (e.g. http://127.0.0.1:4567).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
}

impl AwsArgs {
    /// The shared AWS configuration: region and endpoint from the flags when given, credentials from the
    /// standard chain. The SDK's own retries (standard mode, 3 attempts) back off at most 2 s: the replay and the
    /// source retry throttled calls themselves with longer backoffs, and two long layers would multiply the wait.
    pub async fn load(&self) -> aws_config::SdkConfig {
        let retry = aws_config::retry::RetryConfig::standard().with_max_backoff(std::time::Duration::from_secs(2));
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).retry_config(retry);
        if let Some(region) = self.region.clone().filter(|r| !r.is_empty()) {
            loader = loader.region(aws_config::Region::new(region));
        }
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        loader.load().await
    }
}
