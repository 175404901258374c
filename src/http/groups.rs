//! Groups and users' grants (staff only): `/api/groups/…`, and the replacement of a user's
//! groups or own permissions. Everyone else gets 403. Taking anything away revokes the
//! affected users' tokens (see `accounts::permissions`).

use std::sync::Arc;

use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use super::auth::StaffAuth;
use super::body::{Fields, FromFields, JsonOrForm};
use super::error::ApiError;
use super::schemas::{GrantedUserBody, NoContent};
use crate::accounts::permissions::{GroupChange, MAX_GROUP_NAME_CHARS};
use crate::accounts::{GrantService, Group};

/// A group and the permissions it grants its members.
#[derive(Debug, Object)]
pub struct GroupBody {
    pub id: Uuid,
    pub name: String,
    /// `app_label.codename` strings, sorted.
    pub permissions: Vec<String>,
}

impl From<Group> for GroupBody {
    fn from(group: Group) -> GroupBody {
        GroupBody {
            id: group.id,
            name: group.name,
            permissions: group.permissions,
        }
    }
}

/// A new group. `permissions` may be omitted (none).
#[derive(Debug, Object)]
#[oai(example)]
pub struct CreateGroupRequest {
    pub name: String,
    pub permissions: Option<Vec<String>>,
}

impl Example for CreateGroupRequest {
    fn example() -> Self {
        CreateGroupRequest {
            name: "order managers".into(),
            permissions: Some(vec!["orders.change".into(), "orders.view".into()]),
        }
    }
}

impl FromFields for CreateGroupRequest {
    fn from_fields(fields: &mut Fields) -> Option<Self> {
        let name = fields.string("name", true, MAX_GROUP_NAME_CHARS);
        let permissions = fields.optional_string_list("permissions");
        Some(CreateGroupRequest {
            name: name?,
            permissions: permissions?,
        })
    }
}

/// A rename and/or a new set of permissions; omitted fields stay as they are.
#[derive(Debug, Object)]
pub struct UpdateGroupRequest {
    pub name: Option<String>,
    pub permissions: Option<Vec<String>>,
}

impl FromFields for UpdateGroupRequest {
    fn from_fields(fields: &mut Fields) -> Option<Self> {
        let name = fields.optional_string("name", true, MAX_GROUP_NAME_CHARS, false);
        let permissions = fields.optional_string_list("permissions");
        Some(UpdateGroupRequest {
            name: name?,
            permissions: permissions?,
        })
    }
}

/// The user's groups, by id: replaces all of them.
#[derive(Debug, Object)]
pub struct UserGroupsRequest {
    pub groups: Vec<Uuid>,
}

impl FromFields for UserGroupsRequest {
    fn from_fields(fields: &mut Fields) -> Option<Self> {
        Some(UserGroupsRequest {
            groups: fields.uuid_list("groups")?,
        })
    }
}

/// The user's own permissions: replaces all of them.
#[derive(Debug, Object)]
pub struct UserPermissionsRequest {
    pub permissions: Vec<String>,
}

impl FromFields for UserPermissionsRequest {
    fn from_fields(fields: &mut Fields) -> Option<Self> {
        Some(UserPermissionsRequest {
            permissions: fields.string_list("permissions")?,
        })
    }
}

#[derive(ApiResponse)]
pub enum CreatedGroup {
    /// The new group.
    #[oai(status = 201)]
    Created(Json<GroupBody>),
}

pub struct GroupsApi {
    grants: Arc<GrantService>,
}

impl GroupsApi {
    pub fn new(grants: Arc<GrantService>) -> GroupsApi {
        GroupsApi { grants }
    }
}

#[OpenApi(tag = "ApiTags::Groups")]
impl GroupsApi {
    /// Every group, by name (staff only).
    #[oai(path = "/api/groups/", method = "get", operation_id = "groups_list")]
    async fn list(&self, _staff: StaffAuth) -> Result<Json<Vec<GroupBody>>, ApiError> {
        let groups = self.grants.groups().await?;
        Ok(Json(groups.into_iter().map(GroupBody::from).collect()))
    }

    /// Create a group with permissions (staff only); 409 `conflict` if the name is taken.
    #[oai(path = "/api/groups/", method = "post", operation_id = "groups_create")]
    async fn create(
        &self,
        _staff: StaffAuth,
        body: JsonOrForm<CreateGroupRequest>,
    ) -> Result<CreatedGroup, ApiError> {
        let CreateGroupRequest { name, permissions } = body.0;
        let group = self
            .grants
            .create_group(name, permissions.unwrap_or_default())
            .await?;
        Ok(CreatedGroup::Created(Json(group.into())))
    }

    /// Read a group (staff only).
    #[oai(
        path = "/api/groups/:id/",
        method = "get",
        operation_id = "groups_read"
    )]
    async fn read(&self, _staff: StaffAuth, id: Path<Uuid>) -> Result<Json<GroupBody>, ApiError> {
        Ok(Json(self.grants.group(id.0).await?.into()))
    }

    /// Rename a group or replace its permissions (staff only); a permission taken away revokes
    /// its members' tokens.
    #[oai(
        path = "/api/groups/:id/",
        method = "patch",
        operation_id = "groups_update"
    )]
    async fn update(
        &self,
        _staff: StaffAuth,
        id: Path<Uuid>,
        body: JsonOrForm<UpdateGroupRequest>,
    ) -> Result<Json<GroupBody>, ApiError> {
        let UpdateGroupRequest { name, permissions } = body.0;
        let change = GroupChange { name, permissions };
        Ok(Json(self.grants.update_group(id.0, change).await?.into()))
    }

    /// Delete a group (staff only); its members' tokens are revoked.
    #[oai(
        path = "/api/groups/:id/",
        method = "delete",
        operation_id = "groups_delete"
    )]
    async fn delete(&self, _staff: StaffAuth, id: Path<Uuid>) -> Result<NoContent, ApiError> {
        self.grants.delete_group(id.0).await?;
        Ok(NoContent::Done)
    }

    /// Replace a user's groups (staff only); a group taken away revokes the user's tokens.
    #[oai(
        path = "/api/users/:id/groups/",
        method = "put",
        operation_id = "users_groups_set"
    )]
    async fn set_user_groups(
        &self,
        _staff: StaffAuth,
        id: Path<Uuid>,
        body: JsonOrForm<UserGroupsRequest>,
    ) -> Result<Json<GrantedUserBody>, ApiError> {
        let user = self.grants.set_user_groups(id.0, body.0.groups).await?;
        Ok(Json(user.into()))
    }

    /// Replace a user's own permissions (staff only); one taken away revokes the user's tokens.
    #[oai(
        path = "/api/users/:id/permissions/",
        method = "put",
        operation_id = "users_permissions_set"
    )]
    async fn set_user_permissions(
        &self,
        _staff: StaffAuth,
        id: Path<Uuid>,
        body: JsonOrForm<UserPermissionsRequest>,
    ) -> Result<Json<GrantedUserBody>, ApiError> {
        let user = self
            .grants
            .set_user_permissions(id.0, body.0.permissions)
            .await?;
        Ok(Json(user.into()))
    }
}
