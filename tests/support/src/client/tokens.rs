//! The token endpoints: obtain, refresh, verify, blacklist.

use jwtd::accounts::User;
use reqwest::StatusCode;
use serde_json::json;

use crate::expect::{expect_status, string_field};
use crate::{PASSWORD, TestApp};

impl TestApp {
    /// Logs `user` in; returns (access, refresh).
    pub async fn login(&self, user: &User) -> (String, String) {
        let response = self
            .post_json(
                "/api/token/",
                &json!({"username": user.username, "password": PASSWORD}),
            )
            .await;
        let body = expect_status(response, StatusCode::OK).await;
        (
            string_field(&body, "access"),
            string_field(&body, "refresh"),
        )
    }

    /// Logs `username` in with [`PASSWORD`] from `user_agent`; returns (access, refresh).
    pub async fn login_as(&self, username: &str, user_agent: &str) -> (String, String) {
        let response = self
            .client
            .post(self.url("/api/token/"))
            .header("user-agent", user_agent)
            .json(&json!({"username": username, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        let body = expect_status(response, StatusCode::OK).await;
        (
            string_field(&body, "access"),
            string_field(&body, "refresh"),
        )
    }

    pub async fn refresh(&self, refresh: &str) -> reqwest::Response {
        self.post_json("/api/token/refresh/", &json!({ "refresh": refresh }))
            .await
    }

    pub async fn verify(&self, token: &str) -> reqwest::Response {
        self.post_json("/api/token/verify/", &json!({ "token": token }))
            .await
    }

    pub async fn blacklist(&self, refresh: &str) -> reqwest::Response {
        self.post_json("/api/token/blacklist/", &json!({ "refresh": refresh }))
            .await
    }
}
