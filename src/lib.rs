//! jwtd: a standalone, SimpleJWT-compatible token service.
//!
//! - [`http`]: the API (one `#[OpenApi]` struct per tag), routes, body parsing, the HTTP error;
//! - [`flows`]: login, refresh, verify and revocation, each in a room of its own;
//! - [`token`]: claims, keys, signing and verifying;
//! - [`accounts`], [`oauth`]: the services above the flows;
//! - [`store`]: users (SeaORM) and the revocation store (Redis or SQL behind one trait);
//! - [`feed`]: the revocation feed's long poll (the feed itself is in [`store`]);
//! - [`config`], [`outage`], [`password`], [`clock`]; [`cli`] for the `jwtd` command line.

pub mod accounts;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod email;
pub mod feed;
pub mod flows;
pub mod http;
pub mod metrics;
pub mod oauth;
pub mod outage;
pub mod password;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod throttle;
pub mod token;

pub use app::App;
pub use config::Settings;
