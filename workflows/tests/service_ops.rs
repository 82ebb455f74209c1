//! J6 end to end: the service-operations journey against its simulator over
//! real HTTP, with the callbacks coming in through the ingress.

mod support;

use std::sync::Arc;
use std::time::Duration;

use handover_adapters::ProvidersConfig;
use handover_adapters::service_ops::ServiceType;
use handover_adapters::sim::service_ops::{
    CREATE_SERVICE_ENDPOINT, EventOutcome, ServiceOpsBehaviour,
};
use handover_adapters::sim::{Delivery, DeliveryPlan, EffectKind, Fault};
use handover_engine::store::ListFilter;
use handover_engine::{FaultPoint, JourneyId, Status};
use handover_workflows::service_ops::{ServiceChange, ServiceChangeInput, ServiceChangeOutput};
use handover_workflows::stack::Stack;
use serde_json::json;
use support::TestDb;

const SETTLE: Duration = Duration::from_secs(30);

fn create(msisdn: &str, timeout_secs: u64) -> ServiceChangeInput {
    ServiceChangeInput::Create {
        service_type: "multisim".into(),
        service_id: None,
        customer_id: "CUST-1".into(),
        plan_code: Some("MS-2".into()),
        msisdn: Some(msisdn.into()),
        event_timeout_secs: Some(timeout_secs),
    }
}

fn quick(stack: &Stack) {
    stack
        .sims
        .service_ops
        .set_behaviour(ServiceOpsBehaviour::default().with_event_delay(Duration::from_millis(30)));
}

/// Every request the simulator applied, by correlation id: each exactly once.
fn assert_each_change_once(stack: &Stack) {
    assert!(
        stack.sims.service_ops.ledger().duplicates().is_empty(),
        "an effect was applied twice"
    );
}

async fn output(stack: &Stack, id: JourneyId) -> ServiceChangeOutput {
    stack.engine.output(id).await.unwrap().unwrap()
}

async fn create_and_update_complete(db: TestDb) {
    let stack = support::stack(support::config(&db)).await;
    quick(&stack);
    let id = stack
        .engine
        .start::<ServiceChange>(create("+966 50 123 4567", 30))
        .await
        .unwrap();
    let done = support::settled(&stack, id, SETTLE).await;
    assert_eq!(done.status, Status::Completed, "{:?}", done.failure);
    let created = output(&stack, id).await;
    assert!(!created.service_id.is_empty());
    assert_eq!(
        stack
            .sims
            .service_ops
            .ledger()
            .entries_of(EffectKind::ServiceChange)
            .len(),
        1
    );
    // Searchable by the line's number; shown masked.
    let found = stack
        .engine
        .list(&ListFilter {
            key: Some("966501234567".into()),
            limit: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].business_key.as_deref(), Some("966*******67"));

    let update = ServiceChangeInput::UpdateDevice {
        service_type: "multisim".into(),
        service_id: created.service_id.clone(),
        device_id: "DEV-1".into(),
        category: "eSIM".into(),
        device: serde_json::from_value(json!({"model": "Watch 9", "iccid": "8901260882207141234"}))
            .unwrap(),
        event_timeout_secs: Some(30),
    };
    let id2 = stack.engine.start::<ServiceChange>(update).await.unwrap();
    assert_eq!(
        support::settled(&stack, id2, SETTLE).await.status,
        Status::Completed
    );
    assert_eq!(output(&stack, id2).await.service_id, created.service_id);
    assert_each_change_once(&stack);
    stack.stop().await;
}

async fn invalid_inputs_are_refused_at_start(db: TestDb) {
    let stack = support::stack(support::config(&db)).await;
    let mut bad = create("966501234567", 30);
    if let ServiceChangeInput::Create { service_type, .. } = &mut bad {
        *service_type = "satellite".into();
    }
    let err = stack.engine.start::<ServiceChange>(bad).await.unwrap_err();
    assert!(
        err.to_string().contains("satellite") || err.to_string().contains("service type"),
        "{err}"
    );
    let err = stack
        .engine
        .start::<ServiceChange>(create("12ab", 30))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("8 to 15 digits"), "{err}");
    let update = ServiceChangeInput::UpdateDevice {
        service_type: "tv".into(),
        service_id: "S1".into(),
        device_id: "D1".into(),
        category: "FRIDGE".into(),
        device: serde_json::from_value(json!({"model": "x"})).unwrap(),
        event_timeout_secs: None,
    };
    assert!(stack.engine.start::<ServiceChange>(update).await.is_err());
    assert!(
        stack.sims.service_ops.requests().all().is_empty(),
        "nothing was sent"
    );
    stack.stop().await;
}

async fn refusals_end_the_journey_with_the_providers_reason(db: TestDb) {
    let stack = support::stack(support::config(&db)).await;
    stack.sims.service_ops.set_behaviour(
        ServiceOpsBehaviour::default()
            .with_event_delay(Duration::from_millis(30))
            .with_outcome(EventOutcome::Error {
                code: "SVC_ACTIVE".into(),
                title: "Service already active on this line".into(),
            }),
    );
    let id = stack
        .engine
        .start::<ServiceChange>(create("966501234567", 30))
        .await
        .unwrap();
    let done = support::settled(&stack, id, SETTLE).await;
    assert_eq!(done.status, Status::Failed);
    let reason = done.failure.unwrap();
    assert!(
        reason.contains("Service already active on this line") && reason.contains("SVC_ACTIVE"),
        "{reason}"
    );

    // 403: the account is not entitled to TV: terminal, no retry.
    stack
        .sims
        .service_ops
        .set_behaviour(ServiceOpsBehaviour::default().forbidding(ServiceType::Tv));
    let mut tv = create("966501234567", 30);
    if let ServiceChangeInput::Create { service_type, .. } = &mut tv {
        *service_type = "tv".into();
    }
    let id = stack.engine.start::<ServiceChange>(tv).await.unwrap();
    let done = support::settled(&stack, id, SETTLE).await;
    assert_eq!(done.status, Status::Failed);
    assert!(done.failure.unwrap().contains("403"));
    stack.stop().await;
}

async fn transient_faults_retry_under_one_correlation_id(db: TestDb) {
    let mut config = support::config(&db);
    config.tune_providers = Some(Arc::new(|c: &mut ProvidersConfig| {
        if let Some(so) = c.service_ops.as_mut() {
            so.http.timeout_ms = 400;
        }
    }));
    let stack = support::stack(config).await;
    quick(&stack);
    let faults = stack.sims.service_ops.faults();
    faults.script_next(CREATE_SERVICE_ENDPOINT, Fault::InternalError);
    faults.script_next(
        CREATE_SERVICE_ENDPOINT,
        Fault::Unavailable {
            retry_after_secs: Some(1),
        },
    );
    faults.script_next(
        CREATE_SERVICE_ENDPOINT,
        Fault::GatewayTimeout { after_effect: true },
    );
    faults.script_next(
        CREATE_SERVICE_ENDPOINT,
        Fault::SlowAnswer { delay_ms: 1_000 },
    );
    let id = stack
        .engine
        .start::<ServiceChange>(create("966501234567", 30))
        .await
        .unwrap();
    let done = support::settled(&stack, id, Duration::from_secs(60)).await;
    assert_eq!(
        done.status,
        Status::Completed,
        "{:?} {:?}",
        done.failure,
        done.attention
    );
    // Five sends, one correlation id, one effect.
    let sent = stack.sims.service_ops.requests().all();
    let ids: std::collections::BTreeSet<_> = sent
        .iter()
        .filter_map(|r| {
            r.headers
                .get("request-correlation-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .collect();
    assert!(sent.len() >= 5, "{} requests", sent.len());
    assert_eq!(ids.len(), 1, "every re-send used the same correlation id");
    assert_eq!(
        stack
            .sims
            .service_ops
            .ledger()
            .entries_of(EffectKind::ServiceChange)
            .len(),
        1
    );
    let history = stack.engine.history(id, 100).await.unwrap();
    let failures = history
        .iter()
        .filter(|h| h.kind == handover_engine::HistoryKind::StepFailed)
        .count();
    assert_eq!(failures, 4);
    stack.stop().await;
}

async fn duplicated_and_early_events_take_effect_once(db: TestDb) {
    let stack = support::stack(support::config(&db)).await;
    stack
        .sims
        .service_ops
        .set_behaviour(ServiceOpsBehaviour::default().with_event_delay(Duration::ZERO));
    // The event is posted before the 202 answer, three times.
    stack
        .sims
        .service_ops
        .callbacks()
        .set_plan(DeliveryPlan::new(7).script(0, Delivery::normal().before_answer().duplicated(3)));
    let id = stack
        .engine
        .start::<ServiceChange>(create("966501234567", 30))
        .await
        .unwrap();
    let done = support::settled(&stack, id, SETTLE).await;
    assert_eq!(done.status, Status::Completed);
    let signals = stack.engine.store().signals_for(id, 10).await.unwrap();
    assert_eq!(signals.len(), 1, "duplicates were ignored");
    assert!(stack.engine.metrics().signals_duplicate.get() >= 2);
    stack.stop().await;
}

async fn no_event_resends_then_asks_a_person(db: TestDb) {
    let stack = support::stack(support::config(&db)).await;
    stack
        .sims
        .service_ops
        .set_behaviour(ServiceOpsBehaviour::default().with_outcome(EventOutcome::Never));
    let id = stack
        .engine
        .start::<ServiceChange>(create("966501234567", 1))
        .await
        .unwrap();
    let done = support::settled(&stack, id, SETTLE).await;
    assert_eq!(done.status, Status::NeedsAttention);
    assert!(
        done.attention
            .unwrap()
            .contains("no success_event or error_event")
    );
    // Two re-sends with the same id: still one effect.
    assert_eq!(stack.sims.service_ops.requests().all().len(), 3);
    assert_eq!(
        stack
            .sims
            .service_ops
            .ledger()
            .entries_of(EffectKind::ServiceChange)
            .len(),
        1
    );
    let stuck = stack.engine.stuck(10).await.unwrap();
    assert!(stuck.iter().any(|s| s.journey == Some(id)));
    stack.stop().await;
}

async fn a_crash_at_every_boundary_ends_the_same(db: TestDb) {
    for seq in 0..2 {
        for point in [
            FaultPoint::BeforeStep,
            FaultPoint::AfterStep,
            FaultPoint::AfterCommit,
        ] {
            let (hook, fired) = support::crash_once(point, seq);
            let mut config = support::config(&db);
            config.fault_hook = Some(hook);
            let mut stack = support::stack(config).await;
            quick(&stack);
            let id = stack
                .engine
                .start::<ServiceChange>(create("966501234567", 3))
                .await
                .unwrap();
            support::until_set(&fired, SETTLE).await;
            stack.crash_and_restart().await.unwrap();
            let done = support::settled(&stack, id, SETTLE).await;
            assert_eq!(
                done.status,
                Status::Completed,
                "{point:?} at {seq}: {:?}",
                done.attention
            );
            assert_each_change_once(&stack);
            assert_eq!(
                stack
                    .sims
                    .service_ops
                    .ledger()
                    .entries_of(EffectKind::ServiceChange)
                    .len(),
                1
            );
            stack.stop().await;
        }
    }
}

both!(
    create_and_update_complete,
    invalid_inputs_are_refused_at_start,
    refusals_end_the_journey_with_the_providers_reason,
    transient_faults_retry_under_one_correlation_id,
    duplicated_and_early_events_take_effect_once,
    no_event_resends_then_asks_a_person,
    a_crash_at_every_boundary_ends_the_same,
);
