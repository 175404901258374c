//! Connecting to the SQL database (SQLite or PostgreSQL) and running the migrations.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend, DbErr};
use secrecy::ExposeSecret;
use tokio::time::MissedTickBehavior;

use crate::config::DatabaseSettings;

pub async fn connect(settings: &DatabaseSettings) -> Result<DatabaseConnection, DbErr> {
    let url = settings.url.expose_secret();
    create_sqlite_directory(url)?;
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(settings.max_connections)
        .min_connections(1)
        .acquire_timeout(settings.acquire_timeout)
        .connect_timeout(settings.acquire_timeout)
        .sqlx_logging(false)
        // sqlx pings a connection on every checkout by default: a second round trip per query
        // (on SQLite, a second hand-off to the connection's thread). Only a connection idle long
        // enough to have been dropped (a restarted server, a proxy) is worth checking; a broken
        // busy one fails its query, and sqlx discards it on release.
        .test_before_acquire_if_idle_for(Duration::from_secs(1))
        // WAL lets readers (verify, refresh checks) proceed while a writer commits.
        .map_sqlx_sqlite_opts(|options| {
            options
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(BUSY_TIMEOUT)
                // After a checkpoint resets the log, its file shrinks back to this.
                .pragma("journal_size_limit", JOURNAL_SIZE_LIMIT.to_string())
        });
    Database::connect(options).await
}

/// How long a SQLite statement waits for a lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The write-ahead log's file is truncated to this (bytes) whenever it restarts.
const JOURNAL_SIZE_LIMIT: u64 = 64 << 20;
/// How long a checkpoint waits for readers to leave the log; new writes wait behind it.
const CHECKPOINT_PATIENCE: Duration = Duration::from_millis(200);

/// On SQLite, keeps the write-ahead log bounded: every `interval`, a `TRUNCATE` checkpoint
/// copies the log into the database and empties it. SQLite's own checkpoints never restart
/// the log while some reader is using it, and under steady load (verifies and refreshes on
/// every pooled connection) some reader always is, so the log grows without end. This one
/// waits (briefly) for the readers in flight to finish. Nothing to do on PostgreSQL.
pub fn spawn_wal_checkpointer(db: DatabaseConnection, interval: Duration) {
    if db.get_database_backend() != DbBackend::Sqlite {
        return;
    }
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match checkpoint_wal(&db).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!("WAL checkpoint incomplete: readers stayed; next time")
                }
                Err(err) => tracing::warn!(error = %err, "WAL checkpoint failed"),
            }
        }
    });
}

/// One `TRUNCATE` checkpoint; whether it completed (the log is empty now).
pub async fn checkpoint_wal(db: &DatabaseConnection) -> Result<bool, sqlx::Error> {
    let mut connection = db.get_sqlite_connection_pool().acquire().await?;
    // Numbers from constants, nothing from outside: safe to format.
    let busy_timeout =
        |wait: Duration| sqlx::AssertSqlSafe(format!("PRAGMA busy_timeout = {}", wait.as_millis()));
    sqlx::query(busy_timeout(CHECKPOINT_PATIENCE))
        .execute(&mut *connection)
        .await?;
    let checkpoint: Result<(i64, i64, i64), _> = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
        .fetch_one(&mut *connection)
        .await;
    sqlx::query(busy_timeout(BUSY_TIMEOUT))
        .execute(&mut *connection)
        .await?;
    let (busy, _, _) = checkpoint?;
    Ok(busy == 0)
}

pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// Runs the migrations on a pool of their own, then connects afresh: no connection that read
/// the schema before a migration changed it is ever used (on SQLite, such a connection was seen
/// answering NULL for a column just added by `ALTER TABLE`, now and then, in `UPDATE …
/// RETURNING`).
/// An in-memory SQLite database lives only as long as its pool: it keeps the one it migrated.
pub async fn connect_migrated(settings: &DatabaseSettings) -> Result<DatabaseConnection, DbErr> {
    let migrating = connect(settings).await?;
    migrate(&migrating).await?;
    if settings.url.expose_secret().contains(":memory:") {
        return Ok(migrating);
    }
    migrating.close().await?;
    connect(settings).await
}

/// `sqlite://data/jwtd.db?mode=rwc` creates the file but not its directory: do that here.
fn create_sqlite_directory(url: &str) -> Result<(), DbErr> {
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return Ok(());
    };
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(':') {
        return Ok(());
    }
    match std::path::Path::new(path).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
            .map_err(|e| DbErr::Custom(format!("creating {}: {e}", dir.display()))),
        _ => Ok(()),
    }
}
