//! The test harness: the real app on 127.0.0.1:0 with an injected clock, on real stores.
//!
//! - SQLite: a temporary file per test.
//! - PostgreSQL: a fresh database per test on `JWTD_TEST_DATABASE_URL` (dropped afterwards);
//!   without that variable the PostgreSQL variants are skipped, except under `CI`, where they fail.
//! - Redis: `JWTD_TEST_REDIS_URL`, or a `redis-server` this harness starts on a free port.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwtd::clock::ManualClock;
use jwtd::config::RevocationBackend;
use jwtd::state::AppState;
use jwtd::store::users::{NewUser, User};
use jwtd::{App, Settings};
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

pub const PASSWORD: &str = "correct horse battery staple";

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
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::helpers::postgres_available() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::$name($crate::helpers::Backend::Redis).await
            }
        }
    )*};
}

/// Whether PostgreSQL tests run: with `JWTD_TEST_DATABASE_URL`. Under `CI` it is required.
pub fn postgres_available() -> bool {
    if std::env::var("JWTD_TEST_DATABASE_URL").is_ok() {
        return true;
    }
    assert!(
        std::env::var("CI").is_err(),
        "CI is set but JWTD_TEST_DATABASE_URL is not: PostgreSQL tests must run in CI"
    );
    eprintln!("skipped: set JWTD_TEST_DATABASE_URL=postgres://… to run the PostgreSQL variant");
    false
}

pub struct TestApp {
    pub address: String,
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
        let mut settings = Settings::defaults();
        settings.server.bind = "127.0.0.1:0".into();
        // Every test logs in from 127.0.0.1; throttling tests set their own limits.
        settings.throttle.client_attempts = 10_000;
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
        TestApp::start(settings, resources).await
    }

    async fn start(settings: Settings, resources: Resources) -> TestApp {
        let clock = ManualClock::starting_now();
        let app = App::build_with_clock(settings, clock.clone())
            .await
            .expect("the app starts");
        let address = format!("http://127.0.0.1:{}", app.port());
        let state = app.state().clone();
        let server = tokio::spawn(async move {
            app.run_until(std::future::pending())
                .await
                .expect("the server runs");
        });
        TestApp {
            address,
            client: reqwest::Client::new(),
            clock,
            state,
            server,
            _resources: resources,
        }
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

    /// A new active user with [`PASSWORD`] and a random username.
    pub async fn create_user(&self) -> User {
        let username = format!("user-{}", uuid::Uuid::new_v4().simple());
        self.create_named_user(&username, PASSWORD).await
    }

    pub async fn create_named_user(&self, username: &str, password: &str) -> User {
        let password_hash = self.state.passwords.hash(password.into()).await.unwrap();
        let new = NewUser {
            username: username.into(),
            email: String::new(),
            password_hash,
            is_staff: false,
        };
        self.state
            .users
            .create(new, chrono::Utc::now())
            .await
            .unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.post_raw(path, "application/x-www-form-urlencoded", body)
            .await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Logs `user` in; returns (access, refresh).
    pub async fn login(&self, user: &User) -> (String, String) {
        let response = self
            .post_json(
                "/api/token/",
                &json!({"username": user.username, "password": PASSWORD}),
            )
            .await;
        let body = expect_status(response, StatusCode::OK).await;
        (
            string_field(&body, "access"),
            string_field(&body, "refresh"),
        )
    }

    pub async fn refresh(&self, refresh: &str) -> reqwest::Response {
        self.post_json("/api/token/refresh/", &json!({ "refresh": refresh }))
            .await
    }

    pub async fn verify(&self, token: &str) -> reqwest::Response {
        self.post_json("/api/token/verify/", &json!({ "token": token }))
            .await
    }

    pub async fn blacklist(&self, refresh: &str) -> reqwest::Response {
        self.post_json("/api/token/blacklist/", &json!({ "refresh": refresh }))
            .await
    }
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("jwtd.db").display())
}

pub fn string_field(body: &Value, name: &str) -> String {
    body[name]
        .as_str()
        .unwrap_or_else(|| panic!("no string {name:?} in {body}"))
        .to_owned()
}

/// Asserts the status and returns the JSON body.
pub async fn expect_status(response: reqwest::Response, status: StatusCode) -> Value {
    let actual = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(actual, status, "body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"))
}

/// Asserts the contract's error: status, `code` and `detail`, and the 401 challenge.
pub async fn expect_error(
    response: reqwest::Response,
    status: StatusCode,
    code: &str,
    detail: &str,
) -> Value {
    let challenge = response.headers().get("www-authenticate").cloned();
    let body = expect_status(response, status).await;
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["detail"], detail, "{body}");
    if status == StatusCode::UNAUTHORIZED {
        assert_eq!(challenge.unwrap(), r#"Bearer realm="api""#);
    }
    body
}

pub async fn expect_token_error(response: reqwest::Response, detail: &str) {
    expect_error(
        response,
        StatusCode::UNAUTHORIZED,
        "token_not_valid",
        detail,
    )
    .await;
}

/// The payload of a token, without checking anything.
pub fn claims_of(token: &str) -> Value {
    part_of(token, 1)
}

pub fn header_of(token: &str) -> Value {
    part_of(token, 0)
}

fn part_of(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// A `redis-server` of the test's own on a free loopback port, killed on drop.
pub struct RedisServer {
    port: u16,
    data_dir: Option<std::path::PathBuf>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server; with `data_dir`, it persists every write (AOF, fsync always) there.
    pub fn start(data_dir: Option<&Path>) -> RedisServer {
        let mut server = RedisServer {
            port: free_port(),
            data_dir: data_dir.map(Path::to_path_buf),
            child: None,
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Starts it again on the same port (and data directory), and waits until it answers.
    pub fn restart(&mut self) {
        let mut command = Command::new("redis-server");
        command.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ]);
        match &self.data_dir {
            Some(dir) => command
                .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
                .arg(dir),
            None => command.args(["--appendonly", "no"]),
        };
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (or set JWTD_TEST_REDIS_URL)");
        self.child = Some(child);
        wait_until_listening(self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_until_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on port {port} after 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fresh PostgreSQL database, dropped (with its connections) when the test ends.
pub struct PostgresDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

impl PostgresDatabase {
    pub async fn create() -> PostgresDatabase {
        let admin_url = std::env::var("JWTD_TEST_DATABASE_URL").expect("JWTD_TEST_DATABASE_URL");
        let name = format!("jwtd_test_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(&admin_url)
            .await
            .expect("PostgreSQL at JWTD_TEST_DATABASE_URL answers");
        admin
            .execute_unprepared(&format!(r#"CREATE DATABASE "{name}""#))
            .await
            .unwrap();
        admin.close().await.ok();
        let mut url = url::Url::parse(&admin_url).unwrap();
        url.set_path(&name);
        PostgresDatabase {
            url: url.to_string(),
            admin_url,
            name,
        }
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime: do the async clean-up on a thread of its own.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(admin) = Database::connect(&admin_url).await {
                    let drop = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
                    admin.execute_unprepared(&drop).await.ok();
                    admin.close().await.ok();
                }
            });
        })
        .join()
        .ok();
    }
}

/// A PostgreSQL server of the test's own (initdb + pg_ctl) on a free loopback port, to stop and
/// restart under a running app; removed on drop. The binaries come from `JWTD_TEST_PG_BINDIR`
/// or Debian's /usr/lib/postgresql/<version>/bin.
pub struct PostgresServer {
    port: u16,
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
}

impl PostgresServer {
    pub fn start() -> PostgresServer {
        let bin = postgres_bindir();
        let dir = tempfile::tempdir().unwrap();
        let server = PostgresServer {
            port: free_port(),
            dir,
            bin,
        };
        // PostgreSQL refuses to run as root: under root the server runs as `postgres`.
        if running_as_root() {
            server.checked(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(server.dir.path()),
            );
        }
        let mut initdb = server.as_owner("initdb");
        initdb
            .args([
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(server.data());
        server.checked(&mut initdb);
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Kills the server outright (as a crash would), without a shutdown checkpoint.
    pub fn stop(&self) {
        let mut stop = self.as_owner("pg_ctl");
        stop.args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(self.data());
        self.checked(&mut stop);
    }

    /// Starts it again on the same port and data, and waits until it accepts connections.
    pub fn restart(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let mut start = self.as_owner("pg_ctl");
        start
            .args(["start", "-w", "-t", "30", "-o", &options, "-l"])
            .arg(self.dir.path().join("server.log"))
            .arg("-D")
            .arg(self.data());
        self.checked(&mut start);
        wait_until_listening(self.port);
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    fn as_owner(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn checked(&self, command: &mut Command) {
        let output = command.output().expect("running a PostgreSQL tool");
        assert!(
            output.status.success(),
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let mut stop = self.as_owner("pg_ctl");
        stop.args(["stop", "-m", "immediate", "-D"])
            .arg(self.data());
        stop.stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok();
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

fn postgres_bindir() -> std::path::PathBuf {
    if let Ok(dir) = std::env::var("JWTD_TEST_PG_BINDIR") {
        return dir.into();
    }
    let mut versions: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server binaries (initdb, pg_ctl) must be installed, or JWTD_TEST_PG_BINDIR set")
        .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
        .filter(|bin| bin.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("no /usr/lib/postgresql/<version>/bin/pg_ctl")
}
