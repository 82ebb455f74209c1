//! A callback storm (issue 8, item 5): every provider callback and webhook
//! (what each simulator's callback sender sends: Reach purchase/activation
//! callbacks, Al-Qimah webhooks, Mobily's, service-operations events) delivered one to
//! five times, some delayed, some held back behind the next one, some sent
//! before the simulator answered the call that caused them. The same fleet is
//! run once with every callback delivered once and in order: both runs must
//! end every journey as its scenario expects (the storm changes nothing), with
//! no effect twice, and the storm run must really have ignored duplicates.
//!
//! CI: 30 journeys of the five callback-driven types (Mobitel sends none).
//! `HANDOVER_CHAOS_FULL=1`: 150.

mod support;

use std::time::Duration;

use handover_adapters::sim::{Delivery, DeliveryPlan};
use handover_workflows::demo::drivers;
use handover_workflows::demo::fleet::{FleetConfig, Report, run};
use support::{Backend, TestDb};

fn journeys() -> u64 {
    if std::env::var("HANDOVER_CHAOS_FULL").is_ok_and(|v| v == "1") {
        150
    } else {
        30
    }
}

/// One to five deliveries each, shuffled in time.
fn storm(seed: u64) -> DeliveryPlan {
    DeliveryPlan::new(seed)
        .rate(Delivery::normal().duplicated(1), 0.15)
        .rate(Delivery::normal().duplicated(4), 0.15)
        .rate(
            Delivery::normal()
                .duplicated(2)
                .delayed(Duration::from_millis(300)),
            0.15,
        )
        .rate(Delivery::normal().duplicated(1).reordered(), 0.15)
        .rate(Delivery::normal().duplicated(2).before_answer(), 0.15)
        .rate(Delivery::normal().before_answer(), 0.1)
}

async fn fleet(stormy: bool) -> Report {
    let db = TestDb::open(Backend::Sqlite).expect("sqlite");
    let mut config = support::config(&db);
    if stormy {
        config.sims.reach.delivery = storm(11);
        config.sims.alqimah.delivery = storm(12);
        config.sims.mobily.delivery = storm(13);
        config.sims.service_ops.delivery = storm(14);
    }
    let mut stack = Box::pin(support::stack(config)).await;
    let report = run(
        &mut stack,
        &drivers()
            .into_iter()
            .filter(|d| d.workflow() != "mobitel.carrier-billing")
            .collect::<Vec<_>>(),
        &FleetConfig {
            journeys: journeys(),
            crash_every: None,
            no_crash: true,
            timeout: Duration::from_secs(90),
        },
        |_| {},
    )
    .await
    .expect("fleet runs");
    stack.stop().await;
    report
}

fn outcomes(report: &Report) -> Vec<(&'static str, u64, u64, u64)> {
    report
        .per_type
        .iter()
        .map(|(label, t)| (*label, t.completed, t.failed_as_expected, t.compensated))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_storm_ends_every_journey_as_one_in_order_delivery_does() {
    let calm = Box::pin(fleet(false)).await;
    assert!(calm.passed(), "the calm run: {calm:?}");
    let stormy = Box::pin(fleet(true)).await;
    assert!(stormy.passed(), "the storm run: {stormy:?}");
    assert!(
        stormy.ledger_duplicates.is_empty(),
        "{:?}",
        stormy.ledger_duplicates
    );
    assert_eq!(outcomes(&stormy), outcomes(&calm));
    assert!(
        stormy.signals_duplicate > calm.signals_duplicate,
        "the storm delivered no duplicate: {} vs {}",
        stormy.signals_duplicate,
        calm.signals_duplicate
    );
    eprintln!(
        "calm: {} signals, {} duplicates ignored; storm: {} signals, {} duplicates ignored; {} journeys ended alike",
        calm.signals_received,
        calm.signals_duplicate,
        stormy.signals_received,
        stormy.signals_duplicate,
        journeys()
    );
}
