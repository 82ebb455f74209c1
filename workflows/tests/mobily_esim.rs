//! J1 end to end: the Mobily eSIM checkout against the Mobily simulator over
//! real HTTP, the Nafath webhook and the 3-D Secure return coming in through
//! the ingress, the customer played by the demo driver's `play`.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use handover_adapters::ProvidersConfig;
use handover_adapters::mobily::{IdempotencyKey as MobilyKey, PaymentStatus};
use handover_adapters::sim::mobily::{NafathPolicy, QrPolicy, endpoints};
use handover_adapters::sim::{Delivery, DeliveryPlan, EffectKind, Fault, MobilyBehaviour};
use handover_engine::store::ListFilter;
use handover_engine::{
    FaultPoint, HistoryKind, IdempotencyKey, JourneyId, JourneyRecord, StartOptions, Status,
    WorkerConfig,
};
use handover_workflows::demo::mobily_esim::{
    Answer, Customer, DUES_ID, NOT_ELIGIBLE_ID, contact_for, input, play, prepare, scenario,
};
use handover_workflows::ingress::mobily::{NAFATH_PATH, RETURN_PATH};
use handover_workflows::mobily_esim::{EsimCheckout, EsimCheckoutInput, EsimCheckoutOutput};
use handover_workflows::stack::{Stack, StackConfig};
use support::TestDb;

const SETTLE: Duration = Duration::from_secs(40);

/// Fast settings, and a client that is not rate limited (tests run many
/// journeys at once) with a short timeout (slow answers).
fn config(db: &TestDb) -> StackConfig {
    let mut config = support::config(db);
    config.tune_providers = Some(Arc::new(|c: &mut ProvidersConfig| {
        if let Some(m) = c.mobily.as_mut() {
            m.http.timeout_ms = 1_500;
            m.http.rate_per_second = 10_000;
            m.http.rate_burst = 10_000;
        }
    }));
    config
}

async fn stack(db: &TestDb) -> Stack {
    // Boxed: the stack's start is a large future.
    let stack = Box::pin(support::stack(config(db))).await;
    prepare(&stack);
    stack
}

fn settled(r: &JourneyRecord) -> bool {
    r.status.is_terminal() || r.status == Status::NeedsAttention
}

/// Plays every journey's customer until all have settled.
async fn drive(stack: &Stack, cases: &[(JourneyId, Customer)]) -> Vec<JourneyRecord> {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let mut done = Vec::new();
        for (id, customer) in cases {
            let record = stack.engine.journey(*id).await.expect("journey");
            if settled(&record) {
                done.push(record);
            } else {
                play(stack, *id, customer, &record).await.expect("play");
            }
        }
        if done.len() == cases.len() {
            return done;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "journeys did not settle: {:?}",
            done.iter().map(|r| r.status).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

async fn run(stack: &Stack, input: EsimCheckoutInput, customer: Customer) -> JourneyRecord {
    let id = stack.engine.start::<EsimCheckout>(input).await.unwrap();
    drive(stack, &[(id, customer)]).await.remove(0)
}

fn assert_once(stack: &Stack) {
    let dups = stack.sims.mobily.ledger().duplicates();
    assert!(dups.is_empty(), "an effect was applied twice: {dups:?}");
}

fn count(stack: &Stack, kind: EffectKind) -> usize {
    stack.sims.mobily.ledger().count_kind(kind)
}

fn payment_key(id: JourneyId) -> String {
    IdempotencyKey::derive(id, "payment").as_str().to_owned()
}

async fn history_kinds(stack: &Stack, id: JourneyId) -> Vec<(HistoryKind, serde_json::Value)> {
    stack
        .engine
        .history(id, 500)
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.kind, h.detail))
        .collect()
}

async fn happy_paths_complete(db: TestDb) {
    let stack = stack(&db).await;
    // Prepaid new number, postpaid (deposit), port-in, a wrong code once.
    let cases: Vec<(&str, EsimCheckoutInput, Customer)> = [0u64, 10, 12, 16]
        .into_iter()
        .map(|i| {
            let (name, input, customer, _) = scenario(i);
            (name, input, customer)
        })
        .collect();
    let mut started = Vec::new();
    for (_, input, customer) in &cases {
        let id = stack
            .engine
            .start::<EsimCheckout>(input.clone())
            .await
            .unwrap();
        started.push((id, customer.clone()));
    }
    let done = drive(&stack, &started).await;
    for (record, (name, input, _)) in done.iter().zip(&cases) {
        assert_eq!(
            record.status,
            Status::Completed,
            "{name}: {:?} {:?}",
            record.failure,
            record.attention
        );
        let out: EsimCheckoutOutput = stack.engine.output(record.id).await.unwrap().unwrap();
        assert!(out.activation_code.expose().starts_with("LPA:1$"));
        assert!(!out.order_id.is_empty());
        // Searchable by the order id (a correlation key) and by the number, shown masked.
        let found = stack
            .engine
            .list(&ListFilter {
                key: Some(out.order_id.clone()),
                limit: 5,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{name}");
        let number = input
            .port_in
            .as_ref()
            .map_or(&input.contact_msisdn, |p| &p.msisdn);
        let digits = format!("966{}", &number[1..]);
        assert!(
            found[0]
                .business_key
                .as_deref()
                .is_some_and(|k| k.contains('*') && !k.contains(&digits)),
            "{:?}",
            found[0].business_key
        );
        // No full number nor national id in what operators see.
        let shown = handover_engine::redact(&record.state).to_string();
        for secret in [
            digits.as_str(),
            input.national_id.as_str(),
            &out.msisdn.expose()[..],
        ] {
            assert!(!shown.contains(secret), "{name}: state shows {secret}");
        }
        for (_, detail) in history_kinds(&stack, record.id).await {
            let detail = detail.to_string();
            assert!(
                !detail.contains(&digits),
                "{name}: history shows the number"
            );
            assert!(!detail.contains(out.activation_code.expose()));
        }
    }
    // Two new numbers reserved, the port-in keeps its number; one of each effect per journey.
    assert_eq!(count(&stack, EffectKind::Reservation), 3);
    assert_eq!(count(&stack, EffectKind::Registration), 4);
    assert_eq!(count(&stack, EffectKind::Order), 4);
    assert_eq!(count(&stack, EffectKind::Payment), 4);
    assert_eq!(count(&stack, EffectKind::Void), 0);
    assert_eq!(count(&stack, EffectKind::Cancel), 0);
    assert_once(&stack);
    // The product list: the cron job parses and the refresh reaches Mobily.
    let scheduler = handover_workflows::mobily_esim::schedules(
        handover_engine::schedule::Scheduler::new(&stack.engine, "test"),
        &stack.providers,
    )
    .expect("the refresh job's cron parses");
    assert!(format!("{scheduler:?}").contains("mobily-products-refresh"));
    let client = stack.providers.mobily.clone().unwrap();
    let sellable = handover_workflows::mobily_esim::catalog::refresh(&client)
        .await
        .unwrap();
    assert_eq!(sellable, 3);
    // The postpaid customer paid the package and the deposit.
    let postpaid = stack
        .sims
        .mobily
        .payment(&payment_key(started[1].0))
        .unwrap();
    assert_eq!(postpaid.amount_halalas, 14_900 + 50_000);
    stack.stop().await;
}

async fn invalid_inputs_are_refused_at_start(db: TestDb) {
    let stack = stack(&db).await;
    let good = input("1012345678", "ESIM-PRE-30", "0551234567", None);
    let mut cases: Vec<(EsimCheckoutInput, &str)> = Vec::new();
    let mut bad = good.clone();
    bad.national_id = "3012345678".into();
    cases.push((bad, "national_id"));
    let mut bad = good.clone();
    bad.contact_msisdn = "12ab".into();
    cases.push((bad, "contact_msisdn"));
    let mut bad = good.clone();
    bad.product = "ESIM PRE".into();
    cases.push((bad, "product"));
    let mut bad = good.clone();
    bad.email = "not-an-email".into();
    cases.push((bad, "email"));
    let mut bad = good.clone();
    bad.language = Some("fr".into());
    cases.push((bad, "language"));
    let mut bad = good.clone();
    bad.port_in = Some(handover_workflows::mobily_esim::PortIn {
        msisdn: "0112345678".into(),
        donor_operator: "STC".into(),
    });
    cases.push((bad, "port_in.msisdn"));
    for (input, field) in cases {
        let err = stack
            .engine
            .start::<EsimCheckout>(input)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(field), "{field}: {err}");
        assert!(
            !err.contains("3012345678"),
            "the error echoes the id: {err}"
        );
    }
    assert!(
        stack.sims.mobily.requests().all().is_empty(),
        "nothing was sent"
    );
    stack.stop().await;
}

async fn business_refusals_end_with_the_providers_reason(db: TestDb) {
    let stack = stack(&db).await;
    let prepaid = |i: u64, id: &str| input(id, "ESIM-PRE-30", &contact_for(i), None);
    let cases = [
        (
            prepaid(1, NOT_ELIGIBLE_ID),
            Customer::happy(&contact_for(1)),
            "not eligible",
        ),
        (
            input(DUES_ID, "ESIM-POST-149", &contact_for(2), None),
            Customer::happy(&contact_for(2)),
            "overdue bills of SAR 123.45",
        ),
        (
            prepaid(3, "1000000003"),
            Customer {
                wrong_otps: 10,
                ..Customer::happy(&contact_for(3))
            },
            "wrong one-time code entered 3 times",
        ),
        (
            prepaid(4, "1000000004"),
            Customer {
                nafath: Answer::No,
                ..Customer::happy(&contact_for(4))
            },
            "rejected the Nafath",
        ),
        (
            input("1000000005", "ESIM-POST-149", &contact_for(5), None),
            Customer {
                deposit: Answer::No,
                ..Customer::happy(&contact_for(5))
            },
            "declined the security deposit of SAR 500.00",
        ),
    ];
    let mut started = Vec::new();
    for (input, customer, _) in &cases {
        let id = stack
            .engine
            .start::<EsimCheckout>(input.clone())
            .await
            .unwrap();
        started.push((id, customer.clone()));
    }
    let done = drive(&stack, &started).await;
    for (record, (_, _, reason)) in done.iter().zip(&cases) {
        assert_eq!(record.status, Status::Failed, "{reason}");
        let failure = record.failure.clone().unwrap_or_default();
        assert!(failure.contains(reason), "{failure}");
    }
    // Refused before any order: nothing to compensate, nothing paid.
    assert_eq!(count(&stack, EffectKind::Order), 0);
    assert_eq!(count(&stack, EffectKind::Payment), 0);
    stack.stop().await;
}

async fn fault_classes_are_retried_and_reconciled(db: TestDb) {
    let stack = stack(&db).await;
    stack
        .sims
        .mobily
        .set_behaviour(MobilyBehaviour::default().with_qr(QrPolicy::AfterInquiries(3)));
    let faults = stack.sims.mobily.faults();
    faults.script_next(
        endpoints::AVAILABILITY_CHECK,
        Fault::RateLimited {
            retry_after_secs: Some(1),
        },
    );
    faults.script_next(endpoints::TCC_ELIGIBILITY, Fault::InternalError);
    faults.script_next(
        endpoints::RESERVATION,
        Fault::GatewayTimeout { after_effect: true },
    );
    faults.script_next(
        endpoints::TCC_REGISTER,
        Fault::DropConnection { after_effect: true },
    );
    faults.script_next(
        endpoints::POST_PRODUCT_ORDER,
        Fault::SlowAnswer { delay_ms: 2_500 },
    );
    faults.script_next(
        endpoints::CREATE_PAYMENT,
        Fault::Unavailable {
            retry_after_secs: Some(1),
        },
    );
    faults.script_next(
        endpoints::CREATE_PAYMENT,
        Fault::GatewayTimeout { after_effect: true },
    );
    faults.script_next(
        endpoints::CONFIRM_PAYMENT,
        Fault::GatewayTimeout { after_effect: true },
    );
    let (_, input, customer, _) = scenario(0);
    let done = run(&stack, input, customer).await;
    assert_eq!(
        done.status,
        Status::Completed,
        "{:?} {:?}",
        done.failure,
        done.attention
    );
    for kind in [
        EffectKind::Reservation,
        EffectKind::Registration,
        EffectKind::Order,
        EffectKind::Payment,
    ] {
        assert_eq!(count(&stack, kind), 1, "{kind:?}");
    }
    assert_once(&stack);
    let history = history_kinds(&stack, done.id).await;
    let failures = history
        .iter()
        .filter(|(k, _)| *k == HistoryKind::StepFailed)
        .count();
    assert_eq!(failures, 8, "one failed attempt per injected fault");
    let text = serde_json::to_string(&history.iter().map(|(_, d)| d).collect::<Vec<_>>()).unwrap();
    assert!(text.contains("reconciled: order"), "post-order reconciled");
    assert!(
        text.contains("reconciled: payment"),
        "create-payment reconciled"
    );
    // Pending answers: the QR code was not ready three times.
    assert!(
        stack
            .sims
            .mobily
            .requests()
            .count_to(handover_adapters::mobily::paths::QR_GET)
            >= 4
    );
    stack.stop().await;
}

async fn duplicated_and_early_nafath_webhooks_take_effect_once(db: TestDb) {
    let stack = stack(&db).await;
    // Nafath approves before the initiate answer leaves; the webhook (the
    // first callback) is delivered three times, before that answer.
    stack.sims.mobily.set_behaviour(
        MobilyBehaviour::default()
            .with_qr(QrPolicy::AfterInquiries(0))
            .with_nafath(NafathPolicy::Approve {
                after: Duration::ZERO,
            }),
    );
    stack
        .sims
        .mobily
        .callbacks()
        .set_plan(DeliveryPlan::new(3).script(0, Delivery::normal().before_answer().duplicated(3)));
    let (_, input, customer, _) = scenario(1);
    let done = run(
        &stack,
        input,
        Customer {
            nafath: Answer::Ignore,
            ..customer
        },
    )
    .await;
    assert_eq!(done.status, Status::Completed, "{:?}", done.failure);
    let signals = stack.engine.store().signals_for(done.id, 50).await.unwrap();
    let named = |n: &str| signals.iter().filter(|s| s.name.as_str() == n).count();
    // Stored once, and adopted by the journey when the initiate step
    // registered its correlation key, even when the webhook was stored while
    // that step was committing (the store serializes the two per key).
    let unmatched = stack.engine.store().unmatched(10).await.unwrap();
    assert!(
        unmatched.iter().all(|s| s.name.as_str() != "mobily.nafath"),
        "the early webhook was left unmatched: {unmatched:?}"
    );
    assert_eq!(named("mobily.nafath"), 1, "duplicate webhooks ignored");
    assert_eq!(named("mobily.3ds-return"), 1);
    assert!(stack.engine.metrics().signals_duplicate.get() >= 2);
    assert_once(&stack);
    stack.stop().await;
}

async fn a_late_webhook_falls_back_to_polling(db: TestDb) {
    let stack = stack(&db).await;
    stack.sims.mobily.set_behaviour(
        MobilyBehaviour::default()
            .with_qr(QrPolicy::AfterInquiries(0))
            .with_nafath(NafathPolicy::ApproveLateWebhook {
                after: Duration::from_millis(700),
                webhook_delay: Duration::from_secs(120),
            }),
    );
    let (_, input, customer, _) = scenario(2);
    let done = run(
        &stack,
        input,
        Customer {
            nafath: Answer::Ignore,
            ..customer
        },
    )
    .await;
    assert_eq!(done.status, Status::Completed, "{:?}", done.failure);
    let polls = stack
        .sims
        .mobily
        .requests()
        .count_to(handover_adapters::mobily::paths::NAFATH_TOKENINFO);
    assert!(polls >= 2, "tokeninfo polled {polls} times");
    stack.stop().await;
}

async fn every_human_wait_times_out(db: TestDb) {
    let stack = stack(&db).await;
    let short = |mut input: EsimCheckoutInput| {
        input.timeouts.deposit_ms = 800;
        input.timeouts.otp_ms = 800;
        input.timeouts.nafath_ms = 800;
        input.timeouts.nafath_poll_ms = 200;
        input.timeouts.three_ds_ms = 800;
        input
    };
    let happy = |i| Customer::happy(&contact_for(i));
    let cases = [
        (
            input("1000000011", "ESIM-POST-149", &contact_for(11), None),
            Customer {
                deposit: Answer::Ignore,
                ..happy(11)
            },
            "did not accept the security deposit",
        ),
        (
            input("1000000012", "ESIM-PRE-30", &contact_for(12), None),
            Customer {
                otp: Answer::Ignore,
                ..happy(12)
            },
            "did not enter the one-time code",
        ),
        (
            input("1000000013", "ESIM-PRE-30", &contact_for(13), None),
            Customer {
                nafath: Answer::Ignore,
                ..happy(13)
            },
            "Nafath: no answer",
        ),
        (
            input("1000000014", "ESIM-PRE-30", &contact_for(14), None),
            Customer {
                three_ds: Answer::Ignore,
                ..happy(14)
            },
            "did not come back from the 3-D Secure page",
        ),
    ];
    let mut started = Vec::new();
    for (input, customer, _) in &cases {
        let id = stack
            .engine
            .start::<EsimCheckout>(short(input.clone()))
            .await
            .unwrap();
        started.push((id, customer.clone()));
    }
    let done = drive(&stack, &started).await;
    for (record, (_, _, reason)) in done.iter().zip(&cases) {
        assert_eq!(
            record.status,
            Status::Failed,
            "{reason}: {:?}",
            record.attention
        );
        let failure = record.failure.clone().unwrap_or_default();
        assert!(failure.contains(reason), "{failure}");
    }
    // The abandoned 3-D Secure: the order is cancelled, nothing was authorised to void.
    assert_eq!(count(&stack, EffectKind::Order), 1);
    assert_eq!(count(&stack, EffectKind::Cancel), 1);
    assert_eq!(count(&stack, EffectKind::Payment), 0);
    assert_eq!(count(&stack, EffectKind::Void), 0);
    assert_once(&stack);
    stack.stop().await;
}

async fn a_failure_after_payment_voids_then_cancels(db: TestDb) {
    let stack = stack(&db).await;
    // Scenario 18: paid, then the QR code is not ready by its deadline.
    let (name, input, customer, _) = scenario(18);
    assert_eq!(name, "qr-late-compensated");
    let done = run(&stack, input, customer).await;
    assert_eq!(done.status, Status::Failed, "{:?}", done.attention);
    assert!(
        done.failure
            .as_deref()
            .is_some_and(|f| f.contains("QR code was not ready")),
        "{:?}",
        done.failure
    );
    assert_eq!(count(&stack, EffectKind::Payment), 1);
    assert_eq!(count(&stack, EffectKind::Void), 1);
    assert_eq!(count(&stack, EffectKind::Cancel), 1);
    assert_once(&stack);
    let payment = stack.sims.mobily.payment(&payment_key(done.id)).unwrap();
    assert_eq!(payment.status, PaymentStatus::Voided);
    let order = stack.sims.mobily.order(&payment.order_id).unwrap();
    assert_eq!(
        order.status,
        handover_adapters::mobily::OrderState::Cancelled
    );
    // Newest first: the void (pushed at payment), then the cancellation.
    let completed: Vec<String> = history_kinds(&stack, done.id)
        .await
        .into_iter()
        .filter(|(k, _)| *k == HistoryKind::CompensationCompleted)
        .map(|(_, d)| d["compensation"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(completed, ["VoidPayment", "CancelOrder"]);
    stack.stop().await;
}

async fn the_ingress_refuses_bad_callbacks_with_nothing_written(db: TestDb) {
    let stack = stack(&db).await;
    // A connection per request: the 413 closes its connection unread.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let hook = stack.ingress_url.join(NAFATH_PATH).unwrap();
    let back = stack.ingress_url.join(RETURN_PATH).unwrap();
    let config = stack.sims.mobily.client_config();
    let user = config.nafath_webhook_username.clone();
    let password = secrecy::ExposeSecret::expose_secret(&config.nafath_webhook_password).to_owned();
    let body = serde_json::json!({
        "transactionId": "tx-1", "requestId": "nobody-knows-this", "status": "APPROVED"
    });
    let post = |auth: Option<(&str, &str)>, body: Vec<u8>| {
        let mut request = http
            .post(hook.clone())
            .header("content-type", "application/json")
            .body(body);
        if let Some((u, p)) = auth {
            request = request.basic_auth(u, Some(p));
        }
        request.send()
    };
    let json = serde_json::to_vec(&body).unwrap();
    // 401: missing or wrong credentials.
    assert_eq!(post(None, json.clone()).await.unwrap().status(), 401);
    assert_eq!(
        post(Some((&user, "wrong-password-123456")), json.clone())
            .await
            .unwrap()
            .status(),
        401
    );
    // 400: malformed, non-final, unknown field.
    for bad in [
        b"not json".to_vec(),
        br#"{"transactionId":"tx-1","requestId":"r-1","status":"WAITING"}"#.to_vec(),
        br#"{"transactionId":"tx-1","requestId":"r-1","status":"APPROVED","nationalId":"1012345678"}"#.to_vec(),
    ] {
        assert_eq!(
            post(Some((&user, &password)), bad).await.unwrap().status(),
            400
        );
    }
    // 413: over the 8 KiB limit, before parsing.
    assert_eq!(
        post(Some((&user, &password)), vec![b' '; 9 * 1024])
            .await
            .unwrap()
            .status(),
        413
    );
    // 400: a malformed browser return.
    assert_eq!(
        http.get(format!("{back}?paymentId=p&result=maybe"))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    let unmatched = stack.engine.store().unmatched(10).await.unwrap();
    assert!(
        unmatched.is_empty(),
        "nothing written for refused callbacks"
    );

    // A well-formed webhook for no journey: stored unmatched and reported; a
    // duplicate changes nothing.
    for _ in 0..2 {
        let answer = post(Some((&user, &password)), json.clone()).await.unwrap();
        assert_eq!(answer.status(), 200);
    }
    let ok_return = format!(
        "{back}?paymentId=pay-1&paymentTransId={}&result=success",
        MobilyKey::new("no-such-payment-key").unwrap()
    );
    assert_eq!(http.get(&ok_return).send().await.unwrap().status(), 200);
    let unmatched = stack.engine.store().unmatched(10).await.unwrap();
    assert_eq!(
        unmatched.len(),
        2,
        "one webhook and one return, stored once each"
    );
    stack.stop().await;
}

async fn a_crash_at_every_step_ends_the_same(db: TestDb) {
    // One journey per crash point; journey k crashes the worker after its
    // step k ran and before it was committed (the outbound call is made,
    // the engine does not know), a few others after the commit.
    let mut targets: Vec<(FaultPoint, i64)> =
        (0..22).map(|seq| (FaultPoint::AfterStep, seq)).collect();
    for seq in [14, 15] {
        targets.push((FaultPoint::AfterCommit, seq));
        targets.push((FaultPoint::BeforeStep, seq));
    }
    // Each journey's crash point, and whether it fired.
    type Plan = HashMap<JourneyId, (FaultPoint, i64, bool)>;
    let plan: Arc<Mutex<Plan>> = Arc::new(Mutex::new(HashMap::new()));
    let fired = Arc::new(AtomicUsize::new(0));
    let (hook_plan, hook_fired) = (plan.clone(), fired.clone());
    let hook: handover_engine::FaultHook = Arc::new(move |point, id, seq| {
        let mut plan = hook_plan.lock().unwrap();
        match plan.get_mut(&id) {
            Some((p, s, done)) if *p == point && *s == seq && !*done => {
                *done = true;
                hook_fired.fetch_add(1, Ordering::SeqCst);
                true
            }
            _ => false,
        }
    });
    let mut config = config(&db);
    config.fault_hook = Some(hook);
    config.worker = WorkerConfig {
        lease_ttl: Duration::from_millis(1_000),
        heartbeat_every: Duration::from_millis(250),
        ..support::fast_worker()
    };
    let mut stack = Box::pin(support::stack(config)).await;
    prepare(&stack);
    let mut cases = Vec::new();
    for (n, (point, seq)) in targets.iter().enumerate() {
        let id = JourneyId::new();
        plan.lock().unwrap().insert(id, (*point, *seq, false));
        // Happy scenarios only (prepaid, postpaid, port-in).
        let i = [0u64, 1, 10, 12][n % 4] + 20 * n as u64;
        let (_, input, customer, _) = scenario(i);
        stack
            .engine
            .start_with::<EsimCheckout>(input, StartOptions::with_id(id))
            .await
            .unwrap();
        cases.push((id, customer));
    }
    let mut restarts = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        if fired.load(Ordering::SeqCst) > restarts {
            stack.crash_and_restart().await.unwrap();
            restarts += 1;
            continue;
        }
        let mut settled_count = 0;
        for (id, customer) in &cases {
            let Ok(record) = stack.engine.journey(*id).await else {
                continue;
            };
            if settled(&record) {
                settled_count += 1;
            } else {
                let _ = play(&stack, *id, customer, &record).await;
            }
        }
        if settled_count == cases.len() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "journeys did not settle"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(restarts >= 18, "only {restarts} crash points were reached");
    for (id, _) in &cases {
        let record = stack.engine.journey(*id).await.unwrap();
        let (point, seq, _) = plan.lock().unwrap()[id];
        assert_eq!(
            record.status,
            Status::Completed,
            "{point:?} at {seq}: {:?} {:?}",
            record.failure,
            record.attention
        );
    }
    assert_once(&stack);
    assert_eq!(count(&stack, EffectKind::Order), cases.len());
    assert_eq!(count(&stack, EffectKind::Payment), cases.len());
    assert_eq!(count(&stack, EffectKind::Registration), cases.len());
    assert_eq!(count(&stack, EffectKind::Void), 0);
    assert_eq!(count(&stack, EffectKind::Cancel), 0);
    stack.stop().await;
}

async fn an_expired_code_is_sent_again(db: TestDb) {
    let stack = stack(&db).await;
    let (_, input, customer, _) = scenario(3);
    let contact = handover_adapters::mobily::Msisdn::parse(&customer.contact).unwrap();
    let id = stack.engine.start::<EsimCheckout>(input).await.unwrap();
    // The customer is slow: the first code expires before it is typed.
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let record = stack.engine.journey(id).await.unwrap();
        if record.status == Status::Waiting && record.step_name == "await-otp" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never asked for the code"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stack.sims.mobily.expire_otp(&contact).unwrap();
    let done = drive(&stack, &[(id, customer)]).await.remove(0);
    assert_eq!(done.status, Status::Completed, "{:?}", done.failure);
    let requests = stack.sims.mobily.requests();
    use handover_adapters::mobily::paths;
    assert_eq!(requests.count_to(paths::OTP_GENERATION), 1);
    assert_eq!(requests.count_to(paths::OTP_REGENERATION), 1);
    assert_eq!(requests.count_to(paths::OTP_VALIDATE), 2);
    stack.stop().await;
}

both!(
    happy_paths_complete,
    an_expired_code_is_sent_again,
    invalid_inputs_are_refused_at_start,
    business_refusals_end_with_the_providers_reason,
    fault_classes_are_retried_and_reconciled,
    duplicated_and_early_nafath_webhooks_take_effect_once,
    a_late_webhook_falls_back_to_polling,
    every_human_wait_times_out,
    a_failure_after_payment_voids_then_cancels,
    the_ingress_refuses_bad_callbacks_with_nothing_written,
    a_crash_at_every_step_ends_the_same,
);
