//! What a test asks of the app: every `impl TestApp` method beyond spawning, grouped by area.
//! Here the plain requests; [`tokens`], [`accounts`], [`sessions`] and [`oauth`] speak each
//! area's endpoints (and make its fixtures through the app's own services).

pub mod accounts;
pub mod oauth;
pub mod sessions;
pub mod tokens;

use reqwest::Method;
use reqwest::StatusCode;
use serde_json::Value;

use crate::TestApp;

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// The value of the sample `name` (with its labels, exactly as rendered) in `/metrics`;
    /// 0 when absent.
    pub async fn metric(&self, sample: &str) -> f64 {
        let text = self.get("/metrics").await.text().await.unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
            .map_or(0.0, |value| value.parse().unwrap())
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.post_raw(path, "application/x-www-form-urlencoded", body)
            .await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_authed(&self, path: &str, access: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
    }

    pub async fn send_authed(
        &self,
        method: Method,
        path: &str,
        access: &str,
        body: &Value,
    ) -> reqwest::Response {
        self.client
            .request(method, self.url(path))
            .bearer_auth(access)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Any request, with or without a bearer token and a JSON body; only the status.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        access: Option<&str>,
        body: Option<Value>,
    ) -> StatusCode {
        let mut request = self.client.request(method, self.url(path));
        if let Some(access) = access {
            request = request.bearer_auth(access);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap().status()
    }
}
