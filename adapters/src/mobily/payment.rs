//! Step 15: payment (session, 3-D Secure, confirmation), its inquiry, and the saga's void.
//!
//! The flow (lines 390-400): `createSession` opens a gateway session for the order;
//! `createPayment` ("3D enrollment (passing Session ID & Payment Trans ID)") answers with
//! the bank's 3-D Secure page, which the customer's browser opens; the bank sends the
//! browser back to our return URL; `confirmPayment` ("ProceedPayment") authorises.
//!
//! # Keys and reconciliation (*ours*)
//!
//! - `paymentTransId` is **our** id for the payment (the document's "Payment Trans ID"):
//!   the journey's [`IdempotencyKey`] for the payment step. It goes in the body and in
//!   `X-Idempotency-Key` of `createPayment` and `confirmPayment` (keys are scoped per
//!   endpoint, so one key serves both).
//! - After an `OutcomeUnknown` of either, [`MobilyClient::payment_status`] asks "Retrieve
//!   payment request details" (`GET /cem/dpc/inquiry/v1/request/{refId}`, line 126) with
//!   `refId` = `paymentTransId`. We add this read-only call because money must never be
//!   taken twice and neither payment call is documented as idempotent. `NOT_FOUND` means
//!   createPayment never happened: send it again with the same key.
//! - The void (`/cem/bff/ecom/v1/initiatePayment`, line 134, `operation: "Void"`) names the
//!   payment by `paymentTransId` and carries its own key as `channelTransactionId` and
//!   `X-Idempotency-Key`. Voiding twice, or voiding a payment that was never authorised,
//!   answers [`codes::NOTHING_TO_VOID`], which is [`VoidOutcome::NothingToVoid`]: the
//!   compensation is done either way.
//!
//! # The customer's return from the bank
//!
//! Our return URL (configured, it may carry its own query) gets
//! `paymentId=<gateway id>&paymentTransId=<our id>&result=success|failure` appended;
//! [`ThreeDsReturn::parse_query`] reads it. The result is the browser's word, not the bank's:
//! the journey still calls `confirmPayment`, which is authoritative.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use super::nafath::InboundError;
use super::types::{IdempotencyKey, OrderId, PaymentId, Sar, SessionId, invalid};
use super::{Endpoint, MobilyClient, answer_of, codes, ops, paths};
use crate::error::ProviderError;
use crate::http::Effect;

/// Longest 3-D Secure return query accepted, in bytes.
pub const MAX_RETURN_QUERY_BYTES: usize = 2048;

const CREATE_SESSION: Endpoint =
    Endpoint::post(ops::CREATE_SESSION, paths::CREATE_SESSION, Effect::ReadOnly);
const CREATE_PAYMENT: Endpoint = Endpoint::post(
    ops::CREATE_PAYMENT,
    paths::CREATE_PAYMENT,
    Effect::Effectful,
);
const CONFIRM_PAYMENT: Endpoint = Endpoint::post(
    ops::CONFIRM_PAYMENT,
    paths::CONFIRM_PAYMENT,
    Effect::Effectful,
);
const PAYMENT_STATUS: Endpoint = Endpoint {
    operation: ops::PAYMENT_STATUS,
    method: super::Verb::Get,
    template: paths::PAYMENT_INQUIRY,
    effect: Effect::ReadOnly,
};
const VOID: Endpoint = Endpoint::post(
    ops::VOID_PAYMENT,
    paths::INITIATE_PAYMENT,
    Effect::Effectful,
);

/// A payment's status on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    /// Waiting for the customer on the bank's 3-D Secure page.
    #[serde(rename = "PENDING_3DS")]
    Pending3ds,
    /// Authorised: money is held.
    Authorised,
    /// Declined by the bank.
    Declined,
    /// Authorised, then voided.
    Voided,
}

/// Wire structures.
pub mod wire {
    use super::*;

    /// Body of createSession.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct CreateSessionRequest {
        /// The order being paid.
        pub order_id: OrderId,
        /// The amount.
        pub amount: Sar,
        /// `"SAR"`.
        pub currency: String,
    }

    /// Answer of createSession.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct CreateSessionResponse {
        /// The gateway session.
        pub session_id: SessionId,
        /// How long it lives.
        pub expires_in_seconds: u64,
    }

    /// Body of createPayment.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct CreatePaymentRequest {
        /// The gateway session.
        pub session_id: SessionId,
        /// Our payment id.
        pub payment_trans_id: IdempotencyKey,
        /// The order.
        pub order_id: OrderId,
        /// The amount.
        pub amount: Sar,
        /// `"SAR"`.
        pub currency: String,
        /// Where the bank sends the customer's browser back.
        #[serde(with = "crate::mobily::wire::url_field")]
        pub return_url: Url,
    }

    /// Body of confirmPayment.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct ConfirmPaymentRequest {
        /// The gateway's payment.
        pub payment_id: PaymentId,
        /// Our payment id.
        pub payment_trans_id: IdempotencyKey,
        /// "Saving Flage" (line 400): we never save cards.
        pub save_card: bool,
    }

    /// Answer of createPayment and confirmPayment.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct PaymentResponse {
        /// The gateway's payment.
        pub payment_id: PaymentId,
        /// Its status.
        pub status: PaymentStatus,
        /// The bank page, with `PENDING_3DS`.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "crate::mobily::wire::url_field_opt"
        )]
        pub redirect_url: Option<Url>,
    }

    /// Answer of the payment inquiry.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct PaymentInquiryResponse {
        /// Our payment id, echoed.
        pub ref_id: IdempotencyKey,
        /// The gateway's payment.
        pub payment_id: PaymentId,
        /// Its status.
        pub status: PaymentStatus,
        /// Its amount.
        pub amount: Sar,
    }

    /// Body of initiatePayment (we send only `Void`).
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct InitiatePaymentRequest {
        /// `"Void"`.
        pub operation: String,
        /// The payment to void (our id).
        pub payment_trans_id: IdempotencyKey,
        /// This void's own key.
        pub channel_transaction_id: IdempotencyKey,
        /// The authorised amount.
        pub amount: Sar,
        /// `"SAR"`.
        pub currency: String,
    }

    /// Answer of initiatePayment.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct InitiatePaymentResponse {
        /// The payment's status after the operation (`VOIDED`).
        pub status: PaymentStatus,
    }
}

/// A gateway session for one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentSession {
    /// The session.
    pub session_id: SessionId,
    /// How long it lives.
    pub expires_in: Duration,
}

/// What `createPayment` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// Send the customer's browser to `redirect_url`; wait for the return (a signal), then
    /// confirm.
    Requires3ds {
        /// The gateway's payment.
        payment_id: PaymentId,
        /// The bank's 3-D Secure page.
        redirect_url: Url,
    },
    /// Authorised without a challenge (frictionless); confirm to proceed.
    Authorised {
        /// The gateway's payment.
        payment_id: PaymentId,
    },
    /// The bank declined.
    Declined {
        /// Mobily's code.
        code: String,
        /// Its message (sanitized).
        message: String,
    },
}

/// What `confirmPayment` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmPaymentOutcome {
    /// Authorised: money is held for the order. Compensate with a void.
    Authorised {
        /// The gateway's payment.
        payment_id: PaymentId,
    },
    /// The customer has not finished 3-D Secure yet: wait for the return.
    Pending3ds,
    /// Declined (3-D Secure failed or the bank refused).
    Declined {
        /// Mobily's code.
        code: String,
        /// Its message (sanitized).
        message: String,
    },
}

/// What the payment inquiry found for our `paymentTransId`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentState {
    /// No payment with this id: createPayment never took effect.
    NotFound,
    /// Found, with its status.
    Found {
        /// The gateway's payment.
        payment_id: PaymentId,
        /// Its status.
        status: PaymentStatus,
        /// Its amount.
        amount: Sar,
    },
}

/// What the void did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoidOutcome {
    /// The authorisation is released.
    Voided,
    /// Nothing was authorised (never, or already voided): nothing to undo.
    NothingToVoid {
        /// Mobily's message (sanitized).
        message: String,
    },
}

/// What `createPayment` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRequest {
    /// From [`MobilyClient::create_session`].
    pub session_id: SessionId,
    /// The order.
    pub order_id: OrderId,
    /// The amount (positive).
    pub amount: Sar,
}

/// A createPayment or confirmPayment answer, before it is read for one of them.
enum Answered {
    Declined {
        code: String,
        message: String,
    },
    Status {
        payment_id: PaymentId,
        status: PaymentStatus,
        redirect_url: Option<Url>,
    },
}

fn answered(answer: &super::Answer) -> Result<Answered, ProviderError> {
    let declined = || Answered::Declined {
        code: codes::PAYMENT_DECLINED.to_owned(),
        message: super::types::message(Some(&answer.message), "the payment was declined"),
    };
    if answer.code == codes::PAYMENT_DECLINED {
        return Ok(declined());
    }
    answer.success_or_refused()?;
    let parsed: wire::PaymentResponse = answer.body()?;
    if parsed.status == PaymentStatus::Declined {
        return Ok(declined());
    }
    Ok(Answered::Status {
        payment_id: parsed.payment_id,
        status: parsed.status,
        redirect_url: parsed.redirect_url,
    })
}

impl MobilyClient {
    /// Step 15: opens a payment session for the order. Moves no money; a lost answer is
    /// retried (an unused session expires).
    pub async fn create_session(
        &self,
        order: &OrderId,
        amount: Sar,
    ) -> Result<PaymentSession, ProviderError> {
        if amount.is_zero() {
            return Err(invalid("a payment amount must be positive"));
        }
        let body = wire::CreateSessionRequest {
            order_id: order.clone(),
            amount,
            currency: Sar::CURRENCY.to_owned(),
        };
        let answer = self.call(CREATE_SESSION, &body, None).await?;
        answer.success_or_refused()?;
        let parsed: wire::CreateSessionResponse = answer.body()?;
        Ok(PaymentSession {
            session_id: parsed.session_id,
            expires_in: Duration::from_secs(parsed.expires_in_seconds),
        })
    }

    /// Step 15: 3-D Secure enrolment. Effectful; `key` is our `paymentTransId`. Reconcile an
    /// `OutcomeUnknown` with [`Self::payment_status`] before sending again.
    #[tracing::instrument(level = "debug", skip_all, fields(provider = "mobily", key = %key), err(level = tracing::Level::DEBUG))]
    pub async fn create_payment(
        &self,
        request: &PaymentRequest,
        key: &IdempotencyKey,
    ) -> Result<PaymentOutcome, ProviderError> {
        if request.amount.is_zero() {
            return Err(invalid("a payment amount must be positive"));
        }
        let body = wire::CreatePaymentRequest {
            session_id: request.session_id.clone(),
            payment_trans_id: key.clone(),
            order_id: request.order_id.clone(),
            amount: request.amount,
            currency: Sar::CURRENCY.to_owned(),
            return_url: self.return_url().clone(),
        };
        let answer = self.call(CREATE_PAYMENT, &body, Some(key)).await?;
        match answered(&answer)? {
            Answered::Declined { code, message } => Ok(PaymentOutcome::Declined { code, message }),
            Answered::Status {
                payment_id,
                status: PaymentStatus::Pending3ds,
                redirect_url: Some(redirect_url),
            } => Ok(PaymentOutcome::Requires3ds {
                payment_id,
                redirect_url,
            }),
            Answered::Status {
                payment_id,
                status: PaymentStatus::Authorised,
                ..
            } => Ok(PaymentOutcome::Authorised { payment_id }),
            Answered::Status { status, .. } => Err(answer.protocol(&format!(
                "unexpected payment status {status:?} (PENDING_3DS needs a redirectUrl)"
            ))),
        }
    }

    /// Step 15: proceeds with the payment after 3-D Secure. Effectful; `key` is the same
    /// `paymentTransId`. Confirming an authorised payment again answers `Authorised` without
    /// a second authorisation; reconcile with [`Self::payment_status`] or confirm again.
    #[tracing::instrument(level = "debug", skip_all, fields(provider = "mobily", key = %key), err(level = tracing::Level::DEBUG))]
    pub async fn confirm_payment(
        &self,
        payment: &PaymentId,
        key: &IdempotencyKey,
    ) -> Result<ConfirmPaymentOutcome, ProviderError> {
        let body = wire::ConfirmPaymentRequest {
            payment_id: payment.clone(),
            payment_trans_id: key.clone(),
            save_card: false,
        };
        let answer = self.call(CONFIRM_PAYMENT, &body, Some(key)).await?;
        if answer.code == codes::PAYMENT_PENDING_3DS {
            return Ok(ConfirmPaymentOutcome::Pending3ds);
        }
        match answered(&answer)? {
            Answered::Declined { code, message } => {
                Ok(ConfirmPaymentOutcome::Declined { code, message })
            }
            Answered::Status {
                payment_id,
                status: PaymentStatus::Authorised,
                ..
            } => Ok(ConfirmPaymentOutcome::Authorised { payment_id }),
            Answered::Status {
                status: PaymentStatus::Pending3ds,
                ..
            } => Ok(ConfirmPaymentOutcome::Pending3ds),
            Answered::Status { status, .. } => {
                Err(answer.protocol(&format!("unexpected payment status {status:?}")))
            }
        }
    }

    /// Reconciliation: the payment with our `paymentTransId`, if Mobily has one. Read-only.
    pub async fn payment_status(
        &self,
        key: &IdempotencyKey,
    ) -> Result<PaymentState, ProviderError> {
        let path = format!("{}{}", paths::PAYMENT_INQUIRY_PREFIX, key.as_str());
        let response = self
            .send::<()>(PAYMENT_STATUS, Some(&path), None, None)
            .await?;
        if response.status() == http::StatusCode::NOT_FOUND {
            let code = serde_json::from_slice::<serde_json::Value>(response.body())
                .ok()
                .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_owned));
            // Only Mobily's own "unknown id" means not found; a gateway 404 is an error.
            if code.as_deref() == Some(codes::NOT_FOUND) {
                return Ok(PaymentState::NotFound);
            }
        }
        let answer = answer_of(PAYMENT_STATUS, response)?;
        answer.success_or_refused()?;
        let parsed: wire::PaymentInquiryResponse = answer.body()?;
        if &parsed.ref_id != key {
            return Err(answer.protocol("the inquiry answered for another refId"));
        }
        Ok(PaymentState::Found {
            payment_id: parsed.payment_id,
            status: parsed.status,
            amount: parsed.amount,
        })
    }

    /// Saga: voids the authorisation of the payment `payment` (its `paymentTransId`).
    /// Effectful; `key` is this void's own key. Safe to repeat: a repeat (or a void of a
    /// payment never authorised) is [`VoidOutcome::NothingToVoid`] or `Voided` again.
    #[tracing::instrument(level = "debug", skip_all, fields(provider = "mobily", payment = %payment, key = %key), err(level = tracing::Level::DEBUG))]
    pub async fn void_payment(
        &self,
        payment: &IdempotencyKey,
        amount: Sar,
        key: &IdempotencyKey,
    ) -> Result<VoidOutcome, ProviderError> {
        let body = wire::InitiatePaymentRequest {
            operation: "Void".to_owned(),
            payment_trans_id: payment.clone(),
            channel_transaction_id: key.clone(),
            amount,
            currency: Sar::CURRENCY.to_owned(),
        };
        let answer = self.call(VOID, &body, Some(key)).await?;
        if answer.code == codes::NOTHING_TO_VOID {
            return Ok(VoidOutcome::NothingToVoid {
                message: super::types::message(Some(&answer.message), "nothing to void"),
            });
        }
        answer.success_or_refused()?;
        let parsed: wire::InitiatePaymentResponse = answer.body()?;
        match parsed.status {
            PaymentStatus::Voided => Ok(VoidOutcome::Voided),
            other => Err(answer.protocol(&format!("void answered status {other:?}"))),
        }
    }
}

/// The customer's result on the bank page, as the browser reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThreeDsResult {
    /// The customer passed 3-D Secure.
    Success,
    /// They failed or cancelled.
    Failure,
}

impl ThreeDsResult {
    /// The query value.
    pub fn wire_name(self) -> &'static str {
        match self {
            ThreeDsResult::Success => "success",
            ThreeDsResult::Failure => "failure",
        }
    }
}

/// The customer's browser coming back from the bank to our return URL.
#[derive(Clone, PartialEq, Eq)]
pub struct ThreeDsReturn {
    /// The gateway's payment.
    pub payment_id: PaymentId,
    /// Our payment id: matches the journey.
    pub payment_trans_id: IdempotencyKey,
    /// What the browser says happened.
    pub result: ThreeDsResult,
}

impl fmt::Debug for ThreeDsReturn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreeDsReturn")
            .field("payment_id", &self.payment_id)
            .field("payment_trans_id", &self.payment_trans_id)
            .field("result", &self.result)
            .finish()
    }
}

impl ThreeDsReturn {
    /// The return-URL parameters this module appends (in this order).
    pub const PARAMS: [&'static str; 3] = ["paymentId", "paymentTransId", "result"];

    /// Parses the query string of a return (our own parameters may come first and are
    /// ignored; each of [`Self::PARAMS`] must appear exactly once).
    pub fn parse_query(query: &str) -> Result<Self, InboundError> {
        if query.len() > MAX_RETURN_QUERY_BYTES {
            return Err(InboundError::TooLarge(MAX_RETURN_QUERY_BYTES));
        }
        let mut found: [Option<String>; 3] = [None, None, None];
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if let Some(i) = Self::PARAMS.iter().position(|p| *p == name)
                && found[i].replace(value.into_owned()).is_some()
            {
                return Err(InboundError::Malformed(format!("{name} appears twice")));
            }
        }
        let [Some(payment_id), Some(trans_id), Some(result)] = found else {
            return Err(InboundError::Malformed(
                "paymentId, paymentTransId and result are required".to_owned(),
            ));
        };
        let result = match result.as_str() {
            "success" => ThreeDsResult::Success,
            "failure" => ThreeDsResult::Failure,
            _ => {
                return Err(InboundError::Malformed(
                    "result must be success or failure".to_owned(),
                ));
            }
        };
        Ok(Self {
            payment_id: PaymentId::new(payment_id)
                .map_err(|_| InboundError::Malformed("invalid paymentId".to_owned()))?,
            payment_trans_id: IdempotencyKey::new(trans_id)
                .map_err(|_| InboundError::Malformed("invalid paymentTransId".to_owned()))?,
            result,
        })
    }

    /// `return_url` with this return's parameters appended (what the bank redirects to).
    pub fn apply_to(&self, return_url: &Url) -> Url {
        let mut url = return_url.clone();
        url.query_pairs_mut()
            .append_pair("paymentId", self.payment_id.as_str())
            .append_pair("paymentTransId", self.payment_trans_id.as_str())
            .append_pair("result", self.result.wire_name());
        url
    }

    /// The key to de-duplicate returns (a customer may reload the page):
    /// `3ds:<paymentTransId>:<result>`.
    pub fn dedupe_key(&self) -> String {
        format!("3ds:{}:{}", self.payment_trans_id, self.result.wire_name())
    }

    /// The value that matches the return to its journey: our `paymentTransId`.
    pub fn correlation(&self) -> &IdempotencyKey {
        &self.payment_trans_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_round_trip_and_are_strict() {
        let ret = ThreeDsReturn {
            payment_id: PaymentId::new("pay-1").unwrap(),
            payment_trans_id: IdempotencyKey::new("journey-1:pay").unwrap(),
            result: ThreeDsResult::Success,
        };
        let url = ret.apply_to(&Url::parse("https://h.example/3ds?tenant=7").unwrap());
        assert_eq!(
            url.query(),
            Some("tenant=7&paymentId=pay-1&paymentTransId=journey-1%3Apay&result=success")
        );
        let parsed = ThreeDsReturn::parse_query(url.query().unwrap()).unwrap();
        assert_eq!(parsed, ret);
        assert_eq!(parsed.dedupe_key(), "3ds:journey-1:pay:success");
        assert_eq!(parsed.correlation().as_str(), "journey-1:pay");

        for bad in [
            "paymentId=p&paymentTransId=journey-1:pay",
            "paymentId=p&paymentTransId=journey-1:pay&result=maybe",
            "paymentId=p&paymentId=q&paymentTransId=journey-1:pay&result=success",
            "paymentId=p%20q&paymentTransId=journey-1:pay&result=success",
            "paymentId=p&paymentTransId=short&result=success",
        ] {
            assert!(ThreeDsReturn::parse_query(bad).is_err(), "{bad}");
        }
        assert!(ThreeDsReturn::parse_query(&"a".repeat(MAX_RETURN_QUERY_BYTES + 1)).is_err());
    }

    #[test]
    fn statuses_have_their_wire_names() {
        assert_eq!(
            serde_json::to_string(&PaymentStatus::Pending3ds).unwrap(),
            r#""PENDING_3DS""#
        );
        assert_eq!(
            serde_json::to_string(&PaymentStatus::Authorised).unwrap(),
            r#""AUTHORISED""#
        );
    }
}
