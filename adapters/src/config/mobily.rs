//! The `[mobily]` section: Mobily developer-portal APIs (journey J1, the eSIM checkout).
//!
//! ```toml
//! [mobily]
//! base_url = "https://api.mobily.com.sa"           # HANDOVER_MOBILY_BASE_URL
//! apikey = "..."                                    # HANDOVER_MOBILY_APIKEY
//! client_id = "handover-partner"                    # HANDOVER_MOBILY_CLIENT_ID
//! client_secret = "..."                             # HANDOVER_MOBILY_CLIENT_SECRET
//! nafath_webhook_url = "https://handover.example/ingress/mobily/nafath"
//! nafath_webhook_username = "mobily-nafath"         # the Basic-auth pair we issue to Mobily
//! nafath_webhook_password = "..."                   # at least 16 characters
//! payment_return_url = "https://handover.example/ingress/mobily/3ds-return"
//! ```
//!
//! Kept in its own file so the shared `config.rs` only gains the lines that register it.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::{ConfigError, Env, HTTP_FIELDS, HttpSettings, Section, parse_base_url};
use crate::error::Provider;

/// Shortest Basic-auth password we accept for the Nafath webhook: we issue it, so it must be
/// strong enough to authenticate Mobily.
pub const MIN_WEBHOOK_PASSWORD_CHARS: usize = 16;

/// Mobily developer portal (`[mobily]`, `HANDOVER_MOBILY_*`).
///
/// `Debug` shows no secret (`apikey`, `client_secret`, `nafath_webhook_password` are
/// [`SecretString`]s).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MobilyConfig {
    /// Scheme, host and optional path prefix of the API gateway.
    pub base_url: Url,
    /// The `apikey` header value, provided by the Mobily team ("Prerequisites: apikey").
    pub apikey: SecretString,
    /// The client id for the token endpoint (not a secret on its own).
    pub client_id: String,
    /// The client secret for the token endpoint.
    pub client_secret: SecretString,
    /// Our webhook URI, given to Nafath initiate ("Partner system to input the webhook URI").
    pub nafath_webhook_url: Url,
    /// The Basic-auth user name we issue to Mobily for the webhook.
    pub nafath_webhook_username: String,
    /// The Basic-auth password we issue to Mobily for the webhook.
    pub nafath_webhook_password: SecretString,
    /// Where the customer's browser returns after the bank's 3-D Secure page.
    pub payment_return_url: Url,
    /// HTTP layer settings.
    pub http: HttpSettings,
}

/// The parts of [`MobilyConfig`] that are ours rather than Mobily's: the webhook and
/// return URLs and the webhook credentials.
#[derive(Debug, Clone)]
pub struct MobilyCallbacks {
    /// See [`MobilyConfig::nafath_webhook_url`].
    pub nafath_webhook_url: Url,
    /// See [`MobilyConfig::nafath_webhook_username`].
    pub nafath_webhook_username: String,
    /// See [`MobilyConfig::nafath_webhook_password`].
    pub nafath_webhook_password: SecretString,
    /// See [`MobilyConfig::payment_return_url`].
    pub payment_return_url: Url,
}

impl MobilyConfig {
    /// A configuration with default HTTP settings. Fails when a callback field is invalid
    /// (see [`MobilyConfig::validate`]).
    pub fn new(
        base_url: Url,
        apikey: SecretString,
        client_id: impl Into<String>,
        client_secret: SecretString,
        callbacks: MobilyCallbacks,
    ) -> Result<Self, ConfigError> {
        let config = Self {
            base_url,
            apikey,
            client_id: client_id.into(),
            client_secret,
            nafath_webhook_url: callbacks.nafath_webhook_url,
            nafath_webhook_username: callbacks.nafath_webhook_username,
            nafath_webhook_password: callbacks.nafath_webhook_password,
            payment_return_url: callbacks.payment_return_url,
            http: HttpSettings::default(),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the fields the type system does not: client id and webhook user name usable
    /// in Basic auth, the webhook password long enough, URLs http(s) without credentials.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let provider = Provider::Mobily;
        basic_auth_user(&self.client_id, "client_id")?;
        basic_auth_user(&self.nafath_webhook_username, "nafath_webhook_username")?;
        let password = self.nafath_webhook_password.expose_secret();
        if password.chars().count() < MIN_WEBHOOK_PASSWORD_CHARS || password.len() > 128 {
            return Err(ConfigError::Invalid {
                provider,
                field: "nafath_webhook_password",
                reason: format!("must be {MIN_WEBHOOK_PASSWORD_CHARS} to 128 characters"),
            });
        }
        if self.apikey.expose_secret().is_empty() {
            return Err(ConfigError::Missing {
                provider,
                field: "apikey",
            });
        }
        check_callback_url(&self.nafath_webhook_url, "nafath_webhook_url")?;
        check_callback_url(&self.payment_return_url, "payment_return_url")?;
        self.http.validate(provider)
    }
}

fn basic_auth_user(value: &str, field: &'static str) -> Result<(), ConfigError> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value.chars().all(|c| c.is_ascii_graphic() && c != ':');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            provider: Provider::Mobily,
            field,
            reason: "must be 1 to 128 printable ASCII characters without ':'".to_owned(),
        })
    }
}

fn check_callback_url(url: &Url, field: &'static str) -> Result<(), ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        provider: Provider::Mobily,
        field,
        reason: reason.to_owned(),
    };
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid("must be an http(s) URL with a host"));
    }
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err(invalid("must not carry credentials or a fragment"));
    }
    Ok(())
}

fn parse_callback_url(raw: Option<String>, field: &'static str) -> Result<Url, ConfigError> {
    let raw = raw.ok_or(ConfigError::Missing {
        provider: Provider::Mobily,
        field,
    })?;
    let url = Url::parse(raw.trim()).map_err(|e| ConfigError::Invalid {
        provider: Provider::Mobily,
        field,
        reason: e.to_string(),
    })?;
    check_callback_url(&url, field)?;
    Ok(url)
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MobilySection {
    base_url: Option<String>,
    apikey: Option<SecretString>,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    nafath_webhook_url: Option<String>,
    nafath_webhook_username: Option<String>,
    nafath_webhook_password: Option<SecretString>,
    payment_return_url: Option<String>,
    #[serde(default)]
    http: HttpSettings,
}

const FIELDS: [&str; 8] = [
    "base_url",
    "apikey",
    "client_id",
    "client_secret",
    "nafath_webhook_url",
    "nafath_webhook_username",
    "nafath_webhook_password",
    "payment_return_url",
];

impl Section for MobilySection {
    const PROVIDER: Provider = Provider::Mobily;
    type Config = MobilyConfig;

    fn apply_env(&mut self, env: &Env<'_>) -> Result<bool, ConfigError> {
        let any = env.any(&FIELDS) || env.any(&HTTP_FIELDS);
        let plain = |field: &str, slot: &mut Option<String>| {
            if let Some(v) = env.string(field) {
                *slot = Some(v);
            }
        };
        plain("base_url", &mut self.base_url);
        plain("client_id", &mut self.client_id);
        plain("nafath_webhook_url", &mut self.nafath_webhook_url);
        plain("nafath_webhook_username", &mut self.nafath_webhook_username);
        plain("payment_return_url", &mut self.payment_return_url);
        for (field, slot) in [
            ("apikey", &mut self.apikey),
            ("client_secret", &mut self.client_secret),
            ("nafath_webhook_password", &mut self.nafath_webhook_password),
        ] {
            if let Some(v) = env.secret(field) {
                *slot = Some(v);
            }
        }
        self.http.apply_env(env)?;
        Ok(any)
    }

    fn build(self) -> Result<MobilyConfig, ConfigError> {
        let provider = Self::PROVIDER;
        let missing = |field| ConfigError::Missing { provider, field };
        let config = MobilyConfig {
            base_url: parse_base_url(provider, self.base_url)?,
            apikey: self.apikey.ok_or(missing("apikey"))?,
            client_id: self.client_id.ok_or(missing("client_id"))?,
            client_secret: self.client_secret.ok_or(missing("client_secret"))?,
            nafath_webhook_url: parse_callback_url(self.nafath_webhook_url, "nafath_webhook_url")?,
            nafath_webhook_username: self
                .nafath_webhook_username
                .ok_or(missing("nafath_webhook_username"))?,
            nafath_webhook_password: self
                .nafath_webhook_password
                .ok_or(missing("nafath_webhook_password"))?,
            payment_return_url: parse_callback_url(self.payment_return_url, "payment_return_url")?,
            http: self.http,
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::ProvidersConfig;
    use super::*;

    const SECRETS: [&str; 3] = [
        "apikey-5f1e9c2d",
        "client-secret-77ab01",
        "webhook-password-3c9d8e7f",
    ];

    fn env(extra: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let mut map: HashMap<String, String> = [
            ("HANDOVER_MOBILY_BASE_URL", "https://api.mobily.example"),
            ("HANDOVER_MOBILY_APIKEY", SECRETS[0]),
            ("HANDOVER_MOBILY_CLIENT_ID", "handover"),
            ("HANDOVER_MOBILY_CLIENT_SECRET", SECRETS[1]),
            (
                "HANDOVER_MOBILY_NAFATH_WEBHOOK_URL",
                "https://handover.example/ingress/mobily/nafath",
            ),
            ("HANDOVER_MOBILY_NAFATH_WEBHOOK_USERNAME", "mobily"),
            ("HANDOVER_MOBILY_NAFATH_WEBHOOK_PASSWORD", SECRETS[2]),
            (
                "HANDOVER_MOBILY_PAYMENT_RETURN_URL",
                "https://handover.example/ingress/mobily/3ds",
            ),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        for (k, v) in extra {
            map.insert((*k).to_owned(), (*v).to_owned());
        }
        move |name| map.get(name).cloned()
    }

    #[test]
    fn loads_from_the_environment_and_hides_secrets() {
        let cfg =
            ProvidersConfig::from_sources(None, &env(&[("HANDOVER_MOBILY_TIMEOUT_MS", "4000")]))
                .unwrap();
        let m = cfg.mobily.clone().unwrap();
        assert_eq!(m.client_id, "handover");
        assert_eq!(m.client_secret.expose_secret(), SECRETS[1]);
        assert_eq!(m.http.timeout_ms, 4000);
        let shown = format!("{cfg:?} {m:#?}");
        for secret in SECRETS {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn loads_from_toml() {
        let text = format!(
            "[mobily]\nbase_url = \"https://gw.example/prefix\"\napikey = \"{}\"\n\
             client_id = \"c\"\nclient_secret = \"{}\"\n\
             nafath_webhook_url = \"https://h.example/nafath?tenant=1\"\n\
             nafath_webhook_username = \"u\"\nnafath_webhook_password = \"{}\"\n\
             payment_return_url = \"https://h.example/3ds\"\n[mobily.http]\nrate_burst = 3\n",
            SECRETS[0], SECRETS[1], SECRETS[2]
        );
        let m = ProvidersConfig::from_toml_str(&text)
            .unwrap()
            .mobily
            .unwrap();
        assert_eq!(m.base_url.as_str(), "https://gw.example/prefix");
        assert_eq!(m.nafath_webhook_url.query(), Some("tenant=1"));
        assert_eq!(m.http.rate_burst, 3);
    }

    #[test]
    fn rejects_weak_or_missing_callback_settings() {
        let err = ProvidersConfig::from_sources(
            None,
            &env(&[("HANDOVER_MOBILY_NAFATH_WEBHOOK_PASSWORD", "short")]),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    field: "nafath_webhook_password",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!err.to_string().contains("short"), "{err}");

        let err = ProvidersConfig::from_sources(
            None,
            &env(&[("HANDOVER_MOBILY_NAFATH_WEBHOOK_USERNAME", "a:b")]),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                field: "nafath_webhook_username",
                ..
            }
        ));

        let err = ProvidersConfig::from_sources(
            None,
            &env(&[("HANDOVER_MOBILY_PAYMENT_RETURN_URL", "ftp://x.example/")]),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                field: "payment_return_url",
                ..
            }
        ));

        let only_key =
            |name: &str| (name == "HANDOVER_MOBILY_APIKEY").then(|| SECRETS[0].to_owned());
        let err = ProvidersConfig::from_sources(None, &only_key).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Missing {
                    field: "base_url",
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
