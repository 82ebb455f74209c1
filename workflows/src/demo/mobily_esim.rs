//! J1 in the demo: Mobily eSIM checkouts, the customer played by [`play`].
//!
//! Scenarios by `i % 20`: 0-9 prepaid with a new number, 10-11 postpaid
//! (the deposit is accepted), 12-13 port-ins, 14 not eligible (TCC line
//! limit), 15 overdue bills, 16-17 a wrong OTP once then the right one, 18
//! the QR code late past its deadline after payment (the saga voids the
//! payment and cancels the order), 19 Nafath rejected.
//!
//! The customer acts per journey: the driver reads the journey's state and
//! answers the current wait (the deposit, the code from the SMS, the Nafath
//! app, the bank page), so the simulator runs with Nafath and 3-D Secure in
//! manual mode. The journey tests use [`play`] too.

use async_trait::async_trait;
use handover_adapters::mobily::{Msisdn, NationalId};
use handover_adapters::sim::MobilyBehaviour;
use handover_adapters::sim::callback::Callback;
use handover_adapters::sim::mobily::{CustomerProfile, QrPolicy};
use handover_engine::{JourneyId, JourneyRecord, NewSignal, Status};
use serde::{Deserialize, Serialize};

use super::{DemoCase, DemoDriver, DemoError, Expected};
use crate::mobily_esim::{
    ACCEPT_DEPOSIT_SIGNAL, At, EsimCheckout, EsimCheckoutInput, NAME, OTP_SIGNAL, PortIn, Timeouts,
};
use crate::stack::Stack;

/// The customer TCC refuses (already at the line limit).
pub const NOT_ELIGIBLE_ID: &str = "1900000001";
/// The customer with overdue bills.
pub const DUES_ID: &str = "1900000002";
/// Overdue amount of [`DUES_ID`], in halalas.
pub const DUES_HALALAS: u64 = 12_345;
/// The customer whose paid order Mobily never provisions (no QR code).
pub const QR_WITHHELD_ID: &str = "1900000003";

/// How the customer answers a human wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// Yes (accept, approve, pass).
    Yes,
    /// No (decline, reject, fail).
    No,
    /// Never answers (the wait times out).
    Ignore,
}

/// How the simulated customer behaves in one journey (the case's memo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// The number the OTP goes to (`05XXXXXXXX`).
    pub contact: String,
    /// Wrong codes typed before the right one.
    pub wrong_otps: u32,
    /// Whether the customer types a code at all.
    pub otp: Answer,
    /// The deposit question.
    pub deposit: Answer,
    /// The Nafath app.
    pub nafath: Answer,
    /// The bank's 3-D Secure page.
    pub three_ds: Answer,
}

impl Customer {
    /// A customer who answers everything right away, on `contact`.
    pub fn happy(contact: &str) -> Self {
        Self {
            contact: contact.to_owned(),
            wrong_otps: 0,
            otp: Answer::Yes,
            deposit: Answer::Yes,
            nafath: Answer::Yes,
            three_ds: Answer::Yes,
        }
    }
}

/// Waits short enough for the demo and tests, long enough for 2 cores.
pub fn quick_timeouts() -> Timeouts {
    Timeouts {
        deposit_ms: 20_000,
        otp_ms: 20_000,
        nafath_ms: 20_000,
        nafath_poll_ms: 300,
        three_ds_ms: 20_000,
        qr_deadline_ms: 20_000,
        qr_poll_ms: 100,
    }
}

/// The contact number of the `i`-th journey (unique, so each reads its own SMS).
pub fn contact_for(i: u64) -> String {
    format!("055{:07}", i % 10_000_000)
}

/// An input for `national_id` buying `product` (a port-in of `port_in` when given).
pub fn input(
    national_id: &str,
    product: &str,
    contact: &str,
    port_in: Option<&str>,
) -> EsimCheckoutInput {
    EsimCheckoutInput {
        national_id: national_id.to_owned(),
        product: product.to_owned(),
        contact_msisdn: contact.to_owned(),
        port_in: port_in.map(|m| PortIn {
            msisdn: m.to_owned(),
            donor_operator: "STC".to_owned(),
        }),
        full_name: "Sara Ali".to_owned(),
        email: "sara@example.com".to_owned(),
        city: "Riyadh".to_owned(),
        language: None,
        timeouts: quick_timeouts(),
    }
}

/// The `i`-th scenario: its name, input, customer and expected outcome.
pub fn scenario(i: u64) -> (&'static str, EsimCheckoutInput, Customer, Expected) {
    let contact = contact_for(i);
    let customer = Customer::happy(&contact);
    let own_id = format!("1{:09}", (i % 800_000_000) + 100_000_000);
    let prepaid = if i.is_multiple_of(2) {
        "ESIM-PRE-30"
    } else {
        "ESIM-PRE-99"
    };
    match i % 20 {
        10 | 11 => (
            "postpaid",
            input(&own_id, "ESIM-POST-149", &contact, None),
            customer,
            Expected::Completed,
        ),
        12 | 13 => {
            let ported = format!("056{:07}", i % 10_000_000);
            (
                "port-in",
                input(&own_id, prepaid, &contact, Some(&ported)),
                customer,
                Expected::Completed,
            )
        }
        14 => (
            "not-eligible",
            input(NOT_ELIGIBLE_ID, prepaid, &contact, None),
            customer,
            Expected::Failed,
        ),
        15 => (
            "overdue-bills",
            input(DUES_ID, "ESIM-POST-149", &contact, None),
            customer,
            Expected::Failed,
        ),
        16 | 17 => (
            "wrong-otp-once",
            input(&own_id, prepaid, &contact, None),
            Customer {
                wrong_otps: 1,
                ..customer
            },
            Expected::Completed,
        ),
        18 => {
            // Mobily never provisions this customer's order: the journey
            // gives up at its QR deadline and undoes the payment and order.
            // (A QR policy alone is not enough: a retried inquiry after a
            // fault may find the code ready before the journey gives up.)
            let mut late = input(QR_WITHHELD_ID, prepaid, &contact, None);
            late.timeouts.qr_deadline_ms = 300;
            late.timeouts.qr_poll_ms = 1_000;
            ("qr-late-compensated", late, customer, Expected::Compensated)
        }
        19 => (
            "nafath-rejected",
            input(&own_id, prepaid, &contact, None),
            Customer {
                nafath: Answer::No,
                ..customer
            },
            Expected::Failed,
        ),
        _ => (
            "happy",
            input(&own_id, prepaid, &contact, None),
            customer,
            Expected::Completed,
        ),
    }
}

/// Sets the Mobily simulator up for [`scenario`]: manual Nafath and 3-D
/// Secure (the customer is [`play`]ed), QR codes on the third inquiry, and
/// the refused customers.
pub fn prepare(stack: &Stack) {
    let sim = &stack.sims.mobily;
    sim.set_behaviour(MobilyBehaviour::default().with_qr(QrPolicy::AfterInquiries(2)));
    if let Ok(id) = NationalId::parse(NOT_ELIGIBLE_ID) {
        sim.set_customer(&id, CustomerProfile::default().with_active_lines(10));
    }
    if let Ok(id) = NationalId::parse(DUES_ID) {
        sim.set_customer(&id, CustomerProfile::default().with_dues(DUES_HALALAS));
    }
    if let Ok(id) = NationalId::parse(QR_WITHHELD_ID) {
        sim.set_customer(&id, CustomerProfile::default().with_qr_withheld());
    }
}

/// A code that is surely not `code` (each digit shifted).
fn wrong_code(code: &str) -> String {
    code.bytes()
        .map(|b| char::from(b'0' + (b - b'0' + 1) % 10))
        .collect()
}

async fn send(
    stack: &Stack,
    id: JourneyId,
    name: &str,
    payload: serde_json::Value,
    dedupe: String,
) -> Result<(), DemoError> {
    let signal = NewSignal::to_journey(id, name, payload)
        .map_err(DemoError::new)?
        .dedupe(dedupe)
        .source("demo:mobily-customer");
    stack.engine.signal(signal).await.map_err(DemoError::new)?;
    Ok(())
}

/// Plays the customer of journey `id` for its current wait. Idempotent:
/// every signal carries a dedupe key, and world actions answered twice are
/// refused by the simulator (ignored here).
pub async fn play(
    stack: &Stack,
    id: JourneyId,
    customer: &Customer,
    record: &JourneyRecord,
) -> Result<(), DemoError> {
    if record.status != Status::Waiting {
        return Ok(());
    }
    // Only the waits matter; other variants may not decode (redacted).
    let Ok(at) = serde_json::from_value::<At>(record.state["at"].clone()) else {
        return Ok(());
    };
    let sim = &stack.sims.mobily;
    match at {
        At::AwaitDeposit { .. } if customer.deposit != Answer::Ignore => {
            send(
                stack,
                id,
                ACCEPT_DEPOSIT_SIGNAL,
                serde_json::json!({ "accepted": customer.deposit == Answer::Yes }),
                format!("demo:{id}:deposit"),
            )
            .await
        }
        At::AwaitOtp {
            otp_id,
            wrong,
            resends,
        } if customer.otp != Answer::Ignore => {
            let contact = Msisdn::parse(&customer.contact).map_err(DemoError::new)?;
            let Some(code) = sim.otp_for(&contact) else {
                return Ok(());
            };
            let typed = if wrong < customer.wrong_otps {
                wrong_code(&code)
            } else {
                code
            };
            send(
                stack,
                id,
                OTP_SIGNAL,
                serde_json::json!({ "code": typed }),
                format!("demo:{id}:otp:{otp_id}:{wrong}:{resends}"),
            )
            .await
        }
        At::AwaitNafath { transaction, .. } if customer.nafath != Answer::Ignore => {
            // Answered once; a second answer is refused as not pending.
            let _ = sim
                .nafath_answer(transaction.as_str(), customer.nafath == Answer::Yes)
                .await;
            Ok(())
        }
        At::AwaitThreeDs { payment_id, .. } if customer.three_ds != Answer::Ignore => {
            if let Ok(back) =
                sim.complete_3ds(payment_id.as_str(), customer.three_ds == Answer::Yes)
            {
                // The customer's browser follows the bank's redirect.
                let query: Vec<(String, String)> = back
                    .query_pairs()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                let mut base = back.clone();
                base.set_query(None);
                sim.callbacks()
                    .emit(Callback::get_query(
                        "3DS_RETURN",
                        payment_id.as_str(),
                        base,
                        query,
                    ))
                    .await;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Drives J1.
#[derive(Debug, Clone, Copy)]
pub struct MobilyEsimDriver;

#[async_trait]
impl DemoDriver for MobilyEsimDriver {
    fn workflow(&self) -> &'static str {
        NAME
    }

    fn label(&self) -> &'static str {
        "J1 mobily-esim"
    }

    fn prepare(&self, stack: &Stack) {
        prepare(stack);
    }

    async fn start(&self, stack: &Stack, i: u64) -> Result<DemoCase, DemoError> {
        let (name, input, customer, expect) = scenario(i);
        let id = stack
            .engine
            .start::<EsimCheckout>(input)
            .await
            .map_err(DemoError::new)?;
        Ok(DemoCase {
            id,
            scenario: name,
            expect,
            memo: serde_json::to_value(&customer).map_err(DemoError::new)?,
        })
    }

    async fn assist(
        &self,
        stack: &Stack,
        case: &DemoCase,
        record: &JourneyRecord,
    ) -> Result<(), DemoError> {
        let customer: Customer =
            serde_json::from_value(case.memo.clone()).map_err(DemoError::new)?;
        play(stack, case.id, &customer, record).await
    }
}
