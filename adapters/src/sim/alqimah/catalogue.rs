//! What the simulated Al-Qimah sells, and at what price. The defaults are the document's
//! examples: top-ups on network 1 / service 103, offers on 2 / 202 (`PREWhatsApp`), game
//! cards on 8 / 801 (`pubg_60`... with `RequiredFields: PlayerID`, prices in rials as
//! `LocalPrice`).

use serde_json::{Map, Value};

/// Refusal messages of the catalogue checks (`status: false`).
pub mod messages {
    /// The network/service pair does not sell this kind of product.
    pub const SERVICE_NOT_AVAILABLE: &str = "Service not available";
    /// Unknown `OfferCode`.
    pub const OFFER_NOT_FOUND: &str = "Offer code not found";
    /// Unknown `LinkCode`.
    pub const CATEGORY_NOT_FOUND: &str = "Category not found";
    /// A `RequiredFields` entry is absent from `Fields`.
    pub const REQUIRED_FIELD_MISSING: &str = "A required field of the category is missing";
    /// `Quantity` outside the category's bounds, or given where not allowed.
    pub const QUANTITY_NOT_ALLOWED: &str = "Quantity is not allowed for this category";
}

/// A balance top-up service: price = `Amount` x `unit_price`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopUpService {
    /// `NetworkNumber`.
    pub network: u16,
    /// `ServiceNumber`.
    pub service: u32,
    /// Rials per unit of `Amount` (1 where the amount is the value).
    pub unit_price: u64,
}

/// An offer or package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferProduct {
    /// `NetworkNumber`.
    pub network: u16,
    /// `ServiceNumber`.
    pub service: u32,
    /// `OfferCode`.
    pub code: String,
    /// Price in rials.
    pub price: u64,
}

/// A game or gift-card category ("Get Games and Gift Cards Categories").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GameCategory {
    /// `NetworkNumber`.
    pub network: u16,
    /// `ServiceNumber`.
    pub service: u32,
    /// `LinkCode`.
    pub link_code: String,
    /// `LocalPrice` per unit, in rials.
    pub price: u64,
    /// `RequiredFields` codes.
    pub required_fields: Vec<String>,
    /// `AllowFreeQuantity`.
    pub allow_free_quantity: bool,
    /// `MinQuantity`.
    pub min_quantity: u32,
    /// `MaxQuantity`.
    pub max_quantity: u32,
}

/// The simulated catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SimCatalogue {
    /// Top-up services.
    pub top_ups: Vec<TopUpService>,
    /// Offers.
    pub offers: Vec<OfferProduct>,
    /// Game categories.
    pub games: Vec<GameCategory>,
}

impl Default for SimCatalogue {
    fn default() -> Self {
        let pubg = |link_code: &str, price| GameCategory {
            network: 8,
            service: 801,
            link_code: link_code.to_owned(),
            price,
            required_fields: vec!["PlayerID".to_owned()],
            allow_free_quantity: false,
            min_quantity: 1,
            max_quantity: 1,
        };
        Self {
            top_ups: vec![TopUpService {
                network: 1,
                service: 103,
                unit_price: 1,
            }],
            offers: vec![OfferProduct {
                network: 2,
                service: 202,
                code: "PREWhatsApp".to_owned(),
                price: 500,
            }],
            games: vec![
                pubg("pubg_60", 495),
                pubg("pubg_120", 995),
                GameCategory {
                    network: 8,
                    service: 801,
                    link_code: "freefire_diamonds".to_owned(),
                    price: 10,
                    required_fields: vec!["PlayerID".to_owned(), "ZoneID".to_owned()],
                    allow_free_quantity: true,
                    min_quantity: 10,
                    max_quantity: 1000,
                },
            ],
        }
    }
}

/// What a payment asks for, as the simulator parsed it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ask<'a> {
    TopUp {
        amount: u64,
    },
    Offer {
        code: &'a str,
    },
    Game {
        link_code: &'a str,
        fields: &'a Map<String, Value>,
        quantity: Option<u64>,
    },
}

impl SimCatalogue {
    /// The price of `ask` on `network`/`service`, or the refusal message.
    pub(crate) fn price(
        &self,
        network: u64,
        service: u64,
        ask: &Ask<'_>,
    ) -> Result<u64, &'static str> {
        let here = |n: u16, s: u32| u64::from(n) == network && u64::from(s) == service;
        match ask {
            Ask::TopUp { amount } => self
                .top_ups
                .iter()
                .find(|t| here(t.network, t.service))
                .map(|t| amount.saturating_mul(t.unit_price))
                .ok_or(messages::SERVICE_NOT_AVAILABLE),
            Ask::Offer { code } => {
                if !self.offers.iter().any(|o| here(o.network, o.service)) {
                    return Err(messages::SERVICE_NOT_AVAILABLE);
                }
                self.offers
                    .iter()
                    .find(|o| here(o.network, o.service) && o.code == *code)
                    .map(|o| o.price)
                    .ok_or(messages::OFFER_NOT_FOUND)
            }
            Ask::Game {
                link_code,
                fields,
                quantity,
            } => {
                if !self.games.iter().any(|g| here(g.network, g.service)) {
                    return Err(messages::SERVICE_NOT_AVAILABLE);
                }
                let category = self
                    .games
                    .iter()
                    .find(|g| here(g.network, g.service) && g.link_code == *link_code)
                    .ok_or(messages::CATEGORY_NOT_FOUND)?;
                let present = |code: &String| {
                    fields
                        .get(code)
                        .and_then(Value::as_str)
                        .is_some_and(|v| !v.trim().is_empty())
                };
                if !category.required_fields.iter().all(present) {
                    return Err(messages::REQUIRED_FIELD_MISSING);
                }
                let units = match (quantity, category.allow_free_quantity) {
                    (None, _) => u64::from(category.min_quantity.max(1)),
                    (Some(q), true)
                        if (u64::from(category.min_quantity)
                            ..=u64::from(category.max_quantity))
                            .contains(q) =>
                    {
                        *q
                    }
                    (Some(_), _) => return Err(messages::QUANTITY_NOT_ALLOWED),
                };
                Ok(category.price.saturating_mul(units))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn prices_follow_the_catalogue() {
        let c = SimCatalogue::default();
        assert_eq!(c.price(1, 103, &Ask::TopUp { amount: 100 }), Ok(100));
        assert_eq!(
            c.price(1, 999, &Ask::TopUp { amount: 100 }),
            Err(messages::SERVICE_NOT_AVAILABLE)
        );
        assert_eq!(
            c.price(
                2,
                202,
                &Ask::Offer {
                    code: "PREWhatsApp"
                }
            ),
            Ok(500)
        );
        assert_eq!(
            c.price(2, 202, &Ask::Offer { code: "Nope" }),
            Err(messages::OFFER_NOT_FOUND)
        );
        let fields = json!({"PlayerID": "5123"});
        let fields = fields.as_object().unwrap();
        let game = |link_code, quantity| Ask::Game {
            link_code,
            fields,
            quantity,
        };
        assert_eq!(c.price(8, 801, &game("pubg_60", None)), Ok(495));
        assert_eq!(
            c.price(8, 801, &game("pubg_60", Some(2))),
            Err(messages::QUANTITY_NOT_ALLOWED)
        );
        assert_eq!(
            c.price(8, 801, &game("pubg_9", None)),
            Err(messages::CATEGORY_NOT_FOUND)
        );
        assert_eq!(
            c.price(8, 801, &game("freefire_diamonds", Some(50))),
            Err(messages::REQUIRED_FIELD_MISSING),
            "ZoneID is required too"
        );
        let both = json!({"PlayerID": "5123", "ZoneID": "7"});
        let both = Ask::Game {
            link_code: "freefire_diamonds",
            fields: both.as_object().unwrap(),
            quantity: Some(50),
        };
        assert_eq!(c.price(8, 801, &both), Ok(500));
    }
}
