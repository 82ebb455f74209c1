//! What Reach sends *to us* (guide 2.3 and 4): async operation results on
//! `POST /apisvc/v0/notification/callback` ([`parse_callback`]) and real-time events on
//! `POST /apisvc/v0/notification` ([`parse_notification`]).
//!
//! The engine's ingress persists a parsed callback, answers 200 (within 10 s: "On timeout
//! or non-2xx, Reach retries up to 3 times"), de-duplicates it by [`Callback::dedupe_key`]
//! and routes it to a journey by [`Callback::correlation`].
//!
//! # Bodies (the guide lists the key fields; the shape is our choice)
//!
//! A JSON object with a `type` discriminator and the guide's field names:
//!
//! ```json
//! {"type":"PRODUCT_PURCHASE","transactionId":"TXN-1","customerId":"CUS-1","status":"COMPLETED"}
//! {"type":"PURCHASE_SUBSEQUENT","transactionId":"TXN-2","customerId":"CUS-1","status":"FAILED"}
//! {"type":"ACTIVATION","customerId":"CUS-1","transactionId":"ACT-1","status":2,"mobileNo":"2125550100"}
//! {"type":"USAGE_NOTIFICATION","eventId":"EVT-1","customerId":"CUS-1","usagePercentage":80}
//! {"type":"RDN_IMEI_CHANGE","eventId":"EVT-2","customerId":"CUS-1","imei":"356938035643809"}
//! {"type":"PORT_OUT","eventId":"EVT-3","customerId":"CUS-1","mobileNo":"2125550100"}
//! {"type":"PORT_OUT_CONFIRMED","eventId":"EVT-4","customerId":"CUS-1","mobileNo":"2125550100"}
//! ```
//!
//! - Purchase callbacks: `transactionId` and `status` (a purchase status string) are
//!   required; `customerId` is required when the status is `COMPLETED` and for
//!   `PURCHASE_SUBSEQUENT` (an existing customer); `clientAccountId` is optional.
//! - `ACTIVATION`: `customerId` and `status` (the numeric code; a string of digits is
//!   accepted too) are required; `mobileNo` is required when the status is 2 (ACTIVE);
//!   `transactionId` (the activation or port-in operation) and `activationMsg` are optional.
//!   The port-in correction loop can report 10 PORTING_FAILED several times for one
//!   customer, so the de-duplication key uses `transactionId` when present: each port-in
//!   update is a new operation with a new `transactionId`.
//! - Notifications: `eventId` and `customerId` are required; `mobileNo` is optional; then
//!   `usagePercentage` (0 to 1000) for usage and `imei` for an IMEI change.
//! - Unknown fields are ignored (forward compatibility); `null` counts as absent.
//!
//! The guide documents no authentication of callbacks (no signature, no credentials). Treat
//! a callback as a wake-up hint: before acting on money or inventory, confirm the state with
//! the status endpoint (`/product/status/{transactionId}`, `/activation/status`).

use std::fmt;

use serde_json::{Map, Value, json};

use super::types::{
    ActivationCode, ClientAccountId, CustomerId, EventId, Imei, Mdn, PurchaseStatusCode,
    TransactionId,
};
use crate::redact::{sanitize_message, scrub_parser_message};

/// Largest callback body accepted (64 KiB).
pub const MAX_CALLBACK_BYTES: usize = 64 * 1024;

/// Longest `activationMsg` kept, in characters (after sanitizing).
pub const MAX_MESSAGE_CHARS: usize = crate::redact::MAX_MESSAGE_CHARS;

/// The correlation namespace of purchase callbacks (value: the `transactionId`).
pub const TRANSACTION_NAMESPACE: &str = "reach.txn";
/// The correlation namespace of activation callbacks and notifications (value: the
/// `customerId`).
pub const CUSTOMER_NAMESPACE: &str = "reach.customer";

/// Why a callback body was refused. Never quotes a field's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallbackError {
    /// The body is larger than [`MAX_CALLBACK_BYTES`].
    #[error("callback body larger than {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// The body is not a JSON object.
    #[error("callback body is not a JSON object: {reason}")]
    Malformed {
        /// The parser's complaint, without values.
        reason: String,
    },
    /// `type` names no callback of this endpoint.
    #[error("unknown callback type {0:?}")]
    UnknownType(String),
    /// A required field is absent or `null`.
    #[error("callback field {0} is missing")]
    MissingField(&'static str),
    /// A field has the wrong type or an invalid value.
    #[error("callback field {field} is invalid: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What is wrong (ours).
        reason: &'static str,
    },
}

/// The `type` of a `/notification/callback` body (guide 4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallbackType {
    /// "New purchase completed".
    ProductPurchase,
    /// "Renewal or subsequent purchase completed".
    PurchaseSubsequent,
    /// "Activation or port-in completed".
    Activation,
}

impl CallbackType {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            CallbackType::ProductPurchase => "PRODUCT_PURCHASE",
            CallbackType::PurchaseSubsequent => "PURCHASE_SUBSEQUENT",
            CallbackType::Activation => "ACTIVATION",
        }
    }

    /// Parses the wire name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "PRODUCT_PURCHASE" => CallbackType::ProductPurchase,
            "PURCHASE_SUBSEQUENT" => CallbackType::PurchaseSubsequent,
            "ACTIVATION" => CallbackType::Activation,
            _ => return None,
        })
    }
}

impl fmt::Display for CallbackType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a callback finds its journey: `reach.txn:<transactionId>` for purchases,
/// `reach.customer:<customerId>` for activations and notifications.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Correlation {
    /// A purchase, by its `transactionId`.
    Transaction(TransactionId),
    /// A subscriber, by `customerId`.
    Customer(CustomerId),
}

impl Correlation {
    /// [`TRANSACTION_NAMESPACE`] or [`CUSTOMER_NAMESPACE`].
    pub fn namespace(&self) -> &'static str {
        match self {
            Correlation::Transaction(_) => TRANSACTION_NAMESPACE,
            Correlation::Customer(_) => CUSTOMER_NAMESPACE,
        }
    }

    /// The id.
    pub fn value(&self) -> &str {
        match self {
            Correlation::Transaction(id) => id.as_str(),
            Correlation::Customer(id) => id.as_str(),
        }
    }
}

impl fmt::Display for Correlation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.namespace(), self.value())
    }
}

/// A purchase result (`PRODUCT_PURCHASE`, `PURCHASE_SUBSEQUENT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseCallback {
    /// The purchase.
    pub transaction_id: TransactionId,
    /// The subscriber (always set on `COMPLETED`).
    pub customer_id: Option<CustomerId>,
    /// The purchase's status.
    pub status: PurchaseStatusCode,
    /// Our reference, when Reach echoes it.
    pub client_account_id: Option<ClientAccountId>,
}

/// An activation or port-in result (`ACTIVATION`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationCallback {
    /// The subscriber.
    pub customer_id: CustomerId,
    /// The activation or port-in operation, when given.
    pub transaction_id: Option<TransactionId>,
    /// The line's status.
    pub status: ActivationCode,
    /// The line's number (always set when the status is ACTIVE). Masked when printed.
    pub mobile_no: Option<Mdn>,
    /// Why it failed (sanitized).
    pub activation_msg: Option<String>,
}

/// A parsed `/notification/callback` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callback {
    /// `PRODUCT_PURCHASE`.
    ProductPurchase(PurchaseCallback),
    /// `PURCHASE_SUBSEQUENT`.
    PurchaseSubsequent(PurchaseCallback),
    /// `ACTIVATION`.
    Activation(ActivationCallback),
}

impl Callback {
    /// Its `type`.
    pub fn callback_type(&self) -> CallbackType {
        match self {
            Callback::ProductPurchase(_) => CallbackType::ProductPurchase,
            Callback::PurchaseSubsequent(_) => CallbackType::PurchaseSubsequent,
            Callback::Activation(_) => CallbackType::Activation,
        }
    }

    /// The key that makes Reach's retries (and duplicates) idempotent:
    /// `reach:<type>:<id>:<status>`, the id being the `transactionId` (the `customerId` for an
    /// activation callback without one). Two deliveries of one event share it; a later state
    /// of the same operation does not.
    pub fn dedupe_key(&self) -> String {
        match self {
            Callback::ProductPurchase(p) | Callback::PurchaseSubsequent(p) => format!(
                "reach:{}:{}:{}",
                self.callback_type(),
                p.transaction_id,
                p.status
            ),
            Callback::Activation(a) => format!(
                "reach:{}:{}:{}",
                self.callback_type(),
                a.transaction_id
                    .as_ref()
                    .map_or(a.customer_id.as_str(), TransactionId::as_str),
                a.status.code()
            ),
        }
    }

    /// Where it goes: the purchase's `transactionId`, or the activation's `customerId`.
    pub fn correlation(&self) -> Correlation {
        match self {
            Callback::ProductPurchase(p) | Callback::PurchaseSubsequent(p) => {
                Correlation::Transaction(p.transaction_id.clone())
            }
            Callback::Activation(a) => Correlation::Customer(a.customer_id.clone()),
        }
    }

    /// The wire body (what Reach sends), e.g. to replay a stored callback in a test.
    pub fn to_body(&self) -> Value {
        let mut body = Map::new();
        body.insert("type".into(), json!(self.callback_type().as_str()));
        match self {
            Callback::ProductPurchase(p) | Callback::PurchaseSubsequent(p) => {
                body.insert("transactionId".into(), json!(p.transaction_id.as_str()));
                body.insert("status".into(), json!(p.status.as_str()));
                if let Some(c) = &p.customer_id {
                    body.insert("customerId".into(), json!(c.as_str()));
                }
                if let Some(c) = &p.client_account_id {
                    body.insert("clientAccountId".into(), json!(c.as_str()));
                }
            }
            Callback::Activation(a) => {
                body.insert("customerId".into(), json!(a.customer_id.as_str()));
                body.insert("status".into(), json!(a.status.code()));
                if let Some(t) = &a.transaction_id {
                    body.insert("transactionId".into(), json!(t.as_str()));
                }
                if let Some(m) = &a.mobile_no {
                    body.insert("mobileNo".into(), json!(m.as_str()));
                }
                if let Some(m) = &a.activation_msg {
                    body.insert("activationMsg".into(), json!(m));
                }
            }
        }
        Value::Object(body)
    }
}

/// Parses a `POST /apisvc/v0/notification/callback` body, strictly (see the
/// [module docs](self)).
pub fn parse_callback(body: &[u8]) -> Result<Callback, CallbackError> {
    let fields = object(body)?;
    let kind = type_field(&fields)?;
    match CallbackType::parse(kind) {
        Some(CallbackType::ProductPurchase) => {
            purchase(&fields, false).map(Callback::ProductPurchase)
        }
        Some(CallbackType::PurchaseSubsequent) => {
            purchase(&fields, true).map(Callback::PurchaseSubsequent)
        }
        Some(CallbackType::Activation) => activation(&fields).map(Callback::Activation),
        None => Err(unknown_type(kind)),
    }
}

fn purchase(
    fields: &Map<String, Value>,
    existing_customer: bool,
) -> Result<PurchaseCallback, CallbackError> {
    let transaction_id = id(fields, "transactionId", TransactionId::new)?
        .ok_or(CallbackError::MissingField("transactionId"))?;
    let status = text(fields, "status")?.ok_or(CallbackError::MissingField("status"))?;
    let status = PurchaseStatusCode::parse(status).ok_or(CallbackError::InvalidField {
        field: "status",
        reason: "not a purchase status",
    })?;
    let customer_id = id(fields, "customerId", CustomerId::new)?;
    if customer_id.is_none() && (existing_customer || status == PurchaseStatusCode::Completed) {
        return Err(CallbackError::MissingField("customerId"));
    }
    Ok(PurchaseCallback {
        transaction_id,
        customer_id,
        status,
        client_account_id: id(fields, "clientAccountId", ClientAccountId::new)?,
    })
}

fn activation(fields: &Map<String, Value>) -> Result<ActivationCallback, CallbackError> {
    let customer_id = id(fields, "customerId", CustomerId::new)?
        .ok_or(CallbackError::MissingField("customerId"))?;
    let status = match present(fields, "status") {
        None => return Err(CallbackError::MissingField("status")),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 4 => s.parse().ok(),
        Some(_) => None,
    }
    .ok_or(CallbackError::InvalidField {
        field: "status",
        reason: "not an integer status code",
    })?;
    let status = ActivationCode::from_code(status);
    let mobile_no = text(fields, "mobileNo")?
        .map(|m| {
            Mdn::parse(m).map_err(|_| CallbackError::InvalidField {
                field: "mobileNo",
                reason: "not a 10-digit number",
            })
        })
        .transpose()?;
    if status == ActivationCode::Active && mobile_no.is_none() {
        return Err(CallbackError::MissingField("mobileNo"));
    }
    Ok(ActivationCallback {
        customer_id,
        transaction_id: id(fields, "transactionId", TransactionId::new)?,
        status,
        mobile_no,
        activation_msg: text(fields, "activationMsg")?.map(sanitize_message),
    })
}

/// The `type` of a `/notification` body (guide 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationType {
    /// Data threshold reached.
    UsageNotification,
    /// The line's device changed.
    RdnImeiChange,
    /// The customer started a port-out.
    PortOut,
    /// The port-out completed.
    PortOutConfirmed,
}

impl NotificationType {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            NotificationType::UsageNotification => "USAGE_NOTIFICATION",
            NotificationType::RdnImeiChange => "RDN_IMEI_CHANGE",
            NotificationType::PortOut => "PORT_OUT",
            NotificationType::PortOutConfirmed => "PORT_OUT_CONFIRMED",
        }
    }

    /// Parses the wire name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "USAGE_NOTIFICATION" => NotificationType::UsageNotification,
            "RDN_IMEI_CHANGE" => NotificationType::RdnImeiChange,
            "PORT_OUT" => NotificationType::PortOut,
            "PORT_OUT_CONFIRMED" => NotificationType::PortOutConfirmed,
            _ => return None,
        })
    }
}

impl fmt::Display for NotificationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a notification reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationEvent {
    /// `USAGE_NOTIFICATION`: this share of the plan's data is used (80, 100...).
    Usage {
        /// Percent used.
        usage_percentage: u32,
    },
    /// `RDN_IMEI_CHANGE`: the line is now in this device.
    ImeiChange {
        /// The new device. Masked when printed.
        imei: Imei,
    },
    /// `PORT_OUT`: begin off-boarding.
    PortOut,
    /// `PORT_OUT_CONFIRMED`: close the account, stop billing.
    PortOutConfirmed,
}

/// A parsed `/notification` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Reach's id of the event.
    pub event_id: EventId,
    /// The subscriber.
    pub customer_id: CustomerId,
    /// The line, when given. Masked when printed.
    pub mobile_no: Option<Mdn>,
    /// What happened.
    pub event: NotificationEvent,
}

impl Notification {
    /// Its `type`.
    pub fn notification_type(&self) -> NotificationType {
        match self.event {
            NotificationEvent::Usage { .. } => NotificationType::UsageNotification,
            NotificationEvent::ImeiChange { .. } => NotificationType::RdnImeiChange,
            NotificationEvent::PortOut => NotificationType::PortOut,
            NotificationEvent::PortOutConfirmed => NotificationType::PortOutConfirmed,
        }
    }

    /// `reach:<type>:<eventId>`.
    pub fn dedupe_key(&self) -> String {
        format!("reach:{}:{}", self.notification_type(), self.event_id)
    }

    /// The subscriber it concerns.
    pub fn correlation(&self) -> Correlation {
        Correlation::Customer(self.customer_id.clone())
    }

    /// The wire body.
    pub fn to_body(&self) -> Value {
        let mut body = Map::new();
        body.insert("type".into(), json!(self.notification_type().as_str()));
        body.insert("eventId".into(), json!(self.event_id.as_str()));
        body.insert("customerId".into(), json!(self.customer_id.as_str()));
        if let Some(m) = &self.mobile_no {
            body.insert("mobileNo".into(), json!(m.as_str()));
        }
        match &self.event {
            NotificationEvent::Usage { usage_percentage } => {
                body.insert("usagePercentage".into(), json!(usage_percentage));
            }
            NotificationEvent::ImeiChange { imei } => {
                body.insert("imei".into(), json!(imei.as_str()));
            }
            NotificationEvent::PortOut | NotificationEvent::PortOutConfirmed => {}
        }
        Value::Object(body)
    }
}

/// Parses a `POST /apisvc/v0/notification` body, strictly (see the [module docs](self)).
pub fn parse_notification(body: &[u8]) -> Result<Notification, CallbackError> {
    let fields = object(body)?;
    let kind = type_field(&fields)?;
    let kind = NotificationType::parse(kind).ok_or_else(|| unknown_type(kind))?;
    let event_id =
        id(&fields, "eventId", EventId::new)?.ok_or(CallbackError::MissingField("eventId"))?;
    let customer_id = id(&fields, "customerId", CustomerId::new)?
        .ok_or(CallbackError::MissingField("customerId"))?;
    let mobile_no = text(&fields, "mobileNo")?
        .map(|m| {
            Mdn::parse(m).map_err(|_| CallbackError::InvalidField {
                field: "mobileNo",
                reason: "not a 10-digit number",
            })
        })
        .transpose()?;
    let event = match kind {
        NotificationType::UsageNotification => {
            let usage = match present(&fields, "usagePercentage") {
                None => return Err(CallbackError::MissingField("usagePercentage")),
                Some(v) => v.as_u64().filter(|p| *p <= 1000),
            }
            .ok_or(CallbackError::InvalidField {
                field: "usagePercentage",
                reason: "not a percentage between 0 and 1000",
            })?;
            NotificationEvent::Usage {
                usage_percentage: u32::try_from(usage).unwrap_or(1000),
            }
        }
        NotificationType::RdnImeiChange => {
            let imei = text(&fields, "imei")?.ok_or(CallbackError::MissingField("imei"))?;
            NotificationEvent::ImeiChange {
                imei: Imei::parse(imei).map_err(|_| CallbackError::InvalidField {
                    field: "imei",
                    reason: "not a 15-digit IMEI",
                })?,
            }
        }
        NotificationType::PortOut => NotificationEvent::PortOut,
        NotificationType::PortOutConfirmed => NotificationEvent::PortOutConfirmed,
    };
    Ok(Notification {
        event_id,
        customer_id,
        mobile_no,
        event,
    })
}

fn object(body: &[u8]) -> Result<Map<String, Value>, CallbackError> {
    if body.len() > MAX_CALLBACK_BYTES {
        return Err(CallbackError::TooLarge {
            max: MAX_CALLBACK_BYTES,
        });
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(CallbackError::Malformed {
            reason: "the top level is not an object".to_owned(),
        }),
        Err(e) => Err(CallbackError::Malformed {
            reason: scrub_parser_message(&e.to_string()),
        }),
    }
}

fn type_field(fields: &Map<String, Value>) -> Result<&str, CallbackError> {
    text(fields, "type")?.ok_or(CallbackError::MissingField("type"))
}

fn unknown_type(kind: &str) -> CallbackError {
    // Bounded and sanitized: the value is attacker-controlled.
    CallbackError::UnknownType(sanitize_message(&kind.chars().take(40).collect::<String>()))
}

fn present<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    fields.get(name).filter(|v| !v.is_null())
}

fn text<'a>(
    fields: &'a Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'a str>, CallbackError> {
    match present(fields, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(CallbackError::InvalidField {
            field: name,
            reason: "not a string",
        }),
    }
}

fn id<T, E>(
    fields: &Map<String, Value>,
    name: &'static str,
    make: impl Fn(String) -> Result<T, E>,
) -> Result<Option<T>, CallbackError> {
    text(fields, name)?
        .map(|value| {
            make(value.to_owned()).map_err(|_| CallbackError::InvalidField {
                field: name,
                reason: "not a valid id",
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &Value) -> Result<Callback, CallbackError> {
        parse_callback(body.to_string().as_bytes())
    }

    #[test]
    fn purchase_callbacks_parse_and_round_trip() {
        let body = json!({"type":"PRODUCT_PURCHASE","transactionId":"TXN-1","customerId":"CUS-1",
            "status":"COMPLETED","extra":"ignored"});
        let callback = parse(&body).unwrap();
        assert_eq!(
            callback.dedupe_key(),
            "reach:PRODUCT_PURCHASE:TXN-1:COMPLETED"
        );
        assert_eq!(callback.correlation().to_string(), "reach.txn:TXN-1");
        assert_eq!(parse(&callback.to_body()).unwrap(), callback);

        // A failed purchase has no customer yet.
        let failed = parse(&json!({"type":"PRODUCT_PURCHASE","transactionId":"TXN-1",
            "status":"FAILED","customerId":null}))
        .unwrap();
        assert_ne!(failed.dedupe_key(), callback.dedupe_key());
    }

    #[test]
    fn activation_callbacks_parse_and_round_trip() {
        let active = parse(
            &json!({"type":"ACTIVATION","customerId":"CUS-1","transactionId":"ACT-1",
            "status":2,"mobileNo":"2125550100"}),
        )
        .unwrap();
        assert_eq!(active.dedupe_key(), "reach:ACTIVATION:ACT-1:2");
        assert_eq!(active.correlation().to_string(), "reach.customer:CUS-1");
        assert_eq!(parse(&active.to_body()).unwrap(), active);
        assert!(!format!("{active:?}").contains("2125550100"));

        let failed = parse(
            &json!({"type":"ACTIVATION","customerId":"CUS-1","status":"10",
            "activationMsg":"wrong PIN for 2125550100"}),
        )
        .unwrap();
        let Callback::Activation(a) = &failed else {
            panic!("{failed:?}")
        };
        assert_eq!(a.status, ActivationCode::PortingFailed);
        assert_eq!(
            a.activation_msg.as_deref(),
            Some("wrong PIN for 21******00")
        );
        assert_eq!(failed.dedupe_key(), "reach:ACTIVATION:CUS-1:10");
    }

    #[test]
    fn bad_bodies_are_refused_with_a_clear_reason_and_no_values() {
        let cases = [
            (b"{not json".to_vec(), "not a JSON object"),
            (b"[1,2]".to_vec(), "not a JSON object"),
            (br#"{"transactionId":"TXN-1"}"#.to_vec(), "type is missing"),
            (
                br#"{"type":"REFUND","transactionId":"TXN-1"}"#.to_vec(),
                "unknown callback type",
            ),
            (
                br#"{"type":"PRODUCT_PURCHASE","status":"COMPLETED"}"#.to_vec(),
                "transactionId is missing",
            ),
            (
                br#"{"type":"PRODUCT_PURCHASE","transactionId":"TXN-1","status":"COMPLETED"}"#
                    .to_vec(),
                "customerId is missing",
            ),
            (
                br#"{"type":"PRODUCT_PURCHASE","transactionId":"TXN 1","status":"FAILED"}"#
                    .to_vec(),
                "transactionId is invalid",
            ),
            (
                br#"{"type":"PRODUCT_PURCHASE","transactionId":"TXN-1","status":"DONE"}"#.to_vec(),
                "status is invalid",
            ),
            (
                br#"{"type":"PURCHASE_SUBSEQUENT","transactionId":"TXN-1","status":"FAILED"}"#
                    .to_vec(),
                "customerId is missing",
            ),
            (
                br#"{"type":"ACTIVATION","customerId":"CUS-1","status":2}"#.to_vec(),
                "mobileNo is missing",
            ),
            (
                br#"{"type":"ACTIVATION","customerId":"CUS-1","status":"two"}"#.to_vec(),
                "status is invalid",
            ),
            (
                br#"{"type":"ACTIVATION","status":1}"#.to_vec(),
                "customerId is missing",
            ),
            (br#"{"type":7}"#.to_vec(), "type is invalid"),
        ];
        for (body, expected) in cases {
            let err = parse_callback(&body).unwrap_err();
            assert!(
                err.to_string().contains(expected),
                "{}: {err}",
                String::from_utf8_lossy(&body)
            );
        }
        let err = parse_callback(&vec![b' '; MAX_CALLBACK_BYTES + 1]).unwrap_err();
        assert_eq!(
            err,
            CallbackError::TooLarge {
                max: MAX_CALLBACK_BYTES
            }
        );
        // A malformed value is not echoed.
        let err = parse_callback(
            br#"{"type":"ACTIVATION","customerId":"CUS-1","status":2,"mobileNo":"0712755777"}"#,
        )
        .unwrap_err();
        assert!(!err.to_string().contains("0712755777"), "{err}");
    }

    #[test]
    fn notifications_parse_and_round_trip() {
        for body in [
            json!({"type":"USAGE_NOTIFICATION","eventId":"EVT-1","customerId":"CUS-1","usagePercentage":80}),
            json!({"type":"RDN_IMEI_CHANGE","eventId":"EVT-2","customerId":"CUS-1","imei":"356938035643809"}),
            json!({"type":"PORT_OUT","eventId":"EVT-3","customerId":"CUS-1","mobileNo":"2125550100"}),
            json!({"type":"PORT_OUT_CONFIRMED","eventId":"EVT-4","customerId":"CUS-1"}),
        ] {
            let n = parse_notification(body.to_string().as_bytes()).unwrap();
            assert_eq!(n.to_body(), body);
            assert_eq!(n.correlation().to_string(), "reach.customer:CUS-1");
            assert!(
                n.dedupe_key()
                    .starts_with(&format!("reach:{}:EVT-", n.notification_type()))
            );
        }
        let err =
            parse_notification(br#"{"type":"PRODUCT_PURCHASE","eventId":"E","customerId":"C"}"#)
                .unwrap_err();
        assert!(matches!(err, CallbackError::UnknownType(_)), "{err}");
        let err =
            parse_notification(br#"{"type":"USAGE_NOTIFICATION","eventId":"E","customerId":"C"}"#)
                .unwrap_err();
        assert_eq!(err, CallbackError::MissingField("usagePercentage"));
    }
}
