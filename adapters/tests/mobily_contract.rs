//! Contract tests: the Mobily client against the Mobily simulator over real HTTP on
//! loopback, with a stand-in for Handover's ingress receiving the Nafath webhook and the
//! customer's return from 3-D Secure. Wire formats are asserted on the simulator's side,
//! from the raw requests it received.
//!
//! - `journey`: the 17 steps end to end (prepaid new number; postpaid MNP with the saga).
//! - `outcomes`: every business state and refusal.
//! - `inbound`: Nafath webhooks (Basic auth, duplicates, late, expiry) and 3-D Secure returns.
//! - `failures`: every error class of the effectful calls and how each is reconciled, and a
//!   chaos soak.
//! - `gateway`: apikey, JWT renewal on 401 and on expiry, both token paths, secrets.

#[path = "mobily_contract/failures.rs"]
mod failures;
#[path = "mobily_contract/gateway.rs"]
mod gateway;
#[path = "mobily_contract/inbound.rs"]
mod inbound;
#[path = "mobily_contract/journey.rs"]
mod journey;
#[path = "mobily_contract/outcomes.rs"]
mod outcomes;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::routing::{get, post};
use handover_adapters::MobilyClient;
use handover_adapters::config::{MobilyCallbacks, MobilyConfig};
use handover_adapters::mobily::checkout::{CaptureData, ContactDetails, NumberChoice, SimType};
use handover_adapters::mobily::otp::Language;
use handover_adapters::mobily::resources::NumberCategory;
use handover_adapters::mobily::{
    CartId, EligibilityOutcome, IdempotencyKey, Msisdn, NafathRequestId, NafathStatus,
    NafathWebhook, NationalId, OrderType, OtpValidation, PostedOrder, ProductOfferingId,
    TccRegistration, ThreeDsReturn, WebhookCredentials,
};
use handover_adapters::sim::{MobilyBehaviour, MobilySim, MobilySimConfig};
use http::{HeaderMap, StatusCode};
use secrecy::SecretString;
use url::Url;

/// The webhook password Handover issued in these tests.
const WEBHOOK_PASSWORD: &str = "issued-by-handover-5e2b9c1d";
/// A citizen's national id.
const CUSTOMER: &str = "1012345678";
/// The customer's contact number (OTP target).
const CONTACT: &str = "0551234567";

/// One webhook as the ingress saw it: whether its credentials were right, what it parsed to.
type SeenWebhook = (bool, Result<NafathWebhook, String>);

/// What the ingress received.
#[derive(Clone, Default)]
struct Received {
    /// Every Nafath webhook: whether its credentials were right, and what it parsed to.
    nafath: Arc<Mutex<Vec<SeenWebhook>>>,
    /// Every 3-D Secure return.
    returns: Arc<Mutex<Vec<Result<ThreeDsReturn, String>>>>,
}

impl Received {
    fn webhooks(&self) -> Vec<SeenWebhook> {
        self.nafath.lock().unwrap().clone()
    }

    fn accepted_webhooks(&self) -> Vec<NafathWebhook> {
        self.webhooks()
            .into_iter()
            .filter_map(|(ok, parsed)| if ok { parsed.ok() } else { None })
            .collect()
    }

    fn returns(&self) -> Vec<Result<ThreeDsReturn, String>> {
        self.returns.lock().unwrap().clone()
    }
}

#[derive(Clone)]
struct Ingress {
    credentials: WebhookCredentials,
    received: Received,
}

/// Handover's ingress as the engine will run it: check Basic auth, parse strictly, store.
async fn nafath_hook(
    State(ingress): State<Ingress>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if !ingress.credentials.verify_headers(&headers) {
        ingress
            .received
            .nafath
            .lock()
            .unwrap()
            .push((false, Err("unauthorized".into())));
        return StatusCode::UNAUTHORIZED;
    }
    let parsed = NafathWebhook::parse(&body).map_err(|e| e.to_string());
    let status = if parsed.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    ingress.received.nafath.lock().unwrap().push((true, parsed));
    status
}

async fn three_ds_return(State(ingress): State<Ingress>, RawQuery(query): RawQuery) -> StatusCode {
    let parsed =
        ThreeDsReturn::parse_query(query.as_deref().unwrap_or_default()).map_err(|e| e.to_string());
    let status = if parsed.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    ingress.received.returns.lock().unwrap().push(parsed);
    status
}

async fn start_ingress(credentials: WebhookCredentials) -> (Url, Received) {
    let received = Received::default();
    let router = Router::new()
        .route("/ingress/mobily/nafath", post(nafath_hook))
        .route("/ingress/mobily/3ds", get(three_ds_return))
        .with_state(Ingress {
            credentials,
            received: received.clone(),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (Url::parse(&format!("http://{addr}/")).unwrap(), received)
}

/// A simulator, a client and an ingress wired together.
struct Harness {
    sim: MobilySim,
    client: MobilyClient,
    received: Received,
}

fn callbacks(ingress: &Url, password: &str) -> MobilyCallbacks {
    MobilyCallbacks {
        nafath_webhook_url: ingress.join("ingress/mobily/nafath").unwrap(),
        nafath_webhook_username: "mobily-nafath".into(),
        nafath_webhook_password: SecretString::from(password),
        payment_return_url: ingress.join("ingress/mobily/3ds?tenant=t1").unwrap(),
    }
}

fn tune(mut config: MobilyConfig, timeout_ms: u64) -> MobilyConfig {
    config.http.timeout_ms = timeout_ms;
    // Tests fire calls back to back; the client-side limiter is tested in `http`.
    config.http.rate_per_second = 10_000;
    config.http.rate_burst = 10_000;
    config
}

async fn harness_with(config: MobilySimConfig) -> Harness {
    let credentials =
        WebhookCredentials::new("mobily-nafath", SecretString::from(WEBHOOK_PASSWORD));
    let (ingress, received) = start_ingress(credentials).await;
    let sim = MobilySim::start(config.with_callbacks(callbacks(&ingress, WEBHOOK_PASSWORD)))
        .await
        .expect("simulator starts");
    let client = MobilyClient::new(&tune(sim.client_config(), 2_000)).expect("client builds");
    Harness {
        sim,
        client,
        received,
    }
}

async fn harness(behaviour: MobilyBehaviour) -> Harness {
    harness_with(MobilySimConfig::default().with_behaviour(behaviour)).await
}

fn customer() -> NationalId {
    NationalId::parse(CUSTOMER).unwrap()
}

fn contact() -> Msisdn {
    Msisdn::parse(CONTACT).unwrap()
}

fn key(journey: &str, step: &str) -> IdempotencyKey {
    IdempotencyKey::for_step(journey, step).unwrap()
}

fn product(id: &str) -> ProductOfferingId {
    ProductOfferingId::new(id).unwrap()
}

/// Waits (bounded) for something delivered in the background.
async fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    for _ in 0..400 {
        if let Some(value) = probe() {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Runs a call until it succeeds, retrying every non-terminal failure (bounded). Right for
/// read-only calls, idempotent captures and effectful calls replayed by their key; the
/// payment calls reconcile explicitly instead (see `failures`).
async fn persist<T, F, Fut>(what: &str, call: F) -> Result<T, handover_adapters::ProviderError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, handover_adapters::ProviderError>>,
{
    for _ in 0..100 {
        match call().await {
            Err(e) if e.class() != handover_adapters::ErrorClass::Terminal => {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            other => return other,
        }
    }
    panic!("{what} kept failing");
}

/// A contact number of the journey's own, so parallel journeys read their own OTP.
fn contact_for(journey: &str) -> Msisdn {
    let n = journey
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
        % 100_000_000;
    Msisdn::parse(&format!("05{n:08}")).unwrap()
}

/// Steps 3 to 14 with no surprises: a cart ready to order, and its line's number. Every
/// call goes through [`persist`], so the same journey runs under the chaos fault mix.
async fn checkout(
    h: &Harness,
    journey: &str,
    offering: &str,
    number: Option<Msisdn>,
) -> (CartId, Msisdn) {
    use handover_adapters::mobily::{DepositOutcome, OtpCode, Section, codes};
    let c = &h.client;
    let offer = product(offering);
    let contact = contact_for(journey);
    let customer = customer();
    let (reserve_key, tcc_key) = (key(journey, "reserve"), key(journey, "tcc"));
    let cart = persist("cart", || c.create_cart(&offer)).await.unwrap().id;
    persist("validate", || c.update_and_validate(&cart, &customer))
        .await
        .unwrap();
    let capture = |data: CaptureData| {
        let cart = cart.clone();
        async move {
            persist("capture", || c.capture(&cart, &data))
                .await
                .unwrap();
        }
    };
    let choice = match &number {
        Some(m) => NumberChoice::Mnp {
            msisdn: m.clone(),
            donor_operator: "STC".into(),
        },
        None => NumberChoice::New,
    };
    capture(CaptureData::NumberOption(choice)).await;
    capture(CaptureData::SimOption {
        sim_type: SimType::Esim,
    })
    .await;
    let line_type = persist("details", || c.product_details(&offer))
        .await
        .unwrap()
        .payment_type;
    let eligible = persist("eligibility", || c.tcc_eligibility(&customer, line_type))
        .await
        .unwrap();
    assert!(
        matches!(eligible, EligibilityOutcome::Eligible { .. }),
        "{eligible:?}"
    );
    capture(CaptureData::TccEligibilityCheck { eligible: true }).await;
    let msisdn = match number {
        Some(m) => m,
        None => {
            let mut reserved = None;
            // Parallel journeys may race for the same free number: take the next one.
            for _ in 0..10 {
                let free = persist("numbers", || {
                    c.available_numbers(NumberCategory::Standard, 20)
                })
                .await
                .unwrap();
                for n in &free {
                    match persist("reserve", || c.reserve_number(n, &cart, &reserve_key)).await {
                        Ok(r) => {
                            reserved = Some(r);
                            break;
                        }
                        Err(e) if e.refusal_code() == Some(codes::NUMBER_UNAVAILABLE) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                if reserved.is_some() {
                    break;
                }
            }
            let r = reserved.expect("a free number");
            capture(CaptureData::NumberReservation {
                msisdn: r.msisdn.clone(),
                reservation_id: r.id,
            })
            .await;
            r.msisdn
        }
    };
    let structure = persist("structure", || c.checkout_structure(&cart))
        .await
        .unwrap();
    for section in structure.missing() {
        match section {
            Section::OverdueBills => capture(CaptureData::OverdueBills { has_dues: false }).await,
            Section::SecurityDeposit => {
                let DepositOutcome::Required { amount } =
                    persist("deposit", || c.security_deposit(&customer, &offer))
                        .await
                        .unwrap()
                else {
                    panic!("postpaid without a deposit");
                };
                capture(CaptureData::SecurityDeposit {
                    accepted: true,
                    amount,
                })
                .await;
            }
            _ => {}
        }
    }
    let otp = persist("otp", || c.generate_otp(&contact, &customer, Language::En))
        .await
        .unwrap();
    let code = OtpCode::parse(&h.sim.otp_for(&contact).unwrap()).unwrap();
    let verified = persist("validate otp", || {
        c.validate_otp(&otp.otp_id, &contact, &code)
    })
    .await
    .unwrap();
    assert_eq!(verified, OtpValidation::Verified);
    capture(CaptureData::OtpVerification {
        msisdn: contact.clone(),
        otp_id: otp.otp_id,
        verified: true,
    })
    .await;
    let request = NafathRequestId::new(format!("{journey}:nafath")).unwrap();
    let challenge = persist("nafath", || c.nafath_initiate(&customer, &request))
        .await
        .unwrap();
    let _ = h
        .sim
        .nafath_answer(challenge.transaction_id.as_str(), true)
        .await;
    let status = persist("nafath status", || {
        c.nafath_status(&challenge.transaction_id)
    })
    .await
    .unwrap();
    assert_eq!(status, NafathStatus::Approved);
    capture(CaptureData::NafathVerification {
        transaction_id: challenge.transaction_id,
        status,
    })
    .await;
    let iccid = persist("sim", || c.sim_details(&msisdn))
        .await
        .unwrap()
        .iccid;
    let registration = TccRegistration {
        national_id: customer.clone(),
        msisdn: msisdn.clone(),
        iccid: iccid.clone(),
    };
    let registered = persist("tcc", || c.tcc_register(&registration, &tcc_key))
        .await
        .unwrap();
    capture(CaptureData::Sim {
        iccid,
        registration_id: registered.registration_id,
    })
    .await;
    let details = ContactDetails::new("Sara Ali", "sara@example.com", contact, "Riyadh").unwrap();
    capture(CaptureData::DeliveryDetails(details)).await;
    assert!(
        persist("structure", || c.checkout_structure(&cart))
            .await
            .unwrap()
            .missing()
            .is_empty()
    );
    (cart, msisdn)
}

/// [`checkout`] then step 15's postProductOrder.
async fn ordered(
    h: &Harness,
    journey: &str,
    offering: &str,
    number: Option<Msisdn>,
) -> (PostedOrder, Msisdn) {
    let mnp = number.is_some();
    let (cart, msisdn) = checkout(h, journey, offering, number).await;
    let order_type = if mnp { OrderType::Mnp } else { OrderType::New };
    let order_key = key(journey, "order");
    let order = persist("order", || {
        h.client.post_order(&cart, order_type, &order_key)
    })
    .await
    .unwrap();
    (order, msisdn)
}
