//! Activation: eSIM by IMEI (Scenario D) and pSIM by ICCID (Scenario C).

use super::support::*;

#[tokio::test]
async fn esim_activation_goes_active_and_is_never_doubled() {
    let sim = sim().await;
    let client = client(&sim);
    let (_, customer_id) = bought(&client, &sim, &esim_order("J-400")).await;
    assert_eq!(
        client.activation_status(&customer_id).await.unwrap(),
        ActivationStatus::Inactive
    );

    let activation = Activation::Esim {
        customer_id: customer_id.clone(),
        imei: Imei::parse(IMEI).unwrap(),
    };
    let ActivationOutcome::Submitted {
        transaction_id: Some(operation),
        status: ActivationCode::InProgress,
    } = client.activate(&activation).await.unwrap()
    else {
        panic!("submitted expected")
    };
    let seen = sim.requests().last_to(ACTIVATION_PATH).unwrap();
    assert_eq!(seen.method, http::Method::POST);
    assert_eq!(
        seen.json().unwrap(),
        json!({"customerId": customer_id.as_str(), "esim": true, "imei": IMEI})
    );

    // Re-sent (a retry after a lost answer): the same operation, no second activation.
    assert_eq!(
        client.activate(&activation).await.unwrap(),
        ActivationOutcome::AlreadySubmitted {
            transaction_id: Some(operation.clone()),
            status: ActivationCode::InProgress
        }
    );

    let ActivationStatus::Active {
        mobile_no,
        plan_name,
        activation_date,
    } = poll_line(&client, &customer_id, |s| {
        s.code() == ActivationCode::Active
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!(plan_name.as_deref(), Some("Unlimited 5G"));
    assert!(activation_date.is_some());
    let seen = sim.requests().last_to(ACTIVATION_STATUS_PATH).unwrap();
    assert_eq!(seen.method, http::Method::GET);
    assert_eq!(
        seen.query.as_deref(),
        Some(format!("customerId={customer_id}").as_str())
    );

    assert!(matches!(
        client.activate(&activation).await.unwrap(),
        ActivationOutcome::AlreadySubmitted {
            status: ActivationCode::Active,
            ..
        }
    ));
    assert_eq!(
        sim.ledger()
            .count(EffectKind::Activation, customer_id.as_str()),
        1
    );
    assert_eq!(
        sim.ledger()
            .count_subject(EffectKind::Activation, mobile_no.as_str()),
        1
    );
    assert!(sim.ledger().duplicates().is_empty());
}

#[tokio::test]
async fn an_activation_resent_after_a_504_after_the_effect_is_not_doubled() {
    let sim = sim().await;
    let client = client(&sim);
    let (_, customer_id) = bought(&client, &sim, &esim_order("J-401")).await;
    let activation = Activation::Esim {
        customer_id: customer_id.clone(),
        imei: Imei::parse(IMEI).unwrap(),
    };
    sim.faults().script_next(
        ACTIVATION_ENDPOINT,
        Fault::GatewayTimeout { after_effect: true },
    );
    assert_eq!(
        client.activate(&activation).await.unwrap_err().class(),
        ErrorClass::OutcomeUnknown
    );
    // Reconcile by polling: the line is in progress, so it was received.
    assert_eq!(
        client.activation_status(&customer_id).await.unwrap().code(),
        ActivationCode::Active,
        "fast timings: the first poll after submission completes it"
    );
    assert!(matches!(
        client.activate(&activation).await.unwrap(),
        ActivationOutcome::AlreadySubmitted { .. }
    ));
    assert_eq!(
        sim.ledger()
            .count(EffectKind::Activation, customer_id.as_str()),
        1
    );
}

#[tokio::test]
async fn psim_iccid_validation_and_activation() {
    let sim = sim().await;
    let client = client(&sim);
    let (transaction_id, customer_id) = bought(&client, &sim, &psim_order("J-402")).await;
    let PurchaseStatus::Completed(done) = client.purchase_status(&transaction_id).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(done.sim_type, Some(SimType::Psim));
    assert_eq!(done.shipment_status.as_deref(), Some("PENDING_SHIPMENT"));

    let iccid = IccId::parse(ICCID).unwrap();
    assert_eq!(
        client.validate_iccid(&iccid).await.unwrap(),
        IccidOutcome::Valid {
            mode: DeviceMode::Psim,
            wifi_calling: true,
            volte_compatible: true
        }
    );
    let seen = sim.requests().last_to("/apisvc/v0/iccid/validate").unwrap();
    assert_eq!(seen.json().unwrap(), json!({"iccId": ICCID}));

    let activation = Activation::Psim {
        customer_id: customer_id.clone(),
        icc_id: iccid,
    };
    client.activate(&activation).await.unwrap();
    assert_eq!(
        sim.requests()
            .last_to(ACTIVATION_PATH)
            .unwrap()
            .json()
            .unwrap(),
        json!({"customerId": customer_id.as_str(), "esim": false, "iccId": ICCID})
    );
    poll_line(&client, &customer_id, |s| {
        s.code() == ActivationCode::Active
    })
    .await;
    assert_eq!(
        sim.ledger()
            .count(EffectKind::Activation, customer_id.as_str()),
        1
    );
}

#[tokio::test]
async fn an_invalid_iccid_is_an_outcome_and_cannot_be_activated() {
    let sim = sim().await;
    let client = client(&sim);
    let wrong_digit = IccId::parse("89012601234567890122").unwrap();
    assert_eq!(
        client.validate_iccid(&wrong_digit).await.unwrap(),
        IccidOutcome::Invalid
    );
    sim.block_iccid(ICCID);
    assert_eq!(
        client
            .validate_iccid(&IccId::parse(ICCID).unwrap())
            .await
            .unwrap(),
        IccidOutcome::Invalid
    );
    let (_, customer_id) = bought(&client, &sim, &psim_order("J-403")).await;
    let err = client
        .activate(&Activation::Psim {
            customer_id,
            icc_id: IccId::parse(ICCID).unwrap(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.refusal_code(),
        Some(error_code::DEVICE_NOT_COMPATIBLE),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Terminal);
    assert_eq!(sim.ledger().count_kind(EffectKind::Activation), 0);
}

#[tokio::test]
async fn a_failed_activation_reports_its_message_and_may_be_retried() {
    let sim = sim().await;
    let client = client(&sim);
    let (_, customer_id) = bought(&client, &sim, &esim_order("J-404")).await;
    sim.fail_activation(IMEI, "eSIM profile download failed on 2125550100");
    let activation = Activation::Esim {
        customer_id: customer_id.clone(),
        imei: Imei::parse(IMEI).unwrap(),
    };
    client.activate(&activation).await.unwrap();
    let failed = poll_line(&client, &customer_id, |s| {
        s.code() == ActivationCode::Failed
    })
    .await;
    assert_eq!(
        failed,
        ActivationStatus::Failed {
            activation_msg: Some("eSIM profile download failed on 21******00".into())
        }
    );
    assert!(matches!(
        client.activate(&activation).await.unwrap(),
        ActivationOutcome::Submitted { .. }
    ));
    poll_line(&client, &customer_id, |s| {
        s.code() == ActivationCode::Active
    })
    .await;
    assert_eq!(
        sim.ledger()
            .count(EffectKind::Activation, customer_id.as_str()),
        1
    );
}
