//! `/api/token/cookie/…`: the browser transport. The access token goes to the page's memory in
//! the body; the refresh token only ever travels in an HttpOnly cookie, guarded by a
//! double-submit CSRF check. The flows are the body endpoints' own (login, refresh, revocation).

use std::sync::Arc;
use std::time::Duration;

use poem::Request;
use poem::http::{HeaderValue, header};
use poem_openapi::param::Header;
use poem_openapi::registry::{MetaHeader, MetaResponses, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::Serialize;

use super::ApiTags;
use super::body::JsonBody;
use super::client_address::TrustedProxies;
use super::direct_json::{DirectJson, SizedJson, object_overhead};
use super::error::{ApiError, ErrorCode};
use super::schemas::NoContent;
use super::token::{ObtainRequest, login_context};
use crate::clock::SharedClock;
use crate::config::CookieSettings;
use crate::flows::{Flows, LoginFlow, RefreshBy, RefreshFlow, RevocationFlow};
use crate::token::TokenCodec;

/// Both cookies are sent only to the cookie endpoints: `Path=/` would send the refresh token
/// with every request to jwtd.
const COOKIE_PATH: &str = "/api/token/cookie/";
const NO_STORE: &str = "no-store";

/// The page's side of a session: the access token for its memory, when it expires, and the
/// CSRF value to send back as `X-CSRF-Token`.
#[derive(Debug, Object, Serialize)]
pub struct CookieTokenBody {
    pub access: String,
    /// Seconds since the epoch, like `exp`: refresh before this.
    pub access_expires_at: i64,
    /// Send it as the `X-CSRF-Token` header to refresh and log out.
    pub csrf: String,
}

impl SizedJson for CookieTokenBody {
    fn json_len(&self) -> usize {
        let strings = self.access.len() + self.csrf.len();
        // The integer's digits, at most 20, where the overhead counted two quotes.
        strings + 20 + object_overhead(&["access", "access_expires_at", "csrf"])
    }
}

#[derive(ApiResponse)]
pub enum CookieTokenResponse {
    /// The access token; the refresh and CSRF cookies are set.
    #[oai(status = 200)]
    Ok(
        DirectJson<CookieTokenBody>,
        #[oai(header = "Cache-Control")] String,
    ),
}

/// An answer with the cookies it sets. Derived responses carry one value per header, and
/// `Set-Cookie` comes once per cookie.
pub struct WithCookies<T> {
    answer: T,
    cookies: Vec<HeaderValue>,
}

impl<T: poem::IntoResponse> poem::IntoResponse for WithCookies<T> {
    fn into_response(self) -> poem::Response {
        let mut response = self.answer.into_response();
        for cookie in self.cookies {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        response
    }
}

impl<T: ApiResponse> ApiResponse for WithCookies<T> {
    fn meta() -> MetaResponses {
        let mut meta = T::meta();
        for response in &mut meta.responses {
            response.headers.push(MetaHeader {
                name: "Set-Cookie".into(),
                description: Some(
                    "Once per cookie: the refresh cookie and the CSRF cookie (HttpOnly, \
                     SameSite=Strict, Path=/api/token/cookie/); Max-Age=0 clears them."
                        .into(),
                ),
                required: true,
                deprecated: false,
                schema: String::schema_ref(),
            });
        }
        meta
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

/// The two cookies' names and attributes (`[cookies]`).
#[derive(Debug, Clone, Copy)]
pub struct BrowserCookies {
    secure: bool,
}

impl BrowserCookies {
    fn refresh_name(self) -> &'static str {
        if self.secure {
            "__Secure-jwtd_refresh"
        } else {
            "jwtd_refresh"
        }
    }

    fn csrf_name(self) -> &'static str {
        if self.secure {
            "__Secure-jwtd_csrf"
        } else {
            "jwtd_csrf"
        }
    }

    /// One `Set-Cookie` value. Tokens and the CSRF value are base64url, dots and hex: every
    /// byte is a valid cookie octet.
    fn set(self, name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let text = format!(
            "{name}={value}; Path={COOKIE_PATH}; Max-Age={max_age_secs}; HttpOnly{secure}; \
             SameSite=Strict"
        );
        HeaderValue::from_str(&text).expect("cookie values are visible ASCII")
    }

    fn session(self, refresh: &str, csrf: &str, max_age_secs: i64) -> Vec<HeaderValue> {
        vec![
            self.set(self.refresh_name(), refresh, max_age_secs),
            self.set(self.csrf_name(), csrf, max_age_secs),
        ]
    }

    fn cleared(self) -> Vec<HeaderValue> {
        self.session("", "", 0)
    }

    fn refresh_token(self, request: &Request) -> Option<&str> {
        cookie(request, self.refresh_name()).filter(|value| !value.is_empty())
    }

    /// The CSRF cookie's value, when `X-CSRF-Token` equals it; otherwise 403 `csrf_failed`.
    fn check_csrf<'r>(self, request: &'r Request, sent: Option<&str>) -> Result<&'r str, ApiError> {
        let expected = cookie(request, self.csrf_name()).filter(|value| !value.is_empty());
        match (expected, sent) {
            (Some(expected), Some(sent)) if same_in_constant_time(expected, sent) => Ok(expected),
            _ => Err(ApiError::csrf_failed()),
        }
    }

    /// A 401 ends the browser's session: its cookies are cleared with the answer.
    fn clearing_on_401(self, error: ApiError) -> ApiError {
        if error.status() == poem::http::StatusCode::UNAUTHORIZED {
            return error.with_set_cookies(self.cleared());
        }
        error
    }
}

/// Off (`cookies.enabled = false`), the cookie endpoints do not exist: 404 before anything reads
/// the request, so a malformed body gets 404 too.
pub fn not_found_when_off(enabled: bool, request: Request) -> poem::Result<Request> {
    if !enabled
        && request
            .uri()
            .path()
            .starts_with(COOKIE_PATH.trim_end_matches('/'))
    {
        return Err(ApiError::not_found().into());
    }
    Ok(request)
}

/// The first cookie called `name` in the request's `Cookie` headers.
fn cookie<'r>(request: &'r Request, name: &str) -> Option<&'r str> {
    request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Equal strings, in a time that depends on their length only: a guess must not learn how many
/// leading characters it got right. (The lengths are public: every CSRF value has the same.)
fn same_in_constant_time(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    a.len() == b.len() && std::hint::black_box(difference) == 0
}

/// Two v4 UUIDs: 244 random bits from the OS's generator, new for each session.
fn new_csrf_value() -> String {
    let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    format!("{}{}", a.simple(), b.simple())
}

pub struct CookieApi {
    reuse_grace: Duration,
    cookies: BrowserCookies,
    login: Arc<LoginFlow>,
    refresh: Arc<RefreshFlow>,
    revocation: Arc<RevocationFlow>,
    codec: Arc<TokenCodec>,
    clock: SharedClock,
    proxies: Arc<TrustedProxies>,
}

impl CookieApi {
    pub fn new(
        settings: &CookieSettings,
        flows: &Flows,
        codec: Arc<TokenCodec>,
        clock: SharedClock,
        proxies: Arc<TrustedProxies>,
    ) -> CookieApi {
        CookieApi {
            reuse_grace: settings.refresh_reuse_grace,
            cookies: BrowserCookies {
                secure: settings.secure,
            },
            login: flows.login.clone(),
            refresh: flows.refresh.clone(),
            revocation: flows.revocation.clone(),
            codec,
            clock,
            proxies,
        }
    }

    /// The refresh cookie, or 401 `token_not_valid` clearing whatever is left of the session.
    fn refresh_cookie<'r>(&self, request: &'r Request) -> Result<&'r str, ApiError> {
        self.cookies.refresh_token(request).ok_or_else(|| {
            let missing = ApiError::unauthorized(
                ErrorCode::TokenNotValid,
                "No refresh cookie was sent: log in again.",
            );
            self.cookies.clearing_on_401(missing)
        })
    }

    /// The body and the cookies of a session: the cookies live as long as the refresh token.
    fn answer(
        &self,
        access: String,
        access_expires_in: i64,
        refresh: &str,
        csrf: String,
    ) -> Result<WithCookies<CookieTokenResponse>, ApiError> {
        let now = self.clock.now().secs().0;
        let refresh_exp = self.codec.expiry_of_checked(refresh)?.0;
        let cookies = self
            .cookies
            .session(refresh, &csrf, (refresh_exp - now).max(0));
        let body = CookieTokenBody {
            access,
            access_expires_at: now + access_expires_in,
            csrf,
        };
        Ok(WithCookies {
            answer: CookieTokenResponse::Ok(DirectJson(body), NO_STORE.into()),
            cookies,
        })
    }
}

#[OpenApi(tag = "ApiTags::Token")]
impl CookieApi {
    /// Browsers: log in; the refresh token goes into an HttpOnly cookie, never into the body.
    ///
    /// Needs `cookies.enabled`. Answers the access token (keep it in memory) and `csrf` (send it
    /// as `X-CSRF-Token` to refresh and log out). **Trying it here:** Swagger UI runs in this
    /// browser, so "Try it out" sets the cookies; over plain HTTP the browser keeps them only
    /// with `cookies.secure = false` (or on `localhost`). Then try refresh and logout with the
    /// `csrf` value in the `X-CSRF-Token` field.
    #[oai(
        path = "/api/token/cookie/",
        method = "post",
        operation_id = "token_cookie_obtain"
    )]
    async fn obtain(
        &self,
        request: &Request,
        body: JsonBody<ObtainRequest>,
    ) -> Result<WithCookies<CookieTokenResponse>, ApiError> {
        let ObtainRequest { username, password } = body.0;
        let context = login_context(request, &self.proxies);
        let pair = self.login.obtain(&username, password, context).await?;
        self.answer(
            pair.access,
            pair.expires_in,
            &pair.refresh,
            new_csrf_value(),
        )
    }

    /// Browsers: a new access token from the refresh cookie, which rotates.
    ///
    /// No body: the cookies, and `X-CSRF-Token` equal to the CSRF cookie (403 `csrf_failed`
    /// otherwise, changing nothing). A missing or dead refresh cookie gets 401
    /// `token_not_valid` and both cookies are cleared. Tabs refreshing at once within
    /// `cookies.refresh_reuse_grace` all get the same successor. **Trying it here:** log in
    /// with the cookie obtain above first, then paste its `csrf` into `X-CSRF-Token`.
    #[oai(
        path = "/api/token/cookie/refresh/",
        method = "post",
        operation_id = "token_cookie_refresh"
    )]
    async fn refresh(
        &self,
        request: &Request,
        #[oai(name = "X-CSRF-Token")] csrf: Header<Option<String>>,
    ) -> Result<WithCookies<CookieTokenResponse>, ApiError> {
        let csrf = self.cookies.check_csrf(request, csrf.0.as_deref())?;
        let token = self.refresh_cookie(request)?;
        let by = RefreshBy::Browser {
            reuse_grace: self.reuse_grace,
        };
        let refreshed = (self.refresh.refresh_by(token, by).await)
            .map_err(|err| self.cookies.clearing_on_401(err.into()))?;
        // Without rotation the same refresh token stays in the cookie.
        let refresh = refreshed.refresh.as_deref().unwrap_or(token);
        self.answer(
            refreshed.access,
            refreshed.expires_in,
            refresh,
            csrf.to_owned(),
        )
        .map_err(|err| self.cookies.clearing_on_401(err))
    }

    /// Browsers: log out; the session's tokens stop working and both cookies are cleared.
    ///
    /// Needs the cookies and `X-CSRF-Token` (403 `csrf_failed` otherwise: a cross-site form
    /// cannot log anyone out). **Trying it here:** paste the `csrf` of the cookie obtain into
    /// `X-CSRF-Token`.
    #[oai(
        path = "/api/token/cookie/logout/",
        method = "post",
        operation_id = "token_cookie_logout"
    )]
    async fn logout(
        &self,
        request: &Request,
        #[oai(name = "X-CSRF-Token")] csrf: Header<Option<String>>,
    ) -> Result<WithCookies<NoContent>, ApiError> {
        self.cookies.check_csrf(request, csrf.0.as_deref())?;
        let token = self.refresh_cookie(request)?;
        (self.revocation.blacklist(token).await)
            .map_err(|err| self.cookies.clearing_on_401(err.into()))?;
        Ok(WithCookies {
            answer: NoContent::Done,
            cookies: self.cookies.cleared(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_constant_time_comparison_is_plain_equality() {
        assert!(same_in_constant_time("abc123", "abc123"));
        for other in ["abc124", "abc12", "abc1234", "", "ABC123"] {
            assert!(!same_in_constant_time("abc123", other), "{other}");
        }
    }

    #[test]
    fn the_first_cookie_of_a_name_is_read_from_every_cookie_header() {
        let request = Request::builder()
            .header(header::COOKIE, "a=1; jwtd_csrf=x")
            .header(header::COOKIE, "jwtd_csrf=y;jwtd_refresh=t.o.k")
            .finish();
        assert_eq!(cookie(&request, "jwtd_csrf"), Some("x"));
        assert_eq!(cookie(&request, "jwtd_refresh"), Some("t.o.k"));
        assert_eq!(cookie(&request, "jwtd"), None);
    }
}
