//! No secret and no full MSISDN leaves the engine: canary values go into
//! state, inputs and signals; everything people and machines can read is
//! scanned (views, `--json`, history, unmatched callbacks, metrics, logs at
//! TRACE).

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use handover_engine::{
    BusinessKey, CorrelationKey, InvalidInput, ManualClock, NewSignal, NoCompensation, Sensitive,
    Start, Status, StepCtx, StepError, StepInfo, Transition, Wait, Workflow,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use support::TestDb;

const MSISDN: &str = "966512398765";
const PIN: &str = "CANARY-PIN-7391";
const OTP: &str = "CANARY-OTP-55120";
const NATIONAL_ID: &str = "CANARY-NID-1098776";

/// Logs captured from every thread.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let writer = capture.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .init();
        capture
    })
}

#[derive(Debug, Clone)]
struct PortInLike;

#[derive(Debug, Serialize, Deserialize)]
struct Input {
    msisdn: String,
    pin: String,
    national_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
enum State {
    AwaitOtp {
        msisdn: String,
        pin: Sensitive<String>,
        national_id: Sensitive<String>,
    },
    Failing {
        msisdn: String,
        pin: Sensitive<String>,
    },
}

impl Workflow for PortInLike {
    const NAME: &'static str = "test.canary";
    type Input = Input;
    type State = State;
    type Output = String;
    type Compensation = NoCompensation;

    fn start(&self, input: Input) -> Result<Start<State>, InvalidInput> {
        Ok(Start::new(State::AwaitOtp {
            msisdn: input.msisdn.clone(),
            pin: Sensitive::new(input.pin),
            national_id: Sensitive::new(input.national_id),
        })
        .business_key(BusinessKey::msisdn(&input.msisdn)))
    }

    fn step_info(&self, state: &State) -> StepInfo {
        match state {
            State::AwaitOtp { .. } => StepInfo::new("await-otp"),
            State::Failing { .. } => StepInfo::new("failing").retry(
                handover_engine::RetryPolicy::attempts(2)
                    .delays(Duration::from_millis(1), Duration::from_millis(1)),
            ),
        }
    }

    async fn step(
        &self,
        state: State,
        ctx: &mut StepCtx<Self>,
    ) -> Result<Transition<State, String>, StepError> {
        match state {
            State::AwaitOtp {
                msisdn,
                pin,
                national_id,
            } => {
                let _ = national_id;
                match ctx.signal_payload::<serde_json::Value>("otp-code")? {
                    Some(_) => Ok(Transition::next(State::Failing { msisdn, pin })),
                    None => Ok(Transition::wait(
                        State::AwaitOtp {
                            msisdn,
                            pin,
                            national_id: Sensitive::new(NATIONAL_ID.into()),
                        },
                        Wait::for_signal("otp-code"),
                    )),
                }
            }
            // Errors must never carry secrets: this one names none.
            State::Failing { .. } => Err(StepError::retryable(
                "provider said: invalid port-in details",
            )),
        }
    }
}

fn scan(what: &str, text: &str) {
    for canary in [PIN, OTP, NATIONAL_ID, MSISDN] {
        assert!(
            !text.contains(canary),
            "{what} leaked a canary ({canary}):\n{text}"
        );
    }
}

async fn no_canary_leaves_the_engine(db: TestDb) {
    let logs = capture();
    let clock = ManualClock::at_fixed_instant();
    let engine = support::engine(&db, &clock, |b| b.register(PortInLike)).await;
    let worker = engine.run_worker();
    let id = engine
        .start::<PortInLike>(Input {
            msisdn: MSISDN.into(),
            pin: PIN.into(),
            national_id: NATIONAL_ID.into(),
        })
        .await
        .unwrap();
    engine
        .wait_for(id, Duration::from_secs(10), |r| r.status == Status::Waiting)
        .await
        .unwrap();
    engine
        .signal(
            NewSignal::to_journey(id, "otp-code", json!({"otp": OTP, "msisdn": MSISDN}))
                .unwrap()
                .source("app"),
        )
        .await
        .unwrap();
    // An unmatched callback carrying the canaries too.
    engine
        .signal(
            NewSignal::to_correlation(
                CorrelationKey::new("test.ref", "nobody").unwrap(),
                "otp-code",
                json!({"code": OTP, "mobileNo": MSISDN, "password": PIN}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let r = engine
        .wait_for(id, Duration::from_secs(10), |r| {
            r.status == Status::NeedsAttention
        })
        .await
        .unwrap();
    assert!(r.attention.is_some());

    let view = engine.show(id).await.unwrap();
    scan("show --json", &serde_json::to_string_pretty(&view).unwrap());
    scan("show (debug)", &format!("{view:?}"));
    let list = engine
        .list(&handover_engine::store::ListFilter {
            key: Some(MSISDN.into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(list.len(), 1, "searchable by the full MSISDN");
    scan("list --json", &serde_json::to_string(&list).unwrap());
    scan(
        "stuck --json",
        &serde_json::to_string(&engine.stuck(10).await.unwrap()).unwrap(),
    );
    let history: Vec<_> = engine.history(id, 100).await.unwrap();
    // History details (not the recorded states, which are redacted when shown) carry no secret.
    for h in &history {
        scan("history detail", &h.detail.to_string());
    }
    let counts = engine.store().count_by_status().await.unwrap();
    scan("/metrics", &engine.metrics().render(&counts));
    worker.shutdown(Duration::from_secs(5)).await;
    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).to_string();
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG") || logs.contains("WARN"),
        "logs were captured"
    );
    scan("logs at TRACE", &logs);
}

both!(no_canary_leaves_the_engine);
