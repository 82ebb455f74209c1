//! Embed Handover in an existing axum service: your own routes, the
//! engine's callback ingress and its admin API, one tokio runtime and one
//! database pool.
//!
//! ```sh
//! cargo run --example embed_in_axum
//! ```
//!
//! The service has its own `POST /orders` route (which writes its own table
//! through the engine's pool and starts a journey) and mounts:
//! - the ingress (`handover::workflows::ingress::router`): provider callbacks
//!   and `POST /journeys/{id}/signals/{name}` for customer apps, on the public
//!   listener;
//! - the admin API and `/metrics` (`handover::engine::api::router`) on a
//!   second, private listener.
//!
//! It then plays a client: places an order, pays it through the signal route,
//! and reads the journey back from the admin API.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use handover::engine::api::{self, AdminConfig};
use handover::engine::store::SqliteStore;
use handover::engine::{
    InvalidInput, Start, Status, StepCtx, StepError, StepInfo, Transition, Wait, Workflow,
};
use handover::workflows::ingress::{self, IngressSettings};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// A journey of the embedding service: wait for the payment, then ship.
#[derive(Debug, Clone)]
struct Order;

#[derive(Debug, Serialize, Deserialize)]
enum OrderState {
    AwaitPayment { order_id: String },
    Ship { order_id: String },
}

impl Workflow for Order {
    const NAME: &'static str = "shop.order";
    type Input = String;
    type State = OrderState;
    type Output = String;
    type Compensation = handover::engine::NoCompensation;

    fn start(&self, order_id: String) -> Result<Start<OrderState>, InvalidInput> {
        Ok(Start::new(OrderState::AwaitPayment { order_id }))
    }

    fn step_info(&self, state: &OrderState) -> StepInfo {
        match state {
            OrderState::AwaitPayment { .. } => StepInfo::new("await-payment"),
            OrderState::Ship { .. } => StepInfo::new("ship"),
        }
    }

    async fn step(
        &self,
        state: OrderState,
        ctx: &mut StepCtx<Self>,
    ) -> Result<Transition<OrderState, String>, StepError> {
        Ok(match state {
            OrderState::AwaitPayment { order_id } => {
                if ctx.signal().is_some() {
                    Transition::next(OrderState::Ship { order_id })
                } else {
                    Transition::wait(
                        OrderState::AwaitPayment { order_id },
                        Wait::for_signal("paid"),
                    )
                }
            }
            OrderState::Ship { order_id } => Transition::complete(format!("{order_id} shipped")),
        })
    }
}

#[derive(Clone)]
struct App {
    engine: handover::Engine,
    pool: sqlx::SqlitePool,
}

/// The service's own route: records the order in its own table (same pool
/// as the engine) and starts its journey.
async fn place_order(
    State(app): State<App>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, (StatusCode, String)> {
    let order_id = body["order_id"]
        .as_str()
        .ok_or((StatusCode::BAD_REQUEST, "order_id is required".into()))?
        .to_owned();
    let internal = |e: String| (StatusCode::SERVICE_UNAVAILABLE, e);
    sqlx::query("INSERT INTO shop_orders (id) VALUES (?)")
        .bind(&order_id)
        .execute(&app.pool)
        .await
        .map_err(|e| internal(e.to_string()))?;
    let journey = app
        .engine
        .start::<Order>(order_id)
        .await
        .map_err(|e| internal(e.to_string()))?;
    Ok(Json(json!({ "journey": journey.to_string() })))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("shop.db").display());
    // One store, one pool: the service's tables live beside the engine's.
    let store = SqliteStore::connect(&url).await?;
    let pool = store.pool().clone();
    sqlx::query("CREATE TABLE IF NOT EXISTS shop_orders (id TEXT PRIMARY KEY)")
        .execute(&pool)
        .await?;
    let engine = handover::Engine::builder(Arc::new(store))
        .register(Order)
        .build()
        .await?;
    let worker = engine.run_worker();

    // Tokens would come from your secret store; never from source in production.
    let app_token = "example-app-token";
    let admin_token = "example-admin-token";
    let settings = IngressSettings {
        app_tokens: vec![SecretString::from(app_token)],
        ..IngressSettings::default()
    };
    let public = Router::new()
        .route("/orders", post(place_order))
        .with_state(App {
            engine: engine.clone(),
            pool,
        })
        .merge(ingress::router(engine.clone(), &settings));
    let admin = api::router(
        engine.clone(),
        &AdminConfig {
            tokens: vec![SecretString::from(admin_token)],
        },
    );
    let public_listener = TcpListener::bind("127.0.0.1:0").await?;
    let admin_listener = TcpListener::bind("127.0.0.1:0").await?;
    let public_url = format!("http://{}", public_listener.local_addr()?);
    let admin_url = format!("http://{}", admin_listener.local_addr()?);
    tokio::spawn(async move { axum::serve(public_listener, public).await });
    tokio::spawn(async move { axum::serve(admin_listener, admin).await });
    println!("service: {public_url}  admin: {admin_url}");

    // Play a client of the service.
    let http = reqwest::Client::new();
    let placed: Value = http
        .post(format!("{public_url}/orders"))
        .json(&json!({ "order_id": "ORD-1001" }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let journey = placed["journey"].as_str().context("a journey id")?;
    println!("placed ORD-1001: journey {journey}");

    let paid = http
        .post(format!("{public_url}/journeys/{journey}/signals/paid"))
        .bearer_auth(app_token)
        .header("Idempotency-Key", "payment-ORD-1001")
        .json(&json!({ "amount": "25.00" }))
        .send()
        .await?;
    println!("payment signal: {}", paid.status());

    let id = journey.parse().context("a journey id")?;
    let done = engine
        .wait_for(id, Duration::from_secs(10), |r| r.status.is_terminal())
        .await?;
    anyhow::ensure!(
        done.status == Status::Completed,
        "the order did not complete"
    );

    let shown: Value = http
        .get(format!("{admin_url}/admin/journeys/{journey}"))
        .bearer_auth(admin_token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    println!(
        "admin API: {} is {}",
        journey,
        shown["journey"]["status"]
            .as_str()
            .or(shown["status"].as_str())
            .unwrap_or("?")
    );
    worker.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
