//! Validated values of the Al-Qimah API: ids, numbers, amounts, products, outcomes.
//!
//! Every input the client sends is one of these types, validated when it is built; the
//! bounds are the document's shapes where it gives them and generous sanity limits where it
//! does not (see the [module docs](super)).

use std::collections::BTreeMap;
use std::fmt;

use rand::RngExt;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::PAY;
use crate::error::{Operation, Provider, ProviderError};
use crate::redact::mask_msisdn;

/// Largest [`TransactionId`]: 2^53 - 1, so the id survives any JSON parser (JavaScript,
/// PHP, C#) as an exact number.
pub const MAX_TRANSACTION_ID: u64 = 9_007_199_254_740_991;

/// Largest [`Amount`] the client sends (one billion units). Top-ups are small; this only
/// stops an obviously wrong value.
pub const MAX_AMOUNT: u64 = 1_000_000_000;

/// Largest [`Quantity`] the client sends.
pub const MAX_QUANTITY: u32 = 10_000;

/// Longest offer code, link code, reference id or game field value, in characters.
pub const MAX_CODE_CHARS: usize = 64;

/// Longest game field value (a player id, zone id or e-mail address), in characters.
pub const MAX_FIELD_VALUE_CHARS: usize = 256;

/// Most entries in [`GameFields`].
pub const MAX_GAME_FIELDS: usize = 16;

/// Shortest and longest [`WebHookCode`] accepted from storage, in characters.
pub const WEBHOOK_CODE_CHARS: std::ops::RangeInclusive<usize> = 16..=128;

pub(crate) fn local_rejection(operation: Operation, message: &str) -> ProviderError {
    ProviderError::Rejected {
        provider: Provider::AlQimah,
        operation,
        status: None,
        message: message.to_owned(),
    }
}

/// Our unique id of one payment, Al-Qimah's `TransactionID` ("A unique transaction ID in
/// your system. Each transaction must have a unique ID, and the same ID cannot be used for
/// multiple transactions").
///
/// A positive integer up to [`MAX_TRANSACTION_ID`], sent as a JSON number (the document's
/// examples are numbers: `"transactionID": 1234`). The journey allocates it once, from a
/// durable sequence, stores it **before** the first send, and uses it for every retry and
/// status query of that payment: it is the key that prevents paying twice. Part of the
/// journey's durable state (serialized as a number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct TransactionId(u64);

impl TransactionId {
    /// An id in `1..=MAX_TRANSACTION_ID`.
    pub fn new(id: u64) -> Result<Self, ProviderError> {
        if (1..=MAX_TRANSACTION_ID).contains(&id) {
            Ok(Self(id))
        } else {
            Err(local_rejection(
                PAY,
                "TransactionID must be between 1 and 9007199254740991",
            ))
        }
    }

    /// Parses the canonical decimal form: ASCII digits, no sign, no leading zero.
    pub fn parse(text: &str) -> Result<Self, ProviderError> {
        parse_canonical_u64(text)
            .ok_or_else(|| {
                local_rejection(
                    PAY,
                    "TransactionID must be decimal digits without sign or leading zero",
                )
            })
            .and_then(Self::new)
    }

    /// The id as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl TryFrom<u64> for TransactionId {
    type Error = String;
    fn try_from(id: u64) -> Result<Self, Self::Error> {
        Self::new(id).map_err(|e| e.to_string())
    }
}

impl From<TransactionId> for u64 {
    fn from(id: TransactionId) -> u64 {
        id.0
    }
}

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Digits only, no leading zero (except nothing: "0" parses to 0), at most 16 digits.
pub(crate) fn parse_canonical_u64(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.len() <= 16
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

/// Al-Qimah's own id of an operation, `referenceID` ("Our system's transaction number"). A
/// number in the document; kept as text (1 to [`MAX_CODE_CHARS`] ASCII letters, digits, `-`
/// or `_`) so a format change on their side does not break parsing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReferenceId(String);

impl ReferenceId {
    /// A reference as received.
    pub fn new(text: impl Into<String>) -> Option<Self> {
        let text = text.into();
        is_code(&text, MAX_CODE_CHARS, |b| b == b'-' || b == b'_').then_some(Self(text))
    }

    /// The reference text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ReferenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_code(text: &str, max: usize, extra: impl Fn(u8) -> bool) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || extra(b))
}

/// The subscriber's number, `MobileNumber`: the document's forms are `7XXXXXXXX` (mobile),
/// `0XXXXXXX` (land line) and `10XXXXXX` (ADSL), plus `73XXXXX`-style short forms in the
/// offers section. We accept 7 to 10 ASCII digits and let Al-Qimah judge the rest (an
/// invalid number is a `status: false` refusal). `Debug` and `Display` mask it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MobileNumber(String);

impl MobileNumber {
    /// Parses a number, ignoring spaces and dashes.
    pub fn parse(text: &str) -> Result<Self, ProviderError> {
        let compact: String = text.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        if (7..=10).contains(&compact.len()) && compact.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(compact))
        } else {
            Err(local_rejection(
                PAY,
                "MobileNumber must be 7 to 10 digits (7XXXXXXXX, 0XXXXXXX or 10XXXXXX)",
            ))
        }
    }

    /// The full number, for the request body only. Never log it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for MobileNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MobileNumber({})", mask_msisdn(&self.0))
    }
}

impl fmt::Display for MobileNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask_msisdn(&self.0))
    }
}

/// `Amount` of a balance top-up: a whole number, `1..=MAX_AMOUNT`. For Yemen Mobile, land
/// line, ADSL and Yemen 4G it is the value charged; for Sabafon, YOU and Y Telecom it is a
/// number of units that Al-Qimah multiplies by its unit price ("Payment Balance"). The
/// document's example is `100`; fractions are not supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Amount(u64);

impl Amount {
    /// An amount in `1..=MAX_AMOUNT`.
    pub fn new(amount: u64) -> Result<Self, ProviderError> {
        if (1..=MAX_AMOUNT).contains(&amount) {
            Ok(Self(amount))
        } else {
            Err(local_rejection(
                PAY,
                "Amount must be a whole number between 1 and 1000000000",
            ))
        }
    }

    /// The amount.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// A money value in an answer (`price`, `agentBalance`), kept as the decimal text received
/// (`"5227"`, `"2445990.29131"`) so nothing is lost to floating point.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Price(String);

impl Price {
    /// A decimal as received: optional `-`, digits, optional `.` and digits; at most 32
    /// characters.
    pub fn parse(text: &str) -> Option<Self> {
        let unsigned = text.strip_prefix('-').unwrap_or(text);
        let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, "0"));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        (text.len() <= 32 && digits(whole) && digits(fraction)).then(|| Self(text.to_owned()))
    }

    /// The decimal text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which network and service a payment goes through (`NetworkNumber`, `ServiceNumber`).
///
/// The document's network and service tables are empty; its examples are `1`/`103` (balance
/// top-up), `2`/`202` (offer) and `8`/`801` (game card). The journey takes them from its
/// product configuration. Network `0` is the "Global" network of account operations and is
/// refused for payments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceRef {
    network: u16,
    service: u32,
}

impl ServiceRef {
    /// A payment service: `network` at least 1, `service` at least 1.
    pub fn new(network: u16, service: u32) -> Result<Self, ProviderError> {
        if network == 0 || service == 0 {
            return Err(local_rejection(
                PAY,
                "payments need a NetworkNumber and a ServiceNumber of at least 1 (network 0 is for account operations)",
            ));
        }
        Ok(Self { network, service })
    }

    /// `NetworkNumber`.
    pub fn network(self) -> u16 {
        self.network
    }

    /// `ServiceNumber`.
    pub fn service(self) -> u32 {
        self.service
    }
}

/// A code naming a product on Al-Qimah's side: `OfferCode` ("PREWhatsApp") or `LinkCode`
/// ("pubg_60"): 1 to [`MAX_CODE_CHARS`] ASCII letters, digits, `_`, `-` or `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProductCode(String);

impl ProductCode {
    /// Parses a code.
    pub fn parse(text: &str) -> Result<Self, ProviderError> {
        if is_code(text, MAX_CODE_CHARS, |b| matches!(b, b'_' | b'-' | b'.')) {
            Ok(Self(text.to_owned()))
        } else {
            Err(local_rejection(
                PAY,
                "OfferCode/LinkCode must be 1 to 64 letters, digits, '_', '-' or '.'",
            ))
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `Fields` of a game or gift-card order: the catalogue's `RequiredFields` (`PlayerID`,
/// `ZoneID`, `EmailAddress`...) with their values. Values may be personal data: `Debug`
/// shows the field codes only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct GameFields(BTreeMap<String, String>);

impl GameFields {
    /// No fields.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a field: `code` 1 to 64 ASCII letters, digits or `_`; `value` 1 to
    /// [`MAX_FIELD_VALUE_CHARS`] characters without control characters; at most
    /// [`MAX_GAME_FIELDS`] fields.
    pub fn with(mut self, code: &str, value: &str) -> Result<Self, ProviderError> {
        let value_ok = !value.trim().is_empty()
            && value.chars().count() <= MAX_FIELD_VALUE_CHARS
            && !value.chars().any(char::is_control);
        if !is_code(code, MAX_CODE_CHARS, |b| b == b'_') || !value_ok {
            return Err(local_rejection(
                PAY,
                "game Fields need a code of letters, digits or '_' and a value of 1 to 256 characters",
            ));
        }
        if self.0.len() >= MAX_GAME_FIELDS && !self.0.contains_key(code) {
            return Err(local_rejection(PAY, "at most 16 game Fields"));
        }
        self.0.insert(code.to_owned(), value.to_owned());
        Ok(self)
    }

    /// The fields, by code.
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

impl fmt::Debug for GameFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("GameFields")
            .field(&self.0.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// `Quantity` of a game order, for categories that allow free quantities: `1..=MAX_QUANTITY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(u32);

impl Quantity {
    /// A quantity in `1..=MAX_QUANTITY`.
    pub fn new(quantity: u32) -> Result<Self, ProviderError> {
        if (1..=MAX_QUANTITY).contains(&quantity) {
            Ok(Self(quantity))
        } else {
            Err(local_rejection(PAY, "Quantity must be between 1 and 10000"))
        }
    }

    /// The quantity.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// The per-transaction `WebHookCode`: "a code or password for the transaction ... sent along
/// with the request to the WebHook URL ... recommended that this code be unique for each
/// transaction".
///
/// It authenticates the webhook, so it is a secret: `Debug` redacts it, it is not
/// `Serialize`, and comparing it is constant-time ([`WebHookCode::matches`]).
///
/// **Choice:** the code is a random 128-bit token ([`WebHookCode::generate`], 32 lowercase
/// hex characters) that the journey stores with its `TransactionID`, not a value derived from
/// a server secret: deriving would need a keyed MAC (HMAC-SHA-256), no such crate is a
/// dependency of this crate, and an md5-based construction is not a MAC. A stored random
/// token is as strong and needs no key management; the webhook ingress looks the expected
/// code up by `TransactionID`, which it needs to find the journey anyway.
#[derive(Clone)]
pub struct WebHookCode(SecretString);

impl WebHookCode {
    /// A fresh random code (128 bits from the thread-local CSPRNG, seeded by the OS).
    pub fn generate() -> Self {
        let bytes: [u8; 16] = rand::rng().random();
        let mut hex = String::with_capacity(32);
        for b in bytes {
            hex.push(char::from(HEX[usize::from(b >> 4)]));
            hex.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        Self(SecretString::from(hex))
    }

    /// A code read back from the journey's storage: 16 to 128 ASCII letters, digits, `-` or
    /// `_` (safe in a query string without escaping).
    pub fn from_stored(code: SecretString) -> Result<Self, ProviderError> {
        let text = code.expose_secret();
        if WEBHOOK_CODE_CHARS.contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            Ok(Self(code))
        } else {
            Err(local_rejection(
                PAY,
                "WebHookCode must be 16 to 128 letters, digits, '-' or '_'",
            ))
        }
    }

    /// The code, to store it with the journey or put it in the payment request.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether `received` (a webhook's `WebHookCode`) is this code. Constant-time in the
    /// contents; only a length difference returns early, and the length is not secret.
    pub fn matches(&self, received: &str) -> bool {
        bool::from(self.expose_secret().as_bytes().ct_eq(received.as_bytes()))
    }
}

impl fmt::Debug for WebHookCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebHookCode([REDACTED])")
    }
}

pub(crate) const HEX: &[u8; 16] = b"0123456789abcdef";

/// What is bought.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Product {
    /// "Payment Balance": credit `amount` to `mobile`.
    TopUp {
        /// `MobileNumber`.
        mobile: MobileNumber,
        /// `Amount`.
        amount: Amount,
    },
    /// "Payment Offers": subscribe `mobile` to the offer or package `offer_code`.
    Offer {
        /// `MobileNumber`.
        mobile: MobileNumber,
        /// `OfferCode`.
        offer_code: ProductCode,
    },
    /// "Payment Game Services and Gift Cards": order the category `link_code` (from "Get
    /// Games and Gift Cards Categories").
    GameCard {
        /// `MobileNumber` ("Mobile number to recharge"); the document does not say whether it
        /// is required for games, so it is optional and sent when given.
        mobile: Option<MobileNumber>,
        /// `LinkCode`.
        link_code: ProductCode,
        /// `Fields`: the category's `RequiredFields`.
        fields: GameFields,
        /// `Quantity`, for categories with `AllowFreeQuantity`; omitted otherwise.
        quantity: Option<Quantity>,
    },
}

impl Product {
    /// The subscriber's number, when the product has one.
    pub fn mobile(&self) -> Option<&MobileNumber> {
        match self {
            Product::TopUp { mobile, .. } | Product::Offer { mobile, .. } => Some(mobile),
            Product::GameCard { mobile, .. } => mobile.as_ref(),
        }
    }
}

/// One payment, as the journey stores it: everything needed to send it again identically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRequest {
    /// Our unique id, stable for the journey.
    pub transaction_id: TransactionId,
    /// `NetworkNumber` and `ServiceNumber`.
    pub service: ServiceRef,
    /// What is bought.
    pub product: Product,
    /// The code Al-Qimah will send back with the webhook (sent only when the client has a
    /// `webhook_url`).
    pub webhook_code: WebHookCode,
}

impl PartialEq for WebHookCode {
    fn eq(&self, other: &Self) -> bool {
        self.matches(other.expose_secret())
    }
}

impl Eq for WebHookCode {}

/// `operationStatus`: where an operation stands. A normal outcome, not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperationStatus {
    /// `1`: "Successful" / "Ready".
    Succeeded,
    /// `0`: "Failed" (the status message says "ملغية", cancelled). Nothing is charged.
    Failed,
    /// `-1`: "Pending, which requires a re-check of the operation status".
    Pending,
}

impl OperationStatus {
    /// The wire code: 1, 0 or -1.
    pub fn code(self) -> i8 {
        match self {
            OperationStatus::Succeeded => 1,
            OperationStatus::Failed => 0,
            OperationStatus::Pending => -1,
        }
    }

    /// The status for a wire code.
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            1 => Some(OperationStatus::Succeeded),
            0 => Some(OperationStatus::Failed),
            -1 => Some(OperationStatus::Pending),
            _ => None,
        }
    }

    /// Whether the operation reached its final state.
    pub fn is_final(self) -> bool {
        self != OperationStatus::Pending
    }
}

/// What Al-Qimah says about one operation, from a payment answer or a status query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationReport {
    /// `operationStatus`.
    pub status: OperationStatus,
    /// `transactionID`, checked to be ours.
    pub transaction_id: TransactionId,
    /// `referenceID`, when given.
    pub reference_id: Option<ReferenceId>,
    /// `price`: what the operation costs the agent account, when given.
    pub price: Option<Price>,
    /// `message` (sanitized; Arabic in the document: "جاهزة", "ملغية", "في الانتظار").
    pub message: String,
    /// `details` (status query only; sanitized).
    pub details: Option<String>,
    /// `agentBalance` after the operation (payment answer only).
    pub agent_balance: Option<Price>,
    /// `mobileNumber` (status query only; masked in `Debug`).
    pub mobile: Option<MobileNumber>,
}

/// The agent account's balance ("Get Account Balance").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentBalance {
    /// `agentBalance`.
    pub balance: Price,
    /// `message` (sanitized).
    pub message: String,
}

/// What a status query by `TransactionID` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusLookup {
    /// Al-Qimah knows the operation.
    Found(OperationReport),
    /// Al-Qimah has no operation with this `TransactionID` (a `status: false` answer
    /// recognised as "not found", see [`super::RefusalReason::TransactionNotFound`]): the
    /// payment never arrived, and sending it is safe.
    NotFound {
        /// Al-Qimah's message (sanitized).
        message: String,
    },
}

/// What [`super::AlQimahClient::reconcile_payment`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciled {
    /// Al-Qimah already had the payment; nothing was sent. Its current state.
    AlreadyKnown(OperationReport),
    /// Al-Qimah had never seen the payment, so it was sent now, once. Its answer.
    Sent(OperationReport),
}

impl Reconciled {
    /// The operation's report, whichever way it was obtained.
    pub fn report(&self) -> &OperationReport {
        match self {
            Reconciled::AlreadyKnown(r) | Reconciled::Sent(r) => r,
        }
    }

    /// Whether the payment was sent by this call.
    pub fn was_sent(&self) -> bool {
        matches!(self, Reconciled::Sent(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_ids_are_bounded_and_canonical() {
        assert_eq!(TransactionId::parse("1234").unwrap().get(), 1234);
        assert_eq!(
            TransactionId::parse("9007199254740991").unwrap().get(),
            MAX_TRANSACTION_ID
        );
        for bad in [
            "",
            "0",
            "0123",
            "-1",
            "+1",
            "12a",
            "TXN789",
            "9007199254740992",
            " 1",
        ] {
            assert!(TransactionId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(TransactionId::new(0).is_err());
        let id = TransactionId::new(42).unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "42");
        assert_eq!(serde_json::from_str::<TransactionId>("42").unwrap(), id);
        assert!(serde_json::from_str::<TransactionId>("0").is_err());
    }

    #[test]
    fn mobile_numbers_follow_the_documented_shapes_and_are_masked() {
        for ok in [
            "777777777",
            "01234567",
            "10234567",
            "777 777-777",
            "7312345",
        ] {
            assert!(MobileNumber::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "777", "77777777777", "7777x7777", "+967777777777"] {
            assert!(MobileNumber::parse(bad).is_err(), "{bad}");
        }
        let m = MobileNumber::parse("777123456").unwrap();
        assert_eq!(format!("{m} {m:?}"), "77*****56 MobileNumber(77*****56)");
    }

    #[test]
    fn amounts_codes_quantities_and_services_are_bounded() {
        assert!(Amount::new(0).is_err());
        assert!(Amount::new(MAX_AMOUNT + 1).is_err());
        assert_eq!(Amount::new(100).unwrap().get(), 100);
        assert!(ProductCode::parse("PREWhatsApp").is_ok());
        assert!(ProductCode::parse("pubg_60").is_ok());
        for bad in ["", "a b", "x\"y", &"a".repeat(65)] {
            assert!(ProductCode::parse(bad).is_err(), "{bad}");
        }
        assert!(Quantity::new(0).is_err());
        assert!(Quantity::new(MAX_QUANTITY + 1).is_err());
        assert!(ServiceRef::new(0, 1).is_err(), "network 0 is not a payment");
        assert!(ServiceRef::new(1, 0).is_err());
        assert_eq!(ServiceRef::new(1, 103).unwrap().service(), 103);
    }

    #[test]
    fn game_fields_are_bounded_and_debug_shows_only_codes() {
        let fields = GameFields::new()
            .with("PlayerID", "5123456789")
            .unwrap()
            .with("EmailAddress", "player@example.com")
            .unwrap();
        let shown = format!("{fields:?}");
        assert!(!shown.contains("player@example.com"), "{shown}");
        assert!(shown.contains("PlayerID"), "{shown}");
        assert!(GameFields::new().with("Player ID", "x").is_err());
        assert!(GameFields::new().with("PlayerID", "").is_err());
        assert!(GameFields::new().with("PlayerID", "a\nb").is_err());
        let mut many = GameFields::new();
        for i in 0..MAX_GAME_FIELDS {
            many = many.with(&format!("F{i}"), "v").unwrap();
        }
        assert!(many.with("One_more", "v").is_err());
    }

    #[test]
    fn prices_keep_their_decimal_text() {
        for ok in ["5227", "2445990.29131", "-3", "0.9"] {
            assert_eq!(Price::parse(ok).unwrap().as_str(), ok);
        }
        for bad in ["", "1.", ".5", "1e3", "12a", "--1", "1.2.3"] {
            assert!(Price::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn webhook_codes_are_random_secret_and_compared_in_constant_time() {
        let a = WebHookCode::generate();
        let b = WebHookCode::generate();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(a.expose_secret().len(), 32);
        assert!(a.expose_secret().bytes().all(|c| HEX.contains(&c)));
        assert!(a.matches(a.expose_secret()));
        assert!(!a.matches(b.expose_secret()));
        assert!(!a.matches(""));
        assert!(!format!("{a:?}").contains(a.expose_secret()));

        let stored = WebHookCode::from_stored(SecretString::from(a.expose_secret())).unwrap();
        assert_eq!(stored, a);
        assert!(WebHookCode::from_stored(SecretString::from("short")).is_err());
        assert!(WebHookCode::from_stored(SecretString::from("has space in it 123")).is_err());
    }

    #[test]
    fn operation_status_codes() {
        for s in [
            OperationStatus::Succeeded,
            OperationStatus::Failed,
            OperationStatus::Pending,
        ] {
            assert_eq!(OperationStatus::from_code(i64::from(s.code())), Some(s));
        }
        assert_eq!(OperationStatus::from_code(2), None);
        assert!(!OperationStatus::Pending.is_final());
    }
}
