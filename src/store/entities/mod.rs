//! SeaORM entities; the schema itself is owned by the `migration` crate.

pub mod oauth_client;
pub mod revocation;
pub mod revocation_feed;
pub mod session;
pub mod throttle_counter;
pub mod user;
