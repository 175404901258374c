//! The baseline: a minimal poem server that parses the same JSON body as jwtd's verify and
//! answers a small JSON body, with no token work. jwtd's figures are read as ratios to it.

use poem::listener::TcpListener;
use poem::web::Json;
use poem::{Route, Server, handler, post};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct VerifyRequest {
    token: String,
}

#[handler]
fn verify(Json(body): Json<VerifyRequest>) -> Json<Value> {
    std::hint::black_box(body.token);
    Json(json!({}))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let bind = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8100".into());
    let app = Route::new()
        .at("/api/token/verify", post(verify))
        .at("/api/token/verify/", post(verify));
    Server::new(TcpListener::bind(bind)).run(app).await
}
