//! The request lifecycle of the service operations simulator, without HTTP: every method
//! takes the current time and returns what happened, so the rules are tested with plain
//! values.
//!
//! A request is admitted once per correlation id: the first time it is recorded and
//! scheduled; a repeat of the *same* request is answered like the first without being
//! applied again; a *different* request under a used id is refused. When its delay has
//! passed, the book settles it according to the planned outcome and returns the event to
//! post:
//!
//! | Planned outcome | Create | Update device |
//! |---|---|---|
//! | [`EventOutcome::Success`] | service id taken: `error_event` `SERVICE_ALREADY_EXISTS`; else the service exists from now on, `success_event` `SERVICE_CREATED` | service unknown for this type: `error_event` `SERVICE_NOT_FOUND`; else the device is recorded, `success_event` `SERVICE_DEVICE_UPDATED` |
//! | [`EventOutcome::Error`] | `error_event` with the given code and title | same |
//! | [`EventOutcome::Never`] | stays [`ChangeState::Silent`]: no event unless a world action settles it | same |

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::Value;
use tokio::time::Instant;
use uuid::Uuid;

use crate::service_ops::{CorrelationId, DeviceCategory, EventKind, ServiceType, codes};

/// What the simulated provider reports for the requests it accepts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum EventOutcome {
    /// Carry the request out (subject to the business rules) and post `success_event`.
    #[default]
    Success,
    /// Fail it and post `error_event` with this code and title.
    Error {
        /// The event's `code`.
        code: String,
        /// The event's `title`.
        title: String,
    },
    /// Post nothing; a world action may settle it later.
    Never,
}

impl EventOutcome {
    /// An [`EventOutcome::Error`].
    pub fn error(code: impl Into<String>, title: impl Into<String>) -> Self {
        EventOutcome::Error {
            code: code.into(),
            title: title.into(),
        }
    }
}

/// What a request asks for, with its path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// Create a service. `service_id` is the one requested, or the one the provider
    /// assigned.
    Create {
        /// The path's service type.
        service_type: ServiceType,
        /// The service's id.
        service_id: String,
    },
    /// Update a device of a service.
    UpdateDevice {
        /// The path's service type.
        service_type: ServiceType,
        /// The path's service id.
        service_id: String,
        /// The path's device id.
        device_id: String,
        /// The body's category.
        category: DeviceCategory,
    },
}

impl Change {
    /// The service the change concerns.
    pub fn service_id(&self) -> &str {
        match self {
            Change::Create { service_id, .. } | Change::UpdateDevice { service_id, .. } => {
                service_id
            }
        }
    }

    /// The service type of the path.
    pub fn service_type(&self) -> ServiceType {
        match self {
            Change::Create { service_type, .. } | Change::UpdateDevice { service_type, .. } => {
                *service_type
            }
        }
    }
}

/// A request as submitted. For a create without `service_id`, `change` names `None` here
/// and the book assigns one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Submission {
    pub correlation_id: CorrelationId,
    /// `None` for a create that leaves the id to the provider.
    pub requested: Requested,
    /// The body as received, to tell a repeat from a different request under the same id.
    pub body: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Requested {
    Create {
        service_type: ServiceType,
        service_id: Option<String>,
    },
    UpdateDevice {
        service_type: ServiceType,
        service_id: String,
        device_id: String,
        category: DeviceCategory,
    },
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangeState {
    /// Accepted; its event is due later.
    Processing,
    /// Accepted; no event is planned ([`EventOutcome::Never`]).
    Silent,
    /// Carried out; `success_event` was (or is being) posted.
    Succeeded,
    /// Failed; `error_event` was (or is being) posted.
    Failed,
}

/// An event to post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueEvent {
    /// The request's correlation id.
    pub correlation_id: CorrelationId,
    /// Which event.
    pub kind: EventKind,
    /// `code`.
    pub code: String,
    /// `title`.
    pub title: String,
    /// `service_id`.
    pub service_id: String,
}

/// One admitted request.
#[derive(Debug, Clone)]
pub(crate) struct ChangeRecord {
    pub correlation_id: CorrelationId,
    pub reference: String,
    pub change: Change,
    body: Value,
    requested: Requested,
    planned: EventOutcome,
    pub state: ChangeState,
    /// The event once settled, kept to post it again on a repeat.
    pub event: Option<DueEvent>,
    /// How many times the request was submitted (1 + repeats).
    pub submissions: u32,
}

/// What [`ChangeBook::submit`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Admission {
    /// First time: applied, and the effect must be recorded.
    New { reference: String, change: Change },
    /// The same request again: answer as before, apply nothing. `settled` is its event when
    /// already reported.
    Repeat {
        reference: String,
        settled: Option<DueEvent>,
    },
    /// The id was used for a different request.
    Reused,
}

/// Why a world action failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WorldError {
    /// No request has this correlation id (or it was evicted).
    #[error("no request with this correlation id")]
    UnknownRequest,
    /// The request already has its outcome.
    #[error("the request is already {0:?}")]
    AlreadySettled(ChangeState),
    /// A service with this type and id already exists.
    #[error("the service already exists")]
    ServiceExists,
}

/// The rules the book follows (from the simulator's behaviour).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LifecycleRules {
    pub outcome: EventOutcome,
    pub event_delay: Duration,
    pub max_changes: usize,
    pub max_services: usize,
}

/// A service the simulated provider holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ServiceRecord {
    pub devices: BTreeMap<String, DeviceCategory>,
}

#[derive(Debug)]
pub(crate) struct ChangeBook {
    changes: HashMap<CorrelationId, ChangeRecord>,
    order: VecDeque<CorrelationId>,
    /// Processing requests by due time (and admission number, to keep order on ties).
    pending: BTreeMap<(Instant, u64), CorrelationId>,
    services: HashMap<(ServiceType, String), ServiceRecord>,
    service_order: VecDeque<(ServiceType, String)>,
    admitted: u64,
    rng: StdRng,
}

impl ChangeBook {
    pub fn new(seed: u64) -> Self {
        Self {
            changes: HashMap::new(),
            order: VecDeque::new(),
            pending: BTreeMap::new(),
            services: HashMap::new(),
            service_order: VecDeque::new(),
            admitted: 0,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// A fresh correlation id, for requests that arrive without one.
    pub fn generate_correlation_id(&mut self) -> CorrelationId {
        loop {
            let id = Uuid::from_u128(self.rng.random::<u128>());
            if let Ok(id) = CorrelationId::new(id)
                && !self.changes.contains_key(&id)
            {
                return id;
            }
        }
    }

    /// Admits a request (see [`Admission`]).
    pub fn submit(
        &mut self,
        submission: Submission,
        now: Instant,
        rules: &LifecycleRules,
    ) -> Admission {
        if let Some(existing) = self.changes.get_mut(&submission.correlation_id) {
            if existing.requested != submission.requested || existing.body != submission.body {
                return Admission::Reused;
            }
            existing.submissions += 1;
            return Admission::Repeat {
                reference: existing.reference.clone(),
                settled: existing.event.clone(),
            };
        }
        while self.changes.len() >= rules.max_changes.max(1) {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(evicted) = self.changes.remove(&oldest) {
                self.pending.retain(|_, id| *id != evicted.correlation_id);
            }
        }
        let reference = format!("SO-{:012X}", self.rng.random::<u64>() >> 16);
        let change = match &submission.requested {
            Requested::Create {
                service_type,
                service_id,
            } => Change::Create {
                service_type: *service_type,
                service_id: service_id
                    .clone()
                    .unwrap_or_else(|| format!("svc-{:08x}", self.rng.random::<u32>())),
            },
            Requested::UpdateDevice {
                service_type,
                service_id,
                device_id,
                category,
            } => Change::UpdateDevice {
                service_type: *service_type,
                service_id: service_id.clone(),
                device_id: device_id.clone(),
                category: *category,
            },
        };
        self.admitted += 1;
        let state = if rules.outcome == EventOutcome::Never {
            ChangeState::Silent
        } else {
            self.pending.insert(
                (now + rules.event_delay, self.admitted),
                submission.correlation_id,
            );
            ChangeState::Processing
        };
        self.changes.insert(
            submission.correlation_id,
            ChangeRecord {
                correlation_id: submission.correlation_id,
                reference: reference.clone(),
                change: change.clone(),
                body: submission.body,
                requested: submission.requested,
                planned: rules.outcome.clone(),
                state,
                event: None,
                submissions: 1,
            },
        );
        self.order.push_back(submission.correlation_id);
        Admission::New { reference, change }
    }

    /// Settles every request due at `now`, in due order, and returns their events.
    pub fn due(&mut self, now: Instant, rules: &LifecycleRules) -> Vec<DueEvent> {
        let mut events = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let id = entry.remove();
            let Some(planned) = self.changes.get(&id).map(|r| r.planned.clone()) else {
                continue;
            };
            if let Some(event) = self.settle(id, &planned, rules) {
                events.push(event);
            }
        }
        events
    }

    /// When the next event falls due.
    pub fn next_due(&self) -> Option<Instant> {
        self.pending.keys().next().map(|(at, _)| *at)
    }

    /// A world action: settles a processing or silent request now with `outcome`
    /// ([`EventOutcome::Never`] leaves it silent and returns no event).
    pub fn settle_now(
        &mut self,
        id: CorrelationId,
        outcome: &EventOutcome,
        rules: &LifecycleRules,
    ) -> Result<Option<DueEvent>, WorldError> {
        let record = self.changes.get(&id).ok_or(WorldError::UnknownRequest)?;
        if matches!(record.state, ChangeState::Succeeded | ChangeState::Failed) {
            return Err(WorldError::AlreadySettled(record.state));
        }
        self.pending.retain(|_, pending| *pending != id);
        if *outcome == EventOutcome::Never {
            if let Some(record) = self.changes.get_mut(&id) {
                record.state = ChangeState::Silent;
            }
            return Ok(None);
        }
        Ok(self.settle(id, outcome, rules))
    }

    fn settle(
        &mut self,
        id: CorrelationId,
        outcome: &EventOutcome,
        rules: &LifecycleRules,
    ) -> Option<DueEvent> {
        let change = self.changes.get(&id)?.change.clone();
        let (kind, code, title) = match outcome {
            EventOutcome::Never => return None,
            EventOutcome::Error { code, title } => (EventKind::Error, code.clone(), title.clone()),
            EventOutcome::Success => self.apply(&change, rules),
        };
        let event = DueEvent {
            correlation_id: id,
            kind,
            code,
            title,
            service_id: change.service_id().to_owned(),
        };
        let record = self.changes.get_mut(&id)?;
        record.state = match kind {
            EventKind::Success => ChangeState::Succeeded,
            EventKind::Error => ChangeState::Failed,
        };
        record.event = Some(event.clone());
        Some(event)
    }

    /// Carries a change out under the business rules.
    fn apply(&mut self, change: &Change, rules: &LifecycleRules) -> (EventKind, String, String) {
        match change {
            Change::Create {
                service_type,
                service_id,
            } => {
                let key = (*service_type, service_id.clone());
                if self.services.contains_key(&key) {
                    return (
                        EventKind::Error,
                        codes::SERVICE_ALREADY_EXISTS.to_owned(),
                        format!("A {service_type} service with this id already exists"),
                    );
                }
                self.insert_service(key, rules);
                (
                    EventKind::Success,
                    codes::SERVICE_CREATED.to_owned(),
                    format!("The {service_type} service was created"),
                )
            }
            Change::UpdateDevice {
                service_type,
                service_id,
                device_id,
                category,
            } => {
                let Some(service) = self.services.get_mut(&(*service_type, service_id.clone()))
                else {
                    return (
                        EventKind::Error,
                        codes::SERVICE_NOT_FOUND.to_owned(),
                        format!("No {service_type} service with this id"),
                    );
                };
                service.devices.insert(device_id.clone(), *category);
                (
                    EventKind::Success,
                    codes::SERVICE_DEVICE_UPDATED.to_owned(),
                    format!("The {category} device of the {service_type} service was updated"),
                )
            }
        }
    }

    fn insert_service(&mut self, key: (ServiceType, String), rules: &LifecycleRules) {
        while self.services.len() >= rules.max_services.max(1) {
            let Some(oldest) = self.service_order.pop_front() else {
                break;
            };
            self.services.remove(&oldest);
        }
        self.service_order.push_back(key.clone());
        self.services.insert(key, ServiceRecord::default());
    }

    /// A world action: a service that exists at the provider already (created elsewhere).
    pub fn add_service(
        &mut self,
        service_type: ServiceType,
        service_id: &str,
        rules: &LifecycleRules,
    ) -> Result<(), WorldError> {
        let key = (service_type, service_id.to_owned());
        if self.services.contains_key(&key) {
            return Err(WorldError::ServiceExists);
        }
        self.insert_service(key, rules);
        Ok(())
    }

    /// Every kept request, oldest first.
    pub fn changes(&self) -> Vec<ChangeRecord> {
        self.order
            .iter()
            .filter_map(|id| self.changes.get(id).cloned())
            .collect()
    }

    /// One request.
    pub fn change(&self, id: CorrelationId) -> Option<ChangeRecord> {
        self.changes.get(&id).cloned()
    }

    /// Every service, in creation order.
    pub fn services(&self) -> Vec<(ServiceType, String, ServiceRecord)> {
        self.service_order
            .iter()
            .filter_map(|key| {
                self.services
                    .get(key)
                    .map(|s| (key.0, key.1.clone(), s.clone()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rules(outcome: EventOutcome) -> LifecycleRules {
        LifecycleRules {
            outcome,
            event_delay: Duration::from_secs(2),
            max_changes: 100,
            max_services: 100,
        }
    }

    fn id(n: u128) -> CorrelationId {
        CorrelationId::new(Uuid::from_u128(n)).unwrap()
    }

    fn create(n: u128, service_id: Option<&str>) -> Submission {
        Submission {
            correlation_id: id(n),
            requested: Requested::Create {
                service_type: ServiceType::Tv,
                service_id: service_id.map(str::to_owned),
            },
            body: json!({ "service_details": { "customer_id": "C-1" } }),
        }
    }

    fn update(n: u128, service_id: &str) -> Submission {
        Submission {
            correlation_id: id(n),
            requested: Requested::UpdateDevice {
                service_type: ServiceType::Tv,
                service_id: service_id.to_owned(),
                device_id: "stb-1".to_owned(),
                category: DeviceCategory::Stb,
            },
            body: json!({ "category": "STB", "new_service_device_details": { "model": "X" } }),
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_request_is_applied_once_and_reported_when_due() {
        let rules = rules(EventOutcome::Success);
        let mut book = ChangeBook::new(1);
        let t0 = Instant::now();
        let Admission::New { reference, change } =
            book.submit(create(1, Some("svc-1")), t0, &rules)
        else {
            panic!("first submission is new");
        };
        assert!(reference.starts_with("SO-"), "{reference}");
        assert_eq!(change.service_id(), "svc-1");
        assert_eq!(book.next_due(), Some(t0 + secs(2)));

        // Not yet due; a repeat is answered like the first, and nothing is reported yet.
        assert!(book.due(t0 + secs(1), &rules).is_empty());
        assert_eq!(
            book.submit(create(1, Some("svc-1")), t0 + secs(1), &rules),
            Admission::Repeat {
                reference: reference.clone(),
                settled: None
            }
        );

        let events = book.due(t0 + secs(2), &rules);
        assert_eq!(
            events,
            [DueEvent {
                correlation_id: id(1),
                kind: EventKind::Success,
                code: codes::SERVICE_CREATED.into(),
                title: "The tv service was created".into(),
                service_id: "svc-1".into(),
            }]
        );
        assert!(book.due(t0 + secs(10), &rules).is_empty(), "reported once");
        assert_eq!(book.next_due(), None);
        let record = book.change(id(1)).unwrap();
        assert_eq!(record.state, ChangeState::Succeeded);
        assert_eq!(record.submissions, 2);

        // A repeat after the outcome carries the outcome, to be posted again.
        assert_eq!(
            book.submit(create(1, Some("svc-1")), t0 + secs(11), &rules),
            Admission::Repeat {
                reference,
                settled: Some(events[0].clone())
            }
        );
    }

    #[test]
    fn a_used_id_cannot_carry_another_request() {
        let rules = rules(EventOutcome::Success);
        let mut book = ChangeBook::new(1);
        let t0 = Instant::now();
        book.submit(create(1, Some("svc-1")), t0, &rules);
        assert_eq!(
            book.submit(create(1, Some("svc-2")), t0, &rules),
            Admission::Reused
        );
        let mut other_body = create(1, Some("svc-1"));
        other_body.body = json!({ "service_details": { "customer_id": "C-2" } });
        assert_eq!(book.submit(other_body, t0, &rules), Admission::Reused);
        assert_eq!(book.changes().len(), 1);
    }

    #[test]
    fn the_provider_assigns_ids_deterministically() {
        let rules = rules(EventOutcome::Success);
        let t0 = Instant::now();
        let assigned = |seed| match ChangeBook::new(seed).submit(create(1, None), t0, &rules) {
            Admission::New { reference, change } => (reference, change.service_id().to_owned()),
            other => panic!("{other:?}"),
        };
        let (reference, service_id) = assigned(7);
        assert!(service_id.starts_with("svc-"), "{service_id}");
        assert_eq!(assigned(7), (reference, service_id.clone()));
        assert_ne!(assigned(8).1, service_id);
    }

    #[test]
    fn business_rules_decide_success() {
        let rules = rules(EventOutcome::Success);
        let mut book = ChangeBook::new(1);
        let t0 = Instant::now();
        // Updating before the service exists fails.
        book.submit(update(1, "svc-1"), t0, &rules);
        book.submit(create(2, Some("svc-1")), t0, &rules);
        let events = book.due(t0 + secs(2), &rules);
        assert_eq!(events.len(), 2);
        assert_eq!(
            (events[0].kind, events[0].code.as_str()),
            (EventKind::Error, codes::SERVICE_NOT_FOUND)
        );
        assert_eq!(
            (events[1].kind, events[1].code.as_str()),
            (EventKind::Success, codes::SERVICE_CREATED)
        );
        // Now the update succeeds and records the device; creating again fails.
        book.submit(update(3, "svc-1"), t0 + secs(3), &rules);
        book.submit(create(4, Some("svc-1")), t0 + secs(3), &rules);
        let events = book.due(t0 + secs(5), &rules);
        assert_eq!(events[0].code, codes::SERVICE_DEVICE_UPDATED);
        assert_eq!(events[1].code, codes::SERVICE_ALREADY_EXISTS);
        let services = book.services();
        assert_eq!(services.len(), 1);
        assert_eq!(
            services[0].2.devices.get("stb-1"),
            Some(&DeviceCategory::Stb)
        );
        // A service seeded by the world can be updated at once.
        book.add_service(ServiceType::Tv, "svc-9", &rules).unwrap();
        assert_eq!(
            book.add_service(ServiceType::Tv, "svc-9", &rules),
            Err(WorldError::ServiceExists)
        );
        book.submit(update(5, "svc-9"), t0 + secs(6), &rules);
        assert_eq!(book.due(t0 + secs(8), &rules)[0].kind, EventKind::Success);
    }

    #[test]
    fn error_and_never_outcomes() {
        let failing = rules(EventOutcome::error(
            "PROVISIONING_FAILED",
            "Backend said no",
        ));
        let mut book = ChangeBook::new(1);
        let t0 = Instant::now();
        book.submit(create(1, Some("svc-1")), t0, &failing);
        let events = book.due(t0 + secs(2), &failing);
        assert_eq!(events[0].kind, EventKind::Error);
        assert_eq!(events[0].code, "PROVISIONING_FAILED");
        assert_eq!(events[0].title, "Backend said no");
        assert!(
            book.services().is_empty(),
            "a failed create creates nothing"
        );

        let silent = rules(EventOutcome::Never);
        book.submit(create(2, Some("svc-2")), t0, &silent);
        assert_eq!(book.next_due(), None);
        assert!(book.due(t0 + secs(3600), &silent).is_empty());
        assert_eq!(book.change(id(2)).unwrap().state, ChangeState::Silent);

        // The back office finishes it by hand.
        let event = book
            .settle_now(id(2), &EventOutcome::Success, &silent)
            .unwrap()
            .unwrap();
        assert_eq!(event.code, codes::SERVICE_CREATED);
        assert_eq!(
            book.settle_now(id(2), &EventOutcome::Success, &silent),
            Err(WorldError::AlreadySettled(ChangeState::Succeeded))
        );
        assert_eq!(
            book.settle_now(id(99), &EventOutcome::Success, &silent),
            Err(WorldError::UnknownRequest)
        );
    }

    #[test]
    fn settling_early_cancels_the_scheduled_event() {
        let rules = rules(EventOutcome::Success);
        let mut book = ChangeBook::new(1);
        let t0 = Instant::now();
        book.submit(create(1, Some("svc-1")), t0, &rules);
        let event = book
            .settle_now(
                id(1),
                &EventOutcome::error("CANCELLED", "Cancelled"),
                &rules,
            )
            .unwrap()
            .unwrap();
        assert_eq!(event.kind, EventKind::Error);
        assert!(book.due(t0 + secs(5), &rules).is_empty());
    }

    #[test]
    fn the_book_is_bounded() {
        let mut rules = rules(EventOutcome::Success);
        rules.max_changes = 2;
        rules.max_services = 1;
        let mut book = ChangeBook::new(1);
        let t0 = Instant::now();
        for n in 1..=3 {
            book.submit(create(n, Some(&format!("svc-{n}"))), t0, &rules);
        }
        assert_eq!(book.changes().len(), 2);
        assert!(book.change(id(1)).is_none(), "oldest evicted");
        // The evicted request's event is gone with it.
        assert_eq!(book.due(t0 + secs(2), &rules).len(), 2);
        assert_eq!(book.services().len(), 1);
    }

    #[test]
    fn generated_correlation_ids_are_valid_and_deterministic() {
        let a = ChangeBook::new(3).generate_correlation_id();
        assert_eq!(a, ChangeBook::new(3).generate_correlation_id());
        assert_ne!(a, ChangeBook::new(4).generate_correlation_id());
    }
}
