//! Forged and malformed tokens are refused as invalid: never accepted, never a 500.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use jwtd_test_support::{
    Backend, TestApp, claims_of, expect_status, expect_token_error, header_of,
};

const DEV_KEY: &[u8] = jwtd::config::DEVELOPMENT_SIGNING_KEY.as_bytes();

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

fn sign(alg: Algorithm, kid: &str, claims: &Value, key: &[u8]) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(key)).unwrap()
}

#[tokio::test]
async fn forged_tokens_are_invalid() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (access, refresh) = app.login(&app.create_user().await).await;
    let kid = header_of(&access)["kid"].as_str().unwrap().to_owned();
    let claims = claims_of(&access);
    // Sanity: a token we sign ourselves with the real key and kid is accepted.
    expect_status(
        app.verify(&sign(Algorithm::HS256, &kid, &claims, DEV_KEY))
            .await,
        StatusCode::OK,
    )
    .await;

    let [header_part, payload_part, signature] = access.split('.').collect::<Vec<_>>()[..] else {
        unreachable!()
    };
    let mut forged = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = b64(&json!({"alg": alg, "typ": "JWT", "kid": kid}));
        forged.push(format!("{header}.{payload_part}."));
        forged.push(format!("{header}.{payload_part}.{signature}"));
    }
    forged.push(sign(Algorithm::HS512, &kid, &claims, DEV_KEY));
    forged.push(sign(Algorithm::HS384, &kid, &claims, DEV_KEY));
    forged.push(sign(
        Algorithm::HS256,
        &kid,
        &claims,
        b"some other key that is long enough!!",
    ));
    forged.push(sign(Algorithm::HS256, "unknown-kid", &claims, DEV_KEY));
    let mut edited = claims.clone();
    edited["user_id"] = json!(uuid::Uuid::new_v4().to_string());
    forged.push(format!("{header_part}.{}.{signature}", b64(&edited)));
    let mut no_kid = Header::new(Algorithm::HS256);
    no_kid.kid = None;
    forged
        .push(jsonwebtoken::encode(&no_kid, &claims, &EncodingKey::from_secret(DEV_KEY)).unwrap());

    // Correctly signed, but the claims are wrong: missing, mistyped, or inconsistent.
    let mut bad_claims = Vec::new();
    for name in ["exp", "iat", "jti", "user_id", "sub", "sid", "token_type"] {
        let mut c = claims.clone();
        c.as_object_mut().unwrap().remove(name);
        bad_claims.push(c);
    }
    for (name, value) in [
        ("exp", json!("9999999999")),
        ("exp", json!(1.5e10)),
        ("iat", json!(null)),
        ("user_id", json!(42)),
        ("sub", json!("someone-else")),
        ("sid", json!("not-a-uuid")),
        ("sid", json!(uuid::Uuid::new_v4().to_string())),
        ("token_type", json!("id")),
        ("jti", json!(["a"])),
    ] {
        let mut c = claims.clone();
        c[name] = value;
        bad_claims.push(c);
    }
    forged.extend(
        bad_claims
            .iter()
            .map(|c| sign(Algorithm::HS256, &kid, c, DEV_KEY)),
    );

    for token in forged {
        let response = app.verify(&token).await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "accepted or crashed on {token}"
        );
        expect_token_error(response, "Token is invalid").await;
    }
    expect_status(app.verify(&refresh).await, StatusCode::OK).await;
}

#[tokio::test]
async fn strings_that_are_not_compact_jws_are_invalid() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let huge = format!(
        "{}.{}.{}",
        "e".repeat(20_000),
        "e".repeat(20_000),
        "e".repeat(20_000)
    );
    for token in [
        "x", "a.b", "a.b.c", "a.b.c.d", "..", "...", "ey.ey.ey", "ñ.ñ.ñ", &huge,
    ] {
        for endpoint in [
            "/api/token/verify/",
            "/api/token/refresh/",
            "/api/token/blacklist/",
        ] {
            let field = if endpoint.ends_with("verify/") {
                "token"
            } else {
                "refresh"
            };
            let response = app.post_json(endpoint, &json!({ field: token })).await;
            expect_token_error(response, "Token is invalid").await;
        }
    }
}
