//! tower (axum, tonic): a Layer that answers 401 to a request without a valid, unrevoked
//! access token, and puts the verified [`Claims`] in the request's extensions.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};

use crate::{Claims, Verifier};

#[derive(Clone)]
pub struct VerifierLayer(pub Verifier);

impl<S> tower_layer::Layer<S> for VerifierLayer {
    type Service = VerifierService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifierService {
            inner,
            verifier: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct VerifierService<S> {
    inner: S,
    verifier: Verifier,
}

type Answer<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, B, R> tower_service::Service<Request<B>> for VerifierService<S>
where
    S: tower_service::Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
    R: Default + Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Answer<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        match claims_of(&self.verifier, &request) {
            Some(claims) => {
                request.extensions_mut().insert(claims);
                Box::pin(self.inner.call(request))
            }
            None => {
                let mut refused = Response::new(R::default());
                *refused.status_mut() = StatusCode::UNAUTHORIZED;
                Box::pin(async move { Ok(refused) })
            }
        }
    }
}

fn claims_of<B>(verifier: &Verifier, request: &Request<B>) -> Option<Claims> {
    let header = request.headers().get(http::header::AUTHORIZATION)?;
    let token = header.to_str().ok()?.strip_prefix("Bearer ")?;
    verifier.verify(token.trim()).ok()
}
