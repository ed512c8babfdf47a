//! The `taxiflow run` flags of the Elasticsearch sink (`--es-*`, `--index-*`, `--bulk-*`; `--region` is in
//! [`crate::aws::AwsArgs`]).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;

use super::{check_index_prefix, AuthMethod, DateSuffix, EsOptions, SigV4Service};

/// `--es-auth` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthChoice {
    /// No authentication.
    None,
    /// HTTP basic: `--es-user` and the `TAXIFLOW_ES_PASSWORD` environment variable (or `USER:PASSWORD@` in the URL).
    Basic,
    /// AWS SigV4 (Amazon OpenSearch Service, OpenSearch Serverless), credentials from the default AWS chain.
    Sigv4,
}

/// Flags of the Elasticsearch sink; only valid with `--sink es+http(s)://…`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct EsArgs {
    /// Authentication: none, basic or sigv4 (default: basic when the URL has credentials, else none).
    #[arg(long, value_enum)]
    pub es_auth: Option<AuthChoice>,
    /// User name for --es-auth basic.
    #[arg(long)]
    pub es_user: Option<String>,
    /// Password for --es-auth basic (from the environment only, so it stays out of process listings).
    #[arg(long, env = "TAXIFLOW_ES_PASSWORD", hide = true, hide_env_values = true)]
    pub es_password: Option<String>,
    /// SigV4 service name: es (OpenSearch Service domains) or aoss (OpenSearch Serverless).
    #[arg(long, value_enum)]
    pub es_service: Option<SigV4Service>,
    /// PEM file of root certificates to trust in addition to the system's (private CA).
    #[arg(long, value_name = "PEM")]
    pub es_ca_cert: Option<PathBuf>,
    /// Prefix of every index and template name, e.g. `nyc-`.
    #[arg(long)]
    pub index_prefix: Option<String>,
    /// Date suffix of the result indices, from the window start (UTC): none, day (-YYYY.MM.DD) or month (-YYYY.MM).
    #[arg(long, value_enum)]
    pub index_date_suffix: Option<DateSuffix>,
    /// A bulk request is sent when it holds this many actions [default: 10000].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub bulk_max_actions: Option<u64>,
    /// A bulk request is sent when its body reaches this many bytes [default: 5242880].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub bulk_max_bytes: Option<u64>,
    /// A non-empty bulk request is sent at the latest this long after its first action [default: 1s].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub bulk_interval: Option<Duration>,
    /// Bulk requests in flight at most; beyond that the job waits [default: 2].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub bulk_concurrency: Option<u64>,
    /// Retries of a failing item or request before the job fails [default: 12].
    #[arg(long)]
    pub bulk_max_retries: Option<u32>,
    /// First retry delay, doubled on each retry, with jitter [default: 50ms].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub bulk_backoff: Option<Duration>,
    /// Cap of the retry delay [default: 30s].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub bulk_backoff_max: Option<Duration>,
    /// Timeout of one HTTP request to the cluster [default: 60s].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub es_timeout: Option<Duration>,
}

impl EsArgs {
    /// Applies the flags to `options` (parsed from `--sink`); `region` is `--region` (see [`crate::aws::AwsArgs`]).
    ///
    /// # Errors
    /// Inconsistent or invalid flags, named: basic without user, sigv4 without region, a bad prefix, a backoff
    /// cap below its start, a CA file that does not exist.
    pub fn apply(&self, options: &mut EsOptions, region: Option<&str>) -> anyhow::Result<()> {
        let url_credentials = matches!(options.auth, AuthMethod::Basic { .. });
        options.auth = match self.es_auth.unwrap_or(if url_credentials { AuthChoice::Basic } else { AuthChoice::None }) {
            AuthChoice::None => {
                if self.es_user.is_some() {
                    bail!("--es-user needs --es-auth basic");
                }
                if url_credentials {
                    bail!("--es-auth none: the --sink URL carries credentials");
                }
                AuthMethod::None
            }
            AuthChoice::Basic => match (&options.auth, &self.es_user) {
                (AuthMethod::Basic { .. }, Some(_)) => bail!("--es-user: the --sink URL already carries a user"),
                (AuthMethod::Basic { user, password }, None) => AuthMethod::Basic { user: user.clone(), password: password.clone() },
                (_, Some(user)) => AuthMethod::Basic {
                    user: user.clone(),
                    password: self.es_password.clone().ok_or_else(|| anyhow::anyhow!("--es-auth basic: set the password in TAXIFLOW_ES_PASSWORD"))?,
                },
                (_, None) => bail!("--es-auth basic needs --es-user (or USER:PASSWORD@ in the --sink URL)"),
            },
            AuthChoice::Sigv4 => {
                if url_credentials || self.es_user.is_some() {
                    bail!("--es-auth sigv4 takes AWS credentials, not a user and password");
                }
                let region = region.filter(|r| !r.is_empty()).map(str::to_string).ok_or_else(|| anyhow::anyhow!("--region (or AWS_REGION) is required with --es-auth sigv4"))?;
                AuthMethod::SigV4 { region, service: self.es_service.unwrap_or_default() }
            }
        };
        if self.es_service.is_some() && !matches!(options.auth, AuthMethod::SigV4 { .. }) {
            bail!("--es-service needs --es-auth sigv4");
        }
        if let Some(path) = &self.es_ca_cert {
            if !path.is_file() {
                bail!("--es-ca-cert {}: no such file", path.display());
            }
            options.ca_cert = Some(path.clone());
        }
        if let Some(prefix) = &self.index_prefix {
            check_index_prefix(prefix)?;
            options.index_prefix = prefix.clone();
        }
        options.date_suffix = self.index_date_suffix.unwrap_or_default();
        let b = &mut options.bulk;
        if let Some(v) = self.bulk_max_actions {
            b.max_actions = v as usize;
        }
        if let Some(v) = self.bulk_max_bytes {
            b.max_bytes = v as usize;
        }
        if let Some(v) = self.bulk_interval {
            if v.is_zero() {
                bail!("--bulk-interval must be positive");
            }
            b.interval = v;
        }
        if let Some(v) = self.bulk_concurrency {
            b.concurrency = v as usize;
        }
        if let Some(v) = self.bulk_max_retries {
            b.max_retries = v;
        }
        if let Some(v) = self.bulk_backoff {
            b.backoff_initial = v;
        }
        if let Some(v) = self.bulk_backoff_max {
            b.backoff_max = v;
        }
        if b.backoff_max < b.backoff_initial {
            bail!("--bulk-backoff-max ({:?}) is below --bulk-backoff ({:?})", b.backoff_max, b.backoff_initial);
        }
        if let Some(v) = self.es_timeout {
            if v.is_zero() {
                bail!("--es-timeout must be positive");
            }
            b.request_timeout = v;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(url: &str) -> EsOptions {
        EsOptions::parse(url).unwrap()
    }

    #[test]
    fn auth_choices() {
        let mut o = options("es+http://u:p@h:9200");
        EsArgs::default().apply(&mut o, None).unwrap();
        assert_eq!(o.auth, AuthMethod::Basic { user: "u".into(), password: "p".into() });

        let mut o = options("es+https://h");
        let args = EsArgs { es_auth: Some(AuthChoice::Basic), es_user: Some("elastic".into()), ..Default::default() };
        assert!(args.apply(&mut o, None).unwrap_err().to_string().contains("TAXIFLOW_ES_PASSWORD"));
        let args = EsArgs { es_password: Some("pw".into()), ..args };
        args.apply(&mut o, None).unwrap();
        assert_eq!(o.auth, AuthMethod::Basic { user: "elastic".into(), password: "pw".into() });

        let mut o = options("es+https://h");
        let args = EsArgs { es_auth: Some(AuthChoice::Sigv4), ..Default::default() };
        assert!(args.apply(&mut o, None).unwrap_err().to_string().contains("--region"));
        let args = EsArgs { es_service: Some(SigV4Service::Aoss), ..args };
        args.apply(&mut o, Some("eu-west-1")).unwrap();
        assert_eq!(o.auth, AuthMethod::SigV4 { region: "eu-west-1".into(), service: SigV4Service::Aoss });

        let mut o = options("es+https://h");
        let args = EsArgs { es_service: Some(SigV4Service::Aoss), ..Default::default() };
        assert!(args.apply(&mut o, None).unwrap_err().to_string().contains("--es-service"));
    }

    #[test]
    fn bulk_flags_and_misuse() {
        let mut o = options("es+https://h");
        let args = EsArgs { bulk_max_actions: Some(5), bulk_interval: Some(Duration::from_millis(200)), index_prefix: Some("nyc-".into()), ..Default::default() };
        args.apply(&mut o, None).unwrap();
        assert_eq!((o.bulk.max_actions, o.bulk.interval, o.index_prefix.as_str()), (5, Duration::from_millis(200), "nyc-"));
        let bad = EsArgs { bulk_backoff: Some(Duration::from_secs(5)), bulk_backoff_max: Some(Duration::from_secs(1)), ..Default::default() };
        assert!(bad.apply(&mut options("es+https://h"), None).unwrap_err().to_string().contains("--bulk-backoff-max"));
        let bad = EsArgs { index_prefix: Some("Upper".into()), ..Default::default() };
        assert!(bad.apply(&mut options("es+https://h"), None).unwrap_err().to_string().contains("--index-prefix"));
    }
}
