//! The login ("Generate Login Token", "Login"): the md5 token, the call, and the lifetime
//! of the access token it returns.

use std::future::Future;
use std::time::{Duration, SystemTime};

use chrono::{FixedOffset, NaiveDateTime};
use http::header::ACCEPT;
use http::{HeaderValue, StatusCode};
use md5::{Digest, Md5};
use secrecy::{ExposeSecret, SecretString};

use super::refusal::{CallKind, RefusalReason, classify_refusal};
use super::types::HEX;
use super::wire;
use super::{LOGIN, LOGIN_PATH};
use crate::error::{Provider, ProviderError};
use crate::http::{Effect, HttpClient};
use crate::redact::sanitize_message;
use crate::token::{FreshToken, RefreshToken};

/// The `token_expires` format: `"2024-08-05 19:31:45"`, no zone.
pub const TOKEN_EXPIRES_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Lifetime assumed when a successful login carries no readable `token_expires`: short, so
/// a misunderstanding costs a few extra logins rather than a stream of rejected calls.
pub const FALLBACK_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// Longest lifetime believed, whatever `token_expires` says (one day): a far-future date
/// from a wrong offset or a typo must not pin a token forever; a rejected token is renewed
/// anyway.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(86_400);

/// Longest access token accepted, in bytes.
pub const MAX_ACCESS_TOKEN_BYTES: usize = 4096;

/// The login `Token`: `md5(UserName + AccountNumber + md5(Password) + APIToken)`, each md5
/// as 32 lowercase hex digits over the UTF-8 bytes, exactly like the document's PHP
/// (`md5($UserName . $AccountNumber . md5($Password) . $ApiToken)`) and C# examples.
///
/// The result is as good as the password for logging in, so it is a secret too.
pub fn login_token(
    user_name: &str,
    account_number: &str,
    password: &SecretString,
    api_token: &SecretString,
) -> SecretString {
    let inner = md5_hex(password.expose_secret().as_bytes());
    // Streaming the parts into one hasher is the same as hashing their concatenation, and
    // leaves no concatenated copy of the secrets in memory.
    let mut outer = Md5::new();
    outer.update(user_name.as_bytes());
    outer.update(account_number.as_bytes());
    outer.update(inner.expose_secret().as_bytes());
    outer.update(api_token.expose_secret().as_bytes());
    hex(&outer.finalize())
}

/// md5 as 32 lowercase hex digits.
pub(crate) fn md5_hex(bytes: &[u8]) -> SecretString {
    hex(&Md5::digest(bytes))
}

fn hex(bytes: &[u8]) -> SecretString {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    SecretString::from(out)
}

/// Reads a `token_expires` value as a point in time, taking the naive timestamp to be at
/// `offset` from UTC.
pub fn parse_token_expires(text: &str, offset: FixedOffset) -> Option<SystemTime> {
    let naive = NaiveDateTime::parse_from_str(text.trim(), TOKEN_EXPIRES_FORMAT).ok()?;
    let at = naive.and_local_timezone(offset).single()?;
    Some(SystemTime::from(at))
}

/// How long a token lives from `now`, by its `token_expires`: the announced time, bounded by
/// [`MAX_TOKEN_LIFETIME`]; [`FALLBACK_TOKEN_LIFETIME`] when it is missing or unreadable;
/// zero when it is already past (the token is then renewed at its next use).
pub fn token_lifetime(
    token_expires: Option<&str>,
    offset: FixedOffset,
    now: SystemTime,
) -> Duration {
    let Some(expires_at) = token_expires.and_then(|t| parse_token_expires(t, offset)) else {
        tracing::warn!(
            provider = "alqimah",
            fallback_s = FALLBACK_TOKEN_LIFETIME.as_secs(),
            "login answer without a readable token_expires; assuming a short lifetime"
        );
        return FALLBACK_TOKEN_LIFETIME;
    };
    let lifetime = FreshToken::until(SecretString::from(""), expires_at, now).expires_in;
    if lifetime.is_zero() {
        tracing::warn!(
            provider = "alqimah",
            "token_expires is already past: check token_expires_utc_offset_minutes"
        );
    }
    lifetime.min(MAX_TOKEN_LIFETIME)
}

/// The token cache's refresher: one login call.
#[derive(Clone)]
pub(crate) struct Login {
    pub http: HttpClient,
    pub account_number: String,
    pub user_name: String,
    /// The precomputed login `Token`; the password and API token are not kept.
    pub token: SecretString,
    pub offset: FixedOffset,
}

impl Login {
    async fn login(self) -> Result<FreshToken, ProviderError> {
        let body = wire::LoginBody {
            account_number: self.account_number.clone(),
            user_name: self.user_name.clone(),
            token: self.token.expose_secret().to_owned(),
        };
        // Read-only for classification: a login changes no money, and repeating it after a
        // timeout is harmless.
        let request = self
            .http
            .post(LOGIN, LOGIN_PATH, Effect::ReadOnly)
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .json(&body)?;
        let answer = self.http.send(request).await?;
        let parsed: wire::LoginAnswer = answer.json()?;
        let message = sanitize_message(&super::scrub_secret(
            parsed.message.as_deref().unwrap_or_default(),
            self.token.expose_secret(),
        ));
        if !parsed.status {
            debug_assert_eq!(
                classify_refusal(CallKind::Login, &message),
                RefusalReason::LoginFailed
            );
            return Err(ProviderError::Auth {
                provider: Provider::AlQimah,
                operation: LOGIN,
                status: StatusCode::UNAUTHORIZED,
                message: if message.is_empty() {
                    "login refused without a message".to_owned()
                } else {
                    format!("login refused: {message}")
                },
            });
        }
        let access_token = parsed
            .access_token
            .filter(|t| {
                !t.is_empty()
                    && t.len() <= MAX_ACCESS_TOKEN_BYTES
                    && HeaderValue::from_str(t).is_ok()
            })
            .ok_or_else(|| answer.protocol_error("login answer without a usable access_token"))?;
        let lifetime = token_lifetime(
            parsed.token_expires.as_deref(),
            self.offset,
            SystemTime::now(),
        );
        Ok(FreshToken::new(SecretString::from(access_token), lifetime))
    }
}

impl RefreshToken for Login {
    fn refresh(&self) -> impl Future<Output = Result<FreshToken, ProviderError>> + Send {
        self.clone().login()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset(minutes: i32) -> FixedOffset {
        FixedOffset::east_opt(minutes * 60).unwrap()
    }

    #[test]
    fn md5_matches_rfc_1321_vectors() {
        assert_eq!(
            md5_hex(b"").expose_secret(),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        assert_eq!(
            md5_hex(b"abc").expose_secret(),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            md5_hex(b"message digest").expose_secret(),
            "f96b697d7cb7938d525a2f31aaf161d0"
        );
    }

    #[test]
    fn login_token_is_the_nested_md5_of_the_document() {
        // Expected values computed outside Rust (Python hashlib) from the document's C#
        // example inputs, and from non-ASCII inputs hashed as UTF-8.
        let token = login_token(
            "YourUserName",
            "YourAccountNumber",
            &SecretString::from("YourPassword"),
            &SecretString::from("YourApiToken"),
        );
        assert_eq!(token.expose_secret(), "faff96f59f943d56a5ed279e82060442");
        let token = login_token(
            "وكيل",
            "100234",
            &SecretString::from("كلمة-سر"),
            &SecretString::from("tok€n"),
        );
        assert_eq!(token.expose_secret(), "06e311b30687065a392da7b3b6d026ce");
    }

    #[test]
    fn token_expires_is_read_at_the_configured_offset() {
        let at = parse_token_expires("2024-08-05 19:31:45", offset(180)).unwrap();
        // 19:31:45 at UTC+03:00 is 16:31:45 UTC.
        let utc = chrono::DateTime::<chrono::Utc>::from(at);
        assert_eq!(utc.to_rfc3339(), "2024-08-05T16:31:45+00:00");
        assert!(parse_token_expires("2024-08-05T19:31:45", offset(180)).is_none());
        assert!(parse_token_expires("tomorrow", offset(0)).is_none());
    }

    #[test]
    fn lifetimes_are_bounded_and_have_a_fallback() {
        let now = SystemTime::from(
            chrono::DateTime::parse_from_rfc3339("2024-08-05T16:00:00+00:00").unwrap(),
        );
        let o = offset(180);
        assert_eq!(
            token_lifetime(Some("2024-08-05 19:31:45"), o, now),
            Duration::from_secs(31 * 60 + 45)
        );
        assert_eq!(
            token_lifetime(Some("2024-08-05 18:00:00"), o, now),
            Duration::ZERO
        );
        assert_eq!(
            token_lifetime(Some("2030-01-01 00:00:00"), o, now),
            MAX_TOKEN_LIFETIME
        );
        assert_eq!(token_lifetime(None, o, now), FALLBACK_TOKEN_LIFETIME);
        assert_eq!(
            token_lifetime(Some("garbage"), o, now),
            FALLBACK_TOKEN_LIFETIME
        );
    }
}
