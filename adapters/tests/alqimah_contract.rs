//! Contract tests: the Al-Qimah client against the Al-Qimah simulator over real HTTP on
//! loopback. The wire format is asserted on the simulator's side, from the raw requests it
//! received; webhooks are received by a small HTTP server standing in for the engine's
//! ingress and parsed with the public parser.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::routing::get;
use handover_adapters::alqimah::{
    API_PATH, API_TOKEN_HEADER, Amount, GameFields, LOGIN, LOGIN_PATH, MobileNumber,
    OperationStatus, PaymentRequest, Product, ProductCode, Quantity, Reconciled, RefusalReason,
    ServiceRef, StatusLookup, TransactionId, WebHookCode, login_token, parse_webhook,
};
use handover_adapters::sim::alqimah::{
    BALANCE_ENDPOINT, DEFAULT_ACCOUNT_NUMBER, Final, LOGIN_ENDPOINT, OperationState,
    PAYMENT_ENDPOINT, PaymentScript, PendingMode, STATUS_ENDPOINT, SettleAfter, SimAccount,
    messages, refusal,
};
use handover_adapters::sim::{
    AlQimahBehaviour, AlQimahSim, AlQimahSimConfig, Delivery, DeliveryPlan, EffectKind, Fault,
    FaultPlan, Simulators, SimulatorsConfig,
};
use handover_adapters::{
    AlQimahClient, AlQimahConfig, ErrorClass, Provider, ProviderError, ProvidersConfig,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::Notify;
use url::Url;

const MOBILE: &str = "777123456";
const OTHER_MOBILE: &str = "771234567";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

async fn start(config: AlQimahSimConfig) -> AlQimahSim {
    AlQimahSim::start(config).await.expect("simulator starts")
}

async fn sim() -> AlQimahSim {
    start(AlQimahSimConfig::default()).await
}

fn config_for(sim: &AlQimahSim, timeout_ms: u64) -> AlQimahConfig {
    let mut config = sim.client_config();
    config.http.timeout_ms = timeout_ms;
    // Tests fire calls back to back; the client-side limiter is tested in `http`.
    config.http.rate_per_second = 10_000;
    config.http.rate_burst = 10_000;
    config
}

fn client(sim: &AlQimahSim) -> AlQimahClient {
    AlQimahClient::new(&config_for(sim, 2_000)).expect("client builds")
}

fn tx(id: u64) -> TransactionId {
    TransactionId::new(id).unwrap()
}

fn topup(id: u64, mobile: &str, amount: u64) -> PaymentRequest {
    PaymentRequest {
        transaction_id: tx(id),
        service: ServiceRef::new(1, 103).unwrap(),
        product: Product::TopUp {
            mobile: MobileNumber::parse(mobile).unwrap(),
            amount: Amount::new(amount).unwrap(),
        },
        webhook_code: WebHookCode::generate(),
    }
}

fn balance_of(sim: &AlQimahSim) -> u64 {
    sim.balance(DEFAULT_ACCOUNT_NUMBER).unwrap()
}

/// The engine's ingress, for tests: records every webhook's raw query string.
struct Ingress {
    url: Url,
    received: Received,
}

/// Raw query strings received, and a wake-up for each arrival.
#[derive(Clone, Default)]
struct Received {
    queries: Arc<Mutex<Vec<String>>>,
    arrived: Arc<Notify>,
}

async fn record_webhook(
    State(received): State<Received>,
    RawQuery(query): RawQuery,
) -> &'static str {
    received
        .queries
        .lock()
        .unwrap()
        .push(query.unwrap_or_default());
    received.arrived.notify_one();
    "ok"
}

impl Ingress {
    async fn start() -> Self {
        let received = Received::default();
        let router = Router::new()
            .route("/ingress/alqimah", get(record_webhook))
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            url: Url::parse(&format!("http://{addr}/ingress/alqimah")).unwrap(),
            received,
        }
    }

    fn all(&self) -> Vec<String> {
        self.received.queries.lock().unwrap().clone()
    }

    /// Waits (at most 5 s, woken by each arrival) until `n` webhooks have arrived.
    async fn wait_for(&self, n: usize) -> Vec<String> {
        let waited = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if self.received.queries.lock().unwrap().len() >= n {
                    return;
                }
                self.received.arrived.notified().await;
            }
        })
        .await;
        let all = self.all();
        assert!(waited.is_ok(), "expected {n} webhooks, got {all:?}");
        all
    }
}

async fn sim_with_ingress(config: AlQimahSimConfig) -> (AlQimahSim, Ingress) {
    let ingress = Ingress::start().await;
    let sim = start(config.with_webhook_url(ingress.url.clone())).await;
    (sim, ingress)
}

fn script(sim: &AlQimahSim, after: SettleAfter, to: Final) {
    sim.script_next_payment(PaymentScript::Pending { after, to });
}

// ---------------------------------------------------------------------------------------
// Login and the access token
// ---------------------------------------------------------------------------------------

#[test]
fn login_token_matches_an_independent_md5_construction() {
    // md5("YourPassword") and the outer md5 computed with Python's hashlib and coreutils
    // md5sum from the document's C# example inputs.
    let inner_md5_of_password = "40b60d6b8ce8a0b51afa7d3d84438029";
    let expected = "faff96f59f943d56a5ed279e82060442";
    let token = login_token(
        "YourUserName",
        "YourAccountNumber",
        &SecretString::from("YourPassword"),
        &SecretString::from("YourApiToken"),
    );
    assert_eq!(token.expose_secret(), expected);
    // The same construction spelt out with the md5 crate and the known inner value:
    // md5(user + account + md5(password) + api token), lowercase hex.
    let md5_hex = |bytes: &[u8]| -> String {
        use md5::Digest;
        md5::Md5::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert_eq!(md5_hex(b"YourPassword"), inner_md5_of_password);
    let composed = format!("YourUserNameYourAccountNumber{inner_md5_of_password}YourApiToken");
    assert_eq!(md5_hex(composed.as_bytes()), expected);
    assert_ne!(
        login_token(
            "YourAccountNumber",
            "YourUserName",
            &SecretString::from("YourPassword"),
            &SecretString::from("YourApiToken"),
        )
        .expose_secret(),
        expected,
        "order matters"
    );
    // UTF-8, as the C# example's Encoding.UTF8 (also computed with hashlib).
    let arabic = login_token(
        "وكيل",
        "100234",
        &SecretString::from("كلمة-سر"),
        &SecretString::from("tok€n"),
    );
    assert_eq!(arabic.expose_secret(), "06e311b30687065a392da7b3b6d026ce");
}

#[tokio::test]
async fn the_first_call_logs_in_with_the_documented_body_then_sends_the_token_header() {
    let sim = sim().await;
    let client = client(&sim);
    let balance = client.balance().await.unwrap();
    assert_eq!(balance.balance.as_str(), "1000000");
    assert_eq!(balance.message, messages::BALANCE_SUCCESS);

    let login = sim.requests().last_to(LOGIN_PATH).unwrap();
    assert_eq!(login.method, http::Method::POST);
    assert_eq!(login.path, "/rest-api/login");
    assert_eq!(login.header("content-type"), Some("application/json"));
    assert_eq!(
        login.json_field_names(),
        ["AccountNumber", "Token", "UserName"]
    );
    // Computed independently (Python hashlib) from the simulator's default credentials.
    assert_eq!(
        login.json().unwrap(),
        json!({
            "AccountNumber": "1000001",
            "UserName": "handover-sim",
            "Token": "c87d3e618734c456050332c5f48b8cc5",
        })
    );
    assert!(login.header(API_TOKEN_HEADER).is_none());

    let call = sim.requests().last_to(API_PATH).unwrap();
    assert_eq!(call.path, "/rest-api/");
    assert_eq!(call.header("content-type"), Some("application/json"));
    assert_eq!(
        call.json().unwrap(),
        json!({ "NetworkNumber": 0, "ServiceNumber": 1 })
    );
    let token = call.header(API_TOKEN_HEADER).unwrap().to_owned();
    assert_eq!(token.len(), 40);

    // The token is cached: the next call reuses it without logging in.
    client.balance().await.unwrap();
    assert_eq!(sim.logins(), 1);
    assert_eq!(
        sim.requests()
            .last_to(API_PATH)
            .unwrap()
            .header(API_TOKEN_HEADER),
        Some(token.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_journeys_share_one_login() {
    let sim = sim().await;
    let client = client(&sim);
    let calls = (0..16).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.balance().await })
    });
    for result in futures::future::join_all(calls).await {
        result.unwrap().unwrap();
    }
    assert_eq!(sim.logins(), 1);
    assert_eq!(sim.requests().count_to(LOGIN_PATH), 1);
}

#[tokio::test]
async fn wrong_credentials_are_a_terminal_login_failure_that_echoes_no_secret() {
    let sim = sim().await;
    let wrong = "not-the-right-secret-8d2f";
    let mut cases = Vec::new();
    let mut c = config_for(&sim, 2_000);
    c.password = SecretString::from(wrong);
    cases.push(c);
    let mut c = config_for(&sim, 2_000);
    c.api_token = SecretString::from(wrong);
    cases.push(c);
    let mut c = config_for(&sim, 2_000);
    c.user_name = "someone-else".into();
    cases.push(c);

    for config in cases {
        let err = AlQimahClient::new(&config)
            .unwrap()
            .balance()
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ProviderError::Auth { status, operation, message, .. }
                if *status == 401 && *operation == LOGIN && message.contains(messages::LOGIN_FAILED)),
            "{err:?}"
        );
        assert_eq!(err.class(), ErrorClass::Terminal);
        assert_eq!(RefusalReason::of(&err), Some(RefusalReason::LoginFailed));
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(wrong), "{shown}");
        assert!(
            !shown.contains(sim.client_config().password.expose_secret()),
            "{shown}"
        );
    }
    assert_eq!(sim.logins(), 0);
    assert_eq!(
        sim.requests().count_to(API_PATH),
        0,
        "no call without a token"
    );
}

#[tokio::test]
async fn the_token_is_renewed_before_token_expires() {
    let sim =
        start(AlQimahSimConfig::default().with_behaviour(
            AlQimahBehaviour::default().with_token_lifetime(Duration::from_secs(2)),
        ))
        .await;
    let mut config = config_for(&sim, 2_000);
    config.token_refresh_skew_ms = 1_500;
    let client = AlQimahClient::new(&config).unwrap();

    client.balance().await.unwrap();
    client.balance().await.unwrap();
    assert_eq!(sim.logins(), 1, "fresh token reused");

    // token_expires has a resolution of one second, so the shortest meaningful wait is
    // about one: past half of the announced lifetime (the cache's skew cap), well before the
    // real expiry at 2 s.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    client.balance().await.unwrap();
    assert_eq!(sim.logins(), 2, "renewed ahead of expiry");
    assert_eq!(sim.token_rejections(), 0, "never sent an expired token");
    let tokens: Vec<String> = sim
        .requests()
        .all()
        .iter()
        .filter(|r| r.path == API_PATH)
        .filter_map(|r| r.header(API_TOKEN_HEADER).map(str::to_owned))
        .collect();
    assert_eq!(tokens.len(), 3);
    assert_eq!(tokens[0], tokens[1]);
    assert_ne!(tokens[1], tokens[2]);
}

#[tokio::test]
async fn an_expired_token_is_renewed_once_and_the_payment_goes_through_once() {
    let sim = sim().await;
    let client = client(&sim);
    client.balance().await.unwrap();
    sim.expire_tokens();

    let report = client.pay(&topup(501, MOBILE, 100)).await.unwrap();
    assert_eq!(report.status, OperationStatus::Succeeded);
    assert_eq!(sim.token_rejections(), 1);
    assert_eq!(sim.logins(), 2);
    // The refused attempt was not processed; the retry paid once.
    assert_eq!(sim.payment_requests().len(), 2);
    assert_eq!(sim.ledger().count(EffectKind::Payment, "501"), 1);
}

#[tokio::test]
async fn a_token_refused_again_after_a_fresh_login_is_an_auth_error() {
    let sim = sim().await;
    for _ in 0..2 {
        sim.faults()
            .script_next(BALANCE_ENDPOINT, refusal(messages::TOKEN_EXPIRED));
    }
    let err = client(&sim).balance().await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Auth { status, operation, .. } if *status == 401 && operation.as_str() == "alqimah.balance"),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Terminal);
    assert_eq!(RefusalReason::of(&err), Some(RefusalReason::TokenRejected));
    assert_eq!(sim.logins(), 2, "one re-login, no more");
    assert_eq!(sim.requests().count_to(API_PATH), 2, "one retry, no more");
}

// ---------------------------------------------------------------------------------------
// Balance and payments
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn balances_are_per_account() {
    let second = SimAccount::new(
        "2000002",
        "second-agent",
        SecretString::from("second-password"),
        SecretString::from("second-api-token"),
        750,
    );
    let sim = start(
        AlQimahSimConfig::default().with_accounts(vec![SimAccount::default(), second.clone()]),
    )
    .await;
    let first_client = client(&sim);
    let mut config = config_for(&sim, 2_000);
    config.account_number = second.account_number.clone();
    config.user_name = second.user_name.clone();
    config.password = second.password.clone();
    config.api_token = second.api_token.clone();
    let second_client = AlQimahClient::new(&config).unwrap();

    first_client.pay(&topup(601, MOBILE, 100)).await.unwrap();
    assert_eq!(
        first_client.balance().await.unwrap().balance.as_str(),
        "999900"
    );
    assert_eq!(
        second_client.balance().await.unwrap().balance.as_str(),
        "750"
    );
    // One account cannot see another's operations.
    assert!(matches!(
        second_client.operation_status(tx(601)).await.unwrap(),
        StatusLookup::NotFound { .. }
    ));
}

#[tokio::test]
async fn a_top_up_succeeds_with_the_documented_wire_format_and_pays_once() {
    let (sim, ingress) = sim_with_ingress(AlQimahSimConfig::default()).await;
    let client = client(&sim);
    let request = topup(1234, MOBILE, 100);
    let report = client.pay(&request).await.unwrap();

    assert_eq!(report.status, OperationStatus::Succeeded);
    assert_eq!(report.transaction_id, tx(1234));
    assert_eq!(report.price.as_ref().map(|p| p.as_str()), Some("100"));
    assert_eq!(
        report.agent_balance.as_ref().map(|p| p.as_str()),
        Some("999900")
    );
    assert_eq!(report.message, messages::PAYMENT_SUCCESS);
    let reference = report.reference_id.clone().unwrap();

    let seen = sim.payment_requests();
    assert_eq!(seen.len(), 1);
    let seen = &seen[0];
    assert_eq!(seen.method, http::Method::POST);
    assert_eq!(seen.path, "/rest-api/");
    assert!(seen.header(API_TOKEN_HEADER).is_some());
    assert_eq!(
        seen.json().unwrap(),
        json!({
            "NetworkNumber": 1,
            "ServiceNumber": 103,
            "MobileNumber": MOBILE,
            "Amount": 100,
            "TransactionID": 1234,
            "WebHookURL": ingress.url.as_str(),
            "WebHookCode": request.webhook_code.expose_secret(),
        })
    );

    assert_eq!(sim.ledger().count(EffectKind::Payment, "1234"), 1);
    assert_eq!(sim.ledger().count_subject(EffectKind::Payment, MOBILE), 1);
    assert_eq!(balance_of(&sim), 999_900);

    // The webhook: the documented GET query, parsed by the ingress parser.
    let hooks = ingress.wait_for(1).await;
    let hook = parse_webhook(&hooks[0]).unwrap();
    assert_eq!(hook.operation_status, OperationStatus::Succeeded);
    assert_eq!(hook.correlation(), tx(1234));
    assert_eq!(hook.reference_id, reference);
    assert_eq!(hook.price.as_str(), "100");
    assert_eq!(hook.message, messages::READY);
    assert_eq!(hook.dedupe_key().as_str(), "1234:1");
    assert!(hook.verify_code(&request.webhook_code));
    let names: Vec<String> = url::form_urlencoded::parse(hooks[0].as_bytes())
        .map(|(k, _)| k.into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "OperationStatus",
            "WebHookCode",
            "TransactionID",
            "ReferenceID",
            "price",
            "message"
        ]
    );
}

#[tokio::test]
async fn offers_and_game_cards_send_their_own_fields() {
    let sim = sim().await;
    let client = client(&sim);
    let offer = PaymentRequest {
        transaction_id: tx(701),
        service: ServiceRef::new(2, 202).unwrap(),
        product: Product::Offer {
            mobile: MobileNumber::parse(MOBILE).unwrap(),
            offer_code: ProductCode::parse("PREWhatsApp").unwrap(),
        },
        webhook_code: WebHookCode::generate(),
    };
    let report = client.pay(&offer).await.unwrap();
    assert_eq!(report.price.unwrap().as_str(), "500");
    assert_eq!(
        sim.payment_requests()[0].json().unwrap(),
        json!({
            "NetworkNumber": 2, "ServiceNumber": 202, "MobileNumber": MOBILE,
            "OfferCode": "PREWhatsApp", "TransactionID": 701,
        }),
        "no webhook URL configured: no webhook fields"
    );

    let game = PaymentRequest {
        transaction_id: tx(702),
        service: ServiceRef::new(8, 801).unwrap(),
        product: Product::GameCard {
            mobile: None,
            link_code: ProductCode::parse("freefire_diamonds").unwrap(),
            fields: GameFields::new()
                .with("PlayerID", "5123456789")
                .unwrap()
                .with("ZoneID", "7")
                .unwrap(),
            quantity: Some(Quantity::new(50).unwrap()),
        },
        webhook_code: WebHookCode::generate(),
    };
    let report = client.pay(&game).await.unwrap();
    assert_eq!(report.status, OperationStatus::Succeeded);
    assert_eq!(report.price.unwrap().as_str(), "500");
    assert_eq!(
        sim.payment_requests()[1].json().unwrap(),
        json!({
            "NetworkNumber": 8, "ServiceNumber": 801, "LinkCode": "freefire_diamonds",
            "Fields": { "PlayerID": "5123456789", "ZoneID": "7" },
            "Quantity": 50, "TransactionID": 702,
        })
    );
    assert_eq!(sim.ledger().count_kind(EffectKind::Payment), 2);
    assert_eq!(balance_of(&sim), 1_000_000 - 1_000);
}

#[tokio::test]
async fn a_failed_payment_is_an_outcome_and_takes_nothing() {
    let (sim, ingress) = sim_with_ingress(AlQimahSimConfig::default()).await;
    sim.script_next_payment(PaymentScript::Immediate(Final::Failed));
    let client = client(&sim);
    let request = topup(801, MOBILE, 100);
    let report = client.pay(&request).await.unwrap();
    assert_eq!(report.status, OperationStatus::Failed);
    assert_eq!(report.message, messages::CANCELLED);
    assert_eq!(sim.ledger().count_kind(EffectKind::Payment), 0);
    assert_eq!(balance_of(&sim), 1_000_000);

    let hook = parse_webhook(&ingress.wait_for(1).await[0]).unwrap();
    assert_eq!(hook.operation_status, OperationStatus::Failed);
    assert_eq!(hook.dedupe_key().as_str(), "801:0");

    // A failed operation consumed its TransactionID.
    let again = client.pay(&request).await.unwrap_err();
    assert!(matches!(again, ProviderError::Conflict { .. }), "{again:?}");
}

#[tokio::test]
async fn a_pending_payment_settles_through_status_queries() {
    let (sim, ingress) = sim_with_ingress(AlQimahSimConfig::default()).await;
    script(&sim, SettleAfter::Polls(2), Final::Succeeded);
    let client = client(&sim);
    let request = topup(901, MOBILE, 100);

    let report = client.pay(&request).await.unwrap();
    assert_eq!(report.status, OperationStatus::Pending);
    assert_eq!(report.message, messages::PENDING);
    assert_eq!(sim.ledger().count(EffectKind::Payment, "901"), 1, "debited");
    assert!(ingress.all().is_empty(), "no webhook while pending");

    let mut seen = Vec::new();
    for _ in 0..3 {
        match client.operation_status(tx(901)).await.unwrap() {
            StatusLookup::Found(r) => seen.push(r.status),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        seen,
        [
            OperationStatus::Pending,
            OperationStatus::Pending,
            OperationStatus::Succeeded
        ]
    );
    // The status answer: the document's fields, our number back.
    let StatusLookup::Found(last) = client.operation_status(tx(901)).await.unwrap() else {
        panic!("known");
    };
    assert_eq!(last.mobile.as_ref().map(MobileNumber::as_str), Some(MOBILE));
    assert_eq!(last.message, messages::READY);
    assert!(last.details.is_some());
    assert_eq!(
        sim.requests().last_to(API_PATH).unwrap().json().unwrap(),
        json!({ "NetworkNumber": 0, "ServiceNumber": 2, "TransactionID": 901 })
    );

    let hook = parse_webhook(&ingress.wait_for(1).await[0]).unwrap();
    assert_eq!(hook.operation_status, OperationStatus::Succeeded);
    assert!(hook.verify_code(&request.webhook_code));
    assert_eq!(sim.ledger().count(EffectKind::Payment, "901"), 1);
}

#[tokio::test]
async fn a_pending_payment_can_be_settled_by_the_webhook_first() {
    let (sim, ingress) = sim_with_ingress(AlQimahSimConfig::default()).await;
    script(
        &sim,
        SettleAfter::Delay(Duration::from_millis(30)),
        Final::Succeeded,
    );
    let client = client(&sim);
    let request = topup(902, MOBILE, 100);
    assert_eq!(
        client.pay(&request).await.unwrap().status,
        OperationStatus::Pending
    );

    // Nobody polls: the back office settles it and the webhook tells us.
    let hook = parse_webhook(&ingress.wait_for(1).await[0]).unwrap();
    assert_eq!(hook.operation_status, OperationStatus::Succeeded);
    assert_eq!(hook.correlation(), request.transaction_id);
    assert!(hook.verify_code(&request.webhook_code));
    // The status query agrees.
    let StatusLookup::Found(report) = client.operation_status(tx(902)).await.unwrap() else {
        panic!("known");
    };
    assert_eq!(report.status, OperationStatus::Succeeded);
    assert_eq!(sim.operation(902).unwrap().polls, 0);
}

#[tokio::test]
async fn a_pending_payment_that_fails_is_refunded() {
    let (sim, ingress) = sim_with_ingress(AlQimahSimConfig::default()).await;
    script(&sim, SettleAfter::Manual, Final::Succeeded);
    let client = client(&sim);
    client.pay(&topup(903, MOBILE, 250)).await.unwrap();
    assert_eq!(balance_of(&sim), 999_750);
    assert!(matches!(
        client.operation_status(tx(903)).await.unwrap(),
        StatusLookup::Found(r) if r.status == OperationStatus::Pending
    ));

    sim.settle(903, Final::Failed).await.unwrap();
    let hook = parse_webhook(&ingress.wait_for(1).await[0]).unwrap();
    assert_eq!(hook.operation_status, OperationStatus::Failed);
    assert_eq!(hook.message, messages::CANCELLED);
    assert!(matches!(
        client.operation_status(tx(903)).await.unwrap(),
        StatusLookup::Found(r) if r.status == OperationStatus::Failed
    ));
    assert_eq!(sim.ledger().count(EffectKind::Refund, "903"), 1);
    assert_eq!(balance_of(&sim), 1_000_000);
    assert_eq!(sim.operation(903).unwrap().state, OperationState::Failed);
}

#[tokio::test]
async fn pending_settlement_follows_the_behaviour_knob() {
    let sim = start(AlQimahSimConfig::default().with_behaviour(
        AlQimahBehaviour::default().with_pending(
            PendingMode::Always,
            SettleAfter::Polls(0),
            Final::Failed,
        ),
    ))
    .await;
    let client = client(&sim);
    let report = client.pay(&topup(904, MOBILE, 100)).await.unwrap();
    assert_eq!(report.status, OperationStatus::Pending);
    assert!(matches!(
        client.operation_status(tx(904)).await.unwrap(),
        StatusLookup::Found(r) if r.status == OperationStatus::Failed
    ));
    assert_eq!(sim.ledger().count(EffectKind::Refund, "904"), 1);
}

// ---------------------------------------------------------------------------------------
// Webhook authentication and delivery faults
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_webhook_with_a_wrong_code_is_rejected_by_the_check() {
    let (sim, ingress) = sim_with_ingress(
        AlQimahSimConfig::default()
            .with_behaviour(AlQimahBehaviour::default().with_wrong_webhook_code()),
    )
    .await;
    let request = topup(1001, MOBILE, 100);
    client(&sim).pay(&request).await.unwrap();
    let hook = parse_webhook(&ingress.wait_for(1).await[0]).unwrap();
    // Well-formed, right transaction, wrong code: the ingress must refuse it.
    assert_eq!(hook.correlation(), tx(1001));
    assert!(!hook.verify_code(&request.webhook_code));
}

#[tokio::test]
async fn duplicated_webhooks_share_one_dedupe_key() {
    let (sim, ingress) = sim_with_ingress(
        AlQimahSimConfig::default()
            .with_delivery(DeliveryPlan::new(0).script(1, Delivery::normal().duplicated(2))),
    )
    .await;
    client(&sim).pay(&topup(1002, MOBILE, 100)).await.unwrap();
    let hooks = ingress.wait_for(3).await;
    let keys: Vec<String> = hooks
        .iter()
        .map(|q| parse_webhook(q).unwrap().dedupe_key().to_string())
        .collect();
    assert_eq!(keys, ["1002:1", "1002:1", "1002:1"]);
    assert_eq!(sim.ledger().count(EffectKind::Payment, "1002"), 1);
}

#[tokio::test]
async fn a_webhook_can_arrive_before_the_payment_answer() {
    let (sim, ingress) = sim_with_ingress(
        AlQimahSimConfig::default()
            .with_delivery(DeliveryPlan::new(0).script(1, Delivery::normal().before_answer())),
    )
    .await;
    client(&sim).pay(&topup(1003, MOBILE, 100)).await.unwrap();
    // Delivered inline before the simulator answered: already here, no waiting.
    let hooks = ingress.all();
    assert_eq!(hooks.len(), 1);
    assert_eq!(parse_webhook(&hooks[0]).unwrap().correlation(), tx(1003));
}

#[tokio::test]
async fn a_lost_webhook_leaves_the_status_query() {
    let (sim, ingress) = sim_with_ingress(
        AlQimahSimConfig::default()
            .with_delivery(DeliveryPlan::new(0).script(1, Delivery::normal().lost())),
    )
    .await;
    let client = client(&sim);
    client.pay(&topup(1004, MOBILE, 100)).await.unwrap();
    // A lost webhook is never attempted, so nothing is in flight to wait for.
    assert!(sim.callbacks().sent().is_empty());
    assert!(ingress.all().is_empty());
    assert!(matches!(
        client.operation_status(tx(1004)).await.unwrap(),
        StatusLookup::Found(r) if r.status == OperationStatus::Succeeded
    ));
}

#[tokio::test]
async fn reordered_and_delayed_webhooks() {
    let (sim, ingress) = sim_with_ingress(
        AlQimahSimConfig::default().with_delivery(
            DeliveryPlan::new(0)
                .script(1, Delivery::normal().reordered())
                .script(3, Delivery::normal().delayed(Duration::from_millis(100))),
        ),
    )
    .await;
    let client = client(&sim);
    client.pay(&topup(1005, MOBILE, 100)).await.unwrap();
    client.pay(&topup(1006, MOBILE, 100)).await.unwrap();
    let order: Vec<u64> = ingress
        .wait_for(2)
        .await
        .iter()
        .map(|q| parse_webhook(q).unwrap().correlation().get())
        .collect();
    assert_eq!(
        order,
        [1006, 1005],
        "the first webhook arrives after the second"
    );

    let sent_at = Instant::now();
    client.pay(&topup(1007, MOBILE, 100)).await.unwrap();
    let hooks = ingress.wait_for(3).await;
    assert!(sent_at.elapsed() >= Duration::from_millis(100));
    assert_eq!(parse_webhook(&hooks[2]).unwrap().correlation(), tx(1007));
}

// ---------------------------------------------------------------------------------------
// Error classes
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn rate_limited_payment_carries_retry_after_and_applies_nothing() {
    let sim = sim().await;
    sim.faults().script_next(
        PAYMENT_ENDPOINT,
        Fault::RateLimited {
            retry_after_secs: Some(7),
        },
    );
    let client = client(&sim);
    let err = client.pay(&topup(1101, MOBILE, 100)).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(7)),
        "{err:?}"
    );
    assert!(sim.ledger().is_empty(), "429 happens before any effect");
    // Nothing happened, so sending again is fine.
    client.pay(&topup(1101, MOBILE, 100)).await.unwrap();
    assert_eq!(sim.ledger().count(EffectKind::Payment, "1101"), 1);
}

#[tokio::test]
async fn internal_errors_and_unavailability_are_retryable_and_apply_nothing() {
    let sim = sim().await;
    sim.faults()
        .script_next(PAYMENT_ENDPOINT, Fault::InternalError);
    sim.faults().script_next(
        PAYMENT_ENDPOINT,
        Fault::Unavailable {
            retry_after_secs: Some(2),
        },
    );
    let client = client(&sim);
    let err = client.pay(&topup(1102, MOBILE, 100)).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Unavailable { status: Some(s), .. } if s == 500),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Retryable { retry_after: None });
    let err = client.pay(&topup(1102, MOBILE, 100)).await.unwrap_err();
    assert_eq!(
        err.class(),
        ErrorClass::Retryable {
            retry_after: Some(Duration::from_secs(2))
        },
        "{err:?}"
    );
    assert!(sim.ledger().is_empty());
}

#[tokio::test]
async fn a_gateway_timeout_after_the_effect_is_outcome_unknown_and_the_payment_happened() {
    let sim = sim().await;
    sim.faults().script_next(
        PAYMENT_ENDPOINT,
        Fault::GatewayTimeout { after_effect: true },
    );
    let err = client(&sim)
        .pay(&topup(1103, MOBILE, 100))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::OutcomeUnknown { .. }),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::OutcomeUnknown);
    assert_eq!(sim.ledger().count(EffectKind::Payment, "1103"), 1);
}

#[tokio::test]
async fn a_gateway_timeout_without_the_effect_is_outcome_unknown_and_nothing_happened() {
    let sim = sim().await;
    sim.faults().script_next(
        PAYMENT_ENDPOINT,
        Fault::GatewayTimeout {
            after_effect: false,
        },
    );
    let err = client(&sim)
        .pay(&topup(1104, MOBILE, 100))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::OutcomeUnknown, "{err:?}");
    assert!(sim.ledger().is_empty());
    assert!(sim.operation(1104).is_none());
}

#[tokio::test]
async fn an_answer_slower_than_the_client_timeout_is_outcome_unknown() {
    let sim = sim().await;
    let client = AlQimahClient::new(&config_for(&sim, 150)).unwrap();
    client.balance().await.unwrap(); // log in first, so only the payment is timed
    sim.faults()
        .script_next(PAYMENT_ENDPOINT, Fault::SlowAnswer { delay_ms: 800 });
    let started = Instant::now();
    let err = client.pay(&topup(1105, MOBILE, 100)).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(700),
        "timed out on time"
    );
    assert!(
        matches!(err, ProviderError::OutcomeUnknown { .. }),
        "{err:?}"
    );
    assert_eq!(sim.ledger().count(EffectKind::Payment, "1105"), 1);
}

#[tokio::test]
async fn dropped_connections_are_outcome_unknown_with_or_without_the_effect() {
    let sim = sim().await;
    sim.faults().script_next(
        PAYMENT_ENDPOINT,
        Fault::DropConnection { after_effect: true },
    );
    sim.faults().script_next(
        PAYMENT_ENDPOINT,
        Fault::DropConnection {
            after_effect: false,
        },
    );
    let client = client(&sim);
    let err = client.pay(&topup(1106, MOBILE, 100)).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::OutcomeUnknown, "{err:?}");
    assert_eq!(sim.ledger().count(EffectKind::Payment, "1106"), 1);
    // The client cannot tell the two drops apart, so it must assume the worst.
    let err = client.pay(&topup(1107, MOBILE, 100)).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::OutcomeUnknown, "{err:?}");
    assert_eq!(sim.ledger().count(EffectKind::Payment, "1107"), 0);
    // The client recovers on a new connection.
    client.pay(&topup(1108, MOBILE, 100)).await.unwrap();
}

#[tokio::test]
async fn read_only_calls_that_fail_are_simply_retryable() {
    let sim = sim().await;
    sim.faults().script_next(
        STATUS_ENDPOINT,
        Fault::GatewayTimeout { after_effect: true },
    );
    sim.faults().script_next(
        BALANCE_ENDPOINT,
        Fault::DropConnection { after_effect: true },
    );
    sim.faults().script_next(
        LOGIN_ENDPOINT,
        Fault::Unavailable {
            retry_after_secs: None,
        },
    );
    let client = client(&sim);
    // The login fails first: the token refresh error is the call's error.
    let err = client.balance().await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Unavailable { status: Some(s), .. } if s == 503),
        "{err:?}"
    );
    let err = client.balance().await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Unavailable { status: None, .. }),
        "{err:?}"
    );
    let err = client.operation_status(tx(1)).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Unavailable { status: Some(s), .. } if s == 504),
        "{err:?}"
    );
    assert!(matches!(err.class(), ErrorClass::Retryable { .. }));
}

#[tokio::test]
async fn status_false_answers_are_classified_by_reason() {
    let sim = sim().await;
    let client = client(&sim);

    // Insufficient balance, by the simulator's own rule.
    sim.set_balance(DEFAULT_ACCOUNT_NUMBER, 50).unwrap();
    let err = client.pay(&topup(1201, MOBILE, 100)).await.unwrap_err();
    assert_eq!(err.refusal_code(), Some("insufficient_balance"), "{err:?}");
    assert_eq!(
        RefusalReason::of(&err),
        Some(RefusalReason::InsufficientBalance)
    );
    assert_eq!(err.class(), ErrorClass::Terminal);
    sim.set_balance(DEFAULT_ACCOUNT_NUMBER, 1_000_000).unwrap();
    // Refused, so the id is still free.
    client.pay(&topup(1201, MOBILE, 100)).await.unwrap();

    // Invalid number: 10 digits pass our shape check, not Al-Qimah's.
    let err = client
        .pay(&topup(1202, "7771234567", 100))
        .await
        .unwrap_err();
    assert_eq!(err.refusal_code(), Some("invalid_number"), "{err:?}");
    assert!(!err.to_string().contains("7771234567"), "{err}");

    // Duplicate TransactionID: no second effect.
    let err = client.pay(&topup(1201, MOBILE, 100)).await.unwrap_err();
    assert!(matches!(err, ProviderError::Conflict { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::OutcomeUnknown);
    assert_eq!(
        RefusalReason::of(&err),
        Some(RefusalReason::DuplicateTransaction)
    );
    assert_eq!(sim.ledger().count(EffectKind::Payment, "1201"), 1);

    // The same reasons, scripted as faults.
    for (message, code) in [
        (messages::INSUFFICIENT_BALANCE, "insufficient_balance"),
        (messages::INVALID_NUMBER, "invalid_number"),
    ] {
        sim.faults().script_next(PAYMENT_ENDPOINT, refusal(message));
        let err = client.pay(&topup(1203, MOBILE, 100)).await.unwrap_err();
        assert_eq!(err.refusal_code(), Some(code), "{err:?}");
    }
    sim.faults()
        .script_next(PAYMENT_ENDPOINT, refusal(messages::DUPLICATE_TRANSACTION));
    assert!(matches!(
        client.pay(&topup(1203, MOBILE, 100)).await.unwrap_err(),
        ProviderError::Conflict { .. }
    ));

    // Anything else: terminal, sanitized, no code.
    sim.faults().script_next(
        PAYMENT_ENDPOINT,
        refusal("Service temporarily suspended for 777123456"),
    );
    let err = client.pay(&topup(1203, MOBILE, 100)).await.unwrap_err();
    match &err {
        ProviderError::Refused { code, message, .. } => {
            assert_eq!(code, &None);
            assert_eq!(message, "Service temporarily suspended for 77*****56");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(RefusalReason::of(&err), Some(RefusalReason::Unrecognised));
    assert_eq!(err.class(), ErrorClass::Terminal);
    assert_eq!(sim.ledger().count(EffectKind::Payment, "1203"), 0);

    // A message echoing our access token does not put it in the error.
    let access = sim
        .requests()
        .last_to(API_PATH)
        .unwrap()
        .header(API_TOKEN_HEADER)
        .unwrap()
        .to_owned();
    sim.faults().script_next(
        PAYMENT_ENDPOINT,
        refusal(&format!("Service suspended for session {access}")),
    );
    let err = client.pay(&topup(1204, MOBILE, 100)).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(&access), "{shown}");
    assert!(shown.contains("[REDACTED]"), "{shown}");

    // A status query for an id Al-Qimah never saw is an outcome, not an error.
    assert!(matches!(
        client.operation_status(tx(1299)).await.unwrap(),
        StatusLookup::NotFound { message } if message == messages::TRANSACTION_NOT_FOUND
    ));
}

#[tokio::test]
async fn nothing_listening_is_a_transport_error() {
    let sim = sim().await;
    let config = config_for(&sim, 1_000);
    drop(sim);
    let err = AlQimahClient::new(&config)
        .unwrap()
        .pay(&topup(1301, MOBILE, 100))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Transport { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Retryable { retry_after: None });
}

// ---------------------------------------------------------------------------------------
// Reconciliation: never pay twice
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn reconcile_after_a_504_after_the_effect_returns_the_payment_without_resending() {
    let sim = sim().await;
    sim.faults().script_next(
        PAYMENT_ENDPOINT,
        Fault::GatewayTimeout { after_effect: true },
    );
    let client = client(&sim);
    let request = topup(1401, MOBILE, 100);
    let err = client.pay(&request).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::OutcomeUnknown);

    let reconciled = client.reconcile_payment(&request).await.unwrap();
    assert!(
        matches!(&reconciled, Reconciled::AlreadyKnown(r) if r.status == OperationStatus::Succeeded),
        "{reconciled:?}"
    );
    assert!(!reconciled.was_sent());
    assert_eq!(sim.payment_requests().len(), 1, "no re-send");
    assert_eq!(sim.ledger().count(EffectKind::Payment, "1401"), 1);
    assert_eq!(balance_of(&sim), 999_900, "debited once");
}

#[tokio::test]
async fn a_blind_resend_after_a_504_after_the_effect_is_refused_as_a_duplicate() {
    let sim = sim().await;
    sim.faults().script_next(
        PAYMENT_ENDPOINT,
        Fault::GatewayTimeout { after_effect: true },
    );
    let client = client(&sim);
    let request = topup(1402, MOBILE, 100);
    client.pay(&request).await.unwrap_err();
    // What reconcile_payment exists to avoid: the blind re-send gets no answer about the
    // payment, only a duplicate refusal (and only because Al-Qimah enforces unique ids).
    let err = client.pay(&request).await.unwrap_err();
    assert!(matches!(err, ProviderError::Conflict { .. }), "{err:?}");
    assert_eq!(sim.ledger().count(EffectKind::Payment, "1402"), 1);
}

#[tokio::test]
async fn reconcile_after_a_504_without_the_effect_sends_exactly_once() {
    let sim = sim().await;
    sim.faults().script_next(
        PAYMENT_ENDPOINT,
        Fault::GatewayTimeout {
            after_effect: false,
        },
    );
    let client = client(&sim);
    let request = topup(1403, MOBILE, 100);
    client.pay(&request).await.unwrap_err();
    assert_eq!(sim.ledger().count(EffectKind::Payment, "1403"), 0);

    let reconciled = client.reconcile_payment(&request).await.unwrap();
    assert!(
        matches!(&reconciled, Reconciled::Sent(r) if r.status == OperationStatus::Succeeded),
        "{reconciled:?}"
    );
    assert_eq!(
        sim.payment_requests().len(),
        2,
        "the original and one re-send"
    );
    assert_eq!(sim.ledger().count(EffectKind::Payment, "1403"), 1);

    // Reconciling again (a crash right after) sends nothing more.
    let again = client.reconcile_payment(&request).await.unwrap();
    assert!(matches!(again, Reconciled::AlreadyKnown(_)), "{again:?}");
    assert_eq!(sim.payment_requests().len(), 2);
    assert_eq!(sim.ledger().count(EffectKind::Payment, "1403"), 1);
}

#[tokio::test]
async fn reconcile_copes_with_the_original_landing_after_the_status_query() {
    let sim = sim().await;
    sim.faults().script_next(
        PAYMENT_ENDPOINT,
        Fault::GatewayTimeout { after_effect: true },
    );
    // Al-Qimah lags: its first status answer does not know the payment yet.
    sim.faults()
        .script_next(STATUS_ENDPOINT, refusal(messages::TRANSACTION_NOT_FOUND));
    let client = client(&sim);
    let request = topup(1404, MOBILE, 100);
    client.pay(&request).await.unwrap_err();

    let reconciled = client.reconcile_payment(&request).await.unwrap();
    assert!(
        matches!(reconciled, Reconciled::AlreadyKnown(_)),
        "{reconciled:?}"
    );
    // It did re-send, was refused as a duplicate, and looked again: still one payment.
    assert_eq!(sim.payment_requests().len(), 2);
    assert_eq!(sim.ledger().count(EffectKind::Payment, "1404"), 1);
}

#[tokio::test]
async fn reconcile_of_a_pending_payment_reports_it_pending() {
    let sim = sim().await;
    script(&sim, SettleAfter::Polls(1), Final::Succeeded);
    sim.faults().script_next(
        PAYMENT_ENDPOINT,
        Fault::DropConnection { after_effect: true },
    );
    let client = client(&sim);
    let request = topup(1405, MOBILE, 100);
    client.pay(&request).await.unwrap_err();
    let reconciled = client.reconcile_payment(&request).await.unwrap();
    assert_eq!(reconciled.report().status, OperationStatus::Pending);
    assert!(matches!(
        client.operation_status(tx(1405)).await.unwrap(),
        StatusLookup::Found(r) if r.status == OperationStatus::Succeeded
    ));
    assert_eq!(sim.payment_requests().len(), 1);
}

#[tokio::test]
async fn reconcile_never_sends_on_an_unrecognised_status_answer() {
    let sim = sim().await;
    sim.faults()
        .script_next(STATUS_ENDPOINT, refusal("Service temporarily suspended"));
    let client = client(&sim);
    let err = client
        .reconcile_payment(&topup(1406, MOBILE, 100))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Refused { .. }), "{err:?}");
    assert!(sim.payment_requests().is_empty());
}

#[tokio::test]
async fn reconcile_refuses_a_transaction_id_that_belongs_to_another_number() {
    let sim = sim().await;
    let client = client(&sim);
    client.pay(&topup(1407, MOBILE, 100)).await.unwrap();
    let err = client
        .reconcile_payment(&topup(1407, OTHER_MOBILE, 100))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProviderError::Protocol {
                effect_possible: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Terminal);
    assert_eq!(sim.payment_requests().len(), 1);
}

// ---------------------------------------------------------------------------------------
// The simulator is as strict as the real API would be about what our client never sends
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_simulator_refuses_malformed_requests_like_the_api() {
    let sim = sim().await;
    let http = reqwest::Client::new();
    let base = sim.base_url().clone();
    let post = |path: &str, token: Option<&str>, body: Value| {
        let mut request = http.post(base.join(path).unwrap()).json(&body);
        if let Some(token) = token {
            request = request.header(API_TOKEN_HEADER, token);
        }
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200, "errors are HTTP 200 + status:false");
            response.json::<Value>().await.unwrap()
        }
    };

    // Login: an upper-case md5 is not the PHP md5.
    let config = sim.client_config();
    let token = login_token(
        &config.user_name,
        &config.account_number,
        &config.password,
        &config.api_token,
    );
    let upper = json!({
        "AccountNumber": config.account_number,
        "UserName": config.user_name,
        "Token": token.expose_secret().to_uppercase(),
    });
    let answer = post(LOGIN_PATH, None, upper).await;
    assert_eq!(
        answer,
        json!({ "status": false, "message": messages::LOGIN_FAILED })
    );
    let good = json!({
        "AccountNumber": config.account_number,
        "UserName": config.user_name,
        "Token": token.expose_secret(),
    });
    let answer = post(LOGIN_PATH, None, good).await;
    assert_eq!(answer["status"], true);
    let expires = answer["token_expires"].as_str().unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(expires, "%Y-%m-%d %H:%M:%S").is_ok(),
        "{expires}"
    );
    let access = answer["access_token"].as_str().unwrap().to_owned();

    let balance = json!({ "NetworkNumber": 0, "ServiceNumber": 1 });
    assert_eq!(
        post(API_PATH, None, balance.clone()).await["message"],
        messages::TOKEN_MISSING
    );
    assert_eq!(
        post(API_PATH, Some("not-a-token"), balance.clone()).await["message"],
        messages::TOKEN_INVALID
    );
    assert_eq!(
        post(API_PATH, Some(&access), balance).await["agentBalance"],
        1_000_000
    );

    let payment = |extra: Value| {
        let mut body = json!({
            "NetworkNumber": 1, "ServiceNumber": 103, "MobileNumber": MOBILE,
            "Amount": 100, "TransactionID": 77,
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        body
    };
    for (body, why) in [
        (
            payment(json!({ "TransactionID": "77" })),
            "TransactionID as a string",
        ),
        (payment(json!({ "TransactionId": 77 })), "misspelt field"),
        (payment(json!({ "Amount": "100" })), "Amount as a string"),
        (
            payment(json!({ "OfferCode": "PREWhatsApp" })),
            "two product kinds",
        ),
        (payment(json!({ "Amount": null })), "no product"),
        (payment(json!({ "MobileNumber": null })), "no number"),
        (
            payment(json!({ "Fields": "{\"PlayerID\":\"1\"}" })),
            "Fields as a string",
        ),
        (
            payment(json!({ "WebHookURL": "ftp://x" })),
            "not an http URL",
        ),
    ] {
        let answer = post(API_PATH, Some(&access), body).await;
        assert_eq!(answer["status"], false, "{why}");
        assert!(
            answer["message"]
                .as_str()
                .unwrap()
                .starts_with("Bad request:"),
            "{why}: {answer}"
        );
    }
    assert!(sim.ledger().is_empty());
    // The well-formed one goes through, and its answer is the document's payment shape.
    let answer = post(API_PATH, Some(&access), payment(json!({}))).await;
    assert_eq!(answer["status"], true, "{answer}");
    assert_eq!(answer["operationStatus"], 1);
    assert_eq!(answer["transactionID"], "77");
    assert!(answer["referenceID"].is_u64());
    assert_eq!(sim.ledger().count(EffectKind::Payment, "77"), 1);
}

// ---------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn debug_output_shows_no_secret_and_no_full_number() {
    let (sim, ingress) = sim_with_ingress(AlQimahSimConfig::default()).await;
    let config = sim.client_config();
    let client = client(&sim);
    let request = topup(1501, MOBILE, 100);
    let report = client.pay(&request).await.unwrap();
    let hook = parse_webhook(&ingress.wait_for(1).await[0]).unwrap();
    let access = sim
        .requests()
        .last_to(API_PATH)
        .unwrap()
        .header(API_TOKEN_HEADER)
        .unwrap()
        .to_owned();
    let providers = ProvidersConfig::from_sources(None, &|name| match name {
        "HANDOVER_ALQIMAH_BASE_URL" => Some(sim.base_url().to_string()),
        "HANDOVER_ALQIMAH_ACCOUNT_NUMBER" => Some(config.account_number.clone()),
        "HANDOVER_ALQIMAH_USER_NAME" => Some(config.user_name.clone()),
        "HANDOVER_ALQIMAH_PASSWORD" => Some(config.password.expose_secret().to_owned()),
        "HANDOVER_ALQIMAH_API_TOKEN" => Some(config.api_token.expose_secret().to_owned()),
        _ => None,
    })
    .unwrap();
    let recorded = sim.requests().all();

    let shown = format!(
        "{config:?} {config:#?} {client:?} {providers:?} {sim:?} {recorded:?} {request:?} \
         {report:?} {hook:?} {:?} {:?} {:?}",
        sim.operations(),
        sim.callbacks().sent(),
        AlQimahSimConfig::default(),
    );
    let login_token = login_token(
        &config.user_name,
        &config.account_number,
        &config.password,
        &config.api_token,
    );
    for secret in [
        config.password.expose_secret(),
        config.api_token.expose_secret(),
        login_token.expose_secret(),
        access.as_str(),
        request.webhook_code.expose_secret(),
        MOBILE,
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}

// ---------------------------------------------------------------------------------------
// The simulators registry
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn simulators_start_al_qimah_with_the_webhook_url_knob() {
    let mut config = SimulatorsConfig::default();
    let ingress = Url::parse("http://127.0.0.1:9/ingress/alqimah").unwrap();
    config.alqimah = config.alqimah.with_webhook_url(ingress.clone());
    let sims = Simulators::start(config).await.unwrap();
    let alqimah = sims.providers_config().alqimah.unwrap();
    assert_eq!(alqimah.webhook_url, Some(ingress));
    assert_eq!(&alqimah.base_url, sims.alqimah.base_url());
    assert!(
        sims.urls()
            .iter()
            .any(|(p, u)| *p == Provider::AlQimah && u == sims.alqimah.base_url())
    );
    let client = AlQimahClient::new(&alqimah).unwrap();
    assert_eq!(client.balance().await.unwrap().balance.as_str(), "1000000");
}

// ---------------------------------------------------------------------------------------
// Many journeys under the chaos mix: every payment is made exactly once
// ---------------------------------------------------------------------------------------

/// A compressed J4 payment step: send once, reconcile after anything uncertain, poll a
/// pending payment until it is final. Returns the final status.
async fn payment_journey(client: &AlQimahClient, request: &PaymentRequest) -> OperationStatus {
    let mut sent = false;
    let mut report = None;
    for _ in 0..200 {
        let result = if sent {
            client
                .reconcile_payment(request)
                .await
                .map(|r| r.report().clone())
        } else {
            client.pay(request).await
        };
        sent = true;
        match result {
            Ok(r) => {
                report = Some(r);
                break;
            }
            Err(e) if e.class() == ErrorClass::Terminal => panic!("terminal error: {e}"),
            // Retryable and OutcomeUnknown both continue with reconciliation.
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    let mut status = report.expect("the payment step finished").status;
    for _ in 0..200 {
        if status.is_final() {
            return status;
        }
        match client.operation_status(request.transaction_id).await {
            Ok(StatusLookup::Found(r)) => status = r.status,
            Ok(StatusLookup::NotFound { .. }) => panic!("a sent payment vanished"),
            Err(e) if e.class() == ErrorClass::Terminal => panic!("terminal error: {e}"),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("payment {} never settled", request.transaction_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_chaos_every_payment_is_made_exactly_once() {
    let sim = start(
        AlQimahSimConfig::default()
            .with_behaviour(AlQimahBehaviour::default().with_pending(
                PendingMode::Rate(0.3),
                SettleAfter::Polls(1),
                Final::Succeeded,
            ))
            .with_faults(FaultPlan::chaos(42, 400))
            .with_seed(42),
    )
    .await;
    let client = AlQimahClient::new(&config_for(&sim, 150)).unwrap();

    let requests: Vec<PaymentRequest> = (0..24)
        .map(|i| topup(10_000 + i, &format!("7770000{i:02}"), 100))
        .collect();
    let journeys = requests.iter().cloned().map(|request| {
        let client = client.clone();
        tokio::spawn(async move { payment_journey(&client, &request).await })
    });
    let outcomes = futures::future::join_all(journeys).await;

    for (request, outcome) in requests.iter().zip(outcomes) {
        assert_eq!(outcome.unwrap(), OperationStatus::Succeeded);
        let key = request.transaction_id.to_string();
        assert_eq!(sim.ledger().count(EffectKind::Payment, &key), 1, "{key}");
    }
    assert!(sim.ledger().duplicates().is_empty());
    assert!(sim.ledger().is_complete());
    assert_eq!(balance_of(&sim), 1_000_000 - 24 * 100);
    // The dangerous faults really happened to payments.
    assert!(
        sim.faults()
            .injected()
            .iter()
            .any(|f| f.endpoint == PAYMENT_ENDPOINT && f.fault.after_effect()),
        "no after-effect fault on payments"
    );
}
