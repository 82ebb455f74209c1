//! Port-in with its correction loop (Scenario E, journey J3).

use super::support::*;

#[tokio::test]
async fn a_port_in_fails_on_the_pin_then_the_zip_is_corrected_twice_and_goes_active() {
    let sim = sim().await;
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
    let mdn = Mdn::parse(NUMBER).unwrap();
    assert!(matches!(
        client.validate_port(&mdn).await.unwrap(),
        PortEligibility::Eligible { .. }
    ));
    let seen = sim.requests().last_to(PORT_VALIDATE_PATH).unwrap();
    assert_eq!(seen.method, http::Method::PUT);
    assert_eq!(seen.query.as_deref(), Some("mdn=2125550100"));

    // Wrong PIN and wrong ZIP.
    let order = port_order("J-500", PIN, "998877665", "99999");
    let (_, customer_id) = bought(&client, &sim, &order).await;
    let body = sim
        .requests()
        .last_to(PURCHASE_PATH)
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(body["numberToPort"], NUMBER);
    assert_eq!(body["oldCarrier"], "T-Mobile");
    assert_eq!(body["oldCarrierAccountNumber"], "998877665");
    assert_eq!(body["password"], PIN);
    assert_eq!(body["oldZip"], "99999");

    let activation = Activation::Esim {
        customer_id: customer_id.clone(),
        imei: Imei::parse(IMEI).unwrap(),
    };
    assert!(matches!(
        client.activate(&activation).await.unwrap(),
        ActivationOutcome::Submitted {
            status: ActivationCode::PortingInProgress,
            ..
        }
    ));
    assert_eq!(
        sim.ledger().count(EffectKind::PortIn, customer_id.as_str()),
        1
    );
    assert_eq!(sim.ledger().count_subject(EffectKind::PortIn, NUMBER), 1);

    let failed = poll_line(&client, &customer_id, |s| {
        s.code() == ActivationCode::PortingFailed
    })
    .await;
    assert_eq!(
        failed,
        ActivationStatus::PortingFailed {
            activation_msg: Some(WRONG_PIN.into())
        }
    );

    let fixed_pin = PortInUpdate::UpdatePin(PortPin::new(SecretString::from("1357")).unwrap());
    let PortInUpdateOutcome::Accepted {
        transaction_id: Some(_),
        status: ActivationCode::PortingInProgress,
    } = client
        .update_port_in(&customer_id, &fixed_pin)
        .await
        .unwrap()
    else {
        panic!("accepted expected")
    };
    let seen = sim.requests().last_to(PORT_IN_UPDATE_PATH).unwrap();
    assert_eq!(seen.method, http::Method::PUT);
    assert_eq!(
        seen.json().unwrap(),
        json!({"customerId": customer_id.as_str(), "type": "UPDATE_PIN", "password": "1357"})
    );
    // Sent again (a retry): the port is in progress, nothing is applied twice.
    assert!(matches!(
        client
            .update_port_in(&customer_id, &fixed_pin)
            .await
            .unwrap(),
        PortInUpdateOutcome::Conflict {
            current: ActivationCode::PortingInProgress,
            ..
        }
    ));

    let failed = poll_line(&client, &customer_id, |s| {
        s.code() == ActivationCode::PortingFailed
    })
    .await;
    assert_eq!(
        failed,
        ActivationStatus::PortingFailed {
            activation_msg: Some(WRONG_ZIP.into())
        }
    );
    let fixed_zip = PortInUpdate::UpdateZip(ZipCode::parse("10001").unwrap());
    client
        .update_port_in(&customer_id, &fixed_zip)
        .await
        .unwrap();
    assert_eq!(
        sim.requests()
            .last_to(PORT_IN_UPDATE_PATH)
            .unwrap()
            .json()
            .unwrap(),
        json!({"customerId": customer_id.as_str(), "type": "UPDATE_ZIP", "oldZip": "10001"})
    );

    let ActivationStatus::Active { mobile_no, .. } = poll_line(&client, &customer_id, |s| {
        s.code() == ActivationCode::Active
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!(mobile_no.as_str(), NUMBER, "the ported number is live");
    assert_eq!(
        sim.ledger()
            .count(EffectKind::Activation, customer_id.as_str()),
        1
    );
    assert_eq!(
        sim.ledger().count(EffectKind::PortIn, customer_id.as_str()),
        1
    );
    assert!(sim.ledger().duplicates().is_empty());
    // A live number cannot be ported in again.
    assert!(matches!(
        client.validate_port(&mdn).await.unwrap(),
        PortEligibility::NotEligible { .. }
    ));
}

#[tokio::test]
async fn an_ineligible_number_is_an_outcome() {
    let sim = sim().await;
    sim.refuse_port(NUMBER, "The number has an active port-out lock.");
    let outcome = client(&sim)
        .validate_port(&Mdn::parse(NUMBER).unwrap())
        .await
        .unwrap();
    assert_eq!(
        outcome,
        PortEligibility::NotEligible {
            message: Some("The number has an active port-out lock.".into())
        }
    );
}

#[tokio::test]
async fn cancel_port_ends_cancelled_and_cancel_and_new_activates_a_new_number() {
    let sim = sim().await;
    let client = client(&sim);
    sim.set_losing_carrier(
        NUMBER,
        LosingCarrierAccount {
            account_number: "1".into(),
            pin: SecretString::from("1"),
            zip: "10001".into(),
            transient_failures: 0,
        },
    );
    for (account, update) in [
        ("J-501", PortInUpdate::CancelPort),
        ("J-502", PortInUpdate::CancelAndNew),
    ] {
        let (_, customer_id) = bought(
            &client,
            &sim,
            &port_order(account, PIN, "998877665", "10001"),
        )
        .await;
        client
            .activate(&Activation::Esim {
                customer_id: customer_id.clone(),
                imei: Imei::parse(IMEI).unwrap(),
            })
            .await
            .unwrap();
        poll_line(&client, &customer_id, |s| {
            s.code() == ActivationCode::PortingFailed
        })
        .await;
        let outcome = client.update_port_in(&customer_id, &update).await.unwrap();
        match update {
            PortInUpdate::CancelPort => {
                assert!(matches!(
                    outcome,
                    PortInUpdateOutcome::Accepted {
                        status: ActivationCode::PortCancelled,
                        ..
                    }
                ));
                assert_eq!(
                    client.activation_status(&customer_id).await.unwrap(),
                    ActivationStatus::PortCancelled
                );
            }
            _ => {
                let ActivationStatus::Active { mobile_no, .. } =
                    poll_line(&client, &customer_id, |s| {
                        s.code() == ActivationCode::Active
                    })
                    .await
                else {
                    unreachable!()
                };
                assert_ne!(mobile_no.as_str(), NUMBER, "a new number");
                assert_eq!(
                    sim.ledger()
                        .count(EffectKind::Activation, customer_id.as_str()),
                    1
                );
            }
        }
    }
    sim.faults().script_next(
        PORT_IN_UPDATE_ENDPOINT,
        Fault::refusal("PORT_LOCKED", "Locked"),
    );
    let err = client
        .update_port_in(
            &CustomerId::new("CUS-1").unwrap(),
            &PortInUpdate::ResubmitPort,
        )
        .await
        .unwrap_err();
    assert_eq!(err.refusal_code(), Some("PORT_LOCKED"));
}
