//! poem: a middleware that refuses requests without a valid, unrevoked access token (401),
//! and an extractor for the claims it verified.

use poem::http::StatusCode;
use poem::{Endpoint, FromRequest, Middleware, Request, RequestBody, Response, Result};

use crate::{Claims, Verifier};

/// `.with(VerifyTokens(verifier))`: every request needs `Authorization: Bearer <access token>`.
pub struct VerifyTokens(pub Verifier);

impl<E: Endpoint> Middleware<E> for VerifyTokens {
    type Output = VerifyTokensEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        VerifyTokensEndpoint {
            inner,
            verifier: self.0.clone(),
        }
    }
}

pub struct VerifyTokensEndpoint<E> {
    inner: E,
    verifier: Verifier,
}

impl<E: Endpoint> Endpoint for VerifyTokensEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut request: Request) -> Result<Self::Output> {
        let token = request
            .header("authorization")
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim);
        let claims = token
            .ok_or(crate::VerifyError::Invalid)
            .and_then(|token| self.verifier.verify(token))
            .map_err(|err| {
                let body = Response::builder()
                    .status(StatusCode::UNAUTHORIZED)
                    .header("WWW-Authenticate", "Bearer")
                    .body(err.to_string());
                poem::Error::from_response(body)
            })?;
        request.extensions_mut().insert(claims);
        self.inner.call(request).await
    }
}

/// The verified claims in a handler behind [`VerifyTokens`].
pub struct VerifiedClaims(pub Claims);

impl<'a> FromRequest<'a> for VerifiedClaims {
    async fn from_request(request: &'a Request, _body: &mut RequestBody) -> Result<Self> {
        request
            .extensions()
            .get::<Claims>()
            .cloned()
            .map(VerifiedClaims)
            .ok_or_else(|| poem::Error::from_status(StatusCode::UNAUTHORIZED))
    }
}

impl VerifiedClaims {
    /// 403 unless the token's `perms` holds `perm`.
    pub fn require(&self, perm: &str) -> Result<()> {
        self.0
            .require(perm)
            .map_err(|_| poem::Error::from_status(StatusCode::FORBIDDEN))
    }
}
