//! The operations of the Al-Qimah simulator and how pending ones settle, without HTTP:
//! every method takes the current time and returns what happened, so the rules are tested
//! with plain values.
//!
//! A payment that passed every check is opened with a [`PaymentScript`]: final at once
//! (`operationStatus` 1 or 0), or pending (-1) until it settles to its final state after a
//! delay, after a number of status queries, or when the back office says so
//! ([`SettleAfter`]). The script is the next one queued
//! ([`AlQimahSim::script_next_payment`](super::AlQimahSim::script_next_payment)), or drawn
//! from the behaviour's [`PendingMode`]. A `TransactionID` is opened at most once, ever
//! (within the book's bound): the simulator checks for a duplicate before taking any money,
//! and the book refuses one anyway.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::time::Instant;
use url::Url;

/// The final state of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Final {
    /// `operationStatus` 1.
    Succeeded,
    /// `operationStatus` 0; a pending operation that fails is refunded.
    Failed,
}

/// When a pending operation settles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleAfter {
    /// This long after the payment (the simulator's ticker settles it and sends the webhook,
    /// or a status query after that time sees it settled).
    Delay(Duration),
    /// The first `n` status queries answer pending; the next one sees it settled.
    Polls(u32),
    /// Only when [`AlQimahSim::settle`](super::AlQimahSim::settle) is called.
    Manual,
}

/// How one payment goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentScript {
    /// Final in the payment answer.
    Immediate(Final),
    /// Pending in the payment answer, settling later.
    Pending {
        /// When.
        after: SettleAfter,
        /// To what.
        to: Final,
    },
}

/// Which unscripted payments are pending.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PendingMode {
    /// None: every unscripted payment succeeds at once.
    Never,
    /// All of them.
    Always,
    /// This share of them (0 to 1), drawn from the seeded generator.
    Rate(f64),
}

/// The rules for unscripted payments.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SettlementRules {
    pub pending: PendingMode,
    pub settle_after: SettleAfter,
    pub settle_to: Final,
    pub max_operations: usize,
}

/// Where an operation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperationState {
    /// `operationStatus` -1.
    Pending,
    /// `operationStatus` 1.
    Succeeded,
    /// `operationStatus` 0.
    Failed,
}

impl OperationState {
    /// The wire code.
    pub fn code(self) -> i8 {
        match self {
            OperationState::Succeeded => 1,
            OperationState::Failed => 0,
            OperationState::Pending => -1,
        }
    }
}

impl From<Final> for OperationState {
    fn from(f: Final) -> Self {
        match f {
            Final::Succeeded => OperationState::Succeeded,
            Final::Failed => OperationState::Failed,
        }
    }
}

/// Where to send an operation's webhook. `Debug` hides the code.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct WebhookTarget {
    pub url: Url,
    pub code: String,
}

impl fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("path", &self.url.path())
            .finish_non_exhaustive()
    }
}

/// A payment that passed every check.
#[derive(Debug, Clone)]
pub(crate) struct NewOperation {
    pub transaction_id: u64,
    pub account: String,
    pub mobile: Option<String>,
    pub price: u64,
    pub webhook: Option<WebhookTarget>,
}

/// One operation, as kept.
#[derive(Debug, Clone)]
pub(crate) struct OperationRecord {
    pub transaction_id: u64,
    pub account: String,
    pub mobile: Option<String>,
    pub price: u64,
    pub reference_id: u64,
    pub state: OperationState,
    /// Status queries answered while pending.
    pub polls: u32,
    pub created: Instant,
    /// How it settles, while pending.
    pub plan: Option<(SettleAfter, Final)>,
    pub webhook: Option<WebhookTarget>,
}

/// An operation reached its final state: the caller refunds a failed one (the money was
/// taken when it was opened pending) and sends the webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settlement {
    pub transaction_id: u64,
    pub to: Final,
    /// Whether it was pending before (so money was taken and a failure is refunded).
    pub was_pending: bool,
    pub account: String,
    pub mobile: Option<String>,
    pub price: u64,
    pub reference_id: u64,
    pub webhook: Option<WebhookTarget>,
}

/// Why a world action failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WorldError {
    /// No operation has this `TransactionID` (or it was evicted).
    #[error("no operation with this TransactionID")]
    UnknownTransaction,
    /// The operation is not pending any more.
    #[error("the operation is {0:?}, not pending")]
    NotPending(OperationState),
    /// No account has this number.
    #[error("no account with this number")]
    UnknownAccount,
}

/// The `TransactionID` was used before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Duplicate;

#[derive(Debug)]
pub(crate) struct OperationBook {
    records: HashMap<u64, OperationRecord>,
    order: VecDeque<u64>,
    scripts: VecDeque<PaymentScript>,
    /// Deadlines of operations settling after a delay, soonest first. Entries of operations
    /// settled otherwise or evicted are skipped when they come up.
    deadlines: BTreeSet<(Instant, u64)>,
    next_reference: u64,
    rng: StdRng,
}

impl OperationBook {
    pub fn new(seed: u64) -> Self {
        Self {
            records: HashMap::new(),
            order: VecDeque::new(),
            scripts: VecDeque::new(),
            deadlines: BTreeSet::new(),
            // References look like the document's (243085); distinct per seed.
            next_reference: 200_000 + (seed % 1000) * 1000,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    pub fn contains(&self, transaction_id: u64) -> bool {
        self.records.contains_key(&transaction_id)
    }

    /// Queues the script of the next unscripted payment.
    pub fn script_next(&mut self, script: PaymentScript) {
        self.scripts.push_back(script);
    }

    /// How the next payment goes: the next queued script, else drawn from the rules.
    pub fn decide(&mut self, rules: &SettlementRules) -> PaymentScript {
        if let Some(script) = self.scripts.pop_front() {
            return script;
        }
        let pending = match rules.pending {
            PendingMode::Never => false,
            PendingMode::Always => true,
            PendingMode::Rate(p) => self.rng.random::<f64>() < p,
        };
        if pending {
            PaymentScript::Pending {
                after: rules.settle_after,
                to: rules.settle_to,
            }
        } else {
            PaymentScript::Immediate(Final::Succeeded)
        }
    }

    /// Opens an operation following `script`. Returns the new record.
    pub fn open(
        &mut self,
        operation: NewOperation,
        script: PaymentScript,
        now: Instant,
        rules: &SettlementRules,
    ) -> Result<OperationRecord, Duplicate> {
        if self.contains(operation.transaction_id) {
            return Err(Duplicate);
        }
        while self.records.len() >= rules.max_operations.max(1) {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.records.remove(&oldest);
        }
        let (state, plan) = match script {
            PaymentScript::Immediate(f) => (f.into(), None),
            PaymentScript::Pending { after, to } => (OperationState::Pending, Some((after, to))),
        };
        if let Some((SettleAfter::Delay(delay), _)) = plan {
            self.deadlines
                .insert((now + delay, operation.transaction_id));
        }
        let reference_id = self.next_reference;
        self.next_reference += 1;
        let record = OperationRecord {
            transaction_id: operation.transaction_id,
            account: operation.account,
            mobile: operation.mobile,
            price: operation.price,
            reference_id,
            state,
            polls: 0,
            created: now,
            plan,
            webhook: operation.webhook,
        };
        self.records.insert(record.transaction_id, record.clone());
        self.order.push_back(record.transaction_id);
        Ok(record)
    }

    /// A status query: the record as it stands after the query, and the settlement if this
    /// query (or the time passed) settled it.
    pub fn poll(
        &mut self,
        transaction_id: u64,
        now: Instant,
    ) -> Option<(OperationRecord, Option<Settlement>)> {
        let record = self.records.get_mut(&transaction_id)?;
        let mut settled = settle_if_due(record, now);
        if settled.is_none()
            && let Some((SettleAfter::Polls(n), to)) = record.plan
        {
            if record.polls >= n {
                settled = Some(finish(record, to));
            } else {
                record.polls += 1;
            }
        }
        Some((record.clone(), settled))
    }

    /// Every pending operation whose delay has passed, settled now.
    pub fn due(&mut self, now: Instant) -> Vec<Settlement> {
        let mut settled = Vec::new();
        while let Some(&(deadline, transaction_id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(record) = self.records.get_mut(&transaction_id)
                && let Some(s) = settle_if_due(record, now)
            {
                settled.push(s);
            }
        }
        settled
    }

    /// Whether an operation may be waiting for a delay (the ticker has work).
    pub fn has_delayed(&self) -> bool {
        !self.deadlines.is_empty()
    }

    /// The back office settles a pending operation.
    pub fn settle(&mut self, transaction_id: u64, to: Final) -> Result<Settlement, WorldError> {
        let record = self
            .records
            .get_mut(&transaction_id)
            .ok_or(WorldError::UnknownTransaction)?;
        if record.state != OperationState::Pending {
            return Err(WorldError::NotPending(record.state));
        }
        Ok(finish(record, to))
    }

    pub fn get(&self, transaction_id: u64) -> Option<OperationRecord> {
        self.records.get(&transaction_id).cloned()
    }

    /// Every kept operation, oldest first.
    pub fn records(&self) -> Vec<OperationRecord> {
        self.order
            .iter()
            .filter_map(|id| self.records.get(id).cloned())
            .collect()
    }
}

fn settle_if_due(record: &mut OperationRecord, now: Instant) -> Option<Settlement> {
    match record.plan {
        Some((SettleAfter::Delay(delay), to)) if now >= record.created + delay => {
            Some(finish(record, to))
        }
        _ => None,
    }
}

fn finish(record: &mut OperationRecord, to: Final) -> Settlement {
    record.state = to.into();
    record.plan = None;
    Settlement {
        transaction_id: record.transaction_id,
        to,
        was_pending: true,
        account: record.account.clone(),
        mobile: record.mobile.clone(),
        price: record.price,
        reference_id: record.reference_id,
        webhook: record.webhook.clone(),
    }
}

impl OperationRecord {
    /// The settlement an operation that was final at once stands for (for its webhook).
    pub fn immediate_settlement(&self) -> Option<Settlement> {
        let to = match self.state {
            OperationState::Succeeded => Final::Succeeded,
            OperationState::Failed => Final::Failed,
            OperationState::Pending => return None,
        };
        Some(Settlement {
            transaction_id: self.transaction_id,
            to,
            was_pending: false,
            account: self.account.clone(),
            mobile: self.mobile.clone(),
            price: self.price,
            reference_id: self.reference_id,
            webhook: self.webhook.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(pending: PendingMode) -> SettlementRules {
        SettlementRules {
            pending,
            settle_after: SettleAfter::Polls(1),
            settle_to: Final::Succeeded,
            max_operations: 100,
        }
    }

    fn op(transaction_id: u64) -> NewOperation {
        NewOperation {
            transaction_id,
            account: "1000001".into(),
            mobile: Some("777123456".into()),
            price: 100,
            webhook: None,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_transaction_id_is_opened_once() {
        let r = rules(PendingMode::Never);
        let mut book = OperationBook::new(1);
        let t0 = Instant::now();
        let first = book
            .open(op(7), PaymentScript::Immediate(Final::Succeeded), t0, &r)
            .unwrap();
        assert_eq!(first.state, OperationState::Succeeded);
        assert!(book.contains(7));
        assert_eq!(
            book.open(op(7), PaymentScript::Immediate(Final::Succeeded), t0, &r)
                .unwrap_err(),
            Duplicate
        );
        // A failed operation consumes its id too.
        book.open(op(8), PaymentScript::Immediate(Final::Failed), t0, &r)
            .unwrap();
        assert!(
            book.open(op(8), PaymentScript::Immediate(Final::Succeeded), t0, &r)
                .is_err()
        );
        assert_ne!(first.reference_id, book.get(8).unwrap().reference_id);
    }

    #[test]
    fn pending_settles_after_n_polls() {
        let r = rules(PendingMode::Never);
        let mut book = OperationBook::new(1);
        let t0 = Instant::now();
        let script = PaymentScript::Pending {
            after: SettleAfter::Polls(2),
            to: Final::Succeeded,
        };
        assert_eq!(
            book.open(op(1), script, t0, &r).unwrap().state,
            OperationState::Pending
        );
        let states: Vec<_> = (0..4)
            .map(|_| {
                let (record, settled) = book.poll(1, t0).unwrap();
                (record.state, settled.is_some())
            })
            .collect();
        assert_eq!(
            states,
            [
                (OperationState::Pending, false),
                (OperationState::Pending, false),
                (OperationState::Succeeded, true),
                (OperationState::Succeeded, false),
            ]
        );
        assert!(book.poll(99, t0).is_none());
    }

    #[test]
    fn pending_settles_after_a_delay_by_tick_or_poll() {
        let r = rules(PendingMode::Never);
        let mut book = OperationBook::new(1);
        let t0 = Instant::now();
        let to_fail = PaymentScript::Pending {
            after: SettleAfter::Delay(ms(100)),
            to: Final::Failed,
        };
        book.open(op(1), to_fail, t0, &r).unwrap();
        book.open(op(2), to_fail, t0, &r).unwrap();
        assert!(book.has_delayed());
        assert!(book.due(t0 + ms(99)).is_empty());
        // A poll after the delay sees it settled (and settles it).
        let (record, settled) = book.poll(1, t0 + ms(100)).unwrap();
        assert_eq!(record.state, OperationState::Failed);
        let settled = settled.unwrap();
        assert!(settled.was_pending && settled.to == Final::Failed);
        // The ticker settles the other one, once.
        let due = book.due(t0 + ms(150));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].transaction_id, 2);
        assert!(book.due(t0 + ms(200)).is_empty());
        assert!(!book.has_delayed());
    }

    #[test]
    fn manual_settlement_is_a_world_action() {
        let r = rules(PendingMode::Never);
        let mut book = OperationBook::new(1);
        let t0 = Instant::now();
        let script = PaymentScript::Pending {
            after: SettleAfter::Manual,
            to: Final::Succeeded,
        };
        book.open(op(1), script, t0, &r).unwrap();
        for _ in 0..5 {
            assert_eq!(
                book.poll(1, t0 + ms(10_000)).unwrap().0.state,
                OperationState::Pending
            );
        }
        let s = book.settle(1, Final::Failed).unwrap();
        assert_eq!(s.to, Final::Failed);
        assert_eq!(
            book.settle(1, Final::Succeeded),
            Err(WorldError::NotPending(OperationState::Failed))
        );
        assert_eq!(
            book.settle(2, Final::Succeeded),
            Err(WorldError::UnknownTransaction)
        );
    }

    #[test]
    fn scripts_come_first_then_the_rules() {
        let mut book = OperationBook::new(3);
        book.script_next(PaymentScript::Immediate(Final::Failed));
        let never = rules(PendingMode::Never);
        assert_eq!(book.decide(&never), PaymentScript::Immediate(Final::Failed));
        assert_eq!(
            book.decide(&never),
            PaymentScript::Immediate(Final::Succeeded)
        );
        assert_eq!(
            book.decide(&rules(PendingMode::Always)),
            PaymentScript::Pending {
                after: SettleAfter::Polls(1),
                to: Final::Succeeded
            }
        );
        let rate = rules(PendingMode::Rate(0.3));
        let draws = |seed| {
            let mut b = OperationBook::new(seed);
            (0..1000)
                .filter(|_| matches!(b.decide(&rate), PaymentScript::Pending { .. }))
                .count()
        };
        assert_eq!(draws(5), draws(5), "deterministic per seed");
        assert!((230..370).contains(&draws(5)), "{}", draws(5));
    }

    #[test]
    fn the_book_is_bounded() {
        let mut r = rules(PendingMode::Never);
        r.max_operations = 2;
        let mut book = OperationBook::new(1);
        let t0 = Instant::now();
        for id in 1..=3 {
            book.open(op(id), PaymentScript::Immediate(Final::Succeeded), t0, &r)
                .unwrap();
        }
        assert_eq!(book.records().len(), 2);
        assert!(!book.contains(1), "the oldest is forgotten");
    }

    #[test]
    fn immediate_operations_stand_for_their_settlement() {
        let r = rules(PendingMode::Never);
        let mut book = OperationBook::new(1);
        let t0 = Instant::now();
        let record = book
            .open(op(1), PaymentScript::Immediate(Final::Failed), t0, &r)
            .unwrap();
        let s = record.immediate_settlement().unwrap();
        assert!(!s.was_pending && s.to == Final::Failed);
        let pending = book
            .open(
                op(2),
                PaymentScript::Pending {
                    after: SettleAfter::Manual,
                    to: Final::Succeeded,
                },
                t0,
                &r,
            )
            .unwrap();
        assert!(pending.immediate_settlement().is_none());
    }
}
