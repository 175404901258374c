//! The HTTP layer: one `#[OpenApi]` struct per tag, the routes around them, and the rules every
//! request shares (trailing slashes, body limit, JSON errors, panics).

pub mod admin;
pub mod auth;
pub mod body;
pub mod client_address;
pub mod client_auth;
pub mod cookies;
pub mod cors;
pub mod direct_json;
pub mod discovery;
pub mod email;
pub mod error;
pub mod front_door;
pub mod groups;
pub mod health;
pub mod idle;
pub mod limits;
pub mod oauth;
pub mod observe;
pub mod operations;
pub mod revocations;
pub mod schemas;
mod spec;
pub mod token;
pub mod users;

use std::sync::Arc;

use poem::http::header;
use poem::web::Data;
use poem::{Endpoint, EndpointExt, IntoEndpoint, Response, Route, get, handler};
use poem_openapi::{OpenApi, OpenApiService, Tags};

use crate::metrics::{self, Metrics};
use crate::state::AppState;
use crate::store::Readiness;
use cors::Cors;
use front_door::{FrontDoor, RequestServices};
use limits::RequestLimits;
use operations::Operations;

#[derive(Tags)]
pub enum ApiTags {
    /// SimpleJWT-compatible token endpoints.
    Token,
    /// Accounts: registration, the current user, password change.
    Users,
    /// Staff administration of users.
    Admin,
    /// Groups and permissions (staff only): what access tokens may carry.
    Groups,
    /// OAuth 2.0 token, revocation and introspection endpoints for registered clients.
    #[oai(rename = "OAuth")]
    OAuth,
    /// Public keys (JWKS) and authorization server metadata.
    Discovery,
    /// Liveness and readiness.
    Health,
    /// The revocation feed, for services that verify tokens offline.
    Revocations,
}

impl ApiTags {
    /// In the order Swagger UI shows them (`spec::tags_in_order`).
    pub const ALL: [ApiTags; 8] = [
        ApiTags::Token,
        ApiTags::Users,
        ApiTags::Admin,
        ApiTags::Groups,
        ApiTags::OAuth,
        ApiTags::Revocations,
        ApiTags::Discovery,
        ApiTags::Health,
    ];
}

/// In the order Swagger UI shows them: the Token tag first (the body endpoints, then the
/// cookie ones), then Users, then the rest.
pub type Apis = (
    token::TokenApi,
    cookies::CookieApi,
    users::UsersApi,
    email::EmailApi,
    admin::AdminApi,
    groups::GroupsApi,
    oauth::OAuthApi,
    discovery::DiscoveryApi,
    health::HealthApi,
    revocations::RevocationsApi,
);

/// Every API, each built with the services it uses.
fn apis(state: &AppState) -> Apis {
    let settings = &state.settings;
    (
        token::TokenApi::new(&state.flows, state.trusted_proxies.clone()),
        cookies::CookieApi::new(
            &settings.cookies,
            &state.flows,
            state.codec.clone(),
            state.clock.clone(),
            state.trusted_proxies.clone(),
        ),
        users::UsersApi::new(
            state.accounts.clone(),
            state.grants.clone(),
            state.flows.revocation.clone(),
            state.trusted_proxies.clone(),
        ),
        email::EmailApi::new(state.email.clone(), state.trusted_proxies.clone()),
        admin::AdminApi::new(state.accounts.clone(), state.grants.clone()),
        groups::GroupsApi::new(state.grants.clone()),
        oauth::OAuthApi::new(
            state.oauth.clone(),
            settings.jwt.audience.clone(),
            state.trusted_proxies.clone(),
        ),
        discovery::DiscoveryApi::new(
            state.codec.clone(),
            settings.jwt.jwks_max_age,
            settings.server.public_url.clone(),
        ),
        health::HealthApi::new(Readiness::new(
            state.db.clone(),
            state.revocation_store.clone(),
        )),
        revocations::RevocationsApi::new(state.feed.clone(), settings.server.request_timeout),
    )
}

fn service<T: OpenApi>(apis: T) -> OpenApiService<T, ()> {
    OpenApiService::new(apis, "jwtd", env!("CARGO_PKG_VERSION")).description(
        "A standalone token service: SimpleJWT's obtain / refresh / verify / blacklist, with \
             atomic refresh rotation, reuse detection and revocation that reaches access tokens.",
    )
}

/// The OpenAPI document of every operation, as `/openapi.json` serves it; what `jwtd openapi`
/// prints, without building the services.
pub fn openapi_spec() -> String {
    spec::tags_in_order(&service(spec::Described::<Apis>::new()).spec())
}

/// The whole HTTP application.
pub fn routes(state: Arc<AppState>) -> FrontDoor<Operations> {
    let api = service(apis(&state));
    let spec = spec::tags_in_order(&api.spec());
    let docs = spec::swagger_ui(&api, &spec);
    let mut others = Route::new()
        .at("/openapi.json", spec::document(spec))
        .nest("/docs", docs);
    // With a listener of its own (`metrics_routes`), /metrics is not on the public port at all.
    if state.settings.server.metrics_bind.is_none() {
        others = others.at("/metrics", get(metrics_text));
    }
    let others = others.data(state.metrics.clone()).boxed();
    FrontDoor {
        api: Operations::new(apis(&state), api.into_endpoint()),
        others,
        cors: Cors::from_settings(&state.settings.cors),
        limits: RequestLimits::from_settings(&state.settings.server),
        cookies_enabled: state.settings.cookies.enabled,
        metrics: state.metrics.clone(),
        services: RequestServices {
            verify: state.flows.verify.clone(),
            body_limit: state.settings.server.max_body_bytes,
        },
    }
}

/// What the `server.metrics_bind` listener serves: `GET /metrics` only, logged and counted as on
/// the API port.
pub fn metrics_routes(state: Arc<AppState>) -> impl Endpoint {
    let limits = RequestLimits::from_settings(&state.settings.server);
    let metrics = state.metrics.clone();
    Route::new()
        .at("/metrics", get(metrics_text))
        .data(state.metrics.clone())
        .around(move |next, request| observe::observe(next, request, metrics.clone(), limits))
}

/// `GET /metrics`: Prometheus scrapes this (OpenMetrics text).
#[handler]
fn metrics_text(metrics: Data<&Arc<Metrics>>) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, metrics::CONTENT_TYPE)
        .body(metrics.render())
}

#[cfg(test)]
mod tests {
    /// JSON parsers keep one of two equal keys: a path written twice (by two APIs sharing it)
    /// would hide the other's operations from every client of the spec.
    #[test]
    fn every_path_appears_once_in_the_spec_with_all_its_operations() {
        let text = super::openapi_spec();
        let spec: serde_json::Value = serde_json::from_str(&text).unwrap();
        for path in spec["paths"].as_object().unwrap().keys() {
            let key_line = format!("    \"{path}\": {{");
            let count = text.lines().filter(|line| *line == key_line).count();
            assert_eq!(count, 1, "{path} appears {count} times");
        }
        let users = spec["paths"]["/api/users"].as_object().unwrap();
        assert!(users.contains_key("get") && users.contains_key("post"));
    }
}
