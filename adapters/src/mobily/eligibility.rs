//! Steps 6, 8, 9, 10 and 13: TCC eligibility, the customer's installed base, overdue bills,
//! package eligibility, the security deposit, the eSIM profile and TCC registration.

use serde::{Deserialize, Serialize};

use super::checkout::SimType;
use super::types::{
    Iccid, IdType, IdempotencyKey, Msisdn, NationalId, PaymentType, ProductOfferingId,
    RegistrationId, Sar, message,
};
use super::{Endpoint, MobilyClient, codes, ops, paths};
use crate::error::ProviderError;
use crate::http::Effect;

/// Most lines read from a customer's installed base.
pub const MAX_LINES: usize = 50;

const TCC_ELIGIBILITY: Endpoint = Endpoint::post(
    ops::TCC_ELIGIBILITY,
    paths::TCC_ELIGIBILITY,
    Effect::ReadOnly,
);
const CUSTOMER_PRODUCTS: Endpoint = Endpoint::post(
    ops::CUSTOMER_PRODUCTS,
    paths::CUSTOMER_PRODUCTS,
    Effect::ReadOnly,
);
const DUES: Endpoint = Endpoint::post(ops::DUES, paths::DUES, Effect::ReadOnly);
const PACKAGE: Endpoint = Endpoint::post(
    ops::PACKAGE_ELIGIBILITY,
    paths::PACKAGE_ELIGIBILITY,
    Effect::ReadOnly,
);
const DEPOSIT: Endpoint = Endpoint::post(
    ops::SECURITY_DEPOSIT,
    paths::SECURITY_DEPOSIT,
    Effect::ReadOnly,
);
const SIM_GET: Endpoint = Endpoint::post(ops::SIM_DETAILS, paths::SIM_GET, Effect::ReadOnly);
const TCC_REGISTER: Endpoint =
    Endpoint::post(ops::TCC_REGISTER, paths::TCC_REGISTER, Effect::Effectful);

/// Wire structures of these calls.
pub mod wire {
    use super::*;

    /// Body of the TCC eligibility check.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct EligibilityRequest {
        /// The customer.
        pub national_id: NationalId,
        /// Derived from the id.
        pub id_type: IdType,
        /// The kind of line to be added.
        pub line_type: PaymentType,
    }

    /// Answer of the TCC eligibility check (also the body of a `1101` refusal).
    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct EligibilityResponse {
        /// Whether another line is allowed.
        #[serde(default)]
        pub eligible: Option<bool>,
        /// Lines the customer has now.
        #[serde(default)]
        pub active_lines: Option<u32>,
        /// The CST limit.
        #[serde(default)]
        pub max_lines: Option<u32>,
    }

    /// Body of getCustomerProductDetails: exactly one of the two.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct CustomerLookupRequest {
        /// By id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub national_id: Option<NationalId>,
        /// By number.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub msisdn: Option<Msisdn>,
    }

    /// One installed line.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct InstalledProduct {
        /// The line's number.
        pub msisdn: Msisdn,
        /// Prepaid or postpaid.
        pub payment_type: PaymentType,
        /// `ACTIVE`, `SUSPENDED`, ...
        pub status: String,
    }

    /// Answer of getCustomerProductDetails.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct CustomerProductsResponse {
        /// Whether Mobily knows the customer.
        pub customer_exists: bool,
        /// The customer's lines.
        #[serde(default)]
        pub products: Vec<InstalledProduct>,
    }

    /// Body of dues, used by the dues check.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct CustomerRequest {
        /// The customer.
        pub national_id: NationalId,
    }

    /// Answer of dues (also the body of a `1201` refusal).
    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct DuesResponse {
        /// Whether bills are overdue.
        #[serde(default)]
        pub has_dues: Option<bool>,
        /// The total overdue.
        #[serde(default)]
        pub total_amount: Option<Sar>,
    }

    /// Body of the package eligibility check and the deposit inquiry.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct PackageRequest {
        /// The customer.
        pub national_id: NationalId,
        /// The package.
        pub product_offering_id: ProductOfferingId,
    }

    /// Answer of the package eligibility check.
    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct PackageResponse {
        /// Whether the customer may buy the package.
        #[serde(default)]
        pub eligible: Option<bool>,
    }

    /// Answer of the deposit inquiry.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct DepositResponse {
        /// Whether a deposit is required.
        pub deposit_required: bool,
        /// Its amount.
        #[serde(default)]
        pub amount: Option<Sar>,
    }

    /// Body of sim/get.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct SimGetRequest {
        /// The new line's number.
        pub msisdn: Msisdn,
        /// `ESIM`.
        pub sim_type: SimType,
    }

    /// Answer of sim/get.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct SimGetResponse {
        /// The eSIM profile assigned to the number.
        pub iccid: Iccid,
    }

    /// Body of tcc/register.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct TccRegisterRequest {
        /// The line's owner.
        pub national_id: NationalId,
        /// Derived from the id.
        pub id_type: IdType,
        /// The new line.
        pub msisdn: Msisdn,
        /// Its eSIM profile.
        pub iccid: Iccid,
    }

    /// Answer of tcc/register.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct TccRegisterResponse {
        /// TCC's registration.
        pub registration_id: RegistrationId,
    }
}

/// Step 6: may the customer have another line?
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EligibilityOutcome {
    /// Yes.
    Eligible {
        /// Lines the customer has now, when Mobily says.
        active_lines: Option<u32>,
        /// The CST limit, when Mobily says.
        max_lines: Option<u32>,
    },
    /// No: the journey ends with this reason.
    NotEligible {
        /// Mobily's code ([`codes::NOT_ELIGIBLE`]).
        code: String,
        /// The reason, for the customer (sanitized).
        reason: String,
    },
}

/// A line of the customer's installed base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Its number (masked in `Debug`).
    pub msisdn: Msisdn,
    /// Prepaid or postpaid.
    pub payment_type: PaymentType,
    /// `ACTIVE`, `SUSPENDED`, ... (sanitized).
    pub status: String,
}

/// Steps 6 and 11: what Mobily knows of the customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerProducts {
    /// Whether the customer exists at Mobily (existing customers verify the OTP on one of
    /// their lines).
    pub exists: bool,
    /// Their lines, at most [`MAX_LINES`].
    pub lines: Vec<Line>,
}

/// Who to look up in the installed base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerLookup {
    /// By national id or Iqama.
    NationalId(NationalId),
    /// By number.
    Msisdn(Msisdn),
}

/// Step 8: overdue bills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DuesOutcome {
    /// Nothing overdue.
    NoDues,
    /// Bills are overdue: the journey ends, showing `message` (the customer pays on Mobily's
    /// portal first).
    DuesOwed {
        /// The total, when Mobily gives it.
        amount: Option<Sar>,
        /// Mobily's message (sanitized).
        message: String,
    },
}

/// Step 9: package eligibility.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageEligibility {
    /// The customer may buy the package.
    Eligible,
    /// They may not: the journey ends with this reason.
    NotEligible {
        /// Mobily's code ([`codes::PACKAGE_NOT_ELIGIBLE`]).
        code: String,
        /// The reason (sanitized).
        reason: String,
    },
}

/// Step 10: security deposit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepositOutcome {
    /// No deposit for this customer and package.
    NotRequired,
    /// The customer must accept paying this amount (the journey waits for the
    /// `accept-deposit` signal).
    Required {
        /// The deposit.
        amount: Sar,
    },
}

/// Step 13: the eSIM profile of the new number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimDetails {
    /// Its ICCID.
    pub iccid: Iccid,
}

/// Step 13: the new line is registered with TCC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TccRegistered {
    /// TCC's registration id.
    pub registration_id: RegistrationId,
}

/// Step 13: what to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TccRegistration {
    /// The owner.
    pub national_id: NationalId,
    /// The new line.
    pub msisdn: Msisdn,
    /// Its eSIM profile.
    pub iccid: Iccid,
}

impl MobilyClient {
    /// Step 6: the TCC check of how many lines the customer may have.
    pub async fn tcc_eligibility(
        &self,
        customer: &NationalId,
        line_type: PaymentType,
    ) -> Result<EligibilityOutcome, ProviderError> {
        let body = wire::EligibilityRequest {
            national_id: customer.clone(),
            id_type: customer.id_type(),
            line_type,
        };
        let answer = self.call(TCC_ELIGIBILITY, &body, None).await?;
        let parsed: wire::EligibilityResponse = answer.body().unwrap_or_default();
        if answer.code == codes::NOT_ELIGIBLE
            || (answer.is_success() && parsed.eligible == Some(false))
        {
            return Ok(EligibilityOutcome::NotEligible {
                code: codes::NOT_ELIGIBLE.to_owned(),
                reason: message(
                    Some(&answer.message),
                    "the customer may not have another line",
                ),
            });
        }
        answer.success_or_refused()?;
        if parsed.eligible != Some(true) {
            return Err(answer.protocol("eligibility answer without `eligible`"));
        }
        Ok(EligibilityOutcome::Eligible {
            active_lines: parsed.active_lines,
            max_lines: parsed.max_lines,
        })
    }

    /// Steps 6 and 11: the customer's account and lines.
    pub async fn customer_products(
        &self,
        lookup: &CustomerLookup,
    ) -> Result<CustomerProducts, ProviderError> {
        let body = match lookup {
            CustomerLookup::NationalId(id) => wire::CustomerLookupRequest {
                national_id: Some(id.clone()),
                msisdn: None,
            },
            CustomerLookup::Msisdn(m) => wire::CustomerLookupRequest {
                national_id: None,
                msisdn: Some(m.clone()),
            },
        };
        let answer = self.call(CUSTOMER_PRODUCTS, &body, None).await?;
        answer.success_or_refused()?;
        let parsed: wire::CustomerProductsResponse = answer.body()?;
        Ok(CustomerProducts {
            exists: parsed.customer_exists,
            lines: parsed
                .products
                .into_iter()
                .take(MAX_LINES)
                .map(|p| Line {
                    msisdn: p.msisdn,
                    payment_type: p.payment_type,
                    status: crate::redact::sanitize_message(&p.status),
                })
                .collect(),
        })
    }

    /// Step 8 (postpaid only): overdue bills.
    pub async fn dues(&self, customer: &NationalId) -> Result<DuesOutcome, ProviderError> {
        let body = wire::CustomerRequest {
            national_id: customer.clone(),
        };
        let answer = self.call(DUES, &body, None).await?;
        let parsed: wire::DuesResponse = answer.body().unwrap_or_default();
        if answer.code == codes::DUES_OWED || (answer.is_success() && parsed.has_dues == Some(true))
        {
            return Ok(DuesOutcome::DuesOwed {
                amount: parsed.total_amount,
                message: message(Some(&answer.message), "the customer has overdue bills"),
            });
        }
        answer.success_or_refused()?;
        Ok(DuesOutcome::NoDues)
    }

    /// Step 9: may the customer buy this package?
    pub async fn package_eligibility(
        &self,
        customer: &NationalId,
        product: &ProductOfferingId,
    ) -> Result<PackageEligibility, ProviderError> {
        let body = wire::PackageRequest {
            national_id: customer.clone(),
            product_offering_id: product.clone(),
        };
        let answer = self.call(PACKAGE, &body, None).await?;
        let parsed: wire::PackageResponse = answer.body().unwrap_or_default();
        if answer.code == codes::PACKAGE_NOT_ELIGIBLE
            || (answer.is_success() && parsed.eligible == Some(false))
        {
            return Ok(PackageEligibility::NotEligible {
                code: codes::PACKAGE_NOT_ELIGIBLE.to_owned(),
                reason: message(
                    Some(&answer.message),
                    "the customer may not buy this package",
                ),
            });
        }
        answer.success_or_refused()?;
        Ok(PackageEligibility::Eligible)
    }

    /// Step 10 (postpaid only): the security deposit required, if any.
    pub async fn security_deposit(
        &self,
        customer: &NationalId,
        product: &ProductOfferingId,
    ) -> Result<DepositOutcome, ProviderError> {
        let body = wire::PackageRequest {
            national_id: customer.clone(),
            product_offering_id: product.clone(),
        };
        let answer = self.call(DEPOSIT, &body, None).await?;
        answer.success_or_refused()?;
        let parsed: wire::DepositResponse = answer.body()?;
        match (parsed.deposit_required, parsed.amount) {
            (true, Some(amount)) if !amount.is_zero() => Ok(DepositOutcome::Required { amount }),
            (true, _) => Err(answer.protocol("deposit required without a positive amount")),
            (false, _) => Ok(DepositOutcome::NotRequired),
        }
    }

    /// Step 13: the eSIM profile assigned to the new number (the same one on every call).
    pub async fn sim_details(&self, msisdn: &Msisdn) -> Result<SimDetails, ProviderError> {
        let body = wire::SimGetRequest {
            msisdn: msisdn.clone(),
            sim_type: SimType::Esim,
        };
        let answer = self.call(SIM_GET, &body, None).await?;
        answer.success_or_refused()?;
        let parsed: wire::SimGetResponse = answer.body()?;
        Ok(SimDetails {
            iccid: parsed.iccid,
        })
    }

    /// Step 13: registers the new line with TCC. Effectful; `key` makes a repeat return the
    /// original registration (reconcile an `OutcomeUnknown` by re-sending with it).
    pub async fn tcc_register(
        &self,
        registration: &TccRegistration,
        key: &IdempotencyKey,
    ) -> Result<TccRegistered, ProviderError> {
        let body = wire::TccRegisterRequest {
            national_id: registration.national_id.clone(),
            id_type: registration.national_id.id_type(),
            msisdn: registration.msisdn.clone(),
            iccid: registration.iccid.clone(),
        };
        let answer = self.call(TCC_REGISTER, &body, Some(key)).await?;
        answer.success_or_refused()?;
        let parsed: wire::TccRegisterResponse = answer.body()?;
        Ok(TccRegistered {
            registration_id: parsed.registration_id,
        })
    }
}
