//! The customer's correction of a failed port-in (guide Scenario E step 5):
//! the signal's payload, its strict parsing, and the adapter request it
//! becomes. Pure; the corrected secret stays [`Sensitive`] in the state.

use handover_adapters::reach::{CarrierAccountNumber, PortInUpdate, PortPin, ZipCode};
use handover_engine::Sensitive;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// A customer's correction of a failed port-in (guide Scenario E step 5), as
/// stored: the corrected secret stays [`Sensitive`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Correction {
    /// `UPDATE_PIN`.
    UpdatePin {
        /// The corrected PIN.
        password: Sensitive<String>,
    },
    /// `UPDATE_ACCOUNT`.
    UpdateAccount {
        /// The corrected account number.
        account: Sensitive<String>,
    },
    /// `UPDATE_ZIP`.
    UpdateZip {
        /// The corrected ZIP.
        zip: String,
    },
    /// `RESUBMIT_PORT`.
    ResubmitPort,
    /// `CANCEL_PORT`.
    CancelPort,
    /// `CANCEL_AND_NEW`.
    CancelAndNew,
}

/// The correction signal's payload as the customer's app sends it:
/// `{"type": "UPDATE_PIN", "password": "..."}`, `{"type": "UPDATE_ACCOUNT",
/// "oldCarrierAccountNumber": "..."}`, `{"type": "UPDATE_ZIP", "oldZip":
/// "..."}`, or just `{"type": "RESUBMIT_PORT" | "CANCEL_PORT" |
/// "CANCEL_AND_NEW"}` (the field names are the purchase body's, like Reach's
/// update body).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CorrectionPayload {
    /// One of the six update types.
    #[serde(rename = "type")]
    pub kind: String,
    /// The corrected PIN (`UPDATE_PIN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The corrected account number (`UPDATE_ACCOUNT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_carrier_account_number: Option<String>,
    /// The corrected ZIP (`UPDATE_ZIP`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_zip: Option<String>,
}

/// Why a correction signal was not accepted. Never quotes the values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorrectionError {
    /// Not a JSON object of the documented shape.
    #[error("the correction is not of the documented shape")]
    Malformed,
    /// `type` is none of the six.
    #[error(
        "unknown correction type (expected UPDATE_PIN, UPDATE_ACCOUNT, UPDATE_ZIP, RESUBMIT_PORT, CANCEL_PORT or CANCEL_AND_NEW)"
    )]
    UnknownType,
    /// The corrected field is missing or invalid.
    #[error("{kind} needs a valid {field}")]
    BadField {
        /// The type.
        kind: &'static str,
        /// The field it needs.
        field: &'static str,
    },
}

impl Correction {
    /// Parses and validates a correction signal's payload.
    pub fn parse(payload: &serde_json::Value) -> Result<Self, CorrectionError> {
        let raw: CorrectionPayload =
            serde_json::from_value(payload.clone()).map_err(|_| CorrectionError::Malformed)?;
        let bad = |kind, field| CorrectionError::BadField { kind, field };
        Ok(match raw.kind.as_str() {
            "UPDATE_PIN" => {
                let pin = raw.password.ok_or(bad("UPDATE_PIN", "password"))?;
                PortPin::new(SecretString::from(pin.clone()))
                    .map_err(|_| bad("UPDATE_PIN", "password"))?;
                Correction::UpdatePin {
                    password: Sensitive::new(pin),
                }
            }
            "UPDATE_ACCOUNT" => {
                let account = raw
                    .old_carrier_account_number
                    .as_deref()
                    .and_then(|a| CarrierAccountNumber::parse(a).ok())
                    .ok_or(bad("UPDATE_ACCOUNT", "oldCarrierAccountNumber"))?;
                Correction::UpdateAccount {
                    account: Sensitive::new(account.as_str().to_owned()),
                }
            }
            "UPDATE_ZIP" => {
                let zip = raw
                    .old_zip
                    .as_deref()
                    .and_then(|z| ZipCode::parse(z).ok())
                    .ok_or(bad("UPDATE_ZIP", "oldZip"))?;
                Correction::UpdateZip {
                    zip: zip.as_str().to_owned(),
                }
            }
            "RESUBMIT_PORT" => Correction::ResubmitPort,
            "CANCEL_PORT" => Correction::CancelPort,
            "CANCEL_AND_NEW" => Correction::CancelAndNew,
            _ => return Err(CorrectionError::UnknownType),
        })
    }

    /// The wire `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Correction::UpdatePin { .. } => "UPDATE_PIN",
            Correction::UpdateAccount { .. } => "UPDATE_ACCOUNT",
            Correction::UpdateZip { .. } => "UPDATE_ZIP",
            Correction::ResubmitPort => "RESUBMIT_PORT",
            Correction::CancelPort => "CANCEL_PORT",
            Correction::CancelAndNew => "CANCEL_AND_NEW",
        }
    }

    /// The adapter's request. Values were validated by [`Correction::parse`];
    /// a state patched by hand with a bad value is refused here.
    pub fn to_update(&self) -> Result<PortInUpdate, handover_adapters::ProviderError> {
        Ok(match self {
            Correction::UpdatePin { password } => PortInUpdate::UpdatePin(PortPin::new(
                SecretString::from(password.expose().clone()),
            )?),
            Correction::UpdateAccount { account } => {
                PortInUpdate::UpdateAccount(CarrierAccountNumber::parse(account.expose())?)
            }
            Correction::UpdateZip { zip } => PortInUpdate::UpdateZip(ZipCode::parse(zip)?),
            Correction::ResubmitPort => PortInUpdate::ResubmitPort,
            Correction::CancelPort => PortInUpdate::CancelPort,
            Correction::CancelAndNew => PortInUpdate::CancelAndNew,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn corrections_are_parsed_strictly_without_quoting_values() {
        assert_eq!(
            Correction::parse(&json!({"type": "UPDATE_ZIP", "oldZip": "10001"})).unwrap(),
            Correction::UpdateZip {
                zip: "10001".into()
            }
        );
        let pin = Correction::parse(&json!({"type": "UPDATE_PIN", "password": "1357"})).unwrap();
        assert!(!format!("{pin:?}").contains("1357"));
        assert_eq!(pin.type_name(), "UPDATE_PIN");
        assert_eq!(
            Correction::parse(&json!({"type": "CANCEL_AND_NEW"})).unwrap(),
            Correction::CancelAndNew
        );
        let err =
            Correction::parse(&json!({"type": "UPDATE_PIN", "password": "13 57"})).unwrap_err();
        assert!(!err.to_string().contains("13 57"));
        assert_eq!(
            Correction::parse(&json!({"type": "UPDATE_ZIP"})).unwrap_err(),
            CorrectionError::BadField {
                kind: "UPDATE_ZIP",
                field: "oldZip"
            }
        );
        assert_eq!(
            Correction::parse(&json!({"type": "PLEASE"})).unwrap_err(),
            CorrectionError::UnknownType
        );
        assert_eq!(
            Correction::parse(&json!("UPDATE_PIN")).unwrap_err(),
            CorrectionError::Malformed
        );
        // Stored form keeps the secret tagged.
        let stored = serde_json::to_value(&pin).unwrap();
        assert_eq!(handover_engine::redact(&stored)["password"], "[redacted]");
    }
}
