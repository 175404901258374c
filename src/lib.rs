//! jwtd: a standalone, SimpleJWT-compatible token service.
//!
//! - [`http`]: the API (one `#[OpenApi]` struct per tag), routes and body parsing;
//! - [`token`]: claims, keys, signing / verifying, and the obtain / refresh / verify / blacklist flows;
//! - [`store`]: users (SeaORM) and the revocation store (Redis or SQL behind one trait);
//! - [`config`], [`error`], [`password`], [`clock`]; [`cli`] for the `jwtd` command line.

pub mod accounts;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod error;
pub mod http;
pub mod metrics;
pub mod oauth;
pub mod password;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod throttle;
pub mod token;

pub use app::App;
pub use config::Settings;
