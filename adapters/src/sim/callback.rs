//! Sending provider callbacks (webhooks) from a simulator, with scriptable delivery faults.
//!
//! Real providers deliver callbacks late, twice, out of order, before the answer to the call
//! that caused them, or never; Handover must cope with all of it. A simulator hands each
//! callback to [`CallbackSender::emit`]; the sender's [`DeliveryPlan`] decides how it travels
//! ([`Delivery`]), and every attempt is recorded ([`CallbackSender::sent`]).
//!
//! Delivery is POST with a JSON body ([`Callback::post_json`], Reach, service operations,
//! Mobily's Nafath) or GET with a query string ([`Callback::get_query`], Al-Qimah). A target
//! that is down or answers non-2xx is retried up to `max_retries` times (Reach retries 3
//! times), then given up with a warning; nothing panics.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::Semaphore;
use url::Url;

use crate::sim::server::lock;

/// Most copies of one callback a [`Delivery`] may ask for.
pub const MAX_COPIES: u32 = 10;

/// Most retries after a failed attempt.
pub const MAX_RETRIES: u32 = 10;

/// Most deliveries in progress at once; more are recorded as dropped.
pub const MAX_IN_FLIGHT: usize = 256;

/// How many delivery attempts the sender remembers.
pub const SENT_LOG_CAPACITY: usize = 4096;

/// One callback to deliver.
#[derive(Clone)]
pub struct Callback {
    /// The event name (`PRODUCT_PURCHASE`, `success_event`, ...).
    pub name: String,
    /// The provider's id for it, the receiver's de-duplication key.
    pub key: String,
    /// Where to send it.
    pub url: Url,
    method: Method,
    headers: HeaderMap,
    body: Option<serde_json::Value>,
    query: Vec<(String, String)>,
}

impl std::fmt::Debug for Callback {
    // Bodies and header values may carry credentials (Basic auth, WebHookCode).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callback")
            .field("name", &self.name)
            .field("key", &self.key)
            .field("method", &self.method)
            .field("path", &self.url.path())
            .finish_non_exhaustive()
    }
}

impl Callback {
    /// A `POST` with a JSON body.
    pub fn post_json(
        name: impl Into<String>,
        key: impl Into<String>,
        url: Url,
        body: serde_json::Value,
    ) -> Self {
        Self {
            name: name.into(),
            key: key.into(),
            url,
            method: Method::POST,
            headers: HeaderMap::new(),
            body: Some(body),
            query: Vec::new(),
        }
    }

    /// A `GET` with query parameters (Al-Qimah's webhook).
    pub fn get_query(
        name: impl Into<String>,
        key: impl Into<String>,
        url: Url,
        query: Vec<(String, String)>,
    ) -> Self {
        Self {
            name: name.into(),
            key: key.into(),
            url,
            method: Method::GET,
            headers: HeaderMap::new(),
            body: None,
            query,
        }
    }

    /// Adds a header (authentication, correlation id).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }
}

/// How one callback travels. The default is one copy, shortly after the answer of the call
/// that caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delivery {
    /// Extra copies sent after the first (at most [`MAX_COPIES`]).
    pub copies: u32,
    /// Extra delay before the first copy.
    pub delay: Duration,
    /// Held back until the next callback has been delivered (or `reorder_hold` passed).
    pub reordered: bool,
    /// Delivered before the simulator answers the call that caused it.
    pub before_answer: bool,
    /// Never delivered.
    pub lost: bool,
}

impl Delivery {
    /// One copy, on time.
    pub fn normal() -> Self {
        Self::default()
    }

    /// `copies` extra copies.
    pub fn duplicated(mut self, copies: u32) -> Self {
        self.copies = copies.min(MAX_COPIES);
        self
    }

    /// Delivered `delay` late.
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Delivered after the next callback.
    pub fn reordered(mut self) -> Self {
        self.reordered = true;
        self
    }

    /// Delivered before the causing call is answered.
    pub fn before_answer(mut self) -> Self {
        self.before_answer = true;
        self
    }

    /// Never delivered.
    pub fn lost(mut self) -> Self {
        self.lost = true;
        self
    }
}

/// Deterministic delivery schedule: scripted per callback (the n-th emitted, from 1) or by
/// seeded rates, like [`FaultPlan`](super::FaultPlan).
#[derive(Debug, Clone, Default)]
pub struct DeliveryPlan {
    seed: u64,
    script: BTreeMap<u64, Delivery>,
    rates: Vec<(Delivery, f64)>,
    emitted: u64,
}

impl DeliveryPlan {
    /// Every callback delivered normally; `seed` drives later rates.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            ..Self::default()
        }
    }

    /// The `nth` emitted callback (from 1) travels as `delivery`.
    pub fn script(mut self, nth: u64, delivery: Delivery) -> Self {
        self.script.insert(nth.max(1), delivery);
        self
    }

    /// `probability` of the callbacks travel as `delivery`; probabilities are clamped to
    /// `0..=1` and those past a cumulative 1 never apply.
    pub fn rate(mut self, delivery: Delivery, probability: f64) -> Self {
        self.rates.push((delivery, probability.clamp(0.0, 1.0)));
        self
    }

    fn next(&mut self) -> (u64, Delivery) {
        self.emitted += 1;
        let n = self.emitted;
        if let Some(d) = self.script.remove(&n) {
            return (n, d);
        }
        let mut rng = StdRng::seed_from_u64(self.seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let x: f64 = rng.random();
        let mut cumulative = 0.0;
        for (delivery, p) in &self.rates {
            cumulative += p;
            if x < cumulative {
                return (n, *delivery);
            }
        }
        (n, Delivery::normal())
    }
}

/// Timing and retry settings of a [`CallbackSender`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallbackSettings {
    /// Retries after a failed attempt (Reach: 3); at most [`MAX_RETRIES`].
    pub max_retries: u32,
    /// Pause between attempts.
    pub retry_delay: Duration,
    /// Timeout of one attempt (Reach expects an answer within 10 s).
    pub timeout: Duration,
    /// How long a normal callback waits after being emitted, so it lands after the answer of
    /// the call that caused it.
    pub after_answer: Duration,
    /// Longest a reordered callback is held waiting for a successor.
    pub reorder_hold: Duration,
}

impl Default for CallbackSettings {
    fn default() -> Self {
        Self {
            max_retries: 3,
            retry_delay: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            after_answer: Duration::from_millis(20),
            reorder_hold: Duration::from_secs(2),
        }
    }
}

impl CallbackSettings {
    /// Short pauses for tests: 20 ms between retries, 1 s timeout, 5 ms after the answer,
    /// 500 ms reorder hold.
    pub fn fast() -> Self {
        Self {
            max_retries: 3,
            retry_delay: Duration::from_millis(20),
            timeout: Duration::from_secs(1),
            after_answer: Duration::from_millis(5),
            reorder_hold: Duration::from_millis(500),
        }
    }
}

/// One delivery attempt, as recorded by the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentCallback {
    /// Which emitted callback (from 1).
    pub emitted: u64,
    /// Its event name.
    pub name: String,
    /// Its key.
    pub key: String,
    /// Which copy (0 for the first).
    pub copy: u32,
    /// Which attempt of this copy (0 for the first, then retries).
    pub attempt: u32,
    /// The target's HTTP status, or what went wrong.
    pub outcome: Result<u16, String>,
    /// When the attempt finished.
    pub at: SystemTime,
}

struct Shared {
    client: reqwest::Client,
    settings: CallbackSettings,
    plan: Mutex<DeliveryPlan>,
    sent: Mutex<VecDeque<SentCallback>>,
    held: Mutex<Option<(u64, Callback)>>,
    in_flight: Arc<Semaphore>,
}

/// Delivers a simulator's callbacks. Cheap to clone.
#[derive(Clone)]
pub struct CallbackSender {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for CallbackSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackSender")
            .field("settings", &self.shared.settings)
            .finish_non_exhaustive()
    }
}

impl CallbackSender {
    /// A sender with the given settings and delivery plan. Fails only if the HTTP client
    /// cannot be built (TLS backend initialisation).
    pub fn new(settings: CallbackSettings, plan: DeliveryPlan) -> std::io::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Self {
            shared: Arc::new(Shared {
                client,
                settings: CallbackSettings {
                    max_retries: settings.max_retries.min(MAX_RETRIES),
                    ..settings
                },
                plan: Mutex::new(plan),
                sent: Mutex::new(VecDeque::new()),
                held: Mutex::new(None),
                in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            }),
        })
    }

    /// Replaces the delivery plan.
    pub fn set_plan(&self, plan: DeliveryPlan) {
        *lock(&self.shared.plan) = plan;
    }

    /// Hands over a callback. Returns once it is delivered if the plan says "before the
    /// answer"; otherwise at once, delivery continuing in the background.
    pub async fn emit(&self, callback: Callback) {
        let (n, delivery) = lock(&self.shared.plan).next();
        if delivery.lost {
            tracing::debug!(name = %callback.name, n, "simulated callback lost");
            return;
        }
        if delivery.before_answer {
            self.clone().deliver_all(n, callback, delivery).await;
            self.release_held().await;
            return;
        }
        let Ok(permit) = self.shared.in_flight.clone().try_acquire_owned() else {
            tracing::warn!(name = %callback.name, n, "callback sender saturated: callback dropped");
            self.record(
                n,
                &callback,
                0,
                0,
                Err("dropped: sender saturated".to_owned()),
            );
            return;
        };
        let sender = self.clone();
        if delivery.reordered {
            let previous = lock(&self.shared.held).replace((n, callback));
            tokio::spawn(async move {
                let _permit = permit;
                // Only one slot: a callback already held goes out now, still after its
                // successor was emitted.
                if let Some((m, earlier)) = previous {
                    sender
                        .clone()
                        .deliver_all(m, earlier, Delivery::normal())
                        .await;
                }
                tokio::time::sleep(sender.shared.settings.reorder_hold).await;
                let expired = {
                    let mut held = lock(&sender.shared.held);
                    match held.as_ref() {
                        Some((m, _)) if *m == n => held.take(),
                        _ => None,
                    }
                };
                if let Some((m, cb)) = expired {
                    sender.deliver_all(m, cb, Delivery::normal()).await;
                }
            });
            return;
        }
        tokio::spawn(async move {
            let _permit = permit;
            tokio::time::sleep(sender.shared.settings.after_answer + delivery.delay).await;
            sender.clone().deliver_all(n, callback, delivery).await;
            sender.release_held().await;
        });
    }

    async fn release_held(&self) {
        let held = lock(&self.shared.held).take();
        if let Some((m, cb)) = held {
            self.clone().deliver_all(m, cb, Delivery::normal()).await;
        }
    }

    async fn deliver_all(self, n: u64, callback: Callback, delivery: Delivery) {
        if delivery.before_answer && !delivery.delay.is_zero() {
            tokio::time::sleep(delivery.delay).await;
        }
        for copy in 0..=delivery.copies {
            self.deliver(n, &callback, copy).await;
        }
    }

    async fn deliver(&self, n: u64, callback: &Callback, copy: u32) {
        let settings = self.shared.settings;
        for attempt in 0..=settings.max_retries {
            let mut request = self
                .shared
                .client
                .request(callback.method.clone(), callback.url.clone())
                .headers(callback.headers.clone());
            if !callback.query.is_empty() {
                request = request.query(&callback.query);
            }
            if let Some(body) = &callback.body {
                request = request.json(body);
            }
            let outcome = match request.send().await {
                Ok(response) => Ok(response.status().as_u16()),
                Err(e) => Err(e.without_url().to_string()),
            };
            let delivered = matches!(outcome, Ok(status) if (200..300).contains(&status));
            self.record(n, callback, copy, attempt, outcome);
            if delivered {
                return;
            }
            if attempt < settings.max_retries {
                tokio::time::sleep(settings.retry_delay).await;
            }
        }
        tracing::warn!(name = %callback.name, n, copy, "callback not accepted after all retries");
    }

    fn record(
        &self,
        emitted: u64,
        callback: &Callback,
        copy: u32,
        attempt: u32,
        outcome: Result<u16, String>,
    ) {
        let mut sent = lock(&self.shared.sent);
        if sent.len() == SENT_LOG_CAPACITY {
            sent.pop_front();
        }
        sent.push_back(SentCallback {
            emitted,
            name: callback.name.clone(),
            key: callback.key.clone(),
            copy,
            attempt,
            outcome,
            at: SystemTime::now(),
        });
    }

    /// Every delivery attempt so far, in the order they finished.
    pub fn sent(&self) -> Vec<SentCallback> {
        lock(&self.shared.sent).iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::Router;
    use axum::extract::{Json, RawQuery, State};
    use axum::routing::{get, post};
    use serde_json::json;

    use super::*;

    #[derive(Clone, Default)]
    struct Received(Arc<Mutex<Vec<String>>>);

    impl Received {
        fn keys(&self) -> Vec<String> {
            lock(&self.0).clone()
        }
    }

    async fn receiver() -> (Url, Received) {
        let received = Received::default();
        let router = Router::new()
            .route(
                "/hook",
                post(
                    |State(r): State<Received>, Json(v): Json<serde_json::Value>| async move {
                        lock(&r.0).push(v["id"].as_str().unwrap_or_default().to_owned());
                    },
                ),
            )
            .route(
                "/get-hook",
                get(
                    |State(r): State<Received>, RawQuery(q): RawQuery| async move {
                        lock(&r.0).push(q.unwrap_or_default());
                    },
                ),
            )
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        (Url::parse(&format!("http://{addr}/")).unwrap(), received)
    }

    fn cb(base: &Url, id: &str) -> Callback {
        Callback::post_json("EVENT", id, base.join("hook").unwrap(), json!({ "id": id }))
    }

    async fn wait_for(received: &Received, n: usize) {
        for _ in 0..200 {
            if received.keys().len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn duplicates_and_before_answer() {
        let (base, received) = receiver().await;
        let sender = CallbackSender::new(
            CallbackSettings::fast(),
            DeliveryPlan::new(0)
                .script(1, Delivery::normal().duplicated(2))
                .script(2, Delivery::normal().before_answer()),
        )
        .unwrap();
        sender.emit(cb(&base, "a")).await;
        sender.emit(cb(&base, "b")).await;
        // "b" was delivered before `emit` returned, ahead of "a"'s copies.
        assert_eq!(received.keys().first().map(String::as_str), Some("b"));
        wait_for(&received, 4).await;
        let keys = received.keys();
        assert_eq!(keys.iter().filter(|k| *k == "a").count(), 3, "{keys:?}");
        assert_eq!(sender.sent().len(), 4);
    }

    #[tokio::test]
    async fn reordered_callbacks_arrive_after_their_successor() {
        let (base, received) = receiver().await;
        let sender = CallbackSender::new(
            CallbackSettings::fast(),
            DeliveryPlan::new(0).script(1, Delivery::normal().reordered()),
        )
        .unwrap();
        sender.emit(cb(&base, "first")).await;
        sender.emit(cb(&base, "second")).await;
        wait_for(&received, 2).await;
        assert_eq!(received.keys(), ["second", "first"]);
    }

    #[tokio::test]
    async fn a_held_callback_is_released_when_no_successor_comes() {
        let (base, received) = receiver().await;
        let mut settings = CallbackSettings::fast();
        settings.reorder_hold = Duration::from_millis(30);
        let sender = CallbackSender::new(
            settings,
            DeliveryPlan::new(0).script(1, Delivery::normal().reordered()),
        )
        .unwrap();
        sender.emit(cb(&base, "alone")).await;
        wait_for(&received, 1).await;
        assert_eq!(received.keys(), ["alone"]);
    }

    #[tokio::test]
    async fn get_callbacks_carry_their_query() {
        let (base, received) = receiver().await;
        let sender = CallbackSender::new(CallbackSettings::fast(), DeliveryPlan::new(0)).unwrap();
        let url = base.join("get-hook").unwrap();
        sender
            .emit(Callback::get_query(
                "webhook",
                "T1",
                url,
                vec![
                    ("OperationStatus".into(), "1".into()),
                    ("TransactionID".into(), "T1".into()),
                ],
            ))
            .await;
        wait_for(&received, 1).await;
        assert_eq!(received.keys(), ["OperationStatus=1&TransactionID=T1"]);
    }

    #[tokio::test]
    async fn lost_and_delayed_callbacks() {
        let (base, received) = receiver().await;
        let sender = CallbackSender::new(
            CallbackSettings::fast(),
            DeliveryPlan::new(0)
                .script(1, Delivery::normal().lost())
                .script(2, Delivery::normal().delayed(Duration::from_millis(60))),
        )
        .unwrap();
        sender.emit(cb(&base, "lost")).await;
        sender.emit(cb(&base, "late")).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(received.keys().is_empty());
        wait_for(&received, 1).await;
        assert_eq!(received.keys(), ["late"]);
    }

    #[tokio::test]
    async fn a_target_that_is_down_is_retried_then_given_up_without_panic() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let base = Url::parse(&format!("http://{addr}/")).unwrap();
        let sender = CallbackSender::new(CallbackSettings::fast(), DeliveryPlan::new(0)).unwrap();
        sender.emit(cb(&base, "x").clone()).await;
        for _ in 0..200 {
            if sender.sent().len() == 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let sent = sender.sent();
        assert_eq!(sent.len(), 4, "first attempt + 3 retries: {sent:?}");
        assert!(sent.iter().all(|s| s.outcome.is_err()));
        assert_eq!(sent.last().map(|s| s.attempt), Some(3));
    }
}
