//! `--es-auth none|basic|sigv4`: how requests to the cluster are authenticated.
//!
//! SigV4 follows the AWS documentation "Signing HTTP requests to Amazon OpenSearch Service" and "Signature
//! Version 4 signing process": the `aws-sigv4` crate signs (double URI encoding, signed `host`,
//! `content-type`, `x-amz-date` and, with a session, `x-amz-security-token`); service `es` for Amazon
//! OpenSearch Service domains, `aoss` for OpenSearch Serverless, which also requires the
//! `x-amz-content-sha256` header (hex SHA-256 of the body). Credentials come from the standard AWS chain
//! (`aws-config`: environment, profile incl. `credential_process` and SSO, web identity, ECS, EC2 IMDS) and are
//! cached until five minutes before they expire (or for five minutes when they carry no expiry), then fetched
//! again, so rotated credentials are used without a restart.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Context as _};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

/// The SigV4 service name (`--es-service`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SigV4Service {
    /// `es`: Amazon OpenSearch Service / Amazon Elasticsearch Service domains.
    #[default]
    Es,
    /// `aoss`: Amazon OpenSearch Serverless collections (signs `x-amz-content-sha256` too).
    Aoss,
}

impl SigV4Service {
    /// The service name in the credential scope.
    pub fn name(self) -> &'static str {
        match self {
            SigV4Service::Es => "es",
            SigV4Service::Aoss => "aoss",
        }
    }
}

/// The authentication of every request.
#[derive(Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// No credentials.
    None,
    /// HTTP basic authentication (`--es-user` and `TAXIFLOW_ES_PASSWORD`, or `USER:PASSWORD@` in the URL).
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// AWS SigV4 with credentials from the default chain.
    SigV4 {
        /// AWS region of the domain or collection, e.g. `us-east-1`.
        region: String,
        /// `es` or `aoss`.
        service: SigV4Service,
    },
}

impl fmt::Debug for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthMethod::None => f.write_str("None"),
            AuthMethod::Basic { user, .. } => write!(f, "Basic {{ user: {user:?}, password: <redacted> }}"),
            AuthMethod::SigV4 { region, service } => write!(f, "SigV4 {{ region: {region:?}, service: {service:?} }}"),
        }
    }
}

/// Signs requests with SigV4, with credentials from a provider cached until shortly before they expire.
pub struct SigV4Signer {
    provider: SharedCredentialsProvider,
    region: String,
    service: SigV4Service,
    cached: tokio::sync::Mutex<Option<(Credentials, Instant)>>,
}

/// Credentials are fetched again this long before they expire, or after this long when they have no expiry.
const CREDENTIALS_MARGIN: Duration = Duration::from_secs(300);

impl SigV4Signer {
    /// A signer whose credentials come from the default AWS chain (`aws-config`), for `region`.
    ///
    /// # Errors
    /// `--es-auth sigv4`: the chain yields no credentials (the chain's own error is kept).
    pub async fn from_default_chain(region: &str, service: SigV4Service) -> anyhow::Result<SigV4Signer> {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .load()
            .await;
        let provider = config.credentials_provider().ok_or_else(|| anyhow!("--es-auth sigv4: no AWS credentials provider is configured"))?;
        let signer = SigV4Signer::new(provider, region, service);
        signer.credentials().await.context("--es-auth sigv4: cannot get AWS credentials from the default chain")?;
        Ok(signer)
    }

    /// A signer with an explicit credentials provider.
    pub fn new(provider: SharedCredentialsProvider, region: &str, service: SigV4Service) -> SigV4Signer {
        SigV4Signer { provider, region: region.to_string(), service, cached: tokio::sync::Mutex::new(None) }
    }

    /// The current credentials, fetched again when they are about to expire.
    ///
    /// # Errors
    /// The provider fails.
    pub async fn credentials(&self) -> anyhow::Result<Credentials> {
        let mut cached = self.cached.lock().await;
        if let Some((c, fetched)) = &*cached {
            let fresh = match c.expiry() {
                Some(expiry) => expiry.duration_since(SystemTime::now()).is_ok_and(|left| left > CREDENTIALS_MARGIN),
                None => fetched.elapsed() < CREDENTIALS_MARGIN,
            };
            if fresh {
                return Ok(c.clone());
            }
        }
        let c = self.provider.provide_credentials().await.map_err(|e| anyhow!("{}", crate::retry::error_chain(&e)))?;
        *cached = Some((c.clone(), Instant::now()));
        Ok(c)
    }

    /// The headers to add to a request (`authorization`, `x-amz-date`, maybe `x-amz-security-token` and
    /// `x-amz-content-sha256`) so that it is signed now.
    ///
    /// # Errors
    /// No credentials, or a URL the signer cannot handle.
    pub async fn sign(&self, method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> anyhow::Result<Vec<(String, String)>> {
        let credentials = self.credentials().await?;
        let (headers, _) = sign_request(&credentials, &self.region, self.service.name(), SystemTime::now(), method, url, headers, body)?;
        Ok(headers)
    }
}

/// Signs one request with SigV4 at `time`: returns the headers to add and the hex signature.
/// `service` `aoss` also signs `x-amz-content-sha256`. `headers` are the request's own headers that must be
/// signed (e.g. `content-type`); `host` is taken from `url`.
///
/// # Errors
/// A URL or header the signer rejects.
#[allow(clippy::too_many_arguments)]
pub fn sign_request(
    credentials: &Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<(Vec<(String, String)>, String)> {
    let identity: Identity = credentials.clone().into();
    let mut settings = SigningSettings::default();
    if service == SigV4Service::Aoss.name() {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .context("SigV4 signing parameters")?
        .into();
    let request = SignableRequest::new(method, url, headers.iter().copied(), SignableBody::Bytes(body)).context("SigV4: request cannot be signed")?;
    let (instructions, signature) = sign(request, &params).context("SigV4 signing")?.into_parts();
    let (added, _) = instructions.into_parts();
    Ok((added.into_iter().map(|h| (h.name().to_string(), h.value().to_string())).collect(), signature))
}
