use sea_orm::entity::prelude::*;

/// One entry of the SQL revocation feed (see `store::feed`).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "revocation_feed")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// `token`, `session`, `user` or `client`.
    pub kind: String,
    pub subject: String,
    pub not_before_ms: Option<i64>,
    /// Unix seconds after which the entry refuses no live token.
    pub expires_at: i64,
    /// The publishing instance's clock, unix ms: what the purge and the cursor's age go by.
    pub created_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
