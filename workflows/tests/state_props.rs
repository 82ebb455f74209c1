//! Property tests of journey decoding: every workflow's stored `State`,
//! `Input`, `Output` and `Compensation` are read back from JSON the database
//! (or an operator's `patch-state` file) holds. Whatever that JSON is, decoding
//! must answer (a value or a serde error, which the engine turns into a refused
//! repair or a failed journey) and never panic; and whatever decodes must
//! encode and decode again to the same JSON (the engine re-reads what it wrote).
//!
//! Inputs are also drawn by mutating real demo inputs, so the generator
//! reaches deep into valid shapes. Case count is small for CI; raise it with
//! `PROPTEST_CASES=100000`.

use handover_engine::Workflow;
use handover_workflows::alqimah_payment::AlQimahPayment;
use handover_workflows::demo::mobily_esim::scenario;
use handover_workflows::mobily_esim::EsimCheckout;
use handover_workflows::mobitel_billing::MobitelBilling;
use handover_workflows::reach_port_in::ReachPortIn;
use handover_workflows::reach_purchase::ReachPurchase;
use handover_workflows::service_ops::ServiceChange;
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

/// Names that occur in the workflows' JSON, so random objects sometimes hit
/// real fields and enum variants.
const WORDS: &[&str] = &[
    "step",
    "state",
    "data",
    "msisdn",
    "iccid",
    "imei",
    "amount",
    "order_id",
    "transaction_id",
    "attempt",
    "polls",
    "deadline_ms",
    "Validate",
    "Purchase",
    "AwaitPayment",
    "Activate",
    "Done",
    "Failed",
    "Create",
    "Update",
    "Charge",
    "Pending",
    "$sensitive",
    "type",
    "status",
    "reference",
    "customer_id",
    "corrections",
    "timeouts",
    "plan_id",
    "zip",
    "pin",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        proptest::sample::select(WORDS).prop_map(|w| json!(w)),
        "\\PC{0,24}".prop_map(Value::String),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(WORDS).prop_map(str::to_owned),
        "[a-z_]{1,12}",
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Decodes `value` as `T`; if it decodes, the round trip must be exact.
fn decodes_stably<T: Serialize + DeserializeOwned>(value: &Value) -> Result<(), TestCaseError> {
    let Ok(decoded) = serde_json::from_value::<T>(value.clone()) else {
        return Ok(());
    };
    let encoded = serde_json::to_value(&decoded).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let again: T = serde_json::from_value(encoded.clone())
        .map_err(|e| TestCaseError::fail(format!("re-reading what was written: {e}")))?;
    let encoded_again =
        serde_json::to_value(&again).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(encoded, encoded_again);
    Ok(())
}

fn every_type_of<W: Workflow>(value: &Value) -> Result<(), TestCaseError> {
    decodes_stably::<W::State>(value)?;
    decodes_stably::<W::Input>(value)?;
    decodes_stably::<W::Output>(value)?;
    decodes_stably::<W::Compensation>(value)
}

fn all_workflows(value: &Value) -> Result<(), TestCaseError> {
    every_type_of::<ServiceChange>(value)?;
    every_type_of::<MobitelBilling>(value)?;
    every_type_of::<AlQimahPayment>(value)?;
    every_type_of::<ReachPurchase>(value)?;
    every_type_of::<ReachPortIn>(value)?;
    every_type_of::<EsimCheckout>(value)
}

/// A real demo input with one leaf replaced or one key removed.
fn mutated_input() -> impl Strategy<Value = Value> {
    (
        0u64..40,
        any::<prop::sample::Index>(),
        scalar(),
        any::<bool>(),
    )
        .prop_map(|(i, at, leaf, remove)| {
            let (_, input, _, _) = scenario(i);
            let mut value = serde_json::to_value(input).unwrap_or(Value::Null);
            if let Value::Object(map) = &mut value
                && !map.is_empty()
            {
                let key = map
                    .keys()
                    .nth(at.index(map.len()))
                    .cloned()
                    .unwrap_or_default();
                if remove {
                    map.remove(&key);
                } else {
                    map.insert(key, leaf);
                }
            }
            value
        })
}

#[test]
fn the_demo_inputs_round_trip() {
    for i in 0..40 {
        let (_, input, _, _) = scenario(i);
        let value = serde_json::to_value(&input).unwrap();
        let back: <EsimCheckout as Workflow>::Input =
            serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("scenario {i}: {e}"));
        assert_eq!(serde_json::to_value(back).unwrap(), value);
    }
}

proptest! {
    #[test]
    fn arbitrary_json_never_panics_and_round_trips(value in any_json()) {
        all_workflows(&value)?;
    }

    #[test]
    fn mutated_inputs_never_panic_and_round_trip(value in mutated_input()) {
        all_workflows(&value)?;
    }
}
