//! The feed task: the snapshot, then long polls after its cursor, with an OAuth client's
//! `revocations:read` token; back-off while jwtd is away, the snapshot again on 410.

use std::sync::Weak;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::JwkSet;
use reqwest::StatusCode;
use serde::Deserialize;

use crate::Shared;
use crate::revocations::Page;

const SCOPE: &str = "revocations:read";

#[derive(Clone)]
pub(crate) struct Endpoints {
    pub(crate) http: reqwest::Client,
    pub(crate) base: reqwest::Url,
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) http_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum FeedError {
    #[error("the cursor expired (410)")]
    CursorExpired,
    #[error("the client token was refused (401)")]
    Unauthorized,
    #[error("jwtd answered {0}")]
    Status(StatusCode),
    #[error(transparent)]
    Http(#[from] reqwest::Error),
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
}

impl Endpoints {
    fn url(&self, path: &str) -> reqwest::Url {
        self.base.join(path).unwrap_or_else(|_| self.base.clone())
    }

    pub(crate) async fn jwks(&self) -> Result<JwkSet, FeedError> {
        let response = self
            .http
            .get(self.url("/.well-known/jwks.json"))
            .send()
            .await?;
        Ok(checked(response)?.json().await?)
    }

    async fn client_token(&self) -> Result<String, FeedError> {
        let response = self
            .http
            .post(self.url("/oauth/token"))
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&[("grant_type", "client_credentials"), ("scope", SCOPE)])
            .send()
            .await?;
        let answer: TokenAnswer = checked(response)?.json().await?;
        Ok(answer.access_token)
    }

    async fn snapshot(&self, token: &str) -> Result<Page, FeedError> {
        let url = self.url("/api/revocations/snapshot/");
        let response = self.http.get(url).bearer_auth(token).send().await?;
        Ok(checked(response)?.json().await?)
    }

    async fn after(&self, token: &str, cursor: &str, wait: Duration) -> Result<Page, FeedError> {
        let response = self
            .http
            .get(self.url("/api/revocations/"))
            .query(&[("after", cursor), ("wait", &wait.as_secs().to_string())])
            .bearer_auth(token)
            .timeout(wait + self.http_timeout)
            .send()
            .await?;
        Ok(checked(response)?.json().await?)
    }
}

fn checked(response: reqwest::Response) -> Result<reqwest::Response, FeedError> {
    match response.status() {
        StatusCode::GONE => Err(FeedError::CursorExpired),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(FeedError::Unauthorized),
        status if !status.is_success() => Err(FeedError::Status(status)),
        _ => Ok(response),
    }
}

/// 100 ms, doubling to at most 2 s (short next to the default 5 s staleness budget).
pub(crate) async fn back_off(failures: u32) {
    let ms = 100u64.saturating_mul(1 << failures.min(5)).min(2_000);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

fn now_secs() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
}

/// The long poll's wait: half the staleness budget, so an idle feed still answers in time.
fn poll_wait(max_staleness: Duration) -> Duration {
    Duration::from_secs((max_staleness.as_secs() / 2).clamp(1, 30))
}

/// Follows the feed for as long as the verifier lives.
pub(crate) async fn follow_feed(shared: Weak<Shared>, endpoints: Endpoints) {
    let mut token: Option<String> = None;
    let mut cursor: Option<String> = None;
    let mut failures = 0;
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let wait = poll_wait(strong.max_staleness);
        drop(strong);
        let result = follow_once(&shared, &endpoints, &mut token, &mut cursor, wait).await;
        match result {
            Ok(()) => failures = 0,
            Err(FeedError::CursorExpired) => cursor = None,
            Err(err) => {
                if matches!(err, FeedError::Unauthorized) {
                    token = None;
                }
                tracing::warn!(error = %err, "following jwtd's revocation feed failed");
                failures += 1;
                back_off(failures).await;
            }
        }
    }
}

/// One request: a token if needed, then the snapshot (no cursor yet) or the next page.
async fn follow_once(
    shared: &Weak<Shared>,
    endpoints: &Endpoints,
    token: &mut Option<String>,
    cursor: &mut Option<String>,
    wait: Duration,
) -> Result<(), FeedError> {
    if token.is_none() {
        *token = Some(endpoints.client_token().await?);
    }
    let bearer = token.as_deref().unwrap_or_default();
    let page = match cursor.as_deref() {
        None => endpoints.snapshot(bearer).await?,
        Some(after) => endpoints.after(bearer, after, wait).await?,
    };
    let Some(shared) = shared.upgrade() else {
        return Ok(());
    };
    match cursor {
        None => shared.revocations.replace(&page.entries),
        Some(_) => shared.revocations.apply(&page.entries, now_secs()),
    }
    *cursor = Some(page.cursor);
    shared.heard();
    Ok(())
}
