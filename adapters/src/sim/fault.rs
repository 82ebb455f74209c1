//! Scriptable, deterministic faults for simulator endpoints.
//!
//! A [`FaultPlan`] decides, for every call to every endpoint, whether the simulator misbehaves
//! and how. Two ways, combinable:
//!
//! - **Script**: "the 3rd call to `chargRequest` gets a 504 after applying its effect"
//!   ([`FaultPlan::script`], [`FaultPlan::script_next`]). A scripted call ignores the rates.
//! - **Rates**: "5 % of calls get a 429 with `Retry-After: 1`" ([`FaultPlan::rate`],
//!   [`FaultPlan::chaos`]). The draw for call *n* of endpoint *e* depends only on the seed,
//!   *e* and *n*, so a run replays exactly given the same call order per endpoint.
//!
//! Handlers apply a fault at the right moment: faults for which [`Fault::after_effect`] is
//! false answer before touching state; the others let the request apply its effect (to the
//! [`Ledger`](super::Ledger)) and then spoil the answer. [`answer_fault`] turns a fault into
//! the HTTP answer, in the provider's own error format given by a [`FaultWire`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::Response;
use http::StatusCode;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::sim::server::{ConnHandle, lock};

/// How many applied faults a plan remembers for inspection.
pub const INJECTED_LOG_CAPACITY: usize = 1024;

/// Longest [`Fault::SlowAnswer`] delay honoured (one minute).
pub const MAX_SLOW_ANSWER: Duration = Duration::from_secs(60);

/// One way a simulator can misbehave on one call. Shared by all simulators; each maps it onto
/// its provider's wire format through [`FaultWire`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// 429 before any effect, with `Retry-After: retry_after_secs` when given.
    RateLimited {
        /// Seconds for the `Retry-After` header.
        retry_after_secs: Option<u64>,
    },
    /// 500 before any effect.
    InternalError,
    /// 502 before any effect.
    BadGateway,
    /// 503 before any effect, with `Retry-After` when given.
    Unavailable {
        /// Seconds for the `Retry-After` header.
        retry_after_secs: Option<u64>,
    },
    /// Answers 504. With `after_effect` the request is processed first (its effect is
    /// applied) and the gateway then gives up on it; without, nothing happens.
    GatewayTimeout {
        /// Whether the effect is applied before answering 504.
        after_effect: bool,
    },
    /// The request is processed normally (effect applied) but the answer is held for
    /// `delay_ms` (bounded by [`MAX_SLOW_ANSWER`]), past the client's timeout.
    SlowAnswer {
        /// How long to hold the answer.
        delay_ms: u64,
    },
    /// The connection is reset without any answer, after processing the request
    /// (`after_effect`) or before.
    DropConnection {
        /// Whether the effect is applied before dropping.
        after_effect: bool,
    },
    /// A provider-specific business refusal (insufficient balance, not eligible...), in the
    /// provider's wire format. No effect.
    Refusal {
        /// The provider's code.
        code: String,
        /// The provider's message.
        message: String,
    },
}

impl Fault {
    /// Whether the request's effect is applied before this fault spoils the answer.
    pub fn after_effect(&self) -> bool {
        match self {
            Fault::GatewayTimeout { after_effect } | Fault::DropConnection { after_effect } => {
                *after_effect
            }
            Fault::SlowAnswer { .. } => true,
            Fault::RateLimited { .. }
            | Fault::InternalError
            | Fault::BadGateway
            | Fault::Unavailable { .. }
            | Fault::Refusal { .. } => false,
        }
    }

    /// A refusal with this code and message.
    pub fn refusal(code: impl Into<String>, message: impl Into<String>) -> Self {
        Fault::Refusal {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// A fault that was applied, for inspection by tests and the demo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectedFault {
    /// The endpoint name.
    pub endpoint: &'static str,
    /// Which call to it (from 1).
    pub call: u64,
    /// The fault.
    pub fault: Fault,
}

/// Why a rate could not be added to a plan.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FaultPlanError {
    /// A probability outside `0.0..=1.0`.
    #[error("probability {0} is not between 0 and 1")]
    Probability(f64),
    /// The rates of one endpoint add up to more than 1.
    #[error("fault rates for {endpoint} add up to {total}, more than 1")]
    Total {
        /// The endpoint (`*` for all).
        endpoint: String,
        /// The sum.
        total: f64,
    },
}

/// Which endpoints a rate applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoints {
    /// Every endpoint of the simulator.
    All,
    /// One endpoint, by the simulator's name for it.
    Only(&'static str),
}

#[derive(Debug, Clone)]
struct Rate {
    endpoints: Endpoints,
    fault: Fault,
    probability: f64,
}

/// Deterministic fault schedule for one simulator.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    seed: u64,
    script: BTreeMap<(&'static str, u64), Fault>,
    rates: Vec<Rate>,
    calls: HashMap<&'static str, u64>,
    injected: Vec<InjectedFault>,
}

impl FaultPlan {
    /// A plan without faults; `seed` drives the rate draws added later.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            ..Self::default()
        }
    }

    /// The `call`-th call (from 1) to `endpoint` gets `fault`.
    pub fn script(mut self, endpoint: &'static str, call: u64, fault: Fault) -> Self {
        self.script.insert((endpoint, call.max(1)), fault);
        self
    }

    /// The next call to `endpoint` that has no scripted fault yet gets `fault`; repeated
    /// calls queue faults for consecutive calls.
    pub fn script_next(mut self, endpoint: &'static str, fault: Fault) -> Self {
        self.push_next(endpoint, fault);
        self
    }

    fn push_next(&mut self, endpoint: &'static str, fault: Fault) {
        let mut call = self.calls(endpoint) + 1;
        while self.script.contains_key(&(endpoint, call)) {
            call += 1;
        }
        self.script.insert((endpoint, call), fault);
    }

    /// `probability` of the calls to `endpoints` get `fault` (unless scripted).
    pub fn rate(
        mut self,
        endpoints: Endpoints,
        fault: Fault,
        probability: f64,
    ) -> Result<Self, FaultPlanError> {
        if !(0.0..=1.0).contains(&probability) {
            return Err(FaultPlanError::Probability(probability));
        }
        self.rates.push(Rate {
            endpoints,
            fault,
            probability,
        });
        // Every endpoint sees the All rates plus its own: check each combination.
        let all: f64 = self.total_for(None);
        let mut named: Vec<&'static str> = self
            .rates
            .iter()
            .filter_map(|r| match r.endpoints {
                Endpoints::Only(e) => Some(e),
                Endpoints::All => None,
            })
            .collect();
        named.sort_unstable();
        named.dedup();
        for endpoint in named {
            let total = self.total_for(Some(endpoint));
            if total > 1.0 + f64::EPSILON {
                return Err(FaultPlanError::Total {
                    endpoint: endpoint.to_owned(),
                    total,
                });
            }
        }
        if all > 1.0 + f64::EPSILON {
            return Err(FaultPlanError::Total {
                endpoint: "*".to_owned(),
                total: all,
            });
        }
        Ok(self)
    }

    fn total_for(&self, endpoint: Option<&str>) -> f64 {
        self.rates
            .iter()
            .filter(|r| match r.endpoints {
                Endpoints::All => true,
                Endpoints::Only(e) => Some(e) == endpoint,
            })
            .map(|r| r.probability)
            .sum()
    }

    /// The "chaos" mix used by soak tests and the demo, on every endpoint: 5 % 429
    /// (`Retry-After: 1`), 3 % 500, 2 % 503, 5 % 504 after the effect, 2 % 504 without it,
    /// 2 % slow answers of `slow_ms`, 1 % connection drops after the effect.
    pub fn chaos(seed: u64, slow_ms: u64) -> Self {
        let rates = [
            (
                Fault::RateLimited {
                    retry_after_secs: Some(1),
                },
                0.05,
            ),
            (Fault::InternalError, 0.03),
            (
                Fault::Unavailable {
                    retry_after_secs: None,
                },
                0.02,
            ),
            (Fault::GatewayTimeout { after_effect: true }, 0.05),
            (
                Fault::GatewayTimeout {
                    after_effect: false,
                },
                0.02,
            ),
            (Fault::SlowAnswer { delay_ms: slow_ms }, 0.02),
            (Fault::DropConnection { after_effect: true }, 0.01),
        ];
        let mut plan = Self::new(seed);
        // The fixed mix adds up to 0.20, so pushing directly cannot break the invariant.
        for (fault, probability) in rates {
            plan.rates.push(Rate {
                endpoints: Endpoints::All,
                fault,
                probability,
            });
        }
        plan
    }

    /// Decides the fault for the next call to `endpoint`, counting the call.
    pub fn next(&mut self, endpoint: &'static str) -> Option<Fault> {
        let call = {
            let n = self.calls.entry(endpoint).or_default();
            *n += 1;
            *n
        };
        let fault = match self.script.remove(&(endpoint, call)) {
            Some(fault) => Some(fault),
            None => self.draw(endpoint, call),
        };
        if let Some(fault) = &fault {
            if self.injected.len() == INJECTED_LOG_CAPACITY {
                self.injected.remove(0);
            }
            self.injected.push(InjectedFault {
                endpoint,
                call,
                fault: fault.clone(),
            });
            tracing::debug!(endpoint, call, ?fault, "simulator fault injected");
        }
        fault
    }

    fn draw(&self, endpoint: &'static str, call: u64) -> Option<Fault> {
        if self.rates.is_empty() {
            return None;
        }
        let mut rng = StdRng::seed_from_u64(mix(self.seed, fnv1a(endpoint), call));
        let x: f64 = rng.random();
        let mut cumulative = 0.0;
        for rate in &self.rates {
            let applies = match rate.endpoints {
                Endpoints::All => true,
                Endpoints::Only(e) => e == endpoint,
            };
            if !applies {
                continue;
            }
            cumulative += rate.probability;
            if x < cumulative {
                return Some(rate.fault.clone());
            }
        }
        None
    }

    /// How many calls `endpoint` has received under this plan.
    pub fn calls(&self, endpoint: &str) -> u64 {
        self.calls.get(endpoint).copied().unwrap_or(0)
    }

    /// The faults applied so far (the last [`INJECTED_LOG_CAPACITY`]).
    pub fn injected(&self) -> &[InjectedFault] {
        &self.injected
    }
}

/// Stable 64-bit FNV-1a: endpoint names must hash the same in every build.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// SplitMix64 finalizer over the three inputs.
fn mix(seed: u64, endpoint: u64, call: u64) -> u64 {
    let mut z = seed ^ endpoint.rotate_left(17) ^ call.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A running simulator's fault plan, shared between its handlers and its handle.
#[derive(Debug, Clone, Default)]
pub struct FaultControl {
    plan: Arc<Mutex<FaultPlan>>,
}

impl FaultControl {
    /// Wraps a plan.
    pub fn new(plan: FaultPlan) -> Self {
        Self {
            plan: Arc::new(Mutex::new(plan)),
        }
    }

    /// Replaces the plan (call counts restart).
    pub fn set(&self, plan: FaultPlan) {
        *lock(&self.plan) = plan;
    }

    /// The next call to `endpoint` without a scripted fault gets `fault`.
    pub fn script_next(&self, endpoint: &'static str, fault: Fault) {
        lock(&self.plan).push_next(endpoint, fault);
    }

    /// Removes every scripted fault and rate; call counts are kept.
    pub fn clear(&self) {
        let mut plan = lock(&self.plan);
        plan.script.clear();
        plan.rates.clear();
    }

    /// Decides the fault for the next call to `endpoint` (used by handlers).
    pub fn next(&self, endpoint: &'static str) -> Option<Fault> {
        lock(&self.plan).next(endpoint)
    }

    /// The faults applied so far.
    pub fn injected(&self) -> Vec<InjectedFault> {
        lock(&self.plan).injected().to_vec()
    }

    /// How many calls `endpoint` has received.
    pub fn calls(&self, endpoint: &str) -> u64 {
        lock(&self.plan).calls(endpoint)
    }
}

/// A provider's error format, used by [`answer_fault`].
pub trait FaultWire {
    /// An error answer with this status (429, 500, 502, 503, 504) and optional
    /// `Retry-After` seconds, shaped like the provider's (or its gateway's) errors.
    fn error(&self, status: StatusCode, retry_after_secs: Option<u64>) -> Response;
    /// A business refusal with the provider's code and message.
    fn refusal(&self, code: &str, message: &str) -> Response;
}

/// Turns `fault` into the handler's answer. `normal` is the answer the handler would have
/// given (used by [`Fault::SlowAnswer`]); pass `None` for faults applied before processing.
pub async fn answer_fault(
    fault: &Fault,
    conn: &ConnHandle,
    normal: Option<Response>,
    wire: &impl FaultWire,
) -> Response {
    match fault {
        Fault::RateLimited { retry_after_secs } => {
            wire.error(StatusCode::TOO_MANY_REQUESTS, *retry_after_secs)
        }
        Fault::InternalError => wire.error(StatusCode::INTERNAL_SERVER_ERROR, None),
        Fault::BadGateway => wire.error(StatusCode::BAD_GATEWAY, None),
        Fault::Unavailable { retry_after_secs } => {
            wire.error(StatusCode::SERVICE_UNAVAILABLE, *retry_after_secs)
        }
        Fault::GatewayTimeout { .. } => wire.error(StatusCode::GATEWAY_TIMEOUT, None),
        Fault::SlowAnswer { delay_ms } => {
            tokio::time::sleep(Duration::from_millis(*delay_ms).min(MAX_SLOW_ANSWER)).await;
            normal.unwrap_or_else(|| wire.error(StatusCode::GATEWAY_TIMEOUT, None))
        }
        Fault::DropConnection { .. } => {
            conn.kill();
            // Never delivered: the write fails and the connection is reset.
            wire.error(StatusCode::INTERNAL_SERVER_ERROR, None)
        }
        Fault::Refusal { code, message } => wire.refusal(code, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripted_faults_hit_exactly_their_call() {
        let mut plan = FaultPlan::new(1)
            .script("a", 2, Fault::InternalError)
            .script_next("b", Fault::BadGateway)
            .script_next("b", Fault::InternalError);
        assert_eq!(plan.next("a"), None);
        assert_eq!(plan.next("a"), Some(Fault::InternalError));
        assert_eq!(plan.next("a"), None);
        assert_eq!(plan.next("b"), Some(Fault::BadGateway));
        assert_eq!(plan.next("b"), Some(Fault::InternalError));
        assert_eq!(plan.next("b"), None);
        assert_eq!(plan.calls("a"), 3);
        assert_eq!(plan.injected().len(), 3);
        assert_eq!(plan.injected()[0].call, 2);
    }

    #[test]
    fn rates_are_deterministic_per_seed_and_roughly_right() {
        let run = |seed| {
            let mut plan = FaultPlan::new(seed)
                .rate(Endpoints::All, Fault::InternalError, 0.10)
                .unwrap()
                .rate(
                    Endpoints::Only("x"),
                    Fault::RateLimited {
                        retry_after_secs: Some(1),
                    },
                    0.20,
                )
                .unwrap();
            (0..2000).map(|_| plan.next("x")).collect::<Vec<_>>()
        };
        let a = run(42);
        assert_eq!(a, run(42), "same seed, same faults");
        assert_ne!(a, run(43), "another seed, other faults");
        let errors = a
            .iter()
            .filter(|f| **f == Some(Fault::InternalError))
            .count();
        let limited = a
            .iter()
            .filter(|f| matches!(f, Some(Fault::RateLimited { .. })))
            .count();
        assert!((140..260).contains(&errors), "{errors}");
        assert!((320..480).contains(&limited), "{limited}");
    }

    #[test]
    fn draws_do_not_depend_on_other_endpoints() {
        let base = FaultPlan::new(7)
            .rate(Endpoints::All, Fault::InternalError, 0.3)
            .unwrap();
        let mut alone = base.clone();
        let mut interleaved = base;
        let only: Vec<_> = (0..200).map(|_| alone.next("x")).collect();
        let mixed: Vec<_> = (0..200)
            .map(|_| {
                interleaved.next("y");
                interleaved.next("x")
            })
            .collect();
        assert_eq!(only, mixed);
    }

    #[test]
    fn rates_are_validated() {
        assert_eq!(
            FaultPlan::new(0)
                .rate(Endpoints::All, Fault::InternalError, 1.5)
                .unwrap_err(),
            FaultPlanError::Probability(1.5)
        );
        let err = FaultPlan::new(0)
            .rate(Endpoints::All, Fault::InternalError, 0.6)
            .unwrap()
            .rate(Endpoints::Only("x"), Fault::BadGateway, 0.6)
            .unwrap_err();
        assert!(matches!(err, FaultPlanError::Total { .. }), "{err}");
    }

    #[test]
    fn chaos_mix_injects_every_kind() {
        let mut plan = FaultPlan::chaos(3, 10);
        let faults: Vec<Fault> = (0..3000).filter_map(|_| plan.next("e")).collect();
        let share = faults.len() as f64 / 3000.0;
        assert!((0.15..0.25).contains(&share), "{share}");
        assert!(faults.iter().any(|f| f.after_effect()));
        assert!(faults.iter().any(|f| !f.after_effect()));
        assert!(
            faults
                .iter()
                .any(|f| matches!(f, Fault::DropConnection { .. }))
        );
    }
}
