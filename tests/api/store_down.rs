//! Fail closed while Redis is gone, recover by itself when it is back, lose nothing written.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::{RedisServer, TestApp, expect_error, expect_status, expect_token_error};

const UNAVAILABLE: &str = "Service temporarily unavailable, try again later.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_503_then_recovers_without_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start(Some(data.path()));
    let app = TestApp::spawn_on_redis(&redis).await;
    let user = app.create_user().await;
    let (access, refresh) = app.login(&user).await;
    let (revoked_access, revoked_refresh) = app.login(&user).await;
    expect_status(app.blacklist(&revoked_refresh).await, StatusCode::OK).await;

    redis.stop();
    for response in [
        app.verify(&access).await,
        app.refresh(&refresh).await,
        app.blacklist(&refresh).await,
        app.verify(&revoked_access).await,
    ] {
        expect_error(
            response,
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            UNAVAILABLE,
        )
        .await;
    }
    let ready = expect_status(
        app.get("/health/ready").await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(ready["checks"]["revocation_store"], "unavailable");

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = app.verify(&access).await.status();
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            Instant::now() < deadline,
            "no recovery 15 s after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    expect_token_error(app.verify(&revoked_access).await, "Token is blacklisted").await;
    expect_status(app.refresh(&refresh).await, StatusCode::OK).await;
    expect_status(app.get("/health/ready").await, StatusCode::OK).await;
}
