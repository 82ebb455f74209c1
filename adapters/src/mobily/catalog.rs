//! Steps 1 and 3: the WCM product list, product details (GraphQL), the shopping cart and its
//! qualification.

use serde::{Deserialize, Serialize};

use super::checkout::SimType;
use super::types::{CartId, NationalId, PaymentType, ProductOfferingId, Sar};
use super::{Endpoint, MobilyClient, answer_of, codes, ops, paths};
use crate::error::{Provider, ProviderError};
use crate::http::Effect;
use crate::redact::sanitize_message;

/// Most products read from the WCM list.
pub const MAX_PRODUCTS: usize = 200;

/// The GraphQL document sent to `/catalog-agg-query/graphql`. The simulator answers exactly
/// this query (by operation name) and refuses any other.
pub const PRODUCT_QUERY: &str = "query ProductOffering($id: ID!) { productOffering(id: $id) \
{ id name paymentType price { amount currency } simTypes validityDays } }";

/// The GraphQL operation name of [`PRODUCT_QUERY`].
pub const PRODUCT_QUERY_NAME: &str = "ProductOffering";

const PRODUCTS: Endpoint = Endpoint {
    operation: ops::PRODUCTS,
    method: super::Verb::Get,
    template: paths::PRODUCTS,
    effect: Effect::ReadOnly,
};
const GRAPHQL: Endpoint = Endpoint::post(
    ops::PRODUCT_DETAILS,
    paths::CATALOG_GRAPHQL,
    Effect::ReadOnly,
);
const CREATE_CART: Endpoint =
    Endpoint::post(ops::CREATE_CART, paths::SHOPPING_CART, Effect::ReadOnly);
const UPDATE_AND_VALIDATE: Endpoint = Endpoint::post(
    ops::UPDATE_AND_VALIDATE,
    paths::UPDATE_AND_VALIDATE,
    Effect::ReadOnly,
);

/// Wire structures of the catalogue and cart calls.
pub mod wire {
    use super::*;

    /// One entry of the WCM list.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct WcmProduct {
        /// The offering id used everywhere else.
        pub product_offering_id: ProductOfferingId,
        /// Display name.
        pub name: String,
        /// Prepaid or postpaid.
        pub payment_type: PaymentType,
        /// Price with VAT.
        pub price: Sar,
        /// `"SAR"`.
        pub currency: String,
    }

    /// Answer of the WCM list: `{"code", "message", "products": [...]}`.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct ProductsResponse {
        /// The sellable products.
        pub products: Vec<WcmProduct>,
    }

    /// A GraphQL request.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct GraphqlRequest {
        /// The query document ([`PRODUCT_QUERY`]).
        pub query: String,
        /// The operation name ([`PRODUCT_QUERY_NAME`]).
        pub operation_name: String,
        /// `{"id": "<productOfferingId>"}`.
        pub variables: GraphqlVariables,
    }

    /// Variables of [`PRODUCT_QUERY`].
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct GraphqlVariables {
        /// The offering.
        pub id: ProductOfferingId,
    }

    /// A price object.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Price {
        /// The amount.
        pub amount: Sar,
        /// `"SAR"`.
        pub currency: String,
    }

    /// `data.productOffering`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ProductOffering {
        /// The offering id.
        pub id: ProductOfferingId,
        /// Display name.
        pub name: String,
        /// Prepaid or postpaid.
        pub payment_type: PaymentType,
        /// Price with VAT.
        pub price: Price,
        /// SIM types the offering can be sold with.
        pub sim_types: Vec<SimType>,
        /// Validity of a prepaid package, in days.
        #[serde(default)]
        pub validity_days: Option<u32>,
    }

    /// `data`.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct GraphqlData {
        /// `null` when the offering does not exist.
        pub product_offering: Option<ProductOffering>,
    }

    /// One GraphQL error.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct GraphqlError {
        /// The message.
        pub message: String,
        /// `{"code": "NOT_FOUND"}` and the like.
        #[serde(default)]
        pub extensions: Option<serde_json::Value>,
    }

    /// A GraphQL answer (no `code`/`message` envelope).
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct GraphqlResponse {
        /// The data, absent on some errors.
        #[serde(default)]
        pub data: Option<GraphqlData>,
        /// Errors, if any.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub errors: Vec<GraphqlError>,
    }

    /// Body of create cart.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct CreateCartRequest {
        /// The selected offering.
        pub product_offering_id: ProductOfferingId,
        /// Always 1 for an eSIM line.
        pub quantity: u32,
    }

    /// Answer of create cart.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct CartResponse {
        /// The new cart.
        pub shopping_cart_id: CartId,
        /// The cart total.
        pub total_amount: Sar,
    }

    /// Body of update-and-validate (product offer qualification for this customer).
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct UpdateAndValidateRequest {
        /// The cart.
        pub shopping_cart_id: CartId,
        /// The buyer.
        pub national_id: NationalId,
        /// Derived from the id.
        pub id_type: super::super::types::IdType,
    }

    /// Answer of update-and-validate.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ValidateResponse {
        /// Whether the cart qualifies.
        pub valid: bool,
    }
}

/// A sellable product from the WCM list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    /// The offering id.
    pub id: ProductOfferingId,
    /// Display name.
    pub name: String,
    /// Prepaid or postpaid.
    pub payment_type: PaymentType,
    /// Price with VAT.
    pub price: Sar,
}

/// A product's details from the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductDetails {
    /// The offering id.
    pub id: ProductOfferingId,
    /// Display name.
    pub name: String,
    /// Prepaid or postpaid: decides whether steps 8 and 10 apply.
    pub payment_type: PaymentType,
    /// Price with VAT.
    pub price: Sar,
    /// SIM types it can be sold with (J1 needs [`SimType::Esim`]).
    pub sim_types: Vec<SimType>,
    /// Validity of a prepaid package, in days.
    pub validity_days: Option<u32>,
}

/// A created cart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cart {
    /// The cart id, used by every later step.
    pub id: CartId,
    /// The cart total.
    pub total: Sar,
}

impl MobilyClient {
    /// Step 1: the sellable products. Read-only; the caller caches the list and refreshes
    /// it on a schedule. At most [`MAX_PRODUCTS`] are returned.
    pub async fn products(&self) -> Result<Vec<Product>, ProviderError> {
        let response = self.send::<()>(PRODUCTS, None, None, None).await?;
        let answer = answer_of(PRODUCTS, response)?;
        answer.success_or_refused()?;
        let parsed: wire::ProductsResponse = answer.body()?;
        Ok(parsed
            .products
            .into_iter()
            .take(MAX_PRODUCTS)
            .map(|p| Product {
                id: p.product_offering_id,
                name: sanitize_message(&p.name),
                payment_type: p.payment_type,
                price: p.price,
            })
            .collect())
    }

    /// Step 3: a product's details from the catalogue (GraphQL). An unknown offering is
    /// [`ProviderError::Refused`] with the GraphQL error code (`NOT_FOUND`).
    pub async fn product_details(
        &self,
        id: &ProductOfferingId,
    ) -> Result<ProductDetails, ProviderError> {
        let body = wire::GraphqlRequest {
            query: PRODUCT_QUERY.to_owned(),
            operation_name: PRODUCT_QUERY_NAME.to_owned(),
            variables: wire::GraphqlVariables { id: id.clone() },
        };
        let response = self.send(GRAPHQL, None, Some(&body), None).await?;
        if !response.status().is_success() {
            return Err(super::error_from(GRAPHQL, &response));
        }
        let parsed: wire::GraphqlResponse = response.json()?;
        let offering = parsed.data.and_then(|d| d.product_offering);
        match (offering, parsed.errors.first()) {
            (Some(o), _) => Ok(ProductDetails {
                id: o.id,
                name: sanitize_message(&o.name),
                payment_type: o.payment_type,
                price: o.price.amount,
                sim_types: o.sim_types.into_iter().take(4).collect(),
                validity_days: o.validity_days,
            }),
            (None, Some(error)) => Err(ProviderError::Refused {
                provider: Provider::Mobily,
                operation: ops::PRODUCT_DETAILS,
                code: error
                    .extensions
                    .as_ref()
                    .and_then(|e| e.get("code"))
                    .and_then(|c| c.as_str())
                    .map(sanitize_message),
                message: sanitize_message(&error.message),
            }),
            (None, None) => Err(response.protocol_error("no productOffering and no error")),
        }
    }

    /// Step 3: creates a cart with the selected product. Not effectful in money or inventory
    /// (an abandoned cart costs nothing), so a lost answer is simply retried.
    pub async fn create_cart(&self, product: &ProductOfferingId) -> Result<Cart, ProviderError> {
        let body = wire::CreateCartRequest {
            product_offering_id: product.clone(),
            quantity: 1,
        };
        let answer = self.call(CREATE_CART, &body, None).await?;
        answer.success_or_refused()?;
        let parsed: wire::CartResponse = answer.body()?;
        Ok(Cart {
            id: parsed.shopping_cart_id,
            total: parsed.total_amount,
        })
    }

    /// Step 3: product offer qualification of the cart for this customer. A cart that does
    /// not qualify is [`ProviderError::Refused`] ([`codes::CART_NOT_QUALIFIED`]).
    pub async fn update_and_validate(
        &self,
        cart: &CartId,
        customer: &NationalId,
    ) -> Result<(), ProviderError> {
        let body = wire::UpdateAndValidateRequest {
            shopping_cart_id: cart.clone(),
            national_id: customer.clone(),
            id_type: customer.id_type(),
        };
        let answer = self.call(UPDATE_AND_VALIDATE, &body, None).await?;
        answer.success_or_refused()?;
        let parsed: wire::ValidateResponse = answer.body()?;
        if parsed.valid {
            Ok(())
        } else {
            Err(ProviderError::Refused {
                provider: Provider::Mobily,
                operation: ops::UPDATE_AND_VALIDATE,
                code: Some(codes::CART_NOT_QUALIFIED.to_owned()),
                message: if answer.message.is_empty() {
                    "the cart does not qualify".to_owned()
                } else {
                    answer.message
                },
            })
        }
    }
}
