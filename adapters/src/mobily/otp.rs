//! Step 11: OTP verification of the customer's contact number.
//!
//! Generation sends an SMS with a code; the journey waits for the customer to type it (a
//! signal) and validates it. A wrong code leaves `attemptsLeft`; an expired one is re-sent
//! with regeneration, which keeps the `otpId` and sends a new code (the old one dies).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::types::{Msisdn, NationalId, OtpCode, OtpId};
use super::{Endpoint, MobilyClient, codes, ops, paths};
use crate::error::ProviderError;
use crate::http::Effect;

/// Longest code lifetime we believe (an hour); longer values are capped.
pub const MAX_OTP_LIFETIME: Duration = Duration::from_secs(3600);

const GENERATE: Endpoint =
    Endpoint::post(ops::OTP_GENERATE, paths::OTP_GENERATION, Effect::ReadOnly);
const REGENERATE: Endpoint = Endpoint::post(
    ops::OTP_REGENERATE,
    paths::OTP_REGENERATION,
    Effect::ReadOnly,
);
const VALIDATE: Endpoint = Endpoint::post(ops::OTP_VALIDATE, paths::OTP_VALIDATE, Effect::ReadOnly);

/// The SMS language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Language {
    /// Arabic.
    Ar,
    /// English.
    #[default]
    En,
}

/// Wire structures.
pub mod wire {
    use super::*;

    /// Body of generation.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct GenerationRequest {
        /// Where the SMS goes.
        pub msisdn: Msisdn,
        /// Whose number it must be (Tahaqoq check for new customers).
        pub national_id: NationalId,
        /// SMS language.
        pub language: Language,
    }

    /// Body of regeneration.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct RegenerationRequest {
        /// The OTP transaction.
        pub otp_id: OtpId,
        /// Its number.
        pub msisdn: Msisdn,
    }

    /// Answer of generation and regeneration.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct OtpSentResponse {
        /// The OTP transaction.
        pub otp_id: OtpId,
        /// How long the code is valid.
        pub expires_in_seconds: u64,
    }

    /// Body of validate.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct ValidateRequest {
        /// The OTP transaction.
        pub otp_id: OtpId,
        /// Its number.
        pub msisdn: Msisdn,
        /// The code the customer typed.
        pub otp: OtpCode,
    }

    /// Answer of validate (also the body of `1401`).
    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ValidateResponse {
        /// Whether the code was right.
        #[serde(default)]
        pub verified: Option<bool>,
        /// Attempts left after a wrong code.
        #[serde(default)]
        pub attempts_left: Option<u32>,
    }
}

/// An SMS with a code went out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtpSent {
    /// The OTP transaction: validate and regenerate with it.
    pub otp_id: OtpId,
    /// How long the code is valid.
    pub expires_in: Duration,
}

/// What validating a code found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpValidation {
    /// The code is right: the number is verified.
    Verified,
    /// Wrong code; the customer may try `attempts_left` more times.
    Wrong {
        /// Attempts remaining (0 means the next step is regeneration).
        attempts_left: u32,
    },
    /// The code expired: regenerate it.
    Expired,
    /// No attempts left on this code: regenerate it (or end the journey when regenerations
    /// are used up too).
    Locked,
}

impl MobilyClient {
    /// Step 11: sends a code to `msisdn`, which must belong to `customer`. A number that does
    /// not ([`codes::OTP_ID_MISMATCH`]) is [`ProviderError::Refused`].
    pub async fn generate_otp(
        &self,
        msisdn: &Msisdn,
        customer: &NationalId,
        language: Language,
    ) -> Result<OtpSent, ProviderError> {
        let body = wire::GenerationRequest {
            msisdn: msisdn.clone(),
            national_id: customer.clone(),
            language,
        };
        sent(&self.call(GENERATE, &body, None).await?)
    }

    /// Step 11: sends a new code for the same OTP transaction (after expiry or lock).
    /// Too many re-sends ([`codes::OTP_TOO_MANY_RESENDS`]) is [`ProviderError::Refused`].
    pub async fn regenerate_otp(
        &self,
        otp_id: &OtpId,
        msisdn: &Msisdn,
    ) -> Result<OtpSent, ProviderError> {
        let body = wire::RegenerationRequest {
            otp_id: otp_id.clone(),
            msisdn: msisdn.clone(),
        };
        sent(&self.call(REGENERATE, &body, None).await?)
    }

    /// Step 11: checks the code the customer typed.
    pub async fn validate_otp(
        &self,
        otp_id: &OtpId,
        msisdn: &Msisdn,
        code: &OtpCode,
    ) -> Result<OtpValidation, ProviderError> {
        let body = wire::ValidateRequest {
            otp_id: otp_id.clone(),
            msisdn: msisdn.clone(),
            otp: code.clone(),
        };
        let answer = self.call(VALIDATE, &body, None).await?;
        let parsed: wire::ValidateResponse = answer.body().unwrap_or_default();
        match answer.code.as_str() {
            codes::SUCCESS if parsed.verified == Some(true) => Ok(OtpValidation::Verified),
            codes::SUCCESS => Err(answer.protocol("validation answer without `verified: true`")),
            codes::OTP_WRONG => Ok(OtpValidation::Wrong {
                attempts_left: parsed.attempts_left.unwrap_or(0),
            }),
            codes::OTP_EXPIRED => Ok(OtpValidation::Expired),
            codes::OTP_LOCKED => Ok(OtpValidation::Locked),
            _ => Err(answer.refused()),
        }
    }
}

fn sent(answer: &super::Answer) -> Result<OtpSent, ProviderError> {
    answer.success_or_refused()?;
    let parsed: wire::OtpSentResponse = answer.body()?;
    Ok(OtpSent {
        otp_id: parsed.otp_id,
        expires_in: Duration::from_secs(parsed.expires_in_seconds).min(MAX_OTP_LIFETIME),
    })
}
