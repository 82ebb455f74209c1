//! What the simulated Reach sells and knows about devices: the plan catalog, the quote
//! arithmetic and device profiles. Pure values and functions.

use crate::reach::{DeviceMode, SimType};

/// A plan the simulator sells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimPlan {
    /// `serviceCode`.
    pub service_code: String,
    /// Display name (`planName` of the line once active).
    pub name: String,
    /// `baseLinePrice`, in cents.
    pub base_line_price_cents: u64,
    /// `maxLines`.
    pub max_lines: u32,
    /// `fccLabel`.
    pub fcc_label: String,
    /// `upGradableTo`.
    pub up_gradable_to: Vec<String>,
    /// `downGradableTo`.
    pub down_gradable_to: Vec<String>,
}

impl SimPlan {
    fn new(code: &str, name: &str, cents: u64, up: &[&str], down: &[&str]) -> Self {
        Self {
            service_code: code.to_owned(),
            name: name.to_owned(),
            base_line_price_cents: cents,
            max_lines: 5,
            fcc_label: format!("https://reach.example/fcc/{code}"),
            up_gradable_to: up.iter().map(|s| (*s).to_owned()).collect(),
            down_gradable_to: down.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// The default catalog: three plans linked by upgrades and downgrades.
pub fn default_catalog() -> Vec<SimPlan> {
    vec![
        SimPlan::new(
            "PLAN-5GB",
            "Essentials 5GB",
            2000,
            &["PLAN-15GB", "PLAN-UNL"],
            &[],
        ),
        SimPlan::new("PLAN-15GB", "Plus 15GB", 3000, &["PLAN-UNL"], &["PLAN-5GB"]),
        SimPlan::new(
            "PLAN-UNL",
            "Unlimited 5G",
            4500,
            &[],
            &["PLAN-15GB", "PLAN-5GB"],
        ),
    ]
}

/// A quote, in cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuoteCents {
    pub sim_kit: u64,
    pub activation: u64,
    pub shipment: u64,
    pub tax: u64,
    pub total_one_time: u64,
    pub monthly_total: u64,
}

/// Sales tax, in basis points (8.25 %).
const TAX_BASIS_POINTS: u64 = 825;

fn tax(cents: u64) -> u64 {
    (cents * TAX_BASIS_POINTS + 5_000) / 10_000
}

/// The price of `plan` bought with a `sim` SIM: a physical SIM costs a kit and shipping,
/// every line an activation fee, all taxed; the monthly estimate is the taxed base price.
pub(crate) fn quote(plan: &SimPlan, sim: SimType) -> QuoteCents {
    let (sim_kit, shipment) = match sim {
        SimType::Psim => (500, 499),
        SimType::Esim => (0, 0),
    };
    let activation = 1000;
    let subtotal = sim_kit + shipment + activation;
    let tax_today = tax(subtotal);
    QuoteCents {
        sim_kit,
        activation,
        shipment,
        tax: tax_today,
        total_one_time: subtotal + tax_today,
        monthly_total: plan.base_line_price_cents + tax(plan.base_line_price_cents),
    }
}

/// What the simulator says about a device (`GET /device/imei/{imei}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceProfile {
    /// `isValid`.
    pub valid: bool,
    /// `mode`.
    pub mode: DeviceMode,
    /// `make`.
    pub make: String,
    /// `model`.
    pub model: String,
}

impl DeviceProfile {
    /// The answer for an IMEI nobody scripted: valid (dual SIM) when its check digit is
    /// right, invalid otherwise.
    pub fn default_for(imei_check_digit_ok: bool) -> Self {
        Self {
            valid: imei_check_digit_ok,
            mode: DeviceMode::Both,
            make: "Google".to_owned(),
            model: "Pixel 8".to_owned(),
        }
    }

    /// A valid device taking only this kind of SIM.
    pub fn only(mode: DeviceMode) -> Self {
        Self {
            mode,
            ..Self::default_for(true)
        }
    }

    /// A device Reach does not support.
    pub fn unsupported() -> Self {
        Self::default_for(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_add_up() {
        let plan = &default_catalog()[2];
        let esim = quote(plan, SimType::Esim);
        assert_eq!(esim.total_one_time, 1000 + 83);
        assert_eq!(esim.monthly_total, 4500 + 371);
        let psim = quote(plan, SimType::Psim);
        assert_eq!(
            psim.sim_kit + psim.shipment + psim.activation + psim.tax,
            psim.total_one_time
        );
        assert_eq!(psim.tax, 165);
    }

    #[test]
    fn the_catalog_links_known_plans() {
        let catalog = default_catalog();
        for plan in &catalog {
            for target in plan.up_gradable_to.iter().chain(&plan.down_gradable_to) {
                assert!(
                    catalog.iter().any(|p| &p.service_code == target),
                    "{target}"
                );
            }
        }
    }
}
