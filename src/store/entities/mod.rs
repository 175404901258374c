//! SeaORM entities; the schema itself is owned by the `migration` crate.

pub mod email_outbox;
pub mod oauth_client;
pub mod revocation;
pub mod session;
pub mod throttle_counter;
pub mod user;
