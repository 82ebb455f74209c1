//! Steps 15 and 16 and the saga: posting the order, tracking it, cancelling it.
//!
//! `postProductOrder` turns the completed checkout into an order ("Post Product Order from
//! Shopping Cart", line 225). Our key goes in `X-Idempotency-Key` and, as the document's
//! "External Order Id" (line 227), in `externalOrderId`; after an `OutcomeUnknown`,
//! [`MobilyClient::order_inquiry`] by [`OrderLookup::ExternalOrderId`] finds the order if it
//! was created (*ours*: the document lists order number and mobile number as inquiry keys,
//! line 228; we add our own reference, and by mobile number works too).
//!
//! Cancelling (saga): MNP orders with `cancelMNPOrder` ("Cancel MNP order by order id",
//! line 222), others with `PUT updateOrderStatus/{orderId}` and `{"status": "CANCELLED"}`
//! (line 227). Both answer success again for an order already cancelled, so they are
//! retried freely; an order too far along is refused ([`super::codes::ORDER_NOT_CANCELLABLE`]).

use serde::{Deserialize, Serialize};

use super::types::{CartId, IdempotencyKey, Msisdn, OrderId, Sar, invalid};
use super::{Endpoint, MobilyClient, answer_of, ops, paths};
use crate::error::ProviderError;
use crate::http::Effect;

/// Most orders read from one inquiry.
pub const MAX_ORDERS: usize = 20;

const POST_ORDER: Endpoint = Endpoint::post(
    ops::POST_ORDER,
    paths::POST_PRODUCT_ORDER,
    Effect::Effectful,
);
const ORDER_INQUIRY: Endpoint =
    Endpoint::post(ops::ORDER_INQUIRY, paths::ORDER_INQUIRY, Effect::ReadOnly);
const CANCEL_MNP: Endpoint = Endpoint::post(
    ops::CANCEL_MNP_ORDER,
    paths::CANCEL_MNP_ORDER,
    Effect::Effectful,
);
const CANCEL: Endpoint = Endpoint {
    operation: ops::CANCEL_ORDER,
    method: super::Verb::Put,
    template: paths::UPDATE_ORDER_STATUS,
    effect: Effect::Effectful,
};

/// A new number or a port-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderType {
    /// A new Mobily number: cancel with `updateOrderStatus`.
    New,
    /// A port-in: cancel with `cancelMNPOrder`.
    Mnp,
}

/// An order's status (`orderStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderState {
    /// Posted, waiting for payment.
    Submitted,
    /// Paid; fulfilment not started.
    PaymentConfirmed,
    /// Mobily is fulfilling (activation, eSIM profile, eContract).
    InProgress,
    /// Fulfilled: the line is active and the QR code exists.
    Completed,
    /// Cancelled.
    Cancelled,
    /// Fulfilment failed.
    Failed,
    /// A status this client does not know.
    #[serde(other)]
    Unknown,
}

/// Wire structures.
pub mod wire {
    use super::*;

    /// Body of postProductOrder.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct PostOrderRequest {
        /// The completed checkout's cart.
        pub shopping_cart_id: CartId,
        /// Our reference (the idempotency key).
        pub external_order_id: IdempotencyKey,
        /// New number or port-in.
        pub order_type: OrderType,
    }

    /// Answer of postProductOrder.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct PostOrderResponse {
        /// Mobily's order number.
        pub order_id: OrderId,
        /// Its status.
        pub order_status: OrderState,
        /// What to pay.
        pub total_amount: Sar,
    }

    /// Body of orderInquiry: exactly one key.
    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct OrderInquiryRequest {
        /// By order number.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub order_id: Option<OrderId>,
        /// By mobile number.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub msisdn: Option<Msisdn>,
        /// By our reference.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub external_order_id: Option<IdempotencyKey>,
    }

    /// One order of an inquiry answer.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct OrderRecord {
        /// Mobily's order number.
        pub order_id: OrderId,
        /// Our reference.
        #[serde(default)]
        pub external_order_id: Option<IdempotencyKey>,
        /// New or MNP.
        pub order_type: OrderType,
        /// Its status.
        pub order_status: OrderState,
        /// The line.
        #[serde(default)]
        pub msisdn: Option<Msisdn>,
    }

    /// Answer of orderInquiry.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct OrderInquiryResponse {
        /// Matching orders.
        #[serde(default)]
        pub orders: Vec<OrderRecord>,
    }

    /// Body of cancelMNPOrder.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct CancelMnpRequest {
        /// The order.
        pub order_id: OrderId,
        /// Why (for Mobily's back office).
        pub reason: String,
    }

    /// Body of updateOrderStatus.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct UpdateStatusRequest {
        /// `CANCELLED` (the only status we set).
        pub status: OrderState,
        /// Why.
        pub reason: String,
    }

    /// Answer of both cancellations.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct CancelResponse {
        /// The order.
        pub order_id: OrderId,
        /// Its status (`CANCELLED`).
        pub order_status: OrderState,
    }
}

/// A posted order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedOrder {
    /// Mobily's order number: the journey's business key from here on.
    pub order_id: OrderId,
    /// Its status (`SUBMITTED`).
    pub status: OrderState,
    /// What to pay.
    pub total: Sar,
}

/// How to find orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderLookup {
    /// By Mobily's order number.
    OrderId(OrderId),
    /// By the line's number.
    Msisdn(Msisdn),
    /// By our reference (the `postProductOrder` key): reconciliation.
    ExternalOrderId(IdempotencyKey),
}

/// An order as tracked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderInfo {
    /// Mobily's order number.
    pub order_id: OrderId,
    /// Our reference, when Mobily returns it.
    pub external_order_id: Option<IdempotencyKey>,
    /// New or MNP.
    pub order_type: OrderType,
    /// Its status.
    pub status: OrderState,
    /// The line.
    pub msisdn: Option<Msisdn>,
}

fn reason_text(reason: &str) -> Result<String, ProviderError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 200 || reason.chars().any(char::is_control) {
        return Err(invalid("a cancellation reason must be 1 to 200 characters"));
    }
    Ok(reason.to_owned())
}

impl MobilyClient {
    /// Step 15: posts the order of a completed checkout. Effectful; `key` travels as
    /// `X-Idempotency-Key` and `externalOrderId`. Reconcile an `OutcomeUnknown` with
    /// [`Self::order_inquiry`] by [`OrderLookup::ExternalOrderId`]. A checkout with missing
    /// sections is [`ProviderError::Refused`] ([`super::codes::CHECKOUT_INCOMPLETE`]).
    #[tracing::instrument(level = "debug", skip_all, fields(provider = "mobily", key = %key), err(level = tracing::Level::DEBUG))]
    pub async fn post_order(
        &self,
        cart: &CartId,
        order_type: OrderType,
        key: &IdempotencyKey,
    ) -> Result<PostedOrder, ProviderError> {
        let body = wire::PostOrderRequest {
            shopping_cart_id: cart.clone(),
            external_order_id: key.clone(),
            order_type,
        };
        let answer = self.call(POST_ORDER, &body, Some(key)).await?;
        answer.success_or_refused()?;
        let parsed: wire::PostOrderResponse = answer.body()?;
        Ok(PostedOrder {
            order_id: parsed.order_id,
            status: parsed.order_status,
            total: parsed.total_amount,
        })
    }

    /// Step 16 and reconciliation: the orders matching `lookup` (at most [`MAX_ORDERS`]);
    /// empty when there is none.
    pub async fn order_inquiry(
        &self,
        lookup: &OrderLookup,
    ) -> Result<Vec<OrderInfo>, ProviderError> {
        let mut body = wire::OrderInquiryRequest::default();
        match lookup {
            OrderLookup::OrderId(id) => body.order_id = Some(id.clone()),
            OrderLookup::Msisdn(m) => body.msisdn = Some(m.clone()),
            OrderLookup::ExternalOrderId(k) => body.external_order_id = Some(k.clone()),
        }
        let answer = self.call(ORDER_INQUIRY, &body, None).await?;
        answer.success_or_refused()?;
        let parsed: wire::OrderInquiryResponse = answer.body()?;
        Ok(parsed
            .orders
            .into_iter()
            .take(MAX_ORDERS)
            .map(|o| OrderInfo {
                order_id: o.order_id,
                external_order_id: o.external_order_id,
                order_type: o.order_type,
                status: o.order_status,
                msisdn: o.msisdn,
            })
            .collect())
    }

    /// Saga: cancels an MNP order. Effectful, safe to repeat (an order already cancelled
    /// answers success).
    #[tracing::instrument(level = "debug", skip_all, fields(provider = "mobily", order = %order, key = %key), err(level = tracing::Level::DEBUG))]
    pub async fn cancel_mnp_order(
        &self,
        order: &OrderId,
        reason: &str,
        key: &IdempotencyKey,
    ) -> Result<OrderState, ProviderError> {
        let body = wire::CancelMnpRequest {
            order_id: order.clone(),
            reason: reason_text(reason)?,
        };
        let answer = self.call(CANCEL_MNP, &body, Some(key)).await?;
        cancelled(&answer)
    }

    /// Saga: cancels a new-number order (`updateOrderStatus` to `CANCELLED`). Effectful,
    /// safe to repeat.
    #[tracing::instrument(level = "debug", skip_all, fields(provider = "mobily", order = %order, key = %key), err(level = tracing::Level::DEBUG))]
    pub async fn cancel_order(
        &self,
        order: &OrderId,
        reason: &str,
        key: &IdempotencyKey,
    ) -> Result<OrderState, ProviderError> {
        let body = wire::UpdateStatusRequest {
            status: OrderState::Cancelled,
            reason: reason_text(reason)?,
        };
        let path = format!("{}{}", paths::UPDATE_ORDER_STATUS_PREFIX, order.as_str());
        let response = self
            .send(CANCEL, Some(&path), Some(&body), Some(key))
            .await?;
        cancelled(&answer_of(CANCEL, response)?)
    }

    /// Saga: cancels an order the right way for its type.
    pub async fn cancel(
        &self,
        order: &OrderId,
        order_type: OrderType,
        reason: &str,
        key: &IdempotencyKey,
    ) -> Result<OrderState, ProviderError> {
        match order_type {
            OrderType::Mnp => self.cancel_mnp_order(order, reason, key).await,
            OrderType::New => self.cancel_order(order, reason, key).await,
        }
    }
}

fn cancelled(answer: &super::Answer) -> Result<OrderState, ProviderError> {
    answer.success_or_refused()?;
    let parsed: wire::CancelResponse = answer.body()?;
    if parsed.order_status != OrderState::Cancelled {
        return Err(answer.protocol("the cancellation answered another status"));
    }
    Ok(parsed.order_status)
}
