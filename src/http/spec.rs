//! The OpenAPI document without the services behind it: `jwtd openapi` prints the spec with no
//! configuration, database or keys. poem-openapi builds the document from the API types alone
//! (`OpenApi::meta` and `register` take no `self`); only routing needs the built services.

use std::collections::HashMap;
use std::marker::PhantomData;

use poem::endpoint::BoxEndpoint;
use poem::http::Method;
use poem_openapi::OpenApi;
use poem_openapi::registry::{MetaApi, Registry};

/// Describes the operations of `T` and routes none of them.
pub struct Described<T>(PhantomData<T>);

impl<T> Described<T> {
    pub fn new() -> Described<T> {
        Described(PhantomData)
    }
}

impl<T: OpenApi> OpenApi for Described<T> {
    fn meta() -> Vec<MetaApi> {
        T::meta()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn add_routes(self, _: &mut HashMap<String, HashMap<Method, BoxEndpoint<'static>>>) {}
}
