use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Login throttling counters (failures per account, attempts per client address) for the
/// embedded mode; with Redis they live there. Expired rows are purged with the revocations.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ThrottleCounters::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(ThrottleCounters::Key)
                            .string_len(128)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(ThrottleCounters::Count)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ThrottleCounters::ExpiresAtMs)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ThrottleCounters::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum ThrottleCounters {
    Table,
    Key,
    Count,
    ExpiresAtMs,
}
