//! Every error class of the effectful calls, and the reconciliation the module docs
//! describe for each: after an unknown outcome there is exactly one effect.

use handover_adapters::mobily::payment::PaymentRequest;
use handover_adapters::mobily::resources::NumberCategory;
use handover_adapters::mobily::{
    ConfirmPaymentOutcome, OrderLookup, OrderState, OrderType, PaymentOutcome, PaymentState,
    PaymentStatus, VoidOutcome,
};
use handover_adapters::sim::mobily::{ThreeDsPolicy, endpoints};
use handover_adapters::sim::{EffectKind, Fault, FaultPlan, MobilyBehaviour, MobilySimConfig};
use handover_adapters::{ErrorClass, ProviderError};

use super::*;

fn unknown(result: Result<impl std::fmt::Debug, ProviderError>) {
    let err = result.expect_err("an unknown outcome");
    assert_eq!(err.class(), ErrorClass::OutcomeUnknown, "{err:?}");
}

fn gateway_timeout(after_effect: bool) -> Fault {
    Fault::GatewayTimeout { after_effect }
}

/// An ordered cart and the request to pay it.
async fn payable(h: &Harness, journey: &str) -> (PostedOrder, PaymentRequest) {
    let (order, _) = ordered(h, journey, "ESIM-PRE-30", None).await;
    let session = h
        .client
        .create_session(&order.order_id, order.total)
        .await
        .unwrap();
    let request = PaymentRequest {
        session_id: session.session_id,
        order_id: order.order_id.clone(),
        amount: order.total,
    };
    (order, request)
}

#[tokio::test]
async fn a_lost_reservation_answer_is_reconciled_by_resending_its_key() {
    let h = harness(MobilyBehaviour::default()).await;
    let c = &h.client;
    let cart = c.create_cart(&product("ESIM-PRE-30")).await.unwrap().id;
    let number = c
        .available_numbers(NumberCategory::Standard, 1)
        .await
        .unwrap()
        .remove(0);
    let k = key("j-res", "reserve");
    h.sim
        .faults()
        .script_next(endpoints::RESERVATION, gateway_timeout(true));
    unknown(c.reserve_number(&number, &cart, &k).await);
    assert_eq!(
        h.sim.ledger().count(EffectKind::Reservation, k.as_str()),
        1,
        "reserved although unanswered"
    );
    let first = c.reserve_number(&number, &cart, &k).await.unwrap();
    let again = c.reserve_number(&number, &cart, &k).await.unwrap();
    assert_eq!(first, again, "the original reservation, replayed");
    assert_eq!(h.sim.ledger().count(EffectKind::Reservation, k.as_str()), 1);

    // Dropped before the effect: the client cannot tell, the ledger can.
    let other = key("j-res", "reserve-2");
    let second = c
        .available_numbers(NumberCategory::Standard, 1)
        .await
        .unwrap()
        .remove(0);
    h.sim.faults().script_next(
        endpoints::RESERVATION,
        Fault::DropConnection {
            after_effect: false,
        },
    );
    unknown(c.reserve_number(&second, &cart, &other).await);
    assert_eq!(
        h.sim
            .ledger()
            .count(EffectKind::Reservation, other.as_str()),
        0
    );
    c.reserve_number(&second, &cart, &other).await.unwrap();
    assert_eq!(
        h.sim
            .ledger()
            .count(EffectKind::Reservation, other.as_str()),
        1
    );

    // TCC registration, the same way.
    let iccid = c.sim_details(&number).await.unwrap().iccid;
    let registration = TccRegistration {
        national_id: customer(),
        msisdn: number.clone(),
        iccid,
    };
    let tcc = key("j-res", "tcc");
    h.sim
        .faults()
        .script_next(endpoints::TCC_REGISTER, gateway_timeout(true));
    unknown(c.tcc_register(&registration, &tcc).await);
    let first = c.tcc_register(&registration, &tcc).await.unwrap();
    assert_eq!(c.tcc_register(&registration, &tcc).await.unwrap(), first);
    assert_eq!(
        h.sim.ledger().count(EffectKind::Registration, tcc.as_str()),
        1
    );
}

#[tokio::test]
async fn a_lost_order_answer_is_found_by_our_external_order_id() {
    let h = harness(MobilyBehaviour::default()).await;
    let c = &h.client;
    let (cart, msisdn) = checkout(&h, "j-order", "ESIM-PRE-30", None).await;
    let k = key("j-order", "order");
    h.sim
        .faults()
        .script_next(endpoints::POST_PRODUCT_ORDER, gateway_timeout(false));
    unknown(c.post_order(&cart, OrderType::New, &k).await);
    assert!(
        c.order_inquiry(&OrderLookup::ExternalOrderId(k.clone()))
            .await
            .unwrap()
            .is_empty(),
        "not created"
    );

    h.sim.faults().script_next(
        endpoints::POST_PRODUCT_ORDER,
        Fault::SlowAnswer { delay_ms: 1_500 },
    );
    let slow = MobilyClient::new(&tune(h.sim.client_config(), 400)).unwrap();
    unknown(slow.post_order(&cart, OrderType::New, &k).await);
    let found = c
        .order_inquiry(&OrderLookup::ExternalOrderId(k.clone()))
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "created although unanswered");
    assert_eq!(found[0].msisdn.as_ref(), Some(&msisdn));
    let resent = c.post_order(&cart, OrderType::New, &k).await.unwrap();
    assert_eq!(
        resent.order_id, found[0].order_id,
        "re-sending the key replays the order"
    );
    assert_eq!(h.sim.ledger().count(EffectKind::Order, k.as_str()), 1);
}

#[tokio::test]
async fn lost_payment_answers_are_reconciled_by_the_payment_inquiry() {
    let h = harness(MobilyBehaviour::default()).await;
    let c = &h.client;
    let (_, request) = payable(&h, "j-pay").await;
    let k = key("j-pay", "pay");

    h.sim
        .faults()
        .script_next(endpoints::CREATE_PAYMENT, gateway_timeout(false));
    unknown(c.create_payment(&request, &k).await);
    assert_eq!(
        c.payment_status(&k).await.unwrap(),
        PaymentState::NotFound,
        "never happened: send again"
    );

    h.sim
        .faults()
        .script_next(endpoints::CREATE_PAYMENT, gateway_timeout(true));
    unknown(c.create_payment(&request, &k).await);
    let PaymentState::Found {
        payment_id,
        status: PaymentStatus::Pending3ds,
        ..
    } = c.payment_status(&k).await.unwrap()
    else {
        panic!("created and waiting for 3-D Secure");
    };
    let PaymentOutcome::Requires3ds {
        payment_id: replayed,
        ..
    } = c.create_payment(&request, &k).await.unwrap()
    else {
        panic!("replayed");
    };
    assert_eq!(replayed, payment_id);

    h.sim.complete_3ds(payment_id.as_str(), true).unwrap();
    h.sim.faults().script_next(
        endpoints::CONFIRM_PAYMENT,
        Fault::DropConnection { after_effect: true },
    );
    unknown(c.confirm_payment(&payment_id, &k).await);
    assert!(matches!(
        c.payment_status(&k).await.unwrap(),
        PaymentState::Found {
            status: PaymentStatus::Authorised,
            ..
        }
    ));
    assert_eq!(
        c.confirm_payment(&payment_id, &k).await.unwrap(),
        ConfirmPaymentOutcome::Authorised {
            payment_id: payment_id.clone()
        }
    );
    assert_eq!(
        h.sim.ledger().count(EffectKind::Payment, k.as_str()),
        1,
        "authorised once"
    );
    assert!(h.sim.ledger().duplicates().is_empty());
}

#[tokio::test]
async fn lost_compensation_answers_are_reconciled_without_a_second_effect() {
    let h = harness(MobilyBehaviour::default().with_three_ds(ThreeDsPolicy::Frictionless)).await;
    let c = &h.client;
    let (order, request) = payable(&h, "j-comp").await;
    let pay = key("j-comp", "pay");
    c.create_payment(&request, &pay).await.unwrap();

    let void = key("j-comp", "void");
    h.sim
        .faults()
        .script_next(endpoints::INITIATE_PAYMENT, gateway_timeout(true));
    unknown(c.void_payment(&pay, order.total, &void).await);
    assert!(matches!(
        c.payment_status(&pay).await.unwrap(),
        PaymentState::Found {
            status: PaymentStatus::Voided,
            ..
        }
    ));
    assert_eq!(
        c.void_payment(&pay, order.total, &void).await.unwrap(),
        VoidOutcome::Voided
    );
    assert_eq!(h.sim.ledger().count(EffectKind::Void, void.as_str()), 1);

    let cancel = key("j-comp", "cancel");
    h.sim
        .faults()
        .script_next(endpoints::UPDATE_ORDER_STATUS, gateway_timeout(true));
    unknown(
        c.cancel_order(&order.order_id, "payment voided", &cancel)
            .await,
    );
    assert_eq!(
        c.cancel_order(&order.order_id, "payment voided", &cancel)
            .await
            .unwrap(),
        OrderState::Cancelled
    );
    assert_eq!(h.sim.ledger().count(EffectKind::Cancel, cancel.as_str()), 1);

    let (mnp, _) = ordered(
        &h,
        "j-comp-mnp",
        "ESIM-PRE-30",
        Some(Msisdn::parse("0569998888").unwrap()),
    )
    .await;
    let cancel = key("j-comp-mnp", "cancel");
    h.sim.faults().script_next(
        endpoints::CANCEL_MNP_ORDER,
        Fault::DropConnection { after_effect: true },
    );
    unknown(
        c.cancel_mnp_order(&mnp.order_id, "journey failed", &cancel)
            .await,
    );
    assert_eq!(
        c.cancel_mnp_order(&mnp.order_id, "journey failed", &cancel)
            .await
            .unwrap(),
        OrderState::Cancelled
    );
    assert_eq!(h.sim.ledger().count(EffectKind::Cancel, cancel.as_str()), 1);

    assert_eq!(
        h.sim.ledger().entries_of(EffectKind::Registration).len(),
        2,
        "one per journey"
    );
    assert!(h.sim.ledger().duplicates().is_empty());
}

#[tokio::test]
async fn back_pressure_and_outages_are_retryable_and_apply_nothing() {
    let h = harness(MobilyBehaviour::default()).await;
    let c = &h.client;
    let cart = c.create_cart(&product("ESIM-PRE-30")).await.unwrap().id;
    let number = c
        .available_numbers(NumberCategory::Standard, 1)
        .await
        .unwrap()
        .remove(0);
    let k = key("j-busy", "reserve");
    let faults = [
        Fault::RateLimited {
            retry_after_secs: Some(7),
        },
        Fault::InternalError,
        Fault::BadGateway,
        Fault::Unavailable {
            retry_after_secs: Some(2),
        },
    ];
    for fault in faults {
        h.sim
            .faults()
            .script_next(endpoints::RESERVATION, fault.clone());
        let err = c.reserve_number(&number, &cart, &k).await.unwrap_err();
        let expected_after = match fault {
            Fault::RateLimited { retry_after_secs } | Fault::Unavailable { retry_after_secs } => {
                retry_after_secs.map(Duration::from_secs)
            }
            _ => None,
        };
        assert_eq!(
            err.class(),
            ErrorClass::Retryable {
                retry_after: expected_after
            },
            "{fault:?}: {err:?}"
        );
    }
    assert!(h.sim.ledger().is_empty());
    c.reserve_number(&number, &cart, &k).await.unwrap();

    // Read-only calls: a 504, a slow answer or a dropped connection is simply retryable.
    for fault in [
        gateway_timeout(true),
        Fault::SlowAnswer { delay_ms: 1_500 },
        Fault::DropConnection { after_effect: true },
    ] {
        h.sim
            .faults()
            .script_next(endpoints::CHECKOUT_STRUCTURE, fault.clone());
        let quick = MobilyClient::new(&tune(h.sim.client_config(), 400)).unwrap();
        let err = quick.checkout_structure(&cart).await.unwrap_err();
        assert!(
            matches!(err, ProviderError::Unavailable { .. }),
            "{fault:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn nothing_listening_is_a_transport_error() {
    let h = harness(MobilyBehaviour::default()).await;
    let config = tune(h.sim.client_config(), 1_000);
    drop(h);
    let err = MobilyClient::new(&config)
        .unwrap()
        .products()
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Transport { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Retryable { retry_after: None });
}

/// A compressed J1 that reconciles payments the documented way. Returns our payment key.
async fn chaos_journey(h: &Harness, journey: String) -> IdempotencyKey {
    let c = &h.client;
    let (order, _) = ordered(h, &journey, "ESIM-PRE-30", None).await;
    let session = persist("session", || c.create_session(&order.order_id, order.total))
        .await
        .unwrap();
    let request = PaymentRequest {
        session_id: session.session_id,
        order_id: order.order_id.clone(),
        amount: order.total,
    };
    let pay = key(&journey, "pay");
    let mut payment = None;
    for _ in 0..50 {
        match c.create_payment(&request, &pay).await {
            Ok(PaymentOutcome::Authorised { payment_id }) => payment = Some(payment_id),
            Ok(other) => panic!("frictionless expected: {other:?}"),
            Err(e) if e.class() == ErrorClass::OutcomeUnknown => {
                if let PaymentState::Found { payment_id, .. } =
                    persist("status", || c.payment_status(&pay)).await.unwrap()
                {
                    payment = Some(payment_id);
                }
            }
            Err(e) if e.class() == ErrorClass::Terminal => panic!("{e}"),
            Err(_) => {}
        }
        if payment.is_some() {
            break;
        }
    }
    let payment = payment.expect("paid");
    for _ in 0..50 {
        match c.confirm_payment(&payment, &pay).await {
            Ok(ConfirmPaymentOutcome::Authorised { .. }) => return pay,
            Ok(other) => panic!("{other:?}"),
            Err(e) if e.class() == ErrorClass::OutcomeUnknown => {
                let state = persist("status", || c.payment_status(&pay)).await.unwrap();
                if matches!(
                    state,
                    PaymentState::Found {
                        status: PaymentStatus::Authorised,
                        ..
                    }
                ) {
                    return pay;
                }
            }
            Err(e) if e.class() == ErrorClass::Terminal => panic!("{e}"),
            Err(_) => {}
        }
    }
    panic!("{journey} never confirmed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_chaos_every_journey_orders_and_pays_exactly_once() {
    let config = MobilySimConfig::default()
        .with_behaviour(MobilyBehaviour::default().with_three_ds(ThreeDsPolicy::Frictionless))
        .with_faults(FaultPlan::chaos(11, 400));
    let h = harness_with(config).await;
    let h = Arc::new(Harness {
        client: MobilyClient::new(&tune(h.sim.client_config(), 150)).unwrap(),
        ..h
    });
    let journeys = (0..8).map(|i| {
        let h = h.clone();
        tokio::spawn(async move { chaos_journey(&h, format!("chaos-{i:02}")).await })
    });
    let keys: Vec<IdempotencyKey> = futures::future::join_all(journeys)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();

    let ledger = h.sim.ledger();
    for (i, pay) in keys.iter().enumerate() {
        let journey = format!("chaos-{i:02}");
        assert_eq!(
            ledger.count(EffectKind::Payment, pay.as_str()),
            1,
            "{journey}"
        );
        for (kind, step) in [
            (EffectKind::Order, "order"),
            (EffectKind::Reservation, "reserve"),
            (EffectKind::Registration, "tcc"),
        ] {
            assert_eq!(
                ledger.count(kind, key(&journey, step).as_str()),
                1,
                "{journey} {kind:?}"
            );
        }
    }
    assert!(ledger.duplicates().is_empty(), "{:?}", ledger.duplicates());
    assert!(ledger.is_complete());
    // The dangerous faults really hit effectful calls (deterministic for this seed: the draws
    // depend only on the seed, the endpoint and the call number).
    let effectful = [
        endpoints::RESERVATION,
        endpoints::TCC_REGISTER,
        endpoints::POST_PRODUCT_ORDER,
        endpoints::CREATE_PAYMENT,
        endpoints::CONFIRM_PAYMENT,
    ];
    let hits: Vec<_> = h
        .sim
        .faults()
        .injected()
        .into_iter()
        .filter(|f| effectful.contains(&f.endpoint) && f.fault.after_effect())
        .collect();
    assert!(
        !hits.is_empty(),
        "no after-effect fault on an effectful call"
    );
}
