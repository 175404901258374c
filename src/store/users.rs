//! Users in the SQL database through SeaORM. The row (with its password hash) stays here: callers
//! get the domain [`User`], and the hash only as [`Credentials`], for the password checks.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Func, LikeExpr};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, ExprTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, SqlErr, TransactionTrait,
};
use uuid::Uuid;

use super::entities::user::{ActiveModel, Column, Entity, Model};
use super::outbox::{self, NewMail};
use crate::accounts::{User, normalize_username};
use crate::clock::UnixMillis;
use crate::outage::Outage;

impl From<Model> for User {
    fn from(row: Model) -> User {
        User {
            id: row.id,
            username: row.username,
            email: row.email,
            is_active: row.is_active,
            is_staff: row.is_staff,
            date_joined: row.date_joined,
            last_login: row.last_login,
            // Written only after validation as an object; anything else reads as none.
            app_metadata: serde_json::from_str(&row.app_metadata).unwrap_or_default(),
        }
    }
}

/// A user and their stored password hash: what a password check needs, and nothing else does.
pub struct Credentials {
    pub user: User,
    pub password_hash: String,
    /// Registered with `users.require_activation` and not activated yet.
    pub awaiting_activation: bool,
}

/// Why a user could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteUserError {
    #[error("A user with that username already exists.")]
    UsernameTaken,
    #[error("A user with that email already exists.")]
    EmailTaken,
    #[error(transparent)]
    Store(#[from] Outage),
}

impl From<sea_orm::DbErr> for WriteUserError {
    fn from(err: sea_orm::DbErr) -> WriteUserError {
        match err.sql_err() {
            // The violated index is named in the message on both SQLite and PostgreSQL.
            Some(SqlErr::UniqueConstraintViolation(message)) if message.contains("email") => {
                WriteUserError::EmailTaken
            }
            Some(SqlErr::UniqueConstraintViolation(_)) => WriteUserError::UsernameTaken,
            _ => WriteUserError::Store(err.into()),
        }
    }
}

/// What staff may change about any user.
#[derive(Debug, Default)]
pub struct AdminChange {
    pub is_active: Option<bool>,
    pub is_staff: Option<bool>,
    pub email: Option<String>,
    /// A validated JSON object, as text.
    pub app_metadata: Option<String>,
}

/// Filters of the staff user list; all optional, combined with AND.
#[derive(Debug, Default)]
pub struct UserFilter {
    /// Part of the (normalised) username.
    pub username: Option<String>,
    /// The whole email, ignoring case.
    pub email: Option<String>,
    pub is_active: Option<bool>,
}

/// A change of the fields a user may edit about themself.
#[derive(Debug, Default)]
pub struct ProfileChange {
    pub username: Option<String>,
    pub email: Option<String>,
}

/// Which of a new user's username and email other users already have.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    pub username: bool,
    pub email: bool,
}

pub struct NewUser {
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub is_staff: bool,
}

#[derive(Clone)]
pub struct UserRepository {
    db: DatabaseConnection,
}

impl UserRepository {
    pub fn new(db: DatabaseConnection) -> UserRepository {
        UserRepository { db }
    }

    pub async fn find_by_username(&self, username: &str) -> Result<Option<User>, Outage> {
        Ok(self
            .credentials_by_username(username)
            .await?
            .map(|c| c.user))
    }

    /// The id of the user with this username, if any (the row's id column only).
    pub async fn id_by_username(&self, username: &str) -> Result<Option<Uuid>, Outage> {
        let id = Entity::find()
            .select_only()
            .column(Column::Id)
            .filter(Column::UsernameNormalized.eq(normalize_username(username)))
            .into_tuple::<Uuid>()
            .one(&self.db)
            .await?;
        Ok(id)
    }

    pub async fn credentials_by_username(
        &self,
        username: &str,
    ) -> Result<Option<Credentials>, Outage> {
        let row = Entity::find()
            .filter(Column::UsernameNormalized.eq(normalize_username(username)))
            .one(&self.db)
            .await?;
        Ok(row.map(credentials_of))
    }

    pub async fn find_by_id(&self, id: Uuid) -> Result<Option<User>, Outage> {
        Ok(Entity::find_by_id(id).one(&self.db).await?.map(User::from))
    }

    pub async fn credentials_by_id(&self, id: Uuid) -> Result<Option<Credentials>, Outage> {
        Ok(Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .map(credentials_of))
    }

    /// Whether another user has `username` (normalised) or `email` (ignoring case, as the
    /// unique index compares it, in the database; a blank email is none), in one query. Only
    /// a check before hashing: the unique indexes stay the guard against two at once.
    pub async fn taken(&self, username: &str, email: &str) -> Result<Taken, Outage> {
        let same_username = Column::UsernameNormalized.eq(normalize_username(username));
        let same_email = Expr::expr(Func::lower(Expr::col(Column::Email)))
            .eq(Func::lower(Expr::val(email)))
            .and(Column::Email.ne(""));
        let matches: Vec<(bool, bool)> = Entity::find()
            .select_only()
            .column_as(same_username.clone(), "same_username")
            .column_as(same_email.clone(), "same_email")
            .filter(same_username.or(same_email))
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(Taken {
            username: matches.iter().any(|(username, _)| *username),
            email: matches.iter().any(|(_, email)| *email),
        })
    }

    pub async fn create(&self, new: NewUser, now: DateTime<Utc>) -> Result<User, WriteUserError> {
        let model = new_row(Uuid::now_v7(), new, true, now);
        Ok(model.insert(&self.db).await?.into())
    }

    /// Inserts `new` as the inactive user `id` and queues `mail` in the same transaction: both
    /// are stored, or neither (registration with `users.require_activation`).
    pub async fn create_inactive_with_mail(
        &self,
        id: Uuid,
        new: NewUser,
        now: DateTime<Utc>,
        mail: NewMail,
    ) -> Result<User, WriteUserError> {
        let transaction = self.db.begin().await.map_err(Outage::from)?;
        let user = new_row(id, new, false, now).insert(&transaction).await?;
        outbox::enqueue(&transaction, mail, UnixMillis(now.timestamp_millis())).await?;
        transaction.commit().await.map_err(Outage::from)?;
        Ok(user.into())
    }

    /// The user whose email is `email` (ignoring case, as the unique index compares it).
    pub async fn credentials_by_email(&self, email: &str) -> Result<Option<Credentials>, Outage> {
        let lowered = Expr::expr(Func::lower(Expr::col(Column::Email)));
        let row = Entity::find()
            .filter(lowered.eq(Func::lower(Expr::val(email))))
            .filter(Column::Email.ne(""))
            .one(&self.db)
            .await?;
        Ok(row.map(credentials_of))
    }

    /// Activates the user if they still await their activation; whether this call did it. Of
    /// several at once, one does.
    pub async fn activate(&self, id: Uuid) -> Result<bool, Outage> {
        let changed = Entity::update_many()
            .col_expr(Column::IsActive, Expr::value(true))
            .col_expr(Column::AwaitingActivation, Expr::value(false))
            .filter(Column::Id.eq(id))
            .filter(Column::IsActive.eq(false))
            .filter(Column::AwaitingActivation.eq(true))
            .exec(&self.db)
            .await?;
        Ok(changed.rows_affected == 1)
    }

    /// Replaces the password hash if it is still `old`; whether this call did it. Of several at
    /// once, one does.
    pub async fn replace_password_hash(
        &self,
        id: Uuid,
        old: &str,
        new: String,
    ) -> Result<bool, Outage> {
        let changed = Entity::update_many()
            .col_expr(Column::PasswordHash, Expr::value(new))
            .filter(Column::Id.eq(id))
            .filter(Column::PasswordHash.eq(old))
            .exec(&self.db)
            .await?;
        Ok(changed.rows_affected == 1)
    }

    pub async fn update_profile(
        &self,
        id: Uuid,
        change: ProfileChange,
    ) -> Result<User, WriteUserError> {
        let mut model = ActiveModel {
            id: Set(id),
            ..Default::default()
        };
        if let Some(username) = change.username {
            model.username_normalized = Set(normalize_username(&username));
            model.username = Set(username);
        }
        if let Some(email) = change.email {
            model.email = Set(email);
        }
        Ok(model.update(&self.db).await?.into())
    }

    /// One page (from 1) of users in joining order, and how many match in all.
    pub async fn list(
        &self,
        filter: UserFilter,
        page: u64,
        page_size: u64,
    ) -> Result<(Vec<User>, u64), Outage> {
        let mut query = Entity::find()
            .order_by_asc(Column::DateJoined)
            .order_by_asc(Column::Id);
        if let Some(part) = filter.username {
            let pattern = format!("%{}%", escape_like(&normalize_username(&part)));
            query =
                query.filter(Column::UsernameNormalized.like(LikeExpr::new(pattern).escape('\\')));
        }
        if let Some(email) = filter.email {
            let lowered = Expr::expr(Func::lower(Expr::col(Column::Email)));
            query = query.filter(lowered.eq(email.to_lowercase()));
        }
        if let Some(active) = filter.is_active {
            query = query.filter(Column::IsActive.eq(active));
        }
        let pages = query.paginate(&self.db, Ord::max(page_size, 1));
        let total = pages.num_items().await?;
        let users = pages.fetch_page(page.saturating_sub(1)).await?;
        Ok((users.into_iter().map(User::from).collect(), total))
    }

    pub async fn admin_update(
        &self,
        id: Uuid,
        change: AdminChange,
    ) -> Result<User, WriteUserError> {
        let mut model = ActiveModel {
            id: Set(id),
            ..Default::default()
        };
        if let Some(active) = change.is_active {
            model.is_active = Set(active);
            // Staff decided: no activation link works any more (see `email`).
            model.awaiting_activation = Set(false);
        }
        if let Some(staff) = change.is_staff {
            model.is_staff = Set(staff);
        }
        if let Some(email) = change.email {
            model.email = Set(email);
        }
        if let Some(app_metadata) = change.app_metadata {
            model.app_metadata = Set(app_metadata);
        }
        Ok(model.update(&self.db).await?.into())
    }

    /// Deletes the user; whether there was one.
    pub async fn delete(&self, id: Uuid) -> Result<bool, Outage> {
        Ok(Entity::delete_by_id(id).exec(&self.db).await?.rows_affected > 0)
    }

    pub async fn set_password_hash(&self, id: Uuid, password_hash: String) -> Result<(), Outage> {
        let change = ActiveModel {
            id: Set(id),
            password_hash: Set(password_hash),
            ..Default::default()
        };
        change.update(&self.db).await?;
        Ok(())
    }

    pub async fn set_last_login(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), Outage> {
        let change = ActiveModel {
            id: Set(id),
            last_login: Set(Some(at)),
            ..Default::default()
        };
        change.update(&self.db).await?;
        Ok(())
    }
}

/// `text` matched literally inside a LIKE pattern: `%`, `_` and the escape itself are escaped.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn new_row(id: Uuid, new: NewUser, is_active: bool, now: DateTime<Utc>) -> ActiveModel {
    ActiveModel {
        id: Set(id),
        username_normalized: Set(normalize_username(&new.username)),
        username: Set(new.username),
        email: Set(new.email),
        password_hash: Set(new.password_hash),
        is_active: Set(is_active),
        is_staff: Set(new.is_staff),
        date_joined: Set(now),
        last_login: Set(None),
        awaiting_activation: Set(!is_active),
        app_metadata: Set("{}".into()),
    }
}

fn credentials_of(row: Model) -> Credentials {
    Credentials {
        password_hash: row.password_hash.clone(),
        awaiting_activation: row.awaiting_activation,
        user: row.into(),
    }
}
