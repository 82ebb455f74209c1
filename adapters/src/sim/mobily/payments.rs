//! Card payments of the Mobily simulator, without HTTP: sessions, 3-D Secure, confirmation
//! and voids. Methods return what happened (including whether this call authorised or
//! voided, for the ledger).

use std::collections::{HashMap, VecDeque};

use super::flows::evict;
use super::world::{Fail, Ids};
use crate::mobily::codes;
use crate::mobily::payment::PaymentStatus;

/// How the simulated bank treats a card payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ThreeDsPolicy {
    /// A 3-D Secure challenge: `PENDING_3DS` with the bank page.
    #[default]
    Challenge,
    /// No challenge: authorised by `createPayment` itself.
    Frictionless,
    /// The bank declines at once.
    Decline,
}

#[derive(Debug, Clone)]
pub(crate) struct SessionRecord {
    pub order_id: String,
    pub amount: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct PaymentRecord {
    pub payment_trans_id: String,
    pub payment_id: String,
    pub order_id: String,
    pub amount: u64,
    pub status: PaymentStatus,
    /// The customer's result on the bank page.
    pub three_ds: Option<bool>,
    pub return_url: String,
}

#[derive(Debug, Default)]
pub(crate) struct PaymentBook {
    sessions: HashMap<String, SessionRecord>,
    session_order: VecDeque<String>,
    payments: HashMap<String, PaymentRecord>,
    payment_order: VecDeque<String>,
    by_payment_id: HashMap<String, String>,
}

/// What createPayment did.
#[derive(Debug, Clone)]
pub(crate) struct Created {
    pub record: PaymentRecord,
    /// True when this call authorised (frictionless): record the effect.
    pub authorised_now: bool,
}

/// A createPayment request.
pub(crate) struct NewPayment<'a> {
    pub session_id: &'a str,
    pub payment_trans_id: &'a str,
    pub order_id: &'a str,
    pub amount: u64,
    pub return_url: &'a str,
}

impl PaymentBook {
    pub fn create_session(
        &mut self,
        ids: &mut Ids,
        order_id: &str,
        amount: u64,
        max: usize,
    ) -> String {
        evict(&mut self.sessions, &mut self.session_order, max);
        let id = ids.next("SES");
        self.sessions.insert(
            id.clone(),
            SessionRecord {
                order_id: order_id.to_owned(),
                amount,
            },
        );
        self.session_order.push_back(id.clone());
        id
    }

    pub fn create(
        &mut self,
        ids: &mut Ids,
        new: &NewPayment<'_>,
        policy: ThreeDsPolicy,
        max: usize,
    ) -> Result<Created, Fail> {
        let session = self
            .sessions
            .get(new.session_id)
            .ok_or_else(|| Fail::not_found("unknown sessionId"))?;
        if session.order_id != new.order_id || session.amount != new.amount {
            return Err(Fail::invalid(
                "the payment does not match its session's order and amount",
            ));
        }
        if self.payments.contains_key(new.payment_trans_id) {
            return Err(Fail::invalid("paymentTransId already used"));
        }
        if self.payments.len() >= max.max(1)
            && let Some(oldest) = self.payment_order.pop_front()
            && let Some(evicted) = self.payments.remove(&oldest)
        {
            self.by_payment_id.remove(&evicted.payment_id);
        }
        let status = match policy {
            ThreeDsPolicy::Challenge => PaymentStatus::Pending3ds,
            ThreeDsPolicy::Frictionless => PaymentStatus::Authorised,
            ThreeDsPolicy::Decline => PaymentStatus::Declined,
        };
        let record = PaymentRecord {
            payment_trans_id: new.payment_trans_id.to_owned(),
            payment_id: ids.next("PAY"),
            order_id: new.order_id.to_owned(),
            amount: new.amount,
            status,
            three_ds: None,
            return_url: new.return_url.to_owned(),
        };
        self.by_payment_id
            .insert(record.payment_id.clone(), record.payment_trans_id.clone());
        self.payments
            .insert(record.payment_trans_id.clone(), record.clone());
        self.payment_order
            .push_back(record.payment_trans_id.clone());
        Ok(Created {
            authorised_now: status == PaymentStatus::Authorised,
            record,
        })
    }

    /// The customer finishes the bank page.
    pub fn complete_3ds(
        &mut self,
        payment_id: &str,
        success: bool,
    ) -> Result<PaymentRecord, super::WorldError> {
        let trans = self
            .by_payment_id
            .get(payment_id)
            .ok_or(super::WorldError::Unknown("payment"))?;
        let record = self
            .payments
            .get_mut(trans)
            .ok_or(super::WorldError::Unknown("payment"))?;
        if record.status != PaymentStatus::Pending3ds || record.three_ds.is_some() {
            return Err(super::WorldError::NotPending);
        }
        record.three_ds = Some(success);
        Ok(record.clone())
    }

    /// confirmPayment: `Ok((record, authorised_now))`.
    pub fn confirm(
        &mut self,
        payment_id: &str,
        payment_trans_id: &str,
    ) -> Result<(PaymentRecord, bool), Fail> {
        let trans = self
            .by_payment_id
            .get(payment_id)
            .ok_or_else(|| Fail::not_found("unknown paymentId"))?;
        if trans != payment_trans_id {
            return Err(Fail::invalid("paymentTransId does not match the payment"));
        }
        let record = self
            .payments
            .get_mut(payment_trans_id)
            .ok_or_else(|| Fail::not_found("unknown paymentId"))?;
        match (record.status, record.three_ds) {
            (PaymentStatus::Pending3ds, None) => Err(Fail::refused(
                codes::PAYMENT_PENDING_3DS,
                "The customer has not completed 3-D Secure.",
            )),
            (PaymentStatus::Pending3ds, Some(false)) => {
                record.status = PaymentStatus::Declined;
                Ok((record.clone(), false))
            }
            (PaymentStatus::Pending3ds, Some(true)) => {
                record.status = PaymentStatus::Authorised;
                Ok((record.clone(), true))
            }
            _ => Ok((record.clone(), false)),
        }
    }

    /// Void: `Ok(record)` when this call voided it.
    pub fn void(&mut self, payment_trans_id: &str, amount: u64) -> Result<PaymentRecord, Fail> {
        let nothing = || Fail::refused(codes::NOTHING_TO_VOID, "No authorised payment to void.");
        let record = self
            .payments
            .get_mut(payment_trans_id)
            .ok_or_else(nothing)?;
        if record.status != PaymentStatus::Authorised {
            return Err(nothing());
        }
        if record.amount != amount {
            return Err(Fail::invalid(
                "the void amount differs from the authorised amount",
            ));
        }
        record.status = PaymentStatus::Voided;
        Ok(record.clone())
    }

    pub fn get(&self, payment_trans_id: &str) -> Option<&PaymentRecord> {
        self.payments.get(payment_trans_id)
    }

    pub fn by_payment_id(&self, payment_id: &str) -> Option<&PaymentRecord> {
        self.by_payment_id
            .get(payment_id)
            .and_then(|t| self.payments.get(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payments_need_3ds_then_confirm_authorises_once_and_void_once() {
        let mut ids = Ids::new(1);
        let mut book = PaymentBook::default();
        let session = book.create_session(&mut ids, "ORD1", 3000, 10);
        let new = NewPayment {
            session_id: &session,
            payment_trans_id: "j1:pay",
            order_id: "ORD1",
            amount: 3000,
            return_url: "http://h/3ds",
        };
        assert!(matches!(
            book.create(
                &mut ids,
                &NewPayment { amount: 1, ..new },
                ThreeDsPolicy::Challenge,
                10
            ),
            Err(Fail::Invalid(_))
        ));
        let created = book
            .create(&mut ids, &new, ThreeDsPolicy::Challenge, 10)
            .unwrap();
        assert!(!created.authorised_now);
        let pid = created.record.payment_id;
        assert!(matches!(
            book.confirm(&pid, "j1:pay"),
            Err(Fail::Refused(codes::PAYMENT_PENDING_3DS, _))
        ));
        book.complete_3ds(&pid, true).unwrap();
        assert!(book.complete_3ds(&pid, true).is_err());
        assert!(book.confirm(&pid, "j1:pay").unwrap().1);
        assert!(
            !book.confirm(&pid, "j1:pay").unwrap().1,
            "no second authorisation"
        );
        assert!(matches!(book.void("j1:pay", 100), Err(Fail::Invalid(_))));
        assert_eq!(
            book.void("j1:pay", 3000).unwrap().status,
            PaymentStatus::Voided
        );
        assert!(matches!(
            book.void("j1:pay", 3000),
            Err(Fail::Refused(codes::NOTHING_TO_VOID, _))
        ));
        assert!(matches!(
            book.void("unknown", 3000),
            Err(Fail::Refused(codes::NOTHING_TO_VOID, _))
        ));
    }

    #[test]
    fn a_failed_challenge_is_declined() {
        let mut ids = Ids::new(1);
        let mut book = PaymentBook::default();
        let session = book.create_session(&mut ids, "ORD1", 3000, 10);
        let new = NewPayment {
            session_id: &session,
            payment_trans_id: "j1:pay",
            order_id: "ORD1",
            amount: 3000,
            return_url: "http://h/3ds",
        };
        let pid = book
            .create(&mut ids, &new, ThreeDsPolicy::Challenge, 10)
            .unwrap()
            .record
            .payment_id;
        book.complete_3ds(&pid, false).unwrap();
        assert_eq!(
            book.confirm(&pid, "j1:pay").unwrap().0.status,
            PaymentStatus::Declined
        );
    }
}
