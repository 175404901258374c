//! Limits every request shares besides the body's (see `body`): the size of its head and the
//! time it may take, so a slow or bloated client holds neither memory nor a task for long.

use std::time::Duration;

use poem::{Endpoint, IntoResponse, Request, Response};

use super::error::ApiError;
use crate::config::ServerSettings;

#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    max_header_bytes: usize,
    timeout: Duration,
}

impl RequestLimits {
    pub fn from_settings(server: &ServerSettings) -> RequestLimits {
        RequestLimits {
            max_header_bytes: server.max_header_bytes,
            timeout: server.request_timeout,
        }
    }

    /// Runs `next` if the request's head is small enough, and for at most the timeout.
    pub async fn apply<E: Endpoint>(&self, next: &E, request: Request) -> poem::Result<Response> {
        self.check_head(&request)?;
        self.timed(next.call(request)).await
    }

    /// 431 when the request's head is larger than allowed.
    pub fn check_head(&self, request: &Request) -> Result<(), ApiError> {
        if head_bytes(request) > self.max_header_bytes {
            return Err(ApiError::headers_too_large(self.max_header_bytes));
        }
        Ok(())
    }

    /// `answer`, or 408 when it takes longer than the timeout.
    pub async fn timed<R: IntoResponse>(
        &self,
        answer: impl Future<Output = poem::Result<R>>,
    ) -> poem::Result<Response> {
        match tokio::time::timeout(self.timeout, answer).await {
            Ok(answer) => answer.map(IntoResponse::into_response),
            Err(_) => Err(ApiError::request_timeout(self.timeout).into()),
        }
    }
}

/// The request line and headers as sent, near enough: `name: value\r\n` per header.
fn head_bytes(request: &Request) -> usize {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    request.method().as_str().len() + target + headers + "  HTTP/1.1\r\n\r\n".len()
}
