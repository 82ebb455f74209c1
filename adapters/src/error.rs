//! The one error type every provider client returns, and its retry classification.
//!
//! Every failure of a provider call is sorted into a [`ProviderError`] variant by what it means
//! for the journey, not by where it came from: a business refusal, a malformed request, an
//! authentication problem, back-pressure, a provider outage, or, the dangerous one, a call whose
//! effect may or may not have happened ([`ProviderError::OutcomeUnknown`]).
//! [`ProviderError::class`] folds the variants onto the three things the workflow layer must
//! decide between: give up, retry, or reconcile first.
//!
//! Messages never contain secrets (tokens, passwords, API keys, OTPs, PINs) or full MSISDNs:
//! the variants carry only our own wording and provider messages passed through
//! [`crate::redact::sanitize_message`].

use std::fmt;
use std::time::Duration;

use http::StatusCode;

/// The providers Handover talks to.
///
/// The lowercase name ([`Provider::name`]) is used in operation names, in the environment
/// variable prefix (`HANDOVER_<NAME>_...`, upper-cased) and as the TOML section name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Provider {
    /// Mobitel (Sri Lanka) Charging as a Service, `mobitel-caas.txt`.
    Mobitel,
    /// Reach Mobile Platform plugAPI, `reach-plugapi-guide.txt`.
    Reach,
    /// Al-Qimah payment platform REST API, `alqimah-rest-api.txt`.
    AlQimah,
    /// Mobily (Saudi Arabia) developer portal APIs, `mobily-developer-portal.txt`.
    Mobily,
    /// Service operations v3 (create/update services with event callbacks),
    /// `service-operations-v3.txt`.
    ServiceOps,
}

impl Provider {
    /// Every provider, in a stable order.
    pub const ALL: [Provider; 5] = [
        Provider::Mobitel,
        Provider::Reach,
        Provider::AlQimah,
        Provider::Mobily,
        Provider::ServiceOps,
    ];

    /// The stable lowercase name: `mobitel`, `reach`, `alqimah`, `mobily`, `service_ops`.
    pub const fn name(self) -> &'static str {
        match self {
            Provider::Mobitel => "mobitel",
            Provider::Reach => "reach",
            Provider::AlQimah => "alqimah",
            Provider::Mobily => "mobily",
            Provider::ServiceOps => "service_ops",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name of one provider operation, e.g. `mobitel.charge_request`.
///
/// Operation names appear in errors, logs and metrics; they are part of the operator-facing
/// contract, so keep them stable once released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Operation(&'static str);

impl Operation {
    /// Names an operation. Use `<provider>.<snake_case_operation>`.
    pub const fn new(name: &'static str) -> Self {
        Self(name)
    }

    /// The operation name.
    pub const fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Why a provider call failed, classified by what the journey must do about it.
///
/// Every variant names the provider and the operation. See [`ProviderError::class`] for the
/// retry decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The provider understood the request and said no for a business reason (not eligible,
    /// no coverage, invalid IMEI, wrong OTP, insufficient balance...). Terminal for the step;
    /// the message is meant for a person.
    #[error("{operation}: refused by {provider}{}: {message}", fmt_code(code.as_deref()))]
    Refused {
        /// The provider.
        provider: Provider,
        /// The operation that was refused.
        operation: Operation,
        /// The provider's own refusal code, when it gives one.
        code: Option<String>,
        /// The provider's human-readable reason (sanitized).
        message: String,
    },

    /// The request was rejected as invalid (400, 404, 406 and other terminal client errors),
    /// or refused locally before sending (`status` is `None`). Terminal: sending it again will
    /// not help.
    #[error("{operation}: rejected by {provider}{}: {message}", fmt_status(*status))]
    Rejected {
        /// The provider.
        provider: Provider,
        /// The operation.
        operation: Operation,
        /// The HTTP status, or `None` when the request was refused before sending.
        status: Option<StatusCode>,
        /// The provider's message (sanitized), or ours when rejected locally.
        message: String,
    },

    /// Authentication or authorization failed: 401 after one re-authentication, or 403.
    /// Terminal: an operator must fix credentials, subscriptions or IP allow-lists.
    #[error("{operation}: {provider} denied access ({status}): {message}")]
    Auth {
        /// The provider.
        provider: Provider,
        /// The operation.
        operation: Operation,
        /// 401 or 403.
        status: StatusCode,
        /// The provider's message (sanitized).
        message: String,
    },

    /// 429: the provider asks us to slow down. Retryable after `retry_after` when given.
    #[error("{operation}: rate limited by {provider}{}", fmt_after(*retry_after))]
    RateLimited {
        /// The provider.
        provider: Provider,
        /// The operation.
        operation: Operation,
        /// The provider's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },

    /// The provider is failing (500, 502, 503) or a read-only call timed out. Nothing
    /// happened, or it does not matter because the call had no effect. Retryable.
    #[error("{operation}: {provider} unavailable{}{}", fmt_status(*status), fmt_after(*retry_after))]
    Unavailable {
        /// The provider.
        provider: Provider,
        /// The operation.
        operation: Operation,
        /// The HTTP status, or `None` for a read-only call that timed out or lost its
        /// connection.
        status: Option<StatusCode>,
        /// The provider's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },

    /// The effectful call may or may not have taken effect: 504, a timeout after the request
    /// was sent, or the connection dropped before the whole answer arrived. Reconcile (status
    /// query, or the provider's documented equivalent) before sending it again.
    #[error("{operation}: outcome unknown at {provider}, reconcile before re-sending: {reason}")]
    OutcomeUnknown {
        /// The provider.
        provider: Provider,
        /// The operation.
        operation: Operation,
        /// What we observed (ours, no provider data).
        reason: String,
    },

    /// 409: a duplicate request or a conflicting state (Reach). Check whether the operation
    /// already succeeded before doing anything else.
    #[error("{operation}: conflict at {provider}, check whether it already succeeded: {message}")]
    Conflict {
        /// The provider.
        provider: Provider,
        /// The operation.
        operation: Operation,
        /// The provider's message (sanitized).
        message: String,
    },

    /// The connection could not be established, so nothing was sent and no effect is
    /// possible. Retryable.
    #[error("{operation}: could not reach {provider}: {reason}")]
    Transport {
        /// The provider.
        provider: Provider,
        /// The operation.
        operation: Operation,
        /// What failed (ours, no URL, no provider data).
        reason: String,
    },

    /// The provider answered something we cannot interpret (unparseable body, missing field,
    /// unexpected status). When `effect_possible` is true the answer was a success status to
    /// an effectful call, so the effect may have happened: reconcile before re-sending.
    #[error("{operation}: unexpected answer from {provider}: {reason}")]
    Protocol {
        /// The provider.
        provider: Provider,
        /// The operation.
        operation: Operation,
        /// What was wrong (ours; never the raw body).
        reason: String,
        /// Whether the call may have taken effect anyway.
        effect_possible: bool,
    },

    /// Our own configuration is missing or invalid. Terminal until an operator fixes it.
    #[error("{operation}: {provider} is misconfigured: {reason}")]
    Config {
        /// The provider.
        provider: Provider,
        /// The operation (for loading, `<provider>.config`).
        operation: Operation,
        /// What is wrong (never the secret value itself).
        reason: String,
    },
}

/// What the workflow layer should do with a failed provider call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Do not retry: fail or branch the journey with the error's message.
    Terminal,
    /// Retry with backoff; wait at least `retry_after` when the provider said so.
    Retryable {
        /// The provider's requested delay, when it gave one.
        retry_after: Option<Duration>,
    },
    /// The call may have taken effect: reconcile before any re-send.
    OutcomeUnknown,
}

impl ProviderError {
    /// How the workflow layer should treat this failure.
    pub fn class(&self) -> ErrorClass {
        match self {
            ProviderError::Refused { .. }
            | ProviderError::Rejected { .. }
            | ProviderError::Auth { .. }
            | ProviderError::Config { .. } => ErrorClass::Terminal,
            ProviderError::Protocol {
                effect_possible, ..
            } => {
                if *effect_possible {
                    ErrorClass::OutcomeUnknown
                } else {
                    ErrorClass::Terminal
                }
            }
            ProviderError::RateLimited { retry_after, .. }
            | ProviderError::Unavailable { retry_after, .. } => ErrorClass::Retryable {
                retry_after: *retry_after,
            },
            ProviderError::Transport { .. } => ErrorClass::Retryable { retry_after: None },
            ProviderError::OutcomeUnknown { .. } | ProviderError::Conflict { .. } => {
                ErrorClass::OutcomeUnknown
            }
        }
    }

    /// The provider the failed call went to.
    pub fn provider(&self) -> Provider {
        match self {
            ProviderError::Refused { provider, .. }
            | ProviderError::Rejected { provider, .. }
            | ProviderError::Auth { provider, .. }
            | ProviderError::RateLimited { provider, .. }
            | ProviderError::Unavailable { provider, .. }
            | ProviderError::OutcomeUnknown { provider, .. }
            | ProviderError::Conflict { provider, .. }
            | ProviderError::Transport { provider, .. }
            | ProviderError::Protocol { provider, .. }
            | ProviderError::Config { provider, .. } => *provider,
        }
    }

    /// The operation that failed.
    pub fn operation(&self) -> Operation {
        match self {
            ProviderError::Refused { operation, .. }
            | ProviderError::Rejected { operation, .. }
            | ProviderError::Auth { operation, .. }
            | ProviderError::RateLimited { operation, .. }
            | ProviderError::Unavailable { operation, .. }
            | ProviderError::OutcomeUnknown { operation, .. }
            | ProviderError::Conflict { operation, .. }
            | ProviderError::Transport { operation, .. }
            | ProviderError::Protocol { operation, .. }
            | ProviderError::Config { operation, .. } => *operation,
        }
    }

    /// The provider's refusal code, for [`ProviderError::Refused`] errors that carry one.
    pub fn refusal_code(&self) -> Option<&str> {
        match self {
            ProviderError::Refused { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

fn fmt_code(code: Option<&str>) -> String {
    code.map(|c| format!(" (code {c})")).unwrap_or_default()
}

fn fmt_status(status: Option<StatusCode>) -> String {
    status.map(|s| format!(" ({s})")).unwrap_or_default()
}

fn fmt_after(retry_after: Option<Duration>) -> String {
    retry_after
        .map(|d| format!(", retry after {} ms", d.as_millis()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OP: Operation = Operation::new("mobitel.charge_request");

    #[test]
    fn classes_follow_the_journey_rules() {
        let p = Provider::Mobitel;
        let terminal = [
            ProviderError::Refused {
                provider: p,
                operation: OP,
                code: Some("2001".into()),
                message: "insufficient balance".into(),
            },
            ProviderError::Rejected {
                provider: p,
                operation: OP,
                status: Some(StatusCode::BAD_REQUEST),
                message: "bad".into(),
            },
            ProviderError::Auth {
                provider: p,
                operation: OP,
                status: StatusCode::FORBIDDEN,
                message: "no".into(),
            },
            ProviderError::Protocol {
                provider: p,
                operation: OP,
                reason: "garbage".into(),
                effect_possible: false,
            },
            ProviderError::Config {
                provider: p,
                operation: OP,
                reason: "missing base_url".into(),
            },
        ];
        for e in &terminal {
            assert_eq!(e.class(), ErrorClass::Terminal, "{e}");
        }

        let after = Some(Duration::from_secs(3));
        assert_eq!(
            ProviderError::RateLimited {
                provider: p,
                operation: OP,
                retry_after: after
            }
            .class(),
            ErrorClass::Retryable { retry_after: after }
        );
        assert_eq!(
            ProviderError::Unavailable {
                provider: p,
                operation: OP,
                status: Some(StatusCode::SERVICE_UNAVAILABLE),
                retry_after: None
            }
            .class(),
            ErrorClass::Retryable { retry_after: None }
        );
        assert_eq!(
            ProviderError::Transport {
                provider: p,
                operation: OP,
                reason: "connection refused".into()
            }
            .class(),
            ErrorClass::Retryable { retry_after: None }
        );
        let unknown = [
            ProviderError::OutcomeUnknown {
                provider: p,
                operation: OP,
                reason: "504".into(),
            },
            ProviderError::Conflict {
                provider: p,
                operation: OP,
                message: "duplicate".into(),
            },
            ProviderError::Protocol {
                provider: p,
                operation: OP,
                reason: "garbage 200".into(),
                effect_possible: true,
            },
        ];
        for e in &unknown {
            assert_eq!(e.class(), ErrorClass::OutcomeUnknown, "{e}");
        }
    }

    #[test]
    fn display_names_provider_operation_and_code() {
        let e = ProviderError::Refused {
            provider: Provider::Mobitel,
            operation: OP,
            code: Some("2002".into()),
            message: "re-initiated too soon".into(),
        };
        assert_eq!(
            e.to_string(),
            "mobitel.charge_request: refused by mobitel (code 2002): re-initiated too soon"
        );
        assert_eq!(e.refusal_code(), Some("2002"));
        assert_eq!(e.provider(), Provider::Mobitel);
        assert_eq!(e.operation(), OP);

        let e = ProviderError::RateLimited {
            provider: Provider::Reach,
            operation: Operation::new("reach.purchase"),
            retry_after: Some(Duration::from_secs(2)),
        };
        assert_eq!(
            e.to_string(),
            "reach.purchase: rate limited by reach, retry after 2000 ms"
        );
    }

    #[test]
    fn provider_names_are_stable() {
        let names: Vec<_> = Provider::ALL.iter().map(|p| p.name()).collect();
        assert_eq!(
            names,
            ["mobitel", "reach", "alqimah", "mobily", "service_ops"]
        );
    }
}
