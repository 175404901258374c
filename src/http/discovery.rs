//! `/.well-known/…`: the public keys (RFC 7517 JWKS) other services verify tokens with, and the
//! authorization server metadata (RFC 8414) OAuth clients configure themselves from.

use std::sync::Arc;

use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;
use crate::config::PublicUrl;
use crate::oauth::GrantType;
use crate::token::TokenCodec;
use crate::token::keys::PublicJwk;

/// A public key (RFC 7517 §4): public members only, never an HMAC secret.
#[derive(Debug, Object)]
pub struct Jwk {
    /// `OKP` (Ed25519), `EC` or `RSA`.
    pub kty: String,
    /// The RFC 7638 SHA-256 thumbprint; tokens name their key with it in the `kid` header.
    pub kid: String,
    pub alg: String,
    /// Always `sig`.
    #[oai(rename = "use")]
    pub use_: String,
    #[oai(skip_serializing_if_is_none)]
    pub crv: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub x: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub y: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub n: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub e: Option<String>,
}

impl From<&PublicJwk> for Jwk {
    fn from(key: &PublicJwk) -> Jwk {
        Jwk {
            kty: key.kty.clone(),
            kid: key.kid.clone(),
            alg: key.alg.clone(),
            use_: key.use_.clone(),
            crv: key.crv.clone(),
            x: key.x.clone(),
            y: key.y.clone(),
            n: key.n.clone(),
            e: key.e.clone(),
        }
    }
}

/// Every key that may still verify a live token: the signing key first, then previous ones.
#[derive(Debug, Object)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

#[derive(ApiResponse)]
pub enum JwksResponse {
    /// The key set. Empty for an HMAC deployment: its key is a shared secret.
    #[oai(status = 200)]
    Ok(Json<JwkSet>, #[oai(header = "Cache-Control")] String),
}

/// RFC 8414 §2.
#[derive(Debug, Object)]
pub struct ServerMetadata {
    pub issuer: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub revocation_endpoint: String,
    pub introspection_endpoint: String,
    pub grant_types_supported: Vec<String>,
    /// Empty: jwtd has no authorization endpoint.
    pub response_types_supported: Vec<String>,
    pub token_endpoint_auth_methods_supported: Vec<String>,
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// The algorithms access tokens are signed with (RFC 9068's term).
    pub access_token_signing_alg_values_supported: Vec<String>,
    pub service_documentation: String,
}

pub struct DiscoveryApi {
    codec: Arc<TokenCodec>,
    jwks_max_age_secs: u64,
    public_url: Option<PublicUrl>,
}

impl DiscoveryApi {
    pub fn new(
        codec: Arc<TokenCodec>,
        jwks_max_age: std::time::Duration,
        public_url: Option<PublicUrl>,
    ) -> DiscoveryApi {
        DiscoveryApi {
            codec,
            jwks_max_age_secs: jwks_max_age.as_secs(),
            public_url,
        }
    }

    /// `server.public_url`, whatever the request says. Only development runs without it
    /// (production refuses to start so): there the URLs follow the request's `Host` header,
    /// which any client chooses.
    fn public_base_url(&self, request: &Request) -> String {
        if let Some(url) = &self.public_url {
            return url.to_string();
        }
        let host = request
            .headers()
            .get(poem::http::header::HOST)
            .and_then(|host| host.to_str().ok())
            .unwrap_or("localhost");
        format!("http://{host}")
    }
}

#[OpenApi(tag = "ApiTags::Discovery")]
impl DiscoveryApi {
    /// The public keys that verify jwtd's tokens (JWKS); empty for an HMAC deployment.
    #[oai(path = "/.well-known/jwks.json", method = "get", operation_id = "jwks")]
    async fn jwks(&self) -> JwksResponse {
        let keys = self.codec.keys().public_keys();
        let max_age = self.jwks_max_age_secs;
        JwksResponse::Ok(
            Json(JwkSet {
                keys: keys.iter().map(Jwk::from).collect(),
            }),
            format!("public, max-age={max_age}"),
        )
    }

    /// OAuth 2.0 authorization server metadata (RFC 8414).
    #[oai(
        path = "/.well-known/oauth-authorization-server",
        method = "get",
        operation_id = "oauth_metadata"
    )]
    async fn metadata(&self, request: &Request) -> Json<ServerMetadata> {
        let base = self.public_base_url(request);
        let issuer = self
            .codec
            .issuer()
            .map_or_else(|| base.clone(), str::to_owned);
        let auth_methods = || vec!["client_secret_basic".into(), "client_secret_post".into()];
        Json(ServerMetadata {
            issuer,
            token_endpoint: format!("{base}/oauth/token"),
            jwks_uri: format!("{base}/.well-known/jwks.json"),
            revocation_endpoint: format!("{base}/oauth/revoke"),
            introspection_endpoint: format!("{base}/oauth/introspect"),
            grant_types_supported: GrantType::ALL.iter().map(|g| g.to_string()).collect(),
            response_types_supported: Vec::new(),
            token_endpoint_auth_methods_supported: auth_methods(),
            revocation_endpoint_auth_methods_supported: auth_methods(),
            introspection_endpoint_auth_methods_supported: auth_methods(),
            access_token_signing_alg_values_supported: self.codec.keys().algorithms(),
            service_documentation: format!("{base}/docs"),
        })
    }
}
