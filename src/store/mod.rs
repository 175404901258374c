//! Persistence: users in SQL through SeaORM, and revocation state behind one trait with a
//! Redis and a SQL implementation.

pub mod clients;
pub mod counters;
pub mod db;
pub mod entities;
pub mod feed;
pub mod groups;
pub mod leases;
pub mod lookups;
pub mod outbox;
pub mod redis;
pub mod revocation;
pub mod sessions;
pub mod sql;
mod sql_feed;
pub mod user_cache;
pub mod users;

pub use counters::CounterStore;
pub use feed::RevocationFeed;
pub use revocation::RevocationStore;

use crate::outage::Outage;

/// A database error that means "cannot reach it" is `Unavailable` (503, fail closed); any other
/// is `Internal` (a bug or a corrupt row: 500 with a logged id). The error itself is the cause.
impl From<sea_orm::DbErr> for Outage {
    fn from(err: sea_orm::DbErr) -> Outage {
        use sea_orm::{DbErr, RuntimeErr};
        let unreachable = match &err {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
            DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
                sqlx_error_is_unavailability(e)
            }
            _ => false,
        };
        if unreachable {
            Outage::unavailable(err)
        } else {
            Outage::internal(err)
        }
    }
}

fn sqlx_error_is_unavailability(err: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error;
    match err {
        Error::Io(_)
        | Error::Tls(_)
        | Error::Protocol(_)
        | Error::PoolTimedOut
        | Error::PoolClosed
        | Error::WorkerCrashed => true,
        // SQLite's "database is locked" after the busy timeout, PostgreSQL shutting down.
        Error::Database(db) => {
            let code = db.code();
            matches!(
                code.as_deref(),
                Some("5" | "6" | "57P01" | "57P02" | "57P03")
            )
        }
        _ => false,
    }
}

/// Anything Redis may get over by itself is "unavailable" (503): a lost connection, a timeout,
/// and a cluster between masters (CLUSTERDOWN, TRYAGAIN, MASTERDOWN, READONLY on a demoted
/// node, LOADING). Only errors that would repeat forever (a wrong command, a wrong type) are
/// internal.
impl From<::redis::RedisError> for Outage {
    fn from(err: ::redis::RedisError) -> Outage {
        let transient = err.is_io_error()
            || err.is_timeout()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || !matches!(err.retry_method(), ::redis::RetryMethod::NoRetry);
        if transient {
            Outage::unavailable(err)
        } else {
            Outage::internal(err)
        }
    }
}

/// What readiness asks of the stores: does each answer?
#[derive(Clone)]
pub struct Readiness {
    db: sea_orm::DatabaseConnection,
    revocation: std::sync::Arc<dyn RevocationStore>,
}

impl Readiness {
    pub fn new(
        db: sea_orm::DatabaseConnection,
        revocation: std::sync::Arc<dyn RevocationStore>,
    ) -> Readiness {
        Readiness { db, revocation }
    }

    pub async fn database(&self) -> Result<(), Outage> {
        Ok(self.db.ping().await?)
    }

    pub async fn revocation_store(&self) -> Result<(), Outage> {
        self.revocation.ping().await
    }
}
