//! Offline verification cost: ns per `Verifier::verify` of a live access token, HS256 and
//! EdDSA, on one core, against a real jwtd (SQLite, in process) for the JWKS and the feed.
//!
//! `cargo run -p jwtd-verifier --profile bench-verifier --example verify_bench`

use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use jwtd_test_support::{Backend, TestApp};
use jwtd_verifier::Verifier;

const ROUNDS: u32 = 200_000;

async fn measure(app: &TestApp, hmac: bool) -> f64 {
    let client = app
        .register_client(&["client_credentials"], &["revocations:read"])
        .await;
    let mut builder = Verifier::builder(&app.address)
        .client_credentials(&client.id, &client.secret)
        .max_staleness(Duration::from_secs(60));
    if hmac {
        builder = builder.hmac_secret(app.state.settings.jwt.hmac_secret());
    }
    let verifier = builder.start().unwrap();
    assert!(verifier.ready(Duration::from_secs(20)).await);
    let user = app.create_user().await;
    let (access, _) = app.login(&user).await;
    verifier.verify(&access).unwrap();
    let started = Instant::now();
    for _ in 0..ROUNDS {
        std::hint::black_box(verifier.verify(std::hint::black_box(&access)).unwrap());
    }
    started.elapsed().as_nanos() as f64 / f64::from(ROUNDS)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let hs = TestApp::spawn(Backend::Sqlite).await;
    println!("HS256: {:.0} ns/token", measure(&hs, true).await);
    let dir = tempfile::tempdir().unwrap();
    let pair = jwtd::token::keygen::generate_key_pair(Algorithm::EdDSA, 2048).unwrap();
    let private = dir.path().join("ed.pem");
    std::fs::write(&private, pair.private_pem).unwrap();
    let ed = TestApp::spawn_with(Backend::Sqlite, move |settings| {
        settings.jwt.algorithm = "EdDSA".parse().unwrap();
        settings.jwt.private_key_file = Some(private);
    })
    .await;
    println!("EdDSA: {:.0} ns/token", measure(&ed, false).await);
}
