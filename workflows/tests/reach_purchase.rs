//! J2 end to end: `reach.purchase` against the Reach simulator over real
//! HTTP, with callbacks and payment returns coming in through the ingress, on
//! both stores. The customer is played by the demo driver's functions.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use handover_adapters::ProvidersConfig;
use handover_adapters::reach::SimType;
use handover_adapters::sim::reach::{
    ACTIVATION_ENDPOINT, COVERAGE_ENDPOINT, DeviceProfile, PURCHASE_ENDPOINT,
    PURCHASE_STATUS_ENDPOINT, Progress,
};
use handover_adapters::sim::{
    CallbackSettings, Delivery, DeliveryPlan, EffectKind, Fault, ReachBehaviour, ReachSimConfig,
};
use handover_engine::store::ListFilter;
use handover_engine::{FaultPoint, JourneyId, JourneyRecord, Status};
use handover_workflows::demo::reach_purchase::{
    Customer, UNCOVERED_ZIP, imei_for, input, play_customer,
};
use handover_workflows::ingress::reach::ReachCallbackAuth;
use handover_workflows::reach_purchase::{
    ReachPurchase, ReachPurchaseInput, ReachPurchaseOutput, Timing,
};
use handover_workflows::stack::{Stack, StackConfig};
use secrecy::SecretString;
use serde_json::json;
use support::TestDb;

const SETTLE: Duration = Duration::from_secs(30);

/// A customer who pays at once, comes back, retries, and whose SIM arrives.
const GOOD: Customer = Customer {
    declines: 0,
    retries: true,
    sim: Some(7),
    returns: true,
};

/// Polls of 50 ms, short customer windows.
fn quick() -> Timing {
    Timing {
        link_poll_ms: 50,
        poll_first_ms: 50,
        poll_max_ms: 200,
        max_polls: 200,
        payment_window_secs: 30,
        retry_window_secs: 30,
        sim_arrival_secs: 30,
    }
}

fn fast_config(db: &TestDb) -> StackConfig {
    let mut config = support::config(db);
    config.sims.reach = ReachSimConfig::default()
        .with_behaviour(ReachBehaviour::fast())
        .with_delivery(CallbackSettings::fast(), DeliveryPlan::new(1));
    config.tune_providers = Some(Arc::new(|c: &mut ProvidersConfig| {
        if let Some(reach) = c.reach.as_mut() {
            reach.http.timeout_ms = 500;
            reach.http.rate_per_second = 10_000;
            reach.http.rate_burst = 10_000;
        }
    }));
    config
}

fn esim(i: u64) -> ReachPurchaseInput {
    input(i, None, "78701", quick())
}

fn psim(i: u64) -> ReachPurchaseInput {
    input(i, Some(SimType::Psim), "78701", quick())
}

/// Plays `customer` until the journey ends or needs attention.
async fn drive(stack: &Stack, id: JourneyId, customer: Customer) -> JourneyRecord {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let record = stack.engine.journey(id).await.expect("journey");
        if record.status.is_terminal() || record.status == Status::NeedsAttention {
            return record;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "journey did not settle: {} at {}",
            record.status,
            record.step_name
        );
        play_customer(stack, id, &record, customer)
            .await
            .expect("customer plays");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn output(stack: &Stack, id: JourneyId) -> ReachPurchaseOutput {
    stack.engine.output(id).await.unwrap().unwrap()
}

/// Every effect in the simulator's ledger happened once per key.
fn assert_no_double_effect(stack: &Stack) {
    let ledger = stack.sims.reach.ledger();
    assert!(ledger.duplicates().is_empty(), "{:?}", ledger.duplicates());
}

fn count(stack: &Stack, kind: EffectKind) -> usize {
    stack.sims.reach.ledger().entries_of(kind).len()
}

fn completed(record: &JourneyRecord) {
    assert_eq!(
        record.status,
        Status::Completed,
        "{:?} {:?}",
        record.failure,
        record.attention
    );
}

async fn happy_esim_and_psim(db: TestDb) {
    let stack = Box::pin(support::stack(fast_config(&db))).await;
    let id = stack.engine.start::<ReachPurchase>(esim(1)).await.unwrap();
    completed(&drive(&stack, id, GOOD).await);
    let out = output(&stack, id).await;
    assert_eq!(out.sim_type, SimType::Esim);
    assert_eq!(out.purchase_attempts, 1);
    assert!(out.mobile_no_masked.contains('*'));
    assert_ne!(out.mobile_no_masked, *out.mobile_no.expose());
    // Searchable by the order reference and by the transaction id.
    for key in ["ORD-1", out.transaction_id.as_str()] {
        let found = stack
            .engine
            .list(&ListFilter {
                key: Some(key.into()),
                limit: 5,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{key}");
    }
    // The eSIM was activated with the device's IMEI.
    let activations = stack.sims.reach.requests().all();
    assert!(
        activations.iter().any(|r| r.path.ends_with("/activation")
            && String::from_utf8_lossy(&r.body).contains("\"esim\":true")),
        "an eSIM activation was sent"
    );

    let id2 = stack.engine.start::<ReachPurchase>(psim(2)).await.unwrap();
    completed(&drive(&stack, id2, GOOD).await);
    let out2 = output(&stack, id2).await;
    assert_eq!(out2.sim_type, SimType::Psim);
    let history = stack.engine.history(id2, 200).await.unwrap();
    assert!(
        history
            .iter()
            .any(|h| h.step.as_deref() == Some("validate-sim"))
    );
    assert_eq!(count(&stack, EffectKind::Order), 2);
    assert_eq!(count(&stack, EffectKind::Payment), 2);
    assert_eq!(count(&stack, EffectKind::Activation), 2);
    assert_no_double_effect(&stack);

    // Plans came from the cache: one catalog fetch for both journeys.
    let fetches = stack
        .sims
        .reach
        .requests()
        .all()
        .iter()
        .filter(|r| r.path.ends_with("/product/fetch/plan"))
        .count();
    assert_eq!(fetches, 1);
    // The catalog refresh job is declared.
    let scheduler = handover_engine::schedule::Scheduler::new(&stack.engine, "test");
    let scheduler = handover_workflows::schedules(scheduler, &stack.providers).unwrap();
    assert!(format!("{scheduler:?}").contains("reach-plan-catalog-refresh"));

    // What operators see holds no personal data: no IMEI, e-mail, name or
    // full number.
    for (journey, i, number) in [(id, 1, &out.mobile_no), (id2, 2, &out2.mobile_no)] {
        let shown = serde_json::to_string(&stack.engine.show(journey).await.unwrap()).unwrap();
        for private in [
            imei_for(i),
            format!("customer{i}@example.com"),
            format!("Customer{i}"),
            number.expose().clone(),
        ] {
            assert!(!shown.contains(&private), "journey {i} shows personal data");
        }
    }
    stack.stop().await;
}

async fn invalid_inputs_are_refused_at_start(db: TestDb) {
    let stack = Box::pin(support::stack(fast_config(&db))).await;
    let mut short = esim(3);
    short.imei = handover_engine::Sensitive::new("35693803564380".into());
    let err = stack
        .engine
        .start::<ReachPurchase>(short)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("15 digits"), "{err}");
    let mut luhn = esim(3);
    let mut bad = imei_for(3);
    let last = bad.pop().unwrap();
    bad.push(if last == '0' { '1' } else { '0' });
    luhn.imei = handover_engine::Sensitive::new(bad);
    let err = stack.engine.start::<ReachPurchase>(luhn).await.unwrap_err();
    assert!(err.to_string().contains("Luhn"), "{err}");
    let err = stack
        .engine
        .start::<ReachPurchase>(input(3, None, "7870", quick()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ZIP"), "{err}");
    let mut email = esim(3);
    email.email = handover_engine::Sensitive::new("not-an-email".into());
    assert!(stack.engine.start::<ReachPurchase>(email).await.is_err());
    assert!(
        stack.sims.reach.requests().all().is_empty(),
        "nothing was sent"
    );
    stack.stop().await;
}

async fn business_refusals_end_the_journey(db: TestDb) {
    let stack = Box::pin(support::stack(fast_config(&db))).await;
    stack.sims.reach.set_coverage(UNCOVERED_ZIP, false);
    let id = stack
        .engine
        .start::<ReachPurchase>(input(4, None, UNCOVERED_ZIP, quick()))
        .await
        .unwrap();
    let done = drive(&stack, id, GOOD).await;
    assert_eq!(done.status, Status::Failed);
    assert!(done.failure.unwrap().contains("coverage"));

    stack
        .sims
        .reach
        .set_device(&imei_for(5), DeviceProfile::unsupported());
    let id = stack.engine.start::<ReachPurchase>(esim(5)).await.unwrap();
    let done = drive(&stack, id, GOOD).await;
    assert_eq!(done.status, Status::Failed);
    assert!(done.failure.unwrap().contains("isValid=false"));

    stack
        .sims
        .reach
        .fail_activation(&imei_for(6), "Device is blacklisted by the network");
    let id = stack.engine.start::<ReachPurchase>(esim(6)).await.unwrap();
    let done = drive(&stack, id, GOOD).await;
    assert_eq!(done.status, Status::Failed);
    let reason = done.failure.unwrap();
    assert!(
        reason.contains("ACTIVATION_FAILED") && reason.contains("blacklisted"),
        "{reason}"
    );
    // Nothing was ordered for the refusals before the purchase; the paid one
    // ordered once.
    assert_eq!(count(&stack, EffectKind::Order), 1);
    assert_no_double_effect(&stack);
    stack.stop().await;
}

async fn a_failed_payment_is_retried_from_the_quote(db: TestDb) {
    let stack = Box::pin(support::stack(fast_config(&db))).await;
    let id = stack.engine.start::<ReachPurchase>(esim(8)).await.unwrap();
    let declined_once = Customer {
        declines: 1,
        ..GOOD
    };
    completed(&drive(&stack, id, declined_once).await);
    let out = output(&stack, id).await;
    assert_eq!(out.purchase_attempts, 2);
    assert_eq!(out.payment_failures.len(), 1);
    assert!(out.payment_failures[0].contains("declined"), "{out:?}");
    // Two orders under two clientAccountIds, one payment.
    let orders = stack.sims.reach.ledger().entries_of(EffectKind::Order);
    assert_eq!(orders.len(), 2);
    assert_ne!(orders[0].key, orders[1].key);
    assert_eq!(count(&stack, EffectKind::Payment), 1);
    let quotes = stack
        .sims
        .reach
        .requests()
        .all()
        .iter()
        .filter(|r| r.path.ends_with("/product/quote"))
        .count();
    assert_eq!(quotes, 2, "the retry started from the quote");

    // A customer who never retries: the journey fails with the description.
    let id = stack
        .engine
        .start::<ReachPurchase>({
            let mut i = esim(9);
            i.timing.retry_window_secs = 1;
            i
        })
        .await
        .unwrap();
    let gives_up = Customer {
        declines: 5,
        retries: false,
        ..GOOD
    };
    let done = drive(&stack, id, gives_up).await;
    assert_eq!(done.status, Status::Failed);
    let reason = done.failure.unwrap();
    assert!(
        reason.contains("declined") && reason.contains("did not try again"),
        "{reason}"
    );
    assert_no_double_effect(&stack);
    stack.stop().await;
}

async fn provider_faults_are_retried_without_a_second_order(db: TestDb) {
    let stack = Box::pin(support::stack(fast_config(&db))).await;
    let mut behaviour = ReachBehaviour::fast();
    // The payment stays pending for three polls after it was made.
    behaviour.settle_after = Progress::AfterPolls(3);
    stack.sims.reach.set_behaviour(behaviour);
    let faults = stack.sims.reach.faults();
    faults.script_next(
        COVERAGE_ENDPOINT,
        Fault::RateLimited {
            retry_after_secs: Some(1),
        },
    );
    faults.script_next(PURCHASE_ENDPOINT, Fault::InternalError);
    faults.script_next(
        PURCHASE_ENDPOINT,
        Fault::Unavailable {
            retry_after_secs: Some(1),
        },
    );
    faults.script_next(
        PURCHASE_ENDPOINT,
        Fault::GatewayTimeout { after_effect: true },
    );
    faults.script_next(PURCHASE_ENDPOINT, Fault::SlowAnswer { delay_ms: 1_000 });
    faults.script_next(PURCHASE_STATUS_ENDPOINT, Fault::BadGateway);
    faults.script_next(
        ACTIVATION_ENDPOINT,
        Fault::GatewayTimeout { after_effect: true },
    );
    let id = stack.engine.start::<ReachPurchase>(esim(10)).await.unwrap();
    let done = drive(&stack, id, GOOD).await;
    completed(&done);
    // One order despite five sends; one activation despite the 504.
    assert_eq!(count(&stack, EffectKind::Order), 1);
    assert_eq!(count(&stack, EffectKind::Activation), 1);
    let sends = stack
        .sims
        .reach
        .requests()
        .all()
        .iter()
        .filter(|r| r.path == "/apisvc/v0/product" && r.method == reqwest::Method::POST)
        .count();
    assert_eq!(sends, 5);
    let history = stack.engine.history(id, 300).await.unwrap();
    let notes: Vec<String> = history.iter().map(|h| h.detail.to_string()).collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("409") && n.contains("not ordered again")),
        "the re-send was reconciled: {notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("reconciled: Reach already has an activation")),
        "the activation was reconciled by a status query: {notes:?}"
    );
    assert_no_double_effect(&stack);
    stack.stop().await;
}

async fn duplicated_reordered_and_early_callbacks_take_effect_once(db: TestDb) {
    let mut config = fast_config(&db);
    // Time-driven Reach, slow polls: the callbacks must end the waits.
    config.sims.reach = ReachSimConfig::default()
        .with_behaviour(ReachBehaviour::fast().with_delays(Duration::from_millis(100)))
        .with_delivery(
            CallbackSettings::fast(),
            DeliveryPlan::new(3)
                .script(1, Delivery::normal().duplicated(3))
                .script(2, Delivery::normal().reordered().duplicated(1))
                .script(3, Delivery::normal().before_answer().duplicated(2)),
        );
    let stack = Box::pin(support::stack(config)).await;
    let slow_polls = Timing {
        poll_first_ms: 20_000,
        poll_max_ms: 20_000,
        ..quick()
    };
    let started = std::time::Instant::now();
    let id = stack
        .engine
        .start::<ReachPurchase>(input(11, None, "78701", slow_polls))
        .await
        .unwrap();
    completed(&drive(&stack, id, GOOD).await);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "callbacks woke the polls: {:?}",
        started.elapsed()
    );
    let sent = stack.sims.reach.callbacks_sent();
    assert!(sent.len() >= 4, "{sent:?}");
    assert!(stack.engine.metrics().signals_duplicate.get() >= 2);
    assert_eq!(count(&stack, EffectKind::Activation), 1);
    assert_no_double_effect(&stack);
    stack.stop().await;
}

async fn customer_waits_time_out(db: TestDb) {
    let stack = Box::pin(support::stack(fast_config(&db))).await;
    // The payment link lives one second; the customer never pays.
    let mut behaviour = ReachBehaviour::fast();
    behaviour.link_ttl = Duration::from_secs(1);
    stack.sims.reach.set_behaviour(behaviour);
    let id = stack
        .engine
        .start::<ReachPurchase>({
            let mut i = esim(12);
            i.timing.retry_window_secs = 1;
            i
        })
        .await
        .unwrap();
    let absent = Customer {
        declines: 0,
        retries: false,
        sim: None,
        returns: false,
    };
    let deadline = tokio::time::Instant::now() + SETTLE;
    let done = loop {
        let record = stack.engine.journey(id).await.unwrap();
        if record.status.is_terminal() {
            break record;
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done.status, Status::Failed);
    let reason = done.failure.unwrap();
    assert!(reason.contains("expired"), "{reason}");
    assert_eq!(count(&stack, EffectKind::Payment), 0);

    // The SIM never arrives: a person is asked (the customer has paid).
    stack.sims.reach.set_behaviour(ReachBehaviour::fast());
    let id = stack
        .engine
        .start::<ReachPurchase>({
            let mut i = psim(13);
            i.timing.sim_arrival_secs = 1;
            i
        })
        .await
        .unwrap();
    let done = drive(&stack, id, Customer { sim: None, ..GOOD }).await;
    let _ = absent;
    assert_eq!(done.status, Status::NeedsAttention);
    assert!(
        done.attention.unwrap().contains("not reported arrived"),
        "the reason says what to do"
    );
    assert_eq!(count(&stack, EffectKind::Activation), 0);
    // The operator skips the alert: the journey waits again, the SIM
    // arrives, the line is activated.
    stack
        .engine
        .skip(id, "ops", "shipment found")
        .await
        .unwrap();
    completed(&drive(&stack, id, GOOD).await);
    assert_eq!(count(&stack, EffectKind::Activation), 1);
    stack.stop().await;
}

async fn a_crash_at_every_step_ends_the_same(db: TestDb) {
    for (round, point) in [
        FaultPoint::BeforeStep,
        FaultPoint::AfterStep,
        FaultPoint::AfterCommit,
    ]
    .into_iter()
    .enumerate()
    {
        // Crash once at every step of the journey.
        let crashed: Arc<Mutex<HashSet<i64>>> = Arc::default();
        let pending = Arc::new(AtomicBool::new(false));
        let (seen, flag) = (crashed.clone(), pending.clone());
        let mut config = fast_config(&db);
        // Each round's simulator must not hand out the ids of the previous
        // round's (same database: the transaction ids are correlation keys).
        config.sims.reach.seed = 100 + round as u64;
        config.worker.lease_ttl = Duration::from_millis(400);
        config.worker.heartbeat_every = Duration::from_millis(100);
        config.fault_hook = Some(Arc::new(move |p, _id, seq| {
            // Polls repeat steps: crash at the first 16 steps, which cover
            // every stage of a PSIM purchase once.
            if p != point || seq >= 16 || flag.load(Ordering::SeqCst) {
                return false;
            }
            let first = seen.lock().unwrap().insert(seq);
            if first {
                flag.store(true, Ordering::SeqCst);
            }
            first
        }));
        let mut stack = Box::pin(support::stack(config)).await;
        let id = stack.engine.start::<ReachPurchase>(psim(20)).await.unwrap();
        let started = std::time::Instant::now();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let done = loop {
            if pending.load(Ordering::SeqCst) {
                stack.crash_and_restart().await.unwrap();
                pending.store(false, Ordering::SeqCst);
            }
            let record = stack.engine.journey(id).await.unwrap();
            if record.status.is_terminal() || record.status == Status::NeedsAttention {
                break record;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{point:?}: stuck at {} ({}), crashed at {:?}",
                record.step_name,
                record.status,
                crashed.lock().unwrap()
            );
            play_customer(&stack, id, &record, GOOD).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        completed(&done);
        eprintln!("{point:?}: {:?}", started.elapsed());
        assert!(
            crashed.lock().unwrap().len() >= 8,
            "{point:?}: crashed at {:?}",
            crashed.lock().unwrap()
        );
        assert_eq!(count(&stack, EffectKind::Order), 1, "{point:?}");
        assert_eq!(count(&stack, EffectKind::Payment), 1, "{point:?}");
        assert_eq!(count(&stack, EffectKind::Activation), 1, "{point:?}");
        assert_no_double_effect(&stack);
        stack.stop().await;
    }
}

async fn post(url: String, auth: Option<(&str, &str)>, body: Vec<u8>) -> (u16, String) {
    let client = reqwest::Client::new();
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some((user, password)) = auth {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn ingress_routes_follow_the_rules(db: TestDb) {
    let mut config = fast_config(&db);
    config.ingress.reach_callback_auth = Some(ReachCallbackAuth {
        username: "reach".into(),
        password: SecretString::from("s3cr3t-callbacks"),
    });
    let stack = Box::pin(support::stack(config)).await;
    let base = stack.ingress_url.clone();
    let callback_url = base
        .join("apisvc/v0/notification/callback")
        .unwrap()
        .to_string();
    let notification_url = base.join("apisvc/v0/notification").unwrap().to_string();
    let good = Some(("reach", "s3cr3t-callbacks"));
    let purchase = json!({"type": "PRODUCT_PURCHASE", "transactionId": "TXN-UNKNOWN-1",
                          "customerId": "CUS-9", "status": "COMPLETED"});
    let unmatched_before = stack
        .engine
        .store()
        .stuck(chrono::Utc::now().timestamp_millis(), 100)
        .await
        .unwrap()
        .unmatched_signals
        .len();

    // 401: no or wrong credentials; nothing stored.
    let body = serde_json::to_vec(&purchase).unwrap();
    assert_eq!(post(callback_url.clone(), None, body.clone()).await.0, 401);
    assert_eq!(
        post(callback_url.clone(), Some(("reach", "wrong")), body.clone())
            .await
            .0,
        401
    );
    // 400: malformed, unknown type, missing field; 413: oversized.
    for bad in [
        b"not json".to_vec(),
        br#"{"type":"SOMETHING","transactionId":"T-1","status":"COMPLETED"}"#.to_vec(),
        br#"{"type":"PRODUCT_PURCHASE","status":"COMPLETED"}"#.to_vec(),
    ] {
        assert_eq!(post(callback_url.clone(), good, bad).await.0, 400);
    }
    let huge = format!(
        r#"{{"type":"PRODUCT_PURCHASE","pad":"{}"}}"#,
        "x".repeat(70_000)
    );
    assert_eq!(
        post(callback_url.clone(), good, huge.into_bytes()).await.0,
        413
    );
    let after_refusals = stack
        .engine
        .store()
        .stuck(chrono::Utc::now().timestamp_millis(), 100)
        .await
        .unwrap()
        .unmatched_signals
        .len();
    assert_eq!(after_refusals, unmatched_before, "nothing was written");

    // Unknown key: stored, reported, acknowledged; the same again: duplicate.
    let (status, text) = post(callback_url.clone(), good, body.clone()).await;
    assert_eq!((status, text.contains("unmatched")), (200, true), "{text}");
    let (status, text) = post(callback_url.clone(), good, body).await;
    assert_eq!((status, text.contains("duplicate")), (200, true), "{text}");
    let stuck = stack.engine.stuck(50).await.unwrap();
    assert!(
        stuck
            .iter()
            .any(|s| s.journey.is_none() && s.signal_id.is_some())
    );

    // Notifications: same rules.
    let usage = json!({"type": "USAGE_NOTIFICATION", "eventId": "EVT-1", "customerId": "CUS-9",
                       "usagePercentage": 80});
    assert_eq!(
        post(
            notification_url.clone(),
            None,
            serde_json::to_vec(&usage).unwrap()
        )
        .await
        .0,
        401
    );
    let (status, text) = post(
        notification_url.clone(),
        good,
        serde_json::to_vec(&usage).unwrap(),
    )
    .await;
    assert_eq!((status, text.contains("unmatched")), (200, true), "{text}");
    assert_eq!(
        post(
            notification_url,
            good,
            br#"{"type":"USAGE_NOTIFICATION"}"#.to_vec()
        )
        .await
        .0,
        400
    );

    // The payment return: 400 without a transaction, 200 with one.
    let client = reqwest::Client::new();
    let ret = base.join("returns/reach").unwrap();
    assert_eq!(
        client
            .get(ret.clone())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        400
    );
    let ok = client
        .get(format!("{ret}?transId=TXN-UNKNOWN-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);

    // The simulator, given the credentials in the callback URL, gets through.
    let mut with_credentials = base.clone();
    with_credentials.set_username("reach").unwrap();
    with_credentials
        .set_password(Some("s3cr3t-callbacks"))
        .unwrap();
    stack.sims.reach.set_callback_base(Some(with_credentials));
    let id = stack.engine.start::<ReachPurchase>(esim(14)).await.unwrap();
    completed(&drive(&stack, id, GOOD).await);
    let sent = stack.sims.reach.callbacks_sent();
    assert!(!sent.is_empty());
    assert!(sent.iter().all(|s| s.outcome == Ok(200)), "{sent:?}");
    stack.stop().await;
}

/// The demo driver's fleet of J2 (every scenario, the demo's fault mix on
/// every Reach endpoint, one engine crash) ends as each scenario expects, with
/// no double effect.
async fn the_demo_fleet_ends_as_expected(db: TestDb) {
    use handover_workflows::demo::fleet::{FleetConfig, demo_faults, run};
    use handover_workflows::demo::reach_purchase::ReachPurchaseDriver;
    let mut config = fast_config(&db);
    config.sims = demo_faults(5, 800).unwrap();
    let mut stack = Box::pin(support::stack(config)).await;
    let drivers: Vec<Box<dyn handover_workflows::demo::DemoDriver>> =
        vec![Box::new(ReachPurchaseDriver)];
    let report = run(
        &mut stack,
        &drivers,
        &FleetConfig {
            journeys: 20,
            crash_every: None,
            no_crash: false,
            timeout: Duration::from_secs(50),
        },
        |_| {},
    )
    .await
    .unwrap();
    assert!(report.passed(), "{report:?}");
    assert_no_double_effect(&stack);
    stack.stop().await;
}

both!(
    the_demo_fleet_ends_as_expected,
    happy_esim_and_psim,
    invalid_inputs_are_refused_at_start,
    business_refusals_end_the_journey,
    a_failed_payment_is_retried_from_the_quote,
    provider_faults_are_retried_without_a_second_order,
    duplicated_reordered_and_early_callbacks_take_effect_once,
    customer_waits_time_out,
    a_crash_at_every_step_ends_the_same,
    ingress_routes_follow_the_rules,
);
