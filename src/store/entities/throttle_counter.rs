use sea_orm::entity::prelude::*;

/// One login-throttling counter of the SQL store (see `store::counters`).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "throttle_counters")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    pub count: i64,
    /// Unix milliseconds when the counter's window ends.
    pub expires_at_ms: i64,
    /// Unix milliseconds until which an account is locked (not after it); 0 for the client
    /// addresses' counters, which lock nothing.
    pub locked_until_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
