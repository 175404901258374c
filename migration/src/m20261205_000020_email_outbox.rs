use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The email outbox: mails written in the same transaction as what caused them, delivered by a
/// background sender on any instance. A row is claimed (`claim`, `claimed_until_ms`) by one
/// conditional update before it is sent, so two instances never send it twice; it is deleted once
/// sent, rescheduled (`next_attempt_at_ms`) when sending fails, and kept with `failed_at_ms` when
/// the server refuses it for good.
///
/// And `users.awaiting_activation`: set when registration makes an inactive user who must
/// activate, cleared by the activation. Only such a user may activate by mail: one that staff
/// deactivated stays inactive whatever links they ask for.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(EmailOutbox::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(EmailOutbox::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(EmailOutbox::Kind).string_len(32).not_null())
                    .col(
                        ColumnDef::new(EmailOutbox::Recipient)
                            .string_len(320)
                            .not_null(),
                    )
                    .col(ColumnDef::new(EmailOutbox::Subject).text().not_null())
                    .col(ColumnDef::new(EmailOutbox::TextBody).text().not_null())
                    .col(ColumnDef::new(EmailOutbox::HtmlBody).text().not_null())
                    .col(
                        ColumnDef::new(EmailOutbox::CreatedAtMs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(EmailOutbox::Attempts).integer().not_null())
                    .col(
                        ColumnDef::new(EmailOutbox::NextAttemptAtMs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(EmailOutbox::ClaimedUntilMs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(EmailOutbox::Claim).uuid().null())
                    .col(ColumnDef::new(EmailOutbox::FailedAtMs).big_integer().null())
                    .col(ColumnDef::new(EmailOutbox::LastError).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("email_outbox_due")
                    .table(EmailOutbox::Table)
                    .col(EmailOutbox::NextAttemptAtMs)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(
                        ColumnDef::new(Users::AwaitingActivation)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::AwaitingActivation)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(EmailOutbox::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum EmailOutbox {
    Table,
    Id,
    Kind,
    Recipient,
    Subject,
    TextBody,
    HtmlBody,
    CreatedAtMs,
    Attempts,
    NextAttemptAtMs,
    ClaimedUntilMs,
    Claim,
    FailedAtMs,
    LastError,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    AwaitingActivation,
}
