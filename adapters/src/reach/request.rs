//! What the client sends: validated requests, turned into [`wire`](super::wire) bodies.

use std::fmt;

use super::types::invalid_input;
use super::wire;
use super::{
    CarrierAccountNumber, CarrierName, ClientAccountId, CustomerId, IccId, Imei, Mdn, PlanId,
    PortPin, RedirectUrl, SimType, ZipCode,
};
use crate::error::{Operation, Provider, ProviderError};

/// A US postal address (coverage check, shipping). `Debug` shows only state and ZIP.
#[derive(Clone, PartialEq, Eq)]
pub struct Address {
    /// Street line.
    pub address1: String,
    /// Second line.
    pub address2: Option<String>,
    /// City.
    pub city: String,
    /// Two-letter state code, e.g. `TX`.
    pub state: String,
    /// ZIP code.
    pub zip: ZipCode,
}

impl Address {
    /// Checks an address: lines up to 128 characters, city up to 64, a two-letter state.
    pub fn new(
        address1: &str,
        address2: Option<&str>,
        city: &str,
        state: &str,
        zip: ZipCode,
    ) -> Result<Self, ProviderError> {
        let line = |s: &str, max: usize| {
            let s = s.trim();
            (!s.is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control))
                .then(|| s.to_owned())
        };
        let state = state.trim().to_ascii_uppercase();
        let ok_state = state.len() == 2 && state.bytes().all(|b| b.is_ascii_uppercase());
        match (
            line(address1, 128),
            address2.map(|a| line(a, 128)),
            line(city, 64),
        ) {
            (Some(address1), None | Some(Some(_)), Some(city)) if ok_state => Ok(Self {
                address1,
                address2: address2.and_then(|a| line(a, 128)),
                city,
                state,
                zip,
            }),
            _ => Err(invalid_input(
                "address: lines 1-128 characters, city 1-64, state two letters",
            )),
        }
    }

    pub(super) fn to_wire(&self) -> wire::AddressBody {
        wire::AddressBody {
            address1: self.address1.clone(),
            address2: self.address2.clone(),
            city: self.city.clone(),
            state: self.state.clone(),
            zip: self.zip.as_str().to_owned(),
            country: "USA".to_owned(),
        }
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Address")
            .field("state", &self.state)
            .field("zip", &self.zip)
            .finish_non_exhaustive()
    }
}

/// The buying customer. Personal data: `Debug` shows nothing but the shape.
#[derive(Clone, PartialEq, Eq)]
pub struct CustomerDetails {
    first_name: String,
    last_name: String,
    email: String,
}

impl CustomerDetails {
    /// Checks names (1 to 64 printable characters) and e-mail (a `@` with text on both
    /// sides, at most 254 characters).
    pub fn new(first_name: &str, last_name: &str, email: &str) -> Result<Self, ProviderError> {
        let name = |s: &str| {
            let s = s.trim();
            (!s.is_empty() && s.chars().count() <= 64 && !s.chars().any(char::is_control))
                .then(|| s.to_owned())
        };
        let email = email.trim();
        let email_ok = email.len() <= 254
            && !email.chars().any(|c| c.is_whitespace() || c.is_control())
            && email
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
        match (name(first_name), name(last_name)) {
            (Some(first_name), Some(last_name)) if email_ok => Ok(Self {
                first_name,
                last_name,
                email: email.to_owned(),
            }),
            _ => Err(invalid_input(
                "customer: names 1-64 printable characters and a valid e-mail",
            )),
        }
    }
}

impl fmt::Debug for CustomerDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CustomerDetails { .. }")
    }
}

/// The number to port in and the losing carrier's account details (guide Scenario E, step
/// 2: "These must exactly match what's on file with their current carrier"). The PIN is a
/// secret; the number and account are masked when printed.
#[derive(Clone, Debug)]
pub struct PortInDetails {
    /// The 10-digit number to transfer.
    pub number_to_port: Mdn,
    /// The losing carrier, e.g. `T-Mobile`.
    pub old_carrier: CarrierName,
    /// The account number at the losing carrier.
    pub old_carrier_account_number: CarrierAccountNumber,
    /// The transfer PIN / account PIN.
    pub password: PortPin,
    /// The billing ZIP at the losing carrier.
    pub old_zip: ZipCode,
}

/// A quote or purchase request ("Same structure as the Quote body").
#[derive(Clone, Debug)]
pub struct Order {
    /// Our reference: the purchase's idempotency key (see the [module docs](super)).
    pub client_account_id: ClientAccountId,
    /// The chosen plan's `serviceCode`.
    pub plan_id: PlanId,
    /// Physical SIM (shipped) or eSIM.
    pub sim_type: SimType,
    /// Where the payment page sends the customer back (`?transId=` is appended).
    pub redirect_url: RedirectUrl,
    /// Who is buying.
    pub customer: CustomerDetails,
    /// Where to ship a physical SIM; required for [`SimType::Psim`].
    pub shipping_address: Option<Address>,
    /// The customer's own device, when known.
    pub imei: Option<Imei>,
    /// Keep an existing number (J3).
    pub port_in: Option<PortInDetails>,
}

impl Order {
    pub(super) fn to_wire(&self, operation: Operation) -> Result<wire::OrderBody, ProviderError> {
        if self.sim_type == SimType::Psim && self.shipping_address.is_none() {
            return Err(ProviderError::Rejected {
                provider: Provider::Reach,
                operation,
                status: None,
                message: "a PSIM order needs a shipping address".to_owned(),
            });
        }
        let port = self.port_in.as_ref();
        Ok(wire::OrderBody {
            client_account_id: self.client_account_id.as_str().to_owned(),
            plan_id: self.plan_id.as_str().to_owned(),
            sim_type: self.sim_type.as_str().to_owned(),
            redirect_url: self.redirect_url.as_url().as_str().to_owned(),
            first_name: self.customer.first_name.clone(),
            last_name: self.customer.last_name.clone(),
            email: self.customer.email.clone(),
            shipping_address: self.shipping_address.as_ref().map(Address::to_wire),
            imei: self.imei.as_ref().map(|i| i.as_str().to_owned()),
            number_to_port: port.map(|p| p.number_to_port.as_str().to_owned()),
            old_carrier: port.map(|p| p.old_carrier.as_str().to_owned()),
            old_carrier_account_number: port
                .map(|p| p.old_carrier_account_number.as_str().to_owned()),
            password: port.map(|p| p.password.secret().clone()),
            old_zip: port.map(|p| p.old_zip.as_str().to_owned()),
        })
    }
}

/// What to activate: an eSIM by the device's IMEI, or a physical SIM by its ICCID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `{"customerId", "esim": true, "imei"}` (guide Scenario D).
    Esim {
        /// The subscriber.
        customer_id: CustomerId,
        /// The device.
        imei: Imei,
    },
    /// `{"customerId", "esim": false, "iccId"}` (guide Scenario C).
    Psim {
        /// The subscriber.
        customer_id: CustomerId,
        /// The SIM card.
        icc_id: IccId,
    },
}

impl Activation {
    /// The subscriber.
    pub fn customer_id(&self) -> &CustomerId {
        match self {
            Activation::Esim { customer_id, .. } | Activation::Psim { customer_id, .. } => {
                customer_id
            }
        }
    }

    pub(super) fn to_wire(&self) -> wire::ActivationBody {
        match self {
            Activation::Esim { customer_id, imei } => wire::ActivationBody {
                customer_id: customer_id.as_str().to_owned(),
                esim: true,
                imei: Some(imei.as_str().to_owned()),
                icc_id: None,
            },
            Activation::Psim {
                customer_id,
                icc_id,
            } => wire::ActivationBody {
                customer_id: customer_id.as_str().to_owned(),
                esim: false,
                imei: None,
                icc_id: Some(icc_id.as_str().to_owned()),
            },
        }
    }
}

/// A port-in correction (guide Scenario E, step 5), carrying the corrected field.
#[derive(Clone, Debug)]
pub enum PortInUpdate {
    /// `UPDATE_PIN`: wrong PIN/password.
    UpdatePin(PortPin),
    /// `UPDATE_ACCOUNT`: wrong account number.
    UpdateAccount(CarrierAccountNumber),
    /// `UPDATE_ZIP`: wrong ZIP code.
    UpdateZip(ZipCode),
    /// `RESUBMIT_PORT`: resubmit with the same details.
    ResubmitPort,
    /// `CANCEL_PORT`: cancel the port-in.
    CancelPort,
    /// `CANCEL_AND_NEW`: cancel and activate a new number instead.
    CancelAndNew,
}

impl PortInUpdate {
    /// The wire `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            PortInUpdate::UpdatePin(_) => "UPDATE_PIN",
            PortInUpdate::UpdateAccount(_) => "UPDATE_ACCOUNT",
            PortInUpdate::UpdateZip(_) => "UPDATE_ZIP",
            PortInUpdate::ResubmitPort => "RESUBMIT_PORT",
            PortInUpdate::CancelPort => "CANCEL_PORT",
            PortInUpdate::CancelAndNew => "CANCEL_AND_NEW",
        }
    }

    pub(super) fn to_wire(&self, customer_id: &CustomerId) -> wire::PortInUpdateBody {
        let mut body = wire::PortInUpdateBody {
            customer_id: customer_id.as_str().to_owned(),
            update_type: self.type_name().to_owned(),
            password: None,
            old_carrier_account_number: None,
            old_zip: None,
        };
        match self {
            PortInUpdate::UpdatePin(pin) => body.password = Some(pin.secret().clone()),
            PortInUpdate::UpdateAccount(account) => {
                body.old_carrier_account_number = Some(account.as_str().to_owned());
            }
            PortInUpdate::UpdateZip(zip) => body.old_zip = Some(zip.as_str().to_owned()),
            PortInUpdate::ResubmitPort | PortInUpdate::CancelPort | PortInUpdate::CancelAndNew => {}
        }
        body
    }
}
