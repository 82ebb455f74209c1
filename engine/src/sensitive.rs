//! Secrets and personal data inside journey state and payloads.
//!
//! A journey's state must keep some secrets to resume after a crash (a port-in
//! PIN, a national id), so the store holds them. Everything that leaves the
//! engine for people (operator views, history shown by the CLI, the admin API,
//! logs, errors) goes through [`redact`], which removes them.
//!
//! Typed state marks its secrets with [`Sensitive`]; it serializes as
//! `{"$sensitive": <value>}` so the redactor finds it in plain JSON without
//! knowing the workflow's types. Untyped JSON (signal payloads, callback
//! bodies) is redacted by field name ([`redact_payload`]).

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::ids::mask_msisdn;

/// The JSON key that tags a sensitive value.
pub const SENSITIVE_TAG: &str = "$sensitive";

/// What redacted values are replaced with.
pub const REDACTED: &str = "[redacted]";

/// A value that must never be shown: `Debug` prints `[redacted]`, and the
/// operator tools replace it when they render state.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Sensitive<T>(T);

impl<T> Sensitive<T> {
    /// Wraps a secret.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the secret.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T: Serialize> Serialize for Sensitive<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(SENSITIVE_TAG, &self.0)?;
        map.end()
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Sensitive<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Accept the tagged form, and also a bare value (a state patched by
        // hand need not know the tag).
        let value = Value::deserialize(deserializer)?;
        let inner = match value {
            Value::Object(mut map) if map.len() == 1 && map.contains_key(SENSITIVE_TAG) => {
                map.remove(SENSITIVE_TAG).unwrap_or(Value::Null)
            }
            other => other,
        };
        if inner == Value::String(REDACTED.to_owned()) {
            return Err(serde::de::Error::custom(
                "a redacted placeholder cannot be stored as a secret value",
            ));
        }
        serde_json::from_value(inner)
            .map(Sensitive)
            .map_err(serde::de::Error::custom)
    }
}

/// Removes every [`Sensitive`] value from typed state rendered as JSON.
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) if map.len() == 1 && map.contains_key(SENSITIVE_TAG) => {
            Value::String(REDACTED.to_owned())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), redact_field(k, v, redact)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

/// Redacts untyped JSON (signal payloads, callback bodies) by field name, as
/// well as tagged [`Sensitive`] values: secrets are replaced and phone numbers
/// masked.
pub fn redact_payload(value: &Value) -> Value {
    match value {
        Value::Object(map) if map.len() == 1 && map.contains_key(SENSITIVE_TAG) => {
            Value::String(REDACTED.to_owned())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_secret_field(k) {
                        Value::String(REDACTED.to_owned())
                    } else {
                        v.clone()
                    };
                    (k.clone(), redact_field(k, &v, redact_payload))
                })
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact_payload).collect()),
        other => other.clone(),
    }
}

fn redact_field(key: &str, value: &Value, recurse: fn(&Value) -> Value) -> Value {
    match value {
        Value::String(s) if is_phone_field(key) => Value::String(mask_msisdn(s)),
        Value::Number(n) if is_phone_field(key) => Value::String(mask_msisdn(&n.to_string())),
        other => recurse(other),
    }
}

fn normalised(key: &str) -> String {
    key.chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase()
}

/// Field names whose values are secrets wherever they appear.
fn is_secret_field(key: &str) -> bool {
    const SECRET: &[&str] = &[
        "password",
        "pin",
        "portpin",
        // The losing carrier's account number authorizes a port-in like the PIN.
        "oldcarrieraccountnumber",
        // SIM and device identifiers the journeys keep as `Sensitive` in state.
        "iccid",
        "imei",
        "otp",
        "otpcode",
        "code",
        "nationalid",
        "iqamaid",
        "idnumber",
        "cardnumber",
        "pan",
        "cvv",
        "cvc",
        "token",
        "accesstoken",
        "apikey",
        "xapikey",
        "secret",
        "webhookcode",
        "authorization",
    ];
    let k = normalised(key);
    SECRET.contains(&k.as_str())
}

/// Field names whose values are phone numbers: masked, never removed, so an
/// operator can still tell two numbers apart.
fn is_phone_field(key: &str) -> bool {
    const PHONE: &[&str] = &[
        "msisdn",
        "mobileno",
        "mobilenumber",
        "mdn",
        "numbertoport",
        "receiver",
        "customer",
        "phone",
        "phonenumber",
        "servicenumber",
    ];
    let k = normalised(key);
    PHONE.contains(&k.as_str())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct PortIn {
        msisdn: String,
        pin: Sensitive<String>,
    }

    #[test]
    fn sensitive_round_trips_and_never_prints() {
        let state = PortIn {
            msisdn: "12025550123".into(),
            pin: Sensitive::new("4321".into()),
        };
        assert!(!format!("{state:?}").contains("4321"));
        let json = serde_json::to_value(&state).unwrap();
        assert_eq!(json["pin"], json!({"$sensitive": "4321"}));
        let back: PortIn = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, state);
        let shown = redact(&json);
        assert_eq!(shown["pin"], json!(REDACTED));
        assert_eq!(shown["msisdn"], json!("120******23"));
        assert!(!shown.to_string().contains("4321"));
    }

    #[test]
    fn a_redacted_placeholder_is_refused_as_a_secret() {
        let err = serde_json::from_value::<PortIn>(json!({"msisdn": "1", "pin": REDACTED}));
        assert!(err.is_err());
    }

    #[test]
    fn payloads_are_redacted_by_field_name() {
        let payload = json!({"code": "123456", "nested": {"Password": "x", "mobileNo": "0712755777"}, "title": "ok"});
        let shown = redact_payload(&payload);
        assert_eq!(shown["code"], json!(REDACTED));
        assert_eq!(shown["nested"]["Password"], json!(REDACTED));
        assert_eq!(shown["nested"]["mobileNo"], json!("071*****77"));
        assert_eq!(shown["title"], json!("ok"));
    }
}
