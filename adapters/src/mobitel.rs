//! Mobitel (Sri Lanka) Charging as a Service: carrier billing with USSD consent.
//!
//! Source: `mobitel-caas.txt` ("Mobitel Charging As A Service API", Inzpire/apphub, 2017).
//! The flow (journey J5): ask for a charge, the customer approves a USSD pop-up on their
//! phone, we confirm, the customer is charged.
//!
//! # Endpoints
//!
//! | Client call | Endpoint | Seed section | Effect |
//! |---|---|---|---|
//! | [`MobitelClient::charge_request`] | `POST /mobext/mapi/caas/chargRequest` | "2.1 API definition - Charging Request" | sends the USSD consent pop-up; no money moves |
//! | [`MobitelClient::confirm`] | `POST /mobext/mapi/caas/confirm` | "2.2 API definition - Charge confirmation" | completes the charge once the customer approved |
//!
//! Both carry the `x-ibm-client-id` header, the application's client id from the API
//! portal ("Step 1: Create an application key in API Manager"; treated as a secret since it
//! authorizes charging). The base URL is `https://apphub.mobitel.lk` in the document.
//!
//! # Wire format: what the document says and what we chose
//!
//! - **Charge request body.** The document lists the parameters `amount` and `customer` but
//!   its example is `{"amount":"5","receiver":"0712755777"}`. We send **`receiver`**, as in the
//!   example (the only concrete wire sample). `amount` is a **string** of rupees, as in the
//!   example ("5", or "5.50" with cents). The receiver is a Sri Lankan mobile in national
//!   form `07XXXXXXXX`; [`Receiver::parse`] also accepts `947...`/`+947...` and normalises.
//! - **Confirm body.** `{"ref": "<reference>"}`, as in the document.
//! - **Answers.** Both answer `{"reference", "message", "status"}` ("status: response code").
//!   The document gives no codes, so we defined them ([`status`]), and the simulator uses the
//!   same table. `status` is read whether it arrives as a JSON string or number.
//! - **Consent states on the wire.** The document only says confirm "will return a successful
//!   response if the user has given the consent". Not-yet-approved, declined and expired are
//!   normal states of the flow, not failures, so we represent them as **HTTP 200 with a
//!   status code other than success** ([`status::PENDING`], [`status::DECLINED`],
//!   [`status::EXPIRED`]) and return them as [`ConfirmOutcome`] variants, not errors.
//! - **Business refusals** (insufficient balance, not eligible, re-initiated too soon) are
//!   HTTP 200 with another non-success code: [`ProviderError::Refused`] with the code.
//!   Malformed requests are 400, unknown references 404 (`ProviderError::Rejected`);
//!   gateway failures follow the shared table in [`crate::http`].
//!
//! # Retrying and reconciling
//!
//! - The charge request is **effectful** (it sends a pop-up) but Mobitel offers **no status
//!   query by our id**: after an `OutcomeUnknown` there is nothing to reconcile with. It is
//!   still safe in money terms, because nothing is charged until *we* confirm with the
//!   reference we never received. The document says a failed approval may be re-initiated
//!   "after 2 minutes"; the simulator refuses an earlier re-initiation for the same receiver
//!   ([`status::TOO_SOON`]). So after an unknown outcome, wait 2 minutes, then re-initiate.
//! - Confirm is **effectful** (it completes the charge). We assume, and the simulator
//!   implements, that confirming an already-confirmed reference answers success again
//!   without charging twice, so an unknown outcome of confirm is reconciled by confirming
//!   again with the same reference. This is an assumption the document does not state; verify
//!   it against the real service before go-live.

use std::fmt;

use http::HeaderValue;
use http::header::{ACCEPT, HeaderName};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};

use crate::config::MobitelConfig;
use crate::error::{Operation, Provider, ProviderError};
use crate::http::{Effect, HttpClient};
use crate::redact::{mask_msisdn, sanitize_message};

/// `POST` path of the charge request ("2.1 API definition - Charging Request").
pub const CHARGE_REQUEST_PATH: &str = "/mobext/mapi/caas/chargRequest";
/// `POST` path of the confirmation ("2.2 API definition - Charge confirmation").
pub const CONFIRM_PATH: &str = "/mobext/mapi/caas/confirm";
/// The authentication header ("Headers: x-ibm-client-id").
pub const CLIENT_ID_HEADER: &str = "x-ibm-client-id";

/// Operation name of [`MobitelClient::charge_request`].
pub const CHARGE_REQUEST: Operation = Operation::new("mobitel.charge_request");
/// Operation name of [`MobitelClient::confirm`].
pub const CONFIRM: Operation = Operation::new("mobitel.confirm");

/// The `status` codes of Mobitel answers. The document gives none; these are our choice,
/// shared by the client and the simulator.
pub mod status {
    /// Charge request: the pop-up was sent. Confirm: approved and charged.
    pub const SUCCESS: &str = "1000";
    /// Confirm: the customer has not answered the pop-up yet.
    pub const PENDING: &str = "1001";
    /// Confirm: the customer declined.
    pub const DECLINED: &str = "1002";
    /// Confirm: the consent window closed without an answer.
    pub const EXPIRED: &str = "1003";
    /// Charge request refused: the customer's balance does not cover the amount.
    pub const INSUFFICIENT_BALANCE: &str = "2001";
    /// Charge request refused: an unapproved request for this receiver is less than two
    /// minutes old ("you can re-initiate the process by calling this service after 2
    /// minutes").
    pub const TOO_SOON: &str = "2002";
    /// Charge request refused: the number cannot be charged (not a Mobitel prepaid/postpaid
    /// subscriber with carrier billing).
    pub const NOT_ELIGIBLE: &str = "2003";
    /// 400: the request body is invalid.
    pub const INVALID_REQUEST: &str = "4000";
    /// 404: the reference is unknown.
    pub const UNKNOWN_REFERENCE: &str = "4004";
}

/// Largest amount the client sends, in cents (Rs. 100 000). Carrier billing is for small
/// amounts; this only stops an obviously wrong value.
pub const MAX_AMOUNT_CENTS: u64 = 10_000_000;

/// An amount in Sri Lankan rupees, positive, with at most two decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Amount {
    cents: u64,
}

impl Amount {
    /// A whole number of rupees.
    pub fn rupees(rupees: u64) -> Result<Self, ProviderError> {
        Self::cents(rupees.saturating_mul(100))
    }

    /// An amount in cents.
    pub fn cents(cents: u64) -> Result<Self, ProviderError> {
        if cents == 0 || cents > MAX_AMOUNT_CENTS {
            return Err(local_rejection(
                CHARGE_REQUEST,
                "amount must be positive and at most Rs. 100000",
            ));
        }
        Ok(Self { cents })
    }

    /// Parses `"5"` or `"5.50"`.
    pub fn parse(text: &str) -> Result<Self, ProviderError> {
        parse_amount_cents(text)
            .ok_or_else(|| {
                local_rejection(
                    CHARGE_REQUEST,
                    "amount must be rupees with at most two decimals",
                )
            })
            .and_then(Self::cents)
    }

    /// The amount in cents.
    pub fn as_cents(self) -> u64 {
        self.cents
    }

    /// The wire form: `"5"` for whole rupees, `"5.50"` otherwise.
    pub fn to_wire(self) -> String {
        let (rupees, cents) = (self.cents / 100, self.cents % 100);
        if cents == 0 {
            rupees.to_string()
        } else {
            format!("{rupees}.{cents:02}")
        }
    }
}

/// Parses a positive decimal with at most two fraction digits into cents. Shared with the
/// simulator so both sides agree on what a valid amount is.
pub(crate) fn parse_amount_cents(text: &str) -> Option<u64> {
    let (whole, fraction) = match text.split_once('.') {
        Some((w, f)) => (w, f),
        None => (text, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || whole.len() > 9
        || !digits(whole)
        || fraction.len() > 2
        || !digits(fraction)
    {
        return None;
    }
    if text.contains('.') && fraction.is_empty() {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let fraction: u64 = match fraction.len() {
        0 => 0,
        1 => fraction.parse::<u64>().ok()? * 10,
        _ => fraction.parse().ok()?,
    };
    Some(whole * 100 + fraction)
}

/// The number to charge: a Sri Lankan mobile in national form `07XXXXXXXX`. `Debug` and
/// `Display` mask it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Receiver(String);

impl Receiver {
    /// Parses `07XXXXXXXX`, `947XXXXXXXX` or `+947XXXXXXXX` into the national form.
    pub fn parse(text: &str) -> Result<Self, ProviderError> {
        let compact: String = text.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        let national = if let Some(rest) = compact.strip_prefix("+94") {
            format!("0{rest}")
        } else if let Some(rest) = compact.strip_prefix("94").filter(|r| r.len() == 9) {
            format!("0{rest}")
        } else {
            compact
        };
        if is_sri_lankan_mobile(&national) {
            Ok(Self(national))
        } else {
            Err(local_rejection(
                CHARGE_REQUEST,
                "receiver must be a Sri Lankan mobile number 07XXXXXXXX",
            ))
        }
    }

    /// The full number, for the request body only. Never log it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `07` followed by eight digits. Shared with the simulator.
pub(crate) fn is_sri_lankan_mobile(s: &str) -> bool {
    s.len() == 10 && s.starts_with("07") && s.bytes().all(|b| b.is_ascii_digit())
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Receiver({})", mask_msisdn(&self.0))
    }
}

impl fmt::Display for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask_msisdn(&self.0))
    }
}

/// Longest reference accepted, in characters.
pub const MAX_REFERENCE_CHARS: usize = 64;

/// Mobitel's reference for a charge ("Very important as this reference is used in the next
/// API call"). Not personal data. Part of the journey's durable state.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChargeReference(String);

impl ChargeReference {
    /// A reference as received (non-empty, at most [`MAX_REFERENCE_CHARS`] ASCII
    /// alphanumerics, `-` or `_`).
    pub fn new(reference: impl Into<String>) -> Result<Self, ProviderError> {
        let reference = reference.into();
        let ok = !reference.is_empty()
            && reference.len() <= MAX_REFERENCE_CHARS
            && reference
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(reference))
        } else {
            Err(local_rejection(
                CONFIRM,
                "the reference is not a valid Mobitel reference",
            ))
        }
    }

    /// The reference text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChargeReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A charge to request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    /// How much.
    pub amount: Amount,
    /// From whom.
    pub receiver: Receiver,
}

/// The pop-up was sent; confirm with this reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequested {
    /// Mobitel's reference for the charge.
    pub reference: ChargeReference,
    /// Mobitel's message (sanitized).
    pub message: String,
}

/// What confirm found. Only `Approved` means the customer was charged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmOutcome {
    /// The customer approved; the charge is complete.
    Approved {
        /// The reference, as echoed by Mobitel.
        reference: ChargeReference,
        /// Mobitel's message (sanitized).
        message: String,
    },
    /// The customer has not answered yet: confirm again later, within the consent window.
    Pending {
        /// Mobitel's message (sanitized).
        message: String,
    },
    /// The customer declined. Re-initiating is allowed after 2 minutes.
    Declined {
        /// Mobitel's message (sanitized).
        message: String,
    },
    /// The consent window closed without an answer. Re-initiating is allowed after 2
    /// minutes.
    Expired {
        /// Mobitel's message (sanitized).
        message: String,
    },
}

/// Wire structures, named as in the document.
pub mod wire {
    use super::*;

    /// Body of `chargRequest`: `{"amount": "5", "receiver": "0712755777"}`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ChargRequestBody {
        /// Rupees, as a string.
        pub amount: String,
        /// The customer's number, `07XXXXXXXX` (the document's example field name).
        pub receiver: String,
    }

    /// Body of `confirm`: `{"ref": "320438941208291"}`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ConfirmBody {
        /// The reference from the charge request.
        #[serde(rename = "ref")]
        pub reference: String,
    }

    /// Answer of both endpoints: `{"reference", "message", "status"}`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct CaasResponse {
        /// The transaction reference (absent on some errors).
        #[serde(default, deserialize_with = "string_or_number_opt")]
        pub reference: Option<String>,
        /// Verbose message.
        #[serde(default)]
        pub message: Option<String>,
        /// Response code, see [`super::status`].
        #[serde(deserialize_with = "string_or_number")]
        pub status: String,
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum StringOrNumber {
        String(String),
        Number(serde_json::Number),
    }

    fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(match StringOrNumber::deserialize(d)? {
            StringOrNumber::String(s) => s,
            StringOrNumber::Number(n) => n.to_string(),
        })
    }

    fn string_or_number_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(Option::<StringOrNumber>::deserialize(d)?.map(|v| match v {
            StringOrNumber::String(s) => s,
            StringOrNumber::Number(n) => n.to_string(),
        }))
    }
}

/// The Mobitel CaaS client. Cheap to clone; share one per client id.
#[derive(Clone)]
pub struct MobitelClient {
    http: HttpClient,
    client_id: SecretString,
}

impl fmt::Debug for MobitelClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MobitelClient")
            .field("base_url", &self.http.base_url().as_str())
            .finish_non_exhaustive()
    }
}

impl MobitelClient {
    /// Builds the client from its configuration.
    pub fn new(config: &MobitelConfig) -> Result<Self, ProviderError> {
        Ok(Self {
            http: HttpClient::new(Provider::Mobitel, &config.base_url, &config.http)?,
            client_id: config.client_id.clone(),
        })
    }

    /// Builds the client over an existing HTTP client (to share a rate limiter).
    pub fn with_http(http: HttpClient, client_id: SecretString) -> Self {
        Self { http, client_id }
    }

    /// Asks Mobitel to charge `request.amount` to `request.receiver`: the customer gets a
    /// USSD pop-up. Effectful; see the [module docs](self) on retrying.
    ///
    /// Refusals (insufficient balance, not eligible, [`status::TOO_SOON`]) are
    /// [`ProviderError::Refused`] with the code.
    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(provider = "mobitel", receiver = %request.receiver),
        err(level = tracing::Level::DEBUG)
    )]
    pub async fn charge_request(
        &self,
        request: &ChargeRequest,
    ) -> Result<ChargeRequested, ProviderError> {
        let body = wire::ChargRequestBody {
            amount: request.amount.to_wire(),
            receiver: request.receiver.as_str().to_owned(),
        };
        let answer = self
            .call(CHARGE_REQUEST, CHARGE_REQUEST_PATH, &body)
            .await?;
        let parsed: wire::CaasResponse = answer.json()?;
        let message = sanitize_message(parsed.message.as_deref().unwrap_or_default());
        if parsed.status != status::SUCCESS {
            return Err(refused(CHARGE_REQUEST, &parsed.status, message));
        }
        let reference = parsed
            .reference
            .ok_or_else(|| answer.protocol_error("success answer without a reference"))
            .and_then(|r| {
                ChargeReference::new(r)
                    .map_err(|_| answer.protocol_error("success answer with an invalid reference"))
            })?;
        Ok(ChargeRequested { reference, message })
    }

    /// Asks whether the customer approved, completing the charge if so. Effectful (it
    /// completes the charge); repeating it for an approved reference does not charge again
    /// (see the [module docs](self)).
    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(provider = "mobitel", reference = %reference),
        err(level = tracing::Level::DEBUG)
    )]
    pub async fn confirm(
        &self,
        reference: &ChargeReference,
    ) -> Result<ConfirmOutcome, ProviderError> {
        let body = wire::ConfirmBody {
            reference: reference.as_str().to_owned(),
        };
        let answer = self.call(CONFIRM, CONFIRM_PATH, &body).await?;
        let parsed: wire::CaasResponse = answer.json()?;
        let message = sanitize_message(parsed.message.as_deref().unwrap_or_default());
        match parsed.status.as_str() {
            status::SUCCESS => {
                // Trust our own reference if the answer omits or mangles the echo.
                let echoed = parsed
                    .reference
                    .and_then(|r| ChargeReference::new(r).ok())
                    .unwrap_or_else(|| reference.clone());
                Ok(ConfirmOutcome::Approved {
                    reference: echoed,
                    message,
                })
            }
            status::PENDING => Ok(ConfirmOutcome::Pending { message }),
            status::DECLINED => Ok(ConfirmOutcome::Declined { message }),
            status::EXPIRED => Ok(ConfirmOutcome::Expired { message }),
            _ => Err(refused(CONFIRM, &parsed.status, message)),
        }
    }

    async fn call<T: Serialize>(
        &self,
        operation: Operation,
        path: &'static str,
        body: &T,
    ) -> Result<crate::http::HttpResponse, ProviderError> {
        let request = self
            .http
            .post(operation, path, Effect::Effectful)
            .secret_header(HeaderName::from_static(CLIENT_ID_HEADER), &self.client_id)?
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .json(body)?;
        self.http.send(request).await
    }
}

fn refused(operation: Operation, code: &str, message: String) -> ProviderError {
    ProviderError::Refused {
        provider: Provider::Mobitel,
        operation,
        code: Some(sanitize_message(code)),
        message: if message.is_empty() {
            "refused without a message".to_owned()
        } else {
            message
        },
    }
}

fn local_rejection(operation: Operation, message: &str) -> ProviderError {
    ProviderError::Rejected {
        provider: Provider::Mobitel,
        operation,
        status: None,
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_have_a_wire_form() {
        assert_eq!(Amount::rupees(5).unwrap().to_wire(), "5");
        assert_eq!(Amount::parse("5.5").unwrap().to_wire(), "5.50");
        assert_eq!(Amount::parse("12.05").unwrap().as_cents(), 1205);
        for bad in ["0", "-1", "5.", ".5", "1.234", "abc", "", "1e3", "0.00"] {
            assert!(Amount::parse(bad).is_err(), "{bad}");
        }
        assert!(Amount::rupees(100_001).is_err());
    }

    #[test]
    fn receivers_are_normalised_and_masked() {
        for form in ["0712755777", "+94712755777", "94712755777", "071 275 5777"] {
            assert_eq!(
                Receiver::parse(form).unwrap().as_str(),
                "0712755777",
                "{form}"
            );
        }
        for bad in ["712755777", "0812755777", "07127557770", "07x2755777"] {
            assert!(Receiver::parse(bad).is_err(), "{bad}");
        }
        let r = Receiver::parse("0712755777").unwrap();
        assert_eq!(format!("{r} {r:?}"), "07******77 Receiver(07******77)");
    }

    #[test]
    fn references_are_bounded() {
        assert!(ChargeReference::new("320438941208291").is_ok());
        assert!(ChargeReference::new("").is_err());
        assert!(ChargeReference::new("a b").is_err());
        assert!(ChargeReference::new("9".repeat(65)).is_err());
    }

    #[test]
    fn wire_names_match_the_document() {
        let body = wire::ChargRequestBody {
            amount: "5".into(),
            receiver: "0712755777".into(),
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"amount":"5","receiver":"0712755777"}"#
        );
        let confirm = wire::ConfirmBody {
            reference: "320438941208291".into(),
        };
        assert_eq!(
            serde_json::to_string(&confirm).unwrap(),
            r#"{"ref":"320438941208291"}"#
        );
        let answer: wire::CaasResponse =
            serde_json::from_str(r#"{"reference":320438941208291,"message":"ok","status":1000}"#)
                .unwrap();
        assert_eq!(answer.status, "1000");
        assert_eq!(answer.reference.as_deref(), Some("320438941208291"));
    }
}
