//! The provider's callbacks: `success_event` and `error_event` ("success_event" and
//! "error_event" under each operation of the document).
//!
//! Both are `POST`s of a `serviceCallbackDTO` (`code`, `title`, `service_id`, all required)
//! with a `Request-Correlation-Id` header naming the request, and so the journey. The
//! provider posts them to `{callback_base}/success_event` and `{callback_base}/error_event`
//! ([`event_url`]); the kind of event is in the path, not in the body.
//!
//! # For the ingress that receives them
//!
//! 1. Route both paths to [`parse_event`] with the kind taken from the path
//!    ([`EventKind::from_wire_name`]), the `Request-Correlation-Id` header and the raw body
//!    (read at most [`MAX_EVENT_BYTES`]).
//! 2. A parse error is answered **400** (the document: "400 Bad Request"); its `Display` says
//!    what is wrong without echoing values.
//! 3. Persist the event **before** answering 200; answer 500 if that fails (the provider
//!    retries; the document lists "500 Internal Error").
//! 4. De-duplicate by [`ServiceEvent::dedupe_key`]: the same event may come several times.
//!    Match it to the journey by [`ServiceEvent::correlation_id`]; an event for an unknown
//!    id (early, or not ours) is stored and reported, never dropped.
//!
//! The document defines no way to authenticate events. Restrict the callback route at the
//! network (provider IP allow-list or mutual TLS) and use a callback base URL with an
//! unguessable path segment; a forged event would still have to name a correlation id (a
//! random-looking UUID) that is waiting.

use std::fmt;

use http::StatusCode;
use url::Url;

use super::{CorrelationId, ServiceId, parse_hyphenated};
use crate::redact::scrub_parser_message;

/// Path segment of the success event, appended to the callback base URL.
pub const SUCCESS_EVENT_PATH: &str = "success_event";
/// Path segment of the error event, appended to the callback base URL.
pub const ERROR_EVENT_PATH: &str = "error_event";
/// Largest event body accepted (16 KiB): three short strings need far less.
pub const MAX_EVENT_BYTES: usize = 16 * 1024;
/// Longest `code`, in characters.
pub const MAX_EVENT_CODE_CHARS: usize = 64;
/// Longest `title`, in characters.
pub const MAX_EVENT_TITLE_CHARS: usize = 1024;

/// Which event the provider posted; decides the journey's branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// `success_event`: the request was carried out.
    Success,
    /// `error_event`: the request failed at the provider; `code` and `title` say why.
    Error,
}

impl EventKind {
    /// The document's name, also the callback path segment: `success_event`, `error_event`.
    pub const fn wire_name(self) -> &'static str {
        match self {
            EventKind::Success => SUCCESS_EVENT_PATH,
            EventKind::Error => ERROR_EVENT_PATH,
        }
    }

    /// The kind named `name` (`success_event` or `error_event`).
    pub fn from_wire_name(name: &str) -> Option<Self> {
        match name {
            SUCCESS_EVENT_PATH => Some(EventKind::Success),
            ERROR_EVENT_PATH => Some(EventKind::Error),
            _ => None,
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.wire_name())
    }
}

/// Where the provider posts `kind` for a callback base URL: the base with the event name
/// appended as one more path segment (`https://hooks.example/so` gives
/// `https://hooks.example/so/success_event`; a trailing `/` on the base is ignored).
pub fn event_url(base: &Url, kind: EventKind) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().push(kind.wire_name());
    }
    url
}

/// A `success_event` or `error_event`, parsed and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceEvent {
    /// Which event.
    pub kind: EventKind,
    /// The `Request-Correlation-Id` header: the request, and so the journey.
    pub correlation_id: CorrelationId,
    /// `code` (the provider's; see [`super::codes`] for the simulator's).
    pub code: String,
    /// `title`, a description for people.
    pub title: String,
    /// `service_id`: the service created or updated (on create without a `service_id`, the
    /// one the provider assigned).
    pub service_id: ServiceId,
}

/// The key to de-duplicate events by: correlation id, event kind and code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventDedupeKey(String);

impl EventDedupeKey {
    /// The key text, `<correlation id>:<event kind>:<code>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventDedupeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl ServiceEvent {
    /// `<correlation id>:<event kind>:<code>`: equal for every copy of one event.
    pub fn dedupe_key(&self) -> EventDedupeKey {
        EventDedupeKey(format!(
            "{}:{}:{}",
            self.correlation_id,
            self.kind.wire_name(),
            self.code
        ))
    }

    /// The correlation id, the journey's key for the request.
    pub fn correlation_id(&self) -> CorrelationId {
        self.correlation_id
    }

    /// Whether this is a `success_event`.
    pub fn is_success(&self) -> bool {
        self.kind == EventKind::Success
    }
}

/// Why an event was refused. Answer it with [`EventError::http_status`] (400). Never
/// contains the values received.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// No `Request-Correlation-Id` header: the event cannot be matched to a journey.
    #[error("{kind}: the Request-Correlation-Id header is missing; it names the journey")]
    MissingCorrelationId {
        /// The event.
        kind: EventKind,
    },
    /// The header is not a hyphenated, non-nil UUID (the form we send).
    #[error("{kind}: the Request-Correlation-Id header is not a UUID in the hyphenated form")]
    InvalidCorrelationId {
        /// The event.
        kind: EventKind,
    },
    /// The body is larger than [`MAX_EVENT_BYTES`].
    #[error("{kind}: the body is larger than {limit} bytes")]
    TooLarge {
        /// The event.
        kind: EventKind,
        /// The limit.
        limit: usize,
    },
    /// The body is not JSON.
    #[error("{kind}: the body is not valid JSON: {reason}")]
    MalformedJson {
        /// The event.
        kind: EventKind,
        /// The parser's message, without the values it quoted.
        reason: String,
    },
    /// The body is JSON but not an object.
    #[error("{kind}: the body must be a JSON object (serviceCallbackDTO)")]
    NotAnObject {
        /// The event.
        kind: EventKind,
    },
    /// A required field of `serviceCallbackDTO` is missing or null.
    #[error("{kind}: the required field `{field}` is missing")]
    MissingField {
        /// The event.
        kind: EventKind,
        /// `code`, `title` or `service_id`.
        field: &'static str,
    },
    /// A field has the wrong type or an unusable value.
    #[error("{kind}: the field `{field}` {reason}")]
    InvalidField {
        /// The event.
        kind: EventKind,
        /// `code`, `title` or `service_id`.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl EventError {
    /// The status to answer the provider with: 400, as the document lists.
    pub fn http_status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }
}

/// Parses a `success_event` or `error_event`: the kind (from the path), the
/// `Request-Correlation-Id` header and the raw body.
///
/// Strict on what the document requires (the header, as a UUID; `code`, `title` and
/// `service_id` as strings, `code` and `service_id` non-empty); extra body fields are
/// ignored so that the provider adding one does not make us refuse its events.
///
/// ```
/// use handover_adapters::service_ops::{EventKind, parse_event};
///
/// let event = parse_event(
///     EventKind::Success,
///     Some("7d444840-9dc0-11d1-b245-5ffdce74fad2"),
///     br#"{"code":"SERVICE_CREATED","title":"Service created","service_id":"svc-1"}"#,
/// )?;
/// assert!(event.is_success());
/// assert_eq!(
///     event.dedupe_key().as_str(),
///     "7d444840-9dc0-11d1-b245-5ffdce74fad2:success_event:SERVICE_CREATED"
/// );
/// # Ok::<(), handover_adapters::service_ops::EventError>(())
/// ```
pub fn parse_event(
    kind: EventKind,
    correlation_header: Option<&str>,
    body: &[u8],
) -> Result<ServiceEvent, EventError> {
    let header = correlation_header
        .map(str::trim)
        .ok_or(EventError::MissingCorrelationId { kind })?;
    let correlation_id = parse_hyphenated(header)
        .and_then(|id| CorrelationId::new(id).ok())
        .ok_or(EventError::InvalidCorrelationId { kind })?;
    if body.len() > MAX_EVENT_BYTES {
        return Err(EventError::TooLarge {
            kind,
            limit: MAX_EVENT_BYTES,
        });
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| EventError::MalformedJson {
            kind,
            reason: scrub_parser_message(&e.to_string()),
        })?;
    let serde_json::Value::Object(fields) = value else {
        return Err(EventError::NotAnObject { kind });
    };
    let text = |field: &'static str| -> Result<String, EventError> {
        match fields.get(field) {
            None | Some(serde_json::Value::Null) => Err(EventError::MissingField { kind, field }),
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(EventError::InvalidField {
                kind,
                field,
                reason: "must be a string",
            }),
        }
    };
    let code = text("code")?;
    let title = text("title")?;
    let service_id = text("service_id")?;

    let invalid = |field, reason| {
        Err(EventError::InvalidField {
            kind,
            field,
            reason,
        })
    };
    let chars = code.chars().count();
    if chars == 0 || chars > MAX_EVENT_CODE_CHARS || code.chars().any(char::is_control) {
        return invalid(
            "code",
            "must be 1 to 64 characters without control characters",
        );
    }
    if title.chars().count() > MAX_EVENT_TITLE_CHARS {
        return invalid("title", "must be at most 1024 characters");
    }
    let Ok(service_id) = ServiceId::new(service_id) else {
        return invalid(
            "service_id",
            "must be 1 to 128 characters without whitespace or control characters",
        );
    };
    Ok(ServiceEvent {
        kind,
        correlation_id,
        code,
        title,
        service_id,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ID: &str = "7d444840-9dc0-11d1-b245-5ffdce74fad2";

    fn body(v: &serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(v).unwrap()
    }

    fn good() -> Vec<u8> {
        body(
            &json!({ "code": "SERVICE_CREATED", "title": "Service created", "service_id": "svc-1" }),
        )
    }

    #[test]
    fn parses_both_kinds_with_a_dedupe_key() {
        let ok = parse_event(EventKind::Success, Some(ID), &good()).unwrap();
        assert_eq!(ok.kind, EventKind::Success);
        assert_eq!(ok.correlation_id().to_string(), ID);
        assert_eq!(ok.code, "SERVICE_CREATED");
        assert_eq!(ok.title, "Service created");
        assert_eq!(ok.service_id.as_str(), "svc-1");
        assert!(ok.is_success());

        let err = parse_event(
            EventKind::Error,
            Some(&ID.to_uppercase()),
            &body(&json!({ "code": "SERVICE_NOT_FOUND", "title": "", "service_id": "svc-1", "extra": 1 })),
        )
        .unwrap();
        assert!(!err.is_success());
        assert_eq!(err.title, "", "an empty title is still a title");
        assert_eq!(
            err.dedupe_key().as_str(),
            format!("{ID}:error_event:SERVICE_NOT_FOUND")
        );
        assert_ne!(ok.dedupe_key(), err.dedupe_key());
        // Every copy of one event has the same key.
        assert_eq!(
            ok.dedupe_key(),
            parse_event(EventKind::Success, Some(ID), &good())
                .unwrap()
                .dedupe_key()
        );
    }

    #[test]
    fn refuses_missing_or_invalid_correlation_ids() {
        assert_eq!(
            parse_event(EventKind::Success, None, &good()),
            Err(EventError::MissingCorrelationId {
                kind: EventKind::Success
            })
        );
        for bad in [
            "",
            "journey-42",
            "7d4448409dc011d1b2455ffdce74fad2",
            "00000000-0000-0000-0000-000000000000",
        ] {
            assert_eq!(
                parse_event(EventKind::Error, Some(bad), &good()),
                Err(EventError::InvalidCorrelationId {
                    kind: EventKind::Error
                }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn refuses_malformed_bodies_with_clear_errors_that_echo_nothing() {
        let k = EventKind::Success;
        let err = parse_event(k, Some(ID), b"{\"code\": \"0712755777").unwrap_err();
        assert!(matches!(err, EventError::MalformedJson { .. }), "{err:?}");
        assert!(!err.to_string().contains("0712755777"), "{err}");
        assert!(
            err.to_string()
                .starts_with("success_event: the body is not valid JSON")
        );

        assert_eq!(
            parse_event(k, Some(ID), b"[1,2]"),
            Err(EventError::NotAnObject { kind: k })
        );
        for field in ["code", "title", "service_id"] {
            let mut v = json!({ "code": "C", "title": "T", "service_id": "s" });
            v.as_object_mut().unwrap().remove(field);
            assert_eq!(
                parse_event(k, Some(ID), &body(&v)),
                Err(EventError::MissingField { kind: k, field }),
                "{field}"
            );
            v[field] = json!(null);
            assert_eq!(
                parse_event(k, Some(ID), &body(&v)),
                Err(EventError::MissingField { kind: k, field })
            );
            v[field] = json!(42);
            let err = parse_event(k, Some(ID), &body(&v)).unwrap_err();
            assert_eq!(
                err,
                EventError::InvalidField {
                    kind: k,
                    field,
                    reason: "must be a string"
                }
            );
            assert!(err.to_string().contains(&format!("`{field}`")), "{err}");
        }
        for (field, v) in [
            (
                "code",
                json!({ "code": "", "title": "T", "service_id": "s" }),
            ),
            (
                "service_id",
                json!({ "code": "C", "title": "T", "service_id": "a b" }),
            ),
            (
                "service_id",
                json!({ "code": "C", "title": "T", "service_id": "" }),
            ),
            (
                "title",
                json!({ "code": "C", "title": "t".repeat(1025), "service_id": "s" }),
            ),
        ] {
            let err = parse_event(k, Some(ID), &body(&v)).unwrap_err();
            assert!(
                matches!(err, EventError::InvalidField { field: f, .. } if f == field),
                "{err:?}"
            );
            assert_eq!(err.http_status(), StatusCode::BAD_REQUEST);
        }
        let huge = vec![b' '; MAX_EVENT_BYTES + 1];
        assert!(matches!(
            parse_event(k, Some(ID), &huge),
            Err(EventError::TooLarge { .. })
        ));
    }

    #[test]
    fn event_urls_append_the_event_name() {
        let base = Url::parse("https://hooks.example/service-ops").unwrap();
        assert_eq!(
            event_url(&base, EventKind::Success).as_str(),
            "https://hooks.example/service-ops/success_event"
        );
        let slash = Url::parse("https://hooks.example/a/b/?x=1").unwrap();
        assert_eq!(
            event_url(&slash, EventKind::Error).as_str(),
            "https://hooks.example/a/b/error_event"
        );
        let root = Url::parse("http://127.0.0.1:9/").unwrap();
        assert_eq!(
            event_url(&root, EventKind::Success).as_str(),
            "http://127.0.0.1:9/success_event"
        );
        assert_eq!(
            EventKind::from_wire_name("error_event"),
            Some(EventKind::Error)
        );
        assert_eq!(EventKind::from_wire_name("other"), None);
    }
}
