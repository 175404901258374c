//! Connecting to the SQL database (SQLite or PostgreSQL) and running the migrations.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};
use secrecy::ExposeSecret;

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
                .busy_timeout(Duration::from_secs(5))
        });
    Database::connect(options).await
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
