//! Steps 4 to 14: the checkout structure and the capture of its sections.
//!
//! Each step ends by capturing its result into the checkout (`captureData`), and the
//! document regenerates the structure after each capture ("Generate Checkout"). The
//! structure says which sections this cart needs (postpaid adds `OverdueBills` and
//! `SecurityDeposit`; MNP drops `NumberReservation`) and which are captured;
//! `postProductOrder` is refused until every required section is.
//!
//! Wire: `{"shoppingCartId", "section": "<name>", "data": {...}}`, the `data` shape depending
//! on the section (*ours*); section names are the document's ([`Section`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::nafath::NafathStatus;
use super::types::{
    CartId, Iccid, Msisdn, NafathTransactionId, OtpId, RegistrationId, ReservationId, Sar,
};
use super::{Endpoint, MobilyClient, ops, paths};
use crate::error::ProviderError;
use crate::http::Effect;
use crate::redact::mask_msisdn;

/// Most sections read from a structure.
pub const MAX_SECTIONS: usize = 32;

const STRUCTURE: Endpoint = Endpoint::post(
    ops::CHECKOUT_STRUCTURE,
    paths::CHECKOUT_STRUCTURE,
    Effect::ReadOnly,
);
const CAPTURE: Endpoint = Endpoint::post(ops::CAPTURE_DATA, paths::CAPTURE_DATA, Effect::ReadOnly);

/// A checkout section, named on the wire as in the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Section {
    /// Step 4, "Capture the number option" (line 313).
    #[serde(rename = "NumberOption")]
    NumberOption,
    /// Step 5, SIM option (line 319).
    #[serde(rename = "SIMOption")]
    SimOption,
    /// Step 6, "Capture section(TCCEligibiliyCheck)" (line 328, spelled so).
    #[serde(rename = "TCCEligibiliyCheck")]
    TccEligibilityCheck,
    /// Step 7, "Capture section(Number Reservation)" (line 336). New numbers only.
    #[serde(rename = "NumberReservation")]
    NumberReservation,
    /// Step 8, "Capture section(OverdueBills)" (line 345). Postpaid only.
    #[serde(rename = "OverdueBills")]
    OverdueBills,
    /// Step 10, "Capture section(SecurityDeposit)" (line 356). Postpaid only.
    #[serde(rename = "SecurityDeposit")]
    SecurityDeposit,
    /// Step 11, "Capture section(OTPVerification)" (line 366).
    #[serde(rename = "OTPVerification")]
    OtpVerification,
    /// Step 12. The document lists `OTPVerification` again under Nafath (line 374), which
    /// reads like a copy; *ours:* Nafath has its own section.
    #[serde(rename = "NafathVerification")]
    NafathVerification,
    /// Step 13, "Capture section SIM" (line 382).
    #[serde(rename = "SIM")]
    Sim,
    /// Step 14, "Capture section (DeliveryDetails)" (line 388).
    #[serde(rename = "DeliveryDetails")]
    DeliveryDetails,
}

impl Section {
    /// Every section, in journey order.
    pub const ALL: [Section; 10] = [
        Section::NumberOption,
        Section::SimOption,
        Section::TccEligibilityCheck,
        Section::NumberReservation,
        Section::OverdueBills,
        Section::SecurityDeposit,
        Section::OtpVerification,
        Section::NafathVerification,
        Section::Sim,
        Section::DeliveryDetails,
    ];

    /// The wire name.
    pub fn wire_name(self) -> &'static str {
        match self {
            Section::NumberOption => "NumberOption",
            Section::SimOption => "SIMOption",
            Section::TccEligibilityCheck => "TCCEligibiliyCheck",
            Section::NumberReservation => "NumberReservation",
            Section::OverdueBills => "OverdueBills",
            Section::SecurityDeposit => "SecurityDeposit",
            Section::OtpVerification => "OTPVerification",
            Section::NafathVerification => "NafathVerification",
            Section::Sim => "SIM",
            Section::DeliveryDetails => "DeliveryDetails",
        }
    }

    /// The section with this wire name.
    pub fn from_wire(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.wire_name() == name)
    }
}

/// Physical or digital SIM (`simType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SimType {
    /// Digital SIM: J1.
    #[serde(rename = "ESIM")]
    Esim,
    /// Physical SIM.
    #[serde(rename = "PSIM")]
    Psim,
}

/// The number option of step 4 (`numberType` `NEW` or `MNP`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "numberType",
    rename_all = "SCREAMING_SNAKE_CASE",
    deny_unknown_fields
)]
pub enum NumberChoice {
    /// A new Mobily number, reserved in step 7.
    New,
    /// Keep the customer's number from another operator (MNP port-in).
    Mnp {
        /// The number to port.
        msisdn: Msisdn,
        /// The operator it comes from (`STC`, `ZAIN`, ...).
        #[serde(rename = "donorOperator")]
        donor_operator: String,
    },
}

/// Contact details of step 14 (personal data: `Debug` masks them).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContactDetails {
    /// The customer's name.
    pub full_name: String,
    /// Where Mobily sends the QR code and the eContract.
    pub email: String,
    /// A number to call the customer on.
    pub contact_number: Msisdn,
    /// City.
    pub city: String,
}

impl fmt::Debug for ContactDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContactDetails")
            .field("contact_number", &self.contact_number)
            .finish_non_exhaustive()
    }
}

impl ContactDetails {
    /// Validates the fields: a name and a city of 1 to 100 characters, an email with one
    /// `@` and a dot after it, at most 254 characters.
    pub fn new(
        full_name: &str,
        email: &str,
        contact_number: Msisdn,
        city: &str,
    ) -> Result<Self, ProviderError> {
        let text_ok = |s: &str| {
            !s.trim().is_empty() && s.chars().count() <= 100 && !s.chars().any(char::is_control)
        };
        let email_ok = email.len() <= 254
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !domain.contains('@')
            })
            && !email.chars().any(|c| c.is_whitespace() || c.is_control());
        if !text_ok(full_name) || !text_ok(city) || !email_ok {
            return Err(super::types::invalid(
                "contact details need a name, a valid email and a city",
            ));
        }
        Ok(Self {
            full_name: full_name.trim().to_owned(),
            email: email.to_owned(),
            contact_number,
            city: city.trim().to_owned(),
        })
    }
}

/// What a section captures; one variant per [`Section`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureData {
    /// Step 4.
    NumberOption(NumberChoice),
    /// Step 5.
    SimOption {
        /// `ESIM` for J1.
        sim_type: SimType,
    },
    /// Step 6: the TCC check passed.
    TccEligibilityCheck {
        /// Always true when captured (a refusal ends the journey).
        eligible: bool,
    },
    /// Step 7.
    NumberReservation {
        /// The reserved number.
        msisdn: Msisdn,
        /// Its reservation.
        reservation_id: ReservationId,
    },
    /// Step 8: no dues.
    OverdueBills {
        /// Always false when captured.
        has_dues: bool,
    },
    /// Step 10: the customer accepted the deposit.
    SecurityDeposit {
        /// Whether the customer accepted.
        accepted: bool,
        /// The deposit amount.
        amount: Sar,
    },
    /// Step 11.
    OtpVerification {
        /// The verified number.
        msisdn: Msisdn,
        /// The OTP transaction.
        otp_id: OtpId,
        /// Always true when captured.
        verified: bool,
    },
    /// Step 12.
    NafathVerification {
        /// Nafath's transaction.
        transaction_id: NafathTransactionId,
        /// Its final status (`APPROVED`).
        status: NafathStatus,
    },
    /// Step 13.
    Sim {
        /// The eSIM profile.
        iccid: Iccid,
        /// The TCC registration.
        registration_id: RegistrationId,
    },
    /// Step 14.
    DeliveryDetails(ContactDetails),
}

/// Wire structures of the checkout calls.
pub mod wire {
    use super::*;

    /// Body of `structure`.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct StructureRequest {
        /// The cart.
        pub shopping_cart_id: CartId,
    }

    /// One section of a structure answer.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct SectionState {
        /// The wire name ([`Section::wire_name`]).
        pub name: String,
        /// Whether this cart needs it.
        pub required: bool,
        /// Whether it is captured.
        pub captured: bool,
    }

    /// Answer of `structure`.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct StructureResponse {
        /// The cart.
        pub shopping_cart_id: CartId,
        /// Its sections.
        pub sections: Vec<SectionState>,
    }

    /// Body of `captureData`.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct CaptureRequest {
        /// The cart.
        pub shopping_cart_id: CartId,
        /// The section captured.
        pub section: Section,
        /// The section's data, see [`CaptureData::to_wire`].
        pub data: serde_json::Value,
    }

    macro_rules! data_struct {
        ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? }) => {
            $(#[$doc])*
            #[derive(Debug, Clone, Serialize, Deserialize)]
            #[serde(rename_all = "camelCase", deny_unknown_fields)]
            pub struct $name { $($(#[$fdoc])* pub $field: $ty),* }
        };
    }

    data_struct!(
        /// `SIMOption` data.
        SimOptionData { /** SIM type. */ sim_type: SimType }
    );
    data_struct!(
        /// `TCCEligibiliyCheck` data.
        TccData { /** Passed. */ eligible: bool }
    );
    data_struct!(
        /// `NumberReservation` data.
        ReservationData { /** Number. */ msisdn: Msisdn, /** Reservation. */ reservation_id: ReservationId }
    );
    data_struct!(
        /// `OverdueBills` data.
        OverdueData { /** Dues exist. */ has_dues: bool }
    );
    data_struct!(
        /// `SecurityDeposit` data.
        DepositData { /** Accepted. */ accepted: bool, /** Amount. */ amount: Sar, /** `"SAR"`. */ currency: String }
    );
    data_struct!(
        /// `OTPVerification` data.
        OtpData { /** Number. */ msisdn: Msisdn, /** OTP transaction. */ otp_id: OtpId, /** Verified. */ verified: bool }
    );
    data_struct!(
        /// `NafathVerification` data.
        NafathData { /** Transaction. */ transaction_id: NafathTransactionId, /** Status. */ status: NafathStatus }
    );
    data_struct!(
        /// `SIM` data.
        SimData { /** eSIM profile. */ iccid: Iccid, /** TCC registration. */ registration_id: RegistrationId }
    );
}

impl CaptureData {
    /// The section this data belongs to.
    pub fn section(&self) -> Section {
        match self {
            CaptureData::NumberOption(_) => Section::NumberOption,
            CaptureData::SimOption { .. } => Section::SimOption,
            CaptureData::TccEligibilityCheck { .. } => Section::TccEligibilityCheck,
            CaptureData::NumberReservation { .. } => Section::NumberReservation,
            CaptureData::OverdueBills { .. } => Section::OverdueBills,
            CaptureData::SecurityDeposit { .. } => Section::SecurityDeposit,
            CaptureData::OtpVerification { .. } => Section::OtpVerification,
            CaptureData::NafathVerification { .. } => Section::NafathVerification,
            CaptureData::Sim { .. } => Section::Sim,
            CaptureData::DeliveryDetails(_) => Section::DeliveryDetails,
        }
    }

    /// Checks what the type system does not: the donor operator's name and the contact
    /// details (their fields are public, so they may not have gone through
    /// [`ContactDetails::new`]).
    pub fn validate(&self) -> Result<(), ProviderError> {
        match self {
            CaptureData::NumberOption(NumberChoice::Mnp { donor_operator, .. }) => {
                let ok = (1..=32).contains(&donor_operator.len())
                    && donor_operator
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b' ' || b == b'-');
                if ok {
                    Ok(())
                } else {
                    Err(super::types::invalid(
                        "donorOperator must be 1 to 32 letters, digits, spaces or '-'",
                    ))
                }
            }
            CaptureData::DeliveryDetails(c) => {
                ContactDetails::new(&c.full_name, &c.email, c.contact_number.clone(), &c.city)
                    .map(|_| ())
            }
            _ => Ok(()),
        }
    }

    /// The `data` object sent for this section.
    pub fn to_wire(&self) -> serde_json::Value {
        use wire::*;
        let value = match self.clone() {
            CaptureData::NumberOption(choice) => serde_json::to_value(choice),
            CaptureData::SimOption { sim_type } => serde_json::to_value(SimOptionData { sim_type }),
            CaptureData::TccEligibilityCheck { eligible } => {
                serde_json::to_value(TccData { eligible })
            }
            CaptureData::NumberReservation {
                msisdn,
                reservation_id,
            } => serde_json::to_value(ReservationData {
                msisdn,
                reservation_id,
            }),
            CaptureData::OverdueBills { has_dues } => {
                serde_json::to_value(OverdueData { has_dues })
            }
            CaptureData::SecurityDeposit { accepted, amount } => {
                serde_json::to_value(DepositData {
                    accepted,
                    amount,
                    currency: Sar::CURRENCY.to_owned(),
                })
            }
            CaptureData::OtpVerification {
                msisdn,
                otp_id,
                verified,
            } => serde_json::to_value(OtpData {
                msisdn,
                otp_id,
                verified,
            }),
            CaptureData::NafathVerification {
                transaction_id,
                status,
            } => serde_json::to_value(NafathData {
                transaction_id,
                status,
            }),
            CaptureData::Sim {
                iccid,
                registration_id,
            } => serde_json::to_value(SimData {
                iccid,
                registration_id,
            }),
            CaptureData::DeliveryDetails(details) => serde_json::to_value(details),
        };
        // Plain structs of strings and booleans always serialize.
        value.unwrap_or(serde_json::Value::Null)
    }

    /// Parses a section's `data` strictly (unknown fields refused): the simulator's side.
    pub fn from_wire(section: Section, data: serde_json::Value) -> Result<Self, serde_json::Error> {
        use wire::*;
        Ok(match section {
            Section::NumberOption => CaptureData::NumberOption(serde_json::from_value(data)?),
            Section::SimOption => {
                let d: SimOptionData = serde_json::from_value(data)?;
                CaptureData::SimOption {
                    sim_type: d.sim_type,
                }
            }
            Section::TccEligibilityCheck => {
                let d: TccData = serde_json::from_value(data)?;
                CaptureData::TccEligibilityCheck {
                    eligible: d.eligible,
                }
            }
            Section::NumberReservation => {
                let d: ReservationData = serde_json::from_value(data)?;
                CaptureData::NumberReservation {
                    msisdn: d.msisdn,
                    reservation_id: d.reservation_id,
                }
            }
            Section::OverdueBills => {
                let d: OverdueData = serde_json::from_value(data)?;
                CaptureData::OverdueBills {
                    has_dues: d.has_dues,
                }
            }
            Section::SecurityDeposit => {
                let d: DepositData = serde_json::from_value(data)?;
                CaptureData::SecurityDeposit {
                    accepted: d.accepted,
                    amount: d.amount,
                }
            }
            Section::OtpVerification => {
                let d: OtpData = serde_json::from_value(data)?;
                CaptureData::OtpVerification {
                    msisdn: d.msisdn,
                    otp_id: d.otp_id,
                    verified: d.verified,
                }
            }
            Section::NafathVerification => {
                let d: NafathData = serde_json::from_value(data)?;
                CaptureData::NafathVerification {
                    transaction_id: d.transaction_id,
                    status: d.status,
                }
            }
            Section::Sim => {
                let d: SimData = serde_json::from_value(data)?;
                CaptureData::Sim {
                    iccid: d.iccid,
                    registration_id: d.registration_id,
                }
            }
            Section::DeliveryDetails => CaptureData::DeliveryDetails(serde_json::from_value(data)?),
        })
    }
}

/// One section of a [`CheckoutStructure`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionState {
    /// The section, or `None` for a name we do not know (see [`SectionState::name`]).
    pub section: Option<Section>,
    /// The wire name (sanitized).
    pub name: String,
    /// Whether this cart needs it.
    pub required: bool,
    /// Whether it is captured.
    pub captured: bool,
}

/// The checkout's sections and where each stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutStructure {
    /// The cart.
    pub cart: CartId,
    /// Its sections, in Mobily's order.
    pub sections: Vec<SectionState>,
}

impl CheckoutStructure {
    /// Whether this cart needs `section`.
    pub fn requires(&self, section: Section) -> bool {
        self.sections
            .iter()
            .any(|s| s.section == Some(section) && s.required)
    }

    /// Required sections not captured yet, known ones only.
    pub fn missing(&self) -> Vec<Section> {
        self.sections
            .iter()
            .filter(|s| s.required && !s.captured)
            .filter_map(|s| s.section)
            .collect()
    }

    /// Names of required sections this client does not know: the journey cannot complete
    /// them, so it should stop with this list.
    pub fn unknown_required(&self) -> Vec<String> {
        self.sections
            .iter()
            .filter(|s| s.required && s.section.is_none())
            .map(|s| s.name.clone())
            .collect()
    }
}

/// Masks personal data in a captured value for logs.
pub(crate) fn describe(data: &CaptureData) -> String {
    match data {
        CaptureData::NumberReservation { msisdn, .. }
        | CaptureData::OtpVerification { msisdn, .. } => {
            format!(
                "{} for {}",
                data.section().wire_name(),
                mask_msisdn(msisdn.as_str())
            )
        }
        _ => data.section().wire_name().to_owned(),
    }
}

impl MobilyClient {
    /// Steps 4 to 14: the checkout structure of a cart.
    pub async fn checkout_structure(
        &self,
        cart: &CartId,
    ) -> Result<CheckoutStructure, ProviderError> {
        let body = wire::StructureRequest {
            shopping_cart_id: cart.clone(),
        };
        let answer = self.call(STRUCTURE, &body, None).await?;
        answer.success_or_refused()?;
        let parsed: wire::StructureResponse = answer.body()?;
        Ok(CheckoutStructure {
            cart: parsed.shopping_cart_id,
            sections: parsed
                .sections
                .into_iter()
                .take(MAX_SECTIONS)
                .map(|s| SectionState {
                    section: Section::from_wire(&s.name),
                    name: crate::redact::sanitize_message(&s.name),
                    required: s.required,
                    captured: s.captured,
                })
                .collect(),
        })
    }

    /// Steps 4 to 14: captures one section. Capturing a section again replaces it, so a
    /// lost answer is simply retried. A section this cart does not need, or data that
    /// contradicts earlier steps (a number not reserved for this cart...), is refused.
    #[tracing::instrument(level = "debug", skip_all, fields(provider = "mobily", section = %describe(data)), err(level = tracing::Level::DEBUG))]
    pub async fn capture(&self, cart: &CartId, data: &CaptureData) -> Result<(), ProviderError> {
        data.validate()?;
        let body = wire::CaptureRequest {
            shopping_cart_id: cart.clone(),
            section: data.section(),
            data: data.to_wire(),
        };
        self.call(CAPTURE, &body, None).await?.success_or_refused()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_round_trip_with_the_documents_names() {
        for section in Section::ALL {
            let json = serde_json::to_string(&section).unwrap();
            assert_eq!(json, format!("\"{}\"", section.wire_name()));
            assert_eq!(Section::from_wire(section.wire_name()), Some(section));
        }
        assert_eq!(
            Section::TccEligibilityCheck.wire_name(),
            "TCCEligibiliyCheck"
        );
    }

    #[test]
    fn capture_data_round_trips_and_is_strict() {
        let mnp = CaptureData::NumberOption(NumberChoice::Mnp {
            msisdn: Msisdn::parse("0551234567").unwrap(),
            donor_operator: "STC".into(),
        });
        let wire = mnp.to_wire();
        assert_eq!(
            wire,
            serde_json::json!({"numberType": "MNP", "msisdn": "966551234567", "donorOperator": "STC"})
        );
        assert_eq!(
            CaptureData::from_wire(Section::NumberOption, wire).unwrap(),
            mnp
        );
        let nameless = CaptureData::NumberOption(NumberChoice::Mnp {
            msisdn: Msisdn::parse("0551234567").unwrap(),
            donor_operator: String::new(),
        });
        assert!(nameless.validate().is_err());
        assert!(mnp.validate().is_ok());
        let new = CaptureData::NumberOption(NumberChoice::New);
        assert_eq!(new.to_wire(), serde_json::json!({"numberType": "NEW"}));

        let deposit = CaptureData::SecurityDeposit {
            accepted: true,
            amount: Sar::riyals(500).unwrap(),
        };
        assert_eq!(
            deposit.to_wire(),
            serde_json::json!({"accepted": true, "amount": "500.00", "currency": "SAR"})
        );
        assert!(
            CaptureData::from_wire(
                Section::SimOption,
                serde_json::json!({"simType": "ESIM", "x": 1})
            )
            .is_err()
        );
        assert!(
            CaptureData::from_wire(
                Section::SimOption,
                serde_json::json!({"simType": "EMBEDDED"})
            )
            .is_err()
        );
    }

    #[test]
    fn contact_details_are_validated_and_masked() {
        let number = Msisdn::parse("0551234567").unwrap();
        let c =
            ContactDetails::new("Sara Ali", "sara@example.com", number.clone(), "Riyadh").unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("Sara") && !shown.contains("sara@") && !shown.contains("551234567"),
            "{shown}"
        );
        assert!(ContactDetails::new("Sara", "not-an-email", number.clone(), "Riyadh").is_err());
        assert!(ContactDetails::new("", "a@b.c", number, "Riyadh").is_err());
    }
}
