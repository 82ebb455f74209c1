//! Handlers of steps 12 to 17 and the saga: Nafath (with its webhook), eSIM profile, TCC
//! registration, orders, payments with 3-D Secure (and the simulated bank page), QR codes,
//! voids and cancellations.

use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderValue;
use http::header::AUTHORIZATION;
use serde_json::{Value, json};
use tokio::time::Instant;
use url::Url;

use super::flows::{NafathRecord, NafathStart};
use super::gateway::{Call, Reply, business, fail_response, json_response, ok, once};
use super::payments::NewPayment;
use super::world::{Fail, QrPolicy};
use super::{SimState, WorldError, endpoints};
use crate::mobily::checkout::SimType;
use crate::mobily::eligibility::wire as elig;
use crate::mobily::nafath::{NafathWebhook, wire as nafath};
use crate::mobily::orders::{OrderLookup, OrderState, OrderType, wire as orders};
use crate::mobily::payment::{PaymentStatus, ThreeDsResult, ThreeDsReturn, wire as pay};
use crate::mobily::qr::wire as qr;
use crate::mobily::{
    IdempotencyKey, NafathRequestId, NafathTransactionId, OrderId, PaymentId, Sar, codes,
};
use crate::sim::callback::Callback;
use crate::sim::ledger::EffectKind;
use crate::sim::server::lock;

/// Most timer rounds one Nafath request goes through (decision, delayed webhook, expiry).
const MAX_NAFATH_ROUNDS: u32 = 8;

fn sar(halalas: u64) -> String {
    Sar::halalas(halalas).map(Sar::to_wire).unwrap_or_default()
}

/// A parse failure as the handler's reply (boxed: a reply is large).
fn parse_or<T>(result: Result<T, Fail>) -> Result<T, Box<Reply>> {
    result.map_err(|fail| Box::new(fail_response(fail).into()))
}

// ---------------------------------------------------------------------------------------
// Nafath
// ---------------------------------------------------------------------------------------

/// The webhook for a decided request, with the Basic auth it was initiated with.
pub(crate) fn nafath_webhook(state: &SimState, record: &NafathRecord) -> Option<Callback> {
    let url = match &state.nafath_override {
        Some(url) => url.clone(),
        None => Url::parse(&record.webhook_uri).ok()?,
    };
    let hook = NafathWebhook {
        transaction_id: NafathTransactionId::new(record.transaction_id.clone()).ok()?,
        request_id: NafathRequestId::new(record.request_id.clone()).ok()?,
        status: record.status,
        timestamp: Some(chrono::Utc::now()),
    };
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", record.username, record.password))
    );
    let mut value = HeaderValue::from_str(&basic).ok()?;
    value.set_sensitive(true);
    Some(
        Callback::post_json(
            "NAFATH_STATUS",
            record.transaction_id.clone(),
            url,
            hook.to_body(),
        )
        .header(AUTHORIZATION, value),
    )
}

/// Sends the webhook of `transaction` when it is due: at the policy's decision, after a late
/// webhook's delay, or at expiry. Holds only a weak reference while sleeping.
pub(crate) fn schedule_nafath(state: &Arc<SimState>, transaction: String) {
    let weak: Weak<SimState> = Arc::downgrade(state);
    tokio::spawn(async move {
        for _ in 0..MAX_NAFATH_ROUNDS {
            let wait = {
                let Some(state) = weak.upgrade() else { return };
                let rules = state.flow_rules();
                lock(&state.world)
                    .nafath
                    .next_event(&transaction, Instant::now(), &rules)
            };
            let Some(wait) = wait else { return };
            tokio::time::sleep(wait).await;
            let Some(state) = weak.upgrade() else { return };
            let rules = state.flow_rules();
            let due = lock(&state.world)
                .nafath
                .due_webhook(&transaction, Instant::now(), &rules);
            if let Some(callback) = due.as_ref().and_then(|r| nafath_webhook(&state, r)) {
                state.sender.emit(callback).await;
                return;
            }
        }
    });
}

/// `POST /cem/nafath/auth/v1/initiate`.
pub(crate) fn nafath_initiate(state: &Arc<SimState>, call: &Call) -> Reply {
    let r = match parse_or(call.json::<nafath::InitiateRequest>()) {
        Ok(r) => r,
        Err(reply) => return *reply,
    };
    if r.webhook_auth.kind != "Basic" || r.webhook_auth.username.is_empty() {
        return fail_response(Fail::invalid("webhookAuth must be Basic with a username")).into();
    }
    let rules = state.flow_rules();
    let now = Instant::now();
    let mut world = lock(&state.world);
    if world.customer(r.national_id.as_str()).no_nafath_account {
        return business(
            codes::NAFATH_NOT_REGISTERED,
            "The customer has no Nafath account.",
            Value::Null,
        )
        .into();
    }
    let start = NafathStart {
        request_id: r.request_id.as_str(),
        webhook_uri: r.webhook_uri.as_str(),
        username: &r.webhook_auth.username,
        password: secrecy::ExposeSecret::expose_secret(&r.webhook_auth.password),
    };
    let super::world::World { ids, nafath, .. } = &mut *world;
    let record = nafath.initiate(ids, &start, now, &rules);
    // A customer who answers at once: the webhook may even beat this answer.
    let due = nafath.due_webhook(&record.transaction_id, now, &rules);
    drop(world);
    let callbacks: Vec<Callback> = due
        .iter()
        .filter_map(|d| nafath_webhook(state, d))
        .collect();
    if callbacks.is_empty() {
        schedule_nafath(state, record.transaction_id.clone());
    }
    Reply {
        response: json_response(ok(json!({
            "transactionId": record.transaction_id, "random": record.random,
            "expiresInSeconds": rules.nafath_window.as_secs().max(1),
        }))),
        callbacks,
    }
}

/// `POST /cem/nafath/auth/v1/tokeninfo` (and `tokenInfo`).
pub(crate) fn nafath_tokeninfo(state: &Arc<SimState>, call: &Call) -> Reply {
    let result = call.json::<nafath::TokenInfoRequest>().and_then(|r| {
        let rules = state.flow_rules();
        let tx = r.transaction_id.as_str();
        let status = lock(&state.world).nafath.status(tx, Instant::now(), &rules);
        let status = status.ok_or_else(|| Fail::not_found("unknown transactionId"))?;
        Ok(json_response(ok(
            json!({ "transactionId": tx, "status": status }),
        )))
    });
    result.into()
}

// ---------------------------------------------------------------------------------------
// SIM and TCC
// ---------------------------------------------------------------------------------------

/// `POST /bmi-sim-details/services/sim/get`.
pub(crate) fn sim_get(state: &Arc<SimState>, call: &Call) -> Reply {
    let result = call.json::<elig::SimGetRequest>().and_then(|r| {
        if r.sim_type != SimType::Esim {
            return Err(Fail::invalid("only ESIM profiles are served here"));
        }
        let iccid = lock(&state.world).sim_for(r.msisdn.as_str());
        Ok(json_response(ok(
            json!({ "iccid": iccid, "simType": "ESIM" }),
        )))
    });
    result.into()
}

/// `POST /bmi-tcc-eligibility/services/tcc/register` (idempotent by key).
pub(crate) fn tcc_register(state: &Arc<SimState>, call: &Call) -> Reply {
    let parsed = call
        .key()
        .and_then(|k| Ok((k, call.json::<elig::TccRegisterRequest>()?)));
    let (key, r) = match parse_or(parsed) {
        Ok(p) => p,
        Err(reply) => return *reply,
    };
    once(state, endpoints::TCC_REGISTER, &key, |world| {
        if r.id_type != r.national_id.id_type() {
            return Err(Fail::invalid("idType does not match nationalId"));
        }
        let msisdn = r.msisdn.as_str();
        let (id, first) = world.register(r.national_id.as_str(), msisdn, r.iccid.as_str())?;
        if first {
            state.ledger.record(
                EffectKind::Registration,
                key.clone(),
                Some(msisdn),
                json!({ "registrationId": id }),
            );
        }
        Ok(ok(json!({ "registrationId": id })))
    })
    .into()
}

// ---------------------------------------------------------------------------------------
// Orders
// ---------------------------------------------------------------------------------------

/// `POST /OrderGenerator/postProductOrder` (idempotent by key).
pub(crate) fn post_order(state: &Arc<SimState>, call: &Call) -> Reply {
    let parsed = call
        .key()
        .and_then(|k| Ok((k, call.json::<orders::PostOrderRequest>()?)));
    let (key, r) = match parse_or(parsed) {
        Ok(p) => p,
        Err(reply) => return *reply,
    };
    once(state, endpoints::POST_PRODUCT_ORDER, &key, |world| {
        let order = world.post_order(r.shopping_cart_id.as_str(), r.external_order_id.as_str(), r.order_type)?;
        state.ledger.record(
            EffectKind::Order,
            key.clone(),
            Some(&order.msisdn),
            json!({ "orderId": order.id, "orderType": order.order_type, "total": sar(order.total) }),
        );
        Ok(ok(json!({
            "orderId": order.id, "orderStatus": order.status,
            "totalAmount": sar(order.total), "currency": "SAR",
        })))
    })
    .into()
}

/// `POST /OrderGenerator/orderTracking/orderInquiry`: each inquiry after payment may move
/// the order on (fulfilment).
pub(crate) fn order_inquiry(state: &Arc<SimState>, call: &Call) -> Reply {
    let result = call.json::<orders::OrderInquiryRequest>().and_then(|r| {
        let lookup = match (r.order_id, r.msisdn, r.external_order_id) {
            (Some(id), None, None) => OrderLookup::OrderId(id),
            (None, Some(m), None) => OrderLookup::Msisdn(m),
            (None, None, Some(k)) => OrderLookup::ExternalOrderId(k),
            _ => {
                return Err(Fail::invalid(
                    "give exactly one of orderId, msisdn and externalOrderId",
                ));
            }
        };
        let rules = state.world_rules();
        let mut world = lock(&state.world);
        let ids: Vec<String> = match &lookup {
            OrderLookup::OrderId(id) => world
                .orders
                .get(id.as_str())
                .map(|o| o.id.clone())
                .into_iter()
                .collect(),
            OrderLookup::Msisdn(m) => {
                let mut found: Vec<String> = world
                    .orders
                    .values()
                    .filter(|o| o.msisdn == m.as_str())
                    .map(|o| o.id.clone())
                    .collect();
                found.sort();
                found
            }
            OrderLookup::ExternalOrderId(k) => world
                .orders_by_external
                .get(k.as_str())
                .cloned()
                .into_iter()
                .collect(),
        };
        let mut list = Vec::new();
        for id in ids.iter().take(crate::mobily::orders::MAX_ORDERS) {
            world.track(id, &rules);
            if let Some(o) = world.orders.get(id) {
                list.push(json!({
                    "orderId": o.id, "externalOrderId": o.external_id, "orderType": o.order_type,
                    "orderStatus": o.status, "msisdn": o.msisdn,
                }));
            }
        }
        Ok(json_response(ok(json!({ "orders": list }))))
    });
    result.into()
}

fn cancel(
    state: &Arc<SimState>,
    endpoint: &'static str,
    key: &str,
    order_id: &str,
    order_type: OrderType,
) -> Response {
    once(state, endpoint, key, |world| {
        let (order, first) = world.cancel(order_id, order_type)?;
        if first {
            state.ledger.record(
                EffectKind::Cancel,
                key.to_owned(),
                Some(&order.msisdn),
                json!({ "orderId": order.id }),
            );
        }
        Ok(ok(
            json!({ "orderId": order.id, "orderStatus": OrderState::Cancelled }),
        ))
    })
}

/// `POST /OrderGenerator/cancelMNPOrder` (MNP orders only).
pub(crate) fn cancel_mnp(state: &Arc<SimState>, call: &Call) -> Reply {
    let parsed = call
        .key()
        .and_then(|k| Ok((k, call.json::<orders::CancelMnpRequest>()?)));
    match parse_or(parsed) {
        Ok((key, r)) => cancel(
            state,
            endpoints::CANCEL_MNP_ORDER,
            &key,
            r.order_id.as_str(),
            OrderType::Mnp,
        )
        .into(),
        Err(reply) => *reply,
    }
}

/// `PUT /OrderGenerator/updateOrderStatus/{orderId}` (channels may only set `CANCELLED`).
pub(crate) fn update_order_status(state: &Arc<SimState>, call: &Call) -> Reply {
    let parsed = call.key().and_then(|k| {
        let r = call.json::<orders::UpdateStatusRequest>()?;
        let id = OrderId::new(call.last_segment())
            .map_err(|_| Fail::invalid("invalid orderId in the path"))?;
        if r.status != OrderState::Cancelled {
            return Err(Fail::invalid("channels may only set the status CANCELLED"));
        }
        Ok((k, id))
    });
    match parse_or(parsed) {
        Ok((key, id)) => cancel(
            state,
            endpoints::UPDATE_ORDER_STATUS,
            &key,
            id.as_str(),
            OrderType::New,
        )
        .into(),
        Err(reply) => *reply,
    }
}

// ---------------------------------------------------------------------------------------
// Payments
// ---------------------------------------------------------------------------------------

/// `POST /api/payment/v2/createSession`.
pub(crate) fn create_session(state: &Arc<SimState>, call: &Call) -> Reply {
    let result = call.json::<pay::CreateSessionRequest>().and_then(|r| {
        if r.currency != Sar::CURRENCY {
            return Err(Fail::invalid("currency must be SAR"));
        }
        let max = state.world_rules().max_records;
        let mut world = lock(&state.world);
        let order = world.order(r.order_id.as_str())?;
        if order.status != OrderState::Submitted {
            return Err(Fail::invalid("the order is not awaiting payment"));
        }
        if order.total != r.amount.as_halalas() {
            return Err(Fail::invalid("the amount differs from the order total"));
        }
        let super::world::World { ids, payments, .. } = &mut *world;
        let session = payments.create_session(ids, r.order_id.as_str(), r.amount.as_halalas(), max);
        Ok(json_response(ok(
            json!({ "sessionId": session, "expiresInSeconds": 900 }),
        )))
    });
    result.into()
}

fn payment_body(payment_id: &str, status: PaymentStatus, redirect: Option<&Url>) -> Value {
    match status {
        PaymentStatus::Declined => json!({
            "code": codes::PAYMENT_DECLINED, "message": "The payment was declined by the issuer.",
            "paymentId": payment_id, "status": status,
        }),
        _ => {
            let mut fields = json!({ "paymentId": payment_id, "status": status });
            if let Some(url) = redirect {
                fields["redirectUrl"] = json!(url.as_str());
            }
            ok(fields)
        }
    }
}

/// `POST /api/payment/v2/createPayment` (idempotent by `paymentTransId`).
pub(crate) fn create_payment(state: &Arc<SimState>, call: &Call) -> Reply {
    let parsed = call.key().and_then(|k| {
        let r = call.json::<pay::CreatePaymentRequest>()?;
        if r.payment_trans_id.as_str() != k || r.currency != Sar::CURRENCY {
            return Err(Fail::invalid(
                "X-Idempotency-Key must equal paymentTransId, and currency be SAR",
            ));
        }
        Ok((k, r))
    });
    let (key, r) = match parse_or(parsed) {
        Ok(p) => p,
        Err(reply) => return *reply,
    };
    let behaviour = state.behaviour();
    let mut challenged = None;
    let response = once(state, endpoints::CREATE_PAYMENT, &key, |world| {
        let order = world.order(r.order_id.as_str())?;
        if order.status != OrderState::Submitted {
            return Err(Fail::invalid("the order is not awaiting payment"));
        }
        let msisdn = order.msisdn.clone();
        let new = NewPayment {
            session_id: r.session_id.as_str(),
            payment_trans_id: &key,
            order_id: r.order_id.as_str(),
            amount: r.amount.as_halalas(),
            return_url: r.return_url.as_str(),
        };
        let super::world::World { ids, payments, .. } = &mut *world;
        let created = payments.create(ids, &new, behaviour.three_ds, behaviour.max_records)?;
        let record = created.record;
        if created.authorised_now {
            state.ledger.record(
                EffectKind::Payment,
                key.clone(),
                Some(&msisdn),
                json!({ "amount": sar(record.amount) }),
            );
            world.mark_paid(&record.order_id, Instant::now());
        }
        let redirect = (record.status == PaymentStatus::Pending3ds)
            .then(|| state.bank_page(&record.payment_id));
        if redirect.is_some() {
            challenged = Some((record.payment_id.clone(), record.return_url.clone()));
        }
        Ok(payment_body(
            &record.payment_id,
            record.status,
            redirect.as_ref(),
        ))
    });
    if let (Some((payment_id, return_url)), Some(auto)) = (challenged, behaviour.three_ds_auto) {
        let weak = Arc::downgrade(state);
        tokio::spawn(async move {
            tokio::time::sleep(auto.after).await;
            let Some(state) = weak.upgrade() else { return };
            if let Ok(url) = state.finish_3ds(&payment_id, auto.success, &return_url) {
                let query: Vec<(String, String)> = url
                    .query_pairs()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                let mut base = url.clone();
                base.set_query(None);
                state
                    .sender
                    .emit(Callback::get_query("3DS_RETURN", payment_id, base, query))
                    .await;
            }
        });
    }
    response.into()
}

/// `POST /api/payment/v2/confirmPayment`.
pub(crate) fn confirm_payment(state: &Arc<SimState>, call: &Call) -> Reply {
    let result = call.key().and_then(|key| {
        let r = call.json::<pay::ConfirmPaymentRequest>()?;
        if r.payment_trans_id.as_str() != key {
            return Err(Fail::invalid("X-Idempotency-Key must equal paymentTransId"));
        }
        let mut world = lock(&state.world);
        let (record, authorised_now) = world.payments.confirm(r.payment_id.as_str(), &key)?;
        if authorised_now {
            let msisdn = world.orders.get(&record.order_id).map(|o| o.msisdn.clone());
            state.ledger.record(
                EffectKind::Payment,
                key,
                msisdn.as_deref(),
                json!({ "amount": sar(record.amount) }),
            );
            world.mark_paid(&record.order_id, Instant::now());
        }
        Ok(json_response(payment_body(
            &record.payment_id,
            record.status,
            None,
        )))
    });
    result.into()
}

/// `GET /cem/dpc/inquiry/v1/request/{refId}`.
pub(crate) fn payment_inquiry(state: &Arc<SimState>, call: &Call) -> Reply {
    let world = lock(&state.world);
    match world.payments.get(call.last_segment()) {
        Some(p) => json_response(ok(json!({
            "refId": p.payment_trans_id, "paymentId": p.payment_id, "status": p.status,
            "amount": sar(p.amount), "currency": "SAR",
        })))
        .into(),
        None => fail_response(Fail::not_found("no payment request with this refId")).into(),
    }
}

/// `POST /cem/bff/ecom/v1/initiatePayment` with `operation: "Void"` (idempotent by key).
pub(crate) fn initiate_payment(state: &Arc<SimState>, call: &Call) -> Reply {
    let parsed = call.key().and_then(|k| {
        let r = call.json::<pay::InitiatePaymentRequest>()?;
        if r.operation != "Void" {
            return Err(Fail::invalid(
                "the simulator supports the operation Void only",
            ));
        }
        if r.channel_transaction_id.as_str() != k || r.currency != Sar::CURRENCY {
            return Err(Fail::invalid(
                "X-Idempotency-Key must equal channelTransactionId, and currency be SAR",
            ));
        }
        Ok((k, r))
    });
    let (key, r) = match parse_or(parsed) {
        Ok(p) => p,
        Err(reply) => return *reply,
    };
    once(state, endpoints::INITIATE_PAYMENT, &key, |world| {
        let record = world
            .payments
            .void(r.payment_trans_id.as_str(), r.amount.as_halalas())?;
        let msisdn = world.orders.get(&record.order_id).map(|o| o.msisdn.clone());
        state.ledger.record(
            EffectKind::Void,
            key.clone(),
            msisdn.as_deref(),
            json!({ "paymentTransId": record.payment_trans_id, "amount": sar(record.amount) }),
        );
        Ok(ok(
            json!({ "status": PaymentStatus::Voided, "paymentTransId": record.payment_trans_id }),
        ))
    })
    .into()
}

// ---------------------------------------------------------------------------------------
// QR
// ---------------------------------------------------------------------------------------

/// `POST /mobily-qr-code/services/qr/get` (and `/qr/get`).
pub(crate) fn qr_get(state: &Arc<SimState>, call: &Call) -> Reply {
    let result = call.json::<qr::QrRequest>().and_then(|r| {
        let rules = state.world_rules();
        let ready = lock(&state.world).qr(
            r.order_id.as_str(),
            r.msisdn.as_str(),
            Instant::now(),
            &rules,
        )?;
        Ok(match ready {
            Some((code, iccid)) => {
                let image = STANDARD
                    .encode("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1\" height=\"1\"/>");
                json_response(ok(
                    json!({ "qrCode": code, "iccid": iccid, "qrImage": image }),
                ))
            }
            None => {
                let retry = match rules.qr {
                    QrPolicy::AfterDelay(d) => d.as_secs().clamp(1, 60),
                    QrPolicy::AfterInquiries(_) => 1,
                };
                business(
                    codes::QR_NOT_READY,
                    "The QR code is not generated yet.",
                    json!({ "retryAfterSeconds": retry }),
                )
            }
        })
    });
    result.into()
}

// ---------------------------------------------------------------------------------------
// The bank's 3-D Secure page (the customer's browser; no gateway credentials)
// ---------------------------------------------------------------------------------------

/// `GET /sim/3ds/{paymentId}`: the bank page, with the two answers a customer can give.
pub(crate) async fn bank_page(
    State(state): State<Arc<SimState>>,
    Path(payment_id): Path<String>,
) -> Response {
    let known = lock(&state.world)
        .payments
        .by_payment_id(&payment_id)
        .map(|p| (p.amount, p.status));
    match known {
        Some((amount, PaymentStatus::Pending3ds)) => Html(format!(
            "<!doctype html><title>3-D Secure</title><h1>Simulated bank</h1>\
             <p>Approve the payment of SAR {}?</p>\
             <p><a href=\"{payment_id}/complete?result=success\">Approve</a> \
             <a href=\"{payment_id}/complete?result=failure\">Decline</a></p>",
            sar(amount)
        ))
        .into_response(),
        Some(_) => Html("<p>This payment is no longer waiting for 3-D Secure.</p>").into_response(),
        None => (http::StatusCode::NOT_FOUND, "unknown payment").into_response(),
    }
}

/// `GET /sim/3ds/{paymentId}/complete?result=success|failure`: the customer answers and the
/// bank redirects the browser to the caller's return URL.
pub(crate) async fn bank_complete(
    State(state): State<Arc<SimState>>,
    Path(payment_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let success = match query.as_deref() {
        Some("result=success") => true,
        Some("result=failure") => false,
        _ => {
            return (
                http::StatusCode::BAD_REQUEST,
                "result must be success or failure",
            )
                .into_response();
        }
    };
    let return_url = lock(&state.world)
        .payments
        .by_payment_id(&payment_id)
        .map(|p| p.return_url.clone());
    let Some(return_url) = return_url else {
        return (http::StatusCode::NOT_FOUND, "unknown payment").into_response();
    };
    match state.finish_3ds(&payment_id, success, &return_url) {
        Ok(url) => Redirect::to(url.as_str()).into_response(),
        Err(e) => (http::StatusCode::CONFLICT, e.to_string()).into_response(),
    }
}

impl SimState {
    /// The bank page of a payment, on this simulator.
    fn bank_page(&self, payment_id: &str) -> Url {
        let base = self.base_url().as_str().trim_end_matches('/').to_owned();
        Url::parse(&format!("{base}/sim/3ds/{payment_id}"))
            .unwrap_or_else(|_| self.base_url().clone())
    }

    /// Records the customer's 3-D Secure answer; returns where the browser goes next.
    pub(crate) fn finish_3ds(
        &self,
        payment_id: &str,
        success: bool,
        return_url: &str,
    ) -> Result<Url, WorldError> {
        let record = lock(&self.world)
            .payments
            .complete_3ds(payment_id, success)?;
        let base = match &self.return_override {
            Some(url) => url.clone(),
            None => Url::parse(return_url).map_err(|_| WorldError::Unknown("return URL"))?,
        };
        let back = ThreeDsReturn {
            payment_id: PaymentId::new(record.payment_id)
                .map_err(|_| WorldError::Unknown("payment"))?,
            payment_trans_id: IdempotencyKey::new(record.payment_trans_id)
                .map_err(|_| WorldError::Unknown("payment"))?,
            result: if success {
                ThreeDsResult::Success
            } else {
                ThreeDsResult::Failure
            },
        };
        Ok(back.apply_to(&base))
    }
}

/// When the simulated customer finishes 3-D Secure by themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoThreeDs {
    /// How long after createPayment.
    pub after: Duration,
    /// Whether they pass.
    pub success: bool,
}
