//! Wire structures, with the guide's field names. Where the guide leaves a body blank the
//! names are our choice, recorded in the [module docs](super) and implemented the same way by
//! the simulator (which parses requests independently, from raw JSON, so a drift shows up in
//! the contract tests).
//!
//! Bodies holding personal data or the port-in PIN have a hand-written `Debug` that shows
//! neither.

use std::fmt;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::types::{Usd, expose};
use crate::redact::mask_msisdn;

/// A postal address: the coverage request body, and `shippingAddress` in an order.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddressBody {
    /// Street line.
    pub address1: String,
    /// Second line, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address2: Option<String>,
    /// City.
    pub city: String,
    /// Two-letter state code.
    pub state: String,
    /// ZIP code.
    pub zip: String,
    /// Country, `USA`.
    pub country: String,
}

impl fmt::Debug for AddressBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddressBody")
            .field("state", &self.state)
            .field("zip", &self.zip)
            .finish_non_exhaustive()
    }
}

/// Answer of `POST /apisvc/v0/network/coverage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoverageResponse {
    /// `false`: "do not proceed".
    #[serde(rename = "brandCoverage")]
    pub brand_coverage: bool,
    /// 5G signal strength, free text.
    #[serde(rename = "coverageStrength5G", default)]
    pub coverage_strength_5g: Option<String>,
    /// 4G signal strength, free text.
    #[serde(rename = "coverageStrength4G", default)]
    pub coverage_strength_4g: Option<String>,
}

/// Answer of `GET /apisvc/v0/device/imei/{imei}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImeiResponse {
    /// `false`: "stop the flow".
    pub is_valid: bool,
    /// `PSIM`, `ESIM` or `BOTH`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Whether the device can take an eSIM.
    #[serde(default)]
    pub esim_available: Option<bool>,
    /// Manufacturer.
    #[serde(default)]
    pub make: Option<String>,
    /// Model.
    #[serde(default)]
    pub model: Option<String>,
}

/// One plan of `GET /apisvc/v0/product/fetch/plan` (the answer is a JSON array of these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanBody {
    /// "use as planId in subsequent calls".
    pub service_code: String,
    /// Display name (our choice; the guide names none).
    #[serde(default)]
    pub name: Option<String>,
    /// Monthly base price.
    pub base_line_price: Usd,
    /// Most lines per account.
    pub max_lines: u32,
    /// FCC disclosure ("must display").
    #[serde(default)]
    pub fcc_label: Option<String>,
    /// Service codes this plan can be upgraded to.
    #[serde(default)]
    pub up_gradable_to: Vec<String>,
    /// Service codes this plan can be downgraded to.
    #[serde(default)]
    pub down_gradable_to: Vec<String>,
}

/// The body of both `POST /apisvc/v0/product/quote` and `POST /apisvc/v0/product` ("Same
/// structure as the Quote body"). Port-in fields are the guide's (Scenario E, step 2).
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderBody {
    /// Our reference, the purchase's idempotency key.
    pub client_account_id: String,
    /// The plan's `serviceCode`.
    pub plan_id: String,
    /// `PSIM` or `ESIM`.
    pub sim_type: String,
    /// Where the payment processor sends the customer back.
    pub redirect_url: String,
    /// Customer's first name.
    pub first_name: String,
    /// Customer's last name.
    pub last_name: String,
    /// Customer's e-mail.
    pub email: String,
    /// Where a physical SIM is shipped (required for `PSIM`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shipping_address: Option<AddressBody>,
    /// The customer's device, when bringing their own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imei: Option<String>,
    /// Port-in: the 10-digit number to transfer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number_to_port: Option<String>,
    /// Port-in: the losing carrier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_carrier: Option<String>,
    /// Port-in: the account number at the losing carrier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_carrier_account_number: Option<String>,
    /// Port-in: the transfer PIN. Secret.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "expose_opt")]
    pub password: Option<SecretString>,
    /// Port-in: the billing ZIP at the losing carrier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_zip: Option<String>,
}

fn expose_opt<S: serde::Serializer>(
    secret: &Option<SecretString>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => expose(secret, s),
        None => s.serialize_none(),
    }
}

impl fmt::Debug for OrderBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrderBody")
            .field("client_account_id", &self.client_account_id)
            .field("plan_id", &self.plan_id)
            .field("sim_type", &self.sim_type)
            .field(
                "number_to_port",
                &self.number_to_port.as_deref().map(mask_msisdn),
            )
            .finish_non_exhaustive()
    }
}

/// One-time charges of a quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OneTimeChargeBody {
    /// "total due today".
    pub total_one_time_cost: Usd,
    /// SIM kit.
    #[serde(default)]
    pub sim_kit_cost: Usd,
    /// Activation fee.
    #[serde(default)]
    pub activation_cost: Usd,
    /// Shipping.
    #[serde(default)]
    pub shipment: Usd,
    /// Tax.
    #[serde(default)]
    pub tax: Usd,
}

/// Monthly estimate of a quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EstimatedMonthlyCostBody {
    /// "estimated monthly going forward".
    pub total: Usd,
}

/// Answer of `POST /apisvc/v0/product/quote`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuoteResponse {
    /// Due today.
    pub one_time_charge: OneTimeChargeBody,
    /// Going forward.
    pub estimated_monthly_cost: EstimatedMonthlyCostBody,
}

/// Answer of an accepted asynchronous call (purchase `202`, activation `202`, port-in update
/// `200`), and the body of a `409` that names the existing operation.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AsyncResponse {
    /// The operation's id.
    #[serde(default)]
    pub transaction_id: Option<String>,
    /// The customer, for activation and port-in answers.
    #[serde(default)]
    pub customer_id: Option<String>,
    /// The state: a purchase status string, or a numeric activation code.
    #[serde(default)]
    pub status: Option<serde_json::Value>,
    /// Our error code on refusals and conflicts (see `super::error_code`).
    #[serde(default)]
    pub error_code: Option<String>,
    /// Human-readable message.
    #[serde(default)]
    pub message: Option<String>,
}

/// `link` of a purchase status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkBody {
    /// The payment page.
    #[serde(default)]
    pub url: Option<String>,
    /// When it expires, RFC 3339.
    #[serde(default)]
    pub expire_date: Option<String>,
}

/// Answer of `GET /apisvc/v0/product/status/{transactionId}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PurchaseStatusResponse {
    /// The transaction.
    #[serde(default)]
    pub transaction_id: Option<String>,
    /// Our reference from the purchase.
    #[serde(default)]
    pub client_account_id: Option<String>,
    /// `INITIATED`, `PAYMENT_PENDING`, `PAYMENT_PROCESSING`, `COMPLETED`, `FAILED`.
    pub status: String,
    /// The payment processor's state.
    #[serde(default)]
    pub payment_status: Option<String>,
    /// The payment page, once the status is `PAYMENT_PENDING`.
    #[serde(default)]
    pub link: Option<LinkBody>,
    /// Set on `COMPLETED`.
    #[serde(default)]
    pub customer_id: Option<String>,
    /// SIM dispatch state.
    #[serde(default)]
    pub shipment_status: Option<String>,
    /// `PSIM` or `ESIM`.
    #[serde(default)]
    pub sim_type: Option<String>,
    /// Why a payment failed.
    #[serde(default)]
    pub payment_status_desc: Option<String>,
}

/// Body of `POST /apisvc/v0/iccid/validate`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IccidRequest {
    /// The SIM's ICCID.
    pub icc_id: String,
}

impl fmt::Debug for IccidRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IccidRequest")
            .field("icc_id", &mask_msisdn(&self.icc_id))
            .finish()
    }
}

/// Answer of `POST /apisvc/v0/iccid/validate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IccidResponse {
    /// Proceed only if `true`.
    pub is_valid: bool,
    /// `PSIM` or `ESIM`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Wi-Fi calling support.
    #[serde(default)]
    pub wifi_calling: Option<bool>,
    /// VoLTE support.
    #[serde(default)]
    pub volte_compatible: Option<bool>,
}

/// Body of `POST /apisvc/v0/activation`: eSIM by IMEI with `esim: true`, pSIM by `iccId`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivationBody {
    /// The subscriber.
    pub customer_id: String,
    /// `true` for eSIM.
    pub esim: bool,
    /// The device, for eSIM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imei: Option<String>,
    /// The SIM, for pSIM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icc_id: Option<String>,
}

impl fmt::Debug for ActivationBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActivationBody")
            .field("customer_id", &self.customer_id)
            .field("esim", &self.esim)
            .finish_non_exhaustive()
    }
}

/// Answer of `GET /apisvc/v0/activation/status?customerId=`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivationStatusResponse {
    /// The subscriber.
    #[serde(default)]
    pub customer_id: Option<String>,
    /// The activation or port-in operation this status belongs to.
    #[serde(default)]
    pub transaction_id: Option<String>,
    /// 0, 1, 2, 8, 9, 10, 11.
    pub status: i64,
    /// Why activation or porting failed.
    #[serde(default)]
    pub activation_msg: Option<String>,
    /// The line's number once active.
    #[serde(default)]
    pub mobile_no: Option<String>,
    /// The plan.
    #[serde(default)]
    pub plan_name: Option<String>,
    /// When the line became active, RFC 3339.
    #[serde(default)]
    pub activation_date: Option<String>,
}

/// Answer of `PUT /apisvc/v0/port/validate/mdn?mdn=`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortValidateResponse {
    /// Proceed only if `true`.
    pub is_port_validate: bool,
    /// "human-readable result".
    #[serde(default)]
    pub message: Option<String>,
}

/// Body of `PUT /apisvc/v0/update/portin`: the `type` and the corrected field, named as in
/// the purchase body.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortInUpdateBody {
    /// The subscriber whose port-in is corrected.
    pub customer_id: String,
    /// `UPDATE_PIN`, `UPDATE_ACCOUNT`, `UPDATE_ZIP`, `RESUBMIT_PORT`, `CANCEL_PORT`,
    /// `CANCEL_AND_NEW`.
    #[serde(rename = "type")]
    pub update_type: String,
    /// The corrected PIN (`UPDATE_PIN`). Secret.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "expose_opt")]
    pub password: Option<SecretString>,
    /// The corrected account number (`UPDATE_ACCOUNT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_carrier_account_number: Option<String>,
    /// The corrected ZIP (`UPDATE_ZIP`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_zip: Option<String>,
}

impl fmt::Debug for PortInUpdateBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortInUpdateBody")
            .field("customer_id", &self.customer_id)
            .field("update_type", &self.update_type)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_body_uses_the_guide_names_and_hides_the_pin() {
        let body = OrderBody {
            client_account_id: "J-1".into(),
            plan_id: "PLAN-A".into(),
            sim_type: "ESIM".into(),
            redirect_url: "https://brand.example/r".into(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            email: "ada@example.com".into(),
            shipping_address: None,
            imei: None,
            number_to_port: Some("2125550100".into()),
            old_carrier: Some("T-Mobile".into()),
            old_carrier_account_number: Some("998877".into()),
            password: Some(SecretString::from("482916")),
            old_zip: Some("10001".into()),
        };
        let json = serde_json::to_value(&body).unwrap();
        let mut names: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "clientAccountId",
                "email",
                "firstName",
                "lastName",
                "numberToPort",
                "oldCarrier",
                "oldCarrierAccountNumber",
                "oldZip",
                "password",
                "planId",
                "redirectUrl",
                "simType"
            ]
        );
        assert_eq!(json["password"], "482916");
        let shown = format!("{body:?}");
        assert!(
            !shown.contains("482916") && !shown.contains("2125550100"),
            "{shown}"
        );
    }

    #[test]
    fn coverage_names_keep_their_capital_g() {
        let answer: CoverageResponse = serde_json::from_str(
            r#"{"brandCoverage":true,"coverageStrength5G":"GOOD","coverageStrength4G":"EXCELLENT"}"#,
        )
        .unwrap();
        assert_eq!(answer.coverage_strength_5g.as_deref(), Some("GOOD"));
        assert_eq!(answer.coverage_strength_4g.as_deref(), Some("EXCELLENT"));
    }
}
