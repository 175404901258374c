//! Accounts: registration, bearer authentication, the current user, password change.

use reqwest::StatusCode;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use serde_json::json;

use jwtd_test_support::{
    Backend, PASSWORD, TestApp, expect_error, expect_status, expect_token_error, on_every_store,
    string_field,
};

on_every_store!(a_password_change_revokes_every_existing_token);

const NEW_PASSWORD: &str = "an entirely new passphrase";

async fn expect_field(response: reqwest::Response, field: &str, fragment: &str) {
    let body = expect_status(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["code"], "invalid");
    let messages = body["fields"][field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field} in {body}"));
    assert!(
        messages
            .iter()
            .any(|m| m.as_str().unwrap().contains(fragment)),
        "{body}"
    );
}

#[tokio::test]
async fn registration_creates_a_user_who_can_log_in() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = app
        .register(&json!({"username": "Zoë", "email": "zoe@example.com", "password": PASSWORD}))
        .await;
    let user = expect_status(response, StatusCode::CREATED).await;
    let mut keys: Vec<_> = user.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "date_joined",
            "email",
            "id",
            "is_active",
            "is_staff",
            "last_login",
            "username"
        ]
    );
    assert_eq!(
        (
            user["username"].clone(),
            user["is_active"].clone(),
            user["is_staff"].clone()
        ),
        (json!("Zoë"), json!(true), json!(false))
    );
    let login = app
        .post_json(
            "/api/token/",
            &json!({"username": "zoë", "password": PASSWORD}),
        )
        .await;
    expect_status(login, StatusCode::OK).await;
    // The email is optional.
    expect_status(
        app.register(&json!({"username": "no-mail", "password": PASSWORD}))
            .await,
        StatusCode::CREATED,
    )
    .await;
}

#[tokio::test]
async fn registration_refuses_taken_names_and_emails_and_bad_input() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let first = json!({"username": "Alice", "email": "alice@example.com", "password": PASSWORD});
    expect_status(app.register(&first).await, StatusCode::CREATED).await;
    for look_alike in ["alice", "ALICE", "ａｌｉｃｅ"] {
        let response = app
            .register(&json!({"username": look_alike, "password": PASSWORD}))
            .await;
        expect_field(response, "username", "already exists").await;
    }
    let response = app
        .register(&json!({"username": "bob", "email": "ALICE@example.com", "password": PASSWORD}))
        .await;
    expect_field(response, "email", "already exists").await;

    let cases = [
        (
            json!({"username": "bob", "password": "short"}),
            "password",
            "too short",
        ),
        (
            json!({"username": "bob", "password": "1234567890123"}),
            "password",
            "entirely numeric",
        ),
        (
            json!({"username": "bob", "password": "password"}),
            "password",
            "too common",
        ),
        (
            json!({"username": "bobby", "password": "bobby-forever"}),
            "password",
            "too similar",
        ),
        (
            json!({"username": "bob", "password": "x".repeat(129)}),
            "password",
            "no more than 128",
        ),
        (
            json!({"username": "bob smith", "password": PASSWORD}),
            "username",
            "valid username",
        ),
        (
            json!({"username": "bob", "email": "not-an-email", "password": PASSWORD}),
            "email",
            "valid email",
        ),
        (
            json!({"email": "b@example.com", "password": PASSWORD}),
            "username",
            "required",
        ),
    ];
    for (body, field, fragment) in cases {
        expect_field(app.register(&body).await, field, fragment).await;
    }
}

#[tokio::test]
async fn registration_can_be_closed() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| s.users.allow_registration = false).await;
    let response = app
        .register(&json!({"username": "carol", "password": PASSWORD}))
        .await;
    expect_error(
        response,
        StatusCode::FORBIDDEN,
        "registration_closed",
        "Registration is closed.",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_registrations_of_one_name_create_one_account() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if backend == Backend::Postgres && !jwtd_test_support::postgres_available() {
            continue;
        }
        let app = TestApp::spawn(backend).await;
        let attempts = (0..16).map(|i| {
            let (client, url) = (app.client.clone(), app.url("/api/users/"));
            // Different spellings of one normalised name.
            let username = if i % 2 == 0 {
                "Racer"
            } else {
                "ｒａｃｅｒ"
            };
            let body = json!({"username": username, "password": PASSWORD});
            tokio::spawn(async move { client.post(url).json(&body).send().await.unwrap().status() })
        });
        let statuses: Vec<_> = futures::future::join_all(attempts)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let created = statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count();
        let refused = statuses
            .iter()
            .filter(|s| **s == StatusCode::BAD_REQUEST)
            .count();
        assert_eq!((created, refused), (1, 15), "{backend:?}: {statuses:?}");
    }
}

#[tokio::test]
async fn bearer_authentication_follows_simplejwt() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let user = app.create_user().await;
    let (access, refresh) = app.login(&user).await;
    let me = expect_status(
        app.get_authed("/api/users/me/", &access).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(me["id"], user.id.to_string());
    assert!(me.get("password_hash").is_none());

    let raw = |header: &'static str| {
        let request = app.client.get(app.url("/api/users/me/"));
        async move {
            request
                .header("authorization", header)
                .send()
                .await
                .unwrap()
        }
    };
    let not_provided = "Authentication credentials were not provided.";
    expect_error(
        app.get("/api/users/me/").await,
        StatusCode::UNAUTHORIZED,
        "not_authenticated",
        not_provided,
    )
    .await;
    expect_error(
        raw("Token abc").await,
        StatusCode::UNAUTHORIZED,
        "not_authenticated",
        not_provided,
    )
    .await;
    let bad = "Authorization header must contain two space-delimited values";
    expect_error(
        raw("Bearer").await,
        StatusCode::UNAUTHORIZED,
        "bad_authorization_header",
        bad,
    )
    .await;
    expect_error(
        raw("Bearer a b").await,
        StatusCode::UNAUTHORIZED,
        "bad_authorization_header",
        bad,
    )
    .await;
    expect_token_error(raw("Bearer not-a-token").await, "Token is invalid").await;
    expect_token_error(
        app.get_authed("/api/users/me/", &refresh).await,
        "Token has wrong type",
    )
    .await;

    // Straight to the row: no revocation, as a change made outside jwtd would be.
    let change = jwtd::store::entities::user::ActiveModel {
        id: Set(user.id),
        is_active: Set(false),
        ..Default::default()
    };
    change.update(&app.state.db).await.unwrap();
    expect_error(
        app.get_authed("/api/users/me/", &access).await,
        StatusCode::UNAUTHORIZED,
        "user_inactive",
        "User is inactive",
    )
    .await;
    jwtd::store::entities::user::Entity::delete_by_id(user.id)
        .exec(&app.state.db)
        .await
        .unwrap();
    expect_error(
        app.get_authed("/api/users/me/", &access).await,
        StatusCode::UNAUTHORIZED,
        "user_not_found",
        "User not found",
    )
    .await;

    let other = app.create_user().await;
    let (access, refresh) = app.login(&other).await;
    expect_status(app.blacklist(&refresh).await, StatusCode::OK).await;
    expect_token_error(
        app.get_authed("/api/users/me/", &access).await,
        "Token is blacklisted",
    )
    .await;
}

#[tokio::test]
async fn the_current_user_can_change_username_and_email() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let taken = app.create_user().await;
    let user = app.create_user().await;
    let (access, _) = app.login(&user).await;
    let patch = reqwest::Method::PATCH;
    let changed = app
        .send_authed(
            patch.clone(),
            "/api/users/me/",
            &access,
            &json!({"email": "new@example.com"}),
        )
        .await;
    let changed = expect_status(changed, StatusCode::OK).await;
    assert_eq!(
        (changed["email"].clone(), changed["username"].clone()),
        (json!("new@example.com"), json!(user.username))
    );

    let clash = app
        .send_authed(
            patch.clone(),
            "/api/users/me/",
            &access,
            &json!({"username": taken.username.to_uppercase()}),
        )
        .await;
    expect_field(clash, "username", "already exists").await;
    let blank = app
        .send_authed(
            patch.clone(),
            "/api/users/me/",
            &access,
            &json!({"username": " "}),
        )
        .await;
    expect_field(blank, "username", "may not be blank").await;

    let renamed = app
        .send_authed(
            patch,
            "/api/users/me/",
            &access,
            &json!({"username": "renamed", "email": ""}),
        )
        .await;
    let renamed = expect_status(renamed, StatusCode::OK).await;
    assert_eq!(
        (renamed["username"].clone(), renamed["email"].clone()),
        (json!("renamed"), json!(""))
    );
    let login = app
        .post_json(
            "/api/token/",
            &json!({"username": "renamed", "password": PASSWORD}),
        )
        .await;
    expect_status(login, StatusCode::OK).await;
}

async fn a_password_change_revokes_every_existing_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.create_user().await;
    let (access, refresh) = app.login(&user).await;
    let (other_access, other_refresh) = app.login(&user).await;
    let path = "/api/users/me/password/";
    let post = reqwest::Method::POST;

    let wrong = json!({"current_password": "not it", "new_password": NEW_PASSWORD});
    expect_field(
        app.send_authed(post.clone(), path, &access, &wrong).await,
        "current_password",
        "Invalid password.",
    )
    .await;
    let weak = json!({"current_password": PASSWORD, "new_password": "123"});
    expect_field(
        app.send_authed(post.clone(), path, &access, &weak).await,
        "new_password",
        "too short",
    )
    .await;

    let good = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD});
    let response = app.send_authed(post, path, &access, &good).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    for token in [&access, &refresh, &other_access, &other_refresh] {
        expect_token_error(app.verify(token).await, "Token is blacklisted").await;
    }
    expect_token_error(app.refresh(&other_refresh).await, "Token is blacklisted").await;
    expect_token_error(
        app.get_authed("/api/users/me/", &access).await,
        "Token is blacklisted",
    )
    .await;

    let old = app
        .post_json(
            "/api/token/",
            &json!({"username": user.username, "password": PASSWORD}),
        )
        .await;
    expect_status(old, StatusCode::UNAUTHORIZED).await;
    let new = app
        .post_json(
            "/api/token/",
            &json!({"username": user.username, "password": NEW_PASSWORD}),
        )
        .await;
    let pair = expect_status(new, StatusCode::OK).await;
    expect_status(
        app.get_authed("/api/users/me/", &string_field(&pair, "access"))
            .await,
        StatusCode::OK,
    )
    .await;
}
