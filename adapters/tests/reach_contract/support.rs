//! Fixtures shared by the Reach contract tests: simulator and client set-up, orders,
//! polling helpers and a callback ingress. Re-exports what the tests use.

pub use std::sync::{Arc, Mutex};
pub use std::time::{Duration, Instant};

pub use axum::Router;
pub use axum::extract::State;
pub use axum::http::Uri;
pub use base64::Engine;
pub use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};
pub use bytes::Bytes;
pub use handover_adapters::reach::callbacks::{
    Callback, CallbackError, NotificationEvent, parse_callback, parse_notification,
};
pub use handover_adapters::reach::{
    ACTIVATION_PATH, ACTIVATION_STATUS_PATH, API_KEY_HEADER, Activation, ActivationCode,
    ActivationOutcome, ActivationStatus, Address, ApiKeyLimiters, CarrierAccountNumber,
    CarrierName, ClientAccountId, CoverageOutcome, CustomerDetails, CustomerId, DeviceMode, IccId,
    IccidOutcome, Imei, ImeiOutcome, Mdn, Order, PLANS_PATH, PORT_IN_UPDATE_PATH,
    PORT_VALIDATE_PATH, PURCHASE_PATH, PlanId, PortEligibility, PortInDetails, PortInUpdate,
    PortInUpdateOutcome, PortPin, PurchaseOutcome, PurchaseStatus, PurchaseStatusCode, RedirectUrl,
    RotatingJwt, SimType, TransactionId, ZipCode, basic_authorization, error_code,
};
pub use handover_adapters::sim::reach::line::{WRONG_PIN, WRONG_ZIP};
pub use handover_adapters::sim::reach::{
    ACTIVATION_ENDPOINT, COVERAGE_ENDPOINT, CustomerPayment, DeviceProfile, ICCID_ENDPOINT,
    IMEI_ENDPOINT, LosingCarrierAccount, PORT_IN_UPDATE_ENDPOINT, PORT_VALIDATE_ENDPOINT,
    PURCHASE_ENDPOINT, PURCHASE_STATUS_ENDPOINT, Progress, SimNotification,
};
pub use handover_adapters::sim::{
    CallbackSettings, Delivery, DeliveryPlan, EffectKind, Fault, FaultPlan, ReachBehaviour,
    ReachSim, ReachSimConfig,
};
pub use handover_adapters::{ErrorClass, ProviderError, ReachClient, ReachConfig};
pub use secrecy::{ExposeSecret, SecretString};
pub use serde_json::json;
pub use url::Url;

pub const IMEI: &str = "356938035643809";
pub const ICCID: &str = "89012601234567890121";
pub const NUMBER: &str = "2125550100";
pub const PIN: &str = "482916";
/// The guide's own example (section 1.2).
pub const GUIDE_JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...";
pub const GUIDE_HEADER: &str =
    "Basic Y2xpZW50YXBpfGV5SmhiR2NpT2lKSVV6STFOaUlzSW5SNWNDSTZJa3BYVkNKOS4uLg==";
/// A JWT whose credential encodes with `+` and `=`: the alphabet and padding matter.
pub const PLUS_JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0In0.sig~~~";
// ---------------------------------------------------------------------------------------

pub async fn start(config: ReachSimConfig) -> ReachSim {
    ReachSim::start(config).await.expect("simulator starts")
}

pub async fn sim_with(behaviour: ReachBehaviour) -> ReachSim {
    start(ReachSimConfig::default().with_behaviour(behaviour)).await
}

pub async fn sim() -> ReachSim {
    sim_with(ReachBehaviour::fast()).await
}

pub fn config_for(sim: &ReachSim, timeout_ms: u64) -> ReachConfig {
    let mut config = sim.client_config();
    config.http.timeout_ms = timeout_ms;
    // Tests fire calls back to back; the shared limiter has its own test below.
    config.http.rate_per_second = 10_000;
    config.http.rate_burst = 10_000;
    config
}

pub fn client(sim: &ReachSim) -> ReachClient {
    ReachClient::new(&config_for(sim, 2_000), &ApiKeyLimiters::new()).expect("client builds")
}

pub fn customer() -> CustomerDetails {
    CustomerDetails::new("Ada", "Lovelace", "ada@example.com").unwrap()
}

pub fn address(zip: &str) -> Address {
    Address::new(
        "1 Main St",
        None,
        "Dallas",
        "TX",
        ZipCode::parse(zip).unwrap(),
    )
    .unwrap()
}

pub fn esim_order(account: &str) -> Order {
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

pub fn psim_order(account: &str) -> Order {
    Order {
        sim_type: SimType::Psim,
        shipping_address: Some(address("75001")),
        imei: None,
        ..esim_order(account)
    }
}

pub fn port_order(account: &str, pin: &str, carrier_account: &str, zip: &str) -> Order {
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
pub async fn poll_purchase(
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
pub async fn poll_line(
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
pub async fn bought(
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
pub async fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
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
pub struct Ingress {
    received: Arc<Mutex<Vec<(String, Bytes)>>>,
}

impl Ingress {
    pub async fn start() -> (Url, Self) {
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

    pub fn bodies_to(&self, path: &str) -> Vec<Bytes> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .collect()
    }

    pub fn callbacks(&self) -> Vec<Callback> {
        self.bodies_to("/apisvc/v0/notification/callback")
            .iter()
            .map(|b| parse_callback(b).expect("the simulator's callbacks parse"))
            .collect()
    }

    pub fn paths(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|(p, _)| p.clone())
            .collect()
    }
}

pub fn authorized(sim: &ReachSim, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    let config = sim.client_config();
    request
        .header(
            "authorization",
            basic_authorization(&config.jwt).expose_secret(),
        )
        .header(API_KEY_HEADER, config.api_key.expose_secret())
}
