//! What the client returns: business states as enum outcomes, not errors.

use chrono::{DateTime, Utc};
use url::Url;

use super::{
    ActivationCode, ClientAccountId, CustomerId, DeviceMode, Mdn, PlanId, PurchaseStatusCode,
    SimType, TransactionId, Usd,
};

/// The coverage answer. `NotCovered` is a normal answer: "stop the flow".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoverageOutcome {
    /// `brandCoverage: true`.
    Covered {
        /// `coverageStrength5G`.
        strength_5g: Option<String>,
        /// `coverageStrength4G`.
        strength_4g: Option<String>,
    },
    /// `brandCoverage: false`: "Show a 'not available in your area' message."
    NotCovered {
        /// `coverageStrength5G`.
        strength_5g: Option<String>,
        /// `coverageStrength4G`.
        strength_4g: Option<String>,
    },
}

/// A compatible device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Which SIMs it takes ("Use mode to decide PSIM vs ESIM").
    pub mode: DeviceMode,
    /// Whether an eSIM can be provisioned to it.
    pub esim_available: bool,
    /// Manufacturer.
    pub make: Option<String>,
    /// Model.
    pub model: Option<String>,
}

/// The IMEI answer. `Invalid` is a normal answer: "stop the flow".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImeiOutcome {
    /// `isValid: true`.
    Valid(Device),
    /// `isValid: false`.
    Invalid,
}

/// A plan of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// `serviceCode`, the `planId` of later calls.
    pub service_code: PlanId,
    /// Display name.
    pub name: Option<String>,
    /// `baseLinePrice`, monthly.
    pub base_line_price: Usd,
    /// `maxLines`.
    pub max_lines: u32,
    /// `fccLabel` (must be displayed).
    pub fcc_label: Option<String>,
    /// `upGradableTo`.
    pub up_gradable_to: Vec<PlanId>,
    /// `downGradableTo`.
    pub down_gradable_to: Vec<PlanId>,
}

/// What the customer pays today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OneTimeCharge {
    /// `totalOneTimeCost`: total due today.
    pub total_one_time_cost: Usd,
    /// `simKitCost`.
    pub sim_kit_cost: Usd,
    /// `activationCost`.
    pub activation_cost: Usd,
    /// `shipment`.
    pub shipment: Usd,
    /// `tax`.
    pub tax: Usd,
}

/// A purchase quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    /// `oneTimeCharge`.
    pub one_time_charge: OneTimeCharge,
    /// `estimatedMonthlyCost.total`.
    pub estimated_monthly_total: Usd,
}

/// The answer to a purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurchaseOutcome {
    /// Accepted now: poll this transaction.
    Submitted {
        /// The new transaction.
        transaction_id: TransactionId,
    },
    /// This `clientAccountId` already has a purchase (`409`): poll it, do not re-order.
    AlreadySubmitted {
        /// The existing transaction.
        transaction_id: TransactionId,
        /// Its status, when Reach said.
        status: Option<PurchaseStatusCode>,
    },
}

impl PurchaseOutcome {
    /// The transaction to poll, new or existing.
    pub fn transaction_id(&self) -> &TransactionId {
        match self {
            PurchaseOutcome::Submitted { transaction_id }
            | PurchaseOutcome::AlreadySubmitted { transaction_id, .. } => transaction_id,
        }
    }
}

/// The payment page for the customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentLink {
    /// `link.url`: redirect the customer here.
    pub url: Url,
    /// `link.expireDate`: after this the purchase fails.
    pub expire_date: Option<DateTime<Utc>>,
}

/// A completed purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPurchase {
    /// "Store customerId - required for ALL future calls".
    pub customer_id: CustomerId,
    /// Our reference, echoed.
    pub client_account_id: Option<ClientAccountId>,
    /// `PSIM`: wait for the SIM (Scenario C); `ESIM`: activate now (Scenario D).
    pub sim_type: Option<SimType>,
    /// SIM dispatch state.
    pub shipment_status: Option<String>,
    /// The processor's state.
    pub payment_status: Option<String>,
}

/// Where a purchase stands (`GET /product/status/{transactionId}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurchaseStatus {
    /// `INITIATED`: keep polling.
    Initiated,
    /// `PAYMENT_PENDING`: send the customer to `link` once it is there ("Poll until ...
    /// link.url is present").
    PaymentPending {
        /// The payment page, when ready.
        link: Option<PaymentLink>,
        /// The processor's state.
        payment_status: Option<String>,
    },
    /// `PAYMENT_PROCESSING`: the customer paid; keep polling.
    PaymentProcessing {
        /// The processor's state.
        payment_status: Option<String>,
    },
    /// `COMPLETED`.
    Completed(CompletedPurchase),
    /// `FAILED`: show `payment_status_desc`; a retry restarts from the quote.
    Failed {
        /// The processor's state.
        payment_status: Option<String>,
        /// `paymentStatusDesc` (sanitized).
        payment_status_desc: Option<String>,
    },
}

impl PurchaseStatus {
    /// The status code.
    pub fn code(&self) -> PurchaseStatusCode {
        match self {
            PurchaseStatus::Initiated => PurchaseStatusCode::Initiated,
            PurchaseStatus::PaymentPending { .. } => PurchaseStatusCode::PaymentPending,
            PurchaseStatus::PaymentProcessing { .. } => PurchaseStatusCode::PaymentProcessing,
            PurchaseStatus::Completed(_) => PurchaseStatusCode::Completed,
            PurchaseStatus::Failed { .. } => PurchaseStatusCode::Failed,
        }
    }
}

/// The ICCID answer. `Invalid` is a normal answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IccidOutcome {
    /// `isValid: true`.
    Valid {
        /// `PSIM` or `ESIM`.
        mode: DeviceMode,
        /// `wifiCalling`.
        wifi_calling: bool,
        /// `volteCompatible`.
        volte_compatible: bool,
    },
    /// `isValid: false`.
    Invalid,
}

/// The answer to an activation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivationOutcome {
    /// Accepted now: poll the status by `customerId`.
    Submitted {
        /// The activation (or port-in) operation.
        transaction_id: Option<TransactionId>,
        /// The line's code now (1, or 9 for a port-in).
        status: ActivationCode,
    },
    /// The line already has an activation or port-in (`409`): poll it, do not re-send.
    AlreadySubmitted {
        /// The existing operation.
        transaction_id: Option<TransactionId>,
        /// The line's code now.
        status: ActivationCode,
    },
}

/// Where a line stands (`GET /activation/status?customerId=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivationStatus {
    /// 0: not submitted.
    Inactive,
    /// 1: keep polling.
    InProgress,
    /// 2: the line is live.
    Active {
        /// `mobileNo`: the line's number (the ported number after a port-in). Masked when
        /// printed.
        mobile_no: Mdn,
        /// `planName`.
        plan_name: Option<String>,
        /// `activationDate`.
        activation_date: Option<DateTime<Utc>>,
    },
    /// 8: "show error, contact support"; a new activation may be sent.
    Failed {
        /// `activationMsg` (sanitized).
        activation_msg: Option<String>,
    },
    /// 9: keep polling (minutes to hours).
    PortingInProgress,
    /// 10: correct the details with [`ReachClient::update_port_in`](super::ReachClient::update_port_in).
    PortingFailed {
        /// `activationMsg`: what the losing carrier refused (sanitized).
        activation_msg: Option<String>,
    },
    /// 11: the port-in was cancelled.
    PortCancelled,
    /// A code the guide does not list for activation.
    Other {
        /// The code.
        code: i64,
        /// `activationMsg` (sanitized).
        activation_msg: Option<String>,
    },
}

impl ActivationStatus {
    /// The numeric code.
    pub fn code(&self) -> ActivationCode {
        match self {
            ActivationStatus::Inactive => ActivationCode::Inactive,
            ActivationStatus::InProgress => ActivationCode::InProgress,
            ActivationStatus::Active { .. } => ActivationCode::Active,
            ActivationStatus::Failed { .. } => ActivationCode::Failed,
            ActivationStatus::PortingInProgress => ActivationCode::PortingInProgress,
            ActivationStatus::PortingFailed { .. } => ActivationCode::PortingFailed,
            ActivationStatus::PortCancelled => ActivationCode::PortCancelled,
            ActivationStatus::Other { code, .. } => ActivationCode::Other(*code),
        }
    }
}

/// The port eligibility answer. `NotEligible` is a normal answer: stop the port-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortEligibility {
    /// `isPortValidate: true`.
    Eligible {
        /// `message` (sanitized).
        message: Option<String>,
    },
    /// `isPortValidate: false`.
    NotEligible {
        /// `message` (sanitized).
        message: Option<String>,
    },
}

/// The answer to a port-in update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortInUpdateOutcome {
    /// Applied: poll again.
    Accepted {
        /// The new port-in (or activation) operation.
        transaction_id: Option<TransactionId>,
        /// The line's code now (9, 11, or 1 after `CANCEL_AND_NEW`).
        status: ActivationCode,
    },
    /// Not applicable in the line's current state (`409`), e.g. already applied.
    Conflict {
        /// The line's code now.
        current: ActivationCode,
        /// Reach's message (sanitized).
        message: String,
    },
}
