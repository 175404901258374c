//! Login sessions: the current user's list, and ending one.

use reqwest::StatusCode;
use serde_json::Value;

use crate::TestApp;
use crate::expect::expect_status;

pub const SESSIONS: &str = "/api/users/me/sessions/";

impl TestApp {
    pub async fn sessions(&self, access: &str) -> Vec<Value> {
        let body = expect_status(self.get_authed(SESSIONS, access).await, StatusCode::OK).await;
        body.as_array().unwrap().clone()
    }

    pub async fn delete_session(&self, access: &str, sid: &str) -> reqwest::Response {
        let path = format!("{SESSIONS}{sid}/");
        self.client
            .delete(self.url(&path))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
    }
}
