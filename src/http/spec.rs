//! The OpenAPI document without the services behind it: `jwtd openapi` prints the spec with no
//! configuration, database or keys. poem-openapi builds the document from the API types alone
//! (`OpenApi::meta` and `register` take no `self`); only routing needs the built services.

use std::collections::HashMap;
use std::marker::PhantomData;

use poem::endpoint::BoxEndpoint;
use poem::endpoint::make_sync;
use poem::http::Method;
use poem::web::Html;
use poem::{Endpoint, Response, Route};
use poem_openapi::registry::{MetaApi, Registry};
use poem_openapi::{OpenApi, OpenApiService, Tags};

use super::ApiTags;

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

/// The document with its `tags` in [`ApiTags`]' order (Token, Users, then the rest): Swagger UI
/// shows the groups in that order, and poem-openapi sorts them by name.
pub fn tags_in_order(spec: &str) -> String {
    const START: &str = "\n  \"tags\": [";
    const END: &str = "\n  ]";
    let document: serde_json::Value = serde_json::from_str(spec).expect("poem-openapi's JSON");
    let Some(tags) = document["tags"].as_array() else {
        return spec.to_owned();
    };
    let order = ApiTags::ALL.map(|tag| tag.name());
    let mut tags = tags.clone();
    // A tag missing from `ApiTags::ALL` goes last rather than first.
    let rank = |tag: &serde_json::Value| order.iter().position(|name| tag["name"] == *name);
    tags.sort_by_key(|tag| rank(tag).unwrap_or(usize::MAX));
    // serde_json sorts object keys: splice the one array in, so the paths keep their order.
    let start = spec.find(START).expect("pretty JSON with top-level tags");
    let end = start + spec[start..].find(END).expect("the tags array closes") + END.len();
    let array = serde_json::to_string_pretty(&tags).expect("JSON values serialize");
    let array = array.replace('\n', "\n  ");
    format!("{}\n  \"tags\": {array}{}", &spec[..start], &spec[end..])
}

/// `GET /openapi.json`.
pub fn document(spec: String) -> impl Endpoint {
    make_sync(move |_| {
        Response::builder()
            .content_type("application/json; charset=utf-8")
            .body(spec.clone())
    })
}

/// Swagger UI at `/docs` on `spec` (poem-openapi's page, with the ordered document).
pub fn swagger_ui<T: OpenApi>(api: &OpenApiService<T, ()>, spec: &str) -> Route {
    let html = api.swagger_ui_html().replacen(&api.spec(), spec, 1);
    Route::new().at("/", make_sync(move |_| Html(html.clone())))
}
