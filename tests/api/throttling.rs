//! Login throttling: per-account back-off that looks like a wrong password, a per-address
//! limit answering 429, shared counters that stay exact under concurrency, and forwarding
//! headers believed only from trusted proxies.

use std::time::Duration;

use jwtd::Settings;
use reqwest::StatusCode;
use serde_json::{Value, json};

use jwtd_test_support::{
    Backend, PASSWORD, TestApp, expect_error, expect_oauth_error, expect_status, expect_throttled,
    on_every_store,
};

on_every_store!(
    a_hundred_parallel_bad_logins_are_all_counted,
    a_locked_account_answers_the_right_password_like_a_wrong_one,
    the_address_limit_answers_429_with_retry_after,
    a_forged_forwarded_for_changes_nothing_unless_the_proxy_is_trusted
);

async fn login_as(app: &TestApp, username: &str, password: &str) -> reqwest::Response {
    app.post_json(
        "/api/token/",
        &json!({ "username": username, "password": password }),
    )
    .await
}

async fn expect_no_active_account(response: reqwest::Response) -> Value {
    expect_error(
        response,
        StatusCode::UNAUTHORIZED,
        "no_active_account",
        "No active account found with the given credentials",
    )
    .await
}

fn account_limits(settings: &mut Settings, free_failures: u32) {
    settings.throttle.account_free_failures = free_failures;
    settings.throttle.account_backoff = Duration::from_secs(60);
    settings.throttle.account_backoff_max = Duration::from_secs(600);
}

async fn a_hundred_parallel_bad_logins_are_all_counted(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| {
        account_limits(settings, 1_000);
    })
    .await;
    let user = app.create_user().await;
    let passwords: Vec<String> = (0..100).map(|n| format!("wrong {n}")).collect();
    let attempts = passwords
        .iter()
        .map(|password| login_as(&app, &user.username, password));
    for response in futures::future::join_all(attempts).await {
        expect_no_active_account(response).await;
    }
    let throttle = &app.state.throttle;
    let failures = throttle
        .failures(&throttle.account(&user.username))
        .await
        .unwrap();
    assert_eq!(failures, 100);
    // A successful login clears them.
    expect_status(
        login_as(&app, &user.username, PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    let failures = throttle
        .failures(&throttle.account(&user.username))
        .await
        .unwrap();
    assert_eq!(failures, 0);
}

async fn a_locked_account_answers_the_right_password_like_a_wrong_one(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| account_limits(settings, 3)).await;
    let user = app.create_user().await;
    let mut wrong_answers = Vec::new();
    for n in 0..4 {
        wrong_answers.push(
            expect_no_active_account(login_as(&app, &user.username, &format!("wrong {n}")).await)
                .await,
        );
    }
    // The fourth failure locked the account: the right password gets the very same answer.
    let locked = expect_no_active_account(login_as(&app, &user.username, PASSWORD).await).await;
    assert_eq!(locked, wrong_answers[0]);
    // Another account is not affected, and neither is an unknown one's answer.
    let other = app.create_user().await;
    expect_status(
        login_as(&app, &other.username, PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    // Case and compatibility forms of the username share the account's counters.
    let shouted = user.username.to_uppercase();
    expect_no_active_account(login_as(&app, &shouted, PASSWORD).await).await;

    if backend == Backend::Redis {
        return; // Redis expires the lock on its own clock; the SQL stores read the test's.
    }
    app.clock.advance(Duration::from_secs(61));
    expect_status(
        login_as(&app, &user.username, PASSWORD).await,
        StatusCode::OK,
    )
    .await;
}

async fn the_address_limit_answers_429_with_retry_after(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| {
        settings.throttle.client_attempts = 3;
        settings.throttle.client_window = Duration::from_secs(60);
    })
    .await;
    let user = app.create_user().await;
    expect_status(
        login_as(&app, &user.username, PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    expect_no_active_account(login_as(&app, &user.username, "wrong").await).await;
    expect_no_active_account(login_as(&app, "nobody-at-all", "wrong").await).await;
    expect_throttled(login_as(&app, &user.username, PASSWORD).await, 60).await;
    // The OAuth password grant shares the limit, and says so in OAuth's shape.
    let client = app.register_client(&["password"], &[]).await;
    let fields = [
        ("grant_type", "password"),
        ("username", user.username.as_str()),
        ("password", PASSWORD),
    ];
    let response = app.oauth_post("/oauth/token", Some(&client), &fields).await;
    assert!(response.headers().contains_key("retry-after"));
    expect_oauth_error(
        response,
        StatusCode::TOO_MANY_REQUESTS,
        "temporarily_unavailable",
    )
    .await;
    if backend == Backend::Redis {
        return;
    }
    app.clock.advance(Duration::from_secs(61));
    expect_status(
        login_as(&app, &user.username, PASSWORD).await,
        StatusCode::OK,
    )
    .await;
}

async fn login_forwarded_for(app: &TestApp, username: &str, forwarded: &str) -> StatusCode {
    let body = json!({ "username": username, "password": PASSWORD });
    app.client
        .post(app.url("/api/token/"))
        .header("X-Forwarded-For", forwarded)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
}

async fn a_forged_forwarded_for_changes_nothing_unless_the_proxy_is_trusted(backend: Backend) {
    let limited = |settings: &mut Settings| {
        settings.throttle.client_attempts = 2;
        settings.throttle.client_window = Duration::from_secs(60);
    };
    let app = TestApp::spawn_with(backend, limited).await;
    let user = app.create_user().await;
    let statuses = [
        login_forwarded_for(&app, &user.username, "198.51.100.1").await,
        login_forwarded_for(&app, &user.username, "198.51.100.2").await,
        login_forwarded_for(&app, &user.username, "198.51.100.3").await,
    ];
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );

    // Behind a trusted proxy on 127.0.0.1 the header names the client: each has its own budget.
    let proxied = TestApp::spawn_with(backend, |settings| {
        limited(settings);
        settings.server.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let user = proxied.create_user().await;
    for client in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        for _ in 0..2 {
            let status = login_forwarded_for(&proxied, &user.username, client).await;
            assert_eq!(status, StatusCode::OK, "{client}");
        }
    }
    // A client cannot slip an address in front of the one the proxy appended.
    let forged = "203.0.113.50, 198.51.100.1";
    let status = login_forwarded_for(&proxied, &user.username, forged).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}
