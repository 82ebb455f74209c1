//! An access-token cache shared by every journey calling one provider.
//!
//! Mobily (a JWT from its token endpoint) and Al-Qimah (`access_token` + `token_expires` from
//! an md5 login) both hand out short-lived tokens. [`TokenCache`] keeps the current one and:
//!
//! - returns it while it is valid for at least the refresh *skew* (default 30 s, capped at
//!   half the token's lifetime);
//! - refreshes it otherwise, **one refresh at a time**: concurrent callers wait for the same
//!   refresh and share its result, success or failure, instead of each logging in;
//! - forgets it on [`TokenCache::invalidate`] (after a 401), so the next [`TokenCache::get`]
//!   refreshes; [`TokenCache::with_token`] does "call, on 401 invalidate and call once more".
//!
//! Time is `tokio::time::Instant`, so tests drive expiry with a paused clock.
//!
//! ```no_run
//! # use std::time::Duration;
//! # use handover_adapters::token::{FreshToken, TokenCache};
//! # async fn login() -> Result<FreshToken, handover_adapters::ProviderError> {
//! #     Ok(FreshToken::new("from the login answer".into(), Duration::from_secs(3600)))
//! # }
//! # async fn demo() -> Result<(), handover_adapters::ProviderError> {
//! let cache = TokenCache::new(handover_adapters::Provider::AlQimah, || login());
//! let token = cache.get().await?;
//! // use secrecy::ExposeSecret; token.secret().expose_secret() goes in the `api-token` header.
//! # Ok(()) }
//! ```

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use http::StatusCode;
use secrecy::SecretString;
use tokio::time::Instant;

use crate::error::{Operation, Provider, ProviderError};

/// Default margin before expiry at which a token is refreshed.
pub const DEFAULT_SKEW: Duration = Duration::from_secs(30);

/// Default bound on one refresh call.
pub const DEFAULT_REFRESH_TIMEOUT: Duration = Duration::from_secs(30);

/// What a refresh function returns: the new token and how long it lives.
#[derive(Debug, Clone)]
pub struct FreshToken {
    /// The token itself.
    pub secret: SecretString,
    /// Its lifetime from now.
    pub expires_in: Duration,
}

impl FreshToken {
    /// A token living `expires_in` from now (Mobily: `expires_in` of the token response).
    pub fn new(secret: SecretString, expires_in: Duration) -> Self {
        Self { secret, expires_in }
    }

    /// A token valid until a wall-clock time (Al-Qimah: `token_expires`); a time in the past
    /// gives a token that is refreshed on its next use.
    pub fn until(secret: SecretString, expires_at: SystemTime, now: SystemTime) -> Self {
        Self {
            secret,
            expires_in: expires_at.duration_since(now).unwrap_or(Duration::ZERO),
        }
    }
}

/// A token handed out by the cache. `Debug` shows no secret.
#[derive(Debug, Clone)]
pub struct Token {
    secret: SecretString,
    generation: u64,
    expires_at: Instant,
    /// The lifetime announced by the provider, for capping the skew.
    lifetime: Duration,
}

impl Token {
    /// The token value; expose it only to put it in a header.
    pub fn secret(&self) -> &SecretString {
        &self.secret
    }

    /// When the provider said it expires.
    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }
}

/// Something that fetches a fresh token: a login or token-endpoint call. Implemented for any
/// `Fn() -> impl Future<Output = Result<FreshToken, ProviderError>>`.
pub trait RefreshToken: Send + Sync {
    /// Fetches a new token.
    fn refresh(&self) -> impl Future<Output = Result<FreshToken, ProviderError>> + Send;
}

impl<F, Fut> RefreshToken for F
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = Result<FreshToken, ProviderError>> + Send,
{
    fn refresh(&self) -> impl Future<Output = Result<FreshToken, ProviderError>> + Send {
        self()
    }
}

#[derive(Debug, Default)]
struct State {
    current: Option<Token>,
    /// Incremented when a refresh finishes, successful or not.
    refreshes: u64,
    /// The error of the last refresh, if it failed.
    last_error: Option<ProviderError>,
}

/// A cache of one provider's access token. Share it (in an `Arc`) between all journeys.
pub struct TokenCache<R> {
    provider: Provider,
    refresher: R,
    skew: Duration,
    refresh_timeout: Duration,
    state: Mutex<State>,
    /// Held during a refresh: the single-flight gate.
    gate: tokio::sync::Mutex<()>,
}

impl<R> std::fmt::Debug for TokenCache<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("provider", &self.provider)
            .field("skew", &self.skew)
            .field("refresh_timeout", &self.refresh_timeout)
            .finish_non_exhaustive()
    }
}

const REFRESH: Operation = Operation::new("token.refresh");

impl<R: RefreshToken> TokenCache<R> {
    /// An empty cache; the first [`Self::get`] refreshes.
    pub fn new(provider: Provider, refresher: R) -> Self {
        Self {
            provider,
            refresher,
            skew: DEFAULT_SKEW,
            refresh_timeout: DEFAULT_REFRESH_TIMEOUT,
            state: Mutex::new(State::default()),
            gate: tokio::sync::Mutex::new(()),
        }
    }

    /// Refresh this long before expiry (capped at half of each token's lifetime).
    pub fn with_skew(mut self, skew: Duration) -> Self {
        self.skew = skew;
        self
    }

    /// Give up on a refresh after this long (the refresh fails as `Unavailable`).
    pub fn with_refresh_timeout(mut self, timeout: Duration) -> Self {
        self.refresh_timeout = timeout;
        self
    }

    /// A valid token, refreshing first if needed. Concurrent callers share one refresh.
    pub async fn get(&self) -> Result<Token, ProviderError> {
        let seen = {
            let state = self.lock();
            if let Some(token) = self.usable(&state) {
                return Ok(token);
            }
            state.refreshes
        };

        let _gate = self.gate.lock().await;
        {
            let state = self.lock();
            if let Some(token) = self.usable(&state) {
                return Ok(token);
            }
            // A refresh finished while we queued and failed: share its failure rather than
            // hammering the login endpoint once per waiting journey.
            if state.refreshes != seen
                && let Some(error) = &state.last_error
            {
                return Err(error.clone());
            }
        }

        let result =
            match tokio::time::timeout(self.refresh_timeout, self.refresher.refresh()).await {
                Ok(result) => result,
                Err(_) => Err(ProviderError::Unavailable {
                    provider: self.provider,
                    operation: REFRESH,
                    status: None,
                    retry_after: None,
                }),
            };

        let mut state = self.lock();
        state.refreshes += 1;
        match result {
            Ok(fresh) => {
                let token = Token {
                    secret: fresh.secret,
                    generation: state.refreshes,
                    expires_at: Instant::now() + fresh.expires_in,
                    lifetime: fresh.expires_in,
                };
                tracing::debug!(provider = %self.provider, expires_in_ms = u64::try_from(fresh.expires_in.as_millis()).unwrap_or(u64::MAX), "access token refreshed");
                state.current = Some(token.clone());
                state.last_error = None;
                Ok(token)
            }
            Err(error) => {
                tracing::debug!(provider = %self.provider, class = ?error.class(), "access token refresh failed");
                state.current = None;
                state.last_error = Some(error.clone());
                Err(error)
            }
        }
    }

    /// Forgets `token` after the provider rejected it (401), so the next [`Self::get`]
    /// refreshes. A stale token (already replaced) is ignored, so N journeys invalidating the
    /// same token cause one refresh, not N.
    pub fn invalidate(&self, token: &Token) {
        let mut state = self.lock();
        if state
            .current
            .as_ref()
            .is_some_and(|c| c.generation == token.generation)
        {
            state.current = None;
        }
    }

    /// Runs `call` with a valid token; if the provider answers 401, invalidates the token and
    /// runs `call` once more with a fresh one. A second 401 is returned as is (terminal
    /// `Auth`). A 401 means the request was not processed, so repeating an effectful call
    /// here is safe.
    pub async fn with_token<T, F, Fut>(&self, call: F) -> Result<T, ProviderError>
    where
        F: Fn(Token) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let token = self.get().await?;
        match call(token.clone()).await {
            Err(ProviderError::Auth { status, .. }) if status == StatusCode::UNAUTHORIZED => {
                self.invalidate(&token);
                call(self.get().await?).await
            }
            other => other,
        }
    }

    fn usable(&self, state: &State) -> Option<Token> {
        let token = state.current.as_ref()?;
        let now = Instant::now();
        // Never refresh before half of the token's lifetime is used, so a token living less
        // than twice the skew is still used.
        let margin = self.skew.min(token.lifetime / 2);
        (now + margin < token.expires_at).then(|| token.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this short, non-async lock cannot leave State inconsistent
        // (every update is a single assignment), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use secrecy::ExposeSecret;

    use super::*;

    /// A fake login endpoint: counts calls, answers after `delay` with token "t<n>".
    fn fake(
        calls: Arc<AtomicU32>,
        delay: Duration,
        lifetime: Duration,
        fail: bool,
    ) -> impl Fn()
        -> std::pin::Pin<Box<dyn Future<Output = Result<FreshToken, ProviderError>> + Send>>
    + Send
    + Sync {
        move || {
            let calls = calls.clone();
            Box::pin(async move {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(delay).await;
                if fail {
                    return Err(ProviderError::Auth {
                        provider: Provider::Mobily,
                        operation: REFRESH,
                        status: StatusCode::UNAUTHORIZED,
                        message: "bad client secret".into(),
                    });
                }
                Ok(FreshToken::new(
                    SecretString::from(format!("t{n}")),
                    lifetime,
                ))
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_gets_share_one_refresh() {
        let calls = Arc::new(AtomicU32::new(0));
        let cache = Arc::new(TokenCache::new(
            Provider::Mobily,
            fake(
                calls.clone(),
                Duration::from_millis(100),
                Duration::from_secs(300),
                false,
            ),
        ));
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.get().await })
            })
            .collect();
        for t in tasks {
            let token = t.await.unwrap().unwrap();
            assert_eq!(token.secret().expose_secret(), "t1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn refreshes_before_expiry_with_the_skew() {
        let calls = Arc::new(AtomicU32::new(0));
        let cache = TokenCache::new(
            Provider::AlQimah,
            fake(
                calls.clone(),
                Duration::ZERO,
                Duration::from_secs(300),
                false,
            ),
        )
        .with_skew(Duration::from_secs(30));

        assert_eq!(cache.get().await.unwrap().secret().expose_secret(), "t1");
        tokio::time::advance(Duration::from_secs(260)).await;
        // 40 s left > 30 s skew: still the same token.
        assert_eq!(cache.get().await.unwrap().secret().expose_secret(), "t1");
        tokio::time::advance(Duration::from_secs(15)).await;
        // 25 s left < skew: refreshed ahead of expiry.
        assert_eq!(cache.get().await.unwrap().secret().expose_secret(), "t2");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn short_lived_tokens_are_still_used() {
        let calls = Arc::new(AtomicU32::new(0));
        let cache = TokenCache::new(
            Provider::Mobily,
            fake(
                calls.clone(),
                Duration::ZERO,
                Duration::from_secs(10),
                false,
            ),
        );
        cache.get().await.unwrap();
        cache.get().await.unwrap();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "a 10 s token is not refreshed at once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn invalidate_forces_one_refresh_and_ignores_stale_tokens() {
        let calls = Arc::new(AtomicU32::new(0));
        let cache = TokenCache::new(
            Provider::Mobily,
            fake(
                calls.clone(),
                Duration::ZERO,
                Duration::from_secs(300),
                false,
            ),
        );
        let first = cache.get().await.unwrap();
        cache.invalidate(&first);
        let second = cache.get().await.unwrap();
        assert_eq!(second.secret().expose_secret(), "t2");
        // Another journey reports the same old token: no new refresh.
        cache.invalidate(&first);
        assert_eq!(cache.get().await.unwrap().secret().expose_secret(), "t2");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_share_a_failed_refresh() {
        let calls = Arc::new(AtomicU32::new(0));
        let cache = Arc::new(TokenCache::new(
            Provider::Mobily,
            fake(
                calls.clone(),
                Duration::from_millis(100),
                Duration::from_secs(300),
                true,
            ),
        ));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.get().await })
            })
            .collect();
        for t in tasks {
            assert!(matches!(t.await.unwrap(), Err(ProviderError::Auth { .. })));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // A later call tries again.
        assert!(cache.get().await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn with_token_retries_once_after_a_401() {
        let calls = Arc::new(AtomicU32::new(0));
        let cache = TokenCache::new(
            Provider::Mobily,
            fake(
                calls.clone(),
                Duration::ZERO,
                Duration::from_secs(300),
                false,
            ),
        );
        let attempts = AtomicU32::new(0);
        let used = cache
            .with_token(|token| {
                let n = attempts.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        Err(ProviderError::Auth {
                            provider: Provider::Mobily,
                            operation: REFRESH,
                            status: StatusCode::UNAUTHORIZED,
                            message: "expired".into(),
                        })
                    } else {
                        Ok(token.secret().expose_secret().to_owned())
                    }
                }
            })
            .await
            .unwrap();
        assert_eq!(used, "t2");
        assert_eq!(attempts.load(Ordering::SeqCst), 2);

        // Two 401s in a row: the second is returned, no third attempt.
        let attempts = AtomicU32::new(0);
        let result: Result<(), _> = cache
            .with_token(|_| {
                attempts.fetch_add(1, Ordering::SeqCst);
                async {
                    Err(ProviderError::Auth {
                        provider: Provider::Mobily,
                        operation: REFRESH,
                        status: StatusCode::UNAUTHORIZED,
                        message: "still no".into(),
                    })
                }
            })
            .await;
        assert!(matches!(result, Err(ProviderError::Auth { .. })));
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_refresh_times_out() {
        let calls = Arc::new(AtomicU32::new(0));
        let cache = TokenCache::new(
            Provider::Mobily,
            fake(
                calls.clone(),
                Duration::from_secs(3600),
                Duration::from_secs(300),
                false,
            ),
        )
        .with_refresh_timeout(Duration::from_secs(5));
        assert!(matches!(
            cache.get().await,
            Err(ProviderError::Unavailable { .. })
        ));
    }

    #[test]
    fn debug_shows_no_token() {
        let token = Token {
            secret: SecretString::from("very-secret-jwt"),
            generation: 1,
            expires_at: Instant::now(),
            lifetime: Duration::from_secs(60),
        };
        assert!(!format!("{token:?}").contains("very-secret-jwt"));
    }
}
