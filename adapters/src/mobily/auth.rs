//! Step 2: the JWT from Apigee's client-credentials endpoint (see the [module docs](super)).

use std::future::Future;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::header::{ACCEPT, AUTHORIZATION, HeaderName};
use http::{HeaderValue, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{Endpoint, error_from, headers, ops, paths, wire};
use crate::error::ProviderError;
use crate::http::{Effect, HttpClient};
use crate::token::{FreshToken, RefreshToken};

/// Shortest token lifetime we accept (anything shorter is treated as this).
pub const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(1);
/// Longest token lifetime we believe (a day); longer values are capped.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Longest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

const TOKEN: Endpoint = Endpoint::post(ops::TOKEN, paths::APIGEE_TOKEN, Effect::ReadOnly);

/// The token answer, Apigee's shape (`expires_in` a string) or Keycloak's (a number).
#[derive(Deserialize)]
struct TokenResponse {
    access_token: SecretString,
    #[serde(deserialize_with = "wire::string_or_number")]
    expires_in: String,
}

/// Fetches a JWT; the refresh function of the client's [`crate::token::TokenCache`].
#[derive(Clone)]
pub(crate) struct TokenFetcher {
    http: HttpClient,
    apikey: SecretString,
    /// `Basic base64(client_id:client_secret)`.
    basic: SecretString,
}

impl std::fmt::Debug for TokenFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenFetcher").finish_non_exhaustive()
    }
}

impl TokenFetcher {
    pub(crate) fn new(
        http: HttpClient,
        apikey: SecretString,
        client_id: &str,
        client_secret: &SecretString,
    ) -> Self {
        let pair = format!("{client_id}:{}", client_secret.expose_secret());
        Self {
            http,
            apikey,
            basic: SecretString::from(format!("Basic {}", STANDARD.encode(pair))),
        }
    }

    async fn fetch(self) -> Result<FreshToken, ProviderError> {
        let request = self
            .http
            .post(TOKEN.operation, TOKEN.template, TOKEN.effect)
            .query("grant_type", "client_credentials")
            .secret_header(HeaderName::from_static(headers::APIKEY), &self.apikey)?
            .secret_header(AUTHORIZATION, &self.basic)?
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        let answer = self.http.send_raw(request).await?;
        if answer.status() != StatusCode::OK {
            return Err(error_from(TOKEN, &answer));
        }
        let parsed: TokenResponse = answer.json()?;
        let token = parsed.access_token.expose_secret();
        let usable = !token.is_empty()
            && token.len() <= MAX_TOKEN_BYTES
            && HeaderValue::from_str(&format!("Bearer {token}")).is_ok();
        if !usable {
            return Err(answer.protocol_error("the token answer has no usable access_token"));
        }
        let seconds: u64 = parsed
            .expires_in
            .trim()
            .parse()
            .map_err(|_| answer.protocol_error("the token answer has no numeric expires_in"))?;
        let lifetime = Duration::from_secs(seconds).clamp(MIN_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME);
        Ok(FreshToken::new(parsed.access_token, lifetime))
    }
}

impl RefreshToken for TokenFetcher {
    fn refresh(&self) -> impl Future<Output = Result<FreshToken, ProviderError>> + Send {
        self.clone().fetch()
    }
}
