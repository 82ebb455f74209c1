//! The simulators' record of effects: what a provider actually did to money and inventory.
//!
//! Tests assert on it ("charged exactly once", "no order without a payment"): an effect is
//! recorded by the simulator at the moment the real provider would apply it, keyed by the id
//! the *caller* can reconcile with (idempotency key, transaction id, or the reference the
//! provider returned), so a test can tell a retried call from a doubled effect.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::error::Provider;
use crate::redact::mask_msisdn;
use crate::sim::server::lock;

/// How many effects a ledger keeps by default.
pub const DEFAULT_LEDGER_CAPACITY: usize = 100_000;

/// What kind of effect a provider applied. Extend it as providers are added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum EffectKind {
    /// A charge was initiated (Mobitel: the USSD consent pop-up was sent). Not money yet.
    ChargeRequest,
    /// Money was taken from the customer.
    Charge,
    /// A number or other resource was reserved.
    Reservation,
    /// An order was placed.
    Order,
    /// A line or SIM was activated.
    Activation,
    /// A port-in was submitted.
    PortIn,
    /// A payment was authorised or captured.
    Payment,
    /// An authorised payment was voided.
    Void,
    /// An order was cancelled.
    Cancel,
    /// Money was returned.
    Refund,
    /// A service was created or changed.
    ServiceChange,
    /// A line was registered with a regulator (Mobily: TCC registration).
    Registration,
}

/// One applied effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    /// Position in the ledger, from 1.
    pub seq: u64,
    /// The provider that applied it.
    pub provider: Provider,
    /// What was done.
    pub kind: EffectKind,
    /// The caller's id for it (idempotency key, transaction id, or provider reference).
    pub key: String,
    /// Whom it concerns (MSISDN, customer id), when relevant.
    pub subject: Option<String>,
    /// Details such as the amount, as JSON.
    pub detail: serde_json::Value,
    /// When it was applied.
    pub at: SystemTime,
}

impl fmt::Display for Effect {
    // For demo output: masks the subject.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} {} {:?} {}",
            self.seq, self.provider, self.kind, self.key
        )?;
        if let Some(subject) = &self.subject {
            write!(f, " for {}", mask_msisdn(subject))?;
        }
        if !self.detail.is_null() {
            write!(f, " {}", self.detail)?;
        }
        Ok(())
    }
}

/// A key applied more than once: the bug the ledger exists to catch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    /// The effect kind.
    pub kind: EffectKind,
    /// The key.
    pub key: String,
    /// How many times it was applied (at least 2).
    pub count: usize,
}

#[derive(Debug)]
struct Inner {
    provider: Provider,
    capacity: usize,
    entries: Vec<Effect>,
    dropped: u64,
}

/// An append-only, queryable record of effects, shared by a simulator and the test or demo
/// watching it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Ledger {
    inner: Arc<Mutex<Inner>>,
}

impl Ledger {
    /// An empty ledger for `provider` keeping up to [`DEFAULT_LEDGER_CAPACITY`] effects.
    pub fn new(provider: Provider) -> Self {
        Self::with_capacity(provider, DEFAULT_LEDGER_CAPACITY)
    }

    /// An empty ledger keeping up to `capacity` effects; later effects are counted as
    /// dropped and [`Self::is_complete`] turns false.
    pub fn with_capacity(provider: Provider, capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                provider,
                capacity,
                entries: Vec::new(),
                dropped: 0,
            })),
        }
    }

    /// Records an effect; returns its sequence number (0 if the ledger is full).
    pub fn record(
        &self,
        kind: EffectKind,
        key: impl Into<String>,
        subject: Option<&str>,
        detail: serde_json::Value,
    ) -> u64 {
        let mut inner = lock(&self.inner);
        if inner.entries.len() >= inner.capacity {
            inner.dropped += 1;
            tracing::error!(provider = %inner.provider, ?kind, "simulator ledger full: effect not recorded");
            return 0;
        }
        let seq = inner.entries.len() as u64 + 1;
        let effect = Effect {
            seq,
            provider: inner.provider,
            kind,
            key: key.into(),
            subject: subject.map(str::to_owned),
            detail,
            at: SystemTime::now(),
        };
        inner.entries.push(effect);
        seq
    }

    /// How many times `kind` was applied under `key`.
    pub fn count(&self, kind: EffectKind, key: &str) -> usize {
        lock(&self.inner)
            .entries
            .iter()
            .filter(|e| e.kind == kind && e.key == key)
            .count()
    }

    /// How many times `kind` was applied in total.
    pub fn count_kind(&self, kind: EffectKind) -> usize {
        lock(&self.inner)
            .entries
            .iter()
            .filter(|e| e.kind == kind)
            .count()
    }

    /// How many times `kind` was applied to `subject` (e.g. charges to one MSISDN).
    pub fn count_subject(&self, kind: EffectKind, subject: &str) -> usize {
        lock(&self.inner)
            .entries
            .iter()
            .filter(|e| e.kind == kind && e.subject.as_deref() == Some(subject))
            .count()
    }

    /// Every (kind, key) applied more than once, in key order.
    pub fn duplicates(&self) -> Vec<Duplicate> {
        let mut counts: BTreeMap<(EffectKind, String), usize> = BTreeMap::new();
        for e in &lock(&self.inner).entries {
            *counts.entry((e.kind, e.key.clone())).or_default() += 1;
        }
        counts
            .into_iter()
            .filter(|(_, count)| *count > 1)
            .map(|((kind, key), count)| Duplicate { kind, key, count })
            .collect()
    }

    /// Every recorded effect, in order.
    pub fn entries(&self) -> Vec<Effect> {
        lock(&self.inner).entries.clone()
    }

    /// Every recorded effect of one kind, in order.
    pub fn entries_of(&self, kind: EffectKind) -> Vec<Effect> {
        lock(&self.inner)
            .entries
            .iter()
            .filter(|e| e.kind == kind)
            .cloned()
            .collect()
    }

    /// Number of recorded effects.
    pub fn len(&self) -> usize {
        lock(&self.inner).entries.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// False once an effect was dropped because the ledger was full: assertions on it are
    /// then unreliable.
    pub fn is_complete(&self) -> bool {
        lock(&self.inner).dropped == 0
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn counts_and_finds_duplicates() {
        let ledger = Ledger::new(Provider::Mobitel);
        ledger.record(
            EffectKind::Charge,
            "ref-1",
            Some("0712755777"),
            json!({"amount": "5"}),
        );
        ledger.record(EffectKind::Charge, "ref-2", Some("0712755777"), json!(null));
        ledger.record(EffectKind::ChargeRequest, "ref-1", None, json!(null));
        assert_eq!(ledger.count(EffectKind::Charge, "ref-1"), 1);
        assert_eq!(ledger.count_kind(EffectKind::Charge), 2);
        assert_eq!(ledger.count_subject(EffectKind::Charge, "0712755777"), 2);
        assert!(ledger.duplicates().is_empty(), "same key, different kinds");

        ledger.record(EffectKind::Charge, "ref-1", Some("0712755777"), json!(null));
        assert_eq!(
            ledger.duplicates(),
            vec![Duplicate {
                kind: EffectKind::Charge,
                key: "ref-1".into(),
                count: 2
            }]
        );
        let seqs: Vec<u64> = ledger.entries().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
    }

    #[test]
    fn a_full_ledger_says_so() {
        let ledger = Ledger::with_capacity(Provider::Reach, 1);
        assert_eq!(ledger.record(EffectKind::Order, "a", None, json!(null)), 1);
        assert_eq!(ledger.record(EffectKind::Order, "b", None, json!(null)), 0);
        assert_eq!(ledger.len(), 1);
        assert!(!ledger.is_complete());
    }

    #[test]
    fn display_masks_the_subject() {
        let ledger = Ledger::new(Provider::Mobitel);
        ledger.record(
            EffectKind::Charge,
            "320438941208291",
            Some("0712755777"),
            json!({"amount": "5"}),
        );
        let shown = ledger.entries()[0].to_string();
        assert!(shown.contains("07******77"), "{shown}");
        assert!(!shown.contains("0712755777"), "{shown}");
    }
}
