//! Business states and refusals: outcomes where the journey branches, `Refused` where it
//! ends. Each is produced both by the simulated world and by an injected refusal.

use handover_adapters::mobily::otp::Language;
use handover_adapters::mobily::payment::PaymentRequest;
use handover_adapters::mobily::resources::NumberCategory;
use handover_adapters::mobily::{
    ConfirmPaymentOutcome, CustomerLookup, DepositOutcome, DuesOutcome, EligibilityOutcome,
    NafathRequestId, OrderType, OtpCode, OtpValidation, PackageEligibility, PaymentOutcome,
    PaymentType, QrOutcome, Sar, codes,
};
use handover_adapters::sim::mobily::{CustomerProfile, ThreeDsPolicy, endpoints};
use handover_adapters::sim::{EffectKind, Fault, MobilyBehaviour};
use handover_adapters::{ErrorClass, ProviderError};

use super::*;

#[tokio::test]
async fn not_eligible_from_the_line_limit_or_an_injected_refusal() {
    let h = harness(MobilyBehaviour::default()).await;
    h.sim.set_customer(
        &customer(),
        CustomerProfile::default().with_active_lines(10),
    );
    let outcome = h
        .client
        .tcc_eligibility(&customer(), PaymentType::Prepaid)
        .await
        .unwrap();
    let EligibilityOutcome::NotEligible { code, reason } = outcome else {
        panic!("not eligible expected: {outcome:?}");
    };
    assert_eq!(code, codes::NOT_ELIGIBLE);
    assert!(reason.contains("10 lines"), "{reason}");

    let other = NationalId::parse("2098765432").unwrap();
    h.sim.faults().script_next(
        endpoints::TCC_ELIGIBILITY,
        Fault::refusal(codes::NOT_ELIGIBLE, "CST limit reached"),
    );
    let outcome = h
        .client
        .tcc_eligibility(&other, PaymentType::Postpaid)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        EligibilityOutcome::NotEligible {
            code: codes::NOT_ELIGIBLE.into(),
            reason: "CST limit reached".into()
        }
    );
    let request = h
        .sim
        .requests()
        .last_to(handover_adapters::mobily::paths::TCC_ELIGIBILITY)
        .unwrap();
    assert_eq!(request.json().unwrap()["idType"], "IQAMA");
    assert_eq!(request.json().unwrap()["lineType"], "POSTPAID");
}

#[tokio::test]
async fn dues_end_the_journey_with_the_message_and_amount() {
    let h = harness(MobilyBehaviour::default()).await;
    h.sim
        .set_customer(&customer(), CustomerProfile::default().with_dues(15_000));
    let DuesOutcome::DuesOwed { amount, message } = h.client.dues(&customer()).await.unwrap()
    else {
        panic!("dues expected");
    };
    assert_eq!(amount, Some(Sar::riyals(150).unwrap()));
    assert!(message.contains("150.00"), "{message}");

    h.sim.faults().script_next(
        endpoints::DUES,
        Fault::refusal(codes::DUES_OWED, "Overdue bills exist"),
    );
    let injected = h
        .client
        .dues(&NationalId::parse("1099999999").unwrap())
        .await
        .unwrap();
    assert_eq!(
        injected,
        DuesOutcome::DuesOwed {
            amount: None,
            message: "Overdue bills exist".into()
        }
    );
}

#[tokio::test]
async fn package_refusal_deposit_and_existing_lines() {
    let h = harness(MobilyBehaviour::default()).await;
    let c = &h.client;
    let existing = Msisdn::parse("0540000001").unwrap();
    let profile = CustomerProfile::default()
        .with_package_refusal("Postpaid packages need 12 months of history")
        .with_deposit(120_000)
        .with_existing_lines(vec![existing.as_str().to_owned()]);
    h.sim.set_customer(&customer(), profile);
    let refused = c
        .package_eligibility(&customer(), &product("ESIM-POST-149"))
        .await
        .unwrap();
    assert_eq!(
        refused,
        PackageEligibility::NotEligible {
            code: codes::PACKAGE_NOT_ELIGIBLE.into(),
            reason: "Postpaid packages need 12 months of history".into()
        }
    );
    assert_eq!(
        c.security_deposit(&customer(), &product("ESIM-POST-149"))
            .await
            .unwrap(),
        DepositOutcome::Required {
            amount: Sar::riyals(1_200).unwrap()
        }
    );
    assert_eq!(
        c.security_deposit(&customer(), &product("ESIM-PRE-30"))
            .await
            .unwrap(),
        DepositOutcome::NotRequired
    );
    let known = c
        .customer_products(&CustomerLookup::Msisdn(existing.clone()))
        .await
        .unwrap();
    assert!(known.exists);
    assert_eq!(known.lines[0].msisdn, existing);
    // An existing customer with one line is still eligible for another.
    assert!(matches!(
        c.tcc_eligibility(&customer(), PaymentType::Prepaid)
            .await
            .unwrap(),
        EligibilityOutcome::Eligible {
            active_lines: Some(1),
            ..
        }
    ));
}

#[tokio::test]
async fn refusals_are_terminal_with_their_code() {
    let h = harness(MobilyBehaviour::default()).await;
    let c = &h.client;
    // A number someone else took.
    let cart = c.create_cart(&product("ESIM-PRE-30")).await.unwrap().id;
    let free = c
        .available_numbers(NumberCategory::Standard, 2)
        .await
        .unwrap();
    h.sim.take_number(&free[0]);
    let err = c
        .reserve_number(&free[0], &cart, &key("j-taken", "reserve"))
        .await
        .unwrap_err();
    assert_eq!(err.refusal_code(), Some(codes::NUMBER_UNAVAILABLE));
    assert_eq!(err.class(), ErrorClass::Terminal);
    assert!(
        !c.available_numbers(NumberCategory::Standard, 20)
            .await
            .unwrap()
            .contains(&free[0])
    );
    // An injected refusal of the same kind.
    h.sim.faults().script_next(
        endpoints::RESERVATION,
        Fault::refusal(codes::NUMBER_UNAVAILABLE, "Reserved elsewhere"),
    );
    let err = c
        .reserve_number(&free[1], &cart, &key("j-taken", "reserve-2"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Refused { code: Some(code), message, .. } if code == codes::NUMBER_UNAVAILABLE && message == "Reserved elsewhere"),
        "{err:?}"
    );
    assert_eq!(h.sim.ledger().count_kind(EffectKind::Reservation), 0);

    // A cart that does not qualify; an order before the checkout is complete.
    let mut profile = CustomerProfile::default();
    profile.cart_refusal = Some("Not sold to this customer segment".into());
    let picky = NationalId::parse("1055555555").unwrap();
    h.sim.set_customer(&picky, profile);
    let err = c.update_and_validate(&cart, &picky).await.unwrap_err();
    assert_eq!(err.refusal_code(), Some(codes::CART_NOT_QUALIFIED));
    c.update_and_validate(&cart, &customer()).await.unwrap();
    let err = c
        .post_order(&cart, OrderType::New, &key("j-early", "order"))
        .await
        .unwrap_err();
    assert_eq!(err.refusal_code(), Some(codes::CHECKOUT_INCOMPLETE));
    assert!(err.to_string().contains("NumberOption"), "{err}");
    assert!(h.sim.ledger().is_empty());

    // No Nafath account; an unknown product.
    h.sim
        .set_customer(&picky, CustomerProfile::default().without_nafath());
    let err = c
        .nafath_initiate(&picky, &NafathRequestId::new("j-x:nafath").unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.refusal_code(), Some(codes::NAFATH_NOT_REGISTERED));
    let err = c
        .product_details(&product("NO-SUCH-PRODUCT"))
        .await
        .unwrap_err();
    assert_eq!(err.refusal_code(), Some("NOT_FOUND"));
}

#[tokio::test]
async fn otp_wrong_then_right_and_expired_then_regenerated() {
    let h = harness(MobilyBehaviour::default()).await;
    let c = &h.client;
    let sent = c
        .generate_otp(&contact(), &customer(), Language::Ar)
        .await
        .unwrap();
    let right = h.sim.otp_for(&contact()).unwrap();
    let wrong = OtpCode::parse(if right == "000000" {
        "111111"
    } else {
        "000000"
    })
    .unwrap();
    assert_eq!(
        c.validate_otp(&sent.otp_id, &contact(), &wrong)
            .await
            .unwrap(),
        OtpValidation::Wrong { attempts_left: 2 }
    );
    let right = OtpCode::parse(&right).unwrap();
    assert_eq!(
        c.validate_otp(&sent.otp_id, &contact(), &right)
            .await
            .unwrap(),
        OtpValidation::Verified
    );
    // Repeating the successful validation (a retry) answers the same.
    assert_eq!(
        c.validate_otp(&sent.otp_id, &contact(), &right)
            .await
            .unwrap(),
        OtpValidation::Verified
    );

    // A second OTP expires before the customer types it: re-send, and the new code works.
    let sent = c
        .generate_otp(&contact(), &customer(), Language::En)
        .await
        .unwrap();
    let old = OtpCode::parse(&h.sim.otp_for(&contact()).unwrap()).unwrap();
    h.sim.expire_otp(&contact()).unwrap();
    assert_eq!(
        c.validate_otp(&sent.otp_id, &contact(), &old)
            .await
            .unwrap(),
        OtpValidation::Expired
    );
    let resent = c.regenerate_otp(&sent.otp_id, &contact()).await.unwrap();
    assert_eq!(resent.otp_id, sent.otp_id);
    let new = OtpCode::parse(&h.sim.otp_for(&contact()).unwrap()).unwrap();
    assert_eq!(
        c.validate_otp(&sent.otp_id, &contact(), &new)
            .await
            .unwrap(),
        OtpValidation::Verified
    );
}

#[tokio::test]
async fn otp_attempts_and_resends_are_bounded() {
    let h = harness(MobilyBehaviour::default()).await;
    let c = &h.client;
    let sent = c
        .generate_otp(&contact(), &customer(), Language::En)
        .await
        .unwrap();
    let right = h.sim.otp_for(&contact()).unwrap();
    let wrong = OtpCode::parse(if right == "000000" {
        "111111"
    } else {
        "000000"
    })
    .unwrap();
    for left in [2, 1, 0] {
        assert_eq!(
            c.validate_otp(&sent.otp_id, &contact(), &wrong)
                .await
                .unwrap(),
            OtpValidation::Wrong {
                attempts_left: left
            }
        );
    }
    let right = OtpCode::parse(&right).unwrap();
    assert_eq!(
        c.validate_otp(&sent.otp_id, &contact(), &right)
            .await
            .unwrap(),
        OtpValidation::Locked
    );
    for _ in 0..3 {
        c.regenerate_otp(&sent.otp_id, &contact()).await.unwrap();
    }
    let err = c
        .regenerate_otp(&sent.otp_id, &contact())
        .await
        .unwrap_err();
    assert_eq!(err.refusal_code(), Some(codes::OTP_TOO_MANY_RESENDS));
    // An injected wrong-code answer.
    h.sim.faults().script_next(
        endpoints::OTP_VALIDATE,
        Fault::refusal(codes::OTP_WRONG, "Wrong code"),
    );
    assert_eq!(
        c.validate_otp(&sent.otp_id, &contact(), &right)
            .await
            .unwrap(),
        OtpValidation::Wrong { attempts_left: 0 }
    );
}

#[tokio::test]
async fn payments_declined_by_the_bank_by_3ds_or_by_an_injected_refusal() {
    let h = harness(MobilyBehaviour::default().with_three_ds(ThreeDsPolicy::Decline)).await;
    let c = &h.client;
    let (order, _) = ordered(&h, "j-declined", "ESIM-PRE-30", None).await;
    let session = c
        .create_session(&order.order_id, order.total)
        .await
        .unwrap();
    let request = PaymentRequest {
        session_id: session.session_id.clone(),
        order_id: order.order_id.clone(),
        amount: order.total,
    };
    let outcome = c
        .create_payment(&request, &key("j-declined", "pay"))
        .await
        .unwrap();
    assert!(
        matches!(&outcome, PaymentOutcome::Declined { code, .. } if code == codes::PAYMENT_DECLINED),
        "{outcome:?}"
    );

    // The customer fails 3-D Secure.
    h.sim.set_behaviour(MobilyBehaviour::default());
    let PaymentOutcome::Requires3ds { payment_id, .. } = c
        .create_payment(&request, &key("j-declined", "pay-2"))
        .await
        .unwrap()
    else {
        panic!("3-D Secure expected");
    };
    let back = h.sim.complete_3ds(payment_id.as_str(), false).unwrap();
    assert!(back.query().unwrap().ends_with("&result=failure"), "{back}");
    assert!(matches!(
        c.confirm_payment(&payment_id, &key("j-declined", "pay-2"))
            .await
            .unwrap(),
        ConfirmPaymentOutcome::Declined { .. }
    ));

    // An injected decline.
    h.sim.faults().script_next(
        endpoints::CREATE_PAYMENT,
        Fault::refusal(codes::PAYMENT_DECLINED, "Insufficient funds"),
    );
    let outcome = c
        .create_payment(&request, &key("j-declined", "pay-3"))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        PaymentOutcome::Declined {
            code: codes::PAYMENT_DECLINED.into(),
            message: "Insufficient funds".into()
        }
    );
    assert_eq!(
        h.sim.ledger().count_kind(EffectKind::Payment),
        0,
        "nothing authorised"
    );
}

#[tokio::test]
async fn the_qr_code_is_ready_after_payment_and_a_delay() {
    use handover_adapters::sim::mobily::QrPolicy;
    let behaviour = MobilyBehaviour::default()
        .with_three_ds(ThreeDsPolicy::Frictionless)
        .with_qr(QrPolicy::AfterDelay(Duration::from_millis(300)));
    let h = harness(behaviour).await;
    let c = &h.client;
    let (order, msisdn) = ordered(&h, "j-qr", "ESIM-PRE-30", None).await;
    assert!(
        matches!(
            c.qr_code(&order.order_id, &msisdn).await.unwrap(),
            QrOutcome::NotReady { .. }
        ),
        "not before payment"
    );
    let session = c
        .create_session(&order.order_id, order.total)
        .await
        .unwrap();
    let request = PaymentRequest {
        session_id: session.session_id,
        order_id: order.order_id.clone(),
        amount: order.total,
    };
    c.create_payment(&request, &key("j-qr", "pay"))
        .await
        .unwrap();
    let QrOutcome::NotReady { retry_after } = c.qr_code(&order.order_id, &msisdn).await.unwrap()
    else {
        panic!("not ready right after payment");
    };
    assert_eq!(retry_after, Some(Duration::from_secs(1)));
    // Re-inquire as the journey would (bounded), until ready.
    let mut ready = None;
    for _ in 0..100 {
        if let QrOutcome::Ready(qr) = c.qr_code(&order.order_id, &msisdn).await.unwrap() {
            ready = Some(qr);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let qr = ready.expect("ready after the delay");
    assert!(qr.activation_code().contains(order.order_id.as_str()));
    assert!(qr.image_base64.is_some());
}
