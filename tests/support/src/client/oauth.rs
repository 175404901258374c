//! The OAuth 2.0 endpoints, with clients registered through the app's own service.

use reqwest::StatusCode;
use serde_json::Value;

use crate::expect::expect_status;
use crate::{PASSWORD, TestApp};

/// A registered client's id and secret.
pub struct TestClient {
    pub id: String,
    pub secret: String,
}

impl TestApp {
    pub async fn register_client(&self, grants: &[&str], scopes: &[&str]) -> TestClient {
        let to_strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let created = self
            .state
            .clients
            .create("test client", &to_strings(grants), &to_strings(scopes))
            .await
            .unwrap();
        TestClient {
            id: created.client.id,
            secret: created.secret,
        }
    }

    /// POSTs form `fields` to `path`, authenticating `client` with HTTP Basic.
    pub async fn oauth_post(
        &self,
        path: &str,
        client: Option<&TestClient>,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.client.post(self.url(path)).form(fields);
        if let Some(client) = client {
            request = request.basic_auth(&client.id, Some(&client.secret));
        }
        request.send().await.unwrap()
    }

    /// The password grant for `username` with [`PASSWORD`]; the 200's body.
    pub async fn password_grant(&self, client: &TestClient, username: &str, scope: &str) -> Value {
        let mut fields = vec![
            ("grant_type", "password"),
            ("username", username),
            ("password", PASSWORD),
        ];
        if !scope.is_empty() {
            fields.push(("scope", scope));
        }
        let response = self.oauth_post("/oauth/token", Some(client), &fields).await;
        expect_status(response, StatusCode::OK).await
    }

    /// The refresh_token grant, authenticating `client` with HTTP Basic.
    pub async fn refresh_grant(
        &self,
        client: &TestClient,
        refresh_token: &str,
    ) -> reqwest::Response {
        let fields = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        self.oauth_post("/oauth/token", Some(client), &fields).await
    }

    /// Introspects `token` as `client`; the 200's body.
    pub async fn introspect(&self, client: &TestClient, token: &str) -> Value {
        let response = self
            .oauth_post("/oauth/introspect", Some(client), &[("token", token)])
            .await;
        expect_status(response, StatusCode::OK).await
    }
}
