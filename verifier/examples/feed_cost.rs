//! The feed's cost on jwtd and its latency, against a real jwtd (SQLite, in process):
//! `POST /api/token/verify/` requests per second alone and while 100 verifiers long-poll, and
//! revocation-to-refusal latency (p50, p99) at a verifier under a steady stream of revocations.
//!
//! `cargo run -p jwtd-verifier --profile bench-verifier --example feed_cost`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jwtd_test_support::{Backend, TestApp};
use jwtd_verifier::{Verifier, VerifyError};
use serde_json::json;

const WINDOW: Duration = Duration::from_secs(5);

async fn verify_rate(app: &TestApp, token: &str) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + WINDOW;
    let workers = (0..16).map(|_| {
        let (client, url, done) = (
            app.client.clone(),
            app.url("/api/token/verify/"),
            done.clone(),
        );
        let body = json!({ "token": token });
        tokio::spawn(async move {
            while Instant::now() < deadline {
                let response = client.post(&url).json(&body).send().await.unwrap();
                assert!(response.status().is_success());
                done.fetch_add(1, Ordering::Relaxed);
            }
        })
    });
    for worker in workers.collect::<Vec<_>>() {
        worker.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / WINDOW.as_secs_f64()
}

async fn verifier(app: &TestApp) -> Verifier {
    let client = app
        .register_client(&["client_credentials"], &["revocations:read"])
        .await;
    Verifier::builder(&app.address)
        .client_credentials(&client.id, &client.secret)
        .hmac_secret(app.state.settings.jwt.hmac_secret())
        .start()
        .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let user = app.create_user().await;
    let (access, _) = app.login(&user).await;
    let alone = verify_rate(&app, &access).await;
    let mut verifiers = Vec::new();
    for _ in 0..100 {
        verifiers.push(verifier(&app).await);
    }
    for verifier in &verifiers {
        assert!(verifier.ready(Duration::from_secs(30)).await);
    }
    let polled = verify_rate(&app, &access).await;
    println!(
        "verify: {alone:.0} req/s alone, {polled:.0} req/s with 100 verifiers long-polling ({:+.1}%)",
        (polled / alone - 1.0) * 100.0
    );

    let watcher = &verifiers[0];
    let mut latencies = Vec::new();
    for _ in 0..100 {
        let (access, refresh) = app.login(&user).await;
        assert!(app.blacklist(&refresh).await.status().is_success());
        let returned = Instant::now();
        while watcher.verify(&access) != Err(VerifyError::Revoked) {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        latencies.push(returned.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies.sort();
    println!(
        "revocation to refusal: p50 {:?}, p99 {:?} (100 blacklists, 100 verifiers following)",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
}
