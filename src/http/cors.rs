//! CORS for the pages in `cors.allowed_origins` (the browser transport's single-page apps):
//! those origins may call jwtd with credentials; any other origin gets no
//! `Access-Control-Allow-*` header, so its pages cannot read an answer. Every answer says
//! `Vary: Origin`, since it depends on it.

use std::collections::HashSet;
use std::sync::Arc;

use poem::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use poem::{Request, Response};

use crate::config::CorsSettings;

const ALLOWED_METHODS: &str = "GET, POST, PATCH, DELETE";
const ALLOWED_HEADERS: &str = "Authorization, Content-Type, X-CSRF-Token";
/// What a page may read besides the CORS-safelisted headers: when to retry a throttled login.
const EXPOSED_HEADERS: &str = "Retry-After";
/// Browsers cap it anyway (Chromium at 2 hours); 10 minutes keeps a changed list quick to apply.
const PREFLIGHT_MAX_AGE_SECS: &str = "600";

#[derive(Debug, Clone)]
pub struct Cors {
    allowed: Arc<HashSet<String>>,
}

impl Cors {
    pub fn from_settings(settings: &CorsSettings) -> Cors {
        let allowed = settings.allowed_origins.iter().cloned().collect();
        Cors {
            allowed: Arc::new(allowed),
        }
    }

    /// The request's allowed origin, and the answer to it when it is a preflight (answered
    /// here, never passed on). Without allowed origins jwtd answers no CORS at all.
    pub fn check(&self, request: &Request) -> (Option<HeaderValue>, Option<Response>) {
        if self.allowed.is_empty() {
            return (None, None);
        }
        let origin = self.allowed_origin(request.headers());
        let preflight = match &origin {
            Some(origin) if is_preflight(request) => Some(preflight(origin)),
            _ => None,
        };
        (origin, preflight)
    }

    /// Adds the CORS headers an answer to `origin` needs (see `check`).
    pub fn decorate(&self, response: &mut Response, origin: Option<HeaderValue>) {
        if self.allowed.is_empty() {
            return;
        }
        let headers = response.headers_mut();
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        if let Some(origin) = origin {
            allow(headers, origin);
            let exposed = HeaderValue::from_static(EXPOSED_HEADERS);
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, exposed);
        }
    }

    /// The request's `Origin` when it is exactly one of the allowed ones.
    fn allowed_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        let listed = self.allowed.contains(origin.to_str().ok()?);
        listed.then(|| origin.clone())
    }
}

fn is_preflight(request: &Request) -> bool {
    request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

fn allow(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    let credentials = HeaderValue::from_static("true");
    headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, credentials);
}

/// 204 with what the page may send: methods, the headers the API reads, for how long.
fn preflight(origin: &HeaderValue) -> Response {
    let mut response = Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header(header::ACCESS_CONTROL_ALLOW_METHODS, ALLOWED_METHODS)
        .header(header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOWED_HEADERS)
        .header(header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE_SECS)
        .header(header::VARY, "Origin")
        .finish();
    allow(response.headers_mut(), origin.clone());
    response
}
