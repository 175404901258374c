//! Every row of the contract's error table, on every endpoint it applies to. Never a 500.

use std::time::Duration;

use reqwest::StatusCode;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use serde_json::{Value, json};

use jwtd_test_support::{
    Backend, PASSWORD, TestApp, expect_error, expect_status, expect_token_error,
};

const TOKEN_ENDPOINTS: [(&str, &str); 3] = [
    ("/api/token/refresh/", "refresh"),
    ("/api/token/verify/", "token"),
    ("/api/token/blacklist/", "refresh"),
];
const ALL_ENDPOINTS: [&str; 4] = [
    "/api/token/",
    "/api/token/refresh/",
    "/api/token/verify/",
    "/api/token/blacklist/",
];

async fn expect_field_error(response: reqwest::Response, field: &str, message: &str) {
    let body = expect_status(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["code"], "invalid", "{body}");
    assert_eq!(body["fields"][field], json!([message]), "{body}");
    assert!(body["detail"].as_str().unwrap().contains(message), "{body}");
}

#[tokio::test]
async fn missing_blank_null_and_wrongly_typed_fields_are_400_with_per_field_messages() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "/api/token/",
            json!({"password": PASSWORD}),
            "username",
            "This field is required.",
        ),
        (
            "/api/token/",
            json!({"username": "  ", "password": PASSWORD}),
            "username",
            "This field may not be blank.",
        ),
        (
            "/api/token/",
            json!({"username": "a", "password": null}),
            "password",
            "This field may not be null.",
        ),
        (
            "/api/token/",
            json!({"username": ["a"], "password": PASSWORD}),
            "username",
            "Not a valid string.",
        ),
        (
            "/api/token/",
            json!({"username": "a", "password": "x".repeat(129)}),
            "password",
            "Ensure this field has no more than 128 characters.",
        ),
    ];
    for (path, field) in TOKEN_ENDPOINTS {
        cases.push((path, json!({}), field, "This field is required."));
        cases.push((
            path,
            json!({ field: "" }),
            field,
            "This field may not be blank.",
        ));
        cases.push((path, json!({ field: 42 }), field, "Not a valid string."));
    }
    for (path, body, field, message) in cases {
        expect_field_error(app.post_json(path, &body).await, field, message).await;
    }
    let both_missing = expect_status(
        app.post_json("/api/token/", &json!({})).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        both_missing["fields"].as_object().unwrap().len(),
        2,
        "{both_missing}"
    );
}

#[tokio::test]
async fn bodies_that_are_not_json_objects_are_400() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for path in ALL_ENDPOINTS {
        for (body, detail_start) in [
            ("{\"username\": ", "JSON parse error - "),
            (
                "[1, 2]",
                "Invalid data. Expected a dictionary, but got list.",
            ),
            (
                "\"text\"",
                "Invalid data. Expected a dictionary, but got str.",
            ),
            ("\u{0}\u{1}", "JSON parse error - "),
        ] {
            let body = expect_status(
                app.post_raw(path, "application/json", body).await,
                StatusCode::BAD_REQUEST,
            )
            .await;
            assert_eq!(body["code"], "invalid");
            assert!(
                body["detail"].as_str().unwrap().starts_with(detail_start),
                "{body}"
            );
        }
        let repeated = app
            .post_raw(path, "application/x-www-form-urlencoded", "a=1&a=2")
            .await;
        expect_field_error(repeated, "a", "This field was given more than once.").await;
    }
}

#[tokio::test]
async fn oversized_bodies_are_413_and_other_media_types_415() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let huge = format!("{{\"token\": \"{}\"}}", "a".repeat(70_000));
    for path in ALL_ENDPOINTS {
        let response = app.post_raw(path, "application/json", huge.clone()).await;
        expect_error(
            response,
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "Request body is larger than 65536 bytes.",
        )
        .await;
        // Chunked (no Content-Length): the limit holds while reading.
        let chunks =
            futures::stream::iter((0..80).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024])));
        let response = app
            .post_raw(path, "application/json", reqwest::Body::wrap_stream(chunks))
            .await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

        for content_type in [
            "text/plain",
            "multipart/form-data; boundary=x",
            "application/xml",
        ] {
            let response = app.post_raw(path, content_type, "x").await;
            let body = expect_status(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
            assert_eq!(body["code"], "unsupported_media_type");
        }
    }
}

#[tokio::test]
async fn bad_credentials_of_every_kind_are_the_same_401() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let user = app.create_user().await;
    let inactive = app.create_user().await;
    // Straight to the row: no revocation, as a change made outside jwtd would be.
    let change = jwtd::store::entities::user::ActiveModel {
        id: Set(inactive.id),
        is_active: Set(false),
        ..Default::default()
    };
    change.update(&app.state.db).await.unwrap();

    for (username, password) in [
        (user.username.as_str(), "wrong password"),
        ("nobody-has-this-name", PASSWORD),
        (inactive.username.as_str(), PASSWORD),
    ] {
        let response = app
            .post_json(
                "/api/token/",
                &json!({"username": username, "password": password}),
            )
            .await;
        expect_error(
            response,
            StatusCode::UNAUTHORIZED,
            "no_active_account",
            "No active account found with the given credentials",
        )
        .await;
    }
}

#[tokio::test]
async fn malformed_expired_and_wrong_type_tokens_are_401_token_not_valid() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (access, refresh) = app.login(&app.create_user().await).await;
    for (path, field) in TOKEN_ENDPOINTS {
        let response = app.post_json(path, &json!({ field: "not-a-token" })).await;
        expect_token_error(response, "Token is invalid").await;
    }
    // An access token where a refresh token is required.
    expect_token_error(app.refresh(&access).await, "Token has wrong type").await;
    expect_token_error(app.blacklist(&access).await, "Token has wrong type").await;

    app.clock.advance(Duration::from_secs(86_400 + 1));
    for (path, field) in TOKEN_ENDPOINTS {
        let response = app.post_json(path, &json!({ field: refresh })).await;
        expect_token_error(response, "Token is expired").await;
    }
    expect_token_error(app.verify(&access).await, "Token is expired").await;
}

#[tokio::test]
async fn a_refresh_token_of_a_deleted_or_inactive_user_is_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let deleted = app.create_user().await;
    let deactivated = app.create_user().await;
    let (_, deleted_refresh) = app.login(&deleted).await;
    let (_, deactivated_refresh) = app.login(&deactivated).await;
    jwtd::store::entities::user::Entity::delete_by_id(deleted.id)
        .exec(&app.state.db)
        .await
        .unwrap();
    // Straight to the row: no revocation, as a change made outside jwtd would be.
    let change = jwtd::store::entities::user::ActiveModel {
        id: Set(deactivated.id),
        is_active: Set(false),
        ..Default::default()
    };
    change.update(&app.state.db).await.unwrap();

    for refresh in [deleted_refresh, deactivated_refresh] {
        expect_error(
            app.refresh(&refresh).await,
            StatusCode::UNAUTHORIZED,
            "no_active_account",
            "No active account found for the given token.",
        )
        .await;
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_json() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    expect_error(
        app.get("/api/nothing/").await,
        StatusCode::NOT_FOUND,
        "not_found",
        "Not found.",
    )
    .await;
    expect_error(
        app.get("/api/token/").await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed.",
    )
    .await;
}

/// Requests outside the direct dispatch still go through poem-openapi's router: a HEAD is
/// answered as its GET without the body, and a path with an id is matched. (Queries, on the
/// direct path, are read by the feed's and the user list's tests.)
#[tokio::test]
async fn heads_and_paths_with_ids_reach_their_operations() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let head = app
        .client
        .head(format!("{}/health/live", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert!(head.bytes().await.unwrap().is_empty());
    // Unauthenticated: the route matched and the operation's own check answered.
    let by_id = app
        .get("/api/users/00000000-0000-0000-0000-000000000000/")
        .await;
    assert_eq!(by_id.status(), StatusCode::UNAUTHORIZED);
}
