//! Provider configuration: base URLs, credentials, timeouts and rate limits.
//!
//! Configuration comes from a TOML file, from the environment, or both (the environment
//! overrides the file, field by field). It never comes from source code.
//!
//! ```toml
//! [mobitel]
//! base_url = "https://apphub.mobitel.lk"
//! client_id = "..."            # or HANDOVER_MOBITEL_CLIENT_ID
//!
//! [mobitel.http]               # all optional, defaults shown
//! timeout_ms = 10000
//! connect_timeout_ms = 3000
//! rate_per_second = 10
//! rate_burst = 10
//! max_rate_wait_ms = 5000
//! max_response_bytes = 1048576
//! ```
//!
//! Environment variables are `HANDOVER_<PROVIDER>_<FIELD>`, the field upper-cased; the
//! `http` fields have no extra prefix: `HANDOVER_MOBITEL_BASE_URL`,
//! `HANDOVER_MOBITEL_CLIENT_ID`, `HANDOVER_MOBITEL_TIMEOUT_MS`.
//!
//! Credentials are [`SecretString`]s: `Debug` prints `[REDACTED]`, and load errors name the
//! field, never its value.
//!
//! # Adding a provider section
//!
//! 1. Write `XxxConfig` (validated, public) and a private `XxxSection` (raw, all fields
//!    optional, `#[serde(deny_unknown_fields)]`) implementing the private `Section` trait.
//! 2. Add `pub xxx: Option<XxxConfig>` to [`ProvidersConfig`] and one line to
//!    [`ProvidersConfig::from_sources`].

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use secrecy::SecretString;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::Provider;
use crate::redact::{sanitize_message, scrub_parser_message};

pub mod alqimah;
pub use self::alqimah::AlQimahConfig;
mod mobily;
pub use self::mobily::{MIN_WEBHOOK_PASSWORD_CHARS, MobilyCallbacks, MobilyConfig};

/// Upper bound for any configured timeout or wait, in milliseconds (5 minutes).
pub const MAX_TIMEOUT_MS: u64 = 300_000;

/// Upper bound for `max_response_bytes` (16 MiB).
pub const MAX_RESPONSE_BYTES_LIMIT: usize = 16 * 1024 * 1024;

/// Why configuration could not be loaded. Never contains a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read configuration file {path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// The file is not valid TOML, or a section has the wrong shape.
    #[error("invalid configuration at line {line}: {message}")]
    Syntax {
        /// 1-based line of the error, 0 when unknown.
        line: usize,
        /// The parser's message (sanitized).
        message: String,
    },
    /// A required field is missing from a provider section.
    #[error("[{provider}] {field} is required (or set HANDOVER_{}_{})", provider.name().to_uppercase(), field.to_uppercase())]
    Missing {
        /// The provider section.
        provider: Provider,
        /// The field name.
        field: &'static str,
    },
    /// A field has a value we cannot use.
    #[error("[{provider}] {field} is invalid: {reason}")]
    Invalid {
        /// The provider section.
        provider: Provider,
        /// The field name.
        field: &'static str,
        /// Why (never the value when the field is a secret).
        reason: String,
    },
}

/// Settings of the shared HTTP layer, one set per provider. All optional in files and the
/// environment; [`Default`] gives the values documented on each field.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct HttpSettings {
    /// Total time for one request, connect to last body byte. Default 10 000.
    pub timeout_ms: u64,
    /// Time to establish the connection. Default 3 000.
    pub connect_timeout_ms: u64,
    /// Sustained requests per second allowed by our client-side limiter. Default 10.
    pub rate_per_second: u32,
    /// Requests that may be sent in a burst. Default 10.
    pub rate_burst: u32,
    /// Longest a call waits for the client-side limiter before failing as rate limited.
    /// Default 5 000.
    pub max_rate_wait_ms: u64,
    /// Largest response body accepted. Default 1 MiB.
    pub max_response_bytes: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            timeout_ms: 10_000,
            connect_timeout_ms: 3_000,
            rate_per_second: 10,
            rate_burst: 10,
            max_rate_wait_ms: 5_000,
            max_response_bytes: 1024 * 1024,
        }
    }
}

impl HttpSettings {
    fn apply_env(&mut self, env: &Env<'_>) -> Result<(), ConfigError> {
        if let Some(v) = env.parse("timeout_ms")? {
            self.timeout_ms = v;
        }
        if let Some(v) = env.parse("connect_timeout_ms")? {
            self.connect_timeout_ms = v;
        }
        if let Some(v) = env.parse("rate_per_second")? {
            self.rate_per_second = v;
        }
        if let Some(v) = env.parse("rate_burst")? {
            self.rate_burst = v;
        }
        if let Some(v) = env.parse("max_rate_wait_ms")? {
            self.max_rate_wait_ms = v;
        }
        if let Some(v) = env.parse("max_response_bytes")? {
            self.max_response_bytes = v;
        }
        Ok(())
    }

    /// Checks every field is within its bounds.
    pub fn validate(&self, provider: Provider) -> Result<(), ConfigError> {
        let invalid = |field, reason: &str| ConfigError::Invalid {
            provider,
            field,
            reason: reason.to_owned(),
        };
        for (field, value) in [
            ("timeout_ms", self.timeout_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("max_rate_wait_ms", self.max_rate_wait_ms),
        ] {
            if value == 0 || value > MAX_TIMEOUT_MS {
                return Err(invalid(field, "must be between 1 and 300000 ms"));
            }
        }
        if self.rate_per_second == 0 {
            return Err(invalid("rate_per_second", "must be at least 1"));
        }
        if self.rate_burst == 0 {
            return Err(invalid("rate_burst", "must be at least 1"));
        }
        if self.max_response_bytes == 0 || self.max_response_bytes > MAX_RESPONSE_BYTES_LIMIT {
            return Err(invalid(
                "max_response_bytes",
                "must be between 1 byte and 16 MiB",
            ));
        }
        Ok(())
    }
}

/// Mobitel Charging as a Service (`[mobitel]`, `HANDOVER_MOBITEL_*`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MobitelConfig {
    /// Scheme, host and optional path prefix, e.g. `https://apphub.mobitel.lk`.
    pub base_url: Url,
    /// The application's client id, sent as `x-ibm-client-id`. Secret: it authorizes charging.
    pub client_id: SecretString,
    /// HTTP layer settings.
    pub http: HttpSettings,
}

impl MobitelConfig {
    /// A configuration with default HTTP settings.
    pub fn new(base_url: Url, client_id: SecretString) -> Self {
        Self {
            base_url,
            client_id,
            http: HttpSettings::default(),
        }
    }
}

/// Service operations v3 (`[service_ops]`, `HANDOVER_SERVICE_OPS_*`).
///
/// ```toml
/// [service_ops]
/// base_url = "https://api.provider.example"
/// api_token = "..."            # or HANDOVER_SERVICE_OPS_API_TOKEN
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServiceOpsConfig {
    /// Scheme, host and optional path prefix; the client appends `/v3/services/...`.
    pub base_url: Url,
    /// The token sent as `Authorization: Bearer <api_token>`. Secret.
    pub api_token: SecretString,
    /// HTTP layer settings.
    pub http: HttpSettings,
}

impl ServiceOpsConfig {
    /// A configuration with default HTTP settings.
    pub fn new(base_url: Url, api_token: SecretString) -> Self {
        Self {
            base_url,
            api_token,
            http: HttpSettings::default(),
        }
    }
}

/// Reach Mobile Platform plugAPI (`[reach]`, `HANDOVER_REACH_*`).
///
/// `http.rate_per_second` and `http.rate_burst` are the client-side limit **per API key**
/// (section 2.4 of the guide: "The platform enforces rate limits per API key"): clients
/// built with the same API key through one [`crate::reach::ApiKeyLimiters`] share one
/// limiter, and the first configuration seen for a key sets its quota.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReachConfig {
    /// Scheme, host and optional path prefix; the API paths (`/apisvc/v0/...`) are appended.
    pub base_url: Url,
    /// The JWT issued at onboarding (guide 1.1). Sent inside the Basic `Authorization`
    /// header as `base64("clientapi|" + jwt)`.
    pub jwt: SecretString,
    /// The API key issued at onboarding, sent as `x-api-key`.
    pub api_key: SecretString,
    /// HTTP layer settings, including the per-API-key rate limit.
    pub http: HttpSettings,
}

impl ReachConfig {
    /// A configuration with default HTTP settings.
    pub fn new(base_url: Url, jwt: SecretString, api_key: SecretString) -> Self {
        Self {
            base_url,
            jwt,
            api_key,
            http: HttpSettings::default(),
        }
    }
}

// Colleagues: `ReachConfig`, `AlQimahConfig`, `MobilyConfig` and `ServiceOpsConfig` go here,
// each with its raw `...Section` below.

/// Every provider's configuration; a provider without a section is simply not configured.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ProvidersConfig {
    /// Mobitel Charging as a Service.
    pub mobitel: Option<MobitelConfig>,
    /// Reach Mobile Platform plugAPI.
    pub reach: Option<ReachConfig>,
    /// Al-Qimah payment platform REST API.
    pub alqimah: Option<AlQimahConfig>,
    /// Mobily developer portal (eSIM checkout).
    pub mobily: Option<MobilyConfig>,
    /// Service operations v3.
    pub service_ops: Option<ServiceOpsConfig>,
}

impl ProvidersConfig {
    /// Loads from the process environment only.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_sources(None, &|name| std::env::var(name).ok())
    }

    /// Loads from a TOML file, then applies the process environment on top.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_sources(Some(&text), &|name| std::env::var(name).ok())
    }

    /// Loads from TOML text only (no environment).
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        Self::from_sources(Some(text), &|_| None)
    }

    /// Loads from optional TOML text and an environment lookup (`name -> value`); the
    /// environment wins field by field. Tests pass a map lookup instead of touching the
    /// process environment.
    pub fn from_sources(
        toml_text: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let table: toml::Table = match toml_text {
            Some(text) => toml::from_str(text).map_err(|e| syntax_error(text, &e))?,
            None => toml::Table::new(),
        };
        if let Some(unknown) = table
            .keys()
            .find(|k| !Provider::ALL.iter().any(|p| p.name() == k.as_str()))
        {
            return Err(ConfigError::Syntax {
                line: 0,
                message: format!("unknown section [{}]", sanitize_message(unknown)),
            });
        }
        Ok(Self {
            mobitel: load_section::<MobitelSection>(&table, env)?,
            reach: load_section::<ReachSection>(&table, env)?,
            alqimah: load_section::<alqimah::AlQimahSection>(&table, env)?,
            service_ops: load_section::<ServiceOpsSection>(&table, env)?,
            mobily: load_section::<mobily::MobilySection>(&table, env)?,
        })
    }
}

/// A provider's raw configuration section: every field optional so the file and the
/// environment can each supply part of it.
trait Section: DeserializeOwned + Default {
    const PROVIDER: Provider;
    type Config;
    /// Overrides fields from the environment; returns whether any variable was set.
    fn apply_env(&mut self, env: &Env<'_>) -> Result<bool, ConfigError>;
    /// Validates and builds the typed configuration.
    fn build(self) -> Result<Self::Config, ConfigError>;
}

fn load_section<S: Section>(
    table: &toml::Table,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<S::Config>, ConfigError> {
    let from_file = table.get(S::PROVIDER.name());
    let mut raw: S = match from_file {
        // The span of a nested value is lost by `try_into`; the error names the section.
        Some(value) => {
            value
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    line: 0,
                    message: format!(
                        "[{}]: {}",
                        S::PROVIDER.name(),
                        scrub_parser_message(e.message())
                    ),
                })?
        }
        None => S::default(),
    };
    let env = Env {
        provider: S::PROVIDER,
        lookup,
    };
    let from_env = raw.apply_env(&env)?;
    if from_file.is_none() && !from_env {
        return Ok(None);
    }
    raw.build().map(Some)
}

fn syntax_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let line = e
        .span()
        .map(|span| text[..span.start.min(text.len())].lines().count().max(1))
        .unwrap_or(0);
    // The parser's message alone: its Display quotes the offending line, which may hold a
    // secret.
    ConfigError::Syntax {
        line,
        message: scrub_parser_message(e.message()),
    }
}

/// Reads `HANDOVER_<PROVIDER>_<FIELD>` variables through a lookup function.
struct Env<'a> {
    provider: Provider,
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Env<'_> {
    fn var_name(&self, field: &str) -> String {
        format!(
            "HANDOVER_{}_{}",
            self.provider.name().to_uppercase(),
            field.to_uppercase()
        )
    }

    fn string(&self, field: &str) -> Option<String> {
        (self.lookup)(&self.var_name(field)).filter(|v| !v.is_empty())
    }

    fn secret(&self, field: &str) -> Option<SecretString> {
        self.string(field).map(SecretString::from)
    }

    fn parse<T: FromStr>(&self, field: &'static str) -> Result<Option<T>, ConfigError>
    where
        T::Err: fmt::Display,
    {
        self.string(field)
            .map(|v| {
                v.trim().parse().map_err(|e: T::Err| ConfigError::Invalid {
                    provider: self.provider,
                    field,
                    reason: format!("{} ({e})", self.var_name(field)),
                })
            })
            .transpose()
    }

    /// Whether any of the given fields is set, used to decide that a section exists.
    fn any(&self, fields: &[&str]) -> bool {
        fields.iter().any(|f| self.string(f).is_some())
    }
}

const HTTP_FIELDS: [&str; 6] = [
    "timeout_ms",
    "connect_timeout_ms",
    "rate_per_second",
    "rate_burst",
    "max_rate_wait_ms",
    "max_response_bytes",
];

fn parse_base_url(provider: Provider, raw: Option<String>) -> Result<Url, ConfigError> {
    let raw = raw.ok_or(ConfigError::Missing {
        provider,
        field: "base_url",
    })?;
    let url = Url::parse(raw.trim()).map_err(|e| ConfigError::Invalid {
        provider,
        field: "base_url",
        reason: e.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError::Invalid {
            provider,
            field: "base_url",
            reason: "must be an http(s) URL with a host".to_owned(),
        });
    }
    if url.query().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::Invalid {
            provider,
            field: "base_url",
            reason: "must not carry a query or credentials; use the credential fields".to_owned(),
        });
    }
    Ok(url)
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MobitelSection {
    base_url: Option<String>,
    client_id: Option<SecretString>,
    #[serde(default)]
    http: HttpSettings,
}

impl Section for MobitelSection {
    const PROVIDER: Provider = Provider::Mobitel;
    type Config = MobitelConfig;

    fn apply_env(&mut self, env: &Env<'_>) -> Result<bool, ConfigError> {
        let any = env.any(&["base_url", "client_id"]) || env.any(&HTTP_FIELDS);
        if let Some(v) = env.string("base_url") {
            self.base_url = Some(v);
        }
        if let Some(v) = env.secret("client_id") {
            self.client_id = Some(v);
        }
        self.http.apply_env(env)?;
        Ok(any)
    }

    fn build(self) -> Result<MobitelConfig, ConfigError> {
        let base_url = parse_base_url(Self::PROVIDER, self.base_url)?;
        let client_id = self.client_id.ok_or(ConfigError::Missing {
            provider: Self::PROVIDER,
            field: "client_id",
        })?;
        self.http.validate(Self::PROVIDER)?;
        Ok(MobitelConfig {
            base_url,
            client_id,
            http: self.http,
        })
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceOpsSection {
    base_url: Option<String>,
    api_token: Option<SecretString>,
    #[serde(default)]
    http: HttpSettings,
}

impl Section for ServiceOpsSection {
    const PROVIDER: Provider = Provider::ServiceOps;
    type Config = ServiceOpsConfig;

    fn apply_env(&mut self, env: &Env<'_>) -> Result<bool, ConfigError> {
        let any = env.any(&["base_url", "api_token"]) || env.any(&HTTP_FIELDS);
        if let Some(v) = env.string("base_url") {
            self.base_url = Some(v);
        }
        if let Some(v) = env.secret("api_token") {
            self.api_token = Some(v);
        }
        self.http.apply_env(env)?;
        Ok(any)
    }

    fn build(self) -> Result<ServiceOpsConfig, ConfigError> {
        let base_url = parse_base_url(Self::PROVIDER, self.base_url)?;
        let api_token = self.api_token.ok_or(ConfigError::Missing {
            provider: Self::PROVIDER,
            field: "api_token",
        })?;
        self.http.validate(Self::PROVIDER)?;
        Ok(ServiceOpsConfig {
            base_url,
            api_token,
            http: self.http,
        })
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReachSection {
    base_url: Option<String>,
    jwt: Option<SecretString>,
    api_key: Option<SecretString>,
    #[serde(default)]
    http: HttpSettings,
}

/// Longest JWT accepted, in bytes (a header value; real tokens are well under 2 KiB).
const MAX_REACH_JWT_BYTES: usize = 8 * 1024;
/// Longest API key accepted, in bytes.
const MAX_REACH_API_KEY_BYTES: usize = 512;

/// A credential must fit in a header: non-empty, visible ASCII, no spaces, bounded. The
/// reason never quotes the value.
fn check_header_secret(
    provider: Provider,
    field: &'static str,
    secret: &SecretString,
    max_bytes: usize,
) -> Result<(), ConfigError> {
    use secrecy::ExposeSecret;
    let value = secret.expose_secret();
    if value.is_empty() || value.len() > max_bytes || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::Invalid {
            provider,
            field,
            reason: format!("must be 1 to {max_bytes} visible ASCII characters without spaces"),
        });
    }
    Ok(())
}

impl Section for ReachSection {
    const PROVIDER: Provider = Provider::Reach;
    type Config = ReachConfig;

    fn apply_env(&mut self, env: &Env<'_>) -> Result<bool, ConfigError> {
        let any = env.any(&["base_url", "jwt", "api_key"]) || env.any(&HTTP_FIELDS);
        if let Some(v) = env.string("base_url") {
            self.base_url = Some(v);
        }
        if let Some(v) = env.secret("jwt") {
            self.jwt = Some(v);
        }
        if let Some(v) = env.secret("api_key") {
            self.api_key = Some(v);
        }
        self.http.apply_env(env)?;
        Ok(any)
    }

    fn build(self) -> Result<ReachConfig, ConfigError> {
        let base_url = parse_base_url(Self::PROVIDER, self.base_url)?;
        let jwt = self.jwt.ok_or(ConfigError::Missing {
            provider: Self::PROVIDER,
            field: "jwt",
        })?;
        check_header_secret(Self::PROVIDER, "jwt", &jwt, MAX_REACH_JWT_BYTES)?;
        let api_key = self.api_key.ok_or(ConfigError::Missing {
            provider: Self::PROVIDER,
            field: "api_key",
        })?;
        check_header_secret(Self::PROVIDER, "api_key", &api_key, MAX_REACH_API_KEY_BYTES)?;
        self.http.validate(Self::PROVIDER)?;
        Ok(ReachConfig {
            base_url,
            jwt,
            api_key,
            http: self.http,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use secrecy::ExposeSecret;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const SECRET: &str = "s3cr3t-client-id-7f2a";

    #[test]
    fn loads_mobitel_from_the_environment() {
        let cfg = ProvidersConfig::from_sources(
            None,
            &env(&[
                ("HANDOVER_MOBITEL_BASE_URL", "https://apphub.mobitel.lk"),
                ("HANDOVER_MOBITEL_CLIENT_ID", SECRET),
                ("HANDOVER_MOBITEL_TIMEOUT_MS", "2500"),
            ]),
        )
        .unwrap();
        let m = cfg.mobitel.unwrap();
        assert_eq!(m.base_url.as_str(), "https://apphub.mobitel.lk/");
        assert_eq!(m.client_id.expose_secret(), SECRET);
        assert_eq!(m.http.timeout_ms, 2500);
        assert_eq!(m.http.rate_burst, HttpSettings::default().rate_burst);
    }

    #[test]
    fn loads_mobitel_from_toml_and_env_overrides_fields() {
        let text = format!(
            "[mobitel]\nbase_url = \"https://file.example\"\nclient_id = \"{SECRET}\"\n\
             [mobitel.http]\nrate_per_second = 3\n"
        );
        let cfg = ProvidersConfig::from_sources(
            Some(&text),
            &env(&[("HANDOVER_MOBITEL_BASE_URL", "http://127.0.0.1:9")]),
        )
        .unwrap();
        let m = cfg.mobitel.unwrap();
        assert_eq!(m.base_url.as_str(), "http://127.0.0.1:9/");
        assert_eq!(m.client_id.expose_secret(), SECRET);
        assert_eq!(m.http.rate_per_second, 3);
    }

    #[test]
    fn absent_section_means_not_configured() {
        let cfg = ProvidersConfig::from_sources(None, &env(&[])).unwrap();
        assert!(cfg.mobitel.is_none());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let cfg = ProvidersConfig::from_sources(
            None,
            &env(&[
                ("HANDOVER_MOBITEL_BASE_URL", "https://apphub.mobitel.lk"),
                ("HANDOVER_MOBITEL_CLIENT_ID", SECRET),
            ]),
        )
        .unwrap();
        let shown = format!("{cfg:?} {cfg:#?}");
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
    }

    #[test]
    fn errors_name_the_field_never_the_secret() {
        let err =
            ProvidersConfig::from_sources(None, &env(&[("HANDOVER_MOBITEL_CLIENT_ID", SECRET)]))
                .unwrap_err();
        assert_eq!(
            err,
            ConfigError::Missing {
                provider: Provider::Mobitel,
                field: "base_url"
            }
        );
        assert!(err.to_string().contains("HANDOVER_MOBITEL_BASE_URL"));

        // A syntax error on the line holding the secret must not quote the line.
        let text = format!("[mobitel]\nclient_id = \"{SECRET}\" oops\n");
        let err = ProvidersConfig::from_toml_str(&text).unwrap_err();
        assert!(
            matches!(err, ConfigError::Syntax { line: 2, .. }),
            "{err:?}"
        );
        assert!(!err.to_string().contains(SECRET), "{err}");

        // A wrong type for the secret must not echo it either.
        let err = ProvidersConfig::from_toml_str(
            "[mobitel]\nbase_url = \"http://x\"\nclient_id = 712755777\n",
        )
        .unwrap_err();
        assert!(!err.to_string().contains("712755777"), "{err}");
    }

    #[test]
    fn rejects_unknown_fields_sections_and_bad_values() {
        let err = ProvidersConfig::from_toml_str(
            "[mobitel]\nbase_url = \"http://x\"\nclient_id = \"a\"\ntimeout = 3\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("timeout"), "{err}");

        let err = ProvidersConfig::from_toml_str("[mobitell]\n").unwrap_err();
        assert!(err.to_string().contains("mobitell"), "{err}");

        let err = ProvidersConfig::from_sources(
            None,
            &env(&[
                ("HANDOVER_MOBITEL_BASE_URL", "https://user:pw@host"),
                ("HANDOVER_MOBITEL_CLIENT_ID", "a"),
            ]),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                field: "base_url",
                ..
            }
        ));

        let err = ProvidersConfig::from_sources(
            None,
            &env(&[
                ("HANDOVER_MOBITEL_BASE_URL", "https://host"),
                ("HANDOVER_MOBITEL_CLIENT_ID", "a"),
                ("HANDOVER_MOBITEL_TIMEOUT_MS", "0"),
            ]),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                field: "timeout_ms",
                ..
            }
        ));

        let err =
            ProvidersConfig::from_sources(None, &env(&[("HANDOVER_MOBITEL_RATE_BURST", "many")]))
                .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                field: "rate_burst",
                ..
            }
        ));
    }

    const REACH_JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJicmFuZCJ9.c2lnbmF0dXJl";
    const REACH_KEY: &str = "reach-api-key-9c41";

    #[test]
    fn loads_reach_from_toml_and_the_environment() {
        let text = format!(
            "[reach]\nbase_url = \"https://api.reach.example\"\njwt = \"{REACH_JWT}\"\n\
             [reach.http]\nrate_per_second = 4\n"
        );
        let cfg = ProvidersConfig::from_sources(
            Some(&text),
            &env(&[("HANDOVER_REACH_API_KEY", REACH_KEY)]),
        )
        .unwrap();
        let r = cfg.reach.unwrap();
        assert_eq!(r.base_url.as_str(), "https://api.reach.example/");
        assert_eq!(r.jwt.expose_secret(), REACH_JWT);
        assert_eq!(r.api_key.expose_secret(), REACH_KEY);
        assert_eq!(r.http.rate_per_second, 4);
        assert!(cfg.mobitel.is_none());
    }

    #[test]
    fn reach_debug_and_errors_never_show_the_credentials() {
        let cfg = ProvidersConfig::from_sources(
            None,
            &env(&[
                ("HANDOVER_REACH_BASE_URL", "https://api.reach.example"),
                ("HANDOVER_REACH_JWT", REACH_JWT),
                ("HANDOVER_REACH_API_KEY", REACH_KEY),
            ]),
        )
        .unwrap();
        let shown = format!("{cfg:?} {cfg:#?}");
        assert!(!shown.contains(REACH_JWT), "{shown}");
        assert!(!shown.contains(REACH_KEY), "{shown}");

        let err = ProvidersConfig::from_sources(
            None,
            &env(&[
                ("HANDOVER_REACH_BASE_URL", "https://api.reach.example"),
                ("HANDOVER_REACH_JWT", REACH_JWT),
            ]),
        )
        .unwrap_err();
        assert_eq!(
            err,
            ConfigError::Missing {
                provider: Provider::Reach,
                field: "api_key"
            }
        );
        let spaced = "has a space-9c41";
        let err = ProvidersConfig::from_sources(
            None,
            &env(&[
                ("HANDOVER_REACH_BASE_URL", "https://api.reach.example"),
                ("HANDOVER_REACH_JWT", REACH_JWT),
                ("HANDOVER_REACH_API_KEY", spaced),
            ]),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    field: "api_key",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!err.to_string().contains(spaced), "{err}");
    }
}
