//! The app under test: `App::build_with_clock` on 127.0.0.1:0 with a [`ManualClock`], its
//! settings per store, and what it owns until the test ends.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jwtd::clock::ManualClock;
use jwtd::config::RevocationBackend;
use jwtd::state::{AppState, StartupError};
use jwtd::{App, Settings};

use crate::postgres::PostgresDatabase;
use crate::redis::RedisServer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite for users and revocations: the embedded default.
    Sqlite,
    /// PostgreSQL for users and revocations.
    Postgres,
    /// SQLite for users, Redis for revocations.
    Redis,
}

/// Runs `async fn name(backend: Backend)` once per store as `name::sqlite`, `name::postgres`
/// and `name::redis`.
#[macro_export]
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::postgres_available() {
                    super::$name($crate::Backend::Postgres).await
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::$name($crate::Backend::Redis).await
            }
        }
    )*};
}

pub struct TestApp {
    pub address: String,
    /// `http://127.0.0.1:<port>` of the `/metrics` listener, with `server.metrics_bind` set.
    pub metrics_address: Option<String>,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub state: Arc<AppState>,
    server: tokio::task::JoinHandle<()>,
    _resources: Resources,
}

/// What a test app owns; released when the test ends (even by panic).
#[derive(Default)]
struct Resources {
    _dir: Option<tempfile::TempDir>,
    _redis: Option<RedisServer>,
    _postgres: Option<PostgresDatabase>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        TestApp::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
        TestApp::try_spawn_with(backend, configure)
            .await
            .expect("the app starts")
    }

    /// As [`TestApp::spawn_with`], for a test of what refuses to start.
    pub async fn try_spawn_with(
        backend: Backend,
        configure: impl FnOnce(&mut Settings),
    ) -> Result<TestApp, StartupError> {
        let mut settings = Settings::defaults();
        settings.server.bind = "127.0.0.1:0".into();
        // Every test logs in and registers from 127.0.0.1; throttling tests set their own limits.
        settings.throttle.client_attempts = 10_000;
        settings.throttle.registrations_per_address = 10_000;
        // Bursts of logins queue behind two hashing slots on a machine busy with other tests:
        // tests that are not about the queue's or the request's patience must not hit either.
        settings.password.hash_queue_timeout = Duration::from_secs(120);
        settings.server.request_timeout = Duration::from_secs(150);
        let mut resources = Resources::default();
        let dir = tempfile::tempdir().unwrap();
        settings.database.url = sqlite_url(dir.path()).into();
        resources._dir = Some(dir);
        match backend {
            Backend::Sqlite => {}
            Backend::Postgres => {
                let database = PostgresDatabase::create().await;
                settings.database.url = database.url.clone().into();
                resources._postgres = Some(database);
            }
            Backend::Redis => {
                settings.revocation.store = RevocationBackend::Redis;
                // A loaded machine may answer more slowly than production's 500 ms budget; the
                // store-down tests keep that budget (`spawn_on_redis`).
                settings.redis.response_timeout = Duration::from_secs(5);
                // Tests share one Redis: per-address counters must not add up across them.
                settings.redis.key_prefix = format!("jwtd-test-{}", uuid::Uuid::new_v4().simple());
                let url = match std::env::var("JWTD_TEST_REDIS_URL") {
                    Ok(url) => url,
                    Err(_) => {
                        let server = RedisServer::start(None);
                        let url = server.url();
                        resources._redis = Some(server);
                        url
                    }
                };
                settings.redis.url = url.into();
            }
        }
        configure(&mut settings);
        TestApp::try_start(settings, resources).await
    }

    async fn start(settings: Settings, resources: Resources) -> TestApp {
        TestApp::try_start(settings, resources)
            .await
            .expect("the app starts")
    }

    async fn try_start(settings: Settings, resources: Resources) -> Result<TestApp, StartupError> {
        let clock = ManualClock::starting_now();
        let app = App::build_with_clock(settings, clock.clone()).await?;
        let address = format!("http://127.0.0.1:{}", app.port());
        let metrics_address = app
            .metrics_port()
            .map(|port| format!("http://127.0.0.1:{port}"));
        let state = app.state().clone();
        let server = tokio::spawn(async move {
            app.run_until(std::future::pending())
                .await
                .expect("the server runs");
        });
        Ok(TestApp {
            address,
            metrics_address,
            client: reqwest::Client::new(),
            clock,
            state,
            server,
            _resources: resources,
        })
    }

    /// A second instance on the same database and revocation store, as behind a load balancer.
    /// This app keeps owning the resources.
    pub async fn spawn_sibling(&self) -> TestApp {
        TestApp::start(self.state.settings.clone(), Resources::default()).await
    }

    /// Starts the app on a Redis server the test controls (to stop and restart it).
    pub async fn spawn_on_redis(redis: &RedisServer) -> TestApp {
        let mut settings = Settings::defaults();
        settings.server.bind = "127.0.0.1:0".into();
        settings.throttle.client_attempts = 10_000;
        settings.throttle.registrations_per_address = 10_000;
        let dir = tempfile::tempdir().unwrap();
        settings.database.url = sqlite_url(dir.path()).into();
        settings.revocation.store = RevocationBackend::Redis;
        settings.redis.url = redis.url().into();
        let resources = Resources {
            _dir: Some(dir),
            ..Default::default()
        };
        TestApp::start(settings, resources).await
    }
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("jwtd.db").display())
}
