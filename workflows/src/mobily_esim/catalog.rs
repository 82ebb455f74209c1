//! Step 1's sellable-product list (WCM), cached.
//!
//! Where it lives: in this process, per Mobily client. The list is small
//! (a few dozen offers), read by every checkout, and not authoritative:
//! Mobily re-checks the offer when the cart is created and qualified (step
//! 3), so a stale entry costs a refusal there, never a wrong sale. A
//! database copy would add a table and a migration for no safety gain, and
//! a process cache survives everything except a restart, after which the
//! first journey fetches it again.
//!
//! Refreshed by the `mobily-products-refresh` cron job (every 6 h, on the
//! node that wins the tick) and read through: a journey that finds the list
//! missing or older than [`MAX_AGE`] fetches it itself, so every node honours
//! "at least every 24 h" even if another node always wins the cron tick. A
//! product missing from a fresh list triggers one refetch (a product added
//! since the last refresh) before the journey is refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use handover_adapters::mobily::{Product, ProductOfferingId};
use handover_adapters::{MobilyClient, ProviderError};

/// The oldest list a journey uses.
pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Most clients remembered (one per configured Mobily account; tests start many).
const MAX_CLIENTS: usize = 64;

struct Entry {
    client: Weak<MobilyClient>,
    fetched: Instant,
    products: Arc<Vec<Product>>,
}

fn cache() -> &'static Mutex<HashMap<usize, Entry>> {
    static CACHE: OnceLock<Mutex<HashMap<usize, Entry>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn lock() -> std::sync::MutexGuard<'static, HashMap<usize, Entry>> {
    cache()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn slot(client: &Arc<MobilyClient>) -> usize {
    Arc::as_ptr(client) as usize
}

/// The cached list of `client` if it is younger than `max_age`.
fn cached(client: &Arc<MobilyClient>, max_age: Duration) -> Option<Arc<Vec<Product>>> {
    let map = lock();
    let entry = map.get(&slot(client))?;
    // The address may have been reused by another client since.
    let same = entry
        .client
        .upgrade()
        .is_some_and(|c| Arc::ptr_eq(&c, client));
    (same && entry.fetched.elapsed() < max_age).then(|| entry.products.clone())
}

/// Fetches the list from Mobily and caches it; returns how many products
/// are sellable.
pub async fn refresh(client: &Arc<MobilyClient>) -> Result<usize, ProviderError> {
    let products = Arc::new(client.products().await?);
    let count = products.len();
    let mut map = lock();
    map.retain(|_, e| e.client.strong_count() > 0);
    if map.len() >= MAX_CLIENTS {
        // Bounded: forget the oldest.
        if let Some(oldest) = map.iter().min_by_key(|(_, e)| e.fetched).map(|(k, _)| *k) {
            map.remove(&oldest);
        }
    }
    map.insert(
        slot(client),
        Entry {
            client: Arc::downgrade(client),
            fetched: Instant::now(),
            products,
        },
    );
    Ok(count)
}

/// The sellable product `id`, from the cache (read through, see the module
/// docs); `None` when Mobily does not sell it.
pub async fn sellable(
    client: &Arc<MobilyClient>,
    id: &ProductOfferingId,
) -> Result<Option<Product>, ProviderError> {
    let find = |list: &Vec<Product>| list.iter().find(|p| &p.id == id).cloned();
    if let Some(list) = cached(client, MAX_AGE)
        && let Some(product) = find(&list)
    {
        return Ok(Some(product));
    }
    refresh(client).await?;
    Ok(cached(client, MAX_AGE).and_then(|list| find(&list)))
}
