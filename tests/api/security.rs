//! Findings of the attack review (issue 15), each as the request that used to get through.

use std::sync::atomic::{AtomicBool, Ordering};

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

on_every_store!(
    logins_in_flight_across_a_password_change_keep_no_session,
    logins_in_flight_across_a_deactivation_keep_no_session,
    a_slower_clock_cannot_move_a_revocation_cut_off_back,
);

/// What ends every session of a user and makes the password fail, sent in the middle of a
/// burst of logins. (A logout everywhere leaves the password valid, so a login that reads it
/// afterwards rightly succeeds: no burst can tell those apart from the ones in flight. The
/// flows' unit test `a_revoke_all_after_the_credentials_are_read_covers_the_session` pins that
/// case down step by step.)
#[derive(Clone, Copy)]
enum RevokeAll {
    PasswordChange,
    Deactivation,
}

/// A burst of logins with the (old) password, all written at once, with `revoke` in the middle
/// of it. Whatever each login answers, no session it started works once `revoke` has returned:
/// every login read the credentials before the revoke-all, or after it, with the old password
/// no longer valid (or the account inactive).
async fn logins_in_flight_across(backend: Backend, revoke: RevokeAll) {
    let app = TestApp::spawn_with(backend, |settings| {
        settings.throttle.client_attempts = 0;
        settings.throttle.account_free_failures = 1_000;
    })
    .await;
    let user = app.create_user().await;
    let staff = app.create_staff().await;
    let (user_access, _) = app.login(&user).await;
    let (staff_access, _) = app.login(&staff).await;
    let credentials = json!({"username": user.username, "password": PASSWORD});
    let revoked = AtomicBool::new(false);
    let login = || app.post_json("/api/token/", &credentials);
    let answered = tokio::sync::Notify::new();
    let revoke_all = async {
        // Once logins are flowing (one has been answered), so that some are in flight.
        answered.notified().await;
        let response = match revoke {
            RevokeAll::PasswordChange => {
                let body = json!({"current_password": PASSWORD, "new_password": "another sensible passphrase"});
                let path = "/api/users/me/password/";
                app.send_authed(reqwest::Method::POST, path, &user_access, &body)
                    .await
            }
            RevokeAll::Deactivation => {
                let path = format!("/api/users/{}/", user.id);
                let body = json!({"is_active": false});
                app.send_authed(reqwest::Method::PATCH, &path, &staff_access, &body)
                    .await
            }
        };
        assert!(response.status().is_success(), "{}", response.status());
        revoked.store(true, Ordering::SeqCst);
    };
    // Workers log in back to back until the revoke-all has returned, so logins read the
    // credentials at every step of it, and queue for hashing behind its own hashes.
    let worker = || async {
        let mut answers = Vec::new();
        while !revoked.load(Ordering::SeqCst) {
            answers.push(login().await);
            answered.notify_one();
        }
        answers
    };
    let workers = futures::future::join_all((0..6).map(|_| worker()));
    let (answers, ()) = tokio::join!(workers, revoke_all);
    let mut sessions = 0;
    for response in answers.into_iter().flatten() {
        if response.status() != StatusCode::OK {
            continue;
        }
        sessions += 1;
        let body: Value = response.json().await.unwrap();
        let (access, refresh) = (
            body["access"].as_str().unwrap(),
            body["refresh"].as_str().unwrap(),
        );
        let me = app.get_authed("/api/users/me/", access).await;
        assert_eq!(me.status(), StatusCode::UNAUTHORIZED, "a session survived");
        assert_eq!(app.verify(access).await.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            app.refresh(refresh).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert!(
        sessions > 0,
        "no login got in before the revoke-all: the race was not run"
    );
}

async fn logins_in_flight_across_a_password_change_keep_no_session(backend: Backend) {
    logins_in_flight_across(backend, RevokeAll::PasswordChange).await;
}

async fn logins_in_flight_across_a_deactivation_keep_no_session(backend: Backend) {
    logins_in_flight_across(backend, RevokeAll::Deactivation).await;
}

/// Two instances, one clock ten minutes ahead of the other. A logout everywhere through the
/// fast one covers a session started there; a later one through the slow instance writes an
/// earlier cut-off, which must not bring that session back.
async fn a_slower_clock_cannot_move_a_revocation_cut_off_back(backend: Backend) {
    let slow = TestApp::spawn(backend).await;
    let fast = slow.spawn_sibling().await;
    fast.clock.advance(std::time::Duration::from_secs(600));
    let user = slow.create_user().await;
    let (first, _) = fast.login(&user).await;
    let (second, _) = fast.login(&user).await;
    logout_all(&fast, &first).await;
    // The slow instance's own session, started after the fast one's cut-off by its reading.
    let (slow_access, _) = slow.login(&user).await;
    logout_all(&slow, &slow_access).await;
    for app in [&slow, &fast] {
        expect_token_error(app.verify(&first).await, "Token is blacklisted").await;
        expect_token_error(app.verify(&second).await, "Token is blacklisted").await;
    }
}

async fn logout_all(app: &TestApp, access: &str) {
    let path = "/api/token/logout-all/";
    let response = app
        .send_authed(reqwest::Method::POST, path, access, &json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

/// A user made inactive without jwtd's revocation (here, straight in the database) is refused
/// by verify too, not only by refresh and the account API.
#[tokio::test]
async fn verify_refuses_the_tokens_of_an_inactive_user() {
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    let app = TestApp::spawn(Backend::Sqlite).await;
    let user = app.create_user().await;
    let (access, refresh) = app.login(&user).await;
    let change = jwtd::store::entities::user::ActiveModel {
        id: Set(user.id),
        is_active: Set(false),
        ..Default::default()
    };
    change.update(&app.state.db).await.unwrap();
    for token in [&access, &refresh] {
        expect_error(
            app.verify(token).await,
            StatusCode::UNAUTHORIZED,
            "no_active_account",
            "No active account found for the given token.",
        )
        .await;
    }
}
