//! The `[alqimah]` section: Al-Qimah payment platform REST API.
//!
//! ```toml
//! [alqimah]
//! base_url = "https://softibs.com"
//! account_number = "..."                  # HANDOVER_ALQIMAH_ACCOUNT_NUMBER
//! user_name = "..."                       # HANDOVER_ALQIMAH_USER_NAME
//! password = "..."                        # HANDOVER_ALQIMAH_PASSWORD (secret)
//! api_token = "..."                       # HANDOVER_ALQIMAH_API_TOKEN (secret)
//! webhook_url = "https://handover.example/ingress/alqimah"   # optional
//! token_expires_utc_offset_minutes = 180  # optional, default 180 (UTC+03:00, Asia/Aden)
//! token_refresh_skew_ms = 60000           # optional, default 60 000
//!
//! [alqimah.http]                          # optional, see `HttpSettings`
//! timeout_ms = 10000
//! ```
//!
//! Kept in its own file so the shared `config.rs` only gains a few lines.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::{ConfigError, Env, HTTP_FIELDS, HttpSettings, Section, parse_base_url};
use crate::error::Provider;

/// Default `token_expires_utc_offset_minutes`: Al-Qimah serves Yemen (Asia/Aden, UTC+03:00,
/// no daylight saving time) and its `token_expires` carries no zone.
pub const DEFAULT_TOKEN_EXPIRES_UTC_OFFSET_MINUTES: i32 = 180;

/// Default `token_refresh_skew_ms`: renew the access token one minute before `token_expires`
/// (capped at half the token's lifetime by the token cache).
pub const DEFAULT_TOKEN_REFRESH_SKEW_MS: u64 = 60_000;

/// Largest `token_refresh_skew_ms` accepted (one hour).
pub const MAX_TOKEN_REFRESH_SKEW_MS: u64 = 3_600_000;

/// Longest account number or user name accepted, in characters.
pub const MAX_IDENTITY_CHARS: usize = 128;

/// Al-Qimah payment platform REST API (`[alqimah]`, `HANDOVER_ALQIMAH_*`).
///
/// `Debug` shows the account number and user name (identifiers, not credentials) and
/// `[REDACTED]` for the password and the API token.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AlQimahConfig {
    /// Scheme, host and optional path prefix, e.g. `https://softibs.com`; the client adds
    /// `/rest-api/login` and `/rest-api/`.
    pub base_url: Url,
    /// "AccountNumber: your account number on our platform". Sent in the login body and part
    /// of the login token.
    pub account_number: String,
    /// "UserName: your username on our platform".
    pub user_name: String,
    /// "Password". Secret; only its md5 enters the login token.
    pub password: SecretString,
    /// "API Token". Secret; part of the login token.
    pub api_token: SecretString,
    /// Our webhook endpoint, sent as `WebHookURL` with every payment; `None` sends no
    /// `WebHookURL`/`WebHookCode` and the journey relies on status queries alone. An http(s)
    /// URL without credentials, query or fragment (Al-Qimah appends its own query string).
    pub webhook_url: Option<Url>,
    /// The UTC offset, in minutes, of the naive `token_expires` timestamps ("2024-08-05
    /// 19:31:45"). Default [`DEFAULT_TOKEN_EXPIRES_UTC_OFFSET_MINUTES`].
    pub token_expires_utc_offset_minutes: i32,
    /// Renew the access token this long before `token_expires`. Default
    /// [`DEFAULT_TOKEN_REFRESH_SKEW_MS`].
    pub token_refresh_skew_ms: u64,
    /// HTTP layer settings.
    pub http: HttpSettings,
}

impl AlQimahConfig {
    /// A configuration with the default offset, skew and HTTP settings, and no webhook URL.
    pub fn new(
        base_url: Url,
        account_number: impl Into<String>,
        user_name: impl Into<String>,
        password: SecretString,
        api_token: SecretString,
    ) -> Self {
        Self {
            base_url,
            account_number: account_number.into(),
            user_name: user_name.into(),
            password,
            api_token,
            webhook_url: None,
            token_expires_utc_offset_minutes: DEFAULT_TOKEN_EXPIRES_UTC_OFFSET_MINUTES,
            token_refresh_skew_ms: DEFAULT_TOKEN_REFRESH_SKEW_MS,
            http: HttpSettings::default(),
        }
    }

    /// The same configuration sending `webhook_url` as `WebHookURL`.
    pub fn with_webhook_url(mut self, webhook_url: Url) -> Self {
        self.webhook_url = Some(webhook_url);
        self
    }

    /// Checks every field is within its bounds (the client calls it too, since the fields
    /// are public).
    pub fn validate(&self) -> Result<(), ConfigError> {
        const P: Provider = Provider::AlQimah;
        let invalid = |field, reason: &str| ConfigError::Invalid {
            provider: P,
            field,
            reason: reason.to_owned(),
        };
        for (field, value) in [
            ("account_number", self.account_number.as_str()),
            ("user_name", self.user_name.as_str()),
        ] {
            if value.trim().is_empty()
                || value.chars().count() > MAX_IDENTITY_CHARS
                || value.chars().any(char::is_control)
            {
                return Err(invalid(
                    field,
                    "must be 1 to 128 characters without control characters",
                ));
            }
        }
        for (field, value) in [("password", &self.password), ("api_token", &self.api_token)] {
            if value.expose_secret().is_empty() {
                return Err(ConfigError::Missing { provider: P, field });
            }
        }
        if let Some(url) = &self.webhook_url {
            validate_webhook_url(url).map_err(|reason| invalid("webhook_url", reason))?;
        }
        if !(-720..=840).contains(&self.token_expires_utc_offset_minutes) {
            return Err(invalid(
                "token_expires_utc_offset_minutes",
                "must be between -720 and 840",
            ));
        }
        if self.token_refresh_skew_ms > MAX_TOKEN_REFRESH_SKEW_MS {
            return Err(invalid(
                "token_refresh_skew_ms",
                "must be at most 3600000 ms",
            ));
        }
        self.http.validate(P)
    }
}

fn validate_webhook_url(url: &Url) -> Result<(), &'static str> {
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an http(s) URL with a host");
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not carry a query or fragment: Al-Qimah appends its own query string");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials: the WebHookCode authenticates the webhook");
    }
    Ok(())
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AlQimahSection {
    base_url: Option<String>,
    account_number: Option<String>,
    user_name: Option<String>,
    password: Option<SecretString>,
    api_token: Option<SecretString>,
    webhook_url: Option<String>,
    token_expires_utc_offset_minutes: Option<i32>,
    token_refresh_skew_ms: Option<u64>,
    #[serde(default)]
    http: HttpSettings,
}

const FIELDS: [&str; 8] = [
    "base_url",
    "account_number",
    "user_name",
    "password",
    "api_token",
    "webhook_url",
    "token_expires_utc_offset_minutes",
    "token_refresh_skew_ms",
];

impl Section for AlQimahSection {
    const PROVIDER: Provider = Provider::AlQimah;
    type Config = AlQimahConfig;

    fn apply_env(&mut self, env: &Env<'_>) -> Result<bool, ConfigError> {
        let any = env.any(&FIELDS) || env.any(&HTTP_FIELDS);
        for (field, slot) in [
            ("base_url", &mut self.base_url),
            ("account_number", &mut self.account_number),
            ("user_name", &mut self.user_name),
            ("webhook_url", &mut self.webhook_url),
        ] {
            if let Some(v) = env.string(field) {
                *slot = Some(v);
            }
        }
        if let Some(v) = env.secret("password") {
            self.password = Some(v);
        }
        if let Some(v) = env.secret("api_token") {
            self.api_token = Some(v);
        }
        if let Some(v) = env.parse("token_expires_utc_offset_minutes")? {
            self.token_expires_utc_offset_minutes = Some(v);
        }
        if let Some(v) = env.parse("token_refresh_skew_ms")? {
            self.token_refresh_skew_ms = Some(v);
        }
        self.http.apply_env(env)?;
        Ok(any)
    }

    fn build(self) -> Result<AlQimahConfig, ConfigError> {
        const P: Provider = Provider::AlQimah;
        let base_url = parse_base_url(P, self.base_url)?;
        let missing = |field| ConfigError::Missing { provider: P, field };
        let webhook_url = self
            .webhook_url
            .map(|raw| {
                Url::parse(raw.trim()).map_err(|e| ConfigError::Invalid {
                    provider: P,
                    field: "webhook_url",
                    reason: e.to_string(),
                })
            })
            .transpose()?;
        let config = AlQimahConfig {
            base_url,
            account_number: self
                .account_number
                .ok_or_else(|| missing("account_number"))?,
            user_name: self.user_name.ok_or_else(|| missing("user_name"))?,
            password: self.password.ok_or_else(|| missing("password"))?,
            api_token: self.api_token.ok_or_else(|| missing("api_token"))?,
            webhook_url,
            token_expires_utc_offset_minutes: self
                .token_expires_utc_offset_minutes
                .unwrap_or(DEFAULT_TOKEN_EXPIRES_UTC_OFFSET_MINUTES),
            token_refresh_skew_ms: self
                .token_refresh_skew_ms
                .unwrap_or(DEFAULT_TOKEN_REFRESH_SKEW_MS),
            http: self.http,
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::ProvidersConfig;

    const PASSWORD: &str = "pw-9f1e-very-secret";
    const API_TOKEN: &str = "apitok-5c2d-very-secret";

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn full_env<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut pairs = vec![
            ("HANDOVER_ALQIMAH_BASE_URL", "https://softibs.com"),
            ("HANDOVER_ALQIMAH_ACCOUNT_NUMBER", "1000001"),
            ("HANDOVER_ALQIMAH_USER_NAME", "agent"),
            ("HANDOVER_ALQIMAH_PASSWORD", PASSWORD),
            ("HANDOVER_ALQIMAH_API_TOKEN", API_TOKEN),
        ];
        pairs.extend_from_slice(extra);
        pairs
    }

    #[test]
    fn loads_from_the_environment_with_defaults() {
        let cfg = ProvidersConfig::from_sources(None, &env(&full_env(&[])))
            .unwrap()
            .alqimah
            .unwrap();
        assert_eq!(cfg.base_url.as_str(), "https://softibs.com/");
        assert_eq!(cfg.account_number, "1000001");
        assert_eq!(cfg.user_name, "agent");
        assert_eq!(cfg.password.expose_secret(), PASSWORD);
        assert_eq!(cfg.api_token.expose_secret(), API_TOKEN);
        assert_eq!(cfg.webhook_url, None);
        assert_eq!(cfg.token_expires_utc_offset_minutes, 180);
        assert_eq!(cfg.token_refresh_skew_ms, 60_000);
    }

    #[test]
    fn loads_from_toml_and_env_overrides_fields() {
        let text = format!(
            "[alqimah]\nbase_url = \"https://file.example\"\naccount_number = \"42\"\n\
             user_name = \"u\"\npassword = \"{PASSWORD}\"\napi_token = \"{API_TOKEN}\"\n\
             webhook_url = \"https://hooks.example/alqimah\"\n\
             token_expires_utc_offset_minutes = 0\n[alqimah.http]\ntimeout_ms = 2500\n"
        );
        let cfg = ProvidersConfig::from_sources(
            Some(&text),
            &env(&[("HANDOVER_ALQIMAH_TOKEN_REFRESH_SKEW_MS", "5000")]),
        )
        .unwrap()
        .alqimah
        .unwrap();
        assert_eq!(
            cfg.webhook_url.as_ref().map(Url::as_str),
            Some("https://hooks.example/alqimah")
        );
        assert_eq!(cfg.token_expires_utc_offset_minutes, 0);
        assert_eq!(cfg.token_refresh_skew_ms, 5_000);
        assert_eq!(cfg.http.timeout_ms, 2_500);
    }

    #[test]
    fn debug_and_errors_never_show_the_secrets() {
        let cfg = ProvidersConfig::from_sources(None, &env(&full_env(&[]))).unwrap();
        let shown = format!("{cfg:?} {cfg:#?}");
        assert!(!shown.contains(PASSWORD), "{shown}");
        assert!(!shown.contains(API_TOKEN), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");

        let err = ProvidersConfig::from_sources(
            None,
            &env(&[
                ("HANDOVER_ALQIMAH_BASE_URL", "https://softibs.com"),
                ("HANDOVER_ALQIMAH_PASSWORD", PASSWORD),
            ]),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Missing {
                    field: "account_number",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!err.to_string().contains(PASSWORD));
    }

    #[test]
    fn rejects_bad_values() {
        let cases: [(&str, &str, &str); 5] = [
            (
                "HANDOVER_ALQIMAH_WEBHOOK_URL",
                "https://hooks.example/a?x=1",
                "webhook_url",
            ),
            (
                "HANDOVER_ALQIMAH_WEBHOOK_URL",
                "https://user:pw@hooks.example/a",
                "webhook_url",
            ),
            (
                "HANDOVER_ALQIMAH_TOKEN_EXPIRES_UTC_OFFSET_MINUTES",
                "900",
                "token_expires_utc_offset_minutes",
            ),
            (
                "HANDOVER_ALQIMAH_TOKEN_REFRESH_SKEW_MS",
                "4000000",
                "token_refresh_skew_ms",
            ),
            ("HANDOVER_ALQIMAH_USER_NAME", "a\nb", "user_name"),
        ];
        for (var, value, expected) in cases {
            let err =
                ProvidersConfig::from_sources(None, &env(&full_env(&[(var, value)]))).unwrap_err();
            assert!(
                matches!(err, ConfigError::Invalid { field, .. } if field == expected),
                "{var}: {err:?}"
            );
        }
    }

    #[test]
    fn absent_section_means_not_configured() {
        let cfg = ProvidersConfig::from_sources(None, &env(&[])).unwrap();
        assert!(cfg.alqimah.is_none());
    }
}
