use sea_orm::entity::prelude::*;

/// A registered OAuth 2.0 client.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_clients")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    /// Hex SHA-256 of the secret.
    pub secret_hash: String,
    /// Space-separated grant types the client may use.
    pub grant_types: String,
    /// Space-separated scopes the client may be granted.
    pub scope: String,
    pub created_at: DateTimeUtc,
    pub secret_rotated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
