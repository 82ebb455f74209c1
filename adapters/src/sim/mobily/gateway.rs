//! The simulated Apigee gateway in front of every Mobily product: `apikey` and JWT checks,
//! the two token endpoints, Apigee's error bodies, and the wrapper every endpoint runs in
//! (authentication, fault plan, idempotent replay, callbacks).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use futures::future::BoxFuture;
use http::header::{AUTHORIZATION, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, StatusCode};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tokio::time::Instant;

use super::SimState;
use super::world::Fail;
use crate::mobily::{codes, headers};
use crate::redact::scrub_parser_message;
use crate::sim::callback::Callback;
use crate::sim::fault::{FaultWire, answer_fault};
use crate::sim::server::{ConnHandle, lock};

/// Most live tokens remembered; the oldest are forgotten (and then refused).
const MAX_TOKENS: usize = 10_000;
/// Most idempotent answers remembered.
pub(crate) const MAX_REPLIES: usize = 100_000;

#[derive(Debug)]
struct TokenRecord {
    expires: Instant,
    revoked: bool,
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenProblem {
    Unknown,
    Expired,
}

/// The JWTs the gateway issued.
#[derive(Debug)]
pub(crate) struct TokenBook {
    tokens: HashMap<String, TokenRecord>,
    order: VecDeque<String>,
    rng: StdRng,
    pub issued: u64,
}

impl TokenBook {
    pub fn new(seed: u64) -> Self {
        Self {
            tokens: HashMap::new(),
            order: VecDeque::new(),
            rng: StdRng::seed_from_u64(seed ^ 0x6a77),
            issued: 0,
        }
    }

    /// A JWT-shaped token (`header.payload.signature`, base64url) living `lifetime`.
    pub fn issue(
        &mut self,
        client_id: &str,
        issuer: &str,
        lifetime: Duration,
        now: Instant,
    ) -> String {
        while self.tokens.len() >= MAX_TOKENS {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.tokens.remove(&oldest);
        }
        self.issued += 1;
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": "handover-sim"});
        let payload = json!({
            "iss": issuer, "azp": client_id, "sub": client_id, "iat": iat,
            "exp": iat + lifetime.as_secs(), "jti": format!("sim-{}", self.issued),
        });
        let signature: Vec<u8> = (0..32).map(|_| self.rng.random::<u8>()).collect();
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string()),
            URL_SAFE_NO_PAD.encode(signature)
        );
        self.tokens.insert(
            token.clone(),
            TokenRecord {
                expires: now + lifetime,
                revoked: false,
            },
        );
        self.order.push_back(token.clone());
        token
    }

    pub fn check(&self, token: &str, now: Instant) -> Result<(), TokenProblem> {
        match self.tokens.get(token) {
            None => Err(TokenProblem::Unknown),
            Some(t) if t.revoked || now >= t.expires => Err(TokenProblem::Expired),
            Some(_) => Ok(()),
        }
    }

    /// Every issued token is expired from now on.
    pub fn expire_all(&mut self) {
        for t in self.tokens.values_mut() {
            t.revoked = true;
        }
    }
}

/// An Apigee fault body.
pub(crate) fn fault(status: StatusCode, faultstring: &str, errorcode: &str) -> Response {
    (
        status,
        axum::Json(json!({ "fault": { "faultstring": faultstring, "detail": { "errorcode": errorcode } } })),
    )
        .into_response()
}

/// Apigee's error shapes for injected failures; business refusals are Mobily's
/// `{"code", "message"}` with HTTP 200.
pub(crate) struct Wire;

impl FaultWire for Wire {
    fn error(&self, status: StatusCode, retry_after_secs: Option<u64>) -> Response {
        let (text, code) = match status {
            StatusCode::TOO_MANY_REQUESTS => (
                "Rate limit quota violation. Quota limit exceeded.",
                "policies.ratelimit.QuotaViolation",
            ),
            StatusCode::BAD_GATEWAY => (
                "Bad Gateway",
                "messaging.adaptors.http.flow.ErrorResponseCode",
            ),
            StatusCode::SERVICE_UNAVAILABLE => (
                "The Service is temporarily unavailable",
                "messaging.adaptors.http.flow.ServiceUnavailable",
            ),
            StatusCode::GATEWAY_TIMEOUT => (
                "Gateway Timeout",
                "messaging.adaptors.http.flow.GatewayTimeout",
            ),
            _ => (
                "Internal server error",
                "messaging.runtime.InternalServerError",
            ),
        };
        let mut response = fault(status, text, code);
        if let Some(secs) = retry_after_secs {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }

    fn refusal(&self, code: &str, message: &str) -> Response {
        axum::Json(json!({ "code": code, "message": message })).into_response()
    }
}

/// A success answer: `{"code": "0000", "message": "Success"}` merged with `fields`.
pub(crate) fn ok(fields: Value) -> Value {
    let mut body = json!({ "code": codes::SUCCESS, "message": "Success" });
    if let (Some(out), Value::Object(extra)) = (body.as_object_mut(), fields) {
        out.extend(extra);
    }
    body
}

/// A business answer (HTTP 200) with a non-success code and extra fields.
pub(crate) fn business(code: &str, message: &str, fields: Value) -> Response {
    let mut body = json!({ "code": code, "message": message });
    if let (Some(out), Value::Object(extra)) = (body.as_object_mut(), fields) {
        out.extend(extra);
    }
    axum::Json(body).into_response()
}

pub(crate) fn json_response(body: Value) -> Response {
    axum::Json(body).into_response()
}

pub(crate) fn fail_response(fail: Fail) -> Response {
    match fail {
        Fail::Invalid(m) => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "code": codes::INVALID_REQUEST, "message": m })),
        )
            .into_response(),
        Fail::NotFound(m) => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "code": codes::NOT_FOUND, "message": m })),
        )
            .into_response(),
        Fail::Refused(code, m) => business(code, &m, Value::Null),
    }
}

/// One request as a handler sees it.
pub(crate) struct Call {
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Call {
    /// The body, parsed strictly into a wire type.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Fail> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Fail::invalid(format!(
                "invalid body: {}",
                scrub_parser_message(&e.to_string())
            ))
        })
    }

    /// The `X-Idempotency-Key` header, required on effectful calls.
    pub fn key(&self) -> Result<String, Fail> {
        let key = self
            .headers
            .get(headers::IDEMPOTENCY_KEY)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Fail::invalid("X-Idempotency-Key is required"))?;
        crate::mobily::IdempotencyKey::new(key)
            .map(|k| k.as_str().to_owned())
            .map_err(|_| Fail::invalid("X-Idempotency-Key is invalid"))
    }

    /// The last path segment (`{orderId}`, `{refId}`).
    pub fn last_segment(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or_default()
    }
}

/// What a handler produced: the answer and the callbacks its effect causes.
pub(crate) struct Reply {
    pub response: Response,
    pub callbacks: Vec<Callback>,
}

impl From<Response> for Reply {
    fn from(response: Response) -> Self {
        Self {
            response,
            callbacks: Vec::new(),
        }
    }
}

impl From<Result<Response, Fail>> for Reply {
    fn from(result: Result<Response, Fail>) -> Self {
        result.unwrap_or_else(fail_response).into()
    }
}

/// A handler body: runs with the world at hand, returns the answer.
pub(crate) type Process = fn(&Arc<SimState>, &Call) -> Reply;

/// Which credentials an endpoint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Auth {
    /// `apikey` only (the token endpoints).
    Apikey,
    /// `apikey` and a valid JWT.
    Jwt,
}

/// Checks the gateway credentials; `Some(refusal)` when they are wrong.
fn deny(state: &SimState, call: &Call, auth: Auth) -> Option<Response> {
    let Some(given) = call.headers.get(headers::APIKEY) else {
        return Some(fault(
            StatusCode::UNAUTHORIZED,
            "Failed to resolve API Key variable request.header.apikey",
            "steps.oauth.v2.FailedToResolveAPIKey",
        ));
    };
    if !bool::from(
        given
            .as_bytes()
            .ct_eq(state.apikey.expose_secret().as_bytes()),
    ) {
        return Some(fault(
            StatusCode::UNAUTHORIZED,
            "Invalid ApiKey",
            "oauth.v2.InvalidApiKey",
        ));
    }
    if state.behaviour().apikey_blocked {
        return Some(fault(
            StatusCode::FORBIDDEN,
            "Invalid API call as no apiproduct match found",
            "keymanagement.service.InvalidAPICallAsNoApiProductMatchFound",
        ));
    }
    if auth == Auth::Apikey {
        return None;
    }
    let bearer = call
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = bearer else {
        return Some(fault(
            StatusCode::UNAUTHORIZED,
            "Invalid access token",
            "oauth.v2.InvalidAccessToken",
        ));
    };
    match lock(&state.tokens).check(token.trim(), Instant::now()) {
        Ok(()) => None,
        Err(TokenProblem::Expired) => Some(fault(
            StatusCode::UNAUTHORIZED,
            "Access Token expired",
            "keymanagement.service.access_token_expired",
        )),
        Err(TokenProblem::Unknown) => Some(fault(
            StatusCode::UNAUTHORIZED,
            "Invalid Access Token",
            "keymanagement.service.invalid_access_token",
        )),
    }
}

/// An axum handler for one endpoint: gateway checks, then the fault plan (before or after
/// the effect), then `process`, then its callbacks.
pub(crate) fn api(
    endpoint: &'static str,
    auth: Auth,
    process: Process,
) -> impl Fn(
    State<Arc<SimState>>,
    ConnectInfo<ConnHandle>,
    Uri,
    HeaderMap,
    Bytes,
) -> BoxFuture<'static, Response>
+ Clone
+ Send
+ Sync
+ 'static {
    move |State(state), ConnectInfo(conn), uri, headers, body| {
        let call = Call {
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            headers,
            body,
        };
        Box::pin(async move {
            if let Some(denied) = deny(&state, &call, auth) {
                return denied;
            }
            match state.faults.next(endpoint) {
                Some(f) if !f.after_effect() => answer_fault(&f, &conn, None, &Wire).await,
                Some(f) => {
                    let normal = run(&state, &call, process).await;
                    answer_fault(&f, &conn, Some(normal), &Wire).await
                }
                None => run(&state, &call, process).await,
            }
        })
    }
}

async fn run(state: &Arc<SimState>, call: &Call, process: Process) -> Response {
    let reply = process(state, call);
    for callback in reply.callbacks {
        state.sender.emit(callback).await;
    }
    reply.response
}

/// Runs an effectful call once per (endpoint, key): a repeat gets the first success answer
/// again, without running `apply`.
pub(crate) fn once(
    state: &SimState,
    endpoint: &'static str,
    key: &str,
    apply: impl FnOnce(&mut super::world::World) -> Result<Value, Fail>,
) -> Response {
    let mut world = lock(&state.world);
    let slot = (endpoint, key.to_owned());
    if let Some(previous) = world.replies.get(&slot) {
        return json_response(previous.clone());
    }
    match apply(&mut world) {
        Ok(body) => {
            if world.replies.len() >= MAX_REPLIES {
                world.replies.clear();
            }
            world.replies.insert(slot, body.clone());
            json_response(body)
        }
        Err(fail) => fail_response(fail),
    }
}

// ---------------------------------------------------------------------------------------
// Token endpoints
// ---------------------------------------------------------------------------------------

fn client_ok(state: &SimState, client_id: &str, secret: &str) -> bool {
    let id_ok = client_id.as_bytes().ct_eq(state.client_id.as_bytes());
    let secret_ok = secret
        .as_bytes()
        .ct_eq(state.client_secret.expose_secret().as_bytes());
    bool::from(id_ok & secret_ok)
}

fn issue(state: &SimState, client_id: &str, path: &str) -> (String, u64) {
    let lifetime = state.behaviour().token_lifetime.max(Duration::from_secs(1));
    let issuer = format!(
        "{}{}",
        state.base_url().as_str().trim_end_matches('/'),
        path
    );
    let token = lock(&state.tokens).issue(client_id, &issuer, lifetime, Instant::now());
    (token, lifetime.as_secs())
}

/// `POST /apis/apigee-oauth/access-token?grant_type=client_credentials` with Basic auth.
pub(crate) fn apigee_token(state: &Arc<SimState>, call: &Call) -> Reply {
    let grant = call
        .query
        .as_deref()
        .and_then(|q| url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "grant_type"))
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if grant != "client_credentials" {
        let body = json!({ "ErrorCode": "invalid_request", "Error": "Unsupported grant type : " });
        return (StatusCode::BAD_REQUEST, axum::Json(body))
            .into_response()
            .into();
    }
    let credentials = call
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|d| String::from_utf8(d).ok());
    let Some((id, secret)) = credentials.as_deref().and_then(|c| c.split_once(':')) else {
        let body = json!({ "ErrorCode": "invalid_client", "Error": "ClientId is Invalid" });
        return (StatusCode::UNAUTHORIZED, axum::Json(body))
            .into_response()
            .into();
    };
    if !client_ok(state, id, secret) {
        let body = json!({ "ErrorCode": "invalid_client", "Error": "ClientId is Invalid" });
        return (StatusCode::UNAUTHORIZED, axum::Json(body))
            .into_response()
            .into();
    }
    let (token, secs) = issue(state, id, &call.path);
    let issued_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    json_response(json!({
        "access_token": token, "token_type": "BearerToken", "expires_in": secs.to_string(),
        "issued_at": issued_at.to_string(), "client_id": id, "status": "approved", "scope": "",
    }))
    .into()
}

/// `POST /auth/realms/mobily/protocol/openid-connect/token` with a form body (Keycloak).
pub(crate) fn keycloak_token(state: &Arc<SimState>, call: &Call) -> Reply {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&call.body)
        .into_owned()
        .collect();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        let body = json!({ "error": "unsupported_grant_type", "error_description": "Unsupported grant_type" });
        return (StatusCode::BAD_REQUEST, axum::Json(body))
            .into_response()
            .into();
    }
    let id = form
        .get("client_id")
        .map(String::as_str)
        .unwrap_or_default();
    let secret = form
        .get("client_secret")
        .map(String::as_str)
        .unwrap_or_default();
    if !client_ok(state, id, secret) {
        let body = json!({ "error": "unauthorized_client", "error_description": "Invalid client or Invalid client credentials" });
        return (StatusCode::UNAUTHORIZED, axum::Json(body))
            .into_response()
            .into();
    }
    let (token, secs) = issue(state, id, &call.path);
    json_response(json!({
        "access_token": token, "expires_in": secs, "refresh_expires_in": 0,
        "token_type": "Bearer", "not-before-policy": 0, "scope": "profile email",
    }))
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire_and_can_be_revoked() {
        let mut book = TokenBook::new(1);
        let t0 = Instant::now();
        let token = book.issue("c", "http://sim/", Duration::from_secs(10), t0);
        assert_eq!(token.split('.').count(), 3);
        let payload = URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap();
        let payload: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(payload["azp"], "c");
        assert_eq!(book.check(&token, t0), Ok(()));
        assert_eq!(
            book.check(&token, t0 + Duration::from_secs(10)),
            Err(TokenProblem::Expired)
        );
        assert_eq!(book.check("nope", t0), Err(TokenProblem::Unknown));
        let other = book.issue("c", "http://sim/", Duration::from_secs(10), t0);
        assert_ne!(token, other);
        book.expire_all();
        assert_eq!(book.check(&other, t0), Err(TokenProblem::Expired));
        assert_eq!(book.issued, 2);
    }

    #[test]
    fn success_bodies_carry_code_and_fields() {
        assert_eq!(
            ok(json!({"x": 1})),
            json!({"code": "0000", "message": "Success", "x": 1})
        );
    }
}
