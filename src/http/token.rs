//! `/api/token/…`: SimpleJWT's obtain, refresh, verify and blacklist, wire-compatible.

use std::sync::Arc;

use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::Serialize;

use super::ApiTags;
use super::auth::BearerAuth;
use super::body::{Fields, FromFields, JsonOrForm};
use super::client_address::TrustedProxies;
use super::direct_json::{DirectJson, SizedJson, object_overhead};
use super::error::ApiError;
use super::schemas::{EmptyBody, NoContent};
use crate::accounts::MAX_USERNAME_CHARS;
use crate::flows::{Flows, LoginFlow, RefreshFlow, RevocationFlow, VerifyFlow};
use crate::password::MAX_PASSWORD_CHARS;
use crate::store::sessions::LoginContext;

const NO_STORE: &str = "no-store";

/// Credentials for a new token pair.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ObtainRequest {
    pub username: String,
    #[oai(write_only)]
    pub password: String,
}

impl Example for ObtainRequest {
    fn example() -> Self {
        ObtainRequest {
            username: "alice".into(),
            password: "correct horse battery staple".into(),
        }
    }
}

impl FromFields for ObtainRequest {
    fn from_fields(fields: &mut Fields) -> Option<Self> {
        let username = fields.string("username", true, MAX_USERNAME_CHARS);
        let password = fields.string("password", false, MAX_PASSWORD_CHARS);
        Some(ObtainRequest {
            username: username?,
            password: password?,
        })
    }
}

/// A refresh token (refresh and blacklist).
#[derive(Debug, Object)]
#[oai(example)]
pub struct RefreshRequest {
    pub refresh: String,
}

impl Example for RefreshRequest {
    fn example() -> Self {
        RefreshRequest { refresh: "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6Ii4uLiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2ln".into() }
    }
}

impl FromFields for RefreshRequest {
    fn from_fields(fields: &mut Fields) -> Option<Self> {
        // No length limit here: an over-long token is refused as invalid by the codec.
        Some(RefreshRequest {
            refresh: fields.string("refresh", true, usize::MAX)?,
        })
    }
}

/// Any token of ours, access or refresh.
#[derive(Debug, Object)]
#[oai(example)]
pub struct VerifyRequest {
    pub token: String,
}

impl Example for VerifyRequest {
    fn example() -> Self {
        VerifyRequest {
            token: RefreshRequest::example().refresh,
        }
    }
}

impl FromFields for VerifyRequest {
    fn from_fields(fields: &mut Fields) -> Option<Self> {
        Some(VerifyRequest {
            token: fields.string("token", true, usize::MAX)?,
        })
    }
}

/// A new session's tokens.
#[derive(Debug, Object, Serialize)]
pub struct TokenPairBody {
    pub access: String,
    pub refresh: String,
}

impl SizedJson for TokenPairBody {
    fn json_len(&self) -> usize {
        self.access.len() + self.refresh.len() + object_overhead(&["access", "refresh"])
    }
}

/// A fresh access token; with rotation on, also the refresh token that replaces the one sent.
#[derive(Debug, Object, Serialize)]
pub struct RefreshBody {
    pub access: String,
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh: Option<String>,
}

impl SizedJson for RefreshBody {
    fn json_len(&self) -> usize {
        let refresh = self.refresh.as_ref().map_or(0, String::len);
        self.access.len() + refresh + object_overhead(&["access", "refresh"])
    }
}

#[derive(ApiResponse)]
pub enum TokenPairResponse {
    /// The token pair.
    #[oai(status = 200)]
    Ok(
        DirectJson<TokenPairBody>,
        #[oai(header = "Cache-Control")] String,
    ),
}

#[derive(ApiResponse)]
pub enum RefreshResponse {
    /// The new token(s).
    #[oai(status = 200)]
    Ok(
        DirectJson<RefreshBody>,
        #[oai(header = "Cache-Control")] String,
    ),
}

#[derive(ApiResponse)]
pub enum EmptyResponse {
    /// Done.
    #[oai(status = 200)]
    Ok(Json<EmptyBody>),
}

pub struct TokenApi {
    login: Arc<LoginFlow>,
    refresh: Arc<RefreshFlow>,
    verify: Arc<VerifyFlow>,
    revocation: Arc<RevocationFlow>,
    proxies: Arc<TrustedProxies>,
}

impl TokenApi {
    pub fn new(flows: &Flows, proxies: Arc<TrustedProxies>) -> TokenApi {
        TokenApi {
            login: flows.login.clone(),
            refresh: flows.refresh.clone(),
            verify: flows.verify.clone(),
            revocation: flows.revocation.clone(),
            proxies,
        }
    }
}

#[OpenApi(tag = "ApiTags::Token")]
impl TokenApi {
    /// Obtain an access and refresh token pair with a username and password.
    #[oai(path = "/api/token/", method = "post", operation_id = "token_obtain")]
    async fn obtain(
        &self,
        request: &Request,
        body: JsonOrForm<ObtainRequest>,
    ) -> Result<TokenPairResponse, ApiError> {
        let ObtainRequest { username, password } = body.0;
        let context = login_context(request, &self.proxies);
        let pair = self.login.obtain(&username, password, context).await?;
        let body = TokenPairBody {
            access: pair.access,
            refresh: pair.refresh,
        };
        Ok(TokenPairResponse::Ok(DirectJson(body), NO_STORE.into()))
    }

    /// Exchange a refresh token for a new access token (and, with rotation, a new refresh token).
    #[oai(
        path = "/api/token/refresh/",
        method = "post",
        operation_id = "token_refresh"
    )]
    async fn refresh(&self, body: JsonOrForm<RefreshRequest>) -> Result<RefreshResponse, ApiError> {
        let refreshed = self.refresh.refresh(&body.0.refresh).await?;
        let body = RefreshBody {
            access: refreshed.access,
            refresh: refreshed.refresh,
        };
        Ok(RefreshResponse::Ok(DirectJson(body), NO_STORE.into()))
    }

    /// Check that a token (access or refresh) is genuine, unexpired and not revoked.
    #[oai(
        path = "/api/token/verify/",
        method = "post",
        operation_id = "token_verify"
    )]
    async fn verify(&self, body: JsonOrForm<VerifyRequest>) -> Result<EmptyResponse, ApiError> {
        self.verify.verify(&body.0.token).await?;
        Ok(EmptyResponse::Ok(Json(EmptyBody {})))
    }

    /// Log out: revoke a refresh token's session, so its refresh and access tokens stop working.
    #[oai(
        path = "/api/token/blacklist/",
        method = "post",
        operation_id = "token_blacklist"
    )]
    async fn blacklist(&self, body: JsonOrForm<RefreshRequest>) -> Result<EmptyResponse, ApiError> {
        self.revocation.blacklist(&body.0.refresh).await?;
        Ok(EmptyResponse::Ok(Json(EmptyBody {})))
    }

    /// Log out everywhere: revoke every token of the current user.
    #[oai(
        path = "/api/token/logout-all/",
        method = "post",
        operation_id = "token_logout_all"
    )]
    async fn logout_all(&self, auth: BearerAuth) -> Result<NoContent, ApiError> {
        self.revocation.revoke_all_of_user(auth.user.id).await?;
        Ok(NoContent::Done)
    }
}

/// The user agent and peer address of a login, for the user's session list.
pub(super) fn login_context(request: &Request, proxies: &TrustedProxies) -> LoginContext {
    let user_agent = request
        .headers()
        .get(poem::http::header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let client_address = proxies.client_of(request);
    LoginContext {
        user_agent,
        client_address,
    }
}
