//! Property tests ("fuzzing that runs in CI") of every parser that reads what
//! arrives from outside: provider callbacks and webhooks, payment returns.
//!
//! Each property feeds arbitrary input (random bytes, random strings, and
//! mutations of a valid message: truncated, with a byte flipped, with junk
//! appended) and asks only that the parser answers (`Ok` or a typed error) and
//! never panics, and that a valid message still parses. The case count is
//! small for CI; raise it on demand with `PROPTEST_CASES=100000`.

use handover_adapters::alqimah::parse_webhook;
use handover_adapters::mobily::nafath::NafathWebhook;
use handover_adapters::mobily::payment::ThreeDsReturn;
use handover_adapters::reach::callbacks::{parse_callback, parse_notification};
use handover_adapters::service_ops::{EventKind, parse_event};
use proptest::prelude::*;

const REACH_CALLBACK: &str = r#"{"type":"PRODUCT_PURCHASE","transactionId":"TXN-1DD77F6B53AE","customerId":"CUS-4387352241","clientAccountId":"acct-1","status":"COMPLETED"}"#;
const REACH_NOTIFICATION: &str =
    r#"{"type":"PORT_OUT","eventId":"EVT-3","customerId":"CUS-1","mobileNo":"2125550100"}"#;
const ALQIMAH_QUERY: &str =
    "OperationStatus=1&WebHookCode=abc123&TransactionID=789&ReferenceID=R1&price=10.5&message=ok";
const NAFATH_BODY: &str = r#"{"transactionId":"tx-1","requestId":"journey-9:nafath","status":"COMPLETED","timestamp":"2024-10-15T12:00:00Z"}"#;
const THREE_DS_QUERY: &str = "paymentId=pay-1&paymentTransId=journey-1%3Apay&result=success";
const SERVICE_EVENT: &str =
    r#"{"code":"SERVICE_CREATED","title":"Service created","service_id":"svc-1"}"#;
const CORRELATION: &str = "7d444840-9dc0-11d1-b245-5ffdce74fad2";

/// Every way one message is spoiled: cut short, a byte changed, junk added.
fn mutations(valid: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let len = valid.len();
    prop_oneof![
        (0..=len).prop_map(move |cut| valid.as_bytes()[..cut].to_vec()),
        (0..len, any::<u8>()).prop_map(move |(at, byte)| {
            let mut bytes = valid.as_bytes().to_vec();
            bytes[at] = byte;
            bytes
        }),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(move |junk| {
            let mut bytes = valid.as_bytes().to_vec();
            bytes.extend(junk);
            bytes
        }),
        proptest::collection::vec(any::<u8>(), 0..512),
    ]
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_valid_messages_parse() {
    parse_callback(REACH_CALLBACK.as_bytes()).expect("reach callback");
    parse_notification(REACH_NOTIFICATION.as_bytes()).expect("reach notification");
    parse_webhook(ALQIMAH_QUERY).expect("alqimah");
    NafathWebhook::parse(NAFATH_BODY.as_bytes()).expect("nafath");
    ThreeDsReturn::parse_query(THREE_DS_QUERY).expect("3ds");
    parse_event(
        EventKind::Success,
        Some(CORRELATION),
        SERVICE_EVENT.as_bytes(),
    )
    .expect("event");
}

proptest! {
    #[test]
    fn reach_callbacks_never_panic(body in mutations(REACH_CALLBACK)) {
        let _ = parse_callback(&body);
    }

    #[test]
    fn reach_notifications_never_panic(body in mutations(REACH_NOTIFICATION)) {
        let _ = parse_notification(&body);
    }

    #[test]
    fn alqimah_webhooks_never_panic(query in mutations(ALQIMAH_QUERY)) {
        let _ = parse_webhook(&text(&query));
    }

    #[test]
    fn nafath_webhooks_never_panic(body in mutations(NAFATH_BODY)) {
        let _ = NafathWebhook::parse(&body);
    }

    #[test]
    fn three_ds_returns_never_panic(query in mutations(THREE_DS_QUERY)) {
        let _ = ThreeDsReturn::parse_query(&text(&query));
    }

    #[test]
    fn service_events_never_panic(
        body in mutations(SERVICE_EVENT),
        header in proptest::option::of(mutations(CORRELATION)),
        success in any::<bool>(),
    ) {
        let kind = if success { EventKind::Success } else { EventKind::Error };
        let header = header.map(|h| text(&h));
        let _ = parse_event(kind, header.as_deref(), &body);
    }

    /// Any string where a query goes: percent signs, ampersands, unicode.
    #[test]
    fn arbitrary_queries_never_panic(query in "\\PC{0,300}") {
        let _ = parse_webhook(&query);
        let _ = ThreeDsReturn::parse_query(&query);
    }
}
