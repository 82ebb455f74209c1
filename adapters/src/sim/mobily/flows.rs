//! The customer-facing flows of the Mobily simulator, without HTTP: OTP codes, Nafath
//! verifications and card payments with 3-D Secure. Every method takes the current time and
//! returns what happened, so the rules are unit-tested with plain values.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use super::world::{Fail, Ids};
use crate::mobily::codes;
use crate::mobily::nafath::NafathStatus;

/// How the simulated customer answers Nafath when no test intervenes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum NafathPolicy {
    /// Nobody answers unless [`super::MobilySim::nafath_answer`] is called; the request
    /// expires at the end of the window (and an `EXPIRED` webhook is sent).
    #[default]
    Manual,
    /// The customer approves this long after initiate (zero: before the initiate answer).
    Approve {
        /// Delay.
        after: Duration,
    },
    /// The customer rejects this long after initiate.
    Reject {
        /// Delay.
        after: Duration,
    },
    /// The customer approves after `after`, but the webhook leaves `webhook_delay` later:
    /// polling `tokeninfo` sees the approval first.
    ApproveLateWebhook {
        /// Delay of the approval.
        after: Duration,
        /// Extra delay of the webhook.
        webhook_delay: Duration,
    },
    /// The customer never answers: `EXPIRED` at the end of the window.
    NoAnswer,
}

impl NafathPolicy {
    /// When the customer decides, and how, counted from initiate.
    fn decision(self) -> Option<(Duration, NafathStatus)> {
        match self {
            NafathPolicy::Approve { after } | NafathPolicy::ApproveLateWebhook { after, .. } => {
                Some((after, NafathStatus::Approved))
            }
            NafathPolicy::Reject { after } => Some((after, NafathStatus::Rejected)),
            NafathPolicy::Manual | NafathPolicy::NoAnswer => None,
        }
    }

    /// Extra delay of the webhook after the decision.
    pub(crate) fn webhook_delay(self) -> Duration {
        match self {
            NafathPolicy::ApproveLateWebhook { webhook_delay, .. } => webhook_delay,
            _ => Duration::ZERO,
        }
    }
}

/// Flow settings, copied from the behaviour at each call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlowRules {
    pub otp_ttl: Duration,
    pub otp_max_attempts: u32,
    pub otp_max_regenerations: u32,
    pub nafath: NafathPolicy,
    pub nafath_window: Duration,
    pub max_records: usize,
}

// ---------------------------------------------------------------------------------------
// OTP
// ---------------------------------------------------------------------------------------

#[derive(Clone)]
pub(crate) struct OtpRecord {
    pub otp_id: String,
    pub msisdn: String,
    pub code: String,
    pub sent: Instant,
    pub attempts_used: u32,
    pub regenerations: u32,
    pub verified: bool,
    /// Set by the `expire_otp` world action.
    pub forced_expired: bool,
}

impl std::fmt::Debug for OtpRecord {
    // The code is the customer's secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtpRecord")
            .field("otp_id", &self.otp_id)
            .finish_non_exhaustive()
    }
}

/// What validating found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OtpCheck {
    Verified,
    Wrong { attempts_left: u32 },
    Expired,
    Locked,
}

#[derive(Debug, Default)]
pub(crate) struct OtpBook {
    records: HashMap<String, OtpRecord>,
    order: VecDeque<String>,
    latest: HashMap<String, String>,
}

impl OtpBook {
    pub fn generate(
        &mut self,
        ids: &mut Ids,
        msisdn: &str,
        now: Instant,
        rules: &FlowRules,
    ) -> OtpRecord {
        evict(&mut self.records, &mut self.order, rules.max_records);
        let otp_id = ids.next("OTP");
        let record = OtpRecord {
            otp_id: otp_id.clone(),
            msisdn: msisdn.to_owned(),
            code: ids.digits(6),
            sent: now,
            attempts_used: 0,
            regenerations: 0,
            verified: false,
            forced_expired: false,
        };
        self.records.insert(otp_id.clone(), record.clone());
        self.order.push_back(otp_id.clone());
        self.latest.insert(msisdn.to_owned(), otp_id);
        record
    }

    pub fn regenerate(
        &mut self,
        ids: &mut Ids,
        otp_id: &str,
        msisdn: &str,
        now: Instant,
        rules: &FlowRules,
    ) -> Result<OtpRecord, Fail> {
        let record = self.find(otp_id, msisdn)?;
        if record.verified {
            return Err(Fail::invalid("this OTP is already verified"));
        }
        if record.regenerations >= rules.otp_max_regenerations {
            return Err(Fail::refused(
                codes::OTP_TOO_MANY_RESENDS,
                "Too many OTP resend requests.",
            ));
        }
        record.regenerations += 1;
        record.code = ids.digits(6);
        record.sent = now;
        record.attempts_used = 0;
        record.forced_expired = false;
        Ok(record.clone())
    }

    pub fn validate(
        &mut self,
        otp_id: &str,
        msisdn: &str,
        code: &str,
        now: Instant,
        rules: &FlowRules,
    ) -> Result<OtpCheck, Fail> {
        let record = self.find(otp_id, msisdn)?;
        if record.verified {
            // Repeating a validation that succeeded answers the same.
            return Ok(if record.code == code {
                OtpCheck::Verified
            } else {
                OtpCheck::Locked
            });
        }
        if record.forced_expired || now >= record.sent + rules.otp_ttl {
            return Ok(OtpCheck::Expired);
        }
        if record.attempts_used >= rules.otp_max_attempts {
            return Ok(OtpCheck::Locked);
        }
        if record.code == code {
            record.verified = true;
            return Ok(OtpCheck::Verified);
        }
        record.attempts_used += 1;
        Ok(OtpCheck::Wrong {
            attempts_left: rules.otp_max_attempts - record.attempts_used,
        })
    }

    fn find(&mut self, otp_id: &str, msisdn: &str) -> Result<&mut OtpRecord, Fail> {
        let record = self
            .records
            .get_mut(otp_id)
            .ok_or_else(|| Fail::not_found("unknown otpId"))?;
        if record.msisdn != msisdn {
            return Err(Fail::invalid("the otpId belongs to another msisdn"));
        }
        Ok(record)
    }

    pub fn is_verified(&self, otp_id: &str, msisdn: &str) -> bool {
        self.records
            .get(otp_id)
            .is_some_and(|r| r.verified && r.msisdn == msisdn)
    }

    pub fn latest_for(&self, msisdn: &str) -> Option<&OtpRecord> {
        self.latest.get(msisdn).and_then(|id| self.records.get(id))
    }

    pub fn force_expire(&mut self, msisdn: &str) -> bool {
        let Some(id) = self.latest.get(msisdn) else {
            return false;
        };
        match self.records.get_mut(id) {
            Some(record) => {
                record.forced_expired = true;
                true
            }
            None => false,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Nafath
// ---------------------------------------------------------------------------------------

#[derive(Clone)]
pub(crate) struct NafathRecord {
    pub transaction_id: String,
    pub request_id: String,
    pub random: String,
    pub webhook_uri: String,
    pub username: String,
    pub password: String,
    pub created: Instant,
    pub status: NafathStatus,
    pub decided_at: Option<Instant>,
    pub webhook_sent: bool,
    /// The policy in force at initiate.
    pub policy: NafathPolicy,
}

impl std::fmt::Debug for NafathRecord {
    // The webhook password is the caller's secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NafathRecord")
            .field("transaction_id", &self.transaction_id)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
pub(crate) struct NafathBook {
    records: HashMap<String, NafathRecord>,
    order: VecDeque<String>,
}

/// A request as given to initiate.
pub(crate) struct NafathStart<'a> {
    pub request_id: &'a str,
    pub webhook_uri: &'a str,
    pub username: &'a str,
    pub password: &'a str,
}

impl NafathBook {
    pub fn initiate(
        &mut self,
        ids: &mut Ids,
        start: &NafathStart<'_>,
        now: Instant,
        rules: &FlowRules,
    ) -> NafathRecord {
        evict(&mut self.records, &mut self.order, rules.max_records);
        let transaction_id = ids.next("NFT");
        let record = NafathRecord {
            transaction_id: transaction_id.clone(),
            request_id: start.request_id.to_owned(),
            random: (10 + ids.below(90)).to_string(),
            webhook_uri: start.webhook_uri.to_owned(),
            username: start.username.to_owned(),
            password: start.password.to_owned(),
            created: now,
            status: NafathStatus::Waiting,
            decided_at: None,
            webhook_sent: false,
            policy: rules.nafath,
        };
        let mut record = record;
        settle(&mut record, now, rules);
        self.records.insert(transaction_id.clone(), record.clone());
        self.order.push_back(transaction_id);
        record
    }

    /// The status now.
    pub fn status(
        &mut self,
        transaction_id: &str,
        now: Instant,
        rules: &FlowRules,
    ) -> Option<NafathStatus> {
        let record = self.records.get_mut(transaction_id)?;
        settle(record, now, rules);
        Some(record.status)
    }

    /// The customer answers in the app.
    pub fn answer(
        &mut self,
        transaction_id: &str,
        approve: bool,
        now: Instant,
        rules: &FlowRules,
    ) -> Result<(), super::WorldError> {
        let record = self
            .records
            .get_mut(transaction_id)
            .ok_or(super::WorldError::Unknown("nafath transaction"))?;
        settle(record, now, rules);
        if record.status != NafathStatus::Waiting {
            return Err(super::WorldError::NotPending);
        }
        record.status = if approve {
            NafathStatus::Approved
        } else {
            NafathStatus::Rejected
        };
        record.decided_at = Some(now);
        Ok(())
    }

    /// The webhook due now, if the request reached a final status, its webhook delay
    /// passed, and it was not sent yet (marked sent).
    pub fn due_webhook(
        &mut self,
        transaction_id: &str,
        now: Instant,
        rules: &FlowRules,
    ) -> Option<NafathRecord> {
        let record = self.records.get_mut(transaction_id)?;
        settle(record, now, rules);
        let decided = record.decided_at?;
        if record.webhook_sent || now < decided + record.policy.webhook_delay() {
            return None;
        }
        record.webhook_sent = true;
        Some(record.clone())
    }

    /// When the next thing happens to this request on its own (decision, expiry or a
    /// delayed webhook), counted from now.
    pub fn next_event(
        &self,
        transaction_id: &str,
        now: Instant,
        rules: &FlowRules,
    ) -> Option<Duration> {
        let record = self.records.get(transaction_id)?;
        if record.webhook_sent {
            return None;
        }
        let at = match record.decided_at {
            Some(decided) => decided + record.policy.webhook_delay(),
            None => match record.policy.decision() {
                Some((after, _)) if after < rules.nafath_window => record.created + after,
                _ => record.created + rules.nafath_window,
            },
        };
        Some(at.saturating_duration_since(now))
    }

    pub fn approved(&self, transaction_id: &str) -> bool {
        self.records
            .get(transaction_id)
            .is_some_and(|r| r.status == NafathStatus::Approved)
    }

    pub fn records(&mut self, now: Instant, rules: &FlowRules) -> Vec<NafathRecord> {
        let mut out = Vec::new();
        for id in &self.order {
            if let Some(record) = self.records.get_mut(id) {
                settle(record, now, rules);
                out.push(record.clone());
            }
        }
        out
    }
}

/// Applies what the passing of time decides: the policy's answer, or expiry.
fn settle(record: &mut NafathRecord, now: Instant, rules: &FlowRules) {
    if record.status != NafathStatus::Waiting {
        return;
    }
    if let Some((after, status)) = record.policy.decision()
        && after < rules.nafath_window
        && now >= record.created + after
    {
        record.status = status;
        record.decided_at = Some(record.created + after);
        return;
    }
    if now >= record.created + rules.nafath_window {
        record.status = NafathStatus::Expired;
        record.decided_at = Some(record.created + rules.nafath_window);
    }
}

/// Drops the oldest records beyond `max` (at least one is kept).
pub(crate) fn evict<T>(records: &mut HashMap<String, T>, order: &mut VecDeque<String>, max: usize) {
    while records.len() >= max.max(1) {
        let Some(oldest) = order.pop_front() else {
            break;
        };
        records.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(nafath: NafathPolicy) -> FlowRules {
        FlowRules {
            otp_ttl: Duration::from_secs(300),
            otp_max_attempts: 3,
            otp_max_regenerations: 2,
            nafath,
            nafath_window: Duration::from_secs(180),
            max_records: 100,
        }
    }

    const M: &str = "966551234567";

    #[test]
    fn otp_wrong_then_right_then_locked_after_attempts() {
        let rules = rules(NafathPolicy::Manual);
        let mut ids = Ids::new(1);
        let mut book = OtpBook::default();
        let t0 = Instant::now();
        let otp = book.generate(&mut ids, M, t0, &rules);
        assert_eq!(otp.code.len(), 6);
        assert_eq!(
            book.validate(&otp.otp_id, M, "000000x", t0, &rules)
                .unwrap(),
            OtpCheck::Wrong { attempts_left: 2 }
        );
        assert_eq!(
            book.validate(&otp.otp_id, M, &otp.code, t0, &rules)
                .unwrap(),
            OtpCheck::Verified
        );
        assert_eq!(
            book.validate(&otp.otp_id, M, &otp.code, t0, &rules)
                .unwrap(),
            OtpCheck::Verified
        );
        assert!(book.is_verified(&otp.otp_id, M));

        let other = book.generate(&mut ids, M, t0, &rules);
        for left in [2, 1, 0] {
            assert_eq!(
                book.validate(&other.otp_id, M, "bad", t0, &rules).unwrap(),
                OtpCheck::Wrong {
                    attempts_left: left
                }
            );
        }
        assert_eq!(
            book.validate(&other.otp_id, M, &other.code, t0, &rules)
                .unwrap(),
            OtpCheck::Locked
        );
        assert!(matches!(
            book.validate(&other.otp_id, "966500000000", "1", t0, &rules),
            Err(Fail::Invalid(_))
        ));
    }

    #[test]
    fn otp_expires_and_regeneration_is_bounded() {
        let rules = rules(NafathPolicy::Manual);
        let mut ids = Ids::new(1);
        let mut book = OtpBook::default();
        let t0 = Instant::now();
        let otp = book.generate(&mut ids, M, t0, &rules);
        let late = t0 + Duration::from_secs(300);
        assert_eq!(
            book.validate(&otp.otp_id, M, &otp.code, late, &rules)
                .unwrap(),
            OtpCheck::Expired
        );
        let again = book
            .regenerate(&mut ids, &otp.otp_id, M, late, &rules)
            .unwrap();
        assert_eq!(
            book.validate(&otp.otp_id, M, &again.code, late, &rules)
                .unwrap(),
            OtpCheck::Verified
        );

        let fresh = book.generate(&mut ids, M, t0, &rules);
        assert!(book.force_expire(M));
        assert_eq!(
            book.validate(&fresh.otp_id, M, &fresh.code, t0, &rules)
                .unwrap(),
            OtpCheck::Expired
        );
        book.regenerate(&mut ids, &fresh.otp_id, M, t0, &rules)
            .unwrap();
        book.regenerate(&mut ids, &fresh.otp_id, M, t0, &rules)
            .unwrap();
        assert!(matches!(
            book.regenerate(&mut ids, &fresh.otp_id, M, t0, &rules),
            Err(Fail::Refused(codes::OTP_TOO_MANY_RESENDS, _))
        ));
    }

    fn start() -> NafathStart<'static> {
        NafathStart {
            request_id: "j1:nafath",
            webhook_uri: "http://127.0.0.1:1/hook",
            username: "u",
            password: "p",
        }
    }

    #[test]
    fn nafath_policies_decide_in_time_and_webhooks_go_once() {
        let t0 = Instant::now();
        let mut ids = Ids::new(1);
        let approve = rules(NafathPolicy::Approve {
            after: Duration::from_secs(5),
        });
        let mut book = NafathBook::default();
        let tx = book
            .initiate(&mut ids, &start(), t0, &approve)
            .transaction_id;
        assert_eq!(
            book.status(&tx, t0 + Duration::from_secs(4), &approve),
            Some(NafathStatus::Waiting)
        );
        assert_eq!(
            book.next_event(&tx, t0, &approve),
            Some(Duration::from_secs(5))
        );
        assert!(
            book.due_webhook(&tx, t0 + Duration::from_secs(4), &approve)
                .is_none()
        );
        let hook = book
            .due_webhook(&tx, t0 + Duration::from_secs(5), &approve)
            .unwrap();
        assert_eq!(hook.status, NafathStatus::Approved);
        assert!(
            book.due_webhook(&tx, t0 + Duration::from_secs(6), &approve)
                .is_none(),
            "once"
        );

        let late = rules(NafathPolicy::ApproveLateWebhook {
            after: Duration::from_secs(1),
            webhook_delay: Duration::from_secs(10),
        });
        let tx = book.initiate(&mut ids, &start(), t0, &late).transaction_id;
        assert_eq!(
            book.status(&tx, t0 + Duration::from_secs(2), &late),
            Some(NafathStatus::Approved)
        );
        assert!(
            book.due_webhook(&tx, t0 + Duration::from_secs(2), &late)
                .is_none()
        );
        assert_eq!(
            book.next_event(&tx, t0 + Duration::from_secs(2), &late),
            Some(Duration::from_secs(9))
        );
        assert!(
            book.due_webhook(&tx, t0 + Duration::from_secs(11), &late)
                .is_some()
        );

        let never = rules(NafathPolicy::NoAnswer);
        let tx = book.initiate(&mut ids, &start(), t0, &never).transaction_id;
        assert_eq!(
            book.status(&tx, t0 + Duration::from_secs(180), &never),
            Some(NafathStatus::Expired)
        );

        let manual = rules(NafathPolicy::Manual);
        let tx = book
            .initiate(&mut ids, &start(), t0, &manual)
            .transaction_id;
        book.answer(&tx, false, t0, &manual).unwrap();
        assert_eq!(book.status(&tx, t0, &manual), Some(NafathStatus::Rejected));
        assert!(book.answer(&tx, true, t0, &manual).is_err());
        assert_eq!(
            book.due_webhook(&tx, t0, &manual).unwrap().status,
            NafathStatus::Rejected
        );
    }
}
