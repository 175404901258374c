//! jwtd-verifier against a real jwtd over HTTP, on SQLite, PostgreSQL and Redis: every
//! revocation path reaches the verifier within a second, the feed misses nothing under
//! concurrent writers on several instances, a stale feed fails closed and recovers, an old
//! cursor gets 410, and an unknown `kid` does not hammer the JWKS.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jwtd::token::{SessionId, TokenType};
use jwtd_test_support::{
    Backend, PASSWORD, RedisCluster, TestApp, TestClient, expect_status, on_every_store,
    string_field,
};
use jwtd_verifier::{Verifier, VerifyError};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_every_store!(
    every_revocation_path_is_refused_within_a_second,
    sessions_ended_at_once_on_several_instances_appear_once_each,
    an_old_cursor_is_gone_and_the_snapshot_starts_again,
    a_stale_feed_refuses_everything_and_recovers_by_itself
);

const WITHIN: Duration = Duration::from_secs(1);

async fn feed_client(app: &TestApp) -> TestClient {
    app.register_client(&["client_credentials"], &["revocations:read"])
        .await
}

async fn verifier_at(app: &TestApp, base: &str, max_staleness: Duration) -> Verifier {
    let client = feed_client(app).await;
    let verifier = Verifier::builder(base)
        .client_credentials(&client.id, &client.secret)
        .hmac_secret(app.state.settings.jwt.hmac_secret())
        .max_staleness(max_staleness)
        .start()
        .unwrap();
    assert!(
        verifier.ready(Duration::from_secs(20)).await,
        "verifier ready"
    );
    verifier
}

async fn verifier_for(app: &TestApp) -> Verifier {
    verifier_at(app, &app.address, Duration::from_secs(5)).await
}

/// Waits (at most [`WITHIN`] after `since`, when the revoking call returned) for the verifier
/// to refuse `token` as revoked.
async fn refused_within_a_second(verifier: &Verifier, token: &str, since: Instant, path: &str) {
    loop {
        match verifier.verify(token) {
            Err(VerifyError::Revoked) => return,
            other if since.elapsed() > WITHIN => {
                panic!(
                    "{path}: after {:?} the verifier says {other:?}",
                    since.elapsed()
                )
            }
            _ => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

async fn client_token(app: &TestApp, client: &TestClient, scope: &str) -> String {
    let response = app
        .oauth_post(
            "/oauth/token",
            Some(client),
            &[("grant_type", "client_credentials"), ("scope", scope)],
        )
        .await;
    string_field(
        &expect_status(response, StatusCode::OK).await,
        "access_token",
    )
}

async fn every_revocation_path_is_refused_within_a_second(backend: Backend) {
    every_revocation_path_is_refused_on(&TestApp::spawn(backend).await).await;
}

/// jwtd on a Redis Cluster: the feed's stream and the users' keys in different slots.
async fn on_a_cluster(cluster: &RedisCluster) -> TestApp {
    let seeds = cluster.seeds();
    TestApp::spawn_with(Backend::Redis, move |settings| {
        settings.redis.url = seeds.into();
        settings.redis.cluster = true;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_redis_cluster_every_path_is_refused_and_no_entry_is_skipped() {
    let cluster = RedisCluster::start();
    let app = on_a_cluster(&cluster).await;
    every_revocation_path_is_refused_on(&app).await;
    sessions_ended_at_once_appear_once_each_on(&app).await;
}

async fn every_revocation_path_is_refused_on(app: &TestApp) {
    let verifier = verifier_for(app).await;
    let user = app.create_user().await;

    let (access, refresh) = app.login(&user).await;
    assert!(verifier.verify(&access).is_ok(), "a live token verifies");
    expect_status(app.blacklist(&refresh).await, StatusCode::OK).await;
    let since = Instant::now();
    refused_within_a_second(&verifier, &access, since, "blacklist").await;

    let (access, _) = app.login(&user).await;
    let sid = jwtd_test_support::claims_of(&access)["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        app.delete_session(&access, &sid)
            .await
            .status()
            .is_success()
    );
    let since = Instant::now();
    refused_within_a_second(&verifier, &access, since, "session end").await;

    let (access, refresh) = app.login(&user).await;
    expect_status(app.refresh(&refresh).await, StatusCode::OK).await;
    assert_eq!(
        app.refresh(&refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let since = Instant::now();
    refused_within_a_second(&verifier, &access, since, "reuse detection").await;

    let (access, _) = app.login(&user).await;
    let status = app
        .call(Method::POST, "/api/token/logout-all/", Some(&access), None)
        .await;
    assert!(status.is_success(), "logout-all answered {status}");
    let since = Instant::now();
    refused_within_a_second(&verifier, &access, since, "logout-all").await;

    let (access, _) = app.login(&user).await;
    let change = json!({"current_password": PASSWORD, "new_password": "an0ther Long passphrase"});
    let status = app
        .call(
            Method::POST,
            "/api/users/me/password/",
            Some(&access),
            Some(change),
        )
        .await;
    assert!(status.is_success(), "password change answered {status}");
    let since = Instant::now();
    refused_within_a_second(&verifier, &access, since, "password change").await;

    let staff = app.create_staff().await;
    let (staff_access, _) = app.login(&staff).await;
    for (method, body, path) in [
        (
            Method::PATCH,
            Some(json!({"is_active": false})),
            "deactivation",
        ),
        (Method::DELETE, None, "deletion"),
    ] {
        let victim = app.create_user().await;
        let (access, _) = app.login(&victim).await;
        let url = format!("/api/users/{}/", victim.id);
        let status = app.call(method, &url, Some(&staff_access), body).await;
        assert!(status.is_success(), "{path} answered {status}");
        let since = Instant::now();
        refused_within_a_second(&verifier, &access, since, path).await;
    }

    let oauth = app
        .register_client(&["password", "client_credentials"], &["read"])
        .await;
    let other = app.create_user().await;
    let issued = app.password_grant(&oauth, &other.username, "read").await;
    for kind in ["access_token", "refresh_token"] {
        let issued = app.password_grant(&oauth, &other.username, "read").await;
        let access = string_field(&issued, "access_token");
        let revoked = app
            .oauth_post(
                "/oauth/revoke",
                Some(&oauth),
                &[("token", &string_field(&issued, kind))],
            )
            .await;
        assert!(revoked.status().is_success());
        let since = Instant::now();
        refused_within_a_second(&verifier, &access, since, "OAuth revoke").await;
    }
    assert!(
        verifier
            .verify(&string_field(&issued, "access_token"))
            .is_ok()
    );

    let own = client_token(app, &oauth, "read").await;
    assert!(
        verifier.verify(&own).is_ok(),
        "a client's own token verifies"
    );
    app.state.clients.delete(&oauth.id).await.unwrap();
    let since = Instant::now();
    refused_within_a_second(&verifier, &own, since, "client deletion").await;
}

/// 500 sessions (refresh tokens minted directly: the test is about ending them) blacklisted at
/// once through three instances: the feed, followed by cursor, shows each exactly once.
async fn sessions_ended_at_once_on_several_instances_appear_once_each(backend: Backend) {
    sessions_ended_at_once_appear_once_each_on(&TestApp::spawn(backend).await).await;
}

async fn sessions_ended_at_once_appear_once_each_on(app: &TestApp) {
    let siblings = [app.spawn_sibling().await, app.spawn_sibling().await];
    let user = app.create_user().await;
    let client = feed_client(app).await;
    let bearer = client_token(app, &client, "revocations:read").await;
    let start = feed_get(app, "/api/revocations/snapshot/", &bearer).await;
    let minter = &app.state.flows.minter;
    let mut sids = HashSet::new();
    let mut tokens = Vec::new();
    for _ in 0..500 {
        let sid = SessionId::start(minter.now());
        let claims = minter.claims_for(
            TokenType::Refresh,
            &user.id.to_string(),
            sid,
            minter.now().secs(),
        );
        tokens.push(minter.sign(&claims).unwrap());
        sids.insert(sid.to_string());
    }
    // Followed while the burst runs, so commits out of order would show as missing entries.
    let follower = tokio::spawn(follow_until(
        siblings[1].address.clone(),
        bearer.clone(),
        string_field(&start, "cursor"),
        sids.len(),
    ));
    let instances = [app, &siblings[0], &siblings[1]];
    let ended = tokens.iter().enumerate().map(|(i, token)| {
        let instance = instances[i % 3];
        async move {
            let response = instance.blacklist(token).await;
            (response.status(), response.text().await.unwrap())
        }
    });
    for (status, body) in futures::future::join_all(ended).await {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (seen, cursor) = follower.await.unwrap();
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(seen.len(), 500, "each ended session once");
    assert_eq!(unique, sids);
    let after = format!("/api/revocations/?after={cursor}&wait=0");
    let rest = feed_get(app, &after, &bearer).await;
    assert!(rest["entries"].as_array().unwrap().is_empty());
}

/// Long-polls the feed at `address` from `cursor` until `count` entries came (or 60 s passed):
/// the session ids, in order, and the last cursor.
async fn follow_until(
    address: String,
    bearer: String,
    mut cursor: String,
    count: usize,
) -> (Vec<String>, String) {
    let client = reqwest::Client::new();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < count && Instant::now() < deadline {
        let url = format!("{address}/api/revocations/?after={cursor}&wait=1");
        let response = client.get(url).bearer_auth(&bearer).send().await.unwrap();
        let page = expect_status(response, StatusCode::OK).await;
        for entry in page["entries"].as_array().unwrap() {
            assert_eq!(entry["kind"], "session");
            seen.push(entry["id"].as_str().unwrap().to_owned());
        }
        cursor = string_field(&page, "cursor");
    }
    (seen, cursor)
}

async fn feed_get(app: &TestApp, path: &str, bearer: &str) -> Value {
    expect_status(app.get_authed(path, bearer).await, StatusCode::OK).await
}

/// A cursor older than the feed keeps: 410 `cursor_expired`, and the snapshot still answers
/// with what matters (no entry has outlived its use).
async fn an_old_cursor_is_gone_and_the_snapshot_starts_again(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.create_user().await;
    let client = feed_client(&app).await;
    let bearer = client_token(&app, &client, "revocations:read").await;
    let snapshot = feed_get(&app, "/api/revocations/snapshot/", &bearer).await;
    let old = string_field(&snapshot, "cursor");
    let (_, refresh) = app.login(&user).await;
    expect_status(app.blacklist(&refresh).await, StatusCode::OK).await;
    let retention = app.state.settings.jwt.session_lifetime + app.state.settings.jwt.leeway;
    app.clock.advance(retention + Duration::from_secs(60));
    let bearer = client_token(&app, &client, "revocations:read").await;
    let (_, refresh) = app.login(&user).await;
    expect_status(app.blacklist(&refresh).await, StatusCode::OK).await;
    let gone = app
        .get_authed(&format!("/api/revocations/?after={old}"), &bearer)
        .await;
    expect_code(gone, StatusCode::GONE, "cursor_expired").await;
    let again = feed_get(&app, "/api/revocations/snapshot/", &bearer).await;
    assert_eq!(
        again["entries"].as_array().unwrap().len(),
        1,
        "only the live entry"
    );
    let cursor = string_field(&again, "cursor");
    let next = feed_get(&app, &format!("/api/revocations/?after={cursor}"), &bearer).await;
    assert!(next["entries"].as_array().unwrap().is_empty());
}

/// A TCP relay the test can cut: jwtd unreachable for the verifier, as if stopped.
struct Relay {
    address: String,
    target: Arc<std::sync::Mutex<String>>,
    up: Arc<AtomicBool>,
    connections: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn to(target: &str) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let target = Arc::new(std::sync::Mutex::new(host_of(target)));
        let up = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (flag, held, to) = (up.clone(), connections.clone(), target.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !flag.load(Ordering::SeqCst) {
                    continue;
                }
                let target = to.lock().unwrap().clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                held.lock().unwrap().push(task);
            }
        });
        Relay {
            address,
            target,
            up,
            connections,
        }
    }

    /// Sends new connections to `target`, and drops the current ones (their clients reconnect).
    fn redirect(&self, target: &str) {
        *self.target.lock().unwrap() = host_of(target);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

async fn a_stale_feed_refuses_everything_and_recovers_by_itself(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let relay = Relay::to(&app.address).await;
    let staleness = Duration::from_secs(2);
    let verifier = verifier_at(&app, &relay.address, staleness).await;
    let user = app.create_user().await;
    let (kept, _) = app.login(&user).await;
    let (revoked, refresh) = app.login(&user).await;
    assert!(verifier.verify(&kept).is_ok());

    relay.cut();
    let cut_at = Instant::now();
    while verifier.verify(&kept).is_ok() {
        assert!(
            cut_at.elapsed() <= staleness + Duration::from_millis(500),
            "still fresh"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(cut_at.elapsed() + Duration::from_millis(50) >= staleness.min(Duration::from_secs(1)));
    assert_eq!(verifier.verify(&kept), Err(VerifyError::Stale));
    // Revoked while the verifier cannot hear it.
    expect_status(app.blacklist(&refresh).await, StatusCode::OK).await;

    relay.restore();
    let back = Instant::now();
    while verifier.verify(&kept).is_err() {
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "recovered by itself"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        verifier.verify(&revoked),
        Err(VerifyError::Revoked),
        "missed nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kid_does_not_hammer_the_jwks() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let verifier = verifier_for(&app).await;
    let before = verifier.metrics().jwks_fetches;
    // An RS256 header naming a key jwtd never had; the signature does not matter.
    let header = base64_url(br#"{"alg":"RS256","typ":"JWT","kid":"nobody"}"#);
    let token = format!("{header}.{}.c2ln", base64_url(br#"{"sub":"x"}"#));
    for _ in 0..1_000 {
        assert_eq!(verifier.verify(&token), Err(VerifyError::UnknownKey));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fetched = verifier.metrics().jwks_fetches - before;
    assert!(fetched <= 1, "{fetched} JWKS fetches for 1000 unknown kids");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_wants_a_client_token_with_its_scope() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let user = app.create_user().await;
    let (access, _) = app.login(&user).await;
    let path = "/api/revocations/snapshot/";
    expect_code(
        app.get_authed(path, &access).await,
        StatusCode::FORBIDDEN,
        "permission_denied",
    )
    .await;
    let other = app
        .register_client(&["client_credentials"], &["read"])
        .await;
    let wrong_scope = client_token(&app, &other, "read").await;
    expect_code(
        app.get_authed(path, &wrong_scope).await,
        StatusCode::FORBIDDEN,
        "permission_denied",
    )
    .await;
    expect_code(
        app.get(path).await,
        StatusCode::UNAUTHORIZED,
        "not_authenticated",
    )
    .await;
    let reader = feed_client(&app).await;
    let bearer = client_token(&app, &reader, "revocations:read").await;
    let bad = app.get_authed("/api/revocations/?after=zz", &bearer).await;
    expect_code(bad, StatusCode::GONE, "cursor_expired").await;
    let long = app
        .get_authed("/api/revocations/?after=0&wait=31", &bearer)
        .await;
    expect_code(long, StatusCode::BAD_REQUEST, "invalid").await;
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The contract's error body with `status` and `code`.
async fn expect_code(response: reqwest::Response, status: StatusCode, code: &str) {
    let body = expect_status(response, status).await;
    assert_eq!(body["code"], code, "{body}");
    assert!(body["detail"].is_string(), "{body}");
}

fn host_of(address: &str) -> String {
    address.trim_start_matches("http://").to_owned()
}

/// jwtd signing with `private` (and accepting `previous` public keys) on the database in `dir`.
async fn signing_with(dir: &std::path::Path, private: PathBuf, previous: Vec<PathBuf>) -> TestApp {
    let url = format!("sqlite://{}?mode=rwc", dir.join("shared.db").display());
    TestApp::spawn_with(Backend::Sqlite, move |settings| {
        settings.database.url = url.into();
        settings.jwt.algorithm = "EdDSA".parse().unwrap();
        settings.jwt.private_key_file = Some(private);
        settings.jwt.previous_public_key_files = previous;
    })
    .await
}

fn key_pair(dir: &std::path::Path, name: &str) -> (PathBuf, PathBuf) {
    let pair =
        jwtd::token::keygen::generate_key_pair(jsonwebtoken::Algorithm::EdDSA, 2048).unwrap();
    let (private, public) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.pub.pem")),
    );
    std::fs::write(&private, pair.private_pem).unwrap();
    std::fs::write(&public, pair.public_pem).unwrap();
    (private, public)
}

/// jwtd restarted with a new signing key (the old one kept as previous): the verifier fetches
/// the JWKS again on the new `kid` and takes the new tokens; the old ones still verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_signing_key_verifies_after_the_jwks_refetch() {
    let dir = tempfile::tempdir().unwrap();
    let (old_private, old_public) = key_pair(dir.path(), "old");
    let (new_private, _) = key_pair(dir.path(), "new");
    let before = signing_with(dir.path(), old_private, vec![]).await;
    let relay = Relay::to(&before.address).await;
    let client = feed_client(&before).await;
    let verifier = Verifier::builder(&relay.address)
        .client_credentials(&client.id, &client.secret)
        .jwks_min_interval(Duration::from_millis(200))
        .start()
        .unwrap();
    assert!(verifier.ready(Duration::from_secs(20)).await);
    let user = before.create_user().await;
    let (old_access, _) = before.login(&user).await;
    assert!(verifier.verify(&old_access).is_ok());

    let rotated = signing_with(dir.path(), new_private, vec![old_public]).await;
    relay.redirect(&rotated.address);
    let (new_access, _) = rotated.login(&user).await;
    assert_eq!(verifier.verify(&new_access), Err(VerifyError::UnknownKey));
    let since = Instant::now();
    while verifier.verify(&new_access).is_err() {
        assert!(
            since.elapsed() < Duration::from_secs(3),
            "the new key arrives"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        verifier.verify(&old_access).is_ok(),
        "the previous key still verifies"
    );
    drop(before);
}

/// PostgreSQL draws ids before commit: a publication that drew a lower id and commits after a
/// later one must not be skipped. A reader asking while the first is still open waits for it,
/// then gets both, in id order (on the naive `id > cursor` read it would get the later alone and
/// pass the earlier for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publication_committed_out_of_order_is_not_skipped() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    if !jwtd_test_support::postgres_available() {
        return;
    }
    let app = TestApp::spawn(Backend::Postgres).await;
    let client = feed_client(&app).await;
    let bearer = client_token(&app, &client, "revocations:read").await;
    let cursor = string_field(
        &feed_get(&app, "/api/revocations/snapshot/", &bearer).await,
        "cursor",
    );
    let held = app.state.db.begin().await.unwrap();
    // What the store's publication runs, left uncommitted.
    held.execute_unprepared(
        "INSERT INTO revocation_feed (kind, subject, not_before_ms, expires_at, created_ms) \
         SELECT 'token', 'held', NULL, 4102444800, (extract(epoch FROM now()) * 1000)::bigint \
         FROM (SELECT pg_advisory_xact_lock_shared(7671728464812402020)) AS publication_lock",
    )
    .await
    .unwrap();
    let user = app.create_user().await;
    let (_, refresh) = app.login(&user).await;
    expect_status(app.blacklist(&refresh).await, StatusCode::OK).await;

    let url = format!("{}/api/revocations/?after={cursor}", app.address);
    let mut reader = tokio::spawn(async move {
        let response = reqwest::Client::new()
            .get(url)
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap();
        expect_status(response, StatusCode::OK).await
    });
    let early = tokio::time::timeout(Duration::from_millis(300), &mut reader).await;
    assert!(
        early.is_err(),
        "answered past an open publication: {early:?}"
    );
    held.commit().await.unwrap();
    let page = reader.await.unwrap();
    let ids: Vec<&str> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["kind"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["token", "session"], "{page}");
}
