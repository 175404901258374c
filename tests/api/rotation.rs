//! Rotation is atomic, reuse is detected, grace is honoured, sessions end.

use std::time::Duration;

use reqwest::StatusCode;

use jwtd_test_support::{
    Backend, TestApp, claims_of, expect_status, expect_token_error, on_every_store, string_field,
};

on_every_store!(
    concurrent_refreshes_of_one_token_have_exactly_one_winner,
    reuse_revokes_the_whole_session_and_only_it,
    grace_gives_the_same_successor_once,
    a_user_change_through_one_instance_reaches_the_next_refresh_on_another
);

const RACERS: usize = 24;

async fn concurrent_refreshes_of_one_token_have_exactly_one_winner(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, refresh) = app.login(&app.create_user().await).await;
    let requests = (0..RACERS).map(|_| {
        let (client, url, body) = (
            app.client.clone(),
            app.url("/api/token/refresh/"),
            serde_json::json!({ "refresh": refresh }),
        );
        tokio::spawn(async move { client.post(url).json(&body).send().await.unwrap().status() })
    });
    let statuses: Vec<StatusCode> = futures::future::join_all(requests)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let winners = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let losers = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!((winners, losers), (1, RACERS - 1), "{statuses:?}");
}

async fn reuse_revokes_the_whole_session_and_only_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.create_user().await;
    let (_, first) = app.login(&user).await;
    let (other_access, other_refresh) = app.login(&user).await;

    let rotated = expect_status(app.refresh(&first).await, StatusCode::OK).await;
    let (second, newer_access) = (
        string_field(&rotated, "refresh"),
        string_field(&rotated, "access"),
    );
    expect_status(app.verify(&newer_access).await, StatusCode::OK).await;

    // The spent token comes back: somebody else has a copy.
    expect_token_error(app.refresh(&first).await, "Token is blacklisted").await;

    expect_token_error(app.refresh(&second).await, "Token is blacklisted").await;
    expect_token_error(app.verify(&newer_access).await, "Token is blacklisted").await;
    expect_token_error(app.verify(&second).await, "Token is blacklisted").await;
    // The user's other session lives on.
    expect_status(app.verify(&other_access).await, StatusCode::OK).await;
    expect_status(app.refresh(&other_refresh).await, StatusCode::OK).await;
}

async fn grace_gives_the_same_successor_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.jwt.refresh_reuse_grace = Duration::from_secs(30)
    })
    .await;
    let user = app.create_user().await;

    // Within the grace period the predecessor gets the very same successor: no second branch.
    let (_, first) = app.login(&user).await;
    let successor = string_field(
        &expect_status(app.refresh(&first).await, StatusCode::OK).await,
        "refresh",
    );
    app.clock.advance(Duration::from_secs(20));
    let again = expect_status(app.refresh(&first).await, StatusCode::OK).await;
    assert_eq!(string_field(&again, "refresh"), successor);
    expect_status(
        app.verify(&string_field(&again, "access")).await,
        StatusCode::OK,
    )
    .await;

    // Once the successor itself is spent, the predecessor is no longer the immediate one.
    let third = string_field(
        &expect_status(app.refresh(&successor).await, StatusCode::OK).await,
        "refresh",
    );
    expect_token_error(app.refresh(&first).await, "Token is blacklisted").await;
    expect_token_error(app.verify(&third).await, "Token is blacklisted").await;

    // Past the grace period, reuse revokes the session.
    let (_, first) = app.login(&user).await;
    let successor = string_field(
        &expect_status(app.refresh(&first).await, StatusCode::OK).await,
        "refresh",
    );
    app.clock.advance(Duration::from_secs(31));
    expect_token_error(app.refresh(&first).await, "Token is blacklisted").await;
    expect_token_error(app.refresh(&successor).await, "Token is blacklisted").await;
}

#[tokio::test]
async fn rotation_never_extends_a_session_past_its_lifetime() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.jwt.session_lifetime = Duration::from_secs(3600);
        s.jwt.refresh_token_lifetime = Duration::from_secs(40 * 60);
    })
    .await;
    let (_, refresh) = app.login(&app.create_user().await).await;
    let login = claims_of(&refresh)["iat"].as_i64().unwrap();

    app.clock.advance(Duration::from_secs(30 * 60));
    let body = expect_status(app.refresh(&refresh).await, StatusCode::OK).await;
    let (refresh, access) = (
        string_field(&body, "refresh"),
        string_field(&body, "access"),
    );
    assert_eq!(
        claims_of(&refresh)["exp"].as_i64().unwrap(),
        login + 3600,
        "capped, not now + 40 min"
    );

    app.clock.advance(Duration::from_secs(28 * 60));
    let body = expect_status(app.refresh(&refresh).await, StatusCode::OK).await;
    let refresh = string_field(&body, "refresh");
    let access_exp = claims_of(&string_field(&body, "access"))["exp"]
        .as_i64()
        .unwrap();
    assert_eq!(
        access_exp,
        login + 3600,
        "access tokens end with the session too"
    );
    let _ = access;

    app.clock.advance(Duration::from_secs(2 * 60 + 1));
    expect_token_error(app.refresh(&refresh).await, "Token is expired").await;
}

/// Refresh reads users from a per-instance cache; a change made anywhere must still show in
/// the very next refreshed access token everywhere.
async fn a_user_change_through_one_instance_reaches_the_next_refresh_on_another(backend: Backend) {
    use jwtd::config::ExtraClaim;
    use jwtd::store::users::{AdminChange, ProfileChange};

    let one = TestApp::spawn_with(backend, |settings| {
        settings.jwt.access_token_extra_claims = vec![ExtraClaim::Username, ExtraClaim::IsStaff];
    })
    .await;
    let other = one.spawn_sibling().await;
    let user = one.create_user().await;
    let (_, mut refresh) = one.login(&user).await;
    let refresh_on_other = async |refresh: &mut String| {
        let body = expect_status(other.refresh(refresh).await, StatusCode::OK).await;
        *refresh = string_field(&body, "refresh");
        claims_of(&string_field(&body, "access"))
    };
    // Twice: the second refresh is served from the other instance's cache.
    for _ in 0..2 {
        let claims = refresh_on_other(&mut refresh).await;
        assert_eq!(claims["username"], user.username.as_str());
        assert_eq!(claims["is_staff"], false);
    }

    let promote = AdminChange {
        is_staff: Some(true),
        ..Default::default()
    };
    one.state
        .accounts
        .admin_update(user.id, promote)
        .await
        .unwrap();
    assert_eq!(refresh_on_other(&mut refresh).await["is_staff"], true);

    let renamed = format!("renamed-{}", uuid::Uuid::new_v4().simple());
    let rename = ProfileChange {
        username: Some(renamed.clone()),
        email: None,
    };
    let current = one.state.accounts.user(user.id).await.unwrap();
    one.state
        .accounts
        .update_profile(&current, rename)
        .await
        .unwrap();
    assert_eq!(
        refresh_on_other(&mut refresh).await["username"],
        renamed.as_str()
    );

    let deactivate = AdminChange {
        is_active: Some(false),
        ..Default::default()
    };
    one.state
        .accounts
        .admin_update(user.id, deactivate)
        .await
        .unwrap();
    expect_token_error(other.refresh(&refresh).await, "Token is blacklisted").await;
}
