//! Asymmetric keys: every algorithm round trips, the JWKS publishes exactly the public keys
//! (kid = RFC 7638 thumbprint), rotation keeps previous keys verifying, and key confusion fails.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use jwtd::Settings;
use jwtd::config::SigningAlgorithm;
use jwtd::token::KeySet;
use jwtd::token::keygen::generate_key_pair;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use jwtd_test_support::{
    Backend, TestApp, claims_of, expect_status, expect_token_error, header_of, string_field,
};

/// A key pair written to `dir`: (private key file, public key file).
pub fn key_files(dir: &Path, algorithm: Algorithm, name: &str) -> (PathBuf, PathBuf) {
    let pair = generate_key_pair(algorithm, 2048).unwrap();
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    std::fs::write(&private, pair.private_pem).unwrap();
    std::fs::write(&public, pair.public_pem).unwrap();
    (private, public)
}

pub async fn spawn_signing_with(
    database_dir: &Path,
    algorithm: Algorithm,
    private: &Path,
    previous: &[PathBuf],
) -> TestApp {
    let database_url = format!(
        "sqlite://{}?mode=rwc",
        database_dir.join("shared.db").display()
    );
    let (private, previous) = (private.to_owned(), previous.to_vec());
    TestApp::spawn_with(Backend::Sqlite, move |settings| {
        settings.database.url = database_url.into();
        settings.jwt.algorithm = format!("{algorithm:?}").parse().unwrap();
        settings.jwt.private_key_file = Some(private);
        settings.jwt.previous_public_key_files = previous;
    })
    .await
}

async fn jwks(app: &TestApp) -> Vec<Value> {
    let response = app.get("/.well-known/jwks.json").await;
    let cache = response.headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(cache, "public, max-age=300");
    let body = expect_status(response, StatusCode::OK).await;
    body["keys"].as_array().unwrap().clone()
}

/// RFC 7638 §3.2: SHA-256 over the required members, sorted, no whitespace.
fn thumbprint(jwk: &Value) -> String {
    let canonical = match jwk["kty"].as_str().unwrap() {
        "OKP" => json!({"crv": jwk["crv"], "kty": "OKP", "x": jwk["x"]}),
        "EC" => json!({"crv": jwk["crv"], "kty": "EC", "x": jwk["x"], "y": jwk["y"]}),
        "RSA" => json!({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}),
        other => panic!("unexpected kty {other}"),
    };
    // serde_json's map is sorted (no preserve_order), so this is the canonical form.
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.to_string().as_bytes()))
}

fn assert_only_public_members(jwk: &Value) {
    let allowed = ["kty", "kid", "alg", "use", "crv", "x", "y", "n", "e"];
    for member in jwk.as_object().unwrap().keys() {
        assert!(allowed.contains(&member.as_str()), "{member} in {jwk}");
    }
    for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
        assert!(jwk.get(private).is_none(), "{private} published in {jwk}");
    }
    assert_eq!(jwk["use"], "sig");
}

/// Verifies `token` the way another service would: only with the JWKS entry named by its kid.
fn verify_offline(token: &str, keys: &[Value]) -> Value {
    let kid = header_of(token)["kid"].as_str().unwrap().to_owned();
    let jwk_json = keys.iter().find(|k| k["kid"] == kid.as_str()).unwrap();
    let jwk: Jwk = serde_json::from_value(jwk_json.clone()).unwrap();
    let algorithm: Algorithm = jwk_json["alg"].as_str().unwrap().parse().unwrap();
    let mut validation = Validation::new(algorithm);
    validation.validate_aud = false;
    let key = DecodingKey::from_jwk(&jwk).unwrap();
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .unwrap()
        .claims
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_algorithm_round_trips_and_verifies_offline_with_the_jwks() {
    let dir = tempfile::tempdir().unwrap();
    let algorithms = [
        Algorithm::EdDSA,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ];
    for algorithm in algorithms {
        let (private, _) = key_files(dir.path(), algorithm, &format!("{algorithm:?}"));
        let app = spawn_signing_with(dir.path(), algorithm, &private, &[]).await;
        let user = app.create_user().await;
        let (access, refresh) = app.login(&user).await;

        let header = header_of(&access);
        assert_eq!(header["alg"], format!("{algorithm:?}"));
        assert_eq!(header["typ"], "JWT");
        let keys = jwks(&app).await;
        assert_eq!(keys.len(), 1);
        assert_only_public_members(&keys[0]);
        assert_eq!(keys[0]["kid"], header["kid"], "{algorithm:?}");
        assert_eq!(keys[0]["kid"], thumbprint(&keys[0]).as_str());
        assert_eq!(keys[0]["alg"], format!("{algorithm:?}"));

        let claims = verify_offline(&access, &keys);
        assert_eq!(claims["sub"], user.id.to_string());
        expect_status(app.verify(&access).await, StatusCode::OK).await;
        let refreshed = expect_status(app.refresh(&refresh).await, StatusCode::OK).await;
        verify_offline(&string_field(&refreshed, "access"), &keys);
        let me = app.get_authed("/api/users/me/", &access).await;
        expect_status(me, StatusCode::OK).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_the_previous_key_verify_after_rotation_and_not_after_its_removal() {
    let dir = tempfile::tempdir().unwrap();
    let (old_private, old_public) = key_files(dir.path(), Algorithm::EdDSA, "old");
    let (new_private, _) = key_files(dir.path(), Algorithm::ES256, "new");

    let before = spawn_signing_with(dir.path(), Algorithm::EdDSA, &old_private, &[]).await;
    let user = before.create_user().await;
    let (old_access, old_refresh) = before.login(&user).await;
    let old_kid = header_of(&old_access)["kid"].clone();
    drop(before);

    let rotated = spawn_signing_with(
        dir.path(),
        Algorithm::ES256,
        &new_private,
        std::slice::from_ref(&old_public),
    )
    .await;
    let keys = jwks(&rotated).await;
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["alg"], "ES256", "the signing key comes first");
    assert_eq!(keys[1]["kid"], old_kid);
    assert_eq!(keys[1]["alg"], "EdDSA");
    keys.iter().for_each(assert_only_public_members);
    expect_status(rotated.verify(&old_access).await, StatusCode::OK).await;
    // The old refresh token still refreshes, and its successors are signed by the new key.
    let refreshed = expect_status(rotated.refresh(&old_refresh).await, StatusCode::OK).await;
    let new_access = string_field(&refreshed, "access");
    assert_eq!(header_of(&new_access)["kid"], keys[0]["kid"]);
    verify_offline(&new_access, &keys);
    drop(rotated);

    // Once the previous key is removed, its tokens name an unknown kid: refused.
    let after = spawn_signing_with(dir.path(), Algorithm::ES256, &new_private, &[]).await;
    assert_eq!(jwks(&after).await.len(), 1);
    expect_token_error(after.verify(&old_access).await, "Token is invalid").await;
    expect_status(after.verify(&new_access).await, StatusCode::OK).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hmac_tokens_made_with_the_public_key_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for algorithm in [Algorithm::RS256, Algorithm::EdDSA] {
        let (private, public) = key_files(dir.path(), algorithm, &format!("{algorithm:?}"));
        let app = spawn_signing_with(dir.path(), algorithm, &private, &[]).await;
        let (access, _) = app.login(&app.create_user().await).await;
        let kid = header_of(&access)["kid"].as_str().unwrap().to_owned();
        let claims = claims_of(&access);
        let jwk = &jwks(&app).await[0];
        let public_pem = std::fs::read(&public).unwrap();
        let raw_x = jwk["x"]
            .as_str()
            .map(|x| URL_SAFE_NO_PAD.decode(x).unwrap());
        let secrets: Vec<Vec<u8>> = [Some(public_pem), raw_x].into_iter().flatten().collect();
        for secret in secrets {
            for hmac in [Algorithm::HS256, Algorithm::HS512] {
                let mut header = Header::new(hmac);
                header.kid = Some(kid.clone());
                let forged =
                    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&secret))
                        .unwrap();
                expect_token_error(app.verify(&forged).await, "Token is invalid").await;
            }
        }
        // An unknown kid is refused too.
        let mut header = header_of(&access);
        header["kid"] = json!("not-a-key-of-ours");
        let payload = access.split_once('.').unwrap().1;
        let renamed = format!(
            "{}.{payload}",
            URL_SAFE_NO_PAD.encode(header.to_string().as_bytes())
        );
        expect_token_error(app.verify(&renamed).await, "Token is invalid").await;
    }
}

#[tokio::test]
async fn an_hmac_deployment_publishes_no_keys() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    assert!(jwks(&app).await.is_empty());
}

#[test]
fn mixing_hmac_and_asymmetric_keys_is_refused_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = key_files(dir.path(), Algorithm::EdDSA, "ed");
    let refused = |configure: &dyn Fn(&mut Settings)| {
        let mut settings = Settings::defaults();
        configure(&mut settings);
        match KeySet::from_settings(&settings.jwt) {
            Ok(_) => panic!("accepted"),
            Err(err) => err.to_string(),
        }
    };
    let hmac_with_private_key = refused(&|s| s.jwt.private_key_file = Some(private.clone()));
    assert!(
        hmac_with_private_key.contains("cannot be mixed"),
        "{hmac_with_private_key}"
    );
    let hmac_with_public_keys =
        refused(&|s| s.jwt.previous_public_key_files = vec![public.clone()]);
    assert!(
        hmac_with_public_keys.contains("cannot be mixed"),
        "{hmac_with_public_keys}"
    );
    let asymmetric_with_secret = refused(&|s| {
        s.jwt.algorithm = SigningAlgorithm::EdDSA;
        s.jwt.private_key_file = Some(private.clone());
        s.jwt.signing_key = Some("an-operator-chosen-hmac-secret-of-some-length".into());
    });
    assert!(
        asymmetric_with_secret.contains("cannot be mixed"),
        "{asymmetric_with_secret}"
    );
    let without_key = refused(&|s| s.jwt.algorithm = SigningAlgorithm::EdDSA);
    assert!(without_key.contains("private_key_file"), "{without_key}");
    // A key of the wrong type for the algorithm fails at startup, not at the first login.
    let wrong_type = refused(&|s| {
        s.jwt.algorithm = SigningAlgorithm::ES256;
        s.jwt.private_key_file = Some(private.clone());
    });
    assert!(wrong_type.contains("is not"), "{wrong_type}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rsa_key_can_be_kept_under_its_stated_algorithm() {
    let dir = tempfile::tempdir().unwrap();
    let (old_private, old_public) = key_files(dir.path(), Algorithm::RS256, "old");
    let (new_private, new_public) = key_files(dir.path(), Algorithm::PS256, "new");
    let before = spawn_signing_with(dir.path(), Algorithm::RS256, &old_private, &[]).await;
    let (old_access, _) = before.login(&before.create_user().await).await;
    drop(before);

    // Unstated, a previous RSA key takes the active algorithm (PS256): the RS256 token fails.
    let unstated = std::slice::from_ref(&old_public);
    let guessed = spawn_signing_with(dir.path(), Algorithm::PS256, &new_private, unstated).await;
    expect_token_error(guessed.verify(&old_access).await, "Token is invalid").await;
    drop(guessed);
    let stated = [PathBuf::from(format!("RS256:{}", old_public.display()))];
    let rotated = spawn_signing_with(dir.path(), Algorithm::PS256, &new_private, &stated).await;
    expect_status(rotated.verify(&old_access).await, StatusCode::OK).await;
    assert_eq!(jwks(&rotated).await[1]["alg"], "RS256");

    // A stated algorithm the key cannot have is refused at startup.
    let mut settings = Settings::defaults();
    settings.jwt.algorithm = SigningAlgorithm::PS256;
    settings.jwt.private_key_file = Some(new_private);
    settings.jwt.previous_public_key_files =
        vec![PathBuf::from(format!("EdDSA:{}", new_public.display()))];
    assert!(KeySet::from_settings(&settings.jwt).is_err());
}
