//! Authentication (guide 1.2, 2.1) and rate limiting per API key (guide 2.4).

use super::support::*;

#[tokio::test]
async fn the_basic_header_is_the_documented_construction_and_is_what_reach_receives() {
    // The guide's example, steps 1 to 4 of section 1.2.
    assert_eq!(
        basic_authorization(&SecretString::from(GUIDE_JWT)).expose_secret(),
        GUIDE_HEADER
    );

    let sim = sim().await;
    client(&sim).plans().await.unwrap();
    let seen = sim.requests().last_to(PLANS_PATH).unwrap();
    let jwt = sim.client_config().jwt;
    let expected = format!(
        "Basic {}",
        STANDARD.encode(format!("clientapi|{}", jwt.expose_secret()))
    );
    assert_eq!(seen.header("authorization"), Some(expected.as_str()));
    assert_eq!(
        seen.header(API_KEY_HEADER),
        Some(sim.client_config().api_key.expose_secret())
    );
    assert_eq!(seen.header("accept"), Some("application/json"));
}

#[tokio::test]
async fn a_wrong_jwt_is_rebuilt_once_then_is_an_auth_error() {
    let sim = sim().await;
    let mut config = config_for(&sim, 2_000);
    config.jwt = SecretString::from("eyJ.not-the-issued.jwt");
    let err = ReachClient::new(&config, &ApiKeyLimiters::new())
        .unwrap()
        .plans()
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Auth { status, .. } if status == 401),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Terminal);
    assert_eq!(
        sim.requests().count_to(PLANS_PATH),
        2,
        "one retry after the rebuild"
    );
    assert!(!format!("{err} {err:?}").contains("not-the-issued"));
}

#[tokio::test]
async fn after_a_401_the_rebuilt_header_uses_the_rotated_jwt() {
    let sim = sim().await;
    let config = config_for(&sim, 2_000);
    let jwt = RotatingJwt::new(config.jwt.clone());
    let client =
        ReachClient::with_jwt_source(&config, &ApiKeyLimiters::new(), Arc::new(jwt.clone()))
            .unwrap();
    client.plans().await.unwrap();

    // Reach revokes the JWT and issues another; the operator puts it in the source.
    let rotated = SecretString::from("eyJhbGciOiJIUzI1NiJ9.eyJyb3RhdGVkIjp0cnVlfQ.c2ln");
    sim.rotate_jwt(rotated.clone());
    jwt.rotate(rotated.clone());
    sim.requests().clear();

    // The cached header is now stale: 401, rebuild from the source, retry, success.
    assert_eq!(client.plans().await.unwrap().len(), 3);
    let seen = sim.requests().all();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].header("authorization"),
        Some(basic_authorization(&config.jwt).expose_secret())
    );
    assert_eq!(
        seen[1].header("authorization"),
        Some(basic_authorization(&rotated).expose_secret())
    );
}

#[tokio::test]
async fn a_wrong_api_key_is_an_auth_error() {
    let sim = sim().await;
    let mut config = config_for(&sim, 2_000);
    let wrong = "not-the-issued-api-key-17";
    config.api_key = SecretString::from(wrong);
    let err = ReachClient::new(&config, &ApiKeyLimiters::new())
        .unwrap()
        .purchase(&esim_order("J-AUTH"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Auth { status, .. } if status == 401),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains(wrong));
    assert!(sim.ledger().is_empty());
}

#[tokio::test]
async fn the_gateway_refuses_missing_malformed_or_url_safe_credentials() {
    let sim = start(
        ReachSimConfig::default()
            .with_behaviour(ReachBehaviour::fast())
            .with_credentials(
                SecretString::from(PLUS_JWT),
                SecretString::from("handover-sim-reach-api-key"),
            ),
    )
    .await;
    let http = reqwest::Client::new();
    let url = sim
        .base_url()
        .join(PLANS_PATH.trim_start_matches('/'))
        .unwrap();
    let config = sim.client_config();
    let credential = format!("clientapi|{}", config.jwt.expose_secret());
    let cases = [
        (None, Some(config.api_key.expose_secret().to_owned())),
        (
            Some(basic_authorization(&config.jwt).expose_secret().to_owned()),
            None,
        ),
        // Without the prefix, with the URL-safe alphabet, without padding, as Bearer.
        (
            Some(format!(
                "Basic {}",
                STANDARD.encode(config.jwt.expose_secret())
            )),
            Some(config.api_key.expose_secret().to_owned()),
        ),
        (
            Some(format!("Basic {}", URL_SAFE.encode(credential.as_bytes()))),
            Some(config.api_key.expose_secret().to_owned()),
        ),
        (
            Some(format!(
                "Basic {}",
                STANDARD_NO_PAD.encode(credential.as_bytes())
            )),
            Some(config.api_key.expose_secret().to_owned()),
        ),
        (
            Some(format!("Bearer {}", config.jwt.expose_secret())),
            Some(config.api_key.expose_secret().to_owned()),
        ),
    ];
    for (i, (authorization, key)) in cases.into_iter().enumerate() {
        let mut request = http.get(url.clone());
        if let Some(a) = authorization {
            request = request.header("authorization", a);
        }
        if let Some(k) = key {
            request = request.header(API_KEY_HEADER, k);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "case {i}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["errorCode"], error_code::UNAUTHORIZED, "case {i}");
    }
    // The variants really differ from the documented encoding for this JWT...
    let documented = STANDARD.encode(credential.as_bytes());
    assert!(
        documented.contains('+') && documented.ends_with('='),
        "{documented}"
    );
    assert_ne!(URL_SAFE.encode(credential.as_bytes()), documented);
    assert_ne!(STANDARD_NO_PAD.encode(credential.as_bytes()), documented);
    // ...and the documented one is accepted.
    let response = authorized(&sim, http.get(url)).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn an_ip_that_is_not_whitelisted_is_refused_with_403() {
    let mut behaviour = ReachBehaviour::fast();
    behaviour.ip_whitelisted = false;
    let sim = sim_with(behaviour).await;
    let err = client(&sim).plans().await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Auth { status, .. } if status == 403),
        "{err:?}"
    );
    assert_eq!(sim.requests().count_to(PLANS_PATH), 1, "403 is not retried");
}

#[tokio::test]
async fn the_platform_rate_limit_is_429_with_retry_after() {
    let sim = sim_with(ReachBehaviour::fast().with_rate_limit(2)).await;
    let client = client(&sim);
    client.plans().await.unwrap();
    client.plans().await.unwrap();
    let err = client.plans().await.unwrap_err();
    assert!(
        matches!(err, ProviderError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(1)),
        "{err:?}"
    );
    assert_eq!(
        err.class(),
        ErrorClass::Retryable {
            retry_after: Some(Duration::from_secs(1))
        }
    );
}

#[tokio::test]
async fn clients_sharing_an_api_key_share_one_limiter() {
    let sim = sim().await;
    let mut config = sim.client_config();
    config.http.rate_per_second = 1;
    config.http.rate_burst = 1;
    config.http.max_rate_wait_ms = 20;
    let limiters = ApiKeyLimiters::new();
    let first = ReachClient::new(&config, &limiters).unwrap();
    let second = ReachClient::new(&config, &limiters).unwrap();
    first.plans().await.unwrap();
    let err = second.plans().await.unwrap_err();
    assert!(
        matches!(
            err,
            ProviderError::RateLimited {
                retry_after: None,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        sim.requests().count_to(PLANS_PATH),
        1,
        "held back before sending"
    );

    // Another API key has its own limiter.
    let mut other = config.clone();
    other.api_key = SecretString::from("another-api-key");
    other.http.rate_per_second = 100;
    other.http.rate_burst = 100;
    let err = ReachClient::new(&other, &limiters)
        .unwrap()
        .plans()
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Auth { .. }), "sent: {err:?}");
    assert_eq!(limiters.len(), 2);
}
