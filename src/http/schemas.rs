//! Schemas more than one API uses: a user, a page of users, the empty answers.

use chrono::{DateTime, Utc};
use poem_openapi::{ApiResponse, Object};
use uuid::Uuid;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::accounts::{GrantedUser, User};

/// A user as the API shows it: never the password hash.
#[derive(Debug, Object)]
pub struct UserBody {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub is_active: bool,
    pub is_staff: bool,
    pub date_joined: DateTime<Utc>,
    #[oai(nullable)]
    pub last_login: Option<DateTime<Utc>>,
}

impl From<User> for UserBody {
    fn from(user: User) -> UserBody {
        UserBody {
            id: user.id,
            username: user.username,
            email: user.email,
            is_active: user.is_active,
            is_staff: user.is_staff,
            date_joined: user.date_joined,
            last_login: user.last_login,
        }
    }
}

/// A user with what they are allowed: `/api/users/me/` and the staff views.
#[derive(Debug, Object)]
pub struct GrantedUserBody {
    #[oai(flatten)]
    pub user: UserBody,
    /// Group names, sorted.
    pub groups: Vec<String>,
    /// Effective permissions (the user's own and their groups'), sorted.
    pub permissions: Vec<String>,
    /// Staff-set data that access tokens may carry.
    pub app_metadata: BTreeMap<String, Value>,
}

impl From<GrantedUser> for GrantedUserBody {
    fn from(GrantedUser { user, grants }: GrantedUser) -> GrantedUserBody {
        let app_metadata = user.app_metadata.clone().into_iter().collect();
        GrantedUserBody {
            user: user.into(),
            groups: grants.groups,
            permissions: grants.permissions,
            app_metadata,
        }
    }
}

#[derive(ApiResponse)]
pub enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}

/// One page of users, as DRF's page-number pagination shapes it.
#[derive(Debug, Object)]
pub struct UserPage {
    /// Users matching the filters, on all pages.
    pub count: u64,
    #[oai(nullable)]
    pub next: Option<String>,
    #[oai(nullable)]
    pub previous: Option<String>,
    pub results: Vec<GrantedUserBody>,
}

/// An empty object, SimpleJWT's answer to verify and blacklist.
#[derive(Debug, Object)]
pub struct EmptyBody {}
