//! Keeping personal data out of logs and errors.
//!
//! Provider messages are copied into errors so operators can read them, but a provider may
//! echo the customer's number back ("0712755777 has insufficient balance"). Every provider
//! message goes through [`sanitize_message`] before it is stored in a
//! [`ProviderError`](crate::ProviderError).

/// Longest provider message kept in an error, in characters.
pub const MAX_MESSAGE_CHARS: usize = 240;

/// Digit runs at least this long are treated as phone numbers (or other identifiers) and
/// masked. Nine covers Sri Lankan (`07XXXXXXXX`), Yemeni (`7XXXXXXXX`), Saudi
/// (`9665XXXXXXXX`) and US (`XXXXXXXXXX`) numbers.
const MIN_MASKED_DIGITS: usize = 9;

/// Masks a phone number for logs: keeps the first two and last two characters.
///
/// ```
/// assert_eq!(handover_adapters::redact::mask_msisdn("0712755777"), "07******77");
/// assert_eq!(handover_adapters::redact::mask_msisdn("123"), "***");
/// ```
pub fn mask_msisdn(msisdn: &str) -> String {
    let chars: Vec<char> = msisdn.chars().collect();
    if chars.len() < 6 {
        return "*".repeat(chars.len());
    }
    let last = chars.len() - 2;
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < 2 || i >= last { *c } else { '*' })
        .collect()
}

/// Makes a provider message safe to keep in an error: masks long digit runs (phone numbers),
/// drops control characters, and truncates to [`MAX_MESSAGE_CHARS`].
///
/// ```
/// use handover_adapters::redact::sanitize_message;
/// assert_eq!(
///     sanitize_message("0712755777 has insufficient balance"),
///     "07******77 has insufficient balance"
/// );
/// ```
pub fn sanitize_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE_CHARS + 3));
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if digits.chars().count() >= MIN_MASKED_DIGITS {
            out.push_str(&mask_msisdn(digits));
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    for c in message.chars().take(MAX_MESSAGE_CHARS) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        flush(&mut digits, &mut out);
        if c.is_control() {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    if message.chars().count() > MAX_MESSAGE_CHARS {
        out.push_str("...");
    }
    out.trim().to_owned()
}

/// Makes a parser's error message safe: removes quoted values (serde quotes the offending
/// value, which may be a token or a number) and then applies [`sanitize_message`]. Field
/// names, in backticks, are kept; digit runs inside them are still masked.
///
/// ```
/// use handover_adapters::redact::scrub_parser_message;
/// assert_eq!(
///     scrub_parser_message(r#"invalid type: string "eyJhbGciOi", expected u64 at line 1 column 9"#),
///     r#"invalid type: string "…", expected u64 at line 1 column 9"#
/// );
/// ```
pub fn scrub_parser_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut in_quotes = false;
    for c in message.chars() {
        if c == '"' {
            if in_quotes {
                out.push_str("…\"");
            } else {
                out.push('"');
            }
            in_quotes = !in_quotes;
        } else if !in_quotes {
            out.push(c);
        }
    }
    if in_quotes {
        out.push_str("…\"");
    }
    sanitize_message(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_messages_lose_their_values() {
        let e = serde_json::from_str::<u64>(r#""0712755777""#).unwrap_err();
        let scrubbed = scrub_parser_message(&e.to_string());
        assert!(!scrubbed.contains("0712755777"), "{scrubbed}");
        assert!(scrubbed.starts_with("invalid type: string"), "{scrubbed}");
        assert_eq!(
            scrub_parser_message("invalid value: integer `712755777`, expected a string"),
            "invalid value: integer `71*****77`, expected a string"
        );
        assert_eq!(
            scrub_parser_message("unterminated \"secret"),
            "unterminated \"…\""
        );
    }

    #[test]
    fn masks_numbers_anywhere_in_a_message() {
        assert_eq!(
            sanitize_message("Customer 0712755777: no consent"),
            "Customer 07******77: no consent"
        );
        assert_eq!(sanitize_message("+966512345678"), "+96********78");
        // Short numbers (amounts, codes) stay readable.
        assert_eq!(
            sanitize_message("amount 500 over limit 1000"),
            "amount 500 over limit 1000"
        );
    }

    #[test]
    fn truncates_and_strips_control_characters() {
        let long = "x".repeat(1000);
        let s = sanitize_message(&long);
        assert_eq!(s.len(), MAX_MESSAGE_CHARS + 3);
        assert!(s.ends_with("..."));
        assert_eq!(sanitize_message("a\nb\tc"), "a b c");
    }

    #[test]
    fn masks_short_values_entirely() {
        assert_eq!(mask_msisdn("12345"), "*****");
        assert_eq!(mask_msisdn("123456"), "12**56");
    }
}
