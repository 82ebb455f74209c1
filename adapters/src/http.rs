//! The HTTP layer every provider client sends through.
//!
//! A provider client builds a [`ProviderRequest`] naming the operation, the path template and
//! whether the call is [`Effect::Effectful`] (changes money or inventory) or
//! [`Effect::ReadOnly`], and hands it to [`HttpClient::send`]. The layer:
//!
//! 1. waits for the provider's client-side rate limiter ([`SharedRateLimiter`]), at most
//!    `max_rate_wait_ms`;
//! 2. sends with the provider's timeouts;
//! 3. reads the body up to `max_response_bytes`;
//! 4. classifies the outcome into a [`ProviderError`]:
//!
//! | What happened                                  | Effectful                 | Read-only            |
//! |------------------------------------------------|---------------------------|----------------------|
//! | connect failed (nothing sent)                  | `Transport`               | `Transport`          |
//! | timeout after connecting                       | `OutcomeUnknown`          | `Unavailable`        |
//! | connection lost before the whole answer        | `OutcomeUnknown`          | `Unavailable`        |
//! | 2xx with a body over the size limit            | `Protocol` (effect possible) | `Protocol`        |
//! | 400, 404, 406, other 4xx                       | `Rejected`                | `Rejected`           |
//! | 401, 403, 407                                  | `Auth`                    | `Auth`               |
//! | 408                                            | `Unavailable`             | `Unavailable`        |
//! | 409                                            | `Conflict`                | `Conflict`           |
//! | 429                                            | `RateLimited`             | `RateLimited`        |
//! | 500, 502, 503                                  | `Unavailable`             | `Unavailable`        |
//! | 504, other 5xx                                 | `OutcomeUnknown`          | `Unavailable`        |
//! | 501, 505                                       | `Rejected`                | `Rejected`           |
//! | 1xx, 3xx (redirects are not followed)          | `Protocol`                | `Protocol`           |
//!
//! Providers whose error statuses mean something else (a business code inside a 400, say) use
//! [`HttpClient::send_raw`], handle their special cases, and fall back on
//! [`classify_status`].
//!
//! Logging: one `debug` event per call with provider, operation, method, the path *template*
//! (never the concrete URL, whose path or query may hold an MSISDN), status and elapsed time.
//! Headers and bodies are never logged.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use url::Url;

use crate::config::HttpSettings;
use crate::error::{Operation, Provider, ProviderError};
use crate::redact::{sanitize_message, scrub_parser_message};

/// The longest `Retry-After` we pass on; anything longer is clamped (one hour).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Whether a call changes money or inventory at the provider. Decides how timeouts and lost
/// connections are classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The call changes state (charge, reserve, order, activate...): an unanswered call may
    /// have taken effect.
    Effectful,
    /// The call only reads: an unanswered call can simply be retried.
    ReadOnly,
}

/// A client-side rate limiter, shareable by every client that uses the same provider
/// credentials (Reach limits per API key: give all Reach clients with one key the same
/// limiter).
#[derive(Clone)]
pub struct SharedRateLimiter {
    limiter: Arc<DefaultDirectRateLimiter>,
    max_wait: Duration,
}

impl std::fmt::Debug for SharedRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRateLimiter")
            .field("max_wait", &self.max_wait)
            .finish_non_exhaustive()
    }
}

impl SharedRateLimiter {
    /// A limiter allowing `per_second` sustained requests with bursts of `burst`; a caller
    /// waits at most `max_wait` for a slot.
    pub fn new(per_second: NonZeroU32, burst: NonZeroU32, max_wait: Duration) -> Self {
        let quota = Quota::per_second(per_second).allow_burst(burst);
        Self {
            limiter: Arc::new(RateLimiter::direct(quota)),
            max_wait,
        }
    }

    /// The limiter described by a provider's [`HttpSettings`].
    pub fn from_settings(settings: &HttpSettings) -> Self {
        Self::new(
            NonZeroU32::new(settings.rate_per_second).unwrap_or(NonZeroU32::MIN),
            NonZeroU32::new(settings.rate_burst).unwrap_or(NonZeroU32::MIN),
            Duration::from_millis(settings.max_rate_wait_ms),
        )
    }

    /// Waits for a slot; `false` when none came within `max_wait`.
    async fn acquire(&self) -> bool {
        tokio::time::timeout(self.max_wait, self.limiter.until_ready())
            .await
            .is_ok()
    }
}

/// One request to a provider, built by the provider's client.
pub struct ProviderRequest {
    provider: Provider,
    operation: Operation,
    method: Method,
    path_template: &'static str,
    path: String,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    body: Option<Bytes>,
    effect: Effect,
    timeout: Option<Duration>,
}

impl std::fmt::Debug for ProviderRequest {
    // Shows what the log shows: no concrete path, query, header values or body.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderRequest")
            .field("provider", &self.provider)
            .field("operation", &self.operation)
            .field("method", &self.method)
            .field("path_template", &self.path_template)
            .field("effect", &self.effect)
            .finish_non_exhaustive()
    }
}

impl ProviderRequest {
    /// A request to `path_template` (used as the concrete path too until [`Self::path`] is
    /// called). [`HttpClient::post`] and [`HttpClient::get`] are shorter.
    pub fn new(
        provider: Provider,
        operation: Operation,
        method: Method,
        path_template: &'static str,
        effect: Effect,
    ) -> Self {
        Self {
            provider,
            operation,
            method,
            path_template,
            path: path_template.to_owned(),
            query: Vec::new(),
            headers: HeaderMap::new(),
            body: None,
            effect,
            timeout: None,
        }
    }

    /// The concrete path, with the template's placeholders filled in (never logged).
    pub fn path(mut self, concrete: impl Into<String>) -> Self {
        self.path = concrete.into();
        self
    }

    /// Adds a query parameter (never logged).
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Adds a header carrying a secret (API key, token); it is marked sensitive so HTTP
    /// tooling will not print it.
    pub fn secret_header(
        mut self,
        name: HeaderName,
        value: &SecretString,
    ) -> Result<Self, ProviderError> {
        let mut value = HeaderValue::from_str(value.expose_secret()).map_err(|_| {
            // The error would describe the value: say only which header.
            ProviderError::Config {
                provider: self.provider,
                operation: self.operation,
                reason: format!("the secret for header {name} is not a valid header value"),
            }
        })?;
        value.set_sensitive(true);
        self.headers.append(name, value);
        Ok(self)
    }

    /// Sets a JSON body (and `Content-Type: application/json`).
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Result<Self, ProviderError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ProviderError::Rejected {
            provider: self.provider,
            operation: self.operation,
            status: None,
            message: format!("cannot encode the request body: {e}"),
        })?;
        self.headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        self.body = Some(Bytes::from(bytes));
        Ok(self)
    }

    /// Overrides the client's total timeout for this request.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The operation this request performs.
    pub fn operation(&self) -> Operation {
        self.operation
    }
}

/// A provider's answer: status, headers and the whole (bounded) body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    provider: Provider,
    operation: Operation,
    effect: Effect,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl HttpResponse {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The raw body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Parses the body as JSON. A body that does not parse is a
    /// [`ProviderError::Protocol`]; it is flagged `effect_possible` when this was a success
    /// answer to an effectful call.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ProviderError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            // serde quotes the offending value, which may be personal data or a token.
            self.protocol_error(format!(
                "cannot parse the {} answer: {}",
                self.status.as_u16(),
                scrub_parser_message(&e.to_string())
            ))
        })
    }

    /// A [`ProviderError::Protocol`] about this answer.
    pub fn protocol_error(&self, reason: impl Into<String>) -> ProviderError {
        ProviderError::Protocol {
            provider: self.provider,
            operation: self.operation,
            reason: reason.into(),
            effect_possible: self.effect == Effect::Effectful && self.status.is_success(),
        }
    }

    /// The classification of this answer's status by the shared table ([`classify_status`]).
    pub fn into_error(self) -> ProviderError {
        classify_status(
            self.provider,
            self.operation,
            self.effect,
            self.status,
            &self.headers,
            &self.body,
        )
    }
}

/// A provider's HTTP client: one per provider (and credentials), cheap to clone, shared by
/// all journeys.
#[derive(Debug, Clone)]
pub struct HttpClient {
    provider: Provider,
    client: reqwest::Client,
    base_url: Url,
    limiter: SharedRateLimiter,
    timeout: Duration,
    max_response_bytes: usize,
}

impl HttpClient {
    /// Builds a client for `provider` at `base_url` with its own rate limiter.
    pub fn new(
        provider: Provider,
        base_url: &Url,
        settings: &HttpSettings,
    ) -> Result<Self, ProviderError> {
        let config_error = |reason: String| ProviderError::Config {
            provider,
            operation: Operation::new("http.client"),
            reason,
        };
        settings
            .validate(provider)
            .map_err(|e| config_error(e.to_string()))?;
        let timeout = Duration::from_millis(settings.timeout_ms);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
            // A redirect of a POST is not something any provider documents; never follow one
            // with our credentials attached.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("handover/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| config_error(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            provider,
            client,
            base_url: base_url.clone(),
            limiter: SharedRateLimiter::from_settings(settings),
            timeout,
            max_response_bytes: settings.max_response_bytes,
        })
    }

    /// Replaces this client's limiter with one shared with other clients.
    pub fn with_rate_limiter(mut self, limiter: SharedRateLimiter) -> Self {
        self.limiter = limiter;
        self
    }

    /// Starts a `POST` to `path_template` through this client.
    pub fn post(
        &self,
        operation: Operation,
        path_template: &'static str,
        effect: Effect,
    ) -> ProviderRequest {
        ProviderRequest::new(
            self.provider,
            operation,
            Method::POST,
            path_template,
            effect,
        )
    }

    /// Starts a read-only `GET` of `path_template` through this client.
    pub fn get(&self, operation: Operation, path_template: &'static str) -> ProviderRequest {
        ProviderRequest::new(
            self.provider,
            operation,
            Method::GET,
            path_template,
            Effect::ReadOnly,
        )
    }

    /// The provider this client talks to.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// The base URL requests are sent under.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// Sends the request; any non-2xx answer becomes an error by the shared table.
    pub async fn send(&self, request: ProviderRequest) -> Result<HttpResponse, ProviderError> {
        let response = self.send_raw(request).await?;
        if response.status.is_success() {
            Ok(response)
        } else {
            Err(response.into_error())
        }
    }

    /// Sends the request and returns any answer that arrived, whatever its status. Only
    /// failures to get an answer are errors.
    pub async fn send_raw(&self, request: ProviderRequest) -> Result<HttpResponse, ProviderError> {
        let provider = self.provider;
        let operation = request.operation;
        let effect = request.effect;
        debug_assert_eq!(
            request.provider, provider,
            "request built for another provider"
        );
        let started = Instant::now();

        if !self.limiter.acquire().await {
            tracing::debug!(
                %provider, %operation, method = %request.method, path = request.path_template,
                "client-side rate limit: no slot within the allowed wait"
            );
            return Err(ProviderError::RateLimited {
                provider,
                operation,
                retry_after: None,
            });
        }

        let url = self.url_for(&request)?;
        let timeout = request.timeout.unwrap_or(self.timeout);
        let mut builder = self
            .client
            .request(request.method.clone(), url)
            .headers(request.headers)
            .timeout(timeout);
        if let Some(body) = request.body {
            builder = builder.body(body);
        }

        let outcome = match builder.send().await {
            Ok(mut response) => {
                let status = response.status();
                let headers = std::mem::take(response.headers_mut());
                match self
                    .read_body(&mut response, status, effect, operation)
                    .await
                {
                    Ok(body) => Ok(HttpResponse {
                        provider,
                        operation,
                        effect,
                        status,
                        headers,
                        body,
                    }),
                    Err(BodyError::TooLarge) => Err(ProviderError::Protocol {
                        provider,
                        operation,
                        reason: format!(
                            "{} answer larger than {} bytes",
                            status.as_u16(),
                            self.max_response_bytes
                        ),
                        effect_possible: effect == Effect::Effectful && status.is_success(),
                    }),
                    // An error status is classified by its status even if its body broke.
                    Err(BodyError::Broken(partial)) if !status.is_success() => Ok(HttpResponse {
                        provider,
                        operation,
                        effect,
                        status,
                        headers,
                        body: partial,
                    }),
                    Err(BodyError::Broken(_)) => Err(self.lost(
                        operation,
                        effect,
                        "the connection broke while reading the answer".to_owned(),
                    )),
                    Err(BodyError::TimedOut) => Err(self.timed_out(operation, effect, timeout)),
                }
            }
            Err(e) => Err(self.classify_send_error(operation, effect, timeout, &e)),
        };

        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match &outcome {
            Ok(r) => tracing::debug!(
                %provider, %operation, method = %request.method, path = request.path_template,
                status = r.status.as_u16(), elapsed_ms, "provider call"
            ),
            Err(e) => tracing::debug!(
                %provider, %operation, method = %request.method, path = request.path_template,
                class = ?e.class(), elapsed_ms, "provider call failed without an answer"
            ),
        }
        outcome
    }

    fn url_for(&self, request: &ProviderRequest) -> Result<Url, ProviderError> {
        // Concatenate rather than `Url::join`, which would drop a base path prefix.
        let base = self.base_url.as_str().trim_end_matches('/');
        let path = request.path.trim_start_matches('/');
        let mut url = Url::parse(&format!("{base}/{path}")).map_err(|e| ProviderError::Config {
            provider: self.provider,
            operation: request.operation,
            reason: format!("cannot build the URL for {}: {e}", request.path_template),
        })?;
        if !request.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&request.query);
        }
        Ok(url)
    }

    async fn read_body(
        &self,
        response: &mut reqwest::Response,
        status: StatusCode,
        effect: Effect,
        operation: Operation,
    ) -> Result<Bytes, BodyError> {
        if response
            .content_length()
            .is_some_and(|len| len > self.max_response_bytes as u64)
        {
            return Err(BodyError::TooLarge);
        }
        let mut body = BytesMut::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > self.max_response_bytes {
                        return Err(BodyError::TooLarge);
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body.freeze()),
                Err(e) if e.is_timeout() => {
                    tracing::debug!(provider = %self.provider, %operation, status = status.as_u16(),
                        ?effect, "timed out reading the answer");
                    return Err(BodyError::TimedOut);
                }
                Err(_) => return Err(BodyError::Broken(body.freeze())),
            }
        }
    }

    fn classify_send_error(
        &self,
        operation: Operation,
        effect: Effect,
        timeout: Duration,
        error: &reqwest::Error,
    ) -> ProviderError {
        let provider = self.provider;
        if error.is_builder() {
            return ProviderError::Config {
                provider,
                operation,
                reason: format!("cannot build the request: {}", error_chain(error)),
            };
        }
        // Checked before the timeout: a connect timeout is also a timeout, but nothing was
        // sent.
        if error.is_connect() {
            return ProviderError::Transport {
                provider,
                operation,
                reason: format!("connect failed: {}", error_chain(error)),
            };
        }
        if error.is_timeout() {
            return self.timed_out(operation, effect, timeout);
        }
        self.lost(
            operation,
            effect,
            format!(
                "the connection broke before the answer: {}",
                error_chain(error)
            ),
        )
    }

    fn timed_out(&self, operation: Operation, effect: Effect, timeout: Duration) -> ProviderError {
        match effect {
            Effect::Effectful => ProviderError::OutcomeUnknown {
                provider: self.provider,
                operation,
                reason: format!("no complete answer within {} ms", timeout.as_millis()),
            },
            Effect::ReadOnly => ProviderError::Unavailable {
                provider: self.provider,
                operation,
                status: None,
                retry_after: None,
            },
        }
    }

    fn lost(&self, operation: Operation, effect: Effect, reason: String) -> ProviderError {
        match effect {
            Effect::Effectful => ProviderError::OutcomeUnknown {
                provider: self.provider,
                operation,
                reason,
            },
            Effect::ReadOnly => ProviderError::Unavailable {
                provider: self.provider,
                operation,
                status: None,
                retry_after: None,
            },
        }
    }
}

enum BodyError {
    TooLarge,
    TimedOut,
    Broken(Bytes),
}

/// The error chain of a reqwest error without its URL (which may carry an MSISDN), bounded.
fn error_chain(error: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
    while let Some(e) = source {
        if parts.len() >= 4 {
            break;
        }
        parts.push(e.to_string());
        source = e.source();
    }
    if parts.is_empty() {
        parts.push(if error.is_request() {
            "request error".to_owned()
        } else {
            "transport error".to_owned()
        });
    }
    sanitize_message(&parts.join(": "))
}

/// Classifies a non-success answer by the shared table in the [module docs](self).
pub fn classify_status(
    provider: Provider,
    operation: Operation,
    effect: Effect,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> ProviderError {
    let message = || {
        extract_message(body)
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("no message").to_owned())
    };
    let retry_after = || retry_after(headers, SystemTime::now());
    match status.as_u16() {
        401 | 403 | 407 => ProviderError::Auth {
            provider,
            operation,
            status,
            message: message(),
        },
        408 => ProviderError::Unavailable {
            provider,
            operation,
            status: Some(status),
            retry_after: retry_after(),
        },
        409 => ProviderError::Conflict {
            provider,
            operation,
            message: message(),
        },
        429 => ProviderError::RateLimited {
            provider,
            operation,
            retry_after: retry_after(),
        },
        500 | 502 | 503 => ProviderError::Unavailable {
            provider,
            operation,
            status: Some(status),
            retry_after: retry_after(),
        },
        501 | 505 => ProviderError::Rejected {
            provider,
            operation,
            status: Some(status),
            message: message(),
        },
        400..=499 => ProviderError::Rejected {
            provider,
            operation,
            status: Some(status),
            message: message(),
        },
        500..=599 => match effect {
            Effect::Effectful => ProviderError::OutcomeUnknown {
                provider,
                operation,
                reason: format!("the provider answered {status}"),
            },
            Effect::ReadOnly => ProviderError::Unavailable {
                provider,
                operation,
                status: Some(status),
                retry_after: retry_after(),
            },
        },
        _ => ProviderError::Protocol {
            provider,
            operation,
            reason: format!("unexpected status {status}"),
            effect_possible: false,
        },
    }
}

/// Parses `Retry-After`: delay-seconds or an HTTP-date (IMF-fixdate); clamped to
/// [`MAX_RETRY_AFTER`]. A date in the past gives zero.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let delay = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
        let at = SystemTime::from(at);
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// The provider's message in an error body: the first string among the usual fields
/// (`message`, `moreInformation`, `httpMessage`, `error_description`, `title`, `detail`,
/// `error`, `errorMessage`, `msg`, also inside an `error` object), or a short plain-text body.
/// Sanitized.
pub fn extract_message(body: &[u8]) -> Option<String> {
    const FIELDS: [&str; 9] = [
        "message",
        "moreInformation",
        "httpMessage",
        "error_description",
        "title",
        "detail",
        "errorMessage",
        "msg",
        "error",
    ];
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => {
            let direct = FIELDS
                .iter()
                .find_map(|f| map.get(*f).and_then(|v| v.as_str()));
            let nested = || {
                map.get("error")
                    .and_then(|e| e.get("message"))
                    .and_then(|v| v.as_str())
            };
            direct
                .or_else(nested)
                .filter(|m| !m.trim().is_empty())
                .map(sanitize_message)
        }
        Ok(_) => None,
        Err(_) => {
            let text = std::str::from_utf8(body).ok()?.trim();
            (!text.is_empty() && text.len() <= 200 && !text.starts_with('<'))
                .then(|| sanitize_message(text))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::Router;
    use axum::routing::{get, post};

    use super::*;

    const OP: Operation = Operation::new("test.op");

    fn headers_with(name: HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn retry_after_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 2015-10-21 07:28:00 UTC
        assert_eq!(
            retry_after(&headers_with(RETRY_AFTER, "120"), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_after(
                &headers_with(RETRY_AFTER, "Wed, 21 Oct 2015 07:28:30 GMT"),
                now
            ),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after(
                &headers_with(RETRY_AFTER, "Wed, 21 Oct 2015 07:00:00 GMT"),
                now
            ),
            Some(Duration::ZERO)
        );
        assert_eq!(
            retry_after(&headers_with(RETRY_AFTER, "99999999"), now),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(retry_after(&headers_with(RETRY_AFTER, "soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn status_table() {
        let p = Provider::Reach;
        let h = headers_with(RETRY_AFTER, "2");
        let body = br#"{"message":"nope"}"#;
        let c = |s: u16, e| classify_status(p, OP, e, StatusCode::from_u16(s).unwrap(), &h, body);
        use Effect::{Effectful as E, ReadOnly as R};
        assert!(
            matches!(c(400, E), ProviderError::Rejected { ref message, .. } if message == "nope")
        );
        assert!(matches!(c(404, R), ProviderError::Rejected { .. }));
        assert!(matches!(c(406, E), ProviderError::Rejected { .. }));
        assert!(matches!(c(401, E), ProviderError::Auth { .. }));
        assert!(matches!(c(403, R), ProviderError::Auth { .. }));
        assert!(matches!(c(409, E), ProviderError::Conflict { .. }));
        assert!(matches!(
            c(429, E),
            ProviderError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(2)
        ));
        for s in [500, 502, 503] {
            assert!(matches!(c(s, E), ProviderError::Unavailable { .. }), "{s}");
        }
        assert!(matches!(c(504, E), ProviderError::OutcomeUnknown { .. }));
        assert!(matches!(c(504, R), ProviderError::Unavailable { .. }));
        assert!(matches!(
            c(302, E),
            ProviderError::Protocol {
                effect_possible: false,
                ..
            }
        ));
    }

    #[test]
    fn messages_come_from_the_usual_fields_and_are_sanitized() {
        assert_eq!(
            extract_message(br#"{"httpCode":"401","httpMessage":"Unauthorized","moreInformation":"Client id not registered."}"#),
            Some("Client id not registered.".to_owned())
        );
        assert_eq!(
            extract_message(br#"{"error":{"message":"0712755777 barred"}}"#),
            Some("07******77 barred".to_owned())
        );
        assert_eq!(
            extract_message(b"plain failure"),
            Some("plain failure".to_owned())
        );
        assert_eq!(extract_message(b"<html>oops</html>"), None);
        assert_eq!(extract_message(b"[]"), None);
    }

    async fn serve(router: Router) -> Url {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Url::parse(&format!("http://{addr}/prefix/")).unwrap()
    }

    fn settings(timeout_ms: u64) -> HttpSettings {
        HttpSettings {
            timeout_ms,
            ..HttpSettings::default()
        }
    }

    #[tokio::test]
    async fn keeps_the_base_path_and_adds_the_query() {
        let router = Router::new().route(
            "/prefix/things/{id}",
            get(
                |axum::extract::RawQuery(q): axum::extract::RawQuery| async move {
                    q.unwrap_or_default()
                },
            ),
        );
        let base = serve(router).await;
        let client = HttpClient::new(Provider::Reach, &base, &settings(2_000)).unwrap();
        let req = client
            .get(OP, "/things/{id}")
            .path("/things/42")
            .query("mdn", "0712755777");
        let resp = client.send(req).await.unwrap();
        assert_eq!(resp.body().as_ref(), b"mdn=0712755777");
    }

    #[tokio::test]
    async fn timeouts_depend_on_the_effect() {
        let router = Router::new().route(
            "/prefix/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                "late"
            }),
        );
        let base = serve(router).await;
        let client = HttpClient::new(Provider::Reach, &base, &settings(100)).unwrap();
        let e = client
            .send(client.post(OP, "/slow", Effect::Effectful))
            .await
            .unwrap_err();
        assert!(matches!(e, ProviderError::OutcomeUnknown { .. }), "{e:?}");
        let e = client
            .send(client.post(OP, "/slow", Effect::ReadOnly))
            .await
            .unwrap_err();
        assert!(
            matches!(e, ProviderError::Unavailable { status: None, .. }),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn connect_failure_is_transport() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let base = Url::parse(&format!("http://{addr}/")).unwrap();
        let client = HttpClient::new(Provider::Reach, &base, &settings(1_000)).unwrap();
        let e = client
            .send(client.post(OP, "/x", Effect::Effectful))
            .await
            .unwrap_err();
        assert!(matches!(e, ProviderError::Transport { .. }), "{e:?}");
        assert!(!e.to_string().contains(&addr.to_string()), "{e}");
    }

    #[tokio::test]
    async fn a_body_cut_mid_answer_depends_on_the_effect_and_the_status() {
        // Head and first chunk go out, then the body fails: the connection is cut mid-answer.
        fn broken(status: StatusCode) -> axum::response::Response {
            let chunks = futures::stream::unfold(0u8, |step| async move {
                match step {
                    0 => Some((Ok(Bytes::from_static(b"{\"reference\":")), 1)),
                    1 => {
                        // Long enough for the head and first chunk to be flushed.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Some((Err(std::io::Error::other("backend crashed mid-answer")), 2))
                    }
                    _ => None,
                }
            });
            (status, axum::body::Body::from_stream(chunks)).into_response()
        }
        use axum::response::IntoResponse;
        let router = Router::new()
            .route("/prefix/ok", post(|| async { broken(StatusCode::OK) }))
            .route(
                "/prefix/busy",
                post(|| async { broken(StatusCode::SERVICE_UNAVAILABLE) }),
            );
        let base = serve(router).await;
        let client = HttpClient::new(Provider::Reach, &base, &settings(2_000)).unwrap();

        let e = client
            .send(client.post(OP, "/ok", Effect::Effectful))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ProviderError::OutcomeUnknown { reason, .. } if reason.contains("while reading the answer")),
            "{e:?}"
        );
        let e = client
            .send(client.post(OP, "/ok", Effect::ReadOnly))
            .await
            .unwrap_err();
        assert!(
            matches!(e, ProviderError::Unavailable { status: None, .. }),
            "{e:?}"
        );
        // An error status stays what it says, even with a broken body.
        let e = client
            .send(client.post(OP, "/busy", Effect::Effectful))
            .await
            .unwrap_err();
        assert!(
            matches!(e, ProviderError::Unavailable { status: Some(s), .. } if s == 503),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn an_unparseable_success_answer_may_have_taken_effect_and_is_not_echoed() {
        let router = Router::new().route(
            "/prefix/odd",
            post(|| async { r#"{"count":"0712755777"}"# }),
        );
        let base = serve(router).await;
        let client = HttpClient::new(Provider::Reach, &base, &settings(2_000)).unwrap();
        #[derive(Debug, serde::Deserialize)]
        struct Expected {
            #[expect(dead_code, reason = "only the parse failure matters")]
            count: u64,
        }
        let answer = client
            .send(client.post(OP, "/odd", Effect::Effectful))
            .await
            .unwrap();
        let e = answer.json::<Expected>().unwrap_err();
        assert!(
            matches!(
                e,
                ProviderError::Protocol {
                    effect_possible: true,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.class(), crate::ErrorClass::OutcomeUnknown);
        assert!(!format!("{e} {e:?}").contains("0712755777"), "{e:?}");
    }

    #[tokio::test]
    async fn oversized_success_body_is_a_protocol_error_with_possible_effect() {
        let router = Router::new().route("/prefix/big", post(|| async { "x".repeat(4096) }));
        let base = serve(router).await;
        let mut s = settings(2_000);
        s.max_response_bytes = 1024;
        let client = HttpClient::new(Provider::Reach, &base, &s).unwrap();
        let e = client
            .send(client.post(OP, "/big", Effect::Effectful))
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                ProviderError::Protocol {
                    effect_possible: true,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn client_side_limiter_bounds_the_wait() {
        let router = Router::new().route("/prefix/ok", get(|| async { "ok" }));
        let base = serve(router).await;
        let client = HttpClient::new(Provider::Reach, &base, &settings(2_000))
            .unwrap()
            .with_rate_limiter(SharedRateLimiter::new(
                NonZeroU32::MIN,
                NonZeroU32::MIN,
                Duration::from_millis(50),
            ));
        client.send(client.get(OP, "/ok")).await.unwrap();
        let e = client.send(client.get(OP, "/ok")).await.unwrap_err();
        assert!(
            matches!(
                e,
                ProviderError::RateLimited {
                    retry_after: None,
                    ..
                }
            ),
            "{e:?}"
        );
    }
}
