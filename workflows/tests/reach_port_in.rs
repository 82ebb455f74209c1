//! J3 end to end: the Reach port-in journey against the Reach simulator over
//! real HTTP, on both stores. The customer's corrections are signals to the
//! journey; `ACTIVATION` callbacks are delivered exactly as the Reach ingress
//! delivers them (signal `reach.activation` to `reach.customer:<customerId>`,
//! the callback body as payload, its dedupe key), and the last test posts
//! one through the real Reach ingress route.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use handover_adapters::ProvidersConfig;
use handover_adapters::reach::callbacks::{CUSTOMER_NAMESPACE, parse_callback};
use handover_adapters::reach::{
    ACTIVATION_STATUS_PATH, ActivationCode, PORT_IN_UPDATE_PATH, PURCHASE_PATH,
};
use handover_adapters::sim::reach::{
    CustomerPayment, LosingCarrierAccount, PORT_IN_UPDATE_ENDPOINT, PURCHASE_ENDPOINT, Progress,
};
use handover_adapters::sim::{EffectKind, Fault, ReachBehaviour};
use handover_engine::store::ListFilter;
use handover_engine::{
    CorrelationKey, FaultPoint, HistoryKind, JourneyId, JourneyRecord, ManualClock, NewSignal,
    Sensitive, Status,
};
use handover_workflows::demo::reach_port_in::ReachPortInDriver;
use handover_workflows::demo::{DemoCase, DemoDriver, Expected};
use handover_workflows::ingress::reach::ACTIVATION_SIGNAL;
use handover_workflows::reach_port_in::{
    CORRECTION_SIGNAL, PortInInput, PortInOutcome, PortInOutput, PortInTimings, ReachPortIn,
};
use handover_workflows::stack::{Stack, StackConfig};
use secrecy::SecretString;
use serde_json::{Value, json};
use support::TestDb;

const SETTLE: Duration = Duration::from_secs(30);
const NUMBER: &str = "2125550100";
const PIN: &str = "482916";
const RIGHT_PIN: &str = "1357";
const ACCOUNT: &str = "998877665";

/// Test timings: polls in milliseconds, generous waits.
fn quick() -> PortInTimings {
    PortInTimings {
        purchase_poll_ms: 20,
        port_poll_first_ms: 20,
        port_poll_max_ms: 200,
        correction_timeout_ms: 60_000,
        deadline_ms: 120_000,
    }
}

fn input(pin: &str, zip: &str) -> PortInInput {
    PortInInput {
        number_to_port: "+1 (212) 555-0100".into(),
        old_carrier: "T-Mobile".into(),
        old_carrier_account_number: ACCOUNT.into(),
        pin: Sensitive::new(pin.into()),
        old_zip: zip.into(),
        plan_id: "PLAN-UNL".into(),
        imei: "356938035643809".into(),
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        email: "ada@example.com".into(),
        max_corrections: None,
        timings: quick(),
    }
}

/// The simulator decides at the first status poll, and the customer pays as
/// soon as the link is issued.
fn fast_reach() -> ReachBehaviour {
    ReachBehaviour::fast().with_customer(CustomerPayment::PayAfter {
        delay: Duration::ZERO,
        success: true,
    })
}

fn config(db: &TestDb) -> StackConfig {
    let mut config = support::config(db);
    config.sims.reach.behaviour = fast_reach();
    config
}

/// The losing carrier knows the number with PIN 1357, the account and ZIP 10001.
fn carrier_on_file(stack: &Stack) {
    stack.sims.reach.set_losing_carrier(
        NUMBER,
        LosingCarrierAccount {
            account_number: ACCOUNT.into(),
            pin: SecretString::from(RIGHT_PIN),
            zip: "10001".into(),
            transient_failures: 0,
        },
    );
}

async fn start(stack: &Stack, input: PortInInput) -> JourneyId {
    stack.engine.start::<ReachPortIn>(input).await.unwrap()
}

async fn output(stack: &Stack, id: JourneyId) -> PortInOutput {
    stack.engine.output(id).await.unwrap().unwrap()
}

/// Waits until the journey waits for its `n`-th correction (or has ended).
async fn at_correction(stack: &Stack, id: JourneyId, corrections: u32) -> JourneyRecord {
    let record = stack
        .engine
        .wait_for(id, SETTLE, |r| {
            r.status.is_terminal()
                || r.status == Status::NeedsAttention
                || (r.step_name == "await-correction"
                    && r.state["AwaitCorrection"]["line"]["corrections"] == corrections)
        })
        .await
        .unwrap();
    assert_eq!(
        record.step_name, "await-correction",
        "{:?} {:?}",
        record.failure, record.attention
    );
    record
}

async fn send_correction(stack: &Stack, id: JourneyId, payload: Value, dedupe: &str) {
    stack
        .engine
        .signal(
            NewSignal::to_journey(id, CORRECTION_SIGNAL, payload)
                .unwrap()
                // Dedupe keys are global: the app scopes them to its journey.
                .dedupe(format!("{id}:{dedupe}"))
                .source("test-app"),
        )
        .await
        .unwrap();
}

/// Delivers an `ACTIVATION` callback the way the Reach ingress does.
async fn activation_callback(stack: &Stack, body: Value) {
    let callback = parse_callback(&serde_json::to_vec(&body).unwrap()).unwrap();
    let key = CorrelationKey::new(CUSTOMER_NAMESPACE, callback.correlation().value()).unwrap();
    stack
        .engine
        .signal(
            NewSignal::to_correlation(key, ACTIVATION_SIGNAL, body)
                .unwrap()
                .dedupe(callback.dedupe_key())
                .source("reach"),
        )
        .await
        .unwrap();
}

/// Waits until the journey's history mentions `text`.
async fn history_says(stack: &Stack, id: JourneyId, text: &str) {
    for _ in 0..1_000 {
        let history = stack.engine.history(id, 500).await.unwrap();
        if history.iter().any(|h| h.detail.to_string().contains(text)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the history never said {text:?}");
}

fn customer_of(record: &JourneyRecord) -> String {
    record.state["AwaitCorrection"]["line"]["customer_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Nothing shown to people holds the PIN, the full number or the account.
async fn assert_no_secret_shown(stack: &Stack, id: JourneyId) {
    let record = stack.engine.journey(id).await.unwrap();
    let history = stack.engine.history(id, 500).await.unwrap();
    let shown = format!(
        "{} {} {:?} {:?} {:?}",
        handover_engine::redact(&record.state),
        record
            .output
            .as_ref()
            .map(handover_engine::redact)
            .unwrap_or_default(),
        record.failure,
        record.business_key,
        history
            .iter()
            .map(|h| h.detail.to_string())
            .collect::<Vec<_>>(),
    );
    for secret in [PIN, RIGHT_PIN, NUMBER, ACCOUNT] {
        assert!(!shown.contains(secret), "{secret} shown: {shown}");
    }
}

fn assert_no_double_effect(stack: &Stack) {
    let ledger = stack.sims.reach.ledger();
    assert!(ledger.duplicates().is_empty(), "{:?}", ledger.duplicates());
    assert!(ledger.count_kind(EffectKind::Order) <= 1);
    assert!(ledger.count_kind(EffectKind::PortIn) <= 1);
    assert!(ledger.count_kind(EffectKind::Activation) <= 1);
}

async fn happy_path_ports_the_number(db: TestDb) {
    let stack = Box::pin(support::stack(config(&db))).await;
    let id = start(&stack, input(PIN, "10001")).await;
    let done = support::settled(&stack, id, SETTLE).await;
    assert_eq!(done.status, Status::Completed, "{:?}", done.failure);
    let out = output(&stack, id).await;
    assert_eq!(out.outcome, PortInOutcome::Ported);
    assert_eq!(
        out.mobile_no.as_ref().map(Sensitive::expose).unwrap(),
        NUMBER
    );
    assert_eq!(out.mobile_no_masked.as_deref(), Some("212*****00"));
    assert_eq!(out.corrections, 0);
    // The purchase carried the port-in fields.
    let body = stack
        .sims
        .reach
        .requests()
        .last_to(PURCHASE_PATH)
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(body["numberToPort"], NUMBER);
    assert_eq!(body["password"], PIN);
    assert_eq!(body["oldZip"], "10001");
    let ledger = stack.sims.reach.ledger();
    assert_eq!(ledger.count_kind(EffectKind::Order), 1);
    assert_eq!(ledger.count_subject(EffectKind::PortIn, NUMBER), 1);
    assert_eq!(ledger.count(EffectKind::Activation, &out.customer_id), 1);
    assert_no_double_effect(&stack);
    // Searchable by the number, shown masked.
    let found = stack
        .engine
        .list(&ListFilter {
            key: Some(NUMBER.into()),
            limit: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].business_key.as_deref(), Some("212*****00"));
    assert_no_secret_shown(&stack, id).await;
    stack.stop().await;
}

async fn invalid_inputs_are_refused_before_anything_is_sent(db: TestDb) {
    let stack = Box::pin(support::stack(config(&db))).await;
    let mut bad_number = input(PIN, "10001");
    bad_number.number_to_port = "0125550100".into();
    let mut bad_zip = input(PIN, "10001");
    bad_zip.old_zip = "1000".into();
    let mut no_carrier = input(PIN, "10001");
    no_carrier.old_carrier = String::new();
    for (bad, field) in [
        (bad_number, "number_to_port"),
        (bad_zip, "old_zip"),
        (no_carrier, "old_carrier"),
        (input("", "10001"), "pin"),
    ] {
        let err = stack.engine.start::<ReachPortIn>(bad).await.unwrap_err();
        assert!(err.to_string().contains(field), "{field}: {err}");
    }
    assert!(stack.sims.reach.requests().all().is_empty());
    stack.stop().await;
}

async fn an_ineligible_number_stops_before_the_purchase(db: TestDb) {
    let stack = Box::pin(support::stack(config(&db))).await;
    stack
        .sims
        .reach
        .refuse_port(NUMBER, "The number has an active port-out lock.");
    let id = start(&stack, input(PIN, "10001")).await;
    let done = support::settled(&stack, id, SETTLE).await;
    assert_eq!(done.status, Status::Failed);
    let reason = done.failure.unwrap();
    assert!(
        reason.contains("isPortValidate=false") && reason.contains("port-out lock"),
        "{reason}"
    );
    assert_eq!(stack.sims.reach.requests().count_to(PURCHASE_PATH), 0);
    stack.stop().await;
}

async fn two_corrections_pin_then_zip_before_active(db: TestDb) {
    let stack = Box::pin(support::stack(config(&db))).await;
    carrier_on_file(&stack);
    // Wrong PIN and wrong ZIP: the carrier refuses the PIN first, then the ZIP.
    let id = start(&stack, input(PIN, "99999")).await;
    let first = at_correction(&stack, id, 0).await;
    assert_eq!(
        first.state["AwaitCorrection"]["line"]["last_failure"],
        handover_adapters::sim::reach::line::WRONG_PIN
    );
    send_correction(
        &stack,
        id,
        json!({"type": "UPDATE_PIN", "password": RIGHT_PIN}),
        "fix-1",
    )
    .await;
    let second = at_correction(&stack, id, 1).await;
    assert_eq!(
        second.state["AwaitCorrection"]["line"]["last_failure"],
        handover_adapters::sim::reach::line::WRONG_ZIP
    );
    // A malformed correction is refused and the wait goes on.
    send_correction(&stack, id, json!({"type": "UPDATE_ZIP"}), "bad-2").await;
    send_correction(
        &stack,
        id,
        json!({"type": "UPDATE_ZIP", "oldZip": "10001"}),
        "fix-2",
    )
    .await;
    let done = support::settled(&stack, id, SETTLE).await;
    assert_eq!(done.status, Status::Completed, "{:?}", done.failure);
    let out = output(&stack, id).await;
    assert_eq!(out.outcome, PortInOutcome::Ported);
    assert_eq!(out.corrections, 2);
    let updates: Vec<Value> = stack
        .sims
        .reach
        .requests()
        .all()
        .into_iter()
        .filter(|r| r.path == PORT_IN_UPDATE_PATH)
        .map(|r| r.json().unwrap())
        .collect();
    assert_eq!(
        updates,
        vec![
            json!({"customerId": out.customer_id, "type": "UPDATE_PIN", "password": RIGHT_PIN}),
            json!({"customerId": out.customer_id, "type": "UPDATE_ZIP", "oldZip": "10001"}),
        ]
    );
    let history = stack.engine.history(id, 500).await.unwrap();
    assert!(
        history
            .iter()
            .any(|h| h.detail.to_string().contains("refused a correction")),
        "the malformed correction is in the history"
    );
    assert_no_double_effect(&stack);
    assert_no_secret_shown(&stack, id).await;
    stack.stop().await;
}

async fn cancel_port_ends_cancelled(db: TestDb) {
    let stack = Box::pin(support::stack(config(&db))).await;
    carrier_on_file(&stack);
    let id = start(&stack, input(PIN, "10001")).await;
    let waiting = at_correction(&stack, id, 0).await;
    send_correction(&stack, id, json!({"type": "CANCEL_PORT"}), "cancel").await;
    let done = support::settled(&stack, id, SETTLE).await;
    assert_eq!(done.status, Status::Completed, "{:?}", done.failure);
    let out = output(&stack, id).await;
    assert_eq!(out.outcome, PortInOutcome::Cancelled);
    assert!(out.mobile_no.is_none());
    let line = stack.sims.reach.line(&customer_of(&waiting)).unwrap();
    assert_eq!(line.status, ActivationCode::PortCancelled);
    assert_eq!(
        stack.sims.reach.ledger().count_kind(EffectKind::Activation),
        0
    );
    stack.stop().await;
}

async fn cancel_and_new_activates_a_new_number(db: TestDb) {
    let stack = Box::pin(support::stack(config(&db))).await;
    carrier_on_file(&stack);
    let id = start(&stack, input(PIN, "10001")).await;
    at_correction(&stack, id, 0).await;
    send_correction(&stack, id, json!({"type": "CANCEL_AND_NEW"}), "new").await;
    let done = support::settled(&stack, id, SETTLE).await;
    assert_eq!(done.status, Status::Completed, "{:?}", done.failure);
    let out = output(&stack, id).await;
    assert_eq!(out.outcome, PortInOutcome::NewNumber);
    let number = out.mobile_no.as_ref().unwrap().expose().clone();
    assert_ne!(number, NUMBER, "a new number, not the ported one");
    assert_eq!(
        stack
            .sims
            .reach
            .ledger()
            .count(EffectKind::Activation, &out.customer_id),
        1
    );
    assert_no_double_effect(&stack);
    stack.stop().await;
}

async fn the_correction_wait_times_out(db: TestDb) {
    let stack = Box::pin(support::stack(config(&db))).await;
    carrier_on_file(&stack);
    let mut short = input(PIN, "10001");
    short.timings.correction_timeout_ms = 300;
    let id = start(&stack, short).await;
    let done = support::settled(&stack, id, SETTLE).await;
    assert_eq!(done.status, Status::Failed);
    let reason = done.failure.unwrap();
    assert!(
        reason.contains("no correction from the customer") && reason.contains("PIN"),
        "{reason}"
    );
    stack.stop().await;
}

async fn the_loop_is_bounded_by_corrections_and_by_the_deadline(db: TestDb) {
    let stack = Box::pin(support::stack(config(&db))).await;
    carrier_on_file(&stack);
    // At most two corrections: the customer keeps sending a wrong PIN.
    let mut bounded = input(PIN, "10001");
    bounded.max_corrections = Some(2);
    let id = start(&stack, bounded).await;
    for n in 0..2 {
        at_correction(&stack, id, n).await;
        send_correction(
            &stack,
            id,
            json!({"type": "UPDATE_PIN", "password": format!("000{n}")}),
            &format!("wrong-{n}"),
        )
        .await;
    }
    let done = support::settled(&stack, id, SETTLE).await;
    assert_eq!(done.status, Status::Failed);
    let reason = done.failure.unwrap();
    assert!(reason.contains("after 2 corrections"), "{reason}");
    assert_eq!(stack.sims.reach.requests().count_to(PORT_IN_UPDATE_PATH), 2);

    // The overall deadline ends a journey that waits for a customer who never answers.
    let mut deadline = input(PIN, "10001");
    deadline.number_to_port = "2125550111".into();
    stack.sims.reach.set_losing_carrier(
        "2125550111",
        LosingCarrierAccount {
            account_number: ACCOUNT.into(),
            pin: SecretString::from(RIGHT_PIN),
            zip: "10001".into(),
            transient_failures: 0,
        },
    );
    deadline.timings.deadline_ms = 2_000;
    let id = start(&stack, deadline).await;
    let done = support::settled(&stack, id, SETTLE).await;
    assert_eq!(done.status, Status::Failed);
    let reason = done.failure.unwrap();
    assert!(reason.contains("deadline"), "{reason}");
    stack.stop().await;
}

async fn faults_on_purchase_and_update_take_effect_once(db: TestDb) {
    let mut config = config(&db);
    config.tune_providers = Some(Arc::new(|c: &mut ProvidersConfig| {
        if let Some(reach) = c.reach.as_mut() {
            reach.http.timeout_ms = 1_000;
        }
    }));
    let stack = Box::pin(support::stack(config)).await;
    carrier_on_file(&stack);
    let faults = stack.sims.reach.faults();
    faults.script_next(
        PURCHASE_ENDPOINT,
        Fault::RateLimited {
            retry_after_secs: Some(1),
        },
    );
    faults.script_next(PURCHASE_ENDPOINT, Fault::InternalError);
    faults.script_next(
        PURCHASE_ENDPOINT,
        Fault::GatewayTimeout { after_effect: true },
    );
    faults.script_next(
        PORT_IN_UPDATE_ENDPOINT,
        Fault::GatewayTimeout { after_effect: true },
    );
    let id = start(&stack, input(PIN, "10001")).await;
    at_correction(&stack, id, 0).await;
    send_correction(
        &stack,
        id,
        json!({"type": "UPDATE_PIN", "password": RIGHT_PIN}),
        "fix",
    )
    .await;
    let done = support::settled(&stack, id, Duration::from_secs(45)).await;
    assert_eq!(
        done.status,
        Status::Completed,
        "{:?} {:?}",
        done.failure,
        done.attention
    );
    let reach = &stack.sims.reach;
    // Four purchase sends (429, 500, 504 after the effect, then 409), one order.
    assert_eq!(reach.requests().count_to(PURCHASE_PATH), 4);
    assert_eq!(reach.ledger().count_kind(EffectKind::Order), 1);
    // The update's 504 happened after it was applied: the retry saw it in the
    // line status and did not send it again.
    assert_eq!(reach.requests().count_to(PORT_IN_UPDATE_PATH), 1);
    assert_no_double_effect(&stack);
    let history = stack.engine.history(id, 500).await.unwrap();
    let failures = history
        .iter()
        .filter(|h| h.kind == HistoryKind::StepFailed)
        .count();
    assert_eq!(
        failures, 4,
        "429, 500, 504 on the purchase, 504 on the update"
    );
    let text: String = history.iter().map(|h| h.detail.to_string()).collect();
    assert!(text.contains("Reach already had this order"), "{text}");
    assert!(text.contains("was already applied"), "{text}");
    stack.stop().await;
}

async fn duplicated_and_early_activation_callbacks_wake_the_poll_once(db: TestDb) {
    let stack = Box::pin(support::stack(config(&db))).await;
    carrier_on_file(&stack);
    let mut slow = input(PIN, "10001");
    // Polls a minute apart: only a callback can end this test quickly.
    slow.timings.port_poll_first_ms = 60_000;
    slow.timings.port_poll_max_ms = 60_000;
    let id = start(&stack, slow).await;
    let waiting = at_correction(&stack, id, 0).await;
    let customer_id = customer_of(&waiting);
    // Early (the journey is not polling yet) and twice: stored once, and only
    // a hint (the line is not active yet).
    let early = json!({"type": "ACTIVATION", "customerId": customer_id,
        "transactionId": "PRT-EARLY", "status": 2, "mobileNo": NUMBER});
    activation_callback(&stack, early.clone()).await;
    activation_callback(&stack, early).await;
    // The next port takes an hour unless something moves it.
    let reach = &stack.sims.reach;
    let mut behaviour = fast_reach();
    behaviour.port_after = Progress::After(Duration::from_secs(3_600));
    reach.set_behaviour(behaviour);
    send_correction(
        &stack,
        id,
        json!({"type": "UPDATE_PIN", "password": RIGHT_PIN}),
        "fix",
    )
    .await;
    // The early callback woke the poll at once; the status said 9, so it waits again.
    history_says(&stack, id, "ACTIVATION callback says").await;
    let record = stack
        .engine
        .wait_for(id, SETTLE, |r| {
            r.step_name == "await-port"
                && r.status == Status::Waiting
                && r.wait_signals
                    .iter()
                    .any(|s| s.as_str() == ACTIVATION_SIGNAL)
        })
        .await
        .unwrap();
    assert!(record.wake_at_ms.is_some());
    // The port completes; its callback (delivered three times) wakes the journey now.
    let mut behaviour = fast_reach();
    behaviour.port_after = Progress::After(Duration::ZERO);
    reach.set_behaviour(behaviour);
    reach.advance().await;
    assert_eq!(
        reach.line(&customer_id).unwrap().status,
        ActivationCode::Active
    );
    let done_body = json!({"type": "ACTIVATION", "customerId": customer_id,
        "transactionId": "PRT-DONE", "status": 2, "mobileNo": NUMBER});
    for _ in 0..3 {
        activation_callback(&stack, done_body.clone()).await;
    }
    let done = support::settled(&stack, id, Duration::from_secs(20)).await;
    assert_eq!(done.status, Status::Completed, "{:?}", done.failure);
    assert_eq!(output(&stack, id).await.outcome, PortInOutcome::Ported);
    let signals = stack.engine.store().signals_for(id, 50).await.unwrap();
    // (Only ours: once the ingress is wired, the simulator's own callbacks come too.)
    let ours = signals
        .iter()
        .filter(|s| s.name.as_str() == ACTIVATION_SIGNAL)
        .filter(|s| {
            matches!(
                s.payload["transactionId"].as_str(),
                Some("PRT-EARLY" | "PRT-DONE")
            )
        })
        .count();
    assert_eq!(ours, 2, "duplicates were stored once");
    assert!(stack.engine.metrics().signals_duplicate.get() >= 3);
    assert_no_double_effect(&stack);
    stack.stop().await;
}

/// Crashes the worker once at `point` of every step, one after another, on a
/// port-in with one correction: it ends the same, with every effect once.
async fn crash_at_every_step(db: &TestDb, point: FaultPoint) {
    let crashed: Arc<Mutex<HashSet<i64>>> = Arc::default();
    let pending = Arc::new(AtomicBool::new(false));
    let mut config = config(db);
    config.worker.lease_ttl = Duration::from_millis(600);
    config.worker.heartbeat_every = Duration::from_millis(150);
    let (seen, flag) = (crashed.clone(), pending.clone());
    config.fault_hook = Some(Arc::new(move |p: FaultPoint, _id: JourneyId, seq: i64| {
        p == point && seen.lock().unwrap().insert(seq) && !flag.swap(true, Ordering::SeqCst)
    }));
    let mut stack = Box::pin(support::stack(config)).await;
    carrier_on_file(&stack);
    let id = start(&stack, input(PIN, "10001")).await;
    let mut restarts = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{point:?}: too slow"
        );
        if pending.swap(false, Ordering::SeqCst) {
            stack.crash_and_restart().await.unwrap();
            restarts += 1;
            continue;
        }
        let record = stack.engine.journey(id).await.unwrap();
        if record.status.is_terminal() || record.status == Status::NeedsAttention {
            assert_eq!(
                record.status,
                Status::Completed,
                "{point:?}: {:?} {:?}",
                record.failure,
                record.attention
            );
            break;
        }
        if record.step_name == "await-correction" {
            // The customer's app may send it more than once: same dedupe key.
            send_correction(
                &stack,
                id,
                json!({"type": "UPDATE_PIN", "password": RIGHT_PIN}),
                "fix",
            )
            .await;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(restarts >= 8, "{point:?}: only {restarts} crashes");
    let out = output(&stack, id).await;
    assert_eq!(out.outcome, PortInOutcome::Ported);
    assert_eq!(out.corrections, 1);
    let reach = &stack.sims.reach;
    assert_eq!(reach.ledger().count_kind(EffectKind::Order), 1);
    assert_eq!(reach.ledger().count_kind(EffectKind::PortIn), 1);
    assert_eq!(reach.ledger().count_kind(EffectKind::Activation), 1);
    assert_no_double_effect(&stack);
    stack.stop().await;
}

async fn a_crash_at_every_step_ends_the_same(db: TestDb) {
    for point in [
        FaultPoint::BeforeStep,
        FaultPoint::AfterStep,
        FaultPoint::AfterCommit,
    ] {
        Box::pin(crash_at_every_step(&db, point)).await;
    }
}

/// Moves the manual clock to the journey's wake time and waits until the
/// step ran (its `step_seq` moved).
async fn fire_timer(stack: &Stack, clock: &ManualClock, record: &JourneyRecord) -> JourneyRecord {
    let wake = record.wake_at_ms.expect("a timer");
    clock.set(chrono::DateTime::from_timestamp_millis(wake).unwrap());
    let seq = record.step_seq;
    stack
        .engine
        .wait_for(record.id, SETTLE, |r| {
            r.step_seq > seq && (r.status == Status::Waiting || r.status.is_terminal())
        })
        .await
        .unwrap()
}

async fn a_port_in_progress_for_hours_polls_on_schedule(db: TestDb) {
    let clock = ManualClock::at_fixed_instant();
    let mut config = config(&db);
    config.clock = clock.clone();
    let mut behaviour = fast_reach();
    // Reach keeps the port 9 PORTING_IN_PROGRESS for six status polls.
    behaviour.port_after = Progress::AfterPolls(6);
    config.sims.reach.behaviour = behaviour;
    let stack = Box::pin(support::stack(config)).await;
    let mut long = input(PIN, "10001");
    long.timings = PortInTimings {
        purchase_poll_ms: 1_000,
        ..PortInTimings::default()
    };
    let id = start(&stack, long).await;
    // Through the payment (its polls are timers too).
    let mut record = stack
        .engine
        .wait_for(id, SETTLE, |r| r.status == Status::Waiting)
        .await
        .unwrap();
    while record.step_name == "await-payment" {
        record = fire_timer(&stack, &clock, &record).await;
    }
    assert_eq!(record.step_name, "await-port");
    let reach = &stack.sims.reach;
    let started = clock.now_ms();
    let mut intervals_min = Vec::new();
    while record.status == Status::Waiting {
        let interval_ms = record.wake_at_ms.unwrap() - clock.now_ms();
        intervals_min.push(interval_ms / 60_000);
        let polls = reach.requests().count_to(ACTIVATION_STATUS_PATH);
        // A second before the timer: nothing happens.
        clock.advance(Duration::from_millis(
            u64::try_from(interval_ms - 1_000).unwrap(),
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(reach.requests().count_to(ACTIVATION_STATUS_PATH), polls);
        assert_eq!(
            stack.engine.journey(id).await.unwrap().step_seq,
            record.step_seq
        );
        if intervals_min.len() == 5 {
            // Past the 2 h a port-in usually takes: reported as stuck, with why.
            let stuck = stack.engine.stuck(10).await.unwrap();
            assert!(stuck.iter().any(|s| s.journey == Some(id)), "{stuck:?}");
        }
        // At the timer: exactly one poll.
        record = fire_timer(&stack, &clock, &record).await;
        assert_eq!(reach.requests().count_to(ACTIVATION_STATUS_PATH), polls + 1);
    }
    assert_eq!(record.status, Status::Completed, "{:?}", record.failure);
    assert_eq!(intervals_min, vec![5, 10, 20, 40, 80, 120]);
    let hours = (clock.now_ms() - started) / 3_600_000;
    assert!(hours >= 4, "{hours} h of controlled time");
    assert_eq!(output(&stack, id).await.outcome, PortInOutcome::Ported);
    stack.stop().await;
}

/// Issue 8, item 6: a port-in Reach keeps PORTING_IN_PROGRESS for 72 h of
/// controlled time, across three engine restarts (a new engine on the same
/// database each time). Every poll fires at its timer and only then (one
/// per interval, the interval growing to its 2 h cap), and the journey's
/// 72 h deadline ends it, whichever engine is running then.
async fn a_port_in_held_for_72_hours_across_restarts_keeps_schedule_and_deadline(db: TestDb) {
    const HOUR_MS: i64 = 3_600_000;
    let clock = ManualClock::at_fixed_instant();
    let mut config = config(&db);
    config.clock = clock.clone();
    let mut behaviour = fast_reach();
    behaviour.port_after = Progress::AfterPolls(u32::MAX);
    config.sims.reach.behaviour = behaviour;
    let mut stack = Box::pin(support::stack(config)).await;
    let mut long = input(PIN, "10001");
    long.timings = PortInTimings {
        purchase_poll_ms: 1_000,
        deadline_ms: 72 * 3_600_000,
        ..PortInTimings::default()
    };
    let id = start(&stack, long).await;
    let began = clock.now_ms();
    let mut record = stack
        .engine
        .wait_for(id, SETTLE, |r| r.status == Status::Waiting)
        .await
        .unwrap();
    while record.step_name == "await-payment" {
        record = fire_timer(&stack, &clock, &record).await;
    }
    assert_eq!(record.step_name, "await-port");
    let mut restarts = 0;
    let mut polls_fired = 0;
    while record.status == Status::Waiting {
        let wake = record.wake_at_ms.expect("a timer");
        let interval_ms = wake - clock.now_ms();
        assert!(interval_ms <= 2 * HOUR_MS, "interval {interval_ms} ms");
        let polls = stack.sims.reach.requests().count_to(ACTIVATION_STATUS_PATH);
        // A second before the timer: nothing happens.
        clock.advance(Duration::from_millis(
            u64::try_from(interval_ms - 1_000).unwrap_or_default(),
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            stack.sims.reach.requests().count_to(ACTIVATION_STATUS_PATH),
            polls
        );
        // At the timer: one poll, or the deadline (which ends the journey
        // without a step).
        clock.set(chrono::DateTime::from_timestamp_millis(wake).unwrap());
        let seq = record.step_seq;
        record = stack
            .engine
            .wait_for(id, SETTLE, |r| {
                (r.step_seq > seq && r.status == Status::Waiting) || r.status.is_terminal()
            })
            .await
            .unwrap();
        let now_polls = stack.sims.reach.requests().count_to(ACTIVATION_STATUS_PATH);
        assert!(now_polls <= polls + 1, "two polls for one interval");
        polls_fired += now_polls - polls;
        // Restart the engine at 18 h, 36 h and 54 h.
        if restarts < 3 && clock.now_ms() - began >= 18 * HOUR_MS * (restarts + 1) {
            stack.crash_and_restart().await.unwrap();
            restarts += 1;
            record = stack.engine.journey(id).await.unwrap();
        }
    }
    assert_eq!(restarts, 3);
    assert_eq!(record.status, Status::Failed);
    let reason = record.failure.clone().unwrap_or_default();
    assert!(reason.contains("deadline"), "{reason}");
    let hours = (clock.now_ms() - began) as f64 / HOUR_MS as f64;
    assert!((71.0..=73.0).contains(&hours), "ended after {hours} h");
    // After 5, 10, 20, 40 and 80 min (5 polls in 155 min), then every 2 h:
    // 34 more in the remaining 69 h 25 min; the deadline comes before a 40th.
    assert_eq!(polls_fired, 39, "polls in 72 h");
    stack.stop().await;
}

trait NowMs {
    fn now_ms(&self) -> i64;
}

impl NowMs for ManualClock {
    fn now_ms(&self) -> i64 {
        handover_engine::Clock::now(self).timestamp_millis()
    }
}

/// The demo's driver plays every scenario of ten journeys (the customer pays
/// at the page and answers each failure) and each ends as it expects.
async fn the_demo_driver_plays_every_scenario(db: TestDb) {
    let mut config = config(&db);
    // The driver pays itself.
    config.sims.reach.behaviour = ReachBehaviour::fast();
    let stack = Box::pin(support::stack(config)).await;
    let driver = ReachPortInDriver;
    driver.prepare(&stack);
    let mut cases = Vec::new();
    for i in 0..10 {
        cases.push(driver.start(&stack, i).await.unwrap());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let mut open: Vec<&DemoCase> = cases.iter().collect();
    while !open.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "unfinished: {open:?}"
        );
        let mut still = Vec::new();
        for case in open {
            let record = stack.engine.journey(case.id).await.unwrap();
            if record.status.is_terminal() || record.status == Status::NeedsAttention {
                let want = match case.expect {
                    Expected::Completed => Status::Completed,
                    Expected::Failed | Expected::Compensated => Status::Failed,
                    Expected::Cancelled => Status::Cancelled,
                };
                assert_eq!(
                    record.status, want,
                    "{}: {:?} {:?}",
                    case.scenario, record.failure, record.attention
                );
            } else {
                driver.assist(&stack, case, &record).await.unwrap();
                still.push(case);
            }
        }
        open = still;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cancelled = cases.iter().find(|c| c.scenario == "cancel-port").unwrap();
    assert_eq!(
        output(&stack, cancelled.id).await.outcome,
        PortInOutcome::Cancelled
    );
    let twice = cases
        .iter()
        .find(|c| c.scenario == "wrong-pin-and-zip")
        .unwrap();
    assert_eq!(output(&stack, twice.id).await.corrections, 2);
    assert!(stack.sims.reach.ledger().duplicates().is_empty());
    stack.stop().await;
}

both!(
    the_demo_driver_plays_every_scenario,
    happy_path_ports_the_number,
    invalid_inputs_are_refused_before_anything_is_sent,
    an_ineligible_number_stops_before_the_purchase,
    two_corrections_pin_then_zip_before_active,
    cancel_port_ends_cancelled,
    cancel_and_new_activates_a_new_number,
    the_correction_wait_times_out,
    the_loop_is_bounded_by_corrections_and_by_the_deadline,
    faults_on_purchase_and_update_take_effect_once,
    duplicated_and_early_activation_callbacks_wake_the_poll_once,
    a_crash_at_every_step_ends_the_same,
    a_port_in_progress_for_hours_polls_on_schedule,
    a_port_in_held_for_72_hours_across_restarts_keeps_schedule_and_deadline,
);

/// The real route: Reach posts the `ACTIVATION` callback to the ingress, which
/// wakes the polling journey.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reach_ingress_route_wakes_the_poll() {
    let Some(db) = TestDb::open(support::Backend::Sqlite) else {
        return;
    };
    let stack = Box::pin(support::stack(config(&db))).await;
    carrier_on_file(&stack);
    let mut slow = input(PIN, "10001");
    slow.timings.port_poll_first_ms = 60_000;
    slow.timings.port_poll_max_ms = 60_000;
    let id = start(&stack, slow).await;
    let waiting = at_correction(&stack, id, 0).await;
    let customer_id = customer_of(&waiting);
    let reach = &stack.sims.reach;
    let mut behaviour = fast_reach();
    behaviour.port_after = Progress::After(Duration::from_secs(3_600));
    reach.set_behaviour(behaviour);
    send_correction(
        &stack,
        id,
        json!({"type": "UPDATE_PIN", "password": RIGHT_PIN}),
        "fix",
    )
    .await;
    stack
        .engine
        .wait_for(id, SETTLE, |r| {
            r.step_name == "await-port" && r.status == Status::Waiting
        })
        .await
        .unwrap();
    let mut behaviour = fast_reach();
    behaviour.port_after = Progress::After(Duration::ZERO);
    reach.set_behaviour(behaviour);
    reach.advance().await;
    let url = stack
        .ingress_url
        .join(handover_adapters::reach::CALLBACK_PATH.trim_start_matches('/'))
        .unwrap();
    let answer = reqwest::Client::new()
        .post(url)
        .json(&json!({"type": "ACTIVATION", "customerId": customer_id,
            "transactionId": "PRT-DONE", "status": 2, "mobileNo": NUMBER}))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    let done = support::settled(&stack, id, Duration::from_secs(20)).await;
    assert_eq!(done.status, Status::Completed, "{:?}", done.failure);
    stack.stop().await;
}
