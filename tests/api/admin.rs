//! Staff administration, and who may call which account endpoint.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use jwtd::store::users::AdminChange;
use jwtd_test_support::{
    Backend, PASSWORD, TestApp, expect_error, expect_status, expect_token_error, on_every_store,
    string_field,
};

on_every_store!(deactivation_and_deletion_revoke_every_token);

/// method, path, body, and the status for an anonymous caller, a user, and staff.
type Row<'a> = (
    Method,
    &'a str,
    Option<Value>,
    StatusCode,
    StatusCode,
    StatusCode,
);

#[tokio::test]
async fn permission_matrix_over_every_account_endpoint() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (user, other, staff) = (
        app.create_user().await,
        app.create_user().await,
        app.create_staff().await,
    );
    let (user_access, _) = app.login(&user).await;
    let (other_access, _) = app.login(&other).await;
    let (staff_access, _) = app.login(&staff).await;
    let other_sid = jwtd_test_support::claims_of(&other_access)["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let user_path = format!("/api/users/{}/", user.id);
    let other_session = format!("/api/users/me/sessions/{other_sid}/");
    let (unauth, forbidden, ok) = (
        StatusCode::UNAUTHORIZED,
        StatusCode::FORBIDDEN,
        StatusCode::OK,
    );
    let not_found = StatusCode::NOT_FOUND;

    // (method, path, body, anonymous, user, staff): "user" acts on their own account or on another's.
    let matrix: Vec<Row> = vec![
        (Method::GET, "/api/users/me/", None, unauth, ok, ok),
        (
            Method::PATCH,
            "/api/users/me/",
            Some(json!({})),
            unauth,
            ok,
            ok,
        ),
        (Method::GET, "/api/users/me/sessions/", None, unauth, ok, ok),
        (
            Method::DELETE,
            &other_session,
            None,
            unauth,
            not_found,
            not_found,
        ),
        (Method::GET, "/api/users/", None, unauth, forbidden, ok),
        (Method::GET, &user_path, None, unauth, forbidden, ok),
        (
            Method::PATCH,
            &user_path,
            Some(json!({"email": "set@example.com"})),
            unauth,
            forbidden,
            ok,
        ),
    ];
    for (method, path, body, anonymous, as_user, as_staff) in matrix {
        let label = format!("{method} {path}");
        assert_eq!(
            app.call(method.clone(), path, None, body.clone()).await,
            anonymous,
            "anonymous {label}"
        );
        assert_eq!(
            app.call(method.clone(), path, Some(&user_access), body.clone())
                .await,
            as_user,
            "user {label}"
        );
        assert_eq!(
            app.call(method, path, Some(&staff_access), body).await,
            as_staff,
            "staff {label}"
        );
    }
    // Another user can neither read, change nor delete this user, nor end their sessions.
    let user_sid = jwtd_test_support::claims_of(&user_access)["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let user_session = format!("/api/users/me/sessions/{user_sid}/");
    assert_eq!(
        app.call(Method::DELETE, &user_session, Some(&other_access), None)
            .await,
        not_found
    );
    assert_eq!(
        app.call(Method::DELETE, &user_path, Some(&other_access), None)
            .await,
        forbidden
    );
    assert_eq!(
        app.call(Method::DELETE, &user_path, None, None).await,
        unauth
    );
    assert_eq!(
        app.call(
            Method::POST,
            "/api/users/me/password/",
            None,
            Some(json!({}))
        )
        .await,
        unauth
    );
    assert_eq!(
        app.call(Method::POST, "/api/token/logout-all/", None, None)
            .await,
        unauth
    );
    expect_status(
        app.get_authed("/api/users/me/", &user_access).await,
        StatusCode::OK,
    )
    .await;

    let denied = app.get_authed("/api/users/", &user_access).await;
    expect_error(
        denied,
        StatusCode::FORBIDDEN,
        "permission_denied",
        "You do not have permission to perform this action.",
    )
    .await;
    // Staff may delete.
    assert_eq!(
        app.call(Method::DELETE, &user_path, Some(&staff_access), None)
            .await,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn staff_list_users_paginated_and_filtered() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let staff = app.create_staff().await;
    let (access, _) = app.login(&staff).await;
    for name in ["ann", "anna", "bob"] {
        app.create_named_user(name, PASSWORD).await;
    }
    let inactive = app.create_named_user("carl", PASSWORD).await;
    let change = AdminChange {
        is_active: Some(false),
        email: Some("Carl@Example.com".into()),
        ..Default::default()
    };
    app.state
        .users
        .admin_update(inactive.id, change)
        .await
        .unwrap();

    let first = expect_status(
        app.get_authed("/api/users/?page_size=2", &access).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(first["count"], 5);
    assert_eq!(first["results"].as_array().unwrap().len(), 2);
    assert_eq!(first["previous"], Value::Null);
    let next = string_field(&first, "next");
    let second = expect_status(app.get_authed(&next, &access).await, StatusCode::OK).await;
    assert_eq!(second["results"][0]["username"], "anna");
    let last = expect_status(
        app.get_authed("/api/users/?page=3&page_size=2", &access)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (
            last["results"].as_array().unwrap().len(),
            last["next"].clone()
        ),
        (1, Value::Null)
    );

    let names = |body: &Value| {
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let ann = expect_status(
        app.get_authed("/api/users/?username=ANN", &access).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(names(&ann), ["ann", "anna"]);
    let by_email = expect_status(
        app.get_authed("/api/users/?email=carl@example.com", &access)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(names(&by_email), ["carl"]);
    let inactive = expect_status(
        app.get_authed("/api/users/?is_active=false", &access).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(names(&inactive), ["carl"]);

    for bad in [
        "/api/users/?page=0",
        "/api/users/?page_size=101",
        "/api/users/?page=x",
        "/api/users/?is_active=maybe",
    ] {
        let body = expect_status(app.get_authed(bad, &access).await, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["code"], "invalid", "{bad}");
    }
}

#[tokio::test]
async fn staff_updates_are_validated() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let staff = app.create_staff().await;
    let user = app.create_user().await;
    let (access, _) = app.login(&staff).await;
    let path = format!("/api/users/{}/", user.id);
    let promoted = app
        .send_authed(Method::PATCH, &path, &access, &json!({"is_staff": true}))
        .await;
    assert_eq!(
        expect_status(promoted, StatusCode::OK).await["is_staff"],
        true
    );
    let form = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&access)
        .form(&[("is_staff", "false")])
        .send()
        .await
        .unwrap();
    assert_eq!(expect_status(form, StatusCode::OK).await["is_staff"], false);

    let bad = app
        .send_authed(
            Method::PATCH,
            &path,
            &access,
            &json!({"is_active": "perhaps"}),
        )
        .await;
    assert_eq!(
        expect_status(bad, StatusCode::BAD_REQUEST).await["fields"]["is_active"],
        json!(["Must be a valid boolean."])
    );
    let bad = app
        .send_authed(Method::PATCH, &path, &access, &json!({"email": "nope"}))
        .await;
    assert_eq!(
        expect_status(bad, StatusCode::BAD_REQUEST).await["fields"]["email"],
        json!(["Enter a valid email address."])
    );
    let missing = format!("/api/users/{}/", uuid::Uuid::new_v4());
    expect_error(
        app.send_authed(Method::PATCH, &missing, &access, &json!({"is_staff": true}))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        "Not found.",
    )
    .await;
    expect_error(
        app.get_authed(&missing, &access).await,
        StatusCode::NOT_FOUND,
        "not_found",
        "Not found.",
    )
    .await;
    let body = expect_status(
        app.get_authed("/api/users/not-a-uuid/", &access).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["code"], "invalid");
}

async fn deactivation_and_deletion_revoke_every_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let staff = app.create_staff().await;
    let (staff_access, _) = app.login(&staff).await;
    let (doomed, deactivated) = (app.create_user().await, app.create_user().await);
    let doomed_tokens = app.login(&doomed).await;
    let deactivated_tokens = app.login(&deactivated).await;

    let path = format!("/api/users/{}/", deactivated.id);
    let response = app
        .send_authed(
            Method::PATCH,
            &path,
            &staff_access,
            &json!({"is_active": false}),
        )
        .await;
    assert_eq!(
        expect_status(response, StatusCode::OK).await["is_active"],
        false
    );
    expect_token_error(
        app.verify(&deactivated_tokens.0).await,
        "Token is blacklisted",
    )
    .await;
    expect_token_error(
        app.refresh(&deactivated_tokens.1).await,
        "Token is blacklisted",
    )
    .await;
    let login = app
        .post_json(
            "/api/token/",
            &json!({"username": deactivated.username, "password": PASSWORD}),
        )
        .await;
    expect_status(login, StatusCode::UNAUTHORIZED).await;

    let path = format!("/api/users/{}/", doomed.id);
    assert_eq!(
        app.call(Method::DELETE, &path, Some(&staff_access), None)
            .await,
        StatusCode::NO_CONTENT
    );
    expect_token_error(app.verify(&doomed_tokens.0).await, "Token is blacklisted").await;
    expect_token_error(app.refresh(&doomed_tokens.1).await, "Token is blacklisted").await;
    expect_error(
        app.get_authed(&path, &staff_access).await,
        StatusCode::NOT_FOUND,
        "not_found",
        "Not found.",
    )
    .await;
    assert_eq!(
        app.call(Method::DELETE, &path, Some(&staff_access), None)
            .await,
        StatusCode::NOT_FOUND
    );
}
