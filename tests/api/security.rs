//! Findings of the attack review (issue 15), each as the request that used to get through.

use reqwest::StatusCode;
use serde_json::{Value, json};

use jwtd_test_support::{
    Backend, PASSWORD, TestApp, expect_error, expect_status, expect_token_error, on_every_store,
};

on_every_store!(
    a_username_too_long_once_normalised_is_refused_before_hashing,
    username_searches_match_wildcards_literally,
);

/// `ﷺ` is one character and eighteen after NFKC: ten of them are 10 characters as sent and 180
/// as stored, past the 150 the column holds on PostgreSQL. Every database must answer the same
/// 400, and the name must not have been stored half-way.
async fn a_username_too_long_once_normalised_is_refused_before_hashing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let long = "ﷺ".repeat(10);
    let response = app
        .register(&json!({"username": long, "password": PASSWORD}))
        .await;
    let body = expect_status(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["code"], "invalid");
    assert!(body["fields"]["username"].is_array(), "{body}");
    let fits = "ﷺ".repeat(8);
    let response = app
        .register(&json!({"username": fits, "password": PASSWORD}))
        .await;
    expect_status(response, StatusCode::CREATED).await;

    let user = app.create_user().await;
    let (access, _) = app.login(&user).await;
    let body = json!({"username": long});
    let renamed = app
        .send_authed(reqwest::Method::PATCH, "/api/users/me/", &access, &body)
        .await;
    expect_status(renamed, StatusCode::BAD_REQUEST).await;
}

/// `%`, `_` and `\` in `?username=` are characters to find, not patterns.
async fn username_searches_match_wildcards_literally(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for name in ["a_b", "axb", "percent", "back"] {
        app.create_named_user(name, PASSWORD).await;
    }
    let staff = app.create_staff().await;
    let (access, _) = app.login(&staff).await;
    let search = |query: &'static str| {
        let path = format!("/api/users/?username={query}");
        let access = access.clone();
        let app = &app;
        async move {
            let body = expect_status(app.get_authed(&path, &access).await, StatusCode::OK).await;
            names(&body)
        }
    };
    assert_eq!(search("a_b").await, ["a_b"]);
    assert_eq!(search("%25").await, Vec::<String>::new());
    assert_eq!(search("a%25b").await, Vec::<String>::new());
    assert_eq!(search("%5C").await, Vec::<String>::new());
    assert_eq!(search("ck").await, ["back"]);
}

fn names(page: &Value) -> Vec<String> {
    page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| user["username"].as_str().unwrap().to_owned())
        .collect()
}

/// An OAuth client's refresh token is revoked by that client through `/oauth/revoke`; the
/// SimpleJWT blacklist refuses it, so nobody else can end the client's session.
#[tokio::test]
async fn blacklist_refuses_an_oauth_clients_refresh_token() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let user = app.create_user().await;
    let client = app
        .register_client(&["password", "refresh_token"], &[])
        .await;
    let tokens = app.password_grant(&client, &user.username, "").await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    expect_token_error(app.blacklist(refresh).await, "Token is invalid").await;
    let refreshed = app.refresh_grant(&client, refresh).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
}

/// `page` times `page_size` is an offset the databases must hold: past it, a 400, not a 500.
#[tokio::test]
async fn an_overflowing_page_is_a_400() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let staff = app.create_staff().await;
    let (access, _) = app.login(&staff).await;
    for page in ["18446744073709551615", "92233720368547759"] {
        let path = format!("/api/users/?page={page}&page_size=100");
        expect_error(
            app.get_authed(&path, &access).await,
            StatusCode::BAD_REQUEST,
            "invalid",
            "page must be between 1 and 92233720368547758 and page_size between 1 and 100.",
        )
        .await;
    }
}
