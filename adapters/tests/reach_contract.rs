//! Contract tests: the Reach client against the Reach simulator over real HTTP on loopback.
//! The wire format is asserted on the simulator's side, from the raw requests it received,
//! so a drift between the chosen names and the client shows up here. Callbacks are received
//! by a small ingress server and parsed with the client's parsers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::Uri;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};
use bytes::Bytes;
use handover_adapters::reach::callbacks::{
    Callback, CallbackError, NotificationEvent, parse_callback, parse_notification,
};
use handover_adapters::reach::{
    ACTIVATION_PATH, ACTIVATION_STATUS_PATH, API_KEY_HEADER, Activation, ActivationCode,
    ActivationOutcome, ActivationStatus, Address, ApiKeyLimiters, CarrierAccountNumber,
    CarrierName, ClientAccountId, CoverageOutcome, CustomerDetails, CustomerId, DeviceMode, IccId,
    IccidOutcome, Imei, ImeiOutcome, Mdn, Order, PLANS_PATH, PORT_IN_UPDATE_PATH,
    PORT_VALIDATE_PATH, PURCHASE_PATH, PlanId, PortEligibility, PortInDetails, PortInUpdate,
    PortInUpdateOutcome, PortPin, PurchaseOutcome, PurchaseStatus, PurchaseStatusCode, RedirectUrl,
    RotatingJwt, SimType, TransactionId, ZipCode, basic_authorization, error_code,
};
use handover_adapters::sim::reach::line::{WRONG_PIN, WRONG_ZIP};
use handover_adapters::sim::reach::{
    ACTIVATION_ENDPOINT, COVERAGE_ENDPOINT, CustomerPayment, DeviceProfile, ICCID_ENDPOINT,
    IMEI_ENDPOINT, LosingCarrierAccount, PORT_IN_UPDATE_ENDPOINT, PORT_VALIDATE_ENDPOINT,
    PURCHASE_ENDPOINT, PURCHASE_STATUS_ENDPOINT, Progress, SimNotification,
};
use handover_adapters::sim::{
    CallbackSettings, Delivery, DeliveryPlan, EffectKind, Fault, FaultPlan, ReachBehaviour,
    ReachSim, ReachSimConfig,
};
use handover_adapters::{ErrorClass, ProviderError, ReachClient, ReachConfig};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use url::Url;

const IMEI: &str = "356938035643809";
const ICCID: &str = "89012601234567890121";
const NUMBER: &str = "2125550100";
const PIN: &str = "482916";
/// The guide's own example (section 1.2).
const GUIDE_JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...";
const GUIDE_HEADER: &str =
    "Basic Y2xpZW50YXBpfGV5SmhiR2NpT2lKSVV6STFOaUlzSW5SNWNDSTZJa3BYVkNKOS4uLg==";
/// A JWT whose credential encodes with `+` and `=`: the alphabet and padding matter.
const PLUS_JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0In0.sig~~~";

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

async fn start(config: ReachSimConfig) -> ReachSim {
    ReachSim::start(config).await.expect("simulator starts")
}

async fn sim_with(behaviour: ReachBehaviour) -> ReachSim {
    start(ReachSimConfig::default().with_behaviour(behaviour)).await
}

async fn sim() -> ReachSim {
    sim_with(ReachBehaviour::fast()).await
}

fn config_for(sim: &ReachSim, timeout_ms: u64) -> ReachConfig {
    let mut config = sim.client_config();
    config.http.timeout_ms = timeout_ms;
    // Tests fire calls back to back; the shared limiter has its own test below.
    config.http.rate_per_second = 10_000;
    config.http.rate_burst = 10_000;
    config
}

fn client(sim: &ReachSim) -> ReachClient {
    ReachClient::new(&config_for(sim, 2_000), &ApiKeyLimiters::new()).expect("client builds")
}

fn customer() -> CustomerDetails {
    CustomerDetails::new("Ada", "Lovelace", "ada@example.com").unwrap()
}

fn address(zip: &str) -> Address {
    Address::new(
        "1 Main St",
        None,
        "Dallas",
        "TX",
        ZipCode::parse(zip).unwrap(),
    )
    .unwrap()
}

fn esim_order(account: &str) -> Order {
    Order {
        client_account_id: ClientAccountId::new(account).unwrap(),
        plan_id: PlanId::new("PLAN-UNL").unwrap(),
        sim_type: SimType::Esim,
        redirect_url: RedirectUrl::parse("https://brand.example/payment/confirm").unwrap(),
        customer: customer(),
        shipping_address: None,
        imei: Some(Imei::parse(IMEI).unwrap()),
        port_in: None,
    }
}

fn psim_order(account: &str) -> Order {
    Order {
        sim_type: SimType::Psim,
        shipping_address: Some(address("75001")),
        imei: None,
        ..esim_order(account)
    }
}

fn port_order(account: &str, pin: &str, carrier_account: &str, zip: &str) -> Order {
    Order {
        port_in: Some(PortInDetails {
            number_to_port: Mdn::parse(NUMBER).unwrap(),
            old_carrier: CarrierName::new("T-Mobile").unwrap(),
            old_carrier_account_number: CarrierAccountNumber::parse(carrier_account).unwrap(),
            password: PortPin::new(SecretString::from(pin)).unwrap(),
            old_zip: ZipCode::parse(zip).unwrap(),
        }),
        ..esim_order(account)
    }
}

/// Polls the purchase until `done` accepts its status (at most 20 polls).
async fn poll_purchase(
    client: &ReachClient,
    transaction_id: &TransactionId,
    done: impl Fn(&PurchaseStatus) -> bool,
) -> PurchaseStatus {
    for _ in 0..20 {
        let status = client.purchase_status(transaction_id).await.unwrap();
        if done(&status) {
            return status;
        }
    }
    panic!("purchase {transaction_id} did not reach the expected status");
}

/// Polls the line until `done` accepts its status (at most 20 polls).
async fn poll_line(
    client: &ReachClient,
    customer_id: &CustomerId,
    done: impl Fn(&ActivationStatus) -> bool,
) -> ActivationStatus {
    for _ in 0..20 {
        let status = client.activation_status(customer_id).await.unwrap();
        if done(&status) {
            return status;
        }
    }
    panic!("line {customer_id} did not reach the expected status");
}

/// Purchase, payment link, the customer pays, COMPLETED: the new customer.
async fn bought(
    client: &ReachClient,
    sim: &ReachSim,
    order: &Order,
) -> (TransactionId, CustomerId) {
    let transaction_id = client
        .purchase(order)
        .await
        .unwrap()
        .transaction_id()
        .clone();
    poll_purchase(client, &transaction_id, |s| {
        matches!(s, PurchaseStatus::PaymentPending { link: Some(_), .. })
    })
    .await;
    sim.pay(transaction_id.as_str(), true).await.unwrap();
    let PurchaseStatus::Completed(done) =
        poll_purchase(client, &transaction_id, |s| s.code().is_final()).await
    else {
        panic!("purchase failed")
    };
    (transaction_id, done.customer_id)
}

/// Waits (bounded, 2 s) until `probe` yields a value.
async fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    for _ in 0..400 {
        if let Some(value) = probe() {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Our side of the callbacks: records every request (path with query, body).
#[derive(Clone, Default)]
struct Ingress {
    received: Arc<Mutex<Vec<(String, Bytes)>>>,
}

impl Ingress {
    async fn start() -> (Url, Self) {
        let ingress = Self::default();
        let router = Router::new()
            .fallback(
                |State(i): State<Ingress>, uri: Uri, body: Bytes| async move {
                    i.received.lock().unwrap().push((uri.to_string(), body));
                    "ok"
                },
            )
            .with_state(ingress.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        (Url::parse(&format!("http://{addr}/")).unwrap(), ingress)
    }

    fn bodies_to(&self, path: &str) -> Vec<Bytes> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .collect()
    }

    fn callbacks(&self) -> Vec<Callback> {
        self.bodies_to("/apisvc/v0/notification/callback")
            .iter()
            .map(|b| parse_callback(b).expect("the simulator's callbacks parse"))
            .collect()
    }

    fn paths(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|(p, _)| p.clone())
            .collect()
    }
}

fn authorized(sim: &ReachSim, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    let config = sim.client_config();
    request
        .header(
            "authorization",
            basic_authorization(&config.jwt).expose_secret(),
        )
        .header(API_KEY_HEADER, config.api_key.expose_secret())
}

// ---------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_basic_header_is_the_documented_construction_and_is_what_reach_receives() {
    // The guide's example, steps 1 to 4 of section 1.2.
    assert_eq!(
        basic_authorization(&SecretString::from(GUIDE_JWT)).expose_secret(),
        GUIDE_HEADER
    );

    let sim = sim().await;
    client(&sim).plans().await.unwrap();
    let seen = sim.requests().last_to(PLANS_PATH).unwrap();
    let jwt = sim.client_config().jwt;
    let expected = format!(
        "Basic {}",
        STANDARD.encode(format!("clientapi|{}", jwt.expose_secret()))
    );
    assert_eq!(seen.header("authorization"), Some(expected.as_str()));
    assert_eq!(
        seen.header(API_KEY_HEADER),
        Some(sim.client_config().api_key.expose_secret())
    );
    assert_eq!(seen.header("accept"), Some("application/json"));
}

#[tokio::test]
async fn a_wrong_jwt_is_rebuilt_once_then_is_an_auth_error() {
    let sim = sim().await;
    let mut config = config_for(&sim, 2_000);
    config.jwt = SecretString::from("eyJ.not-the-issued.jwt");
    let err = ReachClient::new(&config, &ApiKeyLimiters::new())
        .unwrap()
        .plans()
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Auth { status, .. } if status == 401),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Terminal);
    assert_eq!(
        sim.requests().count_to(PLANS_PATH),
        2,
        "one retry after the rebuild"
    );
    assert!(!format!("{err} {err:?}").contains("not-the-issued"));
}

#[tokio::test]
async fn after_a_401_the_rebuilt_header_uses_the_rotated_jwt() {
    let sim = sim().await;
    let config = config_for(&sim, 2_000);
    let jwt = RotatingJwt::new(config.jwt.clone());
    let client =
        ReachClient::with_jwt_source(&config, &ApiKeyLimiters::new(), Arc::new(jwt.clone()))
            .unwrap();
    client.plans().await.unwrap();

    // Reach revokes the JWT and issues another; the operator puts it in the source.
    let rotated = SecretString::from("eyJhbGciOiJIUzI1NiJ9.eyJyb3RhdGVkIjp0cnVlfQ.c2ln");
    sim.rotate_jwt(rotated.clone());
    jwt.rotate(rotated.clone());
    sim.requests().clear();

    // The cached header is now stale: 401, rebuild from the source, retry, success.
    assert_eq!(client.plans().await.unwrap().len(), 3);
    let seen = sim.requests().all();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].header("authorization"),
        Some(basic_authorization(&config.jwt).expose_secret())
    );
    assert_eq!(
        seen[1].header("authorization"),
        Some(basic_authorization(&rotated).expose_secret())
    );
}

#[tokio::test]
async fn a_wrong_api_key_is_an_auth_error() {
    let sim = sim().await;
    let mut config = config_for(&sim, 2_000);
    let wrong = "not-the-issued-api-key-17";
    config.api_key = SecretString::from(wrong);
    let err = ReachClient::new(&config, &ApiKeyLimiters::new())
        .unwrap()
        .purchase(&esim_order("J-AUTH"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Auth { status, .. } if status == 401),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains(wrong));
    assert!(sim.ledger().is_empty());
}

#[tokio::test]
async fn the_gateway_refuses_missing_malformed_or_url_safe_credentials() {
    let sim = start(
        ReachSimConfig::default()
            .with_behaviour(ReachBehaviour::fast())
            .with_credentials(
                SecretString::from(PLUS_JWT),
                SecretString::from("handover-sim-reach-api-key"),
            ),
    )
    .await;
    let http = reqwest::Client::new();
    let url = sim
        .base_url()
        .join(PLANS_PATH.trim_start_matches('/'))
        .unwrap();
    let config = sim.client_config();
    let credential = format!("clientapi|{}", config.jwt.expose_secret());
    let cases = [
        (None, Some(config.api_key.expose_secret().to_owned())),
        (
            Some(basic_authorization(&config.jwt).expose_secret().to_owned()),
            None,
        ),
        // Without the prefix, with the URL-safe alphabet, without padding, as Bearer.
        (
            Some(format!(
                "Basic {}",
                STANDARD.encode(config.jwt.expose_secret())
            )),
            Some(config.api_key.expose_secret().to_owned()),
        ),
        (
            Some(format!("Basic {}", URL_SAFE.encode(credential.as_bytes()))),
            Some(config.api_key.expose_secret().to_owned()),
        ),
        (
            Some(format!(
                "Basic {}",
                STANDARD_NO_PAD.encode(credential.as_bytes())
            )),
            Some(config.api_key.expose_secret().to_owned()),
        ),
        (
            Some(format!("Bearer {}", config.jwt.expose_secret())),
            Some(config.api_key.expose_secret().to_owned()),
        ),
    ];
    for (i, (authorization, key)) in cases.into_iter().enumerate() {
        let mut request = http.get(url.clone());
        if let Some(a) = authorization {
            request = request.header("authorization", a);
        }
        if let Some(k) = key {
            request = request.header(API_KEY_HEADER, k);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "case {i}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["errorCode"], error_code::UNAUTHORIZED, "case {i}");
    }
    // The variants really differ from the documented encoding for this JWT...
    let documented = STANDARD.encode(credential.as_bytes());
    assert!(
        documented.contains('+') && documented.ends_with('='),
        "{documented}"
    );
    assert_ne!(URL_SAFE.encode(credential.as_bytes()), documented);
    assert_ne!(STANDARD_NO_PAD.encode(credential.as_bytes()), documented);
    // ...and the documented one is accepted.
    let response = authorized(&sim, http.get(url)).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn an_ip_that_is_not_whitelisted_is_refused_with_403() {
    let mut behaviour = ReachBehaviour::fast();
    behaviour.ip_whitelisted = false;
    let sim = sim_with(behaviour).await;
    let err = client(&sim).plans().await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Auth { status, .. } if status == 403),
        "{err:?}"
    );
    assert_eq!(sim.requests().count_to(PLANS_PATH), 1, "403 is not retried");
}

// ---------------------------------------------------------------------------------------
// Rate limiting
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_platform_rate_limit_is_429_with_retry_after() {
    let sim = sim_with(ReachBehaviour::fast().with_rate_limit(2)).await;
    let client = client(&sim);
    client.plans().await.unwrap();
    client.plans().await.unwrap();
    let err = client.plans().await.unwrap_err();
    assert!(
        matches!(err, ProviderError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(1)),
        "{err:?}"
    );
    assert_eq!(
        err.class(),
        ErrorClass::Retryable {
            retry_after: Some(Duration::from_secs(1))
        }
    );
}

#[tokio::test]
async fn clients_sharing_an_api_key_share_one_limiter() {
    let sim = sim().await;
    let mut config = sim.client_config();
    config.http.rate_per_second = 1;
    config.http.rate_burst = 1;
    config.http.max_rate_wait_ms = 20;
    let limiters = ApiKeyLimiters::new();
    let first = ReachClient::new(&config, &limiters).unwrap();
    let second = ReachClient::new(&config, &limiters).unwrap();
    first.plans().await.unwrap();
    let err = second.plans().await.unwrap_err();
    assert!(
        matches!(
            err,
            ProviderError::RateLimited {
                retry_after: None,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        sim.requests().count_to(PLANS_PATH),
        1,
        "held back before sending"
    );

    // Another API key has its own limiter.
    let mut other = config.clone();
    other.api_key = SecretString::from("another-api-key");
    other.http.rate_per_second = 100;
    other.http.rate_burst = 100;
    let err = ReachClient::new(&other, &limiters)
        .unwrap()
        .plans()
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Auth { .. }), "sent: {err:?}");
    assert_eq!(limiters.len(), 2);
}

// ---------------------------------------------------------------------------------------
// Checks before buying: coverage, device, catalog, quote
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn coverage_is_an_outcome_with_the_documented_wire_format() {
    let sim = sim().await;
    let client = client(&sim);
    let covered = client.coverage(&address("75001")).await.unwrap();
    assert_eq!(
        covered,
        CoverageOutcome::Covered {
            strength_5g: Some("GOOD".into()),
            strength_4g: Some("EXCELLENT".into())
        }
    );
    let seen = sim
        .requests()
        .last_to("/apisvc/v0/network/coverage")
        .unwrap();
    assert_eq!(seen.method, http::Method::POST);
    assert_eq!(
        seen.json().unwrap(),
        json!({"address1": "1 Main St", "city": "Dallas", "state": "TX", "zip": "75001", "country": "USA"})
    );

    sim.set_coverage("99501", false);
    assert!(matches!(
        client.coverage(&address("99501")).await.unwrap(),
        CoverageOutcome::NotCovered { .. }
    ));
    // A scripted business refusal gives the same normal answer.
    sim.faults().script_next(
        COVERAGE_ENDPOINT,
        Fault::refusal("NO_COVERAGE", "No coverage"),
    );
    assert!(matches!(
        client.coverage(&address("75001")).await.unwrap(),
        CoverageOutcome::NotCovered { .. }
    ));
}

#[tokio::test]
async fn imei_checks_give_validity_and_mode() {
    let sim = sim().await;
    let client = client(&sim);
    let ImeiOutcome::Valid(device) = client
        .check_imei(&Imei::parse(IMEI).unwrap())
        .await
        .unwrap()
    else {
        panic!("valid IMEI")
    };
    assert_eq!(device.mode, DeviceMode::Both);
    assert!(device.esim_available);
    assert_eq!(device.make.as_deref(), Some("Google"));
    let seen = sim.requests().all().pop().unwrap();
    assert_eq!(seen.method, http::Method::GET);
    assert_eq!(seen.path, format!("/apisvc/v0/device/imei/{IMEI}"));

    // A wrong check digit: isValid=false, a normal answer.
    assert_eq!(
        client
            .check_imei(&Imei::parse("356938035643808").unwrap())
            .await
            .unwrap(),
        ImeiOutcome::Invalid
    );
    sim.set_device("490154203237518", DeviceProfile::only(DeviceMode::Psim));
    let ImeiOutcome::Valid(psim_only) = client
        .check_imei(&Imei::parse("490154203237518").unwrap())
        .await
        .unwrap()
    else {
        panic!("valid IMEI")
    };
    assert_eq!(psim_only.mode, DeviceMode::Psim);
    assert!(!psim_only.esim_available);
}

#[tokio::test]
async fn scripted_refusals_are_each_endpoints_business_no() {
    let sim = sim().await;
    let client = client(&sim);
    sim.faults().script_next(
        IMEI_ENDPOINT,
        Fault::refusal("INVALID_IMEI", "Device not supported"),
    );
    sim.faults().script_next(
        ICCID_ENDPOINT,
        Fault::refusal("INVALID_ICCID", "SIM not recognised"),
    );
    sim.faults().script_next(
        PORT_VALIDATE_ENDPOINT,
        Fault::refusal("PORT_NOT_ELIGIBLE", "Number is not portable"),
    );
    assert_eq!(
        client
            .check_imei(&Imei::parse(IMEI).unwrap())
            .await
            .unwrap(),
        ImeiOutcome::Invalid
    );
    assert_eq!(
        client
            .validate_iccid(&IccId::parse(ICCID).unwrap())
            .await
            .unwrap(),
        IccidOutcome::Invalid
    );
    assert_eq!(
        client
            .validate_port(&Mdn::parse(NUMBER).unwrap())
            .await
            .unwrap(),
        PortEligibility::NotEligible {
            message: Some("Number is not portable".into())
        }
    );
    // Elsewhere a refusal is a 400 with the business code: `Refused`, terminal.
    let (_, customer_id) = bought(&client, &sim, &esim_order("J-REFUSE")).await;
    sim.faults().script_next(
        ACTIVATION_ENDPOINT,
        Fault::refusal("DEVICE_NOT_COMPATIBLE", "Device blocked"),
    );
    let err = client
        .activate(&Activation::Esim {
            customer_id,
            imei: Imei::parse(IMEI).unwrap(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Refused { code: Some(c), message, .. } if c == "DEVICE_NOT_COMPATIBLE" && message == "Device blocked"),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Terminal);
    assert_eq!(sim.ledger().count_kind(EffectKind::Activation), 0);
}

#[tokio::test]
async fn plans_carry_the_documented_fields() {
    let sim = sim().await;
    let plans = client(&sim).plans().await.unwrap();
    assert_eq!(plans.len(), 3);
    let unlimited = plans
        .iter()
        .find(|p| p.service_code.as_str() == "PLAN-UNL")
        .unwrap();
    assert_eq!(unlimited.base_line_price.cents(), 4500);
    assert_eq!(unlimited.max_lines, 5);
    assert!(unlimited.fcc_label.is_some());
    assert!(unlimited.up_gradable_to.is_empty());
    assert_eq!(unlimited.down_gradable_to.len(), 2);
    let seen = sim.requests().last_to(PLANS_PATH).unwrap();
    assert_eq!(seen.method, http::Method::GET);
    assert!(seen.body.is_empty());
}

#[tokio::test]
async fn a_quote_has_the_documented_breakdown_and_orders_nothing() {
    let sim = sim().await;
    let client = client(&sim);
    let esim = client.quote(&esim_order("J-Q")).await.unwrap();
    assert_eq!(esim.one_time_charge.total_one_time_cost.cents(), 1083);
    assert_eq!(esim.one_time_charge.shipment.cents(), 0);
    assert_eq!(esim.estimated_monthly_total.cents(), 4871);
    let psim = client.quote(&psim_order("J-Q")).await.unwrap();
    let one = psim.one_time_charge;
    assert_eq!(
        one.sim_kit_cost.cents()
            + one.activation_cost.cents()
            + one.shipment.cents()
            + one.tax.cents(),
        one.total_one_time_cost.cents()
    );
    assert!(sim.ledger().is_empty());
    let seen = sim.requests().last_to("/apisvc/v0/product/quote").unwrap();
    assert!(
        seen.json_field_names()
            .contains(&"shippingAddress".to_owned())
    );

    // An unknown plan is a business refusal.
    let mut withdrawn = esim_order("J-Q");
    withdrawn.plan_id = PlanId::new("PLAN-OLD").unwrap();
    let err = client.quote(&withdrawn).await.unwrap_err();
    assert_eq!(
        err.refusal_code(),
        Some(error_code::PLAN_NOT_AVAILABLE),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Purchase and payment
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn purchase_payment_and_completion_with_the_documented_wire_format() {
    let mut behaviour = ReachBehaviour::fast();
    behaviour.settle_after = Progress::AfterPolls(1);
    let sim = sim_with(behaviour).await;
    let client = client(&sim);

    let outcome = client.purchase(&esim_order("J-100")).await.unwrap();
    let PurchaseOutcome::Submitted { transaction_id } = outcome else {
        panic!("{outcome:?}")
    };
    let seen = sim.requests().last_to(PURCHASE_PATH).unwrap();
    assert_eq!(seen.method, http::Method::POST);
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(
        seen.json_field_names(),
        [
            "clientAccountId",
            "email",
            "firstName",
            "imei",
            "lastName",
            "planId",
            "redirectUrl",
            "simType"
        ]
    );
    let body = seen.json().unwrap();
    assert_eq!(body["clientAccountId"], "J-100");
    assert_eq!(body["planId"], "PLAN-UNL");
    assert_eq!(body["simType"], "ESIM");

    // Poll: the payment link on the simulator's own page, with a future expiry.
    let PurchaseStatus::PaymentPending {
        link: Some(link),
        payment_status,
    } = client.purchase_status(&transaction_id).await.unwrap()
    else {
        panic!("payment link expected")
    };
    assert_eq!(payment_status.as_deref(), Some("PENDING"));
    assert_eq!(
        link.url.as_str(),
        format!("{}payment/checkout/{transaction_id}", sim.base_url())
    );
    assert!(link.expire_date.unwrap() > chrono::Utc::now());
    let status_path = format!("/apisvc/v0/product/status/{transaction_id}");
    assert_eq!(
        sim.requests().last_to(&status_path).unwrap().method,
        http::Method::GET
    );

    sim.pay(transaction_id.as_str(), true).await.unwrap();
    assert!(matches!(
        client.purchase_status(&transaction_id).await.unwrap(),
        PurchaseStatus::PaymentProcessing { .. }
    ));
    let PurchaseStatus::Completed(done) = client.purchase_status(&transaction_id).await.unwrap()
    else {
        panic!("completed expected")
    };
    assert!(done.customer_id.as_str().starts_with("CUS-"));
    assert_eq!(
        done.client_account_id.as_ref().map(|c| c.as_str()),
        Some("J-100")
    );
    assert_eq!(done.sim_type, Some(SimType::Esim));
    assert_eq!(done.shipment_status.as_deref(), Some("NOT_APPLICABLE"));

    assert_eq!(sim.ledger().count(EffectKind::Order, "J-100"), 1);
    assert_eq!(
        sim.ledger()
            .count(EffectKind::Payment, transaction_id.as_str()),
        1
    );
    assert!(sim.ledger().duplicates().is_empty());
}

#[tokio::test]
async fn a_declined_card_fails_with_payment_status_desc_and_takes_no_money() {
    let sim = sim().await;
    let client = client(&sim);
    let transaction_id = client
        .purchase(&esim_order("J-101"))
        .await
        .unwrap()
        .transaction_id()
        .clone();
    client.purchase_status(&transaction_id).await.unwrap();
    sim.pay(transaction_id.as_str(), false).await.unwrap();
    let status = poll_purchase(&client, &transaction_id, |s| s.code().is_final()).await;
    assert_eq!(
        status,
        PurchaseStatus::Failed {
            payment_status: Some("DECLINED".into()),
            payment_status_desc: Some("Card declined by the issuer.".into())
        }
    );
    assert_eq!(sim.ledger().count_kind(EffectKind::Payment), 0);
    // The key names that failed purchase for good: a retry needs a new clientAccountId.
    let again = client.purchase(&esim_order("J-101")).await.unwrap();
    assert_eq!(
        again,
        PurchaseOutcome::AlreadySubmitted {
            transaction_id: transaction_id.clone(),
            status: Some(PurchaseStatusCode::Failed)
        }
    );
    assert!(matches!(
        client.purchase(&esim_order("J-101-retry-1")).await.unwrap(),
        PurchaseOutcome::Submitted { .. }
    ));
}

#[tokio::test]
async fn an_unpaid_link_expires_and_the_purchase_fails() {
    let mut behaviour = ReachBehaviour::fast();
    behaviour.link_ttl = Duration::from_millis(30);
    let sim = sim_with(behaviour).await;
    let client = client(&sim);
    let transaction_id = client
        .purchase(&esim_order("J-102"))
        .await
        .unwrap()
        .transaction_id()
        .clone();
    client.purchase_status(&transaction_id).await.unwrap();
    // The simulator's clock fails it without any poll.
    let view = eventually("the link to expire", || {
        sim.purchase(transaction_id.as_str())
            .filter(|p| p.status == PurchaseStatusCode::Failed)
    })
    .await;
    assert_eq!(
        view.payment_status_desc.as_deref(),
        Some("Payment link expired before the customer paid.")
    );
    assert!(sim.pay(transaction_id.as_str(), true).await.is_err());
}

#[tokio::test]
async fn the_payment_page_pays_and_sends_the_browser_back_with_trans_id() {
    let sim = sim().await;
    let client = client(&sim);
    let transaction_id = client
        .purchase(&esim_order("J-103"))
        .await
        .unwrap()
        .transaction_id()
        .clone();
    let PurchaseStatus::PaymentPending {
        link: Some(link), ..
    } = client.purchase_status(&transaction_id).await.unwrap()
    else {
        panic!("link expected")
    };
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = browser.get(link.url.clone()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains(transaction_id.as_str()));
    let submitted = browser
        .post(link.url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("result=paid")
        .send()
        .await
        .unwrap();
    assert_eq!(submitted.status(), 303);
    assert_eq!(
        submitted.headers()["location"].to_str().unwrap(),
        format!("https://brand.example/payment/confirm?transId={transaction_id}")
    );
    assert!(matches!(
        poll_purchase(&client, &transaction_id, |s| s.code().is_final()).await,
        PurchaseStatus::Completed(_)
    ));
}

#[tokio::test]
async fn an_automatic_customer_pays_and_returns_to_the_redirect_url() {
    let (base, ingress) = Ingress::start().await;
    let sim = sim_with(
        ReachBehaviour::fast().with_customer(CustomerPayment::PayAfter {
            delay: Duration::from_millis(10),
            success: true,
        }),
    )
    .await;
    let client = client(&sim);
    let mut order = esim_order("J-104");
    order.redirect_url =
        RedirectUrl::parse(base.join("payment/confirm").unwrap().as_str()).unwrap();
    let transaction_id = client
        .purchase(&order)
        .await
        .unwrap()
        .transaction_id()
        .clone();
    client.purchase_status(&transaction_id).await.unwrap();
    let expected = format!("/payment/confirm?transId={transaction_id}");
    eventually("the browser return", || {
        ingress.paths().contains(&expected).then_some(())
    })
    .await;
    assert_eq!(sim.browser_returns().len(), 1);
    assert!(matches!(
        poll_purchase(&client, &transaction_id, |s| s.code().is_final()).await,
        PurchaseStatus::Completed(_)
    ));
}

// ---------------------------------------------------------------------------------------
// Reconciling purchases: 409 carries the existing transaction
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_purchase_resent_after_a_504_after_the_effect_gets_the_same_transaction() {
    let sim = sim().await;
    sim.faults().script_next(
        PURCHASE_ENDPOINT,
        Fault::GatewayTimeout { after_effect: true },
    );
    let client = client(&sim);
    let order = esim_order("J-200");
    let err = client.purchase(&order).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::OutcomeUnknown { .. }),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::OutcomeUnknown);
    assert_eq!(
        sim.ledger().count(EffectKind::Order, "J-200"),
        1,
        "it was ordered"
    );

    let again = client.purchase(&order).await.unwrap();
    let PurchaseOutcome::AlreadySubmitted {
        transaction_id,
        status,
    } = &again
    else {
        panic!("{again:?}")
    };
    assert_eq!(*status, Some(PurchaseStatusCode::Initiated));
    assert_eq!(sim.purchases().len(), 1);
    assert_eq!(sim.purchases()[0].transaction_id, transaction_id.as_str());
    assert_eq!(sim.ledger().count(EffectKind::Order, "J-200"), 1, "once");
    assert!(sim.ledger().duplicates().is_empty());
}

#[tokio::test]
async fn a_purchase_resent_after_a_504_without_the_effect_is_ordered_once() {
    let sim = sim().await;
    sim.faults().script_next(
        PURCHASE_ENDPOINT,
        Fault::GatewayTimeout {
            after_effect: false,
        },
    );
    let client = client(&sim);
    let order = esim_order("J-201");
    assert_eq!(
        client.purchase(&order).await.unwrap_err().class(),
        ErrorClass::OutcomeUnknown
    );
    assert!(sim.ledger().is_empty());
    assert!(matches!(
        client.purchase(&order).await.unwrap(),
        PurchaseOutcome::Submitted { .. }
    ));
    assert_eq!(sim.ledger().count(EffectKind::Order, "J-201"), 1);
}

#[tokio::test]
async fn a_connection_dropped_after_the_effect_is_reconciled_by_resending() {
    let sim = sim().await;
    sim.faults().script_next(
        PURCHASE_ENDPOINT,
        Fault::DropConnection { after_effect: true },
    );
    let client = client(&sim);
    let order = esim_order("J-202");
    let err = client.purchase(&order).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::OutcomeUnknown, "{err:?}");
    assert!(matches!(
        client.purchase(&order).await.unwrap(),
        PurchaseOutcome::AlreadySubmitted { .. }
    ));
    assert_eq!(sim.ledger().count(EffectKind::Order, "J-202"), 1);
}

#[tokio::test]
async fn an_answer_slower_than_the_timeout_is_outcome_unknown_and_reconciles() {
    let sim = sim().await;
    sim.faults()
        .script_next(PURCHASE_ENDPOINT, Fault::SlowAnswer { delay_ms: 600 });
    let client = ReachClient::new(&config_for(&sim, 150), &ApiKeyLimiters::new()).unwrap();
    let started = Instant::now();
    let err = client.purchase(&esim_order("J-203")).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(550),
        "timed out on time"
    );
    assert!(
        matches!(err, ProviderError::OutcomeUnknown { .. }),
        "{err:?}"
    );
    assert!(matches!(
        client.purchase(&esim_order("J-203")).await.unwrap(),
        PurchaseOutcome::AlreadySubmitted { .. }
    ));
    assert_eq!(sim.ledger().count(EffectKind::Order, "J-203"), 1);
}

#[tokio::test]
async fn a_client_account_id_reused_for_another_order_is_a_conflict() {
    let sim = sim().await;
    let client = client(&sim);
    client.purchase(&esim_order("J-204")).await.unwrap();
    let mut other = esim_order("J-204");
    other.plan_id = PlanId::new("PLAN-5GB").unwrap();
    let err = client.purchase(&other).await.unwrap_err();
    assert!(matches!(err, ProviderError::Conflict { .. }), "{err:?}");
    assert_eq!(sim.ledger().count(EffectKind::Order, "J-204"), 1);
}

// ---------------------------------------------------------------------------------------
// Error classes
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn server_errors_are_retryable_and_order_nothing() {
    let sim = sim().await;
    let client = client(&sim);
    sim.faults()
        .script_next(PURCHASE_ENDPOINT, Fault::InternalError);
    let err = client.purchase(&esim_order("J-300")).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Unavailable { status: Some(s), .. } if s == 500),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Retryable { retry_after: None });

    sim.faults().script_next(
        PURCHASE_ENDPOINT,
        Fault::Unavailable {
            retry_after_secs: Some(5),
        },
    );
    let err = client.purchase(&esim_order("J-300")).await.unwrap_err();
    assert_eq!(
        err.class(),
        ErrorClass::Retryable {
            retry_after: Some(Duration::from_secs(5))
        },
        "{err:?}"
    );

    sim.faults().script_next(
        PURCHASE_ENDPOINT,
        Fault::RateLimited {
            retry_after_secs: Some(3),
        },
    );
    let err = client.purchase(&esim_order("J-300")).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(3)),
        "{err:?}"
    );
    assert!(sim.ledger().is_empty());
    client.purchase(&esim_order("J-300")).await.unwrap();
}

#[tokio::test]
async fn a_read_only_504_or_drop_is_simply_retryable() {
    let sim = sim().await;
    let client = client(&sim);
    let transaction_id = client
        .purchase(&esim_order("J-301"))
        .await
        .unwrap()
        .transaction_id()
        .clone();
    sim.faults().script_next(
        PURCHASE_STATUS_ENDPOINT,
        Fault::GatewayTimeout { after_effect: true },
    );
    sim.faults().script_next(
        PURCHASE_STATUS_ENDPOINT,
        Fault::DropConnection {
            after_effect: false,
        },
    );
    for _ in 0..2 {
        let err = client.purchase_status(&transaction_id).await.unwrap_err();
        assert!(matches!(err, ProviderError::Unavailable { .. }), "{err:?}");
        assert_eq!(err.class(), ErrorClass::Retryable { retry_after: None });
    }
    client.purchase_status(&transaction_id).await.unwrap();
}

#[tokio::test]
async fn unknown_ids_are_rejected_and_malformed_bodies_get_400() {
    let sim = sim().await;
    let client = client(&sim);
    let err = client
        .purchase_status(&TransactionId::new("TXN-000000000000").unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Rejected { status: Some(s), .. } if s == 404),
        "{err:?}"
    );
    let err = client
        .activation_status(&CustomerId::new("CUS-0").unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Rejected { status: Some(s), .. } if s == 404),
        "{err:?}"
    );

    let http = reqwest::Client::new();
    let activation = sim
        .base_url()
        .join(ACTIVATION_PATH.trim_start_matches('/'))
        .unwrap();
    for body in [
        json!({"customerId": "CUS-1", "esim": true, "imei": IMEI, "iccid": ICCID}),
        json!({"customerId": "CUS-1", "esim": true, "iccId": ICCID}),
        json!({"customerId": "CUS-1", "esim": "yes", "imei": IMEI}),
        json!({"customerId": "CUS 1", "esim": false, "iccId": ICCID}),
        json!(["not", "an", "object"]),
    ] {
        let response = authorized(&sim, http.post(activation.clone()))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let answer: serde_json::Value = response.json().await.unwrap();
        assert_eq!(answer["errorCode"], error_code::INVALID_REQUEST, "{body}");
    }
    let purchase = sim
        .base_url()
        .join(PURCHASE_PATH.trim_start_matches('/'))
        .unwrap();
    let response = authorized(&sim, http.post(purchase))
        .json(&json!({"clientAccountId": "J-1", "serviceCode": "PLAN-UNL", "simType": "ESIM"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(sim.ledger().is_empty());

    // The client refuses to send what it cannot type.
    assert!(Imei::parse("12345").is_err());
    assert!(RedirectUrl::parse("http://brand.example/return").is_err());
    let mut no_address = psim_order("J-1");
    no_address.shipping_address = None;
    let err = client.purchase(&no_address).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Rejected { status: None, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn nothing_listening_is_a_transport_error() {
    let sim = sim().await;
    let config = config_for(&sim, 1_000);
    drop(sim);
    let err = ReachClient::new(&config, &ApiKeyLimiters::new())
        .unwrap()
        .purchase(&esim_order("J-302"))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Transport { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Retryable { retry_after: None });
}

// ---------------------------------------------------------------------------------------
// Activation: eSIM and pSIM
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn esim_activation_goes_active_and_is_never_doubled() {
    let sim = sim().await;
    let client = client(&sim);
    let (_, customer_id) = bought(&client, &sim, &esim_order("J-400")).await;
    assert_eq!(
        client.activation_status(&customer_id).await.unwrap(),
        ActivationStatus::Inactive
    );

    let activation = Activation::Esim {
        customer_id: customer_id.clone(),
        imei: Imei::parse(IMEI).unwrap(),
    };
    let ActivationOutcome::Submitted {
        transaction_id: Some(operation),
        status: ActivationCode::InProgress,
    } = client.activate(&activation).await.unwrap()
    else {
        panic!("submitted expected")
    };
    let seen = sim.requests().last_to(ACTIVATION_PATH).unwrap();
    assert_eq!(seen.method, http::Method::POST);
    assert_eq!(
        seen.json().unwrap(),
        json!({"customerId": customer_id.as_str(), "esim": true, "imei": IMEI})
    );

    // Re-sent (a retry after a lost answer): the same operation, no second activation.
    assert_eq!(
        client.activate(&activation).await.unwrap(),
        ActivationOutcome::AlreadySubmitted {
            transaction_id: Some(operation.clone()),
            status: ActivationCode::InProgress
        }
    );

    let ActivationStatus::Active {
        mobile_no,
        plan_name,
        activation_date,
    } = poll_line(&client, &customer_id, |s| {
        s.code() == ActivationCode::Active
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!(plan_name.as_deref(), Some("Unlimited 5G"));
    assert!(activation_date.is_some());
    let seen = sim.requests().last_to(ACTIVATION_STATUS_PATH).unwrap();
    assert_eq!(seen.method, http::Method::GET);
    assert_eq!(
        seen.query.as_deref(),
        Some(format!("customerId={customer_id}").as_str())
    );

    assert!(matches!(
        client.activate(&activation).await.unwrap(),
        ActivationOutcome::AlreadySubmitted {
            status: ActivationCode::Active,
            ..
        }
    ));
    assert_eq!(
        sim.ledger()
            .count(EffectKind::Activation, customer_id.as_str()),
        1
    );
    assert_eq!(
        sim.ledger()
            .count_subject(EffectKind::Activation, mobile_no.as_str()),
        1
    );
    assert!(sim.ledger().duplicates().is_empty());
}

#[tokio::test]
async fn an_activation_resent_after_a_504_after_the_effect_is_not_doubled() {
    let sim = sim().await;
    let client = client(&sim);
    let (_, customer_id) = bought(&client, &sim, &esim_order("J-401")).await;
    let activation = Activation::Esim {
        customer_id: customer_id.clone(),
        imei: Imei::parse(IMEI).unwrap(),
    };
    sim.faults().script_next(
        ACTIVATION_ENDPOINT,
        Fault::GatewayTimeout { after_effect: true },
    );
    assert_eq!(
        client.activate(&activation).await.unwrap_err().class(),
        ErrorClass::OutcomeUnknown
    );
    // Reconcile by polling: the line is in progress, so it was received.
    assert_eq!(
        client.activation_status(&customer_id).await.unwrap().code(),
        ActivationCode::Active,
        "fast timings: the first poll after submission completes it"
    );
    assert!(matches!(
        client.activate(&activation).await.unwrap(),
        ActivationOutcome::AlreadySubmitted { .. }
    ));
    assert_eq!(
        sim.ledger()
            .count(EffectKind::Activation, customer_id.as_str()),
        1
    );
}

#[tokio::test]
async fn psim_iccid_validation_and_activation() {
    let sim = sim().await;
    let client = client(&sim);
    let (transaction_id, customer_id) = bought(&client, &sim, &psim_order("J-402")).await;
    let PurchaseStatus::Completed(done) = client.purchase_status(&transaction_id).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(done.sim_type, Some(SimType::Psim));
    assert_eq!(done.shipment_status.as_deref(), Some("PENDING_SHIPMENT"));

    let iccid = IccId::parse(ICCID).unwrap();
    assert_eq!(
        client.validate_iccid(&iccid).await.unwrap(),
        IccidOutcome::Valid {
            mode: DeviceMode::Psim,
            wifi_calling: true,
            volte_compatible: true
        }
    );
    let seen = sim.requests().last_to("/apisvc/v0/iccid/validate").unwrap();
    assert_eq!(seen.json().unwrap(), json!({"iccId": ICCID}));

    let activation = Activation::Psim {
        customer_id: customer_id.clone(),
        icc_id: iccid,
    };
    client.activate(&activation).await.unwrap();
    assert_eq!(
        sim.requests()
            .last_to(ACTIVATION_PATH)
            .unwrap()
            .json()
            .unwrap(),
        json!({"customerId": customer_id.as_str(), "esim": false, "iccId": ICCID})
    );
    poll_line(&client, &customer_id, |s| {
        s.code() == ActivationCode::Active
    })
    .await;
    assert_eq!(
        sim.ledger()
            .count(EffectKind::Activation, customer_id.as_str()),
        1
    );
}

#[tokio::test]
async fn an_invalid_iccid_is_an_outcome_and_cannot_be_activated() {
    let sim = sim().await;
    let client = client(&sim);
    let wrong_digit = IccId::parse("89012601234567890122").unwrap();
    assert_eq!(
        client.validate_iccid(&wrong_digit).await.unwrap(),
        IccidOutcome::Invalid
    );
    sim.block_iccid(ICCID);
    assert_eq!(
        client
            .validate_iccid(&IccId::parse(ICCID).unwrap())
            .await
            .unwrap(),
        IccidOutcome::Invalid
    );
    let (_, customer_id) = bought(&client, &sim, &psim_order("J-403")).await;
    let err = client
        .activate(&Activation::Psim {
            customer_id,
            icc_id: IccId::parse(ICCID).unwrap(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.refusal_code(),
        Some(error_code::DEVICE_NOT_COMPATIBLE),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Terminal);
    assert_eq!(sim.ledger().count_kind(EffectKind::Activation), 0);
}

#[tokio::test]
async fn a_failed_activation_reports_its_message_and_may_be_retried() {
    let sim = sim().await;
    let client = client(&sim);
    let (_, customer_id) = bought(&client, &sim, &esim_order("J-404")).await;
    sim.fail_activation(IMEI, "eSIM profile download failed on 2125550100");
    let activation = Activation::Esim {
        customer_id: customer_id.clone(),
        imei: Imei::parse(IMEI).unwrap(),
    };
    client.activate(&activation).await.unwrap();
    let failed = poll_line(&client, &customer_id, |s| {
        s.code() == ActivationCode::Failed
    })
    .await;
    assert_eq!(
        failed,
        ActivationStatus::Failed {
            activation_msg: Some("eSIM profile download failed on 21******00".into())
        }
    );
    assert!(matches!(
        client.activate(&activation).await.unwrap(),
        ActivationOutcome::Submitted { .. }
    ));
    poll_line(&client, &customer_id, |s| {
        s.code() == ActivationCode::Active
    })
    .await;
    assert_eq!(
        sim.ledger()
            .count(EffectKind::Activation, customer_id.as_str()),
        1
    );
}

// ---------------------------------------------------------------------------------------
// Port-in (J3)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_port_in_fails_on_the_pin_then_the_zip_is_corrected_twice_and_goes_active() {
    let sim = sim().await;
    let client = client(&sim);
    sim.set_losing_carrier(
        NUMBER,
        LosingCarrierAccount {
            account_number: "998877665".into(),
            pin: SecretString::from("1357"),
            zip: "10001".into(),
            transient_failures: 0,
        },
    );
    let mdn = Mdn::parse(NUMBER).unwrap();
    assert!(matches!(
        client.validate_port(&mdn).await.unwrap(),
        PortEligibility::Eligible { .. }
    ));
    let seen = sim.requests().last_to(PORT_VALIDATE_PATH).unwrap();
    assert_eq!(seen.method, http::Method::PUT);
    assert_eq!(seen.query.as_deref(), Some("mdn=2125550100"));

    // Wrong PIN and wrong ZIP.
    let order = port_order("J-500", PIN, "998877665", "99999");
    let (_, customer_id) = bought(&client, &sim, &order).await;
    let body = sim
        .requests()
        .last_to(PURCHASE_PATH)
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(body["numberToPort"], NUMBER);
    assert_eq!(body["oldCarrier"], "T-Mobile");
    assert_eq!(body["oldCarrierAccountNumber"], "998877665");
    assert_eq!(body["password"], PIN);
    assert_eq!(body["oldZip"], "99999");

    let activation = Activation::Esim {
        customer_id: customer_id.clone(),
        imei: Imei::parse(IMEI).unwrap(),
    };
    assert!(matches!(
        client.activate(&activation).await.unwrap(),
        ActivationOutcome::Submitted {
            status: ActivationCode::PortingInProgress,
            ..
        }
    ));
    assert_eq!(
        sim.ledger().count(EffectKind::PortIn, customer_id.as_str()),
        1
    );
    assert_eq!(sim.ledger().count_subject(EffectKind::PortIn, NUMBER), 1);

    let failed = poll_line(&client, &customer_id, |s| {
        s.code() == ActivationCode::PortingFailed
    })
    .await;
    assert_eq!(
        failed,
        ActivationStatus::PortingFailed {
            activation_msg: Some(WRONG_PIN.into())
        }
    );

    let fixed_pin = PortInUpdate::UpdatePin(PortPin::new(SecretString::from("1357")).unwrap());
    let PortInUpdateOutcome::Accepted {
        transaction_id: Some(_),
        status: ActivationCode::PortingInProgress,
    } = client
        .update_port_in(&customer_id, &fixed_pin)
        .await
        .unwrap()
    else {
        panic!("accepted expected")
    };
    let seen = sim.requests().last_to(PORT_IN_UPDATE_PATH).unwrap();
    assert_eq!(seen.method, http::Method::PUT);
    assert_eq!(
        seen.json().unwrap(),
        json!({"customerId": customer_id.as_str(), "type": "UPDATE_PIN", "password": "1357"})
    );
    // Sent again (a retry): the port is in progress, nothing is applied twice.
    assert!(matches!(
        client
            .update_port_in(&customer_id, &fixed_pin)
            .await
            .unwrap(),
        PortInUpdateOutcome::Conflict {
            current: ActivationCode::PortingInProgress,
            ..
        }
    ));

    let failed = poll_line(&client, &customer_id, |s| {
        s.code() == ActivationCode::PortingFailed
    })
    .await;
    assert_eq!(
        failed,
        ActivationStatus::PortingFailed {
            activation_msg: Some(WRONG_ZIP.into())
        }
    );
    let fixed_zip = PortInUpdate::UpdateZip(ZipCode::parse("10001").unwrap());
    client
        .update_port_in(&customer_id, &fixed_zip)
        .await
        .unwrap();
    assert_eq!(
        sim.requests()
            .last_to(PORT_IN_UPDATE_PATH)
            .unwrap()
            .json()
            .unwrap(),
        json!({"customerId": customer_id.as_str(), "type": "UPDATE_ZIP", "oldZip": "10001"})
    );

    let ActivationStatus::Active { mobile_no, .. } = poll_line(&client, &customer_id, |s| {
        s.code() == ActivationCode::Active
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!(mobile_no.as_str(), NUMBER, "the ported number is live");
    assert_eq!(
        sim.ledger()
            .count(EffectKind::Activation, customer_id.as_str()),
        1
    );
    assert_eq!(
        sim.ledger().count(EffectKind::PortIn, customer_id.as_str()),
        1
    );
    assert!(sim.ledger().duplicates().is_empty());
    // A live number cannot be ported in again.
    assert!(matches!(
        client.validate_port(&mdn).await.unwrap(),
        PortEligibility::NotEligible { .. }
    ));
}

#[tokio::test]
async fn an_ineligible_number_is_an_outcome() {
    let sim = sim().await;
    sim.refuse_port(NUMBER, "The number has an active port-out lock.");
    let outcome = client(&sim)
        .validate_port(&Mdn::parse(NUMBER).unwrap())
        .await
        .unwrap();
    assert_eq!(
        outcome,
        PortEligibility::NotEligible {
            message: Some("The number has an active port-out lock.".into())
        }
    );
}

#[tokio::test]
async fn cancel_port_ends_cancelled_and_cancel_and_new_activates_a_new_number() {
    let sim = sim().await;
    let client = client(&sim);
    sim.set_losing_carrier(
        NUMBER,
        LosingCarrierAccount {
            account_number: "1".into(),
            pin: SecretString::from("1"),
            zip: "10001".into(),
            transient_failures: 0,
        },
    );
    for (account, update) in [
        ("J-501", PortInUpdate::CancelPort),
        ("J-502", PortInUpdate::CancelAndNew),
    ] {
        let (_, customer_id) = bought(
            &client,
            &sim,
            &port_order(account, PIN, "998877665", "10001"),
        )
        .await;
        client
            .activate(&Activation::Esim {
                customer_id: customer_id.clone(),
                imei: Imei::parse(IMEI).unwrap(),
            })
            .await
            .unwrap();
        poll_line(&client, &customer_id, |s| {
            s.code() == ActivationCode::PortingFailed
        })
        .await;
        let outcome = client.update_port_in(&customer_id, &update).await.unwrap();
        match update {
            PortInUpdate::CancelPort => {
                assert!(matches!(
                    outcome,
                    PortInUpdateOutcome::Accepted {
                        status: ActivationCode::PortCancelled,
                        ..
                    }
                ));
                assert_eq!(
                    client.activation_status(&customer_id).await.unwrap(),
                    ActivationStatus::PortCancelled
                );
            }
            _ => {
                let ActivationStatus::Active { mobile_no, .. } =
                    poll_line(&client, &customer_id, |s| {
                        s.code() == ActivationCode::Active
                    })
                    .await
                else {
                    unreachable!()
                };
                assert_ne!(mobile_no.as_str(), NUMBER, "a new number");
                assert_eq!(
                    sim.ledger()
                        .count(EffectKind::Activation, customer_id.as_str()),
                    1
                );
            }
        }
    }
    sim.faults().script_next(
        PORT_IN_UPDATE_ENDPOINT,
        Fault::refusal("PORT_LOCKED", "Locked"),
    );
    let err = client
        .update_port_in(
            &CustomerId::new("CUS-1").unwrap(),
            &PortInUpdate::ResubmitPort,
        )
        .await
        .unwrap_err();
    assert_eq!(err.refusal_code(), Some("PORT_LOCKED"));
}

// ---------------------------------------------------------------------------------------
// Callbacks
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn callbacks_arrive_early_and_duplicated_and_parse_to_one_event_each() {
    let (base, ingress) = Ingress::start().await;
    let ingress_base = base.clone();
    let sim = start(
        ReachSimConfig::default()
            .with_behaviour(
                ReachBehaviour::fast()
                    .with_delays(Duration::ZERO)
                    .with_customer(CustomerPayment::PayAfter {
                        delay: Duration::ZERO,
                        success: true,
                    }),
            )
            .with_callback_base(base)
            .with_delivery(
                CallbackSettings::fast(),
                DeliveryPlan::new(7)
                    .script(1, Delivery::normal().before_answer().duplicated(2))
                    .script(2, Delivery::normal().before_answer()),
            ),
    )
    .await;
    let client = client(&sim);
    let mut order = esim_order("J-600");
    order.redirect_url = RedirectUrl::parse(ingress_base.join("return").unwrap().as_str()).unwrap();

    // Zero delays: the purchase completes inside the request, and its callback (three
    // copies) is delivered before the answer reaches us.
    let outcome = client.purchase(&order).await.unwrap();
    let transaction_id = outcome.transaction_id().clone();
    let callbacks = ingress.callbacks();
    assert_eq!(callbacks.len(), 3, "before the answer: {callbacks:?}");
    let keys: std::collections::HashSet<String> =
        callbacks.iter().map(Callback::dedupe_key).collect();
    assert_eq!(
        keys.into_iter().collect::<Vec<_>>(),
        [format!("reach:PRODUCT_PURCHASE:{transaction_id}:COMPLETED")]
    );
    let Callback::ProductPurchase(purchase) = &callbacks[0] else {
        panic!("{callbacks:?}")
    };
    assert_eq!(
        callbacks[0].correlation().to_string(),
        format!("reach.txn:{transaction_id}")
    );
    assert_eq!(purchase.status, PurchaseStatusCode::Completed);
    let customer_id = purchase.customer_id.clone().unwrap();
    // The callback round-trips through the parser.
    assert_eq!(
        parse_callback(callbacks[0].to_body().to_string().as_bytes()).unwrap(),
        callbacks[0]
    );

    client
        .activate(&Activation::Esim {
            customer_id: customer_id.clone(),
            imei: Imei::parse(IMEI).unwrap(),
        })
        .await
        .unwrap();
    let callbacks = ingress.callbacks();
    assert_eq!(
        callbacks.len(),
        4,
        "the ACTIVATION callback came before the answer too"
    );
    let Callback::Activation(activated) = &callbacks[3] else {
        panic!("{callbacks:?}")
    };
    assert_eq!(activated.customer_id, customer_id);
    assert_eq!(activated.status, ActivationCode::Active);
    assert!(activated.mobile_no.is_some());
    assert_eq!(
        callbacks[3].correlation().to_string(),
        format!("reach.customer:{customer_id}")
    );
    assert_eq!(
        sim.ledger()
            .count(EffectKind::Activation, customer_id.as_str()),
        1
    );
}

#[tokio::test]
async fn callbacks_can_be_reordered_lost_and_port_failures_have_distinct_keys() {
    let (base, ingress) = Ingress::start().await;
    // Long enough that the held callback waits for its successor even on a busy machine.
    let mut settings = CallbackSettings::fast();
    settings.reorder_hold = Duration::from_secs(5);
    let sim = start(
        ReachSimConfig::default()
            .with_behaviour(ReachBehaviour::fast())
            .with_callback_base(base)
            .with_delivery(
                settings,
                DeliveryPlan::new(7)
                    .script(1, Delivery::normal().lost())
                    .script(2, Delivery::normal().reordered()),
            ),
    )
    .await;
    let client = client(&sim);
    sim.set_losing_carrier(
        NUMBER,
        LosingCarrierAccount {
            account_number: "998877665".into(),
            pin: SecretString::from("1357"),
            zip: "10001".into(),
            transient_failures: 0,
        },
    );
    // Callback 1 (purchase completed) is lost; the journey still learns it by polling.
    let (_, customer_id) = bought(
        &client,
        &sim,
        &port_order("J-601", PIN, "998877665", "99999"),
    )
    .await;
    client
        .activate(&Activation::Esim {
            customer_id: customer_id.clone(),
            imei: Imei::parse(IMEI).unwrap(),
        })
        .await
        .unwrap();
    // Callback 2 (PORTING_FAILED, wrong PIN) is held until callback 3 (wrong ZIP) went out.
    poll_line(&client, &customer_id, |s| {
        s.code() == ActivationCode::PortingFailed
    })
    .await;
    client
        .update_port_in(
            &customer_id,
            &PortInUpdate::UpdatePin(PortPin::new(SecretString::from("1357")).unwrap()),
        )
        .await
        .unwrap();
    poll_line(&client, &customer_id, |s| {
        s.code() == ActivationCode::PortingFailed
    })
    .await;

    let callbacks = eventually("two port callbacks", || {
        let c = ingress.callbacks();
        (c.len() == 2).then_some(c)
    })
    .await;
    let messages: Vec<Option<&str>> = callbacks
        .iter()
        .map(|c| match c {
            Callback::Activation(a) => a.activation_msg.as_deref(),
            _ => None,
        })
        .collect();
    assert_eq!(messages, [Some(WRONG_ZIP), Some(WRONG_PIN)], "reordered");
    assert_ne!(
        callbacks[0].dedupe_key(),
        callbacks[1].dedupe_key(),
        "two failures, two events"
    );
    assert!(
        callbacks
            .iter()
            .all(|c| matches!(c, Callback::Activation(_)))
    );
}

#[tokio::test]
async fn callbacks_to_a_target_that_is_down_are_retried_three_times() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    drop(listener);
    let sim = start(
        ReachSimConfig::default()
            .with_behaviour(ReachBehaviour::fast())
            .with_callback_base(down)
            .with_delivery(CallbackSettings::fast(), DeliveryPlan::new(1)),
    )
    .await;
    let client = client(&sim);
    bought(&client, &sim, &esim_order("J-602")).await;
    let sent = eventually("four attempts", || {
        let sent = sim.callbacks_sent();
        (sent.len() == 4).then_some(sent)
    })
    .await;
    assert!(
        sent.iter()
            .all(|s| s.name == "PRODUCT_PURCHASE" && s.outcome.is_err())
    );
    assert_eq!(
        sent.iter().map(|s| s.attempt).collect::<Vec<_>>(),
        [0, 1, 2, 3],
        "first attempt and three retries"
    );
}

#[tokio::test]
async fn notifications_reach_the_notification_endpoint_and_parse() {
    let (base, ingress) = Ingress::start().await;
    let sim = start(
        ReachSimConfig::default()
            .with_behaviour(ReachBehaviour::fast())
            .with_callback_base(base)
            .with_delivery(
                CallbackSettings::fast(),
                DeliveryPlan::new(1).script(1, Delivery::normal().duplicated(1)),
            ),
    )
    .await;
    let event_id = sim
        .notify(SimNotification::Usage {
            customer_id: "CUS-7".into(),
            usage_percentage: 80,
        })
        .await
        .unwrap();
    sim.notify(SimNotification::PortOut {
        customer_id: "CUS-7".into(),
    })
    .await
    .unwrap();
    let bodies = eventually("three notifications", || {
        let b = ingress.bodies_to("/apisvc/v0/notification");
        (b.len() == 3).then_some(b)
    })
    .await;
    let parsed: Vec<_> = bodies
        .iter()
        .map(|b| parse_notification(b).unwrap())
        .collect();
    let usage: Vec<_> = parsed
        .iter()
        .filter(|n| {
            n.event
                == NotificationEvent::Usage {
                    usage_percentage: 80,
                }
        })
        .collect();
    assert_eq!(usage.len(), 2, "duplicated");
    assert_eq!(usage[0].dedupe_key(), usage[1].dedupe_key());
    assert_eq!(usage[0].event_id.as_str(), event_id);
    assert!(parsed.iter().any(|n| n.event == NotificationEvent::PortOut));
    assert!(parsed.iter().all(|n| n.customer_id.as_str() == "CUS-7"));
}

#[test]
fn malformed_callback_bodies_are_rejected_by_the_parsers() {
    for (body, expected) in [
        (
            &b"{\"type\":\"PRODUCT_PURCHASE\",\"transactionId\":"[..],
            "not a JSON object",
        ),
        (
            br#"{"type":"SUBSCRIPTION_RENEWED","transactionId":"TXN-1"}"#,
            "unknown callback type",
        ),
        (
            br#"{"type":"PRODUCT_PURCHASE","status":"COMPLETED","customerId":"CUS-1"}"#,
            "transactionId is missing",
        ),
        (
            br#"{"type":"ACTIVATION","status":2,"mobileNo":"2125550100"}"#,
            "customerId is missing",
        ),
        (
            br#"{"type":"ACTIVATION","customerId":"CUS-1","status":2}"#,
            "mobileNo is missing",
        ),
    ] {
        let err = parse_callback(body).unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
    }
    assert!(matches!(
        parse_notification(br#"{"type":"PORT_OUT","customerId":"CUS-1"}"#),
        Err(CallbackError::MissingField("eventId"))
    ));
}

// ---------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn debug_output_shows_no_credential_pin_or_full_number() {
    let sim = sim().await;
    let config = sim.client_config();
    let client = client(&sim);
    let order = port_order("J-700", PIN, "998877665", "10001");
    let (_, customer_id) = bought(&client, &sim, &order).await;
    client
        .activate(&Activation::Esim {
            customer_id: customer_id.clone(),
            imei: Imei::parse(IMEI).unwrap(),
        })
        .await
        .unwrap();
    let status = poll_line(&client, &customer_id, |s| {
        s.code() == ActivationCode::Active
    })
    .await;
    sim.faults().script_next(
        PURCHASE_ENDPOINT,
        Fault::refusal("PAYMENT_DECLINED", "Card 2125550100 declined"),
    );
    let err = client
        .purchase(&port_order("J-701", PIN, "998877665", "10001"))
        .await
        .unwrap_err();
    let update = PortInUpdate::UpdatePin(PortPin::new(SecretString::from(PIN)).unwrap());

    let shown = format!(
        "{config:?} {client:?} {order:?} {update:?} {status:?} {err} {err:?} {sim:?} {:?} {:?} {:?}",
        sim.requests().all(),
        sim.purchases(),
        sim.line(customer_id.as_str()),
    );
    for secret in [
        config.jwt.expose_secret(),
        config.api_key.expose_secret(),
        PIN,
        NUMBER,
        IMEI,
    ] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
}

// ---------------------------------------------------------------------------------------
// Many journeys under the chaos mix
// ---------------------------------------------------------------------------------------

/// Retries a call the way the journey rules say: retryable errors after a short pause,
/// `OutcomeUnknown` by calling again (every call here is safe to re-send by design).
async fn retried<T, F, Fut>(mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    for _ in 0..100 {
        match call().await {
            Ok(value) => return value,
            Err(e) if e.class() == ErrorClass::Terminal => panic!("terminal error: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    panic!("no success after 100 attempts");
}

/// A compressed J2 (eSIM): buy, pay, activate. Returns the customer.
async fn journey(client: &ReachClient, sim: &ReachSim, account: &str) -> CustomerId {
    let order = esim_order(account);
    let transaction_id = retried(|| client.purchase(&order))
        .await
        .transaction_id()
        .clone();
    let mut customer_id = None;
    for _ in 0..50 {
        match retried(|| client.purchase_status(&transaction_id)).await {
            PurchaseStatus::PaymentPending { link: Some(_), .. } => {
                // A paid purchase is no longer payable: ignore "not awaiting payment".
                let _ = sim.pay(transaction_id.as_str(), true).await;
            }
            PurchaseStatus::Completed(done) => {
                customer_id = Some(done.customer_id);
                break;
            }
            PurchaseStatus::Failed { .. } => panic!("{account} failed"),
            _ => {}
        }
    }
    let customer_id = customer_id.unwrap_or_else(|| panic!("{account} never completed"));
    let activation = Activation::Esim {
        customer_id: customer_id.clone(),
        imei: Imei::parse(IMEI).unwrap(),
    };
    retried(|| client.activate(&activation)).await;
    for _ in 0..50 {
        if let ActivationStatus::Active { .. } =
            retried(|| client.activation_status(&customer_id)).await
        {
            return customer_id;
        }
    }
    panic!("{account} never went active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_chaos_every_customer_is_ordered_paid_and_activated_once() {
    let sim = start(
        ReachSimConfig::default()
            .with_behaviour(ReachBehaviour::fast())
            .with_faults(FaultPlan::chaos(42, 400)),
    )
    .await;
    let client = ReachClient::new(&config_for(&sim, 150), &ApiKeyLimiters::new()).unwrap();
    let accounts: Vec<String> = (0..16).map(|i| format!("J-CHAOS-{i:02}")).collect();
    let done = futures::future::join_all(accounts.iter().map(|account| {
        let client = client.clone();
        let account = account.clone();
        let sim = &sim;
        async move { journey(&client, sim, &account).await }
    }))
    .await;

    let ledger = sim.ledger();
    for (account, customer_id) in accounts.iter().zip(&done) {
        assert_eq!(ledger.count(EffectKind::Order, account), 1, "{account}");
        assert_eq!(
            ledger.count(EffectKind::Activation, customer_id.as_str()),
            1,
            "{account}"
        );
    }
    assert_eq!(ledger.count_kind(EffectKind::Payment), accounts.len());
    assert!(ledger.duplicates().is_empty(), "{:?}", ledger.duplicates());
    assert!(ledger.is_complete());
    // The dangerous faults really happened. With seed 42 the draws put after-effect faults
    // on purchase call 11 and activation call 10; 16 journeys make at least 16 calls to
    // each, so this holds whatever the interleaving.
    let injected = sim.faults().injected();
    for endpoint in [PURCHASE_ENDPOINT, ACTIVATION_ENDPOINT] {
        assert!(
            injected
                .iter()
                .any(|f| f.endpoint == endpoint && f.fault.after_effect()),
            "no after-effect fault on {endpoint}: {injected:?}"
        );
    }
}
