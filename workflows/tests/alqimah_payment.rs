//! J4 end to end: the Al-Qimah payment journey against its simulator over
//! real HTTP, with the webhooks coming in through the ingress.

mod support;

use std::sync::Arc;
use std::time::Duration;

use handover_adapters::ProvidersConfig;
use handover_adapters::sim::alqimah::{
    DEFAULT_ACCOUNT_NUMBER, Final, LOGIN_ENDPOINT, PAYMENT_ENDPOINT, PaymentScript, SettleAfter,
    messages, refusal,
};
use handover_adapters::sim::{AlQimahBehaviour, Delivery, DeliveryPlan, EffectKind, Fault};
use handover_engine::store::ListFilter;
use handover_engine::{FaultPoint, JourneyId, Status};
use handover_workflows::alqimah_payment::{
    AlQimahPayment, AlQimahPaymentInput, AlQimahPaymentOutput, SettledBy, UNVERIFIED_SIGNAL,
    WEBHOOK_SIGNAL,
};
use handover_workflows::ingress::alqimah::WEBHOOK_PATH;
use handover_workflows::stack::{Stack, StackConfig};
use support::TestDb;

const SETTLE: Duration = Duration::from_secs(30);
const MOBILE: &str = "777123456";

fn top_up(amount: u64) -> AlQimahPaymentInput {
    AlQimahPaymentInput {
        network: 1,
        service: 103,
        mobile_number: Some(MOBILE.into()),
        amount: Some(amount),
        first_recheck_ms: Some(50),
        max_recheck_ms: Some(200),
        settle_within_ms: Some(20_000),
        ..Default::default()
    }
}

/// A top-up whose re-checks are far apart: only a webhook settles it quickly.
fn top_up_waiting_for_webhook() -> AlQimahPaymentInput {
    AlQimahPaymentInput {
        first_recheck_ms: Some(60_000),
        max_recheck_ms: Some(60_000),
        ..top_up(100)
    }
}

fn with_client_timeout(config: &mut StackConfig, ms: u64) {
    config.tune_providers = Some(Arc::new(move |c: &mut ProvidersConfig| {
        if let Some(a) = c.alqimah.as_mut() {
            a.http.timeout_ms = ms;
        }
    }));
}

async fn start(stack: &Stack, input: AlQimahPaymentInput) -> JourneyId {
    stack
        .engine
        .start::<AlQimahPayment>(input)
        .await
        .expect("journey starts")
}

async fn output(stack: &Stack, id: JourneyId) -> AlQimahPaymentOutput {
    stack.engine.output(id).await.unwrap().unwrap()
}

/// No payment was ever applied twice, and `txn` was paid exactly once.
fn assert_paid_once(stack: &Stack, txn: u64) {
    let ledger = stack.sims.alqimah.ledger();
    assert!(ledger.duplicates().is_empty(), "{:?}", ledger.duplicates());
    assert_eq!(ledger.count(EffectKind::Payment, &txn.to_string()), 1);
}

async fn completed(stack: &Stack, id: JourneyId) -> AlQimahPaymentOutput {
    let done = support::settled(stack, id, SETTLE).await;
    assert_eq!(
        done.status,
        Status::Completed,
        "{:?} {:?} {:?}",
        done.failure,
        done.attention,
        done.last_error
    );
    output(stack, id).await
}

async fn failed(stack: &Stack, id: JourneyId) -> String {
    let done = support::settled(stack, id, SETTLE).await;
    assert_eq!(done.status, Status::Failed, "{:?}", done.attention);
    done.failure.unwrap_or_default()
}

/// Waits until the journey parks waiting for its settlement.
async fn until_pending(stack: &Stack, id: JourneyId) {
    stack
        .engine
        .wait_for(id, SETTLE, |r| {
            r.status == Status::Waiting && r.step_name == "await-settlement"
        })
        .await
        .expect("the payment is pending");
}

fn status_queries(stack: &Stack) -> usize {
    stack
        .sims
        .alqimah
        .requests()
        .all()
        .iter()
        .filter(|r| {
            r.json()
                .is_some_and(|b| b["NetworkNumber"] == 0 && b["ServiceNumber"] == 2)
        })
        .count()
}

async fn webhook_get(stack: &Stack, query: &str) -> reqwest::StatusCode {
    let url = stack.ingress_url.join(WEBHOOK_PATH).unwrap();
    reqwest::Client::new()
        .get(format!("{url}?{query}"))
        .send()
        .await
        .unwrap()
        .status()
}

async fn top_up_offer_and_game_card_complete(db: TestDb) {
    let stack = Box::pin(support::stack(support::config(&db))).await;
    let id = start(&stack, top_up(100)).await;
    let out = completed(&stack, id).await;
    assert_eq!(out.settled_by, SettledBy::PaymentAnswer);
    assert_eq!(out.price.as_deref(), Some("100"));
    assert!(out.reference_id.is_some());
    assert_paid_once(&stack, out.transaction_id);
    assert_eq!(
        stack.sims.alqimah.balance(DEFAULT_ACCOUNT_NUMBER),
        Some(1_000_000 - 100)
    );
    // The payment carried our webhook URL and a code; the code is not in
    // anything people see.
    let sent = stack.sims.alqimah.payment_requests();
    assert_eq!(sent.len(), 1);
    let body = sent[0].json().unwrap();
    assert_eq!(body["TransactionID"], out.transaction_id);
    assert!(body["WebHookURL"].as_str().unwrap().ends_with(WEBHOOK_PATH));
    let code = body["WebHookCode"].as_str().unwrap().to_owned();
    assert!(code.len() >= 16);
    let view = serde_json::to_string(&stack.engine.show(id).await.unwrap()).unwrap();
    // History details (the raw entries' states are what `show` redacts).
    let history: String = stack
        .engine
        .history(id, 100)
        .await
        .unwrap()
        .iter()
        .map(|h| h.detail.to_string())
        .collect();
    for shown in [&view, &history] {
        assert!(!shown.contains(&code), "the WebHookCode leaked");
        assert!(!shown.contains(MOBILE), "the full number leaked");
    }
    // Searchable by the number (shown masked) and by the TransactionID.
    for key in [MOBILE.to_owned(), out.transaction_id.to_string()] {
        let found = stack
            .engine
            .list(&ListFilter {
                key: Some(key),
                limit: 5,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].business_key.as_deref(), Some("777****56"));
    }
    // The immediate webhook came in verified and took effect nowhere twice.
    let deadline = tokio::time::Instant::now() + SETTLE;
    while stack.sims.alqimah.callbacks().sent().is_empty() {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        stack
            .sims
            .alqimah
            .callbacks()
            .sent()
            .iter()
            .all(|s| s.outcome == Ok(200))
    );

    let offer = AlQimahPaymentInput {
        network: 2,
        service: 202,
        mobile_number: Some("712345678".into()),
        offer_code: Some("PREWhatsApp".into()),
        ..Default::default()
    };
    let id = start(&stack, offer).await;
    let out = completed(&stack, id).await;
    assert_eq!(out.price.as_deref(), Some("500"));
    assert_paid_once(&stack, out.transaction_id);

    let game = AlQimahPaymentInput {
        network: 8,
        service: 801,
        link_code: Some("pubg_60".into()),
        fields: [("PlayerID".to_owned(), "51234567".to_owned())].into(),
        ..Default::default()
    };
    let id = start(&stack, game).await;
    let out = completed(&stack, id).await;
    assert_eq!(out.price.as_deref(), Some("495"));
    assert_paid_once(&stack, out.transaction_id);
    stack.stop().await;
}

async fn invalid_inputs_are_refused_at_start(db: TestDb) {
    let stack = Box::pin(support::stack(support::config(&db))).await;
    let cases: Vec<(AlQimahPaymentInput, &str)> = vec![
        (
            AlQimahPaymentInput {
                amount: Some(0),
                ..top_up(1)
            },
            "positive",
        ),
        (
            AlQimahPaymentInput {
                offer_code: Some("PREWhatsApp".into()),
                ..top_up(1)
            },
            "exactly one",
        ),
        (
            AlQimahPaymentInput {
                amount: None,
                ..top_up(1)
            },
            "exactly one",
        ),
        (
            AlQimahPaymentInput {
                mobile_number: None,
                ..top_up(1)
            },
            "mobile_number",
        ),
        (
            AlQimahPaymentInput {
                mobile_number: Some("77-12ab".into()),
                ..top_up(1)
            },
            "MobileNumber",
        ),
        (
            AlQimahPaymentInput {
                network: 0,
                ..top_up(1)
            },
            "NetworkNumber",
        ),
    ];
    for (input, expected) in cases {
        let err = stack
            .engine
            .start::<AlQimahPayment>(input)
            .await
            .unwrap_err();
        assert!(err.to_string().contains(expected), "{expected}: {err}");
    }
    assert!(stack.sims.alqimah.requests().all().is_empty());
    stack.stop().await;
}

async fn business_refusals_fail_with_a_readable_reason(db: TestDb) {
    let stack = Box::pin(support::stack(support::config(&db))).await;
    let sim = &stack.sims.alqimah;

    sim.set_balance(DEFAULT_ACCOUNT_NUMBER, 50).unwrap();
    let reason = failed(&stack, start(&stack, top_up(100)).await).await;
    assert!(reason.contains("balance does not cover"), "{reason}");
    sim.set_balance(DEFAULT_ACCOUNT_NUMBER, 1_000_000).unwrap();

    // A number of the right length that is not a Yemeni mobile.
    let bad_number = AlQimahPaymentInput {
        mobile_number: Some("123456789".into()),
        ..top_up(100)
    };
    let reason = failed(&stack, start(&stack, bad_number).await).await;
    assert!(reason.contains("mobile number is not valid"), "{reason}");

    let unknown_offer = AlQimahPaymentInput {
        network: 2,
        service: 202,
        mobile_number: Some(MOBILE.into()),
        offer_code: Some("NoSuchOffer".into()),
        ..Default::default()
    };
    let reason = failed(&stack, start(&stack, unknown_offer).await).await;
    assert!(reason.contains("Offer code not found"), "{reason}");

    sim.script_next_payment(PaymentScript::Immediate(Final::Failed));
    let reason = failed(&stack, start(&stack, top_up(100)).await).await;
    assert!(reason.contains("reports the payment failed"), "{reason}");

    // The token expires and the new login is refused: terminal, readable.
    sim.expire_tokens();
    sim.faults()
        .script_next(LOGIN_ENDPOINT, refusal(messages::LOGIN_FAILED));
    let reason = failed(&stack, start(&stack, top_up(100)).await).await;
    assert!(reason.contains("refused our login"), "{reason}");

    assert!(sim.ledger().entries_of(EffectKind::Payment).is_empty());
    assert_eq!(sim.balance(DEFAULT_ACCOUNT_NUMBER), Some(1_000_000));
    stack.stop().await;
}

async fn faults_on_the_payment_never_pay_twice(db: TestDb) {
    let mut config = support::config(&db);
    with_client_timeout(&mut config, 400);
    let stack = Box::pin(support::stack(config)).await;
    let faults = stack.sims.alqimah.faults();

    // 429, 500, 503: nothing happened; retried with backoff, then paid once.
    faults.script_next(
        PAYMENT_ENDPOINT,
        Fault::RateLimited {
            retry_after_secs: Some(1),
        },
    );
    faults.script_next(PAYMENT_ENDPOINT, Fault::InternalError);
    faults.script_next(
        PAYMENT_ENDPOINT,
        Fault::Unavailable {
            retry_after_secs: None,
        },
    );
    let id = start(&stack, top_up(100)).await;
    let out = completed(&stack, id).await;
    assert_paid_once(&stack, out.transaction_id);
    assert_eq!(stack.sims.alqimah.payment_requests().len(), 4);

    // 504 after the effect: the retry asks the status and does not re-send.
    faults.script_next(
        PAYMENT_ENDPOINT,
        Fault::GatewayTimeout { after_effect: true },
    );
    let id = start(&stack, top_up(100)).await;
    let out = completed(&stack, id).await;
    assert_eq!(out.settled_by, SettledBy::StatusQuery);
    assert_paid_once(&stack, out.transaction_id);
    assert_eq!(stack.sims.alqimah.payment_requests().len(), 5);

    // A slow answer past the client's timeout: the same.
    faults.script_next(PAYMENT_ENDPOINT, Fault::SlowAnswer { delay_ms: 1_200 });
    let id = start(&stack, top_up(100)).await;
    let out = completed(&stack, id).await;
    assert_eq!(out.settled_by, SettledBy::StatusQuery);
    assert_paid_once(&stack, out.transaction_id);
    assert_eq!(stack.sims.alqimah.payment_requests().len(), 6);

    // A dropped connection after the effect, then a duplicate refusal on a
    // blind re-send is impossible: the retry reconciles.
    faults.script_next(
        PAYMENT_ENDPOINT,
        Fault::DropConnection { after_effect: true },
    );
    let id = start(&stack, top_up(100)).await;
    let out = completed(&stack, id).await;
    assert_paid_once(&stack, out.transaction_id);
    assert_eq!(stack.sims.alqimah.payment_requests().len(), 7);
    stack.stop().await;
}

async fn five_rate_limits_ask_a_person(db: TestDb) {
    let stack = Box::pin(support::stack(support::config(&db))).await;
    for _ in 0..5 {
        stack.sims.alqimah.faults().script_next(
            PAYMENT_ENDPOINT,
            Fault::RateLimited {
                retry_after_secs: None,
            },
        );
    }
    let id = start(&stack, top_up(100)).await;
    let done = support::settled(&stack, id, Duration::from_secs(45)).await;
    assert_eq!(done.status, Status::NeedsAttention);
    assert!(
        done.attention
            .as_deref()
            .unwrap_or_default()
            .contains("rate limited"),
        "{:?}",
        done.attention
    );
    assert!(
        stack
            .sims
            .alqimah
            .ledger()
            .entries_of(EffectKind::Payment)
            .is_empty()
    );
    stack.stop().await;
}

async fn pending_is_settled_by_the_status_query(db: TestDb) {
    let stack = Box::pin(support::stack(support::config(&db))).await;
    let sim = &stack.sims.alqimah;
    // Pending three times, then succeeded; its webhook is lost.
    sim.callbacks()
        .set_plan(DeliveryPlan::new(1).script(0, Delivery::normal().lost()));
    sim.script_next_payment(PaymentScript::Pending {
        after: SettleAfter::Polls(3),
        to: Final::Succeeded,
    });
    let id = start(&stack, top_up(100)).await;
    let out = completed(&stack, id).await;
    assert_eq!(out.settled_by, SettledBy::StatusQuery);
    assert_eq!(out.rechecks, 4);
    assert_eq!(status_queries(&stack), 4);
    assert_paid_once(&stack, out.transaction_id);

    // Pending, then failed: the journey fails; Al-Qimah refunded the agent.
    sim.script_next_payment(PaymentScript::Pending {
        after: SettleAfter::Polls(1),
        to: Final::Failed,
    });
    let id = start(&stack, top_up(300)).await;
    let reason = failed(&stack, id).await;
    assert!(reason.contains("reports the payment failed"), "{reason}");
    assert_eq!(sim.ledger().entries_of(EffectKind::Refund).len(), 1);
    assert_eq!(sim.balance(DEFAULT_ACCOUNT_NUMBER), Some(1_000_000 - 100));
    stack.stop().await;
}

async fn pending_is_settled_by_the_webhook_at_once(db: TestDb) {
    let stack = Box::pin(support::stack(support::config(&db))).await;
    let sim = &stack.sims.alqimah;
    sim.script_next_payment(PaymentScript::Pending {
        after: SettleAfter::Manual,
        to: Final::Succeeded,
    });
    let id = start(&stack, top_up_waiting_for_webhook()).await;
    until_pending(&stack, id).await;
    let txn = sim.operations()[0].transaction_id;
    let settled_at = tokio::time::Instant::now();
    sim.settle(txn, Final::Succeeded).await.unwrap();
    let out = completed(&stack, id).await;
    assert!(settled_at.elapsed() < Duration::from_secs(5));
    assert_eq!(out.settled_by, SettledBy::Webhook);
    assert_eq!(out.transaction_id, txn);
    assert_eq!(status_queries(&stack), 0, "the webhook woke the wait");
    assert_paid_once(&stack, txn);

    // A failed settlement by webhook fails the journey.
    sim.script_next_payment(PaymentScript::Pending {
        after: SettleAfter::Manual,
        to: Final::Failed,
    });
    let id = start(&stack, top_up_waiting_for_webhook()).await;
    until_pending(&stack, id).await;
    let txn = sim.operations()[1].transaction_id;
    sim.settle(txn, Final::Failed).await.unwrap();
    let reason = failed(&stack, id).await;
    assert!(
        reason.contains("webhook reports the payment failed"),
        "{reason}"
    );
    stack.stop().await;
}

async fn duplicated_and_early_webhooks_take_effect_once(db: TestDb) {
    let stack = Box::pin(support::stack(support::config(&db))).await;
    let sim = &stack.sims.alqimah;
    // Settles 1 ms after the payment (before the journey parks), and the
    // webhook comes three times.
    sim.callbacks()
        .set_plan(DeliveryPlan::new(3).script(0, Delivery::normal().duplicated(3)));
    sim.script_next_payment(PaymentScript::Pending {
        after: SettleAfter::Delay(Duration::from_millis(1)),
        to: Final::Succeeded,
    });
    let id = start(&stack, top_up_waiting_for_webhook()).await;
    let out = completed(&stack, id).await;
    assert_eq!(out.settled_by, SettledBy::Webhook);
    let deadline = tokio::time::Instant::now() + SETTLE;
    while sim.callbacks().sent().len() < 3 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let signals = stack.engine.store().signals_for(id, 10).await.unwrap();
    assert_eq!(
        signals
            .iter()
            .filter(|s| s.name.as_str() == WEBHOOK_SIGNAL)
            .count(),
        1,
        "duplicates were ignored"
    );
    assert!(stack.engine.metrics().signals_duplicate.get() >= 2);
    assert_paid_once(&stack, out.transaction_id);

    // A webhook that arrives before the payment's answer: the journey still
    // settles from it (or from the answer), once.
    sim.callbacks()
        .set_plan(DeliveryPlan::new(4).script(0, Delivery::normal().before_answer()));
    let id = start(&stack, top_up(100)).await;
    let out = completed(&stack, id).await;
    assert_paid_once(&stack, out.transaction_id);
    stack.stop().await;
}

async fn forged_malformed_and_unknown_webhooks(db: TestDb) {
    let stack = Box::pin(support::stack(support::config(&db))).await;
    let sim = &stack.sims.alqimah;
    // Al-Qimah's (simulated) webhook with a wrong code: refused, nothing
    // written, the journey settles by its own re-check.
    sim.set_behaviour(AlQimahBehaviour::default().with_wrong_webhook_code());
    sim.script_next_payment(PaymentScript::Pending {
        after: SettleAfter::Manual,
        to: Final::Succeeded,
    });
    let mut input = top_up(100);
    input.first_recheck_ms = Some(1_000);
    input.max_recheck_ms = Some(1_000);
    let id = start(&stack, input).await;
    until_pending(&stack, id).await;
    let txn = sim.operations()[0].transaction_id;
    sim.settle(txn, Final::Succeeded).await.unwrap();
    let deadline = tokio::time::Instant::now() + SETTLE;
    while sim.callbacks().sent().is_empty() {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        sim.callbacks().sent().iter().all(|s| s.outcome == Ok(401)),
        "{:?}",
        sim.callbacks().sent()
    );
    let out = completed(&stack, id).await;
    assert_eq!(out.settled_by, SettledBy::StatusQuery);
    assert!(
        stack
            .engine
            .store()
            .signals_for(id, 10)
            .await
            .unwrap()
            .is_empty(),
        "nothing was written for the forged webhooks"
    );

    // By hand: a forged code of the right shape.
    let query = |code: &str, txn: u64| {
        format!(
            "OperationStatus=1&WebHookCode={code}&TransactionID={txn}&ReferenceID=243085&price=100&message=ok"
        )
    };
    let forged = "f".repeat(32);
    assert_eq!(
        webhook_get(&stack, &query(&forged, txn)).await,
        reqwest::StatusCode::UNAUTHORIZED
    );
    // Malformed: a missing parameter, a bad TransactionID.
    assert_eq!(
        webhook_get(&stack, "OperationStatus=1").await,
        reqwest::StatusCode::BAD_REQUEST
    );
    assert_eq!(
        webhook_get(
            &stack,
            &query(&forged, 0).replace("TransactionID=0", "TransactionID=TXN789")
        )
        .await,
        reqwest::StatusCode::BAD_REQUEST
    );
    assert!(
        stack
            .engine
            .store()
            .signals_for(id, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(stack.engine.store().unmatched(10).await.unwrap().is_empty());
    // A TransactionID no journey has: stored (unverified, without the code)
    // and reported; acknowledged.
    assert_eq!(
        webhook_get(&stack, &query(&forged, 424_242)).await,
        reqwest::StatusCode::OK
    );
    let unmatched = stack.engine.store().unmatched(10).await.unwrap();
    assert_eq!(unmatched.len(), 1);
    assert_eq!(unmatched[0].name.as_str(), UNVERIFIED_SIGNAL);
    assert!(!unmatched[0].payload.to_string().contains(&forged));
    let stuck = stack.engine.stuck(10).await.unwrap();
    assert!(!stuck.is_empty());
    stack.stop().await;
}

async fn an_unsettled_payment_asks_a_person(db: TestDb) {
    let stack = Box::pin(support::stack(support::config(&db))).await;
    let sim = &stack.sims.alqimah;
    sim.script_next_payment(PaymentScript::Pending {
        after: SettleAfter::Manual,
        to: Final::Succeeded,
    });
    let mut input = top_up(100);
    input.first_recheck_ms = Some(100);
    input.max_recheck_ms = Some(400);
    input.settle_within_ms = Some(1_500);
    let id = start(&stack, input).await;
    let done = support::settled(&stack, id, SETTLE).await;
    assert_eq!(done.status, Status::NeedsAttention);
    let why = done.attention.unwrap_or_default();
    assert!(
        why.contains("still pending") && why.contains("TransactionID"),
        "{why}"
    );
    assert!(status_queries(&stack) >= 3);
    let stuck = stack.engine.stuck(10).await.unwrap();
    assert!(stuck.iter().any(|s| s.journey == Some(id)));
    // Al-Qimah settles it later; the operator's retry finds out.
    let txn = sim.operations()[0].transaction_id;
    sim.settle(txn, Final::Succeeded).await.unwrap();
    stack
        .engine
        .retry_now(id, "ops", "Al-Qimah says it settled")
        .await
        .unwrap();
    let out = completed(&stack, id).await;
    assert_eq!(out.settled_by, SettledBy::StatusQuery);
    assert_paid_once(&stack, txn);
    stack.stop().await;
}

async fn a_crash_at_every_step_pays_once(db: TestDb) {
    // Steps: 0 prepare-payment, 1 send-payment, 2 await-settlement.
    for seq in 0..3 {
        for point in [
            FaultPoint::BeforeStep,
            FaultPoint::AfterStep,
            FaultPoint::AfterCommit,
        ] {
            let (hook, fired) = support::crash_once(point, seq);
            let mut config = support::config(&db);
            config.fault_hook = Some(hook);
            let mut stack = Box::pin(support::stack(config)).await;
            stack
                .sims
                .alqimah
                .script_next_payment(PaymentScript::Pending {
                    after: SettleAfter::Polls(1),
                    to: Final::Succeeded,
                });
            stack
                .sims
                .alqimah
                .callbacks()
                .set_plan(DeliveryPlan::new(5).script(0, Delivery::normal().lost()));
            let id = start(&stack, top_up(100)).await;
            support::until_set(&fired, SETTLE).await;
            stack.crash_and_restart().await.unwrap();
            let out = completed(&stack, id).await;
            assert_paid_once(&stack, out.transaction_id);
            assert_eq!(
                stack.sims.alqimah.payment_requests().len(),
                1,
                "{point:?} at {seq}: the payment was sent once"
            );
            stack.stop().await;
        }
    }
}

async fn the_demo_scenarios_end_as_expected(db: TestDb) {
    use handover_workflows::demo::alqimah_payment::AlQimahPaymentDriver;
    use handover_workflows::demo::{DemoDriver, Expected};
    let stack = Box::pin(support::stack(support::config(&db))).await;
    let driver = AlQimahPaymentDriver;
    driver.prepare(&stack);
    let mut cases = Vec::new();
    for i in 0..10 {
        cases.push(driver.start(&stack, i).await.unwrap());
    }
    for case in cases {
        let done = support::settled(&stack, case.id, SETTLE).await;
        let want = match case.expect {
            Expected::Completed => Status::Completed,
            _ => Status::Failed,
        };
        assert_eq!(done.status, want, "{}: {:?}", case.scenario, done.failure);
    }
    let ledger = stack.sims.alqimah.ledger();
    assert!(ledger.duplicates().is_empty());
    assert_eq!(ledger.entries_of(EffectKind::Payment).len(), 9);
    stack.stop().await;
}

both!(
    the_demo_scenarios_end_as_expected,
    top_up_offer_and_game_card_complete,
    invalid_inputs_are_refused_at_start,
    business_refusals_fail_with_a_readable_reason,
    faults_on_the_payment_never_pay_twice,
    five_rate_limits_ask_a_person,
    pending_is_settled_by_the_status_query,
    pending_is_settled_by_the_webhook_at_once,
    duplicated_and_early_webhooks_take_effect_once,
    forged_malformed_and_unknown_webhooks,
    an_unsettled_payment_asks_a_person,
    a_crash_at_every_step_pays_once,
);
