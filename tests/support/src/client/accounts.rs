//! Accounts: users made through the app's own services (fixtures), and registration.

use jwtd::accounts::User;
use jwtd::store::users::{AdminChange, NewUser};
use serde_json::Value;

use crate::{PASSWORD, TestApp};

impl TestApp {
    /// A new active user with [`PASSWORD`] and a random username.
    pub async fn create_user(&self) -> User {
        let username = format!("user-{}", uuid::Uuid::new_v4().simple());
        self.create_named_user(&username, PASSWORD).await
    }

    pub async fn create_named_user(&self, username: &str, password: &str) -> User {
        let password_hash = self.state.passwords.hash(password.into()).await.unwrap();
        let new = NewUser {
            username: username.into(),
            email: String::new(),
            password_hash,
            is_staff: false,
        };
        self.state
            .users
            .create(new, chrono::Utc::now())
            .await
            .unwrap()
    }

    /// A new staff user with [`PASSWORD`].
    pub async fn create_staff(&self) -> User {
        let user = self.create_user().await;
        let change = AdminChange {
            is_staff: Some(true),
            ..Default::default()
        };
        self.state
            .users
            .admin_update(user.id, change)
            .await
            .unwrap()
    }

    pub async fn register(&self, body: &Value) -> reqwest::Response {
        self.post_json("/api/users/", body).await
    }
}
