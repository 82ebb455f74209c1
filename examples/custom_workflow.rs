//! Declare your own journey: three steps, a wait for a customer's signal, and
//! a compensation that undoes the first step if the journey fails.
//!
//! ```sh
//! cargo run --example custom_workflow
//! ```
//!
//! This is the file to copy. The journey reserves a number, waits (up to an
//! hour) for the customer to confirm, then activates the line. A confirmation
//! with `"accept": false` fails the journey, and the reservation is released by
//! its compensation.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use handover::engine::{
    BusinessKey, CompensationCtx, InvalidInput, NewSignal, Start, Status, StepCtx, StepError,
    StepInfo, Transition, Wait, Workflow, store,
};
use serde::{Deserialize, Serialize};

/// A stand-in for a provider: remembers reservations by idempotency key, so
/// a step re-run after a crash reserves nothing twice.
#[derive(Debug, Default)]
struct NumberPool {
    reserved: Mutex<BTreeMap<String, String>>,
}

impl NumberPool {
    fn reserve(&self, key: &str) -> String {
        let mut reserved = self.reserved.lock().expect("pool lock");
        let next = format!("96650{:07}", reserved.len() + 1);
        reserved.entry(key.to_owned()).or_insert(next).clone()
    }

    fn release(&self, key: &str) {
        self.reserved.lock().expect("pool lock").remove(key);
    }
}

/// The journey type. It holds its provider clients.
#[derive(Debug, Clone)]
struct NewLine {
    pool: Arc<NumberPool>,
}

/// Where a journey is. Serialized after every step: a durable contract, so
/// add variants and optional fields rather than renaming (see
/// `Workflow::upgrade_state` for the rest).
#[derive(Debug, Serialize, Deserialize)]
enum State {
    Reserve { customer: String },
    AwaitConfirmation { customer: String, msisdn: String },
    Activate { msisdn: String },
}

/// What a completed step pushed to undo if the journey fails later.
#[derive(Debug, Serialize, Deserialize)]
enum Undo {
    ReleaseNumber { key: String },
}

/// The customer's answer (the payload of the `confirm` signal).
#[derive(Debug, Serialize, Deserialize)]
struct Confirmation {
    accept: bool,
}

impl Workflow for NewLine {
    const NAME: &'static str = "example.new-line"; // durable: never rename in flight
    type Input = String; // the customer id
    type State = State;
    type Output = String; // the activated MSISDN
    type Compensation = Undo;

    fn start(&self, customer: String) -> Result<Start<State>, InvalidInput> {
        if customer.trim().is_empty() {
            return Err(InvalidInput::new("a customer id is required"));
        }
        Ok(Start::new(State::Reserve {
            customer: customer.clone(),
        })
        .business_key(BusinessKey::order_id(customer)))
    }

    fn step_info(&self, state: &State) -> StepInfo {
        match state {
            State::Reserve { .. } => StepInfo::new("reserve-number"),
            // Past this, `handover journeys stuck` reports it with the reason.
            State::AwaitConfirmation { .. } => {
                StepInfo::new("await-confirmation").expected_within(Duration::from_secs(600))
            }
            State::Activate { .. } => StepInfo::new("activate"),
        }
    }

    async fn step(
        &self,
        state: State,
        ctx: &mut StepCtx<Self>,
    ) -> Result<Transition<State, String>, StepError> {
        Ok(match state {
            State::Reserve { customer } => {
                // The same key on every retry and after a crash.
                let key = ctx.idempotency_key().to_string();
                let msisdn = self.pool.reserve(&key);
                ctx.push_compensation(Undo::ReleaseNumber { key })?;
                Transition::wait(
                    State::AwaitConfirmation { customer, msisdn },
                    Wait::for_signal("confirm").until(ctx.after(Duration::from_secs(3600))),
                )
            }
            State::AwaitConfirmation { msisdn, .. } => {
                match ctx.signal_payload::<Confirmation>("confirm")? {
                    Some(Confirmation { accept: true }) => {
                        Transition::next(State::Activate { msisdn })
                    }
                    Some(Confirmation { accept: false }) => {
                        Transition::fail("the customer declined the number")
                    }
                    // Woken by the hour passing, not by the signal.
                    None => Transition::fail("the customer did not confirm within an hour"),
                }
            }
            State::Activate { msisdn } => Transition::complete(msisdn),
        })
    }

    async fn compensate(&self, undo: Undo, _ctx: &mut CompensationCtx) -> Result<(), StepError> {
        match undo {
            Undo::ReleaseNumber { key } => self.pool.release(&key),
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("example.db").display());
    let store = store::connect(&url).await?;
    let pool = Arc::new(NumberPool::default());
    let engine = handover::Engine::builder(store)
        .register(NewLine { pool: pool.clone() })
        .build()
        .await?;
    let worker = engine.run_worker();

    for (customer, accept) in [("CUST-1", true), ("CUST-2", false)] {
        let id = engine.start::<NewLine>(customer.to_owned()).await?;
        // Send the customer's answer: stored durably at once, even if the
        // journey is not waiting yet (it is delivered when it is).
        engine
            .signal(
                NewSignal::to_journey(id, "confirm", serde_json::json!({ "accept": accept }))?
                    .dedupe(format!("confirm:{id}")),
            )
            .await?;
        let done = engine
            .wait_for(id, Duration::from_secs(10), |r| r.status.is_terminal())
            .await
            .context("the journey did not end")?;
        println!("{customer}: journey {id} {}", done.status.as_str());
        if done.status == Status::Completed {
            let msisdn: Option<String> = engine.output(id).await?;
            println!("  activated {}", msisdn.unwrap_or_default());
        }
        for entry in engine.history(id, 100).await? {
            println!(
                "  #{:<2} {:<24} {:<20} {}",
                entry.seq,
                entry.kind.as_str(),
                entry.step.as_deref().unwrap_or(""),
                if entry.detail.is_null() {
                    String::new()
                } else {
                    entry.detail.to_string()
                }
            );
        }
    }
    println!(
        "numbers still reserved: {}",
        pool.reserved.lock().expect("pool lock").len()
    );
    worker.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
