//! `/api/users/…`: registration, the current user, password change (Djoser's part).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use super::admin::list_users;
use super::auth::BearerAuth;
use super::body::{Fields, FromFields, JsonOrForm};
use super::client_address::TrustedProxies;
use super::error::ApiError;
use super::schemas::{GrantedUserBody, NoContent, UserBody, UserPage};
use crate::accounts::{
    AccountService, GrantService, MAX_EMAIL_CHARS, MAX_USERNAME_CHARS, NewAccount, User,
};
use crate::flows::RevocationFlow;
use crate::password::MAX_PASSWORD_CHARS;
use crate::store::users::{ProfileChange, UserFilter};

/// A new account. `email` may be omitted or blank.
#[derive(Debug, Object)]
#[oai(example)]
pub struct RegisterRequest {
    pub username: String,
    pub email: Option<String>,
    #[oai(write_only)]
    pub password: String,
}

impl Example for RegisterRequest {
    fn example() -> Self {
        RegisterRequest {
            username: "alice".into(),
            email: Some("alice@example.com".into()),
            password: "correct horse battery staple".into(),
        }
    }
}

impl FromFields for RegisterRequest {
    fn from_fields(fields: &mut Fields) -> Option<Self> {
        let username = fields.string("username", true, MAX_USERNAME_CHARS);
        let email = fields.optional_string("email", true, MAX_EMAIL_CHARS, true);
        let password = fields.string("password", false, MAX_PASSWORD_CHARS);
        Some(RegisterRequest {
            username: username?,
            email: email?,
            password: password?,
        })
    }
}

/// The fields a user may change about themself; omitted fields stay as they are.
#[derive(Debug, Object)]
#[oai(example)]
pub struct UpdateMeRequest {
    pub username: Option<String>,
    pub email: Option<String>,
}

impl Example for UpdateMeRequest {
    fn example() -> Self {
        UpdateMeRequest {
            username: None,
            email: Some("alice@example.org".into()),
        }
    }
}

impl FromFields for UpdateMeRequest {
    fn from_fields(fields: &mut Fields) -> Option<Self> {
        let username = fields.optional_string("username", true, MAX_USERNAME_CHARS, false);
        let email = fields.optional_string("email", true, MAX_EMAIL_CHARS, true);
        Some(UpdateMeRequest {
            username: username?,
            email: email?,
        })
    }
}

/// The current password, and the new one.
#[derive(Debug, Object)]
pub struct PasswordChangeRequest {
    #[oai(write_only)]
    pub current_password: String,
    #[oai(write_only)]
    pub new_password: String,
}

impl FromFields for PasswordChangeRequest {
    fn from_fields(fields: &mut Fields) -> Option<Self> {
        let current = fields.string("current_password", false, MAX_PASSWORD_CHARS);
        let new = fields.string("new_password", false, MAX_PASSWORD_CHARS);
        Some(PasswordChangeRequest {
            current_password: current?,
            new_password: new?,
        })
    }
}

#[derive(ApiResponse)]
pub enum CreatedUser {
    /// The new user.
    #[oai(status = 201)]
    Created(Json<UserBody>),
}

/// A login session of the current user.
#[derive(Debug, Object)]
pub struct SessionBody {
    /// The `sid` claim of the session's tokens.
    pub sid: Uuid,
    pub created_at: DateTime<Utc>,
    #[oai(nullable)]
    pub last_refreshed_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
    pub user_agent: String,
    pub client_address: String,
    /// Whether the access token of this request belongs to it.
    pub current: bool,
}

pub struct UsersApi {
    accounts: Arc<AccountService>,
    grants: Arc<GrantService>,
    revocation: Arc<RevocationFlow>,
    proxies: Arc<TrustedProxies>,
}

impl UsersApi {
    pub fn new(
        accounts: Arc<AccountService>,
        grants: Arc<GrantService>,
        revocation: Arc<RevocationFlow>,
        proxies: Arc<TrustedProxies>,
    ) -> UsersApi {
        UsersApi {
            accounts,
            grants,
            revocation,
            proxies,
        }
    }
}

impl UsersApi {
    async fn view(&self, user: User) -> Result<GrantedUserBody, ApiError> {
        Ok(self.grants.with_grants(vec![user]).await?.remove(0).into())
    }
}

#[OpenApi]
impl UsersApi {
    /// List users (staff only), paginated, filtered by username part, email or active flag.
    // An Admin operation declared here: poem-openapi writes each API's paths on their own, so
    // `/api/users/` in two APIs would appear twice in the spec and clients would keep one.
    #[allow(clippy::too_many_arguments)]
    #[oai(
        path = "/api/users/",
        method = "get",
        operation_id = "admin_users_list",
        tag = "ApiTags::Admin"
    )]
    async fn list(
        &self,
        auth: BearerAuth,
        page: Query<Option<u64>>,
        page_size: Query<Option<u64>>,
        username: Query<Option<String>>,
        email: Query<Option<String>>,
        is_active: Query<Option<bool>>,
    ) -> Result<Json<UserPage>, ApiError> {
        let filter = UserFilter {
            username: username.0,
            email: email.0,
            is_active: is_active.0,
        };
        list_users(
            &self.accounts,
            &self.grants,
            &auth,
            page.0,
            page_size.0,
            filter,
        )
        .await
    }

    /// Register a new account (when `users.allow_registration` is on).
    ///
    /// Throttled per client address (`throttle.registrations_per_address`): past it, 429
    /// `throttled` with `Retry-After`. A taken username or email is refused before the
    /// password is hashed.
    #[oai(
        path = "/api/users/",
        method = "post",
        operation_id = "users_register",
        tag = "ApiTags::Users"
    )]
    async fn register(
        &self,
        request: &Request,
        body: JsonOrForm<RegisterRequest>,
    ) -> Result<CreatedUser, ApiError> {
        let RegisterRequest {
            username,
            email,
            password,
        } = body.0;
        let account = NewAccount {
            username,
            email: email.unwrap_or_default(),
            password,
            is_staff: false,
        };
        let client = self.proxies.client_of(request);
        let user = self.accounts.register(account, &client).await?;
        Ok(CreatedUser::Created(Json(user.into())))
    }

    /// The current user, with their groups and effective permissions.
    #[oai(
        path = "/api/users/me/",
        method = "get",
        operation_id = "users_me_read",
        tag = "ApiTags::Users"
    )]
    async fn me(&self, auth: BearerAuth) -> Result<Json<GrantedUserBody>, ApiError> {
        Ok(Json(self.view(auth.user).await?))
    }

    /// Change the current user's username or email.
    #[oai(
        path = "/api/users/me/",
        method = "patch",
        operation_id = "users_me_update",
        tag = "ApiTags::Users"
    )]
    async fn update_me(
        &self,
        auth: BearerAuth,
        body: JsonOrForm<UpdateMeRequest>,
    ) -> Result<Json<GrantedUserBody>, ApiError> {
        let change = ProfileChange {
            username: body.0.username,
            email: body.0.email,
        };
        let user = self.accounts.update_profile(&auth.user, change).await?;
        Ok(Json(self.view(user).await?))
    }

    /// The current user's live login sessions, newest first.
    #[oai(
        path = "/api/users/me/sessions/",
        method = "get",
        operation_id = "users_me_sessions",
        tag = "ApiTags::Users"
    )]
    async fn sessions(&self, auth: BearerAuth) -> Result<Json<Vec<SessionBody>>, ApiError> {
        let current = auth.claims.sid.uuid();
        let sessions = self.revocation.sessions_of(auth.user.id).await?;
        let bodies = sessions
            .into_iter()
            .map(|s| SessionBody {
                sid: s.id,
                created_at: s.created_at,
                last_refreshed_at: s.last_refreshed_at,
                expires_at: s.expires_at,
                user_agent: s.user_agent,
                client_address: s.client_address,
                current: s.id == current,
            })
            .collect();
        Ok(Json(bodies))
    }

    /// Log one of the current user's sessions out: its tokens stop working at once.
    #[oai(
        path = "/api/users/me/sessions/:sid/",
        method = "delete",
        operation_id = "users_me_session_end",
        tag = "ApiTags::Users"
    )]
    async fn end_session(&self, auth: BearerAuth, sid: Path<Uuid>) -> Result<NoContent, ApiError> {
        self.revocation.end_session_of(auth.user.id, sid.0).await?;
        Ok(NoContent::Done)
    }

    /// Change the current user's password; every existing token of the user is revoked.
    #[oai(
        path = "/api/users/me/password/",
        method = "post",
        operation_id = "users_me_password",
        tag = "ApiTags::Users"
    )]
    async fn change_password(
        &self,
        request: &Request,
        auth: BearerAuth,
        body: JsonOrForm<PasswordChangeRequest>,
    ) -> Result<NoContent, ApiError> {
        let PasswordChangeRequest {
            current_password,
            new_password,
        } = body.0;
        let client = self.proxies.client_of(request);
        self.accounts
            .change_password(&auth.user, current_password, new_password, &client)
            .await?;
        Ok(NoContent::Done)
    }
}
