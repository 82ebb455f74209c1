//! Handlers of steps 1 to 11: catalogue, cart, checkout, eligibility, numbers, dues,
//! package, deposit and OTP. Wire format as documented in [`crate::mobily`]; bodies are
//! parsed strictly into the client's own wire types (unknown fields refused).

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::gateway::{Call, Reply, business, fail_response, json_response, ok, once};
use super::world::{CATALOGUE, Fail, product};
use super::{SimState, endpoints};
use crate::mobily::catalog::{PRODUCT_QUERY, PRODUCT_QUERY_NAME, wire as catalog};
use crate::mobily::checkout::{CaptureData, wire as checkout};
use crate::mobily::eligibility::wire as elig;
use crate::mobily::otp::wire as otp;
use crate::mobily::resources::{MAX_NUMBERS, NumberCategory, wire as res};
use crate::mobily::{PaymentType, Sar, codes};
use crate::sim::ledger::EffectKind;
use crate::sim::server::lock;

fn sar(halalas: u64) -> String {
    Sar::halalas(halalas).map(Sar::to_wire).unwrap_or_default()
}

/// `GET /wcm/api/products`.
pub(crate) fn products(_: &Arc<SimState>, _: &Call) -> Reply {
    let list: Vec<Value> = CATALOGUE
        .iter()
        .map(|p| {
            json!({
                "productOfferingId": p.id, "name": p.name, "paymentType": p.payment_type,
                "price": sar(p.price_halalas), "currency": "SAR",
            })
        })
        .collect();
    json_response(ok(json!({ "products": list }))).into()
}

/// `POST /catalog-agg-query/graphql`: answers [`PRODUCT_QUERY`] only.
pub(crate) fn graphql(_: &Arc<SimState>, call: &Call) -> Reply {
    let request: catalog::GraphqlRequest = match call.json() {
        Ok(r) => r,
        Err(fail) => return fail_response(fail).into(),
    };
    if request.operation_name != PRODUCT_QUERY_NAME || request.query != PRODUCT_QUERY {
        let body = json!({ "errors": [{ "message": "Unknown query", "extensions": { "code": "GRAPHQL_VALIDATION_FAILED" } }] });
        return axum::response::IntoResponse::into_response((
            http::StatusCode::BAD_REQUEST,
            axum::Json(body),
        ))
        .into();
    }
    let body = match product(request.variables.id.as_str()) {
        Some(p) => json!({ "data": { "productOffering": {
            "id": p.id, "name": p.name, "paymentType": p.payment_type,
            "price": { "amount": sar(p.price_halalas), "currency": "SAR" },
            "simTypes": ["ESIM"], "validityDays": p.validity_days,
        } } }),
        None => json!({
            "data": { "productOffering": null },
            "errors": [{ "message": "Product offering not found", "extensions": { "code": "NOT_FOUND" } }],
        }),
    };
    json_response(body).into()
}

/// `POST /api/shopping-cart/v3/shoppingCart`.
pub(crate) fn create_cart(state: &Arc<SimState>, call: &Call) -> Reply {
    let result = call.json::<catalog::CreateCartRequest>().and_then(|r| {
        if r.quantity != 1 {
            return Err(Fail::invalid("quantity must be 1"));
        }
        let rules = state.world_rules();
        let cart = lock(&state.world).create_cart(r.product_offering_id.as_str(), &rules)?;
        Ok(json_response(ok(json!({
            "shoppingCartId": cart.id, "totalAmount": sar(cart.product.price_halalas), "currency": "SAR",
            "items": [{ "productOfferingId": cart.product.id, "quantity": 1 }],
        }))))
    });
    result.into()
}

/// `POST /mobily-shopping-cart-management/api/update-and-validate`.
pub(crate) fn update_and_validate(state: &Arc<SimState>, call: &Call) -> Reply {
    let result = call
        .json::<catalog::UpdateAndValidateRequest>()
        .and_then(|r| {
            if r.id_type != r.national_id.id_type() {
                return Err(Fail::invalid("idType does not match nationalId"));
            }
            let id = r.shopping_cart_id.as_str();
            lock(&state.world).validate_cart(id, r.national_id.as_str())?;
            Ok(json_response(ok(
                json!({ "shoppingCartId": id, "valid": true }),
            )))
        });
    result.into()
}

fn structure_of(state: &SimState, cart_id: &str) -> Result<Value, Fail> {
    let mut world = lock(&state.world);
    let cart = world.cart(cart_id)?;
    let required = cart.required();
    let sections: Vec<Value> = required
        .iter()
        .map(|s| json!({ "name": s.wire_name(), "required": true, "captured": cart.captures.contains_key(s) }))
        .collect();
    Ok(ok(
        json!({ "shoppingCartId": cart_id, "sections": sections }),
    ))
}

/// `POST /checkout-api/v3/checkout/structure`.
pub(crate) fn structure(state: &Arc<SimState>, call: &Call) -> Reply {
    call.json::<checkout::StructureRequest>()
        .and_then(|r| structure_of(state, r.shopping_cart_id.as_str()))
        .map(json_response)
        .into()
}

/// `POST /checkout-api/v3/checkout/captureData`.
pub(crate) fn capture(state: &Arc<SimState>, call: &Call) -> Reply {
    let result = call.json::<checkout::CaptureRequest>().and_then(|r| {
        let data = CaptureData::from_wire(r.section, r.data).map_err(|e| {
            Fail::invalid(format!(
                "invalid data: {}",
                crate::redact::scrub_parser_message(&e.to_string())
            ))
        })?;
        data.validate()
            .map_err(|_| Fail::invalid("invalid data: donorOperator or contact details"))?;
        let cart = r.shopping_cart_id.as_str();
        lock(&state.world).capture(cart, data, Instant::now())?;
        Ok(json_response(ok(
            json!({ "shoppingCartId": cart, "section": r.section, "captured": true }),
        )))
    });
    result.into()
}

/// `POST /bmi-tcc-eligibility/services/tcc/eligibilityCheck`.
pub(crate) fn tcc_eligibility(state: &Arc<SimState>, call: &Call) -> Reply {
    let result = call.json::<elig::EligibilityRequest>().and_then(|r| {
        if r.id_type != r.national_id.id_type() {
            return Err(Fail::invalid("idType does not match nationalId"));
        }
        let max = state.world_rules().max_lines;
        let lines = lock(&state.world)
            .customer(r.national_id.as_str())
            .active_lines;
        let fields = json!({ "eligible": lines < max, "activeLines": lines, "maxLines": max });
        Ok(if lines < max {
            json_response(ok(fields))
        } else {
            let message = format!("The customer already has {lines} lines; CST allows {max}.");
            business(codes::NOT_ELIGIBLE, &message, fields)
        })
    });
    result.into()
}

/// `POST .../installedbase/getCustomerProductDetails`.
pub(crate) fn customer_products(state: &Arc<SimState>, call: &Call) -> Reply {
    let result = call.json::<elig::CustomerLookupRequest>().and_then(|r| {
        let world = lock(&state.world);
        let profile = match (&r.national_id, &r.msisdn) {
            (Some(id), None) => world.customers.get(id.as_str()).cloned(),
            (None, Some(m)) => world
                .customers
                .values()
                .find(|p| p.existing_lines.iter().any(|l| l == m.as_str()))
                .cloned(),
            _ => return Err(Fail::invalid("give exactly one of nationalId and msisdn")),
        };
        let exists = profile
            .as_ref()
            .is_some_and(|p| !p.existing_lines.is_empty());
        let lines: Vec<Value> = profile
            .map(|p| p.existing_lines)
            .unwrap_or_default()
            .iter()
            .map(
                |m| json!({ "msisdn": m, "paymentType": PaymentType::Prepaid, "status": "ACTIVE" }),
            )
            .collect();
        Ok(json_response(ok(
            json!({ "customerExists": exists, "products": lines }),
        )))
    });
    result.into()
}

/// `POST .../resourcePoolManagement/AvailabilityCheck`.
pub(crate) fn availability(state: &Arc<SimState>, call: &Call) -> Reply {
    let result = call.json::<res::AvailabilityRequest>().and_then(|r| {
        if r.count == 0 || r.count > MAX_NUMBERS {
            return Err(Fail::invalid(format!("count must be 1 to {MAX_NUMBERS}")));
        }
        let vanity = r.category == NumberCategory::Vanity;
        let numbers = lock(&state.world).available(vanity, r.count as usize, Instant::now());
        Ok(json_response(ok(json!({ "msisdns": numbers }))))
    });
    result.into()
}

/// `POST .../resourcePoolManagement/Reservation` (idempotent by key).
pub(crate) fn reservation(state: &Arc<SimState>, call: &Call) -> Reply {
    let parsed = call
        .key()
        .and_then(|key| Ok((key, call.json::<res::ReservationRequest>()?)));
    let (key, r) = match parsed {
        Ok(p) => p,
        Err(fail) => return fail_response(fail).into(),
    };
    let rules = state.world_rules();
    once(state, endpoints::RESERVATION, &key, |world| {
        let msisdn = r.msisdn.as_str();
        let record = world.reserve(msisdn, r.shopping_cart_id.as_str(), Instant::now(), &rules)?;
        let until = chrono::Utc::now()
            + chrono::Duration::from_std(rules.reservation_hold)
                .unwrap_or(chrono::Duration::zero());
        state.ledger.record(
            EffectKind::Reservation,
            key.clone(),
            Some(msisdn),
            json!({ "reservationId": record.id }),
        );
        Ok(ok(json!({
            "reservationId": record.id, "msisdn": msisdn,
            "reservedUntil": until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })))
    })
    .into()
}

/// `POST /bmi-customer-unpaidbills/services/customer/dues`.
pub(crate) fn dues(state: &Arc<SimState>, call: &Call) -> Reply {
    let result = call.json::<elig::CustomerRequest>().map(|r| {
        match lock(&state.world)
            .customer(r.national_id.as_str())
            .dues_halalas
        {
            Some(d) if d > 0 => business(
                codes::DUES_OWED,
                &format!(
                    "Please pay the overdue amount of SAR {} on mobily.com.sa first.",
                    sar(d)
                ),
                json!({ "hasDues": true, "totalAmount": sar(d), "currency": "SAR" }),
            ),
            _ => json_response(ok(
                json!({ "hasDues": false, "totalAmount": "0.00", "currency": "SAR" }),
            )),
        }
    });
    result.into()
}

/// `POST /package-eligibilty-check`.
pub(crate) fn package(state: &Arc<SimState>, call: &Call) -> Reply {
    let result = call.json::<elig::PackageRequest>().and_then(|r| {
        product(r.product_offering_id.as_str())
            .ok_or_else(|| Fail::not_found("unknown productOfferingId"))?;
        Ok(
            match lock(&state.world)
                .customer(r.national_id.as_str())
                .package_refusal
            {
                Some(reason) => business(
                    codes::PACKAGE_NOT_ELIGIBLE,
                    &reason,
                    json!({ "eligible": false }),
                ),
                None => json_response(ok(json!({ "eligible": true }))),
            },
        )
    });
    result.into()
}

/// `POST /bmi-customer-security-deposit/services/deposit/get`.
pub(crate) fn deposit(state: &Arc<SimState>, call: &Call) -> Reply {
    let result = call.json::<elig::PackageRequest>().and_then(|r| {
        let p = product(r.product_offering_id.as_str())
            .ok_or_else(|| Fail::not_found("unknown productOfferingId"))?;
        let profile = lock(&state.world).customer(r.national_id.as_str());
        let amount = match p.payment_type {
            PaymentType::Prepaid => 0,
            PaymentType::Postpaid => profile
                .deposit_halalas
                .unwrap_or(state.world_rules().postpaid_deposit),
        };
        Ok(json_response(ok(if amount == 0 {
            json!({ "depositRequired": false })
        } else {
            json!({ "depositRequired": true, "amount": sar(amount), "currency": "SAR" })
        })))
    });
    result.into()
}

fn otp_sent(otp_id: &str, ttl_secs: u64) -> Value {
    ok(json!({ "otpId": otp_id, "expiresInSeconds": ttl_secs }))
}

/// `POST /mobily-otp-services/services/otp/generation`.
pub(crate) fn otp_generation(state: &Arc<SimState>, call: &Call) -> Reply {
    let result = call.json::<otp::GenerationRequest>().map(|r| {
        let rules = state.flow_rules();
        let mut world = lock(&state.world);
        let super::world::World { ids, otp, .. } = &mut *world;
        let record = otp.generate(ids, r.msisdn.as_str(), Instant::now(), &rules);
        json_response(otp_sent(&record.otp_id, rules.otp_ttl.as_secs().max(1)))
    });
    result.into()
}

/// `POST /mobily-otp-services/services/otp/regeneration`.
pub(crate) fn otp_regeneration(state: &Arc<SimState>, call: &Call) -> Reply {
    let result = call.json::<otp::RegenerationRequest>().and_then(|r| {
        let rules = state.flow_rules();
        let mut world = lock(&state.world);
        let super::world::World { ids, otp, .. } = &mut *world;
        let record = otp.regenerate(
            ids,
            r.otp_id.as_str(),
            r.msisdn.as_str(),
            Instant::now(),
            &rules,
        )?;
        Ok(json_response(otp_sent(
            &record.otp_id,
            rules.otp_ttl.as_secs().max(1),
        )))
    });
    result.into()
}

/// `POST /mobily-otp-services/otp-rayah/validate`.
pub(crate) fn otp_validate(state: &Arc<SimState>, call: &Call) -> Reply {
    use super::flows::OtpCheck;
    let result = call.json::<otp::ValidateRequest>().and_then(|r| {
        let rules = state.flow_rules();
        let check = lock(&state.world).otp.validate(
            r.otp_id.as_str(),
            r.msisdn.as_str(),
            r.otp.expose(),
            Instant::now(),
            &rules,
        )?;
        Ok(match check {
            OtpCheck::Verified => json_response(ok(json!({ "verified": true }))),
            OtpCheck::Wrong { attempts_left } => business(
                codes::OTP_WRONG,
                "The verification code is incorrect.",
                json!({ "verified": false, "attemptsLeft": attempts_left }),
            ),
            OtpCheck::Expired => business(
                codes::OTP_EXPIRED,
                "The verification code has expired.",
                json!({ "verified": false }),
            ),
            OtpCheck::Locked => business(
                codes::OTP_LOCKED,
                "Too many wrong attempts; request a new code.",
                json!({ "verified": false, "attemptsLeft": 0 }),
            ),
        })
    });
    result.into()
}
