//! Step 12: Nafath identity verification, and the webhook Mobily sends us.
//!
//! `initiate` gives the customer a random number to pick in the Nafath app ("Generate
//! Nafath Random Number", line 372). We pass our webhook URI and the Basic-auth credentials
//! we issued for it ("Partner system to input the webhook URI ... Partner should provide the
//! basic auth for webhook", line 370). When the customer answers, Mobily posts the status to
//! that URI; if the webhook is late, `tokeninfo` tells the status on demand.
//!
//! # Wire (*ours*)
//!
//! Initiate body: `{"nationalId", "requestId", "webhookUri", "webhookAuth": {"type": "Basic",
//! "username", "password"}}`; answer `{"code", "message", "transactionId", "random",
//! "expiresInSeconds"}`. `requestId` is our correlation id (derive it from the journey id):
//! Mobily echoes it in the webhook, so a webhook that arrives before the initiate answer is
//! still matched.
//!
//! tokeninfo body `{"transactionId"}`; answer `{"code", "message", "transactionId",
//! "status"}` with `status` one of `WAITING`, `APPROVED`, `REJECTED`, `EXPIRED`
//! (`COMPLETED`, Nafath's own word for approved, is read as `APPROVED`).
//!
//! Webhook: `POST <webhookUri>` with `Authorization: Basic base64(username:password)` and
//! body `{"transactionId", "requestId", "status", "timestamp"}` (`timestamp` optional,
//! RFC 3339), `status` final (`APPROVED`/`COMPLETED`, `REJECTED`, `EXPIRED`). Parsed strictly
//! by [`NafathWebhook::parse`].

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use http::HeaderMap;
use http::header::AUTHORIZATION;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};
use subtle::ConstantTimeEq;
use url::Url;

use super::types::{NafathRequestId, NafathTransactionId, NationalId};
use super::{Endpoint, MobilyClient, codes, ops, paths};
use crate::config::MobilyConfig;
use crate::error::ProviderError;
use crate::http::Effect;
use crate::redact::scrub_parser_message;

/// Largest webhook body accepted, in bytes.
pub const MAX_WEBHOOK_BYTES: usize = 8 * 1024;
/// Longest Nafath window we believe (an hour).
pub const MAX_NAFATH_WINDOW: Duration = Duration::from_secs(3600);

const INITIATE: Endpoint = Endpoint::post(
    ops::NAFATH_INITIATE,
    paths::NAFATH_INITIATE,
    Effect::ReadOnly,
);
const TOKENINFO: Endpoint = Endpoint::post(
    ops::NAFATH_STATUS,
    paths::NAFATH_TOKENINFO,
    Effect::ReadOnly,
);

/// Where a Nafath verification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NafathStatus {
    /// The customer has not answered yet.
    Waiting,
    /// The customer picked the right number and passed face verification.
    #[serde(alias = "COMPLETED")]
    Approved,
    /// The customer rejected the request: the journey ends.
    Rejected,
    /// The request timed out: the journey ends (or initiates again).
    Expired,
}

impl NafathStatus {
    /// Whether the verification is over.
    pub fn is_final(self) -> bool {
        !matches!(self, NafathStatus::Waiting)
    }

    /// The wire name.
    pub fn wire_name(self) -> &'static str {
        match self {
            NafathStatus::Waiting => "WAITING",
            NafathStatus::Approved => "APPROVED",
            NafathStatus::Rejected => "REJECTED",
            NafathStatus::Expired => "EXPIRED",
        }
    }
}

fn expose<S: Serializer>(secret: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose_secret())
}

/// Wire structures.
pub mod wire {
    use super::*;

    /// The Basic-auth credentials Mobily must send with the webhook. `Debug` hides the
    /// password.
    #[derive(Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct WebhookAuth {
        /// Always `"Basic"`.
        #[serde(rename = "type")]
        pub kind: String,
        /// User name.
        pub username: String,
        /// Password.
        #[serde(serialize_with = "expose")]
        pub password: SecretString,
    }

    impl fmt::Debug for WebhookAuth {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("WebhookAuth")
                .field("kind", &self.kind)
                .field("username", &self.username)
                .finish_non_exhaustive()
        }
    }

    /// Body of initiate.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct InitiateRequest {
        /// Whose identity.
        pub national_id: NationalId,
        /// Our correlation id, echoed in the webhook.
        pub request_id: NafathRequestId,
        /// Our webhook.
        #[serde(with = "crate::mobily::wire::url_field")]
        pub webhook_uri: Url,
        /// Its credentials.
        pub webhook_auth: WebhookAuth,
    }

    /// Answer of initiate.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct InitiateResponse {
        /// Nafath's transaction.
        pub transaction_id: NafathTransactionId,
        /// The number the customer must pick in the app.
        pub random: String,
        /// How long the customer has.
        pub expires_in_seconds: u64,
    }

    /// Body of tokeninfo.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct TokenInfoRequest {
        /// Nafath's transaction.
        pub transaction_id: NafathTransactionId,
    }

    /// Answer of tokeninfo.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct TokenInfoResponse {
        /// Where it stands.
        pub status: NafathStatus,
    }

    /// The webhook body, parsed strictly.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct WebhookBody {
        /// Nafath's transaction.
        pub transaction_id: NafathTransactionId,
        /// Our correlation id from initiate.
        pub request_id: NafathRequestId,
        /// The final status.
        pub status: NafathStatus,
        /// When Nafath decided.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub timestamp: Option<DateTime<Utc>>,
    }
}

/// Our webhook URI and the credentials we issued for it, from the configuration.
#[derive(Clone)]
pub(crate) struct CallbackTarget {
    pub url: Url,
    pub credentials: WebhookCredentials,
}

impl CallbackTarget {
    pub(crate) fn from_config(config: &MobilyConfig) -> Self {
        Self {
            url: config.nafath_webhook_url.clone(),
            credentials: WebhookCredentials::new(
                config.nafath_webhook_username.clone(),
                config.nafath_webhook_password.clone(),
            ),
        }
    }
}

/// The Basic-auth credentials Handover issued to Mobily for the Nafath webhook. The
/// ingress checks every webhook with [`WebhookCredentials::verify`]. `Debug` shows the user
/// name only.
#[derive(Clone)]
pub struct WebhookCredentials {
    username: String,
    password: SecretString,
}

impl fmt::Debug for WebhookCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookCredentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl WebhookCredentials {
    /// The pair we issued.
    pub fn new(username: impl Into<String>, password: SecretString) -> Self {
        Self {
            username: username.into(),
            password,
        }
    }

    /// The credentials of a [`MobilyConfig`].
    pub fn from_config(config: &MobilyConfig) -> Self {
        CallbackTarget::from_config(config).credentials
    }

    /// The user name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// Whether an `Authorization` header value carries exactly these credentials
    /// (`Basic base64(username:password)`, scheme case-insensitive). The comparison is
    /// constant-time in the content (only the length can leak).
    pub fn verify(&self, authorization: Option<&str>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        let Some((scheme, encoded)) = value.trim().split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        let Ok(decoded) = STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let expected = format!("{}:{}", self.username, self.password.expose_secret());
        bool::from(decoded.as_slice().ct_eq(expected.as_bytes()))
    }

    /// [`Self::verify`] on a request's headers.
    pub fn verify_headers(&self, headers: &HeaderMap) -> bool {
        self.verify(headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()))
    }

    fn wire(&self) -> wire::WebhookAuth {
        wire::WebhookAuth {
            kind: "Basic".to_owned(),
            username: self.username.clone(),
            password: self.password.clone(),
        }
    }
}

/// Why an inbound message (webhook, 3-D Secure return) was refused. Never echoes values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InboundError {
    /// Over the size limit.
    #[error("inbound message larger than {0} bytes")]
    TooLarge(usize),
    /// Not the expected shape (missing or unknown field, wrong type, invalid id).
    #[error("malformed inbound message: {0}")]
    Malformed(String),
    /// A webhook with a non-final status (`WAITING`).
    #[error("the webhook carries a non-final status")]
    NotFinal,
}

/// The Nafath webhook Mobily posts to our URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NafathWebhook {
    /// Nafath's transaction (as returned by initiate).
    pub transaction_id: NafathTransactionId,
    /// Our correlation id from initiate.
    pub request_id: NafathRequestId,
    /// The final status.
    pub status: NafathStatus,
    /// When Nafath decided, if given.
    pub timestamp: Option<DateTime<Utc>>,
}

impl NafathWebhook {
    /// Parses a webhook body strictly: at most [`MAX_WEBHOOK_BYTES`], exactly the documented
    /// fields, a final status. Check the credentials first ([`WebhookCredentials::verify`]).
    pub fn parse(body: &[u8]) -> Result<Self, InboundError> {
        if body.len() > MAX_WEBHOOK_BYTES {
            return Err(InboundError::TooLarge(MAX_WEBHOOK_BYTES));
        }
        let parsed: wire::WebhookBody = serde_json::from_slice(body)
            .map_err(|e| InboundError::Malformed(scrub_parser_message(&e.to_string())))?;
        if !parsed.status.is_final() {
            return Err(InboundError::NotFinal);
        }
        Ok(Self {
            transaction_id: parsed.transaction_id,
            request_id: parsed.request_id,
            status: parsed.status,
            timestamp: parsed.timestamp,
        })
    }

    /// The body, as Mobily sends it (the simulator's side, and tests).
    pub fn to_body(&self) -> serde_json::Value {
        serde_json::to_value(wire::WebhookBody {
            transaction_id: self.transaction_id.clone(),
            request_id: self.request_id.clone(),
            status: self.status,
            timestamp: self.timestamp,
        })
        .unwrap_or(serde_json::Value::Null)
    }

    /// The key to de-duplicate deliveries: `nafath:<transactionId>:<STATUS>`. A repeated
    /// delivery has the same key; a contradicting status for the same transaction does not,
    /// so it is not silently swallowed.
    pub fn dedupe_key(&self) -> String {
        format!("nafath:{}:{}", self.transaction_id, self.status.wire_name())
    }

    /// The value that matches the webhook to its journey: our `requestId`.
    pub fn correlation(&self) -> &NafathRequestId {
        &self.request_id
    }
}

/// The customer's challenge: pick `random` in the Nafath app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NafathChallenge {
    /// Nafath's transaction: poll `tokeninfo` with it.
    pub transaction_id: NafathTransactionId,
    /// The number to show the customer.
    pub random: String,
    /// How long the customer has.
    pub expires_in: Duration,
}

impl MobilyClient {
    /// Step 12: starts a Nafath verification with our webhook URI and credentials.
    /// `request_id` is our correlation id, echoed by the webhook. Repeating it starts a new
    /// request (the customer answers the newest), so a lost answer is retried. An id
    /// without a Nafath account ([`codes::NAFATH_NOT_REGISTERED`]) is
    /// [`ProviderError::Refused`].
    pub async fn nafath_initiate(
        &self,
        customer: &NationalId,
        request_id: &NafathRequestId,
    ) -> Result<NafathChallenge, ProviderError> {
        let target = self.callbacks();
        let body = wire::InitiateRequest {
            national_id: customer.clone(),
            request_id: request_id.clone(),
            webhook_uri: target.url.clone(),
            webhook_auth: target.credentials.wire(),
        };
        let answer = self.call(INITIATE, &body, None).await?;
        answer.success_or_refused()?;
        let parsed: wire::InitiateResponse = answer.body()?;
        let random_ok = (1..=3).contains(&parsed.random.len())
            && parsed.random.bytes().all(|b| b.is_ascii_digit());
        if !random_ok {
            return Err(answer.protocol("initiate answer with an invalid random number"));
        }
        Ok(NafathChallenge {
            transaction_id: parsed.transaction_id,
            random: parsed.random,
            expires_in: Duration::from_secs(parsed.expires_in_seconds).min(MAX_NAFATH_WINDOW),
        })
    }

    /// Step 12: the status of a Nafath verification (the fallback when the webhook is late).
    pub async fn nafath_status(
        &self,
        transaction: &NafathTransactionId,
    ) -> Result<NafathStatus, ProviderError> {
        let body = wire::TokenInfoRequest {
            transaction_id: transaction.clone(),
        };
        let answer = self.call(TOKENINFO, &body, None).await?;
        if answer.code == codes::NAFATH_REJECTED {
            return Ok(NafathStatus::Rejected);
        }
        answer.success_or_refused()?;
        let parsed: wire::TokenInfoResponse = answer.body()?;
        Ok(parsed.status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> WebhookCredentials {
        WebhookCredentials::new("mobily", SecretString::from("p4ssw0rd-long-enough"))
    }

    #[test]
    fn basic_auth_is_checked_exactly() {
        let c = creds();
        let good = format!("Basic {}", STANDARD.encode("mobily:p4ssw0rd-long-enough"));
        assert!(c.verify(Some(&good)));
        assert!(c.verify(Some(&good.replace("Basic", "basic"))));
        for bad in [
            format!("Basic {}", STANDARD.encode("mobily:p4ssw0rd-long-enougH")),
            format!("Basic {}", STANDARD.encode("mobily:p4ssw0rd-long-enough ")),
            format!("Basic {}", STANDARD.encode("other:p4ssw0rd-long-enough")),
            format!("Bearer {}", STANDARD.encode("mobily:p4ssw0rd-long-enough")),
            "Basic !!!".to_owned(),
            "Basic".to_owned(),
        ] {
            assert!(!c.verify(Some(&bad)), "{bad}");
        }
        assert!(!c.verify(None));
        assert!(!format!("{c:?}").contains("p4ssw0rd"));
    }

    #[test]
    fn webhooks_parse_strictly_and_round_trip() {
        let body = br#"{"transactionId":"tx-1","requestId":"journey-9:nafath","status":"COMPLETED","timestamp":"2024-10-15T12:00:00Z"}"#;
        let hook = NafathWebhook::parse(body).unwrap();
        assert_eq!(hook.status, NafathStatus::Approved);
        assert_eq!(hook.correlation().as_str(), "journey-9:nafath");
        assert_eq!(hook.dedupe_key(), "nafath:tx-1:APPROVED");
        let again = NafathWebhook::parse(&serde_json::to_vec(&hook.to_body()).unwrap()).unwrap();
        assert_eq!(again, hook);

        for bad in [
            &br#"{"transactionId":"tx-1","requestId":"r","status":"WAITING"}"#[..],
            br#"{"transactionId":"tx-1","requestId":"r","status":"MAYBE"}"#,
            br#"{"transactionId":"tx-1","status":"APPROVED"}"#,
            br#"{"transactionId":"tx-1","requestId":"r","status":"APPROVED","nationalId":"1012345678"}"#,
            br#"{"transactionId":"tx 1","requestId":"r","status":"APPROVED"}"#,
            b"not json",
        ] {
            let e = NafathWebhook::parse(bad).unwrap_err();
            assert!(!e.to_string().contains("1012345678"), "{e}");
        }
        assert_eq!(
            NafathWebhook::parse(&vec![b' '; MAX_WEBHOOK_BYTES + 1]),
            Err(InboundError::TooLarge(MAX_WEBHOOK_BYTES))
        );
    }

    #[test]
    fn the_initiate_body_carries_the_password_but_debug_does_not() {
        let body = wire::InitiateRequest {
            national_id: NationalId::parse("1012345678").unwrap(),
            request_id: NafathRequestId::new("j-1:nafath").unwrap(),
            webhook_uri: Url::parse("https://h.example/nafath").unwrap(),
            webhook_auth: creds().wire(),
        };
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["webhookAuth"]["password"], "p4ssw0rd-long-enough");
        assert_eq!(json["webhookAuth"]["type"], "Basic");
        let shown = format!("{body:?}");
        assert!(
            !shown.contains("p4ssw0rd") && !shown.contains("1012345678"),
            "{shown}"
        );
    }
}
