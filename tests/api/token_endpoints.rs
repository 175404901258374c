//! SimpleJWT compatibility: exact success bodies, claim set, JSON and form, trailing slashes.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use jwtd_test_support::{
    Backend, PASSWORD, TestApp, claims_of, expect_status, expect_token_error, header_of,
    on_every_store, string_field,
};

on_every_store!(
    obtain_answers_exactly_a_token_pair,
    verify_accepts_access_and_refresh,
    blacklist_logs_the_session_out,
    a_token_verified_before_is_refused_once_revoked_or_expired,
    verifies_sent_after_a_revocation_returns_are_refused_at_every_instance
);

async fn obtain_answers_exactly_a_token_pair(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.create_user().await;
    let response = app
        .post_json(
            "/api/token/",
            &json!({"username": user.username, "password": PASSWORD}),
        )
        .await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = expect_status(response, StatusCode::OK).await;
    let mut keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["access", "refresh"]);
}

async fn verify_accepts_access_and_refresh(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (access, refresh) = app.login(&app.create_user().await).await;
    for token in [&access, &refresh] {
        let body = expect_status(app.verify(token).await, StatusCode::OK).await;
        assert_eq!(body, json!({}));
    }
}

async fn blacklist_logs_the_session_out(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.create_user().await;
    let (access, refresh) = app.login(&user).await;
    let (other_access, other_refresh) = app.login(&user).await;

    let body = expect_status(app.blacklist(&refresh).await, StatusCode::OK).await;
    assert_eq!(body, json!({}));

    expect_token_error(app.refresh(&refresh).await, "Token is blacklisted").await;
    expect_token_error(app.verify(&refresh).await, "Token is blacklisted").await;
    expect_token_error(app.verify(&access).await, "Token is blacklisted").await;
    expect_token_error(app.blacklist(&refresh).await, "Token is blacklisted").await;
    // The user's other session is untouched.
    expect_status(app.verify(&other_access).await, StatusCode::OK).await;
    expect_status(app.refresh(&other_refresh).await, StatusCode::OK).await;
}

/// Each instance keeps the access tokens it has checked (`jwt.verified_cache_bytes`); a
/// token verified before, at this instance and at another, is still refused the moment its
/// session is revoked (anywhere), and once it expires.
async fn a_token_verified_before_is_refused_once_revoked_or_expired(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sibling = app.spawn_sibling().await;
    let user = app.create_user().await;
    let (access, refresh) = app.login(&user).await;
    let (other_access, _) = app.login(&user).await;
    for instance in [&app, &sibling] {
        for token in [&access, &other_access] {
            expect_status(instance.verify(token).await, StatusCode::OK).await;
            expect_status(instance.verify(token).await, StatusCode::OK).await;
        }
    }
    expect_status(app.blacklist(&refresh).await, StatusCode::OK).await;
    for instance in [&app, &sibling] {
        expect_token_error(instance.verify(&access).await, "Token is blacklisted").await;
        expect_status(instance.verify(&other_access).await, StatusCode::OK).await;
    }
    // Valid through its `exp` second (5 minutes), expired after it, on each instance's clock.
    for instance in [&app, &sibling] {
        instance.clock.advance(Duration::from_secs(301));
        expect_token_error(instance.verify(&other_access).await, "Token is expired").await;
    }
}

const LEASE_HITS: &str = r#"jwtd_revocation_lookups_total{answered="lease"}"#;

/// Verifies at two instances, two at a time each, both reusing lookups under their revocation
/// leases; the session is revoked at one of them. Every verify sent after the revocation
/// returned is refused, at either instance.
async fn verifies_sent_after_a_revocation_returns_are_refused_at_every_instance(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sibling = app.spawn_sibling().await;
    let (access, refresh) = app.login(&app.create_user().await).await;
    let revocation = Revocation::default();
    let load = |instance| verify_until_well_after(instance, &access, &revocation);
    let revoke = async {
        // Once both instances answer from their leases.
        let deadline = Instant::now() + Duration::from_secs(10);
        while app.metric(LEASE_HITS).await < 20.0 || sibling.metric(LEASE_HITS).await < 20.0 {
            assert!(Instant::now() < deadline, "no answers from a lease");
            tokio::task::yield_now().await;
        }
        expect_status(app.blacklist(&refresh).await, StatusCode::OK).await;
        *revocation.returned.lock().unwrap() = Some(Instant::now());
    };
    let ((), a, b, c, d) = tokio::join!(
        revoke,
        load(&app),
        load(&app),
        load(&sibling),
        load(&sibling)
    );
    for accepted_after in [a, b, c, d] {
        assert!(accepted_after.is_empty(), "{accepted_after:?}");
    }
}

#[derive(Default)]
struct Revocation {
    /// When the revocation's answer arrived.
    returned: Mutex<Option<Instant>>,
    /// Verifies sent after that, at every instance.
    verifies_after: AtomicUsize,
}

/// Verifies `token` at `instance` one after another until 400 verifies (of all loads) were
/// sent after the revocation returned; the statuses of those that were not refused.
async fn verify_until_well_after(
    instance: &TestApp,
    token: &str,
    revocation: &Revocation,
) -> Vec<StatusCode> {
    let mut accepted_after = Vec::new();
    loop {
        let sent = Instant::now();
        let status = instance.verify(token).await.status();
        let returned = *revocation.returned.lock().unwrap();
        if returned.is_some_and(|at| sent > at) {
            if status != StatusCode::UNAUTHORIZED {
                accepted_after.push(status);
            }
            if revocation.verifies_after.fetch_add(1, Ordering::SeqCst) >= 400 {
                return accepted_after;
            }
        }
    }
}

#[tokio::test]
async fn tokens_carry_exactly_the_contract_claims() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let user = app.create_user().await;
    let (access, refresh) = app.login(&user).await;
    let kid = header_of(&access)["kid"].clone();
    assert!(kid.as_str().is_some_and(|kid| !kid.is_empty()));
    for (token, token_type, lifetime) in [(&access, "access", 300), (&refresh, "refresh", 86_400)] {
        assert_eq!(
            header_of(token),
            json!({"alg": "HS256", "typ": "JWT", "kid": kid})
        );
        let claims = claims_of(token);
        let mut names: Vec<_> = claims.as_object().unwrap().keys().cloned().collect();
        names.sort();
        assert_eq!(
            names,
            ["exp", "iat", "jti", "sid", "sub", "token_type", "user_id"]
        );
        assert_eq!(claims["token_type"], token_type);
        assert_eq!(claims["user_id"], user.id.to_string());
        assert_eq!(claims["sub"], user.id.to_string());
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            lifetime
        );
        let jti = claims["jti"].as_str().unwrap();
        assert!(
            jti.len() == 32 && jti.chars().all(|c| c.is_ascii_hexdigit()),
            "{jti}"
        );
    }
    assert_eq!(claims_of(&access)["sid"], claims_of(&refresh)["sid"]);
    assert_ne!(claims_of(&access)["jti"], claims_of(&refresh)["jti"]);
}

#[tokio::test]
async fn form_bodies_and_paths_without_trailing_slash_work_everywhere() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let user = app.create_user().await;
    let body = expect_status(
        app.post_form(
            "/api/token",
            &[("username", &user.username), ("password", PASSWORD)],
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let refresh = string_field(&body, "refresh");
    let access = string_field(&body, "access");
    let refreshed = expect_status(
        app.post_form("/api/token/refresh", &[("refresh", &refresh)])
            .await,
        StatusCode::OK,
    )
    .await;
    expect_status(
        app.post_form("/api/token/verify", &[("token", &access)])
            .await,
        StatusCode::OK,
    )
    .await;
    let new_refresh = string_field(&refreshed, "refresh");
    expect_status(
        app.post_form("/api/token/blacklist", &[("refresh", &new_refresh)])
            .await,
        StatusCode::OK,
    )
    .await;
    expect_token_error(
        app.post_form("/api/token/verify/", &[("token", &new_refresh)])
            .await,
        "Token is blacklisted",
    )
    .await;
}

#[tokio::test]
async fn refresh_rotates_by_default_and_answers_access_only_without_rotation() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (_, refresh) = app.login(&app.create_user().await).await;
    let response = app.refresh(&refresh).await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = expect_status(response, StatusCode::OK).await;
    assert_eq!(
        claims_of(&string_field(&body, "refresh"))["sid"],
        claims_of(&refresh)["sid"]
    );

    let app = TestApp::spawn_with(Backend::Sqlite, |s| s.jwt.rotate_refresh_tokens = false).await;
    let (_, refresh) = app.login(&app.create_user().await).await;
    for _ in 0..2 {
        let body = expect_status(app.refresh(&refresh).await, StatusCode::OK).await;
        assert_eq!(
            body.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["access"]
        );
    }
}

#[tokio::test]
async fn rotation_without_blacklisting_keeps_old_refresh_tokens_usable() {
    let app =
        TestApp::spawn_with(Backend::Sqlite, |s| s.jwt.blacklist_after_rotation = false).await;
    let (_, refresh) = app.login(&app.create_user().await).await;
    let first = expect_status(app.refresh(&refresh).await, StatusCode::OK).await;
    let second = expect_status(app.refresh(&refresh).await, StatusCode::OK).await;
    assert_ne!(first["refresh"], second["refresh"]);
}

#[tokio::test]
async fn issuer_audience_and_claim_names_follow_the_configuration() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.jwt.issuer = Some("https://auth.example.com".into());
        s.jwt.audience = Some("https://api.example.com".into());
        s.jwt.user_id_claim = "uid".into();
        s.jwt.token_type_claim = "typ".into();
    })
    .await;
    let user = app.create_user().await;
    let (access, _) = app.login(&user).await;
    let claims = claims_of(&access);
    assert_eq!(claims["iss"], "https://auth.example.com");
    assert_eq!(claims["aud"], "https://api.example.com");
    assert_eq!(claims["uid"], user.id.to_string());
    assert_eq!(claims["typ"], "access");
    assert!(claims.get("user_id").is_none() && claims.get("token_type").is_none());
    expect_status(app.verify(&access).await, StatusCode::OK).await;

    // The same key without iss / aud configured: its tokens are refused where they are required.
    let plain = TestApp::spawn(Backend::Sqlite).await;
    let (plain_access, _) = plain.login(&plain.create_user().await).await;
    expect_token_error(app.verify(&plain_access).await, "Token is invalid").await;
}

#[tokio::test]
async fn leeway_tolerates_exactly_the_configured_skew() {
    let app =
        TestApp::spawn_with(Backend::Sqlite, |s| s.jwt.leeway = Duration::from_secs(30)).await;
    let (access, _) = app.login(&app.create_user().await).await;
    app.clock.advance(Duration::from_secs(300 + 30));
    expect_status(app.verify(&access).await, StatusCode::OK).await;
    app.clock.advance(Duration::from_secs(1));
    expect_token_error(app.verify(&access).await, "Token is expired").await;
}

#[tokio::test]
async fn update_last_login_records_the_login() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| s.jwt.update_last_login = true).await;
    let user = app.create_user().await;
    assert!(user.last_login.is_none());
    app.login(&user).await;
    let stored = app.state.users.find_by_id(user.id).await.unwrap().unwrap();
    assert!(stored.last_login.is_some());

    let app = TestApp::spawn(Backend::Sqlite).await;
    let user = app.create_user().await;
    app.login(&user).await;
    assert!(
        app.state
            .users
            .find_by_id(user.id)
            .await
            .unwrap()
            .unwrap()
            .last_login
            .is_none()
    );
}

#[tokio::test]
async fn usernames_match_after_normalisation() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.create_named_user("Alice", PASSWORD).await;
    for spelling in ["alice", "ALICE", "ａｌｉｃｅ"] {
        let response = app
            .post_json(
                "/api/token/",
                &json!({"username": spelling, "password": PASSWORD}),
            )
            .await;
        expect_status(response, StatusCode::OK).await;
    }
}

#[tokio::test]
async fn a_stored_hash_with_old_parameters_is_upgraded_on_login() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let user = app.create_user().await;
    let weak = jwtd::password::Passwords::new(&jwtd::config::PasswordSettings {
        argon2: jwtd::config::Argon2Settings {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        max_concurrent_hashes: 1,
        max_new_password_hashes: 0,
        hash_queue_timeout: Duration::from_secs(5),
    })
    .unwrap();
    let old_hash = weak.hash(PASSWORD.into()).await.unwrap();
    app.state
        .users
        .set_password_hash(user.id, old_hash.clone())
        .await
        .unwrap();

    app.login(&user).await;
    let upgraded = app
        .state
        .users
        .credentials_by_id(user.id)
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    assert_ne!(upgraded, old_hash);
    assert!(
        upgraded.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{upgraded}"
    );
    app.login(&user).await;
}

#[tokio::test]
async fn health_docs_and_spec_are_served() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let live = expect_status(app.get("/health/live").await, StatusCode::OK).await;
    assert_eq!(live["status"], "ok");
    let ready = expect_status(app.get("/health/ready").await, StatusCode::OK).await;
    assert_eq!(
        ready["checks"],
        json!({"database": "ok", "revocation_store": "ok"})
    );
    let spec = expect_status(app.get("/openapi.json").await, StatusCode::OK).await;
    assert_eq!(
        spec,
        serde_json::from_str::<serde_json::Value>(&jwtd::http::openapi_spec()).unwrap()
    );
    let docs = app.get("/docs").await;
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("swagger"));
}

#[tokio::test]
async fn hs384_and_hs512_sign_and_verify_with_their_own_kid() {
    let mut kids = Vec::new();
    for algorithm in ["HS384", "HS512"] {
        let app = TestApp::spawn_with(Backend::Sqlite, |s| {
            s.jwt.algorithm = algorithm.parse().unwrap();
            s.jwt.signing_key = Some("k".repeat(64).into());
        })
        .await;
        let (access, refresh) = app.login(&app.create_user().await).await;
        assert_eq!(header_of(&access)["alg"], algorithm);
        expect_status(app.verify(&access).await, StatusCode::OK).await;
        expect_status(app.refresh(&refresh).await, StatusCode::OK).await;
        kids.push(header_of(&access)["kid"].clone());
    }
    assert_ne!(
        kids[0], kids[1],
        "one secret under two algorithms is two keys"
    );
}

#[tokio::test]
async fn access_tokens_carry_the_configured_extra_claims_as_of_now() {
    use jwtd::config::ExtraClaim;
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.jwt.access_token_extra_claims = vec![ExtraClaim::Username, ExtraClaim::IsStaff];
    })
    .await;
    let user = app.create_user().await;
    let (access, refresh) = app.login(&user).await;
    assert_eq!(claims_of(&access)["username"], user.username);
    assert_eq!(claims_of(&access)["is_staff"], false);
    assert!(
        claims_of(&refresh).get("username").is_none(),
        "refresh tokens carry no extras"
    );
    expect_status(app.verify(&access).await, StatusCode::OK).await;

    // A refresh reflects the user as they are now, once changed through jwtd (which tells
    // every instance's user cache; the verify above cached them).
    let change = jwtd::store::users::AdminChange {
        is_staff: Some(true),
        ..Default::default()
    };
    app.state
        .accounts
        .admin_update(user.id, change)
        .await
        .unwrap();
    let body = expect_status(app.refresh(&refresh).await, StatusCode::OK).await;
    assert_eq!(claims_of(&string_field(&body, "access"))["is_staff"], true);
}
