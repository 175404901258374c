//! What production cannot leave to chance: `/metrics` on a listener of its own, an OAuth issuer
//! that no request chooses, and a Redis that keeps its revocations (checked at start-up on Redis
//! servers of the test's own, since the check reads their configuration).

use jwtd::Settings;
use jwtd::config::{Environment, RevocationBackend};
use jwtd::state::StartupError;
use reqwest::StatusCode;

use jwtd_test_support::{Backend, RedisCluster, RedisServer, TestApp, expect_status};

const PUBLIC_URL: &str = "https://auth.example.com";
/// 44 characters of `openssl rand -base64 32`: a key production accepts.
const SIGNING_KEY: &str = "q3Vb0x2mJc8ZtRk5W1sYhN7uLd4PgE9aFoXiTe6CjA0=";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_on_their_own_listener_and_not_on_the_api_port() {
    let app = TestApp::spawn_with(Backend::Sqlite, |settings| {
        settings.server.metrics_bind = Some("127.0.0.1:0".into());
    })
    .await;
    let metrics = app.metrics_address.clone().expect("a metrics listener");
    assert_ne!(metrics, app.address);
    expect_status(app.get("/health/live").await, StatusCode::OK).await;
    assert_eq!(app.get("/metrics").await.status(), StatusCode::NOT_FOUND);

    let scraped = app
        .client
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(scraped.status(), StatusCode::OK);
    assert_eq!(
        scraped.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    // The API's requests are counted there, the probe of /metrics on the API port among them.
    let text = scraped.text().await.unwrap();
    for sample in [
        r#"jwtd_http_requests_total{operation="health_live",method="GET",status="200"} 1"#,
        r#"jwtd_http_requests_total{operation="metrics",method="GET",status="404"} 1"#,
    ] {
        assert!(text.contains(sample), "{sample} missing from {text}");
    }

    // The metrics listener serves nothing else, and /metrics stays out of the spec.
    for path in ["/health/live", "/api/token/", "/openapi.json", "/docs"] {
        let answer = app
            .client
            .get(format!("{metrics}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let spec = expect_status(app.get("/openapi.json").await, StatusCode::OK).await;
    assert!(spec["paths"].get("/metrics").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metadata_names_the_public_url_whatever_the_host_header_says() {
    let app = TestApp::spawn_with(Backend::Sqlite, |settings| {
        settings.server.public_url = Some(format!("{PUBLIC_URL}/").parse().unwrap());
    })
    .await;
    let url = format!("{}/.well-known/oauth-authorization-server", app.address);
    for host in [None, Some("evil.example"), Some("127.0.0.1:1")] {
        let mut request = app.client.get(&url);
        if let Some(host) = host {
            request = request.header("host", host);
        }
        let metadata = expect_status(request.send().await.unwrap(), StatusCode::OK).await;
        assert_eq!(metadata["issuer"], PUBLIC_URL, "Host: {host:?}");
        for (field, path) in [
            ("token_endpoint", "/oauth/token"),
            ("revocation_endpoint", "/oauth/revoke"),
            ("introspection_endpoint", "/oauth/introspect"),
            ("jwks_uri", "/.well-known/jwks.json"),
            ("service_documentation", "/docs"),
        ] {
            assert_eq!(
                metadata[field],
                format!("{PUBLIC_URL}{path}"),
                "Host: {host:?}"
            );
        }
    }
}

/// Production, configured as it must be, with its revocations on `redis_url`.
fn production(settings: &mut Settings, redis_url: String) {
    settings.environment = Environment::Production;
    settings.jwt.signing_key = Some(SIGNING_KEY.to_owned().into());
    settings.server.public_url = Some(PUBLIC_URL.parse().unwrap());
    settings.server.metrics_bind = Some("127.0.0.1:0".into());
    settings.revocation.store = RevocationBackend::Redis;
    settings.redis.url = redis_url.into();
}

async fn start_in_production(
    redis: &RedisServer,
    allow_volatile: bool,
) -> Result<TestApp, StartupError> {
    TestApp::try_spawn_with(Backend::Sqlite, |settings| {
        production(settings, redis.url());
        settings.redis.allow_volatile = allow_volatile;
    })
    .await
}

fn refusal(started: Result<TestApp, StartupError>) -> String {
    match started {
        Ok(_) => panic!("production started on a Redis that can lose revocations"),
        Err(err) => err.to_string(),
    }
}

async fn expect_ready(app: &TestApp) {
    let ready = expect_status(app.get("/health/ready").await, StatusCode::OK).await;
    assert_eq!(ready["checks"]["revocation_store"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_refuses_a_redis_without_an_append_only_file_unless_told_to_accept_it() {
    let redis = RedisServer::start(None); // --appendonly no
    let err = refusal(start_in_production(&redis, false).await);
    let node = redis.url().replace("redis://", "");
    for part in [
        "JWTD_ENV=production refuses a Redis that can lose revocations",
        &format!("{node}: appendonly is no"),
        "blacklisted tokens come back after a Redis restart",
        "appendonly yes",
        "JWTD__REDIS__ALLOW_VOLATILE=true",
    ] {
        assert!(err.contains(part), "{part:?} missing from {err}");
    }
    assert!(!err.contains("maxmemory-policy is"), "{err}");

    let app = start_in_production(&redis, true)
        .await
        .expect("redis.allow_volatile accepts the loss");
    expect_ready(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_refuses_an_evicting_redis() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start_with(Some(dir.path()), &["--maxmemory-policy", "allkeys-lru"]);
    let err = refusal(start_in_production(&redis, false).await);
    assert!(err.contains("maxmemory-policy is allkeys-lru"), "{err}");
    assert!(err.contains("when Redis evicts them"), "{err}");
    assert!(!err.contains("appendonly is"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_starts_on_a_redis_with_an_append_only_file_that_never_evicts() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(Some(dir.path())); // --appendonly yes, noeviction by default
    let app = start_in_production(&redis, false)
        .await
        .expect("a persistent Redis is accepted");
    expect_ready(&app).await;
}

/// Managed Redis services often rename or forbid `CONFIG`: jwtd cannot tell, says so in a
/// warning, and starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_starts_when_config_cannot_be_read() {
    let redis = RedisServer::start_with(None, &["--rename-command", "CONFIG", ""]);
    let app = start_in_production(&redis, false)
        .await
        .expect("an unchecked Redis is a warning only");
    expect_ready(&app).await;
}

/// On a cluster every master is asked: the test cluster's three masters run without an
/// append-only file, its replicas are not asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_checks_every_master_of_a_cluster() {
    let cluster = RedisCluster::start();
    let started = TestApp::try_spawn_with(Backend::Sqlite, |settings| {
        production(settings, cluster.seeds());
        settings.redis.cluster = true;
    })
    .await;
    let err = refusal(started);
    assert_eq!(err.matches("appendonly is no").count(), 3, "{err}");
}
