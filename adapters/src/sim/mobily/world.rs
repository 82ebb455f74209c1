//! The Mobily simulator's world, without HTTP: products, customers, carts and their
//! checkout, the number pool, eSIM profiles, TCC registrations and orders. Methods take the
//! current time and return what happened (including whether an effect was applied, for the
//! ledger), so the rules are unit-tested with plain values.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::time::Instant;

pub(crate) use super::customers::product;
pub use super::customers::{CATALOGUE, CustomerProfile, SimProduct};
use super::flows::{NafathBook, OtpBook};
use super::payments::PaymentBook;
use crate::mobily::checkout::{CaptureData, NumberChoice, Section};
use crate::mobily::codes;
use crate::mobily::nafath::NafathStatus;
use crate::mobily::orders::{OrderState, OrderType};
use crate::mobily::{PaymentType, SimType};

/// Why a request could not be served: turned into the HTTP answer by the handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fail {
    /// 400 with [`codes::INVALID_REQUEST`].
    Invalid(String),
    /// 404 with [`codes::NOT_FOUND`].
    NotFound(String),
    /// 200 with a business code.
    Refused(&'static str, String),
}

impl Fail {
    pub fn invalid(message: impl Into<String>) -> Self {
        Fail::Invalid(message.into())
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Fail::NotFound(message.into())
    }
    pub fn refused(code: &'static str, message: impl Into<String>) -> Self {
        Fail::Refused(code, message.into())
    }
}

/// Deterministic ids and codes from the simulator's seed.
#[derive(Debug)]
pub(crate) struct Ids {
    rng: StdRng,
    seq: u64,
}

impl Ids {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            seq: 0,
        }
    }

    /// `<PREFIX><sequence><random>`, unique per simulator.
    pub fn next(&mut self, prefix: &str) -> String {
        self.seq += 1;
        format!(
            "{prefix}{:06}{:04}",
            self.seq,
            self.rng.random_range(0..10_000u32)
        )
    }

    pub fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.rng.random_range(0..10u8)))
            .collect()
    }

    pub fn below(&mut self, n: u32) -> u32 {
        self.rng.random_range(0..n.max(1))
    }
}

#[derive(Debug, Clone)]
pub(crate) struct CartRecord {
    pub id: String,
    pub product: &'static SimProduct,
    pub validated_for: Option<String>,
    pub captures: BTreeMap<Section, CaptureData>,
    pub order_id: Option<String>,
}

impl CartRecord {
    fn is_mnp(&self) -> bool {
        matches!(
            self.captures.get(&Section::NumberOption),
            Some(CaptureData::NumberOption(NumberChoice::Mnp { .. }))
        )
    }

    /// The sections this cart needs, in journey order.
    pub fn required(&self) -> Vec<Section> {
        Section::ALL
            .into_iter()
            .filter(|s| match s {
                Section::NumberReservation => !self.is_mnp(),
                Section::OverdueBills | Section::SecurityDeposit => {
                    self.product.payment_type == PaymentType::Postpaid
                }
                _ => true,
            })
            .collect()
    }

    pub fn missing(&self) -> Vec<Section> {
        self.required()
            .into_iter()
            .filter(|s| !self.captures.contains_key(s))
            .collect()
    }

    /// The line's number: reserved, or ported.
    pub fn msisdn(&self) -> Option<String> {
        match self.captures.get(&Section::NumberOption) {
            Some(CaptureData::NumberOption(NumberChoice::Mnp { msisdn, .. })) => {
                Some(msisdn.as_str().to_owned())
            }
            _ => match self.captures.get(&Section::NumberReservation) {
                Some(CaptureData::NumberReservation { msisdn, .. }) => {
                    Some(msisdn.as_str().to_owned())
                }
                _ => None,
            },
        }
    }

    fn deposit(&self) -> u64 {
        match self.captures.get(&Section::SecurityDeposit) {
            Some(CaptureData::SecurityDeposit {
                accepted: true,
                amount,
            }) => amount.as_halalas(),
            _ => 0,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ReservationRecord {
    pub id: String,
    pub msisdn: String,
    pub cart: String,
    pub until: Instant,
}

/// An order as the simulator sees it.
#[derive(Debug, Clone)]
pub(crate) struct OrderRecord {
    pub id: String,
    pub external_id: String,
    pub order_type: OrderType,
    pub msisdn: String,
    pub status: OrderState,
    pub total: u64,
    pub paid_at: Option<Instant>,
    pub inquiries_since_paid: u32,
    pub qr_inquiries_since_paid: u32,
    /// The ordering customer's profile withholds the QR code.
    pub qr_withheld: bool,
    pub iccid: Option<String>,
    pub activation_code: Option<String>,
}

/// When the QR code of a paid order is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QrPolicy {
    /// After this many QR inquiries following payment ("re-inquiry ... if any delay").
    AfterInquiries(u32),
    /// This long after payment.
    AfterDelay(Duration),
}

/// World settings, copied from the behaviour at each call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WorldRules {
    pub max_lines: u32,
    pub postpaid_deposit: u64,
    pub reservation_hold: Duration,
    pub qr: QrPolicy,
    pub order_stage_inquiries: u32,
    pub max_records: usize,
}

/// Everything the simulator remembers, behind one lock.
#[derive(Debug)]
pub(crate) struct World {
    pub ids: Ids,
    pub customers: HashMap<String, CustomerProfile>,
    pub carts: HashMap<String, CartRecord>,
    cart_order: VecDeque<String>,
    pub standard_pool: Vec<String>,
    pub vanity_pool: Vec<String>,
    pub taken: HashSet<String>,
    pub reservations: HashMap<String, ReservationRecord>,
    pub reserved: HashMap<String, String>,
    pub sims: HashMap<String, String>,
    pub registrations: HashMap<String, String>,
    pub orders: HashMap<String, OrderRecord>,
    pub orders_by_external: HashMap<String, String>,
    /// Answers of effectful calls by (endpoint, idempotency key).
    pub replies: HashMap<(&'static str, String), serde_json::Value>,
    pub otp: OtpBook,
    pub nafath: NafathBook,
    pub payments: PaymentBook,
}

impl World {
    pub fn new(seed: u64) -> Self {
        let mut ids = Ids::new(seed);
        let mut standard_pool: Vec<String> = Vec::new();
        while standard_pool.len() < 200 {
            let n = format!("9665{}", ids.digits(8));
            if !standard_pool.contains(&n) {
                standard_pool.push(n);
            }
        }
        let vanity_pool = (0..10)
            .map(|d| format!("9665{}", d.to_string().repeat(8)))
            .collect();
        Self {
            ids,
            customers: HashMap::new(),
            carts: HashMap::new(),
            cart_order: VecDeque::new(),
            standard_pool,
            vanity_pool,
            taken: HashSet::new(),
            reservations: HashMap::new(),
            reserved: HashMap::new(),
            sims: HashMap::new(),
            registrations: HashMap::new(),
            orders: HashMap::new(),
            orders_by_external: HashMap::new(),
            replies: HashMap::new(),
            otp: OtpBook::default(),
            nafath: NafathBook::default(),
            payments: PaymentBook::default(),
        }
    }

    pub fn customer(&self, national_id: &str) -> CustomerProfile {
        self.customers.get(national_id).cloned().unwrap_or_default()
    }

    pub fn create_cart(
        &mut self,
        product_id: &str,
        rules: &WorldRules,
    ) -> Result<CartRecord, Fail> {
        let product = product(product_id)
            .ok_or_else(|| Fail::refused(codes::CART_NOT_QUALIFIED, "Unknown product offering."))?;
        while self.carts.len() >= rules.max_records.max(1) {
            let Some(oldest) = self.cart_order.pop_front() else {
                break;
            };
            self.carts.remove(&oldest);
        }
        let cart = CartRecord {
            id: self.ids.next("CART"),
            product,
            validated_for: None,
            captures: BTreeMap::new(),
            order_id: None,
        };
        self.carts.insert(cart.id.clone(), cart.clone());
        self.cart_order.push_back(cart.id.clone());
        Ok(cart)
    }

    pub fn cart(&mut self, id: &str) -> Result<&mut CartRecord, Fail> {
        self.carts
            .get_mut(id)
            .ok_or_else(|| Fail::not_found("unknown shoppingCartId"))
    }

    pub fn validate_cart(&mut self, id: &str, national_id: &str) -> Result<(), Fail> {
        let refusal = self.customer(national_id).cart_refusal;
        let cart = self.cart(id)?;
        if let Some(reason) = refusal {
            return Err(Fail::refused(codes::CART_NOT_QUALIFIED, reason));
        }
        cart.validated_for = Some(national_id.to_owned());
        Ok(())
    }

    /// Free numbers of a pool, settling lapsed reservations first.
    pub fn available(&mut self, vanity: bool, count: usize, now: Instant) -> Vec<String> {
        self.release_lapsed(now);
        let pool = if vanity {
            &self.vanity_pool
        } else {
            &self.standard_pool
        };
        pool.iter()
            .filter(|n| !self.taken.contains(*n) && !self.reserved.contains_key(*n))
            .take(count)
            .cloned()
            .collect()
    }

    fn release_lapsed(&mut self, now: Instant) {
        let lapsed: Vec<String> = self
            .reservations
            .values()
            .filter(|r| r.until <= now && !self.taken.contains(&r.msisdn))
            .map(|r| r.id.clone())
            .collect();
        for id in lapsed {
            if let Some(r) = self.reservations.remove(&id) {
                self.reserved.remove(&r.msisdn);
            }
        }
    }

    pub fn reserve(
        &mut self,
        msisdn: &str,
        cart: &str,
        now: Instant,
        rules: &WorldRules,
    ) -> Result<ReservationRecord, Fail> {
        self.cart(cart)?;
        self.release_lapsed(now);
        let in_pool = self
            .standard_pool
            .iter()
            .chain(&self.vanity_pool)
            .any(|n| n == msisdn);
        if !in_pool || self.taken.contains(msisdn) || self.reserved.contains_key(msisdn) {
            return Err(Fail::refused(
                codes::NUMBER_UNAVAILABLE,
                "The selected number is not available.",
            ));
        }
        let record = ReservationRecord {
            id: self.ids.next("RES"),
            msisdn: msisdn.to_owned(),
            cart: cart.to_owned(),
            until: now + rules.reservation_hold,
        };
        self.reserved.insert(msisdn.to_owned(), record.id.clone());
        self.reservations.insert(record.id.clone(), record.clone());
        Ok(record)
    }

    /// Checks a capture against what the earlier steps established, then stores it.
    pub fn capture(&mut self, cart_id: &str, data: CaptureData, now: Instant) -> Result<(), Fail> {
        let section = data.section();
        self.release_lapsed(now);
        let reservation_ok = |world: &World, msisdn: &str, reservation: &str| {
            world
                .reservations
                .get(reservation)
                .is_some_and(|r| r.msisdn == msisdn && r.cart == cart_id)
        };
        let ok = match &data {
            CaptureData::SimOption { sim_type } => *sim_type == SimType::Esim,
            CaptureData::TccEligibilityCheck { eligible } => *eligible,
            CaptureData::NumberReservation {
                msisdn,
                reservation_id,
            } => reservation_ok(self, msisdn.as_str(), reservation_id.as_str()),
            CaptureData::OverdueBills { has_dues } => !has_dues,
            CaptureData::SecurityDeposit { accepted, .. } => *accepted,
            CaptureData::OtpVerification {
                msisdn,
                otp_id,
                verified,
            } => *verified && self.otp.is_verified(otp_id.as_str(), msisdn.as_str()),
            CaptureData::NafathVerification {
                transaction_id,
                status,
            } => *status == NafathStatus::Approved && self.nafath.approved(transaction_id.as_str()),
            CaptureData::Sim {
                iccid,
                registration_id,
            } => self
                .registrations
                .get(iccid.as_str())
                .is_some_and(|r| r == registration_id.as_str()),
            CaptureData::NumberOption(_) | CaptureData::DeliveryDetails(_) => true,
        };
        let cart = self.cart(cart_id)?;
        if cart.validated_for.is_none() {
            return Err(Fail::refused(
                codes::CHECKOUT_INCOMPLETE,
                "Validate the shopping cart first.",
            ));
        }
        if cart.order_id.is_some() {
            return Err(Fail::invalid("the cart is already ordered"));
        }
        if !cart.required().contains(&section) && section != Section::NumberOption {
            return Err(Fail::invalid(format!(
                "section {} is not part of this checkout",
                section.wire_name()
            )));
        }
        if !ok {
            return Err(Fail::invalid(format!(
                "section {} contradicts the earlier steps of this checkout",
                section.wire_name()
            )));
        }
        cart.captures.insert(section, data);
        Ok(())
    }

    /// The eSIM profile of a number: the same one every time.
    pub fn sim_for(&mut self, msisdn: &str) -> String {
        if let Some(iccid) = self.sims.get(msisdn) {
            return iccid.clone();
        }
        let iccid = format!("8996601{}", self.ids.digits(12));
        self.sims.insert(msisdn.to_owned(), iccid.clone());
        iccid
    }

    /// TCC registration of a line; `Ok((id, first))`.
    pub fn register(
        &mut self,
        national_id: &str,
        msisdn: &str,
        iccid: &str,
    ) -> Result<(String, bool), Fail> {
        if self.sims.get(msisdn).map(String::as_str) != Some(iccid) {
            return Err(Fail::invalid(
                "the iccid is not the eSIM profile of this msisdn",
            ));
        }
        if let Some(reason) = self.customer(national_id).tcc_refusal {
            return Err(Fail::refused(codes::TCC_REGISTRATION_REFUSED, reason));
        }
        if let Some(existing) = self.registrations.get(iccid) {
            return Ok((existing.clone(), false));
        }
        let id = self.ids.next("TCC");
        self.registrations.insert(iccid.to_owned(), id.clone());
        Ok((id, true))
    }

    pub fn post_order(
        &mut self,
        cart_id: &str,
        external_id: &str,
        order_type: OrderType,
    ) -> Result<OrderRecord, Fail> {
        let order_id = self.ids.next("ORD");
        let qr_withheld = self
            .cart(cart_id)?
            .validated_for
            .clone()
            .is_some_and(|national_id| self.customer(&national_id).qr_withheld);
        let cart = self.cart(cart_id)?;
        if cart.order_id.is_some() {
            return Err(Fail::refused(
                codes::CHECKOUT_INCOMPLETE,
                "This shopping cart is already ordered.",
            ));
        }
        let missing = cart.missing();
        if !missing.is_empty() {
            let names: Vec<&str> = missing.iter().map(|s| s.wire_name()).collect();
            return Err(Fail::refused(
                codes::CHECKOUT_INCOMPLETE,
                format!("Checkout incomplete, missing: {}.", names.join(", ")),
            ));
        }
        let expected = if cart.is_mnp() {
            OrderType::Mnp
        } else {
            OrderType::New
        };
        if order_type != expected {
            return Err(Fail::invalid("orderType does not match the number option"));
        }
        let msisdn = cart
            .msisdn()
            .ok_or_else(|| Fail::invalid("the checkout has no number"))?;
        let order = OrderRecord {
            id: order_id,
            external_id: external_id.to_owned(),
            order_type,
            total: cart.product.price_halalas + cart.deposit(),
            msisdn,
            status: OrderState::Submitted,
            paid_at: None,
            inquiries_since_paid: 0,
            qr_inquiries_since_paid: 0,
            qr_withheld,
            iccid: None,
            activation_code: None,
        };
        cart.order_id = Some(order.id.clone());
        if order.order_type == OrderType::New {
            self.taken.insert(order.msisdn.clone());
        }
        self.orders_by_external
            .insert(external_id.to_owned(), order.id.clone());
        self.orders.insert(order.id.clone(), order.clone());
        Ok(order)
    }

    pub fn order(&mut self, id: &str) -> Result<&mut OrderRecord, Fail> {
        self.orders
            .get_mut(id)
            .ok_or_else(|| Fail::not_found("unknown orderId"))
    }

    pub fn mark_paid(&mut self, order_id: &str, now: Instant) {
        if let Some(order) = self.orders.get_mut(order_id)
            && order.status == OrderState::Submitted
        {
            order.status = OrderState::PaymentConfirmed;
            order.paid_at = Some(now);
        }
    }

    /// Order tracking: each inquiry after payment may move the order one stage on.
    pub fn track(&mut self, order_id: &str, rules: &WorldRules) {
        let Some(order) = self.orders.get_mut(order_id) else {
            return;
        };
        if order.paid_at.is_none()
            || matches!(order.status, OrderState::Completed | OrderState::Cancelled)
        {
            return;
        }
        order.inquiries_since_paid += 1;
        if order.inquiries_since_paid >= rules.order_stage_inquiries.max(1) {
            order.inquiries_since_paid = 0;
            order.status = match order.status {
                OrderState::PaymentConfirmed => OrderState::InProgress,
                // A withheld order stays in provisioning for good.
                _ if order.qr_withheld => OrderState::InProgress,
                _ => OrderState::Completed,
            };
        }
    }

    /// The QR code of an order: `Ok(None)` while not ready.
    pub fn qr(
        &mut self,
        order_id: &str,
        msisdn: &str,
        now: Instant,
        rules: &WorldRules,
    ) -> Result<Option<(String, String)>, Fail> {
        let iccid = self.sim_for(msisdn);
        let matching = self.ids.digits(10);
        let order = self.order(order_id)?;
        if order.msisdn != msisdn {
            return Err(Fail::invalid("the msisdn is not the order's line"));
        }
        if order.status == OrderState::Cancelled {
            return Err(Fail::refused(
                codes::ORDER_NOT_CANCELLABLE,
                "The order is cancelled.",
            ));
        }
        let Some(paid_at) = order.paid_at else {
            return Ok(None);
        };
        order.qr_inquiries_since_paid += 1;
        let ready = order.status == OrderState::Completed
            || !order.qr_withheld
                && match rules.qr {
                    QrPolicy::AfterInquiries(n) => order.qr_inquiries_since_paid > n,
                    QrPolicy::AfterDelay(d) => now >= paid_at + d,
                };
        if !ready {
            return Ok(None);
        }
        order.status = OrderState::Completed;
        let code = order
            .activation_code
            .get_or_insert_with(|| format!("LPA:1$smdp.sim.mobily.com.sa${}-{matching}", order.id))
            .clone();
        order.iccid = Some(iccid.clone());
        Ok(Some((code, iccid)))
    }

    /// Cancels an order: `Ok(true)` when this call cancelled it.
    pub fn cancel(
        &mut self,
        order_id: &str,
        expected: OrderType,
    ) -> Result<(OrderRecord, bool), Fail> {
        let order = self.order(order_id)?;
        if order.order_type != expected {
            return Err(Fail::refused(
                codes::WRONG_ORDER_TYPE,
                "Use cancelMNPOrder for MNP orders and updateOrderStatus for the others.",
            ));
        }
        match order.status {
            OrderState::Cancelled => return Ok((order.clone(), false)),
            OrderState::Completed => {
                return Err(Fail::refused(
                    codes::ORDER_NOT_CANCELLABLE,
                    "The order is fulfilled and cannot be cancelled.",
                ));
            }
            _ => {}
        }
        order.status = OrderState::Cancelled;
        let order = order.clone();
        // The number goes back to the pool.
        self.taken.remove(&order.msisdn);
        if let Some(reservation) = self.reserved.remove(&order.msisdn) {
            self.reservations.remove(&reservation);
        }
        Ok((order, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mobily::{Msisdn, ReservationId};

    fn rules() -> WorldRules {
        WorldRules {
            max_lines: 4,
            postpaid_deposit: 50_000,
            reservation_hold: Duration::from_secs(900),
            qr: QrPolicy::AfterInquiries(2),
            order_stage_inquiries: 1,
            max_records: 100,
        }
    }

    #[test]
    fn postpaid_and_mnp_change_the_required_sections() {
        let mut w = World::new(1);
        let pre = w.create_cart("ESIM-PRE-30", &rules()).unwrap();
        assert!(!pre.required().contains(&Section::OverdueBills));
        assert!(pre.required().contains(&Section::NumberReservation));
        let post = w.create_cart("ESIM-POST-149", &rules()).unwrap();
        assert!(post.required().contains(&Section::SecurityDeposit));
        w.validate_cart(&post.id, "1012345678").unwrap();
        let mnp = NumberChoice::Mnp {
            msisdn: Msisdn::parse("0551234567").unwrap(),
            donor_operator: "STC".into(),
        };
        w.capture(&post.id, CaptureData::NumberOption(mnp), Instant::now())
            .unwrap();
        assert!(
            !w.carts[&post.id]
                .required()
                .contains(&Section::NumberReservation)
        );
        assert_eq!(w.carts[&post.id].msisdn().as_deref(), Some("966551234567"));
    }

    #[test]
    fn numbers_are_reserved_once_and_lapse() {
        let mut w = World::new(1);
        let t0 = Instant::now();
        let cart = w.create_cart("ESIM-PRE-30", &rules()).unwrap().id;
        let n = w.available(false, 3, t0)[0].clone();
        let r = w.reserve(&n, &cart, t0, &rules()).unwrap();
        assert!(matches!(
            w.reserve(&n, &cart, t0, &rules()),
            Err(Fail::Refused(codes::NUMBER_UNAVAILABLE, _))
        ));
        assert!(!w.available(false, 200, t0).contains(&n));
        assert!(w.available(false, 200, r.until).contains(&n), "lapsed");
        assert_eq!(w.available(true, 3, t0)[0], "966500000000");
    }

    #[test]
    fn captures_must_agree_with_earlier_steps() {
        let mut w = World::new(1);
        let t0 = Instant::now();
        let cart = w.create_cart("ESIM-PRE-30", &rules()).unwrap().id;
        let n = w.available(false, 1, t0)[0].clone();
        assert!(matches!(
            w.capture(
                &cart,
                CaptureData::SimOption {
                    sim_type: SimType::Esim
                },
                t0
            ),
            Err(Fail::Refused(codes::CHECKOUT_INCOMPLETE, _))
        ));
        w.validate_cart(&cart, "1012345678").unwrap();
        let bogus = CaptureData::NumberReservation {
            msisdn: Msisdn::parse(&n[3..]).unwrap(),
            reservation_id: ReservationId::new("RES-nope").unwrap(),
        };
        assert!(matches!(w.capture(&cart, bogus, t0), Err(Fail::Invalid(_))));
        assert!(
            matches!(
                w.capture(&cart, CaptureData::OverdueBills { has_dues: false }, t0),
                Err(Fail::Invalid(_))
            ),
            "not part of a prepaid checkout"
        );
        assert!(matches!(
            w.post_order(&cart, "j1:order", OrderType::New),
            Err(Fail::Refused(codes::CHECKOUT_INCOMPLETE, _))
        ));
    }

    #[test]
    fn tcc_registration_is_per_profile_and_sims_are_stable() {
        let mut w = World::new(1);
        let iccid = w.sim_for("966551234567");
        assert_eq!(w.sim_for("966551234567"), iccid);
        assert_eq!(iccid.len(), 19);
        let (id, first) = w.register("1012345678", "966551234567", &iccid).unwrap();
        assert!(first);
        assert_eq!(
            w.register("1012345678", "966551234567", &iccid).unwrap(),
            (id, false)
        );
        assert!(matches!(
            w.register("1012345678", "966551234567", "8996600000000000000"),
            Err(Fail::Invalid(_))
        ));
    }
}
