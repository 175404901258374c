//! The OAuth 2.0 endpoints: grants, every RFC 6749 §5.2 error, scopes, revocation (RFC 7009),
//! introspection (RFC 7662) and the RFC 8414 metadata.

use reqwest::StatusCode;
use serde_json::json;

use jwtd_test_support::{
    Backend, PASSWORD, TestApp, TestClient, claims_of, expect_oauth_error, expect_status,
    expect_token_error, on_every_store, string_field,
};

on_every_store!(
    revoking_a_refresh_token_ends_its_session_everywhere,
    null_characters_are_refused_not_a_server_error
);

const ALL_GRANTS: [&str; 3] = ["password", "refresh_token", "client_credentials"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_refresh_and_client_credentials_grants() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let client = app.register_client(&ALL_GRANTS, &["read", "write"]).await;
    let user = app.create_user().await;

    let response = app
        .oauth_post(
            "/oauth/token",
            Some(&client),
            &[
                ("grant_type", "password"),
                ("username", &user.username),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    let issued = expect_status(response, StatusCode::OK).await;
    assert_eq!(issued["token_type"], "Bearer");
    assert_eq!(issued["expires_in"], 300);
    assert_eq!(
        issued["scope"], "read write",
        "all the client's scopes by default"
    );
    let access = string_field(&issued, "access_token");
    let claims = claims_of(&access);
    assert_eq!(claims["sub"], user.id.to_string());
    assert_eq!(claims["client_id"], client.id.as_str());
    assert_eq!(claims["scope"], "read write");
    expect_status(app.verify(&access).await, StatusCode::OK).await;
    // An OAuth client's token is for its resource servers, not for jwtd's own account API.
    let me = app.get_authed("/api/users/me/", &access).await;
    expect_token_error(me, "Token is invalid").await;

    // Refresh, authenticating in the body this time (client_secret_post), with JSON.
    let response = app
        .post_json(
            "/oauth/token",
            &json!({
                "grant_type": "refresh_token",
                "refresh_token": issued["refresh_token"],
                "client_id": client.id,
                "client_secret": client.secret,
            }),
        )
        .await;
    let refreshed = expect_status(response, StatusCode::OK).await;
    assert_ne!(refreshed["refresh_token"], issued["refresh_token"]);
    assert_eq!(refreshed["scope"], "read write");
    assert_eq!(
        claims_of(&string_field(&refreshed, "refresh_token"))["client_id"],
        client.id.as_str()
    );

    // Reuse of the rotated refresh token is detected: the session is revoked.
    let reuse = app
        .refresh_grant(&client, issued["refresh_token"].as_str().unwrap())
        .await;
    expect_oauth_error(reuse, StatusCode::BAD_REQUEST, "invalid_grant").await;
    expect_token_error(
        app.verify(&string_field(&refreshed, "access_token")).await,
        "Token is blacklisted",
    )
    .await;

    // Client credentials: a token for the client itself, without a user or a refresh token.
    let response = app
        .oauth_post(
            "/oauth/token",
            Some(&client),
            &[("grant_type", "client_credentials"), ("scope", "read")],
        )
        .await;
    let own = expect_status(response, StatusCode::OK).await;
    assert!(own.get("refresh_token").is_none(), "{own}");
    assert_eq!(own["scope"], "read");
    let own_claims = claims_of(&string_field(&own, "access_token"));
    assert_eq!(own_claims["sub"], client.id.as_str());
    assert_eq!(own_claims["client_id"], client.id.as_str());
    assert!(own_claims.get("user_id").is_none(), "{own_claims}");
    let own_access = string_field(&own, "access_token");
    expect_status(app.verify(&own_access).await, StatusCode::OK).await;
    // It is no user's token: the account endpoints refuse it.
    let me = app.get_authed("/api/users/me/", &own_access).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rfc6749_error() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let client = app.register_client(&ALL_GRANTS, &["read"]).await;
    let narrow = app.register_client(&["password"], &["read"]).await;
    let user = app.create_user().await;
    let username = user.username.as_str();
    let token = "/oauth/token";
    let password_grant = [
        ("grant_type", "password"),
        ("username", username),
        ("password", PASSWORD),
    ];
    let bad_request = StatusCode::BAD_REQUEST;

    // invalid_request: missing or repeated parameters, two authentication methods.
    for fields in [
        &[("username", username)][..],
        &[("grant_type", "password"), ("username", username)][..],
        &[("grant_type", "refresh_token")][..],
        &[("grant_type", "password"), ("grant_type", "password")][..],
    ] {
        let response = app.oauth_post(token, Some(&client), fields).await;
        expect_oauth_error(response, bad_request, "invalid_request").await;
    }
    let both = [
        ("grant_type", "client_credentials"),
        ("client_id", client.id.as_str()),
        ("client_secret", client.secret.as_str()),
    ];
    let response = app.oauth_post(token, Some(&client), &both).await;
    expect_oauth_error(response, bad_request, "invalid_request").await;
    let response = app
        .post_raw(token, "text/plain", "grant_type=password")
        .await;
    expect_oauth_error(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "invalid_request",
    )
    .await;

    // invalid_client: none, a wrong secret, an unknown client, a malformed header.
    let unauthorized = StatusCode::UNAUTHORIZED;
    let response = app.oauth_post(token, None, &password_grant).await;
    expect_oauth_error(response, unauthorized, "invalid_client").await;
    let wrong = TestClient {
        id: client.id.clone(),
        secret: "not-the-secret".into(),
    };
    let response = app.oauth_post(token, Some(&wrong), &password_grant).await;
    expect_oauth_error(response, unauthorized, "invalid_client").await;
    let unknown = TestClient {
        id: "no-such-client".into(),
        secret: client.secret.clone(),
    };
    let response = app.oauth_post(token, Some(&unknown), &password_grant).await;
    expect_oauth_error(response, unauthorized, "invalid_client").await;
    let response = app
        .client
        .post(app.url(token))
        .header("authorization", "Basic !!!not-base64")
        .form(&password_grant)
        .send()
        .await
        .unwrap();
    expect_oauth_error(response, unauthorized, "invalid_client").await;

    // invalid_grant: a wrong password, a forged refresh token, another client's refresh token.
    let wrong_password = [
        ("grant_type", "password"),
        ("username", username),
        ("password", "not the password"),
    ];
    let response = app.oauth_post(token, Some(&client), &wrong_password).await;
    expect_oauth_error(response, bad_request, "invalid_grant").await;
    let theirs = app.password_grant(&narrow, username, "").await;
    // A SimpleJWT refresh token was issued to no client: not refreshable here either.
    let (_, simplejwt_refresh) = app.login(&user).await;
    for refresh in [
        "abc.def.ghi",
        theirs["refresh_token"].as_str().unwrap(),
        simplejwt_refresh.as_str(),
    ] {
        let response = app.refresh_grant(&client, refresh).await;
        expect_oauth_error(response, bad_request, "invalid_grant").await;
    }

    // unauthorized_client: a grant the client was not registered for.
    let response = app
        .oauth_post(
            token,
            Some(&narrow),
            &[("grant_type", "client_credentials")],
        )
        .await;
    expect_oauth_error(response, bad_request, "unauthorized_client").await;

    // unsupported_grant_type.
    for grant in ["implicit", "authorization_code", ""] {
        let response = app
            .oauth_post(token, Some(&client), &[("grant_type", grant)])
            .await;
        let expected = if grant.is_empty() {
            "invalid_request"
        } else {
            "unsupported_grant_type"
        };
        expect_oauth_error(response, bad_request, expected).await;
    }

    // invalid_scope: beyond the client's scopes, or not a scope at all.
    for scope in ["read admin", "re\"ad"] {
        let fields = [("grant_type", "client_credentials"), ("scope", scope)];
        let response = app.oauth_post(token, Some(&client), &fields).await;
        expect_oauth_error(response, bad_request, "invalid_scope").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_cannot_widen_the_scope() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let client = app.register_client(&ALL_GRANTS, &["read", "write"]).await;
    let user = app.create_user().await;
    let refresh_with = async |refresh: String, scope: &str| {
        let fields = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("scope", scope),
        ];
        app.oauth_post("/oauth/token", Some(&client), &fields).await
    };

    // Granted "read": "write" is within the client's scopes, but was not granted.
    let narrow = app.password_grant(&client, &user.username, "read").await;
    assert_eq!(narrow["scope"], "read");
    let widened = refresh_with(string_field(&narrow, "refresh_token"), "read write").await;
    expect_oauth_error(widened, StatusCode::BAD_REQUEST, "invalid_scope").await;
    // A blank scope is an omitted one (RFC 6749 §3.2): the original grant.
    let same = refresh_with(string_field(&narrow, "refresh_token"), "").await;
    let same = expect_status(same, StatusCode::OK).await;
    assert_eq!(same["scope"], "read");
    assert_eq!(
        claims_of(&string_field(&same, "access_token"))["scope"],
        "read"
    );

    // Granted "read write": a refresh may narrow the access token; the refresh token keeps the
    // original scope (RFC 6749 §6), so a later refresh may ask for all of it again.
    let wide = app.password_grant(&client, &user.username, "").await;
    assert_eq!(wide["scope"], "read write");
    let narrowed = refresh_with(string_field(&wide, "refresh_token"), "write").await;
    let narrowed = expect_status(narrowed, StatusCode::OK).await;
    assert_eq!(narrowed["scope"], "write");
    assert_eq!(
        claims_of(&string_field(&narrowed, "access_token"))["scope"],
        "write"
    );
    let successor = string_field(&narrowed, "refresh_token");
    assert_eq!(claims_of(&successor)["scope"], "read write");
    let again = expect_status(refresh_with(successor, "").await, StatusCode::OK).await;
    assert_eq!(again["scope"], "read write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simplejwt_refresh_refuses_a_client_bound_refresh_token() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let client = app.register_client(&ALL_GRANTS, &[]).await;
    let user = app.create_user().await;
    let issued = app.password_grant(&client, &user.username, "").await;
    let refresh = string_field(&issued, "refresh_token");
    expect_token_error(app.refresh(&refresh).await, "Token is invalid").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let client = app.register_client(&ALL_GRANTS, &["read"]).await;
    let resource_server = app.register_client(&["client_credentials"], &[]).await;
    let user = app.create_user().await;
    let issued = app.password_grant(&client, &user.username, "").await;
    let access = string_field(&issued, "access_token");

    let response = app
        .oauth_post("/oauth/introspect", None, &[("token", &access)])
        .await;
    expect_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;

    let active = app.introspect(&resource_server, &access).await;
    let claims = claims_of(&access);
    assert_eq!(active["active"], true);
    assert_eq!(active["sub"], user.id.to_string());
    assert_eq!(active["client_id"], client.id.as_str());
    assert_eq!(active["scope"], "read");
    assert_eq!(active["token_type"], "Bearer");
    assert_eq!(active["token_use"], "access_token");
    assert_eq!(active["exp"], claims["exp"]);
    assert_eq!(active["iat"], claims["iat"]);
    assert_eq!(active["jti"], claims["jti"]);
    let refresh_info = app
        .introspect(&resource_server, &string_field(&issued, "refresh_token"))
        .await;
    assert_eq!(refresh_info["token_use"], "refresh_token");

    for inactive in ["garbage", "a.b.c"] {
        let body = app.introspect(&resource_server, inactive).await;
        assert_eq!(body, json!({"active": false}));
    }
    // Expired: inactive, and nothing else said.
    app.clock.advance(std::time::Duration::from_secs(301));
    assert_eq!(
        app.introspect(&resource_server, &access).await,
        json!({"active": false})
    );
}

async fn revoking_a_refresh_token_ends_its_session_everywhere(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.register_client(&ALL_GRANTS, &[]).await;
    let other = app.register_client(&ALL_GRANTS, &[]).await;
    let user = app.create_user().await;
    let issued = app.password_grant(&client, &user.username, "").await;
    let (access, refresh) = (
        string_field(&issued, "access_token"),
        string_field(&issued, "refresh_token"),
    );
    // Unknown and invalid tokens: 200, nothing to do.
    for token in ["garbage", "a.b.c"] {
        let response = app
            .oauth_post("/oauth/revoke", Some(&client), &[("token", token)])
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    // Another client may not revoke this client's token.
    let response = app
        .oauth_post("/oauth/revoke", Some(&other), &[("token", &refresh)])
        .await;
    expect_oauth_error(response, StatusCode::BAD_REQUEST, "unauthorized_client").await;
    assert_eq!(app.introspect(&other, &access).await["active"], true);
    // Nor a token issued to no client (from /api/token/): that is the user's own to blacklist.
    let (first_party, _) = app.login(&user).await;
    let response = app
        .oauth_post("/oauth/revoke", Some(&client), &[("token", &first_party)])
        .await;
    expect_oauth_error(response, StatusCode::BAD_REQUEST, "unauthorized_client").await;
    expect_status(app.verify(&first_party).await, StatusCode::OK).await;

    // The hint is not trusted: an access-token hint on a refresh token still ends the session.
    let response = app
        .oauth_post(
            "/oauth/revoke",
            Some(&client),
            &[("token", &refresh), ("token_type_hint", "access_token")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        app.introspect(&client, &refresh).await,
        json!({"active": false})
    );
    assert_eq!(
        app.introspect(&client, &access).await,
        json!({"active": false})
    );
    expect_token_error(app.verify(&access).await, "Token is blacklisted").await;
    let again = app.refresh_grant(&client, &refresh).await;
    expect_oauth_error(again, StatusCode::BAD_REQUEST, "invalid_grant").await;

    // Revoking an access token revokes just it: the session's refresh token still works.
    let issued = app.password_grant(&client, &user.username, "").await;
    let access = string_field(&issued, "access_token");
    let response = app
        .oauth_post("/oauth/revoke", Some(&client), &[("token", &access)])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        app.introspect(&client, &access).await,
        json!({"active": false})
    );
    let refreshed = app
        .refresh_grant(&client, issued["refresh_token"].as_str().unwrap())
        .await;
    expect_status(refreshed, StatusCode::OK).await;
}

#[tokio::test]
async fn metadata_lists_the_endpoints_grants_and_algorithms() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let metadata = expect_status(
        app.get("/.well-known/oauth-authorization-server").await,
        StatusCode::OK,
    )
    .await;
    let base = &app.address;
    assert_eq!(metadata["issuer"], base.as_str());
    assert_eq!(metadata["token_endpoint"], format!("{base}/oauth/token"));
    assert_eq!(
        metadata["revocation_endpoint"],
        format!("{base}/oauth/revoke")
    );
    assert_eq!(
        metadata["introspection_endpoint"],
        format!("{base}/oauth/introspect")
    );
    assert_eq!(
        metadata["jwks_uri"],
        format!("{base}/.well-known/jwks.json")
    );
    assert_eq!(
        metadata["grant_types_supported"],
        json!(["password", "refresh_token", "client_credentials"])
    );
    assert_eq!(
        metadata["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(
        metadata["access_token_signing_alg_values_supported"],
        json!(["HS256"])
    );
}

#[tokio::test]
async fn a_deleted_client_cannot_authenticate_and_its_own_tokens_are_revoked() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let client = app.register_client(&["client_credentials"], &[]).await;
    let response = app
        .oauth_post(
            "/oauth/token",
            Some(&client),
            &[("grant_type", "client_credentials")],
        )
        .await;
    let access = string_field(
        &expect_status(response, StatusCode::OK).await,
        "access_token",
    );
    app.clock.advance(std::time::Duration::from_millis(5));
    app.state.clients.delete(&client.id).await.unwrap();
    expect_token_error(app.verify(&access).await, "Token is blacklisted").await;
    let response = app
        .oauth_post(
            "/oauth/token",
            Some(&client),
            &[("grant_type", "client_credentials")],
        )
        .await;
    expect_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

#[tokio::test]
async fn a_rotated_secret_replaces_the_old_one_at_once() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let client = app.register_client(&["client_credentials"], &[]).await;
    let rotated = app.state.clients.rotate_secret(&client.id).await.unwrap();
    let grant = [("grant_type", "client_credentials")];
    let response = app.oauth_post("/oauth/token", Some(&client), &grant).await;
    expect_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let renewed = TestClient {
        id: client.id.clone(),
        secret: rotated.secret,
    };
    let response = app.oauth_post("/oauth/token", Some(&renewed), &grant).await;
    expect_status(response, StatusCode::OK).await;
}

async fn null_characters_are_refused_not_a_server_error(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.register_client(&ALL_GRANTS, &[]).await;
    let response = app
        .post_json(
            "/api/token/",
            &json!({"username": "a\0b", "password": PASSWORD}),
        )
        .await;
    let body = expect_status(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        body["fields"]["username"],
        json!(["Null characters are not allowed."])
    );
    let in_body = [
        ("grant_type", "client_credentials"),
        ("client_id", "a\0b"),
        ("client_secret", "x"),
    ];
    let response = app.oauth_post("/oauth/token", None, &in_body).await;
    expect_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    let in_basic = TestClient {
        id: "a\0b".into(),
        secret: client.secret.clone(),
    };
    let response = app
        .oauth_post(
            "/oauth/token",
            Some(&in_basic),
            &[("grant_type", "client_credentials")],
        )
        .await;
    expect_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let nul_user = [
        ("grant_type", "password"),
        ("username", "a\0b"),
        ("password", PASSWORD),
    ];
    let response = app
        .oauth_post("/oauth/token", Some(&client), &nul_user)
        .await;
    expect_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
}
