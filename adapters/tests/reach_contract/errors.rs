//! Error classes of the shared table, as Reach's simulator produces them.

use super::support::*;

#[tokio::test]
async fn server_errors_are_retryable_and_order_nothing() {
    let sim = sim().await;
    let client = client(&sim);
    sim.faults()
        .script_next(PURCHASE_ENDPOINT, Fault::InternalError);
    let err = client.purchase(&esim_order("J-300")).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Unavailable { status: Some(s), .. } if s == 500),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Retryable { retry_after: None });

    sim.faults().script_next(
        PURCHASE_ENDPOINT,
        Fault::Unavailable {
            retry_after_secs: Some(5),
        },
    );
    let err = client.purchase(&esim_order("J-300")).await.unwrap_err();
    assert_eq!(
        err.class(),
        ErrorClass::Retryable {
            retry_after: Some(Duration::from_secs(5))
        },
        "{err:?}"
    );

    sim.faults().script_next(
        PURCHASE_ENDPOINT,
        Fault::RateLimited {
            retry_after_secs: Some(3),
        },
    );
    let err = client.purchase(&esim_order("J-300")).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(3)),
        "{err:?}"
    );
    assert!(sim.ledger().is_empty());
    client.purchase(&esim_order("J-300")).await.unwrap();
}

#[tokio::test]
async fn a_read_only_504_or_drop_is_simply_retryable() {
    let sim = sim().await;
    let client = client(&sim);
    let transaction_id = client
        .purchase(&esim_order("J-301"))
        .await
        .unwrap()
        .transaction_id()
        .clone();
    sim.faults().script_next(
        PURCHASE_STATUS_ENDPOINT,
        Fault::GatewayTimeout { after_effect: true },
    );
    sim.faults().script_next(
        PURCHASE_STATUS_ENDPOINT,
        Fault::DropConnection {
            after_effect: false,
        },
    );
    for _ in 0..2 {
        let err = client.purchase_status(&transaction_id).await.unwrap_err();
        assert!(matches!(err, ProviderError::Unavailable { .. }), "{err:?}");
        assert_eq!(err.class(), ErrorClass::Retryable { retry_after: None });
    }
    client.purchase_status(&transaction_id).await.unwrap();
}

#[tokio::test]
async fn unknown_ids_are_rejected_and_malformed_bodies_get_400() {
    let sim = sim().await;
    let client = client(&sim);
    let err = client
        .purchase_status(&TransactionId::new("TXN-000000000000").unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Rejected { status: Some(s), .. } if s == 404),
        "{err:?}"
    );
    let err = client
        .activation_status(&CustomerId::new("CUS-0").unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Rejected { status: Some(s), .. } if s == 404),
        "{err:?}"
    );

    let http = reqwest::Client::new();
    let activation = sim
        .base_url()
        .join(ACTIVATION_PATH.trim_start_matches('/'))
        .unwrap();
    for body in [
        json!({"customerId": "CUS-1", "esim": true, "imei": IMEI, "iccid": ICCID}),
        json!({"customerId": "CUS-1", "esim": true, "iccId": ICCID}),
        json!({"customerId": "CUS-1", "esim": "yes", "imei": IMEI}),
        json!({"customerId": "CUS 1", "esim": false, "iccId": ICCID}),
        json!(["not", "an", "object"]),
    ] {
        let response = authorized(&sim, http.post(activation.clone()))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let answer: serde_json::Value = response.json().await.unwrap();
        assert_eq!(answer["errorCode"], error_code::INVALID_REQUEST, "{body}");
    }
    let purchase = sim
        .base_url()
        .join(PURCHASE_PATH.trim_start_matches('/'))
        .unwrap();
    let response = authorized(&sim, http.post(purchase))
        .json(&json!({"clientAccountId": "J-1", "serviceCode": "PLAN-UNL", "simType": "ESIM"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(sim.ledger().is_empty());

    // The client refuses to send what it cannot type.
    assert!(Imei::parse("12345").is_err());
    assert!(RedirectUrl::parse("http://brand.example/return").is_err());
    let mut no_address = psim_order("J-1");
    no_address.shipping_address = None;
    let err = client.purchase(&no_address).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Rejected { status: None, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn nothing_listening_is_a_transport_error() {
    let sim = sim().await;
    let config = config_for(&sim, 1_000);
    drop(sim);
    let err = ReachClient::new(&config, &ApiKeyLimiters::new())
        .unwrap()
        .purchase(&esim_order("J-302"))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Transport { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Retryable { retry_after: None });
}
