//! The purchase and payment model of the Reach simulator, without HTTP: every method takes
//! the current time and returns what happened, so the rules are tested with plain values.
//!
//! A purchase is `INITIATED` when accepted, becomes `PAYMENT_PENDING` with a payment link
//! (after [`Progress`]), and waits for the customer until the link expires (`FAILED`,
//! "expired"). The customer pays ([`ReachSim::pay`](super::ReachSim::pay), the fake payment page, or
//! [`CustomerPayment::PayAfter`]): `PAYMENT_PROCESSING`, then after another [`Progress`]
//! `COMPLETED` with a new `customerId`, or `FAILED` with a `paymentStatusDesc` if the card
//! was declined. One `clientAccountId` names one purchase for good.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use secrecy::SecretString;
use url::Url;

use crate::reach::{PurchaseStatusCode, SimType};
use crate::redact::mask_msisdn;

/// When a simulated state moves on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Progress {
    /// This long after entering the state.
    After(Duration),
    /// At a status poll, once `n` polls have seen the state (`AfterPolls(0)`: the first poll
    /// already sees the next state).
    AfterPolls(u32),
}

/// What the simulated customer does with the payment link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CustomerPayment {
    /// Nothing, unless a test calls [`ReachSim::pay`](super::ReachSim::pay) or uses the
    /// payment page.
    #[default]
    Manual,
    /// Pays (`success`: the card is accepted) this long after the link is issued, then the
    /// browser returns to `redirectUrl?transId=...`.
    PayAfter {
        /// Delay after the link is issued.
        delay: Duration,
        /// Whether the card is accepted.
        success: bool,
    },
}

/// The rules the purchase model follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PurchaseRules {
    pub link_after: Progress,
    pub link_ttl: Duration,
    pub settle_after: Progress,
    pub customer: CustomerPayment,
    pub max_records: usize,
}

/// Port-in details as received with a purchase (the PIN stays secret in `Debug`).
#[derive(Clone)]
pub(crate) struct PortSpec {
    pub number: String,
    pub carrier: String,
    pub account: String,
    pub pin: SecretString,
    pub zip: String,
}

impl fmt::Debug for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortSpec")
            .field("number", &mask_msisdn(&self.number))
            .field("carrier", &self.carrier)
            .finish_non_exhaustive()
    }
}

/// A validated order.
#[derive(Debug, Clone)]
pub(crate) struct OrderSpec {
    pub client_account_id: String,
    pub plan_id: String,
    pub plan_name: String,
    pub sim_type: SimType,
    pub redirect_url: Url,
    pub amount_cents: u64,
    pub port: Option<PortSpec>,
}

impl OrderSpec {
    /// Two orders are "the same" when they buy the same thing for the same number.
    fn same_as(&self, other: &OrderSpec) -> bool {
        self.plan_id == other.plan_id
            && self.sim_type == other.sim_type
            && self.port.as_ref().map(|p| &p.number) == other.port.as_ref().map(|p| &p.number)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct PurchaseRecord {
    pub transaction_id: String,
    pub order: OrderSpec,
    pub status: PurchaseStatusCode,
    pub payment_status: Option<&'static str>,
    pub link_expires: Option<DateTime<Utc>>,
    pub customer_id: Option<String>,
    pub payment_status_desc: Option<&'static str>,
    pub shipment_status: Option<&'static str>,
    entered: DateTime<Utc>,
    polls: u32,
    card_accepted: bool,
}

/// The answer to a purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Submitted {
    /// A new purchase.
    New(String),
    /// The `clientAccountId` already names this purchase.
    Existing {
        transaction_id: String,
        status: PurchaseStatusCode,
    },
    /// The `clientAccountId` names a different order.
    KeyInUse,
}

/// What happened to purchases; the shell turns these into ledger entries, callbacks and
/// browser returns.
#[derive(Debug, Clone)]
pub(crate) enum PurchaseEvent {
    Ordered {
        transaction_id: String,
        order: OrderSpec,
    },
    Paid {
        transaction_id: String,
        client_account_id: String,
        amount_cents: u64,
    },
    CustomerReturned {
        transaction_id: String,
        redirect_url: Url,
    },
    Completed {
        transaction_id: String,
        customer_id: String,
        order: OrderSpec,
    },
    Failed {
        transaction_id: String,
        client_account_id: String,
    },
}

/// Why a world action failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WorldError {
    /// No purchase, line or record with this id.
    #[error("unknown id")]
    Unknown,
    /// The purchase is not waiting for a payment.
    #[error("the purchase is {0}, not waiting for payment")]
    NotAwaitingPayment(PurchaseStatusCode),
}

pub(crate) const DECLINED_DESC: &str = "Card declined by the issuer.";
pub(crate) const EXPIRED_DESC: &str = "Payment link expired before the customer paid.";

#[derive(Debug)]
pub(crate) struct PurchaseBook {
    records: HashMap<String, PurchaseRecord>,
    order: VecDeque<String>,
    by_account: HashMap<String, String>,
    unsettled: HashSet<String>,
    rng: StdRng,
}

pub(crate) fn after(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Whether a state entered at `entered` and polled `polls` times moves on now.
pub(crate) fn ready(
    progress: Progress,
    entered: DateTime<Utc>,
    polls: u32,
    now: DateTime<Utc>,
) -> bool {
    match progress {
        Progress::After(d) => now >= after(entered, d),
        Progress::AfterPolls(n) => polls > n,
    }
}

/// A random id `PREFIX-XXXXXXXXXXXX` (upper-case hex) not yet in `taken`.
pub(crate) fn new_id(rng: &mut StdRng, prefix: &str, taken: impl Fn(&str) -> bool) -> String {
    loop {
        let id = format!("{prefix}-{:012X}", rng.random_range(0..(1u64 << 48)));
        if !taken(&id) {
            return id;
        }
    }
}

impl PurchaseBook {
    pub fn new(seed: u64) -> Self {
        Self {
            records: HashMap::new(),
            order: VecDeque::new(),
            by_account: HashMap::new(),
            unsettled: HashSet::new(),
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Accepts an order, or names the purchase its `clientAccountId` already has.
    pub fn submit(
        &mut self,
        order: OrderSpec,
        now: DateTime<Utc>,
        rules: &PurchaseRules,
    ) -> (Submitted, Vec<PurchaseEvent>) {
        if let Some(existing) = self
            .by_account
            .get(&order.client_account_id)
            .and_then(|t| self.records.get(t))
        {
            return if existing.order.same_as(&order) {
                let transaction_id = existing.transaction_id.clone();
                let mut events = Vec::new();
                let status = self.settle_one(&transaction_id, now, rules, false, &mut events);
                (
                    Submitted::Existing {
                        transaction_id,
                        status: status.unwrap_or(PurchaseStatusCode::Failed),
                    },
                    events,
                )
            } else {
                (Submitted::KeyInUse, Vec::new())
            };
        }
        self.evict(rules.max_records);
        let transaction_id = new_id(&mut self.rng, "TXN", |id| self.records.contains_key(id));
        self.records.insert(
            transaction_id.clone(),
            PurchaseRecord {
                transaction_id: transaction_id.clone(),
                order: order.clone(),
                status: PurchaseStatusCode::Initiated,
                payment_status: None,
                link_expires: None,
                customer_id: None,
                payment_status_desc: None,
                shipment_status: None,
                entered: now,
                polls: 0,
                card_accepted: false,
            },
        );
        self.order.push_back(transaction_id.clone());
        self.by_account
            .insert(order.client_account_id.clone(), transaction_id.clone());
        self.unsettled.insert(transaction_id.clone());
        let mut events = vec![PurchaseEvent::Ordered {
            transaction_id: transaction_id.clone(),
            order,
        }];
        self.settle_one(&transaction_id, now, rules, false, &mut events);
        (Submitted::New(transaction_id), events)
    }

    /// A status poll: counts it, applies due transitions, returns the record.
    pub fn poll(
        &mut self,
        transaction_id: &str,
        now: DateTime<Utc>,
        rules: &PurchaseRules,
    ) -> (Option<PurchaseRecord>, Vec<PurchaseEvent>) {
        let mut events = Vec::new();
        self.settle_one(transaction_id, now, rules, true, &mut events);
        (self.records.get(transaction_id).cloned(), events)
    }

    /// The customer pays (or their card is declined).
    pub fn pay(
        &mut self,
        transaction_id: &str,
        card_accepted: bool,
        now: DateTime<Utc>,
        rules: &PurchaseRules,
    ) -> Result<Vec<PurchaseEvent>, WorldError> {
        let mut events = Vec::new();
        let status = self
            .settle_one(transaction_id, now, rules, false, &mut events)
            .ok_or(WorldError::Unknown)?;
        if status != PurchaseStatusCode::PaymentPending {
            return Err(WorldError::NotAwaitingPayment(status));
        }
        if let Some(record) = self.records.get_mut(transaction_id) {
            start_processing(record, card_accepted, now, &mut events);
        }
        self.settle_one(transaction_id, now, rules, false, &mut events);
        Ok(events)
    }

    /// Applies every transition due by `now` (the simulator's clock tick).
    pub fn advance(&mut self, now: DateTime<Utc>, rules: &PurchaseRules) -> Vec<PurchaseEvent> {
        let mut events = Vec::new();
        let due: Vec<String> = self.unsettled.iter().cloned().collect();
        for transaction_id in due {
            self.settle_one(&transaction_id, now, rules, false, &mut events);
        }
        events
    }

    pub fn get(&self, transaction_id: &str) -> Option<&PurchaseRecord> {
        self.records.get(transaction_id)
    }

    /// Every kept purchase, oldest first.
    pub fn records(&self) -> Vec<PurchaseRecord> {
        self.order
            .iter()
            .filter_map(|t| self.records.get(t).cloned())
            .collect()
    }

    fn evict(&mut self, max_records: usize) {
        while self.records.len() >= max_records.max(1) {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(evicted) = self.records.remove(&oldest) {
                self.unsettled.remove(&oldest);
                if self.by_account.get(&evicted.order.client_account_id) == Some(&oldest) {
                    self.by_account.remove(&evicted.order.client_account_id);
                }
            }
        }
    }

    /// Applies the transitions of one purchase; returns its status after them.
    fn settle_one(
        &mut self,
        transaction_id: &str,
        now: DateTime<Utc>,
        rules: &PurchaseRules,
        polled: bool,
        events: &mut Vec<PurchaseEvent>,
    ) -> Option<PurchaseStatusCode> {
        let record = self.records.get_mut(transaction_id)?;
        if polled {
            record.polls = record.polls.saturating_add(1);
        }
        // Several transitions may be due at once (zero delays); each new state starts
        // unpolled.
        loop {
            let before = record.status;
            step(record, now, rules, &mut self.rng, events);
            if record.status == before {
                break;
            }
        }
        if record.status.is_final() {
            self.unsettled.remove(transaction_id);
        }
        Some(record.status)
    }
}

fn enter(record: &mut PurchaseRecord, status: PurchaseStatusCode, now: DateTime<Utc>) {
    record.status = status;
    record.entered = now;
    record.polls = 0;
}

fn start_processing(
    record: &mut PurchaseRecord,
    card_accepted: bool,
    now: DateTime<Utc>,
    events: &mut Vec<PurchaseEvent>,
) {
    enter(record, PurchaseStatusCode::PaymentProcessing, now);
    record.payment_status = Some("PROCESSING");
    record.card_accepted = card_accepted;
    if card_accepted {
        events.push(PurchaseEvent::Paid {
            transaction_id: record.transaction_id.clone(),
            client_account_id: record.order.client_account_id.clone(),
            amount_cents: record.order.amount_cents,
        });
    }
}

/// One transition, if due.
fn step(
    record: &mut PurchaseRecord,
    now: DateTime<Utc>,
    rules: &PurchaseRules,
    rng: &mut StdRng,
    events: &mut Vec<PurchaseEvent>,
) {
    match record.status {
        PurchaseStatusCode::Initiated => {
            if ready(rules.link_after, record.entered, record.polls, now) {
                enter(record, PurchaseStatusCode::PaymentPending, now);
                record.payment_status = Some("PENDING");
                record.link_expires = Some(after(now, rules.link_ttl));
            }
        }
        PurchaseStatusCode::PaymentPending => {
            let expires = record.link_expires.unwrap_or(now);
            let pays = match rules.customer {
                CustomerPayment::PayAfter { delay, success } => {
                    let at = after(record.entered, delay);
                    (at < expires && now >= at).then_some(success)
                }
                CustomerPayment::Manual => None,
            };
            if let Some(success) = pays {
                start_processing(record, success, now, events);
                events.push(PurchaseEvent::CustomerReturned {
                    transaction_id: record.transaction_id.clone(),
                    redirect_url: record.order.redirect_url.clone(),
                });
            } else if now >= expires {
                enter(record, PurchaseStatusCode::Failed, now);
                record.payment_status = Some("EXPIRED");
                record.payment_status_desc = Some(EXPIRED_DESC);
                events.push(PurchaseEvent::Failed {
                    transaction_id: record.transaction_id.clone(),
                    client_account_id: record.order.client_account_id.clone(),
                });
            }
        }
        PurchaseStatusCode::PaymentProcessing => {
            if !ready(rules.settle_after, record.entered, record.polls, now) {
                return;
            }
            if record.card_accepted {
                let customer_id = format!("CUS-{:010}", rng.random_range(0..10_000_000_000u64));
                enter(record, PurchaseStatusCode::Completed, now);
                record.payment_status = Some("SUCCESS");
                record.customer_id = Some(customer_id.clone());
                record.shipment_status = Some(match record.order.sim_type {
                    SimType::Psim => "PENDING_SHIPMENT",
                    SimType::Esim => "NOT_APPLICABLE",
                });
                events.push(PurchaseEvent::Completed {
                    transaction_id: record.transaction_id.clone(),
                    customer_id,
                    order: record.order.clone(),
                });
            } else {
                enter(record, PurchaseStatusCode::Failed, now);
                record.payment_status = Some("DECLINED");
                record.payment_status_desc = Some(DECLINED_DESC);
                events.push(PurchaseEvent::Failed {
                    transaction_id: record.transaction_id.clone(),
                    client_account_id: record.order.client_account_id.clone(),
                });
            }
        }
        PurchaseStatusCode::Completed | PurchaseStatusCode::Failed => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(
        link_after: Progress,
        settle_after: Progress,
        customer: CustomerPayment,
    ) -> PurchaseRules {
        PurchaseRules {
            link_after,
            link_ttl: Duration::from_secs(600),
            settle_after,
            customer,
            max_records: 100,
        }
    }

    fn order(account: &str) -> OrderSpec {
        OrderSpec {
            client_account_id: account.to_owned(),
            plan_id: "PLAN-A".to_owned(),
            plan_name: "Plan A".to_owned(),
            sim_type: SimType::Esim,
            redirect_url: Url::parse("https://brand.example/r").unwrap(),
            amount_cents: 2159,
            port: None,
        }
    }

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-03-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn status(
        book: &mut PurchaseBook,
        tx: &str,
        at: DateTime<Utc>,
        rules: &PurchaseRules,
    ) -> PurchaseStatusCode {
        book.poll(tx, at, rules).0.unwrap().status
    }

    #[test]
    fn initiated_then_link_then_paid_then_completed() {
        let rules = rules(
            Progress::After(secs(2)),
            Progress::After(secs(3)),
            CustomerPayment::Manual,
        );
        let mut book = PurchaseBook::new(1);
        let (submitted, events) = book.submit(order("J-1"), t0(), &rules);
        let Submitted::New(tx) = submitted else {
            panic!("{submitted:?}")
        };
        assert!(matches!(events.as_slice(), [PurchaseEvent::Ordered { .. }]));
        assert_eq!(
            status(&mut book, &tx, t0() + TimeDelta::seconds(1), &rules),
            PurchaseStatusCode::Initiated
        );
        let (record, _) = book.poll(&tx, t0() + TimeDelta::seconds(2), &rules);
        let record = record.unwrap();
        assert_eq!(record.status, PurchaseStatusCode::PaymentPending);
        assert_eq!(record.link_expires, Some(t0() + TimeDelta::seconds(602)));

        let paid = book
            .pay(&tx, true, t0() + TimeDelta::seconds(10), &rules)
            .unwrap();
        assert!(matches!(
            paid.as_slice(),
            [PurchaseEvent::Paid {
                amount_cents: 2159,
                ..
            }]
        ));
        assert_eq!(
            status(&mut book, &tx, t0() + TimeDelta::seconds(12), &rules),
            PurchaseStatusCode::PaymentProcessing
        );
        let (record, events) = book.poll(&tx, t0() + TimeDelta::seconds(13), &rules);
        let record = record.unwrap();
        assert_eq!(record.status, PurchaseStatusCode::Completed);
        assert!(
            record
                .customer_id
                .as_deref()
                .is_some_and(|c| c.starts_with("CUS-"))
        );
        assert!(matches!(
            events.as_slice(),
            [PurchaseEvent::Completed { .. }]
        ));
        // Paying twice is refused.
        assert_eq!(
            book.pay(&tx, true, t0() + TimeDelta::seconds(14), &rules)
                .unwrap_err(),
            WorldError::NotAwaitingPayment(PurchaseStatusCode::Completed)
        );
    }

    #[test]
    fn a_declined_card_fails_with_a_description_and_no_payment() {
        let rules = rules(
            Progress::AfterPolls(0),
            Progress::AfterPolls(1),
            CustomerPayment::Manual,
        );
        let mut book = PurchaseBook::new(1);
        let Submitted::New(tx) = book.submit(order("J-1"), t0(), &rules).0 else {
            panic!()
        };
        assert_eq!(
            status(&mut book, &tx, t0(), &rules),
            PurchaseStatusCode::PaymentPending
        );
        let events = book.pay(&tx, false, t0(), &rules).unwrap();
        assert!(events.is_empty(), "no money moved: {events:?}");
        assert_eq!(
            status(&mut book, &tx, t0(), &rules),
            PurchaseStatusCode::PaymentProcessing
        );
        let (record, events) = book.poll(&tx, t0(), &rules);
        let record = record.unwrap();
        assert_eq!(record.status, PurchaseStatusCode::Failed);
        assert_eq!(record.payment_status_desc, Some(DECLINED_DESC));
        assert!(matches!(events.as_slice(), [PurchaseEvent::Failed { .. }]));
    }

    #[test]
    fn an_unpaid_link_expires() {
        let mut rules = rules(
            Progress::After(secs(0)),
            Progress::After(secs(0)),
            CustomerPayment::Manual,
        );
        rules.link_ttl = secs(30);
        let mut book = PurchaseBook::new(1);
        let Submitted::New(tx) = book.submit(order("J-1"), t0(), &rules).0 else {
            panic!()
        };
        assert_eq!(
            book.get(&tx).unwrap().status,
            PurchaseStatusCode::PaymentPending
        );
        let events = book.advance(t0() + TimeDelta::seconds(30), &rules);
        assert!(matches!(events.as_slice(), [PurchaseEvent::Failed { .. }]));
        let record = book.get(&tx).unwrap();
        assert_eq!(record.payment_status, Some("EXPIRED"));
        assert_eq!(record.payment_status_desc, Some(EXPIRED_DESC));
        assert!(
            book.pay(&tx, true, t0() + TimeDelta::seconds(31), &rules)
                .is_err()
        );
    }

    #[test]
    fn zero_delays_and_auto_pay_complete_in_one_step_with_a_browser_return() {
        let rules = rules(
            Progress::After(secs(0)),
            Progress::After(secs(0)),
            CustomerPayment::PayAfter {
                delay: secs(0),
                success: true,
            },
        );
        let mut book = PurchaseBook::new(1);
        let (submitted, events) = book.submit(order("J-1"), t0(), &rules);
        assert!(matches!(submitted, Submitted::New(_)));
        let kinds: Vec<&str> = events
            .iter()
            .map(|e| match e {
                PurchaseEvent::Ordered { .. } => "ordered",
                PurchaseEvent::Paid { .. } => "paid",
                PurchaseEvent::CustomerReturned { .. } => "returned",
                PurchaseEvent::Completed { .. } => "completed",
                PurchaseEvent::Failed { .. } => "failed",
            })
            .collect();
        assert_eq!(kinds, ["ordered", "paid", "returned", "completed"]);
    }

    #[test]
    fn one_client_account_id_names_one_purchase() {
        let rules = rules(
            Progress::After(secs(5)),
            Progress::After(secs(5)),
            CustomerPayment::Manual,
        );
        let mut book = PurchaseBook::new(1);
        let Submitted::New(tx) = book.submit(order("J-1"), t0(), &rules).0 else {
            panic!()
        };
        let (again, events) = book.submit(order("J-1"), t0() + TimeDelta::seconds(6), &rules);
        assert_eq!(
            again,
            Submitted::Existing {
                transaction_id: tx.clone(),
                status: PurchaseStatusCode::PaymentPending
            }
        );
        assert!(
            events
                .iter()
                .all(|e| !matches!(e, PurchaseEvent::Ordered { .. }))
        );
        let mut other = order("J-1");
        other.plan_id = "PLAN-B".to_owned();
        assert_eq!(book.submit(other, t0(), &rules).0, Submitted::KeyInUse);
        assert!(matches!(book.submit(order("J-2"), t0(), &rules).0, Submitted::New(t) if t != tx));
    }

    #[test]
    fn the_book_is_bounded() {
        let mut rules = rules(
            Progress::After(secs(5)),
            Progress::After(secs(5)),
            CustomerPayment::Manual,
        );
        rules.max_records = 2;
        let mut book = PurchaseBook::new(1);
        let Submitted::New(first) = book.submit(order("J-1"), t0(), &rules).0 else {
            panic!()
        };
        book.submit(order("J-2"), t0(), &rules);
        book.submit(order("J-3"), t0(), &rules);
        assert_eq!(book.records().len(), 2);
        assert!(book.get(&first).is_none());
    }

    #[test]
    fn ids_are_deterministic_per_seed() {
        let rules = rules(
            Progress::After(secs(5)),
            Progress::After(secs(5)),
            CustomerPayment::Manual,
        );
        let a = PurchaseBook::new(9).submit(order("J-1"), t0(), &rules).0;
        let b = PurchaseBook::new(9).submit(order("J-1"), t0(), &rules).0;
        assert_eq!(a, b);
    }
}
