//! J1. Mobily eSIM checkout (`mobily-developer-portal.txt`, "eSIM Sequence Diagram").
//!
//! A customer buys a Mobily eSIM package online: a new number or a port-in
//! (MNP), prepaid or postpaid. The journey walks the spec's 17 steps on
//! [`MobilyClient`]; every human wait is a signal with a timeout, and every
//! effect on money or inventory carries a stable key and is reconciled after
//! an unknown outcome.
//!
//! | state ([`At`]) | spec step | what it does |
//! |---|---|---|
//! | [`At::Products`] | 1, 2 | the product must be in the sellable list (cached, see [`catalog`]); obtains the JWT |
//! | [`At::Cart`] | 3 | product details (must offer eSIM), create the cart, qualify it (`update-and-validate`) |
//! | [`At::NumberOption`] | 4 | checkout structure, capture the number option (new or MNP) |
//! | [`At::SimOption`] | 5 | capture the SIM option (eSIM) |
//! | [`At::TccEligibility`] | 6 | TCC eligibility and the customer's installed base; not eligible ends the journey with the reason |
//! | [`At::PickNumber`], [`At::ReserveNumber`] | 7 | availability check, then the reservation (stable key; a number taken meanwhile picks another, at most [`MAX_NUMBER_TRIES`]) |
//! | [`At::OverdueBills`] | 8 | postpaid only: dues end the journey with Mobily's message |
//! | [`At::PackageEligibility`] | 9 | package eligibility; a refusal ends the journey with the reason |
//! | [`At::SecurityDeposit`], [`At::AwaitDeposit`] | 10 | postpaid only: the deposit amount; waits for [`ACCEPT_DEPOSIT_SIGNAL`] (timeout) |
//! | [`At::SendOtp`], [`At::AwaitOtp`], [`At::ResendOtp`] | 11 | generation; waits for [`OTP_SIGNAL`]; at most [`MAX_WRONG_OTP`] wrong codes; an expired or locked code is re-sent with `/regeneration` (at most [`MAX_OTP_RESENDS`]) |
//! | [`At::NafathInitiate`], [`At::AwaitNafath`] | 12 | initiate with our webhook; waits for [`NAFATH_SIGNAL`] (the webhook), polling `tokeninfo` with a growing interval meanwhile; rejected, expired or timed out ends the journey |
//! | [`At::TccRegister`] | 13 | the eSIM profile (`sim/get`) and the TCC registration (stable key) |
//! | [`At::DeliveryDetails`] | 14 | capture the contact details; the checkout must then be complete |
//! | [`At::PostOrder`] | 15 | `postProductOrder` with `externalOrderId` = the journey's order key; reconciles by `orderInquiry`; pushes [`Compensation::CancelOrder`] |
//! | [`At::CreatePayment`], [`At::AwaitThreeDs`], [`At::ConfirmPayment`] | 15 | session, `createPayment` (`paymentTransId` = the journey's payment key; reconciles by the payment inquiry; pushes [`Compensation::VoidPayment`]), waits for the 3-D Secure return [`THREE_DS_SIGNAL`], `confirmPayment` |
//! | [`At::OrderSubmitted`] | 16 | order tracking: records the order's status (a cancelled or failed order fails the journey) |
//! | [`At::QrCode`] | 17 | the QR code, re-inquired on durable timers with a growing interval until ready or the deadline |
//! | [`At::GiveUp`] | - | a human wait timed out: fails the journey (compensations run) |
//!
//! Saga: compensations run newest first. After the payment was created the
//! void is pushed (a void of a payment that never got authorised answers
//! "nothing to void", which counts as done); the order's cancellation was
//! pushed before it, so a failure after payment voids, then cancels (MNP
//! orders with `cancelMNPOrder`, new-number orders with `updateOrderStatus`).
//!
//! Business key: the line's MSISDN (the ported number for MNP, else the
//! customer's contact number) at start; the engine cannot change a business
//! key later, so once the order id is known it is registered as the
//! correlation key `mobily.order:<orderId>`, which `journeys list --key`
//! searches too.
//!
//! Personal data (national id, numbers, contact details) lives in the state
//! as [`Sensitive`] values; notes and errors carry masked numbers only.

pub mod catalog;
mod steps;

use std::sync::Arc;
use std::time::Duration;

use handover_adapters::MobilyClient;
use handover_adapters::mobily::{
    CartId, ContactDetails, Iccid, Language, Msisdn, NafathTransactionId, NationalId, NumberChoice,
    OrderId, OrderType, OtpId, PaymentId, PaymentType, ProductOfferingId, Sar,
};
use handover_engine::{
    BusinessKey, CompensationCtx, InvalidInput, Registry, RetryPolicy, Sensitive, Start, StepCtx,
    StepError, StepInfo, Timestamp, Transition, Workflow,
};
use serde::{Deserialize, Serialize};

use crate::Providers;

/// The workflow's durable name.
pub const NAME: &str = "mobily.esim-checkout";
/// The customer accepts (or declines) the security deposit: `{"accepted": true}`.
pub const ACCEPT_DEPOSIT_SIGNAL: &str = "accept-deposit";
/// The code the customer typed: `{"code": "123456"}`.
pub const OTP_SIGNAL: &str = "otp";
/// The Nafath webhook (from the ingress), addressed to [`NAFATH_NAMESPACE`].
pub const NAFATH_SIGNAL: &str = "mobily.nafath";
/// The customer's return from the 3-D Secure page (from the ingress),
/// addressed to [`PAYMENT_NAMESPACE`].
pub const THREE_DS_SIGNAL: &str = "mobily.3ds-return";
/// Correlation namespace of our Nafath `requestId`.
pub const NAFATH_NAMESPACE: &str = "mobily.nafath";
/// Correlation namespace of our `paymentTransId`.
pub const PAYMENT_NAMESPACE: &str = "mobily.payment";
/// Correlation namespace of Mobily's order id (searchable by operators).
pub const ORDER_NAMESPACE: &str = "mobily.order";
/// Wrong OTP codes accepted before the journey ends.
pub const MAX_WRONG_OTP: u32 = 3;
/// OTP re-sends (`/regeneration`) before the journey ends.
pub const MAX_OTP_RESENDS: u32 = 3;
/// Numbers tried when the chosen one is taken before it is reserved.
pub const MAX_NUMBER_TRIES: u32 = 5;

/// The journey.
#[derive(Debug, Clone)]
pub struct EsimCheckout {
    client: Arc<MobilyClient>,
}

impl EsimCheckout {
    /// The journey, calling Mobily with `client`.
    pub fn new(client: Arc<MobilyClient>) -> Self {
        Self { client }
    }
}

/// Registers the journey when its provider is configured.
pub fn register(registry: &mut Registry, providers: &Providers) {
    if let Some(client) = &providers.mobily {
        registry.register(EsimCheckout::new(client.clone()));
    }
}

/// Adds the journey's scheduled jobs: the sellable-product list refresh,
/// every 6 hours (the spec asks for at least every 24 h; journeys also
/// refresh a list older than [`catalog::MAX_AGE`] themselves, so a node that
/// never wins the cron tick still honours the 24 h bound).
pub fn schedules(
    scheduler: handover_engine::schedule::Scheduler,
    providers: &Providers,
) -> Result<handover_engine::schedule::Scheduler, handover_engine::schedule::ScheduleError> {
    let Some(client) = providers.mobily.clone() else {
        return Ok(scheduler);
    };
    scheduler.job("mobily-products-refresh", "0 7 */6 * * *", move |_engine| {
        let client = client.clone();
        async move {
            catalog::refresh(&client)
                .await
                .map(|n| format!("Mobily sellable products refreshed: {n}"))
                .map_err(|e| format!("Mobily product refresh failed: {e}"))
        }
    })
}

/// What starting a checkout takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EsimCheckoutInput {
    /// The buyer's national id or iqama (10 digits, starting with 1 or 2).
    pub national_id: String,
    /// The package's product offering id (`ESIM-PRE-30`).
    pub product: String,
    /// The customer's current number: receives the OTP and is the contact
    /// number of step 14 (`05XXXXXXXX` or `9665XXXXXXXX`).
    pub contact_msisdn: String,
    /// A port-in (MNP) instead of a new number.
    #[serde(default)]
    pub port_in: Option<PortIn>,
    /// The customer's name (step 14).
    pub full_name: String,
    /// Where Mobily sends the QR code and the eContract (step 14).
    pub email: String,
    /// City (step 14).
    pub city: String,
    /// `en` (default) or `ar`: the OTP SMS language.
    #[serde(default)]
    pub language: Option<String>,
    /// How long the journey waits for people and for Mobily.
    #[serde(default)]
    pub timeouts: Timeouts,
}

/// A port-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortIn {
    /// The number to keep.
    pub msisdn: String,
    /// The operator it leaves (`STC`, `ZAIN`...).
    pub donor_operator: String,
}

/// Waits and polls, in milliseconds (each bounded to a sane range at start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    /// The customer accepts the deposit within this (default 30 min).
    pub deposit_ms: u64,
    /// The customer types the code within this, per code sent (default 10 min).
    pub otp_ms: u64,
    /// Nafath answers within this (default 3 min, Nafath's own window).
    pub nafath_ms: u64,
    /// The first `tokeninfo` poll while the webhook is late (doubling, capped at 30 s; default 5 s).
    pub nafath_poll_ms: u64,
    /// The customer comes back from the bank page within this (default 15 min).
    pub three_ds_ms: u64,
    /// The QR code is ready within this after payment (default 2 h).
    pub qr_deadline_ms: u64,
    /// The first QR re-inquiry (doubling, capped at 10 min; default 30 s).
    pub qr_poll_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            deposit_ms: 30 * 60_000,
            otp_ms: 10 * 60_000,
            nafath_ms: 180_000,
            nafath_poll_ms: 5_000,
            three_ds_ms: 15 * 60_000,
            qr_deadline_ms: 2 * 3_600_000,
            qr_poll_ms: 30_000,
        }
    }
}

impl Timeouts {
    /// Every value within 50 ms and 7 days, so a typo cannot park a journey
    /// for years nor spin it.
    fn bounded(self) -> Self {
        let b = |v: u64| v.clamp(50, 7 * 86_400_000);
        Self {
            deposit_ms: b(self.deposit_ms),
            otp_ms: b(self.otp_ms),
            nafath_ms: b(self.nafath_ms),
            nafath_poll_ms: b(self.nafath_poll_ms),
            three_ds_ms: b(self.three_ds_ms),
            qr_deadline_ms: b(self.qr_deadline_ms),
            qr_poll_ms: b(self.qr_poll_ms),
        }
    }
}

/// An order Mobily accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacedOrder {
    /// Mobily's order number.
    pub id: OrderId,
    /// New number or MNP (decides how it is cancelled).
    pub order_type: OrderType,
    /// What the customer pays (package and deposit).
    pub total: Sar,
}

/// What the journey knows, carried from step to step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkout {
    /// The buyer.
    pub national_id: Sensitive<NationalId>,
    /// The customer's current number (OTP, contact).
    pub contact: Sensitive<Msisdn>,
    /// The package.
    pub product: ProductOfferingId,
    /// New number or MNP.
    pub number: Sensitive<NumberChoice>,
    /// Step 14's details.
    pub details: Sensitive<ContactDetails>,
    /// The OTP SMS language.
    pub language: Language,
    /// Waits and polls.
    pub timeouts: Timeouts,
    /// Prepaid or postpaid (from the product list).
    #[serde(default)]
    pub payment_type: Option<PaymentType>,
    /// The shopping cart.
    #[serde(default)]
    pub cart: Option<CartId>,
    /// The new line's number: reserved, or ported.
    #[serde(default)]
    pub line: Option<Sensitive<Msisdn>>,
    /// The eSIM profile.
    #[serde(default)]
    pub iccid: Option<Iccid>,
    /// The order, once posted.
    #[serde(default)]
    pub order: Option<PlacedOrder>,
    /// The authorised payment.
    #[serde(default)]
    pub payment_id: Option<PaymentId>,
}

/// Where the journey is (see the table in the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum At {
    /// Steps 1 and 2.
    Products,
    /// Step 3.
    Cart,
    /// Step 4.
    NumberOption,
    /// Step 5.
    SimOption,
    /// Step 6.
    TccEligibility,
    /// Step 7: choose a free number (`tries` so far).
    PickNumber {
        /// Numbers tried so far.
        tries: u32,
    },
    /// Step 7: reserve it.
    ReserveNumber {
        /// The chosen number.
        msisdn: Sensitive<Msisdn>,
        /// Numbers tried so far, this one included.
        tries: u32,
    },
    /// Step 8.
    OverdueBills,
    /// Step 9.
    PackageEligibility,
    /// Step 10: the amount.
    SecurityDeposit,
    /// Step 10: the customer accepts it.
    AwaitDeposit {
        /// The deposit.
        amount: Sar,
    },
    /// Step 11: send the code.
    SendOtp,
    /// Step 11: wait for the code.
    AwaitOtp {
        /// The OTP transaction.
        otp_id: OtpId,
        /// Wrong codes so far.
        wrong: u32,
        /// Re-sends so far.
        resends: u32,
    },
    /// Step 11: re-send (expired or locked code).
    ResendOtp {
        /// The OTP transaction.
        otp_id: OtpId,
        /// Wrong codes so far.
        wrong: u32,
        /// Re-sends so far, this one excluded.
        resends: u32,
    },
    /// Step 12: start the Nafath request.
    NafathInitiate,
    /// Step 12: wait for the webhook, polling meanwhile.
    AwaitNafath {
        /// Nafath's transaction.
        transaction: NafathTransactionId,
        /// The number the customer must pick in the Nafath app (the
        /// customer's app shows it).
        random: String,
        /// Polls so far.
        polls: u32,
        /// When the journey stops waiting.
        deadline: Timestamp,
    },
    /// Step 13.
    TccRegister,
    /// Step 14.
    DeliveryDetails,
    /// Step 15: the order.
    PostOrder,
    /// Step 15: the payment.
    CreatePayment,
    /// Step 15: the customer is on the bank's 3-D Secure page.
    AwaitThreeDs {
        /// The gateway's payment.
        payment_id: PaymentId,
        /// The bank page the customer's app opens (unknown after a
        /// reconciliation: the app keeps the one it opened).
        redirect_url: Option<String>,
    },
    /// Step 15: confirm the payment.
    ConfirmPayment {
        /// The gateway's payment.
        payment_id: PaymentId,
    },
    /// Step 16.
    OrderSubmitted,
    /// Step 17.
    QrCode {
        /// Inquiries so far.
        polls: u32,
        /// When the journey stops waiting.
        deadline: Timestamp,
    },
    /// A wait timed out: the journey fails with `reason`.
    GiveUp {
        /// Why.
        reason: String,
    },
}

/// The journey's state: where it is, and what it knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The current step.
    pub at: At,
    /// The data gathered so far.
    pub checkout: Checkout,
}

/// A completed checkout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EsimCheckoutOutput {
    /// Mobily's order number.
    pub order_id: String,
    /// The new line (personal data: redacted in operator views).
    pub msisdn: Sensitive<String>,
    /// The eSIM profile.
    pub iccid: String,
    /// The LPA activation code the QR encodes (a secret: whoever has it can
    /// install the eSIM).
    pub activation_code: Sensitive<String>,
    /// What the customer paid (SAR, `"30.00"`).
    pub paid: String,
}

/// Undo actions, run newest first when the journey fails or is cancelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Compensation {
    /// Cancels the order (`cancelMNPOrder` for MNP, `updateOrderStatus` otherwise).
    CancelOrder {
        /// The order.
        order_id: OrderId,
        /// Its type.
        order_type: OrderType,
    },
    /// Voids the payment (`initiatePayment`, operation `Void`); "nothing to
    /// void" (never authorised, or already voided) counts as done.
    VoidPayment {
        /// The amount.
        amount: Sar,
    },
}

fn invalid(e: impl std::fmt::Display) -> InvalidInput {
    InvalidInput::new(e.to_string())
}

impl Workflow for EsimCheckout {
    const NAME: &'static str = NAME;
    type Input = EsimCheckoutInput;
    type State = State;
    type Output = EsimCheckoutOutput;
    type Compensation = Compensation;

    fn start(&self, input: EsimCheckoutInput) -> Result<Start<State>, InvalidInput> {
        let national_id = NationalId::parse(&input.national_id).map_err(|_| {
            invalid("national_id must be 10 digits starting with 1 (citizen) or 2 (resident)")
        })?;
        let product = ProductOfferingId::new(input.product.trim())
            .map_err(|_| invalid("product must be a product offering id such as ESIM-PRE-30"))?;
        let contact = Msisdn::parse(&input.contact_msisdn)
            .map_err(|_| invalid("contact_msisdn must be a Saudi mobile number 05XXXXXXXX"))?;
        let number = match &input.port_in {
            None => NumberChoice::New,
            Some(port) => {
                let msisdn = Msisdn::parse(&port.msisdn).map_err(|_| {
                    invalid("port_in.msisdn must be a Saudi mobile number 05XXXXXXXX")
                })?;
                let donor = port.donor_operator.trim();
                if donor.is_empty()
                    || donor.len() > 32
                    || !donor
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b' ')
                {
                    return Err(invalid(
                        "port_in.donor_operator must be the operator's name (letters and digits, at most 32)",
                    ));
                }
                NumberChoice::Mnp {
                    msisdn,
                    donor_operator: donor.to_uppercase(),
                }
            }
        };
        let details = ContactDetails::new(&input.full_name, &input.email, contact.clone(), &input.city)
            .map_err(|_| invalid("full_name, email and city are required: a name and a city of at most 100 characters, a valid email"))?;
        let language = match input.language.as_deref().map(str::trim) {
            None | Some("") | Some("en") | Some("EN") => Language::En,
            Some("ar") | Some("AR") => Language::Ar,
            Some(_) => return Err(invalid("language must be en or ar")),
        };
        let key = match &number {
            NumberChoice::Mnp { msisdn, .. } => BusinessKey::msisdn(msisdn.as_str()),
            NumberChoice::New => BusinessKey::msisdn(contact.as_str()),
        };
        let timeouts = input.timeouts.bounded();
        Ok(Start::new(State {
            at: At::Products,
            checkout: Checkout {
                national_id: Sensitive::new(national_id),
                contact: Sensitive::new(contact),
                product,
                number: Sensitive::new(number),
                details: Sensitive::new(details),
                language,
                timeouts,
                payment_type: None,
                cart: None,
                line: None,
                iccid: None,
                order: None,
                payment_id: None,
            },
        })
        .business_key(key)
        // A checkout abandoned for a week is over, whatever it waits for.
        .deadline_in(Duration::from_secs(7 * 86_400)))
    }

    fn step_info(&self, state: &State) -> StepInfo {
        let t = &state.checkout.timeouts;
        let ms = Duration::from_millis;
        let call = |name| StepInfo::new(name).timeout(Duration::from_secs(30));
        match &state.at {
            At::Products => call("products"),
            At::Cart => call("cart"),
            At::NumberOption => call("number-option"),
            At::SimOption => call("sim-option"),
            At::TccEligibility => call("tcc-eligibility"),
            At::PickNumber { .. } => call("availability-check"),
            At::ReserveNumber { .. } => call("reserve-number"),
            At::OverdueBills => call("overdue-bills"),
            At::PackageEligibility => call("package-eligibility"),
            At::SecurityDeposit => call("security-deposit"),
            At::AwaitDeposit { .. } => call("await-deposit").expected_within(ms(t.deposit_ms)),
            At::SendOtp => call("send-otp"),
            At::AwaitOtp { .. } => {
                call("await-otp").expected_within(ms(t.otp_ms) * (MAX_OTP_RESENDS + 1))
            }
            At::ResendOtp { .. } => call("resend-otp"),
            At::NafathInitiate => call("nafath-initiate"),
            At::AwaitNafath { .. } => call("await-nafath").expected_within(ms(t.nafath_ms)),
            At::TccRegister => call("tcc-register"),
            At::DeliveryDetails => call("delivery-details"),
            At::PostOrder => call("post-order"),
            At::CreatePayment => call("create-payment"),
            At::AwaitThreeDs { .. } => call("await-3ds-return").expected_within(ms(t.three_ds_ms)),
            At::ConfirmPayment { .. } => call("confirm-payment"),
            At::OrderSubmitted => call("order-submission"),
            At::QrCode { .. } => call("qr-code").expected_within(ms(t.qr_deadline_ms)),
            At::GiveUp { .. } => StepInfo::new("give-up").retry(RetryPolicy::never()),
        }
    }

    async fn step(
        &self,
        state: State,
        ctx: &mut StepCtx<Self>,
    ) -> Result<Transition<State, EsimCheckoutOutput>, StepError> {
        steps::run(&self.client, state, ctx).await
    }

    async fn compensate(
        &self,
        compensation: Compensation,
        ctx: &mut CompensationCtx,
    ) -> Result<(), StepError> {
        steps::compensate(&self.client, compensation, ctx).await
    }
}

#[cfg(test)]
mod tests {
    use handover_adapters::{MobilyCallbacks, MobilyConfig};
    use secrecy::SecretString;
    use url::Url;

    use super::*;

    fn journey() -> EsimCheckout {
        let nowhere = Url::parse("http://127.0.0.1:9/").unwrap();
        let config = MobilyConfig::new(
            nowhere.clone(),
            SecretString::from("apikey"),
            "offline",
            SecretString::from("secret"),
            MobilyCallbacks {
                nafath_webhook_url: nowhere.clone(),
                nafath_webhook_username: "mobily".into(),
                nafath_webhook_password: SecretString::from("a-password-long-enough"),
                payment_return_url: nowhere,
            },
        )
        .unwrap();
        EsimCheckout::new(Arc::new(MobilyClient::new(&config).unwrap()))
    }

    fn input() -> EsimCheckoutInput {
        EsimCheckoutInput {
            national_id: "1012345678".into(),
            product: "ESIM-PRE-30".into(),
            contact_msisdn: "0551234567".into(),
            port_in: None,
            full_name: "Sara Ali".into(),
            email: "sara@example.com".into(),
            city: "Riyadh".into(),
            language: Some("ar".into()),
            timeouts: Timeouts::default(),
        }
    }

    #[test]
    fn the_business_key_is_the_line_and_never_shown_whole() {
        let start = journey().start(input()).unwrap();
        let shown = format!("{start:?}");
        assert!(shown.contains("msisdn:966*******67"), "{shown}");
        assert!(!shown.contains("1012345678") && !shown.contains("966551234567"));
        let mut port = input();
        port.port_in = Some(PortIn {
            msisdn: "0561112222".into(),
            donor_operator: "stc".into(),
        });
        let shown = format!("{:?}", journey().start(port).unwrap());
        assert!(shown.contains("msisdn:966*******22"), "{shown}");
    }

    #[test]
    fn inputs_are_validated_and_waits_bounded() {
        let mut bad = input();
        bad.port_in = Some(PortIn {
            msisdn: "0561112222".into(),
            donor_operator: "STC; DROP".into(),
        });
        let err = journey().start(bad).unwrap_err();
        assert!(err.message.contains("donor_operator"), "{}", err.message);
        let t = Timeouts {
            otp_ms: 0,
            qr_deadline_ms: u64::MAX,
            ..Timeouts::default()
        }
        .bounded();
        assert_eq!(t.otp_ms, 50);
        assert_eq!(t.qr_deadline_ms, 7 * 86_400_000);
    }
}
