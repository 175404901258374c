use sea_orm::entity::prelude::*;

/// One mail of the outbox (see `store::outbox`). Times are unix milliseconds of the app's clock.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "email_outbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// What the mail is for: `activation` or `password_reset`.
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub created_at_ms: i64,
    /// Delivery attempts that failed so far.
    pub attempts: i32,
    /// Not sent before this.
    pub next_attempt_at_ms: i64,
    /// The claim of the instance sending it holds until then (0: unclaimed).
    pub claimed_until_ms: i64,
    pub claim: Option<Uuid>,
    /// Set when the server refused the mail for good; the row is kept for operators.
    pub failed_at_ms: Option<i64>,
    pub last_error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
