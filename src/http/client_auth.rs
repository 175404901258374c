//! OAuth client authentication (RFC 6749 §2.3.1): HTTP Basic, or `client_id` and
//! `client_secret` in the body; one method per request. A hand-written security scheme so
//! Swagger UI offers the Basic login.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use poem::http::header::AUTHORIZATION;
use poem::web::RequestBody;
use poem::{Request, Result};
use poem_openapi::registry::Registry;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

use super::auth::register_http_scheme;
use super::error::OAuthApiError;
use crate::oauth::{Client, OAuthError, OAuthService};

const SCHEME: &str = "ClientBasic";

/// The id and secret of `Authorization: Basic`, when the request has one.
pub struct ClientBasic(Option<(String, String)>);

impl<'a> ApiExtractor<'a> for ClientBasic {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        register_http_scheme(
            registry,
            SCHEME,
            "basic",
            "A registered client's id and secret (`jwtd clients create`); the body's \
             `client_id` and `client_secret` are accepted instead.",
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
        let Some(header) = request.headers().get(AUTHORIZATION) else {
            return Ok(ClientBasic(None));
        };
        let credentials = header
            .to_str()
            .ok()
            .and_then(basic_credentials)
            .ok_or_else(|| OAuthApiError::from(OAuthError::InvalidClient))?;
        Ok(ClientBasic(Some(credentials)))
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`, as RFC 6749 §2.3.1 encodes it.
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    // Form-urlencoded parts: `+` is a space, `%XX` a byte; a literal `&` is just a character.
    let decode = |part: &str| {
        let escaped = part.replace('&', "%26");
        url::form_urlencoded::parse(format!("x={escaped}").as_bytes())
            .next()
            .map(|(_, value)| value.into_owned())
            .filter(|value| !value.is_empty() && !value.chars().any(char::is_control))
    };
    Some((decode(id)?, decode(secret)?))
}

impl ClientBasic {
    /// The authenticated client, from the header or from the body's fields (not both).
    pub async fn authenticate(
        self,
        oauth: &OAuthService,
        client_id: Option<String>,
        client_secret: Option<String>,
    ) -> Result<Client, OAuthError> {
        let (id, secret) = match (self.0, client_id, client_secret) {
            (Some(_), _, Some(_)) => {
                return Err(OAuthError::InvalidRequest(
                    "Use one client authentication method, not both".into(),
                ));
            }
            (Some((id, secret)), body_id, None) => {
                if body_id.is_some_and(|body_id| body_id != id) {
                    return Err(OAuthError::InvalidRequest(
                        "client_id does not match the authenticated client".into(),
                    ));
                }
                (id, secret)
            }
            (None, Some(id), Some(secret)) => (id, secret),
            _ => return Err(OAuthError::InvalidClient),
        };
        oauth.authenticate(&id, &secret).await
    }
}
