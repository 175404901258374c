//! Fail closed while Redis or PostgreSQL is gone, recover by itself when it is back, lose
//! nothing written.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use jwtd_test_support::{
    Backend, PASSWORD, PostgresServer, RedisServer, TestApp, expect_error, expect_status,
    expect_token_error,
};

const UNAVAILABLE: &str = "Service temporarily unavailable, try again later.";
const LEASE_HITS: &str = r#"jwtd_revocation_lookups_total{answered="lease"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_503_then_recovers_without_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start(Some(data.path()));
    let app = TestApp::spawn_on_redis(&redis).await;
    let user = app.create_user().await;
    let (access, refresh) = app.login(&user).await;
    let (revoked_access, revoked_refresh) = app.login(&user).await;
    expect_status(app.blacklist(&revoked_refresh).await, StatusCode::OK).await;
    // Verified until it is answered under the instance's revocation lease.
    let (leased_access, _) = app.login(&user).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.metric(LEASE_HITS).await < 1.0 {
        assert!(Instant::now() < deadline, "no lease within 10 s");
        expect_status(app.verify(&leased_access).await, StatusCode::OK).await;
    }

    redis.stop();
    for response in [
        app.verify(&access).await,
        app.refresh(&refresh).await,
        app.blacklist(&refresh).await,
        app.verify(&revoked_access).await,
    ] {
        expect_unavailable(response).await;
    }
    expect_not_ready(&app, "revocation_store").await;
    // The lease is not renewed, so it ends within itself (50 ms): then 503 like the rest.
    let deadline = Instant::now() + Duration::from_secs(2);
    while app.verify(&leased_access).await.status() == StatusCode::OK {
        assert!(
            Instant::now() < deadline,
            "still answered from a lease 2 s after"
        );
    }
    expect_unavailable(app.verify(&leased_access).await).await;

    redis.restart();
    wait_for_recovery(&app, &access).await;
    expect_token_error(app.verify(&revoked_access).await, "Token is blacklisted").await;
    expect_status(app.refresh(&refresh).await, StatusCode::OK).await;
    expect_status(app.get("/health/ready").await, StatusCode::OK).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_is_503_then_recovers_without_a_restart() {
    let postgres = PostgresServer::start();
    let app = TestApp::spawn_with(Backend::Sqlite, |settings| {
        settings.database.url = postgres.url().into();
        settings.database.acquire_timeout = Duration::from_secs(1);
    })
    .await;
    let user = app.create_user().await;
    let (access, refresh) = app.login(&user).await;
    let (revoked_access, revoked_refresh) = app.login(&user).await;
    expect_status(app.blacklist(&revoked_refresh).await, StatusCode::OK).await;

    postgres.stop();
    for response in [
        app.verify(&access).await,
        app.refresh(&refresh).await,
        app.verify(&revoked_access).await,
        app.blacklist(&refresh).await,
        app.post_json(
            "/api/token/",
            &serde_json::json!({"username": user.username, "password": PASSWORD}),
        )
        .await,
    ] {
        expect_unavailable(response).await;
    }
    expect_not_ready(&app, "database").await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"jwtd_store_errors_total{operation="token_verify"} 2"#),
        "{metrics}"
    );

    postgres.restart();
    wait_for_recovery(&app, &access).await;
    expect_token_error(app.verify(&revoked_access).await, "Token is blacklisted").await;
    expect_status(app.refresh(&refresh).await, StatusCode::OK).await;
    app.login(&user).await;
    expect_status(app.get("/health/ready").await, StatusCode::OK).await;
}

/// Polls verify until it is 200 again; every answer before that must be a 503.
async fn wait_for_recovery(app: &TestApp, access: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = app.verify(access).await.status();
        if status == StatusCode::OK {
            return;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            Instant::now() < deadline,
            "no recovery 20 s after the store came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn expect_unavailable(response: reqwest::Response) {
    expect_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        UNAVAILABLE,
    )
    .await;
}

/// `/health/ready` answers 503 and names `check` as unavailable.
async fn expect_not_ready(app: &TestApp, check: &str) {
    let ready = expect_status(
        app.get("/health/ready").await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(ready["checks"][check], "unavailable", "{ready}");
}
