//! The front door: what every API request goes through before its operation, in this order:
//! CORS (a preflight is answered here), the request id, span, access log and metrics
//! (`observe`), the head size and the timeout (`limits`), SimpleJWT's trailing slash, the cookie
//! endpoints when they are off, the services the extractors read, and panics turned into 500s.
//!
//! One endpoint rather than a stack of poem middleware: each layer of such a stack moves the
//! whole request future into its own once more, and those copies were a third of the
//! instructions of a `GET /health/live` (callgrind).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use poem::endpoint::BoxEndpoint;
use poem::http::Uri;
use poem::{Endpoint, IntoResponse, Request, Response};

use super::cookies;
use super::cors::Cors;
use super::error::ApiError;
use super::limits::RequestLimits;
use super::observe::Observation;
use crate::flows::verify::VerifyFlow;
use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
#[error("a request handler panicked")]
struct HandlerPanicked;

pub struct FrontDoor<A> {
    /// The OpenAPI operations.
    pub api: A,
    /// The few routes outside the spec: the spec itself, Swagger UI, the metrics.
    pub others: BoxEndpoint<'static, Response>,
    pub cors: Cors,
    pub limits: RequestLimits,
    pub cookies_enabled: bool,
    pub metrics: Arc<Metrics>,
    pub services: RequestServices,
}

/// What extractors need from the app (bearer authentication, the feed's reader, the body
/// types), attached to every request as one extension.
#[derive(Clone)]
pub struct RequestServices {
    pub verify: Arc<VerifyFlow>,
    /// The largest body accepted, in bytes.
    pub body_limit: usize,
}

impl<A: Endpoint<Output = Response>> Endpoint for FrontDoor<A> {
    type Output = Response;

    async fn call(&self, request: Request) -> poem::Result<Response> {
        let (origin, preflight) = self.cors.check(&request);
        // A preflight is not an API request: neither logged nor counted.
        if let Some(preflight) = preflight {
            return Ok(preflight);
        }
        let observation = Observation::start(&request);
        let answer = match self.admit(request) {
            Ok(request) => {
                let routed = AssertUnwindSafe(self.route(request)).catch_unwind();
                let answer = self.limits.timed(routed.map(|caught| match caught {
                    Ok(answer) => answer,
                    Err(_) => Ok(ApiError::internal(&HandlerPanicked).into_response()),
                }));
                observation.within(answer).await
            }
            Err(refused) => Err(refused),
        };
        let mut response = observation.finish(answer, &self.metrics);
        self.cors.decorate(&mut response, origin);
        Ok(response)
    }
}

impl<A: Endpoint<Output = Response>> FrontDoor<A> {
    /// The request as its route sees it, or why it gets none.
    fn admit(&self, request: Request) -> poem::Result<Request> {
        self.limits.check_head(&request)?;
        let mut request =
            cookies::not_found_when_off(self.cookies_enabled, without_api_trailing_slash(request))?;
        request.extensions_mut().insert(self.services.clone());
        Ok(request)
    }

    /// Boxed either way, so this future stays small (a pointer) whichever route it took.
    fn route(&self, request: Request) -> BoxFuture<'_, poem::Result<Response>> {
        let path = request.uri().path();
        if path == "/openapi.json" || path == "/metrics" || path.starts_with("/docs") {
            Box::pin(self.others.call(request))
        } else {
            Box::pin(self.api.call(request))
        }
    }
}

/// SimpleJWT's paths end in a slash, which poem-openapi routes without: `/api/token/` and
/// `/api/token` reach the same operation.
fn without_api_trailing_slash(mut request: Request) -> Request {
    let path = request.uri().path();
    if path.starts_with("/api/") && path.len() > "/api/".len() && path.ends_with('/') {
        let trimmed = path.trim_end_matches('/');
        let path_and_query = match request.uri().query() {
            Some(query) => format!("{trimmed}?{query}"),
            None => trimmed.to_owned(),
        };
        if let Ok(uri) = Uri::builder().path_and_query(path_and_query).build() {
            *request.uri_mut() = uri;
        }
    }
    request
}
