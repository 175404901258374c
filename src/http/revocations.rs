//! The revocation feed for services that verify tokens offline (`jwtd-verifier`): a snapshot
//! and a long poll, for OAuth clients holding a client-credentials token with the scope
//! `revocations:read`.

use std::sync::Arc;
use std::time::Duration;

use poem::http::StatusCode;
use poem::web::RequestBody;
use poem::{Request, Result};
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::registry::Registry;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions, Object, OpenApi};

use super::ApiTags;
use super::auth::{bearer_token, register_http_scheme};
use super::error::{ApiError, ErrorCode};
use super::front_door::RequestServices;
use crate::feed::FeedService;
use crate::store::feed::{FeedEntry, FeedError, FeedPage};
use crate::token::TokenType;

/// The scope a client's token needs to read the feed.
pub const FEED_SCOPE: &str = "revocations:read";

const SCHEME: &str = "ClientBearerAuth";

/// A client-credentials access token with the scope `revocations:read`.
pub struct FeedReader;

impl<'a> ApiExtractor<'a> for FeedReader {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        register_http_scheme(
            registry,
            SCHEME,
            "bearer",
            "An OAuth client's own access token (client_credentials grant at POST /oauth/token) \
             with the scope `revocations:read`.",
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![SCHEME]
    }

    async fn from_request(
        request: &'a Request,
        _body: &mut RequestBody,
        _: ExtractParamOptions<Self::ParamType>,
    ) -> Result<Self> {
        let token = bearer_token(request)?;
        let verify = &request
            .data::<RequestServices>()
            .expect("the front door attaches the services to every request")
            .verify;
        let claims = verify
            .verify_as(token, TokenType::Access)
            .await
            .map_err(ApiError::from)?;
        let granted = claims
            .scope
            .as_deref()
            .is_some_and(|scope| scope.split(' ').any(|s| s == FEED_SCOPE));
        if !claims.subject_is_client || !granted {
            return Err(ApiError::permission_denied().into());
        }
        Ok(FeedReader)
    }
}

/// One revocation.
#[derive(Debug, Object)]
pub struct FeedEntryBody {
    /// `token` (a `jti`), `session` (a `sid`), `user` (a user id) or `client` (a client id).
    pub kind: String,
    pub id: String,
    /// `user` and `client`: tokens of sessions started at or before this (unix ms) are
    /// revoked; a session's start is the timestamp of its `sid` (a UUIDv7).
    #[oai(skip_serializing_if_is_none)]
    pub not_before: Option<i64>,
    /// Unix seconds, like `exp`: after it the entry refuses no live token.
    pub expires_at: i64,
}

/// Entries in order, and the cursor to ask after next.
#[derive(Debug, Object)]
pub struct FeedPageBody {
    pub cursor: String,
    pub entries: Vec<FeedEntryBody>,
}

impl From<FeedEntry> for FeedEntryBody {
    fn from(entry: FeedEntry) -> FeedEntryBody {
        FeedEntryBody {
            kind: entry.kind.as_str().to_owned(),
            id: entry.id,
            not_before: entry.not_before.map(|at| at.0),
            expires_at: entry.expires_at.0,
        }
    }
}

impl From<FeedPage> for FeedPageBody {
    fn from(page: FeedPage) -> FeedPageBody {
        FeedPageBody {
            cursor: page.cursor,
            entries: page.entries.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<FeedError> for ApiError {
    fn from(err: FeedError) -> ApiError {
        match err {
            FeedError::CursorExpired => {
                ApiError::new(StatusCode::GONE, ErrorCode::CursorExpired, err.to_string())
            }
            FeedError::Outage(outage) => outage.into(),
        }
    }
}

pub struct RevocationsApi {
    feed: Arc<FeedService>,
    /// A long poll ends this long before the request timeout would cut it.
    longest_wait: Duration,
}

impl RevocationsApi {
    pub fn new(feed: Arc<FeedService>, request_timeout: Duration) -> RevocationsApi {
        let longest_wait = request_timeout
            .saturating_sub(Duration::from_secs(1))
            .min(crate::feed::MAX_WAIT);
        RevocationsApi { feed, longest_wait }
    }
}

#[OpenApi(tag = "ApiTags::Revocations")]
impl RevocationsApi {
    /// Every revocation that can still refuse an unexpired token, and the cursor to follow.
    #[oai(
        path = "/api/revocations/snapshot/",
        method = "get",
        operation_id = "revocations_snapshot"
    )]
    async fn snapshot(&self, _reader: FeedReader) -> Result<Json<FeedPageBody>, ApiError> {
        Ok(Json(self.feed.snapshot().await?.into()))
    }

    /// The revocations after `after`; with none yet, waits up to `wait` seconds for one.
    #[oai(
        path = "/api/revocations/",
        method = "get",
        operation_id = "revocations_follow"
    )]
    async fn follow(
        &self,
        _reader: FeedReader,
        /// The cursor of the snapshot or of the previous page.
        after: Query<String>,
        /// How long to wait for an entry, 0 to 30 seconds (default 0).
        #[oai(validator(maximum(value = "30")))]
        wait: Query<Option<u64>>,
    ) -> Result<Json<FeedPageBody>, ApiError> {
        let wait = Duration::from_secs(wait.0.unwrap_or(0)).min(self.longest_wait);
        Ok(Json(self.feed.poll(&after.0, wait).await?.into()))
    }
}
