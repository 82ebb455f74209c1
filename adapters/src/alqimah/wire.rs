//! Wire structures, with the document's field names (`AccountNumber`, `NetworkNumber`,
//! `operationStatus`...). Requests use PascalCase names as in the request tables; answers use
//! the camelCase names of the response examples.
//!
//! Answers are parsed leniently where the document itself is inconsistent: `transactionID`,
//! `referenceID`, `price` and `agentBalance` are numbers in some examples and strings in
//! others ([`Scalar`]). Requests are written exactly one way (see the module docs of
//! [`crate::alqimah`]).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Login request body: `{"AccountNumber", "UserName", "Token"}`. `Debug` hides the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginBody {
    /// `AccountNumber`, as a string (it is concatenated as text into the token).
    #[serde(rename = "AccountNumber")]
    pub account_number: String,
    /// `UserName`.
    #[serde(rename = "UserName")]
    pub user_name: String,
    /// `Token`: the md5 login token.
    #[serde(rename = "Token")]
    pub token: String,
}

impl fmt::Debug for LoginBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginBody")
            .field("account_number", &self.account_number)
            .field("user_name", &self.user_name)
            .finish_non_exhaustive()
    }
}

/// Login answer: `{"status", "message", "access_token", "token_expires"}`. `Debug` hides
/// the access token.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct LoginAnswer {
    /// `status`.
    pub status: bool,
    /// `message`.
    #[serde(default)]
    pub message: Option<String>,
    /// `access_token` (success only).
    #[serde(default)]
    pub access_token: Option<String>,
    /// `token_expires`, `"2024-08-05 19:31:45"` (success only).
    #[serde(default)]
    pub token_expires: Option<String>,
}

impl fmt::Debug for LoginAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginAnswer")
            .field("status", &self.status)
            .field("message", &self.message)
            .field("token_expires", &self.token_expires)
            .finish_non_exhaustive()
    }
}

/// Body of the account operations on the global network: balance
/// (`{"NetworkNumber": 0, "ServiceNumber": 1}`) and status
/// (`{"NetworkNumber": 0, "ServiceNumber": 2, "TransactionID": 1234}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalBody {
    /// `NetworkNumber`: always 0.
    #[serde(rename = "NetworkNumber")]
    pub network_number: u16,
    /// `ServiceNumber`: 1 balance, 2 status.
    #[serde(rename = "ServiceNumber")]
    pub service_number: u32,
    /// `TransactionID` (status only), a JSON number.
    #[serde(rename = "TransactionID", skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<u64>,
}

/// Body of a payment ("Payment Balance", "Payment Offers", "Payment Game Services and Gift
/// Cards"): the fields of the product's kind, the others omitted.
///
/// `Debug` shows the kind-defining fields only (the number, game field values and
/// `WebHookCode` are personal data or secret).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentBody {
    /// `NetworkNumber`.
    #[serde(rename = "NetworkNumber")]
    pub network_number: u16,
    /// `ServiceNumber`.
    #[serde(rename = "ServiceNumber")]
    pub service_number: u32,
    /// `MobileNumber`, a string of digits.
    #[serde(rename = "MobileNumber", skip_serializing_if = "Option::is_none")]
    pub mobile_number: Option<String>,
    /// `Amount` (top-up), a JSON number.
    #[serde(rename = "Amount", skip_serializing_if = "Option::is_none")]
    pub amount: Option<u64>,
    /// `OfferCode` (offer).
    #[serde(rename = "OfferCode", skip_serializing_if = "Option::is_none")]
    pub offer_code: Option<String>,
    /// `LinkCode` (game card).
    #[serde(rename = "LinkCode", skip_serializing_if = "Option::is_none")]
    pub link_code: Option<String>,
    /// `Fields` (game card): a JSON object `{"PlayerID": "..."}`.
    #[serde(rename = "Fields", skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, String>>,
    /// `Quantity` (game card, free-quantity categories), a JSON number.
    #[serde(rename = "Quantity", skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u32>,
    /// `TransactionID`, a JSON number.
    #[serde(rename = "TransactionID")]
    pub transaction_id: u64,
    /// `WebHookURL`.
    #[serde(rename = "WebHookURL", skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// `WebHookCode`.
    #[serde(rename = "WebHookCode", skip_serializing_if = "Option::is_none")]
    pub webhook_code: Option<String>,
}

impl fmt::Debug for PaymentBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaymentBody")
            .field("network_number", &self.network_number)
            .field("service_number", &self.service_number)
            .field("transaction_id", &self.transaction_id)
            .field("amount", &self.amount)
            .field("offer_code", &self.offer_code)
            .field("link_code", &self.link_code)
            .finish_non_exhaustive()
    }
}

/// What every answer has: `status` and, usually, `message`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Envelope {
    /// `status`: `true` when the request as a whole succeeded.
    pub status: bool,
    /// `message`.
    #[serde(default)]
    pub message: Option<String>,
}

/// A value the document shows sometimes as a number, sometimes as a string.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    /// A JSON number.
    Number(serde_json::Number),
    /// A JSON string.
    String(String),
}

impl Scalar {
    /// The value as text (`1234` and `"1234"` both give `1234`).
    pub fn text(&self) -> String {
        match self {
            Scalar::Number(n) => n.to_string(),
            Scalar::String(s) => s.clone(),
        }
    }
}

/// Balance answer: `{"status": true, "agentBalance": 100, "message", "transactionID": 0}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BalanceAnswer {
    /// `agentBalance`.
    #[serde(rename = "agentBalance")]
    pub agent_balance: Option<Scalar>,
    /// `message`.
    #[serde(default)]
    pub message: Option<String>,
}

/// Status and payment answers: `{"status": true, "operationStatus", "mobileNumber",
/// "agentBalance", "price", "message", "details", "transactionID", "referenceID"}` (the
/// status query has `mobileNumber` and `details`, the payment `agentBalance`).
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct OperationAnswer {
    /// `operationStatus`: 1, 0 or -1.
    #[serde(rename = "operationStatus")]
    pub operation_status: Option<Scalar>,
    /// `mobileNumber` (status).
    #[serde(rename = "mobileNumber", default)]
    pub mobile_number: Option<Scalar>,
    /// `agentBalance` (payment).
    #[serde(rename = "agentBalance", default)]
    pub agent_balance: Option<Scalar>,
    /// `price`.
    #[serde(default)]
    pub price: Option<Scalar>,
    /// `message`.
    #[serde(default)]
    pub message: Option<String>,
    /// `details` (status).
    #[serde(default)]
    pub details: Option<String>,
    /// `transactionID`: ours, echoed.
    #[serde(rename = "transactionID", default)]
    pub transaction_id: Option<Scalar>,
    /// `referenceID`: theirs.
    #[serde(rename = "referenceID", default)]
    pub reference_id: Option<Scalar>,
}

impl fmt::Debug for OperationAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperationAnswer")
            .field("operation_status", &self.operation_status)
            .field("transaction_id", &self.transaction_id)
            .field("reference_id", &self.reference_id)
            .field("price", &self.price)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_names_match_the_document() {
        let login = LoginBody {
            account_number: "1000001".into(),
            user_name: "agent".into(),
            token: "faff96f59f943d56a5ed279e82060442".into(),
        };
        assert_eq!(
            serde_json::to_string(&login).unwrap(),
            r#"{"AccountNumber":"1000001","UserName":"agent","Token":"faff96f59f943d56a5ed279e82060442"}"#
        );
        assert!(!format!("{login:?}").contains("faff96f5"));

        let status = GlobalBody {
            network_number: 0,
            service_number: 2,
            transaction_id: Some(1234),
        };
        assert_eq!(
            serde_json::to_string(&status).unwrap(),
            r#"{"NetworkNumber":0,"ServiceNumber":2,"TransactionID":1234}"#
        );
        let balance = GlobalBody {
            network_number: 0,
            service_number: 1,
            transaction_id: None,
        };
        assert_eq!(
            serde_json::to_string(&balance).unwrap(),
            r#"{"NetworkNumber":0,"ServiceNumber":1}"#
        );
    }

    #[test]
    fn answers_parse_the_document_examples() {
        let status: OperationAnswer = serde_json::from_str(
            r#"{"status": true, "operationStatus": -1, "mobileNumber": "777777777",
                "price": 100, "message": "في الانتظار", "details": "Operation Notes",
                "transactionID": 1234, "referenceID": 4321}"#,
        )
        .unwrap();
        assert_eq!(status.operation_status.unwrap().text(), "-1");
        assert_eq!(status.transaction_id.unwrap().text(), "1234");
        let payment: OperationAnswer = serde_json::from_str(
            r#"{"status": true, "operationStatus": 1, "agentBalance": 2445990.29131,
                "price": 5227, "message": "Payment succcess", "transactionID": "1",
                "referenceID": 243085}"#,
        )
        .unwrap();
        assert_eq!(payment.agent_balance.unwrap().text(), "2445990.29131");
        assert_eq!(payment.transaction_id.unwrap().text(), "1");
        let login: LoginAnswer = serde_json::from_str(
            r#"{"status": true, "message": "Login Successful",
                "access_token": "secret-access", "token_expires": "2024-08-05 19:31:45"}"#,
        )
        .unwrap();
        assert!(!format!("{login:?}").contains("secret-access"));
        let refused: Envelope =
            serde_json::from_str(r#"{"status": false, "message": "Error Message"}"#).unwrap();
        assert!(!refused.status);
    }
}
