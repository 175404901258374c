//! A user as the service knows it. The password hash is not here: only the store and the
//! password checks ever see it (see `store::users::Credentials`).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub is_active: bool,
    pub is_staff: bool,
    pub date_joined: DateTime<Utc>,
    pub last_login: Option<DateTime<Utc>>,
    /// Staff-set data copied into access tokens (`jwt.access_token_extra_claims`).
    pub app_metadata: Map<String, Value>,
}
