//! J5 end to end: Mobitel carrier billing against its simulator over real
//! HTTP, on the engine's [`ManualClock`] so the 2-minute re-initiation gap
//! and the consent windows pass without sleeping.
//!
//! The simulator keeps real time: its re-initiation gap is set to 1 ms (the
//! journey enforces the 2 minutes on its own clock), and its consent window
//! is left long unless a test wants Mobitel's own "expired".

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use handover_adapters::ProvidersConfig;
use handover_adapters::mobitel::status;
use handover_adapters::sim::mobitel::{
    CHARGE_REQUEST_ENDPOINT, CONFIRM_ENDPOINT, ChargeState, ConsentPolicy,
};
use handover_adapters::sim::{EffectKind, Fault, MobitelBehaviour};
use handover_engine::store::ListFilter;
use handover_engine::{
    Clock, FaultPoint, HistoryKind, JourneyId, JourneyRecord, ManualClock, Status,
};
use handover_workflows::mobitel_billing::{
    MobitelBilling, MobitelBillingInput, MobitelBillingOutput,
};
use handover_workflows::stack::{Stack, StackConfig};
use secrecy::SecretString;
use support::TestDb;

const REAL_LIMIT: Duration = Duration::from_secs(30);
const RECEIVER: &str = "0712755777";

fn input() -> MobitelBillingInput {
    MobitelBillingInput {
        amount: "5".into(),
        receiver: RECEIVER.into(),
        ..Default::default()
    }
}

fn manual_config(db: &TestDb) -> (StackConfig, Arc<ManualClock>) {
    let clock = ManualClock::at_fixed_instant();
    let mut config = support::config(db);
    config.clock = clock.clone();
    (config, clock)
}

/// Sets the simulated customer's behaviour, with a 1 ms re-initiation gap
/// and `window` as Mobitel's consent window (real time).
fn customer(stack: &Stack, consent: ConsentPolicy, window: Duration) {
    stack.sims.mobitel.set_behaviour(
        MobitelBehaviour::default()
            .with_consent(consent)
            .with_windows(window, Duration::from_millis(1)),
    );
}

fn with_client_timeout(config: &mut StackConfig, ms: u64) {
    config.tune_providers = Some(Arc::new(move |c: &mut ProvidersConfig| {
        if let Some(m) = c.mobitel.as_mut() {
            m.http.timeout_ms = ms;
        }
    }));
}

async fn start(stack: &Stack, input: MobitelBillingInput) -> JourneyId {
    stack
        .engine
        .start::<MobitelBilling>(input)
        .await
        .expect("journey starts")
}

/// Moves the manual clock to the journey's next due time whenever it is
/// parked (or when a lease has not changed for a second: a crashed
/// worker's), playing the world with `world` on every turn, until `done`.
async fn drive(
    stack: &Stack,
    clock: &ManualClock,
    id: JourneyId,
    world: &dyn Fn(&Stack),
    done: &dyn Fn(&JourneyRecord) -> bool,
) -> JourneyRecord {
    let deadline = tokio::time::Instant::now() + REAL_LIMIT;
    let mut last: Option<(i64, u32, Option<i64>, Option<String>)> = None;
    let mut unchanged_since = tokio::time::Instant::now();
    loop {
        world(stack);
        let record = stack.engine.journey(id).await.unwrap();
        if done(&record) {
            return record;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "journey stuck: {} at {} ({:?})",
            record.status,
            record.step_name,
            record.last_error
        );
        let seen = (
            record.step_seq,
            record.attempt,
            record.ready_at_ms,
            record.lease_owner.clone(),
        );
        if last.as_ref() != Some(&seen) {
            last = Some(seen);
            unchanged_since = tokio::time::Instant::now();
        }
        let now_ms = clock.now().timestamp_millis();
        let stalled = unchanged_since.elapsed() > Duration::from_secs(1);
        if let Some(ready) = record.ready_at_ms
            && ready > now_ms
            && (record.lease_owner.is_none() || stalled)
        {
            clock.advance(Duration::from_millis(
                u64::try_from(ready - now_ms).unwrap_or(0),
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn ended(r: &JourneyRecord) -> bool {
    r.status.is_terminal() || r.status == Status::NeedsAttention
}

fn nothing(_: &Stack) {}

async fn settle(stack: &Stack, clock: &ManualClock, id: JourneyId) -> JourneyRecord {
    drive(stack, clock, id, &nothing, &ended).await
}

async fn completed(stack: &Stack, clock: &ManualClock, id: JourneyId) -> MobitelBillingOutput {
    let done = settle(stack, clock, id).await;
    assert_eq!(
        done.status,
        Status::Completed,
        "{:?} {:?} {:?}",
        done.failure,
        done.attention,
        done.last_error
    );
    stack.engine.output(id).await.unwrap().unwrap()
}

async fn failed(stack: &Stack, clock: &ManualClock, id: JourneyId) -> String {
    let done = settle(stack, clock, id).await;
    assert_eq!(done.status, Status::Failed, "{:?}", done.attention);
    done.failure.unwrap_or_default()
}

fn charges(stack: &Stack) -> usize {
    stack
        .sims
        .mobitel
        .ledger()
        .entries_of(EffectKind::Charge)
        .len()
}

fn requests(stack: &Stack) -> usize {
    stack
        .sims
        .mobitel
        .ledger()
        .entries_of(EffectKind::ChargeRequest)
        .len()
}

/// `reference` was charged once, nothing else was, nothing twice.
fn assert_charged_once(stack: &Stack, reference: &str) {
    let ledger = stack.sims.mobitel.ledger();
    assert!(ledger.duplicates().is_empty(), "{:?}", ledger.duplicates());
    assert_eq!(ledger.count(EffectKind::Charge, reference), 1);
    assert_eq!(charges(stack), 1);
}

async fn an_approved_charge_completes(db: TestDb) {
    let (config, clock) = manual_config(&db);
    let stack = Box::pin(support::stack(config)).await;
    // Pending for two confirms, then approved.
    customer(
        &stack,
        ConsentPolicy::ApproveAfterPolls(2),
        Duration::from_secs(60),
    );
    let id = start(&stack, input()).await;
    let out = completed(&stack, &clock, id).await;
    assert_eq!(out.initiations, 1);
    assert_eq!(out.confirms, 3);
    assert_eq!(out.amount, "5");
    assert_charged_once(&stack, &out.reference);
    assert_eq!(requests(&stack), 1);
    // The documented wire: client id header, amount as a string, receiver.
    let sent = stack.sims.mobitel.requests().all();
    let body = sent[0].json().unwrap();
    assert_eq!(body["amount"], "5");
    assert_eq!(body["receiver"], RECEIVER);
    assert!(sent[0].headers.contains_key("x-ibm-client-id"));
    // Searchable by the number, shown masked; the number is not in the view.
    let found = stack
        .engine
        .list(&ListFilter {
            key: Some(RECEIVER.into()),
            limit: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].business_key.as_deref(), Some("071*****77"));
    let view = serde_json::to_string(&stack.engine.show(id).await.unwrap()).unwrap();
    assert!(!view.contains(RECEIVER), "the full number leaked: {view}");
    stack.stop().await;
}

async fn invalid_inputs_are_refused_at_start(db: TestDb) {
    let (config, _clock) = manual_config(&db);
    let stack = Box::pin(support::stack(config)).await;
    let cases = [
        (
            MobitelBillingInput {
                amount: "0".into(),
                ..input()
            },
            "amount",
        ),
        (
            MobitelBillingInput {
                amount: "1.234".into(),
                ..input()
            },
            "amount",
        ),
        (
            MobitelBillingInput {
                receiver: "0812755777".into(),
                ..input()
            },
            "receiver",
        ),
        (
            MobitelBillingInput {
                max_initiations: Some(0),
                ..input()
            },
            "max_initiations",
        ),
    ];
    for (bad, expected) in cases {
        let err = stack.engine.start::<MobitelBilling>(bad).await.unwrap_err();
        assert!(err.to_string().contains(expected), "{expected}: {err}");
    }
    assert!(stack.sims.mobitel.requests().all().is_empty());
    stack.stop().await;
}

async fn business_refusals_fail_with_a_readable_reason(db: TestDb) {
    let (config, clock) = manual_config(&db);
    let stack = Box::pin(support::stack(config)).await;
    customer(
        &stack,
        ConsentPolicy::DeclineAfterPolls(0),
        Duration::from_secs(60),
    );
    let faults = stack.sims.mobitel.faults();

    faults.script_next(
        CHARGE_REQUEST_ENDPOINT,
        Fault::refusal(status::INSUFFICIENT_BALANCE, "Insufficient balance"),
    );
    let reason = failed(&stack, &clock, start(&stack, input()).await).await;
    assert!(reason.contains("balance does not cover"), "{reason}");

    faults.script_next(
        CHARGE_REQUEST_ENDPOINT,
        Fault::refusal(status::NOT_ELIGIBLE, "Not eligible"),
    );
    let reason = failed(&stack, &clock, start(&stack, input()).await).await;
    assert!(reason.contains("cannot be charged"), "{reason}");

    // The customer declines the pop-up: no re-initiation.
    let reason = failed(&stack, &clock, start(&stack, input()).await).await;
    assert!(reason.contains("declined"), "{reason}");
    assert_eq!(requests(&stack), 1);
    assert_eq!(charges(&stack), 0);
    stack.stop().await;

    // A client id the gateway does not know: 401, terminal.
    let (mut config, clock) = manual_config(&db);
    config.tune_providers = Some(Arc::new(|c: &mut ProvidersConfig| {
        if let Some(m) = c.mobitel.as_mut() {
            m.client_id = SecretString::from("not-our-client-id");
        }
    }));
    let stack = Box::pin(support::stack(config)).await;
    let reason = failed(&stack, &clock, start(&stack, input()).await).await;
    assert!(reason.contains("client id"), "{reason}");
    assert_eq!(charges(&stack), 0);
    stack.stop().await;
}

async fn faults_never_charge_twice(db: TestDb) {
    let (mut config, clock) = manual_config(&db);
    with_client_timeout(&mut config, 400);
    let stack = Box::pin(support::stack(config)).await;
    customer(
        &stack,
        ConsentPolicy::ApproveAfterPolls(0),
        Duration::from_secs(60),
    );
    let faults = stack.sims.mobitel.faults();

    // 429, 500, 503 on the charge request: nothing happened; retried.
    faults.script_next(
        CHARGE_REQUEST_ENDPOINT,
        Fault::RateLimited {
            retry_after_secs: Some(1),
        },
    );
    faults.script_next(CHARGE_REQUEST_ENDPOINT, Fault::InternalError);
    faults.script_next(
        CHARGE_REQUEST_ENDPOINT,
        Fault::Unavailable {
            retry_after_secs: None,
        },
    );
    let out = completed(&stack, &clock, start(&stack, input()).await).await;
    assert_charged_once(&stack, &out.reference);
    assert_eq!(requests(&stack), 1);
    stack.stop().await;

    // 504 after the effect on the charge request: its pop-up's reference is
    // lost; the journey waits out the gap, asks again, charges the new one.
    let (mut config, clock) = manual_config(&db);
    with_client_timeout(&mut config, 400);
    let stack = Box::pin(support::stack(config)).await;
    customer(
        &stack,
        ConsentPolicy::ApproveAfterPolls(0),
        Duration::from_secs(60),
    );
    let faults = stack.sims.mobitel.faults();
    faults.script_next(
        CHARGE_REQUEST_ENDPOINT,
        Fault::GatewayTimeout { after_effect: true },
    );
    let id = start(&stack, input()).await;
    let out = completed(&stack, &clock, id).await;
    assert_eq!(requests(&stack), 2);
    assert_charged_once(&stack, &out.reference);
    let views = stack.sims.mobitel.charge_requests();
    assert_eq!(views[0].state, ChargeState::Pending, "never confirmed");
    assert_eq!(views[1].reference, out.reference);
    let requested: Vec<i64> = stack
        .engine
        .history(id, 100)
        .await
        .unwrap()
        .iter()
        .filter(|h| {
            h.kind == HistoryKind::StepFailed && h.step.as_deref() == Some("request-charge")
                || h.kind == HistoryKind::StepCompleted
                    && h.step.as_deref() == Some("request-charge")
        })
        .map(|h| h.at_ms)
        .collect();
    assert!(
        requested.last().unwrap() - requested.first().unwrap() >= 120_000,
        "re-sent no sooner than 2 minutes later: {requested:?}"
    );

    // 504 after the effect on confirm, then a slow confirm: confirmed again
    // with the same reference, charged once.
    faults.script_next(
        CONFIRM_ENDPOINT,
        Fault::GatewayTimeout { after_effect: true },
    );
    faults.script_next(CONFIRM_ENDPOINT, Fault::SlowAnswer { delay_ms: 1_000 });
    let before = charges(&stack);
    let out = completed(&stack, &clock, start(&stack, input()).await).await;
    assert_eq!(charges(&stack), before + 1);
    assert_eq!(
        stack
            .sims
            .mobitel
            .ledger()
            .count(EffectKind::Charge, &out.reference),
        1
    );
    assert!(stack.sims.mobitel.ledger().duplicates().is_empty());
    stack.stop().await;
}

async fn approved_late_after_a_reinitiation(db: TestDb) {
    let (config, clock) = manual_config(&db);
    let stack = Box::pin(support::stack(config)).await;
    customer(&stack, ConsentPolicy::Manual, Duration::from_secs(60));
    let id = start(&stack, input()).await;
    // The customer misses the first pop-up and approves the second.
    let approve_second = |stack: &Stack| {
        let views = stack.sims.mobitel.charge_requests();
        if let Some(second) = views.get(1)
            && second.state == ChargeState::Pending
        {
            let _ = stack.sims.mobitel.approve(&second.reference);
        }
    };
    let done = drive(&stack, &clock, id, &approve_second, &ended).await;
    assert_eq!(done.status, Status::Completed, "{:?}", done.failure);
    let out: MobitelBillingOutput = stack.engine.output(id).await.unwrap().unwrap();
    assert_eq!(out.initiations, 2);
    let views = stack.sims.mobitel.charge_requests();
    assert_eq!(views.len(), 2);
    assert_eq!(views[1].reference, out.reference);
    assert_charged_once(&stack, &out.reference);
    let requested: Vec<i64> = stack
        .engine
        .history(id, 100)
        .await
        .unwrap()
        .iter()
        .filter(|h| {
            h.kind == HistoryKind::StepCompleted && h.step.as_deref() == Some("request-charge")
        })
        .map(|h| h.at_ms)
        .collect();
    assert_eq!(requested.len(), 2);
    assert!(
        requested[1] - requested[0] >= 60_000 + 120_000,
        "the window closed, then 2 minutes passed: {requested:?}"
    );
    stack.stop().await;
}

async fn never_approved_fails_after_bounded_reinitiations(db: TestDb) {
    let (config, clock) = manual_config(&db);
    let stack = Box::pin(support::stack(config)).await;
    // Nobody answers; our consent window closes each time.
    customer(&stack, ConsentPolicy::Manual, Duration::from_secs(600));
    let id = start(
        &stack,
        MobitelBillingInput {
            max_initiations: Some(2),
            consent_window_secs: Some(30),
            ..input()
        },
    )
    .await;
    let reason = failed(&stack, &clock, id).await;
    assert!(
        reason.contains("did not approve") && reason.contains("2 charge request"),
        "{reason}"
    );
    assert_eq!(requests(&stack), 2);
    assert_eq!(charges(&stack), 0);
    stack.stop().await;

    // Mobitel's own window closes first ("expired"): three requests, then fail.
    let (config, clock) = manual_config(&db);
    let stack = Box::pin(support::stack(config)).await;
    customer(&stack, ConsentPolicy::Manual, Duration::from_millis(1));
    let id = start(&stack, input()).await;
    let reason = failed(&stack, &clock, id).await;
    assert!(reason.contains("expired"), "{reason}");
    assert_eq!(requests(&stack), 3);
    assert_eq!(charges(&stack), 0);
    stack.stop().await;
}

async fn too_soon_refusals_wait_the_gap_then_give_up(db: TestDb) {
    let (config, clock) = manual_config(&db);
    let stack = Box::pin(support::stack(config)).await;
    // Mobitel's own 2-minute rule in real time: the re-initiation (2 minutes
    // later on the journey's clock) is refused as too soon, every time.
    stack
        .sims
        .mobitel
        .set_behaviour(MobitelBehaviour::default());
    let id = start(
        &stack,
        MobitelBillingInput {
            max_initiations: Some(2),
            consent_window_secs: Some(10),
            ..input()
        },
    )
    .await;
    let reason = failed(&stack, &clock, id).await;
    assert!(
        reason.contains("too soon") && reason.contains("nothing was charged"),
        "{reason}"
    );
    assert_eq!(requests(&stack), 1);
    assert_eq!(charges(&stack), 0);
    stack.stop().await;
}

async fn a_crash_at_every_step_charges_once(db: TestDb) {
    // Steps: 0 request-charge, 1 await-consent (pending), 2 await-consent (approved).
    for seq in 0..3 {
        for point in [
            FaultPoint::BeforeStep,
            FaultPoint::AfterStep,
            FaultPoint::AfterCommit,
        ] {
            let (hook, fired) = support::crash_once(point, seq);
            let (mut config, clock) = manual_config(&db);
            config.fault_hook = Some(hook);
            let mut stack = Box::pin(support::stack(config)).await;
            customer(
                &stack,
                ConsentPolicy::ApproveAfterPolls(1),
                Duration::from_secs(60),
            );
            let id = start(&stack, input()).await;
            let fired_now = |_: &JourneyRecord| fired.load(Ordering::SeqCst);
            drive(&stack, &clock, id, &nothing, &fired_now).await;
            stack.crash_and_restart().await.unwrap();
            // The dead worker's lease runs out.
            clock.advance(Duration::from_secs(3));
            let out = completed(&stack, &clock, id).await;
            assert_charged_once(&stack, &out.reference);
            assert!(requests(&stack) <= 2, "{point:?} at {seq}");
            stack.stop().await;
        }
    }
}

async fn the_demo_scenarios_end_as_expected(db: TestDb) {
    use handover_workflows::demo::mobitel_billing::MobitelBillingDriver;
    use handover_workflows::demo::{DemoDriver, Expected};
    let (config, clock) = manual_config(&db);
    let stack = Box::pin(support::stack(config)).await;
    let driver = MobitelBillingDriver;
    driver.prepare(&stack);
    // The simulator's 2-minute gap is real time; the journey keeps its own.
    customer(&stack, ConsentPolicy::Manual, Duration::from_secs(60));
    let mut cases = Vec::new();
    for i in [0, 1, 12, 24] {
        cases.push(driver.start(&stack, i).await.unwrap());
    }
    let deadline = tokio::time::Instant::now() + REAL_LIMIT;
    loop {
        let mut parked_until = Vec::new();
        let mut running = 0;
        for case in &cases {
            let record = stack.engine.journey(case.id).await.unwrap();
            if ended(&record) {
                continue;
            }
            driver.assist(&stack, case, &record).await.unwrap();
            match (record.lease_owner.as_ref(), record.ready_at_ms) {
                (None, Some(ready)) => parked_until.push(ready),
                _ => running += 1,
            }
        }
        if parked_until.is_empty() && running == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the demo cases did not end"
        );
        let now_ms = clock.now().timestamp_millis();
        if running == 0
            && let Some(next) = parked_until.iter().min()
            && *next > now_ms
        {
            clock.advance(Duration::from_millis(
                u64::try_from(next - now_ms).unwrap_or(0),
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for case in &cases {
        let done = stack.engine.journey(case.id).await.unwrap();
        let want = match case.expect {
            Expected::Completed => Status::Completed,
            _ => Status::Failed,
        };
        assert_eq!(done.status, want, "{}: {:?}", case.scenario, done.failure);
    }
    assert_eq!(charges(&stack), 3);
    assert!(stack.sims.mobitel.ledger().duplicates().is_empty());
    stack.stop().await;
}

both!(
    the_demo_scenarios_end_as_expected,
    an_approved_charge_completes,
    invalid_inputs_are_refused_at_start,
    business_refusals_fail_with_a_readable_reason,
    faults_never_charge_twice,
    approved_late_after_a_reinitiation,
    never_approved_fails_after_bounded_reinitiations,
    too_soon_refusals_wait_the_gap_then_give_up,
    a_crash_at_every_step_charges_once,
);
