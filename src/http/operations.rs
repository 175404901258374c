//! The OpenAPI operations behind the front door. A request for a path without parameters, with
//! a method it has (nearly every request), goes straight to its operation; anything else (a path
//! with an id, an unknown path or method, a HEAD) goes through poem-openapi's own endpoint,
//! which routes and answers it as it always has.
//!
//! poem-openapi's endpoint wraps the operations in a radix router, a method router, a layer that
//! parses the query string and a response mapping, each boxed and each moving the request into
//! a future of its own: about a tenth of a `GET /health/live`'s instructions (callgrind). The
//! direct path does what those layers do for such a request: it parses the query string for
//! the operation's extractors, as poem-openapi's `extract_query` does. The router's only other
//! effect, its `PathPattern` data, is read by nothing in jwtd.

use std::collections::HashMap;

use poem::endpoint::BoxEndpoint;
use poem::http::Method;
use poem::{Endpoint, Request, Response};
use poem_openapi::__private::UrlQuery;
use poem_openapi::OpenApi;

pub struct Operations {
    /// By path, then method: the operations whose paths have no parameters.
    direct: HashMap<String, HashMap<Method, BoxEndpoint<'static>>>,
    /// poem-openapi's endpoint over every operation.
    routed: BoxEndpoint<'static>,
}

impl Operations {
    /// `apis`' operations without path parameters, in front of `routed` (poem-openapi's
    /// endpoint for the same operations).
    pub fn new(apis: impl OpenApi, routed: BoxEndpoint<'static>) -> Operations {
        let mut direct = HashMap::new();
        apis.add_routes(&mut direct);
        direct.retain(|path, _| !path.contains([':', '*', '{']));
        Operations { direct, routed }
    }

    fn direct(&self, request: &Request) -> Option<&BoxEndpoint<'static>> {
        self.direct.get(request.uri().path())?.get(request.method())
    }
}

impl Endpoint for Operations {
    type Output = Response;

    async fn call(&self, mut request: Request) -> poem::Result<Response> {
        match self.direct(&request) {
            Some(operation) => {
                let query: Vec<(String, String)> = request.params().unwrap_or_default();
                request.extensions_mut().insert(UrlQuery(query));
                operation.call(request).await
            }
            None => self.routed.call(request).await,
        }
    }
}
