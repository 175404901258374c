use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// An account's lock beside its failures, in the same row, so that one statement can refuse a
/// login attempt while the account is locked or count it and lock it (issue 15). Unix
/// milliseconds; 0 for a counter that locks nothing (the client addresses'). Existing rows keep
/// counting; their old `l:` lock rows expire by themselves.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ThrottleCounters::Table)
                    .add_column(
                        ColumnDef::new(ThrottleCounters::LockedUntilMs)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ThrottleCounters::Table)
                    .drop_column(ThrottleCounters::LockedUntilMs)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum ThrottleCounters {
    Table,
    LockedUntilMs,
}
