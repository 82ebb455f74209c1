//! The Reach plan catalog cache ("Cache the product catalog. Refresh it at
//! least every 24 hours", guide Scenario A.3).
//!
//! Where the plans live: in memory, one [`PlanCache`] per Reach client (so per
//! process and per configured Reach account). The catalog is reference data
//! of at most [`MAX_PLANS`](handover_adapters::reach::MAX_PLANS) small
//! entries, not journey data: losing it on a restart costs one `GET
//! /product/fetch/plan`, and a database copy would need a table the engine's
//! store does not offer. Two paths keep it fresh:
//!
//! - the scheduled job [`REFRESH_JOB`] ([`REFRESH_CRON`], every 6 hours) runs on
//!   the one node that wins the tick and refreshes that node's cache;
//! - every journey's `pick-plan` step reads through [`PlanCache::get`], which
//!   fetches when the cache is empty or older than [`MAX_AGE`], so every node
//!   serves plans at most 24 h old even when it never wins the job, and a plan
//!   the cache does not know triggers one fresh fetch before the journey is
//!   refused (a plan launched since the last refresh).

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use handover_adapters::reach::Plan;
use handover_adapters::{ProviderError, ReachClient};

/// The scheduled job's name.
pub const REFRESH_JOB: &str = "reach-plan-catalog-refresh";
/// Every 6 hours (six fields, seconds first): four chances a day to meet the
/// guide's "at least every 24 hours" even if a refresh fails.
pub const REFRESH_CRON: &str = "0 0 */6 * * *";
/// Plans older than this are fetched again before use.
pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Most Reach clients a process keeps caches for (tests start many stacks).
const MAX_CACHES: usize = 256;

#[derive(Debug, Clone)]
struct Cached {
    plans: Arc<Vec<Plan>>,
    fetched_at: DateTime<Utc>,
}

/// One Reach account's plans, with the time they were fetched.
#[derive(Debug, Default)]
pub struct PlanCache {
    cached: Mutex<Option<Cached>>,
}

impl PlanCache {
    /// The cached plans if fetched less than [`MAX_AGE`] before `now`.
    pub fn fresh(&self, now: DateTime<Utc>) -> Option<Arc<Vec<Plan>>> {
        let cached = self.lock().clone()?;
        let age = (now - cached.fetched_at).to_std().unwrap_or(Duration::ZERO);
        (age < MAX_AGE).then_some(cached.plans)
    }

    /// When the cached plans were fetched.
    pub fn fetched_at(&self) -> Option<DateTime<Utc>> {
        self.lock().as_ref().map(|c| c.fetched_at)
    }

    /// Fetches the catalog now and keeps it.
    pub async fn refresh(
        &self,
        client: &ReachClient,
        now: DateTime<Utc>,
    ) -> Result<Arc<Vec<Plan>>, ProviderError> {
        let plans = Arc::new(client.plans().await?);
        *self.lock() = Some(Cached {
            plans: plans.clone(),
            fetched_at: now,
        });
        Ok(plans)
    }

    /// Fresh plans: the cache, or a fetch when it is empty or stale.
    pub async fn get(
        &self,
        client: &ReachClient,
        now: DateTime<Utc>,
    ) -> Result<Arc<Vec<Plan>>, ProviderError> {
        match self.fresh(now) {
            Some(plans) => Ok(plans),
            None => self.refresh(client, now).await,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Cached>> {
        // A poisoned lock only means a panic elsewhere while holding a
        // plain value: the value is still whole.
        self.cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

type CacheBook = Mutex<Vec<(Weak<ReachClient>, Arc<PlanCache>)>>;

fn book() -> &'static CacheBook {
    static BOOK: std::sync::OnceLock<CacheBook> = std::sync::OnceLock::new();
    BOOK.get_or_init(|| Mutex::new(Vec::new()))
}

/// The cache of `client`: the journey (through `register`) and the scheduled
/// job (through `schedules`) get the same one from the same
/// [`Providers`](crate::Providers).
pub fn cache_for(client: &Arc<ReachClient>) -> Arc<PlanCache> {
    let mut book = book()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    book.retain(|(weak, _)| weak.strong_count() > 0);
    if let Some((_, cache)) = book
        .iter()
        .find(|(weak, _)| std::ptr::eq(weak.as_ptr(), Arc::as_ptr(client)))
    {
        return cache.clone();
    }
    let cache = Arc::new(PlanCache::default());
    if book.len() >= MAX_CACHES {
        book.remove(0);
    }
    book.push((Arc::downgrade(client), cache.clone()));
    cache
}

#[cfg(test)]
mod tests {
    use handover_adapters::ReachConfig;
    use handover_adapters::reach::{ApiKeyLimiters, PlanId, Usd};
    use secrecy::SecretString;

    use super::*;

    fn client() -> Arc<ReachClient> {
        let config = ReachConfig::new(
            url::Url::parse("http://127.0.0.1:9/").unwrap(),
            SecretString::from("jwt"),
            SecretString::from("key"),
        );
        Arc::new(ReachClient::new(&config, &ApiKeyLimiters::new()).unwrap())
    }

    #[test]
    fn plans_go_stale_after_a_day() {
        let cache = PlanCache::default();
        let t0 = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(cache.fresh(t0).is_none());
        *cache.lock() = Some(Cached {
            plans: Arc::new(vec![Plan {
                service_code: PlanId::new("PLAN-1").unwrap(),
                name: None,
                base_line_price: Usd::from_cents(100).unwrap(),
                max_lines: 1,
                fcc_label: None,
                up_gradable_to: vec![],
                down_gradable_to: vec![],
            }]),
            fetched_at: t0,
        });
        assert_eq!(
            cache.fresh(t0 + chrono::Duration::hours(23)).unwrap().len(),
            1
        );
        assert!(cache.fresh(t0 + chrono::Duration::hours(24)).is_none());
    }

    #[test]
    fn one_client_one_cache() {
        let (a, b) = (client(), client());
        assert!(Arc::ptr_eq(&cache_for(&a), &cache_for(&a)));
        assert!(!Arc::ptr_eq(&cache_for(&a), &cache_for(&b)));
    }
}
