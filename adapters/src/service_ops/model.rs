//! The values the service operations client sends, validated into types: service types,
//! device categories, correlation and path ids, and the two details DTOs the document
//! names but does not define.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    INPUT, MAX_DETAIL_CHARS, MAX_EXTRA_FIELDS, MAX_ID_CHARS, MAX_REFERENCE_CHARS, input_error,
};
use crate::error::ProviderError;
use crate::redact::{mask_msisdn, sanitize_message};

// ---------------------------------------------------------------------------------------
// Enumerations
// ---------------------------------------------------------------------------------------

/// `serviceTypeDTO`: which kind of service ("Enumerated Values": `service_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ServiceType {
    /// `multisim`.
    Multisim,
    /// `security`.
    Security,
    /// `tv`.
    Tv,
    /// `datasharing`.
    Datasharing,
    /// `mobile`.
    Mobile,
    /// `applewatch`.
    Applewatch,
    /// `deviceinsurance`.
    Deviceinsurance,
}

impl ServiceType {
    /// Every service type, in the document's order.
    pub const ALL: [ServiceType; 7] = [
        ServiceType::Multisim,
        ServiceType::Security,
        ServiceType::Tv,
        ServiceType::Datasharing,
        ServiceType::Mobile,
        ServiceType::Applewatch,
        ServiceType::Deviceinsurance,
    ];

    /// The wire form, e.g. `deviceinsurance`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ServiceType::Multisim => "multisim",
            ServiceType::Security => "security",
            ServiceType::Tv => "tv",
            ServiceType::Datasharing => "datasharing",
            ServiceType::Mobile => "mobile",
            ServiceType::Applewatch => "applewatch",
            ServiceType::Deviceinsurance => "deviceinsurance",
        }
    }

    /// The type with this exact wire form.
    pub fn from_wire(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// Parses a wire form; anything else is a [`ProviderError::Rejected`] listing the
    /// allowed values.
    pub fn parse(text: &str) -> Result<Self, ProviderError> {
        Self::from_wire(text).ok_or_else(|| {
            input_error(
                INPUT,
                format!(
                    "unknown service_type `{}`; expected one of {}",
                    sanitize_message(text),
                    Self::ALL.map(Self::as_str).join(", ")
                ),
            )
        })
    }
}

impl fmt::Display for ServiceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ServiceType {
    type Err = ProviderError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The `category` of a service device ("Enumerated Values": `category`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DeviceCategory {
    /// `STB`: set-top box.
    #[serde(rename = "STB")]
    Stb,
    /// `SMARTWATCH`.
    #[serde(rename = "SMARTWATCH")]
    Smartwatch,
    /// `TABLET`.
    #[serde(rename = "TABLET")]
    Tablet,
    /// `ROUTER`.
    #[serde(rename = "ROUTER")]
    Router,
    /// `PBX`.
    #[serde(rename = "PBX")]
    Pbx,
    /// `SMARTPHONE`.
    #[serde(rename = "SMARTPHONE")]
    Smartphone,
    /// `WIFI_EXTENDER`.
    #[serde(rename = "WIFI_EXTENDER")]
    WifiExtender,
    /// `OTHER`.
    #[serde(rename = "OTHER")]
    Other,
    /// `SIM`: a physical SIM.
    #[serde(rename = "SIM")]
    Sim,
    /// `eSIM` (lowercase `e`, as in the document).
    #[serde(rename = "eSIM")]
    ESim,
}

impl DeviceCategory {
    /// Every category, in the document's order.
    pub const ALL: [DeviceCategory; 10] = [
        DeviceCategory::Stb,
        DeviceCategory::Smartwatch,
        DeviceCategory::Tablet,
        DeviceCategory::Router,
        DeviceCategory::Pbx,
        DeviceCategory::Smartphone,
        DeviceCategory::WifiExtender,
        DeviceCategory::Other,
        DeviceCategory::Sim,
        DeviceCategory::ESim,
    ];

    /// The wire form, e.g. `WIFI_EXTENDER` or `eSIM`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeviceCategory::Stb => "STB",
            DeviceCategory::Smartwatch => "SMARTWATCH",
            DeviceCategory::Tablet => "TABLET",
            DeviceCategory::Router => "ROUTER",
            DeviceCategory::Pbx => "PBX",
            DeviceCategory::Smartphone => "SMARTPHONE",
            DeviceCategory::WifiExtender => "WIFI_EXTENDER",
            DeviceCategory::Other => "OTHER",
            DeviceCategory::Sim => "SIM",
            DeviceCategory::ESim => "eSIM",
        }
    }

    /// The category with this exact wire form (case-sensitive: `eSIM`, not `ESIM`).
    pub fn from_wire(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// Parses a wire form; anything else is a [`ProviderError::Rejected`] listing the
    /// allowed values.
    pub fn parse(text: &str) -> Result<Self, ProviderError> {
        Self::from_wire(text).ok_or_else(|| {
            input_error(
                INPUT,
                format!(
                    "unknown device category `{}`; expected one of {}",
                    sanitize_message(text),
                    Self::ALL.map(Self::as_str).join(", ")
                ),
            )
        })
    }
}

impl fmt::Display for DeviceCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeviceCategory {
    type Err = ProviderError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

// ---------------------------------------------------------------------------------------
// Identifiers
// ---------------------------------------------------------------------------------------

/// The `Request-Correlation-Id` of one request: a UUID chosen by the caller, the journey's
/// idempotency key for the step. Stable across retries and crashes; part of the journey's
/// durable state and the key events are matched by.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "Uuid", into = "Uuid")]
pub struct CorrelationId(Uuid);

impl CorrelationId {
    /// Wraps a UUID; the nil UUID is refused (it names nothing).
    pub fn new(id: Uuid) -> Result<Self, ProviderError> {
        if id.is_nil() {
            return Err(input_error(
                INPUT,
                "the correlation id must not be the nil UUID",
            ));
        }
        Ok(Self(id))
    }

    /// Parses the hyphenated form (`8-4-4-4-12` hex digits, any case), the only form on the
    /// wire.
    pub fn parse(text: &str) -> Result<Self, ProviderError> {
        parse_hyphenated(text)
            .ok_or_else(|| {
                input_error(
                    INPUT,
                    "the correlation id must be a UUID in the hyphenated form",
                )
            })
            .and_then(Self::new)
    }

    /// The stable id of one step of one journey: a name-based (v5) UUID of
    /// `"{journey}/{step}"`, so a step re-run after a crash sends the same id. Put an attempt
    /// number in `step` when the journey deliberately makes a *new* request.
    pub fn for_step(journey: &str, step: &str) -> Self {
        let namespace = Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:handover:service_ops");
        Self(Uuid::new_v5(
            &namespace,
            format!("{journey}/{step}").as_bytes(),
        ))
    }

    /// The UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

/// Parses only the hyphenated UUID form. Shared with the simulator.
pub(crate) fn parse_hyphenated(text: &str) -> Option<Uuid> {
    let hyphens_at = [8, 13, 18, 23];
    let well_formed = text.len() == 36
        && text.bytes().enumerate().all(|(i, b)| {
            if hyphens_at.contains(&i) {
                b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        });
    well_formed.then(|| Uuid::try_parse(text).ok()).flatten()
}

impl TryFrom<Uuid> for CorrelationId {
    type Error = ProviderError;

    fn try_from(id: Uuid) -> Result<Self, Self::Error> {
        Self::new(id)
    }
}

impl From<CorrelationId> for Uuid {
    fn from(id: CorrelationId) -> Self {
        id.0
    }
}

impl fmt::Debug for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CorrelationId({})", self.0.hyphenated())
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.hyphenated())
    }
}

/// Whether `id` is acceptable as a `service_id` or `device_id`. Shared with the simulator.
pub(crate) fn valid_id(id: &str) -> bool {
    let chars = id.chars().count();
    (1..=MAX_ID_CHARS).contains(&chars)
        && id != "."
        && id != ".."
        && !id.chars().any(|c| c.is_control() || c.is_whitespace())
}

macro_rules! path_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        ///
        /// 1 to [`MAX_ID_CHARS`] characters, no whitespace or control characters, not `.` or
        /// `..`. `Debug` and `Display` mask long digit runs, since an id may be an MSISDN,
        /// IMEI or ICCID.
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            #[doc = concat!("A ", $what, " as given, validated.")]
            pub fn new(id: impl Into<String>) -> Result<Self, ProviderError> {
                let id = id.into();
                if valid_id(&id) {
                    Ok(Self(id))
                } else {
                    Err(input_error(
                        INPUT,
                        concat!(
                            "the ", $what,
                            " must be 1 to 128 characters without whitespace or control \
                             characters, and not `.` or `..`"
                        ),
                    ))
                }
            }

            /// The full id, for the wire only.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ProviderError;

            fn try_from(id: String) -> Result<Self, Self::Error> {
                Self::new(id)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), sanitize_message(&self.0))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&sanitize_message(&self.0))
            }
        }
    };
}

path_id!(
    /// A service identifier (`service_id`): ours when we name the service on create, or the
    /// one the provider assigned (reported in the events).
    ServiceId,
    "service_id"
);
path_id!(
    /// A device identifier (`device_id`, path parameter of the update).
    DeviceId,
    "device_id"
);

/// The provider's "request external reference identifier" from a 202 answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExternalReference(String);

impl ExternalReference {
    /// A reference as received: 1 to [`MAX_REFERENCE_CHARS`] printable ASCII characters.
    pub fn new(reference: impl Into<String>) -> Result<Self, ProviderError> {
        let reference = reference.into();
        let ok = (1..=MAX_REFERENCE_CHARS).contains(&reference.len())
            && reference.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(Self(reference))
        } else {
            Err(input_error(
                INPUT,
                "the external reference must be 1 to 128 printable ASCII characters",
            ))
        }
    }

    /// The reference text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExternalReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------------------------------
// Details DTOs
// ---------------------------------------------------------------------------------------

/// `serviceDetailsDTO`. The document does not define it; these fields are our choice (see
/// the [module docs](super)). `Debug` masks the MSISDN and shows only the names of extras.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServiceDetails {
    /// The customer account the service belongs to. Required.
    pub customer_id: String,
    /// The product or plan code to provision, when the service type needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_code: Option<String>,
    /// The line the service is attached to: 8 to 15 digits, international form without `+`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msisdn: Option<String>,
    /// Further provider fields, sent as-is at the same level (at most [`MAX_EXTRA_FIELDS`],
    /// not shadowing the named fields).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl ServiceDetails {
    /// Details for a customer, without plan, line or extras.
    pub fn for_customer(customer_id: impl Into<String>) -> Self {
        Self {
            customer_id: customer_id.into(),
            ..Self::default()
        }
    }

    /// Why these details would be refused, if they would. Shared with the simulator.
    pub(crate) fn problem(&self) -> Option<String> {
        if let Some(p) = text_problem("service_details.customer_id", Some(&self.customer_id))
            .or_else(|| text_problem("service_details.plan_code", self.plan_code.as_deref()))
        {
            return Some(p);
        }
        let msisdn_ok =
            |m: &str| (8..=15).contains(&m.len()) && m.bytes().all(|b| b.is_ascii_digit());
        if self.msisdn.as_deref().is_some_and(|m| !msisdn_ok(m)) {
            return Some("service_details.msisdn must be 8 to 15 digits".to_owned());
        }
        extras_problem(
            "service_details",
            &self.extra,
            &["customer_id", "plan_code", "msisdn"],
        )
    }
}

impl fmt::Debug for ServiceDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceDetails")
            .field("customer_id", &sanitize_message(&self.customer_id))
            .field("plan_code", &self.plan_code)
            .field("msisdn", &self.msisdn.as_deref().map(mask_msisdn))
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// `deviceDetailsDTO`. The document does not define it; these fields are our choice (see the
/// [module docs](super)). At least one field must be present. `Debug` masks IMEI and ICCID
/// and shows only the names of extras.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DeviceDetails {
    /// The device model, e.g. `Apple Watch Series 9`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The manufacturer's serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// 15 digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imei: Option<String>,
    /// 18 to 22 digits (SIM and eSIM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iccid: Option<String>,
    /// Further provider fields, sent as-is at the same level (at most [`MAX_EXTRA_FIELDS`],
    /// not shadowing the named fields).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl DeviceDetails {
    /// Why these details would be refused, if they would. Shared with the simulator.
    pub(crate) fn problem(&self) -> Option<String> {
        let all_empty = self.model.is_none()
            && self.serial_number.is_none()
            && self.imei.is_none()
            && self.iccid.is_none()
            && self.extra.is_empty();
        if all_empty {
            return Some("new_service_device_details must name at least one field".to_owned());
        }
        for (field, value) in [
            ("new_service_device_details.model", self.model.as_deref()),
            (
                "new_service_device_details.serial_number",
                self.serial_number.as_deref(),
            ),
        ] {
            if let Some(p) = value.and_then(|v| text_problem(field, Some(v))) {
                return Some(p);
            }
        }
        let digits = |v: &str, lengths: std::ops::RangeInclusive<usize>| {
            lengths.contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit())
        };
        if self.imei.as_deref().is_some_and(|v| !digits(v, 15..=15)) {
            return Some("new_service_device_details.imei must be 15 digits".to_owned());
        }
        if self.iccid.as_deref().is_some_and(|v| !digits(v, 18..=22)) {
            return Some("new_service_device_details.iccid must be 18 to 22 digits".to_owned());
        }
        extras_problem(
            "new_service_device_details",
            &self.extra,
            &["model", "serial_number", "imei", "iccid"],
        )
    }
}

impl fmt::Debug for DeviceDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceDetails")
            .field("model", &self.model)
            .field(
                "serial_number",
                &self.serial_number.as_deref().map(sanitize_message),
            )
            .field("imei", &self.imei.as_deref().map(mask_msisdn))
            .field("iccid", &self.iccid.as_deref().map(mask_msisdn))
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn text_problem(field: &str, value: Option<&str>) -> Option<String> {
    let value = value?;
    let chars = value.chars().count();
    if chars == 0 || chars > MAX_DETAIL_CHARS || value.chars().any(char::is_control) {
        return Some(format!(
            "{field} must be 1 to {MAX_DETAIL_CHARS} characters without control characters"
        ));
    }
    None
}

fn extras_problem(
    object: &str,
    extra: &BTreeMap<String, serde_json::Value>,
    named: &[&str],
) -> Option<String> {
    if extra.len() > MAX_EXTRA_FIELDS {
        return Some(format!(
            "{object} has more than {MAX_EXTRA_FIELDS} extra fields"
        ));
    }
    // Serializing would write both the named field and the extra under one name.
    extra
        .keys()
        .find(|k| named.contains(&k.as_str()) || k.is_empty())
        .map(|k| {
            format!(
                "{object} has an extra field `{}` that is empty or shadows a named field",
                sanitize_message(k)
            )
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn service_types_parse_exactly_and_list_the_allowed_values() {
        for t in ServiceType::ALL {
            assert_eq!(ServiceType::parse(t.as_str()).unwrap(), t);
            assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_str()));
        }
        assert_eq!(
            "deviceinsurance".parse::<ServiceType>().unwrap(),
            ServiceType::Deviceinsurance
        );
        let err = ServiceType::parse("radio").unwrap_err();
        assert!(matches!(err, ProviderError::Rejected { status: None, .. }));
        let shown = err.to_string();
        assert!(shown.contains("unknown service_type `radio`"), "{shown}");
        assert!(shown.contains("multisim, security, tv"), "{shown}");
        assert!(ServiceType::parse("TV").is_err(), "case-sensitive");
    }

    #[test]
    fn device_categories_use_the_documented_spelling() {
        let wire: Vec<&str> = DeviceCategory::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            wire,
            [
                "STB",
                "SMARTWATCH",
                "TABLET",
                "ROUTER",
                "PBX",
                "SMARTPHONE",
                "WIFI_EXTENDER",
                "OTHER",
                "SIM",
                "eSIM"
            ]
        );
        for c in DeviceCategory::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), json!(c.as_str()));
            assert_eq!(
                serde_json::from_value::<DeviceCategory>(json!(c.as_str())).unwrap(),
                c
            );
        }
        let err = DeviceCategory::parse("ESIM").unwrap_err();
        assert!(
            err.to_string().contains("unknown device category `ESIM`"),
            "{err}"
        );
        assert!(serde_json::from_value::<DeviceCategory>(json!("PHONE")).is_err());
    }

    #[test]
    fn correlation_ids_are_hyphenated_uuids_and_stable_per_step() {
        let text = "7d444840-9dc0-11d1-b245-5ffdce74fad2";
        let id = CorrelationId::parse(text).unwrap();
        assert_eq!(id.to_string(), text);
        assert_eq!(
            CorrelationId::parse(&text.to_uppercase()).unwrap(),
            id,
            "any case"
        );
        for bad in [
            "",
            "7d4448409dc011d1b2455ffdce74fad2",
            "{7d444840-9dc0-11d1-b245-5ffdce74fad2}",
            "urn:uuid:7d444840-9dc0-11d1-b245-5ffdce74fad2",
            "7d444840-9dc0-11d1-b245-5ffdce74fadz",
            "00000000-0000-0000-0000-000000000000",
        ] {
            assert!(CorrelationId::parse(bad).is_err(), "{bad}");
        }
        let a = CorrelationId::for_step("journey-1", "create_service#1");
        assert_eq!(a, CorrelationId::for_step("journey-1", "create_service#1"));
        assert_ne!(a, CorrelationId::for_step("journey-1", "create_service#2"));
        assert_ne!(a, CorrelationId::for_step("journey-2", "create_service#1"));
        let json = serde_json::to_value(a).unwrap();
        assert_eq!(json, json!(a.to_string()));
        assert_eq!(serde_json::from_value::<CorrelationId>(json).unwrap(), a);
    }

    #[test]
    fn ids_are_bounded_and_masked() {
        assert!(ServiceId::new("svc-1").is_ok());
        assert!(ServiceId::new("a/b").is_ok(), "encoded in the path");
        for bad in ["", ".", "..", "a b", "tab\tbed", &"x".repeat(129)] {
            assert!(ServiceId::new(bad).is_err(), "{bad:?}");
            assert!(DeviceId::new(bad).is_err(), "{bad:?}");
        }
        let msisdn = ServiceId::new("966512345678").unwrap();
        assert_eq!(
            format!("{msisdn} {msisdn:?}"),
            "96********78 ServiceId(96********78)"
        );
        let imei = DeviceId::new("imei-356938035643809").unwrap();
        assert!(!format!("{imei:?}").contains("356938035643809"));
    }

    #[test]
    fn details_are_validated_before_sending() {
        assert_eq!(ServiceDetails::for_customer("C-1").problem(), None);
        assert!(ServiceDetails::for_customer("").problem().is_some());
        let mut d = ServiceDetails::for_customer("C-1");
        d.msisdn = Some("+966512345678".into());
        assert!(d.problem().unwrap().contains("msisdn"));
        let mut d = ServiceDetails::for_customer("C-1");
        d.extra.insert("customer_id".into(), json!("other"));
        assert!(d.problem().unwrap().contains("shadows"));
        let mut d = ServiceDetails::for_customer("C-1");
        for i in 0..=MAX_EXTRA_FIELDS {
            d.extra.insert(format!("k{i}"), json!(i));
        }
        assert!(d.problem().unwrap().contains("more than 32"));

        assert!(
            DeviceDetails::default()
                .problem()
                .unwrap()
                .contains("at least one")
        );
        let bad_imei = DeviceDetails {
            imei: Some("35693803564380".into()),
            ..DeviceDetails::default()
        };
        assert!(bad_imei.problem().unwrap().contains("imei"));
        let ok = DeviceDetails {
            model: Some("Watch 9".into()),
            imei: Some("356938035643809".into()),
            ..DeviceDetails::default()
        };
        assert_eq!(ok.problem(), None);
    }

    #[test]
    fn debug_masks_personal_data() {
        let mut d = ServiceDetails::for_customer("C-1");
        d.msisdn = Some("966512345678".into());
        d.extra.insert("national_id".into(), json!("1234567890"));
        let device = DeviceDetails {
            imei: Some("356938035643809".into()),
            iccid: Some("8996601234567890123".into()),
            ..DeviceDetails::default()
        };
        let shown = format!("{d:?} {device:?}");
        for secret in [
            "966512345678",
            "1234567890",
            "356938035643809",
            "8996601234567890123",
        ] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("national_id"), "{shown}");
    }
}
