//! Purchase and payment (Scenario A, steps 5-8), and reconciling a purchase whose
//! outcome is unknown: `409` carries the existing transaction.

use super::support::*;

#[tokio::test]
async fn purchase_payment_and_completion_with_the_documented_wire_format() {
    let mut behaviour = ReachBehaviour::fast();
    behaviour.settle_after = Progress::AfterPolls(1);
    let sim = sim_with(behaviour).await;
    let client = client(&sim);

    let outcome = client.purchase(&esim_order("J-100")).await.unwrap();
    let PurchaseOutcome::Submitted { transaction_id } = outcome else {
        panic!("{outcome:?}")
    };
    let seen = sim.requests().last_to(PURCHASE_PATH).unwrap();
    assert_eq!(seen.method, http::Method::POST);
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(
        seen.json_field_names(),
        [
            "clientAccountId",
            "email",
            "firstName",
            "imei",
            "lastName",
            "planId",
            "redirectUrl",
            "simType"
        ]
    );
    let body = seen.json().unwrap();
    assert_eq!(body["clientAccountId"], "J-100");
    assert_eq!(body["planId"], "PLAN-UNL");
    assert_eq!(body["simType"], "ESIM");

    // Poll: the payment link on the simulator's own page, with a future expiry.
    let PurchaseStatus::PaymentPending {
        link: Some(link),
        payment_status,
    } = client.purchase_status(&transaction_id).await.unwrap()
    else {
        panic!("payment link expected")
    };
    assert_eq!(payment_status.as_deref(), Some("PENDING"));
    assert_eq!(
        link.url.as_str(),
        format!("{}payment/checkout/{transaction_id}", sim.base_url())
    );
    assert!(link.expire_date.unwrap() > chrono::Utc::now());
    let status_path = format!("/apisvc/v0/product/status/{transaction_id}");
    assert_eq!(
        sim.requests().last_to(&status_path).unwrap().method,
        http::Method::GET
    );

    sim.pay(transaction_id.as_str(), true).await.unwrap();
    assert!(matches!(
        client.purchase_status(&transaction_id).await.unwrap(),
        PurchaseStatus::PaymentProcessing { .. }
    ));
    let PurchaseStatus::Completed(done) = client.purchase_status(&transaction_id).await.unwrap()
    else {
        panic!("completed expected")
    };
    assert!(done.customer_id.as_str().starts_with("CUS-"));
    assert_eq!(
        done.client_account_id.as_ref().map(|c| c.as_str()),
        Some("J-100")
    );
    assert_eq!(done.sim_type, Some(SimType::Esim));
    assert_eq!(done.shipment_status.as_deref(), Some("NOT_APPLICABLE"));

    assert_eq!(sim.ledger().count(EffectKind::Order, "J-100"), 1);
    assert_eq!(
        sim.ledger()
            .count(EffectKind::Payment, transaction_id.as_str()),
        1
    );
    assert!(sim.ledger().duplicates().is_empty());
}

#[tokio::test]
async fn a_declined_card_fails_with_payment_status_desc_and_takes_no_money() {
    let sim = sim().await;
    let client = client(&sim);
    let transaction_id = client
        .purchase(&esim_order("J-101"))
        .await
        .unwrap()
        .transaction_id()
        .clone();
    client.purchase_status(&transaction_id).await.unwrap();
    sim.pay(transaction_id.as_str(), false).await.unwrap();
    let status = poll_purchase(&client, &transaction_id, |s| s.code().is_final()).await;
    assert_eq!(
        status,
        PurchaseStatus::Failed {
            payment_status: Some("DECLINED".into()),
            payment_status_desc: Some("Card declined by the issuer.".into())
        }
    );
    assert_eq!(sim.ledger().count_kind(EffectKind::Payment), 0);
    // The key names that failed purchase for good: a retry needs a new clientAccountId.
    let again = client.purchase(&esim_order("J-101")).await.unwrap();
    assert_eq!(
        again,
        PurchaseOutcome::AlreadySubmitted {
            transaction_id: transaction_id.clone(),
            status: Some(PurchaseStatusCode::Failed)
        }
    );
    assert!(matches!(
        client.purchase(&esim_order("J-101-retry-1")).await.unwrap(),
        PurchaseOutcome::Submitted { .. }
    ));
}

#[tokio::test]
async fn an_unpaid_link_expires_and_the_purchase_fails() {
    let mut behaviour = ReachBehaviour::fast();
    behaviour.link_ttl = Duration::from_millis(30);
    let sim = sim_with(behaviour).await;
    let client = client(&sim);
    let transaction_id = client
        .purchase(&esim_order("J-102"))
        .await
        .unwrap()
        .transaction_id()
        .clone();
    client.purchase_status(&transaction_id).await.unwrap();
    // The simulator's clock fails it without any poll.
    let view = eventually("the link to expire", || {
        sim.purchase(transaction_id.as_str())
            .filter(|p| p.status == PurchaseStatusCode::Failed)
    })
    .await;
    assert_eq!(
        view.payment_status_desc.as_deref(),
        Some("Payment link expired before the customer paid.")
    );
    assert!(sim.pay(transaction_id.as_str(), true).await.is_err());
}

#[tokio::test]
async fn the_payment_page_pays_and_sends_the_browser_back_with_trans_id() {
    let sim = sim().await;
    let client = client(&sim);
    let transaction_id = client
        .purchase(&esim_order("J-103"))
        .await
        .unwrap()
        .transaction_id()
        .clone();
    let PurchaseStatus::PaymentPending {
        link: Some(link), ..
    } = client.purchase_status(&transaction_id).await.unwrap()
    else {
        panic!("link expected")
    };
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = browser.get(link.url.clone()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains(transaction_id.as_str()));
    let submitted = browser
        .post(link.url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("result=paid")
        .send()
        .await
        .unwrap();
    assert_eq!(submitted.status(), 303);
    assert_eq!(
        submitted.headers()["location"].to_str().unwrap(),
        format!("https://brand.example/payment/confirm?transId={transaction_id}")
    );
    assert!(matches!(
        poll_purchase(&client, &transaction_id, |s| s.code().is_final()).await,
        PurchaseStatus::Completed(_)
    ));
}

#[tokio::test]
async fn an_automatic_customer_pays_and_returns_to_the_redirect_url() {
    let (base, ingress) = Ingress::start().await;
    let sim = sim_with(
        ReachBehaviour::fast().with_customer(CustomerPayment::PayAfter {
            delay: Duration::from_millis(10),
            success: true,
        }),
    )
    .await;
    let client = client(&sim);
    let mut order = esim_order("J-104");
    order.redirect_url =
        RedirectUrl::parse(base.join("payment/confirm").unwrap().as_str()).unwrap();
    let transaction_id = client
        .purchase(&order)
        .await
        .unwrap()
        .transaction_id()
        .clone();
    client.purchase_status(&transaction_id).await.unwrap();
    let expected = format!("/payment/confirm?transId={transaction_id}");
    eventually("the browser return", || {
        ingress.paths().contains(&expected).then_some(())
    })
    .await;
    assert_eq!(sim.browser_returns().len(), 1);
    assert!(matches!(
        poll_purchase(&client, &transaction_id, |s| s.code().is_final()).await,
        PurchaseStatus::Completed(_)
    ));
}

#[tokio::test]
async fn a_purchase_resent_after_a_504_after_the_effect_gets_the_same_transaction() {
    let sim = sim().await;
    sim.faults().script_next(
        PURCHASE_ENDPOINT,
        Fault::GatewayTimeout { after_effect: true },
    );
    let client = client(&sim);
    let order = esim_order("J-200");
    let err = client.purchase(&order).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::OutcomeUnknown { .. }),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::OutcomeUnknown);
    assert_eq!(
        sim.ledger().count(EffectKind::Order, "J-200"),
        1,
        "it was ordered"
    );

    let again = client.purchase(&order).await.unwrap();
    let PurchaseOutcome::AlreadySubmitted {
        transaction_id,
        status,
    } = &again
    else {
        panic!("{again:?}")
    };
    assert_eq!(*status, Some(PurchaseStatusCode::Initiated));
    assert_eq!(sim.purchases().len(), 1);
    assert_eq!(sim.purchases()[0].transaction_id, transaction_id.as_str());
    assert_eq!(sim.ledger().count(EffectKind::Order, "J-200"), 1, "once");
    assert!(sim.ledger().duplicates().is_empty());
}

#[tokio::test]
async fn a_purchase_resent_after_a_504_without_the_effect_is_ordered_once() {
    let sim = sim().await;
    sim.faults().script_next(
        PURCHASE_ENDPOINT,
        Fault::GatewayTimeout {
            after_effect: false,
        },
    );
    let client = client(&sim);
    let order = esim_order("J-201");
    assert_eq!(
        client.purchase(&order).await.unwrap_err().class(),
        ErrorClass::OutcomeUnknown
    );
    assert!(sim.ledger().is_empty());
    assert!(matches!(
        client.purchase(&order).await.unwrap(),
        PurchaseOutcome::Submitted { .. }
    ));
    assert_eq!(sim.ledger().count(EffectKind::Order, "J-201"), 1);
}

#[tokio::test]
async fn a_connection_dropped_after_the_effect_is_reconciled_by_resending() {
    let sim = sim().await;
    sim.faults().script_next(
        PURCHASE_ENDPOINT,
        Fault::DropConnection { after_effect: true },
    );
    let client = client(&sim);
    let order = esim_order("J-202");
    let err = client.purchase(&order).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::OutcomeUnknown, "{err:?}");
    assert!(matches!(
        client.purchase(&order).await.unwrap(),
        PurchaseOutcome::AlreadySubmitted { .. }
    ));
    assert_eq!(sim.ledger().count(EffectKind::Order, "J-202"), 1);
}

#[tokio::test]
async fn an_answer_slower_than_the_timeout_is_outcome_unknown_and_reconciles() {
    let sim = sim().await;
    sim.faults()
        .script_next(PURCHASE_ENDPOINT, Fault::SlowAnswer { delay_ms: 600 });
    let client = ReachClient::new(&config_for(&sim, 150), &ApiKeyLimiters::new()).unwrap();
    let started = Instant::now();
    let err = client.purchase(&esim_order("J-203")).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(550),
        "timed out on time"
    );
    assert!(
        matches!(err, ProviderError::OutcomeUnknown { .. }),
        "{err:?}"
    );
    assert!(matches!(
        client.purchase(&esim_order("J-203")).await.unwrap(),
        PurchaseOutcome::AlreadySubmitted { .. }
    ));
    assert_eq!(sim.ledger().count(EffectKind::Order, "J-203"), 1);
}

#[tokio::test]
async fn a_client_account_id_reused_for_another_order_is_a_conflict() {
    let sim = sim().await;
    let client = client(&sim);
    client.purchase(&esim_order("J-204")).await.unwrap();
    let mut other = esim_order("J-204");
    other.plan_id = PlanId::new("PLAN-5GB").unwrap();
    let err = client.purchase(&other).await.unwrap_err();
    assert!(matches!(err, ProviderError::Conflict { .. }), "{err:?}");
    assert_eq!(sim.ledger().count(EffectKind::Order, "J-204"), 1);
}
