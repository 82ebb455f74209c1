//! Errors, one enum per layer.

use std::time::Duration;

use crate::ids::JourneyId;

/// How a step failed. Whether it is retried is decided by the variant, never
/// by parsing a message.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepError {
    /// A transient failure (5xx, rate limit, connection refused): the step is
    /// retried under its [`RetryPolicy`](crate::RetryPolicy), no sooner than
    /// `retry_after` when the provider said so.
    #[error("{message}")]
    Retryable {
        /// What went wrong, for people. No secrets.
        message: String,
        /// The provider's `Retry-After`, if it gave one.
        retry_after: Option<Duration>,
    },
    /// The call may have taken effect (504, timeout after sending). The step is
    /// retried, and on the retry [`StepCtx::may_have_run_before`] is true so it
    /// reconciles by a status query before it re-sends.
    ///
    /// [`StepCtx::may_have_run_before`]: crate::StepCtx::may_have_run_before
    #[error("outcome unknown: {message}")]
    OutcomeUnknown {
        /// What went wrong, for people. No secrets.
        message: String,
    },
    /// Retrying cannot help (a business refusal, a 4xx): the journey fails
    /// with this reason and its compensations run.
    #[error("{reason}")]
    Terminal {
        /// Why, in words a person reading the journey understands.
        reason: String,
    },
}

impl StepError {
    /// A transient failure.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::Retryable {
            message: message.into(),
            retry_after: None,
        }
    }

    /// A transient failure with the provider's `Retry-After`.
    pub fn retry_after(message: impl Into<String>, after: Duration) -> Self {
        Self::Retryable {
            message: message.into(),
            retry_after: Some(after),
        }
    }

    /// A call whose outcome is unknown.
    pub fn outcome_unknown(message: impl Into<String>) -> Self {
        Self::OutcomeUnknown {
            message: message.into(),
        }
    }

    /// A failure retrying cannot fix.
    pub fn terminal(reason: impl Into<String>) -> Self {
        Self::Terminal {
            reason: reason.into(),
        }
    }

    /// The stored kind: `retryable`, `outcome_unknown` or `terminal`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Retryable { .. } => "retryable",
            Self::OutcomeUnknown { .. } => "outcome_unknown",
            Self::Terminal { .. } => "terminal",
        }
    }
}

/// A journey input that failed validation at start.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("invalid input: {message}")]
pub struct InvalidInput {
    /// What is wrong, e.g. "IMEI must be 15 digits, got 14".
    pub message: String,
}

impl InvalidInput {
    /// An input error with a message for the caller.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Failures of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be reached or is busy; the operation can be
    /// retried. Workers back off and keep running.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A row did not decode (corrupt or written by an incompatible version).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(String),
}

impl StoreError {
    /// Whether retrying the same operation later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(err.to_string()),
            sqlx::Error::Database(db) => {
                let msg = db.message().to_owned();
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                // SQLite: 5 = SQLITE_BUSY, 6 = SQLITE_LOCKED (and their extended codes).
                // Postgres: class 08 connection exceptions, 57P0x shutdown, 40001/40P01
                // serialization/deadlock, 53xxx insufficient resources.
                let transient = msg.contains("database is locked")
                    || msg.contains("database table is locked")
                    || code == "5"
                    || code == "6"
                    || code == "517"
                    || code == "261"
                    || code.starts_with("08")
                    || code.starts_with("57P")
                    || code.starts_with("53")
                    || code == "40001"
                    || code == "40P01";
                if transient {
                    Self::Unavailable(format!("{msg} (code {code})"))
                } else {
                    Self::Database(format!("{msg} (code {code})"))
                }
            }
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                Self::Corrupt(err.to_string())
            }
            _ => Self::Database(err.to_string()),
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(err: serde_json::Error) -> Self {
        Self::Corrupt(err.to_string())
    }
}

/// Errors of the engine's public operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The input did not validate; nothing was stored.
    #[error("cannot start {workflow}: {source}")]
    InvalidInput {
        /// The workflow asked for.
        workflow: String,
        /// What is wrong with the input.
        #[source]
        source: InvalidInput,
    },
    /// No workflow of that name (and version) is registered in this engine.
    #[error("workflow {name} v{version} is not registered in this engine")]
    UnknownWorkflow {
        /// The workflow name.
        name: String,
        /// The version asked for (0 = any).
        version: u32,
    },
    /// No journey has this id.
    #[error("journey {0} not found")]
    NotFound(JourneyId),
    /// A journey with this id already exists with a different workflow.
    #[error("journey {id} already exists as a {workflow} journey")]
    AlreadyExists {
        /// The id asked for.
        id: JourneyId,
        /// The workflow of the existing journey.
        workflow: String,
    },
    /// A worker holds the journey right now; the repair was not applied.
    #[error(
        "journey {id} is being run by worker {owner} (lease until {until}); nothing was changed, try again when the step finishes"
    )]
    Busy {
        /// The journey.
        id: JourneyId,
        /// The worker holding it.
        owner: String,
        /// When its lease expires.
        until: String,
    },
    /// The operation does not apply to the journey as it is now.
    #[error("{0}")]
    Refused(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for EngineError {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(err.into())
    }
}

impl From<serde_json::Error> for EngineError {
    fn from(err: serde_json::Error) -> Self {
        Self::Store(err.into())
    }
}
