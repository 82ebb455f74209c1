//! The line model of the Reach simulator (activation and port-in), without HTTP: every
//! method takes the current time and returns what happened.
//!
//! A line exists once its purchase completed (status 0). Activation moves it to
//! 1 ACTIVATION_IN_PROGRESS, then to 2 ACTIVE with a new number, or to 8 ACTIVATION_FAILED
//! when its device was scripted to fail. A line bought with port-in details goes to
//! 9 PORTING_IN_PROGRESS instead; the losing carrier ([`LosingCarrierAccount`]) then checks
//! the PIN, the account number and the ZIP, in that order: the first mismatch gives
//! 10 PORTING_FAILED with an `activationMsg` naming it, until a port-in update corrects it;
//! a match gives 2 ACTIVE with the ported number. `CANCEL_PORT` gives 11, `CANCEL_AND_NEW`
//! activates a new number instead.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

use chrono::{DateTime, Utc};
use rand::SeedableRng;
use rand::rngs::StdRng;
use secrecy::{ExposeSecret, SecretString};

use super::purchase::{PortSpec, Progress, new_id, ready};
use crate::reach::{ActivationCode, SimType};

/// What the losing carrier has on file for a number: a port-in succeeds only when the
/// customer's details match. Numbers without a record port with any details.
#[derive(Clone)]
pub struct LosingCarrierAccount {
    /// The account number on file.
    pub account_number: String,
    /// The transfer PIN on file.
    pub pin: SecretString,
    /// The billing ZIP on file.
    pub zip: String,
    /// How many port attempts fail with "the losing carrier did not respond" before the
    /// details are even checked (answered by `RESUBMIT_PORT`).
    pub transient_failures: u32,
}

impl fmt::Debug for LosingCarrierAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LosingCarrierAccount")
            .field("zip", &self.zip)
            .field("transient_failures", &self.transient_failures)
            .finish_non_exhaustive()
    }
}

/// `activationMsg` when the PIN is wrong.
pub const WRONG_PIN: &str =
    "Port-in rejected by the losing carrier: the PIN (password) is incorrect.";
/// `activationMsg` when the account number is wrong.
pub const WRONG_ACCOUNT: &str =
    "Port-in rejected by the losing carrier: the account number is incorrect.";
/// `activationMsg` when the ZIP is wrong.
pub const WRONG_ZIP: &str =
    "Port-in rejected by the losing carrier: the billing ZIP code does not match.";
/// `activationMsg` of a transient failure.
pub const NO_RESPONSE: &str = "The losing carrier did not respond; resubmit the port.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LineRules {
    pub activation_after: Progress,
    pub port_after: Progress,
    pub max_records: usize,
}

/// The device or SIM an activation names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DeviceRef {
    Esim(String),
    Psim(String),
}

impl DeviceRef {
    fn id(&self) -> &str {
        match self {
            DeviceRef::Esim(id) | DeviceRef::Psim(id) => id,
        }
    }
}

/// A port-in update as received.
#[derive(Debug, Clone)]
pub(crate) enum PortUpdateSpec {
    Pin(SecretString),
    Account(String),
    Zip(String),
    Resubmit,
    Cancel,
    CancelAndNew,
}

#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub customer_id: String,
    pub plan_name: String,
    pub sim_type: SimType,
    pub status: ActivationCode,
    pub transaction_id: Option<String>,
    pub activation_msg: Option<String>,
    pub mobile_no: Option<String>,
    pub activation_date: Option<DateTime<Utc>>,
    pub port: Option<PortSpec>,
    pub device: Option<DeviceRef>,
    entered: DateTime<Utc>,
    polls: u32,
    port_submitted: bool,
    scripted_failure: Option<String>,
}

/// An accepted activation or update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Accepted {
    pub transaction_id: String,
    pub status: ActivationCode,
}

/// Why an activation or update was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    UnknownCustomer,
    /// The line is in a state the request does not apply to.
    Conflict {
        transaction_id: Option<String>,
        status: ActivationCode,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LineEvent {
    PortSubmitted {
        customer_id: String,
        number: String,
        transaction_id: String,
    },
    Activated {
        customer_id: String,
        transaction_id: String,
        mobile_no: String,
        ported: bool,
    },
    ActivationFailed {
        customer_id: String,
        transaction_id: String,
        message: String,
    },
    PortFailed {
        customer_id: String,
        transaction_id: String,
        message: &'static str,
    },
    PortCancelled {
        customer_id: String,
        transaction_id: String,
    },
}

#[derive(Debug)]
pub(crate) struct LineBook {
    lines: HashMap<String, Line>,
    order: VecDeque<String>,
    unsettled: HashSet<String>,
    carriers: HashMap<String, LosingCarrierAccount>,
    failing_devices: HashMap<String, String>,
    numbers_in_use: HashSet<String>,
    next_number: u64,
    rng: StdRng,
}

impl LineBook {
    pub fn new(seed: u64) -> Self {
        Self {
            lines: HashMap::new(),
            order: VecDeque::new(),
            unsettled: HashSet::new(),
            carriers: HashMap::new(),
            failing_devices: HashMap::new(),
            numbers_in_use: HashSet::new(),
            next_number: 0,
            rng: StdRng::seed_from_u64(seed ^ 0x6c69_6e65),
        }
    }

    /// A purchase completed: the customer's line exists, inactive.
    pub fn open(
        &mut self,
        customer_id: &str,
        plan_name: &str,
        sim_type: SimType,
        port: Option<PortSpec>,
        now: DateTime<Utc>,
        rules: &LineRules,
    ) {
        if self.lines.contains_key(customer_id) {
            return;
        }
        while self.lines.len() >= rules.max_records.max(1) {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.unsettled.remove(&oldest);
            if let Some(line) = self.lines.remove(&oldest)
                && let Some(number) = line.mobile_no
            {
                self.numbers_in_use.remove(&number);
            }
        }
        self.lines.insert(
            customer_id.to_owned(),
            Line {
                customer_id: customer_id.to_owned(),
                plan_name: plan_name.to_owned(),
                sim_type,
                status: ActivationCode::Inactive,
                transaction_id: None,
                activation_msg: None,
                mobile_no: None,
                activation_date: None,
                port,
                device: None,
                entered: now,
                polls: 0,
                port_submitted: false,
                scripted_failure: None,
            },
        );
        self.order.push_back(customer_id.to_owned());
    }

    /// The losing carrier's record for `number` (world data).
    pub fn set_losing_carrier(&mut self, number: &str, account: LosingCarrierAccount) {
        self.carriers.insert(number.to_owned(), account);
    }

    /// The next activation with this IMEI or ICCID fails with `message`.
    pub fn fail_device(&mut self, device: &str, message: &str) {
        self.failing_devices
            .insert(device.to_owned(), message.to_owned());
    }

    /// Whether `number` is a live line here (it cannot be ported in again).
    pub fn number_in_use(&self, number: &str) -> bool {
        self.numbers_in_use.contains(number)
    }

    pub fn activate(
        &mut self,
        customer_id: &str,
        device: DeviceRef,
        now: DateTime<Utc>,
        rules: &LineRules,
    ) -> Result<(Accepted, Vec<LineEvent>), Refused> {
        let mut events = Vec::new();
        self.settle_one(customer_id, now, rules, false, &mut events);
        let line = self
            .lines
            .get_mut(customer_id)
            .ok_or(Refused::UnknownCustomer)?;
        if !matches!(
            line.status,
            ActivationCode::Inactive | ActivationCode::Failed
        ) {
            return Err(Refused::Conflict {
                transaction_id: line.transaction_id.clone(),
                status: line.status,
            });
        }
        line.scripted_failure = self.failing_devices.remove(device.id());
        line.device = Some(device);
        line.activation_msg = None;
        let accepted = if let Some(port) = line
            .port
            .as_ref()
            .filter(|_| line.status == ActivationCode::Inactive)
        {
            let transaction_id = new_id(&mut self.rng, "PRT", |_| false);
            if !line.port_submitted {
                line.port_submitted = true;
                events.push(LineEvent::PortSubmitted {
                    customer_id: customer_id.to_owned(),
                    number: port.number.clone(),
                    transaction_id: transaction_id.clone(),
                });
            }
            enter(line, ActivationCode::PortingInProgress, transaction_id, now)
        } else {
            let transaction_id = new_id(&mut self.rng, "ACT", |_| false);
            enter(line, ActivationCode::InProgress, transaction_id, now)
        };
        self.unsettled.insert(customer_id.to_owned());
        self.settle_one(customer_id, now, rules, false, &mut events);
        Ok((accepted, events))
    }

    pub fn update_port(
        &mut self,
        customer_id: &str,
        update: PortUpdateSpec,
        now: DateTime<Utc>,
        rules: &LineRules,
    ) -> Result<(Accepted, Vec<LineEvent>), Refused> {
        let mut events = Vec::new();
        self.settle_one(customer_id, now, rules, false, &mut events);
        let line = self
            .lines
            .get_mut(customer_id)
            .ok_or(Refused::UnknownCustomer)?;
        let applicable = line.port.is_some()
            && match update {
                PortUpdateSpec::Cancel => matches!(
                    line.status,
                    ActivationCode::PortingInProgress | ActivationCode::PortingFailed
                ),
                _ => line.status == ActivationCode::PortingFailed,
            };
        if !applicable {
            return Err(Refused::Conflict {
                transaction_id: line.transaction_id.clone(),
                status: line.status,
            });
        }
        line.activation_msg = None;
        let accepted = match update {
            PortUpdateSpec::Cancel => {
                let transaction_id = new_id(&mut self.rng, "PRT", |_| false);
                events.push(LineEvent::PortCancelled {
                    customer_id: customer_id.to_owned(),
                    transaction_id: transaction_id.clone(),
                });
                enter(line, ActivationCode::PortCancelled, transaction_id, now)
            }
            PortUpdateSpec::CancelAndNew => {
                line.port = None;
                let transaction_id = new_id(&mut self.rng, "ACT", |_| false);
                enter(line, ActivationCode::InProgress, transaction_id, now)
            }
            correction => {
                if let Some(port) = line.port.as_mut() {
                    match correction {
                        PortUpdateSpec::Pin(pin) => port.pin = pin,
                        PortUpdateSpec::Account(account) => port.account = account,
                        PortUpdateSpec::Zip(zip) => port.zip = zip,
                        _ => {}
                    }
                }
                let transaction_id = new_id(&mut self.rng, "PRT", |_| false);
                enter(line, ActivationCode::PortingInProgress, transaction_id, now)
            }
        };
        self.unsettled.insert(customer_id.to_owned());
        self.settle_one(customer_id, now, rules, false, &mut events);
        Ok((accepted, events))
    }

    /// A status poll: counts it, applies due transitions, returns the line.
    pub fn poll(
        &mut self,
        customer_id: &str,
        now: DateTime<Utc>,
        rules: &LineRules,
    ) -> (Option<Line>, Vec<LineEvent>) {
        let mut events = Vec::new();
        self.settle_one(customer_id, now, rules, true, &mut events);
        (self.lines.get(customer_id).cloned(), events)
    }

    pub fn advance(&mut self, now: DateTime<Utc>, rules: &LineRules) -> Vec<LineEvent> {
        let mut events = Vec::new();
        let due: Vec<String> = self.unsettled.iter().cloned().collect();
        for customer_id in due {
            self.settle_one(&customer_id, now, rules, false, &mut events);
        }
        events
    }

    pub fn get(&self, customer_id: &str) -> Option<&Line> {
        self.lines.get(customer_id)
    }

    fn settle_one(
        &mut self,
        customer_id: &str,
        now: DateTime<Utc>,
        rules: &LineRules,
        polled: bool,
        events: &mut Vec<LineEvent>,
    ) {
        let Some(line) = self.lines.get_mut(customer_id) else {
            return;
        };
        if polled {
            line.polls = line.polls.saturating_add(1);
        }
        match line.status {
            ActivationCode::InProgress
                if ready(rules.activation_after, line.entered, line.polls, now) =>
            {
                let transaction_id = line.transaction_id.clone().unwrap_or_default();
                if let Some(message) = line.scripted_failure.take() {
                    line.status = ActivationCode::Failed;
                    line.entered = now;
                    line.polls = 0;
                    line.activation_msg = Some(message.clone());
                    events.push(LineEvent::ActivationFailed {
                        customer_id: customer_id.to_owned(),
                        transaction_id,
                        message,
                    });
                } else {
                    self.next_number += 1;
                    let number = loop {
                        let candidate = format!("512{:07}", self.next_number % 10_000_000);
                        if !self.numbers_in_use.contains(&candidate) {
                            break candidate;
                        }
                        self.next_number += 1;
                    };
                    activate(line, number.clone(), now);
                    self.numbers_in_use.insert(number.clone());
                    events.push(LineEvent::Activated {
                        customer_id: customer_id.to_owned(),
                        transaction_id,
                        mobile_no: number,
                        ported: false,
                    });
                }
            }
            ActivationCode::PortingInProgress
                if ready(rules.port_after, line.entered, line.polls, now) =>
            {
                let transaction_id = line.transaction_id.clone().unwrap_or_default();
                let Some(port) = line.port.clone() else {
                    return;
                };
                let verdict = match self.carriers.get_mut(&port.number) {
                    None => None,
                    Some(record) if record.transient_failures > 0 => {
                        record.transient_failures -= 1;
                        Some(NO_RESPONSE)
                    }
                    Some(record) if record.pin.expose_secret() != port.pin.expose_secret() => {
                        Some(WRONG_PIN)
                    }
                    Some(record) if record.account_number != port.account => Some(WRONG_ACCOUNT),
                    Some(record) if record.zip != port.zip => Some(WRONG_ZIP),
                    Some(_) => None,
                };
                match verdict {
                    Some(message) => {
                        line.status = ActivationCode::PortingFailed;
                        line.entered = now;
                        line.polls = 0;
                        line.activation_msg = Some(message.to_owned());
                        events.push(LineEvent::PortFailed {
                            customer_id: customer_id.to_owned(),
                            transaction_id,
                            message,
                        });
                    }
                    None => {
                        activate(line, port.number.clone(), now);
                        self.numbers_in_use.insert(port.number.clone());
                        events.push(LineEvent::Activated {
                            customer_id: customer_id.to_owned(),
                            transaction_id,
                            mobile_no: port.number,
                            ported: true,
                        });
                    }
                }
            }
            _ => {}
        }
        if let Some(line) = self.lines.get(customer_id)
            && !matches!(
                line.status,
                ActivationCode::InProgress | ActivationCode::PortingInProgress
            )
        {
            self.unsettled.remove(customer_id);
        }
    }
}

fn enter(
    line: &mut Line,
    status: ActivationCode,
    transaction_id: String,
    now: DateTime<Utc>,
) -> Accepted {
    line.status = status;
    line.transaction_id = Some(transaction_id.clone());
    line.entered = now;
    line.polls = 0;
    Accepted {
        transaction_id,
        status,
    }
}

fn activate(line: &mut Line, number: String, now: DateTime<Utc>) {
    line.status = ActivationCode::Active;
    line.entered = now;
    line.polls = 0;
    line.mobile_no = Some(number);
    line.activation_date = Some(now);
    line.activation_msg = None;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::TimeDelta;

    use super::*;

    const NUMBER: &str = "2125550100";

    fn rules() -> LineRules {
        LineRules {
            activation_after: Progress::After(Duration::from_secs(60)),
            port_after: Progress::AfterPolls(1),
            max_records: 100,
        }
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-03-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + TimeDelta::seconds(s)
    }

    fn port(pin: &str, account: &str, zip: &str) -> PortSpec {
        PortSpec {
            number: NUMBER.to_owned(),
            carrier: "T-Mobile".to_owned(),
            account: account.to_owned(),
            pin: SecretString::from(pin),
            zip: zip.to_owned(),
        }
    }

    fn status(book: &mut LineBook, at: DateTime<Utc>) -> (ActivationCode, Option<String>) {
        let line = book.poll("CUS-1", at, &rules()).0.unwrap();
        (line.status, line.activation_msg)
    }

    fn failed_with(message: &str) -> (ActivationCode, Option<String>) {
        (ActivationCode::PortingFailed, Some(message.to_owned()))
    }

    #[test]
    fn activation_goes_active_with_a_new_number_once() {
        let rules = rules();
        let mut book = LineBook::new(1);
        book.open("CUS-1", "Plan A", SimType::Esim, None, t(0), &rules);
        assert_eq!(status(&mut book, t(0)).0, ActivationCode::Inactive);
        let (accepted, events) = book
            .activate(
                "CUS-1",
                DeviceRef::Esim("356938035643809".into()),
                t(1),
                &rules,
            )
            .unwrap();
        assert_eq!(accepted.status, ActivationCode::InProgress);
        assert!(accepted.transaction_id.starts_with("ACT-"));
        assert!(events.is_empty());
        // Activating again while in progress is a conflict naming the same operation.
        assert_eq!(
            book.activate(
                "CUS-1",
                DeviceRef::Esim("356938035643809".into()),
                t(2),
                &rules
            ),
            Err(Refused::Conflict {
                transaction_id: Some(accepted.transaction_id),
                status: ActivationCode::InProgress
            })
        );
        let events = book.advance(t(61), &rules);
        assert!(
            matches!(events.as_slice(), [LineEvent::Activated { ported: false, mobile_no, .. }] if mobile_no.starts_with("512")),
            "{events:?}"
        );
        assert_eq!(status(&mut book, t(62)).0, ActivationCode::Active);
        assert!(
            book.activate("CUS-1", DeviceRef::Esim("x".into()), t(63), &rules)
                .is_err()
        );
        assert_eq!(
            book.activate("CUS-9", DeviceRef::Esim("x".into()), t(63), &rules),
            Err(Refused::UnknownCustomer)
        );
    }

    #[test]
    fn a_scripted_device_fails_once_then_a_retry_succeeds() {
        let rules = rules();
        let mut book = LineBook::new(1);
        book.open("CUS-1", "Plan A", SimType::Psim, None, t(0), &rules);
        book.fail_device("89012601234567890121", "SIM not provisioned");
        let sim = DeviceRef::Psim("89012601234567890121".into());
        book.activate("CUS-1", sim.clone(), t(0), &rules).unwrap();
        let events = book.advance(t(60), &rules);
        assert!(
            matches!(events.as_slice(), [LineEvent::ActivationFailed { message, .. }] if message == "SIM not provisioned")
        );
        assert_eq!(
            status(&mut book, t(61)),
            (
                ActivationCode::Failed,
                Some("SIM not provisioned".to_owned())
            )
        );
        book.activate("CUS-1", sim, t(62), &rules).unwrap();
        book.advance(t(122), &rules);
        assert_eq!(status(&mut book, t(123)).0, ActivationCode::Active);
    }

    #[test]
    fn a_port_fails_on_the_pin_then_the_zip_and_succeeds_once_corrected() {
        let rules = rules();
        let mut book = LineBook::new(1);
        book.set_losing_carrier(
            NUMBER,
            LosingCarrierAccount {
                account_number: "998877".into(),
                pin: SecretString::from("1234"),
                zip: "10001".into(),
                transient_failures: 0,
            },
        );
        book.open(
            "CUS-1",
            "Plan A",
            SimType::Esim,
            Some(port("9999", "998877", "99999")),
            t(0),
            &rules,
        );
        let (accepted, events) = book
            .activate(
                "CUS-1",
                DeviceRef::Esim("356938035643809".into()),
                t(0),
                &rules,
            )
            .unwrap();
        assert_eq!(accepted.status, ActivationCode::PortingInProgress);
        assert!(
            matches!(events.as_slice(), [LineEvent::PortSubmitted { number, .. }] if number == NUMBER)
        );

        assert_eq!(
            status(&mut book, t(1)),
            (ActivationCode::PortingInProgress, None)
        );
        assert_eq!(status(&mut book, t(2)), failed_with(WRONG_PIN));
        let (fixed, _) = book
            .update_port(
                "CUS-1",
                PortUpdateSpec::Pin(SecretString::from("1234")),
                t(3),
                &rules,
            )
            .unwrap();
        assert_eq!(fixed.status, ActivationCode::PortingInProgress);
        assert_ne!(fixed.transaction_id, accepted.transaction_id);
        // Sending it again while porting is a conflict.
        assert!(matches!(
            book.update_port(
                "CUS-1",
                PortUpdateSpec::Pin(SecretString::from("1234")),
                t(3),
                &rules
            ),
            Err(Refused::Conflict {
                status: ActivationCode::PortingInProgress,
                ..
            })
        ));
        status(&mut book, t(4));
        assert_eq!(status(&mut book, t(5)), failed_with(WRONG_ZIP));
        book.update_port("CUS-1", PortUpdateSpec::Zip("10001".into()), t(6), &rules)
            .unwrap();
        status(&mut book, t(7));
        let (line, events) = book.poll("CUS-1", t(8), &rules);
        let line = line.unwrap();
        assert_eq!(line.status, ActivationCode::Active);
        assert_eq!(line.mobile_no.as_deref(), Some(NUMBER));
        assert!(matches!(
            events.as_slice(),
            [LineEvent::Activated { ported: true, .. }]
        ));
        assert!(book.number_in_use(NUMBER));
    }

    #[test]
    fn transient_failures_need_a_resubmit_and_wrong_accounts_are_named() {
        let rules = rules();
        let mut book = LineBook::new(1);
        book.set_losing_carrier(
            NUMBER,
            LosingCarrierAccount {
                account_number: "998877".into(),
                pin: SecretString::from("1234"),
                zip: "10001".into(),
                transient_failures: 1,
            },
        );
        book.open(
            "CUS-1",
            "Plan A",
            SimType::Esim,
            Some(port("1234", "000000", "10001")),
            t(0),
            &rules,
        );
        book.activate("CUS-1", DeviceRef::Esim("1".into()), t(0), &rules)
            .unwrap();
        status(&mut book, t(1));
        assert_eq!(status(&mut book, t(2)), failed_with(NO_RESPONSE));
        book.update_port("CUS-1", PortUpdateSpec::Resubmit, t(3), &rules)
            .unwrap();
        status(&mut book, t(4));
        assert_eq!(status(&mut book, t(5)), failed_with(WRONG_ACCOUNT));
        book.update_port(
            "CUS-1",
            PortUpdateSpec::Account("998877".into()),
            t(6),
            &rules,
        )
        .unwrap();
        status(&mut book, t(7));
        assert_eq!(status(&mut book, t(8)).0, ActivationCode::Active);
    }

    #[test]
    fn cancel_and_cancel_and_new() {
        let rules = rules();
        let mut book = LineBook::new(1);
        book.open(
            "CUS-1",
            "Plan A",
            SimType::Esim,
            Some(port("1", "2", "10001")),
            t(0),
            &rules,
        );
        book.open(
            "CUS-2",
            "Plan A",
            SimType::Esim,
            Some(port("1", "2", "10001")),
            t(0),
            &rules,
        );
        book.set_losing_carrier(
            NUMBER,
            LosingCarrierAccount {
                account_number: "3".into(),
                pin: SecretString::from("1"),
                zip: "10001".into(),
                transient_failures: 0,
            },
        );
        book.activate("CUS-1", DeviceRef::Esim("1".into()), t(0), &rules)
            .unwrap();
        let (cancelled, events) = book
            .update_port("CUS-1", PortUpdateSpec::Cancel, t(1), &rules)
            .unwrap();
        assert_eq!(cancelled.status, ActivationCode::PortCancelled);
        assert!(matches!(
            events.as_slice(),
            [LineEvent::PortCancelled { .. }]
        ));

        book.activate("CUS-2", DeviceRef::Esim("2".into()), t(0), &rules)
            .unwrap();
        book.poll("CUS-2", t(1), &rules);
        book.poll("CUS-2", t(2), &rules);
        let (new, _) = book
            .update_port("CUS-2", PortUpdateSpec::CancelAndNew, t(3), &rules)
            .unwrap();
        assert_eq!(new.status, ActivationCode::InProgress);
        book.advance(t(63), &rules);
        let line = book.get("CUS-2").unwrap();
        assert_eq!(line.status, ActivationCode::Active);
        assert_ne!(line.mobile_no.as_deref(), Some(NUMBER));
    }

    #[test]
    fn updates_need_a_failed_port() {
        let rules = rules();
        let mut book = LineBook::new(1);
        book.open("CUS-1", "Plan A", SimType::Esim, None, t(0), &rules);
        assert_eq!(
            book.update_port("CUS-1", PortUpdateSpec::Resubmit, t(0), &rules),
            Err(Refused::Conflict {
                transaction_id: None,
                status: ActivationCode::Inactive
            })
        );
        assert_eq!(
            book.update_port("CUS-9", PortUpdateSpec::Cancel, t(0), &rules),
            Err(Refused::UnknownCustomer)
        );
    }
}
