//! Contract tests: the Mobitel client against the Mobitel simulator over real HTTP on
//! loopback. The wire format is asserted on the simulator's side, from the raw requests it
//! received, so a drift between the document's names and the client shows up here.

use std::time::{Duration, Instant};

use handover_adapters::mobitel::{
    Amount, CHARGE_REQUEST_PATH, CLIENT_ID_HEADER, CONFIRM_PATH, ChargeReference, ChargeRequest,
    Receiver, status,
};
use handover_adapters::sim::mobitel::{
    CHARGE_REQUEST_ENDPOINT, CONFIRM_ENDPOINT, ChargeState, ConsentPolicy,
};
use handover_adapters::sim::{
    EffectKind, Fault, FaultPlan, MobitelBehaviour, MobitelSim, MobitelSimConfig,
};
use handover_adapters::{
    ConfirmOutcome, ErrorClass, MobitelClient, MobitelConfig, ProviderError, ProvidersConfig,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

const RECEIVER: &str = "0712755777";

async fn sim_with(behaviour: MobitelBehaviour) -> MobitelSim {
    MobitelSim::start(MobitelSimConfig::default().with_behaviour(behaviour))
        .await
        .expect("simulator starts")
}

async fn sim() -> MobitelSim {
    sim_with(MobitelBehaviour::default()).await
}

fn config_for(sim: &MobitelSim, timeout_ms: u64) -> MobitelConfig {
    let mut config = sim.client_config();
    config.http.timeout_ms = timeout_ms;
    // Tests fire calls back to back; the client-side limiter is tested in `http`.
    config.http.rate_per_second = 10_000;
    config.http.rate_burst = 10_000;
    config
}

fn client(sim: &MobitelSim) -> MobitelClient {
    MobitelClient::new(&config_for(sim, 2_000)).expect("client builds")
}

fn charge(rupees: u64, receiver: &str) -> ChargeRequest {
    ChargeRequest {
        amount: Amount::rupees(rupees).unwrap(),
        receiver: Receiver::parse(receiver).unwrap(),
    }
}

// ---------------------------------------------------------------------------------------
// Success paths and the wire format
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn charge_request_succeeds_with_the_documented_wire_format() {
    let sim = sim().await;
    let accepted = client(&sim)
        .charge_request(&charge(5, RECEIVER))
        .await
        .unwrap();

    let seen = sim.requests().last_to(CHARGE_REQUEST_PATH).unwrap();
    assert_eq!(seen.method, http::Method::POST);
    assert_eq!(seen.path, "/mobext/mapi/caas/chargRequest");
    assert_eq!(seen.query, None);
    assert_eq!(
        seen.header(CLIENT_ID_HEADER),
        Some(sim.client_config().client_id.expose_secret())
    );
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(seen.json_field_names(), ["amount", "receiver"]);
    assert_eq!(
        seen.json().unwrap(),
        json!({ "amount": "5", "receiver": RECEIVER })
    );

    let on_phone = sim.latest_for(RECEIVER).unwrap();
    assert_eq!(on_phone.reference, accepted.reference.as_str());
    assert_eq!(on_phone.state, ChargeState::Pending);
    assert_eq!(
        sim.ledger()
            .count(EffectKind::ChargeRequest, accepted.reference.as_str()),
        1
    );
    assert_eq!(
        sim.ledger().count_kind(EffectKind::Charge),
        0,
        "no money yet"
    );
}

#[tokio::test]
async fn pending_then_approved_then_confirmed_charges_exactly_once() {
    let sim = sim().await;
    let client = client(&sim);
    let reference = client
        .charge_request(&charge(5, RECEIVER))
        .await
        .unwrap()
        .reference;

    let outcome = client.confirm(&reference).await.unwrap();
    assert!(
        matches!(outcome, ConfirmOutcome::Pending { .. }),
        "{outcome:?}"
    );
    assert_eq!(sim.ledger().count_kind(EffectKind::Charge), 0);

    sim.approve(reference.as_str()).unwrap();
    let outcome = client.confirm(&reference).await.unwrap();
    assert_eq!(
        outcome,
        ConfirmOutcome::Approved {
            reference: reference.clone(),
            message: "Transaction successful.".into()
        }
    );

    // The confirm body is `{"ref": ...}`.
    let seen = sim.requests().last_to(CONFIRM_PATH).unwrap();
    assert_eq!(seen.json_field_names(), ["ref"]);
    assert_eq!(seen.json().unwrap(), json!({ "ref": reference.as_str() }));
    assert!(seen.header(CLIENT_ID_HEADER).is_some());

    // Confirming again (a retry after a lost answer) does not charge again.
    let again = client.confirm(&reference).await.unwrap();
    assert!(matches!(again, ConfirmOutcome::Approved { .. }));
    assert_eq!(
        sim.ledger().count(EffectKind::Charge, reference.as_str()),
        1
    );
    assert_eq!(sim.ledger().count_subject(EffectKind::Charge, RECEIVER), 1);
    assert!(sim.ledger().duplicates().is_empty());
}

#[tokio::test]
async fn declined_is_an_outcome_and_charges_nothing() {
    let sim = sim().await;
    let client = client(&sim);
    let reference = client
        .charge_request(&charge(5, RECEIVER))
        .await
        .unwrap()
        .reference;
    sim.decline(reference.as_str()).unwrap();
    let outcome = client.confirm(&reference).await.unwrap();
    assert!(
        matches!(outcome, ConfirmOutcome::Declined { .. }),
        "{outcome:?}"
    );
    assert_eq!(sim.ledger().count_kind(EffectKind::Charge), 0);
}

#[tokio::test]
async fn consent_expires_when_the_window_closes() {
    let sim = sim_with(
        MobitelBehaviour::default()
            .with_windows(Duration::from_millis(100), Duration::from_millis(150)),
    )
    .await;
    let client = client(&sim);
    let reference = client
        .charge_request(&charge(5, RECEIVER))
        .await
        .unwrap()
        .reference;
    assert!(matches!(
        client.confirm(&reference).await.unwrap(),
        ConfirmOutcome::Pending { .. }
    ));
    tokio::time::sleep(Duration::from_millis(120)).await;
    let outcome = client.confirm(&reference).await.unwrap();
    assert!(
        matches!(outcome, ConfirmOutcome::Expired { .. }),
        "{outcome:?}"
    );
    // A late approval cannot revive it.
    assert!(sim.approve(reference.as_str()).is_err());
    assert_eq!(sim.ledger().count_kind(EffectKind::Charge), 0);
}

#[tokio::test]
async fn reinitiation_is_refused_until_the_gap_has_passed() {
    let sim = sim_with(
        MobitelBehaviour::default()
            .with_windows(Duration::from_millis(100), Duration::from_millis(200)),
    )
    .await;
    let client = client(&sim);
    let first = client
        .charge_request(&charge(5, RECEIVER))
        .await
        .unwrap()
        .reference;
    sim.decline(first.as_str()).unwrap();

    let refused = client
        .charge_request(&charge(5, RECEIVER))
        .await
        .unwrap_err();
    assert_eq!(refused.refusal_code(), Some(status::TOO_SOON), "{refused}");
    assert_eq!(refused.class(), ErrorClass::Terminal);
    assert!(!refused.to_string().contains(RECEIVER), "{refused}");

    // Another customer is not affected.
    client
        .charge_request(&charge(5, "0771234567"))
        .await
        .unwrap();

    tokio::time::sleep(Duration::from_millis(210)).await;
    let second = client
        .charge_request(&charge(5, RECEIVER))
        .await
        .unwrap()
        .reference;
    assert_ne!(first, second);
    assert_eq!(
        sim.ledger()
            .count_subject(EffectKind::ChargeRequest, RECEIVER),
        2
    );
}

#[tokio::test]
async fn the_simulated_customer_can_approve_after_some_polls() {
    let sim =
        sim_with(MobitelBehaviour::default().with_consent(ConsentPolicy::ApproveAfterPolls(2)))
            .await;
    let client = client(&sim);
    let reference = client
        .charge_request(&charge(5, RECEIVER))
        .await
        .unwrap()
        .reference;
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        outcomes.push(client.confirm(&reference).await.unwrap());
    }
    assert!(matches!(outcomes[0], ConfirmOutcome::Pending { .. }));
    assert!(matches!(outcomes[1], ConfirmOutcome::Pending { .. }));
    assert!(matches!(outcomes[2], ConfirmOutcome::Approved { .. }));
    assert_eq!(
        sim.ledger().count(EffectKind::Charge, reference.as_str()),
        1
    );
}

// ---------------------------------------------------------------------------------------
// Error classes
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn rate_limited_carries_retry_after() {
    let sim = sim().await;
    sim.faults().script_next(
        CHARGE_REQUEST_ENDPOINT,
        Fault::RateLimited {
            retry_after_secs: Some(7),
        },
    );
    let client = client(&sim);
    let err = client
        .charge_request(&charge(5, RECEIVER))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(7)),
        "{err:?}"
    );
    assert_eq!(
        err.class(),
        ErrorClass::Retryable {
            retry_after: Some(Duration::from_secs(7))
        }
    );
    assert!(sim.ledger().is_empty(), "429 happens before any effect");
    // The next call goes through.
    client.charge_request(&charge(5, RECEIVER)).await.unwrap();
}

#[tokio::test]
async fn internal_error_is_retryable_and_applies_nothing() {
    let sim = sim().await;
    sim.faults()
        .script_next(CHARGE_REQUEST_ENDPOINT, Fault::InternalError);
    let err = client(&sim)
        .charge_request(&charge(5, RECEIVER))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Unavailable { status: Some(s), .. } if s == 500),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Retryable { retry_after: None });
    assert!(sim.ledger().is_empty());
}

#[tokio::test]
async fn service_unavailable_is_retryable_with_its_retry_after() {
    let sim = sim().await;
    sim.faults().script_next(
        CONFIRM_ENDPOINT,
        Fault::Unavailable {
            retry_after_secs: Some(2),
        },
    );
    let client = client(&sim);
    let reference = client
        .charge_request(&charge(5, RECEIVER))
        .await
        .unwrap()
        .reference;
    let err = client.confirm(&reference).await.unwrap_err();
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
}

#[tokio::test]
async fn gateway_timeout_after_the_effect_is_outcome_unknown_and_the_popup_was_sent() {
    let sim = sim().await;
    sim.faults().script_next(
        CHARGE_REQUEST_ENDPOINT,
        Fault::GatewayTimeout { after_effect: true },
    );
    let client = client(&sim);
    let err = client
        .charge_request(&charge(5, RECEIVER))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::OutcomeUnknown { .. }),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::OutcomeUnknown);
    // The pop-up went out even though we never learnt its reference...
    assert_eq!(
        sim.ledger()
            .count_subject(EffectKind::ChargeRequest, RECEIVER),
        1
    );
    // ...so re-sending at once is refused: the journey must wait the 2 minutes.
    let again = client
        .charge_request(&charge(5, RECEIVER))
        .await
        .unwrap_err();
    assert_eq!(again.refusal_code(), Some(status::TOO_SOON));
}

#[tokio::test]
async fn gateway_timeout_without_the_effect_is_outcome_unknown_and_nothing_happened() {
    let sim = sim().await;
    sim.faults().script_next(
        CHARGE_REQUEST_ENDPOINT,
        Fault::GatewayTimeout {
            after_effect: false,
        },
    );
    let err = client(&sim)
        .charge_request(&charge(5, RECEIVER))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::OutcomeUnknown, "{err:?}");
    assert!(sim.ledger().is_empty());
    assert!(sim.charge_requests().is_empty());
}

#[tokio::test]
async fn an_answer_slower_than_the_client_timeout_is_outcome_unknown() {
    let sim = sim().await;
    sim.faults()
        .script_next(CHARGE_REQUEST_ENDPOINT, Fault::SlowAnswer { delay_ms: 800 });
    let client = MobitelClient::new(&config_for(&sim, 150)).unwrap();
    let started = Instant::now();
    let err = client
        .charge_request(&charge(5, RECEIVER))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(700),
        "client timed out on time"
    );
    assert!(
        matches!(err, ProviderError::OutcomeUnknown { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("150 ms"), "{err}");
    assert_eq!(
        sim.ledger()
            .count_subject(EffectKind::ChargeRequest, RECEIVER),
        1
    );
}

#[tokio::test]
async fn a_connection_dropped_after_the_effect_is_outcome_unknown() {
    let sim = sim().await;
    sim.faults().script_next(
        CHARGE_REQUEST_ENDPOINT,
        Fault::DropConnection { after_effect: true },
    );
    let client = client(&sim);
    let err = client
        .charge_request(&charge(5, RECEIVER))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::OutcomeUnknown { .. }),
        "{err:?}"
    );
    assert_eq!(
        sim.ledger()
            .count_subject(EffectKind::ChargeRequest, RECEIVER),
        1
    );
    // The client recovers: the next call, on a new connection, works.
    client
        .charge_request(&charge(5, "0771234567"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_connection_dropped_before_the_effect_is_still_outcome_unknown_to_the_client() {
    let sim = sim().await;
    sim.faults().script_next(
        CHARGE_REQUEST_ENDPOINT,
        Fault::DropConnection {
            after_effect: false,
        },
    );
    let err = client(&sim)
        .charge_request(&charge(5, RECEIVER))
        .await
        .unwrap_err();
    // The client cannot tell the two drops apart, so it must assume the worst.
    assert_eq!(err.class(), ErrorClass::OutcomeUnknown, "{err:?}");
    assert!(sim.ledger().is_empty());
}

#[tokio::test]
async fn a_lost_confirm_answer_is_reconciled_by_confirming_again_without_double_charge() {
    let sim = sim().await;
    let client = client(&sim);
    let reference = client
        .charge_request(&charge(5, RECEIVER))
        .await
        .unwrap()
        .reference;
    sim.approve(reference.as_str()).unwrap();
    sim.faults().script_next(
        CONFIRM_ENDPOINT,
        Fault::GatewayTimeout { after_effect: true },
    );

    let err = client.confirm(&reference).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::OutcomeUnknown, "{err:?}");
    assert_eq!(
        sim.ledger().count(EffectKind::Charge, reference.as_str()),
        1,
        "charged"
    );

    let outcome = client.confirm(&reference).await.unwrap();
    assert!(matches!(outcome, ConfirmOutcome::Approved { .. }));
    assert_eq!(
        sim.ledger().count(EffectKind::Charge, reference.as_str()),
        1,
        "once"
    );
}

#[tokio::test]
async fn business_refusals_are_terminal_with_code_and_a_masked_message() {
    let sim = sim().await;
    sim.faults().script_next(
        CHARGE_REQUEST_ENDPOINT,
        Fault::refusal(
            status::INSUFFICIENT_BALANCE,
            "Insufficient balance on 0712755777",
        ),
    );
    let err = client(&sim)
        .charge_request(&charge(5, RECEIVER))
        .await
        .unwrap_err();
    match &err {
        ProviderError::Refused { code, message, .. } => {
            assert_eq!(code.as_deref(), Some(status::INSUFFICIENT_BALANCE));
            assert_eq!(message, "Insufficient balance on 07******77");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(err.class(), ErrorClass::Terminal);
    assert!(sim.ledger().is_empty());
}

#[tokio::test]
async fn an_unknown_reference_is_rejected() {
    let sim = sim().await;
    let err = client(&sim)
        .confirm(&ChargeReference::new("999999999999999").unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Rejected { status: Some(s), .. } if s == 404),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Terminal);
}

#[tokio::test]
async fn nothing_listening_is_a_transport_error() {
    let sim = sim().await;
    let config = config_for(&sim, 1_000);
    drop(sim);
    let err = MobitelClient::new(&config)
        .unwrap()
        .charge_request(&charge(5, RECEIVER))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Transport { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Retryable { retry_after: None });
}

// ---------------------------------------------------------------------------------------
// Authentication and validation, as the gateway and the backend would
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_missing_client_id_is_refused_by_the_gateway() {
    let sim = sim().await;
    let response = reqwest::Client::new()
        .post(sim.base_url().join(CHARGE_REQUEST_PATH).unwrap())
        .json(&json!({ "amount": "5", "receiver": RECEIVER }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["httpCode"], "401");
    assert_eq!(body["httpMessage"], "Unauthorized");
    assert!(body["moreInformation"].is_string());
    assert!(sim.ledger().is_empty());
    assert!(sim.charge_requests().is_empty());
}

#[tokio::test]
async fn a_wrong_client_id_is_an_auth_error_that_does_not_echo_it() {
    let sim = sim().await;
    let wrong = "not-the-registered-client-id-5d1c";
    let mut config = config_for(&sim, 2_000);
    config.client_id = SecretString::from(wrong);
    let err = MobitelClient::new(&config)
        .unwrap()
        .charge_request(&charge(5, RECEIVER))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Auth { status, .. } if status == 401),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Terminal);
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains(wrong), "{shown}");
        assert!(!shown.contains(RECEIVER), "{shown}");
    }
    assert!(sim.ledger().is_empty());
}

#[tokio::test]
async fn malformed_bodies_are_rejected_with_400() {
    let sim = sim().await;
    let http = reqwest::Client::new();
    let url = sim.base_url().join(CHARGE_REQUEST_PATH).unwrap();
    let client_id = sim.client_config().client_id.expose_secret().to_owned();
    for body in [
        json!({ "amount": 5, "receiver": RECEIVER }),
        json!({ "amount": "-5", "receiver": RECEIVER }),
        json!({ "amount": "5", "customer": RECEIVER }),
        json!({ "amount": "5", "receiver": "712755777" }),
        json!(["not", "an", "object"]),
    ] {
        let response = http
            .post(url.clone())
            .header(CLIENT_ID_HEADER, &client_id)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let answer: serde_json::Value = response.json().await.unwrap();
        assert_eq!(answer["status"], status::INVALID_REQUEST, "{body}");
    }
    assert!(sim.ledger().is_empty());

    // The client refuses to send a bad number at all.
    let err = Receiver::parse("0812755777").unwrap_err();
    assert!(matches!(err, ProviderError::Rejected { status: None, .. }));
}

// ---------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn debug_output_of_configs_and_clients_shows_no_secret() {
    let secret = "registered-client-id-3b9f0e";
    let sim = MobitelSim::start(MobitelSimConfig::default().with_client_id(secret.into()))
        .await
        .unwrap();
    let config = sim.client_config();
    let client = MobitelClient::new(&config).unwrap();
    let providers = ProvidersConfig::from_sources(None, &|name| match name {
        "HANDOVER_MOBITEL_BASE_URL" => Some(sim.base_url().to_string()),
        "HANDOVER_MOBITEL_CLIENT_ID" => Some(secret.to_owned()),
        _ => None,
    })
    .unwrap();
    // The requests the simulator recorded carry the header; their Debug must not.
    client.charge_request(&charge(5, RECEIVER)).await.unwrap();
    let recorded = sim.requests().all();

    let shown = format!(
        "{config:?} {config:#?} {client:?} {providers:?} {sim:?} {recorded:?} {:?}",
        charge(5, RECEIVER)
    );
    assert!(!shown.contains(secret), "{shown}");
    assert!(!shown.contains(RECEIVER), "{shown}");
}

// ---------------------------------------------------------------------------------------
// Many journeys under the chaos mix: every customer is charged exactly once
// ---------------------------------------------------------------------------------------

/// A compressed J5: initiate, confirm until approved, handling every error class the way
/// the journey rules say. Returns the reference that was charged.
async fn charge_journey(
    client: &MobitelClient,
    receiver: &str,
    reinitiate_gap: Duration,
) -> ChargeReference {
    let mut reference = None;
    for _ in 0..200 {
        let Some(current) = reference.clone() else {
            match client.charge_request(&charge(5, receiver)).await {
                Ok(accepted) => reference = Some(accepted.reference),
                Err(e) if e.refusal_code() == Some(status::TOO_SOON) => {
                    tokio::time::sleep(reinitiate_gap / 4).await;
                }
                // No status query exists: wait out the gap, then initiate again.
                Err(e) if e.class() == ErrorClass::OutcomeUnknown => {
                    tokio::time::sleep(reinitiate_gap).await;
                }
                Err(e) => match e.class() {
                    ErrorClass::Retryable { .. } => {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    _ => panic!("unexpected terminal error: {e}"),
                },
            }
            continue;
        };
        match client.confirm(&current).await {
            Ok(ConfirmOutcome::Approved { .. }) => return current,
            Ok(ConfirmOutcome::Pending { .. }) => {}
            Ok(ConfirmOutcome::Declined { .. } | ConfirmOutcome::Expired { .. }) => {
                reference = None;
            }
            // Confirm is reconciled by confirming again with the same reference.
            Err(e) if e.class() != ErrorClass::Terminal => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => panic!("unexpected terminal error: {e}"),
        }
    }
    panic!("journey for {receiver} did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_chaos_every_customer_is_charged_exactly_once() {
    let gap = Duration::from_millis(120);
    let sim = MobitelSim::start(
        MobitelSimConfig::default()
            .with_behaviour(
                MobitelBehaviour::default()
                    .with_consent(ConsentPolicy::ApproveAfterPolls(1))
                    .with_windows(Duration::from_millis(100), gap),
            )
            .with_faults(FaultPlan::chaos(42, 400)),
    )
    .await
    .unwrap();
    let client = MobitelClient::new(&config_for(&sim, 150)).unwrap();

    let receivers: Vec<String> = (0..24).map(|i| format!("07700000{i:02}")).collect();
    let journeys = receivers.iter().map(|r| {
        let client = client.clone();
        let r = r.clone();
        tokio::spawn(async move { charge_journey(&client, &r, gap).await })
    });
    let charged = futures::future::join_all(journeys).await;

    for (receiver, reference) in receivers.iter().zip(charged) {
        let reference = reference.unwrap();
        assert_eq!(
            sim.ledger().count_subject(EffectKind::Charge, receiver),
            1,
            "{receiver}"
        );
        assert_eq!(
            sim.ledger().count(EffectKind::Charge, reference.as_str()),
            1
        );
    }
    assert!(sim.ledger().duplicates().is_empty());
    assert!(sim.ledger().is_complete());
    // The dangerous faults really happened on both endpoints. With seed 42 the draws put
    // after-effect faults within the first 24 charge requests and the first 48 confirms,
    // which 24 journeys always reach, so this holds whatever the interleaving.
    let injected = sim.faults().injected();
    for endpoint in [CHARGE_REQUEST_ENDPOINT, CONFIRM_ENDPOINT] {
        assert!(
            injected
                .iter()
                .any(|f| f.endpoint == endpoint && f.fault.after_effect()),
            "no after-effect fault on {endpoint}: {injected:?}"
        );
    }
}
