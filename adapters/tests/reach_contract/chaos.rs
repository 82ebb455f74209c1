//! Secrets stay out of `Debug`, and many journeys under the chaos mix never double an effect.

use super::support::*;

#[tokio::test]
async fn debug_output_shows_no_credential_pin_or_full_number() {
    let sim = sim().await;
    let config = sim.client_config();
    let client = client(&sim);
    let order = port_order("J-700", PIN, "998877665", "10001");
    let (_, customer_id) = bought(&client, &sim, &order).await;
    client
        .activate(&Activation::Esim {
            customer_id: customer_id.clone(),
            imei: Imei::parse(IMEI).unwrap(),
        })
        .await
        .unwrap();
    let status = poll_line(&client, &customer_id, |s| {
        s.code() == ActivationCode::Active
    })
    .await;
    sim.faults().script_next(
        PURCHASE_ENDPOINT,
        Fault::refusal("PAYMENT_DECLINED", "Card 2125550100 declined"),
    );
    let err = client
        .purchase(&port_order("J-701", PIN, "998877665", "10001"))
        .await
        .unwrap_err();
    let update = PortInUpdate::UpdatePin(PortPin::new(SecretString::from(PIN)).unwrap());

    let shown = format!(
        "{config:?} {client:?} {order:?} {update:?} {status:?} {err} {err:?} {sim:?} {:?} {:?} {:?}",
        sim.requests().all(),
        sim.purchases(),
        sim.line(customer_id.as_str()),
    );
    for secret in [
        config.jwt.expose_secret(),
        config.api_key.expose_secret(),
        PIN,
        NUMBER,
        IMEI,
    ] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
}

/// Retries a call the way the journey rules say: retryable errors after a short pause,
/// `OutcomeUnknown` by calling again (every call here is safe to re-send by design).
async fn retried<T, F, Fut>(mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    for _ in 0..100 {
        match call().await {
            Ok(value) => return value,
            Err(e) if e.class() == ErrorClass::Terminal => panic!("terminal error: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    panic!("no success after 100 attempts");
}

/// A compressed J2 (eSIM): buy, pay, activate. Returns the customer.
async fn journey(client: &ReachClient, sim: &ReachSim, account: &str) -> CustomerId {
    let order = esim_order(account);
    let transaction_id = retried(|| client.purchase(&order))
        .await
        .transaction_id()
        .clone();
    let mut customer_id = None;
    for _ in 0..50 {
        match retried(|| client.purchase_status(&transaction_id)).await {
            PurchaseStatus::PaymentPending { link: Some(_), .. } => {
                // A paid purchase is no longer payable: ignore "not awaiting payment".
                let _ = sim.pay(transaction_id.as_str(), true).await;
            }
            PurchaseStatus::Completed(done) => {
                customer_id = Some(done.customer_id);
                break;
            }
            PurchaseStatus::Failed { .. } => panic!("{account} failed"),
            _ => {}
        }
    }
    let customer_id = customer_id.unwrap_or_else(|| panic!("{account} never completed"));
    let activation = Activation::Esim {
        customer_id: customer_id.clone(),
        imei: Imei::parse(IMEI).unwrap(),
    };
    retried(|| client.activate(&activation)).await;
    for _ in 0..50 {
        if let ActivationStatus::Active { .. } =
            retried(|| client.activation_status(&customer_id)).await
        {
            return customer_id;
        }
    }
    panic!("{account} never went active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_chaos_every_customer_is_ordered_paid_and_activated_once() {
    let sim = start(
        ReachSimConfig::default()
            .with_behaviour(ReachBehaviour::fast())
            .with_faults(FaultPlan::chaos(42, 400)),
    )
    .await;
    let client = ReachClient::new(&config_for(&sim, 150), &ApiKeyLimiters::new()).unwrap();
    let accounts: Vec<String> = (0..16).map(|i| format!("J-CHAOS-{i:02}")).collect();
    let done = futures::future::join_all(accounts.iter().map(|account| {
        let client = client.clone();
        let account = account.clone();
        let sim = &sim;
        async move { journey(&client, sim, &account).await }
    }))
    .await;

    let ledger = sim.ledger();
    for (account, customer_id) in accounts.iter().zip(&done) {
        assert_eq!(ledger.count(EffectKind::Order, account), 1, "{account}");
        assert_eq!(
            ledger.count(EffectKind::Activation, customer_id.as_str()),
            1,
            "{account}"
        );
    }
    assert_eq!(ledger.count_kind(EffectKind::Payment), accounts.len());
    assert!(ledger.duplicates().is_empty(), "{:?}", ledger.duplicates());
    assert!(ledger.is_complete());
    // The dangerous faults really happened. With seed 42 the draws put after-effect faults
    // on purchase call 11 and activation call 10; 16 journeys make at least 16 calls to
    // each, so this holds whatever the interleaving.
    let injected = sim.faults().injected();
    for endpoint in [PURCHASE_ENDPOINT, ACTIVATION_ENDPOINT] {
        assert!(
            injected
                .iter()
                .any(|f| f.endpoint == endpoint && f.fault.after_effect()),
            "no after-effect fault on {endpoint}: {injected:?}"
        );
    }
}
