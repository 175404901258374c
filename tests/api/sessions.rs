//! Login sessions: listed, ended one by one, or all at once; ended means refused at once.

use reqwest::{Method, StatusCode};
use serde_json::json;

use jwtd_test_support::{
    Backend, SESSIONS, TestApp, expect_error, expect_status, expect_token_error, on_every_store,
};

on_every_store!(
    ending_a_session_refuses_its_tokens_at_once,
    logout_all_refuses_every_token_of_the_user
);

fn sid_of(token: &str) -> String {
    jwtd_test_support::claims_of(token)["sid"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn sessions_are_listed_with_their_details() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let user = app.create_user().await;
    let (laptop_access, laptop_refresh) = app.login_as(&user.username, "laptop/1.0").await;
    app.clock.advance(std::time::Duration::from_secs(1));
    let (phone_access, _) = app.login_as(&user.username, "phone/2.0").await;

    let sessions = app.sessions(&laptop_access).await;
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions[0]["sid"], sid_of(&phone_access), "newest first");
    assert_eq!(sessions[0]["user_agent"], "phone/2.0");
    assert_eq!(sessions[1]["user_agent"], "laptop/1.0");
    assert_eq!(sessions[1]["client_address"], "127.0.0.1");
    assert_eq!(
        (
            sessions[0]["current"].clone(),
            sessions[1]["current"].clone()
        ),
        (json!(false), json!(true))
    );
    assert!(sessions[1]["last_refreshed_at"].is_null());

    expect_status(app.refresh(&laptop_refresh).await, StatusCode::OK).await;
    let sessions = app.sessions(&phone_access).await;
    assert!(sessions[1]["last_refreshed_at"].is_string(), "{sessions:?}");

    // Logging out with blacklist removes the session from the list.
    let (_, tablet_refresh) = app.login_as(&user.username, "tablet").await;
    expect_status(app.blacklist(&tablet_refresh).await, StatusCode::OK).await;
    assert_eq!(app.sessions(&phone_access).await.len(), 2);
}

async fn ending_a_session_refuses_its_tokens_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.create_user().await;
    let (access, _) = app.login_as(&user.username, "a").await;
    let (other_access, other_refresh) = app.login_as(&user.username, "b").await;

    let response = app.delete_session(&access, &sid_of(&other_access)).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    expect_token_error(app.verify(&other_access).await, "Token is blacklisted").await;
    expect_token_error(app.refresh(&other_refresh).await, "Token is blacklisted").await;
    expect_token_error(
        app.get_authed(SESSIONS, &other_access).await,
        "Token is blacklisted",
    )
    .await;
    let left = app.sessions(&access).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["sid"], sid_of(&access));

    expect_error(
        app.delete_session(&access, &sid_of(&other_access)).await,
        StatusCode::NOT_FOUND,
        "not_found",
        "Not found.",
    )
    .await;
}

#[tokio::test]
async fn sessions_of_other_users_cannot_be_seen_or_ended() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (alice, mallory) = (app.create_user().await, app.create_user().await);
    let (alice_access, _) = app.login(&alice).await;
    let (mallory_access, _) = app.login(&mallory).await;
    assert_eq!(app.sessions(&mallory_access).await.len(), 1);
    let attempt = app
        .delete_session(&mallory_access, &sid_of(&alice_access))
        .await;
    expect_error(attempt, StatusCode::NOT_FOUND, "not_found", "Not found.").await;
    expect_status(app.verify(&alice_access).await, StatusCode::OK).await;

    let body = expect_status(
        app.delete_session(&mallory_access, "not-a-uuid").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["code"], "invalid");
    expect_error(
        app.get(SESSIONS).await,
        StatusCode::UNAUTHORIZED,
        "not_authenticated",
        "Authentication credentials were not provided.",
    )
    .await;
}

async fn logout_all_refuses_every_token_of_the_user(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.create_user().await;
    let bystander = app.create_user().await;
    let tokens = [app.login(&user).await, app.login(&user).await];
    let (bystander_access, _) = app.login(&bystander).await;

    let response = app
        .send_authed(
            Method::POST,
            "/api/token/logout-all/",
            &tokens[0].0,
            &json!({}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    for (access, refresh) in &tokens {
        expect_token_error(app.verify(access).await, "Token is blacklisted").await;
        expect_token_error(app.refresh(refresh).await, "Token is blacklisted").await;
    }
    expect_status(app.verify(&bystander_access).await, StatusCode::OK).await;
    // A new login works, and it is the only session listed.
    let (fresh, _) = app.login(&user).await;
    assert_eq!(app.sessions(&fresh).await.len(), 1);
}
