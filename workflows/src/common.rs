//! What every journey shares: mapping provider errors onto step errors,
//! validating inputs, and polling schedules.

use std::time::Duration;

use handover_adapters::{ErrorClass, ProviderError};
use handover_engine::{InvalidInput, StepError};

/// A provider failure as the engine understands it: a terminal refusal
/// fails (or branches) the journey with the provider's message; a transient
/// failure is retried, honouring `Retry-After`; an unknown outcome is retried
/// and the retry reconciles first.
pub fn step_error(e: &ProviderError) -> StepError {
    match e.class() {
        ErrorClass::Terminal => StepError::terminal(e.to_string()),
        ErrorClass::Retryable {
            retry_after: Some(after),
        } => StepError::retry_after(e.to_string(), after),
        ErrorClass::Retryable { retry_after: None } => StepError::retryable(e.to_string()),
        ErrorClass::OutcomeUnknown => StepError::outcome_unknown(e.to_string()),
    }
}

/// An international MSISDN: 8 to 15 digits (a leading `+`, spaces and dashes
/// are dropped). Returns the digits.
pub fn msisdn(field: &str, raw: &str) -> Result<String, InvalidInput> {
    let digits: String = raw
        .trim()
        .trim_start_matches('+')
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .collect();
    if (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(digits)
    } else {
        Err(InvalidInput::new(format!(
            "{field} must be an MSISDN of 8 to 15 digits (got {} characters)",
            raw.trim().chars().count()
        )))
    }
}

/// An IMEI: exactly 15 digits with a valid Luhn check digit.
pub fn imei(raw: &str) -> Result<String, InvalidInput> {
    let raw = raw.trim();
    if raw.len() != 15 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InvalidInput::new(format!(
            "IMEI must be 15 digits, got {} characters",
            raw.chars().count()
        )));
    }
    if !luhn(raw) {
        return Err(InvalidInput::new(
            "IMEI check digit is wrong (Luhn): check the number on the device",
        ));
    }
    Ok(raw.to_owned())
}

/// An ICCID: 19 or 20 digits.
pub fn iccid(raw: &str) -> Result<String, InvalidInput> {
    let raw = raw.trim();
    if (19..=20).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_digit()) {
        Ok(raw.to_owned())
    } else {
        Err(InvalidInput::new(format!(
            "ICCID must be 19 or 20 digits, got {} characters",
            raw.chars().count()
        )))
    }
}

/// A positive amount with at most two decimals, as the providers take it
/// (`"5"`, `"12.50"`).
pub fn amount(field: &str, raw: &str) -> Result<String, InvalidInput> {
    let raw = raw.trim();
    let valid = raw.parse::<f64>().is_ok_and(|v| v.is_finite() && v > 0.0)
        && raw
            .split_once('.')
            .is_none_or(|(_, decimals)| decimals.len() <= 2)
        && raw.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if valid {
        Ok(raw.to_owned())
    } else {
        Err(InvalidInput::new(format!(
            "{field} must be a positive amount with at most two decimals, got {raw:?}"
        )))
    }
}

/// Whether `digits` passes the Luhn check.
pub fn luhn(digits: &str) -> bool {
    let mut sum = 0;
    for (i, b) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

/// The n-th interval of a growing poll (n from 0): `first`, doubling, capped
/// at `max`. Durable polls store `n` in the state, so the schedule survives
/// restarts.
pub fn poll_interval(n: u32, first: Duration, max: Duration) -> Duration {
    first.saturating_mul(1u32 << n.min(20)).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_validated_with_clear_errors() {
        assert_eq!(
            msisdn("msisdn", "+966 50-123 4567").unwrap(),
            "966501234567"
        );
        assert!(
            msisdn("msisdn", "12ab")
                .unwrap_err()
                .message
                .contains("8 to 15 digits")
        );
        assert_eq!(imei("490154203237518").unwrap(), "490154203237518");
        assert!(
            imei("49015420323751")
                .unwrap_err()
                .message
                .contains("15 digits, got 14")
        );
        assert!(
            imei("490154203237519")
                .unwrap_err()
                .message
                .contains("Luhn")
        );
        assert!(iccid("8901260882207141234").is_ok());
        assert!(
            iccid("89012608822071412")
                .unwrap_err()
                .message
                .contains("19 or 20")
        );
        assert_eq!(amount("amount", "12.50").unwrap(), "12.50");
        for bad in ["-5", "0", "1.234", "abc", "1e3"] {
            assert!(amount("amount", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn polls_grow_and_cap() {
        let s = Duration::from_secs;
        let got: Vec<u64> = (0..6)
            .map(|n| poll_interval(n, s(60), s(600)).as_secs())
            .collect();
        assert_eq!(got, vec![60, 120, 240, 480, 600, 600]);
    }
}
