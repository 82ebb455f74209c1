//! Reach authentication (guide 1.2) and the per-API-key rate limiter (guide 2.4).
//!
//! Every request carries `Authorization: Basic base64("clientapi|" + JWT)` (standard Base64
//! with padding, no spaces) and `x-api-key`. The header is built by
//! [`basic_authorization`] from a [`JwtSource`] and kept in the shared
//! [`TokenCache`](crate::token::TokenCache); on a 401 the cache drops it and builds it again
//! from the source ("Rebuild auth header; rotate token if needed", guide 5), so a JWT rotated
//! in the source is picked up by the one retry.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};

use crate::config::ReachConfig;
use crate::error::{Operation, Provider, ProviderError};
use crate::http::SharedRateLimiter;
use crate::token::{FreshToken, RefreshToken};

/// The literal prefix of the encoded credential (guide 1.2, step 2).
pub const AUTH_PREFIX: &str = "clientapi|";

/// How long a built header is reused before it is rebuilt from the [`JwtSource`], so a
/// rotated JWT is picked up within this time even without a 401.
pub const HEADER_TTL: Duration = Duration::from_secs(3600);

/// Most distinct API keys one [`ApiKeyLimiters`] tracks.
pub const MAX_API_KEYS: usize = 64;

const AUTH: Operation = Operation::new("reach.auth");

/// The `Authorization` header value for a JWT: `Basic ` + standard Base64 (with padding) of
/// `clientapi|<jwt>`, exactly as guide 1.2 builds it.
///
/// ```
/// use handover_adapters::reach::basic_authorization;
/// use secrecy::{ExposeSecret, SecretString};
/// // The guide's own example (section 1.2, steps 1 to 4).
/// let header = basic_authorization(&SecretString::from("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9..."));
/// assert_eq!(
///     header.expose_secret(),
///     "Basic Y2xpZW50YXBpfGV5SmhiR2NpT2lKSVV6STFOaUlzSW5SNWNDSTZJa3BYVkNKOS4uLg=="
/// );
/// ```
pub fn basic_authorization(jwt: &SecretString) -> SecretString {
    let credential = format!("{AUTH_PREFIX}{}", jwt.expose_secret());
    SecretString::from(format!("Basic {}", STANDARD.encode(credential)))
}

/// Where the client reads the JWT when it (re)builds the header. A plain [`SecretString`]
/// is a fixed JWT; [`RotatingJwt`] can be replaced while the client runs (a secrets-manager
/// watcher, an operator rotating a revoked token).
pub trait JwtSource: Send + Sync {
    /// The JWT to use now.
    fn current_jwt(&self) -> Result<SecretString, ProviderError>;
}

impl JwtSource for SecretString {
    fn current_jwt(&self) -> Result<SecretString, ProviderError> {
        Ok(self.clone())
    }
}

/// A JWT that can be replaced while clients use it. Cheap to clone; clones share the value.
#[derive(Clone)]
pub struct RotatingJwt {
    current: Arc<RwLock<SecretString>>,
}

impl std::fmt::Debug for RotatingJwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RotatingJwt([REDACTED])")
    }
}

impl RotatingJwt {
    /// Starts with `jwt`.
    pub fn new(jwt: SecretString) -> Self {
        Self {
            current: Arc::new(RwLock::new(jwt)),
        }
    }

    /// Replaces the JWT; clients use it from their next header rebuild (on a 401 or after
    /// [`HEADER_TTL`]).
    pub fn rotate(&self, jwt: SecretString) {
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = jwt;
    }
}

impl JwtSource for RotatingJwt {
    fn current_jwt(&self) -> Result<SecretString, ProviderError> {
        Ok(self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone())
    }
}

/// Builds the `Authorization` header for the token cache.
pub(crate) struct HeaderBuilder {
    pub(crate) source: Arc<dyn JwtSource>,
}

impl RefreshToken for HeaderBuilder {
    fn refresh(&self) -> impl Future<Output = Result<FreshToken, ProviderError>> + Send {
        let jwt = self.source.current_jwt();
        async move {
            let jwt = jwt?;
            let value = jwt.expose_secret();
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
                // Never describe the value.
                return Err(ProviderError::Config {
                    provider: Provider::Reach,
                    operation: AUTH,
                    reason: "the JWT is empty or contains spaces or non-ASCII characters"
                        .to_owned(),
                });
            }
            Ok(FreshToken::new(basic_authorization(&jwt), HEADER_TTL))
        }
    }
}

/// Rate limiters by API key: Reach limits per API key (guide 2.4), so every client using
/// one key must draw from one limiter. Build every [`ReachClient`](super::ReachClient) of a
/// process from the same `ApiKeyLimiters`. Cheap to clone; clones share the limiters.
///
/// Keys are remembered only as a keyed hash (never the key itself); at most
/// [`MAX_API_KEYS`] keys.
#[derive(Clone, Default)]
pub struct ApiKeyLimiters {
    inner: Arc<Mutex<Limiters>>,
}

#[derive(Default)]
struct Limiters {
    hasher: RandomState,
    by_key: HashMap<u64, SharedRateLimiter>,
}

impl std::fmt::Debug for ApiKeyLimiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = self.lock().by_key.len();
        f.debug_struct("ApiKeyLimiters")
            .field("api_keys", &keys)
            .finish()
    }
}

impl ApiKeyLimiters {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The limiter of `config.api_key`, created from `config.http` the first time the key
    /// is seen.
    pub fn limiter_for(&self, config: &ReachConfig) -> Result<SharedRateLimiter, ProviderError> {
        let mut limiters = self.lock();
        let fingerprint = limiters
            .hasher
            .hash_one(config.api_key.expose_secret().as_bytes());
        if let Some(limiter) = limiters.by_key.get(&fingerprint) {
            return Ok(limiter.clone());
        }
        if limiters.by_key.len() >= MAX_API_KEYS {
            return Err(ProviderError::Config {
                provider: Provider::Reach,
                operation: AUTH,
                reason: format!("more than {MAX_API_KEYS} distinct API keys in one process"),
            });
        }
        let limiter = SharedRateLimiter::from_settings(&config.http);
        limiters.by_key.insert(fingerprint, limiter.clone());
        Ok(limiter)
    }

    /// How many API keys have a limiter.
    pub fn len(&self) -> usize {
        self.lock().by_key.len()
    }

    /// Whether no limiter was created yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Limiters> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use url::Url;

    use super::*;

    #[test]
    fn the_header_is_the_documented_construction() {
        let header = basic_authorization(&SecretString::from(
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...",
        ));
        assert_eq!(
            header.expose_secret(),
            "Basic Y2xpZW50YXBpfGV5SmhiR2NpT2lKSVV6STFOaUlzSW5SNWNDSTZJa3BYVkNKOS4uLg=="
        );
        // Standard alphabet (`+`, `/`) and padding, never URL-safe.
        let header = basic_authorization(&SecretString::from("a>?b"));
        assert_eq!(header.expose_secret(), "Basic Y2xpZW50YXBpfGE+P2I=");
    }

    #[tokio::test]
    async fn a_rotated_jwt_is_used_by_the_next_rebuild() {
        let jwt = RotatingJwt::new(SecretString::from("old.jwt.value"));
        let builder = HeaderBuilder {
            source: Arc::new(jwt.clone()),
        };
        let first = builder.refresh().await.unwrap();
        jwt.rotate(SecretString::from("new.jwt.value"));
        let second = builder.refresh().await.unwrap();
        assert_eq!(
            second.secret.expose_secret(),
            basic_authorization(&SecretString::from("new.jwt.value")).expose_secret()
        );
        assert_ne!(first.secret.expose_secret(), second.secret.expose_secret());
        assert_eq!(format!("{jwt:?}"), "RotatingJwt([REDACTED])");

        let bad = HeaderBuilder {
            source: Arc::new(SecretString::from("has space")),
        };
        let err = bad.refresh().await.unwrap_err();
        assert!(!err.to_string().contains("has space"), "{err}");
    }

    #[test]
    fn clients_with_one_api_key_share_one_limiter() {
        let base = Url::parse("https://api.reach.example").unwrap();
        let config = |key: &str| {
            ReachConfig::new(
                base.clone(),
                SecretString::from("jwt"),
                SecretString::from(key),
            )
        };
        let limiters = ApiKeyLimiters::new();
        limiters.limiter_for(&config("key-a")).unwrap();
        limiters.limiter_for(&config("key-a")).unwrap();
        assert_eq!(limiters.len(), 1);
        limiters.limiter_for(&config("key-b")).unwrap();
        assert_eq!(limiters.len(), 2);
        assert!(!format!("{limiters:?}").contains("key-a"));
    }
}
