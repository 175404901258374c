//! Registered OAuth 2.0 clients, in SQL through SeaORM.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder,
};

use super::entities::oauth_client::{ActiveModel, Column, Entity, Model};
use crate::outage::Outage;

pub type ClientRecord = Model;

#[derive(Clone)]
pub struct ClientRepository {
    db: DatabaseConnection,
}

impl ClientRepository {
    pub fn new(db: DatabaseConnection) -> ClientRepository {
        ClientRepository { db }
    }

    pub async fn create(&self, record: ClientRecord) -> Result<(), Outage> {
        ActiveModel {
            id: Set(record.id),
            name: Set(record.name),
            secret_hash: Set(record.secret_hash),
            grant_types: Set(record.grant_types),
            scope: Set(record.scope),
            created_at: Set(record.created_at),
            secret_rotated_at: Set(record.secret_rotated_at),
        }
        .insert(&self.db)
        .await?;
        Ok(())
    }

    pub async fn find(&self, id: &str) -> Result<Option<ClientRecord>, Outage> {
        Ok(Entity::find_by_id(id.to_owned()).one(&self.db).await?)
    }

    pub async fn list(&self) -> Result<Vec<ClientRecord>, Outage> {
        Ok(Entity::find()
            .order_by_asc(Column::CreatedAt)
            .order_by_asc(Column::Id)
            .all(&self.db)
            .await?)
    }

    /// Whether a client was deleted.
    pub async fn delete(&self, id: &str) -> Result<bool, Outage> {
        Ok(Entity::delete_by_id(id.to_owned())
            .exec(&self.db)
            .await?
            .rows_affected
            > 0)
    }

    /// Replaces the secret's digest; whether the client exists.
    pub async fn set_secret_hash(
        &self,
        id: &str,
        secret_hash: String,
        at: DateTime<Utc>,
    ) -> Result<bool, Outage> {
        let updated = Entity::update_many()
            .col_expr(Column::SecretHash, Expr::value(secret_hash))
            .col_expr(Column::SecretRotatedAt, Expr::value(at))
            .filter(Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(updated.rows_affected > 0)
    }
}
