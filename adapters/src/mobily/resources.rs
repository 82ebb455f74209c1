//! Step 7: choosing and reserving a new number (Resource Pool Management).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::types::{CartId, IdempotencyKey, Msisdn, ReservationId};
use super::{Endpoint, MobilyClient, ops, paths};
use crate::error::ProviderError;
use crate::http::Effect;

/// Most numbers asked for (and read) in one availability check.
pub const MAX_NUMBERS: u32 = 20;

const AVAILABILITY: Endpoint = Endpoint::post(
    ops::AVAILABILITY_CHECK,
    paths::AVAILABILITY_CHECK,
    Effect::ReadOnly,
);
const RESERVATION: Endpoint =
    Endpoint::post(ops::RESERVE_NUMBER, paths::RESERVATION, Effect::Effectful);

/// The kind of numbers to offer ("customers may choose the vanity numbers as well", line 331).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NumberCategory {
    /// Ordinary numbers.
    Standard,
    /// Vanity numbers (depend on the package).
    Vanity,
}

/// Wire structures.
pub mod wire {
    use super::*;

    /// Body of AvailabilityCheck.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct AvailabilityRequest {
        /// The category.
        pub category: NumberCategory,
        /// How many numbers to offer, 1 to [`MAX_NUMBERS`].
        pub count: u32,
    }

    /// Answer of AvailabilityCheck.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct AvailabilityResponse {
        /// Free numbers.
        pub msisdns: Vec<Msisdn>,
    }

    /// Body of Reservation (with `X-Idempotency-Key`).
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct ReservationRequest {
        /// The chosen number.
        pub msisdn: Msisdn,
        /// The cart it is for.
        pub shopping_cart_id: CartId,
    }

    /// Answer of Reservation.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ReservationResponse {
        /// The reservation.
        pub reservation_id: ReservationId,
        /// The number reserved.
        pub msisdn: Msisdn,
        /// When the reservation lapses unless an order uses it (RFC 3339).
        pub reserved_until: DateTime<Utc>,
    }
}

/// A reserved number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The reservation.
    pub id: ReservationId,
    /// The number (masked in `Debug`).
    pub msisdn: Msisdn,
    /// When it lapses unless ordered.
    pub reserved_until: DateTime<Utc>,
}

impl MobilyClient {
    /// Step 7: up to `count` (at most [`MAX_NUMBERS`]) free numbers of a category. An empty
    /// list means none is free now.
    pub async fn available_numbers(
        &self,
        category: NumberCategory,
        count: u32,
    ) -> Result<Vec<Msisdn>, ProviderError> {
        let body = wire::AvailabilityRequest {
            category,
            count: count.clamp(1, MAX_NUMBERS),
        };
        let answer = self.call(AVAILABILITY, &body, None).await?;
        answer.success_or_refused()?;
        let parsed: wire::AvailabilityResponse = answer.body()?;
        Ok(parsed
            .msisdns
            .into_iter()
            .take(MAX_NUMBERS as usize)
            .collect())
    }

    /// Step 7: reserves `msisdn` for the cart. Effectful; a repeat with the same `key`
    /// returns the original reservation without reserving again, which is also how an
    /// `OutcomeUnknown` is reconciled. A number taken meanwhile is
    /// [`ProviderError::Refused`] with [`super::codes::NUMBER_UNAVAILABLE`]: offer others.
    #[tracing::instrument(level = "debug", skip_all, fields(provider = "mobily", msisdn = %msisdn, key = %key), err(level = tracing::Level::DEBUG))]
    pub async fn reserve_number(
        &self,
        msisdn: &Msisdn,
        cart: &CartId,
        key: &IdempotencyKey,
    ) -> Result<Reservation, ProviderError> {
        let body = wire::ReservationRequest {
            msisdn: msisdn.clone(),
            shopping_cart_id: cart.clone(),
        };
        let answer = self.call(RESERVATION, &body, Some(key)).await?;
        answer.success_or_refused()?;
        let parsed: wire::ReservationResponse = answer.body()?;
        if &parsed.msisdn != msisdn {
            return Err(answer.protocol("the reservation is for another number"));
        }
        Ok(Reservation {
            id: parsed.reservation_id,
            msisdn: parsed.msisdn,
            reserved_until: parsed.reserved_until,
        })
    }
}
