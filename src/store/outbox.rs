//! The email outbox in the SQL database. A mail is written with whatever caused it (in the
//! caller's transaction, [`enqueue`]), then delivered by the sender of any instance:
//!
//! - [`OutboxRepository::claim_due`] claims due rows one conditional `UPDATE` each (unclaimed or
//!   with an expired claim, not failed): only one instance's update can match, so each row has
//!   one sender at a time, on SQLite and PostgreSQL alike.
//! - A sent row is deleted; a failed attempt reschedules it and drops the claim; a refusal for
//!   good keeps it with `failed_at_ms`. Each of these only applies under the caller's claim.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, ExprTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::entities::email_outbox::{ActiveModel, Column, Entity, Model};
use crate::clock::UnixMillis;
use crate::outage::Outage;

/// A mail to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMail {
    pub kind: &'static str,
    pub recipient: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// A claimed mail, to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMail {
    pub id: Uuid,
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Failed attempts before this one.
    pub attempts: u32,
}

impl From<Model> for QueuedMail {
    fn from(row: Model) -> QueuedMail {
        QueuedMail {
            id: row.id,
            kind: row.kind,
            recipient: row.recipient,
            subject: row.subject,
            text: row.text_body,
            html: row.html_body,
            attempts: u32::try_from(row.attempts).unwrap_or(0),
        }
    }
}

/// What waits in the outbox: mails not yet sent nor refused for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    pub queued: u64,
    /// When the oldest of them was queued.
    pub oldest: Option<UnixMillis>,
}

/// Writes `mail` into the outbox through `connection`: the caller's transaction, so the mail
/// exists exactly when what caused it does.
pub async fn enqueue<C: ConnectionTrait>(
    connection: &C,
    mail: NewMail,
    now: UnixMillis,
) -> Result<(), Outage> {
    let row = ActiveModel {
        id: Set(Uuid::now_v7()),
        kind: Set(mail.kind.to_owned()),
        recipient: Set(mail.recipient),
        subject: Set(mail.subject),
        text_body: Set(mail.text),
        html_body: Set(mail.html),
        created_at_ms: Set(now.0),
        attempts: Set(0),
        next_attempt_at_ms: Set(now.0),
        claimed_until_ms: Set(0),
        claim: Set(None),
        failed_at_ms: Set(None),
        last_error: Set(None),
    };
    Entity::insert(row).exec(connection).await?;
    Ok(())
}

#[derive(Clone)]
pub struct OutboxRepository {
    db: DatabaseConnection,
}

impl OutboxRepository {
    pub fn new(db: DatabaseConnection) -> OutboxRepository {
        OutboxRepository { db }
    }

    pub async fn enqueue(&self, mail: NewMail, now: UnixMillis) -> Result<(), Outage> {
        enqueue(&self.db, mail, now).await
    }

    /// Claims up to `limit` due mails for `claim` until `until`, oldest due first. A row another
    /// sender claimed in between is skipped: the update that claims it matches only unclaimed rows.
    pub async fn claim_due(
        &self,
        claim: Uuid,
        now: UnixMillis,
        until: UnixMillis,
        limit: u64,
    ) -> Result<Vec<QueuedMail>, Outage> {
        let candidates: Vec<Uuid> = Entity::find()
            .select_only()
            .column(Column::Id)
            .filter(Column::FailedAtMs.is_null())
            .filter(Column::NextAttemptAtMs.lte(now.0))
            .filter(Column::ClaimedUntilMs.lte(now.0))
            .order_by_asc(Column::NextAttemptAtMs)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut claimed = Vec::new();
        for id in candidates {
            let taken = Entity::update_many()
                .col_expr(Column::Claim, Expr::value(claim))
                .col_expr(Column::ClaimedUntilMs, Expr::value(until.0))
                .filter(Column::Id.eq(id))
                .filter(Column::FailedAtMs.is_null())
                .filter(Column::ClaimedUntilMs.lte(now.0))
                .exec(&self.db)
                .await?;
            if taken.rows_affected == 1
                && let Some(row) = Entity::find_by_id(id).one(&self.db).await?
            {
                claimed.push(row.into());
            }
        }
        Ok(claimed)
    }

    /// The mail `id` was sent under `claim`: it leaves the outbox.
    pub async fn sent(&self, id: Uuid, claim: Uuid) -> Result<(), Outage> {
        Entity::delete_many()
            .filter(Column::Id.eq(id))
            .filter(Column::Claim.eq(claim))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Sending `id` failed: try again at `retry_at`, by whichever sender claims it then.
    pub async fn retry_later(
        &self,
        id: Uuid,
        claim: Uuid,
        retry_at: UnixMillis,
        error: &str,
    ) -> Result<(), Outage> {
        Entity::update_many()
            .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
            .col_expr(Column::NextAttemptAtMs, Expr::value(retry_at.0))
            .col_expr(Column::ClaimedUntilMs, Expr::value(0i64))
            .col_expr(Column::Claim, Expr::value(Option::<Uuid>::None))
            .col_expr(Column::LastError, Expr::value(error))
            .filter(Column::Id.eq(id))
            .filter(Column::Claim.eq(claim))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// The server refused `id` for good: it stays, marked, for an operator to look at.
    pub async fn failed(
        &self,
        id: Uuid,
        claim: Uuid,
        now: UnixMillis,
        error: &str,
    ) -> Result<(), Outage> {
        Entity::update_many()
            .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
            .col_expr(Column::FailedAtMs, Expr::value(now.0))
            .col_expr(Column::LastError, Expr::value(error))
            .filter(Column::Id.eq(id))
            .filter(Column::Claim.eq(claim))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// How many mails wait, and since when the oldest.
    pub async fn backlog(&self) -> Result<Backlog, Outage> {
        let waiting = Entity::find().filter(Column::FailedAtMs.is_null());
        let queued = waiting.clone().count(&self.db).await?;
        let oldest: Option<i64> = waiting
            .select_only()
            .column(Column::CreatedAtMs)
            .order_by_asc(Column::CreatedAtMs)
            .into_tuple()
            .one(&self.db)
            .await?;
        Ok(Backlog {
            queued,
            oldest: oldest.map(UnixMillis),
        })
    }

    /// Every mail in the outbox, sent or not yet (tests and operators).
    pub async fn all(&self) -> Result<Vec<Model>, Outage> {
        Ok(Entity::find()
            .order_by_asc(Column::CreatedAtMs)
            .all(&self.db)
            .await?)
    }
}
