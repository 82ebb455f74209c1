//! The `handover journeys` commands as an operator runs them: the real
//! binary, against a database where real journeys (J6 against its simulator)
//! got stuck, found by MSISDN, shown, explained and repaired with a reason.

use std::process::{Command, Output};
use std::time::Duration;

use handover::engine::{HistoryKind, JourneyId, Status, WorkerConfig};
use handover::workflows::service_ops::{ServiceChange, ServiceChangeInput};
use handover::workflows::stack::{DbTarget, Stack, StackConfig};
use handover_adapters::service_ops::ServiceType;
use handover_adapters::sim::ServiceOpsBehaviour;
use serde_json::Value;

const MSISDN: &str = "966501234567";

fn handover(db: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_handover"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("HANDOVER_DATABASE_URL")
        .output()
        .expect("the handover binary runs")
}

fn ok(db: &str, args: &[&str]) -> String {
    let out = handover(db, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "handover {args:?} failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn create(service_type: &str, msisdn: &str) -> ServiceChangeInput {
    ServiceChangeInput::Create {
        service_type: service_type.into(),
        service_id: None,
        customer_id: "CUST-CLI".into(),
        plan_code: None,
        msisdn: Some(msisdn.into()),
        event_timeout_secs: Some(1),
    }
}

async fn settle(stack: &Stack, id: JourneyId) -> Status {
    stack
        .engine
        .wait_for(id, Duration::from_secs(30), |r| {
            r.status.is_terminal() || r.status == Status::NeedsAttention
        })
        .await
        .expect("the journey settles")
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_finds_explains_and_repairs_a_stuck_journey() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("ops.db").display());
    let mut config = StackConfig::new(DbTarget::url(db.clone()));
    config.worker = WorkerConfig {
        lease_ttl: Duration::from_secs(2),
        heartbeat_every: Duration::from_millis(500),
        idle_poll: Duration::from_millis(200),
        ..WorkerConfig::default()
    };
    let stack = Stack::start(config).await.unwrap();
    // The provider accepts requests but its events never come (within the
    // test), and it refuses tv services (403) until it fixes its entitlements.
    stack.sims.service_ops.set_behaviour(
        ServiceOpsBehaviour::default()
            .with_event_delay(Duration::from_secs(3600))
            .forbidding(ServiceType::Tv),
    );
    let stuck = stack
        .engine
        .start::<ServiceChange>(create("multisim", MSISDN))
        .await
        .unwrap();
    let refused = stack
        .engine
        .start::<ServiceChange>(create("tv", "966509876543"))
        .await
        .unwrap();
    assert_eq!(settle(&stack, stuck).await, Status::NeedsAttention);
    assert_eq!(settle(&stack, refused).await, Status::Failed);

    // "Customer 966501234567 complains": find the journey by the number.
    let listed: Value =
        serde_json::from_str(&ok(&db, &["journeys", "list", "--key", MSISDN, "--json"])).unwrap();
    assert_eq!(
        listed.as_array().expect("a JSON array").len(),
        1,
        "{listed}"
    );
    assert!(listed.to_string().contains(&stuck.to_string()));

    // Why it is stuck, in one line, and no full MSISDN anywhere.
    let stuck_json = ok(&db, &["journeys", "stuck", "--json"]);
    assert!(stuck_json.contains(&stuck.to_string()), "{stuck_json}");
    assert!(
        stuck_json.contains("no success_event or error_event"),
        "{stuck_json}"
    );
    let stuck_text = ok(&db, &["journeys", "stuck"]);
    let shown = ok(&db, &["journeys", "show", &stuck.to_string(), "--json"]);
    let shown_text = ok(&db, &["journeys", "show", &stuck.to_string()]);
    for text in [
        &listed.to_string(),
        &stuck_json,
        &stuck_text,
        &shown,
        &shown_text,
    ] {
        assert!(!text.contains(MSISDN), "a full MSISDN leaked:\n{text}");
    }
    serde_json::from_str::<Value>(&shown).expect("show --json is JSON");

    // A repair without a reason is refused and changes nothing.
    let no_reason = handover(&db, &["journeys", "cancel", &stuck.to_string()]);
    assert!(!no_reason.status.success());
    assert_eq!(
        stack.engine.journey(stuck).await.unwrap().status,
        Status::NeedsAttention
    );

    // Give up on it: cancelled, recorded with who and why.
    ok(
        &db,
        &[
            "journeys",
            "cancel",
            &stuck.to_string(),
            "--reason",
            "customer withdrew the order (INC-41)",
            "--actor",
            "bob",
        ],
    );
    assert_eq!(settle(&stack, stuck).await, Status::Cancelled);
    assert_audited(&stack, stuck, "bob", "INC-41").await;

    // The provider fixed its entitlements: replay the refused journey from
    // the state before its send.
    stack
        .sims
        .service_ops
        .set_behaviour(ServiceOpsBehaviour::default().with_event_delay(Duration::from_millis(50)));
    let history = stack.engine.history(refused, 200).await.unwrap();
    let send = history
        .iter()
        .find(|e| e.state.as_ref().is_some_and(|s| s.get("Send").is_some()))
        .expect("a history entry holding the Send state");
    ok(
        &db,
        &[
            "journeys",
            "rewind",
            &refused.to_string(),
            "--to",
            &send.seq.to_string(),
            "--reason",
            "provider fixed the tv entitlement (INC-42)",
            "--actor",
            "alice",
        ],
    );
    assert_eq!(settle(&stack, refused).await, Status::Completed);
    assert_audited(&stack, refused, "alice", "INC-42").await;

    let after = ok(&db, &["journeys", "stuck", "--json"]);
    assert!(!after.contains(&stuck.to_string()), "{after}");
    stack.stop().await;
}

/// The journey's history holds a manual action naming who and why.
async fn assert_audited(stack: &Stack, id: JourneyId, actor: &str, why: &str) {
    let history = stack.engine.history(id, 500).await.unwrap();
    let audited = history.iter().any(|e| {
        e.kind == HistoryKind::ManualAction && {
            let detail = e.detail.to_string();
            detail.contains(actor) && detail.contains(why)
        }
    });
    assert!(
        audited,
        "no manual action by {actor} for {why}: {history:#?}"
    );
}
