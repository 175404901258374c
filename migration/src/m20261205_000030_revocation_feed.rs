use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The SQL revocation feed: one row per revocation, in id order. The id is `AUTOINCREMENT` on
/// SQLite (never reused after a purge) and a `bigserial` on PostgreSQL; writers publish under
/// a lock held to commit, so ids become visible in order (see `store/sql_feed.rs`).
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RevocationFeed::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(RevocationFeed::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(RevocationFeed::Kind)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RevocationFeed::Subject)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(ColumnDef::new(RevocationFeed::NotBeforeMs).big_integer())
                    .col(
                        ColumnDef::new(RevocationFeed::ExpiresAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RevocationFeed::CreatedMs)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_revocation_feed_created_ms")
                    .table(RevocationFeed::Table)
                    .col(RevocationFeed::CreatedMs)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RevocationFeed::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum RevocationFeed {
    Table,
    Id,
    Kind,
    Subject,
    NotBeforeMs,
    ExpiresAt,
    CreatedMs,
}
