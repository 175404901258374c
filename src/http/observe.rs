//! What every request leaves behind: an id on each log line written while it runs and on its
//! response, one access-log line, and its count and latency in the metrics. Errors become the
//! contract's JSON here, inside the request's span, where the operation is still known.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use poem::http::{HeaderValue, Method};
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::OperationId;
use tracing::{Instrument, Span};

use super::error::{ApiError, StoreFailure};
use crate::http::limits::RequestLimits;
use crate::metrics::Metrics;
use crate::telemetry::request::{self, RequestScope};

pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// A caller's own request id is kept when it is this short and plain; otherwise one is made.
const MAX_REQUEST_ID_CHARS: usize = 64;

/// Observes one request through `next`, within `limits` (the metrics listener's way; the API's
/// front door does the same steps inline).
pub async fn observe<E: Endpoint>(
    next: Arc<E>,
    request: Request,
    metrics: Arc<Metrics>,
    limits: RequestLimits,
) -> poem::Result<Response> {
    let observation = Observation::start(&request);
    let answer = observation
        .within(limits.apply(next.as_ref(), request))
        .await;
    Ok(observation.finish(answer, &metrics))
}

/// One request being observed: started with its head, finished with its answer.
pub struct Observation {
    started: Instant,
    /// Every log line written while the request runs names it.
    scope: Arc<RequestScope>,
    /// The same as a `tracing` span, for the one log format that needs it (see
    /// [`request::request_spans`]); disabled otherwise.
    span: Span,
}

impl Observation {
    pub fn start(request: &Request) -> Observation {
        let scope = Arc::new(RequestScope {
            id: request_id(request),
            method: method_label(request.method()),
            uri: request.uri().clone(),
        });
        let span = if request::request_spans() {
            tracing::info_span!(
                "request",
                id = %scope.id,
                method = scope.method,
                path = %scope.uri.path()
            )
        } else {
            Span::none()
        };
        Observation {
            started: Instant::now(),
            scope,
            span,
        }
    }

    /// `work`, run as part of this request: its log lines name it.
    pub fn within<F: Future>(&self, work: F) -> impl Future<Output = F::Output> {
        request::within(self.scope.clone(), work.instrument(self.span.clone()))
    }

    /// `work` (synchronous), run as part of this request.
    fn within_sync<R>(&self, work: impl FnOnce() -> R) -> R {
        request::within_sync(self.scope.clone(), || self.span.in_scope(work))
    }

    /// The response to send: the answer, or its error as the contract's JSON; logged, counted
    /// and given the request id.
    pub fn finish(self, answer: poem::Result<Response>, metrics: &Metrics) -> Response {
        let path = self.scope.uri.path();
        let (mut response, operation) = match answer {
            Ok(response) => {
                let operation = operation_of(response.data::<OperationId>(), path);
                (response, operation)
            }
            Err(err) => {
                let operation = operation_of(err.data::<OperationId>(), path);
                let response = self.within_sync(|| ApiError::from_poem(&err).into_response());
                (response, operation)
            }
        };
        let elapsed = self.started.elapsed();
        let status = response.status().as_u16();
        metrics.request_answered(operation, self.scope.method, status, elapsed);
        if response.data::<StoreFailure>().is_some() {
            metrics.store_failed(operation);
        }
        self.within_sync(|| {
            tracing::info!(
                target: "jwtd::access",
                operation,
                status,
                micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
                "answered"
            );
        });
        if let Ok(value) = HeaderValue::from_str(&self.scope.id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        response
    }
}

/// The caller's `X-Request-Id` when it is plain (letters, digits, `-`, `_`, `.`; at most 64),
/// so ids can follow a request through a proxy; anything else is replaced, never logged.
fn request_id(request: &Request) -> String {
    request
        .header(REQUEST_ID_HEADER)
        .filter(|id| {
            (1..=MAX_REQUEST_ID_CHARS).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .map_or_else(new_request_id, str::to_owned)
}

/// 32 hex digits: this process's random 64-bit prefix, then a counter. Unique across instances
/// without a system call per request (a random UUID costs one), and written by hand: `format!`
/// with two hex fields cost more than the rest of the id's work.
fn new_request_id() -> String {
    static PROCESS: LazyLock<u64> = LazyLock::new(|| uuid::Uuid::new_v4().as_u64_pair().0);
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut id = String::with_capacity(32);
    for value in [*PROCESS, n] {
        for shift in (0..16).rev() {
            let digit = (value >> (shift * 4)) & 0xf;
            id.push(char::from_digit(digit as u32, 16).expect("a hex digit"));
        }
    }
    id
}

/// The OpenAPI operation, or a fixed name for the few routes outside it: never the raw path,
/// which would give the metrics one series per probed URL.
fn operation_of(operation: Option<&OperationId>, path: &str) -> &'static str {
    match (operation, path) {
        (Some(operation), _) => operation.0,
        (None, "/metrics") => "metrics",
        (None, "/openapi.json") => "openapi_json",
        (None, docs) if docs.starts_with("/docs") => "swagger_ui",
        (None, _) => "unmatched",
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_id(id: &str) -> Request {
        Request::builder().header(REQUEST_ID_HEADER, id).finish()
    }

    #[test]
    fn a_plain_caller_id_is_kept_and_anything_else_replaced() {
        assert_eq!(request_id(&with_id("edge-7f3a.2_b")), "edge-7f3a.2_b");
        for bad in ["", "has space", "quote\"", &"x".repeat(65), "ünïcode"] {
            let made = request_id(&with_id(bad));
            assert_eq!(made.len(), 32, "{bad:?} gave {made:?}");
            assert!(made.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        let (first, second) = (
            request_id(&Request::default()),
            request_id(&Request::default()),
        );
        assert_eq!(first[..16], second[..16], "one process, one prefix");
        let counter = |id: &str| u64::from_str_radix(&id[16..], 16).unwrap();
        assert!(counter(&second) > counter(&first));
    }

    #[test]
    fn routes_outside_the_spec_get_fixed_names() {
        assert_eq!(
            operation_of(Some(&OperationId("verify_token")), "/x"),
            "verify_token"
        );
        assert_eq!(operation_of(None, "/docs/index.css"), "swagger_ui");
        assert_eq!(operation_of(None, "/wp-admin/setup.php"), "unmatched");
    }
}
