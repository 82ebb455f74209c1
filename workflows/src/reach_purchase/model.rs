//! J2's durable types: input, state, output and signal payloads.
//!
//! All of them are stored: field names and variant names are a durable
//! contract (see [`handover_engine::Workflow`]). Personal data (names,
//! e-mail, address, IMEI, ICCID, the new number) is wrapped in [`Sensitive`],
//! so operator views, history and the admin API show `[redacted]`.

use std::time::Duration;

use handover_adapters::reach::{ClientAccountId, CustomerId, PlanId, SimType, TransactionId};
use handover_engine::{Sensitive, Timestamp};
use serde::{Deserialize, Serialize};

/// A postal address as the caller gives it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressInput {
    /// Street line.
    pub address1: String,
    /// Second line.
    #[serde(default)]
    pub address2: Option<String>,
    /// City.
    pub city: String,
    /// Two-letter state code.
    pub state: String,
    /// 5-digit ZIP code.
    pub zip: String,
}

impl std::fmt::Debug for AddressInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AddressInput { .. }")
    }
}

/// The buyer's contact details.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buyer {
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// E-mail.
    pub email: String,
}

impl std::fmt::Debug for Buyer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Buyer { .. }")
    }
}

/// How long the journey waits and how often it polls. Defaults follow the
/// guide; tests and demos shorten them. Every value is clamped at start
/// ([`Timing::clamped`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timing {
    /// Poll interval until the payment link exists ("every 5 s").
    pub link_poll_ms: u64,
    /// First interval of the growing polls (payment result, activation).
    pub poll_first_ms: u64,
    /// Longest interval of the growing polls.
    pub poll_max_ms: u64,
    /// Polls of one wait before a person is asked.
    pub max_polls: u32,
    /// How long the customer may take to pay when Reach gives no
    /// `link.expireDate`.
    pub payment_window_secs: u64,
    /// How long a failed payment waits for the customer's decision to retry.
    pub retry_window_secs: u64,
    /// How long a physical SIM may take to arrive.
    pub sim_arrival_secs: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            link_poll_ms: 5_000,
            poll_first_ms: 5_000,
            poll_max_ms: 120_000,
            max_polls: 120,
            payment_window_secs: 30 * 60,
            retry_window_secs: 24 * 3600,
            sim_arrival_secs: 14 * 86_400,
        }
    }
}

impl Timing {
    /// Every value within bounds: polls 50 ms to 10 min, at most 1000 polls,
    /// windows 1 s to 60 days.
    pub fn clamped(self) -> Self {
        let ms = |v: u64| v.clamp(50, 600_000);
        let secs = |v: u64| v.clamp(1, 60 * 86_400);
        Self {
            link_poll_ms: ms(self.link_poll_ms),
            poll_first_ms: ms(self.poll_first_ms),
            poll_max_ms: ms(self.poll_max_ms).max(ms(self.poll_first_ms)),
            max_polls: self.max_polls.clamp(1, 1_000),
            payment_window_secs: secs(self.payment_window_secs),
            retry_window_secs: secs(self.retry_window_secs),
            sim_arrival_secs: secs(self.sim_arrival_secs),
        }
    }

    /// The link poll interval.
    pub fn link_poll(&self) -> Duration {
        Duration::from_millis(self.link_poll_ms)
    }

    /// The n-th growing poll interval.
    pub fn poll(&self, n: u32) -> Duration {
        crate::common::poll_interval(
            n,
            Duration::from_millis(self.poll_first_ms),
            Duration::from_millis(self.poll_max_ms),
        )
    }
}

/// What starting a purchase takes. Personal fields accept plain JSON values
/// (`"first_name": "Ada"`) and are stored redacted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReachPurchaseInput {
    /// The brand's own order reference, if it has one: the journey's
    /// business key (1 to 64 letters, digits or `-_.:`).
    #[serde(default)]
    pub order_ref: Option<String>,
    /// Buyer's first name.
    pub first_name: Sensitive<String>,
    /// Buyer's last name.
    pub last_name: Sensitive<String>,
    /// Buyer's e-mail.
    pub email: Sensitive<String>,
    /// Service address: checked for coverage, and the shipping address of a
    /// physical SIM.
    pub address: Sensitive<AddressInput>,
    /// The device's IMEI (15 digits, Luhn-checked).
    pub imei: Sensitive<String>,
    /// The plan's `serviceCode`.
    pub plan_id: String,
    /// `ESIM` or `PSIM` if the customer chose; otherwise the device's `mode`
    /// decides (eSIM when it takes both).
    #[serde(default)]
    pub sim_type: Option<SimType>,
    /// Waits and polls.
    #[serde(default)]
    pub timing: Timing,
}

/// The order, validated at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderData {
    /// Who buys.
    pub buyer: Sensitive<Buyer>,
    /// Where (coverage, shipping).
    pub address: Sensitive<AddressInput>,
    /// The device.
    pub imei: Sensitive<String>,
    /// The plan asked for.
    pub plan_id: PlanId,
    /// The customer's SIM choice.
    pub prefer: Option<SimType>,
    /// Waits and polls.
    pub timing: Timing,
}

/// A quote, in cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteFacts {
    /// `totalOneTimeCost`.
    pub total_one_time_cents: u64,
    /// `estimatedMonthlyCost.total`.
    pub monthly_total_cents: u64,
}

/// What the journey learnt so far (shown to operators and to the customer's
/// app: the payment link is here).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Decided from the device's `mode`.
    pub sim_type: Option<SimType>,
    /// The plan's display name.
    pub plan_name: Option<String>,
    /// The latest quote.
    pub quote: Option<QuoteFacts>,
    /// Purchase attempts so far (1 for the first; a retry after `FAILED`
    /// adds one).
    pub purchase_attempt: u32,
    /// The current attempt's `clientAccountId` (its idempotency key).
    pub client_account_id: Option<ClientAccountId>,
    /// The current attempt's `transactionId`.
    pub transaction_id: Option<TransactionId>,
    /// Where to send the customer to pay (`link.url`).
    pub payment_link: Option<String>,
    /// `link.expireDate` (or our own payment window).
    pub link_expires: Option<Timestamp>,
    /// `paymentStatusDesc` of every failed attempt, oldest first.
    pub payment_failures: Vec<String>,
    /// "Store customerId - required for ALL future calls".
    pub customer_id: Option<CustomerId>,
    /// The physical SIM's ICCID, once it arrived.
    pub icc_id: Option<Sensitive<String>>,
    /// The activation operation.
    pub activation_transaction_id: Option<TransactionId>,
}

/// Where the journey is. See the module docs of
/// [`reach_purchase`](crate::reach_purchase) for the mapping to the spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// `POST /network/coverage`.
    Coverage,
    /// `GET /device/imei/{imei}`.
    Device,
    /// The plan from the cached catalog.
    Plan,
    /// `POST /product/quote`.
    Quote,
    /// `POST /product` (effectful).
    Purchase,
    /// Poll `GET /product/status/{transactionId}` until `link.url`.
    AwaitLink {
        /// Polls so far.
        polls: u32,
    },
    /// Wait for the customer's return, the purchase callback, or the link's
    /// expiry.
    AwaitCustomer,
    /// Poll the status (growing interval) or take the purchase callback.
    AwaitPaymentResult {
        /// Polls so far.
        polls: u32,
    },
    /// The payment failed: wait for the customer to try again (from the
    /// quote) until `until`.
    PaymentFailed {
        /// End of the wait (set when the wait begins).
        until: Option<Timestamp>,
    },
    /// Physical SIM: wait for `sim-arrived` until `until`.
    AwaitSim {
        /// End of the wait (set when the wait begins).
        until: Option<Timestamp>,
        /// SIMs that turned out unusable so far.
        unusable: u32,
    },
    /// `POST /iccid/validate`.
    ValidateSim {
        /// End of the SIM wait, kept for going back to it.
        until: Option<Timestamp>,
        /// SIMs that turned out unusable so far.
        unusable: u32,
    },
    /// `POST /activation` (effectful).
    Activate {
        /// Activations sent before (re-sent only when Reach has none).
        sends: u32,
    },
    /// Poll `GET /activation/status` or take the `ACTIVATION` callback.
    AwaitActivation {
        /// Polls so far.
        polls: u32,
        /// Activations sent.
        sends: u32,
    },
    /// Ends the journey as failed (a wait for the customer timed out).
    GiveUp {
        /// Why.
        reason: String,
    },
    /// Stops for a person (`needs_attention`); skipping it resumes `resume`.
    NeedsPerson {
        /// What is wrong and what to do.
        reason: String,
        /// Where to go on after the person fixed it.
        resume: Box<Stage>,
    },
}

/// The journey's state: the order, what is known, and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The validated order.
    pub order: OrderData,
    /// What is known so far.
    pub progress: Progress,
    /// Where the journey is.
    pub stage: Stage,
}

/// A completed purchase with a live line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReachPurchaseOutput {
    /// The paid purchase.
    pub transaction_id: TransactionId,
    /// The subscriber (for all later calls).
    pub customer_id: CustomerId,
    /// What was bought.
    pub sim_type: SimType,
    /// The plan.
    pub plan_id: PlanId,
    /// The new line's number.
    pub mobile_no: Sensitive<String>,
    /// The number, masked, for display.
    pub mobile_no_masked: String,
    /// Purchase attempts (2 or more after failed payments).
    pub purchase_attempts: u32,
    /// Why earlier payment attempts failed.
    pub payment_failures: Vec<String>,
}

/// The payload of the `sim-arrived` signal.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimArrived {
    /// The ICCID printed on the card (19 or 20 digits).
    pub iccid: String,
}

impl std::fmt::Debug for SimArrived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SimArrived { .. }")
    }
}
