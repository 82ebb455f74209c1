//! Validated values the Mobily client sends and receives: numbers, ids, keys and amounts.
//!
//! Every value is checked when it is built, so a request that reaches the wire is
//! well-formed; the simulator deserializes the same types, so it refuses exactly what the
//! client would never send. Personal data ([`Msisdn`], [`NationalId`]) and secrets
//! ([`OtpCode`]) are masked in `Debug` and `Display`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Operation, Provider, ProviderError};
use crate::redact::mask_msisdn;

/// The operation named in errors about locally invalid values.
const VALIDATE: Operation = Operation::new("mobily.validate");

pub(crate) fn invalid(message: impl Into<String>) -> ProviderError {
    ProviderError::Rejected {
        provider: Provider::Mobily,
        operation: VALIDATE,
        status: None,
        message: message.into(),
    }
}

fn is_id_text(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Declares an opaque id: ASCII letters, digits, `-`, `_`, `.`, `:`, at most `$max` bytes.
macro_rules! opaque_id {
    ($(#[$doc:meta])* $name:ident, $max:expr, $what:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Longest accepted value, in bytes.
            pub const MAX_LEN: usize = $max;

            /// Validates an id.
            pub fn new(value: impl Into<String>) -> Result<Self, ProviderError> {
                let value = value.into();
                if is_id_text(&value, $max) {
                    Ok(Self(value))
                } else {
                    Err(invalid(concat!($what, " must be 1 to ", stringify!($max),
                        " letters, digits, '-', '_', '.' or ':'")))
                }
            }

            /// The id text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(value: String) -> Result<Self, String> {
                Self::new(value).map_err(|_| concat!("invalid ", $what).to_owned())
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

opaque_id!(
    /// A sellable product offering (`productOfferingId`).
    ProductOfferingId, 64, "productOfferingId"
);
opaque_id!(
    /// Mobily's shopping cart (`shoppingCartId`).
    CartId, 64, "shoppingCartId"
);
opaque_id!(
    /// Mobily's order number (`orderId`), returned by `postProductOrder`.
    OrderId, 64, "orderId"
);
opaque_id!(
    /// A number reservation (`reservationId`).
    ReservationId, 64, "reservationId"
);
opaque_id!(
    /// An OTP transaction (`otpId`), returned by generation.
    OtpId, 64, "otpId"
);
opaque_id!(
    /// Nafath's transaction (`transactionId`), returned by initiate.
    NafathTransactionId, 64, "transactionId"
);
opaque_id!(
    /// Our correlation id for a Nafath request (`requestId`), echoed in the webhook. Derive
    /// it from the journey id.
    NafathRequestId, 64, "requestId"
);
opaque_id!(
    /// The payment gateway session (`sessionId`).
    SessionId, 64, "sessionId"
);
opaque_id!(
    /// The payment gateway's payment (`paymentId`).
    PaymentId, 64, "paymentId"
);
opaque_id!(
    /// A TCC registration (`registrationId`).
    RegistrationId, 64, "registrationId"
);

/// The key that makes an effectful call happen at most once: sent as the
/// `X-Idempotency-Key` header (and, where the document names a field for our reference, in
/// that field too: `externalOrderId`, `paymentTransId`, `channelTransactionId`).
///
/// Derive it from the journey id and the step so it is stable across retries and crashes
/// ([`IdempotencyKey::for_step`]). 8 to 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Shortest accepted key.
    pub const MIN_LEN: usize = 8;
    /// Longest accepted key.
    pub const MAX_LEN: usize = 64;

    /// Validates a key: 8 to 64 letters, digits, `-`, `_`, `.` or `:`.
    pub fn new(value: impl Into<String>) -> Result<Self, ProviderError> {
        let value = value.into();
        if value.len() >= Self::MIN_LEN && is_id_text(&value, Self::MAX_LEN) {
            Ok(Self(value))
        } else {
            Err(invalid(
                "idempotency key must be 8 to 64 letters, digits, '-', '_', '.' or ':'",
            ))
        }
    }

    /// `"<journey>:<step>"`, the usual derivation.
    pub fn for_step(journey: &str, step: &str) -> Result<Self, ProviderError> {
        Self::new(format!("{journey}:{step}"))
    }

    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        Self::new(value).map_err(|_| "invalid idempotency key".to_owned())
    }
}

impl From<IdempotencyKey> for String {
    fn from(value: IdempotencyKey) -> String {
        value.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Saudi mobile number, on the wire in international form without `+`: `9665XXXXXXXX`.
/// `Debug` and `Display` mask it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Msisdn(String);

impl Msisdn {
    /// Parses `05XXXXXXXX`, `5XXXXXXXX`, `9665XXXXXXXX`, `+9665XXXXXXXX` or
    /// `009665XXXXXXXX` (spaces and dashes ignored) into `9665XXXXXXXX`.
    pub fn parse(text: &str) -> Result<Self, ProviderError> {
        let compact: String = text.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        let national = compact
            .strip_prefix("+966")
            .or_else(|| compact.strip_prefix("00966"))
            .or_else(|| compact.strip_prefix("966"))
            .or_else(|| compact.strip_prefix('0'))
            .unwrap_or(&compact);
        let wire = format!("966{national}");
        if is_saudi_mobile(&wire) {
            Ok(Self(wire))
        } else {
            Err(invalid("msisdn must be a Saudi mobile number 05XXXXXXXX"))
        }
    }

    /// The wire form `9665XXXXXXXX`, for request bodies only. Never log it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `9665` followed by eight digits.
pub(crate) fn is_saudi_mobile(s: &str) -> bool {
    s.len() == 12 && s.starts_with("9665") && s.bytes().all(|b| b.is_ascii_digit())
}

impl TryFrom<String> for Msisdn {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        // Strict on the wire: only the international form.
        if is_saudi_mobile(&value) {
            Ok(Self(value))
        } else {
            Err("msisdn must be 9665XXXXXXXX".to_owned())
        }
    }
}

impl From<Msisdn> for String {
    fn from(value: Msisdn) -> String {
        value.0
    }
}

impl fmt::Debug for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Msisdn({})", mask_msisdn(&self.0))
    }
}

impl fmt::Display for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask_msisdn(&self.0))
    }
}

/// A Saudi national id (10 digits starting with 1) or Iqama number (starting with 2).
/// Personal data: `Debug` and `Display` show only the first digit (the id type).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NationalId(String);

impl NationalId {
    /// Validates a 10-digit id starting with 1 or 2.
    pub fn parse(text: &str) -> Result<Self, ProviderError> {
        let text = text.trim();
        if is_national_id(text) {
            Ok(Self(text.to_owned()))
        } else {
            Err(invalid(
                "nationalId must be 10 digits starting with 1 (citizen) or 2 (resident)",
            ))
        }
    }

    /// Whether it is a citizen's id or a resident's Iqama.
    pub fn id_type(&self) -> IdType {
        if self.0.starts_with('1') {
            IdType::NationalId
        } else {
            IdType::Iqama
        }
    }

    /// The id, for request bodies only. Never log it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_national_id(s: &str) -> bool {
    s.len() == 10
        && (s.starts_with('1') || s.starts_with('2'))
        && s.bytes().all(|b| b.is_ascii_digit())
}

impl TryFrom<String> for NationalId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        if is_national_id(&value) {
            Ok(Self(value))
        } else {
            Err("nationalId must be 10 digits starting with 1 or 2".to_owned())
        }
    }
}

impl From<NationalId> for String {
    fn from(value: NationalId) -> String {
        value.0
    }
}

impl fmt::Debug for NationalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NationalId({self})")
    }
}

impl fmt::Display for NationalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}*********", &self.0[..1])
    }
}

/// `idType` on the wire, derived from the first digit of a [`NationalId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IdType {
    /// A Saudi citizen's national id (starts with 1).
    NationalId,
    /// A resident's Iqama (starts with 2).
    Iqama,
}

/// An eSIM's ICCID: 19 or 20 digits starting with `89`. `Display` shows the last four.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Iccid(String);

impl Iccid {
    /// Validates an ICCID.
    pub fn parse(text: &str) -> Result<Self, ProviderError> {
        if is_iccid(text) {
            Ok(Self(text.to_owned()))
        } else {
            Err(invalid("iccid must be 19 or 20 digits starting with 89"))
        }
    }

    /// The ICCID text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_iccid(s: &str) -> bool {
    (19..=20).contains(&s.len()) && s.starts_with("89") && s.bytes().all(|b| b.is_ascii_digit())
}

impl TryFrom<String> for Iccid {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        Self::parse(&value).map_err(|_| "invalid iccid".to_owned())
    }
}

impl From<Iccid> for String {
    fn from(value: Iccid) -> String {
        value.0
    }
}

impl fmt::Display for Iccid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "…{}", &self.0[self.0.len() - 4..])
    }
}

/// A one-time code the customer typed: 4 to 8 digits. A secret: `Debug` shows
/// `OtpCode([REDACTED])`, and it has no `Display`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OtpCode(String);

impl OtpCode {
    /// Validates a code.
    pub fn parse(text: &str) -> Result<Self, ProviderError> {
        let text = text.trim();
        if (4..=8).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(text.to_owned()))
        } else {
            Err(invalid("the one-time code must be 4 to 8 digits"))
        }
    }

    /// The code, for the request body only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OtpCode {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        Self::parse(&value).map_err(|_| "invalid otp".to_owned())
    }
}

impl From<OtpCode> for String {
    fn from(value: OtpCode) -> String {
        value.0
    }
}

impl fmt::Debug for OtpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OtpCode([REDACTED])")
    }
}

/// Largest amount the client handles, in halalas (SAR 1 000 000).
pub const MAX_HALALAS: u64 = 100_000_000;

/// An amount in Saudi riyals with halalas, on the wire as a string with two decimals
/// (`"30.00"`) next to `"currency": "SAR"`. Zero is allowed (a zero deposit); payments check
/// for a positive amount themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sar {
    halalas: u64,
}

impl Sar {
    /// The ISO currency code sent with every amount.
    pub const CURRENCY: &'static str = "SAR";

    /// An amount in halalas (1/100 riyal).
    pub fn halalas(halalas: u64) -> Result<Self, ProviderError> {
        if halalas > MAX_HALALAS {
            return Err(invalid("amount must be at most SAR 1000000"));
        }
        Ok(Self { halalas })
    }

    /// A whole number of riyals.
    pub fn riyals(riyals: u64) -> Result<Self, ProviderError> {
        Self::halalas(riyals.saturating_mul(100))
    }

    /// Parses `"30"`, `"30.5"` or `"30.50"`.
    pub fn parse(text: &str) -> Result<Self, ProviderError> {
        let halalas = if text == "0" || text == "0.00" || text == "0.0" {
            Some(0)
        } else {
            crate::mobitel::parse_amount_cents(text)
        };
        halalas
            .ok_or_else(|| invalid("amount must be riyals with at most two decimals"))
            .and_then(Self::halalas)
    }

    /// The amount in halalas.
    pub fn as_halalas(self) -> u64 {
        self.halalas
    }

    /// Whether the amount is zero.
    pub fn is_zero(self) -> bool {
        self.halalas == 0
    }

    /// The wire form, always with two decimals: `"30.00"`.
    pub fn to_wire(self) -> String {
        format!("{}.{:02}", self.halalas / 100, self.halalas % 100)
    }
}

impl TryFrom<String> for Sar {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        Self::parse(&value).map_err(|_| "amount must be riyals with two decimals".to_owned())
    }
}

impl From<Sar> for String {
    fn from(value: Sar) -> String {
        value.to_wire()
    }
}

impl fmt::Display for Sar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SAR {}", self.to_wire())
    }
}

/// Prepaid or postpaid (`paymentType` of a product, `lineType` of an eligibility check).
/// Postpaid adds the overdue-bills and security-deposit steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentType {
    /// Prepaid.
    Prepaid,
    /// Postpaid: overdue bills (step 8) and security deposit (step 10) apply.
    Postpaid,
}

/// A reason or message from Mobily, sanitized, at most [`crate::redact::MAX_MESSAGE_CHARS`].
pub(crate) fn message(text: Option<&str>, fallback: &str) -> String {
    match text.map(crate::redact::sanitize_message) {
        Some(m) if !m.is_empty() => m,
        _ => fallback.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msisdns_are_normalised_strict_on_the_wire_and_masked() {
        for form in [
            "0551234567",
            "551234567",
            "966551234567",
            "+966 55 123 4567",
            "00966551234567",
        ] {
            assert_eq!(
                Msisdn::parse(form).unwrap().as_str(),
                "966551234567",
                "{form}"
            );
        }
        for bad in ["0451234567", "05512345678", "96655123456", "abc"] {
            assert!(Msisdn::parse(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<Msisdn>(r#""0551234567""#).is_err());
        let m = Msisdn::parse("0551234567").unwrap();
        assert_eq!(format!("{m} {m:?}"), "96********67 Msisdn(96********67)");
    }

    #[test]
    fn national_ids_know_their_type_and_hide_their_digits() {
        let citizen = NationalId::parse("1012345678").unwrap();
        assert_eq!(citizen.id_type(), IdType::NationalId);
        assert_eq!(
            NationalId::parse("2012345678").unwrap().id_type(),
            IdType::Iqama
        );
        assert!(NationalId::parse("3012345678").is_err());
        assert!(NationalId::parse("101234567").is_err());
        let shown = format!("{citizen} {citizen:?}");
        assert!(!shown.contains("012345678"), "{shown}");
        assert_eq!(serde_json::to_string(&IdType::Iqama).unwrap(), r#""IQAMA""#);
    }

    #[test]
    fn amounts_have_two_decimals_on_the_wire() {
        assert_eq!(Sar::riyals(30).unwrap().to_wire(), "30.00");
        assert_eq!(Sar::parse("30.5").unwrap().to_wire(), "30.50");
        assert_eq!(Sar::parse("0.00").unwrap().as_halalas(), 0);
        assert_eq!(
            serde_json::to_string(&Sar::halalas(1205).unwrap()).unwrap(),
            r#""12.05""#
        );
        for bad in ["-1", "1.234", "", "abc", "1e3"] {
            assert!(Sar::parse(bad).is_err(), "{bad}");
        }
        assert!(Sar::riyals(1_000_001).is_err());
    }

    #[test]
    fn ids_keys_and_codes_are_validated() {
        assert!(CartId::new("cart-1").is_ok());
        assert!(CartId::new("").is_err());
        assert!(CartId::new("a b").is_err());
        assert!(CartId::new("x".repeat(65)).is_err());
        assert!(IdempotencyKey::new("short").is_err());
        assert_eq!(
            IdempotencyKey::for_step("journey-42", "reserve")
                .unwrap()
                .as_str(),
            "journey-42:reserve"
        );
        let code = OtpCode::parse("123456").unwrap();
        assert_eq!(format!("{code:?}"), "OtpCode([REDACTED])");
        assert!(OtpCode::parse("12a4").is_err());
        assert!(Iccid::parse("8996601234567890123").is_ok());
        assert_eq!(
            Iccid::parse("8996601234567890123").unwrap().to_string(),
            "…0123"
        );
        assert!(Iccid::parse("1234").is_err());
    }
}
