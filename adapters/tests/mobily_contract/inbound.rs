//! What Mobily sends us: the Nafath webhook (with the Basic auth we issued) and the
//! customer's browser coming back from 3-D Secure, received by the test ingress.

use handover_adapters::mobily::payment::PaymentRequest;
use handover_adapters::mobily::{
    ConfirmPaymentOutcome, NafathRequestId, NafathStatus, PaymentOutcome, ThreeDsResult, codes,
};
use handover_adapters::sim::mobily::{AutoThreeDs, NafathPolicy, ThreeDsPolicy, endpoints};
use handover_adapters::sim::{Delivery, DeliveryPlan, Fault, MobilyBehaviour, MobilySimConfig};

use super::*;

fn request(journey: &str) -> NafathRequestId {
    NafathRequestId::new(format!("{journey}:nafath")).unwrap()
}

fn nafath(policy: NafathPolicy) -> MobilyBehaviour {
    MobilyBehaviour::default().with_nafath(policy)
}

#[tokio::test]
async fn an_early_duplicated_webhook_carries_our_credentials_and_one_dedupe_key() {
    let delivery = DeliveryPlan::new(0).script(1, Delivery::normal().before_answer().duplicated(2));
    let config = MobilySimConfig::default()
        .with_behaviour(nafath(NafathPolicy::Approve {
            after: Duration::ZERO,
        }))
        .with_delivery(delivery);
    let h = harness_with(config).await;
    let challenge = h
        .client
        .nafath_initiate(&customer(), &request("j-early"))
        .await
        .unwrap();

    // Delivered before initiate answered: matched by our requestId, not Nafath's id.
    let hooks = h.received.accepted_webhooks();
    assert_eq!(hooks.len(), 3, "{hooks:?}");
    assert!(hooks.iter().all(|w| w.correlation() == &request("j-early")));
    assert!(
        hooks
            .iter()
            .all(|w| w.dedupe_key() == format!("nafath:{}:APPROVED", challenge.transaction_id))
    );
    assert!(
        h.received
            .webhooks()
            .iter()
            .all(|(authorised, _)| *authorised)
    );
    assert!(
        h.sim
            .callbacks()
            .sent()
            .iter()
            .all(|s| s.outcome == Ok(200))
    );
    assert_eq!(
        h.client
            .nafath_status(&challenge.transaction_id)
            .await
            .unwrap(),
        NafathStatus::Approved
    );
}

#[tokio::test]
async fn a_webhook_with_other_credentials_is_refused_by_the_ingress() {
    let h = harness(nafath(NafathPolicy::Manual)).await;
    // A client that gave Mobily a password our ingress does not know.
    let ingress = h.sim.client_config().nafath_webhook_url.join("/").unwrap();
    let stale = tune(
        h.sim
            .client_config_with(callbacks(&ingress, "an-old-rotated-password")),
        2_000,
    );
    let client = MobilyClient::new(&stale).unwrap();
    let challenge = client
        .nafath_initiate(&customer(), &request("j-stale"))
        .await
        .unwrap();
    h.sim
        .nafath_answer(challenge.transaction_id.as_str(), true)
        .await
        .unwrap();

    // Refused with 401 each time; the simulator retries, then gives up.
    let sent = eventually("all delivery attempts", || {
        let sent = h.sim.callbacks().sent();
        (sent.len() == 4).then_some(sent)
    })
    .await;
    assert!(sent.iter().all(|s| s.outcome == Ok(401)), "{sent:?}");
    assert!(h.received.accepted_webhooks().is_empty());
    assert!(
        h.received
            .webhooks()
            .iter()
            .all(|(authorised, _)| !authorised)
    );
    // The journey's fallback still learns the answer.
    assert_eq!(
        client
            .nafath_status(&challenge.transaction_id)
            .await
            .unwrap(),
        NafathStatus::Approved
    );
}

#[tokio::test]
async fn a_late_webhook_is_overtaken_by_polling_tokeninfo() {
    let policy = NafathPolicy::ApproveLateWebhook {
        after: Duration::ZERO,
        webhook_delay: Duration::from_millis(400),
    };
    let h = harness(nafath(policy)).await;
    let challenge = h
        .client
        .nafath_initiate(&customer(), &request("j-late"))
        .await
        .unwrap();
    assert_eq!(
        h.client
            .nafath_status(&challenge.transaction_id)
            .await
            .unwrap(),
        NafathStatus::Approved
    );
    assert!(
        h.received.webhooks().is_empty(),
        "the webhook is still on its way"
    );
    let hook = eventually("the late webhook", || h.received.accepted_webhooks().pop()).await;
    assert_eq!(
        (hook.transaction_id, hook.status),
        (challenge.transaction_id, NafathStatus::Approved)
    );
}

#[tokio::test]
async fn a_lost_webhook_leaves_polling_to_decide() {
    let config = MobilySimConfig::default()
        .with_behaviour(nafath(NafathPolicy::Approve {
            after: Duration::from_millis(10),
        }))
        .with_delivery(DeliveryPlan::new(0).script(1, Delivery::normal().lost()));
    let h = harness_with(config).await;
    let challenge = h
        .client
        .nafath_initiate(&customer(), &request("j-lost"))
        .await
        .unwrap();
    let status = eventually_async(|| h.client.nafath_status(&challenge.transaction_id)).await;
    assert_eq!(status, NafathStatus::Approved);
    assert!(h.received.webhooks().is_empty());
}

/// Polls a status call (bounded) until it is final.
async fn eventually_async<F, Fut>(call: F) -> NafathStatus
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<NafathStatus, handover_adapters::ProviderError>>,
{
    for _ in 0..200 {
        let status = call().await.unwrap();
        if status.is_final() {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("Nafath never decided");
}

#[tokio::test]
async fn rejected_and_expired_requests_reach_the_webhook_and_tokeninfo() {
    let h = harness(nafath(NafathPolicy::Reject {
        after: Duration::from_millis(10),
    }))
    .await;
    let challenge = h
        .client
        .nafath_initiate(&customer(), &request("j-reject"))
        .await
        .unwrap();
    let hook = eventually("the rejection", || h.received.accepted_webhooks().pop()).await;
    assert_eq!(hook.status, NafathStatus::Rejected);
    assert_eq!(
        h.client
            .nafath_status(&challenge.transaction_id)
            .await
            .unwrap(),
        NafathStatus::Rejected
    );
    // An injected rejection on the status inquiry.
    h.sim.faults().script_next(
        endpoints::NAFATH_TOKENINFO,
        Fault::refusal(codes::NAFATH_REJECTED, "Rejected"),
    );
    let other = h
        .client
        .nafath_initiate(&customer(), &request("j-reject-2"))
        .await
        .unwrap();
    assert_eq!(
        h.client.nafath_status(&other.transaction_id).await.unwrap(),
        NafathStatus::Rejected
    );

    let mut behaviour = nafath(NafathPolicy::NoAnswer);
    behaviour.nafath_window = Duration::from_millis(300);
    let h = harness(behaviour).await;
    let challenge = h
        .client
        .nafath_initiate(&customer(), &request("j-expire"))
        .await
        .unwrap();
    assert_eq!(
        challenge.expires_in,
        Duration::from_secs(1),
        "whole seconds on the wire, at least 1"
    );
    assert_eq!(
        h.client
            .nafath_status(&challenge.transaction_id)
            .await
            .unwrap(),
        NafathStatus::Waiting
    );
    let hook = eventually("the expiry", || h.received.accepted_webhooks().pop()).await;
    assert_eq!(hook.status, NafathStatus::Expired);
    assert_eq!(
        h.client
            .nafath_status(&challenge.transaction_id)
            .await
            .unwrap(),
        NafathStatus::Expired
    );
    assert!(
        h.sim
            .nafath_answer(challenge.transaction_id.as_str(), true)
            .await
            .is_err(),
        "too late"
    );
}

#[tokio::test]
async fn the_customers_browser_returns_from_3ds_by_itself() {
    let behaviour = MobilyBehaviour::default()
        .with_three_ds(ThreeDsPolicy::Challenge)
        .with_three_ds_auto(AutoThreeDs {
            after: Duration::from_millis(10),
            success: true,
        });
    let h = harness(behaviour).await;
    let c = &h.client;
    let (order, _) = ordered(&h, "j-browser", "ESIM-PRE-30", None).await;
    let session = c
        .create_session(&order.order_id, order.total)
        .await
        .unwrap();
    let pay = key("j-browser", "pay");
    let request = PaymentRequest {
        session_id: session.session_id,
        order_id: order.order_id.clone(),
        amount: order.total,
    };
    let PaymentOutcome::Requires3ds { payment_id, .. } =
        c.create_payment(&request, &pay).await.unwrap()
    else {
        panic!("3-D Secure expected");
    };
    let back = eventually("the 3-D Secure return", || h.received.returns().pop())
        .await
        .unwrap();
    assert_eq!(back.correlation(), &pay);
    assert_eq!(back.payment_id, payment_id);
    assert_eq!(back.result, ThreeDsResult::Success);
    assert_eq!(back.dedupe_key(), "3ds:j-browser:pay:success");
    assert_eq!(
        c.confirm_payment(&payment_id, &pay).await.unwrap(),
        ConfirmPaymentOutcome::Authorised { payment_id }
    );
}
