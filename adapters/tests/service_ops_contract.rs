//! Contract tests: the service operations client against its simulator over real HTTP on
//! loopback, with a test receiver standing in for the engine's ingress. The wire format is
//! asserted on the simulator's side from the raw requests it received, and the events from
//! the raw callbacks the receiver got, so a drift between the documented choices and either
//! side shows up here.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::post;
use bytes::Bytes;
use handover_adapters::service_ops::{
    Accepted, CORRELATION_HEADER, CorrelationId, CreateService, DeviceCategory, DeviceDetails,
    DeviceId, EventError, EventKind, ServiceDetails, ServiceEvent, ServiceId, ServiceType,
    UpdateServiceDevice, codes, parse_event,
};
use handover_adapters::sim::service_ops::{
    CREATE_SERVICE_ENDPOINT, ChangeState, DEFAULT_API_TOKEN, UPDATE_SERVICE_DEVICE_ENDPOINT,
};
use handover_adapters::sim::{
    CallbackSettings, Delivery, DeliveryPlan, EffectKind, EventOutcome, Fault, FaultPlan,
    ServiceOpsBehaviour, ServiceOpsSim, ServiceOpsSimConfig, Simulators, SimulatorsConfig,
};
use handover_adapters::{
    ErrorClass, Provider, ProviderError, ProvidersConfig, ServiceOpsClient, ServiceOpsConfig,
};
use http::{HeaderMap, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use url::Url;

// ---------------------------------------------------------------------------------------
// The test receiver (the engine's ingress in production)
// ---------------------------------------------------------------------------------------

/// One event as it reached the receiver.
#[derive(Debug)]
struct Received {
    /// The last path segment: `success_event` or `error_event`.
    segment: String,
    correlation: Option<String>,
    body: Bytes,
}

impl Received {
    fn parse(&self) -> Result<ServiceEvent, EventError> {
        let kind = EventKind::from_wire_name(&self.segment).expect("a documented event path");
        parse_event(kind, self.correlation.as_deref(), &self.body)
    }

    fn event(&self) -> ServiceEvent {
        self.parse().expect("the simulator posts valid events")
    }
}

struct Hooks {
    /// `http://127.0.0.1:<port>/hooks/service-ops`, without a trailing slash.
    base: Url,
    rx: mpsc::UnboundedReceiver<Received>,
}

impl Hooks {
    async fn start() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let router = Router::new()
            .route(
                "/hooks/service-ops/{event}",
                post(
                    |State(tx): State<mpsc::UnboundedSender<Received>>,
                     Path(segment): Path<String>,
                     headers: HeaderMap,
                     body: Bytes| async move {
                        let correlation = headers
                            .get(CORRELATION_HEADER)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        let _ = tx.send(Received {
                            segment,
                            correlation,
                            body,
                        });
                        StatusCode::OK
                    },
                ),
            )
            .with_state(tx);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            base: Url::parse(&format!("http://{addr}/hooks/service-ops")).unwrap(),
            rx,
        }
    }

    /// The next event; fails the test if none comes within 5 s.
    async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(5), self.rx.recv())
            .await
            .expect("an event within 5 s")
            .expect("the receiver is running")
    }

    /// An event already received, if any.
    fn already(&mut self) -> Option<Received> {
        self.rx.try_recv().ok()
    }
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

const EVENT_DELAY: Duration = Duration::from_millis(10);

fn behaviour() -> ServiceOpsBehaviour {
    ServiceOpsBehaviour::default().with_event_delay(EVENT_DELAY)
}

fn sim_config(hooks: &Hooks, behaviour: ServiceOpsBehaviour) -> ServiceOpsSimConfig {
    ServiceOpsSimConfig::default()
        .with_behaviour(behaviour)
        .with_callback_base_url(hooks.base.clone())
        .with_callback_settings(CallbackSettings::fast())
}

async fn sim_with(hooks: &Hooks, behaviour: ServiceOpsBehaviour) -> ServiceOpsSim {
    ServiceOpsSim::start(sim_config(hooks, behaviour))
        .await
        .expect("simulator starts")
}

fn config_for(sim: &ServiceOpsSim, timeout_ms: u64) -> ServiceOpsConfig {
    let mut config = sim.client_config();
    config.http.timeout_ms = timeout_ms;
    // Tests fire calls back to back; the client-side limiter is tested in `http`.
    config.http.rate_per_second = 10_000;
    config.http.rate_burst = 10_000;
    config
}

fn client(sim: &ServiceOpsSim) -> ServiceOpsClient {
    ServiceOpsClient::new(&config_for(sim, 2_000)).expect("client builds")
}

fn id(journey: &str) -> CorrelationId {
    CorrelationId::for_step(journey, "service_ops#1")
}

fn create(service_type: ServiceType, service_id: Option<&str>) -> CreateService {
    CreateService {
        service_type,
        service_id: service_id.map(|s| ServiceId::new(s).unwrap()),
        service_details: ServiceDetails::for_customer("CUST-1001"),
    }
}

fn update(service_type: ServiceType, service_id: &str, device_id: &str) -> UpdateServiceDevice {
    UpdateServiceDevice {
        service_type,
        service_id: ServiceId::new(service_id).unwrap(),
        device_id: DeviceId::new(device_id).unwrap(),
        category: DeviceCategory::Smartwatch,
        new_service_device_details: DeviceDetails {
            model: Some("Watch Series 9".into()),
            imei: Some("356938035643809".into()),
            ..DeviceDetails::default()
        },
    }
}

fn service_changes(sim: &ServiceOpsSim, id: CorrelationId) -> usize {
    sim.ledger()
        .count(EffectKind::ServiceChange, &id.to_string())
}

// ---------------------------------------------------------------------------------------
// Success paths, wire format, events
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn create_is_accepted_with_the_documented_wire_format_and_a_success_event_follows() {
    let mut hooks = Hooks::start().await;
    let sim = sim_with(&hooks, behaviour()).await;
    let journey = id("journey-create");
    let mut request = create(ServiceType::Tv, Some("svc-tv-1"));
    request.service_details.plan_code = Some("TV-GOLD".into());
    request.service_details.msisdn = Some("966512345678".into());
    request
        .service_details
        .extra
        .insert("bundle".into(), json!("sports"));

    let accepted = client(&sim)
        .create_service(&journey, &request)
        .await
        .unwrap();
    assert_eq!(accepted.correlation_id, journey);
    let reference = accepted.reference.expect("the 202 carries a reference");
    assert_eq!(sim.change(journey).unwrap().reference, reference.as_str());

    // What went over the wire, as the simulator received it.
    let seen = sim.requests().last_to("/v3/services/tv").unwrap();
    assert_eq!(seen.method, http::Method::POST);
    assert_eq!(seen.query, None);
    assert_eq!(
        seen.header("request-correlation-id"),
        Some(journey.to_string().as_str())
    );
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {DEFAULT_API_TOKEN}").as_str())
    );
    assert_eq!(seen.header("accept"), Some("application/json"));
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(seen.json_field_names(), ["service_details", "service_id"]);
    assert_eq!(
        seen.json().unwrap(),
        json!({
            "service_id": "svc-tv-1",
            "service_details": {
                "customer_id": "CUST-1001",
                "plan_code": "TV-GOLD",
                "msisdn": "966512345678",
                "bundle": "sports"
            }
        })
    );

    // Exactly one effect, keyed by the correlation id, about the service.
    assert_eq!(service_changes(&sim, journey), 1);
    assert_eq!(
        sim.ledger()
            .count_subject(EffectKind::ServiceChange, "svc-tv-1"),
        1
    );

    // The event, as the receiver got it.
    let received = hooks.next().await;
    assert_eq!(received.segment, "success_event");
    assert_eq!(
        received.correlation.as_deref(),
        Some(journey.to_string().as_str())
    );
    let raw: Value = serde_json::from_slice(&received.body).unwrap();
    let mut names: Vec<&String> = raw.as_object().unwrap().keys().collect();
    names.sort();
    assert_eq!(names, ["code", "service_id", "title"]);
    let event = received.event();
    assert!(event.is_success());
    assert_eq!(event.correlation_id(), accepted.correlation_id);
    assert_eq!(event.code, codes::SERVICE_CREATED);
    assert_eq!(event.service_id.as_str(), "svc-tv-1");
    assert_eq!(sim.change(journey).unwrap().state, ChangeState::Succeeded);
    assert!(
        sim.services()
            .iter()
            .any(|s| s.service_type == ServiceType::Tv && s.service_id == "svc-tv-1")
    );
}

#[tokio::test]
async fn create_without_a_service_id_reports_the_id_the_provider_assigned() {
    let mut hooks = Hooks::start().await;
    let sim = sim_with(&hooks, behaviour()).await;
    let journey = id("journey-assigned");
    client(&sim)
        .create_service(&journey, &create(ServiceType::Multisim, None))
        .await
        .unwrap();
    let seen = sim.requests().last_to("/v3/services/multisim").unwrap();
    assert_eq!(
        seen.json_field_names(),
        ["service_details"],
        "no null service_id"
    );
    let event = hooks.next().await.event();
    assert!(event.is_success());
    assert!(event.service_id.as_str().starts_with("svc-"), "{event:?}");
    assert_eq!(
        sim.ledger().entries()[0].subject.as_deref(),
        Some(event.service_id.as_str())
    );
}

#[tokio::test]
async fn update_device_is_a_put_with_encoded_path_parameters_and_reports_success() {
    let mut hooks = Hooks::start().await;
    let sim = sim_with(&hooks, behaviour()).await;
    sim.add_service(ServiceType::Applewatch, "svc-aw-1")
        .unwrap();
    let journey = id("journey-update");

    let accepted = client(&sim)
        .update_service_device(
            &journey,
            &update(ServiceType::Applewatch, "svc-aw-1", "watch/1"),
        )
        .await
        .unwrap();
    assert_eq!(accepted.correlation_id, journey);

    let seen = sim
        .requests()
        .last_to("/v3/services/applewatch/svc-aw-1/devices/watch%2F1")
        .expect("the device id is one encoded path segment");
    assert_eq!(seen.method, http::Method::PUT);
    assert_eq!(
        seen.header("request-correlation-id"),
        Some(journey.to_string().as_str())
    );
    assert_eq!(
        seen.json_field_names(),
        ["category", "new_service_device_details"]
    );
    assert_eq!(
        seen.json().unwrap(),
        json!({
            "category": "SMARTWATCH",
            "new_service_device_details": { "model": "Watch Series 9", "imei": "356938035643809" }
        })
    );

    let event = hooks.next().await.event();
    assert!(event.is_success());
    assert_eq!(event.code, codes::SERVICE_DEVICE_UPDATED);
    assert_eq!(event.service_id.as_str(), "svc-aw-1");
    let watch = sim
        .services()
        .into_iter()
        .find(|s| s.service_id == "svc-aw-1")
        .unwrap();
    assert_eq!(
        watch.devices,
        [("watch/1".to_owned(), DeviceCategory::Smartwatch)]
    );
    let effect = &sim.ledger().entries_of(EffectKind::ServiceChange)[0];
    assert_eq!(effect.detail["category"], "SMARTWATCH");
}

#[tokio::test]
async fn the_error_outcome_posts_an_error_event_with_its_code_and_title() {
    let mut hooks = Hooks::start().await;
    let sim = sim_with(
        &hooks,
        behaviour().with_outcome(EventOutcome::error(
            "PROVISIONING_FAILED",
            "The TV platform rejected the plan",
        )),
    )
    .await;
    let journey = id("journey-error");
    client(&sim)
        .create_service(&journey, &create(ServiceType::Tv, Some("svc-tv-2")))
        .await
        .unwrap();
    let received = hooks.next().await;
    assert_eq!(received.segment, "error_event");
    let event = received.event();
    assert!(!event.is_success());
    assert_eq!(event.kind, EventKind::Error);
    assert_eq!(event.code, "PROVISIONING_FAILED");
    assert_eq!(event.title, "The TV platform rejected the plan");
    assert_eq!(
        event.dedupe_key().as_str(),
        format!("{journey}:error_event:PROVISIONING_FAILED")
    );
    assert!(sim.services().is_empty(), "a failed create creates nothing");
    // The request was still accepted once.
    assert_eq!(service_changes(&sim, journey), 1);
}

#[tokio::test]
async fn updating_a_service_that_does_not_exist_reports_service_not_found() {
    let mut hooks = Hooks::start().await;
    let sim = sim_with(&hooks, behaviour()).await;
    client(&sim)
        .update_service_device(
            &id("journey-missing"),
            &update(ServiceType::Mobile, "svc-none", "d1"),
        )
        .await
        .unwrap();
    let event = hooks.next().await.event();
    assert_eq!(event.kind, EventKind::Error);
    assert_eq!(event.code, codes::SERVICE_NOT_FOUND);
}

#[tokio::test]
async fn silent_requests_are_settled_by_world_actions() {
    let mut hooks = Hooks::start().await;
    let sim = sim_with(&hooks, behaviour().with_outcome(EventOutcome::Never)).await;
    let client = client(&sim);
    let (first, second) = (id("journey-silent-1"), id("journey-silent-2"));
    client
        .create_service(&first, &create(ServiceType::Security, Some("svc-sec-1")))
        .await
        .unwrap();
    client
        .create_service(&second, &create(ServiceType::Security, Some("svc-sec-2")))
        .await
        .unwrap();
    assert_eq!(sim.change(first).unwrap().state, ChangeState::Silent);
    assert!(hooks.already().is_none());

    sim.complete(first).await.unwrap();
    let event = hooks.next().await.event();
    assert_eq!((event.correlation_id(), event.is_success()), (first, true));

    sim.fail(second, "CANCELLED", "Cancelled by an agent")
        .await
        .unwrap();
    let event = hooks.next().await.event();
    assert_eq!(event.correlation_id(), second);
    assert_eq!(
        (event.kind, event.code.as_str()),
        (EventKind::Error, "CANCELLED")
    );
    assert!(sim.complete(first).await.is_err(), "already settled");
}

// ---------------------------------------------------------------------------------------
// Event delivery faults
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn duplicated_events_share_one_dedupe_key() {
    let mut hooks = Hooks::start().await;
    let sim = ServiceOpsSim::start(
        sim_config(&hooks, behaviour())
            .with_delivery(DeliveryPlan::new(0).script(1, Delivery::normal().duplicated(2))),
    )
    .await
    .unwrap();
    let journey = id("journey-dup");
    client(&sim)
        .create_service(
            &journey,
            &create(ServiceType::Datasharing, Some("svc-ds-1")),
        )
        .await
        .unwrap();
    let mut keys = BTreeSet::new();
    for _ in 0..3 {
        let event = hooks.next().await.event();
        assert_eq!(event.correlation_id(), journey);
        keys.insert(event.dedupe_key());
    }
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(service_changes(&sim, journey), 1);
}

#[tokio::test]
async fn an_event_can_arrive_before_the_202() {
    let mut hooks = Hooks::start().await;
    let sim = ServiceOpsSim::start(
        sim_config(&hooks, behaviour().with_event_delay(Duration::ZERO))
            .with_delivery(DeliveryPlan::new(0).script(1, Delivery::normal().before_answer())),
    )
    .await
    .unwrap();
    let journey = id("journey-early");
    client(&sim)
        .create_service(&journey, &create(ServiceType::Mobile, Some("svc-m-1")))
        .await
        .unwrap();
    // Delivered (and acknowledged by the receiver) before the simulator answered 202.
    let early = hooks.already().expect("the event came before the answer");
    assert_eq!(early.event().correlation_id(), journey);
}

#[tokio::test]
async fn a_reordered_event_arrives_after_its_successor() {
    let mut hooks = Hooks::start().await;
    let sim = ServiceOpsSim::start(
        sim_config(&hooks, behaviour())
            .with_delivery(DeliveryPlan::new(0).script(1, Delivery::normal().reordered())),
    )
    .await
    .unwrap();
    let client = client(&sim);
    let (first, second) = (id("journey-order-1"), id("journey-order-2"));
    client
        .create_service(&first, &create(ServiceType::Tv, Some("svc-o-1")))
        .await
        .unwrap();
    client
        .create_service(&second, &create(ServiceType::Tv, Some("svc-o-2")))
        .await
        .unwrap();
    let arrived = [
        hooks.next().await.event().correlation_id(),
        hooks.next().await.event().correlation_id(),
    ];
    assert_eq!(arrived, [second, first]);
}

#[tokio::test]
async fn a_lost_event_is_posted_again_when_the_journey_resends_with_the_same_id() {
    let mut hooks = Hooks::start().await;
    let sim = ServiceOpsSim::start(
        sim_config(&hooks, behaviour())
            .with_delivery(DeliveryPlan::new(0).script(1, Delivery::normal().lost())),
    )
    .await
    .unwrap();
    let client = client(&sim);
    let (lost, other) = (id("journey-lost"), id("journey-other"));
    let request = create(ServiceType::Deviceinsurance, Some("svc-di-1"));
    client.create_service(&lost, &request).await.unwrap();
    client
        .create_service(&other, &create(ServiceType::Tv, Some("svc-tv-9")))
        .await
        .unwrap();
    // Events are settled in due order: once the second arrives, the first was lost.
    assert_eq!(hooks.next().await.event().correlation_id(), other);
    assert!(hooks.already().is_none());
    assert_eq!(sim.change(lost).unwrap().state, ChangeState::Succeeded);

    // The journey timed out waiting and re-sends: same answer, no new effect, the outcome
    // again.
    let again = client.create_service(&lost, &request).await.unwrap();
    assert_eq!(
        again.reference.unwrap().as_str(),
        sim.change(lost).unwrap().reference
    );
    let event = hooks.next().await.event();
    assert_eq!(
        (event.correlation_id(), event.code.as_str()),
        (lost, codes::SERVICE_CREATED)
    );
    assert_eq!(service_changes(&sim, lost), 1);
    assert_eq!(sim.change(lost).unwrap().submissions, 2);
}

// ---------------------------------------------------------------------------------------
// Error classes and idempotent re-sending
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_500_is_retryable_and_the_retry_with_the_same_id_applies_once() {
    let mut hooks = Hooks::start().await;
    let sim = sim_with(&hooks, behaviour()).await;
    sim.faults()
        .script_next(CREATE_SERVICE_ENDPOINT, Fault::InternalError);
    let client = client(&sim);
    let journey = id("journey-500");
    let request = create(ServiceType::Tv, Some("svc-500"));

    let err = client.create_service(&journey, &request).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Unavailable { status: Some(s), .. } if s == 500),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Retryable { retry_after: None });
    assert!(sim.ledger().is_empty(), "500 happens before any effect");

    client.create_service(&journey, &request).await.unwrap();
    assert_eq!(service_changes(&sim, journey), 1);
    assert!(sim.ledger().duplicates().is_empty());
    // Both attempts carried the same correlation id.
    let sent: Vec<String> = sim
        .requests()
        .all()
        .iter()
        .filter_map(|r| r.header("request-correlation-id").map(str::to_owned))
        .collect();
    assert_eq!(sent, [journey.to_string(), journey.to_string()]);
    assert_eq!(hooks.next().await.event().correlation_id(), journey);
    assert_eq!(sim.change(journey).unwrap().submissions, 1);
}

#[tokio::test]
async fn a_504_after_the_effect_is_outcome_unknown_and_resending_applies_nothing_twice() {
    let mut hooks = Hooks::start().await;
    // Settled at admission, so the repeat finds the outcome and posts it again.
    let sim = sim_with(&hooks, behaviour().with_event_delay(Duration::ZERO)).await;
    sim.faults().script_next(
        UPDATE_SERVICE_DEVICE_ENDPOINT,
        Fault::GatewayTimeout { after_effect: true },
    );
    sim.add_service(ServiceType::Applewatch, "svc-aw-504")
        .unwrap();
    let client = client(&sim);
    let journey = id("journey-504");
    let request = update(ServiceType::Applewatch, "svc-aw-504", "watch-1");

    let err = client
        .update_service_device(&journey, &request)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::OutcomeUnknown { .. }),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::OutcomeUnknown);
    assert_eq!(service_changes(&sim, journey), 1, "the update happened");

    let accepted = client
        .update_service_device(&journey, &request)
        .await
        .unwrap();
    assert_eq!(
        accepted.reference.unwrap().as_str(),
        sim.change(journey).unwrap().reference
    );
    assert_eq!(service_changes(&sim, journey), 1, "and only once");
    assert!(sim.ledger().duplicates().is_empty());
    // The event of the first admission and its re-post: one event for the journey.
    let first = hooks.next().await.event();
    let second = hooks.next().await.event();
    assert_eq!(first.dedupe_key(), second.dedupe_key());
}

#[tokio::test]
async fn a_504_without_the_effect_applies_nothing_until_resent() {
    let mut hooks = Hooks::start().await;
    let sim = sim_with(&hooks, behaviour()).await;
    sim.faults().script_next(
        CREATE_SERVICE_ENDPOINT,
        Fault::GatewayTimeout {
            after_effect: false,
        },
    );
    let client = client(&sim);
    let journey = id("journey-504-none");
    let request = create(ServiceType::Tv, Some("svc-504"));
    let err = client.create_service(&journey, &request).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::OutcomeUnknown, "{err:?}");
    assert!(sim.ledger().is_empty());
    assert!(sim.change(journey).is_none());

    client.create_service(&journey, &request).await.unwrap();
    assert_eq!(service_changes(&sim, journey), 1);
    assert!(hooks.next().await.event().is_success());
}

#[tokio::test]
async fn a_503_is_retryable_with_its_retry_after_and_a_429_too() {
    let hooks = Hooks::start().await;
    let sim = sim_with(&hooks, behaviour()).await;
    sim.faults().script_next(
        CREATE_SERVICE_ENDPOINT,
        Fault::Unavailable {
            retry_after_secs: Some(2),
        },
    );
    sim.faults().script_next(
        CREATE_SERVICE_ENDPOINT,
        Fault::RateLimited {
            retry_after_secs: Some(7),
        },
    );
    let client = client(&sim);
    let request = create(ServiceType::Tv, Some("svc-503"));
    let journey = id("journey-503");

    let err = client.create_service(&journey, &request).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Unavailable { status: Some(s), .. } if s == 503),
        "{err:?}"
    );
    assert_eq!(
        err.class(),
        ErrorClass::Retryable {
            retry_after: Some(Duration::from_secs(2))
        }
    );
    let err = client.create_service(&journey, &request).await.unwrap_err();
    assert_eq!(
        err.class(),
        ErrorClass::Retryable {
            retry_after: Some(Duration::from_secs(7))
        },
        "{err:?}"
    );
    assert!(sim.ledger().is_empty());
    client.create_service(&journey, &request).await.unwrap();
    assert_eq!(service_changes(&sim, journey), 1);
}

#[tokio::test]
async fn an_answer_slower_than_the_timeout_is_outcome_unknown_and_resending_is_safe() {
    let hooks = Hooks::start().await;
    let sim = sim_with(&hooks, behaviour()).await;
    sim.faults()
        .script_next(CREATE_SERVICE_ENDPOINT, Fault::SlowAnswer { delay_ms: 800 });
    let client = ServiceOpsClient::new(&config_for(&sim, 150)).unwrap();
    let journey = id("journey-slow");
    let request = create(ServiceType::Tv, Some("svc-slow"));
    let started = Instant::now();
    let err = client.create_service(&journey, &request).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(700),
        "timed out on time"
    );
    assert!(
        matches!(err, ProviderError::OutcomeUnknown { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("150 ms"), "{err}");
    assert_eq!(service_changes(&sim, journey), 1);

    client.create_service(&journey, &request).await.unwrap();
    assert_eq!(service_changes(&sim, journey), 1);
}

#[tokio::test]
async fn a_dropped_connection_is_outcome_unknown_and_resending_is_safe() {
    let hooks = Hooks::start().await;
    let sim = sim_with(&hooks, behaviour()).await;
    sim.faults().script_next(
        CREATE_SERVICE_ENDPOINT,
        Fault::DropConnection { after_effect: true },
    );
    sim.faults().script_next(
        CREATE_SERVICE_ENDPOINT,
        Fault::DropConnection {
            after_effect: false,
        },
    );
    let client = client(&sim);
    let (applied, not_applied) = (id("journey-drop-1"), id("journey-drop-2"));

    let err = client
        .create_service(&applied, &create(ServiceType::Tv, Some("svc-d1")))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::OutcomeUnknown, "{err:?}");
    assert_eq!(service_changes(&sim, applied), 1);
    // The client cannot tell the two drops apart, so it must assume the worst.
    let err = client
        .create_service(&not_applied, &create(ServiceType::Tv, Some("svc-d2")))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::OutcomeUnknown, "{err:?}");
    assert_eq!(service_changes(&sim, not_applied), 0);

    for (journey, service) in [(applied, "svc-d1"), (not_applied, "svc-d2")] {
        client
            .create_service(&journey, &create(ServiceType::Tv, Some(service)))
            .await
            .unwrap();
        assert_eq!(service_changes(&sim, journey), 1);
    }
}

#[tokio::test]
async fn refusals_are_terminal_and_carry_the_generic_error_code() {
    let hooks = Hooks::start().await;
    let sim = sim_with(&hooks, behaviour()).await;
    let client = client(&sim);
    let request = create(ServiceType::Tv, Some("svc-r"));
    let cases: [(Fault, u16); 3] = [
        (
            Fault::refusal("PLAN_NOT_AVAILABLE", "The plan is not sold in this region"),
            400,
        ),
        (
            Fault::refusal("FORBIDDEN_CHANNEL", "This channel may not create services"),
            403,
        ),
        (
            Fault::refusal("NOT_ACCEPTABLE", "Only application/json answers"),
            406,
        ),
    ];
    for (fault, status) in cases {
        let code = match &fault {
            Fault::Refusal { code, .. } => code.clone(),
            other => panic!("{other:?}"),
        };
        sim.faults().script_next(CREATE_SERVICE_ENDPOINT, fault);
        let err = client
            .create_service(&id(&format!("journey-refused-{status}")), &request)
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Terminal, "{err:?}");
        match (&err, status) {
            (
                ProviderError::Rejected {
                    status: Some(s), ..
                },
                400 | 406,
            ) => assert_eq!(*s, status),
            (ProviderError::Auth { status: s, .. }, 403) => assert_eq!(*s, status),
            _ => panic!("{status}: {err:?}"),
        }
        assert!(err.to_string().contains(&format!("(code {code})")), "{err}");
    }
    assert!(sim.ledger().is_empty());
}

#[tokio::test]
async fn a_correlation_id_reused_for_another_request_is_refused() {
    let hooks = Hooks::start().await;
    let sim = sim_with(&hooks, behaviour()).await;
    let client = client(&sim);
    let journey = id("journey-reuse");
    client
        .create_service(&journey, &create(ServiceType::Tv, Some("svc-a")))
        .await
        .unwrap();
    let err = client
        .create_service(&journey, &create(ServiceType::Tv, Some("svc-b")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Rejected { status: Some(s), .. } if s == 400),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains(&format!("(code {})", codes::CORRELATION_ID_REUSED)),
        "{err}"
    );
    assert_eq!(service_changes(&sim, journey), 1);
}

// ---------------------------------------------------------------------------------------
// Auth, content negotiation, validation
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn auth_failures_are_terminal_and_never_echo_the_token() {
    let hooks = Hooks::start().await;
    let sim = sim_with(&hooks, behaviour().forbidding(ServiceType::Deviceinsurance)).await;
    let wrong = "not-the-issued-token-8c1d";
    let mut config = config_for(&sim, 2_000);
    config.api_token = SecretString::from(wrong);
    let err = ServiceOpsClient::new(&config)
        .unwrap()
        .create_service(&id("journey-401"), &create(ServiceType::Tv, None))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Auth { status, .. } if status == 401),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Terminal);
    assert!(err.to_string().contains("(code UNAUTHORIZED)"), "{err}");
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains(wrong), "{shown}");
    }

    // No token at all: 401 with a bearer challenge, in the generic error shape.
    let response = reqwest::Client::new()
        .post(sim.base_url().join("v3/services/tv").unwrap())
        .json(&json!({ "service_details": { "customer_id": "C" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers().get("www-authenticate").unwrap(),
        "Bearer"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], codes::UNAUTHORIZED);

    // A valid token not entitled to the service type: 403.
    let client = client(&sim);
    let err = client
        .create_service(
            &id("journey-403"),
            &create(ServiceType::Deviceinsurance, None),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Auth { status, .. } if status == 403),
        "{err:?}"
    );
    assert!(err.to_string().contains("(code FORBIDDEN)"), "{err}");
    assert!(sim.ledger().is_empty());
    // Other types are fine with the same token.
    client
        .create_service(&id("journey-ok"), &create(ServiceType::Tv, None))
        .await
        .unwrap();
}

/// A raw request to the simulator with the right token, for shapes the client never sends.
async fn raw(
    sim: &ServiceOpsSim,
    method: http::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, Value) {
    let token = sim.client_config().api_token.expose_secret().to_owned();
    let mut request = reqwest::Client::new()
        .request(method, sim.base_url().join(path).unwrap())
        .bearer_auth(token)
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

const JSON: (&str, &str) = ("content-type", "application/json");

/// Method, path, headers and body of a raw request.
type RawCase<'a> = (http::Method, &'a str, Vec<(&'a str, &'a str)>, String);

#[tokio::test]
async fn content_that_is_not_json_is_not_acceptable() {
    let hooks = Hooks::start().await;
    let sim = sim_with(&hooks, behaviour()).await;
    let body = r#"{"service_details":{"customer_id":"C"}}"#;
    for headers in [
        vec![JSON, ("accept", "text/html")],
        vec![("content-type", "text/plain")],
        vec![],
    ] {
        let (status, answer) =
            raw(&sim, http::Method::POST, "v3/services/tv", &headers, body).await;
        assert_eq!(status, 406, "{headers:?}");
        assert_eq!(answer["code"], codes::NOT_ACCEPTABLE, "{headers:?}");
        assert!(answer["message"].is_string());
    }
    for accept in [
        "application/json",
        "application/*",
        "*/*",
        "text/html, application/json;q=0.9",
    ] {
        let (status, _) = raw(
            &sim,
            http::Method::POST,
            "v3/services/tv",
            &[JSON, ("accept", accept)],
            body,
        )
        .await;
        assert_eq!(status, 202, "{accept}");
    }
}

#[tokio::test]
async fn invalid_requests_are_rejected_with_400_before_any_effect() {
    let hooks = Hooks::start().await;
    let sim = sim_with(&hooks, behaviour()).await;
    let uuid = CorrelationId::for_step("journey-raw", "x").to_string();
    let with_id = [JSON, ("request-correlation-id", uuid.as_str())];
    let update_path = "v3/services/tv/svc-1/devices/stb-1";
    let cases: Vec<RawCase<'_>> = vec![
        // Unknown service type in the path.
        (
            http::Method::POST,
            "v3/services/radio",
            with_id.to_vec(),
            json!({ "service_details": { "customer_id": "C" } }).to_string(),
        ),
        // Missing service_details.
        (
            http::Method::POST,
            "v3/services/tv",
            with_id.to_vec(),
            json!({ "service_id": "svc-1" }).to_string(),
        ),
        // Unknown top-level field.
        (
            http::Method::POST,
            "v3/services/tv",
            with_id.to_vec(),
            json!({ "service_details": { "customer_id": "C" }, "priority": 1 }).to_string(),
        ),
        // Not an object.
        (http::Method::POST, "v3/services/tv", with_id.to_vec(), "[]".to_owned()),
        // Correlation id that is not a UUID.
        (
            http::Method::POST,
            "v3/services/tv",
            vec![JSON, ("request-correlation-id", "journey-42")],
            json!({ "service_details": { "customer_id": "C" } }).to_string(),
        ),
        // Unknown category.
        (
            http::Method::PUT,
            update_path,
            with_id.to_vec(),
            json!({ "category": "PHONE", "new_service_device_details": { "model": "X" } })
                .to_string(),
        ),
        // Category in the wrong case.
        (
            http::Method::PUT,
            update_path,
            with_id.to_vec(),
            json!({ "category": "ESIM", "new_service_device_details": { "iccid": "8996601234567890123" } })
                .to_string(),
        ),
        // A malformed IMEI.
        (
            http::Method::PUT,
            update_path,
            with_id.to_vec(),
            json!({ "category": "SMARTPHONE", "new_service_device_details": { "imei": "12" } })
                .to_string(),
        ),
        // Empty device details.
        (
            http::Method::PUT,
            update_path,
            with_id.to_vec(),
            json!({ "category": "OTHER", "new_service_device_details": {} }).to_string(),
        ),
        // A device id with a space.
        (
            http::Method::PUT,
            "v3/services/tv/svc-1/devices/stb%201",
            with_id.to_vec(),
            json!({ "category": "STB", "new_service_device_details": { "model": "X" } })
                .to_string(),
        ),
    ];
    for (method, path, headers, body) in cases {
        let (status, answer) = raw(&sim, method, path, &headers, &body).await;
        assert_eq!(status, 400, "{path} {body}");
        assert_eq!(answer["code"], codes::BAD_REQUEST, "{path} {body}");
        assert!(answer["message"].is_string(), "{answer}");
    }
    assert!(sim.ledger().is_empty());

    // The client refuses invalid values before sending anything.
    let err = ServiceType::parse("radio").unwrap_err();
    assert!(matches!(err, ProviderError::Rejected { status: None, .. }));
    assert!(
        err.to_string().contains("expected one of multisim"),
        "{err}"
    );
    let err = DeviceCategory::parse("PHONE").unwrap_err();
    assert!(err.to_string().contains("WIFI_EXTENDER"), "{err}");
    let before = sim.requests().all().len();
    let mut bad = update(ServiceType::Tv, "svc-1", "stb-1");
    bad.new_service_device_details = DeviceDetails::default();
    let err = client(&sim)
        .update_service_device(&id("journey-invalid"), &bad)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Rejected { status: None, .. }),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Terminal);
    assert_eq!(sim.requests().all().len(), before, "nothing was sent");
}

#[tokio::test]
async fn a_request_without_a_correlation_id_gets_one_generated_and_echoed() {
    let mut hooks = Hooks::start().await;
    let sim = sim_with(&hooks, behaviour()).await;
    let token = sim.client_config().api_token.expose_secret().to_owned();
    let response = reqwest::Client::new()
        .post(sim.base_url().join("v3/services/tv").unwrap())
        .bearer_auth(token)
        .json(&json!({ "service_details": { "customer_id": "C" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let echoed = CorrelationId::parse(
        response
            .headers()
            .get("request-correlation-id")
            .unwrap()
            .to_str()
            .unwrap(),
    )
    .unwrap();
    let body: Value = response.json().await.unwrap();
    assert!(
        body["external_reference"]
            .as_str()
            .unwrap()
            .starts_with("SO-")
    );
    assert_eq!(hooks.next().await.event().correlation_id(), echoed);
}

// ---------------------------------------------------------------------------------------
// The event parser against what the simulator posts
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_parser_rejects_damaged_copies_of_a_real_event() {
    let mut hooks = Hooks::start().await;
    let sim = sim_with(&hooks, behaviour()).await;
    let journey = id("journey-damaged");
    client(&sim)
        .create_service(&journey, &create(ServiceType::Tv, Some("svc-x")))
        .await
        .unwrap();
    let received = hooks.next().await;
    let event = received.event();
    let kind = event.kind;
    let header = received.correlation.as_deref();

    // Round trip: the same body parses to the same event.
    assert_eq!(parse_event(kind, header, &received.body).unwrap(), event);

    assert_eq!(
        parse_event(kind, None, &received.body),
        Err(EventError::MissingCorrelationId { kind })
    );
    assert_eq!(
        parse_event(kind, Some("svc-x"), &received.body),
        Err(EventError::InvalidCorrelationId { kind })
    );
    let truncated = &received.body[..received.body.len() - 1];
    let err = parse_event(kind, header, truncated).unwrap_err();
    assert!(matches!(err, EventError::MalformedJson { .. }), "{err:?}");
    let mut without_title: Value = serde_json::from_slice(&received.body).unwrap();
    without_title.as_object_mut().unwrap().remove("title");
    let err = parse_event(kind, header, &serde_json::to_vec(&without_title).unwrap()).unwrap_err();
    assert_eq!(
        err,
        EventError::MissingField {
            kind,
            field: "title"
        }
    );
    assert_eq!(
        err.to_string(),
        "success_event: the required field `title` is missing"
    );
    assert_eq!(err.http_status(), StatusCode::BAD_REQUEST);
}

// ---------------------------------------------------------------------------------------
// Secrets and configuration
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn debug_output_of_configs_clients_and_requests_shows_no_secret() {
    let secret = "issued-token-4f0a9c77";
    let hooks = Hooks::start().await;
    let sim = ServiceOpsSim::start(
        sim_config(&hooks, behaviour()).with_api_token(SecretString::from(secret)),
    )
    .await
    .unwrap();
    let config = sim.client_config();
    let client = ServiceOpsClient::new(&config).unwrap();
    let providers = ProvidersConfig::from_sources(None, &|name| match name {
        "HANDOVER_SERVICE_OPS_BASE_URL" => Some(sim.base_url().to_string()),
        "HANDOVER_SERVICE_OPS_API_TOKEN" => Some(secret.to_owned()),
        _ => None,
    })
    .unwrap();
    let loaded = providers
        .service_ops
        .clone()
        .expect("section from the environment");
    assert_eq!(loaded.api_token.expose_secret(), secret);
    assert_eq!(loaded.base_url, *sim.base_url());

    let mut request = create(ServiceType::Mobile, Some("966512345678"));
    request.service_details.msisdn = Some("966512345678".into());
    let accepted: Accepted = client
        .create_service(&id("journey-debug"), &request)
        .await
        .unwrap();
    let recorded = sim.requests().all();
    let shown = format!(
        "{config:?} {config:#?} {client:?} {providers:?} {sim:?} {recorded:?} {request:?} {accepted:?}"
    );
    assert!(!shown.contains(secret), "{shown}");
    assert!(!shown.contains("966512345678"), "{shown}");
    assert!(shown.contains("REDACTED"), "{shown}");
}

#[test]
fn configuration_comes_from_toml_or_the_environment_and_names_missing_fields() {
    let config = ProvidersConfig::from_toml_str(
        "[service_ops]\nbase_url = \"https://api.provider.example/gw\"\napi_token = \"t\"\n\
         [service_ops.http]\ntimeout_ms = 4000\n",
    )
    .unwrap()
    .service_ops
    .unwrap();
    assert_eq!(config.base_url.as_str(), "https://api.provider.example/gw");
    assert_eq!(config.http.timeout_ms, 4000);

    let err = ProvidersConfig::from_sources(None, &|name| {
        (name == "HANDOVER_SERVICE_OPS_BASE_URL").then(|| "https://x.example".to_owned())
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("HANDOVER_SERVICE_OPS_API_TOKEN"),
        "{err}"
    );
    assert!(
        ProvidersConfig::from_sources(None, &|_| None)
            .unwrap()
            .service_ops
            .is_none()
    );
}

#[tokio::test]
async fn the_simulators_bundle_includes_service_ops() {
    let hooks = Hooks::start().await;
    let mut config = SimulatorsConfig::default();
    config.service_ops.callback_base_url = Some(hooks.base.clone());
    let sims = Simulators::start(config).await.unwrap();
    assert!(
        sims.urls()
            .iter()
            .any(|(p, u)| *p == Provider::ServiceOps && u == sims.service_ops.base_url())
    );
    let providers = sims.providers_config();
    let client = ServiceOpsClient::new(providers.service_ops.as_ref().unwrap()).unwrap();
    client
        .create_service(&id("journey-bundle"), &create(ServiceType::Tv, None))
        .await
        .unwrap();
    assert_eq!(
        sims.service_ops.callback_base_url().as_ref(),
        Some(&hooks.base)
    );
}

// ---------------------------------------------------------------------------------------
// Many journeys under the chaos mix: every request applied once, every outcome reported
// ---------------------------------------------------------------------------------------

/// A compressed J6 step: send until accepted, handling each error class as the module docs
/// say (re-send with the same id on anything but a terminal error).
async fn send_until_accepted(
    client: &ServiceOpsClient,
    journey: CorrelationId,
    index: usize,
) -> Accepted {
    for _ in 0..100 {
        let result = if index.is_multiple_of(2) {
            let request = create(ServiceType::Tv, Some(&format!("svc-chaos-{index}")));
            client.create_service(&journey, &request).await
        } else {
            let request = update(
                ServiceType::Applewatch,
                &format!("svc-seeded-{index}"),
                "watch-1",
            );
            client.update_service_device(&journey, &request).await
        };
        match result {
            Ok(accepted) => return accepted,
            Err(e) if e.class() == ErrorClass::Terminal => panic!("unexpected terminal error: {e}"),
            // Retryable and OutcomeUnknown alike: re-send with the same correlation id.
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    panic!("journey {index} was never accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_chaos_every_request_is_applied_once_and_reports_one_outcome() {
    const SEED: u64 = 17;
    const JOURNEYS: usize = 24;
    let faults = FaultPlan::chaos(SEED, 400);
    // The draws depend only on seed, endpoint and call number: make sure the dangerous
    // faults fall within the calls these journeys always make.
    let mut probe = faults.clone();
    for endpoint in [CREATE_SERVICE_ENDPOINT, UPDATE_SERVICE_DEVICE_ENDPOINT] {
        assert!(
            (0..JOURNEYS / 2)
                .filter_map(|_| probe.next(endpoint))
                .any(|f| f.after_effect()),
            "seed {SEED} has no after-effect fault early on {endpoint}"
        );
    }
    let mut hooks = Hooks::start().await;
    let delivery = DeliveryPlan::new(SEED)
        .rate(Delivery::normal().duplicated(1), 0.2)
        .rate(Delivery::normal().reordered(), 0.1)
        .rate(Delivery::normal().delayed(Duration::from_millis(30)), 0.1);
    let sim = ServiceOpsSim::start(
        sim_config(&hooks, behaviour())
            .with_faults(faults)
            .with_delivery(delivery),
    )
    .await
    .unwrap();
    for index in (1..JOURNEYS).step_by(2) {
        sim.add_service(ServiceType::Applewatch, &format!("svc-seeded-{index}"))
            .unwrap();
    }
    let client = ServiceOpsClient::new(&config_for(&sim, 150)).unwrap();

    let journeys: Vec<CorrelationId> = (0..JOURNEYS)
        .map(|i| id(&format!("journey-chaos-{i}")))
        .collect();
    let tasks = journeys.iter().enumerate().map(|(index, journey)| {
        let client = client.clone();
        let journey = *journey;
        tokio::spawn(async move { send_until_accepted(&client, journey, index).await })
    });
    for accepted in futures::future::join_all(tasks).await {
        accepted.unwrap();
    }

    // Wait for an outcome of every journey, de-duplicating as the ingress would.
    let mut outcomes: HashMap<CorrelationId, BTreeSet<_>> = HashMap::new();
    while outcomes.len() < JOURNEYS {
        let event = hooks.next().await.event();
        assert!(event.is_success(), "{event:?}");
        outcomes
            .entry(event.correlation_id())
            .or_default()
            .insert(event.dedupe_key());
    }
    for journey in &journeys {
        assert_eq!(service_changes(&sim, *journey), 1, "{journey}");
        assert_eq!(outcomes[journey].len(), 1, "one outcome for {journey}");
    }
    assert!(sim.ledger().duplicates().is_empty());
    assert!(sim.ledger().is_complete());
    assert_eq!(sim.ledger().len(), JOURNEYS);
    let injected = sim.faults().injected();
    for endpoint in [CREATE_SERVICE_ENDPOINT, UPDATE_SERVICE_DEVICE_ENDPOINT] {
        assert!(
            injected
                .iter()
                .any(|f| f.endpoint == endpoint && f.fault.after_effect()),
            "no after-effect fault on {endpoint}: {injected:?}"
        );
    }
}
