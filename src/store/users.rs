//! Users in the SQL database through SeaORM. Password hashes never leave this module's callers
//! inside the service.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
    SqlErr,
};
use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

use super::StoreError;
use super::entities::user::{self, ActiveModel, Column, Entity};

pub type User = user::Model;

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("A user with that username already exists.")]
    UsernameTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct NewUser {
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub is_staff: bool,
}

/// The uniqueness key of a username: NFKC, then case folded, so look-alikes (`Alice`,
/// `ａｌｉｃｅ`) are one account.
pub fn normalize_username(username: &str) -> String {
    username
        .nfkc()
        .flat_map(char::to_lowercase)
        .nfkc()
        .collect()
}

#[derive(Clone)]
pub struct UserRepository {
    db: DatabaseConnection,
}

impl UserRepository {
    pub fn new(db: DatabaseConnection) -> UserRepository {
        UserRepository { db }
    }

    pub async fn find_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        Ok(Entity::find()
            .filter(Column::UsernameNormalized.eq(normalize_username(username)))
            .one(&self.db)
            .await?)
    }

    pub async fn find_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        Ok(Entity::find_by_id(id).one(&self.db).await?)
    }

    pub async fn create(&self, new: NewUser, now: DateTime<Utc>) -> Result<User, CreateUserError> {
        let model = ActiveModel {
            id: Set(Uuid::now_v7()),
            username_normalized: Set(normalize_username(&new.username)),
            username: Set(new.username),
            email: Set(new.email),
            password_hash: Set(new.password_hash),
            is_active: Set(true),
            is_staff: Set(new.is_staff),
            date_joined: Set(now),
            last_login: Set(None),
        };
        model
            .insert(&self.db)
            .await
            .map_err(|err| match err.sql_err() {
                Some(SqlErr::UniqueConstraintViolation(_)) => CreateUserError::UsernameTaken,
                _ => CreateUserError::Store(err.into()),
            })
    }

    pub async fn set_password_hash(
        &self,
        id: Uuid,
        password_hash: String,
    ) -> Result<(), StoreError> {
        let change = ActiveModel {
            id: Set(id),
            password_hash: Set(password_hash),
            ..Default::default()
        };
        change.update(&self.db).await?;
        Ok(())
    }

    pub async fn set_last_login(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
        let change = ActiveModel {
            id: Set(id),
            last_login: Set(Some(at)),
            ..Default::default()
        };
        change.update(&self.db).await?;
        Ok(())
    }
}
