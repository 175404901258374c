//! Groups, their permissions, and users' groups and own permissions, in SQL through SeaORM.
//!
//! Every edit is one transaction that first locks what it edits: the group's row for a group
//! edit, the user's row for a change of a user's groups or permissions. On PostgreSQL the group
//! lock is `FOR UPDATE`, which also waits for any transaction still adding a member (its
//! foreign key check holds the group's row `FOR KEY SHARE`), so the members a group edit reads
//! include every membership committed before it. On SQLite the first statement is a write, which
//! takes the database's one write lock (a transaction that read first could not upgrade). The
//! callers revoke and invalidate after the commit (see `accounts::permissions`).

use std::collections::{BTreeSet, HashMap};

use sea_orm::sea_query::{Expr, ExprTrait, Query, UnionType};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, SqlErr, TransactionTrait,
};
use uuid::Uuid;

use super::entities::{group, group_permission, user, user_group, user_permission};
use crate::accounts::{Grants, Group};
use crate::outage::Outage;

/// Why a group could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteGroupError {
    #[error("A group with that name already exists.")]
    NameTaken,
    #[error("Not found.")]
    NotFound,
    #[error(transparent)]
    Store(#[from] Outage),
}

impl From<DbErr> for WriteGroupError {
    fn from(err: DbErr) -> WriteGroupError {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => WriteGroupError::NameTaken,
            _ => WriteGroupError::Store(err.into()),
        }
    }
}

/// Why a user's groups or permissions could not be replaced.
#[derive(Debug, thiserror::Error)]
pub enum WriteGrantsError {
    #[error("Not found.")]
    UserNotFound,
    /// Ids that name no group (or a group deleted while this edit ran).
    #[error("Unknown groups")]
    UnknownGroups(Vec<Uuid>),
    #[error(transparent)]
    Store(#[from] Outage),
}

impl From<DbErr> for WriteGrantsError {
    fn from(err: DbErr) -> WriteGrantsError {
        WriteGrantsError::Store(err.into())
    }
}

/// A committed group edit: the group now, whether it lost a permission, and its members
/// (read after the lock, so no membership committed before the edit is missing).
#[derive(Debug)]
pub struct GroupEdit {
    pub group: Group,
    pub lost: bool,
    pub members: Vec<Uuid>,
}

/// What a replacement of one user's groups or own permissions took away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserEdit {
    pub lost: bool,
}

#[derive(Clone)]
pub struct GroupRepository {
    db: DatabaseConnection,
}

impl GroupRepository {
    pub fn new(db: DatabaseConnection) -> GroupRepository {
        GroupRepository { db }
    }

    /// Every group, by name.
    pub async fn list(&self) -> Result<Vec<Group>, Outage> {
        let groups = group::Entity::find()
            .order_by_asc(group::Column::Name)
            .all(&self.db)
            .await?;
        let ids: Vec<Uuid> = groups.iter().map(|g| g.id).collect();
        let mut permissions = permissions_of_groups(&self.db, &ids).await?;
        Ok(groups
            .into_iter()
            .map(|row| Group {
                permissions: permissions.remove(&row.id).unwrap_or_default(),
                id: row.id,
                name: row.name,
            })
            .collect())
    }

    pub async fn find(&self, id: Uuid) -> Result<Option<Group>, Outage> {
        find_group(&self.db, id).await
    }

    pub async fn id_by_name(&self, name: &str) -> Result<Option<Uuid>, Outage> {
        Ok(group::Entity::find()
            .select_only()
            .column(group::Column::Id)
            .filter(group::Column::Name.eq(name))
            .into_tuple::<Uuid>()
            .one(&self.db)
            .await?)
    }

    pub async fn create(
        &self,
        name: String,
        permissions: BTreeSet<String>,
    ) -> Result<Group, WriteGroupError> {
        let id = Uuid::now_v7();
        let txn = self.db.begin().await.map_err(Outage::from)?;
        let row = group::ActiveModel {
            id: Set(id),
            name: Set(name.clone()),
        };
        group::Entity::insert(row)
            .exec_without_returning(&txn)
            .await?;
        insert_group_permissions(&txn, id, &permissions).await?;
        txn.commit().await.map_err(Outage::from)?;
        Ok(Group {
            id,
            name,
            permissions: permissions.into_iter().collect(),
        })
    }

    /// Renames the group and/or replaces its permissions.
    pub async fn update(
        &self,
        id: Uuid,
        name: Option<String>,
        permissions: Option<BTreeSet<String>>,
    ) -> Result<GroupEdit, WriteGroupError> {
        let txn = self.db.begin().await.map_err(Outage::from)?;
        if !lock_group(&txn, id).await? {
            return Err(WriteGroupError::NotFound);
        }
        if let Some(name) = name {
            group::Entity::update_many()
                .col_expr(group::Column::Name, Expr::value(name))
                .filter(group::Column::Id.eq(id))
                .exec(&txn)
                .await?;
        }
        let before: BTreeSet<String> = permissions_of_groups(&txn, &[id])
            .await?
            .remove(&id)
            .unwrap_or_default()
            .into_iter()
            .collect();
        let mut lost = false;
        if let Some(after) = permissions {
            lost = !before.is_subset(&after);
            group_permission::Entity::delete_many()
                .filter(group_permission::Column::GroupId.eq(id))
                .exec(&txn)
                .await?;
            insert_group_permissions(&txn, id, &after).await?;
        }
        let members = members_of(&txn, id).await?;
        let group = find_group(&txn, id)
            .await?
            .ok_or(WriteGroupError::NotFound)?;
        txn.commit().await.map_err(Outage::from)?;
        Ok(GroupEdit {
            group,
            lost,
            members,
        })
    }

    /// Deletes the group; its former members, or `None` if there was no such group.
    pub async fn delete(&self, id: Uuid) -> Result<Option<Vec<Uuid>>, Outage> {
        let txn = self.db.begin().await?;
        if !lock_group(&txn, id).await? {
            return Ok(None);
        }
        let members = members_of(&txn, id).await?;
        group::Entity::delete_by_id(id).exec(&txn).await?;
        txn.commit().await?;
        Ok(Some(members))
    }

    /// Each user's groups and effective permissions (theirs and their groups'), sorted.
    pub async fn grants_of(&self, users: &[Uuid]) -> Result<HashMap<Uuid, Grants>, Outage> {
        grants_of(&self.db, users).await
    }

    /// Replaces the user's groups.
    pub async fn set_user_groups(
        &self,
        user_id: Uuid,
        groups: BTreeSet<Uuid>,
    ) -> Result<UserEdit, WriteGrantsError> {
        let txn = self.db.begin().await.map_err(Outage::from)?;
        if !lock_user(&txn, user_id).await? {
            return Err(WriteGrantsError::UserNotFound);
        }
        let known: BTreeSet<Uuid> = group::Entity::find()
            .select_only()
            .column(group::Column::Id)
            .filter(group::Column::Id.is_in(groups.iter().copied()))
            .into_tuple::<Uuid>()
            .all(&txn)
            .await?
            .into_iter()
            .collect();
        let unknown: Vec<Uuid> = groups.difference(&known).copied().collect();
        if !unknown.is_empty() {
            return Err(WriteGrantsError::UnknownGroups(unknown));
        }
        let before: BTreeSet<Uuid> = user_group::Entity::find()
            .select_only()
            .column(user_group::Column::GroupId)
            .filter(user_group::Column::UserId.eq(user_id))
            .into_tuple::<Uuid>()
            .all(&txn)
            .await?
            .into_iter()
            .collect();
        user_group::Entity::delete_many()
            .filter(user_group::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        let rows = groups.iter().map(|&group_id| user_group::ActiveModel {
            user_id: Set(user_id),
            group_id: Set(group_id),
        });
        if !groups.is_empty() {
            user_group::Entity::insert_many(rows)
                .exec_without_returning(&txn)
                .await
                .map_err(|err| membership_error(err, &groups))?;
        }
        txn.commit().await.map_err(Outage::from)?;
        Ok(UserEdit {
            lost: !before.is_subset(&groups),
        })
    }

    /// Replaces the user's own permissions.
    pub async fn set_user_permissions(
        &self,
        user_id: Uuid,
        permissions: BTreeSet<String>,
    ) -> Result<UserEdit, WriteGrantsError> {
        let txn = self.db.begin().await.map_err(Outage::from)?;
        if !lock_user(&txn, user_id).await? {
            return Err(WriteGrantsError::UserNotFound);
        }
        let before: BTreeSet<String> = user_permission::Entity::find()
            .select_only()
            .column(user_permission::Column::Permission)
            .filter(user_permission::Column::UserId.eq(user_id))
            .into_tuple::<String>()
            .all(&txn)
            .await?
            .into_iter()
            .collect();
        user_permission::Entity::delete_many()
            .filter(user_permission::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        if !permissions.is_empty() {
            let rows = permissions
                .iter()
                .map(|permission| user_permission::ActiveModel {
                    user_id: Set(user_id),
                    permission: Set(permission.clone()),
                });
            user_permission::Entity::insert_many(rows)
                .exec_without_returning(&txn)
                .await?;
        }
        txn.commit().await.map_err(Outage::from)?;
        Ok(UserEdit {
            lost: !before.is_subset(&permissions),
        })
    }

    /// Adds one group to the user's (nothing if they are in it already): a gain only.
    pub async fn add_user_group(&self, user_id: Uuid, group_id: Uuid) -> Result<(), Outage> {
        let row = user_group::ActiveModel {
            user_id: Set(user_id),
            group_id: Set(group_id),
        };
        user_group::Entity::insert(row)
            .on_conflict_do_nothing()
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    /// Adds one permission to the user's own (nothing if they have it already): a gain only.
    pub async fn add_user_permission(
        &self,
        user_id: Uuid,
        permission: String,
    ) -> Result<(), Outage> {
        let row = user_permission::ActiveModel {
            user_id: Set(user_id),
            permission: Set(permission),
        };
        user_permission::Entity::insert(row)
            .on_conflict_do_nothing()
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }
}

/// A group deleted between the existence check and the insert (PostgreSQL's foreign key).
fn membership_error(err: DbErr, groups: &BTreeSet<Uuid>) -> WriteGrantsError {
    match err.sql_err() {
        Some(SqlErr::ForeignKeyConstraintViolation(_)) => {
            WriteGrantsError::UnknownGroups(groups.iter().copied().collect())
        }
        _ => err.into(),
    }
}

/// Locks the group's row until the transaction ends; whether the group exists.
async fn lock_group(txn: &DatabaseTransaction, id: Uuid) -> Result<bool, DbErr> {
    if txn.get_database_backend() == DbBackend::Postgres {
        let row = group::Entity::find_by_id(id)
            .select_only()
            .column(group::Column::Id)
            .lock_exclusive()
            .into_tuple::<Uuid>()
            .one(txn)
            .await?;
        return Ok(row.is_some());
    }
    let touched = group::Entity::update_many()
        .col_expr(group::Column::Name, Expr::col(group::Column::Name))
        .filter(group::Column::Id.eq(id))
        .exec(txn)
        .await?;
    Ok(touched.rows_affected > 0)
}

/// Locks the user's row until the transaction ends (a write: SQLite's write lock, PostgreSQL's
/// row lock); whether the user exists.
async fn lock_user(txn: &DatabaseTransaction, id: Uuid) -> Result<bool, DbErr> {
    let touched = user::Entity::update_many()
        .col_expr(
            user::Column::AppMetadata,
            Expr::col(user::Column::AppMetadata),
        )
        .filter(user::Column::Id.eq(id))
        .exec(txn)
        .await?;
    Ok(touched.rows_affected > 0)
}

async fn insert_group_permissions(
    txn: &DatabaseTransaction,
    id: Uuid,
    permissions: &BTreeSet<String>,
) -> Result<(), DbErr> {
    if permissions.is_empty() {
        return Ok(());
    }
    let rows = permissions
        .iter()
        .map(|permission| group_permission::ActiveModel {
            group_id: Set(id),
            permission: Set(permission.clone()),
        });
    group_permission::Entity::insert_many(rows)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

async fn find_group(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<Group>, Outage> {
    let Some(row) = group::Entity::find_by_id(id).one(db).await? else {
        return Ok(None);
    };
    let permissions = permissions_of_groups(db, &[id])
        .await?
        .remove(&id)
        .unwrap_or_default();
    Ok(Some(Group {
        id: row.id,
        name: row.name,
        permissions,
    }))
}

async fn members_of(db: &impl ConnectionTrait, id: Uuid) -> Result<Vec<Uuid>, DbErr> {
    user_group::Entity::find()
        .select_only()
        .column(user_group::Column::UserId)
        .filter(user_group::Column::GroupId.eq(id))
        .into_tuple::<Uuid>()
        .all(db)
        .await
}

/// Each group's permissions, sorted.
async fn permissions_of_groups(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<String>>, Outage> {
    let mut by_group: HashMap<Uuid, Vec<String>> = HashMap::new();
    if ids.is_empty() {
        return Ok(by_group);
    }
    let rows: Vec<(Uuid, String)> = group_permission::Entity::find()
        .select_only()
        .column(group_permission::Column::GroupId)
        .column(group_permission::Column::Permission)
        .filter(group_permission::Column::GroupId.is_in(ids.iter().copied()))
        .order_by_asc(group_permission::Column::Permission)
        .into_tuple()
        .all(db)
        .await?;
    for (id, permission) in rows {
        by_group.entry(id).or_default().push(permission);
    }
    Ok(by_group)
}

/// Each user's groups and effective permissions, in one statement (one snapshot): the rows of
/// their groups with those groups' permissions, then their own permissions.
async fn grants_of(
    db: &impl ConnectionTrait,
    users: &[Uuid],
) -> Result<HashMap<Uuid, Grants>, Outage> {
    let mut by_user: HashMap<Uuid, (BTreeSet<String>, BTreeSet<String>)> =
        users.iter().map(|&id| (id, Default::default())).collect();
    if users.is_empty() {
        return Ok(HashMap::new());
    }
    let (ug, g, gp, up) = (
        user_group::Entity,
        group::Entity,
        group_permission::Entity,
        user_permission::Entity,
    );
    let own = Query::select()
        .column((up, user_permission::Column::UserId))
        .expr_as(Expr::value(Option::<String>::None), "group_name")
        .column((up, user_permission::Column::Permission))
        .from(up)
        .and_where(Expr::col((up, user_permission::Column::UserId)).is_in(users.iter().copied()))
        .to_owned();
    let statement = Query::select()
        .column((ug, user_group::Column::UserId))
        .expr_as(Expr::col((g, group::Column::Name)), "group_name")
        .column((gp, group_permission::Column::Permission))
        .from(ug)
        .inner_join(
            g,
            Expr::col((g, group::Column::Id)).equals((ug, user_group::Column::GroupId)),
        )
        .left_join(
            gp,
            Expr::col((gp, group_permission::Column::GroupId)).equals((g, group::Column::Id)),
        )
        .and_where(Expr::col((ug, user_group::Column::UserId)).is_in(users.iter().copied()))
        .union(UnionType::All, own)
        .to_owned();
    let rows = db.query_all(&statement).await?;
    for row in rows {
        let user_id: Uuid = row.try_get("", "user_id")?;
        let group_name: Option<String> = row.try_get("", "group_name")?;
        let permission: Option<String> = row.try_get("", "permission")?;
        let (groups, permissions) = by_user.entry(user_id).or_default();
        groups.extend(group_name);
        permissions.extend(permission);
    }
    Ok(by_user
        .into_iter()
        .map(|(id, (groups, permissions))| {
            let grants = Grants {
                groups: groups.into_iter().collect(),
                permissions: permissions.into_iter().collect(),
            };
            (id, grants)
        })
        .collect())
}
