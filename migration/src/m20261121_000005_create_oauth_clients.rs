use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Registered OAuth 2.0 clients. The secret is stored as a SHA-256 digest: secrets are 256
/// random bits, so a slow password hash would add cost and no protection.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OauthClients::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(OauthClients::Id)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(OauthClients::Name)
                            .string_len(150)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(OauthClients::SecretHash)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(ColumnDef::new(OauthClients::GrantTypes).text().not_null())
                    .col(ColumnDef::new(OauthClients::Scope).text().not_null())
                    .col(
                        ColumnDef::new(OauthClients::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(OauthClients::SecretRotatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(OauthClients::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum OauthClients {
    Table,
    Id,
    Name,
    SecretHash,
    GrantTypes,
    Scope,
    CreatedAt,
    SecretRotatedAt,
}
