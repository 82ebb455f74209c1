//! The USSD consent model of the Mobitel simulator, without HTTP: every method takes the
//! current time and returns what happened, so the rules are tested with plain values.
//!
//! A charge request starts `Pending` (the pop-up is on the customer's phone). The customer
//! approves or declines it (world actions, or automatically by [`ConsentPolicy`]); unanswered,
//! it expires when the consent window closes. Confirm turns `Approved` into `Confirmed`,
//! which is when money moves. A new request for the same receiver is refused while the latest
//! unapproved one is younger than the re-initiation gap (2 minutes in the document).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::time::Instant;

/// How the simulated customer answers the pop-up when no test intervenes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ConsentPolicy {
    /// Nobody answers unless [`approve`](super::MobitelSim::approve) or
    /// [`decline`](super::MobitelSim::decline) is called.
    #[default]
    Manual,
    /// The customer approves this long after the request (if within the consent window).
    ApproveAfter(Duration),
    /// The first `n` confirms see `Pending`; the customer approves before the next one.
    ApproveAfterPolls(u32),
    /// The first `n` confirms see `Pending`; the customer declines before the next one.
    DeclineAfterPolls(u32),
}

/// The rules the consent model follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConsentRules {
    pub consent_window: Duration,
    pub reinitiate_gap: Duration,
    pub policy: ConsentPolicy,
    pub max_records: usize,
}

/// Where a charge request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChargeState {
    /// Waiting for the customer.
    Pending,
    /// The customer approved; not charged until confirmed.
    Approved,
    /// The customer declined.
    Declined,
    /// The consent window closed unanswered.
    Expired,
    /// Confirmed: the customer was charged.
    Confirmed,
}

impl ChargeState {
    fn unapproved(self) -> bool {
        matches!(
            self,
            ChargeState::Pending | ChargeState::Declined | ChargeState::Expired
        )
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ChargeRecord {
    pub reference: String,
    pub receiver: String,
    pub amount: String,
    pub created: Instant,
    pub state: ChargeState,
    pub confirms: u32,
}

/// What a confirm found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Confirmed {
    Unknown,
    Pending,
    Declined,
    Expired,
    /// Charged; `first` is false when it had already been confirmed before.
    Charged {
        first: bool,
        receiver: String,
        amount: String,
    },
}

/// Why a world action failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WorldError {
    /// No charge request has this reference (or it was evicted).
    #[error("no charge request with this reference")]
    UnknownReference,
    /// The request is no longer waiting for the customer.
    #[error("the charge request is {0:?}, not pending")]
    NotPending(ChargeState),
}

#[derive(Debug)]
pub(crate) struct ConsentBook {
    records: HashMap<String, ChargeRecord>,
    order: VecDeque<String>,
    latest_by_receiver: HashMap<String, String>,
    rng: StdRng,
}

impl ConsentBook {
    pub fn new(seed: u64) -> Self {
        Self {
            records: HashMap::new(),
            order: VecDeque::new(),
            latest_by_receiver: HashMap::new(),
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Opens a charge request, or says how long until re-initiation is allowed.
    pub fn request(
        &mut self,
        receiver: &str,
        amount: &str,
        now: Instant,
        rules: &ConsentRules,
    ) -> Result<String, Duration> {
        if let Some(latest) = self
            .latest_by_receiver
            .get(receiver)
            .and_then(|r| self.records.get_mut(r))
        {
            settle(latest, now, rules);
            let allowed_at = latest.created + rules.reinitiate_gap;
            if latest.state.unapproved() && now < allowed_at {
                return Err(allowed_at - now);
            }
        }
        while self.records.len() >= rules.max_records.max(1) {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(evicted) = self.records.remove(&oldest)
                && self.latest_by_receiver.get(&evicted.receiver) == Some(&oldest)
            {
                self.latest_by_receiver.remove(&evicted.receiver);
            }
        }
        let reference = loop {
            let candidate = self
                .rng
                .random_range(100_000_000_000_000u64..1_000_000_000_000_000)
                .to_string();
            if !self.records.contains_key(&candidate) {
                break candidate;
            }
        };
        self.records.insert(
            reference.clone(),
            ChargeRecord {
                reference: reference.clone(),
                receiver: receiver.to_owned(),
                amount: amount.to_owned(),
                created: now,
                state: ChargeState::Pending,
                confirms: 0,
            },
        );
        self.order.push_back(reference.clone());
        self.latest_by_receiver
            .insert(receiver.to_owned(), reference.clone());
        Ok(reference)
    }

    pub fn confirm(&mut self, reference: &str, now: Instant, rules: &ConsentRules) -> Confirmed {
        let Some(record) = self.records.get_mut(reference) else {
            return Confirmed::Unknown;
        };
        settle(record, now, rules);
        if record.state == ChargeState::Pending {
            record.confirms += 1;
            match rules.policy {
                ConsentPolicy::ApproveAfterPolls(n) if record.confirms > n => {
                    record.state = ChargeState::Approved;
                }
                ConsentPolicy::DeclineAfterPolls(n) if record.confirms > n => {
                    record.state = ChargeState::Declined;
                }
                _ => {}
            }
        }
        match record.state {
            ChargeState::Pending => Confirmed::Pending,
            ChargeState::Declined => Confirmed::Declined,
            ChargeState::Expired => Confirmed::Expired,
            ChargeState::Approved | ChargeState::Confirmed => {
                let first = record.state == ChargeState::Approved;
                record.state = ChargeState::Confirmed;
                Confirmed::Charged {
                    first,
                    receiver: record.receiver.clone(),
                    amount: record.amount.clone(),
                }
            }
        }
    }

    /// The customer answers the pop-up.
    pub fn answer(
        &mut self,
        reference: &str,
        approve: bool,
        now: Instant,
        rules: &ConsentRules,
    ) -> Result<(), WorldError> {
        let record = self
            .records
            .get_mut(reference)
            .ok_or(WorldError::UnknownReference)?;
        settle(record, now, rules);
        if record.state != ChargeState::Pending {
            return Err(WorldError::NotPending(record.state));
        }
        record.state = if approve {
            ChargeState::Approved
        } else {
            ChargeState::Declined
        };
        Ok(())
    }

    /// Every kept request, oldest first, settled at `now`.
    pub fn records(&mut self, now: Instant, rules: &ConsentRules) -> Vec<ChargeRecord> {
        let mut out = Vec::with_capacity(self.order.len());
        for reference in &self.order {
            if let Some(record) = self.records.get_mut(reference) {
                settle(record, now, rules);
                out.push(record.clone());
            }
        }
        out
    }
}

/// Applies the transitions that happen by the passing of time.
fn settle(record: &mut ChargeRecord, now: Instant, rules: &ConsentRules) {
    if record.state != ChargeState::Pending {
        return;
    }
    if let ConsentPolicy::ApproveAfter(after) = rules.policy
        && after < rules.consent_window
        && now >= record.created + after
    {
        record.state = ChargeState::Approved;
        return;
    }
    if now >= record.created + rules.consent_window {
        record.state = ChargeState::Expired;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: &str = "0712755777";

    fn rules(policy: ConsentPolicy) -> ConsentRules {
        ConsentRules {
            consent_window: Duration::from_secs(60),
            reinitiate_gap: Duration::from_secs(120),
            policy,
            max_records: 100,
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn pending_until_approved_then_charged_once() {
        let rules = rules(ConsentPolicy::Manual);
        let mut book = ConsentBook::new(1);
        let t0 = Instant::now();
        let r = book.request(R, "5", t0, &rules).unwrap();
        assert_eq!(r.len(), 15);
        assert_eq!(book.confirm(&r, t0 + secs(5), &rules), Confirmed::Pending);
        book.answer(&r, true, t0 + secs(10), &rules).unwrap();
        let charged = Confirmed::Charged {
            first: true,
            receiver: R.into(),
            amount: "5".into(),
        };
        assert_eq!(book.confirm(&r, t0 + secs(11), &rules), charged);
        // Confirming again is answered the same, without a second charge.
        assert!(matches!(
            book.confirm(&r, t0 + secs(12), &rules),
            Confirmed::Charged { first: false, .. }
        ));
        assert_eq!(book.confirm("nope", t0, &rules), Confirmed::Unknown);
    }

    #[test]
    fn unanswered_requests_expire_and_late_answers_fail() {
        let rules = rules(ConsentPolicy::Manual);
        let mut book = ConsentBook::new(1);
        let t0 = Instant::now();
        let r = book.request(R, "5", t0, &rules).unwrap();
        assert_eq!(book.confirm(&r, t0 + secs(60), &rules), Confirmed::Expired);
        assert_eq!(
            book.answer(&r, true, t0 + secs(61), &rules),
            Err(WorldError::NotPending(ChargeState::Expired))
        );
    }

    #[test]
    fn approval_survives_the_window_once_given() {
        let rules = rules(ConsentPolicy::Manual);
        let mut book = ConsentBook::new(1);
        let t0 = Instant::now();
        let r = book.request(R, "5", t0, &rules).unwrap();
        book.answer(&r, true, t0 + secs(30), &rules).unwrap();
        assert!(matches!(
            book.confirm(&r, t0 + secs(90), &rules),
            Confirmed::Charged { first: true, .. }
        ));
    }

    #[test]
    fn reinitiation_waits_two_minutes_after_an_unapproved_request() {
        let rules = rules(ConsentPolicy::Manual);
        let mut book = ConsentBook::new(1);
        let t0 = Instant::now();
        let r = book.request(R, "5", t0, &rules).unwrap();
        book.answer(&r, false, t0 + secs(5), &rules).unwrap();
        assert_eq!(book.request(R, "5", t0 + secs(100), &rules), Err(secs(20)));
        // Another receiver is not affected.
        assert!(
            book.request("0771234567", "5", t0 + secs(100), &rules)
                .is_ok()
        );
        assert!(book.request(R, "5", t0 + secs(120), &rules).is_ok());
    }

    #[test]
    fn a_confirmed_charge_does_not_block_the_next_one() {
        let rules = rules(ConsentPolicy::ApproveAfterPolls(0));
        let mut book = ConsentBook::new(1);
        let t0 = Instant::now();
        let r = book.request(R, "5", t0, &rules).unwrap();
        assert!(matches!(
            book.confirm(&r, t0, &rules),
            Confirmed::Charged { .. }
        ));
        assert!(book.request(R, "7", t0 + secs(1), &rules).is_ok());
    }

    #[test]
    fn automatic_policies() {
        let t0 = Instant::now();
        let approve_polls = rules(ConsentPolicy::ApproveAfterPolls(2));
        let mut book = ConsentBook::new(1);
        let r = book.request(R, "5", t0, &approve_polls).unwrap();
        assert_eq!(book.confirm(&r, t0, &approve_polls), Confirmed::Pending);
        assert_eq!(book.confirm(&r, t0, &approve_polls), Confirmed::Pending);
        assert!(matches!(
            book.confirm(&r, t0, &approve_polls),
            Confirmed::Charged { .. }
        ));

        let decline_polls = rules(ConsentPolicy::DeclineAfterPolls(1));
        let mut book = ConsentBook::new(1);
        let r = book.request(R, "5", t0, &decline_polls).unwrap();
        assert_eq!(book.confirm(&r, t0, &decline_polls), Confirmed::Pending);
        assert_eq!(book.confirm(&r, t0, &decline_polls), Confirmed::Declined);

        let approve_after = rules(ConsentPolicy::ApproveAfter(secs(10)));
        let mut book = ConsentBook::new(1);
        let r = book.request(R, "5", t0, &approve_after).unwrap();
        assert_eq!(
            book.confirm(&r, t0 + secs(9), &approve_after),
            Confirmed::Pending
        );
        assert!(matches!(
            book.confirm(&r, t0 + secs(10), &approve_after),
            Confirmed::Charged { .. }
        ));

        // Approval later than the window never comes.
        let too_late = rules(ConsentPolicy::ApproveAfter(secs(61)));
        let mut book = ConsentBook::new(1);
        let r = book.request(R, "5", t0, &too_late).unwrap();
        assert_eq!(
            book.confirm(&r, t0 + secs(70), &too_late),
            Confirmed::Expired
        );
    }

    #[test]
    fn the_book_is_bounded() {
        let mut rules = rules(ConsentPolicy::Manual);
        rules.max_records = 2;
        let mut book = ConsentBook::new(1);
        let t0 = Instant::now();
        let first = book.request("0700000001", "5", t0, &rules).unwrap();
        book.request("0700000002", "5", t0, &rules).unwrap();
        book.request("0700000003", "5", t0, &rules).unwrap();
        assert_eq!(book.records(t0, &rules).len(), 2);
        assert_eq!(book.confirm(&first, t0, &rules), Confirmed::Unknown);
        // The evicted request no longer blocks its receiver.
        assert!(book.request("0700000001", "5", t0, &rules).is_ok());
    }

    #[test]
    fn references_are_deterministic_per_seed() {
        let rules = rules(ConsentPolicy::Manual);
        let t0 = Instant::now();
        let a = ConsentBook::new(9).request(R, "5", t0, &rules);
        let b = ConsentBook::new(9).request(R, "5", t0, &rules);
        assert_eq!(a, b);
    }
}
