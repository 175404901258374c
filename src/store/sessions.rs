//! The SQL record of login sessions: what `GET /api/users/me/sessions/` lists.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, TransactionTrait,
};
use uuid::Uuid;

use super::entities::session::{ActiveModel, Column, Entity, Model};
use crate::outage::Outage;

pub type Session = Model;

/// Who opened a session: for the user's list, never for decisions.
#[derive(Debug, Clone, Default)]
pub struct LoginContext {
    pub user_agent: String,
    pub client_address: String,
}

#[derive(Clone)]
pub struct SessionRepository {
    db: DatabaseConnection,
    /// Refresh times not yet written: the latest per session.
    pending_touches: Arc<Mutex<HashMap<Uuid, DateTime<Utc>>>>,
    /// Held across a whole flush: a flush that finds nothing pending must still wait for one
    /// that took the pending times and has not committed them yet.
    flushing: Arc<tokio::sync::Mutex<()>>,
}

impl SessionRepository {
    pub fn new(db: DatabaseConnection) -> SessionRepository {
        SessionRepository {
            db,
            pending_touches: Arc::default(),
            flushing: Arc::default(),
        }
    }

    pub async fn create(
        &self,
        id: Uuid,
        user_id: Uuid,
        created_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        context: LoginContext,
    ) -> Result<(), Outage> {
        let model = ActiveModel {
            id: Set(id),
            user_id: Set(user_id),
            created_at: Set(created_at),
            last_refreshed_at: Set(None),
            expires_at: Set(expires_at),
            ended_at: Set(None),
            user_agent: Set(truncate(context.user_agent, 512)),
            client_address: Set(truncate(context.client_address, 64)),
        };
        model.insert(&self.db).await?;
        Ok(())
    }

    /// Records a refresh of the session. Only bookkeeping for the user's session list, so it
    /// is kept in memory and written in batches ([`Self::flush_touches`]): a refresh does no
    /// SQL write, and SQLite's single writer is not on its path.
    pub fn touch(&self, id: Uuid, at: DateTime<Utc>) {
        self.pending().insert(id, at);
    }

    /// Writes the recorded refresh times in one transaction. On failure they are kept (unless
    /// a newer one came meanwhile) for the next flush.
    pub async fn flush_touches(&self) -> Result<(), Outage> {
        let _flushing = self.flushing.lock().await;
        let touches = std::mem::take(&mut *self.pending());
        if touches.is_empty() {
            return Ok(());
        }
        let written = self.write_touches(&touches).await;
        if written.is_err() {
            let mut pending = self.pending();
            for (id, at) in touches {
                pending.entry(id).or_insert(at);
            }
        }
        written
    }

    async fn write_touches(&self, touches: &HashMap<Uuid, DateTime<Utc>>) -> Result<(), Outage> {
        let transaction = self.db.begin().await?;
        for (id, at) in touches {
            Entity::update_many()
                .col_expr(Column::LastRefreshedAt, Expr::value(*at))
                .filter(Column::Id.eq(*id))
                .exec(&transaction)
                .await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    /// Flushes every `interval` for as long as the process runs.
    pub fn spawn_touch_writer(self, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            loop {
                ticker.tick().await;
                if let Err(err) = self.flush_touches().await {
                    tracing::warn!(error = %err, "writing session refresh times failed; retrying");
                }
            }
        })
    }

    fn pending(&self) -> MutexGuard<'_, HashMap<Uuid, DateTime<Utc>>> {
        self.pending_touches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Sessions neither ended nor expired at `now`, newest first.
    pub async fn live_of(&self, user_id: Uuid, now: DateTime<Utc>) -> Result<Vec<Session>, Outage> {
        // This instance's own recent refreshes show at once.
        self.flush_touches().await?;
        Ok(Entity::find()
            .filter(Column::UserId.eq(user_id))
            .filter(Column::EndedAt.is_null())
            .filter(Column::ExpiresAt.gt(now))
            .order_by_desc(Column::CreatedAt)
            .all(&self.db)
            .await?)
    }

    pub async fn find_live(
        &self,
        id: Uuid,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, Outage> {
        Ok(Entity::find_by_id(id)
            .filter(Column::UserId.eq(user_id))
            .filter(Column::EndedAt.is_null())
            .filter(Column::ExpiresAt.gt(now))
            .one(&self.db)
            .await?)
    }

    pub async fn end(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), Outage> {
        self.end_where(Column::Id.eq(id), at).await
    }

    pub async fn end_all_of(&self, user_id: Uuid, at: DateTime<Utc>) -> Result<(), Outage> {
        self.end_where(Column::UserId.eq(user_id), at).await
    }

    async fn end_where(
        &self,
        filter: sea_orm::sea_query::SimpleExpr,
        at: DateTime<Utc>,
    ) -> Result<(), Outage> {
        Entity::update_many()
            .col_expr(Column::EndedAt, Expr::value(at))
            .filter(filter)
            .filter(Column::EndedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(())
    }
}

fn truncate(mut text: String, max_chars: usize) -> String {
    if let Some((index, _)) = text.char_indices().nth(max_chars) {
        text.truncate(index);
    }
    text
}
