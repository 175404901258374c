//! Staff administration of users: list (served from `UsersApi`), read, update, delete.
//! Everyone else gets 403.

use std::sync::Arc;

use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use std::collections::BTreeMap;

use serde_json::Value;
use uuid::Uuid;

use super::ApiTags;
use super::auth::BearerAuth;
use super::body::{Fields, FromFields, JsonOrForm};
use super::error::ApiError;
use super::schemas::{GrantedUserBody, NoContent, UserPage};
use crate::accounts::{AccountService, GrantService, MAX_EMAIL_CHARS};
use crate::store::users::{AdminChange, UserFilter};

const DEFAULT_PAGE_SIZE: u64 = 20;
const MAX_PAGE_SIZE: u64 = 100;
/// The last page whose offset the databases can represent (a signed 64-bit integer).
const MAX_PAGE: u64 = i64::MAX as u64 / MAX_PAGE_SIZE;

/// What staff may change; omitted fields stay as they are. Deactivating revokes every token.
#[derive(Debug, Object)]
pub struct AdminUpdateRequest {
    pub is_active: Option<bool>,
    pub is_staff: Option<bool>,
    pub email: Option<String>,
    /// Replaces the user's `app_metadata`: a JSON object of at most 4 KB, no reserved claim
    /// names as keys.
    pub app_metadata: Option<BTreeMap<String, Value>>,
}

impl FromFields for AdminUpdateRequest {
    fn from_fields(fields: &mut Fields) -> Option<Self> {
        let is_active = fields.optional_bool("is_active");
        let is_staff = fields.optional_bool("is_staff");
        let email = fields.optional_string("email", true, MAX_EMAIL_CHARS, true);
        let app_metadata = fields
            .optional_object("app_metadata")
            .map(|object| object.map(|map| map.into_iter().collect()));
        Some(AdminUpdateRequest {
            is_active: is_active?,
            is_staff: is_staff?,
            email: email?,
            app_metadata: app_metadata?,
        })
    }
}

fn require_staff(auth: &BearerAuth) -> Result<(), ApiError> {
    if auth.user.is_staff {
        Ok(())
    } else {
        Err(ApiError::permission_denied())
    }
}

/// `GET /api/users/` (staff only), served from `UsersApi`: see the note on its operation.
pub(super) async fn list_users(
    accounts: &AccountService,
    grants: &GrantService,
    auth: &BearerAuth,
    page: Option<u64>,
    page_size: Option<u64>,
    filter: UserFilter,
) -> Result<Json<UserPage>, ApiError> {
    require_staff(auth)?;
    let page = page.unwrap_or(1);
    let page_size = page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE).contains(&page) || !(1..=MAX_PAGE_SIZE).contains(&page_size) {
        return Err(ApiError::invalid(format!(
            "page must be between 1 and {MAX_PAGE} and page_size between 1 and {MAX_PAGE_SIZE}."
        )));
    }
    let (users, count) = accounts.list(filter, page, page_size).await?;
    let users = grants.with_grants(users).await?;
    let link = |page: u64| Some(format!("/api/users/?page={page}&page_size={page_size}"));
    Ok(Json(UserPage {
        count,
        next: if page * page_size < count {
            link(page + 1)
        } else {
            None
        },
        previous: if page > 1 { link(page - 1) } else { None },
        results: users.into_iter().map(GrantedUserBody::from).collect(),
    }))
}

pub struct AdminApi {
    accounts: Arc<AccountService>,
    grants: Arc<GrantService>,
}

impl AdminApi {
    pub fn new(accounts: Arc<AccountService>, grants: Arc<GrantService>) -> AdminApi {
        AdminApi { accounts, grants }
    }
}

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminApi {
    /// Read any user (staff only).
    #[oai(
        path = "/api/users/:id/",
        method = "get",
        operation_id = "admin_users_read"
    )]
    async fn read(
        &self,
        auth: BearerAuth,
        id: Path<Uuid>,
    ) -> Result<Json<GrantedUserBody>, ApiError> {
        require_staff(&auth)?;
        Ok(Json(self.grants.granted(id.0).await?.into()))
    }

    /// Activate or deactivate a user, make them staff, change their email or `app_metadata`
    /// (staff only).
    #[oai(
        path = "/api/users/:id/",
        method = "patch",
        operation_id = "admin_users_update"
    )]
    async fn update(
        &self,
        auth: BearerAuth,
        id: Path<Uuid>,
        body: JsonOrForm<AdminUpdateRequest>,
    ) -> Result<Json<GrantedUserBody>, ApiError> {
        require_staff(&auth)?;
        let AdminUpdateRequest {
            is_active,
            is_staff,
            email,
            app_metadata,
        } = body.0;
        let app_metadata = app_metadata
            .map(|value| self.grants.app_metadata_text(value.into_iter().collect()))
            .transpose()?;
        let change = AdminChange {
            is_active,
            is_staff,
            email,
            app_metadata,
        };
        let user = self.accounts.admin_update(id.0, change).await?;
        Ok(Json(
            self.grants.with_grants(vec![user]).await?.remove(0).into(),
        ))
    }

    /// Delete a user; every token of theirs is revoked (staff only).
    #[oai(
        path = "/api/users/:id/",
        method = "delete",
        operation_id = "admin_users_delete"
    )]
    async fn delete(&self, auth: BearerAuth, id: Path<Uuid>) -> Result<NoContent, ApiError> {
        require_staff(&auth)?;
        self.accounts.delete_user(id.0).await?;
        Ok(NoContent::Done)
    }
}
