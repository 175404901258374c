//! Rotation state grows with sessions, not with refreshes; records of the release before
//! (a spend record per rotated token) keep working after an upgrade; and a refresh that fails
//! because a store is down has spent nothing.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sea_orm::{ActiveValue::Set, EntityTrait, PaginatorTrait};
use secrecy::ExposeSecret;

use jwtd::clock::Clock;
use jwtd::config::RevocationBackend;
use jwtd::store::entities::revocation;
use jwtd::store::revocation::SpendRecord;
use jwtd_test_support::{
    Backend, PostgresServer, RedisCluster, RedisServer, TestApp, claims_of, expect_status,
    expect_token_error, on_every_store, string_field,
};

on_every_store!(
    sessions_rotated_many_times_leave_one_entry_each,
    live_sessions_of_the_release_before_survive_the_upgrade,
);

const SESSIONS: usize = 4;
const ROTATIONS: usize = 25;

/// Logs `SESSIONS` sessions in and rotates each `ROTATIONS` times.
async fn rotate_sessions(app: &TestApp) {
    let user = app.create_user().await;
    for _ in 0..SESSIONS {
        let (_, mut refresh) = app.login(&user).await;
        for _ in 0..ROTATIONS {
            let body = expect_status(app.refresh(&refresh).await, StatusCode::OK).await;
            refresh = string_field(&body, "refresh");
        }
    }
}

async fn sessions_rotated_many_times_leave_one_entry_each(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    rotate_sessions(&app).await;
    let entries = match backend {
        Backend::Redis => {
            let settings = &app.state.settings.redis;
            let pattern = format!("{}:{{*", settings.key_prefix);
            count_keys(settings.url.expose_secret(), &pattern).await
        }
        _ => revocation::Entity::find()
            .count(&app.state.db)
            .await
            .unwrap() as usize,
    };
    assert_eq!(entries, SESSIONS, "one rotation record per session");
}

/// The same on a Redis Cluster: every master counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_redis_cluster_sessions_leave_one_entry_each() {
    let cluster = RedisCluster::start();
    let app = TestApp::spawn_with(Backend::Sqlite, |settings| {
        settings.revocation.store = RevocationBackend::Redis;
        settings.redis.url = cluster.seeds().into();
        settings.redis.cluster = true;
    })
    .await;
    rotate_sessions(&app).await;
    let mut entries = 0;
    for node in cluster.seeds().split(',') {
        let client = redis::Client::open(node).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let role: Vec<redis::Value> = redis::cmd("ROLE")
            .query_async(&mut connection)
            .await
            .unwrap();
        if role.first() == Some(&redis::Value::BulkString(b"master".to_vec())) {
            entries += count_keys(node, "*{*").await;
        }
    }
    assert_eq!(entries, SESSIONS, "one rotation record per session");
}

/// Redis forgets its scripts on a restart or `SCRIPT FLUSH`: a rotation then loads its own again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_after_redis_forgot_its_scripts_loads_it_again() {
    let app = TestApp::spawn(Backend::Redis).await;
    let user = app.create_user().await;
    let (_, refresh) = app.login(&user).await;
    let client = redis::Client::open(app.state.settings.redis.url.expose_secret()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut connection)
        .await
        .unwrap();
    let body = expect_status(app.refresh(&refresh).await, StatusCode::OK).await;
    // The rotation was stored: its successor is the session's current token.
    let successor = string_field(&body, "refresh");
    expect_status(app.refresh(&successor).await, StatusCode::OK).await;
}

/// Keys matching `pattern` on one Redis server.
async fn count_keys(url: &str, pattern: &str) -> usize {
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: redis::AsyncIter<String> = redis::cmd("SCAN")
        .cursor_arg(0)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(1000)
        .clone()
        .iter_async(&mut connection)
        .await
        .unwrap();
    let mut count = 0;
    while let Some(key) = futures::StreamExt::next(&mut keys).await {
        key.unwrap();
        count += 1;
    }
    count
}

/// What the release before this one wrote when it rotated `refresh`: a spend record under the
/// token's `jti`, naming a successor it signed. Returns the successor.
async fn rotate_as_the_release_before(app: &TestApp, refresh: &str) -> String {
    let minter = &app.state.flows.minter;
    let claims = minter.codec().decode(refresh).unwrap();
    let now = app.clock.now();
    let successor = minter.successor_of(&claims, now.secs());
    let record = SpendRecord {
        spent_at: now,
        successor_jti: successor.jti.clone(),
        successor_iat: successor.iat,
        successor_exp: successor.exp,
    };
    let key = format!("{{{}}}:j:{}", claims.user_id, claims.jti);
    let until = claims.exp.0 + 60;
    write_raw(app, &key, &record.encode(), until).await;
    minter.sign(&successor).unwrap()
}

/// Writes an entry as a store of the release before would have.
async fn write_raw(app: &TestApp, key: &str, value: &str, until: i64) {
    let settings = &app.state.settings;
    if settings.revocation.store == RevocationBackend::Redis {
        let client = redis::Client::open(settings.redis.url.expose_secret()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let ttl = until - app.clock.now().secs().0;
        let _: () = redis::cmd("SET")
            .arg(format!("{}:{key}", settings.redis.key_prefix))
            .arg(value)
            .arg("EX")
            .arg(ttl)
            .query_async(&mut connection)
            .await
            .unwrap();
    } else {
        let row = revocation::ActiveModel {
            key: Set(key.to_owned()),
            value: Set(value.to_owned()),
            expires_at: Set(until),
        };
        revocation::Entity::insert(row)
            .exec_without_returning(&app.state.db)
            .await
            .unwrap();
    }
}

/// Sessions that rotated under per-token spend records go on after the upgrade: a token never
/// rotated refreshes; a token spent before the upgrade gets its successor again within the
/// grace; that successor rotates under the new scheme; and a spent token presented after the
/// grace is still reuse, which ends its session.
async fn live_sessions_of_the_release_before_survive_the_upgrade(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| {
        settings.jwt.refresh_reuse_grace = Duration::from_secs(10);
    })
    .await;
    let user = app.create_user().await;
    let (_, untouched) = app.login(&user).await;
    let (_, spent) = app.login(&user).await;
    let successor = rotate_as_the_release_before(&app, &spent).await;
    let (_, spent_long_ago) = app.login(&user).await;
    let old_successor = rotate_as_the_release_before(&app, &spent_long_ago).await;

    expect_status(app.refresh(&untouched).await, StatusCode::OK).await;
    let again = expect_status(app.refresh(&spent).await, StatusCode::OK).await;
    assert_eq!(
        claims_of(&string_field(&again, "refresh"))["jti"],
        claims_of(&successor)["jti"],
        "within the grace the spent token gets its successor again"
    );
    let rotated = expect_status(app.refresh(&successor).await, StatusCode::OK).await;
    expect_status(
        app.refresh(&string_field(&rotated, "refresh")).await,
        StatusCode::OK,
    )
    .await;
    expect_token_error(app.refresh(&spent).await, "Token is blacklisted").await;

    app.clock.advance(Duration::from_secs(10));
    expect_token_error(app.refresh(&spent_long_ago).await, "Token is blacklisted").await;
    expect_token_error(app.refresh(&old_successor).await, "Token is blacklisted").await;
}

/// PostgreSQL holds the users, Redis the revocations; each goes down in turn at the step of a
/// refresh that needs it. Every refresh that fails answers 503 and has spent nothing: the same
/// token refreshes once the store is back, and is not taken for reuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_that_fails_on_a_store_spends_nothing() {
    let postgres = PostgresServer::start();
    let mut redis = RedisServer::start(None);
    let app = TestApp::spawn_with(Backend::Sqlite, |settings| {
        settings.database.url = postgres.url().into();
        settings.database.acquire_timeout = Duration::from_secs(1);
        settings.revocation.store = RevocationBackend::Redis;
        settings.redis.url = redis.url().into();
    })
    .await;
    let user = app.create_user().await;
    let (_, mut refresh) = app.login(&user).await;

    // The user is not cached yet: the refresh needs PostgreSQL before the store step.
    postgres.stop();
    expect_unavailable(app.refresh(&refresh).await).await;
    postgres.restart();
    refresh = refresh_once_back(&app, &refresh).await;

    // Cached now; a change made elsewhere makes the copy stale, and it must be read again.
    let renamed = serde_json::json!({"username": format!("{}-renamed", user.username)});
    let (access, _) = app.login(&user).await;
    let response = app
        .send_authed(reqwest::Method::PATCH, "/api/users/me/", &access, &renamed)
        .await;
    expect_status(response, StatusCode::OK).await;
    postgres.stop();
    expect_unavailable(app.refresh(&refresh).await).await;
    postgres.restart();
    refresh = refresh_once_back(&app, &refresh).await;

    // Redis down: the store step itself fails.
    redis.stop();
    expect_unavailable(app.refresh(&refresh).await).await;
    redis.restart();
    refresh = refresh_once_back(&app, &refresh).await;
    expect_status(app.refresh(&refresh).await, StatusCode::OK).await;
}

/// Refreshes `refresh` until the store is back (every answer before must be 503); returns the
/// successor.
async fn refresh_once_back(app: &TestApp, refresh: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = app.refresh(refresh).await;
        if response.status() == StatusCode::OK {
            let body: serde_json::Value = response.json().await.unwrap();
            return string_field(&body, "refresh");
        }
        expect_unavailable(response).await;
        assert!(
            Instant::now() < deadline,
            "no recovery 20 s after the store came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn expect_unavailable(response: reqwest::Response) {
    let body = expect_status(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["code"], "unavailable", "{body}");
}

/// SQLite's write-ahead log stays bounded under refreshes with verifies beside them: the
/// checkpointer's `TRUNCATE` completes while readers keep coming, and empties the log; every
/// pooled connection caps the file it leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_write_ahead_log_is_emptied_under_load() {
    let app = TestApp::spawn_with(Backend::Sqlite, |settings| {
        // The test checkpoints itself, while the load runs.
        settings.database.sqlite_checkpoint_interval = Duration::from_secs(3600);
    })
    .await;
    let url = app.state.settings.database.url.expose_secret().to_owned();
    let path = url
        .trim_start_matches("sqlite://")
        .split('?')
        .next()
        .unwrap();
    let wal = std::path::PathBuf::from(format!("{path}-wal"));
    let user = app.create_user().await;
    let (access, mut refresh) = app.login(&user).await;
    let readers = async {
        loop {
            expect_status(app.verify(&access).await, StatusCode::OK).await;
        }
    };
    let writes = async {
        for _ in 0..150 {
            let body = expect_status(app.refresh(&refresh).await, StatusCode::OK).await;
            refresh = string_field(&body, "refresh");
        }
        let before = std::fs::metadata(&wal).unwrap().len();
        let emptied = jwtd::store::db::checkpoint_wal(&app.state.db)
            .await
            .unwrap();
        (before, emptied, std::fs::metadata(&wal).unwrap().len())
    };
    let (before, emptied, after) = tokio::select! {
        never = readers => never,
        done = writes => done,
    };
    assert!(before > 0, "the refreshes wrote to the log");
    assert!(
        emptied,
        "the checkpoint completed while verifies kept reading"
    );
    assert_eq!(after, 0, "TRUNCATE empties the log");
    let limit: i64 = sea_orm::sqlx::query_scalar("PRAGMA journal_size_limit")
        .fetch_one(app.state.db.get_sqlite_connection_pool())
        .await
        .unwrap();
    assert_eq!(limit, 64 << 20);
}
