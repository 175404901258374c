//! What operators rely on: metrics, request ids, limits on slow or bloated clients, and a
//! graceful stop.

use std::time::Duration;

use jwtd::{App, Settings};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use jwtd::store::sessions::LoginContext;

use jwtd_test_support::{Backend, PASSWORD, TestApp, expect_error, expect_status};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_tokens_failures_and_reuse() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let user = app.create_user().await;
    let (_, refresh) = app.login(&user).await;
    let wrong = json!({"username": user.username, "password": "not the password"});
    expect_status(
        app.post_json("/api/token/", &wrong).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    expect_status(app.refresh(&refresh).await, StatusCode::OK).await;
    // The spent token again: reuse, and its session is revoked.
    expect_status(app.refresh(&refresh).await, StatusCode::UNAUTHORIZED).await;
    let (_, second) = app.login(&user).await;
    expect_status(app.blacklist(&second).await, StatusCode::OK).await;

    let response = app.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    for (sample, expected) in [
        (r#"jwtd_tokens_issued_total{grant="password"}"#, 2.0),
        (
            r#"jwtd_login_failures_total{reason="invalid_credentials"}"#,
            1.0,
        ),
        ("jwtd_tokens_refreshed_total", 1.0),
        ("jwtd_refresh_reuse_detected_total", 1.0),
        (r#"jwtd_tokens_revoked_total{reason="reuse"}"#, 1.0),
        (r#"jwtd_tokens_revoked_total{reason="logout"}"#, 1.0),
        (
            r#"jwtd_http_requests_total{operation="token_obtain",method="POST",status="200"}"#,
            2.0,
        ),
        (
            r#"jwtd_http_requests_total{operation="token_obtain",method="POST",status="401"}"#,
            1.0,
        ),
        (
            r#"jwtd_http_requests_total{operation="token_refresh",method="POST",status="401"}"#,
            1.0,
        ),
        (
            r#"jwtd_http_request_duration_seconds_count{operation="token_refresh"}"#,
            2.0,
        ),
    ] {
        assert_eq!(app.metric(sample).await, expected, "{sample}");
    }
    // Probing random paths adds no series of its own.
    app.get("/wp-admin/setup.php").await;
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(!text.contains("wp-admin"));
    assert!(text.contains(r#"operation="unmatched",method="GET",status="404""#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_a_request_id_and_a_plain_caller_id_is_kept() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let made = app.get("/health/live").await;
    let id = made.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    let again = app.get("/health/live").await;
    assert_ne!(again.headers()["x-request-id"], id.as_str());

    let kept = app
        .client
        .post(app.url("/api/token/verify/"))
        .header("x-request-id", "edge-42.a_b")
        .json(&json!({"token": "not a token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(kept.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(kept.headers()["x-request-id"], "edge-42.a_b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_get_431_and_large_ones_within_the_limit_pass() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let within = app
        .client
        .get(app.url("/health/live"))
        .header("cookie", "c".repeat(12_000))
        .send()
        .await
        .unwrap();
    assert_eq!(within.status(), StatusCode::OK);

    let beyond = app
        .client
        .post(app.url("/api/token/"))
        .header("cookie", "c".repeat(8_000))
        .header("x-padding", "p".repeat(9_000))
        .json(&json!({"username": "a", "password": "b"}))
        .send()
        .await
        .unwrap();
    expect_error(
        beyond,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "headers_too_large",
        "The request line and headers are larger than 16384 bytes.",
    )
    .await;
}

/// Sends `head` (and whatever body bytes it holds) on a fresh connection, then waits for the
/// server to answer and close, without sending anything more.
async fn send_and_read_until_closed(port: u16, head: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection")
        .unwrap();
    String::from_utf8(answer).unwrap()
}

fn port_of(app: &TestApp) -> u16 {
    app.address.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_sending_its_body_gets_408_and_others_are_served_meanwhile() {
    let app = TestApp::spawn_with(Backend::Sqlite, |settings| {
        settings.server.request_timeout = Duration::from_secs(2);
    })
    .await;
    let user = app.create_user().await;
    // Issued outside HTTP: a login (argon2 at low priority) may itself outlast the short timeout
    // on a loaded machine, and is not what this test is about.
    let context = LoginContext {
        user_agent: "test".into(),
        client_address: "127.0.0.1".into(),
    };
    let pair = app
        .state
        .flows
        .login
        .obtain(&user.username, PASSWORD.into(), context)
        .await
        .unwrap();
    let head = "POST /api/token/ HTTP/1.1\r\nHost: jwtd\r\nContent-Type: application/json\r\n\
                Content-Length: 200\r\n\r\n{\"username\":";
    let slow = tokio::spawn(send_and_read_until_closed(port_of(&app), head));
    // While that client stalls, others get their answers.
    expect_status(app.verify(&pair.access).await, StatusCode::OK).await;

    let answer = slow.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["code"], "request_timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let app = TestApp::spawn_with(Backend::Sqlite, |settings| {
        settings.server.idle_timeout = Duration::from_millis(300);
    })
    .await;
    let answer = send_and_read_until_closed(port_of(&app), "").await;
    assert_eq!(answer, "");
}

/// A request on its way is not idle: a body that pauses for longer than the idle timeout still
/// gets its answer (the request timeout bounds such a client). The pause is real time, on the
/// wire, which is what the idle timeout watches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_paused_longer_than_the_idle_timeout_is_still_answered() {
    let app = TestApp::spawn_with(Backend::Sqlite, |settings| {
        settings.server.idle_timeout = Duration::from_millis(200);
    })
    .await;
    let body = r#"{"token":"not-a-token"}"#;
    let (first, rest) = body.split_at(10);
    let mut stream = TcpStream::connect(("127.0.0.1", port_of(&app)))
        .await
        .unwrap();
    let head = format!(
        "POST /api/token/verify/ HTTP/1.1\r\nHost: jwtd\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{first}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    stream.write_all(rest.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes")
        .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer:?}");
    assert!(answer.contains("token_not_valid"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_accepting_finishes_the_request_in_flight_and_closes_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::defaults();
    settings.server.bind = "127.0.0.1:0".into();
    settings.database.url =
        format!("sqlite://{}?mode=rwc", dir.path().join("j.db").display()).into();
    let app = App::build(settings).await.unwrap();
    let (port, state) = (app.port(), app.state().clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        stopped.await.ok();
    }));
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let login = json!({"username": "nobody", "password": PASSWORD});
    let answer = client
        .post(format!("{base}/api/token/"))
        .json(&login)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);

    // A request whose head has arrived and whose body is still on its way. The server's
    // `100 Continue` shows the handler has started reading the body.
    let body = login.to_string();
    let mut in_flight = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let head = format!(
        "POST /api/token/ HTTP/1.1\r\nHost: jwtd\r\nContent-Type: application/json\r\n\
         Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    in_flight.write_all(head.as_bytes()).await.unwrap();
    let mut interim = Vec::new();
    while !interim.ends_with(b"\r\n\r\n") {
        interim.push(in_flight.read_u8().await.unwrap());
    }
    assert!(interim.starts_with(b"HTTP/1.1 100"), "{interim:?}");

    stop.send(()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "still accepting");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    in_flight.write_all(body.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    in_flight.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("no_active_account"), "{answer}");

    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server stops once its last request is answered")
        .unwrap()
        .unwrap();
    assert!(state.db.ping().await.is_err(), "the pool is closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_beyond_the_hashing_slots_wait_briefly_then_get_503_not_counted_as_store_errors() {
    let app = TestApp::spawn_with(Backend::Sqlite, |settings| {
        settings.password.max_concurrent_hashes = 1;
        // Far shorter than one hash: every login that has to queue gives up.
        settings.password.hash_queue_timeout = Duration::from_millis(1);
    })
    .await;
    let user = app.create_user().await;
    let wrong = json!({"username": user.username, "password": "not the password"});
    let attempts = (0..8).map(|_| app.post_json("/api/token/", &wrong));
    let mut busy = 0;
    for response in futures::future::join_all(attempts).await {
        match response.status() {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                busy += 1;
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["code"], "unavailable");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(busy >= 1, "no login was turned away");
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(!text.contains("jwtd_store_errors_total{"), "{text}");
}
