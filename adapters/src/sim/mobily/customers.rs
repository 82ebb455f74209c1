//! The simulated catalogue and what Mobily knows of each customer.

use crate::mobily::PaymentType;

/// A product of the simulated catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimProduct {
    /// Offering id.
    pub id: &'static str,
    /// Display name.
    pub name: &'static str,
    /// Prepaid or postpaid.
    pub payment_type: PaymentType,
    /// Price in halalas.
    pub price_halalas: u64,
    /// Validity in days (prepaid).
    pub validity_days: Option<u32>,
}

/// The fixed catalogue: two prepaid packages and one postpaid.
pub const CATALOGUE: [SimProduct; 3] = [
    SimProduct {
        id: "ESIM-PRE-30",
        name: "Mobily eSIM Prepaid 30",
        payment_type: PaymentType::Prepaid,
        price_halalas: 3_000,
        validity_days: Some(30),
    },
    SimProduct {
        id: "ESIM-PRE-99",
        name: "Mobily eSIM Prepaid 99",
        payment_type: PaymentType::Prepaid,
        price_halalas: 9_900,
        validity_days: Some(30),
    },
    SimProduct {
        id: "ESIM-POST-149",
        name: "Mobily eSIM Postpaid 149",
        payment_type: PaymentType::Postpaid,
        price_halalas: 14_900,
        validity_days: None,
    },
];

pub(crate) fn product(id: &str) -> Option<&'static SimProduct> {
    CATALOGUE.iter().find(|p| p.id == id)
}

/// What the simulated Mobily knows of one customer (by national id). Unknown ids get the
/// default: a new customer, no lines, no dues, registered in Nafath.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CustomerProfile {
    /// Lines the customer has (decides TCC eligibility against the limit).
    pub active_lines: u32,
    /// Existing Mobily lines shown by getCustomerProductDetails (`9665XXXXXXXX`).
    pub existing_lines: Vec<String>,
    /// Overdue bills, in halalas.
    pub dues_halalas: Option<u64>,
    /// A deposit other than the default postpaid deposit, in halalas (0: none).
    pub deposit_halalas: Option<u64>,
    /// Why the package is refused, if it is.
    pub package_refusal: Option<String>,
    /// Why the cart does not qualify, if it does not.
    pub cart_refusal: Option<String>,
    /// Why TCC refuses the registration, if it does.
    pub tcc_refusal: Option<String>,
    /// Whether the customer has a Nafath account.
    pub no_nafath_account: bool,
    /// Whether provisioning of this customer's orders never finishes: the QR inquiry
    /// keeps answering "not ready" whatever the QR policy (an order stuck at Mobily).
    pub qr_withheld: bool,
}

impl CustomerProfile {
    /// A customer who already has `lines` lines.
    pub fn with_active_lines(mut self, lines: u32) -> Self {
        self.active_lines = lines;
        self
    }

    /// A customer with overdue bills.
    pub fn with_dues(mut self, halalas: u64) -> Self {
        self.dues_halalas = Some(halalas);
        self
    }

    /// A customer with this deposit (0 for none).
    pub fn with_deposit(mut self, halalas: u64) -> Self {
        self.deposit_halalas = Some(halalas);
        self
    }

    /// A customer refused this package.
    pub fn with_package_refusal(mut self, reason: impl Into<String>) -> Self {
        self.package_refusal = Some(reason.into());
        self
    }

    /// A customer with existing Mobily lines.
    pub fn with_existing_lines(mut self, msisdns: Vec<String>) -> Self {
        self.active_lines = self
            .active_lines
            .max(u32::try_from(msisdns.len()).unwrap_or(u32::MAX));
        self.existing_lines = msisdns;
        self
    }

    /// A customer without a Nafath account.
    pub fn without_nafath(mut self) -> Self {
        self.no_nafath_account = true;
        self
    }

    /// A customer whose orders are paid but never provisioned (no QR code, ever).
    pub fn with_qr_withheld(mut self) -> Self {
        self.qr_withheld = true;
        self
    }
}
