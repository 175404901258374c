//! PostgreSQL for the tests: a fresh database per test on `JWTD_TEST_DATABASE_URL`
//! ([`PostgresDatabase`]), and a server of the test's own to stop and restart ([`PostgresServer`]).

use std::process::{Command, Stdio};

use sea_orm::{ConnectionTrait, Database};

use crate::ports::{free_port, wait_until_listening};

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
