//! A complete small service that trusts jwtd's tokens without calling jwtd per request:
//! `GET /orders` for any live token, `POST /orders` for tokens with `orders.change`.
//!
//! ```sh
//! jwtd clients create --name orders --grant client_credentials --scope revocations:read
//! JWTD_URL=http://127.0.0.1:8000 CLIENT_ID=… CLIENT_SECRET=… JWTD_HMAC_SECRET=… \
//!     cargo run -p jwtd-verifier --features poem --example service
//! ```

use std::time::Duration;

use jwtd_verifier::Verifier;
use jwtd_verifier::poem::{VerifiedClaims, VerifyTokens};
use poem::listener::TcpListener;
use poem::{EndpointExt, Route, Server, get, handler, post};

#[handler]
fn list(claims: VerifiedClaims) -> String {
    format!("orders of {}", claims.0.sub)
}

#[handler]
fn create(claims: VerifiedClaims) -> poem::Result<String> {
    claims.require("orders.change")?;
    Ok(format!("order created by {}", claims.0.sub))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let mut builder = Verifier::builder(&var("JWTD_URL"))
        .client_credentials(&var("CLIENT_ID"), &var("CLIENT_SECRET"))
        .max_staleness(Duration::from_secs(5))
        .on_update(|metrics| {
            // Export `last_event_age` as a gauge here.
            let _ = metrics.last_event_age;
        });
    if let Ok(secret) = std::env::var("JWTD_HMAC_SECRET") {
        builder = builder.hmac_secret(secret);
    }
    let verifier = builder.start()?;
    if !verifier.ready(Duration::from_secs(10)).await {
        eprintln!("jwtd is not answering yet: every token is refused until it does");
    }
    let app = Route::new()
        .at("/orders", get(list).post(create))
        .at("/orders/new", post(create))
        .with(VerifyTokens(verifier));
    Server::new(TcpListener::bind("127.0.0.1:3000"))
        .run(app)
        .await?;
    Ok(())
}
