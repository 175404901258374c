use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Django's authorisation model: groups holding permissions (`app_label.codename` strings),
/// users in groups and with permissions of their own, and `app_metadata` (a JSON object, as
/// text, copied into access tokens) on every user. Memberships and grants go with their user
/// or group (`ON DELETE CASCADE`).
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add_app_metadata(manager).await?;
        manager.create_table(groups()).await?;
        manager.create_table(group_permissions()).await?;
        manager.create_table(user_groups()).await?;
        manager.create_table(user_permissions()).await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_user_groups_group_id")
                    .table(UserGroups::Table)
                    .col(UserGroups::GroupId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            UserPermissions::Table.into_iden(),
            UserGroups::Table.into_iden(),
            GroupPermissions::Table.into_iden(),
            Groups::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::AppMetadata)
                    .to_owned(),
            )
            .await
    }
}

/// Existing users get an empty object.
async fn add_app_metadata(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    if manager.has_column("users", "app_metadata").await? {
        return Ok(());
    }
    manager
        .alter_table(
            Table::alter()
                .table(Users::Table)
                .add_column(
                    ColumnDef::new(Users::AppMetadata)
                        .text()
                        .not_null()
                        .default("{}"),
                )
                .to_owned(),
        )
        .await
}

fn groups() -> TableCreateStatement {
    Table::create()
        .table(Groups::Table)
        .if_not_exists()
        .col(ColumnDef::new(Groups::Id).uuid().not_null().primary_key())
        .col(
            ColumnDef::new(Groups::Name)
                .string_len(150)
                .not_null()
                .unique_key(),
        )
        .to_owned()
}

fn group_permissions() -> TableCreateStatement {
    Table::create()
        .table(GroupPermissions::Table)
        .if_not_exists()
        .col(ColumnDef::new(GroupPermissions::GroupId).uuid().not_null())
        .col(
            ColumnDef::new(GroupPermissions::Permission)
                .string_len(255)
                .not_null(),
        )
        .primary_key(
            Index::create()
                .col(GroupPermissions::GroupId)
                .col(GroupPermissions::Permission),
        )
        .foreign_key(
            ForeignKey::create()
                .from(GroupPermissions::Table, GroupPermissions::GroupId)
                .to(Groups::Table, Groups::Id)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .to_owned()
}

fn user_groups() -> TableCreateStatement {
    Table::create()
        .table(UserGroups::Table)
        .if_not_exists()
        .col(ColumnDef::new(UserGroups::UserId).uuid().not_null())
        .col(ColumnDef::new(UserGroups::GroupId).uuid().not_null())
        .primary_key(
            Index::create()
                .col(UserGroups::UserId)
                .col(UserGroups::GroupId),
        )
        .foreign_key(
            ForeignKey::create()
                .from(UserGroups::Table, UserGroups::UserId)
                .to(Users::Table, Users::Id)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .foreign_key(
            ForeignKey::create()
                .from(UserGroups::Table, UserGroups::GroupId)
                .to(Groups::Table, Groups::Id)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .to_owned()
}

fn user_permissions() -> TableCreateStatement {
    Table::create()
        .table(UserPermissions::Table)
        .if_not_exists()
        .col(ColumnDef::new(UserPermissions::UserId).uuid().not_null())
        .col(
            ColumnDef::new(UserPermissions::Permission)
                .string_len(255)
                .not_null(),
        )
        .primary_key(
            Index::create()
                .col(UserPermissions::UserId)
                .col(UserPermissions::Permission),
        )
        .foreign_key(
            ForeignKey::create()
                .from(UserPermissions::Table, UserPermissions::UserId)
                .to(Users::Table, Users::Id)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .to_owned()
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    AppMetadata,
}

#[derive(DeriveIden)]
enum Groups {
    Table,
    Id,
    Name,
}

#[derive(DeriveIden)]
enum GroupPermissions {
    Table,
    GroupId,
    Permission,
}

#[derive(DeriveIden)]
enum UserGroups {
    Table,
    UserId,
    GroupId,
}

#[derive(DeriveIden)]
enum UserPermissions {
    Table,
    UserId,
    Permission,
}
