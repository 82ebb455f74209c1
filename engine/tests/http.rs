//! The ingress and admin routers over real HTTP: rejected requests write
//! nothing; accepted ones are stored before the answer.

mod support;

use std::time::Duration;

use handover_engine::api::{self, AdminConfig};
use handover_engine::ingress::{self, IngressConfig};
use handover_engine::{Engine, JourneyId, ManualClock, Status};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use support::TestDb;
use support::workflows::{AwaitGo, AwaitGoInput, Toggle};

const WAIT: Duration = Duration::from_secs(20);

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

/// Every signal in the store, matched or not.
async fn signal_count(engine: &Engine, ids: &[JourneyId]) -> usize {
    let mut n = engine.store().unmatched(1000).await.unwrap().len();
    for id in ids {
        n += engine.store().signals_for(*id, 1000).await.unwrap().len();
    }
    n
}

async fn the_signal_route_rejects_without_writing_and_accepts_durably(db: TestDb) {
    let clock = ManualClock::at_fixed_instant();
    let engine = support::engine(&db, &clock, |b| b.register(AwaitGo)).await;
    let worker = engine.run_worker();
    let config = IngressConfig {
        app_tokens: vec![SecretString::from("app-token-1")],
        body_limit_bytes: 1024,
    };
    let base = serve(ingress::router(engine.clone(), &config)).await;
    let id = engine
        .start::<AwaitGo>(AwaitGoInput {
            sleep_first_secs: 0,
            timeout_secs: 3600,
            correlation: None,
            deadline_secs: None,
        })
        .await
        .unwrap();
    engine
        .wait_for(id, WAIT, |r| r.status == Status::Waiting)
        .await
        .unwrap();
    let url = format!("{base}/journeys/{id}/signals/go");
    let http = reqwest::Client::new();
    let post = |token: Option<&str>, ctype: &str, body: Vec<u8>| {
        let mut req = http.post(&url).header("content-type", ctype).body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };

    let before = signal_count(&engine, &[id]).await;
    let no_token = post(None, "application/json", b"\"x\"".to_vec())
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);
    let wrong = post(Some("app-token-2"), "application/json", b"\"x\"".to_vec())
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let text = post(Some("app-token-1"), "text/plain", b"\"x\"".to_vec())
        .await
        .unwrap();
    assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let garbled = post(
        Some("app-token-1"),
        "application/json",
        b"{\"code\": 12".to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(garbled.status(), StatusCode::BAD_REQUEST);
    let body: Value = garbled.json().await.unwrap();
    assert!(
        !body.to_string().contains("12"),
        "errors never echo the input: {body}"
    );
    // One byte over the limit: 413 before the body is read.
    let mut big = b"\"".to_vec();
    big.extend(std::iter::repeat_n(b'a', 1023));
    big.push(b'"');
    assert_eq!(big.len(), 1025);
    let too_big = post(Some("app-token-1"), "application/json", big)
        .await
        .unwrap();
    assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        signal_count(&engine, &[id]).await,
        before,
        "rejected requests wrote nothing"
    );
    assert_eq!(engine.metrics().ingress_rejected.get(), 4);

    // Accepted: stored before the 202, the journey wakes.
    let ok = http
        .post(&url)
        .bearer_auth("app-token-1")
        .header("idempotency-key", "tap-1")
        .json(&json!("from the app"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::ACCEPTED);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["outcome"], json!("delivered"));
    assert_eq!(
        signal_count(&engine, &[id]).await,
        before + 1,
        "stored by the time of the answer"
    );
    let again = http
        .post(&url)
        .bearer_auth("app-token-1")
        .header("idempotency-key", "tap-1")
        .json(&json!("from the app"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.json::<Value>().await.unwrap()["outcome"],
        json!("duplicate")
    );
    engine.wait_until_finished(id, WAIT).await.unwrap();
    assert_eq!(
        engine.output::<String>(id).await.unwrap().unwrap(),
        "go: from the app"
    );

    // Unknown and unparsable ids are stored and reported.
    for target in [JourneyId::new().to_string(), "not-an-id".to_owned()] {
        let r = http
            .post(format!("{base}/journeys/{target}/signals/go"))
            .bearer_auth("app-token-1")
            .json(&json!(1))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        assert_eq!(
            r.json::<Value>().await.unwrap()["outcome"],
            json!("unmatched")
        );
    }
    assert_eq!(engine.store().unmatched(10).await.unwrap().len(), 2);
    worker.shutdown(Duration::from_secs(5)).await;
}

async fn the_admin_api_mirrors_the_cli(db: TestDb) {
    let clock = ManualClock::at_fixed_instant();
    let toggle = Toggle::default();
    let engine = support::engine(&db, &clock, |b| b.register(toggle.clone())).await;
    let worker = engine.run_worker();
    let base = serve(api::router(
        engine.clone(),
        &AdminConfig {
            tokens: vec![SecretString::from("admin-secret")],
        },
    ))
    .await;
    toggle
        .broken
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let id = engine.start::<Toggle>(true).await.unwrap();
    engine.wait_until_finished(id, WAIT).await.unwrap();
    let http = reqwest::Client::new();

    let unauth = http
        .get(format!("{base}/admin/journeys"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status(), StatusCode::UNAUTHORIZED);
    let list: Value = http
        .get(format!("{base}/admin/journeys?status=failed&limit=5"))
        .bearer_auth("admin-secret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], json!(id.to_string()));
    let bad = http
        .get(format!("{base}/admin/journeys?status=sleepy"))
        .bearer_auth("admin-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let shown: Value = http
        .get(format!("{base}/admin/journeys/{id}"))
        .bearer_auth("admin-secret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["status"], json!("failed"));
    assert!(shown["history"].as_array().unwrap().len() >= 3);

    // A repair needs a reason.
    let no_reason = http
        .post(format!("{base}/admin/journeys/{id}/rewind"))
        .bearer_auth("admin-secret")
        .json(&json!({"to": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_reason.status(), StatusCode::BAD_REQUEST);
    toggle
        .broken
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let rewound = http
        .post(format!("{base}/admin/journeys/{id}/rewind"))
        .bearer_auth("admin-secret")
        .header("x-handover-actor", "grace")
        .json(&json!({"to": 1, "reason": "provider fixed it"}))
        .send()
        .await
        .unwrap();
    assert_eq!(rewound.status(), StatusCode::OK);
    engine.wait_until_finished(id, WAIT).await.unwrap();
    let history = engine.history(id, 100).await.unwrap();
    let manual = history
        .iter()
        .find(|h| h.kind == handover_engine::HistoryKind::ManualAction)
        .unwrap();
    assert_eq!(manual.detail["actor"], json!("grace"));
    let missing = http
        .get(format!("{base}/admin/journeys/{}", JourneyId::new()))
        .bearer_auth("admin-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("handover_journeys{workflow=\"test.toggle\",status=\"completed\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("handover_steps_completed_total"));
    worker.shutdown(Duration::from_secs(5)).await;
}

both!(
    the_signal_route_rejects_without_writing_and_accepts_durably,
    the_admin_api_mirrors_the_cli,
);
