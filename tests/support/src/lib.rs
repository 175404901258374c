//! The test harness the test binaries share (`tests/api`, `tests/cli`, `tests/scale`): the real
//! app on 127.0.0.1:0 with an injected clock, on real stores.
//!
//! - SQLite: a temporary file per test.
//! - PostgreSQL: a fresh database per test on `JWTD_TEST_DATABASE_URL` (dropped afterwards);
//!   without that variable the PostgreSQL variants are skipped, except under `CI`, where they fail.
//! - Redis: `JWTD_TEST_REDIS_URL`, or a `redis-server` this harness starts on a free port.
//!
//! By concern: [`app`] spawns the app (settings per store, the clock), [`client`] is what a test
//! asks of it (requests, grouped by area, and fixtures), [`expect`] reads the answers, [`redis`] and
//! [`postgres`] run the stores' processes and databases, [`smtp`] a real SMTP server, [`ports`]
//! finds and waits for ports.

pub mod app;
pub mod client;
pub mod expect;
pub mod ports;
pub mod postgres;
pub mod redis;
pub mod smtp;

pub use app::{Backend, TestApp};
pub use client::oauth::TestClient;
pub use client::sessions::SESSIONS;
pub use expect::{
    claims_of, expect_error, expect_oauth_error, expect_status, expect_throttled,
    expect_token_error, header_of, string_field,
};
pub use ports::free_port;
pub use postgres::{PostgresDatabase, PostgresServer, postgres_available};
pub use redis::{RedisCluster, RedisServer};
pub use smtp::{SmtpServer, link_in};

/// The password of every user [`TestApp::create_user`] makes.
pub const PASSWORD: &str = "correct horse battery staple";
