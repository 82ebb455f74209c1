//! The inbound webhook ("Example Webhook Request"), for the engine's ingress.
//!
//! Al-Qimah calls our `WebHookURL` with `GET` and the query parameters
//! `OperationStatus`, `WebHookCode`, `TransactionID`, `ReferenceID`, `price` and `message`
//! (form-urlencoded, as the document's `curl -G --data-urlencode` example shows). The ingress
//! should:
//!
//! 1. [`parse_webhook`] the raw query string; a [`WebhookError`] is answered 400 and the raw
//!    request stored and reported (never dropped silently);
//! 2. persist the webhook, then look up the journey by [`Webhook::correlation`] (our
//!    `TransactionID`) and check [`Webhook::verify_code`] against the code stored with it
//!    (constant-time); a mismatch is answered 403, stored as rejected and reported, and
//!    never reaches the journey;
//! 3. de-duplicate by [`Webhook::dedupe_key`] (`TransactionID` + `OperationStatus`: Al-Qimah
//!    may repeat a webhook, and a status may legitimately change once from pending to final);
//! 4. answer 200 only after step 2 is durable.
//!
//! Parsing rules (strict, and written down): each of the six parameters must appear exactly
//! once with the document's exact name and casing; unknown extra parameters are ignored (a
//! new field on their side must not make us drop settlements); the query may be at most
//! [`MAX_WEBHOOK_QUERY_BYTES`]; `OperationStatus` is `1` (ready), `0` (failed) or `-1`
//! (pending: the document lists only 0 and 1 for webhooks but -1 elsewhere, and refusing a
//! pending notification would only make them retry); `TransactionID` must be one of ours (the
//! canonical digits of a [`TransactionId`]; the document's example `TXN789` is not, since we
//! only send numbers); `ReferenceID` 1 to 64 letters, digits, `-`, `_`; `price` a decimal;
//! `message` any text (sanitized, may be empty).

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use super::types::{
    OperationStatus, Price, ReferenceId, TransactionId, WEBHOOK_CODE_CHARS, WebHookCode,
};
use crate::redact::sanitize_message;

/// Longest webhook query string accepted, in bytes.
pub const MAX_WEBHOOK_QUERY_BYTES: usize = 4096;

/// The webhook's query parameter names, as in the document.
pub mod params {
    /// `OperationStatus`: 1 ready, 0 failed (-1 pending).
    pub const OPERATION_STATUS: &str = "OperationStatus";
    /// `WebHookCode`: the code we sent with the payment.
    pub const WEBHOOK_CODE: &str = "WebHookCode";
    /// `TransactionID`: ours.
    pub const TRANSACTION_ID: &str = "TransactionID";
    /// `ReferenceID`: theirs.
    pub const REFERENCE_ID: &str = "ReferenceID";
    /// `price`: the cost charged to the agent account.
    pub const PRICE: &str = "price";
    /// `message`: notes on the status.
    pub const MESSAGE: &str = "message";
    /// All six, in the document's order.
    pub const ALL: [&str; 6] = [
        OPERATION_STATUS,
        WEBHOOK_CODE,
        TRANSACTION_ID,
        REFERENCE_ID,
        PRICE,
        MESSAGE,
    ];
}

/// A parsed Al-Qimah webhook. `Debug` redacts the `WebHookCode`.
#[derive(Clone)]
pub struct Webhook {
    /// `OperationStatus`.
    pub operation_status: OperationStatus,
    code: SecretString,
    /// `TransactionID`: ours, the correlation key.
    pub transaction_id: TransactionId,
    /// `ReferenceID`: Al-Qimah's.
    pub reference_id: ReferenceId,
    /// `price`.
    pub price: Price,
    /// `message` (sanitized).
    pub message: String,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("operation_status", &self.operation_status)
            .field("transaction_id", &self.transaction_id)
            .field("reference_id", &self.reference_id)
            .field("price", &self.price)
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// Whether the webhook carries `expected`, the code stored with the journey for this
    /// `TransactionID`. Constant-time ([`WebHookCode::matches`]).
    pub fn verify_code(&self, expected: &WebHookCode) -> bool {
        expected.matches(self.code.expose_secret())
    }

    /// The de-duplication key: `TransactionID` and `OperationStatus`, e.g. `1234:1`.
    pub fn dedupe_key(&self) -> WebhookKey {
        WebhookKey(format!(
            "{}:{}",
            self.transaction_id,
            self.operation_status.code()
        ))
    }

    /// The value that names the journey: our `TransactionID`.
    pub fn correlation(&self) -> TransactionId {
        self.transaction_id
    }
}

/// A webhook's de-duplication key (`<TransactionID>:<OperationStatus>`). Stable: it is
/// stored by the ingress.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WebhookKey(String);

impl WebhookKey {
    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WebhookKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a webhook query was refused. Names the parameter, never its value (the
/// `WebHookCode` is a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The query is longer than [`MAX_WEBHOOK_QUERY_BYTES`].
    #[error("webhook query longer than {max} bytes")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// A required parameter is absent.
    #[error("webhook parameter {0} is missing")]
    Missing(&'static str),
    /// A parameter appears more than once.
    #[error("webhook parameter {0} appears more than once")]
    Repeated(&'static str),
    /// A parameter's value is not what the document describes.
    #[error("webhook parameter {field} is invalid: {reason}")]
    Invalid {
        /// The parameter.
        field: &'static str,
        /// What is wrong (ours, no value).
        reason: &'static str,
    },
}

/// Parses the query string of an Al-Qimah webhook (with or without a leading `?`), by the
/// rules in the [module docs](self).
pub fn parse_webhook(query: &str) -> Result<Webhook, WebhookError> {
    if query.len() > MAX_WEBHOOK_QUERY_BYTES {
        return Err(WebhookError::TooLong {
            max: MAX_WEBHOOK_QUERY_BYTES,
        });
    }
    let query = query.strip_prefix('?').unwrap_or(query);
    let mut values: [Option<String>; 6] = Default::default();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let Some(i) = params::ALL.iter().position(|p| *p == name) else {
            continue;
        };
        if values[i].is_some() {
            return Err(WebhookError::Repeated(params::ALL[i]));
        }
        values[i] = Some(value.into_owned());
    }
    let [status, code, transaction, reference, price, message] = values;
    let take = |value: Option<String>, field| value.ok_or(WebhookError::Missing(field));
    let invalid = |field, reason| WebhookError::Invalid { field, reason };

    let status = take(status, params::OPERATION_STATUS)?;
    let operation_status = match status.as_str() {
        "1" => OperationStatus::Succeeded,
        "0" => OperationStatus::Failed,
        "-1" => OperationStatus::Pending,
        _ => return Err(invalid(params::OPERATION_STATUS, "must be 1, 0 or -1")),
    };
    let code = take(code, params::WEBHOOK_CODE)?;
    if code.is_empty() || code.len() > *WEBHOOK_CODE_CHARS.end() {
        return Err(invalid(params::WEBHOOK_CODE, "must be 1 to 128 characters"));
    }
    let transaction_id = TransactionId::parse(&take(transaction, params::TRANSACTION_ID)?)
        .map_err(|_| {
            invalid(
                params::TRANSACTION_ID,
                "is not one of our transaction ids (canonical decimal digits)",
            )
        })?;
    let reference_id = ReferenceId::new(take(reference, params::REFERENCE_ID)?).ok_or(invalid(
        params::REFERENCE_ID,
        "must be 1 to 64 letters, digits, '-' or '_'",
    ))?;
    let price = Price::parse(&take(price, params::PRICE)?)
        .ok_or(invalid(params::PRICE, "must be a decimal number"))?;
    let message = sanitize_message(&take(message, params::MESSAGE)?);
    Ok(Webhook {
        operation_status,
        code: SecretString::from(code),
        transaction_id,
        reference_id,
        price,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODE: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

    fn query(pairs: &[(&str, &str)]) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    }

    fn documented() -> Vec<(&'static str, &'static str)> {
        vec![
            ("OperationStatus", "1"),
            ("WebHookCode", CODE),
            ("TransactionID", "789"),
            ("ReferenceID", "220065"),
            ("price", "507.87"),
            ("message", "Order received and under process"),
        ]
    }

    #[test]
    fn parses_the_documented_example() {
        let hook = parse_webhook(&query(&documented())).unwrap();
        assert_eq!(hook.operation_status, OperationStatus::Succeeded);
        assert_eq!(hook.transaction_id.get(), 789);
        assert_eq!(hook.correlation().get(), 789);
        assert_eq!(hook.reference_id.as_str(), "220065");
        assert_eq!(hook.price.as_str(), "507.87");
        assert_eq!(hook.message, "Order received and under process");
        assert_eq!(hook.dedupe_key().as_str(), "789:1");
        let expected = WebHookCode::from_stored(SecretString::from(CODE)).unwrap();
        assert!(hook.verify_code(&expected));
        assert!(!hook.verify_code(&WebHookCode::generate()));
        assert!(!format!("{hook:?}").contains(CODE));
        // A leading '?' and unknown extra parameters are fine; '+' and %XX are decoded.
        let mut extra = documented();
        extra.push(("Currency", "YER"));
        let hook = parse_webhook(&format!("?{}", query(&extra))).unwrap();
        assert_eq!(hook.message, "Order received and under process");
        let hook = parse_webhook(&query(&documented()).replace("507.87", "507%2E87")).unwrap();
        assert_eq!(hook.price.as_str(), "507.87");
    }

    #[test]
    fn the_arabic_message_and_failed_and_pending_statuses() {
        let mut pairs = documented();
        pairs[0] = ("OperationStatus", "0");
        pairs[5] = ("message", "ملغية");
        let hook = parse_webhook(&query(&pairs)).unwrap();
        assert_eq!(hook.operation_status, OperationStatus::Failed);
        assert_eq!(hook.message, "ملغية");
        assert_eq!(hook.dedupe_key().as_str(), "789:0");
        pairs[0] = ("OperationStatus", "-1");
        assert_eq!(
            parse_webhook(&query(&pairs)).unwrap().operation_status,
            OperationStatus::Pending
        );
    }

    #[test]
    fn missing_repeated_and_garbled_parameters_are_named() {
        for (i, name) in params::ALL.iter().enumerate() {
            let mut pairs = documented();
            pairs.remove(i);
            assert_eq!(
                parse_webhook(&query(&pairs)).unwrap_err(),
                WebhookError::Missing(name)
            );
        }
        let mut pairs = documented();
        pairs.push(("TransactionID", "790"));
        assert_eq!(
            parse_webhook(&query(&pairs)).unwrap_err(),
            WebhookError::Repeated("TransactionID")
        );
        // Names are exact: `transactionid` is not `TransactionID`.
        let lower = query(&documented()).replace("TransactionID", "transactionid");
        assert_eq!(
            parse_webhook(&lower).unwrap_err(),
            WebhookError::Missing("TransactionID")
        );

        let garbled: [(usize, &str, &str); 8] = [
            (0, "2", "OperationStatus"),
            (0, "ok", "OperationStatus"),
            (1, "", "WebHookCode"),
            (2, "TXN789", "TransactionID"),
            (2, "0789", "TransactionID"),
            (3, "22 0065", "ReferenceID"),
            (4, "507,87", "price"),
            (4, "%FF", "price"),
        ];
        for (i, value, field) in garbled {
            let mut pairs = documented();
            pairs[i].1 = value;
            let err = parse_webhook(&query(&pairs)).unwrap_err();
            assert!(
                matches!(err, WebhookError::Invalid { field: f, .. } if f == field),
                "{value}: {err:?}"
            );
        }
    }

    #[test]
    fn errors_never_echo_the_code_and_size_is_bounded() {
        let mut pairs = documented();
        pairs[0] = ("OperationStatus", "x");
        let err = parse_webhook(&query(&pairs)).unwrap_err();
        assert!(!err.to_string().contains(CODE));
        let long = format!("{}&pad={}", query(&documented()), "x".repeat(5000));
        assert_eq!(
            parse_webhook(&long).unwrap_err(),
            WebhookError::TooLong {
                max: MAX_WEBHOOK_QUERY_BYTES
            }
        );
    }
}
