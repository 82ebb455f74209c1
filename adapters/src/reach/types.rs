//! Validated values the Reach client sends and receives: ids, device and SIM numbers, the
//! port-in details, money, and the status codes shared with the simulator.
//!
//! Personal data is masked in `Debug` and `Display` (numbers keep their first and last two
//! digits); the port-in PIN is a [`SecretString`] and never printed.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;

use crate::error::{Operation, Provider, ProviderError};
use crate::redact::mask_msisdn;

/// The operation named in errors about invalid input, refused before anything is sent.
pub const INPUT: Operation = Operation::new("reach.input");

/// Longest id accepted (transaction, customer, client account, plan), in characters.
pub const MAX_ID_CHARS: usize = 64;

pub(crate) fn invalid_input(message: impl Into<String>) -> ProviderError {
    ProviderError::Rejected {
        provider: Provider::Reach,
        operation: INPUT,
        status: None,
        message: message.into(),
    }
}

/// Id characters: ASCII letters, digits and `-_.:`.
pub(crate) fn is_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_ID_CHARS
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

macro_rules! reach_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks and wraps the id: 1 to 64 ASCII letters, digits or `-_.:`.
            pub fn new(id: impl Into<String>) -> Result<Self, ProviderError> {
                let id = id.into();
                if is_id(&id) {
                    Ok(Self(id))
                } else {
                    Err(invalid_input(concat!(
                        $what,
                        " must be 1 to 64 ASCII letters, digits or -_.:"
                    )))
                }
            }

            /// The id as sent on the wire.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ProviderError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
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

reach_id!(
    /// Reach's id of an asynchronous operation (purchase, activation, port-in update):
    /// "Use it to poll the corresponding status endpoint" (guide 1.4). Part of the journey's
    /// durable state.
    TransactionId,
    "transactionId"
);
reach_id!(
    /// The platform's id of a subscriber, "Created on first purchase. Required for all
    /// subsequent calls" (guide 1.4). Part of the journey's durable state.
    CustomerId,
    "customerId"
);
reach_id!(
    /// Our own reference for the account, "You supply this during purchase" (guide 1.4).
    /// The purchase's idempotency key: one `clientAccountId` names one purchase, for good
    /// (see the [module docs](super)).
    ClientAccountId,
    "clientAccountId"
);

reach_id!(
    /// The id of a notification event (`eventId` of `POST /apisvc/v0/notification` bodies,
    /// our choice of name): the de-duplication key of Reach's retries.
    EventId,
    "eventId"
);

/// A plan's `serviceCode`, used as `planId` ("Must be passed exactly as received", guide
/// 1.4): 1 to 64 visible ASCII characters, kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PlanId(String);

impl PlanId {
    /// Checks and wraps a plan id.
    pub fn new(id: impl Into<String>) -> Result<Self, ProviderError> {
        let id = id.into();
        if !id.is_empty() && id.len() <= MAX_ID_CHARS && id.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(Self(id))
        } else {
            Err(invalid_input(
                "planId must be 1 to 64 visible ASCII characters",
            ))
        }
    }

    /// The id as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PlanId {
    type Error = ProviderError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<PlanId> for String {
    fn from(value: PlanId) -> Self {
        value.0
    }
}

impl fmt::Display for PlanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn all_digits(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_digit())
}

/// The Luhn check digit test used by IMEIs and ICCIDs. Shared with the simulator.
pub(crate) fn luhn_valid(digits: &str) -> bool {
    if digits.is_empty() || !all_digits(digits) {
        return false;
    }
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

macro_rules! masked_number {
    ($(#[$doc:meta])* $name:ident, $check:expr, $message:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// Checks and wraps the number.
            pub fn parse(text: &str) -> Result<Self, ProviderError> {
                let compact: String =
                    text.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
                let check: fn(&str) -> bool = $check;
                if check(&compact) {
                    Ok(Self(compact))
                } else {
                    Err(invalid_input($message))
                }
            }

            /// The full number, for the request only. Never log it.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), mask_msisdn(&self.0))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&mask_msisdn(&self.0))
            }
        }
    };
}

masked_number!(
    /// A device's IMEI: "the 15-digit number that uniquely identifies a mobile device"
    /// (guide 1.4). Whether it is a *valid* device is Reach's answer (`isValid`), so the
    /// check digit is not enforced here. Masked when printed.
    Imei,
    |s| s.len() == 15 && all_digits(s),
    "IMEI must be 15 digits"
);
masked_number!(
    /// A SIM card's ICCID: "the 19-20 digit number printed on a physical SIM card" (guide
    /// 1.4). Validity is Reach's answer (`/iccid/validate`). Masked when printed.
    IccId,
    |s| (19..=20).contains(&s.len()) && all_digits(s),
    "ICCID must be 19 or 20 digits"
);
masked_number!(
    /// A carrier account number at the losing carrier (`oldCarrierAccountNumber`): 1 to 32
    /// ASCII letters or digits. Masked when printed.
    CarrierAccountNumber,
    |s| !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_alphanumeric()),
    "oldCarrierAccountNumber must be 1 to 32 letters or digits"
);

/// A US phone number (MDN): "numberToPort - 10-digit number to transfer" (guide Scenario
/// E). `+1` and `1` prefixes are removed. Masked when printed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Mdn(String);

impl Mdn {
    /// Parses `2125550100`, `12125550100` or `+1 212-555-0100`.
    pub fn parse(text: &str) -> Result<Self, ProviderError> {
        let compact: String = text
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
            .collect();
        let national = compact
            .strip_prefix("+1")
            .or_else(|| compact.strip_prefix('1').filter(|r| r.len() == 10))
            .unwrap_or(&compact);
        if is_mdn(national) {
            Ok(Self(national.to_owned()))
        } else {
            Err(invalid_input("MDN must be a 10-digit US number"))
        }
    }

    /// The 10 digits, for the request only. Never log it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Ten digits, not starting with 0 or 1 (NANP). Shared with the simulator.
pub(crate) fn is_mdn(text: &str) -> bool {
    text.len() == 10 && all_digits(text) && !text.starts_with(['0', '1'])
}

impl fmt::Debug for Mdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mdn({})", mask_msisdn(&self.0))
    }
}

impl fmt::Display for Mdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask_msisdn(&self.0))
    }
}

/// A US ZIP code: `12345` or `12345-6789`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ZipCode(String);

impl ZipCode {
    /// Checks and wraps a ZIP code.
    pub fn parse(text: &str) -> Result<Self, ProviderError> {
        let text = text.trim();
        if is_zip(text) {
            Ok(Self(text.to_owned()))
        } else {
            Err(invalid_input("ZIP code must be 12345 or 12345-6789"))
        }
    }

    /// The ZIP code as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `12345` or `12345-6789`. Shared with the simulator.
pub(crate) fn is_zip(text: &str) -> bool {
    match text.split_once('-') {
        None => text.len() == 5 && all_digits(text),
        Some((five, four)) => {
            five.len() == 5 && all_digits(five) && four.len() == 4 && all_digits(four)
        }
    }
}

/// The losing carrier's name (`oldCarrier`, "example: T-Mobile"): 1 to 64 printable
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CarrierName(String);

impl CarrierName {
    /// Checks and wraps a carrier name.
    pub fn new(name: &str) -> Result<Self, ProviderError> {
        let name = name.trim();
        if !name.is_empty() && name.chars().count() <= 64 && !name.chars().any(char::is_control) {
            Ok(Self(name.to_owned()))
        } else {
            Err(invalid_input(
                "oldCarrier must be 1 to 64 printable characters",
            ))
        }
    }

    /// The name as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The transfer PIN / account PIN at the losing carrier (`password`). A secret: never in
/// `Debug`, logs or errors.
#[derive(Clone)]
pub struct PortPin(SecretString);

impl PortPin {
    /// Checks and wraps a PIN: 1 to 32 visible ASCII characters (carriers use 4 to 15 digit
    /// PINs, some alphanumeric passcodes). The error never quotes it.
    pub fn new(pin: SecretString) -> Result<Self, ProviderError> {
        let value = pin.expose_secret();
        if !value.is_empty() && value.len() <= 32 && value.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(Self(pin))
        } else {
            Err(invalid_input(
                "the port-in PIN must be 1 to 32 visible ASCII characters",
            ))
        }
    }

    /// The secret, to be put in the request body only.
    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

impl fmt::Debug for PortPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PortPin([REDACTED])")
    }
}

/// Serializes a secret's value (serde support for `SecretString` is deserialize-only on
/// purpose). Used only by the request bodies.
pub(crate) fn expose<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
}

/// A brand-hosted URL the platform sends the customer back to after payment
/// (`redirectUrl`). The guide requires `https://` (1.4, 2.2); plain `http://` is accepted
/// only for loopback hosts, so the simulator can be used end to end on one machine.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RedirectUrl(Url);

/// Longest redirect URL accepted.
pub const MAX_URL_CHARS: usize = 2048;

impl RedirectUrl {
    /// Checks a redirect URL.
    pub fn parse(text: &str) -> Result<Self, ProviderError> {
        let url =
            Url::parse(text).map_err(|_| invalid_input("redirectUrl must be an absolute URL"))?;
        if is_acceptable_redirect(&url) {
            Ok(Self(url))
        } else {
            Err(invalid_input(
                "redirectUrl must be https:// (http:// only on loopback), without credentials \
                 or fragment, at most 2048 characters",
            ))
        }
    }

    /// The URL.
    pub fn as_url(&self) -> &Url {
        &self.0
    }
}

/// The redirect URL rule, shared with the simulator.
pub(crate) fn is_acceptable_redirect(url: &Url) -> bool {
    let loopback = matches!(
        url.host(),
        Some(url::Host::Ipv4(ip)) if ip.is_loopback()
    ) || matches!(url.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
        || url.host_str() == Some("localhost");
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    scheme_ok
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.fragment().is_none()
        && url.as_str().len() <= MAX_URL_CHARS
}

/// Which SIM a purchase ships or provisions (`simType`, guide Scenario A step 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SimType {
    /// A physical SIM card, shipped.
    Psim,
    /// An eSIM, provisioned remotely.
    Esim,
}

impl SimType {
    /// The wire form, `PSIM` or `ESIM`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SimType::Psim => "PSIM",
            SimType::Esim => "ESIM",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "PSIM" => Some(SimType::Psim),
            "ESIM" => Some(SimType::Esim),
            _ => None,
        }
    }
}

/// What a device or SIM supports (`mode`: "PSIM | ESIM | BOTH", guide Scenario A step 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DeviceMode {
    /// Physical SIM only.
    Psim,
    /// eSIM only.
    Esim,
    /// Either.
    Both,
}

impl DeviceMode {
    /// The wire form.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeviceMode::Psim => "PSIM",
            DeviceMode::Esim => "ESIM",
            DeviceMode::Both => "BOTH",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "PSIM" => Some(DeviceMode::Psim),
            "ESIM" => Some(DeviceMode::Esim),
            "BOTH" => Some(DeviceMode::Both),
            _ => None,
        }
    }

    /// Whether a SIM of this type can be used.
    pub fn supports(self, sim: SimType) -> bool {
        matches!(
            (self, sim),
            (DeviceMode::Both, _)
                | (DeviceMode::Psim, SimType::Psim)
                | (DeviceMode::Esim, SimType::Esim)
        )
    }
}

/// Largest amount accepted, in cents ($100 000): a sanity bound, not a business rule.
pub const MAX_USD_CENTS: u64 = 10_000_000;

/// An amount in US dollars, held in cents. On the wire a JSON number with at most two
/// decimals (`45`, `21.59`); a string of the same form is accepted when reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Usd {
    cents: u64,
}

impl Usd {
    /// An amount in cents.
    pub fn from_cents(cents: u64) -> Result<Self, ProviderError> {
        if cents > MAX_USD_CENTS {
            return Err(invalid_input("amount over $100000"));
        }
        Ok(Self { cents })
    }

    /// The amount in cents.
    pub const fn cents(self) -> u64 {
        self.cents
    }

    /// The JSON number for this amount.
    pub fn to_json(self) -> serde_json::Number {
        if self.cents.is_multiple_of(100) {
            serde_json::Number::from(self.cents / 100)
        } else {
            // cents / 100 prints back as its two-decimal form (shortest round-trip repr).
            serde_json::Number::from_f64(self.cents as f64 / 100.0)
                .unwrap_or_else(|| serde_json::Number::from(0))
        }
    }
}

impl fmt::Display for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${}.{:02}", self.cents / 100, self.cents % 100)
    }
}

/// Parses `45`, `45.5`, `21.59` into cents; anything else (negative, exponent, three
/// decimals) is `None`. Shared with the simulator.
pub(crate) fn parse_usd_cents(text: &str) -> Option<u64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || whole.len() > 9 || !all_digits(whole) {
        return None;
    }
    if fraction.len() > 2 || !all_digits(fraction) || (text.contains('.') && fraction.is_empty()) {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let fraction: u64 = match fraction.len() {
        0 => 0,
        1 => fraction.parse::<u64>().ok()? * 10,
        _ => fraction.parse().ok()?,
    };
    let cents = whole * 100 + fraction;
    (cents <= MAX_USD_CENTS).then_some(cents)
}

impl Serialize for Usd {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Usd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(serde_json::Number),
            Text(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Number(n) => n.to_string(),
            Raw::Text(t) => t,
        };
        parse_usd_cents(&text)
            .map(|cents| Usd { cents })
            .ok_or_else(|| serde::de::Error::custom("expected dollars with at most two decimals"))
    }
}

/// The status of a purchase transaction (`status` of `/product/status/{transactionId}` and
/// of `PRODUCT_PURCHASE` callbacks). The guide names `PAYMENT_PENDING`,
/// `PAYMENT_PROCESSING`, `COMPLETED` and `FAILED`; `INITIATED` (accepted, no payment link
/// yet) is our choice for the state before them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PurchaseStatusCode {
    /// Accepted; the payment link is not ready yet. Keep polling.
    Initiated,
    /// Waiting for the customer's payment at `link.url`.
    PaymentPending,
    /// The customer paid; the processor is settling.
    PaymentProcessing,
    /// Done: the customer exists (`customerId`).
    Completed,
    /// Failed (payment declined, link expired); see `paymentStatusDesc`.
    Failed,
}

impl PurchaseStatusCode {
    /// The wire form.
    pub const fn as_str(self) -> &'static str {
        match self {
            PurchaseStatusCode::Initiated => "INITIATED",
            PurchaseStatusCode::PaymentPending => "PAYMENT_PENDING",
            PurchaseStatusCode::PaymentProcessing => "PAYMENT_PROCESSING",
            PurchaseStatusCode::Completed => "COMPLETED",
            PurchaseStatusCode::Failed => "FAILED",
        }
    }

    /// Parses the wire form.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "INITIATED" => PurchaseStatusCode::Initiated,
            "PAYMENT_PENDING" => PurchaseStatusCode::PaymentPending,
            "PAYMENT_PROCESSING" => PurchaseStatusCode::PaymentProcessing,
            "COMPLETED" => PurchaseStatusCode::Completed,
            "FAILED" => PurchaseStatusCode::Failed,
            _ => return None,
        })
    }

    /// Whether the purchase will not change any more.
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            PurchaseStatusCode::Completed | PurchaseStatusCode::Failed
        )
    }
}

impl fmt::Display for PurchaseStatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The numeric line status of `/activation/status` and `ACTIVATION` callbacks (guide
/// Scenarios C and E).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActivationCode {
    /// 0: not yet submitted.
    Inactive,
    /// 1: activation in progress; keep polling.
    InProgress,
    /// 2: active (also: port complete).
    Active,
    /// 8: activation failed; see `activationMsg`.
    Failed,
    /// 9: port-in in progress; keep polling.
    PortingInProgress,
    /// 10: port-in failed; see `activationMsg`, correct with `/update/portin`.
    PortingFailed,
    /// 11: port-in cancelled by the customer or the carrier.
    PortCancelled,
    /// A code the guide does not list for activation (e.g. a suspended line).
    Other(i64),
}

impl ActivationCode {
    /// The numeric code.
    pub const fn code(self) -> i64 {
        match self {
            ActivationCode::Inactive => 0,
            ActivationCode::InProgress => 1,
            ActivationCode::Active => 2,
            ActivationCode::Failed => 8,
            ActivationCode::PortingInProgress => 9,
            ActivationCode::PortingFailed => 10,
            ActivationCode::PortCancelled => 11,
            ActivationCode::Other(code) => code,
        }
    }

    /// The status for a numeric code.
    pub const fn from_code(code: i64) -> Self {
        match code {
            0 => ActivationCode::Inactive,
            1 => ActivationCode::InProgress,
            2 => ActivationCode::Active,
            8 => ActivationCode::Failed,
            9 => ActivationCode::PortingInProgress,
            10 => ActivationCode::PortingFailed,
            11 => ActivationCode::PortCancelled,
            other => ActivationCode::Other(other),
        }
    }

    /// The guide's name (`ACTIVATION_IN_PROGRESS`...), `OTHER` for unlisted codes.
    pub const fn name(self) -> &'static str {
        match self {
            ActivationCode::Inactive => "INACTIVE",
            ActivationCode::InProgress => "ACTIVATION_IN_PROGRESS",
            ActivationCode::Active => "ACTIVE",
            ActivationCode::Failed => "ACTIVATION_FAILED",
            ActivationCode::PortingInProgress => "PORTING_IN_PROGRESS",
            ActivationCode::PortingFailed => "PORTING_FAILED",
            ActivationCode::PortCancelled => "PORT_CANCELLED",
            ActivationCode::Other(_) => "OTHER",
        }
    }
}

impl fmt::Display for ActivationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(TransactionId::new("TXN-1A2B3C").is_ok());
        assert!(CustomerId::new("").is_err());
        assert!(ClientAccountId::new("journey 42").is_err());
        assert!(ClientAccountId::new("j".repeat(65)).is_err());
        assert!(PlanId::new("PLAN/5G+").is_ok());
        assert!(PlanId::new("two words").is_err());
        let id: TransactionId = serde_json::from_str("\"TXN-1\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"TXN-1\"");
        assert!(serde_json::from_str::<TransactionId>("\"a b\"").is_err());
    }

    #[test]
    fn numbers_are_checked_and_masked() {
        let imei = Imei::parse("35-693803-564380-9").unwrap();
        assert_eq!(imei.as_str(), "356938035643809");
        assert_eq!(format!("{imei:?}"), "Imei(35***********09)");
        assert!(Imei::parse("35693803564380").is_err());
        assert!(IccId::parse("8901260123456789012").is_ok());
        assert!(IccId::parse("890126012345678901").is_err());
        for form in ["2125550100", "+1 212-555-0100", "1 (212) 555-0100"] {
            assert_eq!(Mdn::parse(form).unwrap().as_str(), "2125550100", "{form}");
        }
        assert!(Mdn::parse("0125550100").is_err());
        let mdn = Mdn::parse("2125550100").unwrap();
        assert_eq!(format!("{mdn} {mdn:?}"), "21******00 Mdn(21******00)");
        assert!(ZipCode::parse("10001-1234").is_ok());
        assert!(ZipCode::parse("1000").is_err());
        let account = CarrierAccountNumber::parse("998877665544").unwrap();
        assert!(!format!("{account:?}").contains("998877665544"));
    }

    #[test]
    fn the_pin_is_never_printed() {
        let pin = PortPin::new(SecretString::from("482916")).unwrap();
        assert_eq!(format!("{pin:?}"), "PortPin([REDACTED])");
        let err = PortPin::new(SecretString::from("48 29")).unwrap_err();
        assert!(!err.to_string().contains("48 29"), "{err}");
    }

    #[test]
    fn luhn() {
        assert!(luhn_valid("356938035643809"));
        assert!(!luhn_valid("356938035643808"));
        assert!(luhn_valid("89012601234567890121"));
        assert!(!luhn_valid(""));
    }

    #[test]
    fn redirect_urls_must_be_https_except_on_loopback() {
        assert!(RedirectUrl::parse("https://brand.example/payment/confirm").is_ok());
        assert!(RedirectUrl::parse("http://127.0.0.1:8080/return").is_ok());
        assert!(RedirectUrl::parse("http://localhost/return").is_ok());
        assert!(RedirectUrl::parse("http://brand.example/return").is_err());
        assert!(RedirectUrl::parse("https://u:p@brand.example/").is_err());
        assert!(RedirectUrl::parse("https://brand.example/#frag").is_err());
    }

    #[test]
    fn money_round_trips_as_json_numbers() {
        let usd: Usd = serde_json::from_str("21.59").unwrap();
        assert_eq!(usd.cents(), 2159);
        assert_eq!(serde_json::to_string(&usd).unwrap(), "21.59");
        assert_eq!(
            serde_json::to_string(&Usd::from_cents(4500).unwrap()).unwrap(),
            "45"
        );
        assert_eq!(
            serde_json::from_str::<Usd>("\"48.6\"").unwrap().cents(),
            4860
        );
        for bad in ["-1", "\"1e3\"", "1.234", "\"\"", "\"4.\""] {
            assert!(serde_json::from_str::<Usd>(bad).is_err(), "{bad}");
        }
        // Every cent value prints back as its two-decimal form.
        for cents in (0..10_000).step_by(7) {
            let usd = Usd::from_cents(cents).unwrap();
            let text = serde_json::to_string(&usd).unwrap();
            assert_eq!(serde_json::from_str::<Usd>(&text).unwrap(), usd, "{text}");
        }
        assert_eq!(Usd::from_cents(2159).unwrap().to_string(), "$21.59");
    }

    #[test]
    fn status_codes_round_trip() {
        for code in [0, 1, 2, 8, 9, 10, 11, 4] {
            assert_eq!(ActivationCode::from_code(code).code(), code);
        }
        assert_eq!(ActivationCode::from_code(4), ActivationCode::Other(4));
        for s in [
            PurchaseStatusCode::Initiated,
            PurchaseStatusCode::PaymentPending,
            PurchaseStatusCode::PaymentProcessing,
            PurchaseStatusCode::Completed,
            PurchaseStatusCode::Failed,
        ] {
            assert_eq!(PurchaseStatusCode::parse(s.as_str()), Some(s));
        }
        assert!(DeviceMode::Both.supports(SimType::Esim));
        assert!(!DeviceMode::Psim.supports(SimType::Esim));
    }
}
