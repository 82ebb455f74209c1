//! J1 end to end: every step through the client, against the simulator.

use handover_adapters::mobily::checkout::{CaptureData, ContactDetails, NumberChoice, SimType};
use handover_adapters::mobily::otp::Language;
use handover_adapters::mobily::payment::PaymentRequest;
use handover_adapters::mobily::resources::NumberCategory;
use handover_adapters::mobily::{
    ConfirmPaymentOutcome, CustomerLookup, DepositOutcome, DuesOutcome, EligibilityOutcome,
    NafathRequestId, NafathStatus, OrderLookup, OrderState, OrderType, OtpCode, OtpValidation,
    PackageEligibility, PaymentOutcome, PaymentState, PaymentStatus, PaymentType, QrOutcome,
    Section, TccRegistration, ThreeDsResult, VoidOutcome, codes, headers, paths,
};
use handover_adapters::sim::mobily::ThreeDsPolicy;
use handover_adapters::sim::{EffectKind, MobilyBehaviour};
use secrecy::ExposeSecret;
use serde_json::json;

use super::*;

#[tokio::test]
async fn the_seventeen_steps_of_a_prepaid_esim_with_a_new_number() {
    let h = harness(MobilyBehaviour::default()).await;
    let c = &h.client;
    let j = "journey-0001";

    // 1. Products (WCM) and 2. authentication.
    let products = c.products().await.unwrap();
    let offer = products
        .iter()
        .find(|p| p.id.as_str() == "ESIM-PRE-30")
        .expect("sellable");
    assert_eq!(offer.payment_type, PaymentType::Prepaid);
    c.authenticate().await.unwrap();

    // 3. Details, cart, qualification.
    let details = c.product_details(&offer.id).await.unwrap();
    assert_eq!(details.price.to_wire(), "30.00");
    assert!(details.sim_types.contains(&SimType::Esim));
    let cart = c.create_cart(&offer.id).await.unwrap();
    assert_eq!(cart.total.to_wire(), "30.00");
    let cart = cart.id;
    c.update_and_validate(&cart, &customer()).await.unwrap();

    // 4. Number option and 5. SIM option.
    let structure = c.checkout_structure(&cart).await.unwrap();
    assert!(structure.requires(Section::NumberReservation));
    assert!(!structure.requires(Section::OverdueBills), "prepaid");
    assert!(!structure.requires(Section::SecurityDeposit), "prepaid");
    assert!(structure.unknown_required().is_empty());
    c.capture(&cart, &CaptureData::NumberOption(NumberChoice::New))
        .await
        .unwrap();
    c.capture(
        &cart,
        &CaptureData::SimOption {
            sim_type: SimType::Esim,
        },
    )
    .await
    .unwrap();

    // 6. TCC eligibility.
    let eligibility = c
        .tcc_eligibility(&customer(), PaymentType::Prepaid)
        .await
        .unwrap();
    assert_eq!(
        eligibility,
        EligibilityOutcome::Eligible {
            active_lines: Some(0),
            max_lines: Some(10)
        }
    );
    let known = c
        .customer_products(&CustomerLookup::NationalId(customer()))
        .await
        .unwrap();
    assert!(!known.exists && known.lines.is_empty(), "a new customer");
    c.capture(&cart, &CaptureData::TccEligibilityCheck { eligible: true })
        .await
        .unwrap();

    // 7. Number reservation.
    let free = c
        .available_numbers(NumberCategory::Standard, 5)
        .await
        .unwrap();
    assert_eq!(free.len(), 5);
    let reservation = c
        .reserve_number(&free[2], &cart, &key(j, "reserve"))
        .await
        .unwrap();
    assert_eq!(reservation.msisdn, free[2]);
    let msisdn = reservation.msisdn.clone();
    c.capture(
        &cart,
        &CaptureData::NumberReservation {
            msisdn: msisdn.clone(),
            reservation_id: reservation.id,
        },
    )
    .await
    .unwrap();

    // 8. Overdue bills: postpaid only. 9. Package eligibility. 10. Deposit: postpaid only.
    assert_eq!(c.dues(&customer()).await.unwrap(), DuesOutcome::NoDues);
    assert_eq!(
        c.package_eligibility(&customer(), &offer.id).await.unwrap(),
        PackageEligibility::Eligible
    );
    assert_eq!(
        c.security_deposit(&customer(), &offer.id).await.unwrap(),
        DepositOutcome::NotRequired
    );

    // 11. OTP: the customer reads the code from the SMS.
    let otp = c
        .generate_otp(&contact(), &customer(), Language::En)
        .await
        .unwrap();
    let code = OtpCode::parse(&h.sim.otp_for(&contact()).unwrap()).unwrap();
    assert_eq!(
        c.validate_otp(&otp.otp_id, &contact(), &code)
            .await
            .unwrap(),
        OtpValidation::Verified
    );
    c.capture(
        &cart,
        &CaptureData::OtpVerification {
            msisdn: contact(),
            otp_id: otp.otp_id.clone(),
            verified: true,
        },
    )
    .await
    .unwrap();

    // 12. Nafath: the customer approves in the app; the webhook reaches our ingress.
    let request = NafathRequestId::new(format!("{j}:nafath")).unwrap();
    let challenge = c.nafath_initiate(&customer(), &request).await.unwrap();
    assert_eq!(challenge.random.len(), 2);
    assert_eq!(
        c.nafath_status(&challenge.transaction_id).await.unwrap(),
        NafathStatus::Waiting
    );
    h.sim
        .nafath_answer(challenge.transaction_id.as_str(), true)
        .await
        .unwrap();
    let hook = eventually("the Nafath webhook", || {
        h.received.accepted_webhooks().pop()
    })
    .await;
    assert_eq!(hook.transaction_id, challenge.transaction_id);
    assert_eq!(hook.correlation(), &request);
    assert_eq!(hook.status, NafathStatus::Approved);
    c.capture(
        &cart,
        &CaptureData::NafathVerification {
            transaction_id: challenge.transaction_id.clone(),
            status: hook.status,
        },
    )
    .await
    .unwrap();

    // 13. eSIM profile and TCC registration.
    let iccid = c.sim_details(&msisdn).await.unwrap().iccid;
    assert_eq!(
        c.sim_details(&msisdn).await.unwrap().iccid,
        iccid,
        "one profile per number"
    );
    let registration = TccRegistration {
        national_id: customer(),
        msisdn: msisdn.clone(),
        iccid: iccid.clone(),
    };
    let registered = c.tcc_register(&registration, &key(j, "tcc")).await.unwrap();
    c.capture(
        &cart,
        &CaptureData::Sim {
            iccid: iccid.clone(),
            registration_id: registered.registration_id,
        },
    )
    .await
    .unwrap();

    // 14. Contact details.
    let details = ContactDetails::new("Sara Ali", "sara@example.com", contact(), "Riyadh").unwrap();
    c.capture(&cart, &CaptureData::DeliveryDetails(details))
        .await
        .unwrap();
    assert!(
        c.checkout_structure(&cart)
            .await
            .unwrap()
            .missing()
            .is_empty()
    );

    // 15. Order and payment with 3-D Secure: the customer's browser visits the bank page.
    let order = c
        .post_order(&cart, OrderType::New, &key(j, "order"))
        .await
        .unwrap();
    assert_eq!(order.status, OrderState::Submitted);
    let session = c
        .create_session(&order.order_id, order.total)
        .await
        .unwrap();
    let pay_key = key(j, "pay");
    let request = PaymentRequest {
        session_id: session.session_id,
        order_id: order.order_id.clone(),
        amount: order.total,
    };
    let PaymentOutcome::Requires3ds {
        payment_id,
        redirect_url,
    } = c.create_payment(&request, &pay_key).await.unwrap()
    else {
        panic!("3-D Secure expected");
    };
    assert_eq!(
        c.confirm_payment(&payment_id, &pay_key).await.unwrap(),
        ConfirmPaymentOutcome::Pending3ds
    );
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = browser.get(redirect_url.clone()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("SAR 30.00"));
    let approve = browser
        .get(format!("{redirect_url}/complete?result=success"))
        .send()
        .await
        .unwrap();
    assert_eq!(approve.status(), 303);
    let back = approve.headers()["location"].to_str().unwrap().to_owned();
    let return_url = h.sim.client_config().payment_return_url;
    assert!(
        back.starts_with(&format!("{return_url}&paymentId=")),
        "{back}"
    );
    assert_eq!(
        browser.get(&back).send().await.unwrap().status(),
        200,
        "our ingress accepts the return"
    );
    let returned = h.received.returns().pop().unwrap().unwrap();
    assert_eq!(
        (returned.correlation(), returned.result),
        (&pay_key, ThreeDsResult::Success)
    );
    assert_eq!(returned.payment_id, payment_id);
    let confirmed = c.confirm_payment(&payment_id, &pay_key).await.unwrap();
    assert_eq!(
        confirmed,
        ConfirmPaymentOutcome::Authorised {
            payment_id: payment_id.clone()
        }
    );
    assert!(matches!(
        c.payment_status(&pay_key).await.unwrap(),
        PaymentState::Found {
            status: PaymentStatus::Authorised,
            ..
        }
    ));

    // 16. Mobily fulfils; tracking moves on.
    let tracked = c
        .order_inquiry(&OrderLookup::OrderId(order.order_id.clone()))
        .await
        .unwrap();
    assert_eq!(tracked.len(), 1);
    assert_eq!(tracked[0].status, OrderState::InProgress);
    assert_eq!(
        tracked[0].external_order_id.as_ref(),
        Some(&key(j, "order"))
    );

    // 17. QR code: not ready at first, then ready.
    for _ in 0..2 {
        assert!(matches!(
            c.qr_code(&order.order_id, &msisdn).await.unwrap(),
            QrOutcome::NotReady { .. }
        ));
    }
    let QrOutcome::Ready(qr) = c.qr_code(&order.order_id, &msisdn).await.unwrap() else {
        panic!("QR expected on the third inquiry");
    };
    assert!(qr.activation_code().starts_with("LPA:1$"));
    assert_eq!(qr.iccid, iccid);
    assert!(!format!("{qr:?}").contains(qr.activation_code()));
    let done = c
        .order_inquiry(&OrderLookup::Msisdn(msisdn.clone()))
        .await
        .unwrap();
    assert_eq!(done[0].status, OrderState::Completed);

    // Effects: exactly one of each, keyed by our keys, on the new line.
    let ledger = h.sim.ledger();
    for (kind, step) in [
        (EffectKind::Reservation, "reserve"),
        (EffectKind::Registration, "tcc"),
        (EffectKind::Order, "order"),
        (EffectKind::Payment, "pay"),
    ] {
        assert_eq!(ledger.count(kind, key(j, step).as_str()), 1, "{kind:?}");
        assert_eq!(ledger.count_subject(kind, msisdn.as_str()), 1, "{kind:?}");
    }
    assert_eq!(ledger.len(), 4);
    assert!(ledger.duplicates().is_empty());
}

#[tokio::test]
async fn the_wire_format_as_received() {
    let h = harness(MobilyBehaviour::default()).await;
    let (order, msisdn) = ordered(&h, "journey-wire", "ESIM-PRE-30", None).await;
    let log = h.sim.requests();
    let config = h.sim.client_config();

    // The token request: Apigee, client credentials in Basic auth, grant type in the query.
    let token = log.last_to(paths::APIGEE_TOKEN).unwrap();
    assert_eq!(token.method, http::Method::POST);
    assert_eq!(
        token.query.as_deref(),
        Some("grant_type=client_credentials")
    );
    assert!(token.body.is_empty());
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        config.client_id,
        config.client_secret.expose_secret()
    ));
    assert_eq!(
        token.header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    assert_eq!(
        token.header(headers::APIKEY),
        Some(config.apikey.expose_secret())
    );

    // Every data call: the apikey, the JWT, JSON.
    for request in log.all().iter().filter(|r| r.path != paths::APIGEE_TOKEN) {
        assert_eq!(
            request.header(headers::APIKEY),
            Some(config.apikey.expose_secret()),
            "{}",
            request.path
        );
        let bearer = request.header("authorization").unwrap_or_default();
        assert!(
            bearer.starts_with("Bearer ey") && bearer.matches('.').count() == 2,
            "{}",
            request.path
        );
    }

    let reservation = log.last_to(paths::RESERVATION).unwrap();
    assert_eq!(
        reservation.header(headers::IDEMPOTENCY_KEY),
        Some("journey-wire:reserve")
    );
    assert_eq!(reservation.json_field_names(), ["msisdn", "shoppingCartId"]);
    assert_eq!(reservation.json().unwrap()["msisdn"], msisdn.as_str());

    let post = log.last_to(paths::POST_PRODUCT_ORDER).unwrap();
    assert_eq!(
        post.header(headers::IDEMPOTENCY_KEY),
        Some("journey-wire:order")
    );
    assert_eq!(
        post.json().unwrap(),
        json!({ "shoppingCartId": post.json().unwrap()["shoppingCartId"], "externalOrderId": "journey-wire:order", "orderType": "NEW" })
    );

    let initiate = log.last_to(paths::NAFATH_INITIATE).unwrap().json().unwrap();
    assert_eq!(initiate["nationalId"], CUSTOMER);
    assert_eq!(initiate["requestId"], "journey-wire:nafath");
    assert_eq!(initiate["webhookUri"], config.nafath_webhook_url.as_str());
    assert_eq!(
        initiate["webhookAuth"],
        json!({ "type": "Basic", "username": "mobily-nafath", "password": WEBHOOK_PASSWORD })
    );
    assert!(
        log.last_to(paths::NAFATH_TOKENINFO).is_some(),
        "the eSIM section's spelling"
    );

    let capture = log.last_to(paths::CAPTURE_DATA).unwrap().json().unwrap();
    assert_eq!(capture["section"], "DeliveryDetails");
    assert_eq!(
        capture["data"]["contactNumber"],
        contact_for("journey-wire").as_str()
    );
    let tcc = log.all().into_iter().find(|r| {
        r.json()
            .is_some_and(|b| b["section"] == "TCCEligibiliyCheck")
    });
    assert!(tcc.is_some(), "the document's spelling of the TCC section");

    let validate = log.last_to(paths::OTP_VALIDATE).unwrap();
    assert_eq!(validate.json_field_names(), ["msisdn", "otp", "otpId"]);

    // Payment: our paymentTransId in the body and as the key, the return URL.
    let c = &h.client;
    let session = c
        .create_session(&order.order_id, order.total)
        .await
        .unwrap();
    let pay = key("journey-wire", "pay");
    let request = PaymentRequest {
        session_id: session.session_id.clone(),
        order_id: order.order_id.clone(),
        amount: order.total,
    };
    c.create_payment(&request, &pay).await.unwrap();
    let create = log.last_to(paths::CREATE_PAYMENT).unwrap();
    assert_eq!(
        create.header(headers::IDEMPOTENCY_KEY),
        Some("journey-wire:pay")
    );
    assert_eq!(
        create.json().unwrap(),
        json!({
            "sessionId": session.session_id.as_str(), "paymentTransId": "journey-wire:pay",
            "orderId": order.order_id.as_str(), "amount": "30.00", "currency": "SAR",
            "returnUrl": config.payment_return_url.as_str(),
        })
    );
    c.payment_status(&pay).await.unwrap();
    let inquiry = log
        .last_to("/cem/dpc/inquiry/v1/request/journey-wire:pay")
        .unwrap();
    assert_eq!(inquiry.method, http::Method::GET);
}

#[tokio::test]
async fn a_postpaid_port_in_pays_the_deposit_then_the_saga_voids_and_cancels_once() {
    let h = harness(MobilyBehaviour::default().with_three_ds(ThreeDsPolicy::Frictionless)).await;
    let c = &h.client;
    let j = "journey-mnp";
    let ported = Msisdn::parse("0561112222").unwrap();

    let cart = c.create_cart(&product("ESIM-POST-149")).await.unwrap().id;
    c.update_and_validate(&cart, &customer()).await.unwrap();
    let choice = NumberChoice::Mnp {
        msisdn: ported.clone(),
        donor_operator: "STC".into(),
    };
    c.capture(&cart, &CaptureData::NumberOption(choice))
        .await
        .unwrap();
    let structure = c.checkout_structure(&cart).await.unwrap();
    assert!(
        !structure.requires(Section::NumberReservation),
        "MNP keeps its number"
    );
    assert!(
        structure.requires(Section::OverdueBills) && structure.requires(Section::SecurityDeposit)
    );
    assert_eq!(
        c.security_deposit(&customer(), &product("ESIM-POST-149"))
            .await
            .unwrap(),
        DepositOutcome::Required {
            amount: handover_adapters::mobily::Sar::riyals(500).unwrap()
        }
    );
    drop(cart);

    let (order, msisdn) = ordered(&h, j, "ESIM-POST-149", Some(ported.clone())).await;
    assert_eq!(msisdn, ported);
    assert_eq!(order.total.to_wire(), "649.00", "package and deposit");
    assert_eq!(h.sim.ledger().count_kind(EffectKind::Reservation), 0);

    let session = c
        .create_session(&order.order_id, order.total)
        .await
        .unwrap();
    let pay = key(j, "pay");
    let request = PaymentRequest {
        session_id: session.session_id,
        order_id: order.order_id.clone(),
        amount: order.total,
    };
    let PaymentOutcome::Authorised { payment_id } = c.create_payment(&request, &pay).await.unwrap()
    else {
        panic!("frictionless");
    };
    assert_eq!(
        c.confirm_payment(&payment_id, &pay).await.unwrap(),
        ConfirmPaymentOutcome::Authorised { payment_id }
    );
    assert_eq!(
        h.sim.ledger().count(EffectKind::Payment, pay.as_str()),
        1,
        "confirm does not authorise twice"
    );

    // A later step failed: compensate in reverse order, each compensation twice (a retry).
    let wrong_way = c
        .cancel_order(&order.order_id, "journey failed", &key(j, "cancel-new"))
        .await
        .unwrap_err();
    assert_eq!(wrong_way.refusal_code(), Some(codes::WRONG_ORDER_TYPE));
    for _ in 0..2 {
        let cancelled = c
            .cancel(
                &order.order_id,
                OrderType::Mnp,
                "journey failed",
                &key(j, "cancel"),
            )
            .await;
        assert_eq!(cancelled.unwrap(), OrderState::Cancelled);
    }
    let void = key(j, "void");
    assert_eq!(
        c.void_payment(&pay, order.total, &void).await.unwrap(),
        VoidOutcome::Voided
    );
    assert_eq!(
        c.void_payment(&pay, order.total, &void).await.unwrap(),
        VoidOutcome::Voided,
        "replayed"
    );
    assert!(matches!(
        c.void_payment(&pay, order.total, &key(j, "void-again"))
            .await
            .unwrap(),
        VoidOutcome::NothingToVoid { .. }
    ));
    assert!(matches!(
        c.payment_status(&pay).await.unwrap(),
        PaymentState::Found {
            status: PaymentStatus::Voided,
            ..
        }
    ));
    let tracked = c
        .order_inquiry(&OrderLookup::ExternalOrderId(key(j, "order")))
        .await
        .unwrap();
    assert_eq!(
        (tracked[0].order_type, tracked[0].status),
        (OrderType::Mnp, OrderState::Cancelled)
    );

    let ledger = h.sim.ledger();
    assert_eq!(
        ledger.count(EffectKind::Cancel, key(j, "cancel").as_str()),
        1
    );
    assert_eq!(ledger.count(EffectKind::Void, void.as_str()), 1);
    assert_eq!(ledger.count_kind(EffectKind::Void), 1);
    assert_eq!(ledger.count_subject(EffectKind::Cancel, ported.as_str()), 1);
    assert!(ledger.duplicates().is_empty());
}

#[tokio::test]
async fn a_new_number_order_is_cancelled_with_update_order_status_and_its_number_freed() {
    let h = harness(MobilyBehaviour::default()).await;
    let (order, msisdn) = ordered(&h, "journey-cancel", "ESIM-PRE-99", None).await;
    let c = &h.client;
    let refused = c
        .cancel_mnp_order(
            &order.order_id,
            "journey failed",
            &key("journey-cancel", "x"),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.refusal_code(), Some(codes::WRONG_ORDER_TYPE));
    let k = key("journey-cancel", "cancel");
    assert_eq!(
        c.cancel_order(&order.order_id, "journey failed", &k)
            .await
            .unwrap(),
        OrderState::Cancelled
    );
    assert_eq!(
        c.cancel_order(&order.order_id, "journey failed", &k)
            .await
            .unwrap(),
        OrderState::Cancelled
    );
    let request = h
        .sim
        .requests()
        .last_to(&format!(
            "{}{}",
            paths::UPDATE_ORDER_STATUS_PREFIX,
            order.order_id
        ))
        .unwrap();
    assert_eq!(request.method, http::Method::PUT);
    assert_eq!(
        request.json().unwrap(),
        json!({ "status": "CANCELLED", "reason": "journey failed" })
    );
    assert_eq!(h.sim.ledger().count(EffectKind::Cancel, k.as_str()), 1);
    assert_eq!(
        h.sim.order(order.order_id.as_str()).unwrap().status,
        OrderState::Cancelled
    );
    let free = c
        .available_numbers(NumberCategory::Standard, 20)
        .await
        .unwrap();
    assert!(free.contains(&msisdn), "the number is back in the pool");
    // A fulfilled order cannot be cancelled.
    let h2 = harness(MobilyBehaviour::default().with_three_ds(ThreeDsPolicy::Frictionless)).await;
    let (order, _) = ordered(&h2, "journey-done", "ESIM-PRE-30", None).await;
    let session = h2
        .client
        .create_session(&order.order_id, order.total)
        .await
        .unwrap();
    let request = PaymentRequest {
        session_id: session.session_id,
        order_id: order.order_id.clone(),
        amount: order.total,
    };
    h2.client
        .create_payment(&request, &key("journey-done", "pay"))
        .await
        .unwrap();
    for _ in 0..2 {
        h2.client
            .order_inquiry(&OrderLookup::OrderId(order.order_id.clone()))
            .await
            .unwrap();
    }
    let err = h2
        .client
        .cancel_order(&order.order_id, "too late", &key("journey-done", "cancel"))
        .await
        .unwrap_err();
    assert_eq!(err.refusal_code(), Some(codes::ORDER_NOT_CANCELLABLE));
}
