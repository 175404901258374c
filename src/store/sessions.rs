//! The SQL record of login sessions: what `GET /api/users/me/sessions/` lists.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder,
};
use uuid::Uuid;

use super::StoreError;
use super::entities::session::{ActiveModel, Column, Entity, Model};

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
}

impl SessionRepository {
    pub fn new(db: DatabaseConnection) -> SessionRepository {
        SessionRepository { db }
    }

    pub async fn create(
        &self,
        id: Uuid,
        user_id: Uuid,
        created_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        context: LoginContext,
    ) -> Result<(), StoreError> {
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

    /// The one small write of a refresh.
    pub async fn touch(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
        Entity::update_many()
            .col_expr(Column::LastRefreshedAt, Expr::value(at))
            .filter(Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Sessions neither ended nor expired at `now`, newest first.
    pub async fn live_of(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<Session>, StoreError> {
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
    ) -> Result<Option<Session>, StoreError> {
        Ok(Entity::find_by_id(id)
            .filter(Column::UserId.eq(user_id))
            .filter(Column::EndedAt.is_null())
            .filter(Column::ExpiresAt.gt(now))
            .one(&self.db)
            .await?)
    }

    pub async fn end(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.end_where(Column::Id.eq(id), at).await
    }

    pub async fn end_all_of(&self, user_id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.end_where(Column::UserId.eq(user_id), at).await
    }

    async fn end_where(
        &self,
        filter: sea_orm::sea_query::SimpleExpr,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
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
