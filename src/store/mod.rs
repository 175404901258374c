//! Persistence: users in SQL through SeaORM, and revocation state behind one trait with a
//! Redis and a SQL implementation.

pub mod clients;
pub mod counters;
pub mod db;
pub mod entities;
pub mod lookups;
pub mod redis;
pub mod revocation;
pub mod sessions;
pub mod sql;
pub mod user_cache;
pub mod users;

pub use counters::CounterStore;
pub use revocation::RevocationStore;

/// A store failure. `Unavailable` (cannot reach it) fails closed with 503; `Internal` is a bug
/// or a corrupt entry, answered 500 with a logged id.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store failure: {0}")]
    Internal(String),
}

impl From<sea_orm::DbErr> for StoreError {
    fn from(err: sea_orm::DbErr) -> StoreError {
        use sea_orm::{DbErr, RuntimeErr};
        let unreachable = match &err {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
            DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
                sqlx_error_is_unavailability(e)
            }
            _ => false,
        };
        if unreachable {
            StoreError::Unavailable(err.to_string())
        } else {
            StoreError::Internal(err.to_string())
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
impl From<::redis::RedisError> for StoreError {
    fn from(err: ::redis::RedisError) -> StoreError {
        let transient = err.is_io_error()
            || err.is_timeout()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || !matches!(err.retry_method(), ::redis::RetryMethod::NoRetry);
        if transient {
            StoreError::Unavailable(err.to_string())
        } else {
            StoreError::Internal(err.to_string())
        }
    }
}
