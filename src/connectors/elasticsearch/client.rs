//! The HTTP client of the Elasticsearch sink: reqwest with rustls (the platform's root certificates plus
//! `--es-ca-cert`), authenticated per `--es-auth` (see [`super::auth`]).

use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use reqwest::{Method, StatusCode};

use super::auth::{AuthMethod, SigV4Signer};
use super::EsOptions;

/// A failed request that never got an HTTP answer: connection refused or reset, TLS error, timeout.
#[derive(Debug)]
pub struct RequestError {
    /// The error with its causes.
    pub message: String,
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// An HTTP answer: status and body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as (lossy) text, cut to 500 characters, for error messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).chars().take(500).collect()
    }
}

enum Credentials {
    None,
    Basic { user: String, password: String },
    SigV4(Arc<SigV4Signer>),
}

/// A client of one cluster (cheap to clone).
#[derive(Clone)]
pub struct EsClient {
    http: reqwest::Client,
    base: reqwest::Url,
    credentials: Arc<Credentials>,
}

impl EsClient {
    /// Builds the client; for SigV4, loads the default AWS credentials chain and fetches credentials once.
    ///
    /// # Errors
    /// `--es-ca-cert` unreadable or not PEM; `--es-auth sigv4` without credentials.
    pub async fn new(options: &EsOptions) -> anyhow::Result<EsClient> {
        let mut builder = reqwest::Client::builder().timeout(options.bulk.request_timeout).pool_max_idle_per_host(options.bulk.concurrency.max(1));
        if let Some(path) = &options.ca_cert {
            let pem = std::fs::read(path).with_context(|| format!("--es-ca-cert {}: cannot read", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| format!("--es-ca-cert {}: not a PEM certificate bundle", path.display()))?;
            if certs.is_empty() {
                anyhow::bail!("--es-ca-cert {}: no certificate in the file", path.display());
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().context("cannot build the HTTP client")?;
        let credentials = match &options.auth {
            AuthMethod::None => Credentials::None,
            AuthMethod::Basic { user, password } => Credentials::Basic { user: user.clone(), password: password.clone() },
            AuthMethod::SigV4 { region, service } => Credentials::SigV4(Arc::new(SigV4Signer::from_default_chain(region, *service).await?)),
        };
        Ok(EsClient { http, base: options.url.clone(), credentials: Arc::new(credentials) })
    }

    /// Sends `method path` (relative to the base URL, e.g. `_bulk`) with an optional body of `content_type`.
    ///
    /// # Errors
    /// No answer (see [`RequestError`]); an HTTP error status is an `Ok` answer.
    pub async fn send(&self, method: Method, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Result<Answer, RequestError> {
        let url = self.base.join(path).map_err(|e| RequestError { message: format!("bad request path {path:?}: {e}") })?;
        let mut request = self.http.request(method.clone(), url.clone());
        if let Some(ct) = content_type {
            request = request.header(reqwest::header::CONTENT_TYPE, ct);
        }
        match &*self.credentials {
            Credentials::None => {}
            Credentials::Basic { user, password } => request = request.basic_auth(user, Some(password)),
            Credentials::SigV4(signer) => {
                let signed: Vec<(&str, &str)> = content_type.map(|ct| ("content-type", ct)).into_iter().collect();
                let headers = signer.sign(method.as_str(), url.as_str(), &signed, &body).await.map_err(|e| RequestError { message: format!("SigV4: {e:#}") })?;
                for (name, value) in headers {
                    request = request.header(name, value);
                }
            }
        }
        let response = request.body(body).send().await.map_err(|e| RequestError { message: crate::retry::error_chain(&e) })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| RequestError { message: crate::retry::error_chain(&e) })?.to_vec();
        Ok(Answer { status, body })
    }

    /// `GET /`: the cluster's distribution and version, e.g. `opensearch 3.8.0` (not for OpenSearch Serverless,
    /// which has no root endpoint).
    ///
    /// # Errors
    /// `--sink`: the cluster cannot be reached, refuses the credentials, or does not answer like Elasticsearch.
    pub async fn version(&self) -> anyhow::Result<String> {
        let answer = self.send(Method::GET, "", None, Vec::new()).await.map_err(|e| anyhow!("--sink {}: cannot reach the cluster: {e}", self.base))?;
        if !answer.status.is_success() {
            anyhow::bail!("--sink {}: GET / answered {}: {}", self.base, answer.status, answer.text());
        }
        let info: serde_json::Value = serde_json::from_slice(&answer.body).with_context(|| format!("--sink {}: GET / is not JSON", self.base))?;
        let number = info.pointer("/version/number").and_then(|v| v.as_str()).ok_or_else(|| anyhow!("--sink {}: GET / has no version.number", self.base))?;
        let distribution = info.pointer("/version/distribution").and_then(|v| v.as_str()).unwrap_or("elasticsearch");
        Ok(format!("{distribution} {number}"))
    }

    /// The base URL.
    pub fn base(&self) -> &reqwest::Url {
        &self.base
    }
}
