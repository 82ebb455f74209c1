//! Callbacks and notifications (guide 2.3, 4): delivery faults and the strict parsers.

use super::support::*;

#[tokio::test]
async fn callbacks_arrive_early_and_duplicated_and_parse_to_one_event_each() {
    let (base, ingress) = Ingress::start().await;
    let ingress_base = base.clone();
    let sim = start(
        ReachSimConfig::default()
            .with_behaviour(
                ReachBehaviour::fast()
                    .with_delays(Duration::ZERO)
                    .with_customer(CustomerPayment::PayAfter {
                        delay: Duration::ZERO,
                        success: true,
                    }),
            )
            .with_callback_base(base)
            .with_delivery(
                CallbackSettings::fast(),
                DeliveryPlan::new(7)
                    .script(1, Delivery::normal().before_answer().duplicated(2))
                    .script(2, Delivery::normal().before_answer()),
            ),
    )
    .await;
    let client = client(&sim);
    let mut order = esim_order("J-600");
    order.redirect_url = RedirectUrl::parse(ingress_base.join("return").unwrap().as_str()).unwrap();

    // Zero delays: the purchase completes inside the request, and its callback (three
    // copies) is delivered before the answer reaches us.
    let outcome = client.purchase(&order).await.unwrap();
    let transaction_id = outcome.transaction_id().clone();
    let callbacks = ingress.callbacks();
    assert_eq!(callbacks.len(), 3, "before the answer: {callbacks:?}");
    let keys: std::collections::HashSet<String> =
        callbacks.iter().map(Callback::dedupe_key).collect();
    assert_eq!(
        keys.into_iter().collect::<Vec<_>>(),
        [format!("reach:PRODUCT_PURCHASE:{transaction_id}:COMPLETED")]
    );
    let Callback::ProductPurchase(purchase) = &callbacks[0] else {
        panic!("{callbacks:?}")
    };
    assert_eq!(
        callbacks[0].correlation().to_string(),
        format!("reach.txn:{transaction_id}")
    );
    assert_eq!(purchase.status, PurchaseStatusCode::Completed);
    let customer_id = purchase.customer_id.clone().unwrap();
    // The callback round-trips through the parser.
    assert_eq!(
        parse_callback(callbacks[0].to_body().to_string().as_bytes()).unwrap(),
        callbacks[0]
    );

    client
        .activate(&Activation::Esim {
            customer_id: customer_id.clone(),
            imei: Imei::parse(IMEI).unwrap(),
        })
        .await
        .unwrap();
    let callbacks = ingress.callbacks();
    assert_eq!(
        callbacks.len(),
        4,
        "the ACTIVATION callback came before the answer too"
    );
    let Callback::Activation(activated) = &callbacks[3] else {
        panic!("{callbacks:?}")
    };
    assert_eq!(activated.customer_id, customer_id);
    assert_eq!(activated.status, ActivationCode::Active);
    assert!(activated.mobile_no.is_some());
    assert_eq!(
        callbacks[3].correlation().to_string(),
        format!("reach.customer:{customer_id}")
    );
    assert_eq!(
        sim.ledger()
            .count(EffectKind::Activation, customer_id.as_str()),
        1
    );
}

#[tokio::test]
async fn callbacks_can_be_reordered_lost_and_port_failures_have_distinct_keys() {
    let (base, ingress) = Ingress::start().await;
    // Long enough that the held callback waits for its successor even on a busy machine.
    let mut settings = CallbackSettings::fast();
    settings.reorder_hold = Duration::from_secs(5);
    let sim = start(
        ReachSimConfig::default()
            .with_behaviour(ReachBehaviour::fast())
            .with_callback_base(base)
            .with_delivery(
                settings,
                DeliveryPlan::new(7)
                    .script(1, Delivery::normal().lost())
                    .script(2, Delivery::normal().reordered()),
            ),
    )
    .await;
    let client = client(&sim);
    sim.set_losing_carrier(
        NUMBER,
        LosingCarrierAccount {
            account_number: "998877665".into(),
            pin: SecretString::from("1357"),
            zip: "10001".into(),
            transient_failures: 0,
        },
    );
    // Callback 1 (purchase completed) is lost; the journey still learns it by polling.
    let (_, customer_id) = bought(
        &client,
        &sim,
        &port_order("J-601", PIN, "998877665", "99999"),
    )
    .await;
    client
        .activate(&Activation::Esim {
            customer_id: customer_id.clone(),
            imei: Imei::parse(IMEI).unwrap(),
        })
        .await
        .unwrap();
    // Callback 2 (PORTING_FAILED, wrong PIN) is held until callback 3 (wrong ZIP) went out.
    poll_line(&client, &customer_id, |s| {
        s.code() == ActivationCode::PortingFailed
    })
    .await;
    client
        .update_port_in(
            &customer_id,
            &PortInUpdate::UpdatePin(PortPin::new(SecretString::from("1357")).unwrap()),
        )
        .await
        .unwrap();
    poll_line(&client, &customer_id, |s| {
        s.code() == ActivationCode::PortingFailed
    })
    .await;

    let callbacks = eventually("two port callbacks", || {
        let c = ingress.callbacks();
        (c.len() == 2).then_some(c)
    })
    .await;
    let messages: Vec<Option<&str>> = callbacks
        .iter()
        .map(|c| match c {
            Callback::Activation(a) => a.activation_msg.as_deref(),
            _ => None,
        })
        .collect();
    assert_eq!(messages, [Some(WRONG_ZIP), Some(WRONG_PIN)], "reordered");
    assert_ne!(
        callbacks[0].dedupe_key(),
        callbacks[1].dedupe_key(),
        "two failures, two events"
    );
    assert!(
        callbacks
            .iter()
            .all(|c| matches!(c, Callback::Activation(_)))
    );
}

#[tokio::test]
async fn callbacks_to_a_target_that_is_down_are_retried_three_times() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    drop(listener);
    let sim = start(
        ReachSimConfig::default()
            .with_behaviour(ReachBehaviour::fast())
            .with_callback_base(down)
            .with_delivery(CallbackSettings::fast(), DeliveryPlan::new(1)),
    )
    .await;
    let client = client(&sim);
    bought(&client, &sim, &esim_order("J-602")).await;
    let sent = eventually("four attempts", || {
        let sent = sim.callbacks_sent();
        (sent.len() == 4).then_some(sent)
    })
    .await;
    assert!(
        sent.iter()
            .all(|s| s.name == "PRODUCT_PURCHASE" && s.outcome.is_err())
    );
    assert_eq!(
        sent.iter().map(|s| s.attempt).collect::<Vec<_>>(),
        [0, 1, 2, 3],
        "first attempt and three retries"
    );
}

#[tokio::test]
async fn notifications_reach_the_notification_endpoint_and_parse() {
    let (base, ingress) = Ingress::start().await;
    let sim = start(
        ReachSimConfig::default()
            .with_behaviour(ReachBehaviour::fast())
            .with_callback_base(base)
            .with_delivery(
                CallbackSettings::fast(),
                DeliveryPlan::new(1).script(1, Delivery::normal().duplicated(1)),
            ),
    )
    .await;
    let event_id = sim
        .notify(SimNotification::Usage {
            customer_id: "CUS-7".into(),
            usage_percentage: 80,
        })
        .await
        .unwrap();
    sim.notify(SimNotification::PortOut {
        customer_id: "CUS-7".into(),
    })
    .await
    .unwrap();
    let bodies = eventually("three notifications", || {
        let b = ingress.bodies_to("/apisvc/v0/notification");
        (b.len() == 3).then_some(b)
    })
    .await;
    let parsed: Vec<_> = bodies
        .iter()
        .map(|b| parse_notification(b).unwrap())
        .collect();
    let usage: Vec<_> = parsed
        .iter()
        .filter(|n| {
            n.event
                == NotificationEvent::Usage {
                    usage_percentage: 80,
                }
        })
        .collect();
    assert_eq!(usage.len(), 2, "duplicated");
    assert_eq!(usage[0].dedupe_key(), usage[1].dedupe_key());
    assert_eq!(usage[0].event_id.as_str(), event_id);
    assert!(parsed.iter().any(|n| n.event == NotificationEvent::PortOut));
    assert!(parsed.iter().all(|n| n.customer_id.as_str() == "CUS-7"));
}

#[test]
fn malformed_callback_bodies_are_rejected_by_the_parsers() {
    for (body, expected) in [
        (
            &b"{\"type\":\"PRODUCT_PURCHASE\",\"transactionId\":"[..],
            "not a JSON object",
        ),
        (
            br#"{"type":"SUBSCRIPTION_RENEWED","transactionId":"TXN-1"}"#,
            "unknown callback type",
        ),
        (
            br#"{"type":"PRODUCT_PURCHASE","status":"COMPLETED","customerId":"CUS-1"}"#,
            "transactionId is missing",
        ),
        (
            br#"{"type":"ACTIVATION","status":2,"mobileNo":"2125550100"}"#,
            "customerId is missing",
        ),
        (
            br#"{"type":"ACTIVATION","customerId":"CUS-1","status":2}"#,
            "mobileNo is missing",
        ),
    ] {
        let err = parse_callback(body).unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
    }
    assert!(matches!(
        parse_notification(br#"{"type":"PORT_OUT","customerId":"CUS-1"}"#),
        Err(CallbackError::MissingField("eventId"))
    ));
}
