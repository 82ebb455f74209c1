//! The gateway: the `apikey`, the JWT (both token paths, renewal on 401 and ahead of
//! expiry, one refresh for many journeys), and secrets kept out of every `Debug`.

use handover_adapters::mobily::{headers, paths};
use handover_adapters::sim::{MobilyBehaviour, Simulators, SimulatorsConfig};
use handover_adapters::{ErrorClass, ProviderError, ProvidersConfig};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::*;

async fn raw_post(url: Url, headers: &[(&str, String)], body: Value) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(url).json(&body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn the_gateway_refuses_a_missing_or_wrong_apikey_and_a_missing_jwt() {
    let h = harness(MobilyBehaviour::default()).await;
    let url = h
        .sim
        .base_url()
        .join(paths::DUES.trim_start_matches('/'))
        .unwrap();
    let body = json!({ "nationalId": CUSTOMER });
    let (status, answer) = raw_post(url.clone(), &[], body.clone()).await;
    assert_eq!(status, 401);
    assert_eq!(
        answer["fault"]["detail"]["errorcode"],
        "steps.oauth.v2.FailedToResolveAPIKey"
    );
    let apikey = h.sim.client_config().apikey.expose_secret().to_owned();
    let (status, answer) = raw_post(url, &[(headers::APIKEY, apikey)], body).await;
    assert_eq!(status, 401);
    assert_eq!(answer["fault"]["faultstring"], "Invalid access token");

    // A wrong key fails at the token endpoint already: terminal, the key not echoed.
    let wrong = "not-the-apikey-7a1f3b";
    let mut config = tune(h.sim.client_config(), 2_000);
    config.apikey = SecretString::from(wrong);
    let err = MobilyClient::new(&config)
        .unwrap()
        .dues(&customer())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Auth { status, message, .. } if *status == 401 && message == "Invalid ApiKey"),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Terminal);
    assert!(!format!("{err} {err:?}").contains(wrong));
    assert_eq!(h.sim.tokens_issued(), 0);

    // A key not subscribed to the product: 403.
    let mut blocked = MobilyBehaviour::default();
    blocked.apikey_blocked = true;
    h.sim.set_behaviour(blocked);
    let err = h.client.products().await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Auth { status, .. } if status == 403),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_wrong_client_secret_is_an_auth_error_without_the_secret() {
    let h = harness(MobilyBehaviour::default()).await;
    let wrong = "wrong-client-secret-99e1";
    let mut config = tune(h.sim.client_config(), 2_000);
    config.client_secret = SecretString::from(wrong);
    let err = MobilyClient::new(&config)
        .unwrap()
        .authenticate()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Auth { message, .. } if message == "ClientId is Invalid"),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains(wrong));
}

#[tokio::test]
async fn an_expired_jwt_is_renewed_once_on_401() {
    let h = harness(MobilyBehaviour::default()).await;
    h.client.products().await.unwrap();
    assert_eq!(h.sim.tokens_issued(), 1);
    h.sim.expire_tokens();
    h.client.products().await.unwrap();
    assert_eq!(h.sim.tokens_issued(), 2);
    assert_eq!(
        h.sim.requests().count_to(paths::PRODUCTS),
        3,
        "the 401 and one retry"
    );
    // The renewed token is reused.
    h.client.products().await.unwrap();
    assert_eq!(h.sim.tokens_issued(), 2);
}

#[tokio::test]
async fn a_jwt_is_renewed_ahead_of_its_expiry_without_a_401() {
    let h = harness(MobilyBehaviour::default().with_token_lifetime(Duration::from_secs(1))).await;
    h.client.products().await.unwrap();
    assert_eq!(h.sim.tokens_issued(), 1);
    // Past half the lifetime the cache refreshes before using the token (needed wait).
    tokio::time::sleep(Duration::from_millis(600)).await;
    h.client.products().await.unwrap();
    assert_eq!(h.sim.tokens_issued(), 2);
    assert_eq!(
        h.sim.requests().count_to(paths::PRODUCTS),
        2,
        "no 401 on the way"
    );
}

#[tokio::test]
async fn concurrent_journeys_share_one_token_refresh() {
    let h = harness(MobilyBehaviour::default()).await;
    let calls = (0..16).map(|_| {
        let client = h.client.clone();
        tokio::spawn(async move { client.dues(&customer()).await })
    });
    for result in futures::future::join_all(calls).await {
        assert!(result.unwrap().is_ok());
    }
    assert_eq!(h.sim.tokens_issued(), 1);
}

#[tokio::test]
async fn the_keycloak_path_and_the_documents_other_spellings_are_served() {
    let h = harness(MobilyBehaviour::default()).await;
    let config = h.sim.client_config();
    let apikey = config.apikey.expose_secret().to_owned();
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", &config.client_id)
        .append_pair("client_secret", config.client_secret.expose_secret())
        .finish();
    let response = reqwest::Client::new()
        .post(
            h.sim
                .base_url()
                .join(paths::KEYCLOAK_TOKEN.trim_start_matches('/'))
                .unwrap(),
        )
        .header(headers::APIKEY, &apikey)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let token: Value = response.json().await.unwrap();
    assert_eq!(token["token_type"], "Bearer");
    assert!(token["expires_in"].is_u64());
    let auth = vec![
        (headers::APIKEY, apikey),
        (
            "authorization",
            format!("Bearer {}", token["access_token"].as_str().unwrap()),
        ),
    ];

    // tokenInfo (line 198) as well as tokeninfo (line 373).
    let challenge = h
        .client
        .nafath_initiate(
            &customer(),
            &NafathRequestId::new("j-camel:nafath").unwrap(),
        )
        .await
        .unwrap();
    let camel = h
        .sim
        .base_url()
        .join(paths::NAFATH_TOKENINFO_CAMEL.trim_start_matches('/'))
        .unwrap();
    let (status, answer) = raw_post(
        camel,
        &auth,
        json!({ "transactionId": challenge.transaction_id.as_str() }),
    )
    .await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("WAITING")));

    // /qr/get (line 234) as well as /mobily-qr-code/services/qr/get (line 408).
    let (order, msisdn) = ordered(&h, "j-short-qr", "ESIM-PRE-30", None).await;
    let short = h
        .sim
        .base_url()
        .join(paths::QR_GET_SHORT.trim_start_matches('/'))
        .unwrap();
    let body = json!({ "orderId": order.order_id.as_str(), "msisdn": msisdn.as_str() });
    let (status, answer) = raw_post(short, &auth, body).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (200, Some(handover_adapters::mobily::codes::QR_NOT_READY))
    );

    // Strict bodies: an unknown field is a 400 with code 4000.
    let dues = h
        .sim
        .base_url()
        .join(paths::DUES.trim_start_matches('/'))
        .unwrap();
    let (status, answer) =
        raw_post(dues, &auth, json!({ "nationalId": CUSTOMER, "extra": 1 })).await;
    assert_eq!((status, answer["code"].as_str()), (400, Some("4000")));
}

#[tokio::test]
async fn no_secret_or_personal_data_in_debug_output() {
    let h = harness(MobilyBehaviour::default()).await;
    let (order, msisdn) = ordered(&h, "j-debug", "ESIM-PRE-30", None).await;
    let config = h.sim.client_config();
    let recorded = h.sim.requests().all();
    let jwt = recorded
        .iter()
        .find_map(|r| {
            r.header("authorization")
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_owned)
        })
        .unwrap();
    let otp = h.sim.otp_for(&contact_for("j-debug")).unwrap();
    let providers = ProvidersConfig::from_sources(None, &|name| match name {
        "HANDOVER_MOBILY_BASE_URL" => Some(h.sim.base_url().to_string()),
        "HANDOVER_MOBILY_APIKEY" => Some(config.apikey.expose_secret().to_owned()),
        "HANDOVER_MOBILY_CLIENT_ID" => Some(config.client_id.clone()),
        "HANDOVER_MOBILY_CLIENT_SECRET" => Some(config.client_secret.expose_secret().to_owned()),
        "HANDOVER_MOBILY_NAFATH_WEBHOOK_URL" => Some(config.nafath_webhook_url.to_string()),
        "HANDOVER_MOBILY_NAFATH_WEBHOOK_USERNAME" => Some("mobily-nafath".to_owned()),
        "HANDOVER_MOBILY_NAFATH_WEBHOOK_PASSWORD" => Some(WEBHOOK_PASSWORD.to_owned()),
        "HANDOVER_MOBILY_PAYMENT_RETURN_URL" => Some(config.payment_return_url.to_string()),
        _ => None,
    })
    .unwrap();
    let credentials = WebhookCredentials::from_config(&config);
    let refused = h
        .client
        .reserve_number(
            &msisdn,
            &CartId::new("no-such-cart").unwrap(),
            &key("j-debug", "x"),
        )
        .await;
    let shown = format!(
        "{config:?} {:?} {providers:?} {recorded:?} {credentials:?} {order:?} {:?} {:?} {:?} {:?} {refused:?}",
        h.client,
        h.sim,
        h.sim.nafath_requests(),
        h.sim.order(order.order_id.as_str()),
        (
            customer(),
            msisdn.clone(),
            handover_adapters::mobily::OtpCode::parse(&otp).unwrap()
        ),
    );
    for secret in [
        config.apikey.expose_secret(),
        config.client_secret.expose_secret(),
        WEBHOOK_PASSWORD,
        jwt.as_str(),
        CUSTOMER,
        msisdn.as_str(),
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(
        !shown.contains(&format!("({otp})")) && !shown.contains(&format!("\"{otp}\"")),
        "{shown}"
    );
}

#[tokio::test]
async fn the_simulator_registry_starts_and_configures_mobily() {
    let sims = Simulators::start(SimulatorsConfig::default())
        .await
        .unwrap();
    assert!(
        sims.urls()
            .iter()
            .any(|(p, _)| *p == handover_adapters::Provider::Mobily)
    );
    let config = sims.providers_config().mobily.expect("configured");
    let client = MobilyClient::new(&config).unwrap();
    assert_eq!(client.products().await.unwrap().len(), 3);
}
