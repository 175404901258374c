//! Schemas more than one API uses: a user, a page of users, the empty answers.

use chrono::{DateTime, Utc};
use poem_openapi::{ApiResponse, Object};
use uuid::Uuid;

use crate::accounts::User;

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
    pub results: Vec<UserBody>,
}

/// An empty object, SimpleJWT's answer to verify and blacklist.
#[derive(Debug, Object)]
pub struct EmptyBody {}
