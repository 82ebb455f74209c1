//! Classifying `status: false` answers.
//!
//! Every Al-Qimah error is `{"status": false, "message": "Error Message"}` with no code, so
//! the only thing to go on is the message text. [`classify_refusal`] recognises the reasons
//! the journey must act on differently, by case-insensitive substrings in English and
//! Arabic, and only among the reasons that make sense for the call ([`CallKind`]):
//!
//! | Reason | Calls | Recognised by (any of; "A + B" means one of each) |
//! |---|---|---|
//! | [`RefusalReason::LoginFailed`] | login | every `status: false` answer to the login |
//! | [`RefusalReason::TokenRejected`] | balance, status, payment | "token"/"توكن"/"session"/"الجلسة" + "expired"/"invalid"/"not valid"/"missing"/"required"/"unauthori"/"not found"/"منتهي"/"انتهت"/"غير صالح"/"غير صحيح"/"مفقود"; or "unauthorized", "unauthenticated", "not authenticated", "login again", "please login", "غير مصرح", "تسجيل الدخول" |
//! | [`RefusalReason::TransactionNotFound`] | status | "transaction"/"operation"/"order"/"عملية"/"الطلب" + "not found"/"does not exist"/"doesn't exist"/"not exist"/"no such"/"unknown transaction"/"unknown operation"/"غير موجود"/"لا توجد"/"لا يوجد" |
//! | [`RefusalReason::DuplicateTransaction`] | payment | "duplicate", "already exist", "already used", "already been used", "already registered", "used before", "previously used", "مكرر", "مسبق", "سابقا" |
//! | [`RefusalReason::InsufficientBalance`] | payment | "insufficient", "not enough", "no enough", "not sufficient", "low balance", "غير كاف", "لا يكفي", "لا يكفى" |
//! | [`RefusalReason::InvalidNumber`] | payment | "mobile"/"number"/"phone"/"msisdn"/"subscriber"/"رقم"/"المشترك" + "invalid"/"incorrect"/"wrong"/"not valid"/"not correct"/"غير صحيح"/"غير صالح"/"خاطئ"/"خطأ" |
//! | [`RefusalReason::Unrecognised`] | all | anything else |
//!
//! Rows are tried top to bottom, so "Invalid token" is a token problem, not an invalid
//! number. The table is a best effort against an undocumented API: the real messages must be
//! collected in acceptance testing and added here. Misclassification is made safe where it
//! matters: an unrecognised answer to a status query is a terminal refusal, never "not
//! found", so reconciliation never re-sends on a guess.

use std::fmt;

use crate::error::{Provider, ProviderError};

use super::LOGIN;

/// Which call a `status: false` answer came from; decides which reasons are possible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallKind {
    /// `POST /rest-api/login`.
    Login,
    /// Account balance (`NetworkNumber=0, ServiceNumber=1`).
    Balance,
    /// Operation status (`NetworkNumber=0, ServiceNumber=2`).
    OperationStatus,
    /// A payment.
    Payment,
}

/// Why Al-Qimah answered `status: false`, as far as the message tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefusalReason {
    /// The login was refused (wrong user name, account, password or API token). Returned as
    /// [`ProviderError::Auth`] (401) on the `alqimah.login` operation.
    LoginFailed,
    /// The access token was refused (expired, revoked, unknown). The client logs in again and
    /// retries once; a second refusal is [`ProviderError::Auth`] (401).
    TokenRejected,
    /// The `TransactionID` was already used. Returned as [`ProviderError::Conflict`]: the
    /// payment may already exist, reconcile by status query.
    DuplicateTransaction,
    /// The agent account's balance does not cover the price. [`ProviderError::Refused`].
    InsufficientBalance,
    /// The subscriber's number is not valid for the service. [`ProviderError::Refused`].
    InvalidNumber,
    /// A status query found no operation with this `TransactionID`. Not an error:
    /// [`super::StatusLookup::NotFound`].
    TransactionNotFound,
    /// Anything else. [`ProviderError::Refused`] without a code, terminal.
    Unrecognised,
}

impl RefusalReason {
    /// The stable code put in [`ProviderError::Refused`]'s `code` (Al-Qimah has no codes of
    /// its own); `None` for [`RefusalReason::Unrecognised`].
    pub fn code(self) -> Option<&'static str> {
        match self {
            RefusalReason::LoginFailed => Some("login_failed"),
            RefusalReason::TokenRejected => Some("token_rejected"),
            RefusalReason::DuplicateTransaction => Some("duplicate_transaction"),
            RefusalReason::InsufficientBalance => Some("insufficient_balance"),
            RefusalReason::InvalidNumber => Some("invalid_number"),
            RefusalReason::TransactionNotFound => Some("transaction_not_found"),
            RefusalReason::Unrecognised => None,
        }
    }

    /// The reason behind an error returned by the Al-Qimah client: `Refused` by its code,
    /// `Conflict` as a duplicate, `Auth` as a failed login (on `alqimah.login`) or a rejected
    /// token (on any other operation). `None` for other errors and other providers.
    pub fn of(error: &ProviderError) -> Option<Self> {
        if error.provider() != Provider::AlQimah {
            return None;
        }
        match error {
            ProviderError::Refused { code, .. } => Some(match code.as_deref() {
                Some("insufficient_balance") => RefusalReason::InsufficientBalance,
                Some("invalid_number") => RefusalReason::InvalidNumber,
                Some("duplicate_transaction") => RefusalReason::DuplicateTransaction,
                Some("transaction_not_found") => RefusalReason::TransactionNotFound,
                _ => RefusalReason::Unrecognised,
            }),
            ProviderError::Conflict { .. } => Some(RefusalReason::DuplicateTransaction),
            ProviderError::Auth { operation, .. } if *operation == LOGIN => {
                Some(RefusalReason::LoginFailed)
            }
            ProviderError::Auth { .. } => Some(RefusalReason::TokenRejected),
            _ => None,
        }
    }
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code().unwrap_or("unrecognised"))
    }
}

const TOKEN_SUBJECT: &[&str] = &["token", "توكن", "session", "الجلسة"];
const TOKEN_PROBLEM: &[&str] = &[
    "expired",
    "invalid",
    "not valid",
    "missing",
    "required",
    "unauthori",
    "not found",
    "منتهي",
    "انتهت",
    "غير صالح",
    "غير صحيح",
    "مفقود",
];
const AUTH_ALONE: &[&str] = &[
    "unauthorized",
    "unauthorised",
    "unauthenticated",
    "not authenticated",
    "login again",
    "please login",
    "غير مصرح",
    "تسجيل الدخول",
];
const TRANSACTION_SUBJECT: &[&str] = &["transaction", "operation", "order", "عملية", "الطلب"];
const NOT_FOUND: &[&str] = &[
    "not found",
    "does not exist",
    "doesn't exist",
    "not exist",
    "no such",
    "unknown transaction",
    "unknown operation",
    "غير موجود",
    "لا توجد",
    "لا يوجد",
];
const DUPLICATE: &[&str] = &[
    "duplicate",
    "already exist",
    "already used",
    "already been used",
    "already registered",
    "used before",
    "previously used",
    "مكرر",
    "مسبق",
    "سابقا",
];
const INSUFFICIENT: &[&str] = &[
    "insufficient",
    "not enough",
    "no enough",
    "not sufficient",
    "low balance",
    "غير كاف",
    "لا يكفي",
    "لا يكفى",
];
const NUMBER_SUBJECT: &[&str] = &[
    "mobile",
    "number",
    "phone",
    "msisdn",
    "subscriber",
    "رقم",
    "المشترك",
];
const INVALID: &[&str] = &[
    "invalid",
    "incorrect",
    "wrong",
    "not valid",
    "not correct",
    "غير صحيح",
    "غير صالح",
    "خاطئ",
    "خطأ",
];

/// Classifies the `message` of a `status: false` answer to a `kind` call, by the table in
/// the [module docs](self).
pub fn classify_refusal(kind: CallKind, message: &str) -> RefusalReason {
    if kind == CallKind::Login {
        return RefusalReason::LoginFailed;
    }
    let text = message.to_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| text.contains(w));
    if (any(TOKEN_SUBJECT) && any(TOKEN_PROBLEM)) || any(AUTH_ALONE) {
        return RefusalReason::TokenRejected;
    }
    match kind {
        CallKind::OperationStatus if any(TRANSACTION_SUBJECT) && any(NOT_FOUND) => {
            RefusalReason::TransactionNotFound
        }
        CallKind::Payment if any(DUPLICATE) => RefusalReason::DuplicateTransaction,
        CallKind::Payment if any(INSUFFICIENT) => RefusalReason::InsufficientBalance,
        CallKind::Payment if any(NUMBER_SUBJECT) && any(INVALID) => RefusalReason::InvalidNumber,
        _ => RefusalReason::Unrecognised,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RefusalReason::*;

    #[test]
    fn the_table_recognises_english_and_arabic_messages() {
        let cases: &[(CallKind, &str, RefusalReason)] = &[
            (CallKind::Login, "Error Message", LoginFailed),
            (
                CallKind::Balance,
                "Token expired, please login again",
                TokenRejected,
            ),
            (CallKind::Payment, "Invalid token", TokenRejected),
            (
                CallKind::OperationStatus,
                "api-token is required",
                TokenRejected,
            ),
            (CallKind::Payment, "انتهت صلاحية التوكن", TokenRejected),
            (CallKind::Balance, "Unauthorized", TokenRejected),
            (
                CallKind::OperationStatus,
                "Transaction not found",
                TransactionNotFound,
            ),
            (
                CallKind::OperationStatus,
                "العملية غير موجودة",
                TransactionNotFound,
            ),
            (
                CallKind::OperationStatus,
                "No such operation",
                TransactionNotFound,
            ),
            (
                CallKind::Payment,
                "Duplicate TransactionID: the transaction already exists",
                DuplicateTransaction,
            ),
            (CallKind::Payment, "رقم العملية مكرر", DuplicateTransaction),
            (
                CallKind::Payment,
                "Insufficient balance",
                InsufficientBalance,
            ),
            (CallKind::Payment, "رصيدك غير كافٍ", InsufficientBalance),
            (CallKind::Payment, "Invalid mobile number", InvalidNumber),
            (CallKind::Payment, "رقم المشترك غير صحيح", InvalidNumber),
            (
                CallKind::Payment,
                "Service temporarily suspended",
                Unrecognised,
            ),
            (CallKind::Payment, "Error Message", Unrecognised),
        ];
        for (kind, message, expected) in cases {
            assert_eq!(
                classify_refusal(*kind, message),
                *expected,
                "{kind:?} {message}"
            );
        }
    }

    #[test]
    fn reasons_are_only_recognised_where_they_make_sense() {
        // "Offer not found" in a payment is not "this transaction is unknown".
        assert_eq!(
            classify_refusal(CallKind::Payment, "Order not found"),
            Unrecognised
        );
        // A status query is never "insufficient balance" or "duplicate".
        assert_eq!(
            classify_refusal(CallKind::OperationStatus, "Insufficient balance"),
            Unrecognised
        );
        // An unrecognised status answer is never taken for "not found".
        for message in [
            "Service unavailable",
            "Unknown error while reading the transaction",
        ] {
            assert_eq!(
                classify_refusal(CallKind::OperationStatus, message),
                Unrecognised,
                "{message}"
            );
        }
        // Token problems win over number problems.
        assert_eq!(
            classify_refusal(CallKind::Payment, "Invalid token number"),
            TokenRejected
        );
    }

    #[test]
    fn codes_round_trip_through_errors() {
        use crate::error::Operation;
        let op = Operation::new("alqimah.pay");
        for reason in [InsufficientBalance, InvalidNumber] {
            let e = ProviderError::Refused {
                provider: Provider::AlQimah,
                operation: op,
                code: reason.code().map(str::to_owned),
                message: "m".into(),
            };
            assert_eq!(RefusalReason::of(&e), Some(reason));
        }
        let conflict = ProviderError::Conflict {
            provider: Provider::AlQimah,
            operation: op,
            message: "dup".into(),
        };
        assert_eq!(RefusalReason::of(&conflict), Some(DuplicateTransaction));
        let auth = |operation| ProviderError::Auth {
            provider: Provider::AlQimah,
            operation,
            status: http::StatusCode::UNAUTHORIZED,
            message: "no".into(),
        };
        assert_eq!(RefusalReason::of(&auth(LOGIN)), Some(LoginFailed));
        assert_eq!(RefusalReason::of(&auth(op)), Some(TokenRejected));
        let other_provider = ProviderError::Conflict {
            provider: Provider::Reach,
            operation: op,
            message: "dup".into(),
        };
        assert_eq!(RefusalReason::of(&other_provider), None);
    }
}
