//! Identifiers and names that are part of Handover's durable contract.
//!
//! Every value here is written to the store and read back by later versions of
//! the engine, so their string forms must never change meaning.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The identity of one journey (one run of a workflow).
///
/// UUIDv7, so ids sort by creation time and index well.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JourneyId(Uuid);

impl JourneyId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// Wraps an existing UUID (for callers that choose their own ids).
    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for JourneyId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JourneyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for JourneyId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s.trim()).map(Self)
    }
}

/// A key that makes an outbound effect idempotent.
///
/// Derived deterministically from the journey id and a label, so it is the
/// same across retries, crashes and engine restarts.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IdempotencyKey(String);

/// Namespace for idempotency keys (a fixed, random UUID: never change it, keys
/// already handed to providers were derived from it).
const KEY_NAMESPACE: Uuid = Uuid::from_u128(0x6a1d_3c2e_7b9f_4e51_a0c4_52d8_91be_0f37);

impl IdempotencyKey {
    /// The key for `label` within `journey`: a UUIDv5, so it fits providers
    /// that require a UUID (service operations' `Request-Correlation-Id`).
    pub fn derive(journey: JourneyId, label: &str) -> Self {
        let mut name = journey.as_uuid().as_bytes().to_vec();
        name.extend_from_slice(label.as_bytes());
        Self(Uuid::new_v5(&KEY_NAMESPACE, &name).to_string())
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key as a UUID.
    pub fn as_uuid(&self) -> Uuid {
        // Keys are only ever built by `derive`, which produces a UUID.
        Uuid::parse_str(&self.0).unwrap_or_default()
    }

    /// A short numeric form (15 decimal digits) for providers whose ids are
    /// numbers, e.g. Al-Qimah's `TransactionID`.
    pub fn as_numeric(&self) -> u64 {
        let bytes = self.as_uuid().as_u128().to_be_bytes();
        let mut top = [0u8; 8];
        top.copy_from_slice(&bytes[..8]);
        u64::from_be_bytes(top) % 1_000_000_000_000_000
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Validates a name used as a durable identifier: a signal name or a step
/// name. Lower-case ASCII letters, digits, `.`, `-` and `_`, 1 to 64 chars.
pub(crate) fn validate_name(kind: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{kind} name {name:?} is invalid: use 1-64 characters of a-z, 0-9, '.', '-' or '_'"
        ))
    }
}

/// The name of a signal a journey can wait for (e.g. `otp-code`,
/// `reach.purchase`). Part of the durable contract between senders and
/// workflows.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SignalName(String);

impl SignalName {
    /// Checks and wraps a signal name.
    pub fn new(name: impl Into<String>) -> Result<Self, String> {
        let name = name.into();
        validate_name("signal", &name)?;
        Ok(Self(name))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SignalName {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<SignalName> for String {
    fn from(value: SignalName) -> Self {
        value.0
    }
}

impl fmt::Display for SignalName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key by which an incoming callback finds its journey, e.g. a provider's
/// transaction id. Written as `namespace:value` (`reach.txn:TX-1`), so that
/// equal values from different providers never collide.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CorrelationKey(String);

impl CorrelationKey {
    /// Builds `namespace:value`. The namespace follows the name rules; the
    /// value is any non-empty string up to 200 characters.
    pub fn new(namespace: &str, value: impl AsRef<str>) -> Result<Self, String> {
        validate_name("correlation namespace", namespace)?;
        let value = value.as_ref().trim();
        if value.is_empty() || value.len() > 200 {
            return Err(format!(
                "correlation value for {namespace:?} must be 1-200 characters"
            ));
        }
        Ok(Self(format!("{namespace}:{value}")))
    }

    /// The full `namespace:value` string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value part (what operators search by).
    pub fn value(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, v)| v)
    }

    /// Parses a stored `namespace:value` string.
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.split_once(':') {
            Some((ns, value)) => Self::new(ns, value),
            None => Err(format!("correlation key {raw:?} has no namespace")),
        }
    }
}

impl fmt::Display for CorrelationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What kind of business key a journey is found by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BusinessKeyKind {
    /// A phone number: personal data, shown masked everywhere.
    Msisdn,
    /// An order id.
    OrderId,
    /// A transaction or payment reference.
    TransactionId,
    /// Anything else a workflow chooses.
    Other,
}

impl BusinessKeyKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Msisdn => "msisdn",
            Self::OrderId => "order_id",
            Self::TransactionId => "transaction_id",
            Self::Other => "other",
        }
    }

    pub(crate) fn parse(raw: &str) -> Self {
        match raw {
            "msisdn" => Self::Msisdn,
            "order_id" => Self::OrderId,
            "transaction_id" => Self::TransactionId,
            _ => Self::Other,
        }
    }
}

/// The key operators search a journey by (`handover journeys list --key`).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BusinessKey {
    /// What the value is.
    pub kind: BusinessKeyKind,
    /// The value, normalised (digits only for MSISDNs).
    pub value: String,
}

impl BusinessKey {
    /// An MSISDN key; non-digits are dropped so `+966 5x` and `9665x` match.
    pub fn msisdn(value: &str) -> Self {
        Self {
            kind: BusinessKeyKind::Msisdn,
            value: value.chars().filter(char::is_ascii_digit).collect(),
        }
    }

    /// An order id key.
    pub fn order_id(value: impl Into<String>) -> Self {
        Self {
            kind: BusinessKeyKind::OrderId,
            value: value.into(),
        }
    }

    /// A transaction id key.
    pub fn transaction_id(value: impl Into<String>) -> Self {
        Self {
            kind: BusinessKeyKind::TransactionId,
            value: value.into(),
        }
    }

    /// The value as it may be shown to people: MSISDNs masked.
    pub fn display_value(&self) -> String {
        match self.kind {
            BusinessKeyKind::Msisdn => mask_msisdn(&self.value),
            _ => self.value.clone(),
        }
    }
}

impl fmt::Debug for BusinessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), self.display_value())
    }
}

/// Masks a phone number for logs and operator output: keeps the first 3 and
/// last 2 digits (`966*******12`). Short values are masked entirely.
pub fn mask_msisdn(msisdn: &str) -> String {
    let digits: Vec<char> = msisdn.chars().collect();
    if digits.len() < 7 {
        return "*".repeat(digits.len().max(3));
    }
    let keep_head = 3;
    let keep_tail = 2;
    let mut out = String::with_capacity(digits.len());
    for (i, c) in digits.iter().enumerate() {
        if i < keep_head || i >= digits.len() - keep_tail {
            out.push(*c);
        } else {
            out.push('*');
        }
    }
    out
}

/// Who performed a manual action (an operator's name, or `system`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Actor(pub String);

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_stable_and_distinct() {
        let j = JourneyId::from_uuid(Uuid::from_u128(42));
        let a = IdempotencyKey::derive(j, "charge");
        assert_eq!(a, IdempotencyKey::derive(j, "charge"));
        assert_ne!(a, IdempotencyKey::derive(j, "reserve"));
        assert_ne!(
            a,
            IdempotencyKey::derive(JourneyId::from_uuid(Uuid::from_u128(43)), "charge")
        );
        // A frozen value: changing the derivation would re-key live effects.
        assert_eq!(
            a.as_str(),
            IdempotencyKey::derive(j, "charge").as_uuid().to_string()
        );
        assert!(a.as_numeric() < 1_000_000_000_000_000);
    }

    #[test]
    fn names_are_validated() {
        assert!(SignalName::new("otp-code").is_ok());
        assert!(SignalName::new("reach.purchase").is_ok());
        assert!(SignalName::new("").is_err());
        assert!(SignalName::new("OTP").is_err());
        assert!(SignalName::new("a,b").is_err());
        assert!(CorrelationKey::new("reach.txn", "TX-1").is_ok());
        assert!(CorrelationKey::new("reach.txn", "").is_err());
        assert_eq!(
            CorrelationKey::parse("reach.txn:TX:1").unwrap().as_str(),
            "reach.txn:TX:1"
        );
    }

    #[test]
    fn msisdns_are_masked() {
        assert_eq!(mask_msisdn("966501234512"), "966*******12");
        assert_eq!(mask_msisdn("123"), "***");
        let key = BusinessKey::msisdn("+966 50 123 4512");
        assert_eq!(key.value, "966501234512");
        assert_eq!(format!("{key:?}"), "msisdn:966*******12");
    }
}
